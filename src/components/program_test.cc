#include "components/program.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "common/strings.h"
#include "gtest/gtest.h"

namespace nodata::components {
namespace {

namespace fs = std::filesystem;

class ProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / StrCat("program_test.", getpid(), ".", counter_++);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // An executable shell script with `body`.
  std::string Script(const std::string& name, const std::string& body) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << "#!/bin/sh\n" << body;
    chmod(path.c_str(), 0755);
    return path;
  }

  // Waits up to 10 s for `done`.
  template <typename F>
  static bool Eventually(F done) {
    for (int i = 0; i < 1000; ++i) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  static bool Logged(ComponentLog& log, const std::string& stream, const std::string& text) {
    for (const LogLine& l : log.Read(0, ComponentLog::kMaxLines)) {
      if (l.stream == stream && l.text == text) return true;
    }
    return false;
  }

  fs::path dir_;
  static inline int counter_ = 0;
};

TEST_F(ProgramTest, RunsWithItsEnvironmentAndCapturesBothStreams) {
  auto log = std::make_shared<ComponentLog>("p");
  ProgramOptions o;
  o.path = Script("env.sh",
                  "echo \"in=$NODATA_INPUTS args=$1,$2\"\npwd\necho oops >&2\nexec sleep 60\n");
  o.work_dir = (dir_ / "work").string();
  fs::create_directories(o.work_dir);
  o.args = {"one", "two words"};
  o.env = {{"NODATA_INPUTS", "orders"}};
  Program program(o, log);
  program.Start();
  ASSERT_TRUE(Eventually([&] { return Logged(*log, "stdout", "in=orders args=one,two words"); }));
  ASSERT_TRUE(Eventually([&] { return Logged(*log, "stderr", "oops"); }));
  EXPECT_TRUE(Logged(*log, "stdout", o.work_dir));
  ProgramStatus s = program.status();
  EXPECT_TRUE(s.running);
  EXPECT_GT(s.pid, 0);
  EXPECT_EQ(s.starts, 1u);
  const int pid = s.pid;
  program.Stop();  // sleep dies of SIGTERM
  EXPECT_FALSE(program.status().running);
  EXPECT_EQ(program.status().last_exit, StrCat("killed by signal ", SIGTERM));
  EXPECT_NE(kill(pid, 0), 0);  // gone, and reaped
}

TEST_F(ProgramTest, StartsAgainWithGrowingBackoffAfterItExits) {
  auto log = std::make_shared<ComponentLog>("p");
  ProgramOptions o;
  o.path = Script("crash.sh", "echo started\nexit 3\n");
  o.min_backoff = absl::Milliseconds(20);
  o.max_backoff = absl::Milliseconds(80);
  Program program(o, log);
  program.Start();
  // Read between two starts (Stop could land while the script runs, and kill it).
  ProgramStatus between;
  ASSERT_TRUE(Eventually([&] {
    between = program.status();
    return between.starts >= 4 && !between.running;
  }));
  program.Stop();
  EXPECT_EQ(between.last_exit, "exited with status 3");
  int restarts_logged = 0;
  for (const LogLine& l : log->Read(0, ComponentLog::kMaxLines)) {
    if (l.stream == "server" && l.text.starts_with("exited with status 3; starting again in")) {
      ++restarts_logged;
    }
  }
  EXPECT_GE(restarts_logged, 3);
  EXPECT_TRUE(Logged(*log, "server", "exited with status 3; starting again in 20ms"));
  EXPECT_TRUE(Logged(*log, "server", "exited with status 3; starting again in 40ms"));
  EXPECT_TRUE(Logged(*log, "server", "exited with status 3; starting again in 80ms"));
}

TEST_F(ProgramTest, KillsAProgramThatIgnoresSigtermAfterTheGrace) {
  auto log = std::make_shared<ComponentLog>("p");
  ProgramOptions o;
  o.path = Script("stubborn.sh", "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n");
  o.stop_grace = absl::Milliseconds(300);
  Program program(o, log);
  program.Start();
  ASSERT_TRUE(Eventually([&] { return Logged(*log, "stdout", "ready"); }));
  const absl::Time start = absl::Now();
  program.Stop();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(program.status().last_exit, StrCat("killed by signal ", SIGKILL));
}

TEST_F(ProgramTest, ReportsAnExecThatFails) {
  auto log = std::make_shared<ComponentLog>("p");
  ProgramOptions o;
  o.path = (dir_ / "missing").string();
  o.min_backoff = absl::Milliseconds(10);
  Program program(o, log);
  program.Start();
  ASSERT_TRUE(Eventually([&] { return !program.status().last_exit.empty(); }));
  program.Stop();
  EXPECT_EQ(program.status().last_exit,
            StrCat("exec ", o.path, ": No such file or directory"));
  EXPECT_EQ(program.status().starts, 0u);
}

TEST_F(ProgramTest, ReportsAWorkingDirectoryThatIsMissing) {
  auto log = std::make_shared<ComponentLog>("p");
  ProgramOptions o;
  o.path = Script("ok.sh", "exit 0\n");
  o.work_dir = (dir_ / "not-there").string();
  Program program(o, log);
  program.Start();
  ASSERT_TRUE(Eventually([&] { return !program.status().last_exit.empty(); }));
  program.Stop();
  EXPECT_EQ(program.status().last_exit,
            StrCat("chdir ", o.work_dir, ": No such file or directory"));
}

TEST_F(ProgramTest, KeepsALineCutAcrossReadsWhole) {
  auto log = std::make_shared<ComponentLog>("p");
  ProgramOptions o;
  o.path = Script("slow.sh", "printf 'half'\nsleep 0.2\nprintf ' and half\\nno newline'\n");
  o.min_backoff = absl::Seconds(60);
  Program program(o, log);
  program.Start();
  ASSERT_TRUE(Eventually([&] { return Logged(*log, "stdout", "no newline"); }));
  program.Stop();
  EXPECT_TRUE(Logged(*log, "stdout", "half and half"));
}

}  // namespace
}  // namespace nodata::components
