#include "storage/cold_partition.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "common/status.h"
#include "common/strings.h"
#include "fmt/format.h"
#include "parquet/io.h"
#include "parquet/reader.h"
#include "spdlog/spdlog.h"

namespace nodata::storage {
namespace {

constexpr int64_t kMicrosPerDay = 86400LL * 1000 * 1000;
constexpr size_t kMaxCachedReaders = 8;
constexpr std::string_view kDatePrefix = "date=";
constexpr std::string_view kParquetSuffix = ".parquet";
constexpr std::string_view kTmpSuffix = ".tmp";

// Parses "<20 digits>-<20 digits>.parquet".
bool ParseFileName(std::string_view name, uint64_t* first, uint64_t* last) {
  if (name.size() != 41 + kParquetSuffix.size() || name[20] != '-' ||
      name.substr(41) != kParquetSuffix) {
    return false;
  }
  auto parse = [](std::string_view digits, uint64_t* out) {
    uint64_t v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
      if (next / 10 != v) return false;
      v = next;
    }
    *out = v;
    return true;
  };
  return parse(name.substr(0, 20), first) && parse(name.substr(21, 20), last) && *first <= *last;
}

bool ValidDate(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (date[i] < '0' || date[i] > '9') return false;
  }
  return true;
}

// Microseconds at the end of a YYYY-MM-DD day (UTC).
int64_t EndOfDayMicros(std::string_view date) {
  std::tm tm{};
  tm.tm_year = std::stoi(std::string(date.substr(0, 4))) - 1900;
  tm.tm_mon = std::stoi(std::string(date.substr(5, 2))) - 1;
  tm.tm_mday = std::stoi(std::string(date.substr(8, 2)));
  return static_cast<int64_t>(timegm(&tm)) * 1000000 + kMicrosPerDay;
}

int64_t ReadInt64(const std::string& le) {
  int64_t v = 0;
  if (le.size() == 8) std::memcpy(&v, le.data(), 8);
  return v;
}

// Index of the statistics of leaf `path`, or -1.
int LeafIndex(const parquet::Reader& reader, std::string_view path) {
  const auto& schema = reader.schema();
  for (size_t i = 0; i < schema.size(); ++i) {
    if (schema[i].path == path) return static_cast<int>(i);
  }
  return -1;
}

absl::Status Damaged(const std::string& path, const absl::Status& s) {
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kResourceExhausted ||
      s.code() == absl::StatusCode::kPermissionDenied) {
    return s;
  }
  return absl::DataLossError(StrCat(path, ": ", ToStd(s.message())));
}

}  // namespace

int64_t UtcDay(int64_t micros) {
  return micros / kMicrosPerDay - (micros % kMicrosPerDay < 0 ? 1 : 0);
}

std::string UtcDate(int64_t micros) {
  std::time_t t = static_cast<std::time_t>(UtcDay(micros) * 86400);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

// A decoded row group, shared by concurrent readers of the same range.
struct ColdPartition::CachedGroup {
  std::string path;
  uint64_t first = 0;  // offset of the first row
  parquet::RowGroupViews rows;
};

absl::StatusOr<std::unique_ptr<ColdPartition>> ColdPartition::Open(
    FileSystem& fs, std::string dir, parquet::WriterOptions options) {
  std::unique_ptr<ColdPartition> cold(new ColdPartition(fs, std::move(dir), std::move(options)));
  RETURN_IF_ERROR(cold->Load());
  return cold;
}

ColdPartition::~ColdPartition() = default;

absl::Status ColdPartition::Load() {
  // Created with its first file (EnsureDir): a partition that never compacted has none.
  if (!fs_.Exists(dir_)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> dates, fs_.ListDir(dir_));
  std::vector<ColdFile> found;
  for (const std::string& entry : dates) {
    if (!entry.starts_with(kDatePrefix) || !ValidDate(entry.substr(kDatePrefix.size()))) continue;
    const std::string date_dir = StrCat(dir_, "/", entry);
    ASSIGN_OR_RETURN(std::vector<std::string> names, fs_.ListDir(date_dir));
    for (const std::string& name : names) {
      const std::string path = StrCat(date_dir, "/", name);
      if (name.ends_with(kTmpSuffix)) {
        // A file whose write was cut short: its records are still in the hot tier.
        RETURN_IF_ERROR(fs_.RemoveFile(path));
        continue;
      }
      ColdFile file;
      if (!ParseFileName(name, &file.first_offset, &file.last_offset)) continue;
      file.date = entry.substr(kDatePrefix.size());
      file.path = path;
      file.max_ingest_us = EndOfDayMicros(file.date) - 1;
      auto source = parquet::OpenFileSource(path, fs_);
      if (!source.ok()) return source.status();
      file.size_bytes = (*source)->size();
      auto reader = parquet::Reader::Open(std::move(*source));
      if (!reader.ok()) {
        spdlog::error("{}: unreadable Parquet footer ({}); reads of offsets {}..{} will fail",
                      path, ToStd(reader.status().message()), file.first_offset,
                      file.last_offset);
      } else {
        int ingest = LeafIndex(**reader, "ingest_time");
        if (ingest >= 0) {
          int64_t max = INT64_MIN;
          for (const auto& group : (*reader)->row_groups()) {
            const auto& stats = group.columns[ingest].statistics;
            if (stats.max_value) max = std::max(max, ReadInt64(*stats.max_value));
          }
          if (max != INT64_MIN) file.max_ingest_us = max;
        }
      }
      found.push_back(std::move(file));
    }
  }
  // By first offset; of two files starting at the same offset (a compaction whose publication
  // failed after its rename, then redone), the longer one first, so the shorter one is ignored.
  std::sort(found.begin(), found.end(), [](const ColdFile& a, const ColdFile& b) {
    return a.first_offset != b.first_offset ? a.first_offset < b.first_offset
                                            : a.last_offset > b.last_offset;
  });
  absl::MutexLock lock(&mu_);
  for (ColdFile& f : found) {
    if (!files_.empty() && f.first_offset <= files_.back().last_offset) {
      spdlog::error("{}: offsets {}..{} overlap {}; the file is ignored", f.path, f.first_offset,
                    f.last_offset, files_.back().path);
      continue;
    }
    if (!files_.empty() && f.first_offset != files_.back().last_offset + 1) {
      spdlog::error("{}: offsets {}..{} are missing from the cold tier", dir_,
                    files_.back().last_offset + 1, f.first_offset - 1);
    }
    bytes_ += f.size_bytes;
    end_offset_ = f.last_offset + 1;
    files_.push_back(std::move(f));
  }
  return absl::OkStatus();
}

ColdStats ColdPartition::Stats() const {
  absl::MutexLock lock(&mu_);
  ColdStats s;
  s.file_count = static_cast<uint32_t>(files_.size());
  s.bytes = bytes_;
  s.end_offset = end_offset_;
  s.start_offset = files_.empty() ? end_offset_ : files_.front().first_offset;
  return s;
}

bool ColdPartition::empty() const {
  absl::MutexLock lock(&mu_);
  return files_.empty();
}

std::vector<ColdFile> ColdPartition::Files() const {
  absl::MutexLock lock(&mu_);
  return files_;
}

absl::StatusOr<std::shared_ptr<const parquet::Reader>> ColdPartition::OpenReader(
    const ColdFile& file) const {
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < readers_.size(); ++i) {
      if (readers_[i].first == file.path) {
        auto hit = readers_[i];
        readers_.erase(readers_.begin() + static_cast<ptrdiff_t>(i));
        readers_.insert(readers_.begin(), hit);
        return hit.second;
      }
    }
  }
  auto source = parquet::OpenFileSource(file.path, fs_);
  if (!source.ok()) return source.status();
  auto reader = parquet::Reader::Open(std::move(*source));
  if (!reader.ok()) return Damaged(file.path, reader.status());
  std::shared_ptr<const parquet::Reader> shared = std::move(*reader);
  absl::MutexLock lock(&mu_);
  readers_.insert(readers_.begin(), {file.path, shared});
  if (readers_.size() > kMaxCachedReaders) readers_.pop_back();
  return shared;
}

absl::Status ColdPartition::Scan(uint64_t from, size_t max_records, size_t max_bytes,
                                 absl::FunctionRef<void(const DecodedRecord&)> visit) const {
  ColdFile file;
  std::shared_ptr<const CachedGroup> group;
  {
    absl::MutexLock lock(&mu_);
    if (files_.empty() || from < files_.front().first_offset || from >= end_offset_) {
      return absl::OutOfRangeError(StrCat("offset ", from, " is not in the cold tier"));
    }
    auto it = std::upper_bound(files_.begin(), files_.end(), from,
                               [](uint64_t o, const ColdFile& f) { return o < f.first_offset; });
    file = *std::prev(it);
    if (from > file.last_offset) {
      return absl::DataLossError(StrCat(dir_, ": offset ", from, " is missing from the cold tier"));
    }
    if (last_group_ && last_group_->path == file.path && from >= last_group_->first &&
        from < last_group_->first + last_group_->rows.rows()) {
      group = last_group_;
    }
  }
  if (!group) {
    ASSIGN_OR_RETURN(std::shared_ptr<const parquet::Reader> reader, OpenReader(file));
    const auto& groups = reader->row_groups();
    // Row groups hold ascending offsets: the first whose maximum reaches `from` holds it.
    const int offset_leaf = LeafIndex(*reader, "offset");
    if (offset_leaf < 0) return Damaged(file.path, absl::InternalError("no offset column"));
    int index = -1;
    uint64_t group_first = file.first_offset;
    size_t lo = 0, hi = groups.size();
    bool stats_ok = true;
    for (const auto& g : groups) {
      const auto& st = g.columns[offset_leaf].statistics;
      if (!st.min_value || !st.max_value) stats_ok = false;
    }
    if (stats_ok) {
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const auto& st = groups[mid].columns[offset_leaf].statistics;
        if (static_cast<uint64_t>(ReadInt64(*st.max_value)) < from) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      if (lo < groups.size()) {
        index = static_cast<int>(lo);
        group_first =
            static_cast<uint64_t>(ReadInt64(*groups[lo].columns[offset_leaf].statistics.min_value));
      }
    } else {
      // No statistics: offsets are dense, so row counts locate the group.
      uint64_t first = file.first_offset;
      for (size_t g = 0; g < groups.size(); ++g) {
        if (from < first + static_cast<uint64_t>(groups[g].num_rows)) {
          index = static_cast<int>(g);
          group_first = first;
          break;
        }
        first += static_cast<uint64_t>(groups[g].num_rows);
      }
    }
    if (index < 0) {
      return absl::DataLossError(StrCat(file.path, ": offset ", from, " is in no row group"));
    }
    auto rows = reader->ReadRowGroupViews(index);
    if (!rows.ok()) return Damaged(file.path, rows.status());
    auto fresh = std::make_shared<CachedGroup>();
    fresh->path = file.path;
    fresh->first = group_first;
    fresh->rows = std::move(*rows);
    for (size_t i = 0; i < fresh->rows.rows(); ++i) {
      if (fresh->rows.offset[i] != static_cast<int64_t>(group_first + i)) {
        return absl::DataLossError(StrCat(file.path, ": row group ", index, " holds offset ",
                                          fresh->rows.offset[i], " where ", group_first + i,
                                          " belongs"));
      }
    }
    if (from < group_first || from >= group_first + fresh->rows.rows()) {
      return absl::DataLossError(StrCat(file.path, ": offset ", from, " is in no row group"));
    }
    group = fresh;
    absl::MutexLock lock(&mu_);
    last_group_ = group;
  }
  // The group stays alive (shared) while its rows are visited, without the lock.
  size_t bytes = 0;
  DecodedRecord view;
  const parquet::RowGroupViews& rows = group->rows;
  for (size_t i = from - group->first; i < rows.rows(); ++i) {
    if (max_records == 0 || bytes >= max_bytes) break;
    view.offset = Offset(static_cast<uint64_t>(rows.offset[i]));
    view.timestamp_us = rows.timestamp_us[i];
    view.ingest_time_us = rows.ingest_time_us[i];
    view.id = rows.id[i];
    view.key = rows.key[i];
    view.data = rows.data[i];
    view.headers.assign(rows.headers.begin() + rows.header_begin[i],
                        rows.headers.begin() + rows.header_begin[i + 1]);
    bytes += log::kMinBodyBytes + view.id.size() + view.key.size() + view.data.size();
    for (const auto& [k, v] : view.headers) bytes += k.size() + v.size();
    visit(view);
    --max_records;
  }
  return absl::OkStatus();
}

absl::Status ColdPartition::EnsureDir(const std::string& dir) {
  if (fs_.Exists(dir)) return absl::OkStatus();
  RETURN_IF_ERROR(fs_.CreateDirs(dir));
  // Make the new directory entries durable up to the topics root.
  std::string child = dir;
  for (int i = 0; i < 3; ++i) {
    size_t slash = child.rfind('/');
    if (slash == std::string::npos || slash == 0) break;
    std::string parent = child.substr(0, slash);
    RETURN_IF_ERROR(fs_.SyncDir(parent));
    child = parent;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ColdPartition::FileBuilder>> ColdPartition::StartFile(
    uint64_t first_offset, std::string date) {
  {
    absl::MutexLock lock(&mu_);
    if (first_offset < end_offset_ || (!files_.empty() && first_offset != end_offset_)) {
      return absl::FailedPreconditionError(
          StrCat(dir_, ": a new file must start at offset ", end_offset_, ", not ", first_offset));
    }
  }
  if (!ValidDate(date)) return absl::InvalidArgumentError(StrCat("bad date ", date));
  std::unique_ptr<FileBuilder> b(new FileBuilder(*this, first_offset, std::move(date)));
  b->dir_ = StrCat(dir_, "/", kDatePrefix, b->date_);
  RETURN_IF_ERROR(EnsureDir(b->dir_));
  b->tmp_path_ = fmt::format("{}/{:020}{}{}", b->dir_, first_offset, kParquetSuffix, kTmpSuffix);
  ASSIGN_OR_RETURN(std::unique_ptr<parquet::Sink> sink,
                   parquet::OpenFileSink(b->tmp_path_, fs_, /*sync_on_close=*/true));
  ASSIGN_OR_RETURN(b->writer_, parquet::Writer::Open(std::move(sink), options_));
  return b;
}

ColdPartition::FileBuilder::FileBuilder(ColdPartition& owner, uint64_t first_offset,
                                        std::string date)
    : owner_(owner), first_offset_(first_offset), next_offset_(first_offset),
      date_(std::move(date)) {}

ColdPartition::FileBuilder::~FileBuilder() {
  if (!finished_ && !tmp_path_.empty()) {
    writer_.reset();
    owner_.fs_.RemoveFile(tmp_path_).IgnoreError();
  }
}

absl::Status ColdPartition::FileBuilder::Add(const Record& r) {
  if (finished_) return absl::FailedPreconditionError("file already finished");
  if (r.offset.value() != next_offset_) {
    return absl::InvalidArgumentError(
        StrCat("record offset ", r.offset, " where ", next_offset_, " belongs"));
  }
  parquet::Record p;
  p.offset = static_cast<int64_t>(r.offset.value());
  p.timestamp_us = r.timestamp_us;
  p.ingest_time_us = r.ingest_time_us;
  p.id = r.id;
  p.key = r.key;
  p.data = r.data;
  p.headers = r.headers;
  RETURN_IF_ERROR(writer_->Write(p));
  ++next_offset_;
  raw_bytes_ += 24 + r.id.size() + r.key.size() + r.data.size();
  for (const auto& [k, v] : r.headers) raw_bytes_ += k.size() + v.size();
  max_ingest_us_ = std::max(max_ingest_us_, r.ingest_time_us);
  return absl::OkStatus();
}

absl::StatusOr<ColdFile> ColdPartition::FileBuilder::Finish() {
  if (finished_) return absl::FailedPreconditionError("file already finished");
  if (next_offset_ == first_offset_) return absl::FailedPreconditionError("empty file");
  RETURN_IF_ERROR(writer_->Close());  // footer, then fdatasync
  const uint64_t size = writer_->bytes_written();
  writer_.reset();
  ColdFile file;
  file.first_offset = first_offset_;
  file.last_offset = next_offset_ - 1;
  file.date = date_;
  file.path = fmt::format("{}/{:020}-{:020}{}", dir_, file.first_offset, file.last_offset,
                          kParquetSuffix);
  file.size_bytes = size;
  file.max_ingest_us = max_ingest_us_;
  RETURN_IF_ERROR(owner_.fs_.Rename(tmp_path_, file.path));
  finished_ = true;
  RETURN_IF_ERROR(owner_.fs_.SyncDir(dir_));
  RETURN_IF_ERROR(owner_.Publish(file));
  return file;
}

absl::Status ColdPartition::Publish(ColdFile file) {
  absl::MutexLock lock(&mu_);
  if (file.first_offset < end_offset_) {
    return absl::InternalError(StrCat(file.path, " overlaps the cold tier's end ", end_offset_));
  }
  end_offset_ = file.last_offset + 1;
  bytes_ += file.size_bytes;
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

absl::Status ColdPartition::DropOldest() {
  ColdFile victim;
  {
    absl::MutexLock lock(&mu_);
    if (files_.empty()) return absl::OkStatus();
    victim = files_.front();
    files_.erase(files_.begin());
    bytes_ -= victim.size_bytes;
    std::erase_if(readers_, [&](const auto& r) { return r.first == victim.path; });
    if (last_group_ && last_group_->path == victim.path) last_group_.reset();
  }
  RETURN_IF_ERROR(fs_.RemoveFile(victim.path));
  const std::string date_dir = victim.path.substr(0, victim.path.rfind('/'));
  auto left = fs_.ListDir(date_dir);
  if (left.ok() && left->empty()) {
    RETURN_IF_ERROR(fs_.RemoveAll(date_dir));
    return fs_.SyncDir(dir_);
  }
  return fs_.SyncDir(date_dir);
}

}  // namespace nodata::storage
