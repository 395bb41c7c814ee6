// nodata_parquet_bench: the nodata side of the Parquet benchmark (bench/parquet/run).
//
//   nodata_parquet_bench write --out FILE [--rows N] [--batch B] [--codec zstd|snappy|none]
//                              [--level L] [--threads T] [--repeat R]
//     Writes N generated records (see MakeRecord) with parquet::Writer. All records are generated
//     in memory first, in batches of B (as DuckDB's side has its table in memory before COPY);
//     the clock then runs on the wall from Writer::Open to the end of Close, so work the writer
//     does in the background is counted.
//     T is WriterOptions::threads. With R > 1 the file is written R times; the fastest counts.
//   nodata_parquet_bench scan --file FILE [--threads T] [--column data] [--repeat R]
//                             [--api scan|read]
//     Sums the lengths of one BYTE_ARRAY column with Reader::ScanByteArrayColumn (page by page)
//     or ReadByteArrayColumn (--api read: whole column chunks), row groups spread over T threads
//     (Reader is safe for concurrent use). Reports the best of R runs.
//   nodata_parquet_bench scan-records --file FILE
//     The same sum through ReadRowGroup (whole records), for comparison.
//
// Each command prints one JSON object on stdout.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "parquet/reader.h"
#include "parquet/writer.h"
#include "bench/common/args.h"

namespace {

using nodata::parquet::ByteArrayColumn;
using nodata::parquet::ByteArrayPage;
using nodata::parquet::ByteArrayScratch;
using nodata::parquet::Codec;
using nodata::parquet::Reader;
using nodata::parquet::Record;
using nodata::parquet::Writer;
using nodata::parquet::WriterOptions;
using Clock = std::chrono::steady_clock;

constexpr size_t kPayloadBytes = 100;
constexpr int64_t kBaseTimestampUs = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "nodata_parquet_bench: %s\n", what.c_str());
  std::exit(1);
}

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// Record i, deterministic: offset i; timestamps rising by ~100 us per record with jitter, ingest
// 0.2-0.5 ms later; id "evt-<i>"; key "user-<0..9999>"; a 100-byte JSON payload with a few
// varying fields and a random 16-hex-digit session; headers content-type (constant) and source
// (one of four).
Record MakeRecord(uint64_t i) {
  static constexpr const char* kActions[] = {"view", "click", "add_to_cart", "checkout", "search"};
  static constexpr const char* kSources[] = {"web", "ios", "android", "api"};
  const uint64_t h = Mix(i);
  const uint64_t h2 = Mix(h);
  Record r;
  r.offset = static_cast<int64_t>(i);
  r.timestamp_us = kBaseTimestampUs + static_cast<int64_t>(i * 100 + h % 50);
  r.ingest_time_us = r.timestamp_us + 200 + static_cast<int64_t>((h >> 8) % 300);
  r.id = "evt-" + std::to_string(i);
  r.key = "user-" + std::to_string((h >> 20) % 10000);
  char payload[kPayloadBytes * 2];
  int n = std::snprintf(payload, sizeof payload,
                        "{\"user\":%u,\"action\":\"%s\",\"page\":\"/p/%u\",\"ms\":%u,"
                        "\"session\":\"%016" PRIx64 "\",\"v\":1",
                        static_cast<unsigned>((h >> 20) % 10000), kActions[(h >> 34) % 5],
                        static_cast<unsigned>((h >> 37) % 50000),
                        static_cast<unsigned>((h >> 53) % 2000), h2);
  std::string data(payload, static_cast<size_t>(n));
  data.resize(kPayloadBytes - 1, ' ');
  data.push_back('}');
  r.data = std::move(data);
  r.headers = {{"content-type", "application/json"}, {"source", kSources[(h2 >> 60) % 4]}};
  return r;
}

// Bytes of a record as the writer counts them toward row_group_bytes: three int64s, id, key,
// data and header keys and values.
uint64_t RawBytes(const Record& r) {
  uint64_t n = 24 + r.id.size() + r.key.size() + r.data.size();
  for (const auto& [k, v] : r.headers) n += k.size() + v.size();
  return n;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

using nodata::bench::Args;

struct WriteResult {
  double seconds = 0, generate_seconds = 0;
  uint64_t raw_bytes = 0, file_bytes = 0;
};

struct Batches {
  std::vector<std::vector<Record>> batches;
  uint64_t raw_bytes = 0;
  double generate_seconds = 0;
};

Batches Generate(uint64_t rows, uint64_t batch_rows) {
  Batches b;
  const auto g0 = Clock::now();
  for (uint64_t first = 0; first < rows; first += batch_rows) {
    const uint64_t n = std::min(batch_rows, rows - first);
    std::vector<Record>& batch = b.batches.emplace_back();
    batch.reserve(n);
    for (uint64_t i = first; i < first + n; ++i) {
      batch.push_back(MakeRecord(i));
      b.raw_bytes += RawBytes(batch.back());
    }
  }
  b.generate_seconds = Seconds(Clock::now() - g0);
  return b;
}

WriteResult WriteOnce(const std::string& out, const Batches& input, const WriterOptions& options) {
  WriteResult result;
  const auto t0 = Clock::now();
  auto writer = Writer::Open(out, options);
  if (!writer.ok()) Die(writer.status().ToString());
  for (const auto& batch : input.batches) {
    absl::Status s = (*writer)->WriteBatch(batch);
    if (!s.ok()) Die(s.ToString());
  }
  absl::Status s = (*writer)->Close();
  if (!s.ok()) Die(s.ToString());
  result.seconds = Seconds(Clock::now() - t0);
  result.raw_bytes = input.raw_bytes;
  result.generate_seconds = input.generate_seconds;
  result.file_bytes = (*writer)->bytes_written();
  return result;
}

int Write(const Args& args) {
  const std::string out = args.Get("--out", "");
  if (out.empty()) Die("write needs --out FILE");
  const uint64_t rows = args.GetInt("--rows", 10'000'000);
  const uint64_t batch_rows = std::max<uint64_t>(1, args.GetInt("--batch", 65536));
  const uint64_t repeat = std::max<uint64_t>(1, args.GetInt("--repeat", 1));
  const std::string codec = args.Get("--codec", "zstd");
  WriterOptions options;
  options.codec = codec == "none" ? Codec::kUncompressed
                  : codec == "snappy" ? Codec::kSnappy
                                      : Codec::kZstd;
  options.zstd_level = static_cast<int>(args.GetInt("--level", 3));
  options.threads = static_cast<int>(args.GetInt("--threads", 1));

  const Batches input = Generate(rows, batch_rows);
  WriteResult best;
  std::string all;
  for (uint64_t run = 0; run < repeat; ++run) {
    WriteResult r = WriteOnce(out, input, options);
    if (run == 0 || r.seconds < best.seconds) best = r;
    all += (run == 0 ? "" : ",") + std::to_string(r.seconds);
  }
  const double secs = best.seconds;
  std::printf(
      "{\"rows\":%" PRIu64 ",\"seconds\":%.4f,\"rows_per_s\":%.0f,\"raw_bytes\":%" PRIu64
      ",\"raw_mb_per_s\":%.2f,\"file_bytes\":%" PRIu64
      ",\"generate_seconds\":%.4f,\"batch_rows\":%" PRIu64
      ",\"codec\":\"%s\",\"level\":%d,\"threads\":%d,\"all_seconds\":[%s]}\n",
      rows, secs, rows / secs, best.raw_bytes, best.raw_bytes / secs / 1e6, best.file_bytes,
      best.generate_seconds, batch_rows, codec.c_str(), options.zstd_level, options.threads,
      all.c_str());
  return 0;
}

int Scan(const Args& args) {
  const std::string file = args.Get("--file", "");
  if (file.empty()) Die("scan needs --file FILE");
  const std::string column = args.Get("--column", "data");
  const int threads = static_cast<int>(std::max<uint64_t>(1, args.GetInt("--threads", 1)));
  const uint64_t repeat = std::max<uint64_t>(1, args.GetInt("--repeat", 1));
  const std::string api = args.Get("--api", "scan");
  const bool whole_chunks = api == "read";
  double best = 0;
  uint64_t rows = 0, bytes = 0;
  for (uint64_t run = 0; run < repeat; ++run) {
    // Opening (footer parse) is part of the scan, as it is for DuckDB's read_parquet.
    auto t0 = Clock::now();
    auto reader = Reader::Open(file);
    if (!reader.ok()) Die(reader.status().ToString());
    const int groups = static_cast<int>((*reader)->row_groups().size());
    std::atomic<int> next{0};
    std::vector<uint64_t> sums(threads, 0), counts(threads, 0);
    std::vector<std::string> errors(threads);
    auto work = [&](int t) {
      ByteArrayColumn col;
      ByteArrayScratch scratch;
      uint64_t sum = 0, count = 0;
      auto add = [&](std::span<const std::string_view> values) {
        for (std::string_view v : values) sum += v.size();
        count += values.size();
      };
      for (int g = next++; g < groups; g = next++) {
        absl::Status s;
        if (whole_chunks) {
          s = (*reader)->ReadByteArrayColumn(g, column, &col);
          add(col.values);
        } else {
          s = (*reader)->ScanByteArrayColumn(
              g, column,
              [&](const ByteArrayPage& page) {
                add(page.values);
                return absl::OkStatus();
              },
              &scratch);
        }
        if (!s.ok()) {
          errors[t] = s.ToString();
          return;
        }
      }
      sums[t] = sum;
      counts[t] = count;
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    const double secs = Seconds(Clock::now() - t0);
    for (const auto& e : errors) {
      if (!e.empty()) Die(e);
    }
    rows = bytes = 0;
    for (int t = 0; t < threads; ++t) rows += counts[t], bytes += sums[t];
    if (run == 0 || secs < best) best = secs;
  }
  std::printf("{\"rows\":%" PRIu64 ",\"sum_length\":%" PRIu64
              ",\"seconds\":%.4f,\"rows_per_s\":%.0f,\"threads\":%d,\"repeat\":%" PRIu64
              ",\"api\":\"%s\"}\n",
              rows, bytes, best, rows / best, threads, repeat, api.c_str());
  return 0;
}

int ScanRecords(const Args& args) {
  const std::string file = args.Get("--file", "");
  if (file.empty()) Die("scan-records needs --file FILE");
  auto t0 = Clock::now();
  auto reader = Reader::Open(file);
  if (!reader.ok()) Die(reader.status().ToString());
  uint64_t rows = 0, bytes = 0;
  for (size_t g = 0; g < (*reader)->row_groups().size(); ++g) {
    auto records = (*reader)->ReadRowGroup(static_cast<int>(g));
    if (!records.ok()) Die(records.status().ToString());
    for (const Record& r : *records) bytes += r.data.size();
    rows += records->size();
  }
  const double secs = Seconds(Clock::now() - t0);
  std::printf("{\"rows\":%" PRIu64 ",\"sum_length\":%" PRIu64
              ",\"seconds\":%.4f,\"rows_per_s\":%.0f,\"threads\":1}\n",
              rows, bytes, secs, rows / secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: nodata_parquet_bench write|scan|scan-records [flags]");
  Args args{std::vector<std::string>(argv + 2, argv + argc)};
  const std::string_view cmd = argv[1];
  if (cmd == "write") return Write(args);
  if (cmd == "scan") return Scan(args);
  if (cmd == "scan-records") return ScanRecords(args);
  Die("unknown command " + std::string(cmd));
}
