#include "server/audit_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace nodata::server {
namespace {

std::vector<nlohmann::json> ReadLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/audit-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

AuditEntry Refusal(int i) {
  AuditEntry e;
  e.principal = "bob";
  e.peer = "ipv4:127.0.0.1:1";
  e.call = "/nodata.v1.IngestService/PublishBatch";
  e.status = "PERMISSION_DENIED";
  e.message = "bob lacks the scope publish:x" + std::to_string(i);
  return e;
}

TEST_F(AuditLogTest, WritesOneJsonObjectPerLineWithAPrivateMode) {
  const std::string path = AuditLogPath(dir_);
  {
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    AuditEntry admin;
    admin.principal = "ops";
    admin.peer = "ipv4:127.0.0.1:5000";
    admin.call = "/nodata.v1.TopicService/DeleteTopic";
    admin.request = {{"name", "orders"}};
    admin.status = "OK";
    admin.admin = true;
    (*log)->Write(admin);
    (*log)->Write(Refusal(0));
  }
  {
    // Reopened: appends.
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path);
    ASSERT_TRUE(log.ok());
    (*log)->Write(Refusal(1));
  }
  const std::vector<nlohmann::json> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["principal"], "ops");
  EXPECT_EQ(lines[0]["call"], "/nodata.v1.TopicService/DeleteTopic");
  EXPECT_EQ(lines[0]["request"]["name"], "orders");
  EXPECT_EQ(lines[0]["status"], "OK");
  EXPECT_FALSE(lines[0].contains("message"));
  EXPECT_EQ(std::string(lines[0]["time"]).size(),
            std::string_view("2026-12-05T13:01:02.123456Z").size());
  EXPECT_EQ(lines[1]["status"], "PERMISSION_DENIED");
  EXPECT_EQ(lines[2]["message"], "bob lacks the scope publish:x1");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AuditLogTest, RefusalsAreCappedPerSecondAndTheRestCounted) {
  const std::string path = AuditLogPath(dir_);
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path);
  ASSERT_TRUE(log.ok());
  // Far more than the cap, within (almost surely) one or two seconds.
  for (int i = 0; i < 5 * AuditLog::kMaxRefusalsPerSecond; ++i) (*log)->Write(Refusal(i));
  AuditEntry admin = Refusal(-1);
  admin.admin = true;  // admin lines are never dropped
  (*log)->Write(admin);
  const std::vector<nlohmann::json> lines = ReadLines(path);
  uint64_t written = 0, suppressed = 0;
  for (const nlohmann::json& l : lines) {
    if (l.contains("suppressed")) {
      suppressed += l["suppressed"].get<uint64_t>();
    } else {
      ++written;
    }
  }
  EXPECT_LE(written, 3u * AuditLog::kMaxRefusalsPerSecond + 1);
  EXPECT_EQ(written + suppressed, 5u * AuditLog::kMaxRefusalsPerSecond + 1);
  EXPECT_GT(suppressed, 0u);
  EXPECT_EQ(lines.back()["message"], "bob lacks the scope publish:x-1");
}

TEST_F(AuditLogTest, RollsOverPastItsSize) {
  const std::string path = AuditLogPath(dir_);
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path, 1000);
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 40; ++i) {
    AuditEntry e = Refusal(i);
    e.admin = true;
    (*log)->Write(e);
  }
  ASSERT_TRUE(std::filesystem::exists(path + ".1"));
  EXPECT_LE(std::filesystem::file_size(path), 1000u);
  const std::vector<nlohmann::json> current = ReadLines(path);
  ASSERT_FALSE(current.empty());
  EXPECT_EQ(current.back()["message"], "bob lacks the scope publish:x39");
}

TEST_F(AuditLogTest, AdminCalls) {
  EXPECT_TRUE(IsAdminCall("/nodata.v1.TopicService/DeleteTopic"));
  EXPECT_TRUE(IsAdminCall("/nodata.v1.ComponentService/AddComponent"));
  EXPECT_FALSE(IsAdminCall("/nodata.v1.TopicService/ListTopics"));
  EXPECT_FALSE(IsAdminCall("/nodata.v1.IngestService/PublishBatch"));
}

}  // namespace
}  // namespace nodata::server
