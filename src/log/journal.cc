#include "log/journal.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "common/crc32c.h"
#include "common/fixed.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "log/format.h"
#include "spdlog/spdlog.h"

namespace nodata::log {
namespace {

constexpr char kMagic[8] = {'N', 'D', 'J', 'O', 'U', 'R', 'N', 'L'};
constexpr uint32_t kVersion = 1;
constexpr size_t kFileHeaderBytes = 32;
// crc(4) frames length(4) key length(2), then the key, then first offset(8) count(4).
constexpr size_t kEntryFixedBytes = 22;
constexpr size_t kMaxKeyBytes = 4096;
constexpr std::string_view kSuffix = ".wal";
// The largest chunk buffer kept for reuse.
constexpr size_t kMaxSpareBytes = 16u << 20;
constexpr uint64_t kRecoveryWindowBytes = 1u << 20;

std::string FileName(uint64_t seq) { return NumberedFileName(seq, kSuffix); }

std::string EncodeFileHeader(uint64_t seq) {
  std::string h(kMagic, sizeof kMagic);
  Append32(&h, kVersion);
  Append32(&h, 0);
  Append64(&h, seq);
  Append32(&h, crc32c::Mask(crc32c::Value(h)));
  Append32(&h, 0);
  return h;
}

bool CheckFileHeader(std::string_view h, uint64_t seq) {
  return h.size() >= kFileHeaderBytes && std::memcmp(h.data(), kMagic, sizeof kMagic) == 0 &&
         Load32(h.data() + 8) == kVersion && Load64(h.data() + 16) == seq &&
         crc32c::Unmask(Load32(h.data() + 24)) == crc32c::Value(h.substr(0, 24));
}

// True when `frames` holds exactly `count` valid frames with offsets from `first` on.
bool CheckFrames(std::string_view frames, uint64_t first, uint32_t count) {
  DecodedRecord record;
  uint32_t seen = 0;
  while (!frames.empty()) {
    size_t n = 0;
    if (DecodeFrame(frames, &n, &record) != FrameResult::kOk) return false;
    if (record.offset.value() != first + seen) return false;
    ++seen;
    frames.remove_prefix(n);
  }
  return seen == count;
}

}  // namespace

struct Journal::File {
  uint64_t seq = 0;
  std::string path;
  std::unique_ptr<WritableFile> writer;  // null for a file recovery found
  uint64_t used = 0;                     // bytes journaled into it, header included
  uint64_t reserved = 0;                 // disk space reserved for it (appends only)
  uint64_t end_lsn = 0;                  // the journal position after its last entry
  bool dir_synced = false;               // the writer thread's
  // Members that journaled into it: a checkpoint syncs them before deleting it.
  std::vector<std::shared_ptr<Member>> dirty;
};

struct Journal::Chunk {
  std::shared_ptr<File> file;
  std::string bytes;
};

struct Journal::Pending {
  uint64_t lsn;  // durable once the journal is durable up to here
  std::shared_ptr<Member> member;
  uint64_t end_offset;
  uint32_t records;
};

struct Journal::Round {
  std::vector<Pending> ready;
  absl::Status status;  // the sync's; not OK: `ready` failed
  double seconds = 0;
  uint64_t lsn = 0;  // durable up to here (OK status)
};

struct Journal::Location {
  size_t file;  // index into recovered_paths_
  uint64_t position;
  uint64_t bytes;
  uint64_t first_offset;
  uint32_t count;
};

class Journal::Member : public std::enable_shared_from_this<Journal::Member> {
 public:
  explicit Member(JournalClient* c, std::string k) : key(std::move(k)), client(c) {}
  const std::string key;
  // Callbacks hold it shared, Leave exclusively.
  absl::Mutex mu;
  JournalClient* client ABSL_GUARDED_BY(mu);
  bool left_unsynced ABSL_GUARDED_BY(mu) = false;
  // The last file it was listed as dirty in; under the journal's mu_.
  uint64_t file_seq = UINT64_MAX;
};

Journal::Journal(FileSystem& fs, std::string dir, JournalOptions options)
    : fs_(fs), dir_(std::move(dir)), options_(std::move(options)),
      pool_(std::max(1, options_.sync_threads)) {}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(FileSystem& fs, std::string dir,
                                                       JournalOptions options) {
  std::unique_ptr<Journal> journal(new Journal(fs, std::move(dir), std::move(options)));
  RETURN_IF_ERROR(journal->Recover());
  journal->writer_ = std::thread([j = journal.get()] { j->WriterLoop(); });
  journal->acker_ = std::thread([j = journal.get()] { j->AckLoop(); });
  journal->checkpointer_ = std::thread([j = journal.get()] { j->CheckpointLoop(); });
  return journal;
}

Journal::~Journal() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
    checkpoint_cv_.SignalAll();
  }
  if (writer_.joinable()) writer_.join();  // writes and syncs what was appended
  if (acker_.joinable()) acker_.join();    // acknowledges it
  if (checkpointer_.joinable()) checkpointer_.join();
  std::vector<Waiter> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(waiters_);
  }
  for (Waiter& w : left) std::move(w.done)(absl::UnavailableError("the journal is closed"));
}

absl::Status Journal::Recover() {
  RETURN_IF_ERROR(fs_.CreateDirs(dir_));
  ASSIGN_OR_RETURN(std::vector<std::string> names, fs_.ListDir(dir_));
  std::vector<uint64_t> seqs;
  for (const std::string& name : names) {
    uint64_t seq;
    if (ParseNumberedFileName(name, kSuffix, &seq)) seqs.push_back(seq);
  }
  std::sort(seqs.begin(), seqs.end());
  absl::MutexLock lock(&mu_);
  next_seq_ = seqs.empty() ? 0 : seqs.back() + 1;
  std::string buf;
  bool ended = false;  // a torn or damaged entry ended the journal
  for (uint64_t seq : seqs) {
    const std::string path = StrCat(dir_, "/", FileName(seq));
    if (ended) {
      // Past the end: written after something that never became durable, so never acknowledged.
      RETURN_IF_ERROR(fs_.RemoveFile(path));
      continue;
    }
    ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> reader, fs_.OpenReadable(path));
    ASSIGN_OR_RETURN(uint64_t size, reader->Size());
    // Entries are read through a window of 1 MiB or more: a file holds many small ones.
    std::string window;
    uint64_t window_at = 0;
    auto read = [&](uint64_t at, size_t n) -> absl::StatusOr<bool> {
      if (at + n > size) return false;
      if (at < window_at || at + n > window_at + window.size()) {
        window.resize(std::min<uint64_t>(std::max<uint64_t>(n, kRecoveryWindowBytes), size - at));
        ASSIGN_OR_RETURN(size_t got, reader->Read(at, window.size(), window.data()));
        window.resize(got);
        window_at = at;
        if (got < n) return false;
      }
      buf.assign(window, at - window_at, n);
      return true;
    };
    ASSIGN_OR_RETURN(bool whole, read(0, kFileHeaderBytes));
    if (!whole || !CheckFileHeader(buf, seq)) {
      // Created, but its header never reached the disk: it holds nothing.
      ended = true;
      RETURN_IF_ERROR(fs_.RemoveFile(path));
      continue;
    }
    const size_t file_index = recovered_paths_.size();
    recovered_paths_.push_back(path);
    auto file = std::make_shared<File>();
    file->seq = seq;
    file->path = path;
    uint64_t pos = kFileHeaderBytes;
    while (pos < size) {
      ASSIGN_OR_RETURN(whole, read(pos, 10));
      if (!whole) break;
      const uint32_t crc = Load32(buf.data());
      const uint32_t frames_bytes = Load32(buf.data() + 4);
      const uint16_t key_bytes = Load16(buf.data() + 8);
      if (key_bytes == 0 || key_bytes > kMaxKeyBytes) break;
      ASSIGN_OR_RETURN(whole, read(pos, kEntryFixedBytes + key_bytes));
      if (!whole ||
          crc32c::Unmask(crc) != crc32c::Value(std::string_view(buf).substr(4))) {
        break;
      }
      std::string key = buf.substr(10, key_bytes);
      const uint64_t first = Load64(buf.data() + 10 + key_bytes);
      const uint32_t count = Load32(buf.data() + 18 + key_bytes);
      const uint64_t frames_at = pos + kEntryFixedBytes + key_bytes;
      ASSIGN_OR_RETURN(whole, read(frames_at, frames_bytes));
      if (!whole || count == 0 || !CheckFrames(buf, first, count)) break;
      recovered_[key].push_back(Location{file_index, frames_at, frames_bytes, first, count});
      ++stats_.recovered_entries;
      pos = frames_at + frames_bytes;
    }
    file->used = pos;
    if (pos < size) {
      // A torn tail: nothing from here on was acknowledged (an acknowledgement waits for the
      // fdatasync that covers its entry and every entry before it). Cut it, so that files
      // written after this recovery are not read as past the end by the next one.
      spdlog::warn("journal {}: {} bytes from byte {} are torn or damaged; cut", path,
                   size - pos, pos);
      ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> cut, fs_.OpenAppendable(path));
      RETURN_IF_ERROR(cut->Truncate(pos));
      RETURN_IF_ERROR(cut->Sync());
      ended = true;
    }
    closed_.push_back(std::move(file));
  }
  return absl::OkStatus();
}

std::string_view Journal::KeyOf(std::string_view dir) const {
  std::string_view key = dir;
  if (!options_.key_root.empty() && key.size() > options_.key_root.size() &&
      key.starts_with(options_.key_root) && key[options_.key_root.size()] == '/') {
    key.remove_prefix(options_.key_root.size() + 1);
  }
  return key;
}

bool Journal::HoldsRecovered(std::string_view dir) {
  const std::string_view key = KeyOf(dir);
  absl::MutexLock lock(&mu_);
  return !recovery_done_ && recovered_.contains(absl::string_view(key.data(), key.size()));
}

std::shared_ptr<Journal::Member> Journal::Join(JournalClient* client, std::string_view dir) {
  auto member = std::make_shared<Member>(client, std::string(KeyOf(dir)));
  absl::MutexLock lock(&mu_);
  if (!recovery_done_ && recovered_.contains(member->key) && !closed_.empty()) {
    // Its segments may hold what only the recovered files have durable: the checkpoint that
    // deletes them syncs it first.
    closed_.back()->dirty.push_back(member);
  }
  return member;
}

void Journal::Leave(Member& member, bool synced) {
  absl::WriterMutexLock lock(&member.mu);
  member.client = nullptr;
  member.left_unsynced = !synced;
}

absl::StatusOr<std::vector<JournalRecords>> Journal::Recovered(const Member& member) {
  std::vector<JournalRecords> out;
  absl::MutexLock lock(&mu_);
  auto it = recovered_.find(member.key);
  if (it == recovered_.end()) return out;
  for (const Location& loc : it->second) {
    auto& reader = recovered_readers_[loc.file];
    if (!reader) {
      ASSIGN_OR_RETURN(reader, fs_.OpenReadable(recovered_paths_[loc.file]));
    }
    JournalRecords records;
    records.first_offset = loc.first_offset;
    records.count = loc.count;
    records.frames.resize(loc.bytes);
    ASSIGN_OR_RETURN(size_t got, reader->Read(loc.position, loc.bytes, records.frames.data()));
    if (got != loc.bytes) {
      return absl::DataLossError(StrCat(recovered_paths_[loc.file], ": short read at byte ",
                                        loc.position));
    }
    out.push_back(std::move(records));
  }
  return out;
}

void Journal::RecoveryDone() {
  absl::MutexLock lock(&mu_);
  recovery_done_ = true;
  recovered_.clear();
  recovered_readers_.clear();
  if (!closed_.empty()) {
    checkpoint_wanted_ = true;
    checkpoint_cv_.Signal();
  }
}

uint64_t Journal::ReserveTarget(uint64_t reserved, uint64_t need) const {
  const uint64_t step = std::clamp<uint64_t>(options_.file_bytes / 16, 64u << 10, 4u << 20);
  return std::max(reserved, (need + step - 1) / step * step);
}

absl::Status Journal::StartFileLocked(uint64_t min_capacity) {
  const uint64_t seq = next_seq_;
  const std::string path = StrCat(dir_, "/", FileName(seq));
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> writer, fs_.OpenAppendable(path));
  // Space is reserved ahead of the entries, a step at a time (ReserveLocked): a full disk fails
  // the append that needs more before anything of it is written.
  const uint64_t reserve = ReserveTarget(0, kFileHeaderBytes + min_capacity);
  absl::Status s = writer->Truncate(0);
  if (s.ok()) s = writer->Reserve(reserve);
  if (!s.ok()) {
    writer.reset();
    fs_.RemoveFile(path).IgnoreError();
    return absl::Status(s.code(), StrCat("starting journal file ", path, ": ", s.message()));
  }
  ++next_seq_;
  auto file = std::make_shared<File>();
  file->seq = seq;
  file->path = path;
  file->writer = std::move(writer);
  file->used = kFileHeaderBytes;
  file->reserved = reserve;
  file->end_lsn = appended_lsn_;
  chunks_.push_back(Chunk{file, EncodeFileHeader(seq)});
  if (current_) closed_.push_back(std::move(current_));
  current_ = std::move(file);
  return absl::OkStatus();
}

absl::Status Journal::WaitDurable(uint64_t lsn) {
  absl::MutexLock lock(&mu_);
  while (durable_lsn_ < lsn && failed_.ok()) durable_cv_.Wait(&mu_);
  return failed_;
}

absl::Status Journal::Append(Member& member, uint64_t first_offset, uint32_t count,
                             std::string_view frames, uint64_t* lsn) {
  const size_t size = kEntryFixedBytes + member.key.size() + frames.size();
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  if (stopping_) return absl::UnavailableError("the journal is closing");
  if (!current_ || (current_->used > kFileHeaderBytes &&
                    current_->used + size > options_.file_bytes)) {
    const bool rotated = current_ != nullptr;
    RETURN_IF_ERROR(StartFileLocked(size));
    if (rotated) {
      checkpoint_wanted_ = true;
      checkpoint_cv_.Signal();
    }
  }
  File& file = *current_;
  if (file.used + size > file.reserved) {
    const uint64_t target = ReserveTarget(file.reserved, file.used + size);
    absl::Status s = file.writer->Reserve(target);
    if (!s.ok()) {
      return absl::Status(s.code(), StrCat("journal ", file.path, ": ", s.message()));
    }
    file.reserved = target;
  }
  if (chunks_.empty() || chunks_.back().file.get() != &file) {
    chunks_.push_back(Chunk{current_, std::move(spare_)});
    spare_.clear();
  }
  std::string& out = chunks_.back().bytes;
  const size_t at = out.size();
  Append32(&out, 0);  // the CRC, set below
  Append32(&out, static_cast<uint32_t>(frames.size()));
  Append16(&out, static_cast<uint16_t>(member.key.size()));
  out.append(member.key);
  Append64(&out, first_offset);
  Append32(&out, count);
  const uint32_t crc = crc32c::Mask(
      crc32c::Extend(0, out.data() + at + 4, kEntryFixedBytes - 4 + member.key.size()));
  std::memcpy(out.data() + at, &crc, 4);
  out.append(frames);
  file.used += size;
  appended_lsn_ += size;
  file.end_lsn = appended_lsn_;
  if (member.file_seq != file.seq) {
    member.file_seq = file.seq;
    file.dirty.push_back(member.shared_from_this());
  }
  pending_.push_back(
      Pending{appended_lsn_, member.shared_from_this(), first_offset + count, count});
  *lsn = appended_lsn_;
  work_cv_.Signal();
  return absl::OkStatus();
}

void Journal::WriterLoop() {
  for (;;) {
    std::deque<Chunk> chunks;
    uint64_t target;
    {
      absl::MutexLock lock(&mu_);
      while (chunks_.empty() && !stopping_) work_cv_.Wait(&mu_);
      if (chunks_.empty()) {
        writer_done_ = true;
        rounds_cv_.Signal();
        return;
      }
      chunks.swap(chunks_);
      target = appended_lsn_;
    }
    const int64_t start = MonotonicNanos();
    absl::Status s;
    std::vector<File*> touched;
    for (const Chunk& c : chunks) {
      if (s.ok()) s = c.file->writer->Append(c.bytes);
      if (touched.empty() || touched.back() != c.file.get()) touched.push_back(c.file.get());
    }
    for (File* f : touched) {
      if (s.ok()) s = f->writer->Sync();
      // A new file's directory entry, before anything in it is acknowledged.
      if (s.ok() && !f->dir_synced) {
        s = fs_.SyncDir(dir_);
        f->dir_synced = s.ok();
      }
    }
    const double seconds = static_cast<double>(MonotonicNanos() - start) / 1e9;
    std::vector<Pending> ready;
    {
      absl::MutexLock lock(&mu_);
      // The next chunk is built in this one's memory: no regrowing it append by append.
      if (std::string& used = chunks.front().bytes;
          used.capacity() > spare_.capacity() && used.capacity() <= kMaxSpareBytes) {
        spare_ = std::move(used);
        spare_.clear();
      }
      if (s.ok()) {
        durable_lsn_ = target;
        while (!pending_.empty() && pending_.front().lsn <= target) {
          ready.push_back(std::move(pending_.front()));
          pending_.pop_front();
        }
        ++stats_.syncs;
      } else {
        if (failed_.ok()) {
          failed_ = absl::Status(s.code(), StrCat(s.message(),
                                                  "; the journal refuses appends until the "
                                                  "server restarts and recovers from it"));
        }
        for (Pending& p : pending_) ready.push_back(std::move(p));
        pending_.clear();
        chunks_.clear();
        s = failed_;
      }
      durable_cv_.SignalAll();
      rounds_.push_back(Round{std::move(ready), s, seconds, target});
      rounds_cv_.Signal();
    }
  }
}

void Journal::AckLoop() {
  for (;;) {
    std::deque<Round> rounds;
    {
      absl::MutexLock lock(&mu_);
      while (rounds_.empty() && !writer_done_) rounds_cv_.Wait(&mu_);
      if (rounds_.empty()) {
        acker_done_ = true;
        return;
      }
      rounds.swap(rounds_);
    }
    for (Round& round : rounds) {
      // One call per member, with the highest end it reached.
      absl::flat_hash_map<Member*, size_t> last;
      uint64_t records = 0;
      for (size_t i = 0; i < round.ready.size(); ++i) {
        last[round.ready[i].member.get()] = i;
        records += round.ready[i].records;
      }
      for (const auto& [member, i] : last) {
        absl::ReaderMutexLock lock(&member->mu);
        if (member->client == nullptr) continue;
        if (round.status.ok()) {
          member->client->JournalDurable(round.ready[i].end_offset);
        } else {
          member->client->JournalFailed(round.status);
        }
      }
      // The batches waiting on the journal, once every member they journaled to knows.
      std::vector<Waiter> done;
      {
        absl::MutexLock lock(&mu_);
        if (round.status.ok()) {
          acked_lsn_ = std::max(acked_lsn_, round.lsn);
          const uint64_t acked = acked_lsn_;
          auto keep = std::partition(waiters_.begin(), waiters_.end(),
                                     [acked](const Waiter& w) { return w.lsn > acked; });
          std::move(keep, waiters_.end(), std::back_inserter(done));
          waiters_.erase(keep, waiters_.end());
        } else {
          done.swap(waiters_);
        }
      }
      for (Waiter& w : done) std::move(w.done)(round.status);
      if (round.status.ok() && options_.on_sync) options_.on_sync(round.seconds, records);
    }
  }
}

void Journal::WhenDurable(uint64_t lsn, absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status now;
  {
    absl::MutexLock lock(&mu_);
    if (lsn > acked_lsn_) {
      if (!failed_.ok()) {
        now = failed_;
      } else if (acker_done_) {
        now = absl::UnavailableError("the journal is closed");
      } else {
        waiters_.push_back(Waiter{lsn, std::move(done)});
        return;
      }
    }
  }
  std::move(done)(std::move(now));
}

void Journal::CheckpointLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      absl::Time deadline = absl::Now() + absl::Milliseconds(options_.checkpoint_ms);
      while (!checkpoint_wanted_ && !stopping_) {
        if (checkpoint_cv_.WaitWithDeadline(&mu_, deadline)) {
          const bool journaled = (current_ && current_->used > kFileHeaderBytes) ||
                                 !closed_.empty();
          if (journaled && recovery_done_) break;
          deadline = absl::Now() + absl::Milliseconds(options_.checkpoint_ms);
        }
      }
      if (stopping_) return;
    }
    absl::Status s = RunCheckpoint();
    if (!s.ok()) spdlog::error("journal checkpoint: {}", s.ToString());
  }
}

absl::Status Journal::Checkpoint() { return RunCheckpoint(); }

absl::Status Journal::RunCheckpoint() {
  absl::MutexLock checkpoint(&checkpoint_mu_);
  const int64_t start = MonotonicNanos();
  std::vector<std::shared_ptr<File>> files;
  {
    absl::MutexLock lock(&mu_);
    checkpoint_wanted_ = false;
    if (!recovery_done_) return absl::OkStatus();
    // The current file closes; the next append starts a new one.
    if (current_ && current_->used > kFileHeaderBytes) closed_.push_back(std::move(current_));
    current_.reset();
    files = closed_;
    uint64_t target = 0;
    for (const auto& f : files) target = std::max(target, f->end_lsn);
    while (durable_lsn_ < target && failed_.ok()) durable_cv_.Wait(&mu_);
    if (!failed_.ok()) return failed_;
  }
  if (files.empty()) return absl::OkStatus();
  std::vector<std::shared_ptr<Member>> members;
  {
    absl::flat_hash_map<Member*, bool> seen;
    for (const auto& f : files) {
      for (const auto& m : f->dirty) {
        if (seen.emplace(m.get(), true).second) members.push_back(m);
      }
    }
  }
  // Every other checkpoint goes through them backwards: it starts with the partitions the last
  // one finished with, whose files the file cache (least recently used out first) still holds
  // when the partitions outnumber it.
  if (reverse_next_) std::reverse(members.begin(), members.end());
  reverse_next_ = !reverse_next_;
  // Many partitions: each writes its tail out, then one sync of the file system covers them all
  // (one device flush instead of one per partition).
  const bool whole_fs =
      !options_.sync_fs_path.empty() && members.size() >= options_.whole_fs_members;
  const uint64_t dir_mark = options_.dir_syncs ? options_.dir_syncs->Mark() : 0;
  absl::Mutex done_mu;
  size_t left = members.size();
  absl::Status error;
  for (const auto& m : members) {
    pool_.Schedule([m, whole_fs, &done_mu, &left, &error] {
      absl::Status s;
      {
        absl::ReaderMutexLock lock(&m->mu);
        if (m->client != nullptr) {
          s = whole_fs ? m->client->JournalWriteOut() : m->client->JournalCheckpoint();
        } else if (m->left_unsynced) {
          s = absl::FailedPreconditionError(
              StrCat("partition ", m->key, " closed before its segments were synced"));
        }
      }
      absl::MutexLock lock(&done_mu);
      if (!s.ok() && error.ok()) error = s;
      --left;
    });
  }
  {
    absl::MutexLock lock(&done_mu);
    done_mu.Await(absl::Condition(+[](size_t* n) { return *n == 0; }, &left));
  }
  // A member that cannot sync keeps the files: a restart replays them.
  if (!error.ok()) return error;
  if (whole_fs) {
    RETURN_IF_ERROR(fs_.SyncFileSystem(options_.sync_fs_path));
    if (options_.dir_syncs) options_.dir_syncs->SyncedUpTo(dir_mark);
    for (const auto& m : members) {
      absl::ReaderMutexLock lock(&m->mu);
      if (m->client != nullptr) m->client->JournalWrittenOutDurable();
    }
  }
  for (const auto& f : files) {
    absl::Status s = fs_.RemoveFile(f->path);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
  }
  {
    absl::MutexLock lock(&mu_);
    std::erase_if(closed_, [&](const std::shared_ptr<File>& f) {
      return std::find(files.begin(), files.end(), f) != files.end();
    });
    ++stats_.checkpoints;
    if (whole_fs) ++stats_.whole_fs_checkpoints;
  }
  if (options_.on_checkpoint) {
    options_.on_checkpoint(static_cast<double>(MonotonicNanos() - start) / 1e9, members.size(),
                           whole_fs);
  }
  return absl::OkStatus();
}

absl::Status Journal::Health() {
  absl::MutexLock lock(&mu_);
  return failed_;
}

JournalStats Journal::Stats() {
  absl::MutexLock lock(&mu_);
  JournalStats s = stats_;
  s.files = closed_.size() + (current_ ? 1 : 0);
  s.bytes = current_ ? current_->used : 0;
  for (const auto& f : closed_) s.bytes += f->used;
  return s;
}

}  // namespace nodata::log
