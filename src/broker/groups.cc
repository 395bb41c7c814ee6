#include "broker/groups.h"

#include <algorithm>

#include "common/time.h"

namespace nodata::broker {

void GroupCoordinator::Rebalance(Group& g, Pending* pending) {
  ++g.generation;
  // Round robin over members in consumer-id order: partition p goes to member p mod n, so
  // counts differ by at most one.
  std::vector<Member*> members;
  for (auto& [id, m] : g.members) {
    m.partitions.clear();
    members.push_back(&m);
  }
  if (members.empty()) return;
  for (uint32_t p = 0; p < g.partition_count; ++p) {
    members[p % members.size()]->partitions.push_back(PartitionId(p));
  }
  for (Member* m : members) {
    pending->emplace_back(m->on_assignment, Assignment{m->partitions, g.generation, false});
  }
}

GroupCoordinator::Membership GroupCoordinator::Join(const std::string& group,
                                                    const std::string& topic,
                                                    const std::string& consumer_id,
                                                    const std::string& peer,
                                                    uint32_t partition_count,
                                                    OnAssignment on_assignment) {
  Pending pending;
  Membership ticket{group, topic, consumer_id, 0};
  {
    absl::MutexLock lock(&mu_);
    auto [it_group, fresh] = groups_.try_emplace({group, topic});
    Group& g = it_group->second;
    if (fresh) {
      auto past = past_generations_.find({group, topic});
      if (past != past_generations_.end()) g.generation = past->second;
    }
    // Partition counts only grow: a joiner that read the count before a GrowTopic does not
    // shrink the group's.
    g.partition_count = std::max(g.partition_count, partition_count);
    auto it = g.members.find(consumer_id);
    if (it != g.members.end()) {
      pending.emplace_back(it->second.on_assignment, Assignment{{}, g.generation, true});
      g.members.erase(it);
    }
    ticket.id = next_id_++;
    g.members.emplace(consumer_id, Member{ticket.id, consumer_id, peer, NowMicros(),
                                          std::move(on_assignment), {}});
    Rebalance(g, &pending);
  }
  for (auto& [fn, a] : pending) fn(a);
  return ticket;
}

void GroupCoordinator::Leave(const Membership& m) {
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    auto g = groups_.find({m.group, m.topic});
    if (g == groups_.end()) return;
    auto it = g->second.members.find(m.consumer_id);
    if (it == g->second.members.end() || it->second.id != m.id) return;  // already replaced
    g->second.members.erase(it);
    if (g->second.members.empty()) {
      past_generations_[g->first] = g->second.generation;
      groups_.erase(g);
    } else {
      Rebalance(g->second, &pending);
    }
  }
  for (auto& [fn, a] : pending) fn(a);
}

GroupInfo GroupCoordinator::Describe(const std::string& group, const std::string& topic) const {
  absl::MutexLock lock(&mu_);
  GroupInfo info;
  auto g = groups_.find({group, topic});
  if (g == groups_.end()) return info;
  info.generation = g->second.generation;
  for (const auto& [id, m] : g->second.members) {
    info.members.push_back(MemberInfo{m.consumer_id, m.peer, m.joined_at_us, m.partitions});
    for (PartitionId p : m.partitions) info.owner[p] = m.consumer_id;
  }
  return info;
}

void GroupCoordinator::SetForeign(const std::string& group, bool live) {
  absl::MutexLock lock(&mu_);
  if (live) {
    foreign_.insert(group);
  } else {
    foreign_.erase(group);
  }
}

bool GroupCoordinator::IsForeign(const std::string& group) const {
  absl::MutexLock lock(&mu_);
  return foreign_.count(group) > 0;
}

bool GroupCoordinator::HasMembersOnAnyTopic(const std::string& group) const {
  absl::MutexLock lock(&mu_);
  auto it = groups_.lower_bound(Key{group, ""});
  return it != groups_.end() && it->first.first == group;
}

bool GroupCoordinator::HasMembers(const std::string& group, const std::string& topic) const {
  absl::MutexLock lock(&mu_);
  return groups_.contains({group, topic});
}

bool GroupCoordinator::IfNoMembers(const std::string& group, const std::string& topic,
                                   absl::FunctionRef<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (groups_.contains({group, topic})) return false;
  fn();
  return true;
}

std::vector<std::pair<std::pair<std::string, std::string>, uint32_t>> GroupCoordinator::Live()
    const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::pair<std::string, std::string>, uint32_t>> out;
  for (const auto& [key, g] : groups_) {
    out.emplace_back(key, static_cast<uint32_t>(g.members.size()));
  }
  return out;
}

void GroupCoordinator::RevokeTopic(const std::string& topic) {
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = groups_.begin(); it != groups_.end();) {
      if (it->first.second != topic) {
        ++it;
        continue;
      }
      for (auto& [id, m] : it->second.members) {
        pending.emplace_back(m.on_assignment, Assignment{{}, it->second.generation + 1, true});
      }
      past_generations_[it->first] = it->second.generation + 1;
      it = groups_.erase(it);
    }
  }
  for (auto& [fn, a] : pending) fn(a);
}

void GroupCoordinator::GrowTopic(const std::string& topic, uint32_t partition_count) {
  Pending pending;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, g] : groups_) {
      if (key.second != topic || g.partition_count >= partition_count) continue;
      g.partition_count = partition_count;
      Rebalance(g, &pending);
    }
  }
  for (auto& [fn, a] : pending) fn(a);
}

}  // namespace nodata::broker
