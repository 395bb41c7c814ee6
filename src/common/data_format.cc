#include "common/data_format.h"

#include "common/strings.h"
#include "simdjson.h"

namespace nodata {

std::string_view DataFormatName(DataFormat format) {
  switch (format) {
    case DataFormat::kString:
      return "string";
    case DataFormat::kJson:
      return "json";
    case DataFormat::kBytes:
      break;
  }
  return "bytes";
}

std::optional<DataFormat> ParseDataFormat(std::string_view name) {
  for (DataFormat f : {DataFormat::kBytes, DataFormat::kString, DataFormat::kJson}) {
    if (name == DataFormatName(f)) return f;
  }
  return std::nullopt;
}

absl::Status CheckDataFormat(DataFormat format, std::string_view value) {
  switch (format) {
    case DataFormat::kBytes:
      return absl::OkStatus();
    case DataFormat::kString:
      if (simdjson::validate_utf8(value.data(), value.size())) return absl::OkStatus();
      return absl::InvalidArgumentError("not valid UTF-8");
    case DataFormat::kJson: {
      if (value.empty()) return absl::InvalidArgumentError("not valid JSON: empty");
      // A parser keeps its buffers between documents; one per thread avoids sharing them.
      thread_local simdjson::dom::parser parser;
      const simdjson::error_code error = parser.parse(value.data(), value.size()).error();
      if (error == simdjson::SUCCESS) return absl::OkStatus();
      return absl::InvalidArgumentError(StrCat("not valid JSON: ", simdjson::error_message(error)));
    }
  }
  return absl::OkStatus();
}

}  // namespace nodata
