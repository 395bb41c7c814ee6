// nodata consume and nodata group: the ConsumeService from the command line.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <pthread.h>

#include <thread>

#include "absl/time/time.h"
#include "cli/client_commands.h"
#include "cli/client_util.h"
#include "cli/record_json.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.grpc.pb.h"

namespace nodata::cli {
namespace {

using nlohmann::json;

// "earliest" | "latest" | "committed" | "offset:N" | "time:RFC3339" into `out`; an error
// message otherwise.
std::string ParsePosition(const std::string& s, nodata::v1::StartPosition* out) {
  if (s == "earliest") {
    out->set_earliest(true);
  } else if (s == "latest") {
    out->set_latest(true);
  } else if (s == "committed") {
    out->set_committed(true);
  } else if (s.rfind("offset:", 0) == 0) {
    const std::string n = s.substr(7);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 19) {
      return "offset:N wants a non-negative integer, got \"" + n + "\"";
    }
    out->set_offset(std::stoull(n));
  } else if (s.rfind("time:", 0) == 0) {
    absl::Time t;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, s.substr(5), &t, &error)) {
      return "time: wants an RFC 3339 time such as 2026-11-26T10:00:00Z (" + error + ")";
    }
    const int64_t us = absl::ToUnixMicros(t);
    out->mutable_timestamp()->set_seconds(us / 1000000 - (us % 1000000 < 0 ? 1 : 0));
    out->mutable_timestamp()->set_nanos(static_cast<int32_t>(((us % 1000000) + 1000000) % 1000000) * 1000);
  } else {
    return "a position is earliest, latest, committed, offset:N or time:RFC3339; got \"" + s + "\"";
  }
  return "";
}

std::atomic<bool> g_stop{false};

}  // namespace

int Consume(const ClientOptions& c, const ConsumeOptions& o) {
  if (o.format != "json" && o.format != "raw") {
    return Fail("--format must be json or raw, got \"" + o.format + "\"");
  }
  nodata::v1::SubscribeRequest req;
  req.set_topic(o.topic);
  req.set_group(o.group);
  req.set_consumer_id(o.consumer_id);
  req.set_max_batch(o.max_batch);
  for (uint32_t p : o.partitions) req.add_partitions(p);
  if (!o.from.empty()) {
    std::string error = ParsePosition(o.from, req.mutable_start());
    if (!error.empty()) return Fail("--from: " + error);
  }
  // SIGINT/SIGTERM end the stream; what was printed is committed first. The signals are blocked
  // before gRPC starts its threads, and one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto channel = Connect(c);
  auto stub = nodata::v1::ConsumeService::NewStub(channel);
  grpc::ClientContext ctx;
  std::atomic<bool> exiting{false};
  std::thread watcher([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!exiting) {
      g_stop = true;
      ctx.TryCancel();
    }
  });
  auto stop_watcher = [&] {
    exiting = true;
    pthread_kill(watcher.native_handle(), SIGTERM);
    watcher.join();
  };

  auto reader = stub->Subscribe(&ctx, req);
  nodata::v1::SubscribeResponse msg;
  uint64_t printed = 0;
  std::map<uint32_t, uint64_t> next;  // to commit
  auto commit = [&]() -> grpc::Status {
    if (o.group.empty() || next.empty()) return grpc::Status::OK;
    nodata::v1::CommitRequest cr;
    cr.set_group(o.group);
    cr.set_topic(o.topic);
    for (const auto& [p, off] : next) {
      auto* po = cr.add_offsets();
      po->set_partition(p);
      po->set_offset(off);
    }
    nodata::v1::CommitResponse resp;
    grpc::Status s = stub->Commit(Context().get(), cr, &resp);
    if (s.ok()) next.clear();
    return s;
  };
  bool done = false;
  while (!done && reader->Read(&msg)) {
    if (msg.has_assignment()) {
      if (c.json || o.format == "json") {
        json a = json::array();
        for (uint32_t p : msg.assignment().partitions()) a.push_back(p);
        std::cerr << json{{"assignment", a}, {"generation", msg.assignment().generation()}}
                  << "\n";
      }
      continue;
    }
    for (const auto& r : msg.records().records()) {
      if (o.format == "json") {
        std::cout << RecordJson(r).dump() << "\n";
      } else {
        std::cout.write(r.event().data().data(), static_cast<std::streamsize>(r.event().data().size()));
        std::cout << "\n";
      }
      next[r.partition()] = r.offset() + 1;
      if (o.count > 0 && ++printed >= o.count) {
        done = true;
        break;
      }
    }
    std::cout.flush();
    if (o.commit) {
      grpc::Status s = commit();
      if (!s.ok()) {
        ctx.TryCancel();
        stop_watcher();
        return Fail(s);
      }
    }
  }
  if (done) ctx.TryCancel();
  grpc::Status s = reader->Finish();
  stop_watcher();
  if (o.commit) {
    grpc::Status cs = commit();
    if (!cs.ok()) return Fail(cs);
  }
  if (!s.ok() && !(s.error_code() == grpc::StatusCode::CANCELLED && (done || g_stop))) {
    return Fail(s);
  }
  return 0;
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

}  // namespace nodata::cli
