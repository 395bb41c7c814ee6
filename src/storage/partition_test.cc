#include "storage/partition.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <limits>

#include "common/strings.h"
#include "common/testing/fault_fs.h"
#include "gtest/gtest.h"
#include "parquet/reader.h"

namespace nodata::storage {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDay = 86400LL * 1000000;
// 2026-11-25T23:59:00Z and a minute later, on the next day.
constexpr int64_t kBeforeMidnight = 1795651140LL * 1000000;

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           StrCat("nodata-partition-", ::getpid(), "-",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    syncer_.WaitIdle();  // a seal writes its index file in the background
    fs::remove_all(dir_);
  }

  std::string LogDir() const { return (dir_ / "log" / "t" / "0").string(); }
  std::string ColdDir() const { return (dir_ / "topics" / "t" / "partition=0").string(); }

  std::unique_ptr<Partition> Open(parquet::WriterOptions popts = {}) {
    log::LogOptions options;
    options.segment_bytes = 64 << 10;
    auto p = Partition::Open(fault_, LogDir(), ColdDir(), options, syncer_, popts);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // Appends `n` records ingested at `ingest_us` and waits until they are durable.
  static void Append(Partition& p, int n, int64_t ingest_us) {
    std::vector<std::string> ids, data;
    for (int i = 0; i < n; ++i) {
      ids.push_back(StrCat("id-", p.end_offset() + i));
      data.push_back(std::string(100, static_cast<char>('a' + i % 26)));
    }
    std::vector<std::pair<std::string_view, std::string_view>> headers = {{"h", "v"}};
    std::vector<RecordView> views;
    for (int i = 0; i < n; ++i) {
      RecordView v;
      v.id = ids[i];
      v.key = i % 2 ? "k" : "";
      v.data = data[i];
      v.timestamp_us = ingest_us - 5;
      v.ingest_time_us = ingest_us;
      v.headers = headers;
      views.push_back(v);
    }
    auto first = p.Append(views);
    ASSERT_TRUE(first.ok()) << first.status();
    std::promise<absl::Status> done;
    p.WhenAcked(*first + n, [&](absl::Status s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  static std::vector<Record> ReadAll(const Partition& p, uint64_t from) {
    std::vector<Record> out;
    for (;;) {
      size_t before = out.size();
      absl::Status s = p.Read(Offset(from), 1000, 1 << 20, &out);
      EXPECT_TRUE(s.ok()) << s;
      if (!s.ok() || out.size() == before) break;
      from = out.back().offset.value() + 1;
    }
    return out;
  }

  std::vector<std::string> ParquetFiles() const {
    std::vector<std::string> out;
    if (!fs::exists(ColdDir())) return out;
    for (const auto& e : fs::recursive_directory_iterator(ColdDir())) {
      if (e.is_regular_file()) out.push_back(fs::relative(e.path(), ColdDir()).string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static CompactionPolicy Policy() {
    CompactionPolicy policy;
    policy.roll_bytes = 1ull << 30;
    policy.roll_interval_us = 60LL * 1000000;
    policy.keep_hot_us = 0;
    return policy;
  }

  fs::path dir_;
  testing::FaultFs fault_;
  log::Syncer syncer_{2};
};

TEST_F(PartitionTest, FlushMovesRecordsToParquetAndReadsSpanBothTiers) {
  auto p = Open();
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  Append(*p, 500, t);
  const std::vector<Record> before = ReadAll(*p, 0);
  ASSERT_EQ(before.size(), 500u);

  auto r = p->Compact(Policy(), t + 1000, /*flush=*/true, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->records, 500u);
  EXPECT_EQ(r->files, 1u);
  EXPECT_GT(r->segments_dropped, 0u);
  EXPECT_EQ(ParquetFiles(),
            std::vector<std::string>{
                "date=2026-11-25/00000000000000000000-00000000000000000499.parquet"});
  StorageStats s = p->Stats();
  EXPECT_EQ(s.start_offset.value(), 0u);
  EXPECT_EQ(s.end_offset.value(), 500u);
  EXPECT_EQ(s.hot.start_offset, 500u);  // every compacted segment left the hot tier
  EXPECT_EQ(s.cold.file_count, 1u);

  Append(*p, 10, t + 2000);  // hot again
  std::vector<Record> after = ReadAll(*p, 0);
  ASSERT_EQ(after.size(), 510u);
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].offset, before[i].offset);
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].key, before[i].key);
    EXPECT_EQ(after[i].data, before[i].data);
    EXPECT_EQ(after[i].timestamp_us, before[i].timestamp_us);
    EXPECT_EQ(after[i].ingest_time_us, before[i].ingest_time_us);
    EXPECT_EQ(after[i].headers, before[i].headers);
  }
  // A read starting inside the cold tier at an arbitrary offset.
  std::vector<Record> mid;
  ASSERT_TRUE(p->Read(Offset(321), 5, 1 << 20, &mid).ok());
  ASSERT_EQ(mid.size(), 5u);
  EXPECT_EQ(mid[0].offset.value(), 321u);
  EXPECT_EQ(mid[0].id, "id-321");
}

TEST_F(PartitionTest, NothingIsCompactedUntilDueThenRollsBySize) {
  auto p = Open();
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  Append(*p, 2000, t);
  ASSERT_TRUE(p->Seal(std::numeric_limits<int64_t>::max()).ok());
  CompactionPolicy policy = Policy();
  // Small and recent: stays hot.
  auto r = p->Compact(policy, t + 1000, false, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files, 0u);
  EXPECT_TRUE(ParquetFiles().empty());
  // Past the roll bytes: cut into files of about roll_bytes each.
  policy.roll_bytes = 60 << 10;
  r = p->Compact(policy, t + 1000, false, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->records, 2000u);
  EXPECT_GE(r->files, 3u);
  EXPECT_EQ(ParquetFiles().size(), r->files);
  EXPECT_EQ(ReadAll(*p, 0).size(), 2000u);
}

TEST_F(PartitionTest, OldRecordsAreCompactedAfterTheRollInterval) {
  auto p = Open();
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  Append(*p, 10, t);  // active segment, not sealed
  CompactionPolicy policy = Policy();
  auto r = p->Compact(policy, t + policy.roll_interval_us - 1, false, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->files, 0u);
  r = p->Compact(policy, t + policy.roll_interval_us, false, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->files, 1u);
  EXPECT_EQ(r->records, 10u);
}

TEST_F(PartitionTest, FilesSplitAtMidnightIntoDateDirectories) {
  auto p = Open();
  Append(*p, 3, kBeforeMidnight);
  Append(*p, 4, kBeforeMidnight + 120LL * 1000000);
  auto r = p->Compact(Policy(), kBeforeMidnight + kDay, true, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ParquetFiles(),
            (std::vector<std::string>{
                "date=2026-11-25/00000000000000000000-00000000000000000002.parquet",
                "date=2026-11-26/00000000000000000003-00000000000000000006.parquet"}));
  EXPECT_EQ(ReadAll(*p, 0).size(), 7u);
}

TEST_F(PartitionTest, CrashLeftoversAreCleanedAndNothingIsDuplicated) {
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  {
    auto p = Open();
    Append(*p, 300, t);
    CompactionPolicy policy = Policy();
    policy.keep_hot_us = std::numeric_limits<int64_t>::max() / 2;  // segments stay hot
    auto r = p->Compact(policy, t + 1000, true, nullptr);
    ASSERT_TRUE(r.ok());
    Append(*p, 50, t + 2000);
  }
  // A compaction cut short: a temporary file, as a crash leaves it.
  const std::string date_dir = ColdDir() + "/date=2026-11-25";
  {
    std::ofstream tmp(date_dir + "/00000000000000000300.parquet.tmp");
    tmp << "PAR1 partial";
  }
  auto p = Open();
  EXPECT_EQ(ParquetFiles().size(), 1u);  // the temporary file is gone
  StorageStats s = p->Stats();
  EXPECT_EQ(s.hot.start_offset, 0u);  // the compacted segments were still there
  EXPECT_EQ(s.end_offset.value(), 350u);
  // Redoing the work compacts only what is not in Parquet yet and drops the hot copies.
  auto r = p->Compact(Policy(), t + 3000, true, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->records, 50u);
  std::vector<Record> all = ReadAll(*p, 0);
  ASSERT_EQ(all.size(), 350u);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i].offset.value(), i);
  EXPECT_EQ(p->Stats().hot.start_offset, 350u);
}

TEST_F(PartitionTest, LostHotTierNeverReusesColdOffsets) {
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  {
    auto p = Open();
    Append(*p, 40, t);
    ASSERT_TRUE(p->Compact(Policy(), t + 1000, true, nullptr).ok());
  }
  fs::remove_all(LogDir());
  auto p = Open();
  EXPECT_EQ(p->end_offset().value(), 40u);
  Append(*p, 1, t + 2000);
  std::vector<Record> all = ReadAll(*p, 0);
  ASSERT_EQ(all.size(), 41u);
  EXPECT_EQ(all.back().offset.value(), 40u);
}

TEST_F(PartitionTest, FailedParquetWriteLeavesTheHotTierIntactAndIsRetried) {
  auto p = Open();
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  Append(*p, 200, t);
  fault_.SetWriteBudget(300);  // the Parquet file runs out of disk midway
  auto r = p->Compact(Policy(), t + 1000, true, nullptr);
  EXPECT_FALSE(r.ok());
  fault_.SetWriteBudget(-1);
  EXPECT_TRUE(ParquetFiles().empty());
  EXPECT_EQ(p->Stats().hot.start_offset, 0u);
  EXPECT_EQ(ReadAll(*p, 0).size(), 200u);
  r = p->Compact(Policy(), t + 2000, true, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->records, 200u);
  EXPECT_EQ(ReadAll(*p, 0).size(), 200u);
}

TEST_F(PartitionTest, RetentionDeletesWholeFilesAndMovesTheStart) {
  auto p = Open();
  const int64_t t = kBeforeMidnight - 10 * 3600LL * 1000000;
  for (int i = 0; i < 4; ++i) {
    Append(*p, 100, t + i * 3600LL * 1000000);
    ASSERT_TRUE(p->Compact(Policy(), t + i * 3600LL * 1000000, true, nullptr).ok());
  }
  ASSERT_EQ(p->Stats().cold.file_count, 4u);
  // By age: files whose newest record is older than 2.5 hours at t + 4h.
  RetentionPolicy age;
  age.max_age_us = 150LL * 60 * 1000000;
  auto dropped = p->ApplyRetention(age, t + 4 * 3600LL * 1000000);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 2u);
  EXPECT_EQ(p->Stats().start_offset.value(), 200u);
  std::vector<Record> out;
  EXPECT_EQ(p->Read(Offset(150), 10, 1 << 20, &out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ReadAll(*p, 200).size(), 200u);
  // By bytes: keep at most one file's worth.
  RetentionPolicy bytes;
  bytes.max_bytes = p->cold().Files().back().size_bytes + 1;
  dropped = p->ApplyRetention(bytes, t + 4 * 3600LL * 1000000);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 1u);
  EXPECT_EQ(p->Stats().start_offset.value(), 300u);
  // The start survives a restart.
  p.reset();
  p = Open();
  EXPECT_EQ(p->Stats().start_offset.value(), 300u);
  EXPECT_EQ(ReadAll(*p, 300).size(), 100u);
}

TEST_F(PartitionTest, ReadsUseFooterStatisticsToDecodeOneRowGroup) {
  parquet::WriterOptions popts;
  popts.row_group_rows = 100;
  auto p = Open(popts);
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  Append(*p, 1000, t);
  ASSERT_TRUE(p->Compact(Policy(), t + 1000, true, nullptr).ok());
  auto files = p->cold().Files();
  ASSERT_EQ(files.size(), 1u);
  auto reader = parquet::Reader::Open(files[0].path);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->row_groups().size(), 10u);
  // A read stops at its row group's end: it decoded that group only.
  std::vector<Record> out;
  ASSERT_TRUE(p->Read(Offset(777), 1000, 1 << 20, &out).ok());
  ASSERT_EQ(out.size(), 23u);
  EXPECT_EQ(out.front().offset.value(), 777u);
  EXPECT_EQ(out.back().offset.value(), 799u);
}

TEST_F(PartitionTest, DamagedParquetFileGivesDataLossNotACrash) {
  const int64_t t = kBeforeMidnight - 3600LL * 1000000;
  std::string path;
  {
    auto p = Open();
    Append(*p, 100, t);
    ASSERT_TRUE(p->Compact(Policy(), t + 1000, true, nullptr).ok());
    path = p->cold().Files()[0].path;
  }
  fs::resize_file(path, fs::file_size(path) / 2);
  auto p = Open();
  ASSERT_NE(p, nullptr);
  std::vector<Record> out;
  EXPECT_EQ(p->Read(Offset(10), 10, 1 << 20, &out).code(), absl::StatusCode::kDataLoss);
  // Appends go on after the damaged range.
  EXPECT_EQ(p->end_offset().value(), 100u);
}

}  // namespace
}  // namespace nodata::storage
