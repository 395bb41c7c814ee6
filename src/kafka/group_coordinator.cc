#include "kafka/group_coordinator.h"

#include <algorithm>
#include <random>

#include "common/strings.h"

namespace nodata::kafka {

GroupCoordinator::GroupCoordinator(GroupOptions options, Clock now,
                                   std::function<void(const std::string&, bool)> on_live)
    : options_(options), now_(std::move(now)), on_live_(std::move(on_live)) {}

const char* GroupCoordinator::StateName(State s) {
  switch (s) {
    case State::kEmpty:
      return "Empty";
    case State::kPreparing:
      return "PreparingRebalance";
    case State::kCompleting:
      return "CompletingRebalance";
    case State::kStable:
      return "Stable";
  }
  return "Unknown";
}

void GroupCoordinator::Prepare(Group& g, int64_t now, Answers* answers) {
  if (g.state == State::kPreparing) return;
  int32_t timeout = 0;
  for (auto& [id, m] : g.members) {
    timeout = std::max(timeout, m.rebalance_timeout_ms);
    if (m.sync_waiter) {
      auto waiter = std::move(m.sync_waiter);
      m.sync_waiter = nullptr;
      SyncResult r;
      r.error = kRebalanceInProgress;
      answers->push_back([waiter = std::move(waiter), r] { waiter(r); });
    }
  }
  g.from_empty = g.state == State::kEmpty;
  g.state = State::kPreparing;
  g.complete_at_ms = now + timeout;
  if (g.from_empty) {
    g.delay_limit_ms = now + timeout;
    g.complete_at_ms = std::min(g.delay_limit_ms, now + options_.initial_rebalance_delay_ms);
  }
}

void GroupCoordinator::MaybeComplete(const std::string& name, Group& g, int64_t now,
                                     Answers* answers) {
  if (g.state != State::kPreparing) return;
  bool all_joined = true;
  for (const auto& [id, m] : g.members) all_joined = all_joined && m.join_waiter != nullptr;
  const bool due = now >= g.complete_at_ms;
  if (!due && (!all_joined || g.from_empty)) return;
  // Members that did not rejoin in time are out.
  for (auto it = g.members.begin(); it != g.members.end();) {
    if (it->second.join_waiter) {
      ++it;
      continue;
    }
    it = g.members.erase(it);
  }
  if (g.members.empty()) {
    g.state = State::kEmpty;
    g.leader.clear();
    g.protocol.clear();
    answers->push_back([this, name] { on_live_(name, false); });
    return;
  }
  ++g.generation;
  if (g.members.count(g.leader) == 0) {
    const Member* first = nullptr;
    for (const auto& [id, m] : g.members) {
      if (first == nullptr || m.join_order < first->join_order) first = &m;
    }
    g.leader = first->id;
  }
  // The protocol: the leader's most preferred one that every member supports (Join refused
  // members sharing none).
  g.protocol.clear();
  for (const auto& offered : g.members.at(g.leader).protocols) {
    const std::string& candidate = offered.first;
    bool everyone = true;
    for (const auto& entry : g.members) {
      const Member& m = entry.second;
      everyone = everyone && std::any_of(m.protocols.begin(), m.protocols.end(),
                                         [&](const auto& p) { return p.first == candidate; });
    }
    if (everyone) {
      g.protocol = candidate;
      break;
    }
  }
  std::vector<std::pair<std::string, std::string>> all;
  for (const auto& [id, m] : g.members) {
    for (const auto& [proto, metadata] : m.protocols) {
      if (proto == g.protocol) all.emplace_back(id, metadata);
    }
  }
  g.state = State::kCompleting;
  for (auto& [id, m] : g.members) {
    JoinResult r;
    r.generation = g.generation;
    r.protocol = g.protocol;
    r.leader = g.leader;
    r.member_id = id;
    if (id == g.leader) r.members = all;
    m.assignment.clear();
    m.last_seen_ms = now;
    answers->push_back([waiter = std::move(m.join_waiter), r = std::move(r)] { waiter(r); });
    m.join_waiter = nullptr;
  }
}

void GroupCoordinator::Remove(const std::string& name, Group& g, const std::string& member_id,
                              int64_t now, Answers* answers) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  Member& m = it->second;
  if (m.join_waiter) {
    JoinResult r;
    r.error = kUnknownMemberId;
    answers->push_back([w = std::move(m.join_waiter), r] { w(r); });
  }
  if (m.sync_waiter) {
    SyncResult r;
    r.error = kUnknownMemberId;
    answers->push_back([w = std::move(m.sync_waiter), r] { w(r); });
  }
  g.members.erase(it);
  if (g.members.empty() && g.state != State::kPreparing) {
    g.state = State::kEmpty;
    g.leader.clear();
    answers->push_back([this, name] { on_live_(name, false); });
    return;
  }
  Prepare(g, now, answers);
  MaybeComplete(name, g, now, answers);
}

void GroupCoordinator::Join(JoinRequest req, std::function<void(JoinResult)> done) {
  Answers answers;
  JoinResult refused;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = now_();
    if (req.session_timeout_ms < options_.min_session_timeout_ms ||
        req.session_timeout_ms > options_.max_session_timeout_ms) {
      refused.error = kInvalidSessionTimeout;
    } else if (req.protocols.empty() || req.protocol_type.empty()) {
      refused.error = kInconsistentGroupProtocol;
    }
    Group* g = nullptr;
    if (refused.error == kNone) {
      g = &groups_[req.group];
      if (!g->members.empty()) {
        // Members share the protocol type and at least one protocol.
        bool shared = req.protocol_type == g->protocol_type;
        for (const auto& entry : g->members) {
          if (entry.first == req.member_id) continue;
          const Member& m = entry.second;
          shared = shared && std::any_of(req.protocols.begin(), req.protocols.end(),
                                         [&](const auto& p) {
                                           return std::any_of(
                                               m.protocols.begin(), m.protocols.end(),
                                               [&](const auto& q) { return q.first == p.first; });
                                         });
        }
        if (!shared) refused.error = kInconsistentGroupProtocol;
      }
      if (refused.error == kNone && !req.member_id.empty() &&
          g->members.count(req.member_id) == 0) {
        refused.error = kUnknownMemberId;
      }
    }
    if (refused.error != kNone) {
      refused.member_id = req.member_id;
    } else {
      if (g->members.empty() && g->state == State::kEmpty) {
        answers.push_back([this, name = req.group] { on_live_(name, true); });
      }
      if (req.member_id.empty()) {
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        req.member_id = StrCat(req.client_id.empty() ? "member" : req.client_id, "-",
                               next_member_, "-", rng() % 1'000'000'000);
      }
      Member& m = g->members[req.member_id];
      const bool is_new = m.id.empty();
      if (is_new) m.join_order = next_member_++;
      m.id = req.member_id;
      m.client_id = req.client_id;
      m.host = req.host;
      m.session_timeout_ms = req.session_timeout_ms;
      m.rebalance_timeout_ms = req.rebalance_timeout_ms;
      m.protocols = std::move(req.protocols);
      m.last_seen_ms = now;
      if (m.join_waiter) {  // a second join from the same member replaces the first
        JoinResult r;
        r.error = kUnknownMemberId;
        answers.push_back([w = std::move(m.join_waiter), r] { w(r); });
      }
      m.join_waiter = std::move(done);
      g->protocol_type = req.protocol_type;
      const bool was_preparing = g->state == State::kPreparing;
      Prepare(*g, now, &answers);
      // A new member during a group's initial delay extends it.
      if (was_preparing && g->from_empty && is_new) {
        g->complete_at_ms =
            std::min(g->delay_limit_ms, now + options_.initial_rebalance_delay_ms);
      }
      MaybeComplete(req.group, *g, now, &answers);
    }
  }
  if (refused.error != kNone) done(refused);
  for (auto& a : answers) a();
}

void GroupCoordinator::Sync(const std::string& group, int32_t generation,
                            const std::string& member_id,
                            std::vector<std::pair<std::string, std::string>> assignments,
                            std::function<void(SyncResult)> done) {
  Answers answers;
  SyncResult now_result;
  bool answer_now = true;
  {
    absl::MutexLock lock(&mu_);
    auto git = groups_.find(group);
    Member* m = nullptr;
    if (git != groups_.end()) {
      auto mit = git->second.members.find(member_id);
      if (mit != git->second.members.end()) m = &mit->second;
    }
    if (m == nullptr) {
      now_result.error = kUnknownMemberId;
    } else {
      Group& g = git->second;
      m->last_seen_ms = now_();
      now_result.protocol_type = g.protocol_type;
      now_result.protocol = g.protocol;
      if (generation != g.generation) {
        now_result.error = kIllegalGeneration;
      } else if (g.state == State::kPreparing) {
        now_result.error = kRebalanceInProgress;
      } else if (g.state == State::kStable) {
        now_result.assignment = m->assignment;
      } else {  // kCompleting
        m->sync_waiter = std::move(done);
        answer_now = false;
        if (member_id == g.leader) {
          for (auto& [id, assignment] : assignments) {
            auto it = g.members.find(id);
            if (it != g.members.end()) it->second.assignment = std::move(assignment);
          }
          g.state = State::kStable;
          for (auto& [id, member] : g.members) {
            if (!member.sync_waiter) continue;
            SyncResult r;
            r.protocol_type = g.protocol_type;
            r.protocol = g.protocol;
            r.assignment = member.assignment;
            answers.push_back([w = std::move(member.sync_waiter), r = std::move(r)] { w(r); });
            member.sync_waiter = nullptr;
          }
        }
      }
    }
  }
  if (answer_now) done(now_result);
  for (auto& a : answers) a();
}

ErrorCode GroupCoordinator::Heartbeat(const std::string& group, int32_t generation,
                                      const std::string& member_id) {
  absl::MutexLock lock(&mu_);
  auto git = groups_.find(group);
  if (git == groups_.end()) return kUnknownMemberId;
  Group& g = git->second;
  auto mit = g.members.find(member_id);
  if (mit == g.members.end()) return kUnknownMemberId;
  mit->second.last_seen_ms = now_();
  if (g.state == State::kPreparing) return kRebalanceInProgress;
  if (generation != g.generation) return kIllegalGeneration;
  return kNone;
}

ErrorCode GroupCoordinator::Leave(const std::string& group, const std::string& member_id) {
  Answers answers;
  ErrorCode code = kNone;
  {
    absl::MutexLock lock(&mu_);
    auto git = groups_.find(group);
    if (git == groups_.end() || git->second.members.count(member_id) == 0) {
      code = kUnknownMemberId;
    } else {
      Remove(group, git->second, member_id, now_(), &answers);
    }
  }
  for (auto& a : answers) a();
  return code;
}

ErrorCode GroupCoordinator::CheckCommit(const std::string& group, int32_t generation,
                                        const std::string& member_id) {
  absl::MutexLock lock(&mu_);
  auto git = groups_.find(group);
  const bool empty = git == groups_.end() || git->second.members.empty();
  if (generation < 0 && member_id.empty()) return empty ? kNone : kIllegalGeneration;
  if (empty) return kUnknownMemberId;
  Group& g = git->second;
  auto mit = g.members.find(member_id);
  if (mit == g.members.end()) return kUnknownMemberId;
  if (generation != g.generation) return kIllegalGeneration;
  // A member commits what it read before it rejoins (Kafka accepts commits of the current
  // generation while members rejoin), but not while the new assignment is being handed out.
  if (g.state == State::kCompleting) return kRebalanceInProgress;
  mit->second.last_seen_ms = now_();
  return kNone;
}

void GroupCoordinator::Tick() {
  Answers answers;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = now_();
    for (auto& [name, g] : groups_) {
      std::vector<std::string> expired;
      for (const auto& [id, m] : g.members) {
        // A member waiting in JoinGroup is not expected to heartbeat.
        if (!m.join_waiter && now - m.last_seen_ms > m.session_timeout_ms) expired.push_back(id);
      }
      for (const std::string& id : expired) Remove(name, g, id, now, &answers);
      MaybeComplete(name, g, now, &answers);
    }
    for (auto it = groups_.begin(); it != groups_.end();) {
      if (it->second.members.empty() && it->second.state == State::kEmpty &&
          it->second.generation == 0) {
        it = groups_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& a : answers) a();
}

GroupDescription GroupCoordinator::Describe(const std::string& group) const {
  absl::MutexLock lock(&mu_);
  GroupDescription d;
  auto git = groups_.find(group);
  if (git == groups_.end()) {
    d.state = "Dead";
    return d;
  }
  const Group& g = git->second;
  d.state = StateName(g.state);
  d.generation = g.generation;
  d.protocol_type = g.protocol_type;
  d.protocol = g.protocol;
  d.leader = g.leader;
  for (const auto& [id, m] : g.members) {
    GroupMember gm{id, m.client_id, m.host, "", m.assignment};
    for (const auto& [proto, metadata] : m.protocols) {
      if (proto == g.protocol) gm.metadata = metadata;
    }
    d.members.push_back(std::move(gm));
  }
  return d;
}

bool GroupCoordinator::HasMembers(const std::string& group) const {
  absl::MutexLock lock(&mu_);
  auto git = groups_.find(group);
  return git != groups_.end() && !git->second.members.empty();
}

}  // namespace nodata::kafka
