// A topic's declared format of event keys and of event data: what publishing checks and what
// the cold tier's Parquet schema tells query engines (docs/formats/parquet-layout.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace nodata {

// Persistent format (by name, in the catalog): never rename.
enum class DataFormat : uint8_t {
  kBytes = 0,   // anything; Parquet BYTE_ARRAY without a logical type
  kString = 1,  // UTF-8 text; logical type STRING
  kJson = 2,    // one JSON value (RFC 8259) in UTF-8; logical type JSON
};

// "bytes", "string" or "json".
std::string_view DataFormatName(DataFormat format);
// The format of that name; nullopt for any other name.
std::optional<DataFormat> ParseDataFormat(std::string_view name);

// OK when `value` is of `format`; INVALID_ARGUMENT saying why it is not ("not valid UTF-8",
// "not valid JSON: ..."). The value is not changed: bytes are stored exactly as sent. Safe for
// concurrent use.
absl::Status CheckDataFormat(DataFormat format, std::string_view value);

}  // namespace nodata
