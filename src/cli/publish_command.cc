// nodata publish: one event from the command line or stdin, or a JSONL file of events streamed
// over IngestService.PublishStream in pipelined batches.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "cli/cli.h"
#include "cli/client_commands.h"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "cli/record_json.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.grpc.pb.h"
#include "simdjson.h"

namespace nodata::cli {
namespace {

using nlohmann::json;
namespace od = simdjson::ondemand;

// A batch message is closed at this many bytes of events even before --batch events: it bounds
// the memory of the batches in flight and keeps requests under the server's --max-batch-bytes.
constexpr size_t kBatchBytes = 4u << 20;
// Batches sent and not yet answered.
constexpr int kMaxInflight = 8;

// "event N ..." at the start of a server error names the Nth event of the batch.
int EventIndex(const std::string& message) {
  if (message.rfind("event ", 0) != 0) return -1;
  size_t i = 6;
  int n = 0;
  while (i < message.size() && std::isdigit(static_cast<unsigned char>(message[i])) && n < 1000000) {
    n = n * 10 + (message[i++] - '0');
  }
  return i > 6 ? n : -1;
}

// A batch sent and not yet answered: the line of each of its events.
struct InflightBatch {
  std::vector<uint64_t> lines;
};

int PublishFile(const ClientOptions& c, const PublishOptions& p) {
  const bool from_stdin = p.file == "-";
  std::FILE* in = stdin;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> owned(nullptr, &std::fclose);
  double file_bytes = 0;
  if (!from_stdin) {
    struct stat st;
    if (::stat(p.file.c_str(), &st) != 0) {
      return Fail("cannot read " + p.file + ": " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return Fail(p.file + " is a directory, not a JSONL file");
    owned.reset(std::fopen(p.file.c_str(), "rb"));
    if (!owned) return Fail("cannot read " + p.file + ": " + std::strerror(errno));
    in = owned.get();
    if (S_ISREG(st.st_mode)) file_bytes = static_cast<double>(st.st_size);
  }
  const bool progress = ::isatty(STDERR_FILENO) == 1;
  const auto started = std::chrono::steady_clock::now();

  auto stub = nodata::v1::IngestService::NewStub(Connect(c));
  grpc::ClientContext ctx;
  auto stream = stub->PublishStream(&ctx);

  // Responses are read on another thread so that batches stay in flight (pipelining).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<InflightBatch> inflight;  // in the order sent, which is the order answered
  uint64_t acked = 0, duplicates = 0, last_acked_line = 0;
  bool reader_done = false;
  std::thread reader([&] {
    nodata::v1::PublishBatchResponse resp;
    while (stream->Read(&resp)) {
      std::lock_guard<std::mutex> lock(mu);
      if (!inflight.empty()) {
        last_acked_line = inflight.front().lines.back();
        inflight.pop_front();
      }
      for (const auto& a : resp.acks()) {
        if (a.duplicate()) ++duplicates;
        ++acked;
      }
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu);
    reader_done = true;
    cv.notify_all();
  });

  LineReader lines(in, p.max_line_bytes);
  std::string line;
  uint64_t line_no = 0;
  std::string error;
  auto last_draw = started - std::chrono::seconds(1);  // redrawn at most 10 times a second
  nodata::v1::PublishBatchRequest batch;
  InflightBatch batch_lines;
  size_t batch_bytes = 0;
  auto draw = [&](bool final) {
    if (!progress) return;
    if (file_bytes > 0) {
      double done = final ? 1.0 : static_cast<double>(lines.consumed()) / file_bytes;
      if (done > 1) done = 1;
      const int width = 40;
      const int filled = static_cast<int>(done * width);
      std::fprintf(stderr, "\r[%s%s] %5.1f%% %lu lines", std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), done * 100,
                   static_cast<unsigned long>(line_no));
    } else {
      std::fprintf(stderr, "\r%lu lines, %s", static_cast<unsigned long>(line_no),
                   HumanBytes(lines.consumed()).c_str());
    }
    if (final) std::fprintf(stderr, "\n");
  };
  auto send = [&]() -> bool {
    if (batch.events_size() == 0) return true;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return inflight.size() < kMaxInflight || reader_done; });
      if (reader_done) return false;
      inflight.push_back(std::move(batch_lines));
    }
    batch_lines = {};
    const bool ok = stream->Write(batch);
    batch.Clear();
    batch_bytes = 0;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw >= std::chrono::milliseconds(100)) {
      last_draw = now;
      draw(false);
    }
    return ok;
  };
  od::parser parser;
  simdjson::dom::parser checker;
  bool write_ok = true;
  while (write_ok) {
    LineReader::Result r = lines.Next(&line);
    if (r == LineReader::Result::kEnd) break;
    ++line_no;
    if (r == LineReader::Result::kError) {
      error = "reading " + p.file + ": " + std::strerror(errno);
      break;
    }
    if (r == LineReader::Result::kTooLong) {
      error = "line " + std::to_string(line_no) + " is longer than " +
              HumanBytes(p.max_line_bytes) + " (--max-line-bytes)";
      break;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nodata::v1::Event* e = batch.add_events();
    std::string bad = EventFromLine(parser, checker, line, p.topic, e);
    if (!bad.empty()) {
      error = "line " + std::to_string(line_no) + ": " + bad;
      batch.mutable_events()->RemoveLast();
      break;
    }
    batch_lines.lines.push_back(line_no);
    batch_bytes += e->ByteSizeLong();
    if (static_cast<uint32_t>(batch.events_size()) >= p.batch || batch_bytes >= kBatchBytes) {
      write_ok = send();
    }
  }
  // Lines before a bad one are sent too: what the error reports stored is everything before it.
  if (write_ok) write_ok = send();
  stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();
  draw(true);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  // What was stored, said so that a user knows where to resume.
  auto stored_before = [&](uint64_t line) {
    return std::to_string(acked) + " events before line " + std::to_string(line) +
           " were stored (acknowledged)";
  };
  if (!status.ok() && status.error_code() == grpc::StatusCode::UNAVAILABLE && acked == 0 &&
      status.error_message().rfind("failed to connect", 0) == 0) {
    return Fail(status);  // never reached the server: nothing was sent
  }
  if (!status.ok()) {
    // Batches are answered in order: the first one without an answer is where it stopped.
    const uint64_t first_unacked = inflight.empty() ? line_no : inflight.front().lines.front();
    uint64_t failed_line = first_unacked;
    const int index = EventIndex(status.error_message());
    if (!inflight.empty() && index >= 0 &&
        static_cast<size_t>(index) < inflight.front().lines.size()) {
      failed_line = inflight.front().lines[index];
    }
    std::string outcome;
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT && index >= 0) {
      // The server refused the batch before storing any of it (a bad event), and the batches
      // pipelined behind it were not stored. Other errors (a full disk midway, a lost
      // connection) may leave part of what was sent stored.
      outcome = "; nothing from line " + std::to_string(first_unacked) + " on was stored";
    } else {
      outcome = "; lines after " + std::to_string(last_acked_line) +
                " may or may not be stored: publishing them again is safe for lines with an "
                "\"id\" (duplicates are found)";
    }
    return Fail("line " + std::to_string(failed_line) + ": " + CodeName(status.error_code()) +
                ": " + status.error_message() + " (" + stored_before(failed_line) + outcome +
                ")");
  }
  if (!error.empty()) return Fail(error + " (" + stored_before(line_no) + ")");
  const uint64_t stored = acked - duplicates;
  if (c.json) {
    std::cout << json{{"published", acked}, {"stored", stored}, {"duplicates", duplicates},
                      {"lines", line_no}, {"seconds", seconds}}
              << "\n";
  } else {
    std::printf("%lu events acknowledged in %.2f s: %lu stored, %lu duplicates (already stored "
                "under the same topic and id, not stored again)\n",
                static_cast<unsigned long>(acked), seconds, static_cast<unsigned long>(stored),
                static_cast<unsigned long>(duplicates));
  }
  return kExitOk;
}

// The event's data from stdin (for `publish` without DATA): all of it, less one trailing newline.
bool ReadStdinData(const PublishOptions& p, std::string* data, std::string* error) {
  if (::isatty(STDIN_FILENO) == 1) {
    std::fprintf(stderr, "reading the event's data from stdin (end with Ctrl-D)\n");
  }
  LineReader reader(stdin, p.max_line_bytes);
  std::string chunk;
  bool first = true;
  for (;;) {
    LineReader::Result r = reader.Next(&chunk);
    if (r == LineReader::Result::kEnd) break;
    if (r == LineReader::Result::kError) {
      *error = std::string("reading stdin: ") + std::strerror(errno);
      return false;
    }
    if (r == LineReader::Result::kTooLong ||
        data->size() + chunk.size() + 1 > p.max_line_bytes) {
      *error = "the data on stdin is longer than " + HumanBytes(p.max_line_bytes) +
               " (--max-line-bytes)";
      return false;
    }
    if (!first) data->push_back('\n');
    data->append(chunk);
    first = false;
  }
  if (reader.consumed() == 0) {
    *error = "no data: give it as an argument ('' for an empty event) or on stdin";
    return false;
  }
  return true;
}

}  // namespace

int Publish(const ClientOptions& c, const PublishOptions& p) {
  if (!p.file.empty()) {
    if (p.data_given) return Fail("give either DATA or --file, not both");
    return PublishFile(c, p);
  }
  nodata::v1::PublishRequest req;
  auto* e = req.mutable_event();
  e->set_topic(p.topic);
  e->set_key(p.key);
  e->set_id(p.id);
  for (const std::string& h : p.headers) {
    auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "nodata: --header wants NAME=VALUE, got \"" << h << "\"\n";
      return kExitUsage;
    }
    (*e->mutable_headers())[h.substr(0, eq)] = h.substr(eq + 1);
  }
  if (p.data_given) {
    e->set_data(p.data);
  } else {
    std::string error;
    if (!ReadStdinData(p, e->mutable_data(), &error)) {
      std::cerr << "nodata: " << error << "\n";
      return kExitUsage;
    }
  }
  auto stub = nodata::v1::IngestService::NewStub(Connect(c));
  nodata::v1::PublishResponse resp;
  grpc::Status s = stub->Publish(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  const nodata::v1::Ack& a = resp.ack();
  if (c.json) {
    std::cout << json{{"topic", a.topic()},
                      {"partition", a.partition()},
                      {"offset", a.offset()},
                      {"duplicate", a.duplicate()},
                      {"id", a.id()}}
              << "\n";
  } else if (a.duplicate()) {
    std::printf("duplicate: id %s is already stored in %s partition %u at offset %lu; nothing "
                "new was stored\n",
                a.id().c_str(), a.topic().c_str(), a.partition(),
                static_cast<unsigned long>(a.offset()));
  } else {
    std::printf("stored in %s partition %u at offset %lu (id %s)\n", a.topic().c_str(),
                a.partition(), static_cast<unsigned long>(a.offset()), a.id().c_str());
  }
  return kExitOk;
}

void AddPublishCommand(CommandSet& set) {
  PublishOptions& po = set.Keep<PublishOptions>();
  CLI::App* publish = set.app().add_subcommand("publish", "publish one event, or a JSONL file");
  publish->add_option("--topic", po.topic, "topic");
  publish->add_option("--key", po.key, "partition key");
  publish->add_option("--id", po.id, "event id (dedupe key)");
  OnePerFlag(publish->add_option("--header", po.headers, "header NAME=VALUE (repeatable)"));
  publish->add_option("--file", po.file,
                      "JSONL file of events, one object per line (\"-\": stdin); --topic, "
                      "when given, wins over the lines' \"topic\"");
  publish->add_option("--batch", po.batch, "events per batch with --file")
      ->check(CLI::Range(1u, 100000u));
  publish->add_option("--max-line-bytes", po.max_line_bytes,
                      "longest JSONL line, or data on stdin, that is read")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 31));
  CLI::Option* publish_data = publish->add_option(
      "data", po.data, "event data (not given: read from stdin; '' for an empty event)");
  set.AddClientFlags(publish);
  const ClientOptions& co = set.client();
  set.OnParsed(publish, [&co, &po, publish_data] {
    po.data_given = publish_data->count() > 0;
    if (po.file.empty() && po.topic.empty()) {
      std::cerr << "nodata: publish needs --topic (or --file with \"topic\" fields)\n";
      return kExitUsage;
    }
    return Publish(co, po);
  });
}

}  // namespace nodata::cli
