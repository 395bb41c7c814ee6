// Reads a topic with nodata::client::Consumer, prints every record as a JSON line on stdout and
// commits after each batch (assignments and a summary go to stderr).
//
//   consume_example --address 127.0.0.1:7070 --topic orders --group g1
//       [--consumer-id c1] [--start earliest|latest|committed|offset:N] [--max-batch 1000]
//       [--count N] [--idle-exit-ms 2000]
//
// Stops after --count records, or once no record arrived for --idle-exit-ms (0: never).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "json_quote.h"
#include "nodata/client.h"

namespace {

struct Args {
  std::string address = "127.0.0.1:7070";
  std::string topic = "sdk-example";
  std::string group;
  std::string consumer_id;
  std::string start;
  unsigned max_batch = 1000;
  long count = 0;
  long idle_exit_ms = 2000;
};

bool Parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    std::string v = argv[++i];
    if (flag == "--address") a.address = v;
    else if (flag == "--topic") a.topic = v;
    else if (flag == "--group") a.group = v;
    else if (flag == "--consumer-id") a.consumer_id = v;
    else if (flag == "--start") a.start = v;
    else if (flag == "--max-batch") a.max_batch = std::strtoul(v.c_str(), nullptr, 10);
    else if (flag == "--count") a.count = std::atol(v.c_str());
    else if (flag == "--idle-exit-ms") a.idle_exit_ms = std::atol(v.c_str());
    else return false;
  }
  return true;
}

bool ParseStart(const std::string& s, nodata::client::StartPosition& out) {
  using nodata::client::StartPosition;
  if (s.empty()) out = StartPosition{};
  else if (s == "earliest") out = StartPosition::Earliest();
  else if (s == "latest") out = StartPosition::Latest();
  else if (s == "committed") out = StartPosition::Committed();
  else if (s.rfind("offset:", 0) == 0) out = StartPosition::Offset(std::strtoull(s.c_str() + 7, nullptr, 10));
  else return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  nodata::client::ConsumerOptions options;
  if (!Parse(argc, argv, args) || !ParseStart(args.start, options.start)) {
    std::fprintf(stderr,
                 "usage: consume_example [--address host:port] [--topic T] [--group G] "
                 "[--consumer-id ID] [--start earliest|latest|committed|offset:N] "
                 "[--max-batch N] [--count N] [--idle-exit-ms MS]\n");
    return 2;
  }
  options.address = args.address;
  absl::StatusOr<nodata::client::TlsOptions> tls = nodata::client::TlsOptions::FromEnvironment();
  if (!tls.ok()) {
    std::fprintf(stderr, "consume_example: %s\n", tls.status().ToString().c_str());
    return 2;
  }
  options.tls = *tls;  // NODATA_TLS_CA, NODATA_TLS_CERT, NODATA_TLS_KEY, as for the CLI
  if (const char* token = std::getenv("NODATA_TOKEN")) options.token = token;
  options.topic = args.topic;
  options.group = args.group;
  options.consumer_id = args.consumer_id;
  options.max_batch = args.max_batch;
  options.on_assignment = [](const std::vector<uint32_t>& partitions, uint64_t generation) {
    std::string list;
    for (uint32_t p : partitions) list += (list.empty() ? "" : ",") + std::to_string(p);
    std::fprintf(stderr, "{\"assignment\":[%s],\"generation\":%llu}\n", list.c_str(),
                 static_cast<unsigned long long>(generation));
  };
  nodata::client::Consumer consumer(std::move(options));

  long printed = 0;
  auto last_record = std::chrono::steady_clock::now();
  int exit_code = 0;
  for (;;) {
    absl::StatusOr<std::vector<nodata::client::Record>> batch =
        consumer.Poll(std::chrono::milliseconds(200));
    if (!batch.ok()) {
      std::fprintf(stderr, "poll: %s\n", batch.status().ToString().c_str());
      exit_code = 1;
      break;
    }
    for (const nodata::client::Record& r : *batch) {
      std::string headers;
      for (const auto& [k, v] : r.event.headers) {
        headers += (headers.empty() ? "" : ",") + JsonQuote(k) + ":" + JsonQuote(v);
      }
      std::printf("{\"partition\":%u,\"offset\":%llu,\"id\":%s,\"key\":%s,\"data\":%s,"
                  "\"headers\":{%s}}\n",
                  r.partition, static_cast<unsigned long long>(r.offset),
                  JsonQuote(r.event.id).c_str(), JsonQuote(r.event.key).c_str(),
                  JsonQuote(r.event.data).c_str(), headers.c_str());
    }
    printed += static_cast<long>(batch->size());
    const auto now = std::chrono::steady_clock::now();
    if (!batch->empty()) {
      last_record = now;
      std::fflush(stdout);
      if (!args.group.empty()) {
        absl::Status committed = consumer.Commit();
        if (!committed.ok()) std::fprintf(stderr, "commit: %s\n", committed.ToString().c_str());
      }
    }
    if (args.count > 0 && printed >= args.count) break;
    if (args.idle_exit_ms > 0 && now - last_record >= std::chrono::milliseconds(args.idle_exit_ms)) {
      break;
    }
  }
  if (!args.group.empty() && exit_code == 0) {
    absl::Status committed = consumer.Commit();
    if (!committed.ok()) {
      std::fprintf(stderr, "commit: %s\n", committed.ToString().c_str());
      exit_code = 1;
    }
  }
  consumer.Close();
  std::fflush(stdout);
  std::fprintf(stderr, "{\"records\":%ld}\n", printed);
  return exit_code;
}
