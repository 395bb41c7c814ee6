// Consumer groups: membership, offsets, fencing, lag. Internal to broker/.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/internal/probe.h"
#include "broker/internal/topic_registry.h"
#include "storage/offset_store.h"

namespace nodata::broker {

// Consumer groups of the registry's topics: live membership and assignment (the
// GroupCoordinator), committed offsets (in the catalog), fenced commits, lag, and the admin
// operations (describe, list, reset, delete). Each method is Broker's of the same name. Safe for
// concurrent use; every argument must outlive the manager.
class GroupManager {
 public:
  GroupManager(TopicRegistry& topics, storage::OffsetStore& offset_store,
               GroupCoordinator& coordinator, Probe& probe)
      : topics_(topics), offset_store_(offset_store), coordinator_(coordinator), probe_(probe) {}

  GroupCoordinator& coordinator() { return coordinator_; }

  absl::Status ValidateGroup(std::string_view group, std::string_view topic);
  absl::Status CommitOffsets(std::string_view group, std::string_view topic,
                             const std::vector<std::pair<PartitionId, Offset>>& offsets,
                             uint64_t generation, std::string_view consumer_id);
  absl::StatusOr<std::map<PartitionId, Offset>> CommittedOffsets(std::string_view group,
                                                                std::string_view topic);
  absl::StatusOr<GroupDescription> DescribeGroup(std::string_view group, std::string_view topic);
  absl::StatusOr<std::vector<GroupSummary>> ListGroups(std::string_view topic);
  absl::StatusOr<std::vector<std::pair<PartitionId, Offset>>> ResetOffsets(
      std::string_view group, std::string_view topic, const StartSpec& to,
      const std::vector<PartitionId>& partitions);
  absl::Status DeleteGroup(std::string_view group, std::string_view topic);

  // Every group on every topic that has members or committed offsets, described now (for the
  // lag gauges); groups whose topic went meanwhile are left out.
  std::vector<GroupDescription> DescribeAll();

 private:
  // (group, topic) of every group with committed offsets or live members.
  std::set<std::pair<std::string, std::string>> Keys();

  TopicRegistry& topics_;
  storage::OffsetStore& offset_store_;
  GroupCoordinator& coordinator_;
  Probe& probe_;
};

}  // namespace nodata::broker
