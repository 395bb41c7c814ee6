// Stored records as JSON lines: the format of `nodata consume` and `nodata topic export`, which
// `nodata publish --file` and `nodata component test --input` read back.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.pb.h"
#include "simdjson.h"

namespace nodata::cli {

// {"topic", "partition", "offset", "id", "key" | "key_base64", "data" | "data_base64",
//  "timestamp", "ingest_time", "headers"}: bytes that are not UTF-8 go as base64.
nlohmann::json RecordJson(const nodata::v1::Record& r);

bool ValidUtf8(std::string_view s);

// Bytes as "name" when they are UTF-8 text, else as "name_base64".
template <typename Json>
void PutBytes(Json& j, const std::string& name, const std::string& bytes) {
  if (ValidUtf8(bytes)) {
    j[name] = bytes;
  } else {
    j[name + "_base64"] = absl::Base64Escape(bytes);
  }
}
int64_t Micros(const google::protobuf::Timestamp& ts);
// RFC 3339 in UTC with microseconds.
std::string Rfc3339(int64_t micros);

// Reads lines of at most `max_bytes` from a file, a fifo or stdin, in chunks: memory stays
// bounded by the longest line allowed, whatever the input holds.
class LineReader {
 public:
  LineReader(std::FILE* in, size_t max_bytes) : in_(in), max_bytes_(max_bytes) {}

  enum class Result { kLine, kTooLong, kEnd, kError };

  // The next line without its '\n' in `line`. kTooLong: the line was skipped; `line` is empty
  // and `too_long_bytes()` tells how long it was.
  Result Next(std::string* line);

  uint64_t consumed() const { return consumed_ - (end_ - pos_); }
  uint64_t too_long_bytes() const { return too_long_bytes_; }

 private:
  std::FILE* in_;
  const size_t max_bytes_;
  char buf_[1 << 16];
  size_t pos_ = 0, end_ = 0;
  uint64_t consumed_ = 0, too_long_bytes_ = 0;
};

// Where an exported line says its record was stored ("partition", "offset", "ingest_time").
struct StoredAt {
  std::optional<uint64_t> partition;
  std::optional<uint64_t> offset;
  std::optional<int64_t> ingest_time_us;
};

// Fills `e` from one JSONL line (the format `consume` and `topic export` print); an error
// message on failure. `topic` (from --topic), when given, wins over the line's "topic". The
// line's stored position goes to `at` when given (publishing ignores it). `line` gains
// simdjson's padding.
std::string EventFromLine(simdjson::ondemand::parser& parser, simdjson::dom::parser& checker,
                          std::string& line, const std::string& topic, nodata::v1::Event* e,
                          StoredAt* at = nullptr);

}  // namespace nodata::cli
