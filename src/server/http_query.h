// The request target of an HTTP request: its path split into percent-decoded segments (split
// before decoding, so that "%2F" stays inside its segment) and its query parameters
// (application/x-www-form-urlencoded: '+' is a space). Bytes from the network: everything here
// is checked, and fuzzed (input_fuzz.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodata::server {

// An RFC 3339 time ("2026-11-26T10:00:00Z", fractions and offsets allowed) in microseconds
// since the Unix epoch; false for anything else.
bool ParseTimeUs(std::string_view text, int64_t* us);

// Percent-decodes one path segment or query value (`plus`: '+' is a space, as in forms);
// nullopt for a '%' without two hex digits.
std::optional<std::string> PercentDecode(std::string_view s, bool plus);

// A request's query parameters, decoded; a parameter given twice keeps its first value.
class Params {
 public:
  // INVALID_ARGUMENT for a bad percent-encoding.
  absl::Status Parse(std::string_view query);

  const std::string* Get(std::string_view name) const;
  // An RFC 3339 time in microseconds; nullopt when absent or empty; INVALID_ARGUMENT otherwise.
  absl::StatusOr<std::optional<int64_t>> Time(std::string_view name) const;
  // `limit`: a whole number from 1 to 1000000; `fallback` when absent.
  absl::StatusOr<size_t> Limit(size_t fallback) const;
  // true|1|false|0; false when absent.
  absl::StatusOr<bool> Bool(std::string_view name) const;

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

struct RequestTarget {
  std::string path;                   // as sent (undecoded), without scheme, host and query
  std::vector<std::string> segments;  // the path's segments after its leading '/', decoded
  Params params;
};

// Parses a raw request URI (origin form "/a/b?x=1", or absolute form "http://h/a/b?x=1") and,
// when the URI has no '?', `query_string` (civetweb's; may be null). INVALID_ARGUMENT for a bad
// percent-encoding, naming the segment or parameter.
absl::StatusOr<RequestTarget> ParseRequestTarget(std::string_view uri, const char* query_string);

}  // namespace nodata::server
