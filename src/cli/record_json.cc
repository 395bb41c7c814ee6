#include "cli/record_json.h"

#include <cstring>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "simdjson.h"

namespace nodata::cli {

using nlohmann::json;
namespace od = simdjson::ondemand;

namespace {
void SetEventTime(int64_t us, google::protobuf::Timestamp* ts) {
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


LineReader::Result LineReader::Next(std::string* line) {
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

std::string EventFromLine(od::parser& parser, simdjson::dom::parser& checker, std::string& line,
                          const std::string& topic, nodata::v1::Event* e, StoredAt* at) {
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
      SetEventTime(absl::ToUnixMicros(t), e->mutable_timestamp());
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
    } else if (name == "partition" || name == "offset") {
      // Set by the server when the event is stored; an exported line carries them.
      uint64_t n;
      if (value.get_uint64().get(n)) {
        return "\"" + std::string(name) + "\" must be a non-negative integer";
      }
      if (at != nullptr && name == "partition") at->partition = n;
      if (at != nullptr && name == "offset") at->offset = n;
    } else if (name == "ingest_time") {
      if (value.get_string().get(text)) return "\"ingest_time\" must be an RFC 3339 string";
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) {
        return "\"ingest_time\": " + err;
      }
      if (at != nullptr) at->ingest_time_us = absl::ToUnixMicros(t);
    } else {
      return "unknown field \"" + std::string(name) + "\"";
    }
    if (!bad.empty()) return bad;
  }
  if (e->topic().empty()) return "no topic: give --topic or a \"topic\" field";
  return "";
}

}  // namespace nodata::cli
