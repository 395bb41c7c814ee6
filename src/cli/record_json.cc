#include "cli/record_json.h"

#include <map>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"

namespace nodata::cli {

using nlohmann::json;

namespace {

// Bytes as "name" when they are UTF-8 text, else as "name_base64".
void PutBytes(json& j, const std::string& name, const std::string& bytes) {
  if (ValidUtf8(bytes)) {
    j[name] = bytes;
  } else {
    j[name + "_base64"] = absl::Base64Escape(bytes);
  }
}

}  // namespace

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0xff >> (n + 1));
    for (size_t k = 1; k < n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += n;
  }
  return true;
}

int64_t Micros(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

std::string Rfc3339(int64_t micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

json RecordJson(const nodata::v1::Record& r) {
  const auto& e = r.event();
  json j = {{"topic", e.topic()}, {"partition", r.partition()}, {"offset", r.offset()},
            {"id", e.id()}};
  if (!e.key().empty()) PutBytes(j, "key", e.key());
  PutBytes(j, "data", e.data());
  j["timestamp"] = Rfc3339(Micros(e.timestamp()));
  j["ingest_time"] = Rfc3339(Micros(r.ingest_time()));
  if (!e.headers().empty()) {
    // Sorted, so that an export is reproducible.
    std::map<std::string, std::string> sorted(e.headers().begin(), e.headers().end());
    json h = json::object();
    for (const auto& [k, v] : sorted) h[k] = ValidUtf8(v) ? v : absl::Base64Escape(v);
    j["headers"] = h;
  }
  return j;
}


}  // namespace nodata::cli
