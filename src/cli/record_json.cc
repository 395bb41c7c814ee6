#include "cli/record_json.h"

#include <map>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "simdjson.h"

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
  // The same validator as the topics' declared string and json formats (common/data_format).
  return simdjson::validate_utf8(s.data(), s.size());
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
