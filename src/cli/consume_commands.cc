// nodata consume and nodata group: the ConsumeService from the command line.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <pthread.h>
#include <set>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cli/client_commands.h"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "cli/record_json.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.grpc.pb.h"

namespace nodata::cli {
namespace {

using nlohmann::json;

// Retrying a stream the server dropped (a restart, a crash): the first wait, the longest, and
// how long the stream may keep failing before consume gives up.
constexpr std::chrono::milliseconds kFirstRetryDelay{100};
constexpr std::chrono::milliseconds kMaxRetryDelay{5000};
constexpr std::chrono::seconds kGiveUpAfter{60};
// How long a retry waits for the connection before it tries the call (which then fails fast).
constexpr std::chrono::milliseconds kMaxConnectWait{1000};
// A stream that delivered a message or stayed open this long had reached the server: a failure
// after it starts the retry budget anew.
constexpr std::chrono::seconds kEstablishedAfter{1};

bool Before(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return std::pair(a.seconds(), a.nanos()) < std::pair(b.seconds(), b.nanos());
}

// One `nodata consume`: prints records, commits them in a group, stops at --count or
// --until-end, and after the server went away resumes right after the last printed record.
// Run() on one thread; Interrupt() from any other.
class Consumer {
 public:
  Consumer(const ClientOptions& c, const ConsumeOptions& o) : c_(c), o_(o) {}
  int Run();
  // SIGINT/SIGTERM: ends the stream or a wait to reconnect; Run commits what was printed.
  void Interrupt();

 private:
  using Clock = std::chrono::steady_clock;
  // A partition's offsets when consume started: [start, end).
  struct Range {
    uint64_t start = 0;
    uint64_t end = 0;
  };

  bool group() const { return !o_.group.empty(); }
  bool interrupted() {
    absl::MutexLock lock(&mu_);
    return stop_;
  }
  grpc::Status LoadRanges();
  // Whether partition `p` starts at or past its end of when consume started; `position` is
  // where the group (or this run) already is in it, if anywhere.
  grpc::Status StartsAtEnd(uint32_t p, std::optional<uint64_t> position, bool* at_end);
  // A new group assignment: the partitions read, and which of them are already at their end.
  grpc::Status OnAssignment(const nodata::v1::Assignment& a);
  bool AllAtEnd() const;
  // One Subscribe stream until it ends; `done` once --count or --until-end is met,
  // `established` if it reached the server.
  grpc::Status Stream(bool* done, bool* established);
  grpc::Status Commit();
  // The first request, or one that resumes after the last printed record of each partition.
  nodata::v1::SubscribeRequest Request() const;
  // Waits `delay`; false when interrupted first.
  bool Wait(std::chrono::milliseconds delay);

  const ClientOptions& c_;
  const ConsumeOptions& o_;
  nodata::v1::SubscribeRequest base_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<nodata::v1::ConsumeService::Stub> stub_;
  std::map<uint32_t, Range> ranges_;  // loaded when --until-end or the start needs it
  std::map<uint32_t, uint64_t> starts_;  // without a group: offsets `latest` resolved to
  bool assigned_ = false;                // a group member got its first assignment
  std::set<uint32_t> reading_;           // the partitions read (chosen or assigned)
  std::set<uint32_t> at_end_;            // --until-end: partitions that reached their end
  std::map<uint32_t, uint64_t> printed_;   // next offset after the last printed record
  std::map<uint32_t, uint64_t> to_commit_;  // printed, not yet committed
  uint64_t count_ = 0;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;  // the stream under way
};

void Consumer::Interrupt() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  if (ctx_ != nullptr) ctx_->TryCancel();
}

bool Consumer::Wait(std::chrono::milliseconds delay) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::FromChrono(delay));
  return !stop_;
}

grpc::Status Consumer::LoadRanges() {
  auto topics = nodata::v1::TopicService::NewStub(channel_);
  nodata::v1::GetTopicRequest req;
  req.set_name(o_.topic);
  nodata::v1::GetTopicResponse resp;
  grpc::Status s = topics->GetTopic(Context().get(), req, &resp);
  if (!s.ok()) return s;
  for (const auto& p : resp.topic().partitions()) {
    ranges_[p.partition()] = Range{p.start_offset(), p.end_offset()};
  }
  return grpc::Status::OK;
}

grpc::Status Consumer::StartsAtEnd(uint32_t p, std::optional<uint64_t> position, bool* at_end) {
  *at_end = false;
  auto it = ranges_.find(p);
  // Not a partition when consume started: one added since (a grown topic) ended at 0 then; one
  // that does not exist at all is refused by the server.
  if (it == ranges_.end()) {
    *at_end = true;
    return grpc::Status::OK;
  }
  const Range& r = it->second;
  if (r.start >= r.end) {
    *at_end = true;
    return grpc::Status::OK;
  }
  if (position) {
    *at_end = *position >= r.end;
    return grpc::Status::OK;
  }
  const auto& start = base_.start();
  switch (start.position_case()) {
    case nodata::v1::StartPosition::kLatest:
      *at_end = true;
      break;
    case nodata::v1::StartPosition::kOffset:
      *at_end = start.offset() >= r.end;
      break;
    case nodata::v1::StartPosition::kTimestamp: {
      // Ingest times grow along a partition: if its last record is older than the start time,
      // the stream starts at the end.
      auto topics = nodata::v1::TopicService::NewStub(channel_);
      nodata::v1::ReadTopicRequest req;
      req.set_name(o_.topic);
      req.add_partitions(p);
      req.set_start_offset(r.end - 1);
      req.set_max_batch(1);
      auto ctx = Context();
      auto reader = topics->ReadTopic(ctx.get(), req);
      nodata::v1::RecordBatch batch;
      *at_end = true;
      if (reader->Read(&batch) && batch.records_size() > 0) {
        *at_end = Before(batch.records(0).ingest_time(), start.timestamp());
        ctx->TryCancel();
      }
      grpc::Status s = reader->Finish();
      if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) return s;
      break;
    }
    default:  // earliest, or a group's committed offset where it has none
      break;
  }
  return grpc::Status::OK;
}

grpc::Status Consumer::OnAssignment(const nodata::v1::Assignment& a) {
  assigned_ = true;
  reading_ = std::set<uint32_t>(a.partitions().begin(), a.partitions().end());
  at_end_.clear();
  if (!o_.until_end || reading_.empty()) return grpc::Status::OK;
  nodata::v1::GetGroupRequest req;
  req.set_group(o_.group);
  req.set_topic(o_.topic);
  nodata::v1::GetGroupResponse resp;
  grpc::Status s = stub_->GetGroup(Context().get(), req, &resp);
  if (!s.ok()) return s;
  std::map<uint32_t, uint64_t> committed;
  for (const auto& p : resp.partitions()) {
    if (p.has_committed()) committed[p.partition()] = p.committed_offset();
  }
  for (uint32_t p : reading_) {
    // The stream starts at the committed offset; with --no-commit this run may be past it.
    std::optional<uint64_t> position;
    if (auto c = committed.find(p); c != committed.end()) position = c->second;
    if (auto n = printed_.find(p); n != printed_.end()) {
      position = std::max(position.value_or(0), n->second);
    }
    bool at_end = false;
    s = StartsAtEnd(p, position, &at_end);
    if (!s.ok()) return s;
    if (at_end) at_end_.insert(p);
  }
  return grpc::Status::OK;
}

bool Consumer::AllAtEnd() const {
  if (group() && !assigned_) return false;
  return std::all_of(reading_.begin(), reading_.end(),
                     [this](uint32_t p) { return at_end_.count(p) > 0; });
}

grpc::Status Consumer::Commit() {
  if (!group() || to_commit_.empty()) return grpc::Status::OK;
  nodata::v1::CommitRequest cr;
  cr.set_group(o_.group);
  cr.set_topic(o_.topic);
  for (const auto& [p, off] : to_commit_) {
    auto* po = cr.add_offsets();
    po->set_partition(p);
    po->set_offset(off);
  }
  nodata::v1::CommitResponse resp;
  grpc::Status s = stub_->Commit(Context().get(), cr, &resp);
  if (s.ok()) to_commit_.clear();
  return s;
}

nodata::v1::SubscribeRequest Consumer::Request() const {
  nodata::v1::SubscribeRequest req = base_;
  if (group()) return req;  // a member resumes at the group's committed offsets
  std::map<uint32_t, uint64_t> starts = starts_;
  for (const auto& [p, next] : printed_) starts[p] = next;
  for (const auto& [p, offset] : starts) {
    auto* so = req.add_start_offsets();
    so->set_partition(p);
    so->set_offset(offset);
  }
  // Retention may have moved a partition's start past where this run stopped.
  if (!starts.empty()) req.set_clamp_start(true);
  return req;
}

grpc::Status Consumer::Stream(bool* done, bool* established) {
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return grpc::Status::OK;
    ctx_ = &ctx;
  }
  const auto began = Clock::now();
  auto reader = stub_->Subscribe(&ctx, Request());
  nodata::v1::SubscribeResponse msg;
  grpc::Status failed;  // a call besides the stream that failed
  while (!*done && failed.ok() && reader->Read(&msg)) {
    *established = true;
    if (msg.has_assignment()) {
      if (c_.json || o_.format == "json") {
        json a = json::array();
        for (uint32_t p : msg.assignment().partitions()) a.push_back(p);
        std::cerr << json{{"assignment", a}, {"generation", msg.assignment().generation()}}
                  << "\n";
      }
      failed = OnAssignment(msg.assignment());
      *done = failed.ok() && o_.until_end && AllAtEnd();
      continue;
    }
    for (const auto& r : msg.records().records()) {
      auto next = printed_.find(r.partition());
      // After a reconnect a group resumes at its committed offsets, behind what --no-commit
      // printed.
      if (next != printed_.end() && r.offset() < next->second) continue;
      if (o_.format == "json") {
        std::cout << RecordJson(r).dump() << "\n";
      } else {
        std::cout.write(r.event().data().data(),
                        static_cast<std::streamsize>(r.event().data().size()));
        std::cout << "\n";
      }
      printed_[r.partition()] = to_commit_[r.partition()] = r.offset() + 1;
      if (o_.count > 0 && ++count_ >= o_.count) {
        *done = true;
        break;
      }
    }
    std::cout.flush();
    if (o_.until_end) {
      for (const auto& [p, next] : printed_) {
        auto r = ranges_.find(p);
        if (r != ranges_.end() && next >= r->second.end) at_end_.insert(p);
      }
      *done = *done || AllAtEnd();
    }
    if (o_.commit) failed = Commit();
  }
  if (*done || !failed.ok()) ctx.TryCancel();
  grpc::Status s = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    ctx_ = nullptr;
  }
  if (Clock::now() - began >= kEstablishedAfter) *established = true;
  if (!failed.ok()) return failed;
  if (*done || interrupted()) return grpc::Status::OK;
  return s;
}

int Consumer::Run() {
  if (o_.format != "json" && o_.format != "raw") {
    return Fail("--format must be json or raw, got \"" + o_.format + "\"");
  }
  base_.set_topic(o_.topic);
  base_.set_group(o_.group);
  base_.set_consumer_id(o_.consumer_id);
  base_.set_max_batch(o_.max_batch);
  for (uint32_t p : o_.partitions) base_.add_partitions(p);
  if (!o_.from.empty()) {
    std::string error = ParsePosition(o_.from, base_.mutable_start());
    if (!error.empty()) return Fail("--from: " + error);
  }
  channel_ = Connect(c_);
  stub_ = nodata::v1::ConsumeService::NewStub(channel_);
  using Position = nodata::v1::StartPosition;
  const auto position = base_.start().position_case();
  if (o_.until_end ||
      (!group() && (position == Position::kOffset || position == Position::kLatest))) {
    grpc::Status s = LoadRanges();
    if (!s.ok()) return Fail(s);
  }
  if (!group()) {
    reading_ = std::set<uint32_t>(o_.partitions.begin(), o_.partitions.end());
    if (reading_.empty()) {
      for (const auto& [p, range] : ranges_) reading_.insert(p);
    }
    if (position == Position::kOffset) {
      // Partitions differ in length: each starts at the offset or its nearest end.
      base_.set_clamp_start(true);
      const uint64_t n = base_.start().offset();
      for (uint32_t p : reading_) {
        auto r = ranges_.find(p);
        if (r == ranges_.end() || (n >= r->second.start && n <= r->second.end)) continue;
        std::cerr << "nodata: partition " << p << " has offsets [" << r->second.start << ", "
                  << r->second.end << "): starting at "
                  << std::clamp(n, r->second.start, r->second.end) << "\n";
      }
    }
    if (position == Position::kLatest) {
      // The end when consume started, so that a reconnect does not skip what came meanwhile.
      for (uint32_t p : reading_) {
        if (auto r = ranges_.find(p); r != ranges_.end()) starts_[p] = r->second.end;
      }
    }
    if (o_.until_end) {
      for (uint32_t p : reading_) {
        bool at_end = false;
        grpc::Status s = StartsAtEnd(p, std::nullopt, &at_end);
        if (!s.ok()) return Fail(s);
        if (at_end) at_end_.insert(p);
      }
      if (AllAtEnd()) return 0;
    }
  }
  bool ever_established = false;
  auto delay = kFirstRetryDelay;
  Clock::time_point failing_since = Clock::now();
  for (;;) {
    bool done = false;
    bool established = false;
    grpc::Status s = Stream(&done, &established);
    ever_established = ever_established || established;
    if (s.ok()) break;  // done or interrupted
    // Only a server that went away is waited for: UNAVAILABLE, or a call it cancelled while
    // shutting down (this side cancels only when done or interrupted, both handled above).
    // Anything else, and a server never reached, fails at once.
    const bool gone = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                      s.error_code() == grpc::StatusCode::CANCELLED;
    if (!gone || !ever_established) return Fail(s);
    if (established) {
      failing_since = Clock::now();
      delay = kFirstRetryDelay;
    }
    if (Clock::now() - failing_since >= kGiveUpAfter) {
      return Fail(CodeName(s.error_code()) + ": " + s.error_message() +
                  " (gave up reconnecting after " + std::to_string(kGiveUpAfter.count()) +
                  " s)");
    }
    std::cerr << "nodata: " << CodeName(s.error_code()) << ": " << s.error_message()
              << "; reconnecting in " << delay.count() << " ms\n";
    if (!Wait(delay)) break;
    // gRPC keeps its own, slower reconnect schedule: connect now, or the next call fails at once
    // with the last connection error.
    grpc::experimental::ChannelResetConnectionBackoff(channel_.get());
    channel_->WaitForConnected(std::chrono::system_clock::now() +
                               std::min<std::chrono::milliseconds>(delay, kMaxConnectWait));
    delay = std::min(delay * 2, kMaxRetryDelay);
  }
  if (o_.commit) {
    grpc::Status cs = Commit();
    if (!cs.ok()) return Fail(cs);
  }
  return 0;
}

}  // namespace

int Consume(const ClientOptions& c, const ConsumeOptions& o) {
  // SIGINT/SIGTERM end the stream; what was printed is committed first. The signals are blocked
  // before gRPC starts its threads, and one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  Consumer consumer(c, o);
  std::atomic<bool> exiting{false};
  std::thread watcher([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!exiting) consumer.Interrupt();
  });
  const int code = consumer.Run();
  exiting = true;
  pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  return code;
}

int GroupList(const ClientOptions& c, const std::string& topic) {
  auto stub = nodata::v1::ConsumeService::NewStub(Connect(c));
  nodata::v1::ListGroupsRequest req;
  req.set_topic(topic);
  nodata::v1::ListGroupsResponse resp;
  grpc::Status s = stub->ListGroups(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    json out = json::array();
    for (const auto& g : resp.groups()) {
      out.push_back({{"group", g.group()}, {"topic", g.topic()}, {"members", g.member_count()},
                     {"lag", g.lag()}});
    }
    std::cout << out << "\n";
    return 0;
  }
  std::printf("%-32s %-32s %8s %14s\n", "GROUP", "TOPIC", "MEMBERS", "LAG");
  for (const auto& g : resp.groups()) {
    std::printf("%-32s %-32s %8u %14lu\n", g.group().c_str(), g.topic().c_str(), g.member_count(),
                static_cast<unsigned long>(g.lag()));
  }
  return 0;
}

int GroupGet(const ClientOptions& c, const std::string& group, const std::string& topic) {
  auto stub = nodata::v1::ConsumeService::NewStub(Connect(c));
  nodata::v1::GetGroupRequest req;
  req.set_group(group);
  req.set_topic(topic);
  nodata::v1::GetGroupResponse resp;
  grpc::Status s = stub->GetGroup(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    json members = json::array();
    for (const auto& m : resp.members()) {
      members.push_back({{"consumer_id", m.consumer_id()},
                         {"partitions", std::vector<uint32_t>(m.partitions().begin(),
                                                              m.partitions().end())},
                         {"peer", m.peer()}});
    }
    json parts = json::array();
    for (const auto& p : resp.partitions()) {
      json j = {{"partition", p.partition()}, {"end_offset", p.end_offset()}, {"lag", p.lag()},
                {"consumer_id", p.consumer_id()}};
      j["committed_offset"] = p.has_committed() ? json(p.committed_offset()) : json(nullptr);
      parts.push_back(j);
    }
    std::cout << json{{"group", resp.group()}, {"topic", resp.topic()},
                      {"generation", resp.generation()}, {"members", members},
                      {"partitions", parts}}
              << "\n";
    return 0;
  }
  std::printf("group %s on topic %s, generation %lu, %d members\n\n", resp.group().c_str(),
              resp.topic().c_str(), static_cast<unsigned long>(resp.generation()),
              resp.members_size());
  std::printf("%10s %14s %14s %14s  %s\n", "PARTITION", "COMMITTED", "END", "LAG", "CONSUMER");
  for (const auto& p : resp.partitions()) {
    std::string committed = p.has_committed() ? std::to_string(p.committed_offset()) : "-";
    std::printf("%10u %14s %14lu %14lu  %s\n", p.partition(), committed.c_str(),
                static_cast<unsigned long>(p.end_offset()), static_cast<unsigned long>(p.lag()),
                p.consumer_id().c_str());
  }
  return 0;
}

int GroupReset(const ClientOptions& c, const std::string& group, const std::string& topic,
               const std::string& to, const std::vector<uint32_t>& partitions) {
  nodata::v1::ResetOffsetsRequest req;
  req.set_group(group);
  req.set_topic(topic);
  std::string error = ParsePosition(to, req.mutable_to());
  if (!error.empty()) return Fail("--to: " + error);
  for (uint32_t p : partitions) req.add_partitions(p);
  auto stub = nodata::v1::ConsumeService::NewStub(Connect(c));
  nodata::v1::ResetOffsetsResponse resp;
  grpc::Status s = stub->ResetOffsets(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    json out = json::array();
    for (const auto& o : resp.offsets()) {
      out.push_back({{"partition", o.partition()}, {"offset", o.offset()}});
    }
    std::cout << out << "\n";
    return 0;
  }
  for (const auto& o : resp.offsets()) {
    std::printf("partition %u -> %lu\n", o.partition(), static_cast<unsigned long>(o.offset()));
  }
  return 0;
}

int GroupDelete(const ClientOptions& c, const std::string& group, const std::string& topic) {
  nodata::v1::DeleteGroupRequest req;
  req.set_group(group);
  req.set_topic(topic);
  auto stub = nodata::v1::ConsumeService::NewStub(Connect(c));
  nodata::v1::DeleteGroupResponse resp;
  grpc::Status s = stub->DeleteGroup(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    std::cout << json{{"deleted", group}, {"topic", topic}} << "\n";
  } else {
    std::printf("deleted group %s on topic %s\n", group.c_str(), topic.c_str());
  }
  return 0;
}

void AddConsumeCommand(CommandSet& set) {
  ConsumeOptions& cons = set.Keep<ConsumeOptions>();
  CLI::App* consume = set.app().add_subcommand("consume", "print a topic's records as they come");
  consume->add_option("--topic", cons.topic, "topic")->required();
  consume->add_option("--group", cons.group, "consumer group to join (commits as it prints)");
  consume->add_option("--consumer-id", cons.consumer_id, "member id in the group");
  consume->add_option("--from", cons.from,
                      "earliest | latest | committed | offset:N | time:RFC3339 (default: "
                      "committed with a group, else earliest); offset:N outside a partition "
                      "starts at its nearest end");
  OnePerFlag(
      consume->add_option("--partition", cons.partitions, "partition to read (repeatable; no group)"));
  consume->add_option("--format", cons.format, "json (one object per line) | raw (data only)")
      ->capture_default_str();
  consume->add_option("--count", cons.count, "stop after this many records");
  consume->add_flag("--until-end", cons.until_end,
                    "stop once every partition read reached its end offset of when consume "
                    "started (with a group: the assigned partitions)");
  consume->add_option("--max-batch", cons.max_batch, "records per message from the server");
  consume->add_flag("!--no-commit", cons.commit, "with a group: do not commit");
  set.AddClientFlags(consume);
  const ClientOptions& co = set.client();
  set.OnParsed(consume, [&co, &cons] { return Consume(co, cons); });
}

void AddGroupCommands(CommandSet& set) {
  CLI::App* group =
      set.app().add_subcommand("group", "inspect, reset and delete consumer groups");
  group->require_subcommand(1);
  std::string& group_name = set.Keep<std::string>();
  std::string& group_topic = set.Keep<std::string>();
  std::string& reset_to = set.Keep<std::string>();
  auto& reset_partitions = set.Keep<std::vector<uint32_t>>();
  const ClientOptions& co = set.client();
  CLI::App* group_list = group->add_subcommand("list", "list groups with members or offsets");
  group_list->add_option("--topic", group_topic, "only groups on this topic");
  set.AddClientFlags(group_list);
  set.OnParsed(group_list, [&co, &group_topic] { return GroupList(co, group_topic); });
  CLI::App* group_get =
      group->add_subcommand("get", "show a group's members, committed offsets and lag");
  group_get->add_option("group", group_name, "group")->required();
  group_get->add_option("--topic", group_topic, "topic")->required();
  set.AddClientFlags(group_get);
  set.OnParsed(group_get,
               [&co, &group_name, &group_topic] { return GroupGet(co, group_name, group_topic); });
  CLI::App* group_reset =
      group->add_subcommand("reset", "move a group's committed offsets (no live members)");
  group_reset->add_option("group", group_name, "group")->required();
  group_reset->add_option("--topic", group_topic, "topic")->required();
  group_reset->add_option("--to", reset_to, "earliest | latest | offset:N | time:RFC3339")
      ->required();
  OnePerFlag(group_reset->add_option("--partition", reset_partitions,
                                     "partition (repeatable; default all)"));
  set.AddClientFlags(group_reset);
  set.OnParsed(group_reset,
               [&co, &group_name, &group_topic, &reset_to, &reset_partitions] {
                 return GroupReset(co, group_name, group_topic, reset_to, reset_partitions);
               });
  CLI::App* group_delete = group->add_subcommand(
      "delete", "delete a group's committed offsets on a topic (no live members)");
  group_delete->add_option("group", group_name, "group")->required();
  group_delete->add_option("--topic", group_topic, "topic")->required();
  set.AddClientFlags(group_delete);
  set.OnParsed(group_delete, [&co, &group_name, &group_topic] {
    return GroupDelete(co, group_name, group_topic);
  });
}

}  // namespace nodata::cli
