// parquet_sample PATH N [CODEC]: writes N generated records to PATH, for
// cross-checking nodata's Parquet files with other readers
// (tests/integration/parquet-format.test.mjs). Record i is:
//   offset i, timestamp_us 1700000000000000 + i*1000, ingest_time_us
//   timestamp_us + 5, id "id-<i>", key "" when i % 3 == 0 else "key-<i % 7>",
//   data "data-<i>" repeated i % 4 + 1 times, headers ("h<j>", "v<(i + j) %
//   3>") for j in [0, i % 4).
// Row groups hold 1000 rows. CODEC is zstd (default), snappy or none.
//
// parquet_sample --dump PATH: reads PATH with nodata's reader and prints one
// JSON object per record ({"offset", "timestamp_us", "ingest_time_us", "id",
// "key_hex", "data_hex", "headers"}).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "parquet/reader.h"
#include "parquet/writer.h"

namespace {

std::string Hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

int Dump(const char* path) {
  auto reader = nodata::parquet::Reader::Open(path);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
    return 1;
  }
  for (size_t g = 0; g < (*reader)->row_groups().size(); ++g) {
    auto records = (*reader)->ReadRowGroup(static_cast<int>(g));
    if (!records.ok()) {
      std::fprintf(stderr, "%s\n", records.status().ToString().c_str());
      return 1;
    }
    for (const auto& r : *records) {
      nlohmann::json j = {{"offset", r.offset},
                          {"timestamp_us", r.timestamp_us},
                          {"ingest_time_us", r.ingest_time_us},
                          {"id", r.id},
                          {"key_hex", Hex(r.key)},
                          {"data_hex", Hex(r.data)},
                          {"headers", r.headers}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using nodata::parquet::Codec;
  if (argc == 3 && std::string_view(argv[1]) == "--dump") return Dump(argv[2]);
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PATH N [zstd|snappy|none] | --dump PATH\n", argv[0]);
    return 2;
  }
  nodata::parquet::WriterOptions options;
  options.row_group_rows = 1000;
  options.page_size_bytes = 16 << 10;
  const std::string codec = argc > 3 ? argv[3] : "zstd";
  if (codec == "snappy") {
    options.codec = Codec::kSnappy;
  } else if (codec == "none") {
    options.codec = Codec::kUncompressed;
  } else if (codec != "zstd") {
    std::fprintf(stderr, "unknown codec %s\n", codec.c_str());
    return 2;
  }
  const long n = std::strtol(argv[2], nullptr, 10);
  auto writer = nodata::parquet::Writer::Open(argv[1], options);
  if (!writer.ok()) {
    std::fprintf(stderr, "%s\n", writer.status().ToString().c_str());
    return 1;
  }
  std::vector<nodata::parquet::Record> batch;
  for (long i = 0; i < n; ++i) {
    nodata::parquet::Record r;
    r.offset = i;
    r.timestamp_us = 1700000000000000 + i * 1000;
    r.ingest_time_us = r.timestamp_us + 5;
    r.id = "id-" + std::to_string(i);
    if (i % 3 != 0) r.key = "key-" + std::to_string(i % 7);
    for (long k = 0; k <= i % 4; ++k) r.data += "data-" + std::to_string(i);
    for (long j = 0; j < i % 4; ++j) {
      r.headers.emplace_back("h" + std::to_string(j), "v" + std::to_string((i + j) % 3));
    }
    batch.push_back(std::move(r));
    if (batch.size() == 256) {
      if (auto s = (*writer)->WriteBatch(batch); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
      batch.clear();
    }
  }
  absl::Status s = (*writer)->WriteBatch(batch);
  if (s.ok()) s = (*writer)->Close();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
