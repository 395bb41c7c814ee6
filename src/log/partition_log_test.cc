#include "log/partition_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "common/testing/fault_fs.h"
#include "gtest/gtest.h"

namespace nodata::log {
namespace {

namespace fs = std::filesystem;

class PartitionLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           StrCat("nodata-log-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    syncer_.WaitIdle();  // a seal writes its index file in the background
    fs::remove_all(dir_);
  }

  std::unique_ptr<PartitionLog> Open(LogOptions options = {}) {
    auto log = PartitionLog::Open(fault_, dir_.string(), options, syncer_);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  // Appends `n` records "v<i>" and waits until they are acknowledged.
  static absl::Status AppendAcked(PartitionLog& log, int n, int start = 0, size_t size = 16) {
    std::vector<std::string> data;
    std::vector<RecordView> views;
    for (int i = 0; i < n; ++i) {
      std::string d = StrCat("v", start + i);
      d.resize(std::max(size, d.size()), '.');
      data.push_back(d);
    }
    for (int i = 0; i < n; ++i) {
      RecordView v;
      v.id = data[i];
      v.data = data[i];
      v.ingest_time_us = 1000 + start + i;
      v.timestamp_us = v.ingest_time_us;
      views.push_back(v);
    }
    auto first = log.Append(views);
    if (!first.ok()) return first.status();
    std::promise<absl::Status> done;
    log.WhenAcked(*first + n, [&done](absl::Status s) { done.set_value(s); });
    return done.get_future().get();
  }

  static std::vector<Record> ReadAll(const PartitionLog& log, uint64_t from = 0) {
    std::vector<Record> out;
    absl::Status s = log.Read(from, 1u << 30, 1u << 30, &out);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::string SegmentPath(uint64_t base) const {
    return (dir_ / SegmentFileName(base)).string();
  }

  fs::path dir_;
  testing::FaultFs fault_;
  Syncer syncer_{2};
};

TEST_F(PartitionLogTest, AppendsDenseOffsetsAndReadsThemBack) {
  auto log = Open();
  ASSERT_TRUE(AppendAcked(*log, 10).ok());
  ASSERT_TRUE(AppendAcked(*log, 5, 10).ok());
  auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 15u);
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].offset.value(), i);
    EXPECT_TRUE(records[i].data.starts_with(StrCat("v", i)));
  }
  auto tail = ReadAll(*log, 12);
  ASSERT_EQ(tail.size(), 3u);
  EXPECT_EQ(tail[0].offset.value(), 12u);
  EXPECT_EQ(log->Stats().end_offset, 15u);
}

TEST_F(PartitionLogTest, ReopenContinuesOffsets) {
  {
    auto log = Open();
    ASSERT_TRUE(AppendAcked(*log, 7).ok());
  }
  auto log = Open();
  EXPECT_EQ(log->Stats().end_offset, 7u);
  ASSERT_TRUE(AppendAcked(*log, 3, 7).ok());
  EXPECT_EQ(ReadAll(*log).size(), 10u);
  EXPECT_EQ(log->recovery().truncated_bytes, 0u);
}

TEST_F(PartitionLogTest, RollsSegmentsBySizeAndIndexesEachOne) {
  LogOptions options;
  options.segment_bytes = 4096;
  options.index_interval_bytes = 256;
  {
    auto log = Open(options);
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(AppendAcked(*log, 10, i * 10, 40).ok());
    EXPECT_GT(log->Stats().segment_count, 5u);
    auto records = ReadAll(*log, 333);
    ASSERT_EQ(records.size(), 67u);
    EXPECT_EQ(records.front().offset.value(), 333u);
  }
  // Remove one index: it is rebuilt; the others are loaded.
  syncer_.WaitIdle();  // index files are written in the background
  fs::remove(dir_ / IndexFileName(0));
  auto log = Open(options);
  EXPECT_EQ(log->recovery().rebuilt_indexes, 1u);
  syncer_.WaitIdle();
  EXPECT_TRUE(fs::exists(dir_ / IndexFileName(0)));
  auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 400u);
  for (size_t i = 0; i < records.size(); ++i) ASSERT_EQ(records[i].offset.value(), i);
}

TEST_F(PartitionLogTest, RecoveryTruncatesTornTail) {
  uint64_t size_after_8;
  {
    auto log = Open();
    ASSERT_TRUE(AppendAcked(*log, 8).ok());
    size_after_8 = fs::file_size(SegmentPath(0));
    ASSERT_TRUE(AppendAcked(*log, 1, 8).ok());
  }
  // Cut the last record in half, as a crash in the middle of a write would.
  uint64_t full = fs::file_size(SegmentPath(0));
  fs::resize_file(SegmentPath(0), size_after_8 + (full - size_after_8) / 2);
  auto log = Open();
  EXPECT_EQ(log->Stats().end_offset, 8u);
  EXPECT_GT(log->recovery().truncated_bytes, 0u);
  EXPECT_EQ(fs::file_size(SegmentPath(0)), size_after_8);
  ASSERT_TRUE(AppendAcked(*log, 2, 8).ok());
  auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 10u);
  EXPECT_EQ(records[9].offset.value(), 9u);
}

TEST_F(PartitionLogTest, RecoveryTruncatesZeroFilledTail) {
  {
    auto log = Open();
    ASSERT_TRUE(AppendAcked(*log, 4).ok());
  }
  uint64_t size = fs::file_size(SegmentPath(0));
  {
    std::ofstream f(SegmentPath(0), std::ios::app | std::ios::binary);
    std::string zeros(5000, '\0');
    f.write(zeros.data(), zeros.size());
  }
  auto log = Open();
  EXPECT_EQ(log->Stats().end_offset, 4u);
  EXPECT_EQ(fs::file_size(SegmentPath(0)), size);
}

TEST_F(PartitionLogTest, FlippedBitBeforeTheTailIsDataLossNotTruncation) {
  {
    auto log = Open();
    ASSERT_TRUE(AppendAcked(*log, 20).ok());
  }
  uint64_t size = fs::file_size(SegmentPath(0));
  {
    std::fstream f(SegmentPath(0), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kSegmentHeaderBytes + 100);
    char c;
    f.seekg(kSegmentHeaderBytes + 100);
    f.get(c);
    f.seekp(kSegmentHeaderBytes + 100);
    f.put(static_cast<char>(c ^ 0x10));
  }
  auto log = PartitionLog::Open(fault_, dir_.string(), {}, syncer_);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(fs::file_size(SegmentPath(0)), size) << "nothing may be cut away";
}

TEST_F(PartitionLogTest, FlippedBitInSealedSegmentFailsTheRead) {
  LogOptions options;
  options.segment_bytes = 2048;
  {
    auto log = Open(options);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(AppendAcked(*log, 5, i * 5, 40).ok());
  }
  {
    std::fstream f(SegmentPath(0), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kSegmentHeaderBytes + 30);
    f.put('X');
  }
  auto log = Open(options);
  std::vector<Record> out;
  absl::Status s = log->Read(0, 1000, 1u << 20, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  // Without the index the damage is found at start.
  syncer_.WaitIdle();
  fs::remove(dir_ / IndexFileName(0));
  log.reset();
  auto reopened = PartitionLog::Open(fault_, dir_.string(), options, syncer_);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
}

// Scans reuse one read buffer per thread and size their reads by their limits: small batches
// after large frames, frames longer than any read, and a frame straddling two reads all come back
// whole, in order, with every record's checksum verified.
TEST_F(PartitionLogTest, ScansOfEverySizeShareTheReadBuffer) {
  auto log = Open();
  ASSERT_TRUE(AppendAcked(*log, 3, 0, 300u << 10).ok());   // frames longer than a small read
  ASSERT_TRUE(AppendAcked(*log, 1, 3, 3u << 20).ok());     // longer than the largest read
  ASSERT_TRUE(AppendAcked(*log, 2000, 4, 100).ok());
  std::vector<Record> all = ReadAll(*log);
  ASSERT_EQ(all.size(), 2004u);
  EXPECT_EQ(all[3].data.size(), 3u << 20);
  for (size_t max_bytes : {size_t{1}, size_t{5000}, size_t{1} << 20}) {
    uint64_t from = 0;
    while (from < all.size()) {
      std::vector<Record> out;
      ASSERT_TRUE(log->Read(from, 7, max_bytes, &out).ok());
      ASSERT_FALSE(out.empty());
      for (const Record& r : out) {
        ASSERT_EQ(r.offset.value(), from);
        ASSERT_EQ(r.data, all[from].data);
        ++from;
      }
    }
  }
}

// A visitor that scans again (another log, same thread) gets its own read buffer: the outer
// scan's records stay intact.
TEST_F(PartitionLogTest, ScanInsideAVisitorLeavesTheOuterScanIntact) {
  auto log = Open();
  ASSERT_TRUE(AppendAcked(*log, 50, 0, 3000).ok());
  std::vector<Record> expected = ReadAll(*log);
  size_t seen = 0;
  absl::Status s = log->Scan(0, 1000, 1u << 30, [&](const DecodedRecord& outer) {
    std::string before(outer.data);
    std::vector<Record> inner;
    ASSERT_TRUE(log->Read(49 - outer.offset.value(), 3, 1u << 30, &inner).ok());
    EXPECT_EQ(outer.data, before);
    EXPECT_EQ(outer.data, expected[outer.offset.value()].data);
    ++seen;
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(seen, 50u);
}

TEST_F(PartitionLogTest, TornSegmentHeaderOfAnEmptySegmentIsRewritten) {
  LogOptions options;
  options.segment_bytes = 1024;
  uint64_t last_base;
  {
    auto log = Open(options);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(AppendAcked(*log, 5, i * 5, 40).ok());
    last_base = log->Stats().end_offset;
  }
  // A crash right after the next segment was created, before its header was written.
  { std::ofstream f(SegmentPath(last_base), std::ios::binary); f.write("NDL", 3); }
  auto log = Open(options);
  EXPECT_EQ(log->Stats().end_offset, last_base);
  ASSERT_TRUE(AppendAcked(*log, 1, 50).ok());
  EXPECT_EQ(ReadAll(*log).size(), last_base + 1);
}

TEST_F(PartitionLogTest, GroupCommitSharesFsyncs) {
  auto log = Open();
  const uint64_t syncs_before = fault_.sync_count();
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(AppendAcked(*log, 1, t * 1000 + i).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(log->Stats().end_offset, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(log->acked_end(), uint64_t{kThreads * kPerThread});
  const uint64_t syncs = fault_.sync_count() - syncs_before;
  EXPECT_LT(syncs, uint64_t{kThreads * kPerThread}) << "each append paid its own fsync";
  EXPECT_GT(syncs, 0u);
}

TEST_F(PartitionLogTest, FullDiskFailsTheWholeBatchAndRecovers) {
  LogOptions options;
  options.reserve_chunk_bytes = 4096;
  auto log = Open(options);
  ASSERT_TRUE(AppendAcked(*log, 3).ok());
  const uint64_t size = fs::file_size(SegmentPath(0));
  fault_.SetDiskFull(true);
  absl::Status s = AppendAcked(*log, 200, 3, 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(fs::file_size(SegmentPath(0)), size);
  EXPECT_EQ(log->Stats().end_offset, 3u);
  fault_.SetDiskFull(false);
  ASSERT_TRUE(AppendAcked(*log, 2, 3).ok());
  EXPECT_EQ(ReadAll(*log).size(), 5u);
}

TEST_F(PartitionLogTest, ReservationFollowsTheWriteRateAndIdlePartitionsGiveItBack) {
  auto allocated = [&] {
    struct stat st;
    EXPECT_EQ(::stat(SegmentPath(0).c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  auto size = [&] { return static_cast<uint64_t>(fs::file_size(SegmentPath(0))); };
  auto log = Open();
  ASSERT_TRUE(AppendAcked(*log, 1).ok());
  // A partition written once holds the smallest step, not the largest.
  EXPECT_LE(log->reserved_bytes(), 64u << 10);
  EXPECT_LE(allocated(), size() + (64u << 10));
  // Appends in quick succession (their times are microseconds apart) double the step.
  uint64_t most = 0;
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(AppendAcked(*log, 100, 1 + i * 100, 1000).ok());
    most = std::max(most, log->reserved_bytes());
  }
  EXPECT_GT(most, 512u << 10);
  EXPECT_LE(most, 1u << 20);
  // Idle: the reservation goes back, and the records stay.
  ASSERT_TRUE(log->ReleaseIdle(1000 + 4001 + 4'000'000).ok());
  EXPECT_GT(log->reserved_bytes(), 0u) << "not idle for idle_release_ms yet";
  ASSERT_TRUE(log->ReleaseIdle(1000 + 4001 + 6'000'000).ok());
  EXPECT_EQ(log->reserved_bytes(), 0u);
  EXPECT_LT(allocated(), size() + (16u << 10));  // the last block, extent tree blocks
  // The next append reserves again, from the smallest step.
  ASSERT_TRUE(AppendAcked(*log, 1, 4001).ok());
  EXPECT_LE(log->reserved_bytes(), 64u << 10);
  EXPECT_GT(log->reserved_bytes(), 0u);
  // A clean close gives it back as well.
  log.reset();
  EXPECT_LT(allocated(), size() + (16u << 10));  // the last block, extent tree blocks
  log = Open();
  EXPECT_EQ(ReadAll(*log).size(), 4002u);
}

TEST_F(PartitionLogTest, ALeftOverReservationIsGivenBackOnOpen) {
  auto log = Open();
  ASSERT_TRUE(AppendAcked(*log, 3).ok());
  log.reset();
  // As a crash leaves it: blocks reserved past the end.
  {
    const int fd = ::open(SegmentPath(0).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0);
    ::close(fd);
  }
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath(0).c_str(), &st), 0);
  ASSERT_GE(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20);
  log = Open();
  ASSERT_EQ(::stat(SegmentPath(0).c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 8192u);
  EXPECT_EQ(ReadAll(*log).size(), 3u);
}

TEST_F(PartitionLogTest, ANewSegmentIsSyncedWithItsFirstRecordsNotBefore) {
  auto log = Open();
  EXPECT_EQ(fault_.sync_count(), 0u) << "creating a partition syncs nothing";
  EXPECT_EQ(fault_.dir_sync_count(), 0u);
  ASSERT_TRUE(AppendAcked(*log, 2).ok());
  EXPECT_GE(fault_.sync_count(), 1u);
  EXPECT_EQ(fault_.dir_sync_count(), 2u)
      << "the segment's entry and the partition directory's, before the acknowledgement";
  ASSERT_TRUE(AppendAcked(*log, 2, 2).ok());
  EXPECT_EQ(fault_.dir_sync_count(), 2u) << "once per segment";
  // A roll: the sealed segment and the new one's entry are synced once more each.
  ASSERT_TRUE(log->Seal(INT64_MAX).ok());
  ASSERT_TRUE(AppendAcked(*log, 2, 4).ok());
  EXPECT_EQ(fault_.dir_sync_count(), 3u);
  log.reset();
  log = Open();
  EXPECT_EQ(ReadAll(*log).size(), 6u);
}

TEST_F(PartitionLogTest, APartitionNeverWrittenHasNoFilesUntilItsFirstRecord) {
  auto log = Open();
  EXPECT_FALSE(fs::exists(dir_)) << "opening a new partition creates nothing on disk";
  EXPECT_TRUE(ReadAll(*log).empty());
  ASSERT_TRUE(log->Sync().ok());
  ASSERT_TRUE(log->ReleaseIdle(INT64_MAX).ok());
  EXPECT_EQ(log->Stats().end_offset, 0u);
  EXPECT_EQ(log->Stats().bytes_on_disk, 0u);
  EXPECT_EQ(log->Stats().segment_count, 0u);
  log.reset();
  EXPECT_FALSE(fs::exists(dir_)) << "nor does closing it";
  log = Open();
  EXPECT_FALSE(fs::exists(dir_));
  ASSERT_TRUE(AppendAcked(*log, 3).ok());
  EXPECT_TRUE(fs::exists(SegmentPath(0)));
  EXPECT_EQ(log->Stats().segment_count, 1u);
  EXPECT_EQ(log->Stats().bytes_on_disk, fs::file_size(SegmentPath(0)));
  EXPECT_EQ(ReadAll(*log).size(), 3u);
  log.reset();
  log = Open();
  const auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].offset.value(), 2u);
  ASSERT_TRUE(AppendAcked(*log, 1, 3).ok());
  EXPECT_EQ(ReadAll(*log).size(), 4u);
}

TEST_F(PartitionLogTest, ShortWriteIsUndone) {
  auto log = Open();
  ASSERT_TRUE(AppendAcked(*log, 3).ok());
  const uint64_t size = fs::file_size(SegmentPath(0));
  fault_.SetWriteBudget(50);
  absl::Status s = AppendAcked(*log, 10, 3, 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(fs::file_size(SegmentPath(0)), size);
  fault_.SetWriteBudget(-1);
  ASSERT_TRUE(AppendAcked(*log, 1, 3).ok());
  auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[3].offset.value(), 3u);
}

TEST_F(PartitionLogTest, FailedFsyncIsNeverAcknowledgedAndStopsWrites) {
  {
    auto log = Open();
    ASSERT_TRUE(AppendAcked(*log, 2).ok());
    fault_.SetFailSync(true);
    absl::Status s = AppendAcked(*log, 1, 2);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(log->acked_end(), 2u);
    fault_.SetFailSync(false);
    EXPECT_FALSE(AppendAcked(*log, 1, 3).ok()) << "writes after a failed fsync";
  }
  auto log = Open();  // a restart recovers
  ASSERT_TRUE(AppendAcked(*log, 1, 3).ok());
}

TEST_F(PartitionLogTest, RecentStartIsTheFirstSegmentReachingTheTimeOrCount) {
  LogOptions options;
  options.segment_bytes = 2048;
  auto log = Open(options);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(AppendAcked(*log, 5, i * 5, 40).ok());
  // Records are 40-byte payloads with ingest times 1000 + offset; segments of 2 KiB hold a few
  // batches each, so the start is a segment's base at or before the first record since the time.
  const uint64_t by_time = log->RecentStart(1000 + 90, 1u << 30);
  EXPECT_LE(by_time, 90u);
  EXPECT_GT(by_time, 60u) << "only the newest segments";
  const uint64_t by_count = log->RecentStart(0, 3);
  EXPECT_LE(by_count, 97u);
  EXPECT_GT(by_count, 80u);
  EXPECT_EQ(log->RecentStart(1000 + 500, 1u << 30), 100u) << "nothing that recent: the end";
}

TEST_F(PartitionLogTest, IntervalPolicyAcknowledgesOnWrite) {
  LogOptions options;
  options.fsync = FsyncPolicy::kInterval;
  auto log = Open(options);
  const uint64_t syncs_before = fault_.sync_count();
  ASSERT_TRUE(AppendAcked(*log, 5).ok());
  EXPECT_EQ(fault_.sync_count(), syncs_before);
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(fault_.sync_count(), syncs_before + 1);
}

}  // namespace
}  // namespace nodata::log

namespace nodata::log {
namespace {

TEST_F(PartitionLogTest, ReadersAreWokenByTheAppendAndGoneReadersAreDropped) {
  auto log = Open();
  ASSERT_TRUE(AppendAcked(*log, 2).ok());
  // Already readable: called at once.
  bool now = false;
  auto owner = std::make_shared<int>(0);
  log->WhenReadable(1, owner, [&now] { now = true; });
  EXPECT_TRUE(now);
  // Waiting for offset 2: called when it is acknowledged, not before.
  std::atomic<int> woken{0};
  auto gone = std::make_shared<int>(0);
  log->WhenReadable(2, gone, [&woken] { woken += 100; });
  gone.reset();  // this reader went away: its waiter must never run
  log->WhenReadable(2, owner, [&woken] { woken += 1; });
  EXPECT_EQ(woken.load(), 0);
  ASSERT_TRUE(AppendAcked(*log, 1, 2).ok());
  EXPECT_EQ(woken.load(), 1);
}

}  // namespace
}  // namespace nodata::log
