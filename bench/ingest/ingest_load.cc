// nodata_ingest_load: a gRPC load generator for nodata's durable ingest path.
//
//   nodata_ingest_load unary  --concurrency 64 [options]
//   nodata_ingest_load stream --batch 1000 --inflight 4 [--streams 1] [options]
//
// unary:  `concurrency` Publish calls always outstanding (async completion-queue API, no thread per
//         call); latency is per call, i.e. per event.
// stream: `streams` PublishStream calls, each keeping `inflight` batches of `batch` events written
//         but not yet answered; latency is per batch (write -> its response).
//
// The client is built so that it is not the bottleneck on a small machine: requests are serialized
// once into a template before the timed loop, and each request is a memcpy of that template with
// fresh event ids (and keys) patched in place; responses are scanned on the wire format (ack count,
// duplicate flags) instead of being parsed into messages. Every event carries a unique id, so the
// server's dedupe does the same work as in production; the first response of every call slot is
// fully parsed and its ack ids checked against the ids sent.
//
// Prints one JSON line with events/s, MB/s (payload bytes, 1 MB = 10^6 B), latency percentiles in
// ms, and the client's (and, with --server-pid, the server's) and the whole machine's CPU use over
// the measured window (100 = one core busy). Exit code 0 when the run completed with no error and at least one event.
#include <grpc/slice.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/tls.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kPublishMethod[] = "/nodata.v1.IngestService/Publish";
constexpr char kStreamMethod[] = "/nodata.v1.IngestService/PublishStream";

// Event ids are <8 hex run id>-<15 digit sequence>: unique per run and per process.
constexpr size_t kIdLen = 24;
constexpr size_t kSeqDigits = 15;
constexpr size_t kKeyLen = 16;
constexpr char kIdPlaceholder = '~';
constexpr char kKeyPlaceholder = '^';

struct Options {
  std::string mode;  // unary | stream
  std::string server = "127.0.0.1:7070";
  nodata::bench::TlsFlags tls;
  std::string topic = "bench";
  std::string keys = "none";  // none | random
  std::string label;
  size_t payload = 100;
  int concurrency = 1;
  int batch = 1000;
  int inflight = 4;
  int streams = 1;
  int channels = 1;
  int threads = 1;
  int partitions = 0;  // CreateTopic partitions; 0 = server default
  int topics = 1;      // > 1: events go round-robin to topics <topic>-0 .. <topic>-(N-1)
  bool create_topic = true;
  double duration = 10;
  double warmup = 2;
  uint64_t events = 0;  // 0 = no cap; else the measured window ends after this many events
  long server_pid = 0;
  bool check_all = false;
};

[[noreturn]] void Usage(const char* msg) {
  if (msg) std::fprintf(stderr, "nodata_ingest_load: %s\n", msg);
  std::fprintf(stderr,
               "usage: nodata_ingest_load unary|stream [--server ADDR] [--topic T] [--payload BYTES]\n"
               "         [--concurrency N] [--batch B] [--inflight K] [--streams S] [--channels C]\n"
               "         [--threads T] [--duration SEC] [--warmup SEC] [--events N]\n"
               "         [--keys none|random] [--partitions P] [--topics N] [--no-create-topic]\n"
               "         [--server-pid PID] [--label STR] [--check-all]\n"
               "         [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--token T]]\n");
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  if (argc < 2) Usage(nullptr);
  o.mode = argv[1];
  if (o.mode == "-h" || o.mode == "--help") Usage(nullptr);
  if (o.mode != "unary" && o.mode != "stream") Usage("mode must be unary or stream");
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--server") o.server = val();
    else if (a == "--tls-ca" || a == "--tls-cert" || a == "--tls-key" || a == "--token")
      o.tls.Take(a, val());
    else if (a == "--topic") o.topic = val();
    else if (a == "--keys") o.keys = val();
    else if (a == "--label") o.label = val();
    else if (a == "--payload") o.payload = std::stoul(val());
    else if (a == "--concurrency") o.concurrency = std::stoi(val());
    else if (a == "--batch") o.batch = std::stoi(val());
    else if (a == "--inflight") o.inflight = std::stoi(val());
    else if (a == "--streams") o.streams = std::stoi(val());
    else if (a == "--channels") o.channels = std::stoi(val());
    else if (a == "--threads") o.threads = std::stoi(val());
    else if (a == "--partitions") o.partitions = std::stoi(val());
    else if (a == "--topics") o.topics = std::stoi(val());
    else if (a == "--no-create-topic") o.create_topic = false;
    else if (a == "--duration") o.duration = std::stod(val());
    else if (a == "--warmup") o.warmup = std::stod(val());
    else if (a == "--events") o.events = std::stoull(val());
    else if (a == "--server-pid") o.server_pid = std::stol(val());
    else if (a == "--check-all") o.check_all = true;
    else Usage(("unknown option " + a).c_str());
  }
  if (o.keys != "none" && o.keys != "random") Usage("--keys must be none or random");
  if (o.concurrency < 1 || o.batch < 1 || o.inflight < 1 || o.streams < 1 || o.channels < 1 ||
      o.threads < 1 || o.topics < 1 || o.duration <= 0 || o.warmup < 0)
    Usage("counts must be >= 1, duration > 0, warmup >= 0");
  if (o.mode == "unary") o.batch = 1;
  return o;
}

// The topic of the i-th event of a request.
std::string TopicOf(const Options& o, int i) {
  return o.topics == 1 ? o.topic : o.topic + "-" + std::to_string(i % o.topics);
}

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double CpuSecondsSelf() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime+stime of a process (all its threads), from /proc; -1 when unreadable.
double CpuSecondsOf(long pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(f, s)) return -1;
  auto p = s.rfind(')');
  if (p == std::string::npos) return -1;
  std::istringstream in(s.substr(p + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

// Busy and total jiffies of the whole machine (all cores), from /proc/stat.
std::pair<double, double> MachineJiffies() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  double v[8] = {0};
  f >> cpu;
  for (double& x : v) f >> x;
  double idle = v[3] + v[4];
  double total = 0;
  for (double x : v) total += x;
  return {total - idle, total};
}

// xorshift64*: cheap randomness for keys.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
};

std::string RandomAlnum(std::mt19937_64& g, size_t n) {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s(n, 'x');
  for (auto& c : s) c = kChars[g() % (sizeof(kChars) - 1)];
  return s;
}

void WriteSeq(char* dst, uint64_t seq) {  // kSeqDigits decimal digits, zero padded
  for (size_t i = kSeqDigits; i-- > 0;) {
    dst[i] = char('0' + seq % 10);
    seq /= 10;
  }
}

std::string MakeId(const std::string& run_id, uint64_t seq) {
  std::string id = run_id + "-" + std::string(kSeqDigits, '0');
  WriteSeq(id.data() + run_id.size() + 1, seq);
  return id;
}

// A request serialized once, with the byte offsets of every event's id (and key) so each send is a
// memcpy plus in-place patching.
class RequestTemplate {
 public:
  // Event i of a request carries topic (phase + i) % topics.
  RequestTemplate(const Options& o, const std::string& run_id, uint64_t phase = 0)
      : run_id_(run_id) {
    std::mt19937_64 g(42);
    const std::string id_ph(kIdLen, kIdPlaceholder), key_ph(kKeyLen, kKeyPlaceholder);
    events_ = o.batch;
    auto fill = [&](nodata::v1::Event* ev, int i) {
      ev->set_topic(TopicOf(o, i));
      ev->set_id(id_ph);
      if (o.keys == "random") ev->set_key(key_ph);
      ev->set_data(RandomAlnum(g, o.payload));
    };
    if (o.mode == "unary") {
      nodata::v1::PublishRequest req;
      fill(req.mutable_event(), phase);
      bytes_ = req.SerializeAsString();
    } else {
      nodata::v1::PublishBatchRequest req;
      for (int i = 0; i < o.batch; ++i) fill(req.add_events(), phase + i);
      bytes_ = req.SerializeAsString();
    }
    Find(id_ph, &id_offsets_);
    if (o.keys == "random") Find(key_ph, &key_offsets_);
    if (int(id_offsets_.size()) != events_ ||
        (o.keys == "random" && int(key_offsets_.size()) != events_)) {
      std::fprintf(stderr, "nodata_ingest_load: internal error: placeholders not found\n");
      std::exit(3);
    }
  }

  // A fresh request whose events carry ids run_id-(first_seq + i).
  grpc::ByteBuffer Make(uint64_t first_seq, Rng& rng) const {
    grpc_slice s = grpc_slice_malloc(bytes_.size());
    char* p = reinterpret_cast<char*>(GRPC_SLICE_START_PTR(s));
    std::memcpy(p, bytes_.data(), bytes_.size());
    for (size_t i = 0; i < id_offsets_.size(); ++i) {
      char* id = p + id_offsets_[i];
      std::memcpy(id, run_id_.data(), run_id_.size());
      id[run_id_.size()] = '-';
      WriteSeq(id + run_id_.size() + 1, first_seq + i);
    }
    static const char kHex[] = "0123456789abcdef";
    for (uint32_t off : key_offsets_) {
      uint64_t r = rng.Next();
      for (size_t j = 0; j < kKeyLen; ++j) p[off + j] = kHex[(r >> (4 * j)) & 15];
    }
    grpc::Slice slice(s, grpc::Slice::STEAL_REF);
    return grpc::ByteBuffer(&slice, 1);
  }

  size_t bytes() const { return bytes_.size(); }
  int events() const { return events_; }

 private:
  void Find(const std::string& ph, std::vector<uint32_t>* out) {
    size_t pos = 0;
    while ((pos = bytes_.find(ph, pos)) != std::string::npos) {
      out->push_back(uint32_t(pos));
      pos += ph.size();
    }
  }

  std::string run_id_;
  std::string bytes_;
  int events_ = 0;
  std::vector<uint32_t> id_offsets_, key_offsets_;
};

// Wire-format scan of PublishResponse / PublishBatchResponse: both have the Ack(s) in field 1;
// Ack.duplicate is field 4 (varint).
bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    uint8_t b = *p++;
    r |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

bool SkipField(const uint8_t*& p, const uint8_t* end, uint32_t wire) {
  uint64_t v;
  switch (wire) {
    case 0: return ReadVarint(p, end, &v);
    case 1: if (end - p < 8) return false; p += 8; return true;
    case 5: if (end - p < 4) return false; p += 4; return true;
    case 2:
      if (!ReadVarint(p, end, &v) || uint64_t(end - p) < v) return false;
      p += v;
      return true;
    default: return false;
  }
}

struct AckScan {
  bool ok = false;
  uint32_t acks = 0;
  uint32_t duplicates = 0;
};

AckScan ScanAcks(const uint8_t* p, const uint8_t* end) {
  AckScan r;
  while (p < end) {
    uint64_t tag;
    if (!ReadVarint(p, end, &tag)) return r;
    uint32_t field = uint32_t(tag >> 3), wire = uint32_t(tag & 7);
    if (field == 1 && wire == 2) {
      uint64_t len;
      if (!ReadVarint(p, end, &len) || uint64_t(end - p) < len) return r;
      const uint8_t* q = p;
      const uint8_t* qend = p + len;
      p = qend;
      ++r.acks;
      while (q < qend) {
        uint64_t t;
        if (!ReadVarint(q, qend, &t)) return r;
        if ((t >> 3) == 4 && (t & 7) == 0) {
          uint64_t v;
          if (!ReadVarint(q, qend, &v)) return r;
          if (v) ++r.duplicates;
        } else if (!SkipField(q, qend, uint32_t(t & 7))) {
          return r;
        }
      }
    } else if (!SkipField(p, end, wire)) {
      return r;
    }
  }
  r.ok = true;
  return r;
}

const std::string& Flatten(const grpc::ByteBuffer& bb, std::string* scratch) {
  std::vector<grpc::Slice> slices;
  scratch->clear();
  if (!bb.Dump(&slices).ok()) return *scratch;
  for (auto& s : slices) scratch->append(reinterpret_cast<const char*>(s.begin()), s.size());
  return *scratch;
}

// Shared run state.
struct Run {
  const Options* opt = nullptr;
  const RequestTemplate* tmpl = nullptr;  // the first of tmpls
  // With --topics, one template per phase (first_seq % topics): a request's event i carries
  // topic (first_seq + i) % topics, so that every topic gets events even past --batch topics.
  const std::vector<RequestTemplate>* tmpls = nullptr;
  uint64_t phase_step = 1;
  std::string run_id;

  const RequestTemplate& For(uint64_t first_seq) const {
    return (*tmpls)[(first_seq % uint64_t(opt->topics)) / phase_step];
  }
  std::atomic<uint64_t> next_seq{0};
  uint64_t measure_start_ns = 0;
  std::atomic<uint64_t> measure_end_ns{0};  // stop_at, or earlier when --events is reached
  std::atomic<uint64_t> measured_events{0};
  std::atomic<bool> stop{false};
  std::atomic<int> active_slots{0};
  std::mutex err_mu;
  std::string first_error;

  bool Stopping(uint64_t now) const {
    return stop.load(std::memory_order_relaxed) ||
           now >= measure_end_ns.load(std::memory_order_relaxed);
  }
  void Error(const std::string& e) {
    std::lock_guard<std::mutex> l(err_mu);
    if (first_error.empty()) first_error = e;
  }
};

struct Stats {
  uint64_t events = 0, requests = 0, duplicates = 0, errors = 0;
  std::vector<uint32_t> latency_us;
};

struct Tag {
  std::function<void(bool)> fn;
};

// Checks a response fully (ack count, ids, topic) against the ids sent.
bool VerifyFull(const Run& run, const std::string& bytes, uint64_t first_seq, int n,
                std::string* why) {
  nodata::v1::PublishBatchResponse batch;
  std::vector<const nodata::v1::Ack*> acks;
  nodata::v1::PublishResponse single;
  if (run.opt->mode == "unary") {
    if (!single.ParseFromString(bytes)) return *why = "unparsable PublishResponse", false;
    acks.push_back(&single.ack());
  } else {
    if (!batch.ParseFromString(bytes)) return *why = "unparsable PublishBatchResponse", false;
    for (auto& a : batch.acks()) acks.push_back(&a);
  }
  if (int(acks.size()) != n) return *why = "ack count " + std::to_string(acks.size()), false;
  for (int i = 0; i < n; ++i) {
    std::string want = MakeId(run.run_id, first_seq + i);
    if (acks[i]->id() != want) return *why = "ack id " + acks[i]->id() + " != " + want, false;
    if (acks[i]->topic() != TopicOf(*run.opt, int((first_seq + i) % uint64_t(run.opt->topics))))
      return *why = "ack topic " + acks[i]->topic(), false;
  }
  return true;
}

class Worker;

class Slot {
 public:
  virtual ~Slot() = default;
  virtual void Start() = 0;
};

class Worker {
 public:
  explicit Worker(Run* run, int index) : run_(run), rng_(0x1234567ull * (index + 1) + NowNs()) {}
  grpc::CompletionQueue* cq() { return &cq_; }
  Rng& rng() { return rng_; }
  Stats& stats() { return stats_; }
  std::string& scratch() { return scratch_; }

  void Record(uint64_t sent_ns, uint64_t now_ns, const AckScan& scan) {
    if (now_ns < run_->measure_start_ns) return;
    uint64_t end = run_->measure_end_ns.load(std::memory_order_relaxed);
    if (now_ns > end) return;
    stats_.requests++;
    stats_.events += scan.acks;
    stats_.duplicates += scan.duplicates;
    stats_.latency_us.push_back(uint32_t(std::min<uint64_t>((now_ns - sent_ns) / 1000, UINT32_MAX)));
    uint64_t cap = run_->opt->events;
    if (cap && run_->measured_events.fetch_add(scan.acks, std::memory_order_relaxed) + scan.acks >= cap) {
      uint64_t cur = run_->measure_end_ns.load();
      while (now_ns < cur && !run_->measure_end_ns.compare_exchange_weak(cur, now_ns)) {
      }
      run_->stop = true;
    }
  }
  void Failed(const std::string& e) {
    stats_.errors++;
    run_->Error(e);
    run_->stop = true;
  }

  void Loop() {
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) static_cast<Tag*>(tag)->fn(ok);
  }
  void Shutdown() { cq_.Shutdown(); }

 private:
  Run* run_;
  grpc::CompletionQueue cq_;
  Rng rng_;
  Stats stats_;
  std::string scratch_;
};

class UnarySlot : public Slot {
 public:
  UnarySlot(Run* run, Worker* w, grpc::GenericStub* stub) : run_(run), w_(w), stub_(stub) {
    done_.fn = [this](bool ok) { OnDone(ok); };
  }
  void Start() override { Issue(); }

 private:
  void Issue() {
    seq_ = run_->next_seq.fetch_add(1, std::memory_order_relaxed);
    grpc::ByteBuffer req = run_->For(seq_).Make(seq_, w_->rng());
    ctx_ = std::make_unique<grpc::ClientContext>();
    sent_ns_ = NowNs();
    reader_ = stub_->PrepareUnaryCall(ctx_.get(), kPublishMethod, req, w_->cq());
    reader_->StartCall();
    reader_->Finish(&resp_, &status_, &done_);
  }

  void OnDone(bool ok) {
    uint64_t now = NowNs();
    if (!ok || !status_.ok()) {
      w_->Failed("Publish: " + std::to_string(status_.error_code()) + " " + status_.error_message());
      return Finish();
    }
    const std::string& bytes = Flatten(resp_, &w_->scratch());
    AckScan scan = ScanAcks(reinterpret_cast<const uint8_t*>(bytes.data()),
                            reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size());
    if (!scan.ok || scan.acks != 1) {
      w_->Failed("Publish: malformed response");
      return Finish();
    }
    if (!verified_ || run_->opt->check_all) {
      std::string why;
      if (!VerifyFull(*run_, bytes, seq_, 1, &why)) {
        w_->Failed("Publish: " + why);
        return Finish();
      }
      verified_ = true;
    }
    w_->Record(sent_ns_, now, scan);
    if (run_->Stopping(now)) return Finish();
    Issue();
  }

  void Finish() { run_->active_slots.fetch_sub(1); }

  Run* run_;
  Worker* w_;
  grpc::GenericStub* stub_;
  Tag done_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader_;
  grpc::ByteBuffer resp_;
  grpc::Status status_;
  uint64_t seq_ = 0;
  uint64_t sent_ns_ = 0;
  bool verified_ = false;
};

// One PublishStream with up to `inflight` batches written and unanswered. All of a stream's
// completions arrive on its worker's queue, drained by one thread: no locking.
class StreamSlot : public Slot {
 public:
  StreamSlot(Run* run, Worker* w, grpc::GenericStub* stub) : run_(run), w_(w), stub_(stub) {
    start_.fn = [this](bool ok) { OnStart(ok); };
    write_.fn = [this](bool ok) { OnWrite(ok); };
    read_.fn = [this](bool ok) { OnRead(ok); };
    writes_done_.fn = [this](bool) { writes_done_pending_ = false; MaybeFinish(); };
    finish_.fn = [this](bool) { OnFinish(); };
  }

  void Start() override {
    call_ = stub_->PrepareCall(&ctx_, kStreamMethod, w_->cq());
    call_->StartCall(&start_);
  }

 private:
  struct Pending {
    uint64_t first_seq;
    uint64_t sent_ns;
  };

  void OnStart(bool ok) {
    if (!ok) {
      w_->Failed("PublishStream: could not start the call");
      return Close();
    }
    reading_ = true;
    call_->Read(&resp_, &read_);
    MaybeWrite();
  }

  void MaybeWrite() {
    if (writing_ || closing_) return;
    uint64_t now = NowNs();
    if (run_->Stopping(now)) {
      if (pending_.empty()) Close();
      return;
    }
    if (int(pending_.size()) >= run_->opt->inflight) return;
    int n = run_->tmpl->events();
    uint64_t seq = run_->next_seq.fetch_add(n, std::memory_order_relaxed);
    write_bb_ = run_->For(seq).Make(seq, w_->rng());
    pending_.push_back({seq, NowNs()});
    writing_ = true;
    call_->Write(write_bb_, &write_);
  }

  void OnWrite(bool ok) {
    writing_ = false;
    write_bb_.Clear();
    if (!ok) broken_ = true;  // the stream broke; the pending Read fails too, Finish has the status
    if (!ok || closing_) return MaybeFinish();
    MaybeWrite();
  }

  void OnRead(bool ok) {
    reading_ = false;
    if (!ok) {  // server closed the stream (error or after our WritesDone)
      if (!pending_.empty() || !closing_) broken_ = true;
      closing_ = true;
      return MaybeFinish();
    }
    uint64_t now = NowNs();
    if (pending_.empty()) {
      w_->Failed("PublishStream: response without a request");
    } else {
      Pending p = pending_.front();
      pending_.pop_front();
      const std::string& bytes = Flatten(resp_, &w_->scratch());
      AckScan scan = ScanAcks(reinterpret_cast<const uint8_t*>(bytes.data()),
                              reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size());
      int n = run_->tmpl->events();
      if (!scan.ok || int(scan.acks) != n) {
        w_->Failed("PublishStream: response with " + std::to_string(scan.acks) + " acks for " +
                   std::to_string(n) + " events");
      } else {
        std::string why;
        if ((!verified_ || run_->opt->check_all) && !VerifyFull(*run_, bytes, p.first_seq, n, &why)) {
          w_->Failed("PublishStream: " + why);
        }
        verified_ = true;
        w_->Record(p.sent_ns, now, scan);
      }
    }
    resp_.Clear();
    reading_ = true;
    call_->Read(&resp_, &read_);
    MaybeWrite();
  }

  // No more writes: half-close; the server then ends the stream and the pending Read fails.
  void Close() {
    if (closing_) return;
    closing_ = true;
    writes_done_pending_ = true;
    call_->WritesDone(&writes_done_);
  }

  void MaybeFinish() {
    if (reading_ || writing_ || writes_done_pending_ || finishing_) return;
    finishing_ = true;
    call_->Finish(&status_, &finish_);
  }

  void OnFinish() {
    if (!status_.ok()) {
      w_->Failed("PublishStream: " + std::to_string(status_.error_code()) + " " +
                 status_.error_message());
    } else if (broken_ || !pending_.empty()) {
      w_->Failed("PublishStream: stream ended with " + std::to_string(pending_.size()) +
                 " unanswered batches");
    }
    run_->active_slots.fetch_sub(1);
  }

  Run* run_;
  Worker* w_;
  grpc::GenericStub* stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  Tag start_, write_, read_, writes_done_, finish_;
  grpc::ByteBuffer write_bb_, resp_;
  grpc::Status status_;
  std::deque<Pending> pending_;
  bool writing_ = false, reading_ = false, closing_ = false, finishing_ = false;
  bool writes_done_pending_ = false, broken_ = false, verified_ = false;
};

double Percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t i = size_t(q * double(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)] / 1000.0;  // ms
}

std::string JsonEscape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\', r += c;
    else if (uint8_t(c) < 0x20) r += ' ';
    else r += c;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = ParseArgs(argc, argv);

  Run run;
  run.opt = &opt;
  {
    std::random_device rd;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", uint32_t(rd() ^ NowNs()));
    run.run_id = buf;
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < opt.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per channel
    args.SetInt("nodata.bench.channel", i);
    auto ch = grpc::CreateCustomChannel(opt.server, nodata::bench::Credentials(opt.tls), args);
    if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "nodata_ingest_load: cannot connect to %s\n", opt.server.c_str());
      return 1;
    }
    channels.push_back(ch);
  }

  double create_s = 0;
  if (opt.create_topic) {
    auto topics = nodata::v1::TopicService::NewStub(channels[0]);
    const uint64_t c0 = NowNs();
    for (int t = 0; t < opt.topics; ++t) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      nodata::v1::CreateTopicRequest req;
      nodata::v1::CreateTopicResponse resp;
      req.set_name(TopicOf(opt, t));
      req.set_partitions(uint32_t(opt.partitions));
      grpc::Status st = topics->CreateTopic(&ctx, req, &resp);
      if (!st.ok() && st.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
        std::fprintf(stderr, "nodata_ingest_load: CreateTopic %s: %d %s\n",
                     req.name().c_str(), int(st.error_code()), st.error_message().c_str());
        return 1;
      }
    }
    create_s = double(NowNs() - c0) / 1e9;
  }

  // Requests start at multiples of their size: phases are multiples of gcd(size, topics).
  const uint64_t step = std::gcd(uint64_t(opt.mode == "unary" ? 1 : opt.batch), uint64_t(opt.topics));
  if (uint64_t(opt.topics) / step > 64) {
    std::fprintf(stderr, "nodata_ingest_load: --topics / gcd(--batch, --topics) must be <= 64\n");
    return 2;
  }
  std::vector<RequestTemplate> tmpls;
  for (uint64_t phase = 0; phase < uint64_t(opt.topics); phase += step) {
    tmpls.emplace_back(opt, run.run_id, phase);
  }
  const RequestTemplate& tmpl = tmpls.front();
  run.tmpl = &tmpl;
  run.tmpls = &tmpls;
  run.phase_step = step;

  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (auto& ch : channels) stubs.push_back(std::make_unique<grpc::GenericStub>(ch));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < opt.threads; ++i) workers.push_back(std::make_unique<Worker>(&run, i));

  const int nslots = opt.mode == "unary" ? opt.concurrency : opt.streams;
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < nslots; ++i) {
    Worker* w = workers[i % opt.threads].get();
    grpc::GenericStub* stub = stubs[i % opt.channels].get();
    if (opt.mode == "unary") slots.push_back(std::make_unique<UnarySlot>(&run, w, stub));
    else slots.push_back(std::make_unique<StreamSlot>(&run, w, stub));
  }

  const uint64_t t0 = NowNs();
  run.measure_start_ns = t0 + uint64_t(opt.warmup * 1e9);
  run.measure_end_ns = run.measure_start_ns + uint64_t(opt.duration * 1e9);
  run.active_slots = nslots;

  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([w = w.get()] { w->Loop(); });
  for (auto& s : slots) s->Start();

  auto sleep_until_ns = [](uint64_t ns) {
    uint64_t now = NowNs();
    if (ns > now) std::this_thread::sleep_for(std::chrono::nanoseconds(ns - now));
  };
  sleep_until_ns(run.measure_start_ns);
  double cpu0 = CpuSecondsSelf(), scpu0 = CpuSecondsOf(opt.server_pid);
  auto m0 = MachineJiffies();
  uint64_t w0 = NowNs();
  while (!run.stop && NowNs() < run.measure_end_ns) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  double cpu1 = CpuSecondsSelf(), scpu1 = CpuSecondsOf(opt.server_pid);
  auto m1 = MachineJiffies();
  uint64_t w1 = NowNs();
  run.stop = true;

  // Drain: every slot finishes its in-flight requests and closes its call.
  const uint64_t drain_deadline = NowNs() + 60ull * 1000000000ull;
  while (run.active_slots.load() > 0 && NowNs() < drain_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  bool drained = run.active_slots.load() == 0;
  if (!drained) {
    run.Error("timed out draining in-flight requests");
    std::fflush(stdout);
  } else {
    for (auto& w : workers) w->Shutdown();
    for (auto& t : threads) t.join();
  }

  Stats total;
  for (auto& w : workers) {
    Stats& s = w->stats();
    total.events += s.events;
    total.requests += s.requests;
    total.duplicates += s.duplicates;
    total.errors += s.errors;
    total.latency_us.insert(total.latency_us.end(), s.latency_us.begin(), s.latency_us.end());
  }
  std::sort(total.latency_us.begin(), total.latency_us.end());
  const double window =
      double(std::min<uint64_t>(run.measure_end_ns.load(), std::max(w1, run.measure_start_ns)) -
             run.measure_start_ns) / 1e9;
  const double secs = window > 0 ? window : 1e-9;
  const double eps = double(total.events) / secs;
  const double mbps = eps * double(opt.payload) / 1e6;
  const double wall = double(w1 - w0) / 1e9;
  const double client_cpu = wall > 0 ? 100.0 * (cpu1 - cpu0) / wall : 0;
  const double server_cpu = (scpu0 >= 0 && scpu1 >= 0 && wall > 0) ? 100.0 * (scpu1 - scpu0) / wall : -1;
  // Whole machine, 100 = one core: shows load from anything else running during the window.
  const double machine_cpu = (m1.second > m0.second)
      ? 100.0 * double(std::thread::hardware_concurrency()) * (m1.first - m0.first) / (m1.second - m0.second)
      : -1;

  std::printf(
      "{\"tool\":\"nodata_ingest_load\",\"label\":\"%s\",\"mode\":\"%s\",\"server\":\"%s\","
      "\"topic\":\"%s\",\"topics\":%d,\"create_s\":%.3f,\"payload_bytes\":%zu,\"concurrency\":%d,\"batch\":%d,\"inflight\":%d,"
      "\"streams\":%d,\"channels\":%d,\"threads\":%d,\"keys\":\"%s\",\"request_bytes\":%zu,"
      "\"warmup_s\":%.3f,\"seconds\":%.3f,\"events\":%" PRIu64 ",\"requests\":%" PRIu64
      ",\"duplicates\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"events_per_s\":%.1f,\"mb_per_s\":%.2f,"
      "\"latency_per\":\"%s\",\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
      "\"max_ms\":%.3f,\"client_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f,\"machine_cpu_pct\":%.1f,"
      "\"error\":\"%s\"}\n",
      JsonEscape(opt.label).c_str(), opt.mode.c_str(), JsonEscape(opt.server).c_str(),
      JsonEscape(opt.topic).c_str(), opt.topics, create_s, opt.payload, opt.mode == "unary" ? opt.concurrency : 0,
      tmpl.events(), opt.mode == "stream" ? opt.inflight : 0, opt.mode == "stream" ? opt.streams : 0,
      opt.channels, opt.threads, opt.keys.c_str(), tmpl.bytes(), opt.warmup, secs, total.events,
      total.requests, total.duplicates, total.errors, eps, mbps,
      opt.mode == "unary" ? "event" : "batch", Percentile(total.latency_us, 0.50),
      Percentile(total.latency_us, 0.90), Percentile(total.latency_us, 0.99),
      Percentile(total.latency_us, 0.999),
      total.latency_us.empty() ? 0.0 : total.latency_us.back() / 1000.0, client_cpu, server_cpu, machine_cpu,
      JsonEscape(run.first_error).c_str());
  std::fflush(stdout);
  if (!drained) std::_Exit(1);  // calls still stuck in gRPC: do not run destructors on them
  return (total.errors == 0 && total.events > 0 && run.first_error.empty()) ? 0 : 1;
}
