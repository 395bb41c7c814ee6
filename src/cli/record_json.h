// Stored records as JSON lines: the format of `nodata consume` and `nodata topic export`, which
// `nodata publish --file` reads back.
#pragma once

#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.pb.h"

namespace nodata::cli {

// {"topic", "partition", "offset", "id", "key" | "key_base64", "data" | "data_base64",
//  "timestamp", "ingest_time", "headers"}: bytes that are not UTF-8 go as base64.
nlohmann::json RecordJson(const nodata::v1::Record& r);

bool ValidUtf8(std::string_view s);
int64_t Micros(const google::protobuf::Timestamp& ts);
// RFC 3339 in UTC with microseconds.
std::string Rfc3339(int64_t micros);

}  // namespace nodata::cli
