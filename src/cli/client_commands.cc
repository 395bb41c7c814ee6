#include "cli/client_commands.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "common/data_format.h"
#include "nodata/v1/nodata.grpc.pb.h"
#include "server/grpc_util.h"

namespace nodata::cli {
namespace {

using nlohmann::json;

// "bytes", "string" or "json" for a topic's format as the server reports it.
std::string FormatName(int format) {
  auto f = server::DataFormatFromProto(format, "format");
  return f.ok() ? std::string(DataFormatName(*f)) : "unknown(" + std::to_string(format) + ")";
}

json TopicJson(const nodata::v1::Topic& t) {
  json parts = json::array();
  for (const auto& p : t.partitions()) {
    parts.push_back({{"partition", p.partition()},
                     {"start_offset", p.start_offset()},
                     {"end_offset", p.end_offset()},
                     {"record_count", p.record_count()},
                     {"bytes_on_disk", p.bytes_on_disk()},
                     {"segment_count", p.segment_count()},
                     {"hot_start_offset", p.hot_start_offset()},
                     {"parquet_file_count", p.parquet_file_count()},
                     {"parquet_bytes", p.parquet_bytes()}});
  }
  return {{"name", t.name()},
          {"partition_count", t.partition_count()},
          {"retention_ms", t.retention_ms()},
          {"retention_bytes", t.retention_bytes()},
          {"key_format", FormatName(t.key_format())},
          {"data_format", FormatName(t.data_format())},
          {"partitions", parts}};
}

// A retention in effect as the server shows it: -1 is unlimited.
std::string RetentionText(int64_t value, const char* unit) {
  return value < 0 ? "unlimited" : std::to_string(value) + " " + unit;
}

void PrintTopicTable(const std::vector<const nodata::v1::Topic*>& topics, bool per_partition) {
  std::printf("%-32s %10s %14s %12s\n", "TOPIC", "PARTITIONS", "RECORDS", "SIZE");
  for (const auto* t : topics) {
    uint64_t records = 0, bytes = 0;
    for (const auto& p : t->partitions()) {
      records += p.record_count();
      bytes += p.bytes_on_disk();
    }
    std::printf("%-32s %10u %14lu %12s\n", t->name().c_str(), t->partition_count(),
                static_cast<unsigned long>(records), HumanBytes(bytes).c_str());
    if (per_partition) {
      std::printf("key format: %s, data format: %s\n", FormatName(t->key_format()).c_str(),
                  FormatName(t->data_format()).c_str());
      std::printf("\n%10s %14s %14s %14s %12s %12s\n", "PARTITION", "START", "END", "RECORDS",
                  "SIZE", "PARQUET");
      for (const auto& p : t->partitions()) {
        std::printf("%10u %14lu %14lu %14lu %12s %12s\n", p.partition(),
                    static_cast<unsigned long>(p.start_offset()),
                    static_cast<unsigned long>(p.end_offset()),
                    static_cast<unsigned long>(p.record_count()),
                    HumanBytes(p.bytes_on_disk()).c_str(), HumanBytes(p.parquet_bytes()).c_str());
      }
    }
  }
}

}  // namespace

int TopicCreate(const ClientOptions& c, const std::string& name, uint32_t partitions,
                const RetentionFlags& retention, const FormatFlags& formats) {
  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  nodata::v1::CreateTopicRequest req;
  req.set_name(name);
  req.set_partitions(partitions);
  auto key_format = ParseDataFormat(formats.key);
  auto data_format = ParseDataFormat(formats.data);
  if (!key_format) return Fail("--key-format must be bytes, string or json");
  if (!data_format) return Fail("--data-format must be bytes, string or json");
  req.set_key_format(server::DataFormatToProto(*key_format));
  req.set_data_format(server::DataFormatToProto(*data_format));
  if (retention.ms) req.set_retention_ms(*retention.ms);
  if (retention.bytes) req.set_retention_bytes(*retention.bytes);
  nodata::v1::CreateTopicResponse resp;
  grpc::Status s = stub->CreateTopic(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    std::cout << TopicJson(resp.topic()) << "\n";
  } else {
    std::printf("created topic %s with %u partitions\n", resp.topic().name().c_str(),
                resp.topic().partition_count());
  }
  return 0;
}

int TopicList(const ClientOptions& c) {
  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  nodata::v1::ListTopicsResponse resp;
  grpc::Status s = stub->ListTopics(Context().get(), {}, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    json out = json::array();
    for (const auto& t : resp.topics()) out.push_back(TopicJson(t));
    std::cout << out << "\n";
  } else {
    std::vector<const nodata::v1::Topic*> topics;
    for (const auto& t : resp.topics()) topics.push_back(&t);
    PrintTopicTable(topics, false);
  }
  return 0;
}

int TopicGet(const ClientOptions& c, const std::string& name) {
  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  nodata::v1::GetTopicRequest req;
  req.set_name(name);
  nodata::v1::GetTopicResponse resp;
  grpc::Status s = stub->GetTopic(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    std::cout << TopicJson(resp.topic()) << "\n";
  } else {
    PrintTopicTable({&resp.topic()}, true);
    std::printf("\nretention: %s, %s per partition\n",
                RetentionText(resp.topic().retention_ms(), "ms").c_str(),
                RetentionText(resp.topic().retention_bytes(), "bytes").c_str());
  }
  return 0;
}

int TopicUpdate(const ClientOptions& c, const std::string& name, const RetentionFlags& retention,
                std::optional<uint32_t> partitions) {
  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  uint32_t before = 0;
  if (partitions) {
    nodata::v1::GetTopicRequest get;
    get.set_name(name);
    nodata::v1::GetTopicResponse got;
    grpc::Status s = stub->GetTopic(Context().get(), get, &got);
    if (!s.ok()) return Fail(s);
    before = got.topic().partition_count();
  }
  nodata::v1::UpdateTopicRequest req;
  req.set_name(name);
  if (retention.ms) req.set_retention_ms(*retention.ms);
  if (retention.bytes) req.set_retention_bytes(*retention.bytes);
  if (partitions) req.set_partitions(*partitions);
  nodata::v1::UpdateTopicResponse resp;
  grpc::Status s = stub->UpdateTopic(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (partitions && resp.topic().partition_count() > before) {
    std::fprintf(stderr,
                 "note: topic %s now has %u partitions (was %u). Keys now map to different "
                 "partitions: events of one key published from now on may land in another "
                 "partition than earlier ones, so ordering per key holds only from now on. "
                 "Records already stored stay where they are.\n",
                 name.c_str(), resp.topic().partition_count(), before);
  }
  if (c.json) {
    std::cout << TopicJson(resp.topic()) << "\n";
  } else {
    std::printf("updated topic %s: %u partitions, retention %s, %s\n",
                resp.topic().name().c_str(), resp.topic().partition_count(),
                RetentionText(resp.topic().retention_ms(), "ms").c_str(),
                RetentionText(resp.topic().retention_bytes(), "bytes").c_str());
  }
  return 0;
}

int TopicFlush(const ClientOptions& c, const std::string& name) {
  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  nodata::v1::FlushTopicRequest req;
  req.set_name(name);
  nodata::v1::FlushTopicResponse resp;
  grpc::Status s = stub->FlushTopic(Context(600).get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    std::cout << TopicJson(resp.topic()) << "\n";
  } else {
    uint64_t files = 0, bytes = 0;
    for (const auto& p : resp.topic().partitions()) {
      files += p.parquet_file_count();
      bytes += p.parquet_bytes();
    }
    std::printf("flushed topic %s: %lu Parquet files, %s\n", name.c_str(),
                static_cast<unsigned long>(files), HumanBytes(bytes).c_str());
  }
  return 0;
}

int TopicDelete(const ClientOptions& c, const std::string& name) {
  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  nodata::v1::DeleteTopicRequest req;
  req.set_name(name);
  nodata::v1::DeleteTopicResponse resp;
  grpc::Status s = stub->DeleteTopic(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    std::cout << json{{"deleted", name}} << "\n";
  } else {
    std::printf("deleted topic %s\n", name.c_str());
  }
  return 0;
}

void AddTopicCommands(CommandSet& set) {
  CLI::App* topic = set.app().add_subcommand("topic", "manage topics");
  topic->require_subcommand(1);
  std::string& topic_name = set.Keep<std::string>();
  uint32_t& partitions = set.Keep<uint32_t>();
  RetentionFlags& retention = set.Keep<RetentionFlags>();
  auto add_retention_flags = [&retention](CLI::App* cmd) {
    cmd->add_option("--retention-ms", retention.ms,
                    "retention by ingest time, per partition (0: server default, -1: unlimited)");
    cmd->add_option("--retention-bytes", retention.bytes,
                    "retention by size, per partition (0: server default, -1: unlimited)");
  };
  const ClientOptions& co = set.client();
  CLI::App* create = topic->add_subcommand("create", "create a topic");
  create->add_option("name", topic_name, "topic name")->required();
  create->add_option("--partitions", partitions, "partition count (0: server default)");
  add_retention_flags(create);
  // Fixed for the topic: publishing refuses other values, Parquet files carry it.
  FormatFlags& formats = set.Keep<FormatFlags>();
  create->add_option("--key-format", formats.key, "format of event keys: bytes | string | json")
      ->check(CLI::IsMember({"bytes", "string", "json"}))
      ->capture_default_str();
  create->add_option("--data-format", formats.data, "format of event data: bytes | string | json")
      ->check(CLI::IsMember({"bytes", "string", "json"}))
      ->capture_default_str();
  set.AddClientFlags(create);
  set.OnParsed(create, [&co, &topic_name, &partitions, &retention, &formats] {
    return TopicCreate(co, topic_name, partitions, retention, formats);
  });
  CLI::App* update =
      topic->add_subcommand("update", "change a topic's retention or add partitions");
  update->add_option("name", topic_name, "topic name")->required();
  add_retention_flags(update);
  auto& update_partitions = set.Keep<std::optional<uint32_t>>();
  update->add_option("--partitions", update_partitions,
                     "grow to this many partitions (keys then map to other partitions)");
  set.AddClientFlags(update);
  set.OnParsed(update,
               [&co, &topic_name, &retention, &update_partitions] {
                 return TopicUpdate(co, topic_name, retention, update_partitions);
               });
  CLI::App* flush = topic->add_subcommand(
      "flush", "compact a topic's hot tier into Parquet files now (returns once durable)");
  flush->add_option("name", topic_name, "topic name")->required();
  set.AddClientFlags(flush);
  set.OnParsed(flush, [&co, &topic_name] { return TopicFlush(co, topic_name); });
  AddTopicExportCommand(set, topic);
  CLI::App* list = topic->add_subcommand("list", "list topics");
  set.AddClientFlags(list);
  set.OnParsed(list, [&co] { return TopicList(co); });
  CLI::App* get = topic->add_subcommand("get", "show a topic and its partitions");
  get->add_option("name", topic_name, "topic name")->required();
  set.AddClientFlags(get);
  set.OnParsed(get, [&co, &topic_name] { return TopicGet(co, topic_name); });
  CLI::App* del = topic->add_subcommand("delete", "delete a topic and its data");
  del->add_option("name", topic_name, "topic name")->required();
  set.AddClientFlags(del);
  set.OnParsed(del, [&co, &topic_name] { return TopicDelete(co, topic_name); });
}

}  // namespace nodata::cli
