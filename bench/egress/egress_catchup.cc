// nodata_egress_catchup: preloads a topic and measures how fast one subscriber reads it back.
//
//   nodata_egress_catchup preload --server ADDR --topic T --count N [--payload 100]
//   nodata_egress_catchup read    --server ADDR --topic T --count N [--max-batch 10000]
//   nodata_egress_catchup latency --server ADDR --topic T [--rate 10000] [--seconds 10] [--warmup 2]
//
// preload: PublishStream with batches of 1000 events and 8 in flight (fast, not measured).
// read:    one Subscribe stream from the earliest offset, without a group, until N records have
//          arrived; offsets are checked to be dense per partition. Prints one JSON line: records,
//          seconds, records/s, MB/s of payload (10^6 B), client CPU (100 = one core).
//          --decode protobuf (default): every message is parsed into the generated classes (on
//          an arena, as a careful application would). --decode wire: every message is received
//          as raw bytes (its slices copied into one reused buffer) and walked field by field: each
//          record's partition, offset and event (its data's size) are decoded and every length
//          is bounds-checked, without building any object (as a zero-copy client would).
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "../common/tls.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string server = "127.0.0.1:7070";
  nodata::bench::TlsFlags tls;
  std::string topic = "egress";
  uint64_t count = 1000000;
  size_t payload = 100;
  uint32_t max_batch = 10000;
  std::string decode = "protobuf";
  double rate = 10000;
  double seconds = 10;
  double warmup = 2;
};

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::shared_ptr<grpc::Channel> Channel(const Options& o) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(o.server, nodata::bench::Credentials(o.tls), args);
}

int Preload(const Options& o) {
  auto stub = nodata::v1::IngestService::NewStub(Channel(o));
  grpc::ClientContext ctx;
  auto stream = stub->PublishStream(&ctx);
  const std::string data(o.payload, 'x');
  constexpr uint64_t kBatch = 1000;
  constexpr int kInflight = 8;
  uint64_t sent = 0, acked = 0;
  int inflight = 0;
  nodata::v1::PublishBatchResponse resp;
  while (acked < o.count) {
    while (inflight < kInflight && sent < o.count) {
      nodata::v1::PublishBatchRequest req;
      for (uint64_t i = 0; i < kBatch && sent < o.count; ++i, ++sent) {
        auto* e = req.add_events();
        e->set_topic(o.topic);
        e->set_id("pre-" + std::to_string(sent));
        e->set_key("k" + std::to_string(sent % 64));
        e->set_data(data);
      }
      if (!stream->Write(req)) break;
      ++inflight;
    }
    if (!stream->Read(&resp)) break;
    acked += static_cast<uint64_t>(resp.acks_size());
    --inflight;
  }
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  if (!s.ok() || acked != o.count) {
    std::fprintf(stderr, "preload: %s (acked %lu of %lu)\n", s.error_message().c_str(),
                 static_cast<unsigned long>(acked), static_cast<unsigned long>(o.count));
    return 1;
  }
  return 0;
}

// latency: a publisher thread sends `rate` events/s as one PublishBatch every millisecond (sized by
// the elapsed time); a subscriber (start: latest) receives them. Each event's data begins with its
// send time in nanoseconds (steady clock), so publish -> receive latency is on one clock.
int Latency(const Options& o) {
  auto channel = Channel(o);
  auto ingest = nodata::v1::IngestService::NewStub(channel);
  auto consume = nodata::v1::ConsumeService::NewStub(Channel(o));
  {
    auto topics = nodata::v1::TopicService::NewStub(channel);
    grpc::ClientContext ctx;
    nodata::v1::CreateTopicRequest req;
    req.set_name(o.topic);
    req.set_partitions(1);
    nodata::v1::CreateTopicResponse resp;
    topics->CreateTopic(&ctx, req, &resp);  // ALREADY_EXISTS is fine
  }
  grpc::ClientContext sub_ctx;
  nodata::v1::SubscribeRequest sreq;
  sreq.set_topic(o.topic);
  sreq.mutable_start()->set_latest(true);
  auto reader = consume->Subscribe(&sub_ctx, sreq);
  std::vector<double> lat;
  lat.reserve(static_cast<size_t>(o.rate * (o.seconds + o.warmup) * 1.1));
  std::atomic<uint64_t> received{0};
  const auto start = Clock::now();
  const auto warm_end = start + std::chrono::duration<double>(o.warmup);
  std::thread sub([&] {
    nodata::v1::SubscribeResponse msg;
    while (reader->Read(&msg)) {
      const auto t = Clock::now();
      for (const auto& r : msg.records().records()) {
        int64_t sent_ns = 0;
        std::memcpy(&sent_ns, r.event().data().data(), sizeof sent_ns);
        const auto sent = Clock::time_point(std::chrono::nanoseconds(sent_ns));
        if (sent >= warm_end) lat.push_back(std::chrono::duration<double, std::milli>(t - sent).count());
        received.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the subscription is live
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration<double>(o.warmup + o.seconds);
  uint64_t sent = 0;
  std::string data(std::max<size_t>(o.payload, 8), 'x');
  auto next = t0;
  while (Clock::now() < end) {
    next += std::chrono::milliseconds(1);
    std::this_thread::sleep_until(next);
    const auto now = Clock::now();
    const uint64_t due = static_cast<uint64_t>(
        std::chrono::duration<double>(now - t0).count() * o.rate);
    if (due <= sent) continue;
    nodata::v1::PublishBatchRequest req;
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           now.time_since_epoch()).count();
    std::memcpy(data.data(), &ns, sizeof ns);
    for (uint64_t i = sent; i < due; ++i) {
      auto* e = req.add_events();
      e->set_topic(o.topic);
      e->set_data(data);
    }
    grpc::ClientContext ctx;
    nodata::v1::PublishBatchResponse resp;
    grpc::Status s = ingest->PublishBatch(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "publish: %s\n", s.error_message().c_str());
      return 1;
    }
    sent = due;
  }
  const auto wait_end = Clock::now() + std::chrono::seconds(5);
  while (received.load() < sent && Clock::now() < wait_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  sub_ctx.TryCancel();
  sub.join();
  std::sort(lat.begin(), lat.end());
  auto at = [&](double q) {
    return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(q * lat.size()))];
  };
  std::printf(
      "{\"system\": \"nodata\", \"mode\": \"latency\", \"client\": \"c++\", \"rate\": %.0f, "
      "\"sent\": %lu, \"received\": %lu, \"n\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
      "\"p999_ms\": %.3f, \"max_ms\": %.3f}\n",
      o.rate, static_cast<unsigned long>(sent), static_cast<unsigned long>(received.load()),
      lat.size(), at(0.5), at(0.99), at(0.999), lat.empty() ? 0.0 : lat.back());
  return received.load() == sent ? 0 : 1;
}

// Protobuf wire format, just enough to walk a SubscribeResponse without building messages.
class Wire {
 public:
  Wire(const char* p, const char* end) : p_(p), end_(end) {}
  bool done() const { return p_ >= end_; }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const uint8_t b = static_cast<uint8_t>(*p_++);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) return true;
    }
    return false;
  }
  // Reads a field's tag and, for a length-delimited field, its bytes (`*sub`); skips the value of
  // fixed-size fields. False on malformed input.
  bool Field(int* number, uint64_t* varint, Wire* sub) {
    uint64_t tag;
    if (!Varint(&tag)) return false;
    *number = static_cast<int>(tag >> 3);
    switch (tag & 7) {
      case 0:
        return Varint(varint);
      case 1:
        return Skip(8);
      case 5:
        return Skip(4);
      case 2: {
        uint64_t n;
        if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
        *sub = Wire(p_, p_ + n);
        p_ += n;
        return true;
      }
      default:
        return false;
    }
  }
  size_t size() const { return static_cast<size_t>(end_ - p_); }

 private:
  bool Skip(size_t n) {
    if (n > static_cast<size_t>(end_ - p_)) return false;
    p_ += n;
    return true;
  }
  const char* p_;
  const char* end_;
};

struct ReadStats {
  uint64_t got = 0, bytes = 0;
  std::map<uint32_t, uint64_t> next;
  bool dense = true;
  void Record(uint32_t partition, uint64_t offset, size_t data_bytes) {
    auto [it, fresh] = next.try_emplace(partition, offset);
    if (it->second != offset) dense = false;
    it->second = offset + 1;
    bytes += data_bytes;
    ++got;
  }
  // Prints the JSON line; true when all records arrived, densely.
  bool Report(const Options& o, double seconds, double cpu) const {
    std::printf(
        "{\"records\": %lu, \"seconds\": %.3f, \"records_per_s\": %.0f, \"mb_per_s\": %.1f, "
        "\"client_cpu\": %.0f, \"dense\": %s, \"decode\": \"%s\"}\n",
        static_cast<unsigned long>(got), seconds, static_cast<double>(got) / seconds,
        static_cast<double>(bytes) / seconds / 1e6, 100 * cpu / seconds, dense ? "true" : "false",
        o.decode.c_str());
    return got == o.count && dense;
  }
};

// Walks SubscribeResponse{records = 1: RecordBatch{records = 1: Record{event = 1: Event{data = 4},
// partition = 2, offset = 3}}}; false on malformed input.
bool WalkResponse(Wire msg, ReadStats* stats) {
  int field;
  uint64_t v;
  Wire batch(nullptr, nullptr);
  while (!msg.done()) {
    if (!msg.Field(&field, &v, &batch)) return false;
    if (field != 1) continue;
    Wire record(nullptr, nullptr);
    while (!batch.done()) {
      if (!batch.Field(&field, &v, &record)) return false;
      if (field != 1) continue;
      uint32_t partition = 0;
      uint64_t offset = 0;
      size_t data_bytes = 0;
      Wire sub(nullptr, nullptr);
      while (!record.done()) {
        if (!record.Field(&field, &v, &sub)) return false;
        if (field == 2) partition = static_cast<uint32_t>(v);
        if (field == 3) offset = v;
        if (field != 1) continue;
        Wire value(nullptr, nullptr);
        while (!sub.done()) {  // the Event
          if (!sub.Field(&field, &v, &value)) return false;
          if (field == 4) data_bytes = value.size();
        }
      }
      stats->Record(partition, offset, data_bytes);
    }
  }
  return true;
}

int ReadWire(const Options& o, const nodata::v1::SubscribeRequest& req) {
  auto channel = Channel(o);
  const grpc::internal::RpcMethod method("/nodata.v1.ConsumeService/Subscribe",
                                         grpc::internal::RpcMethod::SERVER_STREAMING, channel);
  grpc::ClientContext ctx;
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel.get(), method, &ctx,
                                                                    req));
  ReadStats stats;
  grpc::ByteBuffer buffer;
  std::vector<grpc::Slice> slices;
  std::string joined;  // reused: a message in several slices is copied here
  bool malformed = false;
  while (stats.got < o.count && reader->Read(&buffer)) {
    if (!buffer.Dump(&slices).ok()) break;
    std::string_view bytes;
    if (slices.size() == 1) {
      bytes = std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size());
    } else {
      joined.clear();
      for (const grpc::Slice& s : slices) {
        joined.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
      bytes = joined;
    }
    if (!WalkResponse(Wire(bytes.data(), bytes.data() + bytes.size()), &stats)) {
      malformed = true;
      break;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  ctx.TryCancel();
  reader->Finish();
  if (malformed) std::fprintf(stderr, "read: a malformed message\n");
  return stats.Report(o, seconds, cpu) && !malformed ? 0 : 1;
}

int Read(const Options& o) {
  auto stub = nodata::v1::ConsumeService::NewStub(Channel(o));
  grpc::ClientContext ctx;
  nodata::v1::SubscribeRequest req;
  req.set_topic(o.topic);
  req.mutable_start()->set_earliest(true);
  req.set_max_batch(o.max_batch);
  if (o.decode == "wire") return ReadWire(o, req);
  if (o.decode != "protobuf") {
    std::fprintf(stderr, "--decode is protobuf or wire\n");
    return 2;
  }
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  auto reader = stub->Subscribe(&ctx, req);
  ReadStats stats;
  // Each message is parsed onto an arena reset per message: a few block allocations per batch
  // instead of several per record.
  google::protobuf::ArenaOptions blocks;
  blocks.start_block_size = 1 << 20;
  blocks.max_block_size = 4 << 20;
  google::protobuf::Arena arena(blocks);
  for (;;) {
    arena.Reset();
    auto* msg = google::protobuf::Arena::CreateMessage<nodata::v1::SubscribeResponse>(&arena);
    if (stats.got >= o.count || !reader->Read(msg)) break;
    for (const auto& r : msg->records().records()) {
      stats.Record(r.partition(), r.offset(), r.event().data().size());
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  ctx.TryCancel();
  reader->Finish();
  return stats.Report(o, seconds, cpu) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s preload|read [--server A] [--topic T] [--count N] "
                         "[--payload B] [--max-batch N] "
                         "[--tls-ca F [--tls-cert F --tls-key F] [--token T]]\n",
                 argv[0]);
    return 2;
  }
  o.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--server") o.server = v;
    else if (o.tls.Take(k, v)) continue;
    else if (k == "--topic") o.topic = v;
    else if (k == "--count") o.count = std::strtoull(v, nullptr, 10);
    else if (k == "--payload") o.payload = std::strtoull(v, nullptr, 10);
    else if (k == "--decode") o.decode = v;
    else if (k == "--max-batch") o.max_batch = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    else if (k == "--rate") o.rate = std::strtod(v, nullptr);
    else if (k == "--seconds") o.seconds = std::strtod(v, nullptr);
    else if (k == "--warmup") o.warmup = std::strtod(v, nullptr);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.mode == "preload") return Preload(o);
  if (o.mode == "read") return Read(o);
  if (o.mode == "latency") return Latency(o);
  std::fprintf(stderr, "unknown mode %s\n", o.mode.c_str());
  return 2;
}
