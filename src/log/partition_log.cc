#include "log/partition_log.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <limits>

#include "common/strings.h"
#include "common/status.h"
#include "common/time.h"

namespace nodata::log {

// A segment file and what is known about it. Held by shared_ptr: a reader keeps the segment
// alive outside the partition lock while a roll or retention may drop it from the list. Its files
// come from the FileCache; a reader or the sync job holds the handle it took until done.
struct PartitionLog::Segment {
  uint64_t base_offset = 0;
  uint64_t end_offset = 0;  // one past the last record written
  uint64_t size_bytes = 0;  // complete frames plus the header
  int64_t min_ingest_us = std::numeric_limits<int64_t>::max();
  int64_t max_ingest_us = std::numeric_limits<int64_t>::min();
  std::vector<IndexEntry> index;
  uint64_t last_indexed_position = 0;
  std::string path;
  // Sealed: complete, synced and immutable. Only the last segment is not, unless starting the
  // next one after a seal failed.
  bool sealed = false;

  bool empty() const { return end_offset == base_offset; }

  void NoteRecord(uint64_t offset, uint64_t position, int64_t ingest_us,
                  uint32_t interval_bytes) {
    if (index.empty() || position - last_indexed_position >= interval_bytes) {
      index.push_back(IndexEntry{static_cast<uint32_t>(offset - base_offset),
                                 static_cast<uint32_t>(position)});
      last_indexed_position = position;
    }
    min_ingest_us = std::min(min_ingest_us, ingest_us);
    max_ingest_us = std::max(max_ingest_us, ingest_us);
  }

  // Byte position from which a scan finds `offset`.
  uint64_t PositionFor(uint64_t offset) const {
    auto it = std::upper_bound(index.begin(), index.end(), offset - base_offset,
                               [](uint64_t rel, const IndexEntry& e) {
                                 return rel < e.relative_offset;
                               });
    if (it == index.begin()) return kSegmentHeaderBytes;
    return std::prev(it)->position;
  }
};

namespace {

// A scan reads this much at a time at least, and at most (the largest read buffer a thread keeps).
constexpr uint64_t kMinScanChunk = 64u << 10;
constexpr uint64_t kMaxScanChunk = 2u << 20;
// Read past what the limits ask for: a batch's last frame usually ends a little beyond them.
constexpr uint64_t kScanSlackBytes = 16u << 10;

// Reads frames sequentially from a file, in chunks.
class FrameScanner {
 public:
  enum class Result { kRecord, kEnd, kTorn, kCorrupt, kIoError };

  // Reads into `buffer` (whose contents it overwrites and which must outlive it), `chunk_bytes`
  // at a time: a reader that knows how much it wants reads it with one call, into memory it
  // reuses, instead of zero-filling a fresh buffer per scan (which, for the tens of thousands
  // of partitions a start recovers, was most of the start's time).
  FrameScanner(const RandomAccessFile& file, uint64_t position, uint64_t end, std::string& buffer,
               size_t chunk_bytes)
      : file_(file), position_(position), end_(end), buf_(buffer), chunk_(chunk_bytes) {}

  Result Next(DecodedRecord* record) {
    for (;;) {
      std::string_view avail(buf_.data() + consumed_, filled_ - consumed_);
      size_t frame_bytes = 0;
      if (!avail.empty()) {
        FrameResult r = DecodeFrame(avail, &frame_bytes, record);
        if (r == FrameResult::kOk) {
          frame_position_ = position_;
          frame_bytes_ = frame_bytes;
          consumed_ += frame_bytes;
          position_ += frame_bytes;
          return Result::kRecord;
        }
        if (r == FrameResult::kCorrupt) return Result::kCorrupt;
      }
      // Need more bytes.
      uint64_t file_pos = position_ + (filled_ - consumed_);
      if (file_pos >= end_) return avail.empty() ? Result::kEnd : Result::kTorn;
      std::memmove(buf_.data(), buf_.data() + consumed_, filled_ - consumed_);
      filled_ -= consumed_;
      consumed_ = 0;
      size_t want = chunk_;
      if (filled_ >= kFrameHeaderBytes) {  // the moved frame's header is at the front now
        uint32_t body;
        std::memcpy(&body, buf_.data() + 4, 4);
        want = std::max<size_t>(want, kFrameHeaderBytes + body);
      }
      if (buf_.size() < want) buf_.resize(want);
      size_t n = std::min<uint64_t>(want - filled_, end_ - file_pos);
      auto read = file_.Read(file_pos, n, buf_.data() + filled_);
      if (!read.ok()) {
        io_status_ = read.status();
        return Result::kIoError;
      }
      if (*read == 0) return Result::kTorn;
      filled_ += *read;
    }
  }

  uint64_t position() const { return position_; }  // where the next frame starts
  uint64_t frame_position() const { return frame_position_; }
  const absl::Status& io_status() const { return io_status_; }

 private:
  const RandomAccessFile& file_;
  uint64_t position_;
  const uint64_t end_;
  std::string& buf_;
  const size_t chunk_;  // bytes per read (more when one frame is longer)
  size_t filled_ = 0;
  size_t consumed_ = 0;
  uint64_t frame_position_ = 0;
  size_t frame_bytes_ = 0;
  absl::Status io_status_;
};

// The read buffer of a scan: the thread's own, kept from scan to scan, unless a scan further up
// this thread's stack (a visitor that scans again) holds it; then a fresh one.
class ScanBuffer {
 public:
  ScanBuffer() : owns_thread_buffer_(!thread_buffer_busy_) { thread_buffer_busy_ = true; }
  ~ScanBuffer() {
    if (owns_thread_buffer_) thread_buffer_busy_ = false;
  }
  ScanBuffer(const ScanBuffer&) = delete;
  ScanBuffer& operator=(const ScanBuffer&) = delete;
  std::string& bytes() { return owns_thread_buffer_ ? thread_buffer_ : own_; }

 private:
  static thread_local std::string thread_buffer_;
  static thread_local bool thread_buffer_busy_;
  const bool owns_thread_buffer_;
  std::string own_;
};
thread_local std::string ScanBuffer::thread_buffer_;
thread_local bool ScanBuffer::thread_buffer_busy_ = false;

// True when a valid frame whose offset is at least `min_offset` starts anywhere in `bytes`:
// damage followed by intact records, as opposed to a torn tail.
bool ValidFrameFollows(std::string_view bytes, uint64_t min_offset) {
  constexpr uint64_t kWindow = 1u << 20;
  DecodedRecord record;
  for (size_t i = 0; i + kFrameHeaderBytes + kMinBodyBytes <= bytes.size(); ++i) {
    uint64_t offset;
    std::memcpy(&offset, bytes.data() + i + kFrameHeaderBytes, 8);
    if (offset < min_offset || offset - min_offset >= kWindow) continue;
    size_t frame_bytes;
    if (DecodeFrame(bytes.substr(i), &frame_bytes, &record) == FrameResult::kOk) return true;
  }
  return false;
}

absl::Status Corrupt(const std::string& path, uint64_t position, std::string_view what) {
  return absl::DataLossError(
      StrCat(path, ": ", what, " at byte ", position,
                   "; the log is damaged before its tail, so it is not truncated"));
}

// The directory `dir` is in.
std::string ParentDir(std::string_view dir) {
  const size_t slash = dir.rfind('/');
  if (slash == std::string_view::npos) return ".";
  return slash == 0 ? "/" : std::string(dir.substr(0, slash));
}

}  // namespace

PartitionLog::PartitionLog(FileSystem& fs, std::string dir, LogOptions options, Syncer& syncer)
    : fs_(fs),
      dir_(std::move(dir)),
      options_(std::move(options)),
      syncer_(syncer),
      files_(options_.files ? options_.files
                            : std::make_shared<FileCache>(fs, std::numeric_limits<size_t>::max())) {}

absl::StatusOr<std::shared_ptr<RandomAccessFile>> PartitionLog::ReaderOf(const Segment& seg) const {
  if (retired_) return absl::NotFoundError(StrCat(dir_, ": the partition was deleted"));
  return files_->Reader(seg.path);
}

absl::StatusOr<std::shared_ptr<WritableFile>> PartitionLog::WriterOf(const Segment& seg) const {
  if (retired_) return absl::NotFoundError(StrCat(dir_, ": the partition was deleted"));
  return files_->Writer(seg.path);
}

absl::StatusOr<std::shared_ptr<WritableFile>> PartitionLog::SyncWriterOf(const Segment& active) const {
  if (pinned_writer_) return pinned_writer_;
  return WriterOf(active);
}

void PartitionLog::ForgetFilesLocked() {
  for (const auto& seg : segments_) files_->Forget(seg->path);
}

void PartitionLog::Retire() {
  absl::MutexLock lock(&mu_);
  retired_ = true;
  ForgetFilesLocked();
}

absl::StatusOr<std::unique_ptr<PartitionLog>> PartitionLog::Open(FileSystem& fs, std::string dir,
                                                                 LogOptions options,
                                                                 Syncer& syncer,
                                                                 uint64_t min_start_offset) {
  std::unique_ptr<PartitionLog> log(
      new PartitionLog(fs, std::move(dir), std::move(options), syncer));
  if (log->options_.journal && log->options_.fsync == FsyncPolicy::kAlways) {
    log->member_ = log->options_.journal->Join(log.get(), log->dir_);
  }
  RETURN_IF_ERROR(log->Recover(min_start_offset));
  return log;
}

PartitionLog::~PartitionLog() {
  if (member_) {
    bool synced;
    {
      absl::MutexLock lock(&mu_);
      synced = retired_ || (flushed_offset_ >= next_offset_ && tail_.empty());
    }
    // Before holding mu_: a journal callback may hold the member and wait for mu_.
    Journal::Leave(*member_, synced);
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](bool* running) { return !*running; }, &sync_running_));
  // A stopped partition holds no space it has not written.
  if (segments_.empty()) return;
  // What is written: the tail (journal only) is not, and a restart restores it from the journal.
  if (Segment& active = *segments_.back();
      !retired_ && !active.sealed && reserved_end_ > active.size_bytes) {
    if (auto writer = WriterOf(active); writer.ok()) {
      (*writer)->Truncate(active.size_bytes - tail_.size()).IgnoreError();
    }
  }
  ForgetFilesLocked();
}

absl::Status PartitionLog::Recover(uint64_t min_start_offset) {
  const bool exists = fs_.Exists(dir_);
  std::vector<std::string> names;
  if (exists) {
    ASSIGN_OR_RETURN(names, fs_.ListDir(dir_));
  }
  std::vector<uint64_t> bases;
  std::vector<uint64_t> index_bases;
  for (const std::string& name : names) {
    uint64_t base;
    if (ParseSegmentFileName(name, &base)) {
      bases.push_back(base);
    } else if (ParseIndexFileName(name, &base)) {
      index_bases.push_back(base);
    } else if (name.ends_with(".tmp")) {
      RETURN_IF_ERROR(fs_.RemoveFile(StrCat(dir_, "/", name)));
      ++recovery_.removed_files;
    }
  }
  std::sort(bases.begin(), bases.end());
  std::vector<JournalRecords> replay;
  if (member_) {
    ASSIGN_OR_RETURN(replay, options_.journal->Recovered(*member_));
  }
  // An index whose segment is gone was left by a deletion cut short.
  for (uint64_t base : index_bases) {
    if (!std::binary_search(bases.begin(), bases.end(), base)) {
      RETURN_IF_ERROR(fs_.RemoveFile(StrCat(dir_, "/", IndexFileName(base))));
      ++recovery_.removed_files;
    }
  }

  absl::MutexLock lock(&mu_);
  if (!replay.empty()) {
    journal_floor_ = replay.front().first_offset;
    journal_end_ = replay.back().first_offset + replay.back().count;
  }
  if (bases.empty()) {
    files_pending_ = !exists;
    RETURN_IF_ERROR(StartSegment(min_start_offset));
    next_offset_ = synced_offset_ = flushed_offset_ = min_start_offset;
    end_.store(next_offset_, std::memory_order_release);
    return ReplayJournal(std::move(replay));
  }
  for (size_t i = 0; i < bases.size(); ++i) {
    auto seg = std::make_shared<Segment>();
    seg->base_offset = bases[i];
    seg->path = StrCat(dir_, "/", SegmentFileName(bases[i]));
    if (i + 1 < bases.size()) {
      RETURN_IF_ERROR(LoadSealedSegment(*seg, bases[i + 1]));
    } else {
      RETURN_IF_ERROR(RecoverLastSegment(*seg));
    }
    segments_.push_back(std::move(seg));
  }
  next_offset_ = segments_.back()->end_offset;
  synced_offset_ = flushed_offset_ = next_offset_;
  end_.store(next_offset_, std::memory_order_release);
  if (next_offset_ < min_start_offset) {
    if (next_offset_ != segments_.front()->base_offset) {
      return absl::DataLossError(
          StrCat(dir_, ": the log ends at offset ", next_offset_, " but offsets up to ",
                 min_start_offset, " are already stored in the cold tier"));
    }
    // Only empty segments, behind the cold tier: start over where the cold tier ends.
    for (const auto& seg : segments_) {
      files_->Forget(seg->path);
      RETURN_IF_ERROR(fs_.RemoveFile(seg->path));
      ++recovery_.removed_files;
    }
    segments_.clear();
    RETURN_IF_ERROR(StartSegment(min_start_offset));
    next_offset_ = synced_offset_ = flushed_offset_ = min_start_offset;
    end_.store(next_offset_, std::memory_order_release);
  }
  return ReplayJournal(std::move(replay));
}

absl::Status PartitionLog::ReplayJournal(std::vector<JournalRecords> records) {
  if (records.empty()) return absl::OkStatus();
  // A crash left records in the journal only: entries made since the last checkpoint, this
  // directory's and those above it, may be in the page cache only too.
  chain_unsynced_ = true;
  if (options_.dir_syncs) {
    std::vector<std::string> chain = Ancestors();
    chain.insert(chain.begin(), dir_);
    chain.pop_back();  // the root's own entry is not the log's to sync
    NoteChainChanged(chain);
  }
  // What the segment holds from the journal's first record on may be in the page cache only (a
  // crash that was not a power loss keeps it): the checkpoint after recovery syncs it.
  flushed_offset_ = std::min(flushed_offset_, journal_floor_);
  for (const JournalRecords& r : records) {
    const uint64_t end = r.first_offset + r.count;
    if (end <= next_offset_) continue;
    if (r.first_offset > next_offset_) {
      return absl::DataLossError(
          StrCat(dir_, ": the log ends at offset ", next_offset_, " but the journal resumes at ",
                 r.first_offset, "; the records in between are lost"));
    }
    // The journal verified every frame; skip those the segment kept.
    std::string_view frames = r.frames;
    for (uint64_t o = r.first_offset; o < next_offset_; ++o) {
      uint32_t body;
      std::memcpy(&body, frames.data() + 4, sizeof body);
      frames.remove_prefix(kFrameHeaderBytes + body);
    }
    const size_t count = end - next_offset_;
    int64_t ingest_us;
    std::memcpy(&ingest_us, frames.data() + kFrameHeaderBytes + 16, sizeof ingest_us);
    RETURN_IF_ERROR(AppendFramesLocked(frames, count, ingest_us, /*journal=*/false));
    recovery_.replayed_records += count;
  }
  // Durable in the journal files recovery found, which stay until that checkpoint.
  synced_offset_ = next_offset_;
  return FlushTailLocked(next_offset_);
}

absl::Status PartitionLog::LoadSealedSegment(Segment& seg, uint64_t expected_end) {
  seg.sealed = true;
  ASSIGN_OR_RETURN(std::shared_ptr<RandomAccessFile> reader, ReaderOf(seg));
  ASSIGN_OR_RETURN(uint64_t file_size, reader->Size());
  std::string index_path = StrCat(dir_, "/", IndexFileName(seg.base_offset));
  if (fs_.Exists(index_path)) {
    auto bytes = fs_.ReadFile(index_path);
    if (bytes.ok()) {
      auto index = DecodeIndex(*bytes);
      if (index.ok() && index->base_offset == seg.base_offset &&
          index->end_offset == expected_end && index->log_bytes == file_size) {
        seg.end_offset = index->end_offset;
        seg.size_bytes = file_size;
        seg.min_ingest_us = index->min_ingest_us;
        seg.max_ingest_us = index->max_ingest_us;
        seg.index = std::move(index->entries);
        return absl::OkStatus();
      }
    }
  }
  // No usable index: verify the whole segment and rebuild it.
  std::string header(kSegmentHeaderBytes, '\0');
  ASSIGN_OR_RETURN(size_t got, reader->Read(0, header.size(), header.data()));
  if (got < kSegmentHeaderBytes || !CheckSegmentHeader(header, seg.base_offset)) {
    return Corrupt(seg.path, 0, "bad segment header");
  }
  ScanBuffer buffer;
  FrameScanner scanner(*reader, kSegmentHeaderBytes, file_size, buffer.bytes(),
                       std::clamp<uint64_t>(file_size, kMinScanChunk, kMaxScanChunk));
  DecodedRecord record;
  uint64_t expected = seg.base_offset;
  for (;;) {
    auto r = scanner.Next(&record);
    if (r == FrameScanner::Result::kEnd) break;
    if (r == FrameScanner::Result::kIoError) return scanner.io_status();
    if (r != FrameScanner::Result::kRecord) {
      return Corrupt(seg.path, scanner.position(), "damaged record in a sealed segment");
    }
    if (record.offset.value() != expected) {
      return Corrupt(seg.path, scanner.frame_position(),
                     StrCat("offset ", record.offset, " where ", expected, " belongs"));
    }
    seg.NoteRecord(expected, scanner.frame_position(), record.ingest_time_us,
                   options_.index_interval_bytes);
    ++expected;
  }
  if (expected != expected_end) {
    return absl::DataLossError(StrCat(seg.path, ": segment ends at offset ", expected,
                                            " but the next segment starts at ", expected_end));
  }
  seg.end_offset = expected;
  seg.size_bytes = file_size;
  ++recovery_.rebuilt_indexes;
  SegmentIndex index{seg.base_offset, seg.end_offset, seg.size_bytes, seg.min_ingest_us,
                     seg.max_ingest_us, seg.index};
  // Best effort: without the file the next start scans the segment again.
  fs_.WriteFileAtomic(index_path, EncodeIndex(index)).IgnoreError();
  return absl::OkStatus();
}

absl::Status PartitionLog::RecoverLastSegment(Segment& seg) {
  ASSIGN_OR_RETURN(std::shared_ptr<RandomAccessFile> reader, ReaderOf(seg));
  ASSIGN_OR_RETURN(uint64_t file_size, reader->Size());
  ASSIGN_OR_RETURN(std::shared_ptr<WritableFile> writer, WriterOf(seg));
  std::string header(kSegmentHeaderBytes, '\0');
  ASSIGN_OR_RETURN(size_t got, reader->Read(0, header.size(), header.data()));
  if (got < kSegmentHeaderBytes || !CheckSegmentHeader(header, seg.base_offset)) {
    if (file_size > kSegmentHeaderBytes && seg.base_offset < journal_floor_) {
      return Corrupt(seg.path, 0, "bad segment header");
    }
    // Created but its header never reached the disk (or, with the journal holding all of its
    // records, nothing of it is trusted): write it again.
    RETURN_IF_ERROR(writer->Truncate(0));
    RETURN_IF_ERROR(writer->Append(EncodeSegmentHeader(seg.base_offset)));
    RETURN_IF_ERROR(writer->Sync());
    recovery_.truncated_bytes += file_size;
    seg.end_offset = seg.base_offset;
    seg.size_bytes = kSegmentHeaderBytes;
    return absl::OkStatus();
  }

  ScanBuffer buffer;
  FrameScanner scanner(*reader, kSegmentHeaderBytes, file_size, buffer.bytes(),
                       std::clamp<uint64_t>(file_size, kMinScanChunk, kMaxScanChunk));
  DecodedRecord record;
  uint64_t expected = seg.base_offset;
  uint64_t good_end = kSegmentHeaderBytes;
  for (;;) {
    auto r = scanner.Next(&record);
    if (r == FrameScanner::Result::kEnd) break;
    if (r == FrameScanner::Result::kIoError) return scanner.io_status();
    if (r == FrameScanner::Result::kRecord && record.offset.value() == expected) {
      seg.NoteRecord(expected, scanner.frame_position(), record.ingest_time_us,
                     options_.index_interval_bytes);
      ++expected;
      good_end = scanner.position();
      continue;
    }
    // A torn or damaged frame at good_end. A torn tail has nothing valid after it; damage with
    // intact records behind it must not be cut away, unless the journal holds them: then what
    // follows was never synced and the journal restores it.
    if (expected >= journal_floor_ && expected < journal_end_) break;
    std::string rest(file_size - good_end, '\0');
    ASSIGN_OR_RETURN(size_t n, reader->Read(good_end, rest.size(), rest.data()));
    rest.resize(n);
    size_t skip = (r == FrameScanner::Result::kRecord) ? 1 : 0;
    if (ValidFrameFollows(std::string_view(rest).substr(std::min(skip, rest.size())),
                          expected)) {
      return Corrupt(seg.path, good_end, "damaged record followed by intact ones");
    }
    break;
  }
  if (good_end < file_size) {
    RETURN_IF_ERROR(writer->Truncate(good_end));
    RETURN_IF_ERROR(writer->Sync());
    recovery_.truncated_bytes += file_size - good_end;
  } else {
    // Same size: gives back what the last run reserved and a crash left allocated.
    RETURN_IF_ERROR(writer->Truncate(good_end));
  }
  seg.end_offset = expected;
  seg.size_bytes = good_end;
  return absl::OkStatus();
}

absl::Status PartitionLog::StartSegment(uint64_t base_offset) {
  auto seg = std::make_shared<Segment>();
  seg->base_offset = base_offset;
  seg->end_offset = base_offset;
  seg->path = StrCat(dir_, "/", SegmentFileName(base_offset));
  if (files_pending_) {
    seg->size_bytes = kSegmentHeaderBytes;
    reserved_end_ = 0;
    segments_.push_back(std::move(seg));
    return absl::OkStatus();
  }
  files_->Forget(seg->path);  // a new file: nothing cached under its path is of it
  ASSIGN_OR_RETURN(std::shared_ptr<WritableFile> writer, WriterOf(*seg));
  // Not synced here: the first sync of its records syncs the header with them and then the
  // directory entry, before anything in it is acknowledged (a crash before that leaves an
  // empty segment or none, which recovery handles). Creating a topic costs no fsync per
  // partition.
  absl::Status s = writer->Truncate(0);
  if (s.ok()) s = writer->Append(EncodeSegmentHeader(base_offset));
  if (!s.ok()) {
    writer.reset();
    files_->Forget(seg->path);
    fs_.RemoveFile(seg->path).IgnoreError();
    return s;
  }
  seg->size_bytes = kSegmentHeaderBytes;
  reserved_end_ = 0;
  ++segments_started_;
  segments_.push_back(std::move(seg));
  return absl::OkStatus();
}

absl::Status PartitionLog::CreateFilesLocked() {
  // The directories this adds: each is a new entry in its parent.
  std::vector<std::string> created;
  for (std::string d = dir_; !fs_.Exists(d);) {
    created.push_back(d);
    std::string up = ParentDir(d);
    if (up == d) break;
    d = std::move(up);
  }
  RETURN_IF_ERROR(fs_.CreateDirs(dir_));
  chain_unsynced_ = true;
  NoteChainChanged(created);
  // The placeholder becomes the file; should that fail, it stays to try again.
  std::shared_ptr<Segment> placeholder = std::move(segments_.back());
  segments_.pop_back();
  files_pending_ = false;
  absl::Status s = StartSegment(placeholder->base_offset);
  if (!s.ok()) {
    files_pending_ = true;
    segments_.push_back(std::move(placeholder));
  }
  return s;
}

std::vector<std::string> PartitionLog::Ancestors() const {
  std::vector<std::string> out;
  const std::string& root = options_.dir_root;
  const bool under_root = !root.empty() && dir_.size() > root.size() && dir_.starts_with(root) &&
                          dir_[root.size()] == '/';
  for (std::string d = ParentDir(dir_);; d = ParentDir(d)) {
    out.push_back(d);
    if (!under_root || d.size() <= root.size() || ParentDir(d) == d) break;
  }
  return out;
}

void PartitionLog::NoteChainChanged(const std::vector<std::string>& created) const {
  if (!options_.dir_syncs) return;
  for (const std::string& d : created) options_.dir_syncs->Changed(ParentDir(d));
}

absl::Status PartitionLog::SyncDirEntries(bool chain) const {
  if (chain) {
    for (const std::string& up : Ancestors()) {
      RETURN_IF_ERROR(options_.dir_syncs ? options_.dir_syncs->Sync(up) : fs_.SyncDir(up));
    }
  }
  return fs_.SyncDir(dir_);
}

absl::Status PartitionLog::FlushTailLocked(uint64_t upto) const {
  // Only records durable in the journal: a segment never holds, even in the page cache, a record
  // that a crash could take from the journal, so recovery may trust what it finds there.
  upto = std::min(upto, synced_offset_);
  size_t bytes = 0;
  uint64_t end = tail_first_offset_;
  size_t marks = 0;
  for (const auto& [mark_end, mark_bytes] : tail_marks_) {
    if (mark_end > upto) break;
    end = mark_end;
    bytes = mark_bytes;
    ++marks;
  }
  if (bytes == 0) return absl::OkStatus();
  if (!tail_error_.ok()) return tail_error_;
  auto writer = WriterOf(*segments_.back());
  absl::Status s = writer.ok() ? (*writer)->Append(std::string_view(tail_).substr(0, bytes))
                               : writer.status();
  if (!s.ok()) {
    // The file may hold part of the tail: nothing more goes in until a restart recovers the
    // partition from its segments and the journal.
    tail_error_ = absl::Status(s.code(), StrCat(s.message(),
                                                "; the partition refuses writes until the server "
                                                "restarts and recovers it"));
    FailLocked(tail_error_, /*keep_first=*/true);
    return tail_error_;
  }
  tail_.erase(0, bytes);
  tail_marks_.erase(tail_marks_.begin(), tail_marks_.begin() + static_cast<ptrdiff_t>(marks));
  for (auto& mark : tail_marks_) mark.second -= bytes;
  tail_first_offset_ = end;
  if (tail_.empty() && tail_.capacity() > 4 * kTailFlushBytes) std::string().swap(tail_);
  return absl::OkStatus();
}

absl::Status PartitionLog::WaitTailDurableLocked() {
  if (tail_.empty() || tail_marks_.back().first <= synced_offset_) return absl::OkStatus();
  // Durable soon (the journal's writer needs none of this partition's locks); its callback
  // may come later, so the offset is set here.
  RETURN_IF_ERROR(options_.journal->WaitDurable(last_journal_lsn_));
  synced_offset_ = std::max(synced_offset_, tail_marks_.back().first);
  return absl::OkStatus();
}

absl::Status PartitionLog::SealActive() {
  Segment& seg = *segments_.back();
  if (seg.sealed) return absl::OkStatus();
  RETURN_IF_ERROR(WaitTailDurableLocked());
  RETURN_IF_ERROR(FlushTailLocked(next_offset_));
  ASSIGN_OR_RETURN(std::shared_ptr<WritableFile> writer, SyncWriterOf(seg));
  RETURN_IF_ERROR(writer->Truncate(seg.size_bytes));  // releases reserved space
  absl::Status s = writer->Sync();
  if (s.ok() && (dir_synced_at_ < segments_started_ || chain_unsynced_)) {
    s = SyncDirEntries(chain_unsynced_);
  }
  if (!s.ok()) {
    FailLocked(s);
    return s;
  }
  dir_synced_at_ = segments_started_;
  chain_unsynced_ = false;
  seg.sealed = true;
  pinned_writer_.reset();
  files_->ForgetWriter(seg.path);
  synced_offset_ = std::max(synced_offset_, seg.end_offset);
  flushed_offset_ = std::max(flushed_offset_, seg.end_offset);
  SegmentIndex index{seg.base_offset, seg.end_offset, seg.size_bytes, seg.min_ingest_us,
                     seg.max_ingest_us, seg.index};
  // Written in the background, off the append path. Best effort: a missing index is rebuilt by
  // the next start. Captures no `this`: the log may be closed before the job runs.
  syncer_.Schedule([fs = &fs_, path = StrCat(dir_, "/", IndexFileName(seg.base_offset)),
                    bytes = EncodeIndex(index)] { fs->WriteFileAtomic(path, bytes).IgnoreError(); });
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> PartitionLog::Append(absl::Span<const RecordView> records,
                                               uint64_t* journal_lsn) {
  if (records.empty()) return absl::InvalidArgumentError("empty append");
  size_t batch_bytes = 0;
  for (const RecordView& r : records) batch_bytes += FrameSize(r);

  Deferred ready;  // runs after the lock is released
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  scratch_.clear();
  scratch_.reserve(batch_bytes);
  const uint64_t first = next_offset_;
  for (size_t i = 0; i < records.size(); ++i) EncodeFrame(first + i, records[i], &scratch_);
  absl::Status s = AppendFramesLocked(scratch_, records.size(), records.front().ingest_time_us,
                                      /*journal=*/true);
  if (scratch_.capacity() > (8u << 20)) std::string().swap(scratch_);
  RETURN_IF_ERROR(s);
  if (journal_lsn != nullptr) *journal_lsn = member_ ? last_journal_lsn_ : 0;
  CollectReadableLocked(&ready);
  return first;
}

absl::Status PartitionLog::AppendFramesLocked(std::string_view frames, size_t count,
                                              int64_t now_us, bool journal) {
  const size_t batch_bytes = frames.size();
  if (files_pending_) RETURN_IF_ERROR(CreateFilesLocked());
  Segment* active = segments_.back().get();
  bool roll = active->sealed ||
              (!active->empty() &&
               (active->size_bytes + batch_bytes > options_.segment_bytes ||
                now_us - active->min_ingest_us >= options_.segment_ms * 1000));
  if (roll) {
    RETURN_IF_ERROR(SealActive());
    RETURN_IF_ERROR(StartSegment(next_offset_));
    active = segments_.back().get();
  }
  std::shared_ptr<WritableFile> file;
  if (!member_) {
    ASSIGN_OR_RETURN(file, WriterOf(*active));
  }
  const uint64_t before = active->size_bytes;
  // Reserve first, so that a full disk fails the batch before any byte of it is written.
  if (const uint64_t need = before + batch_bytes; need > reserved_end_) {
    if (!file) {
      ASSIGN_OR_RETURN(file, WriterOf(*active));
    }
    const auto [smallest, largest] = ReserveSteps();
    // About a second of this partition's writes, measured since its last reservation.
    uint64_t step = smallest;
    if (reserved_end_ != 0 && now_us > last_reserve_us_) {
      const double per_second = static_cast<double>(need - reserved_from_) * 1e6 /
                                static_cast<double>(now_us - last_reserve_us_);
      step = std::clamp<uint64_t>(std::bit_ceil(static_cast<uint64_t>(
                                      std::min(per_second, static_cast<double>(largest)))),
                                  smallest, largest);
    } else if (reserved_end_ != 0) {
      step = largest;  // more than a reservation within the clock's resolution
    }
    RETURN_IF_ERROR(ReserveLocked(*file, (need + step - 1) / step * step, before, now_us));
  }
  last_append_us_ = now_us;
  idle_ = false;

  const uint64_t first = next_offset_;
  if (member_) {
    // With the journal: journaled now, written to the segment behind (the tail), so that an
    // append costs no write to the partition's file. A crash loses the tail, which the journal
    // restores.
    if (journal) {
      RETURN_IF_ERROR(options_.journal->Append(*member_, first, static_cast<uint32_t>(count),
                                               frames, &last_journal_lsn_));
    }
    if (tail_.empty()) tail_first_offset_ = first;
    tail_.append(frames);
    tail_marks_.emplace_back(first + count, tail_.size());
  } else {
    absl::Status s = file->Append(frames);
    if (!s.ok()) {
      reserved_end_ = 0;  // the undo gives the reservation back
      absl::Status undo = file->Truncate(before);
      if (!undo.ok()) {
        FailLocked(absl::InternalError(
            StrCat("cannot undo a failed append (", undo.message(), "): ", s.message())));
      }
      return s;
    }
  }
  // Frame boundaries and ingest times are read back from the encoded frames.
  uint64_t within = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t body;
    std::memcpy(&body, frames.data() + within + 4, sizeof body);
    int64_t ingest_us;
    std::memcpy(&ingest_us, frames.data() + within + kFrameHeaderBytes + 16, sizeof ingest_us);
    active->NoteRecord(first + i, before + within, ingest_us, options_.index_interval_bytes);
    within += kFrameHeaderBytes + body;
  }
  active->size_bytes = before + within;
  active->end_offset = first + count;
  next_offset_ = active->end_offset;
  end_.store(next_offset_, std::memory_order_release);
  // Written, not yet synced: the sync goes through this descriptor, which sees any writeback
  // error of these pages (one opened after the error would not), so the cache may not close it.
  // With the journal the segment is synced by a checkpoint, possibly much later: the partition
  // holds no descriptor until then (a writeback error no descriptor has seen yet is reported to
  // the next fdatasync on any of them).
  if (options_.fsync != FsyncPolicy::kNever && !member_) pinned_writer_ = std::move(file);
  return absl::OkStatus();
}

void PartitionLog::WhenReadable(uint64_t offset, std::weak_ptr<const void> owner,
                                absl::AnyInvocable<void() &&> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (offset >= AckedLocked() && failed_.ok()) {
      std::erase_if(readable_waiters_, [](const ReadableWaiter& w) { return w.owner.expired(); });
      readable_waiters_.push_back(ReadableWaiter{offset, std::move(owner), std::move(fn)});
      return;
    }
  }
  std::move(fn)();
}

void PartitionLog::WakeReaders() {
  Deferred ready;
  absl::MutexLock lock(&mu_);
  for (auto& w : readable_waiters_) ready.fns.push_back(std::move(w.fn));
  readable_waiters_.clear();
}

void PartitionLog::FailLocked(absl::Status status, bool keep_first) const {
  if (keep_first && !failed_.ok()) return;
  failed_ = std::move(status);
  if (options_.on_failure) options_.on_failure(failed_);
}

void PartitionLog::CollectReadableLocked(Deferred* ready) {
  if (readable_waiters_.empty()) return;
  const uint64_t acked = AckedLocked();
  const bool failed = !failed_.ok();
  auto keep = readable_waiters_.begin();
  for (auto it = readable_waiters_.begin(); it != readable_waiters_.end(); ++it) {
    if (it->owner.expired()) continue;  // its reader is gone
    if (failed || it->offset < acked) {
      ready->fns.push_back(std::move(it->fn));
    } else {
      if (keep != it) *keep = std::move(*it);
      ++keep;
    }
  }
  readable_waiters_.erase(keep, readable_waiters_.end());
}

uint64_t PartitionLog::end_offset() const { return end_.load(std::memory_order_acquire); }

uint64_t PartitionLog::acked_end() const {
  absl::MutexLock lock(&mu_);
  return options_.fsync == FsyncPolicy::kAlways ? synced_offset_ : next_offset_;
}

void PartitionLog::WhenAcked(uint64_t end_offset, absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status now;
  {
    absl::MutexLock lock(&mu_);
    uint64_t acked = options_.fsync == FsyncPolicy::kAlways ? synced_offset_ : next_offset_;
    if (end_offset > acked) {
      if (failed_.ok()) {
        waiters_.push_back(Waiter{end_offset, std::move(done)});
        // With the journal, its sync acknowledges (JournalDurable).
        if (!member_ && !sync_running_) {
          sync_running_ = true;
          syncer_.Schedule([this] { RunSync(); });
        }
        return;
      }
      now = failed_;
    }
  }
  std::move(done)(now);
}

void PartitionLog::CollectAckedLocked(std::vector<Waiter>* ready) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->end_offset <= synced_offset_) {
      ready->push_back(std::move(*it));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void PartitionLog::RunSync() {
  for (;;) {
    std::shared_ptr<WritableFile> writer;
    absl::Status open_error;  // the file could not be opened to sync it
    uint64_t target = 0;
    uint64_t from = 0;
    uint64_t started = 0;  // segments started as of `target`
    bool sync_dir = false;  // one of them has a directory entry not yet synced
    bool sync_parent = false;  // so has the directory itself, or one above it
    bool finished = false;
    std::vector<Waiter> ready;
    {
      Deferred readable;
      absl::MutexLock lock(&mu_);
      CollectAckedLocked(&ready);
      CollectReadableLocked(&readable);
      if (waiters_.empty()) {
        sync_running_ = false;  // from here on `this` may be destroyed
        finished = true;
      } else {
        target = next_offset_;
        from = synced_offset_;
        started = segments_started_;
        sync_parent = chain_unsynced_;
        sync_dir = dir_synced_at_ < started || sync_parent;
        if (const Segment& active = *segments_.back(); active.sealed) {
          // The active segment was sealed (and synced by the seal) and no new one could be
          // started: everything written is durable.
          synced_offset_ = std::max(synced_offset_, next_offset_);
        } else {
          auto opened = SyncWriterOf(active);
          if (opened.ok()) {
            writer = *std::move(opened);
          } else {
            open_error = opened.status();
          }
        }
      }
    }
    for (Waiter& w : ready) std::move(w.done)(absl::OkStatus());
    if (finished) return;
    if (!writer && open_error.ok()) continue;
    const int64_t start = MonotonicNanos();
    absl::Status s = writer ? writer->Sync() : open_error;
    if (s.ok() && sync_dir) s = SyncDirEntries(sync_parent);
    const double seconds = static_cast<double>(MonotonicNanos() - start) / 1e9;
    std::vector<Waiter> failed;
    {
      Deferred ready;
      absl::MutexLock lock(&mu_);
      if (s.ok()) {
        if (sync_dir) dir_synced_at_ = std::max(dir_synced_at_, started);
        if (sync_parent) chain_unsynced_ = false;
        synced_offset_ = std::max(synced_offset_, target);
        flushed_offset_ = std::max(flushed_offset_, target);
        if (synced_offset_ >= next_offset_) pinned_writer_.reset();
      } else {
        FailLocked(absl::Status(s.code(), StrCat(s.message(),
                                                 "; the partition refuses writes until the "
                                                 "server restarts and recovers it")));
        for (Waiter& w : waiters_) failed.push_back(std::move(w));
        waiters_.clear();
        sync_running_ = false;
      }
      CollectReadableLocked(&ready);
    }
    if (!s.ok()) {
      for (Waiter& w : failed) std::move(w.done)(s);
      return;
    }
    if (options_.on_sync) options_.on_sync(seconds, target - from);
  }
}

absl::Status PartitionLog::Sync() {
  std::shared_ptr<WritableFile> writer;
  uint64_t target;
  uint64_t started;
  bool sync_dir;
  bool sync_parent;
  {
    absl::MutexLock lock(&mu_);
    if (!failed_.ok()) return failed_;
    target = next_offset_;
    started = segments_started_;
    sync_parent = chain_unsynced_;
    sync_dir = dir_synced_at_ < started || sync_parent;
    if (segments_.back()->sealed || flushed_offset_ >= target) return absl::OkStatus();
    if (member_) {
      RETURN_IF_ERROR(WaitTailDurableLocked());
      RETURN_IF_ERROR(FlushTailLocked(target));
    }
    ASSIGN_OR_RETURN(writer, SyncWriterOf(*segments_.back()));
  }
  absl::Status s = writer->Sync();
  if (s.ok() && sync_dir) s = SyncDirEntries(sync_parent);
  Deferred ready;
  absl::MutexLock lock(&mu_);
  if (!s.ok()) {
    FailLocked(s);
    CollectReadableLocked(&ready);
    return s;
  }
  if (sync_dir) dir_synced_at_ = std::max(dir_synced_at_, started);
  if (sync_parent) chain_unsynced_ = false;
  synced_offset_ = std::max(synced_offset_, target);
  flushed_offset_ = std::max(flushed_offset_, target);
  if (synced_offset_ >= next_offset_) pinned_writer_.reset();
  std::vector<Waiter> acked;
  CollectAckedLocked(&acked);
  CollectReadableLocked(&ready);
  if (!acked.empty()) {
    ready.fns.push_back([acked = std::move(acked)]() mutable {
      for (Waiter& w : acked) std::move(w.done)(absl::OkStatus());
    });
  }
  return absl::OkStatus();
}

void PartitionLog::JournalDurable(uint64_t end_offset) {
  std::vector<Waiter> acked;
  {
    Deferred ready;
    absl::MutexLock lock(&mu_);
    synced_offset_ = std::max(synced_offset_, std::min(end_offset, next_offset_));
    // Written out in pieces of this size at least: one write per many small appends.
    if (tail_.size() >= kTailFlushBytes) FlushTailLocked(synced_offset_).IgnoreError();
    CollectAckedLocked(&acked);
    CollectReadableLocked(&ready);
  }
  for (Waiter& w : acked) std::move(w.done)(absl::OkStatus());
}

void PartitionLog::JournalFailed(const absl::Status& status) {
  std::vector<Waiter> failed;
  {
    Deferred ready;
    absl::MutexLock lock(&mu_);
    FailLocked(status, /*keep_first=*/true);
    for (Waiter& w : waiters_) failed.push_back(std::move(w));
    waiters_.clear();
    CollectReadableLocked(&ready);
  }
  for (Waiter& w : failed) std::move(w.done)(status);
}

absl::Status PartitionLog::JournalCheckpoint() {
  {
    absl::MutexLock lock(&mu_);
    if (retired_) return absl::OkStatus();  // its files went with its topic
  }
  return Sync();
}

absl::Status PartitionLog::JournalWriteOut() {
  absl::MutexLock lock(&mu_);
  written_out_.reset();
  if (retired_) return absl::OkStatus();  // its files went with its topic
  if (!failed_.ok()) return failed_;
  const uint64_t target = next_offset_;
  if (segments_.back()->sealed || flushed_offset_ >= target) return absl::OkStatus();
  RETURN_IF_ERROR(WaitTailDurableLocked());
  RETURN_IF_ERROR(FlushTailLocked(target));
  // What the active segment took since the last write-out: about what it takes by the next.
  const Segment& active = *segments_.back();
  const uint64_t since = active.base_offset == writeout_base_ && active.size_bytes >= writeout_size_
                             ? active.size_bytes - writeout_size_
                             : active.size_bytes;
  writeout_base_ = active.base_offset;
  writeout_size_ = active.size_bytes;
  written_out_ = WrittenOut{target, segments_started_, chain_unsynced_};
  // A full disk here fails the appends that then need the space, not the checkpoint.
  ReserveAheadLocked(since).IgnoreError();
  return absl::OkStatus();
}

absl::Status PartitionLog::ReserveAheadLocked(uint64_t expected) {
  const Segment& active = *segments_.back();
  if (active.sealed || idle_) return absl::OkStatus();
  const auto [smallest, largest] = ReserveSteps();
  // As much as the appends would reserve (to a multiple of the smallest step): no more space
  // is held ahead than without this.
  const uint64_t ahead = std::min(expected, largest);
  if (reserved_end_ >= active.size_bytes + ahead) return absl::OkStatus();
  // The file was just written: the cache still holds it.
  ASSIGN_OR_RETURN(std::shared_ptr<WritableFile> file, WriterOf(active));
  return ReserveLocked(*file, (active.size_bytes + ahead + smallest - 1) / smallest * smallest,
                       active.size_bytes, NowMicros());
}

std::pair<uint64_t, uint64_t> PartitionLog::ReserveSteps() const {
  const uint64_t largest =
      std::max<uint64_t>(1, std::min(options_.reserve_chunk_bytes, options_.segment_bytes));
  return {std::clamp<uint64_t>(options_.min_reserve_chunk_bytes, 1, largest), largest};
}

absl::Status PartitionLog::ReserveLocked(WritableFile& file, uint64_t target, uint64_t from,
                                         int64_t now_us) {
  RETURN_IF_ERROR(file.Reserve(target));
  reserved_end_ = target;
  reserved_from_ = from;
  last_reserve_us_ = now_us;
  return absl::OkStatus();
}

void PartitionLog::JournalWrittenOutDurable() {
  absl::MutexLock lock(&mu_);
  if (!written_out_) return;
  const WrittenOut w = *written_out_;
  written_out_.reset();
  dir_synced_at_ = std::max(dir_synced_at_, w.started);
  if (w.chain) chain_unsynced_ = false;
  synced_offset_ = std::max(synced_offset_, w.target);
  flushed_offset_ = std::max(flushed_offset_, w.target);
  if (synced_offset_ >= next_offset_) pinned_writer_.reset();
}

absl::Status PartitionLog::MaybeRollByAge(int64_t now_us) {
  Deferred ready;
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  Segment& active = *segments_.back();
  if (active.sealed || active.empty()) return absl::OkStatus();
  if (now_us - active.min_ingest_us < options_.segment_ms * 1000) return absl::OkStatus();
  absl::Status s = SealActive();
  CollectReadableLocked(&ready);
  RETURN_IF_ERROR(s);
  return StartSegment(next_offset_);
}

absl::Status PartitionLog::ReleaseIdle(int64_t now_us) {
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  if (idle_ || now_us - last_append_us_ < options_.idle_release_ms * 1000) {
    return absl::OkStatus();
  }
  Segment& active = *segments_.back();
  RETURN_IF_ERROR(FlushTailLocked(next_offset_));
  if (!tail_.empty()) return absl::OkStatus();  // not durable yet: at the next look
  if (!active.sealed && reserved_end_ > active.size_bytes) {
    // The size stays; the blocks past it go back.
    ASSIGN_OR_RETURN(std::shared_ptr<WritableFile> writer, WriterOf(active));
    RETURN_IF_ERROR(writer->Truncate(active.size_bytes));
  }
  reserved_end_ = 0;
  ForgetFilesLocked();
  idle_ = true;
  return absl::OkStatus();
}

uint64_t PartitionLog::reserved_bytes() const {
  absl::MutexLock lock(&mu_);
  const Segment& active = *segments_.back();
  return reserved_end_ > active.size_bytes ? reserved_end_ - active.size_bytes : 0;
}

std::shared_ptr<PartitionLog::Segment> PartitionLog::FindSegmentLocked(uint64_t offset) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                             [](uint64_t o, const std::shared_ptr<Segment>& s) {
                               return o < s->base_offset;
                             });
  if (it == segments_.begin()) return nullptr;
  return *std::prev(it);
}

absl::Status PartitionLog::Read(uint64_t from, size_t max_records, size_t max_bytes,
                                std::vector<Record>* out) const {
  return Scan(from, max_records, max_bytes,
              [out](const DecodedRecord& r) { out->push_back(Record::From(r)); });
}

absl::Status PartitionLog::Scan(uint64_t from, size_t max_records, size_t max_bytes,
                                absl::FunctionRef<void(const DecodedRecord&)> visit) const {
  size_t bytes = 0;
  size_t count = 0;
  while (count < max_records && bytes < max_bytes) {
    std::shared_ptr<Segment> seg;
    std::shared_ptr<RandomAccessFile> file;
    uint64_t end;
    uint64_t seg_size;
    uint64_t position;
    {
      absl::MutexLock lock(&mu_);
      end = options_.fsync == FsyncPolicy::kAlways ? synced_offset_ : next_offset_;
      if (from < segments_.front()->base_offset) {
        return absl::OutOfRangeError(StrCat("offset ", from, " is before the start ",
                                                  segments_.front()->base_offset));
      }
      if (from >= end) {
        // A failed partition acknowledges nothing more: tell a reader at the end why, instead of
        // letting it wait for records that will not come.
        return count == 0 && !failed_.ok() ? failed_ : absl::OkStatus();
      }
      seg = FindSegmentLocked(from);
      end = std::min(end, seg->end_offset);
      if (!tail_.empty() && seg == segments_.back() && end > tail_first_offset_) {
        RETURN_IF_ERROR(FlushTailLocked(end));  // readers catch up on what is written behind
      }
      seg_size = seg->size_bytes;
      position = seg->PositionFor(from);
      // Opened under the lock: retention cannot delete the file before it is open.
      ASSIGN_OR_RETURN(file, ReaderOf(*seg));
    }
    // What the limits let this scan take, plus the frame headers and the stretch before
    // `from` since the index entry: usually read with one call.
    const uint64_t wanted = std::min<uint64_t>(max_bytes - bytes, kMaxScanChunk) +
                            std::min<uint64_t>(max_records - count, kMaxScanChunk) *
                                kFrameHeaderBytes +
                            options_.index_interval_bytes + kScanSlackBytes;
    ScanBuffer buffer;
    FrameScanner scanner(*file, position, seg_size, buffer.bytes(),
                         std::clamp<uint64_t>(wanted, kMinScanChunk, kMaxScanChunk));
    DecodedRecord record;
    while (count < max_records && bytes < max_bytes && from < end) {
      auto r = scanner.Next(&record);
      if (r == FrameScanner::Result::kIoError) return scanner.io_status();
      if (r != FrameScanner::Result::kRecord) {
        return absl::DataLossError(StrCat(seg->path, ": damaged record at byte ",
                                                scanner.position(), " (offset ", from, ")"));
      }
      if (record.offset.value() < from) continue;
      if (record.offset.value() != from) {
        return absl::DataLossError(StrCat(seg->path, ": found offset ", record.offset,
                                                " where ", from, " belongs"));
      }
      // Everything a reader copies out of the record, headers included, plus fixed fields.
      bytes += kMinBodyBytes + record.data.size() + record.key.size() + record.id.size();
      for (const auto& [k, v] : record.headers) bytes += k.size() + v.size();
      visit(record);
      ++from;
      ++count;
    }
    if (from < end) break;  // limits reached
  }
  return absl::OkStatus();
}

uint64_t PartitionLog::RecentStart(int64_t since_us, uint64_t min_records) const {
  absl::MutexLock lock(&mu_);
  uint64_t start = next_offset_;
  uint64_t records = 0;
  for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
    const Segment& s = **it;
    if (s.empty()) continue;
    if (s.max_ingest_us < since_us) break;
    start = s.base_offset;
    records += s.end_offset - s.base_offset;
    if (records >= min_records || s.min_ingest_us < since_us) break;
  }
  return start;
}

absl::Status PartitionLog::Seal(int64_t oldest_at_most_us) {
  Deferred ready;
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  Segment& active = *segments_.back();
  if (active.sealed || active.empty()) return absl::OkStatus();
  if (active.min_ingest_us > oldest_at_most_us) return absl::OkStatus();
  absl::Status s = SealActive();
  CollectReadableLocked(&ready);
  RETURN_IF_ERROR(s);
  return StartSegment(next_offset_);
}

std::vector<SegmentInfo> PartitionLog::Segments() const {
  absl::MutexLock lock(&mu_);
  std::vector<SegmentInfo> out;
  out.reserve(segments_.size());
  for (const auto& s : segments_) {
    out.push_back(SegmentInfo{s->base_offset, s->end_offset, s->size_bytes, s->min_ingest_us,
                              s->max_ingest_us, s->sealed && s != segments_.back()});
  }
  return out;
}

absl::StatusOr<int> PartitionLog::DropSealedBelow(uint64_t offset, int64_t ingested_before_us) {
  int dropped = 0;
  for (;;) {
    std::shared_ptr<Segment> victim;
    {
      absl::MutexLock lock(&mu_);
      if (segments_.size() < 2) break;  // the active segment always stays
      const Segment& front = *segments_.front();
      if (!front.sealed || front.end_offset > offset) break;
      if (!front.empty() && front.max_ingest_us >= ingested_before_us) break;
      victim = segments_.front();
      segments_.erase(segments_.begin());
    }
    // The index goes first: a crash in between leaves a segment without an index, which the
    // next start rebuilds, never an index without its segment being noticed.
    RETURN_IF_ERROR(fs_.RemoveFile(StrCat(dir_, "/", IndexFileName(victim->base_offset))));
    files_->Forget(victim->path);  // a reader holding it keeps reading
    RETURN_IF_ERROR(fs_.RemoveFile(victim->path));
    ++dropped;
  }
  if (dropped > 0) RETURN_IF_ERROR(fs_.SyncDir(dir_));
  return dropped;
}

PartitionStats PartitionLog::Stats() const {
  absl::MutexLock lock(&mu_);
  PartitionStats stats;
  stats.start_offset = segments_.front()->base_offset;
  stats.end_offset = next_offset_;
  stats.acked_end = options_.fsync == FsyncPolicy::kAlways ? synced_offset_ : next_offset_;
  stats.record_count = next_offset_ - stats.start_offset;
  if (files_pending_) return stats;  // its segment is in memory only: no file, no byte on disk
  for (const auto& s : segments_) stats.bytes_on_disk += s->size_bytes;
  stats.segment_count = static_cast<uint32_t>(segments_.size());
  return stats;
}

}  // namespace nodata::log
