// Kafka's classic consumer-group protocol, as a coordinator: members join (JoinGroup), the
// leader they elect computes the assignment on the client side and the coordinator hands each
// member its part (SyncGroup), heartbeats keep a member's session and tell it when to rejoin,
// and a member that leaves or falls silent starts a rebalance. Generations fence commits.
// Membership lives in memory (a restart makes members rejoin, as after a coordinator move in
// Kafka); committed offsets are the server's business, not this class's.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kafka/protocol.h"

namespace nodata::kafka {

struct GroupOptions {
  // A group forming from empty waits this long for more members before its first generation,
  // again after each one that joins meanwhile (up to the rebalance timeout): Kafka's
  // group.initial.rebalance.delay.ms.
  int32_t initial_rebalance_delay_ms = 500;
  int32_t min_session_timeout_ms = 1000;
  int32_t max_session_timeout_ms = 300'000;
};

struct JoinRequest {
  std::string group;
  std::string member_id;  // empty: a new member, given an id
  std::string client_id;
  std::string host;
  int32_t session_timeout_ms = 10'000;
  int32_t rebalance_timeout_ms = 60'000;
  std::string protocol_type;  // "consumer" for consumers
  std::vector<std::pair<std::string, std::string>> protocols;  // name, metadata; preferred first
};

struct JoinResult {
  ErrorCode error = kNone;
  int32_t generation = -1;
  std::string protocol;
  std::string leader;
  std::string member_id;
  // The leader's answer only: every member with its metadata for the chosen protocol.
  std::vector<std::pair<std::string, std::string>> members;
};

struct SyncResult {
  ErrorCode error = kNone;
  std::string protocol_type;
  std::string protocol;
  std::string assignment;
};

struct GroupMember {
  std::string member_id;
  std::string client_id;
  std::string host;
  std::string metadata;    // for the chosen protocol
  std::string assignment;  // as the leader gave it
};

struct GroupDescription {
  std::string state;  // Empty, PreparingRebalance, CompletingRebalance, Stable
  int32_t generation = 0;
  std::string protocol_type;
  std::string protocol;
  std::string leader;
  std::vector<GroupMember> members;
};

// Safe for concurrent use. Callbacks (answers, on_live) run without the coordinator's lock,
// on the thread of the call or of Tick that completed them.
class GroupCoordinator {
 public:
  using Clock = std::function<int64_t()>;  // milliseconds, monotonic
  // `on_live(group, true)` when a group gets its first member, `false` when its last one goes.
  GroupCoordinator(GroupOptions options, Clock now,
                   std::function<void(const std::string&, bool)> on_live);

  // Answers once the rebalance this join starts (or joins) completes: at once for an unknown
  // member id or mismatched protocols, else when every member has rejoined or the rebalance
  // timeout has passed (Tick).
  void Join(JoinRequest request, std::function<void(JoinResult)> done);
  // The leader's call carries every member's assignment; the others wait for it.
  void Sync(const std::string& group, int32_t generation, const std::string& member_id,
            std::vector<std::pair<std::string, std::string>> assignments,
            std::function<void(SyncResult)> done);
  ErrorCode Heartbeat(const std::string& group, int32_t generation, const std::string& member_id);
  ErrorCode Leave(const std::string& group, const std::string& member_id);
  // Whether an OffsetCommit from (generation, member) is accepted now: a generation of -1 with
  // no member id commits for a group without members.
  ErrorCode CheckCommit(const std::string& group, int32_t generation,
                        const std::string& member_id);
  // Expires members whose session passed and completes rebalances whose time is up; the server
  // calls it a few times a second.
  void Tick();

  GroupDescription Describe(const std::string& group) const;
  bool HasMembers(const std::string& group) const;

 private:
  enum class State { kEmpty, kPreparing, kCompleting, kStable };
  struct Member {
    std::string id;
    std::string client_id;
    std::string host;
    int32_t session_timeout_ms = 0;
    int32_t rebalance_timeout_ms = 0;
    std::vector<std::pair<std::string, std::string>> protocols;
    std::string assignment;
    int64_t last_seen_ms = 0;
    uint64_t join_order = 0;
    std::function<void(JoinResult)> join_waiter;  // a JoinGroup waiting for the rebalance
    std::function<void(SyncResult)> sync_waiter;  // a SyncGroup waiting for the leader
  };
  struct Group {
    State state = State::kEmpty;
    int32_t generation = 0;
    std::string protocol_type;
    std::string protocol;
    std::string leader;
    std::map<std::string, Member> members;
    int64_t complete_at_ms = 0;   // kPreparing: completes then, whoever has rejoined
    int64_t delay_limit_ms = 0;   // kPreparing from empty: the initial delay ends by then
    bool from_empty = false;      // kPreparing from empty: waits out the initial delay
  };
  using Answers = std::vector<std::function<void()>>;

  // A rebalance starts: members rejoin until every one has or the longest rebalance timeout
  // passes; SyncGroups waiting on the generation that ends are told to rejoin.
  void Prepare(Group& g, int64_t now, Answers* answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeComplete(const std::string& name, Group& g, int64_t now, Answers* answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remove(const std::string& name, Group& g, const std::string& member_id, int64_t now,
              Answers* answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static const char* StateName(State s);

  const GroupOptions options_;
  const Clock now_;
  const std::function<void(const std::string&, bool)> on_live_;
  mutable absl::Mutex mu_;
  std::map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);
  uint64_t next_member_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace nodata::kafka
