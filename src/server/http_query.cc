#include "server/http_query.h"

#include <charconv>

#include "common/status.h"
#include "common/strings.h"
#include "absl/time/time.h"

namespace nodata::server {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (size_t at = 0;;) {
    const size_t next = s.find(sep, at);
    const size_t n = next == std::string_view::npos ? std::string_view::npos : next - at;
    out.push_back(s.substr(at, n));
    if (next == std::string_view::npos) break;
    at = next + 1;
  }
  return out;
}

}  // namespace

bool ParseTimeUs(std::string_view text, int64_t* us) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &error)) return false;
  *us = absl::ToUnixMicros(t);
  return true;
}

std::optional<std::string> PercentDecode(std::string_view s, bool plus) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      const int hi = i + 1 < s.size() ? HexDigit(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? HexDigit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (plus && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

absl::Status Params::Parse(std::string_view query) {
  if (query.empty()) return absl::OkStatus();
  for (std::string_view pair : Split(query, '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::optional<std::string> name = PercentDecode(pair.substr(0, eq), true);
    std::optional<std::string> value =
        PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!name || !value) {
      return absl::InvalidArgumentError(
          StrCat("bad percent-encoding in the query parameter \"", pair, "\""));
    }
    if (!Get(*name)) params_.emplace_back(std::move(*name), std::move(*value));
  }
  return absl::OkStatus();
}

const std::string* Params::Get(std::string_view name) const {
  for (const auto& [n, v] : params_) {
    if (n == name) return &v;
  }
  return nullptr;
}

absl::StatusOr<std::optional<int64_t>> Params::Time(std::string_view name) const {
  const std::string* v = Get(name);
  if (v == nullptr || v->empty()) return std::nullopt;
  int64_t us = 0;
  if (!ParseTimeUs(*v, &us)) {
    return absl::InvalidArgumentError(
        StrCat(name, "=", *v, ": not an RFC 3339 time such as 2026-11-26T10:00:00Z"));
  }
  return us;
}

absl::StatusOr<size_t> Params::Limit(size_t fallback) const {
  const std::string* v = Get("limit");
  if (v == nullptr || v->empty()) return fallback;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n == 0 || n > 1000000) {
    return absl::InvalidArgumentError(
        StrCat("limit=", *v, ": not a whole number from 1 to 1000000"));
  }
  return static_cast<size_t>(n);
}

absl::StatusOr<bool> Params::Bool(std::string_view name) const {
  const std::string* v = Get(name);
  if (v == nullptr || v->empty() || *v == "false" || *v == "0") return false;
  if (*v == "true" || *v == "1") return true;
  return absl::InvalidArgumentError(StrCat(name, "=", *v, ": not true or false"));
}

absl::StatusOr<RequestTarget> ParseRequestTarget(std::string_view uri, const char* query_string) {
  RequestTarget out;
  if (const size_t scheme = uri.find("://"); scheme != std::string_view::npos) {
    const size_t path = uri.find('/', scheme + 3);
    uri = path == std::string_view::npos ? std::string_view("/") : uri.substr(path);
  }
  std::string_view query = query_string != nullptr ? query_string : "";
  if (const size_t q = uri.find('?'); q != std::string_view::npos) {
    query = uri.substr(q + 1);
    uri = uri.substr(0, q);
  }
  RETURN_IF_ERROR(out.params.Parse(query));
  out.path = std::string(uri);
  if (uri.starts_with('/')) uri.remove_prefix(1);
  if (!uri.empty()) {
    for (std::string_view raw : Split(uri, '/')) {
      std::optional<std::string> decoded = PercentDecode(raw, false);
      if (!decoded) {
        return absl::InvalidArgumentError(
            StrCat("bad percent-encoding in the path segment \"", raw, "\""));
      }
      out.segments.push_back(std::move(*decoded));
    }
  }
  return out;
}

}  // namespace nodata::server
