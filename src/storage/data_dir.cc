#include "storage/data_dir.h"

#include "common/strings.h"

namespace nodata::storage {

std::string DataDir::LockPath() const { return root_ + "/LOCK"; }
std::string DataDir::CatalogPath() const { return root_ + "/meta.db"; }
std::string DataDir::LogRoot() const { return root_ + "/log"; }
std::string DataDir::JournalRoot() const { return root_ + "/journal"; }
std::string DataDir::ColdRoot() const { return root_ + "/topics"; }
std::string DataDir::TrashRoot() const { return root_ + "/trash"; }
std::string DataDir::ComponentsRoot() const { return root_ + "/components"; }
std::string DataDir::ProgramWorkDir(std::string_view component) const {
  return StrCat(root_, "/programs/", component);
}
std::string DataDir::ComponentModule(std::string_view sha256_hex) const {
  return StrCat(ComponentsRoot(), "/", sha256_hex, ".wasm");
}

std::string DataDir::TopicLogDir(const TopicName& topic) const {
  return StrCat(LogRoot(), "/", topic);
}
std::string DataDir::DedupeCheckpoint(const TopicName& topic) const {
  return StrCat(LogRoot(), "/", topic, "/dedupe.checkpoint");
}
std::string DataDir::TopicColdDir(const TopicName& topic) const {
  return StrCat(ColdRoot(), "/", topic);
}
std::string DataDir::PartitionLogDir(const TopicName& topic, PartitionId partition) const {
  return StrCat(LogRoot(), "/", topic, "/", partition);
}
std::string DataDir::PartitionColdDir(const TopicName& topic, PartitionId partition) const {
  return StrCat(ColdRoot(), "/", topic, "/partition=", partition);
}

std::string DataDir::Child(std::string_view root, std::string_view entry) {
  return StrCat(root, "/", entry);
}

std::string DataDir::TrashEntry(std::string_view entry) const {
  return StrCat(TrashRoot(), "/", entry);
}
std::string DataDir::TrashedName(std::string_view entry_path) {
  return StrCat(entry_path, "/topic");
}
std::string DataDir::TrashedLog(std::string_view entry_path) { return StrCat(entry_path, "/log"); }
std::string DataDir::TrashedCold(std::string_view entry_path) {
  return StrCat(entry_path, "/topics");
}

}  // namespace nodata::storage
