// `nodata component ...`. `component test` runs a WebAssembly transform locally on a file of
// records, with the server's host (components/wasm_transform.h), and prints its outputs.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include "cli/cli.h"
#include "cli/command_set.h"
#include "cli/record_json.h"
#include "cli/wasm_commands.h"
#include "common/strings.h"
#include "components/wasm_transform.h"
#include "nlohmann/json.hpp"
#include "parquet/reader.h"
#include "simdjson.h"

namespace nodata::cli {
namespace {

using json = nlohmann::ordered_json;

struct ComponentTestOptions {
  std::string path;
  std::string input;
  uint32_t outputs = 1;
  std::string config;  // STRING, or @FILE
  uint64_t fuel_per_record = components::TransformOptions{}.fuel_per_record;
  uint32_t batch = 1000;
  std::string tier = "interp";  // interp | native | auto
  std::string cache_dir;
};

// An input record and the partition it is read from.
struct Input {
  PartitionId partition;
  Record record;
};

int Fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return kExitFailed;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A nodata Parquet file (`topic export --format parquet`, or the cold tier's): its partition
// column when it has one, else partition 0.
std::string ReadParquet(const std::string& path, std::vector<Input>* out) {
  auto reader = parquet::Reader::Open(path);
  if (!reader.ok()) return std::string(ToStd(reader.status().message()));
  for (int g = 0; g < static_cast<int>((*reader)->row_groups().size()); ++g) {
    auto rows = (*reader)->ReadRowGroup(g);
    if (!rows.ok()) return std::string(ToStd(rows.status().message()));
    for (parquet::Record& r : *rows) {
      Input in;
      in.partition = PartitionId(static_cast<uint32_t>(std::max(r.partition, 0)));
      in.record.offset = Offset(static_cast<uint64_t>(r.offset));
      in.record.timestamp_us = r.timestamp_us;
      in.record.ingest_time_us = r.ingest_time_us;
      in.record.id = std::move(r.id);
      in.record.key = std::move(r.key);
      in.record.data = std::move(r.data);
      in.record.headers = std::move(r.headers);
      out->push_back(std::move(in));
    }
  }
  return "";
}

// JSON lines as `consume` and `topic export` print them (what `publish --file` reads): a
// line's partition and offset when it has them, else partition 0 and the line's number.
std::string ReadJsonLines(const std::string& path, std::vector<Input>* out) {
  std::FILE* in = stdin;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> owned(nullptr, &std::fclose);
  if (path != "-") {
    owned.reset(std::fopen(path.c_str(), "rb"));
    if (!owned) return "cannot read " + path + ": " + std::strerror(errno);
    in = owned.get();
  }
  LineReader lines(in, 16u << 20);
  simdjson::ondemand::parser parser;
  simdjson::dom::parser checker;
  std::string line;
  for (uint64_t n = 1;; ++n) {
    const LineReader::Result r = lines.Next(&line);
    if (r == LineReader::Result::kEnd) break;
    if (r == LineReader::Result::kError) return "cannot read " + path;
    if (r == LineReader::Result::kTooLong) return StrCat("line ", n, ": longer than 16 MiB");
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nodata::v1::Event e;
    StoredAt at;
    if (std::string bad = EventFromLine(parser, checker, line, "-", &e, &at); !bad.empty()) {
      return StrCat("line ", n, ": ", bad);
    }
    Input input;
    input.partition = PartitionId(static_cast<uint32_t>(at.partition.value_or(0)));
    input.record.offset = Offset(at.offset.value_or(n - 1));
    input.record.ingest_time_us = at.ingest_time_us.value_or(0);
    input.record.timestamp_us =
        e.has_timestamp() ? Micros(e.timestamp()) : input.record.ingest_time_us;
    input.record.id = e.id();
    input.record.key = e.key();
    input.record.data = e.data();
    for (const auto& [k, v] : e.headers()) input.record.headers.emplace_back(k, v);
    out->push_back(std::move(input));
  }
  return "";
}

int ComponentTest(const ComponentTestOptions& o) {
  std::vector<uint8_t> bytes;
  if (std::string error = ReadModule(o.path, &bytes); !error.empty()) return Fail(error);
  std::optional<wasm::Tier> tier;
  if (std::string error = ParseTier(o.tier, &tier); !error.empty()) return Fail(error);
  if (o.outputs == 0) return Fail("--outputs must be at least 1");
  if (o.batch == 0) return Fail("--batch must be at least 1");
  components::TransformOptions options;
  options.outputs = o.outputs;
  options.fuel_per_record = o.fuel_per_record;
  options.log_lines_per_second = 1000;
  if (!o.config.empty() && o.config[0] == '@') {
    std::ifstream in(o.config.substr(1), std::ios::binary);
    if (!in) return Fail("cannot read " + o.config.substr(1));
    options.config.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    options.config = o.config;
  }

  std::vector<Input> inputs;
  const std::string error = EndsWith(o.input, ".parquet") ? ReadParquet(o.input, &inputs)
                                                          : ReadJsonLines(o.input, &inputs);
  if (!error.empty()) return Fail(o.input + ": " + error);

  wasm::RuntimeOptions runtime_options;
  if (tier != wasm::Tier::kInterpreter) {
    runtime_options.cache_dir = o.cache_dir.empty() ? DefaultCacheDir() : o.cache_dir;
  }
  auto runtime = wasm::Runtime::Create(runtime_options);
  if (!runtime.ok()) return Fail(std::string(ToStd(runtime.status().message())));
  auto module = components::WasmTransform::Load(**runtime, bytes, wasm::Limits{},
                                                tier != wasm::Tier::kInterpreter);
  if (!module.ok()) return Fail(std::string(ToStd(module.status().message())));
  if (tier == wasm::Tier::kNative) {
    wasm::NativeStatus status = (*module)->WaitNative(10 * 60 * 1000);
    if (status.state != wasm::NativeStatus::State::kReady) {
      return Fail("native code is not available: " + status.detail);
    }
  }
  static constexpr const char* kLevels[] = {"debug", "info", "warning", "error"};
  auto transform = components::WasmTransform::Create(
      *module, options, [](int level, std::string_view line) {
        std::cerr << "component " << kLevels[level] << ": " << line << "\n";
      });
  if (!transform.ok()) return Fail(std::string(ToStd(transform.status().message())));

  // Batches are runs of one partition's records, in the file's order.
  uint64_t failed = 0;
  std::vector<Record> batch;
  for (size_t at = 0; at < inputs.size();) {
    const PartitionId partition = inputs[at].partition;
    batch.clear();
    const size_t first = at;
    while (at < inputs.size() && inputs[at].partition == partition && batch.size() < o.batch) {
      batch.push_back(inputs[at++].record);
    }
    auto result = (*transform)->Process(partition, batch);
    if (!result.ok()) return Fail(std::string(ToStd(result.status().message())));
    std::vector<uint32_t> index(batch.size(), 0);  // each input's outputs so far
    for (const components::Output& out : result->outputs) {
      const Record& in = batch[out.input_index];
      json j = {{"output", out.output},
                {"partition", partition.value()},
                {"offset", in.offset.value()},
                {"index", index[out.input_index]++}};
      PutBytes(j, "key", out.key);
      PutBytes(j, "data", out.data);
      j["timestamp"] = Rfc3339(out.timestamp_us);
      json headers = json::object();
      for (const auto& [k, v] : out.headers) headers[k] = v;
      if (!out.headers.empty()) j["headers"] = headers;
      std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    }
    for (const components::FailedRecord& f : result->failed) {
      ++failed;
      const Record& in = inputs[first + f.input_index].record;
      json j = {{"failed", {{"partition", partition.value()}, {"offset", in.offset.value()}}},
                {"error", f.error}};
      std::cerr << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    }
  }
  std::cout.flush();
  if (failed > 0) {
    std::cerr << failed << " of " << inputs.size() << " records failed\n";
    return kExitTrap;
  }
  return kExitOk;
}

}  // namespace

void AddComponentCommands(CommandSet& set) {
  CLI::App* component = set.app().add_subcommand("component", "WebAssembly components");
  component->require_subcommand(1);
  ComponentTestOptions& o = set.Keep<ComponentTestOptions>();
  CLI::App* test = component->add_subcommand(
      "test", "run a WebAssembly transform locally (no server) on a file of records and print "
              "each output as a JSON line");
  test->add_option("file", o.path, "the component (.wasm, or .wat text)")->required();
  test->add_option("--input", o.input,
                   "records: JSON lines as `consume` prints them (- for stdin), or a .parquet "
                   "file as `topic export` writes it")
      ->required();
  test->add_option("--outputs", o.outputs, "number of output topics")->capture_default_str();
  test->add_option("--config", o.config, "the component's configuration: STRING or @FILE");
  test->add_option("--fuel-per-record", o.fuel_per_record, "fuel budget per input record")
      ->capture_default_str();
  test->add_option("--batch", o.batch, "records per batch at most")->capture_default_str();
  test->add_option("--tier", o.tier, "interp | native | auto")->capture_default_str();
  test->add_option("--cache-dir", o.cache_dir,
                   "compiled-module cache (default ~/.cache/nodata/wasm)");
  set.OnParsed(test, [&o] {
    if (!CheckRegularFile(o.path)) return kExitFailed;
    if (o.input != "-" && !CheckRegularFile(o.input)) return kExitFailed;
    return ComponentTest(o);
  });
}

}  // namespace nodata::cli
