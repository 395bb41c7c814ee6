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

void PrintTopicTable(const std::vector<const nodata::v1::Topic*>& topics, bool per_partition) {
  std::printf("%-32s %10s %14s %14s\n", "TOPIC", "PARTITIONS", "RECORDS", "BYTES");
  for (const auto* t : topics) {
    uint64_t records = 0, bytes = 0;
    for (const auto& p : t->partitions()) {
      records += p.record_count();
      bytes += p.bytes_on_disk();
    }
    std::printf("%-32s %10u %14lu %14lu\n", t->name().c_str(), t->partition_count(),
                static_cast<unsigned long>(records), static_cast<unsigned long>(bytes));
    if (per_partition) {
      std::printf("key format: %s, data format: %s\n", FormatName(t->key_format()).c_str(),
                  FormatName(t->data_format()).c_str());
      std::printf("\n%10s %14s %14s %14s %14s\n", "PARTITION", "START", "END", "RECORDS", "BYTES");
      for (const auto& p : t->partitions()) {
        std::printf("%10u %14lu %14lu %14lu %14lu\n", p.partition(),
                    static_cast<unsigned long>(p.start_offset()),
                    static_cast<unsigned long>(p.end_offset()),
                    static_cast<unsigned long>(p.record_count()),
                    static_cast<unsigned long>(p.bytes_on_disk()));
      }
    }
  }
}

json AckJson(const nodata::v1::Ack& a) {
  return {{"topic", a.topic()},       {"partition", a.partition()}, {"offset", a.offset()},
          {"duplicate", a.duplicate()}, {"id", a.id()}};
}

// Fills `e` from one JSONL line; an error message on failure.
std::string EventFromJson(const json& j, const std::string& default_topic, nodata::v1::Event* e) {
  if (!j.is_object()) return "expected a JSON object";
  e->set_topic(default_topic);
  for (const auto& [name, value] : j.items()) {
    if (name == "topic" || name == "id" || name == "key") {
      if (!value.is_string()) return "\"" + name + "\" must be a string";
      const std::string& s = value.get_ref<const std::string&>();
      if (name == "topic") e->set_topic(s);
      if (name == "id") e->set_id(s);
      if (name == "key") e->set_key(s);
    } else if (name == "data") {
      e->set_data(value.is_string() ? value.get<std::string>() : value.dump());
    } else if (name == "data_base64") {
      if (!value.is_string()) return "\"data_base64\" must be a string";
      std::string decoded;
      if (!absl::Base64Unescape(value.get<std::string>(), &decoded)) {
        return "\"data_base64\" is not valid base64";
      }
      e->set_data(decoded);
    } else if (name == "timestamp") {
      if (!value.is_string()) return "\"timestamp\" must be an RFC 3339 string";
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, value.get<std::string>(), &t, &err)) {
        return "\"timestamp\": " + err;
      }
      int64_t us = absl::ToUnixMicros(t);
      e->mutable_timestamp()->set_seconds(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
      e->mutable_timestamp()->set_nanos(static_cast<int32_t>(((us % 1000000) + 1000000) % 1000000) *
                                        1000);
    } else if (name == "headers") {
      if (!value.is_object()) return "\"headers\" must be an object of strings";
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) return "header \"" + k + "\" must be a string";
        (*e->mutable_headers())[k] = v.get<std::string>();
      }
    } else {
      return "unknown field \"" + name + "\"";
    }
  }
  if (e->topic().empty()) return "no topic: give --topic or a \"topic\" field";
  return "";
}

int PublishFile(const ClientOptions& c, const PublishOptions& p) {
  std::ifstream in(p.file, std::ios::binary);
  if (!in) return Fail("cannot open " + p.file);
  in.seekg(0, std::ios::end);
  const double file_bytes = static_cast<double>(in.tellg());
  in.seekg(0);
  const bool progress = ::isatty(STDERR_FILENO) == 1;
  const auto started = std::chrono::steady_clock::now();

  auto stub = nodata::v1::IngestService::NewStub(Connect(c));
  grpc::ClientContext ctx;
  auto stream = stub->PublishStream(&ctx);

  // Responses are read on another thread so that batches stay in flight (pipelining).
  constexpr int kMaxInflight = 8;
  std::mutex mu;
  std::condition_variable cv;
  int inflight = 0;
  uint64_t published = 0, duplicates = 0;
  bool reader_failed = false;
  std::thread reader([&] {
    nodata::v1::PublishBatchResponse resp;
    while (stream->Read(&resp)) {
      std::lock_guard<std::mutex> lock(mu);
      --inflight;
      for (const auto& a : resp.acks()) {
        if (a.duplicate()) ++duplicates;
        ++published;
      }
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu);
    reader_failed = true;
    cv.notify_all();
  });

  std::string line;
  uint64_t line_no = 0;
  std::string error;
  auto last_draw = started - std::chrono::seconds(1);  // redrawn at most 10 times a second
  nodata::v1::PublishBatchRequest batch;
  auto send = [&]() -> bool {
    if (batch.events_size() == 0) return true;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return inflight < kMaxInflight || reader_failed; });
      if (reader_failed) return false;
      ++inflight;
    }
    bool ok = stream->Write(batch);
    batch.Clear();
    const auto now = std::chrono::steady_clock::now();
    if (progress && now - last_draw >= std::chrono::milliseconds(100)) {
      last_draw = now;
      double done = file_bytes > 0 ? static_cast<double>(in.tellg()) / file_bytes : 1.0;
      if (done < 0) done = 1.0;
      int width = 40;
      int filled = static_cast<int>(done * width);
      std::fprintf(stderr, "\r[%s%s] %5.1f%% %lu lines", std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), done * 100,
                   static_cast<unsigned long>(line_no));
    }
    return ok;
  };
  bool write_ok = true;
  while (write_ok && std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      error = "line " + std::to_string(line_no) + ": not valid JSON";
      break;
    }
    std::string bad = EventFromJson(j, p.topic, batch.add_events());
    if (!bad.empty()) {
      error = "line " + std::to_string(line_no) + ": " + bad;
      break;
    }
    if (static_cast<uint32_t>(batch.events_size()) >= p.batch) write_ok = send();
  }
  if (error.empty() && write_ok) write_ok = send();
  stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();
  if (progress) {
    std::fprintf(stderr, "\r[%s] 100.0%% %lu lines\n", std::string(40, '#').c_str(),
                 static_cast<unsigned long>(line_no));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!error.empty()) {
    return Fail(error + " (" + std::to_string(published) + " events before it were published)");
  }
  if (!status.ok()) return Fail(status);
  std::cout << json{{"published", published}, {"duplicates", duplicates}, {"seconds", seconds}}
            << "\n";
  return 0;
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
  }
  return 0;
}

int TopicUpdate(const ClientOptions& c, const std::string& name, const RetentionFlags& retention) {
  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  nodata::v1::UpdateTopicRequest req;
  req.set_name(name);
  if (retention.ms) req.set_retention_ms(*retention.ms);
  if (retention.bytes) req.set_retention_bytes(*retention.bytes);
  nodata::v1::UpdateTopicResponse resp;
  grpc::Status s = stub->UpdateTopic(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    std::cout << TopicJson(resp.topic()) << "\n";
  } else {
    std::printf("updated topic %s: retention %ld ms, %ld bytes (0: unlimited)\n",
                resp.topic().name().c_str(), static_cast<long>(resp.topic().retention_ms()),
                static_cast<long>(resp.topic().retention_bytes()));
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
    std::printf("flushed topic %s: %lu Parquet files, %lu bytes\n", name.c_str(),
                static_cast<unsigned long>(files), static_cast<unsigned long>(bytes));
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

int Publish(const ClientOptions& c, const PublishOptions& p) {
  if (!p.file.empty()) return PublishFile(c, p);
  auto stub = nodata::v1::IngestService::NewStub(Connect(c));
  nodata::v1::PublishRequest req;
  auto* e = req.mutable_event();
  e->set_topic(p.topic);
  e->set_key(p.key);
  e->set_id(p.id);
  e->set_data(p.data);
  for (const std::string& h : p.headers) {
    auto eq = h.find('=');
    if (eq == std::string::npos) return Fail("--header wants NAME=VALUE, got \"" + h + "\"");
    (*e->mutable_headers())[h.substr(0, eq)] = h.substr(eq + 1);
  }
  nodata::v1::PublishResponse resp;
  grpc::Status s = stub->Publish(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  std::cout << AckJson(resp.ack()) << "\n";
  return 0;
}

}  // namespace nodata::cli
