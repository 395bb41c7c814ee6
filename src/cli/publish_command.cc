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

// Reads lines of at most `max_bytes` from a file, a fifo or stdin, in chunks: memory stays
// bounded by the longest line allowed, whatever the input holds.
class LineReader {
 public:
  LineReader(std::FILE* in, size_t max_bytes) : in_(in), max_bytes_(max_bytes) {}

  enum class Result { kLine, kTooLong, kEnd, kError };

  // The next line without its '\n' in `line`. kTooLong: the line was skipped; `line` is empty
  // and `too_long_bytes()` tells how long it was.
  Result Next(std::string* line) {
    line->clear();
    too_long_bytes_ = 0;
    bool too_long = false;
    for (;;) {
      if (pos_ == end_) {
        if (std::feof(in_) || std::ferror(in_)) break;
        end_ = std::fread(buf_, 1, sizeof buf_, in_);
        pos_ = 0;
        consumed_ += end_;
        if (end_ == 0) continue;
      }
      const char* nl = static_cast<const char*>(std::memchr(buf_ + pos_, '\n', end_ - pos_));
      const size_t take = (nl ? static_cast<size_t>(nl - buf_) : end_) - pos_;
      if (!too_long && line->size() + take > max_bytes_) {
        too_long = true;
        too_long_bytes_ = line->size();
        line->clear();
      }
      if (too_long) {
        too_long_bytes_ += take;
      } else {
        line->append(buf_ + pos_, take);
      }
      pos_ += take;
      if (nl) {
        ++pos_;
        return too_long ? Result::kTooLong : Result::kLine;
      }
    }
    if (std::ferror(in_)) return Result::kError;
    if (too_long) return Result::kTooLong;
    return line->empty() ? Result::kEnd : Result::kLine;  // a last line without '\n'
  }

  uint64_t consumed() const { return consumed_ - (end_ - pos_); }
  uint64_t too_long_bytes() const { return too_long_bytes_; }

 private:
  std::FILE* in_;
  const size_t max_bytes_;
  char buf_[1 << 16];
  size_t pos_ = 0, end_ = 0;
  uint64_t consumed_ = 0, too_long_bytes_ = 0;
};

void SetTimestamp(int64_t us, google::protobuf::Timestamp* ts) {
  ts->set_seconds(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
  ts->set_nanos(static_cast<int32_t>(((us % 1000000) + 1000000) % 1000000) * 1000);
}

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' ||
                        s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// The bytes of a JSON value exactly as they appear in the line (objects, arrays, numbers,
// literals), or the unescaped text of a string. An error message on failure.
std::string RawValue(od::value value, std::string* out) {
  od::json_type type;
  if (value.type().get(type)) return "not valid JSON";
  std::string_view raw;
  switch (type) {
    case od::json_type::string:
      if (value.get_string().get(raw)) return "not valid JSON";
      out->assign(raw);
      return "";
    case od::json_type::object: {
      od::object o;
      if (value.get_object().get(o) || o.raw_json().get(raw)) return "not valid JSON";
      break;
    }
    case od::json_type::array: {
      od::array a;
      if (value.get_array().get(a) || a.raw_json().get(raw)) return "not valid JSON";
      break;
    }
    default:
      raw = TrimRight(value.raw_json_token());
      break;
  }
  out->assign(raw);
  return "";
}

// Fills `e` from one JSONL line (the format `consume` and `topic export` print); an error
// message on failure. `topic` (from --topic), when given, wins over the line's "topic".
std::string EventFromLine(od::parser& parser, simdjson::dom::parser& checker, std::string& line,
                          const std::string& topic, nodata::v1::Event* e) {
  line.reserve(line.size() + simdjson::SIMDJSON_PADDING);
  // On-demand parsing skips over what it is not asked for, so the whole line is validated first
  // (values stored as they are written must be valid JSON all through).
  simdjson::dom::element checked;
  if (checker.parse(line.data(), line.size(), /*realloc_if_needed=*/false).get(checked)) {
    return "not valid JSON";
  }
  od::document doc;
  if (parser.iterate(simdjson::padded_string_view(line.data(), line.size(), line.capacity()))
          .get(doc)) {
    return "not valid JSON";
  }
  od::object object;
  if (doc.get_object().get(object)) return "expected a JSON object";
  e->set_topic(topic);
  for (auto field_result : object) {
    od::field field;
    std::string_view name;
    if (std::move(field_result).get(field) || field.unescaped_key().get(name)) {
      return "not valid JSON";
    }
    od::value value = field.value();
    std::string_view text;
    auto string_field = [&]() -> std::string {
      if (value.get_string().get(text)) return "\"" + std::string(name) + "\" must be a string";
      return "";
    };
    auto base64_field = [&](std::string* out) -> std::string {
      if (std::string bad = string_field(); !bad.empty()) return bad;
      if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), out)) {
        return "\"" + std::string(name) + "\" is not valid base64";
      }
      return "";
    };
    std::string bad;
    if (name == "topic") {
      bad = string_field();
      if (bad.empty() && topic.empty()) e->set_topic(std::string(text));
    } else if (name == "id") {
      bad = string_field();
      if (bad.empty()) e->set_id(std::string(text));
    } else if (name == "key") {
      bad = string_field();
      if (bad.empty()) e->set_key(std::string(text));
    } else if (name == "key_base64") {
      bad = base64_field(e->mutable_key());
    } else if (name == "data") {
      bad = RawValue(value, e->mutable_data());
    } else if (name == "data_base64") {
      bad = base64_field(e->mutable_data());
    } else if (name == "timestamp") {
      if (value.get_string().get(text)) return "\"timestamp\" must be an RFC 3339 string";
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) {
        return "\"timestamp\": " + err;
      }
      SetTimestamp(absl::ToUnixMicros(t), e->mutable_timestamp());
    } else if (name == "headers") {
      od::object headers;
      if (value.get_object().get(headers)) return "\"headers\" must be an object of strings";
      for (auto header_result : headers) {
        od::field header;
        std::string_view k, v;
        if (std::move(header_result).get(header) || header.unescaped_key().get(k)) {
          return "not valid JSON";
        }
        if (header.value().get_string().get(v)) {
          return "header \"" + std::string(k) + "\" must be a string";
        }
        (*e->mutable_headers())[std::string(k)] = std::string(v);
      }
    } else if (name == "partition" || name == "offset" || name == "ingest_time") {
      // Set by the server when the event is stored; an exported line carries them.
    } else {
      return "unknown field \"" + std::string(name) + "\"";
    }
    if (!bad.empty()) return bad;
  }
  if (e->topic().empty()) return "no topic: give --topic or a \"topic\" field";
  return "";
}

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
