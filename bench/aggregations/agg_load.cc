// nodata_agg_load: publishes the aggregation benchmark's events over PublishStream.
//
//   nodata_agg_load --server ADDR --topic T --events N [--users 100000] [--rate 0]
//                   [--event-rate 10000] [--start-us US] [--batch 1000] [--inflight 4] [--seed 1]
//
// Event i has ~100 bytes of JSON data:
//   {"user":"u<0..users-1>","amount":<0..999>,"item":"sku-<5 digits>","country":"..",
//    "device":"..","seq":i,"ok":true}
// with user, amount and item drawn from a seeded xorshift generator. With --event-rate R (> 0)
// its event time is start + i / R seconds (--start-us, default 2026-11-26T10:00:00Z); with
// --event-rate 0 the event carries no timestamp, so its event time is its ingest time. Ids are
// left to the server, keys empty (partition by a hash of the id).
//
// --rate 0 sends as fast as `inflight` batches in flight allow; --rate R paces the batches so
// that R events/s are sent (open loop: a batch that falls behind is sent at once, not skipped).
// Prints one JSON line: events, seconds (first send to last ack) and events_per_s.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/args.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string server = "127.0.0.1:7070";
  std::string topic;
  uint64_t events = 0;
  uint64_t users = 100000;
  double rate = 0;
  double event_rate = 10000;
  int64_t start_us = 1795687200000000;  // 2026-11-26T10:00:00Z
  int batch = 1000;
  int inflight = 4;
  uint64_t seed = 1;
};

[[noreturn]] void Usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "nodata_agg_load: %s\n", why);
  std::fprintf(stderr,
               "usage: nodata_agg_load --server ADDR --topic T --events N [--users U] [--rate R]\n"
               "         [--event-rate R] [--start-us US] [--batch B] [--inflight K] [--seed S]\n");
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  const nodata::bench::Args args{std::vector<std::string>(argv + 1, argv + argc)};
  Options o;
  o.server = args.Get("--server", o.server);
  o.topic = args.Get("--topic", "");
  o.events = args.GetInt("--events", 0);
  o.users = args.GetInt("--users", o.users);
  o.rate = std::strtod(args.Get("--rate", "0").c_str(), nullptr);
  o.event_rate = std::strtod(args.Get("--event-rate", "10000").c_str(), nullptr);
  o.start_us = static_cast<int64_t>(args.GetInt("--start-us", static_cast<uint64_t>(o.start_us)));
  o.batch = static_cast<int>(args.GetInt("--batch", static_cast<uint64_t>(o.batch)));
  o.inflight = static_cast<int>(args.GetInt("--inflight", static_cast<uint64_t>(o.inflight)));
  o.seed = args.GetInt("--seed", o.seed);
  if (o.topic.empty() || o.events == 0) Usage("--topic and --events are required");
  if (o.users == 0 || o.batch <= 0 || o.inflight <= 0) Usage("bad --users, --batch or --inflight");
  return o;
}

struct Rng {  // xorshift64*
  uint64_t s;
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
};

// Fills `ev` with event `i` (topic already set).
void MakeEvent(const Options& o, uint64_t i, Rng& rng, nodata::v1::Event* ev) {
  static const char* const kCountries[] = {"DE", "FR", "US", "JP", "BR", "IN", "GB", "NL"};
  static const char* const kDevices[] = {"mobile", "desktop", "tablet"};
  char buf[256];
  const uint64_t r = rng.Next();
  const int n = std::snprintf(
      buf, sizeof buf,
      "{\"user\":\"u%llu\",\"amount\":%u,\"item\":\"sku-%05u\",\"country\":\"%s\",\"device\":\"%s\","
      "\"seq\":%llu,\"ok\":true}",
      static_cast<unsigned long long>((r >> 20) % o.users), static_cast<unsigned>(r % 1000),
      static_cast<unsigned>((r >> 44) % 100000), kCountries[i & 7], kDevices[i % 3],
      static_cast<unsigned long long>(i));
  ev->set_data(buf, static_cast<size_t>(n));
  if (o.event_rate > 0) {
    const int64_t us = o.start_us + static_cast<int64_t>(static_cast<double>(i) * 1e6 / o.event_rate);
    ev->mutable_timestamp()->set_seconds(us / 1000000);
    ev->mutable_timestamp()->set_nanos(static_cast<int32_t>(us % 1000000) * 1000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(o.server, grpc::InsecureChannelCredentials(), args);
  auto stub = nodata::v1::IngestService::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->PublishStream(&ctx);

  std::mutex mu;
  std::condition_variable cv;
  int inflight = 0;
  uint64_t acked = 0;
  std::string error;
  Clock::time_point last_ack;

  std::thread reader([&] {
    nodata::v1::PublishBatchResponse resp;
    while (stream->Read(&resp)) {
      std::lock_guard<std::mutex> l(mu);
      acked += static_cast<uint64_t>(resp.acks_size());
      --inflight;
      last_ack = Clock::now();
      cv.notify_all();
    }
  });

  Rng rng{o.seed * 0x9E3779B97F4A7C15ull + 1};
  nodata::v1::PublishBatchRequest req;
  const Clock::time_point start = Clock::now();
  uint64_t sent = 0;
  bool ok = true;
  while (sent < o.events && ok) {
    const int n = static_cast<int>(std::min<uint64_t>(o.batch, o.events - sent));
    while (req.events_size() > n) req.mutable_events()->RemoveLast();
    while (req.events_size() < n) req.add_events()->set_topic(o.topic);
    for (int j = 0; j < n; ++j) MakeEvent(o, sent + j, rng, req.mutable_events(j));
    if (o.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(sent / o.rate)));
    }
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return inflight < o.inflight; });
      ++inflight;
    }
    ok = stream->Write(req);
    sent += n;
  }
  stream->WritesDone();
  reader.join();
  const grpc::Status st = stream->Finish();
  if (!st.ok() || !ok || acked != sent) {
    std::fprintf(stderr, "nodata_agg_load: %s (%llu of %llu events acknowledged)\n",
                 st.ok() ? "the stream broke" : st.error_message().c_str(),
                 static_cast<unsigned long long>(acked), static_cast<unsigned long long>(sent));
    return 1;
  }
  const double secs = std::chrono::duration<double>(last_ack - start).count();
  std::printf("{\"events\":%llu,\"seconds\":%.3f,\"events_per_s\":%.0f,\"target_rate\":%.0f}\n",
              static_cast<unsigned long long>(acked), secs, acked / secs, o.rate);
  return 0;
}
