// Publishes N events to a topic with nodata::client::Publisher and prints a summary of the acks.
//
//   publish_example --address 127.0.0.1:7070 --topic orders --count 10000
//       [--size 64] [--id-prefix evt] [--rate 5000] [--acks-out acks.jsonl]
//
// Without --id-prefix the SDK assigns the ids. --acks-out writes one JSON line per ack. The summary
// is one JSON line on stdout; the exit code is 1 when any event failed. TLS comes from
// NODATA_TLS_CA, NODATA_TLS_CERT and NODATA_TLS_KEY, and a bearer token from NODATA_TOKEN, as
// for the CLI.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nodata/client.h"

namespace {

struct Args {
  std::string address = "127.0.0.1:7070";
  std::string topic = "sdk-example";
  long count = 1000;
  size_t size = 64;
  std::string id_prefix;
  long rate = 0;  // events per second; 0: as fast as possible
  std::string acks_out;
};

bool Parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    std::string v = argv[++i];
    if (flag == "--address") a.address = v;
    else if (flag == "--topic") a.topic = v;
    else if (flag == "--count") a.count = std::atol(v.c_str());
    else if (flag == "--size") a.size = std::strtoul(v.c_str(), nullptr, 10);
    else if (flag == "--id-prefix") a.id_prefix = v;
    else if (flag == "--rate") a.rate = std::atol(v.c_str());
    else if (flag == "--acks-out") a.acks_out = v;
    else return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!Parse(argc, argv, args)) {
    std::fprintf(stderr,
                 "usage: publish_example [--address host:port] [--topic T] [--count N] "
                 "[--size BYTES] [--id-prefix P] [--rate EVENTS_PER_SEC] [--acks-out FILE]\n");
    return 2;
  }
  FILE* acks_out = nullptr;
  if (!args.acks_out.empty() && !(acks_out = std::fopen(args.acks_out.c_str(), "w"))) {
    std::perror(args.acks_out.c_str());
    return 2;
  }

  absl::StatusOr<nodata::client::TlsOptions> tls = nodata::client::TlsOptions::FromEnvironment();
  if (!tls.ok()) {
    std::fprintf(stderr, "publish_example: %s\n", tls.status().ToString().c_str());
    return 2;
  }
  const char* token = std::getenv("NODATA_TOKEN");
  nodata::client::Publisher publisher(
      {.address = args.address, .tls = *tls, .token = token != nullptr ? token : ""});
  std::mutex mu;  // callbacks run on the SDK's threads
  long acked = 0, duplicates = 0, failed = 0;
  std::string first_error;

  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < args.count; ++i) {
    if (args.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(i * 1000000 / args.rate));
    }
    nodata::client::Event event{.topic = args.topic,
                                .key = "k" + std::to_string(i % 64),
                                .headers = {{"n", std::to_string(i)}}};
    if (!args.id_prefix.empty()) event.id = args.id_prefix + "-" + std::to_string(i);
    event.data = "{\"n\":" + std::to_string(i) + "}";
    if (event.data.size() < args.size) event.data.resize(args.size, ' ');
    publisher.Publish(std::move(event), [&](absl::StatusOr<nodata::client::Ack> ack) {
      std::lock_guard lk(mu);
      if (!ack.ok()) {
        if (failed++ == 0) first_error = ack.status().ToString();
        return;
      }
      ++acked;
      if (ack->duplicate) ++duplicates;
      if (acks_out) {
        std::fprintf(acks_out, "{\"id\":\"%s\",\"partition\":%u,\"offset\":%llu,\"duplicate\":%s}\n",
                     ack->id.c_str(), ack->partition,
                     static_cast<unsigned long long>(ack->offset), ack->duplicate ? "true" : "false");
      }
    });
  }
  publisher.Close();  // flushes: every callback has run
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (acks_out) std::fclose(acks_out);

  std::printf("{\"topic\":\"%s\",\"published\":%ld,\"acked\":%ld,\"duplicates\":%ld,\"failed\":%ld,"
              "\"seconds\":%.3f,\"events_per_second\":%.0f}\n",
              args.topic.c_str(), args.count, acked, duplicates, failed, seconds,
              seconds > 0 ? acked / seconds : 0.0);
  if (failed > 0) {
    std::fprintf(stderr, "%ld events failed; first error: %s\n", failed, first_error.c_str());
    return 1;
  }
  return 0;
}
