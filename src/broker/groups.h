// Consumer-group membership: the live members of each (group, topic) and which partitions each
// one reads. Committed offsets are durable in the catalog; membership lives as long as the
// members' streams.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"

namespace nodata::broker {

struct Assignment {
  std::vector<PartitionId> partitions;
  uint64_t generation = 0;
  // The member was replaced by a newer subscription with its consumer id: it must stop.
  bool revoked = false;
};

struct MemberInfo {
  std::string consumer_id;
  std::string peer;
  int64_t joined_at_us = 0;
  std::vector<PartitionId> partitions;
};

struct GroupInfo {
  uint64_t generation = 0;
  std::vector<MemberInfo> members;      // by consumer id
  std::map<PartitionId, std::string> owner;  // partition -> consumer id
};

// Safe for concurrent use. Assignment callbacks run outside the coordinator's lock, possibly
// on several threads at once: a member keeps the one with the highest generation.
class GroupCoordinator {
 public:
  using OnAssignment = std::function<void(const Assignment&)>;

  // A member's ticket: leaving the group is Leave(ticket).
  struct Membership {
    std::string group;
    std::string topic;
    std::string consumer_id;
    uint64_t id = 0;  // distinguishes a replaced member from its replacement
  };

  // Adds a member and rebalances: every member gets its new assignment (the joining one
  // included). A member with the same consumer id is revoked and replaced.
  Membership Join(const std::string& group, const std::string& topic,
                  const std::string& consumer_id, const std::string& peer,
                  uint32_t partition_count, OnAssignment on_assignment);
  // Removes the member (if still present) and rebalances the rest.
  void Leave(const Membership& m);

  GroupInfo Describe(const std::string& group, const std::string& topic) const;
  bool HasMembers(const std::string& group, const std::string& topic) const;
  // Runs `fn` if (group, topic) has no members, with joins held off until it returns, so that
  // no member joins and commits between the check and `fn` (a group's delete or reset). Returns
  // whether `fn` ran. `fn` must not call back into the coordinator.
  bool IfNoMembers(const std::string& group, const std::string& topic,
                   absl::FunctionRef<void()> fn);
  // Groups with live members over another protocol (the Kafka listener's, whose coordinator
  // marks them): a gRPC member cannot join one (Subscription::Open refuses it), and the Kafka
  // listener refuses a group with members here (HasMembersOnAnyTopic).
  void SetForeign(const std::string& group, bool live);
  bool IsForeign(const std::string& group) const;
  bool HasMembersOnAnyTopic(const std::string& group) const;
  // Every (group, topic) with live members, and their member counts.
  std::vector<std::pair<std::pair<std::string, std::string>, uint32_t>> Live() const;
  // Revokes every member of groups on `topic` (it was deleted).
  void RevokeTopic(const std::string& topic);
  // `topic` has grown to `partition_count` partitions: its groups rebalance over all of them.
  void GrowTopic(const std::string& topic, uint32_t partition_count);

 private:
  struct Member {
    uint64_t id;
    std::string consumer_id;
    std::string peer;
    int64_t joined_at_us;
    OnAssignment on_assignment;
    std::vector<PartitionId> partitions;
  };
  struct Group {
    uint64_t generation = 0;
    uint32_t partition_count = 0;
    std::map<std::string, Member> members;  // by consumer id: assignment order is stable
  };
  using Key = std::pair<std::string, std::string>;  // group, topic
  using Pending = std::vector<std::pair<OnAssignment, Assignment>>;

  // Recomputes the assignment of `g` and queues each member's callback.
  static void Rebalance(Group& g, Pending* pending);

  mutable absl::Mutex mu_;
  std::map<Key, Group> groups_ ABSL_GUARDED_BY(mu_);
  // The last generation of groups that emptied: a group that forms again goes on from it, so a
  // generation never repeats (fenced commits rely on that).
  std::map<Key, uint64_t> past_generations_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<std::string> foreign_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodata::broker
