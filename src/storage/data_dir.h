// The data directory's layout, in one place. Persistent format: existing data directories are
// found by these paths, so none of them is ever renamed.
//
//   DATA/LOCK                                 DataDirLock's lock file
//   DATA/meta.db                              the catalog (SQLite)
//   DATA/log/<topic>/<partition>/             hot tier: a partition's segments
//   DATA/journal/<seq>.wal                    hot tier: the shared write-ahead journal
//   DATA/topics/<topic>/partition=<p>/        cold tier: a partition's Parquet files
//   DATA/trash/<entry>/{topic,log,topics}     a topic being deleted (its name, both tiers)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/ids.h"

namespace nodata::storage {

// Paths of a data directory's parts. A value; thread-compatible.
class DataDir {
 public:
  explicit DataDir(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string LockPath() const;
  std::string CatalogPath() const;

  // Roots of the tiers; each topic has one directory under each, named after it (a TopicName
  // is safe as one). What else is found under a root is a child of it: see Child.
  std::string LogRoot() const;
  std::string JournalRoot() const;
  std::string ColdRoot() const;
  std::string TopicLogDir(const TopicName& topic) const;
  // The topic's dedupe checkpoint (docs/formats/dedupe.md), in its log directory.
  std::string DedupeCheckpoint(const TopicName& topic) const;
  std::string TopicColdDir(const TopicName& topic) const;
  std::string PartitionLogDir(const TopicName& topic, PartitionId partition) const;
  std::string PartitionColdDir(const TopicName& topic, PartitionId partition) const;
  // `entry`, a name listed in directory `root`, as a path.
  static std::string Child(std::string_view root, std::string_view entry);

  // WebAssembly component modules by content: <root>/components/<sha256>.wasm.
  std::string ComponentsRoot() const;
  std::string ComponentModule(std::string_view sha256_hex) const;
  // Program components' working directories: <root>/programs/<component name> (a name checked
  // by the components module; what a program writes there stays after it is removed).
  std::string ProgramWorkDir(std::string_view component) const;

  // Deleted topics: an entry of a short unique name (any topic name fits under it) holding the
  // topic's name and its two tier directories, moved there whole.
  std::string TrashRoot() const;
  std::string TrashEntry(std::string_view entry) const;
  static std::string TrashedName(std::string_view entry_path);
  static std::string TrashedLog(std::string_view entry_path);
  static std::string TrashedCold(std::string_view entry_path);

 private:
  std::string root_;
};

}  // namespace nodata::storage
