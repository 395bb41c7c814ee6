// The Kafka listener's consumer groups (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch), producer ids (InitProducerId) and topic admin
// (CreateTopics, DeleteTopics, DescribeConfigs). Membership is kafka::GroupCoordinator's;
// committed offsets go to the broker's store, the one gRPC groups use.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/names.h"
#include "common/strings.h"
#include "common/time.h"
#include "server/kafka_internal.h"
#include "spdlog/spdlog.h"

namespace nodata::server {
namespace {

// The group name nodata stores offsets under: its rules for names, which Kafka's are wider
// than (docs/kafka.md).
ErrorCode CheckGroupName(std::string_view group) {
  return ValidateName("group", group).ok() ? kafka::kNone : kafka::kInvalidGroupId;
}

}  // namespace

void KafkaServer::Impl::FindCoordinator(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  std::string_view key = r.String(false);
  const int8_t key_type = v >= 1 ? r.Int8() : 0;
  if (!r.ok()) return call.Fail(StrCat("a malformed FindCoordinator request: ", r.error()));
  ErrorCode code = kafka::kNone;
  std::string message;
  if (key_type != 0) {
    code = kafka::kCoordinatorNotAvailable;
    message = "transactions are not served";
  } else if ((code = CheckGroupName(key)) != kafka::kNone) {
    message = ToStd(ValidateName("group", key).message());
  }
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 1) w.Int32(0);  // throttle time
  w.Int16(code);
  if (v >= 1) {
    w.NullableString(message.empty() ? std::nullopt : std::optional<std::string_view>(message),
                     false);
  }
  w.Int32(code == kafka::kNone ? kNodeId : -1);
  w.String(code == kafka::kNone ? call.local_host : "", false);
  w.Int32(code == kafka::kNone ? call.local_port : -1);
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::JoinGroup(std::shared_ptr<Call> call) {
  const int16_t v = call->header.api_version;
  Reader r(call->frame);
  kafka::ReadRequestHeader(r);
  kafka::JoinRequest req;
  req.group = r.String(false);
  req.session_timeout_ms = r.Int32();
  req.rebalance_timeout_ms = v >= 1 ? r.Int32() : req.session_timeout_ms;
  req.member_id = r.String(false);
  if (v >= 5) r.NullableString(false);  // group instance id: static membership is not kept
  req.protocol_type = r.String(false);
  const int32_t n = r.ArrayCount(false, 6);
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    std::string name(r.String(false));
    std::string metadata(r.NullableBytes(false).value_or(""));
    req.protocols.emplace_back(std::move(name), std::move(metadata));
  }
  if (!r.ok()) return call->Fail(StrCat("a malformed JoinGroup request: ", r.error()));
  req.client_id = std::string(call->header.client_id.value_or(""));
  req.host = call->peer;

  auto answer = [call, v](const kafka::JoinResult& res) {
    Response resp(call->header, false);
    Writer& w = resp.w();
    if (v >= 2) w.Int32(0);  // throttle time
    w.Int16(res.error);
    w.Int32(res.generation);
    w.String(res.protocol, false);
    w.String(res.leader, false);
    w.String(res.member_id, false);
    w.ArrayLength(static_cast<int32_t>(res.members.size()), false);
    for (const auto& [id, metadata] : res.members) {
      w.String(id, false);
      if (v >= 5) w.NullableString(std::nullopt, false);
      w.Bytes(metadata, false);
    }
    call->Respond(std::move(resp).Finish());
  };
  kafka::JoinResult refused;
  refused.member_id = req.member_id;
  if ((refused.error = CheckGroupName(req.group)) != kafka::kNone) return answer(refused);
  if (broker_.groups().HasMembersOnAnyTopic(req.group)) {
    // One protocol per group: its gRPC subscribers and Kafka consumers would split its
    // partitions between two coordinators that know nothing of each other.
    spdlog::warn("kafka: {} cannot join group \"{}\": it has live gRPC subscribers", call->peer,
                 req.group);
    refused.error = kafka::kInconsistentGroupProtocol;
    return answer(refused);
  }
  groups_.Join(std::move(req), answer);
}

void KafkaServer::Impl::SyncGroup(std::shared_ptr<Call> call) {
  const int16_t v = call->header.api_version;
  Reader r(call->frame);
  kafka::ReadRequestHeader(r);
  std::string group(r.String(false));
  const int32_t generation = r.Int32();
  std::string member(r.String(false));
  if (v >= 3) r.NullableString(false);  // group instance id
  std::vector<std::pair<std::string, std::string>> assignments;
  const int32_t n = r.ArrayCount(false, 6);
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    std::string id(r.String(false));
    std::string assignment(r.NullableBytes(false).value_or(""));
    assignments.emplace_back(std::move(id), std::move(assignment));
  }
  if (!r.ok()) return call->Fail(StrCat("a malformed SyncGroup request: ", r.error()));
  groups_.Sync(group, generation, member, std::move(assignments),
               [call, v](const kafka::SyncResult& res) {
                 Response resp(call->header, false);
                 Writer& w = resp.w();
                 if (v >= 1) w.Int32(0);  // throttle time
                 w.Int16(res.error);
                 w.Bytes(res.assignment, false);
                 call->Respond(std::move(resp).Finish());
               });
}

void KafkaServer::Impl::Heartbeat(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  std::string group(r.String(false));
  const int32_t generation = r.Int32();
  std::string member(r.String(false));
  if (v >= 3) r.NullableString(false);
  if (!r.ok()) return call.Fail(StrCat("a malformed Heartbeat request: ", r.error()));
  const ErrorCode code = groups_.Heartbeat(group, generation, member);
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 1) w.Int32(0);
  w.Int16(code);
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::LeaveGroup(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  std::string group(r.String(false));
  std::vector<std::string> members;
  if (v <= 2) {
    members.emplace_back(r.String(false));
  } else {
    const int32_t n = r.ArrayCount(false, 4);
    for (int32_t i = 0; i < n && r.ok(); ++i) {
      members.emplace_back(r.String(false));
      r.NullableString(false);  // group instance id
    }
  }
  if (!r.ok()) return call.Fail(StrCat("a malformed LeaveGroup request: ", r.error()));
  std::vector<ErrorCode> codes;
  for (const std::string& m : members) codes.push_back(groups_.Leave(group, m));
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 1) w.Int32(0);
  if (v <= 2) {
    w.Int16(codes.empty() ? kafka::kNone : codes[0]);
  } else {
    w.Int16(kafka::kNone);
    w.ArrayLength(static_cast<int32_t>(members.size()), false);
    for (size_t i = 0; i < members.size(); ++i) {
      w.String(members[i], false);
      w.NullableString(std::nullopt, false);
      w.Int16(codes[i]);
    }
  }
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::OffsetCommit(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  std::string group(r.String(false));
  const int32_t generation = r.Int32();
  std::string member(r.String(false));
  if (v >= 7) r.NullableString(false);  // group instance id
  if (v <= 4) r.Int64();                // retention time: offsets are kept until deleted
  struct Part {
    int32_t partition;
    int64_t offset;
    ErrorCode error = kafka::kNone;
  };
  std::vector<std::pair<std::string, std::vector<Part>>> topics;
  const int32_t n_topics = r.ArrayCount(false, 6);
  for (int32_t t = 0; t < n_topics && r.ok(); ++t) {
    auto& [name, parts] = topics.emplace_back(std::string(r.String(false)), std::vector<Part>{});
    const int32_t n_parts = r.ArrayCount(false, 14);
    for (int32_t i = 0; i < n_parts && r.ok(); ++i) {
      Part p{r.Int32(), r.Int64()};
      if (v >= 6) r.Int32();     // leader epoch
      r.NullableString(false);   // metadata: not stored
      parts.push_back(p);
    }
  }
  if (!r.ok()) return call.Fail(StrCat("a malformed OffsetCommit request: ", r.error()));

  ErrorCode all = CheckGroupName(group);
  if (all == kafka::kNone) all = groups_.CheckCommit(group, generation, member);
  if (all == kafka::kNone && broker_.groups().HasMembersOnAnyTopic(group)) {
    all = kafka::kUnknownMemberId;  // the group's live members are gRPC subscribers
  }
  for (auto& [topic, parts] : topics) {
    if (all != kafka::kNone) {
      for (Part& p : parts) p.error = all;
      continue;
    }
    std::vector<std::pair<PartitionId, Offset>> offsets;
    for (Part& p : parts) {
      if (p.partition < 0 || p.offset < 0) {
        p.error = p.partition < 0 ? kafka::kUnknownTopicOrPartition : kafka::kOffsetOutOfRange;
        continue;
      }
      offsets.emplace_back(PartitionId(static_cast<uint32_t>(p.partition)),
                           Offset(static_cast<uint64_t>(p.offset)));
    }
    absl::Status st = offsets.empty() ? absl::OkStatus()
                                      : broker_.CommitOffsets(group, topic, offsets);
    if (!st.ok()) {
      const ErrorCode code = st.code() == absl::StatusCode::kInvalidArgument &&
                                     absl::StrContains(st.message(), "partition")
                                 ? kafka::kUnknownTopicOrPartition
                                 : ErrorFor(st);
      for (Part& p : parts) {
        if (p.error == kafka::kNone) p.error = code;
      }
    }
  }
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 3) w.Int32(0);
  WriteTopics(w, topics, [&w](const Part& p) {
    w.Int32(p.partition);
    w.Int16(p.error);
  });
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::OffsetFetch(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  std::string group(r.String(false));
  // Topics asked for, with their partitions; null (v2+): every topic the group committed on.
  std::optional<std::vector<std::pair<std::string, std::vector<int32_t>>>> asked;
  std::optional<int32_t> n = r.ArrayLength(false, 6);
  if (n) {
    asked.emplace();
    for (int32_t t = 0; t < *n && r.ok(); ++t) {
      auto& [topic, parts] =
          asked->emplace_back(std::string(r.String(false)), std::vector<int32_t>{});
      const int32_t np = r.ArrayCount(false, 4);
      for (int32_t i = 0; i < np && r.ok(); ++i) parts.push_back(r.Int32());
    }
  }
  if (!r.ok()) return call.Fail(StrCat("a malformed OffsetFetch request: ", r.error()));
  const ErrorCode group_error = CheckGroupName(group);
  if (!asked) {
    asked.emplace();
    if (group_error == kafka::kNone) {
      absl::StatusOr<std::vector<broker::GroupSummary>> all = broker_.ListGroups("");
      std::set<std::string> topics;
      if (all.ok()) {
        for (const broker::GroupSummary& g : *all) {
          if (g.group == group) topics.insert(g.topic);
        }
      }
      for (const std::string& topic : topics) {
        auto committed = broker_.CommittedOffsets(group, topic);
        if (!committed.ok()) continue;
        std::vector<int32_t> parts;
        for (const auto& [p, offset] : *committed) parts.push_back(static_cast<int32_t>(p.value()));
        asked->emplace_back(topic, std::move(parts));
      }
    }
  }
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 3) w.Int32(0);
  w.ArrayLength(static_cast<int32_t>(asked->size()), false);
  for (const auto& [topic, parts] : *asked) {
    std::map<PartitionId, Offset> committed;
    ErrorCode topic_error = group_error;
    if (topic_error == kafka::kNone) {
      auto got = broker_.CommittedOffsets(group, topic);
      if (got.ok()) {
        committed = *std::move(got);
      } else if (got.status().code() != absl::StatusCode::kNotFound) {
        topic_error = ErrorFor(got.status());
      }
    }
    w.String(topic, false);
    w.ArrayLength(static_cast<int32_t>(parts.size()), false);
    for (int32_t p : parts) {
      w.Int32(p);
      auto it = p >= 0 ? committed.find(PartitionId(static_cast<uint32_t>(p))) : committed.end();
      w.Int64(it == committed.end() ? -1 : static_cast<int64_t>(it->second.value()));
      if (v >= 5) w.Int32(-1);  // leader epoch
      w.NullableString("", false);
      w.Int16(topic_error);
    }
  }
  if (v >= 2) w.Int16(group_error);
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::InitProducerId(const Call& call, Reader& r) {
  std::optional<std::string_view> transactional_id = r.NullableString(false);
  r.Int32();  // transaction timeout
  if (!r.ok()) return call.Fail(StrCat("a malformed InitProducerId request: ", r.error()));
  ErrorCode code = kafka::kNone;
  int64_t id = -1;
  if (transactional_id) {
    code = kafka::kTransactionalIdAuthorizationFailed;
    spdlog::warn("kafka: {} asked for transactional id \"{}\": transactions are not served",
                 call.peer, *transactional_id);
  } else {
    // Unique across restarts: the wall clock in microseconds, and past the last one given. A
    // producer's record ids carry its id (docs/kafka.md), so a reused id could make a new
    // producer's records read as another's retries.
    int64_t last = last_producer_id_.load();
    do {
      id = std::max(last + 1, NowMicros());
    } while (!last_producer_id_.compare_exchange_weak(last, id));
  }
  Response resp(call.header, false);
  Writer& w = resp.w();
  w.Int32(0);
  w.Int16(code);
  w.Int64(id);
  w.Int16(code == kafka::kNone ? 0 : -1);
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::CreateTopics(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  struct Topic {
    std::string name;
    int32_t partitions = -1;
    int16_t replication = -1;
    broker::TopicConfig config;
    ErrorCode error = kafka::kNone;
    std::string message;
  };
  std::vector<Topic> topics;
  const int32_t n = r.ArrayCount(false, 12);
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    Topic& t = topics.emplace_back();
    t.name = r.String(false);
    t.partitions = r.Int32();
    t.replication = r.Int16();
    const int32_t assignments = r.ArrayCount(false, 8);
    for (int32_t a = 0; a < assignments && r.ok(); ++a) {
      r.Int32();
      const int32_t brokers = r.ArrayCount(false, 4);
      for (int32_t b = 0; b < brokers && r.ok(); ++b) r.Int32();
    }
    if (assignments > 0 && t.error == kafka::kNone) {
      t.error = kafka::kInvalidRequest;
      t.message = "replica assignments are not taken: nodata is one broker";
    }
    const int32_t configs = r.ArrayCount(false, 4);
    for (int32_t c = 0; c < configs && r.ok(); ++c) {
      std::string_view name = r.String(false);
      std::optional<std::string_view> value = r.NullableString(false);
      int64_t number = 0;
      const bool numeric =
          value && absl::SimpleAtoi(absl::string_view(value->data(), value->size()), &number);
      if (name == "retention.ms" && numeric) {
        t.config.retention_ms = number;
      } else if (name == "retention.bytes" && numeric) {
        t.config.retention_bytes = number;
      } else if (name == "cleanup.policy" && value == "delete") {
        // what nodata does
      } else if (t.error == kafka::kNone) {
        t.error = kafka::kInvalidConfig;
        t.message = StrCat("config ", name, "=", value.value_or("null"),
                           " is not taken (retention.ms, retention.bytes and "
                           "cleanup.policy=delete are)");
      }
    }
  }
  r.Int32();  // timeout: topics are created before the answer
  const bool validate_only = v >= 1 && r.Bool();
  if (!r.ok()) return call.Fail(StrCat("a malformed CreateTopics request: ", r.error()));
  for (Topic& t : topics) {
    if (t.error != kafka::kNone) continue;
    if (t.replication != -1 && t.replication != 1) {
      t.error = kafka::kInvalidReplicationFactor;
      t.message = StrCat("replication factor ", t.replication,
                         ": nodata is one broker (-1 or 1)");
      continue;
    }
    if (t.partitions == 0 || t.partitions < -1) {
      t.error = kafka::kInvalidPartitions;
      t.message = StrCat("partitions ", t.partitions, ": at least 1, or -1 for the default");
      continue;
    }
    absl::Status st = ValidateNewName("topic", t.name);
    if (st.ok()) st = broker::ValidateTopicConfig(t.config);
    if (st.ok() && !validate_only) {
      st = broker_
               .CreateTopic(t.name, t.partitions < 0 ? 0 : static_cast<uint32_t>(t.partitions),
                            t.config)
               .status();
    }
    if (!st.ok()) {
      t.error = st.code() == absl::StatusCode::kAlreadyExists ? kafka::kTopicAlreadyExists
                : st.code() == absl::StatusCode::kInvalidArgument
                    ? (absl::StrContains(st.message(), "partition") ? kafka::kInvalidPartitions
                       : absl::StrContains(st.message(), "retention") ? kafka::kInvalidConfig
                                                                      : kafka::kInvalidTopic)
                    : ErrorFor(st);
      t.message = ToStd(st.message());
    }
  }
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 2) w.Int32(0);
  w.ArrayLength(static_cast<int32_t>(topics.size()), false);
  for (const Topic& t : topics) {
    w.String(t.name, false);
    w.Int16(t.error);
    if (v >= 1) {
      w.NullableString(t.message.empty() ? std::nullopt
                                         : std::optional<std::string_view>(t.message),
                       false);
    }
  }
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::DeleteTopics(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  std::vector<std::string> names;
  const int32_t n = r.ArrayCount(false, 2);
  for (int32_t i = 0; i < n && r.ok(); ++i) names.emplace_back(r.String(false));
  r.Int32();  // timeout
  if (!r.ok()) return call.Fail(StrCat("a malformed DeleteTopics request: ", r.error()));
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 1) w.Int32(0);
  w.ArrayLength(static_cast<int32_t>(names.size()), false);
  for (const std::string& name : names) {
    absl::Status st = ValidateTopicName(name);
    if (st.ok()) st = broker_.DeleteTopic(name);
    w.String(name, false);
    w.Int16(st.ok()                                          ? kafka::kNone
            : st.code() == absl::StatusCode::kInvalidArgument ? kafka::kInvalidTopic
                                                              : ErrorFor(st));
  }
  call.Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::DescribeConfigs(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  constexpr int8_t kTopicResource = 2;
  constexpr int8_t kBrokerResource = 4;
  struct Resource {
    int8_t type;
    std::string name;
    std::optional<std::set<std::string>> keys;
  };
  std::vector<Resource> resources;
  const int32_t n = r.ArrayCount(false, 7);
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    Resource& res = resources.emplace_back();
    res.type = r.Int8();
    res.name = r.String(false);
    if (std::optional<int32_t> k = r.ArrayLength(false, 2)) {
      res.keys.emplace();
      for (int32_t j = 0; j < *k && r.ok(); ++j) res.keys->emplace(r.String(false));
    }
  }
  if (v >= 1) r.Bool();  // include synonyms: none are kept
  if (!r.ok()) return call.Fail(StrCat("a malformed DescribeConfigs request: ", r.error()));
  Response resp(call.header, false);
  Writer& w = resp.w();
  w.Int32(0);
  w.ArrayLength(static_cast<int32_t>(resources.size()), false);
  for (const Resource& res : resources) {
    std::vector<std::pair<std::string, std::string>> configs;
    ErrorCode code = kafka::kNone;
    std::string message;
    if (res.type == kTopicResource) {
      absl::StatusOr<broker::TopicInfo> t = broker_.GetTopic(res.name);
      if (!t.ok()) {
        code = kafka::kUnknownTopicOrPartition;
        message = ToStd(t.status().message());
      } else {
        configs = {{"cleanup.policy", "delete"},
                   {"retention.ms", StrCat(t->retention_ms)},
                   {"retention.bytes", StrCat(t->retention_bytes)},
                   {"max.message.bytes", StrCat(options_.max_event_bytes)},
                   {"message.timestamp.type", "CreateTime"},
                   {"min.insync.replicas", "1"},
                   {"compression.type", "producer"}};
      }
    } else if (res.type != kBrokerResource) {
      code = kafka::kInvalidRequest;
      message = StrCat("resource type ", static_cast<int>(res.type),
                       " has no configs here (topics: 2, brokers: 4)");
    }
    if (res.keys) {
      std::erase_if(configs, [&](const auto& c) { return res.keys->count(c.first) == 0; });
    }
    w.Int16(code);
    w.NullableString(message.empty() ? std::nullopt : std::optional<std::string_view>(message),
                     false);
    w.Int8(res.type);
    w.String(res.name, false);
    w.ArrayLength(static_cast<int32_t>(configs.size()), false);
    for (const auto& [name, value] : configs) {
      w.String(name, false);
      w.NullableString(value, false);
      w.Bool(true);  // read only: set through nodata topic update
      if (v == 0) {
        w.Bool(false);  // is default
      } else {
        w.Int8(5);  // config source: the broker's default
      }
      w.Bool(false);  // sensitive
      if (v >= 1) w.ArrayLength(0, false);  // synonyms
    }
  }
  call.Respond(std::move(resp).Finish());
}

}  // namespace nodata::server
