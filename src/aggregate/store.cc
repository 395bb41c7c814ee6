#include "aggregate/store.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/status.h"
#include "common/strings.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"

namespace nodata::aggregate {
namespace {

constexpr char kKeyPrefix = 'k';
constexpr char kWindowPrefix = 'w';
constexpr char kMetaKey[] = "mcheckpoint";
constexpr uint8_t kFinal = 1;

void PutU32Be(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>(v >> s));
}
void PutI64Be(std::string* out, int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
  for (int s = 56; s >= 0; s -= 8) out->push_back(static_cast<char>(u >> s));
}
int64_t GetI64Be(const char* p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(p[i]);
  return static_cast<int64_t>(u ^ (uint64_t{1} << 63));
}
void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
bool GetVarint(std::string_view* s, uint64_t* v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64 && !s->empty(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(s->front());
    s->remove_prefix(1);
    r |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

std::string KeyPrefix(std::string_view key) {
  std::string k;
  k.reserve(5 + key.size() + 8);
  k.push_back(kKeyPrefix);
  PutU32Be(&k, static_cast<uint32_t>(key.size()));
  k.append(key);
  return k;
}
std::string WindowKey(std::string_view key, int64_t start) {
  std::string k = KeyPrefix(key);
  PutI64Be(&k, start);
  return k;
}
std::string IndexKey(int64_t start, std::string_view key) {
  std::string k(1, kWindowPrefix);
  PutI64Be(&k, start);
  k.append(key);
  return k;
}

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = StrCat("state store: ", what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

}  // namespace

std::string EncodeWindow(const StoredWindow& w) {
  std::string v;
  v.reserve(1 + 8 + 5 + w.state.size() + w.values.size());
  v.push_back(static_cast<char>(w.final ? kFinal : 0));
  PutI64Be(&v, w.end_us);
  PutVarint(&v, w.state.size());
  v.append(w.state);
  v.append(w.values);
  return v;
}

absl::StatusOr<StoredWindow> DecodeWindow(int64_t start, std::string_view v) {
  StoredWindow w;
  w.start_us = start;
  uint64_t n = 0;
  if (v.size() < 9) return absl::DataLossError("a stored window is truncated");
  w.final = (static_cast<uint8_t>(v[0]) & kFinal) != 0;
  w.end_us = GetI64Be(v.data() + 1);
  v.remove_prefix(9);
  if (!GetVarint(&v, &n) || n > v.size()) return absl::DataLossError("a stored window is damaged");
  w.state.assign(v.substr(0, n));
  w.values.assign(v.substr(n));
  return w;
}

std::string EncodeMeta(const CheckpointMeta& m) {
  std::string v(1, 2);  // version
  PutVarint(&v, m.offsets.size());
  for (const auto& [p, o] : m.offsets) {
    PutVarint(&v, p);
    PutVarint(&v, o);
  }
  PutI64Be(&v, m.max_event_us);
  PutI64Be(&v, m.min_open_start_us);
  PutVarint(&v, m.late);
  PutVarint(&v, m.skipped);
  PutI64Be(&v, m.event_time_us);
  PutVarint(&v, m.partition_max_us.size());
  for (const auto& [p, t] : m.partition_max_us) {
    PutVarint(&v, p);
    PutI64Be(&v, t);
  }
  for (const auto* offsets : {&m.results_scan_from, &m.late_scan_from}) {
    PutVarint(&v, offsets->size());
    for (const auto& [p, o] : *offsets) {
      PutVarint(&v, p);
      PutVarint(&v, o);
    }
  }
  return v;
}

absl::StatusOr<CheckpointMeta> DecodeMeta(std::string_view v) {
  const auto damaged = [] { return absl::DataLossError("state store: the checkpoint is damaged"); };
  CheckpointMeta m;
  // Version 1 had no event-time clock: it was the largest event time.
  if (v.empty() || (v[0] != 1 && v[0] != 2)) return damaged();
  const int version = v[0];
  v.remove_prefix(1);
  uint64_t n = 0;
  if (!GetVarint(&v, &n) || n > v.size()) return damaged();
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t p = 0, o = 0;
    if (!GetVarint(&v, &p) || !GetVarint(&v, &o) || p > UINT32_MAX) return damaged();
    m.offsets[static_cast<uint32_t>(p)] = o;
  }
  if (v.size() < 16) return damaged();
  m.max_event_us = GetI64Be(v.data());
  m.min_open_start_us = GetI64Be(v.data() + 8);
  v.remove_prefix(16);
  if (!GetVarint(&v, &m.late) || !GetVarint(&v, &m.skipped)) return damaged();
  m.event_time_us = m.max_event_us;
  if (version >= 2) {
    if (v.size() < 8) return damaged();
    m.event_time_us = GetI64Be(v.data());
    v.remove_prefix(8);
    if (!GetVarint(&v, &n) || n > v.size()) return damaged();
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t p = 0;
      if (!GetVarint(&v, &p) || p > UINT32_MAX || v.size() < 8) return damaged();
      m.partition_max_us[static_cast<uint32_t>(p)] = GetI64Be(v.data());
      v.remove_prefix(8);
    }
    for (auto* offsets : {&m.results_scan_from, &m.late_scan_from}) {
      if (!GetVarint(&v, &n) || n > v.size()) return damaged();
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t p = 0, o = 0;
        if (!GetVarint(&v, &p) || !GetVarint(&v, &o) || p > UINT32_MAX) return damaged();
        (*offsets)[static_cast<uint32_t>(p)] = o;
      }
    }
  }
  if (!v.empty()) return damaged();
  return m;
}


namespace {

// RocksDB's own messages go to the server's log, warnings and worse only: its LOG file is not
// written. A LOG file that failed a write (a full disk) would abort the process at the next
// message, the one RocksDB logs while closing.
class ServerLogger : public rocksdb::Logger {
 public:
  ServerLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("aggregation state (RocksDB): {}", line);
    } else {
      spdlog::warn("aggregation state (RocksDB): {}", line);
    }
  }
};

rocksdb::Options StoreOptions(uint64_t cache_bytes) {
  rocksdb::Options options;
  options.info_log = std::make_shared<ServerLogger>();
  options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  options.create_if_missing = true;
  options.max_background_jobs = 2;
  options.compression = rocksdb::kLZ4Compression;
  options.keep_log_file_num = 2;
  options.max_log_file_size = 1 << 20;
  // Every commit syncs the write-ahead log, so closing has nothing to flush; and a close that
  // flushed would switch memtables through a log that may have failed a write, which RocksDB
  // aborts on (see Commit).
  options.avoid_flush_during_shutdown = true;
  // A checkpoint's batch is sorted: each insert starts its search where the previous one of the
  // same kind ('k' or 'w') ended, instead of at the memtable's top.
  options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

}  // namespace

Store::Store(std::shared_ptr<rocksdb::DB> db, std::string dir, uint64_t cache_bytes)
    : db_(std::move(db)), dir_(std::move(dir)), cache_bytes_(cache_bytes) {}

Store::~Store() {
  {
    absl::MutexLock lock(&db_mu_);
    db_.reset();
  }
  if (drop_) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    // The aggregation's directory too, unless a newer generation lives there.
    std::filesystem::remove(std::filesystem::path(dir_).parent_path(), ec);
  }
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir, uint64_t cache_bytes) {
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(StoreOptions(cache_bytes), dir, &raw);
  if (!s.ok()) return FromRocks(s, StrCat("open ", dir));
  return std::unique_ptr<Store>(new Store(std::shared_ptr<rocksdb::DB>(raw), dir, cache_bytes));
}

absl::StatusOr<std::shared_ptr<rocksdb::DB>> Store::Db() const {
  absl::MutexLock lock(&db_mu_);
  if (db_ == nullptr) {
    return absl::UnavailableError(
        "state store: being opened again after a failed write; try again");
  }
  return db_;
}

absl::Status Store::Reopen() {
  std::shared_ptr<rocksdb::DB> old;
  {
    absl::MutexLock lock(&db_mu_);
    old = std::move(db_);
    if (old != nullptr && old.use_count() > 1) {
      // A reader still has it open: the next commit tries again.
      db_ = std::move(old);
      return absl::UnavailableError("state store: a read holds it; reopening after the next");
    }
  }
  old.reset();  // closes it: the directory's lock is free
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(StoreOptions(cache_bytes_), dir_, &raw);
  if (!s.ok()) return FromRocks(s, StrCat("reopen ", dir_));
  absl::MutexLock lock(&db_mu_);
  db_.reset(raw);
  broken_.store(false);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<CheckpointMeta>> Store::ReadMeta() {
  ASSIGN_OR_RETURN(std::shared_ptr<rocksdb::DB> db, Db());
  std::string v;
  const rocksdb::Status s = db->Get(rocksdb::ReadOptions(), kMetaKey, &v);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "read checkpoint");
  return DecodeMeta(v);
}

Store::Batch::Batch() = default;
Store::Batch::~Batch() = default;

void Store::Batch::Put(std::string_view key, const StoredWindow& w, bool indexed) {
  puts_.emplace_back(WindowKey(key, w.start_us), EncodeWindow(w));
  bytes_ += puts_.back().first.size() + puts_.back().second.size();
  if (indexed) return;
  puts_.emplace_back(IndexKey(w.start_us, key), std::string());
  bytes_ += puts_.back().first.size();
}

void Store::Batch::Delete(std::string_view key, int64_t start_us) {
  deletes_.push_back(WindowKey(key, start_us));
  deletes_.push_back(IndexKey(start_us, key));
}

void Store::Batch::SetMeta(const CheckpointMeta& meta) { meta_ = EncodeMeta(meta); }

absl::Status Store::Commit(Batch& batch) {
  // Deletions first: a window put again under a start it had left is the current one.
  rocksdb::WriteBatch wb(batch.bytes_ + 64 * batch.deletes_.size() + 256);
  for (const std::string& k : batch.deletes_) wb.Delete(k);
  std::sort(batch.puts_.begin(), batch.puts_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [k, v] : batch.puts_) wb.Put(k, v);
  if (!batch.meta_.empty()) wb.Put(kMetaKey, batch.meta_);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (broken_.load()) RETURN_IF_ERROR(Reopen());
  ASSIGN_OR_RETURN(std::shared_ptr<rocksdb::DB> db, Db());
  const rocksdb::Status s = db->Write(wo, &wb);
  if (!s.ok()) {
    // Closed at once (and opened again, if the disk allows): nothing may go through its log.
    broken_.store(true);
    db.reset();
    Reopen().IgnoreError();
  }
  return FromRocks(s, "write checkpoint");
}

absl::StatusOr<std::optional<StoredWindow>> Store::Get(std::string_view key, int64_t start_us) {
  ASSIGN_OR_RETURN(std::shared_ptr<rocksdb::DB> db, Db());
  std::string v;
  const rocksdb::Status s = db->Get(rocksdb::ReadOptions(), WindowKey(key, start_us), &v);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "read");
  return DecodeWindow(start_us, v);
}

absl::Status Store::ScanKey(std::string_view key, int64_t from_us, int64_t to_us, size_t limit,
                            const std::function<void(StoredWindow)>& visit) {
  const std::string prefix = KeyPrefix(key);
  const std::string first = WindowKey(key, from_us);
  ASSIGN_OR_RETURN(std::shared_ptr<rocksdb::DB> db, Db());
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  size_t n = 0;
  for (it->Seek(first); it->Valid() && n < limit; it->Next()) {
    const rocksdb::Slice k = it->key();
    if (k.size() != prefix.size() + 8 || !k.starts_with(prefix)) break;
    const int64_t start = GetI64Be(k.data() + prefix.size());
    if (start >= to_us) break;
    ASSIGN_OR_RETURN(StoredWindow w, DecodeWindow(start, std::string_view(it->value().data(), it->value().size())));
    visit(std::move(w));
    ++n;
  }
  return FromRocks(it->status(), "scan key");
}

absl::Status Store::ScanWindow(int64_t start_us,
                               const std::function<bool(std::string_view key)>& visit) {
  std::string prefix(1, kWindowPrefix);
  PutI64Be(&prefix, start_us);
  ASSIGN_OR_RETURN(std::shared_ptr<rocksdb::DB> db, Db());
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key();
    if (!k.starts_with(prefix)) break;
    if (!visit(std::string_view(k.data() + prefix.size(), k.size() - prefix.size()))) break;
  }
  return FromRocks(it->status(), "scan window");
}

absl::Status Store::ScanFrom(int64_t from_us,
                             const std::function<bool(std::string_view, StoredWindow)>& visit) {
  std::string first(1, kWindowPrefix);
  PutI64Be(&first, from_us);
  ASSIGN_OR_RETURN(std::shared_ptr<rocksdb::DB> db, Db());
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(first); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key();
    if (k.size() < 9 || k[0] != kWindowPrefix) break;
    const int64_t start = GetI64Be(k.data() + 1);
    const std::string_view key(k.data() + 9, k.size() - 9);
    ASSIGN_OR_RETURN(std::optional<StoredWindow> w, Get(key, start));
    if (!w) return absl::DataLossError("state store: the window index names a missing window");
    if (!visit(key, *std::move(w))) break;
  }
  return FromRocks(it->status(), "scan windows");
}

absl::StatusOr<std::optional<int64_t>> Store::LatestStart() {
  ASSIGN_OR_RETURN(std::shared_ptr<rocksdb::DB> db, Db());
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(std::string(1, kWindowPrefix + 1));
  if (it->Valid() && it->key().size() >= 9 && it->key()[0] == kWindowPrefix) {
    return GetI64Be(it->key().data() + 1);
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "scan windows"));
  return std::nullopt;
}

uint64_t Store::EstimateWindows() {
  uint64_t n = 0;
  absl::StatusOr<std::shared_ptr<rocksdb::DB>> db = Db();
  if (db.ok()) (*db)->GetIntProperty("rocksdb.estimate-num-keys", &n);
  return n / 2;
}

}  // namespace nodata::aggregate
