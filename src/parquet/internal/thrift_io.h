// Thrift compact-protocol serialization of Parquet metadata (footer and page
// headers). Deserialization of untrusted bytes is bounded by the input size and
// never throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "parquet/format/parquet_types.h"

namespace nodata::parquet::internal {

// Appends the compact encoding of `message` to `*out`.
absl::Status SerializeFooter(const format::FileMetaData& message, std::string* out);
absl::Status SerializePageHeader(const format::PageHeader& message, std::string* out);

// Parses a message from the front of `in`; `*consumed` is set to the bytes it
// used.
absl::Status ParseFooter(std::string_view in, format::FileMetaData* message);
absl::Status ParsePageHeader(std::string_view in, format::PageHeader* message, uint64_t* consumed);

}  // namespace nodata::parquet::internal
