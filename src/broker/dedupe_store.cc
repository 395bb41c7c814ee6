#include "broker/internal/dedupe_store.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <queue>
#include <utility>

#include "common/crc32c.h"
#include "common/fixed.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "spdlog/spdlog.h"

namespace nodata::broker {
namespace {

// docs/formats/dedupe.md
constexpr char kMagic[8] = {'N', 'D', 'D', 'E', 'D', 'U', 'P', 'E'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 56;  // before the covered offsets
constexpr size_t kEntryBytes = 36;
// Below this many new ids since its last checkpoint, a topic is not checkpointed again by the
// periodic pass: a restart reads at most that many ids from its log.
constexpr uint64_t kMinNewIds = 16384;
// The most a clean stop spends on checkpoints: what it leaves, the next start reads from the
// log.
constexpr int64_t kStopBudgetUs = 10'000'000;
// Ids inserted under one hold of the topic's lock while restoring.
constexpr size_t kPiece = 4096;
// What a replay reads of one partition at a time (the merge holds one such piece of each).
constexpr size_t kReplayRecords = 512;
constexpr size_t kReplayBytes = 256 << 10;


// Inserts `piece` into the topic's index under its lock, overlapping the table's cache misses.
void InsertPiece(Topic& topic, std::vector<DedupeIndex::Entry>& piece) {
  if (piece.empty()) return;
  constexpr size_t kAhead = 8;
  absl::MutexLock lock(&topic.mu);
  for (size_t k = 0; k < std::min(kAhead, piece.size()); ++k) topic.dedupe.Prefetch(piece[k].id);
  for (size_t k = 0; k < piece.size(); ++k) {
    if (k + kAhead < piece.size()) topic.dedupe.Prefetch(piece[k + kAhead].id);
    topic.dedupe.Insert(piece[k].id, piece[k].location, piece[k].ingest_us);
  }
  piece.clear();
}

}  // namespace

absl::Status WriteDedupeCheckpoint(FileSystem& fs, const std::string& path,
                                   const DedupeCheckpoint& header,
                                   DedupeIndex::Snapshot& snapshot) {
  const std::string tmp = StrCat(path, ".tmp");
  if (fs.Exists(tmp)) RETURN_IF_ERROR(fs.RemoveFile(tmp));
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs.OpenAppendable(tmp));
  std::string buf;
  buf.reserve(1 << 20);
  buf.append(kMagic, sizeof kMagic);
  Append32(&buf, kVersion);
  Append32(&buf, static_cast<uint32_t>(header.covered.size()));
  Append64(&buf, static_cast<uint64_t>(header.topic_created_us));
  Append64(&buf, static_cast<uint64_t>(header.written_us));
  Append64(&buf, snapshot.size());
  Append64(&buf, static_cast<uint64_t>(header.window_us));
  Append64(&buf, header.max_ids);
  for (uint64_t c : header.covered) Append64(&buf, c);
  uint32_t crc = 0;
  absl::Status status;
  auto flush = [&] {
    if (!status.ok() || buf.empty()) return;
    crc = crc32c::Extend(crc, buf.data(), buf.size());
    status = file->Append(buf);
    buf.clear();
  };
  snapshot.ForEach([&](const DedupeIndex::Entry& e) {
    Append64(&buf, e.id.low);
    Append64(&buf, e.id.high);
    Append64(&buf, e.location.offset);
    Append64(&buf, static_cast<uint64_t>(e.ingest_us));
    Append32(&buf, e.location.partition);
    if (buf.size() >= (1 << 20) - kEntryBytes) flush();
  });
  flush();
  Append32(&buf, crc32c::Mask(crc));
  if (status.ok()) status = file->Append(buf);
  file.reset();
  if (status.ok()) status = fs.Rename(tmp, path);
  if (!status.ok()) fs.RemoveFile(tmp).IgnoreError();
  return status;
}

absl::StatusOr<DedupeCheckpoint> ReadDedupeCheckpoint(
    FileSystem& fs, const std::string& path,
    absl::FunctionRef<absl::Status(const DedupeCheckpoint&)> accept,
    absl::FunctionRef<void(const DedupeIndex::Entry&)> visit) {
  if (!fs.Exists(path)) return absl::NotFoundError(StrCat("no dedupe checkpoint at ", path));
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, fs.OpenReadable(path));
  ASSIGN_OR_RETURN(const uint64_t size, file->Size());
  auto damaged = [&](std::string_view why) {
    return absl::DataLossError(StrCat(path, ": ", why));
  };
  // Read in pieces, twice: the CRC first, then the entries, so that memory holds a piece of
  // the file, not all of it, and nothing is visited from a damaged file.
  constexpr size_t kPieceBytes = size_t{kEntryBytes} << 15;  // about 1 MiB, whole entries
  std::unique_ptr<char[]> buf(new char[kPieceBytes]);
  auto read = [&](uint64_t at, size_t n) -> absl::Status {
    size_t got = 0;
    while (got < n) {
      ASSIGN_OR_RETURN(size_t r, file->Read(at + got, n - got, buf.get() + got));
      if (r == 0) return damaged("shorter than it was");
      got += r;
    }
    return absl::OkStatus();
  };
  if (size < kHeaderBytes + 4) return damaged("shorter than its header");
  const uint64_t body = size - 4;
  uint32_t crc = 0;
  for (uint64_t at = 0; at < body; at += kPieceBytes) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kPieceBytes, body - at));
    RETURN_IF_ERROR(read(at, n));
    crc = crc32c::Extend(crc, buf.get(), n);
  }
  RETURN_IF_ERROR(read(body, 4));
  if (crc32c::Unmask(Load32(buf.get())) != crc) return damaged("bad CRC");
  RETURN_IF_ERROR(read(0, kHeaderBytes));
  const char* h = buf.get();
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) return damaged("bad magic");
  if (Load32(h + 8) != kVersion) return damaged("unknown version");
  DedupeCheckpoint c;
  const uint32_t partitions = Load32(h + 12);
  c.topic_created_us = static_cast<int64_t>(Load64(h + 16));
  c.written_us = static_cast<int64_t>(Load64(h + 24));
  c.entries = Load64(h + 32);
  c.window_us = static_cast<int64_t>(Load64(h + 40));
  c.max_ids = Load64(h + 48);
  if (c.entries > body / kEntryBytes || partitions > body / 8 ||
      kHeaderBytes + uint64_t{partitions} * 8 + c.entries * kEntryBytes != body) {
    return damaged("sizes do not add up");
  }
  uint64_t at = kHeaderBytes;
  for (uint32_t i = 0; i < partitions; i += kPieceBytes / 8) {
    const uint32_t n = std::min<uint32_t>(partitions - i, kPieceBytes / 8);
    RETURN_IF_ERROR(read(at, n * 8));
    for (uint32_t k = 0; k < n; ++k) c.covered.push_back(Load64(buf.get() + k * 8));
    at += n * 8;
  }
  RETURN_IF_ERROR(accept(c));
  for (uint64_t i = 0; i < c.entries; i += kPieceBytes / kEntryBytes) {
    const uint64_t n = std::min<uint64_t>(c.entries - i, kPieceBytes / kEntryBytes);
    RETURN_IF_ERROR(read(at, n * kEntryBytes));
    at += n * kEntryBytes;
    for (const char* p = buf.get(); p < buf.get() + n * kEntryBytes; p += kEntryBytes) {
      DedupeIndex::Entry e;
      e.id = IdFingerprint{Load64(p), Load64(p + 8)};
      e.location.offset = Load64(p + 16);
      e.ingest_us = static_cast<int64_t>(Load64(p + 24));
      e.location.partition = Load32(p + 32);
      visit(e);
    }
  }
  return c;
}

DedupeStore::DedupeStore(const BrokerOptions& options, FileSystem& fs, TopicRegistry& topics)
    : options_(options), fs_(fs), topics_(topics), dir_(options.data_dir) {}

DedupeStore::~DedupeStore() { Stop(); }

void DedupeStore::Start(std::vector<std::shared_ptr<Topic>> loaded) {
  thread_ = std::thread([this, loaded = std::move(loaded)]() mutable { Run(std::move(loaded)); });
}

void DedupeStore::AwaitRestored(Topic& topic) {
  if (!topic.dedupe_pending.load(std::memory_order_acquire)) return;
  if (Claim(topic)) RestoreClaimed(topic);
}

bool DedupeStore::Claim(Topic& topic) {
  absl::MutexLock lock(&topic.mu);
  if (topic.dedupe_restored || topic.dedupe_restoring) return false;
  topic.dedupe_restoring = true;
  return true;
}

void DedupeStore::RestoreClaimed(Topic& topic) {
  absl::Status status = stopping() ? absl::UnavailableError("the server is stopping")
                                   : topics_.EnsureOpen(topic);
  if (status.ok()) {
    // (An open's error is logged by the open.)
    status = Restore(topic);
    if (!status.ok() && status.code() != absl::StatusCode::kUnavailable) {
      spdlog::error("topic {}: its dedupe state could not be restored: {}", topic.name,
                    ToStd(status.message()));
    }
  }
  absl::MutexLock lock(&topic.mu);
  if (!status.ok()) {
    topic.dedupe_status = absl::Status(
        status.code(), StrCat("topic ", topic.name, ": its dedupe state could not be restored: ",
                              ToStd(status.message())));
  }
  topic.dedupe_restored = true;
  topic.dedupe_restoring = false;
  topic.dedupe_pending.store(false, std::memory_order_release);
}

void DedupeStore::StopThread() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void DedupeStore::Stop() {
  if (stopped_) return;
  stopped_ = true;
  StopThread();
  if (options_.dedupe_checkpoint_ms > 0) CheckpointAll(1, NowMicros() + kStopBudgetUs);
}

void DedupeStore::Run(std::vector<std::shared_ptr<Topic>> loaded) {
  const int64_t start = NowMicros();
  topics_.TakeJournal([this] { return stopping(); });
  // Even once stopping: every topic left gets its answer (UNAVAILABLE).
  for (const std::shared_ptr<Topic>& topic : loaded) {
    if (Claim(*topic)) RestoreClaimed(*topic);
  }
  // Those a publish took over, too.
  for (const std::shared_ptr<Topic>& topic : loaded) {
    absl::MutexLock lock(&topic->mu, absl::Condition(&topic->dedupe_restored));
  }
  if (!loaded.empty()) {
    spdlog::info("dedupe state of {} topics restored in {} ms: {} ids from checkpoints, {} from "
                 "the log", loaded.size(), (NowMicros() - start) / 1000, from_checkpoints_.load(),
                 from_logs_.load());
  }
  loaded.clear();
  if (options_.dedupe_checkpoint_ms <= 0) return;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           absl::Milliseconds(options_.dedupe_checkpoint_ms));
      if (stopping_) return;
    }
    CheckpointAll(kMinNewIds, INT64_MAX);
  }
}

absl::Status DedupeStore::Restore(Topic& topic) {
  {
    absl::MutexLock lock(&topic.mu);
    if (topic.deleted) return absl::OkStatus();
  }
  const uint32_t n = topic.count();
  const int64_t now = NowMicros();
  const int64_t window_us = options_.dedupe_window_ms * 1000;
  const int64_t since = now - window_us;
  const uint64_t max_ids = options_.dedupe_max_ids;
  std::vector<uint64_t> start(n), end(n);
  for (uint32_t p = 0; p < n; ++p) {
    const storage::StorageStats stats = topic.parts[p]->Stats();
    start[p] = stats.start_offset.value();
    end[p] = stats.end_offset.value();
  }

  // The checkpoint first, when there is one that the partitions still hold all of.
  std::vector<uint64_t> covered(n, 0);
  std::vector<DedupeIndex::Entry> piece;
  piece.reserve(kPiece);
  uint64_t loaded = 0;
  bool bad_entry = false;
  const std::string path = dir_.DedupeCheckpoint(topic.name);
  auto read = ReadDedupeCheckpoint(
      fs_, path,
      [&](const DedupeCheckpoint& c) -> absl::Status {
        if (c.topic_created_us != topic.created_at_us) {
          return absl::FailedPreconditionError("it is of an earlier topic of the name");
        }
        if (c.covered.size() > n) {
          return absl::FailedPreconditionError("it names more partitions than the topic has");
        }
        // Taken under a shorter window or a smaller cap, it lacks ids the server keeps now
        // (which the log still has: a rebuild finds them, in order).
        if (window_us > c.window_us || max_ids > c.max_ids) {
          return absl::FailedPreconditionError(
              "it was taken under a shorter --dedupe-window-ms or a smaller --dedupe-max-ids");
        }
        for (uint32_t p = 0; p < c.covered.size(); ++p) {
          if (c.covered[p] > end[p]) {
            return absl::FailedPreconditionError(
                StrCat("it covers partition ", p, " up to offset ", c.covered[p],
                       ", which ends at ", end[p], " now"));
          }
        }
        std::copy(c.covered.begin(), c.covered.end(), covered.begin());
        covered.resize(c.covered.size());
        absl::MutexLock lock(&topic.mu);
        topic.dedupe.Reserve(std::min<uint64_t>(c.entries, max_ids));
        return absl::OkStatus();
      },
      [&](const DedupeIndex::Entry& e) {
        // Each entry must name a record below its partition's covered offset; one that does
        // not (a file the CRC passes but nodata did not write) discards the whole checkpoint.
        const uint32_t p = e.location.partition;
        if (bad_entry || p >= covered.size() || e.location.offset >= covered[p]) {
          bad_entry = true;
          return;
        }
        // Ids of records that retention deleted are not remembered, as a rebuild would not.
        if (e.ingest_us < since || e.location.offset < start[p]) return;
        piece.push_back(e);
        ++loaded;
        if (piece.size() == kPiece) InsertPiece(topic, piece);
      });
  InsertPiece(topic, piece);
  if (read.ok() && bad_entry) {
    read = absl::DataLossError(StrCat(path, ": an entry names a record it does not cover"));
  }
  covered.resize(n, 0);
  if (!read.ok() && read.status().code() != absl::StatusCode::kNotFound) {
    spdlog::warn("topic {}: dedupe checkpoint not used ({}); rebuilding from the log", topic.name,
                 ToStd(read.status().message()));
    // Whatever of it went in goes (a read that failed part way), and so does the file, for
    // good: a power loss must not bring back a checkpoint the log no longer matches.
    std::fill(covered.begin(), covered.end(), 0);
    loaded = 0;
    {
      absl::MutexLock lock(&topic.mu);
      topic.dedupe.Clear();
    }
    RETURN_IF_ERROR(fs_.RemoveFile(path));
    RETURN_IF_ERROR(fs_.SyncDir(dir_.TopicLogDir(topic.name)));
  }

  // Then the records after it: of each partition, at most the newest max_ids, and none from
  // segments entirely older than the window.
  std::vector<uint64_t> from(n);
  for (uint32_t p = 0; p < n; ++p) {
    const uint64_t by_count = end[p] > max_ids ? end[p] - max_ids : 0;
    const uint64_t recent = topic.parts[p]->RecentStart(since, max_ids).value();
    from[p] = std::max({covered[p], by_count, recent});
  }
  RETURN_IF_ERROR(Replay(topic, from, end));
  uint64_t inserted = 0;
  {
    absl::MutexLock lock(&topic.mu);
    topic.dedupe.Expire(now);
    topic.dedupe_checkpointed = read.ok() ? loaded : 0;
    topic.dedupe_restored = true;
    inserted = topic.dedupe.inserted();
  }
  from_checkpoints_ += loaded;
  from_logs_ += inserted - loaded;
  spdlog::debug("topic {}: dedupe state restored in {} µs: {} ids from {}, {} from the log",
                topic.name, NowMicros() - now, loaded,
                read.ok() ? "its checkpoint" : "no checkpoint", inserted - loaded);
  return absl::OkStatus();
}

absl::Status DedupeStore::Replay(Topic& topic, const std::vector<uint64_t>& from,
                                 const std::vector<uint64_t>& end) {
  const int64_t since = NowMicros() - options_.dedupe_window_ms * 1000;
  struct Seen {
    int64_t ingest_us;
    uint64_t offset;
    IdFingerprint id;
  };
  struct Cursor {
    uint32_t partition;
    uint64_t next;
    uint64_t end;
    std::vector<Seen> seen;
    size_t pos = 0;
  };
  // Reads the cursor's next piece of records that have ids within the window.
  auto fill = [&](Cursor& c) -> absl::Status {
    c.seen.clear();
    c.pos = 0;
    storage::Partition& part = *topic.parts[c.partition];
    while (c.seen.empty() && c.next < c.end) {
      const uint64_t before = c.next;
      absl::Status st =
          part.Scan(Offset(c.next), kReplayRecords, kReplayBytes, [&](const DecodedRecord& r) {
            const uint64_t o = r.offset.value();
            if (o >= c.end) return;
            c.next = o + 1;
            if (!r.id.empty() && r.ingest_time_us >= since) {
              c.seen.push_back(Seen{r.ingest_time_us, o, IdFingerprint::Of(r.id)});
            }
          });
      if (st.code() == absl::StatusCode::kOutOfRange) {
        // Retention went past it: go on from the partition's start.
        const uint64_t start = part.Stats().start_offset.value();
        if (start > c.next) {
          c.next = start;
          continue;
        }
      }
      RETURN_IF_ERROR(st);
      if (c.next == before) {
        return absl::InternalError(StrCat("partition ", c.partition, ": records from ", c.next,
                                          " to ", c.end, " could not be read"));
      }
    }
    return absl::OkStatus();
  };
  std::vector<Cursor> cursors;
  for (uint32_t p = 0; p < from.size(); ++p) {
    if (from[p] < end[p]) cursors.push_back(Cursor{p, from[p], end[p], {}});
  }
  // Ids go in in ingest-time order over all partitions, as publishing put them in: merge.
  using Head = std::pair<int64_t, size_t>;  // the ingest time of a cursor's next id, the cursor
  std::priority_queue<Head, std::vector<Head>, std::greater<>> heads;
  for (size_t i = 0; i < cursors.size(); ++i) {
    RETURN_IF_ERROR(fill(cursors[i]));
    if (!cursors[i].seen.empty()) heads.push({cursors[i].seen[0].ingest_us, i});
  }
  std::vector<DedupeIndex::Entry> piece;
  piece.reserve(kPiece);
  while (!heads.empty()) {
    const size_t i = heads.top().second;
    heads.pop();
    Cursor& c = cursors[i];
    const Seen& s = c.seen[c.pos++];
    piece.push_back(DedupeIndex::Entry{s.id, {c.partition, s.offset}, s.ingest_us});
    if (piece.size() == kPiece) {
      InsertPiece(topic, piece);
      if (stopping()) return absl::UnavailableError("the server is stopping");
    }
    if (c.pos == c.seen.size()) RETURN_IF_ERROR(fill(c));
    if (c.pos < c.seen.size()) heads.push({c.seen[c.pos].ingest_us, i});
  }
  InsertPiece(topic, piece);
  return absl::OkStatus();
}

absl::Status DedupeStore::Checkpoint(Topic& topic, uint64_t min_new, int64_t deadline_us) {
  DedupeIndex::Snapshot snapshot;
  DedupeCheckpoint header;
  uint64_t inserted = 0;
  int64_t locked_us = 0;
  {
    // The memory first, outside the lock: mapping it is most of a capture's cost.
    size_t live = 0;
    size_t runs = 0;
    {
      absl::MutexLock lock(&topic.mu);
      if (topic.dedupe.inserted() - topic.dedupe_checkpointed < std::max<uint64_t>(min_new, 1)) {
        return absl::OkStatus();
      }
      live = topic.dedupe.live_bound();
      runs = topic.dedupe.runs();
    }
    snapshot.Reserve(live + live / 8 + 1024, runs + runs / 8 + 64);
  }
  {
    absl::MutexLock lock(&topic.mu);
    locked_us = NowMicros();
    if (topic.deleted || !topic.dedupe_restored || !topic.dedupe_status.ok()) {
      return absl::OkStatus();
    }
    inserted = topic.dedupe.inserted();
    if (inserted == topic.dedupe_checkpointed || inserted - topic.dedupe_checkpointed < min_new) {
      return absl::OkStatus();
    }
    // Under the lock, the index holds exactly the ids of the records below each partition's end
    // (publishing claims ids and appends under it).
    topic.dedupe.Capture(&snapshot);
    header.covered.resize(topic.count());
    for (uint32_t p = 0; p < header.covered.size(); ++p) {
      header.covered[p] = topic.parts[p]->end_offset().value();
    }
  }
  const int64_t captured_us = NowMicros();
  header.topic_created_us = topic.created_at_us;
  header.written_us = NowMicros();
  header.entries = snapshot.size();
  header.window_us = options_.dedupe_window_ms * 1000;
  header.max_ids = options_.dedupe_max_ids;

  // Only once a crash can no longer take what it covers.
  struct Waiter {
    absl::Mutex mu;
    size_t pending ABSL_GUARDED_BY(mu) = 0;
    absl::Status status ABSL_GUARDED_BY(mu);
  };
  auto waiter = std::make_shared<Waiter>();
  std::vector<uint32_t> waited;
  for (uint32_t p = 0; p < header.covered.size(); ++p) {
    if (header.covered[p] > 0) waited.push_back(p);
  }
  {
    absl::MutexLock lock(&waiter->mu);
    waiter->pending = waited.size();
  }
  for (uint32_t p : waited) {
    topic.parts[p]->WhenAcked(Offset(header.covered[p]), [waiter](absl::Status s) {
      absl::MutexLock lock(&waiter->mu);
      if (!s.ok() && waiter->status.ok()) waiter->status = s;
      --waiter->pending;
    });
  }
  {
    absl::MutexLock lock(&waiter->mu);
    auto acked = [](Waiter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu) { return w->pending == 0; };
    const int64_t wait_us = std::min<int64_t>(10'000'000, deadline_us - NowMicros());
    if (!waiter->mu.AwaitWithTimeout(absl::Condition(+acked, waiter.get()),
                                     absl::Microseconds(std::max<int64_t>(0, wait_us)))) {
      return absl::DeadlineExceededError("its records were not acknowledged in time");
    }
    RETURN_IF_ERROR(waiter->status);
  }
  {
    // A topic deleted meanwhile (its directory may belong to a new topic of the name now).
    absl::MutexLock lock(&topic.mu);
    if (topic.deleted) return absl::OkStatus();
  }
  RETURN_IF_ERROR(
      WriteDedupeCheckpoint(fs_, dir_.DedupeCheckpoint(topic.name), header, snapshot));
  topic.dedupe_checkpointed = inserted;
  spdlog::debug("topic {}: dedupe checkpoint of {} ids: {} µs under the lock, {} µs after it",
                topic.name, header.entries, captured_us - locked_us, NowMicros() - captured_us);
  return absl::OkStatus();
}

void DedupeStore::CheckpointAll(uint64_t min_new, int64_t deadline_us) {
  for (const std::shared_ptr<Topic>& topic : topics_.All()) {
    // The periodic pass gives way to a stop; the stop's own pass has a deadline.
    if (deadline_us == INT64_MAX ? stopping() : NowMicros() >= deadline_us) return;
    absl::Status s = Checkpoint(*topic, min_new, deadline_us);
    if (!s.ok()) {
      spdlog::warn("topic {}: dedupe checkpoint not written: {}", topic->name, ToStd(s.message()));
    }
  }
}

}  // namespace nodata::broker
