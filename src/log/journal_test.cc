#include "log/journal.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/strings.h"
#include "common/testing/fault_fs.h"
#include "gtest/gtest.h"
#include "log/partition_log.h"

namespace nodata::log {
namespace {

namespace fs = std::filesystem;

// Partitions of one "server": a log root with partition directories and the journal beside it.
class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            StrCat("nodata-journal-", ::getpid(), "-",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "log");
  }
  void TearDown() override {
    logs_.clear();
    journal_.reset();
    fs::remove_all(root_);
  }

  // Opens the journal and `n` partitions (recovering what is there), as a start does.
  void Start(int n, JournalOptions options = {}) {
    options.key_root = (root_ / "log").string();
    options.dir_syncs = dir_syncs_;
    auto journal = Journal::Open(fault_, (root_ / "journal").string(), options);
    ASSERT_TRUE(journal.ok()) << journal.status();
    journal_ = std::move(*journal);
    LogOptions lo = log_options_;
    lo.journal = journal_;
    lo.dir_syncs = dir_syncs_;
    lo.dir_root = (root_ / "log").string();
    for (int p = 0; p < n; ++p) {
      auto log = PartitionLog::Open(fault_, PartitionDir(p), lo, syncer_);
      ASSERT_TRUE(log.ok()) << log.status();
      logs_.push_back(std::move(*log));
    }
    journal_->RecoveryDone();
  }

  // What a SIGKILL leaves: the files as they are, no checkpoint. (Destructors run, but none of
  // them syncs or deletes anything the journal holds.)
  void Crash() {
    logs_.clear();
    journal_.reset();
  }

  // Checkpoints over 4 partitions or more sync the file system once.
  JournalOptions WholeFileSystemSyncs() const {
    JournalOptions options;
    options.sync_fs_path = root_.string();
    options.whole_fs_members = 4;
    return options;
  }

  std::string PartitionDir(int p) const { return (root_ / "log" / "t" / std::to_string(p)).string(); }

  int JournalFiles() const {
    int n = 0;
    if (!fs::exists(root_ / "journal")) return 0;
    for (const auto& e : fs::directory_iterator(root_ / "journal")) {
      if (e.path().extension() == ".wal") ++n;
    }
    return n;
  }

  // Appends `n` records to partition `p` and returns a future of their acknowledgement.
  std::future<absl::Status> Append(int p, int n, int start = 0) {
    std::vector<std::string> data;
    for (int i = 0; i < n; ++i) data.push_back(StrCat("p", p, "-v", start + i));
    std::vector<RecordView> views;
    for (int i = 0; i < n; ++i) {
      RecordView v;
      v.id = data[i];
      v.data = data[i];
      v.ingest_time_us = 1000 + start + i;
      v.timestamp_us = v.ingest_time_us;
      views.push_back(v);
    }
    auto promise = std::make_shared<std::promise<absl::Status>>();
    auto future = promise->get_future();
    auto first = logs_[p]->Append(views);
    if (!first.ok()) {
      promise->set_value(first.status());
      return future;
    }
    logs_[p]->WhenAcked(*first + n, [promise](absl::Status s) { promise->set_value(s); });
    return future;
  }

  std::vector<std::string> Data(int p) {
    std::vector<Record> out;
    absl::Status s = logs_[p]->Read(0, 1u << 30, 1u << 30, &out);
    EXPECT_TRUE(s.ok()) << s;
    std::vector<std::string> data;
    for (const Record& r : out) data.push_back(r.data);
    return data;
  }

  static std::vector<std::string> Expected(int p, int n) {
    std::vector<std::string> data;
    for (int i = 0; i < n; ++i) data.push_back(StrCat("p", p, "-v", i));
    return data;
  }

  std::string Segment(int p) const { return PartitionDir(p) + "/" + SegmentFileName(0); }

  fs::path root_;
  LogOptions log_options_;  // for the partitions Start opens
  testing::FaultFs fault_;
  Syncer syncer_{2};
  std::shared_ptr<Journal> journal_;
  std::shared_ptr<DirSyncs> dir_syncs_ = std::make_shared<DirSyncs>(fault_);
  std::vector<std::unique_ptr<PartitionLog>> logs_;
};

TEST_F(JournalTest, OneFdatasyncAcknowledgesAppendsToManyPartitions) {
  constexpr int kPartitions = 200;
  Start(kPartitions);
  // The journal's disk is slow: every append arrives while its sync waits.
  fault_.HoldSyncs("/journal/");
  const uint64_t syncs_before = fault_.sync_count();
  std::vector<std::future<absl::Status>> acks;
  for (int p = 0; p < kPartitions; ++p) acks.push_back(Append(p, 3));
  for (auto& a : acks) {
    EXPECT_EQ(a.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
        << "acknowledged before any fdatasync";
    break;
  }
  fault_.ReleaseSyncs();
  for (auto& a : acks) ASSERT_TRUE(a.get().ok());
  // At most the one held when the first append came and one for all the others; no
  // partition's segment was synced to acknowledge.
  EXPECT_LE(fault_.sync_count() - syncs_before, 2u);
  for (int p = 0; p < kPartitions; ++p) EXPECT_EQ(logs_[p]->acked_end(), 3u);
}

TEST_F(JournalTest, OneWaitCoversABatchOverManyPartitions) {
  constexpr int kPartitions = 50;
  Start(kPartitions);
  fault_.HoldSyncs("/journal/");
  uint64_t furthest = 0;
  for (int p = 0; p < kPartitions; ++p) {
    RecordView v;
    const std::string data = StrCat("p", p, "-v0");
    v.id = data;
    v.data = data;
    v.ingest_time_us = 1000;
    v.timestamp_us = 1000;
    uint64_t lsn = 0;
    ASSERT_TRUE(logs_[p]->Append({&v, 1}, &lsn).ok());
    ASSERT_GT(lsn, furthest) << "positions grow with each append";
    furthest = lsn;
  }
  auto promise = std::make_shared<std::promise<absl::Status>>();
  auto done = promise->get_future();
  journal_->WhenDurable(furthest, [promise](absl::Status s) { promise->set_value(s); });
  EXPECT_EQ(done.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "answered before the journal was durable";
  fault_.ReleaseSyncs();
  ASSERT_TRUE(done.get().ok());
  // When it answers, every partition of the batch knows: its records are readable.
  for (int p = 0; p < kPartitions; ++p) EXPECT_EQ(logs_[p]->acked_end(), 1u) << p;
  // A position already durable is answered at once, on the caller's thread.
  bool now = false;
  journal_->WhenDurable(furthest, [&now](absl::Status s) { now = s.ok(); });
  EXPECT_TRUE(now);
}

TEST_F(JournalTest, AFailedJournalSyncFailsTheBatchesWaitingOnIt) {
  Start(2);
  ASSERT_TRUE(Append(0, 1).get().ok());
  RecordView v;
  v.id = "x";
  v.data = "x";
  v.ingest_time_us = 2000;
  v.timestamp_us = 2000;
  fault_.SetFailSync(true);
  uint64_t lsn = 0;
  ASSERT_TRUE(logs_[1]->Append({&v, 1}, &lsn).ok());
  auto promise = std::make_shared<std::promise<absl::Status>>();
  auto done = promise->get_future();
  journal_->WhenDurable(lsn, [promise](absl::Status s) { promise->set_value(s); });
  EXPECT_FALSE(done.get().ok());
  fault_.SetFailSync(false);
  // Later waits past what was durable get the journal's error.
  absl::Status later;
  journal_->WhenDurable(lsn, [&later](absl::Status s) { later = s; });
  EXPECT_FALSE(later.ok());
}

TEST_F(JournalTest, SegmentsHoldOnlyWhatTheJournalMadeDurable) {
  // A segment written ahead of the journal would hold, after a SIGKILL, records recovery
  // trusts but no disk holds: a later power loss would take them from under acknowledged ones.
  Start(1);
  ASSERT_TRUE(Append(0, 10).get().ok());
  ASSERT_EQ(Data(0), Expected(0, 10));  // read: written out
  const uint64_t written = fs::file_size(Segment(0));
  fault_.HoldSyncs("/journal/");
  auto pending = Append(0, 500, 10);  // well past the 16 KiB a tail is written out at
  EXPECT_EQ(Data(0), Expected(0, 10));
  ASSERT_TRUE(logs_[0]->Seal(0).ok());  // nothing is sealed that old
  EXPECT_TRUE(logs_[0]->ReleaseIdle(INT64_MAX / 2).ok());
  EXPECT_EQ(fs::file_size(Segment(0)), written);
  fault_.ReleaseSyncs();
  ASSERT_TRUE(pending.get().ok());
  EXPECT_EQ(Data(0), Expected(0, 510));
  EXPECT_GT(fs::file_size(Segment(0)), written);
}

TEST_F(JournalTest, CheckpointSyncsSegmentsAndDeletesTheJournal) {
  Start(8);
  for (int p = 0; p < 8; ++p) ASSERT_TRUE(Append(p, 10).get().ok());
  EXPECT_EQ(JournalFiles(), 1);
  const uint64_t syncs_before = fault_.sync_count();
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_EQ(JournalFiles(), 0);
  EXPECT_GE(fault_.sync_count() - syncs_before, 8u);  // each partition's segment
  EXPECT_EQ(journal_->Stats().checkpoints, 1u);
  // Appends go on into a new file.
  ASSERT_TRUE(Append(3, 5, 10).get().ok());
  EXPECT_EQ(JournalFiles(), 1);
}

TEST_F(JournalTest, AFullFileRotatesAndTheCheckpointDeletesIt) {
  JournalOptions options;
  options.file_bytes = 64 << 10;
  Start(4, options);
  for (int round = 0; round < 200; ++round) {
    for (int p = 0; p < 4; ++p) ASSERT_TRUE(Append(p, 5, round * 5).get().ok());
  }
  // About 200 KiB journaled: several files, the full ones deleted by checkpoints behind.
  for (int i = 0; i < 200 && JournalFiles() > 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_LE(JournalFiles(), 2);
  EXPECT_GE(journal_->Stats().checkpoints, 1u);
  for (int p = 0; p < 4; ++p) EXPECT_EQ(Data(p), Expected(p, 1000));
}

TEST_F(JournalTest, RecoveryRestoresWhatTheSegmentsLost) {
  constexpr int kPartitions = 6;
  Start(kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    ASSERT_TRUE(Append(p, 40).get().ok());
    ASSERT_TRUE(Append(p, 10, 40).get().ok());
    // Read, so written out to the segment (appends are written behind the journal).
    ASSERT_EQ(Data(p), Expected(p, 50));
  }
  Crash();
  // A power loss: the segments were never synced, so any of their pages may be gone. Partition
  // 0 lost its file, 1 its header, 2 everything after the header, 3 its tail, 4 a page in the
  // middle (zeros, records intact after it); 5 kept everything.
  fs::remove(Segment(0));
  {
    std::fstream f(Segment(1), std::ios::in | std::ios::out | std::ios::binary);
    f.write(std::string(32, '\0').data(), 32);
  }
  fs::resize_file(Segment(2), kSegmentHeaderBytes);
  fs::resize_file(Segment(3), fs::file_size(Segment(3)) - 100);
  {
    std::fstream f(Segment(4), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write(std::string(300, '\0').data(), 300);
  }
  Start(kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(Data(p), Expected(p, 50)) << "partition " << p;
    EXPECT_EQ(logs_[p]->acked_end(), 50u);
  }
  EXPECT_GT(logs_[2]->recovery().replayed_records, 0u);
  EXPECT_EQ(logs_[5]->recovery().replayed_records, 0u);
  // The checkpoint after recovery makes the segments whole on disk and deletes the journal;
  // appends go on.
  for (int i = 0; i < 200 && JournalFiles() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(JournalFiles(), 0);
  ASSERT_TRUE(Append(2, 5, 50).get().ok());
  Crash();
  Start(kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(Data(p), Expected(p, p == 2 ? 55 : 50)) << "partition " << p;
  }
}

TEST_F(JournalTest, PartitionsTakeTheirRecordsLateWhileAppendsGoOn) {
  JournalOptions small;
  small.file_bytes = 64 << 10;  // appends below roll several files
  Start(3, small);
  for (int p = 0; p < 3; ++p) {
    ASSERT_TRUE(Append(p, 50).get().ok());
    ASSERT_EQ(Data(p), Expected(p, 50));
  }
  Crash();
  // Partitions 1 and 2 lost everything after their headers: only the journal has their records.
  fs::resize_file(Segment(1), kSegmentHeaderBytes);
  fs::resize_file(Segment(2), kSegmentHeaderBytes);

  // A start that opens partition 0 alone, as a server does with partitions no call needs yet.
  small.key_root = (root_ / "log").string();
  small.dir_syncs = dir_syncs_;
  auto journal = Journal::Open(fault_, (root_ / "journal").string(), small);
  ASSERT_TRUE(journal.ok()) << journal.status();
  journal_ = std::move(*journal);
  EXPECT_TRUE(journal_->HoldsRecovered(PartitionDir(1)));
  EXPECT_TRUE(journal_->HoldsRecovered(PartitionDir(2)));
  EXPECT_FALSE(journal_->HoldsRecovered(PartitionDir(7)));
  LogOptions lo;
  lo.journal = journal_;
  lo.dir_syncs = dir_syncs_;
  lo.dir_root = (root_ / "log").string();
  auto first = PartitionLog::Open(fault_, PartitionDir(0), lo, syncer_);
  ASSERT_TRUE(first.ok()) << first.status();
  logs_.push_back(std::move(*first));
  const int recovered_files = JournalFiles();
  ASSERT_GT(recovered_files, 0);
  // Appends go on and roll new files; no checkpoint lets a file go before every partition the
  // journal holds records of took them.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Append(0, 50, 50 + 50 * i).get().ok());
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_GT(JournalFiles(), recovered_files);

  // The others open late, and take their records.
  for (int p = 1; p < 3; ++p) {
    auto log = PartitionLog::Open(fault_, PartitionDir(p), lo, syncer_);
    ASSERT_TRUE(log.ok()) << log.status();
    logs_.push_back(std::move(*log));
    EXPECT_EQ(Data(p), Expected(p, 50)) << "partition " << p;
  }
  journal_->RecoveryDone();
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_EQ(JournalFiles(), 0);
  EXPECT_FALSE(journal_->HoldsRecovered(PartitionDir(1)));
  Crash();
  Start(3);
  EXPECT_EQ(Data(0), Expected(0, 1050));
  for (int p = 1; p < 3; ++p) EXPECT_EQ(Data(p), Expected(p, 50)) << "partition " << p;
}

TEST_F(JournalTest, APartitionDirectoryALossTookIsRestoredFromTheJournal) {
  Start(3);
  // Partition 2 is never written: no directory.
  ASSERT_TRUE(Append(0, 20).get().ok());
  ASSERT_TRUE(Append(1, 20).get().ok());
  EXPECT_FALSE(fs::exists(PartitionDir(2)));
  Crash();
  // A power loss before any checkpoint: the new directory entries were never synced, so one may
  // be gone with everything under it.
  fs::remove_all(PartitionDir(0));
  Start(3);
  EXPECT_EQ(Data(0), Expected(0, 20));
  EXPECT_EQ(Data(1), Expected(1, 20));
  EXPECT_TRUE(Data(2).empty());
  EXPECT_FALSE(fs::exists(PartitionDir(2)));
  // The checkpoint after recovery syncs the restored files and their directories' entries, once
  // for the directory both partitions are in, and deletes the journal.
  for (int i = 0; i < 200 && JournalFiles() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(JournalFiles(), 0);
  EXPECT_EQ(dir_syncs_->pending(), 0u);
  Crash();
  Start(3);
  EXPECT_EQ(Data(0), Expected(0, 20));
  EXPECT_EQ(Data(1), Expected(1, 20));
  ASSERT_TRUE(Append(2, 5).get().ok());
  EXPECT_EQ(Data(2), Expected(2, 5));
}

TEST_F(JournalTest, ACheckpointOverManyPartitionsSyncsTheFileSystemOnce) {
  constexpr int kPartitions = 6;
  JournalOptions options = WholeFileSystemSyncs();
  // What the metrics are told: partitions synced, and how.
  struct Told {
    absl::Mutex mu;
    std::vector<std::pair<uint64_t, bool>> checkpoints ABSL_GUARDED_BY(mu);
  };
  auto told = std::make_shared<Told>();
  options.on_checkpoint = [told](double, uint64_t partitions, bool whole_fs) {
    absl::MutexLock lock(&told->mu);
    told->checkpoints.emplace_back(partitions, whole_fs);
  };
  Start(kPartitions, options);
  for (int p = 0; p < kPartitions; ++p) ASSERT_TRUE(Append(p, 30).get().ok());
  const uint64_t file_syncs = fault_.sync_count();
  const uint64_t dir_syncs = fault_.dir_sync_count();
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_EQ(fault_.fs_sync_count(), 1u);
  EXPECT_EQ(fault_.sync_count(), file_syncs) << "no fdatasync per partition";
  EXPECT_EQ(fault_.dir_sync_count(), dir_syncs);
  EXPECT_EQ(dir_syncs_->pending(), 0u) << "the new directories were synced with the rest";
  EXPECT_EQ(journal_->Stats().whole_fs_checkpoints, 1u);
  EXPECT_EQ(JournalFiles(), 0);
  // Nothing new: nothing to sync.
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_EQ(fault_.fs_sync_count(), 1u);
  // Fewer partitions than the threshold: each syncs its own files.
  ASSERT_TRUE(Append(0, 5, 30).get().ok());
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_EQ(fault_.fs_sync_count(), 1u);
  EXPECT_GT(fault_.sync_count(), file_syncs);
  {
    absl::MutexLock lock(&told->mu);
    ASSERT_GE(told->checkpoints.size(), 2u);
    EXPECT_EQ(told->checkpoints.front(), std::make_pair(uint64_t{kPartitions}, true));
    EXPECT_EQ(told->checkpoints.back(), std::make_pair(uint64_t{1}, false));
  }
  // The segments hold everything: a restart replays nothing.
  Crash();
  Start(kPartitions, options);
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(Data(p), Expected(p, p == 0 ? 35 : 30)) << "partition " << p;
    EXPECT_EQ(logs_[p]->recovery().replayed_records, 0u) << "partition " << p;
  }
}

TEST_F(JournalTest, AWriteOutReservesAheadForTheAppendsThatFollow) {
  constexpr int kPartitions = 5;
  // Reservations a step of 4 KiB at a time: an append reserves only what it needs.
  log_options_.reserve_chunk_bytes = 4096;
  log_options_.min_reserve_chunk_bytes = 4096;
  Start(kPartitions + 1, WholeFileSystemSyncs());
  for (int p = 0; p <= kPartitions; ++p) ASSERT_TRUE(Append(p, 40).get().ok());
  for (int p = 0; p <= kPartitions; ++p) {
    EXPECT_LT(logs_[p]->reserved_bytes(), 4096u) << "partition " << p;
  }
  // The checkpoint writes each partition's records out and, with its file open, reserves
  // what the partition wrote since the last one (here: all of it) past its end.
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_EQ(journal_->Stats().whole_fs_checkpoints, 1u);
  for (int p = 0; p <= kPartitions; ++p) {
    EXPECT_GE(logs_[p]->reserved_bytes(), fs::file_size(Segment(p))) << "partition " << p;
  }
  // The next journal file is started (and reserved) while there is room.
  ASSERT_TRUE(Append(kPartitions, 1, 40).get().ok());
  // A full disk: appends within what the checkpoint reserved still go in, none past it.
  fault_.SetDiskFull(true);
  for (int p = 0; p < kPartitions; ++p) {
    ASSERT_TRUE(Append(p, 30, 40).get().ok()) << "partition " << p;
  }
  absl::Status full = Append(0, 200, 70).get();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  fault_.SetDiskFull(false);
  Crash();
  Start(kPartitions + 1, WholeFileSystemSyncs());
  for (int p = 0; p < kPartitions; ++p) EXPECT_EQ(Data(p), Expected(p, 70)) << "partition " << p;
  EXPECT_EQ(Data(kPartitions), Expected(kPartitions, 41));
}

TEST_F(JournalTest, AFailedFileSystemSyncKeepsTheJournal) {
  constexpr int kPartitions = 5;
  const JournalOptions options = WholeFileSystemSyncs();
  Start(kPartitions, options);
  for (int p = 0; p < kPartitions; ++p) ASSERT_TRUE(Append(p, 20).get().ok());
  fault_.SetFailSync(true);
  EXPECT_FALSE(journal_->Checkpoint().ok());
  fault_.SetFailSync(false);
  EXPECT_GT(JournalFiles(), 0) << "kept for a restart to replay";
  // The next checkpoint writes out and syncs again.
  ASSERT_TRUE(journal_->Checkpoint().ok());
  EXPECT_EQ(JournalFiles(), 0);
  Crash();
  Start(kPartitions, options);
  for (int p = 0; p < kPartitions; ++p) EXPECT_EQ(Data(p), Expected(p, 20)) << "partition " << p;
}

TEST_F(JournalTest, ACrashDuringRecoveryRecoversAgain) {
  Start(3);
  for (int p = 0; p < 3; ++p) ASSERT_TRUE(Append(p, 20).get().ok());
  Crash();
  fs::resize_file(Segment(1), kSegmentHeaderBytes);
  // Recovery replays, then the server dies before the checkpoint after it: appended since go to
  // a new file, the recovered one stays.
  {
    JournalOptions options;
    options.key_root = (root_ / "log").string();
    options.checkpoint_ms = 3'600'000;
    auto journal = Journal::Open(fault_, (root_ / "journal").string(), options);
    ASSERT_TRUE(journal.ok());
    journal_ = std::move(*journal);
    LogOptions lo = log_options_;
    lo.journal = journal_;
    for (int p = 0; p < 3; ++p) {
      auto log = PartitionLog::Open(fault_, PartitionDir(p), lo, syncer_);
      ASSERT_TRUE(log.ok()) << log.status();
      logs_.push_back(std::move(*log));
    }
    // No RecoveryDone: the start did not finish.
    ASSERT_TRUE(Append(1, 5, 20).get().ok());
  }
  Crash();
  fs::resize_file(Segment(1), kSegmentHeaderBytes);
  Start(3);
  EXPECT_EQ(Data(0), Expected(0, 20));
  EXPECT_EQ(Data(1), Expected(1, 25));
  EXPECT_EQ(Data(2), Expected(2, 20));
}

TEST_F(JournalTest, ATornJournalTailIsCutAndWhatFollowsIgnored) {
  Start(2);
  ASSERT_TRUE(Append(0, 10).get().ok());
  ASSERT_TRUE(Append(1, 10).get().ok());
  Crash();
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(root_ / "journal")) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  {
    // Half an entry, as a power loss during its write leaves it.
    std::ofstream f(files[0], std::ios::app | std::ios::binary);
    f.write("\x11\x22\x33\x44\x10\x00\x00\x00\x05\x00t/0", 13);
  }
  // And a later file, written after the torn entry: nothing in it was acknowledged.
  fs::copy_file(files[0], root_ / "journal" / "00000000000000000099.wal");
  fs::resize_file(Segment(0), kSegmentHeaderBytes);
  Start(2);
  EXPECT_EQ(Data(0), Expected(0, 10));
  EXPECT_EQ(Data(1), Expected(1, 10));
  EXPECT_FALSE(fs::exists(root_ / "journal" / "00000000000000000099.wal"));
}

TEST_F(JournalTest, DamageBehindTheJournalIsStillDataLoss) {
  Start(1);
  ASSERT_TRUE(Append(0, 50).get().ok());
  ASSERT_TRUE(journal_->Checkpoint().ok());  // the segment is synced; the journal gone
  ASSERT_TRUE(Append(0, 10, 50).get().ok());
  Crash();
  {
    std::fstream f(Segment(0), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.write(std::string(40, '\0').data(), 40);
  }
  JournalOptions options;
  options.key_root = (root_ / "log").string();
  auto journal = Journal::Open(fault_, (root_ / "journal").string(), options);
  ASSERT_TRUE(journal.ok());
  LogOptions lo;
  lo.journal = std::move(*journal);
  auto log = PartitionLog::Open(fault_, PartitionDir(0), lo, syncer_);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
}

TEST_F(JournalTest, AFailedJournalSyncFailsTheAppendsWaitingOnIt) {
  Start(3);
  ASSERT_TRUE(Append(0, 1).get().ok());
  fault_.SetFailSync(true);
  auto a = Append(1, 2);
  auto b = Append(2, 2);
  EXPECT_FALSE(a.get().ok());
  EXPECT_FALSE(b.get().ok());
  fault_.SetFailSync(false);
  // Nothing more is acknowledged until a restart recovers from what is on disk.
  EXPECT_FALSE(Append(0, 1, 1).get().ok());
}

TEST_F(JournalTest, NoRoomForAJournalFileFailsTheAppendCleanly) {
  Start(1);
  ASSERT_TRUE(Append(0, 1).get().ok());  // the partition reserved room for more
  ASSERT_TRUE(journal_->Checkpoint().ok());  // the next append needs a new journal file
  fault_.SetDiskFull(true);
  auto a = Append(0, 3, 1);
  EXPECT_EQ(a.get().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(logs_[0]->end_offset(), 1u);
  fault_.SetDiskFull(false);
  ASSERT_TRUE(Append(0, 3, 1).get().ok());
  EXPECT_EQ(Data(0), Expected(0, 4));
  Crash();
  fs::resize_file(Segment(0), fs::file_size(Segment(0)) - 10);
  Start(1);
  EXPECT_EQ(Data(0), Expected(0, 4));
}

}  // namespace
}  // namespace nodata::log
