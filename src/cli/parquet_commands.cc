#include "cli/parquet_commands.h"

#include <cstring>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "cli/cli.h"
#include "cli/command_set.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "parquet/reader.h"

namespace nodata::cli {
namespace {

using nlohmann::json;

// Names of the Parquet enum values the reader reports (parquet.thrift).
const char* TypeName(int type) {
  static const char* const kNames[] = {"BOOLEAN", "INT32",  "INT64",      "INT96",
                                       "FLOAT",   "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"};
  return type >= 0 && type < 8 ? kNames[type] : "UNKNOWN";
}

const char* CodecName(int codec) {
  static const char* const kNames[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                       "BROTLI",       "LZ4",    "ZSTD", "LZ4_RAW"};
  return codec >= 0 && codec < 8 ? kNames[codec] : "UNKNOWN";
}

const char* EncodingName(int encoding) {
  static const char* const kNames[] = {"PLAIN",
                                       "GROUP_VAR_INT",
                                       "PLAIN_DICTIONARY",
                                       "RLE",
                                       "BIT_PACKED",
                                       "DELTA_BINARY_PACKED",
                                       "DELTA_LENGTH_BYTE_ARRAY",
                                       "DELTA_BYTE_ARRAY",
                                       "RLE_DICTIONARY",
                                       "BYTE_STREAM_SPLIT"};
  return encoding >= 0 && encoding < 10 ? kNames[encoding] : "UNKNOWN";
}

// A statistics bound as JSON: a TIMESTAMP as an RFC 3339 string (UTC, microseconds); INT64 and
// INT32 as a number; bytes as a string when they are printable ASCII, else as {"base64": ...}.
json Bound(const std::string& plain, const parquet::ColumnSchema& column) {
  if (column.physical_type == 2 && plain.size() == 8) {
    int64_t v;
    std::memcpy(&v, plain.data(), 8);
    if (column.timestamp_unit_nanos > 0) {
      const absl::Time t = column.timestamp_unit_nanos == 1   ? absl::FromUnixNanos(v)
                           : column.timestamp_unit_nanos == 1000 ? absl::FromUnixMicros(v)
                                                                 : absl::FromUnixMillis(v);
      return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
    }
    return v;
  }
  if (column.physical_type == 1 && plain.size() == 4) {
    int32_t v;
    std::memcpy(&v, plain.data(), 4);
    return v;
  }
  bool printable = true;
  for (unsigned char c : plain) printable = printable && c >= 0x20 && c < 0x7f;
  if (printable) return plain;
  return json{{"base64", absl::Base64Escape(plain)}};
}

}  // namespace

int ParquetInspect(const std::string& path) {
  auto reader = parquet::Reader::Open(path);
  if (!reader.ok()) {
    std::cerr << "nodata: " << ToStd(absl::StatusCodeToString(reader.status().code())) << ": "
              << reader.status().message() << "\n";
    return 1;
  }
  const parquet::Reader& r = **reader;
  json schema = json::array();
  for (const auto& c : r.schema()) {
    json column = {{"path", c.path},
                   {"type", TypeName(c.physical_type)},
                   {"max_definition_level", c.max_definition_level},
                   {"max_repetition_level", c.max_repetition_level}};
    if (!c.logical_type.empty()) column["logical_type"] = c.logical_type;
    schema.push_back(std::move(column));
  }
  json groups = json::array();
  for (const auto& g : r.row_groups()) {
    json columns = json::array();
    for (size_t i = 0; i < g.columns.size(); ++i) {
      const auto& c = g.columns[i];
      const parquet::ColumnSchema schema_of =
          i < r.schema().size() ? r.schema()[i] : parquet::ColumnSchema{};
      json encodings = json::array();
      for (int e : c.encodings) encodings.push_back(EncodingName(e));
      json stats = json::object();
      if (c.statistics.null_count) stats["null_count"] = *c.statistics.null_count;
      if (c.statistics.min_value) stats["min"] = Bound(*c.statistics.min_value, schema_of);
      if (c.statistics.max_value) stats["max"] = Bound(*c.statistics.max_value, schema_of);
      columns.push_back({{"path", c.path},
                         {"codec", CodecName(c.codec)},
                         {"encodings", encodings},
                         {"dictionary", c.has_dictionary_page},
                         {"num_values", c.num_values},
                         {"compressed_bytes", c.total_compressed_size},
                         {"uncompressed_bytes", c.total_uncompressed_size},
                         {"statistics", stats}});
    }
    groups.push_back({{"num_rows", g.num_rows},
                      {"total_byte_size", g.total_byte_size},
                      {"columns", columns}});
  }
  json out = {{"file", path},
              {"created_by", r.created_by()},
              {"num_rows", r.num_rows()},
              {"schema", schema},
              {"row_groups", groups}};
  // A crafted file may carry bytes that are not UTF-8 in names: replaced, never thrown.
  std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}

void AddParquetCommands(CommandSet& set) {
  CLI::App* parquet = set.app().add_subcommand("parquet", "work with Parquet files (locally)");
  parquet->require_subcommand(1);
  std::string& parquet_file = set.Keep<std::string>();
  CLI::App* inspect = parquet->add_subcommand(
      "inspect", "print a Parquet file's schema, row groups and statistics as JSON");
  inspect->add_option("file", parquet_file, "Parquet file")->required();
  set.OnParsed(inspect, [&parquet_file] {
    return CheckRegularFile(parquet_file) ? ParquetInspect(parquet_file) : kExitFailed;
  });
}

}  // namespace nodata::cli
