#include "kafka/group_coordinator.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace nodata::kafka {
namespace {

class GroupTest : public ::testing::Test {
 protected:
  GroupTest()
      : groups_(GroupOptions{.initial_rebalance_delay_ms = 100}, [this] { return now_; },
                [this](const std::string& g, bool live) { live_.emplace_back(g, live); }) {}

  JoinRequest Req(std::string member = "", std::vector<std::string> protocols = {"range"}) {
    JoinRequest r;
    r.group = "g";
    r.member_id = std::move(member);
    r.client_id = "c";
    r.session_timeout_ms = 1000;
    r.rebalance_timeout_ms = 5000;
    r.protocol_type = "consumer";
    for (auto& p : protocols) r.protocols.emplace_back(p, "meta-" + p);
    return r;
  }
  // Joins and returns a slot the answer lands in.
  std::shared_ptr<std::optional<JoinResult>> Join(JoinRequest r) {
    auto slot = std::make_shared<std::optional<JoinResult>>();
    groups_.Join(std::move(r), [slot](JoinResult res) { *slot = std::move(res); });
    return slot;
  }
  std::shared_ptr<std::optional<SyncResult>> Sync(
      int32_t gen, const std::string& member,
      std::vector<std::pair<std::string, std::string>> assignments = {}) {
    auto slot = std::make_shared<std::optional<SyncResult>>();
    groups_.Sync("g", gen, member, std::move(assignments),
                 [slot](SyncResult res) { *slot = std::move(res); });
    return slot;
  }
  void Advance(int64_t ms) {
    now_ += ms;
    groups_.Tick();
  }

  int64_t now_ = 1'000'000;
  std::vector<std::pair<std::string, bool>> live_;
  GroupCoordinator groups_;
};

TEST_F(GroupTest, FormsAfterTheInitialDelayAndHandsOutTheLeadersAssignment) {
  auto a = Join(Req());
  Advance(50);
  auto b = Join(Req());  // within the delay: the same first generation
  Advance(60);
  EXPECT_FALSE(a->has_value());  // the delay was extended by b's join
  Advance(100);
  ASSERT_TRUE(a->has_value() && b->has_value());
  EXPECT_EQ((*a)->error, kNone);
  EXPECT_EQ((*a)->generation, 1);
  EXPECT_EQ((*b)->generation, 1);
  EXPECT_EQ((*a)->leader, (*a)->member_id);  // the first to join leads
  EXPECT_EQ((*a)->members.size(), 2u);
  EXPECT_TRUE((*b)->members.empty());
  EXPECT_EQ((*a)->protocol, "range");
  ASSERT_EQ(live_.size(), 1u);
  EXPECT_TRUE(live_[0].second);

  const std::string ma = (*a)->member_id;
  const std::string mb = (*b)->member_id;
  auto sb = Sync(1, mb);  // a follower waits for the leader
  EXPECT_FALSE(sb->has_value());
  auto sa = Sync(1, ma, {{ma, "for-a"}, {mb, "for-b"}});
  ASSERT_TRUE(sa->has_value() && sb->has_value());
  EXPECT_EQ((*sa)->assignment, "for-a");
  EXPECT_EQ((*sb)->assignment, "for-b");
  EXPECT_EQ(groups_.Heartbeat("g", 1, mb), kNone);
  EXPECT_EQ(groups_.Heartbeat("g", 0, mb), kIllegalGeneration);
  EXPECT_EQ(groups_.Heartbeat("g", 1, "nobody"), kUnknownMemberId);
  EXPECT_EQ(groups_.CheckCommit("g", 1, ma), kNone);
  EXPECT_EQ(groups_.CheckCommit("g", -1, ""), kIllegalGeneration);  // the group has members
  EXPECT_EQ(groups_.Describe("g").state, "Stable");
}

TEST_F(GroupTest, ANewMemberMakesTheOthersRejoinAndSilentOnesExpire) {
  auto a = Join(Req());
  Advance(200);
  const std::string ma = (*a)->member_id;
  Sync(1, ma, {{ma, "all"}});
  auto b = Join(Req());
  // a learns of the rebalance from its heartbeat, rejoins, and the generation completes at
  // once: every member has joined.
  EXPECT_EQ(groups_.Heartbeat("g", 1, ma), kRebalanceInProgress);
  EXPECT_EQ(groups_.CheckCommit("g", 1, ma), kNone);  // commits before rejoining are taken
  auto a2 = Join(Req(ma));
  ASSERT_TRUE(a2->has_value() && b->has_value());
  EXPECT_EQ((*a2)->generation, 2);
  EXPECT_EQ((*a2)->leader, ma);
  const std::string mb = (*b)->member_id;
  Sync(2, ma, {{ma, "half"}, {mb, "half"}});
  EXPECT_EQ(groups_.CheckCommit("g", 1, ma), kIllegalGeneration);  // fenced

  // b stops heartbeating: after its session it is out, and a is told to rejoin.
  for (int i = 0; i < 12; ++i) {
    Advance(100);
    groups_.Heartbeat("g", 2, ma);
  }
  EXPECT_EQ(groups_.Heartbeat("g", 2, ma), kRebalanceInProgress);
  auto a3 = Join(Req(ma));
  ASSERT_TRUE(a3->has_value());
  EXPECT_EQ((*a3)->generation, 3);
  EXPECT_EQ((*a3)->members.size(), 1u);
  EXPECT_EQ(groups_.Heartbeat("g", 2, mb), kUnknownMemberId);
}

TEST_F(GroupTest, LeavingAndRefusals) {
  auto a = Join(Req());
  Advance(200);
  const std::string ma = (*a)->member_id;
  // No shared protocol, an unknown member id, a session timeout out of range.
  auto other = Join(Req("", {"roundrobin"}));
  ASSERT_TRUE(other->has_value());
  EXPECT_EQ((*other)->error, kInconsistentGroupProtocol);
  auto ghost = Join(Req("ghost"));
  EXPECT_EQ((*ghost)->error, kUnknownMemberId);
  JoinRequest tiny = Req();
  tiny.session_timeout_ms = 10;
  EXPECT_EQ((*Join(tiny))->error, kInvalidSessionTimeout);
  // A sync from an old generation, or before the rebalance completes.
  EXPECT_EQ((*Sync(7, ma))->error, kIllegalGeneration);

  EXPECT_EQ(groups_.Leave("g", ma), kNone);
  EXPECT_EQ(groups_.Leave("g", ma), kUnknownMemberId);
  EXPECT_FALSE(groups_.HasMembers("g"));
  ASSERT_EQ(live_.size(), 2u);
  EXPECT_FALSE(live_[1].second);
  EXPECT_EQ(groups_.CheckCommit("g", -1, ""), kNone);  // empty: simple commits are taken
}

TEST_F(GroupTest, MembersThatDoNotRejoinInTimeAreDropped) {
  auto a = Join(Req());
  auto b = Join(Req());
  Advance(200);
  const std::string ma = (*a)->member_id;
  const std::string mb = (*b)->member_id;
  Sync(1, ma, {{ma, "x"}, {mb, "y"}});
  // b heartbeats but never rejoins: the rebalance completes at its timeout without b.
  auto c = Join(Req());
  auto a2 = Join(Req(ma));
  for (int i = 0; i < 49; ++i) {
    Advance(100);
    EXPECT_EQ(groups_.Heartbeat("g", 1, mb), kRebalanceInProgress);
  }
  EXPECT_FALSE(a2->has_value());
  Advance(200);
  ASSERT_TRUE(a2->has_value() && c->has_value());
  EXPECT_EQ((*a2)->generation, 2);
  EXPECT_EQ((*a2)->members.size(), 2u);
  EXPECT_EQ(groups_.Heartbeat("g", 2, mb), kUnknownMemberId);
}

}  // namespace
}  // namespace nodata::kafka
