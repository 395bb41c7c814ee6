#include "storage/partition.h"

#include <algorithm>
#include <limits>

#include "common/status.h"
#include "common/strings.h"

namespace nodata::storage {
namespace {

constexpr size_t kReadChunkRecords = 4096;
constexpr size_t kReadChunkBytes = 8u << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<Partition>> Partition::Open(FileSystem& fs, std::string log_dir,
                                                           std::string cold_dir,
                                                           log::LogOptions log_options,
                                                           WorkerPool& syncer,
                                                           parquet::WriterOptions parquet_options) {
  std::unique_ptr<Partition> p(new Partition());
  ASSIGN_OR_RETURN(p->cold_,
                   ColdPartition::Open(fs, std::move(cold_dir), std::move(parquet_options)));
  // Offsets the cold tier holds are never assigned again, even if the hot tier lost its files.
  ASSIGN_OR_RETURN(p->log_, log::PartitionLog::Open(fs, std::move(log_dir), std::move(log_options),
                                                    syncer, p->cold_->Stats().end_offset));
  return p;
}

StorageStats Partition::Stats() const {
  StorageStats s;
  s.hot = log_->Stats();
  s.cold = cold_->Stats();
  s.end_offset = Offset(s.hot.end_offset);
  s.acked_end = Offset(s.hot.acked_end);
  s.start_offset = Offset(s.cold.file_count > 0 ? s.cold.start_offset
                                                : std::max(s.cold.end_offset, s.hot.start_offset));
  s.record_count = s.end_offset - s.start_offset;
  s.bytes_on_disk = s.hot.bytes_on_disk + s.cold.bytes;
  return s;
}

absl::Status Partition::Read(Offset from, size_t max_records, size_t max_bytes,
                             std::vector<Record>* out) const {
  return Scan(from, max_records, max_bytes,
              [out](const DecodedRecord& r) { out->push_back(Record::From(r)); });
}

absl::Status Partition::Scan(Offset from_offset, size_t max_records, size_t max_bytes,
                             absl::FunctionRef<void(const DecodedRecord&)> visit) const {
  const uint64_t from = from_offset.value();
  const StorageStats s = Stats();
  if (from_offset < s.start_offset) {
    return absl::OutOfRangeError(StrCat("offset ", from, " is before the partition's start ",
                                        s.start_offset.value(), " (older records were deleted)"));
  }
  if (from >= s.hot.start_offset) {
    bool visited = false;
    absl::Status st = log_->Scan(from, max_records, max_bytes, [&](const DecodedRecord& r) {
      visited = true;
      visit(r);
    });
    // OUT_OF_RANGE: the segment was compacted and dropped meanwhile; the cold tier has it. When
    // some records were already handed out, the caller goes on from after them next time.
    if (st.code() != absl::StatusCode::kOutOfRange) return st;
    if (visited) return absl::OkStatus();
  }
  absl::Status st = cold_->Scan(from, max_records, max_bytes, visit);
  if (!st.ok() && st.code() != absl::StatusCode::kOutOfRange) {
    // Retention may have deleted the file while this read opened it.
    if (from_offset < Stats().start_offset) {
      return absl::OutOfRangeError(StrCat("offset ", from, " was deleted while being read"));
    }
    return st;
  }
  if (st.code() == absl::StatusCode::kOutOfRange) {
    const uint64_t start = Stats().start_offset.value();
    if (from < start) {
      return absl::OutOfRangeError(StrCat("offset ", from, " is before the partition's start ",
                                          start, " (older records were deleted)"));
    }
    return absl::DataLossError(
        StrCat("offset ", from, " is in neither the hot tier (from ", s.hot.start_offset,
               ") nor the cold tier (", s.cold.start_offset, " to ", s.cold.end_offset, ")"));
  }
  return st;
}

absl::StatusOr<Offset> Partition::OffsetForTime(int64_t time_us) const {
  const StorageStats s = Stats();
  const uint64_t start = s.start_offset.value();
  // The first stretch (file or segment) holding a record ingested at or after `time_us`.
  uint64_t from = s.end_offset.value();
  bool found = false;
  for (const ColdFile& f : cold_->Files()) {
    if (f.max_ingest_us >= time_us) {
      from = std::max(f.first_offset, start);
      found = true;
      break;
    }
  }
  if (!found) {
    for (const auto& seg : log_->Segments()) {
      if (seg.end_offset > seg.base_offset && seg.end_offset > start &&
          seg.max_ingest_us >= time_us) {
        from = std::max({seg.base_offset, start, s.cold.end_offset});
        break;
      }
    }
  }
  std::vector<Record> batch;
  while (Offset(from) < s.end_offset) {
    batch.clear();
    RETURN_IF_ERROR(Read(Offset(from), kReadChunkRecords, kReadChunkBytes, &batch));
    if (batch.empty()) break;
    for (const Record& r : batch) {
      if (r.ingest_time_us >= time_us) return r.offset;
    }
    from = batch.back().offset.Next().value();
  }
  return s.end_offset;
}

absl::StatusOr<CompactionResult> Partition::Compact(const CompactionPolicy& policy,
                                                    int64_t now_us, bool flush,
                                                    const std::atomic<bool>* cancel) {
  absl::MutexLock lock(&maintenance_mu_);
  CompactionResult result;
  if (closed_) return result;
  RETURN_IF_ERROR(log_->Seal(flush ? std::numeric_limits<int64_t>::max()
                                   : now_us - policy.roll_interval_us));
  const std::vector<log::SegmentInfo> segs = log_->Segments();
  uint64_t sealed_end = segs.front().base_offset;
  size_t sealed_count = 0;
  for (const auto& seg : segs) {
    if (!seg.sealed) break;
    sealed_end = seg.end_offset;
    ++sealed_count;
  }
  uint64_t from = std::max(cold_->Stats().end_offset, segs.front().base_offset);
  while (from < sealed_end) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return absl::CancelledError("stopping");
    if (!flush) {
      // Due when enough bytes have gathered, the oldest record waited long enough, or a day
      // ended (a file holds one date).
      uint64_t pending = 0;
      int64_t oldest = std::numeric_limits<int64_t>::max();
      int64_t newest = std::numeric_limits<int64_t>::min();
      for (size_t i = 0; i < sealed_count; ++i) {
        const auto& seg = segs[i];
        if (seg.end_offset <= from || seg.end_offset == seg.base_offset) continue;
        pending += seg.size_bytes;
        oldest = std::min(oldest, seg.min_ingest_us);
        newest = std::max(newest, seg.max_ingest_us);
      }
      if (pending == 0) break;
      const bool due = pending >= policy.roll_bytes ||
                       now_us - oldest >= policy.roll_interval_us ||
                       UtcDay(oldest) != UtcDay(newest);
      if (!due) break;
    }
    ASSIGN_OR_RETURN(from, WriteFile(from, sealed_end, policy.roll_bytes, cancel, &result));
  }
  ASSIGN_OR_RETURN(int dropped,
                   log_->DropSealedBelow(cold_->Stats().end_offset, now_us - policy.keep_hot_us));
  result.segments_dropped = static_cast<uint32_t>(dropped);
  return result;
}

absl::StatusOr<uint64_t> Partition::WriteFile(uint64_t from, uint64_t until, uint64_t roll_bytes,
                                              const std::atomic<bool>* cancel,
                                              CompactionResult* result) {
  std::unique_ptr<ColdPartition::FileBuilder> file;
  int64_t day = 0;
  std::vector<Record> batch;
  while (from < until) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return absl::CancelledError("stopping");
    batch.clear();
    RETURN_IF_ERROR(log_->Read(from, std::min<uint64_t>(kReadChunkRecords, until - from),
                               kReadChunkBytes, &batch));
    if (batch.empty()) {
      return absl::InternalError(StrCat(log_->dir(), ": no record at sealed offset ", from));
    }
    for (const Record& r : batch) {
      if (r.offset.value() >= until) break;
      if (!file) {
        day = UtcDay(r.ingest_time_us);
        ASSIGN_OR_RETURN(file, cold_->StartFile(r.offset.value(), UtcDate(r.ingest_time_us)));
      } else if (UtcDay(r.ingest_time_us) != day || file->raw_bytes() >= roll_bytes) {
        goto finish;
      }
      RETURN_IF_ERROR(file->Add(r));
      from = r.offset.value() + 1;
    }
  }
finish:
  if (!file) return from;
  const uint64_t records = file->records();
  ASSIGN_OR_RETURN(ColdFile done, file->Finish());
  ++result->files;
  result->records += records;
  result->file_bytes += done.size_bytes;
  return from;
}

absl::StatusOr<uint32_t> Partition::ApplyRetention(const RetentionPolicy& policy,
                                                   int64_t now_us) {
  absl::MutexLock lock(&maintenance_mu_);
  if (closed_) return 0u;
  uint32_t dropped = 0;
  for (;;) {
    std::vector<ColdFile> files = cold_->Files();
    if (files.empty()) break;
    bool drop = policy.max_age_us > 0 && files.front().max_ingest_us < now_us - policy.max_age_us;
    if (!drop && policy.max_bytes > 0) {
      // Hot segments already compacted are copies of cold files: count them once.
      const ColdStats cold = cold_->Stats();
      uint64_t total = cold.bytes;
      for (const auto& seg : log_->Segments()) {
        if (seg.end_offset > cold.end_offset) total += seg.size_bytes;
      }
      drop = total > policy.max_bytes;
    }
    if (!drop) break;
    RETURN_IF_ERROR(cold_->DropOldest());
    ++dropped;
  }
  if (dropped > 0) {
    // Hot copies of deleted records go too, whatever the dedupe window wants.
    RETURN_IF_ERROR(log_->DropSealedBelow(cold_->Stats().start_offset,
                                          std::numeric_limits<int64_t>::max())
                        .status());
  }
  return dropped;
}

void Partition::Close() {
  absl::MutexLock lock(&maintenance_mu_);
  closed_ = true;
}

void Partition::Resume() {
  absl::MutexLock lock(&maintenance_mu_);
  closed_ = false;
}

}  // namespace nodata::storage
