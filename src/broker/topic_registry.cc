#include "broker/internal/topic_registry.h"

#include <algorithm>
#include <optional>

#include "absl/strings/numbers.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "spdlog/spdlog.h"

namespace nodata::broker {
namespace {

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::Status CheckPartition(std::string_view topic, uint32_t partition_count,
                            PartitionId partition) {
  if (partition.value() < partition_count) return absl::OkStatus();
  return absl::InvalidArgumentError(StrCat("topic \"", topic, "\" has ", partition_count,
                                           " partitions; ", partition, " is out of range"));
}

TopicRegistry::TopicRegistry(const BrokerOptions& options, FileSystem& fs,
                             storage::TopicStore& topic_store, Probe& probe,
                             GroupCoordinator& groups)
    : options_(options),
      fs_(fs),
      dir_(options.data_dir),
      topic_store_(topic_store),
      probe_(probe),
      groups_(groups),
      syncer_(options.sync_threads) {}

TopicRegistry::~TopicRegistry() = default;

absl::Status TopicRegistry::Open() {
  RETURN_IF_ERROR(FinishDeletes());
  RETURN_IF_ERROR(fs_.RemoveAll(dir_.TrashRoot()));
  ASSIGN_OR_RETURN(std::vector<storage::TopicMeta> metas, topic_store_.List());
  absl::flat_hash_map<std::string, bool> known;
  for (const auto& meta : metas) {
    ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, MakeTopic(meta));
    {
      // Its dedupe state is restored by DedupeStore; publishing waits until then.
      absl::MutexLock lock(&topic->mu);
      topic->dedupe_restored = false;
    }
    topic->dedupe_pending.store(true, std::memory_order_release);
    // Topics open when first needed, or behind the serving (DedupeStore), so that a start
    // costs little per partition. Those with partitions holding records that only the journal
    // has come first there: the journal keeps its files until they took them (TakeJournal).
    if (HoldsJournaled(*topic)) journaled_.push_back(topic);
    known[meta.name] = true;
    absl::MutexLock lock(&topics_mu_);
    topics_[meta.name] = std::move(topic);
  }
  // Directories without a catalog entry are left over from a create or delete cut short.
  ASSIGN_OR_RETURN(std::vector<std::string> dirs, fs_.ListDir(dir_.LogRoot()));
  for (const std::string& dir : dirs) {
    if (!known.contains(dir)) {
      RETURN_IF_ERROR(fs_.RemoveAll(storage::DataDir::Child(dir_.LogRoot(), dir)));
    }
  }
  RETURN_IF_ERROR(fs_.CreateDirs(dir_.ColdRoot()));
  ASSIGN_OR_RETURN(std::vector<std::string> cold_dirs, fs_.ListDir(dir_.ColdRoot()));
  for (const std::string& dir : cold_dirs) {
    if (!known.contains(dir)) {
      RETURN_IF_ERROR(fs_.RemoveAll(storage::DataDir::Child(dir_.ColdRoot(), dir)));
    }
  }
  if (journaled_.empty()) {
    if (options_.log.journal) options_.log.journal->RecoveryDone();
    absl::MutexLock lock(&journal_mu_);
    journal_taken_ = true;
  } else {
    spdlog::info("{} topics, {} of them holding records in the journal", metas.size(),
                 journaled_.size());
  }
  return absl::OkStatus();
}

void TopicRegistry::TakeJournal(absl::FunctionRef<bool()> stopping) {
  if (journaled_.empty()) return;  // taken at Open
  const int64_t start = NowMicros();
  absl::Status status;
  for (const std::shared_ptr<Topic>& topic : journaled_) {
    if (stopping()) {
      status = absl::UnavailableError("the server is stopping");
      break;
    }
    if (absl::Status s = EnsureOpen(*topic); !s.ok()) {
      status = absl::Status(
          s.code(), StrCat("topic ", topic->name, " holds records only the journal has, and ",
                           "cannot be opened (the journal keeps its files until it can): ",
                           ToStd(s.message())));
      spdlog::error("{}", ToStd(status.message()));
      break;
    }
  }
  if (status.ok()) {
    options_.log.journal->RecoveryDone();
    spdlog::info("{} topics holding records in the journal opened in {} ms", journaled_.size(),
                 (NowMicros() - start) / 1000);
  }
  journaled_.clear();
  absl::MutexLock lock(&journal_mu_);
  journal_taken_ = status.ok();
  journal_status_ = status;
}

absl::Status TopicRegistry::AwaitJournalTaken() {
  absl::MutexLock lock(&journal_mu_);
  journal_mu_.Await(absl::Condition(
      +[](TopicRegistry* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->journal_mu_) {
        return r->journal_taken_ || !r->journal_status_.ok();
      },
      this));
  return journal_status_;
}

bool TopicRegistry::HoldsJournaled(const Topic& topic) const {
  const std::shared_ptr<log::Journal>& journal = options_.log.journal;
  if (!journal || options_.log.fsync != log::FsyncPolicy::kAlways) return false;
  for (uint32_t p = 0; p < topic.count(); ++p) {
    if (journal->HoldsRecovered(dir_.PartitionLogDir(topic.name, PartitionId(p)))) return true;
  }
  return false;
}

absl::Status TopicRegistry::EnsureOpen(Topic& topic) {
  if (topic.is_open()) return absl::OkStatus();
  absl::MutexLock lock(&topic.open_mu);
  if (topic.is_open()) return absl::OkStatus();
  if (!topic.open_status.ok()) return topic.open_status;
  {
    absl::MutexLock topic_lock(&topic.mu);
    if (topic.deleted) {
      return absl::NotFoundError(StrCat("topic \"", topic.name, "\" was deleted"));
    }
  }
  // Grows need the partitions open (they Find the topic first): the count is stable here.
  const uint32_t n = topic.count();
  for (uint32_t p = 0; p < n; ++p) {
    auto part = OpenPartition(topic, PartitionId(p));
    if (!part.ok()) {
      for (uint32_t q = 0; q < p; ++q) topic.parts[q].reset();
      topic.open_status = part.status();
      spdlog::error("{}", ToStd(part.status().message()));
      return topic.open_status;
    }
    topic.parts[p] = *std::move(part);
  }
  probe_.AddTopic(topic);
  topic.opened.store(true, std::memory_order_release);
  return absl::OkStatus();
}

std::vector<std::shared_ptr<Topic>> TopicRegistry::All() {
  absl::MutexLock lock(&topics_mu_);
  std::vector<std::shared_ptr<Topic>> out;
  for (const auto& [name, topic] : topics_) out.push_back(topic);
  return out;
}

storage::RetentionPolicy TopicRegistry::RetentionOf(const Topic& topic) const {
  storage::RetentionPolicy p;
  const int64_t ms = topic.retention_ms.load();
  const int64_t bytes = topic.retention_bytes.load();
  // The topic's own setting, else (0) the server's default; -1 and 0 in the policy: none.
  const int64_t eff_ms = ms != storage::kRetentionDefault ? ms : options_.retention_ms;
  const int64_t eff_bytes = bytes != storage::kRetentionDefault ? bytes : options_.retention_bytes;
  p.max_age_us = eff_ms > 0 ? eff_ms * 1000 : 0;
  p.max_bytes = eff_bytes > 0 ? static_cast<uint64_t>(eff_bytes) : 0;
  return p;
}

void TopicRegistry::SyncAll() {
  for (const auto& topic : All()) {
    if (!topic->is_open()) continue;  // nothing written since its last start
    for (uint32_t p = 0; p < topic->count(); ++p) topic->parts[p]->Sync().IgnoreError();
  }
}

absl::Status TopicRegistry::FinishDeletes() {
  if (!fs_.Exists(dir_.TrashRoot())) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> entries, fs_.ListDir(dir_.TrashRoot()));
  std::optional<std::vector<storage::TopicMeta>> metas;
  for (const std::string& entry : entries) {
    const std::string path = dir_.TrashEntry(entry);
    // Without its log directory, the delete never moved anything.
    if (!fs_.Exists(storage::DataDir::TrashedLog(path))) continue;
    auto content = fs_.ReadFile(storage::DataDir::TrashedName(path));
    if (!content.ok()) continue;
    // "name\ncreated_at_us"; entries written before the creation time was kept hold the name.
    const std::string_view text = *content;
    const size_t newline = text.find('\n');
    const std::string name(text.substr(0, newline));
    auto topic = TopicName::Parse(name);
    if (!topic.ok()) continue;
    if (newline == std::string_view::npos) {
      if (fs_.Exists(dir_.TopicLogDir(*topic))) continue;  // moved back, or a newer topic
    } else {
      // The catalog's topic of the name must be the one deleted, not a newer one.
      int64_t created_at_us = 0;
      if (!absl::SimpleAtoi(Absl(text.substr(newline + 1)), &created_at_us)) continue;
      if (!metas) {
        ASSIGN_OR_RETURN(metas, topic_store_.List());
      }
      auto it = std::find_if(metas->begin(), metas->end(),
                             [&](const storage::TopicMeta& m) { return m.name == name; });
      if (it == metas->end() || it->created_at_us != created_at_us) continue;
    }
    absl::Status s = topic_store_.Delete(name);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
    if (s.ok()) spdlog::info("topic {}: finished its delete cut short", name);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Topic>> TopicRegistry::MakeTopic(const storage::TopicMeta& meta) {
  auto name = TopicName::Parse(meta.name);
  if (!name.ok()) {
    return absl::DataLossError(
        StrCat("the catalog holds a bad topic name: ", ToStd(name.status().message())));
  }
  auto topic = std::make_shared<Topic>(
      *std::move(name), meta.partitions, std::max(meta.partitions, options_.max_partitions),
      meta.created_at_us, options_.dedupe_window_ms * 1000,
      static_cast<size_t>(options_.dedupe_max_ids));
  topic->retention_ms = meta.retention_ms;
  topic->retention_bytes = meta.retention_bytes;
  topic->key_format = meta.key_format;
  topic->data_format = meta.data_format;
  topic->opened.store(false, std::memory_order_relaxed);
  return topic;
}

absl::StatusOr<std::unique_ptr<storage::Partition>> TopicRegistry::OpenPartition(
    const Topic& topic, PartitionId p) {
  const TopicName& name = topic.name;
  // Parquet files carry the topic's formats as logical types.
  parquet::WriterOptions parquet_options = options_.parquet;
  parquet_options.key_format = topic.key_format;
  parquet_options.data_format = topic.data_format;
  auto part = storage::Partition::Open(fs_, dir_.PartitionLogDir(name, p),
                                       dir_.PartitionColdDir(name, p), options_.log, syncer_,
                                       parquet_options);
  if (!part.ok()) {
    return absl::Status(part.status().code(), StrCat("topic ", name, " partition ", p, ": ",
                                                     ToStd(part.status().message())));
  }
  return part;
}

absl::Status ValidateTopicConfig(const TopicConfig& config) {
  if (config.retention_ms < -1 || config.retention_bytes < -1 ||
      config.retention_ms > INT64_MAX / 1000) {
    return absl::InvalidArgumentError(
        "retention_ms and retention_bytes must be positive, 0 (the server's default) or -1 "
        "(unlimited)");
  }
  return absl::OkStatus();
}

absl::StatusOr<TopicInfo> TopicRegistry::Create(std::string_view name, uint32_t partitions,
                                                TopicConfig config) {
  RETURN_IF_ERROR(ValidateNewName("topic", name));
  RETURN_IF_ERROR(ValidateTopicConfig(config));
  if (partitions == 0) partitions = options_.default_partitions;
  if (partitions > options_.max_partitions) {
    return absl::InvalidArgumentError(StrCat("partitions is ", partitions, "; the limit is ",
                                             options_.max_partitions));
  }
  absl::MutexLock admin(&admin_mu_);
  {
    absl::MutexLock lock(&topics_mu_);
    if (topics_.contains(Absl(name))) {
      return absl::AlreadyExistsError(StrCat("topic \"", name, "\" already exists"));
    }
  }
  storage::TopicMeta meta{std::string(name), partitions, NowMicros(), config.retention_ms,
                          config.retention_bytes, config.key_format, config.data_format};
  // Directories first: a crash before the catalog entry leaves an orphan that the next start
  // removes; the catalog entry then makes the topic exist.
  ASSIGN_OR_RETURN(const TopicName topic_name, TopicName::Parse(name));
  const std::string dir = dir_.TopicLogDir(topic_name);
  const std::string cold_dir = dir_.TopicColdDir(topic_name);
  RETURN_IF_ERROR(fs_.RemoveAll(dir));
  RETURN_IF_ERROR(fs_.RemoveAll(cold_dir));
  auto topic = MakeTopic(meta);
  absl::Status opened = topic.ok() ? EnsureOpen(**topic) : topic.status();
  if (!opened.ok()) {
    fs_.RemoveAll(dir).IgnoreError();
    fs_.RemoveAll(cold_dir).IgnoreError();
    return opened;
  }
  // The catalog entry is the topic. Its files come with its records: a partition's log
  // directory (and the topic's) with its first record, which syncs their entries before a
  // checkpoint lets the journal go; its cold directories with its first Parquet file.
  absl::Status s = topic_store_.Create(meta);
  if (!s.ok()) {
    topic->reset();
    fs_.RemoveAll(dir).IgnoreError();
    fs_.RemoveAll(cold_dir).IgnoreError();
    return s;
  }
  TopicInfo info = Describe(**topic);
  absl::MutexLock lock(&topics_mu_);
  topics_[meta.name] = std::move(*topic);
  return info;
}

absl::StatusOr<std::shared_ptr<Topic>> TopicRegistry::FindOrCreate(std::string_view name) {
  if (std::shared_ptr<Topic> found = Get(name)) {
    RETURN_IF_ERROR(EnsureOpen(*found));
    return found;
  }
  if (!options_.auto_create_topics) {
    return absl::NotFoundError(
        StrCat("topic \"", name, "\" does not exist and auto-create is off"));
  }
  auto created = Create(name, 0, TopicConfig{});
  if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
    return created.status();
  }
  std::shared_ptr<Topic> found = Get(name);
  if (!found) return absl::NotFoundError(StrCat("topic \"", name, "\" was deleted"));
  RETURN_IF_ERROR(EnsureOpen(*found));
  return found;
}

absl::Status TopicRegistry::FindOrCreateAll(absl::Span<const std::string_view> names,
                                            std::vector<std::shared_ptr<Topic>>* out) {
  out->clear();
  out->resize(names.size());
  {
    // Each lookup misses the cache on the table's slot and then on the topic's reference
    // count: both are started a few names ahead.
    constexpr size_t kAhead = 4;
    thread_local std::vector<const std::shared_ptr<Topic>*> found;
    found.assign(names.size(), nullptr);
    absl::MutexLock lock(&topics_mu_);
    for (size_t i = 0; i < std::min(kAhead, names.size()); ++i) topics_.prefetch(Absl(names[i]));
    for (size_t i = 0; i < names.size(); ++i) {
      if (i + kAhead < names.size()) topics_.prefetch(Absl(names[i + kAhead]));
      auto it = topics_.find(Absl(names[i]));
      if (it == topics_.end()) continue;
      found[i] = &it->second;
      // make_shared put the reference count just before the topic.
      const char* topic = reinterpret_cast<const char*>(it->second.get());
      __builtin_prefetch(topic - 16);
      __builtin_prefetch(topic);
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (found[i] != nullptr) (*out)[i] = *found[i];
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if ((*out)[i]) {
      RETURN_IF_ERROR(EnsureOpen(*(*out)[i]));
    } else {
      ASSIGN_OR_RETURN((*out)[i], FindOrCreate(names[i]));
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<Topic> TopicRegistry::Get(std::string_view name) {
  absl::MutexLock lock(&topics_mu_);
  auto it = topics_.find(Absl(name));
  return it == topics_.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<Topic>> TopicRegistry::Lookup(std::string_view name) {
  RETURN_IF_ERROR(ValidateTopicName(name));
  std::shared_ptr<Topic> found = Get(name);
  if (!found) return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  return found;
}

absl::StatusOr<std::shared_ptr<Topic>> TopicRegistry::Find(std::string_view name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Lookup(name));
  RETURN_IF_ERROR(EnsureOpen(*topic));
  return topic;
}

TopicInfo TopicRegistry::Describe(const Topic& topic) const {
  TopicInfo info;
  info.name = topic.name.str();
  info.partition_count = topic.count();
  info.created_at_us = topic.created_at_us;
  info.config.retention_ms = topic.retention_ms.load();
  info.config.retention_bytes = topic.retention_bytes.load();
  info.config.key_format = topic.key_format;
  info.config.data_format = topic.data_format;
  const storage::RetentionPolicy policy = RetentionOf(topic);
  info.retention_ms = policy.max_age_us > 0 ? policy.max_age_us / 1000 : -1;
  info.retention_bytes = policy.max_bytes > 0 ? static_cast<int64_t>(policy.max_bytes) : -1;
  // A topic whose partitions could not be opened is described without them.
  if (!topic.is_open()) return info;
  for (uint32_t p = 0; p < topic.count(); ++p) {
    PartitionInfo pi;
    pi.partition = PartitionId(p);
    pi.stats = topic.parts[p]->Stats();
    info.partitions.push_back(pi);
  }
  return info;
}

absl::Status TopicRegistry::Delete(std::string_view name) {
  RETURN_IF_ERROR(ValidateTopicName(name));
  absl::MutexLock admin(&admin_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Lookup(name));
  // The checkpoint below must be able to let the journal's files go.
  if (options_.log.journal) {
    if (absl::Status s = AwaitJournalTaken(); !s.ok()) {
      return absl::Status(s.code(), StrCat("deleting topic \"", name, "\" (nothing was deleted): ",
                                           ToStd(s.message())));
    }
  }
  // A topic whose partitions cannot be opened (damaged files) can still be deleted: its files
  // move to the trash as they are.
  const bool open = EnsureOpen(*topic).ok();
  const uint32_t open_count = open ? topic->count() : 0;
  // All or nothing: the topic's directories move into a trash entry of a short, unique name
  // (any topic name fits under it), and only then does the catalog entry go. Should a step
  // fail, the earlier ones are undone and the topic stays as it was (if the files cannot be
  // moved back, the topic goes at once, as the next start would decide). The entry's `topic` file
  // lets the next start finish a delete cut short after the first move (see Open).
  const std::string dir = dir_.TopicLogDir(topic->name);
  const std::string cold_dir = dir_.TopicColdDir(topic->name);
  const std::string trash = dir_.TrashEntry(StrCat(NowMicros(), "-", ++trash_seq_));
  const std::string trash_log = storage::DataDir::TrashedLog(trash);
  const std::string trash_cold = storage::DataDir::TrashedCold(trash);
  auto cleanup = [&](absl::Status s) {
    fs_.RemoveAll(trash).IgnoreError();
    return absl::Status(s.code(), StrCat("deleting topic \"", name, "\" (nothing was deleted): ",
                                         ToStd(s.message())));
  };
  if (absl::Status s = fs_.CreateDirs(trash); !s.ok()) return cleanup(s);
  // The name, and which topic of the name: a later one may have no files yet.
  if (absl::Status s = fs_.WriteFileAtomic(storage::DataDir::TrashedName(trash),
                                           StrCat(name, "\n", topic->created_at_us));
      !s.ok()) {
    return cleanup(s);
  }
  // Running compaction finishes its file first and none starts after this. Before topic->mu:
  // a compaction can take seconds, and publishes need not wait for it. They wait for the moves
  // below only; one that got in first is stored before the delete and goes with the topic.
  for (uint32_t p = 0; p < open_count; ++p) topic->parts[p]->Close();
  // A failed step; the topic stays when its files are moved back (`undone`).
  absl::Status failed;
  bool undone = false;
  {
    absl::MutexLock lock(&topic->mu);
    // Nothing of the topic may stay in the journal only: a later topic of the same name would
    // be handed its records by a recovery. Under topic->mu, no append comes in between.
    if (options_.log.journal) failed = options_.log.journal->Checkpoint();
    // A topic never written has no log directory: an empty one in the trash marks it moved.
    const bool has_log = fs_.Exists(dir);
    if (failed.ok()) failed = has_log ? fs_.Rename(dir, trash_log) : fs_.CreateDirs(trash_log);
    const bool log_moved = failed.ok();
    bool cold_moved = false;
    if (failed.ok() && fs_.Exists(cold_dir)) {
      failed = fs_.Rename(cold_dir, trash_cold);
      cold_moved = failed.ok();
    }
    if (failed.ok()) failed = topic_store_.Delete(name);
    if (!failed.ok()) {
      absl::Status back;
      if (cold_moved) back = fs_.Rename(trash_cold, cold_dir);
      if (log_moved && back.ok()) {
        back = has_log ? fs_.Rename(trash_log, dir) : fs_.RemoveAll(trash_log);
      }
      undone = back.ok();
      if (!undone) {
        // Short of a broken disk, a move just made can be reversed. If not, the hot tier's
        // files are in the trash entry and the next start completes the delete: the topic
        // goes now, so that no publish is acknowledged into files about to be removed.
        spdlog::error("topic {}: cannot move its files back from {}: {}", name, trash,
                      ToStd(back.message()));
        failed = absl::Status(failed.code(),
                              StrCat("deleting topic \"", name, "\": ", ToStd(failed.message()),
                                     "; its files cannot be moved back, so the topic is deleted "
                                     "now and its files are removed at the next start"));
      }
    }
    if (!undone) {
      topic->deleted = true;
      // Its files are in the trash: a path the partitions knew may soon be a new topic's.
      for (uint32_t p = 0; p < open_count; ++p) topic->parts[p]->Retire();
      if (open) probe_.RemoveTopic(*topic);
    }
  }
  if (undone) {
    for (uint32_t p = 0; p < open_count; ++p) topic->parts[p]->Resume();
    return cleanup(failed);
  }
  {
    absl::MutexLock lock(&topics_mu_);
    topics_.erase(Absl(name));
  }
  // Subscribers waiting for records read again and find the topic gone.
  for (uint32_t p = 0; p < open_count; ++p) topic->parts[p]->WakeReaders();
  groups_.RevokeTopic(std::string(name));
  // The catalog dropped the topic's group offsets with its row (a trigger).
  probe_.RemoveTopicLag(name);
  if (!failed.ok()) return failed;
  // The topic is gone; files left in the trash (a publish in flight may hold some open) are
  // removed at the next start.
  if (absl::Status s = fs_.RemoveAll(trash); !s.ok()) {
    spdlog::warn("topic {} deleted; its files stay in {} until the next start: {}", name, trash,
                 ToStd(s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TopicInfo> TopicRegistry::AddPartitions(std::string_view name, uint32_t partitions) {
  absl::MutexLock admin(&admin_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  const uint32_t current = topic->count();
  if (partitions < current) {
    return absl::InvalidArgumentError(StrCat("topic \"", name, "\" has ", current,
                                             " partitions; partitions can only be added, not "
                                             "removed (asked for ", partitions, ")"));
  }
  const uint32_t limit = std::min<uint32_t>(options_.max_partitions, topic->parts.size());
  if (partitions > limit) {
    return absl::InvalidArgumentError(StrCat("partitions is ", partitions, "; the limit is ",
                                             limit));
  }
  if (partitions == current) return Describe(*topic);
  // New partitions' directories first (any leftover of a grow cut short goes), then the catalog
  // entry makes them exist; until then no record is routed to them.
  const std::string dir = dir_.TopicLogDir(topic->name);
  const std::string cold_dir = dir_.TopicColdDir(topic->name);
  std::vector<std::unique_ptr<storage::Partition>> added;
  auto undo = [&](absl::Status s) {
    added.clear();
    for (uint32_t p = current; p < partitions; ++p) {
      fs_.RemoveAll(dir_.PartitionLogDir(topic->name, PartitionId(p))).IgnoreError();
      fs_.RemoveAll(dir_.PartitionColdDir(topic->name, PartitionId(p))).IgnoreError();
    }
    return s;
  };
  for (uint32_t p = current; p < partitions; ++p) {
    absl::Status clean = fs_.RemoveAll(dir_.PartitionLogDir(topic->name, PartitionId(p)));
    if (clean.ok()) clean = fs_.RemoveAll(dir_.PartitionColdDir(topic->name, PartitionId(p)));
    if (!clean.ok()) return undo(clean);
    auto part = OpenPartition(*topic, PartitionId(p));
    if (!part.ok()) return undo(part.status());
    added.push_back(std::move(*part));
  }
  absl::Status s = fs_.Exists(dir) ? fs_.SyncDir(dir) : absl::OkStatus();
  if (s.ok() && fs_.Exists(cold_dir)) s = fs_.SyncDir(cold_dir);
  if (s.ok()) s = topic_store_.SetPartitions(name, partitions);
  if (!s.ok()) return undo(s);
  {
    // Publishes route under topic->mu: each one sees either the old count or the new one.
    absl::MutexLock lock(&topic->mu);
    for (uint32_t p = current; p < partitions; ++p) {
      topic->parts[p] = std::move(added[p - current]);
      probe_.AddPartition(*topic, p);
    }
    topic->partitions.store(partitions, std::memory_order_release);
  }
  // Subscribers reading every partition wait on the old ones: they look again and find the new.
  for (uint32_t p = 0; p < current; ++p) topic->parts[p]->WakeReaders();
  groups_.GrowTopic(topic->name.str(), partitions);
  spdlog::info("topic {}: {} partitions, was {}", name, partitions, current);
  return Describe(*topic);
}

absl::StatusOr<TopicInfo> TopicRegistry::SetRetention(std::string_view name, TopicConfig config) {
  RETURN_IF_ERROR(ValidateTopicConfig(config));
  absl::MutexLock admin(&admin_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  RETURN_IF_ERROR(topic_store_.SetRetention(name, config.retention_ms, config.retention_bytes));
  topic->retention_ms = config.retention_ms;
  topic->retention_bytes = config.retention_bytes;
  return Describe(*topic);
}

absl::StatusOr<Offset> TopicRegistry::ResolveStart(std::string_view name, PartitionId partition,
                                                   const StartSpec& start,
                                                   std::optional<Offset> committed) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  storage::Partition& part = topic->part(partition);
  const storage::StorageStats s = part.Stats();
  switch (start.kind) {
    case StartSpec::Kind::kEarliest:
      return s.start_offset;
    case StartSpec::Kind::kLatest:
      return s.end_offset;
    case StartSpec::Kind::kCommitted:
      if (!committed) return s.start_offset;
      // Retention may have deleted past the committed offset: go on from what is left.
      return std::clamp(*committed, s.start_offset, s.end_offset);
    case StartSpec::Kind::kOffset:
      if (start.offset < s.start_offset) {
        return absl::OutOfRangeError(StrCat("offset ", start.offset, " of partition ", partition,
                                            " was deleted; the earliest is ", s.start_offset));
      }
      if (start.offset > s.end_offset) {
        return absl::OutOfRangeError(StrCat("offset ", start.offset, " is past the end ",
                                            s.end_offset, " of partition ", partition));
      }
      return start.offset;
    case StartSpec::Kind::kTime:
      return part.OffsetForTime(start.time_us);
  }
  return absl::InternalError("unknown start position");
}

}  // namespace nodata::broker
