#include "broker/internal/group_manager.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"

namespace nodata::broker {

absl::StatusOr<std::map<PartitionId, Offset>> GroupManager::CommittedOffsets(
    std::string_view group, std::string_view topic) {
  RETURN_IF_ERROR(ValidateName("group", group));
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> t, topics_.Find(topic));
  return offset_store_.Get(group, topic);
}

absl::Status GroupManager::CommitOffsets(std::string_view group, std::string_view name,
                                         const std::vector<std::pair<PartitionId, Offset>>& offsets,
                                         uint64_t generation, std::string_view consumer_id) {
  RETURN_IF_ERROR(ValidateGroup(group, name));
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, topics_.Find(name));
  if (offsets.empty()) return absl::InvalidArgumentError("no offsets to commit");
  if (generation > 0) {
    // Fenced commit: only the current owner of each partition, in the current generation.
    const GroupInfo live = coordinator_.Describe(std::string(group), std::string(name));
    if (live.generation != generation) {
      return absl::FailedPreconditionError(
          StrCat("group \"", group, "\" is at generation ", live.generation, ", not ",
                 generation, ": the commit is from before a rebalance"));
    }
    for (const auto& [p, offset] : offsets) {
      auto owner = live.owner.find(p);
      if (owner == live.owner.end() || owner->second != consumer_id) {
        return absl::FailedPreconditionError(StrCat("partition ", p, " is not assigned to \"",
                                                    consumer_id, "\" in generation ",
                                                    generation));
      }
    }
  }
  for (const auto& [p, offset] : offsets) {
    RETURN_IF_ERROR(CheckPartition(name, topic->count(), p));
    const Offset end = topic->part(p).end_offset();
    if (offset > end) {
      return absl::OutOfRangeError(StrCat("offset ", offset, " is past the end ", end,
                                          " of partition ", p));
    }
  }
  RETURN_IF_ERROR(offset_store_.Commit(group, name, offsets));
  return absl::OkStatus();
}

absl::StatusOr<GroupDescription> GroupManager::DescribeGroup(std::string_view group,
                                                             std::string_view name) {
  RETURN_IF_ERROR(ValidateName("group", group));
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, topics_.Find(name));
  ASSIGN_OR_RETURN(auto committed, offset_store_.Get(group, name));
  GroupDescription d;
  d.group = std::string(group);
  d.topic = std::string(name);
  d.live = coordinator_.Describe(d.group, d.topic);
  if (d.live.members.empty() && committed.empty()) {
    return absl::NotFoundError(
        StrCat("group \"", group, "\" has no members and no committed offsets on topic \"",
               name, "\""));
  }
  for (uint32_t i = 0; i < topic->count(); ++i) {
    const PartitionId p(i);
    const storage::StorageStats s = topic->part(p).Stats();
    GroupPartitionInfo gp;
    gp.partition = p;
    gp.end_offset = s.end_offset;
    auto it = committed.find(p);
    if (it != committed.end()) gp.committed = it->second;
    const Offset from = std::clamp(gp.committed.value_or(s.start_offset), s.start_offset,
                                   s.end_offset);
    gp.lag = s.end_offset - from;
    auto owner = d.live.owner.find(p);
    if (owner != d.live.owner.end()) gp.owner = owner->second;
    d.partitions.push_back(std::move(gp));
  }
  return d;
}

absl::StatusOr<std::vector<GroupSummary>> GroupManager::ListGroups(std::string_view topic) {
  if (!topic.empty()) RETURN_IF_ERROR(topics_.Find(topic).status());
  ASSIGN_OR_RETURN(auto stored, offset_store_.ListGroups());
  std::set<std::pair<std::string, std::string>> keys(stored.begin(), stored.end());
  for (const auto& [key, n] : coordinator_.Live()) keys.insert(key);
  std::vector<GroupSummary> out;
  for (const auto& [group, name] : keys) {
    if (!topic.empty() && name != topic) continue;
    auto d = DescribeGroup(group, name);
    if (!d.ok()) continue;  // its topic was deleted meanwhile
    GroupSummary sum{group, name, static_cast<uint32_t>(d->live.members.size()), 0};
    for (const auto& p : d->partitions) sum.lag += p.lag;
    out.push_back(std::move(sum));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<PartitionId, Offset>>> GroupManager::ResetOffsets(
    std::string_view group, std::string_view name, const StartSpec& to,
    const std::vector<PartitionId>& partitions) {
  RETURN_IF_ERROR(ValidateGroup(group, name));
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, topics_.Find(name));
  if (to.kind == StartSpec::Kind::kCommitted) {
    return absl::InvalidArgumentError("reset needs earliest, latest, an offset or a timestamp");
  }
  std::vector<PartitionId> chosen = partitions;
  if (chosen.empty()) {
    for (uint32_t p = 0; p < topic->count(); ++p) chosen.push_back(PartitionId(p));
  }
  std::vector<std::pair<PartitionId, Offset>> offsets;
  for (PartitionId p : chosen) {
    ASSIGN_OR_RETURN(Offset offset, topics_.ResolveStart(name, p, to, std::nullopt));
    offsets.emplace_back(p, offset);
  }
  // Atomic with joins, as in DeleteGroup: a member's commits would mix with the reset.
  absl::Status committed;
  if (!coordinator_.IfNoMembers(std::string(group), std::string(name),
                           [&] { committed = offset_store_.Commit(group, name, offsets); })) {
    return absl::FailedPreconditionError(
        StrCat("group \"", group, "\" has live members on topic \"", name,
               "\"; stop them before resetting its offsets"));
  }
  RETURN_IF_ERROR(committed);
  return offsets;
}

absl::Status GroupManager::ValidateGroup(std::string_view group, std::string_view topic) {
  RETURN_IF_ERROR(ValidateName("group", group));
  absl::Status fresh = ValidateNewName("group", group);
  if (fresh.ok() || coordinator_.HasMembers(std::string(group), std::string(topic))) {
    return absl::OkStatus();
  }
  // A group stored before new names were refused a leading '-' goes on working.
  auto committed = offset_store_.Get(group, topic);
  if (committed.ok() && !committed->empty()) return absl::OkStatus();
  return fresh;
}

absl::Status GroupManager::DeleteGroup(std::string_view group, std::string_view name) {
  RETURN_IF_ERROR(ValidateName("group", group));
  RETURN_IF_ERROR(topics_.Find(name).status());
  // Atomic with joins: a member joining meanwhile could commit and then lose its offsets.
  absl::StatusOr<int> deleted = 0;
  if (!coordinator_.IfNoMembers(std::string(group), std::string(name),
                           [&] { deleted = offset_store_.Delete(group, name); })) {
    return absl::FailedPreconditionError(
        StrCat("group \"", group, "\" has live members on topic \"", name,
               "\"; stop them before deleting the group"));
  }
  RETURN_IF_ERROR(deleted.status());
  if (*deleted == 0) {
    return absl::NotFoundError(
        StrCat("group \"", group, "\" has no committed offsets on topic \"", name, "\""));
  }
  probe_.RemoveGroupLag(group, name);
  return absl::OkStatus();
}


std::set<std::pair<std::string, std::string>> GroupManager::Keys() {
  auto stored = offset_store_.ListGroups();
  std::set<std::pair<std::string, std::string>> keys;
  if (stored.ok()) keys.insert(stored->begin(), stored->end());
  for (const auto& [key, n] : coordinator_.Live()) keys.insert(key);
  return keys;
}

std::vector<GroupDescription> GroupManager::DescribeAll() {
  std::vector<GroupDescription> out;
  for (const auto& [group, topic] : Keys()) {
    auto d = DescribeGroup(group, topic);
    if (d.ok()) out.push_back(std::move(*d));
  }
  return out;
}

}  // namespace nodata::broker
