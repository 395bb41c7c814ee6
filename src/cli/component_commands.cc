// `nodata component ...`. `component test` runs a WebAssembly transform locally on a file of
// records, with the server's host (components/wasm_transform.h), and prints its outputs;
// `add|list|get|update|reset|remove` manage the server's components (ComponentService).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "cli/record_json.h"
#include "cli/wasm_commands.h"
#include "common/strings.h"
#include "components/manager.h"
#include "components/wasm_transform.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.grpc.pb.h"
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

// `component test` is a local command: its errors read "error: ...".
int LocalFail(const std::string& message) {
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
  if (std::string error = ReadModule(o.path, &bytes); !error.empty()) return LocalFail(error);
  std::optional<wasm::Tier> tier;
  if (std::string error = ParseTier(o.tier, &tier); !error.empty()) return LocalFail(error);
  if (o.outputs == 0) return LocalFail("--outputs must be at least 1");
  if (o.batch == 0) return LocalFail("--batch must be at least 1");
  components::TransformOptions options;
  options.outputs = o.outputs;
  options.fuel_per_record = o.fuel_per_record;
  options.log_lines_per_second = 1000;
  if (std::string error = ReadConfigFlag(o.config, &options.config); !error.empty()) {
    return LocalFail(error);
  }

  std::vector<Input> inputs;
  const std::string error = EndsWith(o.input, ".parquet") ? ReadParquet(o.input, &inputs)
                                                          : ReadJsonLines(o.input, &inputs);
  if (!error.empty()) return LocalFail(o.input + ": " + error);

  wasm::RuntimeOptions runtime_options;
  if (tier != wasm::Tier::kInterpreter) {
    runtime_options.cache_dir = o.cache_dir.empty() ? DefaultCacheDir() : o.cache_dir;
  }
  auto runtime = wasm::Runtime::Create(runtime_options);
  if (!runtime.ok()) return LocalFail(std::string(ToStd(runtime.status().message())));
  auto module = components::WasmTransform::Load(**runtime, bytes, wasm::Limits{},
                                                tier != wasm::Tier::kInterpreter);
  if (!module.ok()) return LocalFail(std::string(ToStd(module.status().message())));
  if (tier == wasm::Tier::kNative) {
    wasm::NativeStatus status = (*module)->WaitNative(10 * 60 * 1000);
    if (status.state != wasm::NativeStatus::State::kReady) {
      return LocalFail("native code is not available: " + status.detail);
    }
  }
  static constexpr const char* kLevels[] = {"debug", "info", "warning", "error"};
  auto transform = components::WasmTransform::Create(
      *module, options, [](int level, std::string_view line) {
        std::cerr << "component " << kLevels[level] << ": " << line << "\n";
      });
  if (!transform.ok()) return LocalFail(std::string(ToStd(transform.status().message())));

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
    if (!result.ok()) return LocalFail(std::string(ToStd(result.status().message())));
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

// The client commands: the ComponentService over gRPC.

struct ComponentAddOptions {
  std::string name;
  std::string wasm;       // the module file (.wasm, or .wat text)
  std::string exec;       // or a program
  std::vector<std::string> args;  // the program's, after `--`
  std::string transform;  // IN:OUT[,OUT...]
  std::string source;     // OUT[,OUT...]: a program that publishes
  std::string sink;       // IN: a program that consumes
  std::string config;     // STRING, or @FILE
  std::string on_error = "dead-letter";
  uint64_t fuel_per_record = components::ComponentSpec{}.fuel_per_record;
  uint32_t parallelism = 0;
};

struct ComponentUpdateOptions {
  std::string name;
  std::string wasm;
  std::string exec;
  std::vector<std::string> args;
  std::optional<std::string> config;  // unset: kept
};

struct ComponentLogsOptions {
  std::string name;
  bool follow = false;
  uint32_t tail = 0;
};

// Adding or updating loads a module on the server (and compiles it): more than a metadata call.
constexpr int kModuleCallSeconds = 120;

// "STARTING" and so on, from the API's COMPONENT_STATE_STARTING.
std::string StateName(nodata::v1::ComponentState state) {
  const std::string name = nodata::v1::ComponentState_Name(state);
  constexpr std::string_view kPrefix = "COMPONENT_STATE_";
  if (name.rfind(kPrefix, 0) == 0) return name.substr(kPrefix.size());
  return name.empty() ? "unknown(" + std::to_string(state) + ")" : name;
}

std::string Joined(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

uint64_t TotalLag(const nodata::v1::Component& c) {
  uint64_t lag = 0;
  for (const auto& l : c.lag()) lag += l.lag();
  return lag;
}

json ComponentJson(const nodata::v1::Component& c) {
  json lag = json::array();
  for (const auto& l : c.lag()) {
    lag.push_back({{"partition", l.partition()},
                   {"committed", l.committed()},
                   {"end", l.end()},
                   {"lag", l.lag()}});
  }
  json j = {{"name", c.name()},
            {"kind", c.kind()},
            {"state", StateName(c.state())},
            {"input", c.input()},
            {"outputs", json(std::vector<std::string>(c.outputs().begin(), c.outputs().end()))}};
  PutBytes(j, "config", c.config());
  j["on_error"] = c.on_error();
  j["fuel_per_record"] = c.fuel_per_record();
  j["parallelism"] = c.parallelism();
  j["tier"] = c.tier();
  j["records_in"] = c.records_in();
  j["records_out"] = c.records_out();
  j["errors"] = c.errors();
  j["dead_lettered"] = c.dead_lettered();
  j["last_error"] = c.last_error();
  j["mean_fuel_per_record"] = c.mean_fuel_per_record();
  j["lag"] = lag;
  j["module_sha256"] = c.module_sha256();
  j["created_at"] = Rfc3339(Micros(c.created_at()));
  j["updated_at"] = Rfc3339(Micros(c.updated_at()));
  if (c.kind() == "program") {
    j["exec"] = c.exec();
    j["args"] = std::vector<std::string>(c.args().begin(), c.args().end());
    j["pid"] = c.pid();
    j["restarts"] = c.restarts();
  }
  return j;
}

void PrintComponent(const nodata::v1::Component& c) {
  std::cout << ComponentJson(c).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
}

void PrintComponentTable(const std::vector<const nodata::v1::Component*>& components) {
  std::printf("%-24s %-7s %-9s %-24s %-32s %12s %12s %8s %10s\n", "COMPONENT", "KIND", "STATE",
              "INPUT", "OUTPUTS", "RECORDS IN", "RECORDS OUT", "ERRORS", "LAG");
  for (const auto* c : components) {
    // A program's records are counted by the program, not the server: "-".
    const bool program = c->kind() == "program";
    auto count = [program](uint64_t n) { return program ? std::string("-") : std::to_string(n); };
    std::printf("%-24s %-7s %-9s %-24s %-32s %12s %12s %8s %10s\n", c->name().c_str(),
                c->kind().c_str(), StateName(c->state()).c_str(),
                c->input().empty() ? "-" : c->input().c_str(),
                c->outputs().empty() ? "-" : Joined(c->outputs()).c_str(),
                count(c->records_in()).c_str(), count(c->records_out()).c_str(),
                count(c->errors()).c_str(),
                c->input().empty() ? "-" : std::to_string(TotalLag(*c)).c_str());
  }
}

void PrintComponentDetails(const nodata::v1::Component& c) {
  PrintComponentTable({&c});
  if (c.kind() == "program") {
    std::string command = c.exec();
    for (const std::string& a : c.args()) command += " " + a;
    std::printf("\nexec: %s\npid: %d, restarts: %lu, config: %s\n", command.c_str(), c.pid(),
                static_cast<unsigned long>(c.restarts()), HumanBytes(c.config().size()).c_str());
    std::printf("created: %s, updated: %s\n", Rfc3339(Micros(c.created_at())).c_str(),
                Rfc3339(Micros(c.updated_at())).c_str());
    if (!c.last_error().empty()) std::printf("last exit: %s\n", c.last_error().c_str());
  } else {
    std::printf("\non error: %s, fuel per record: %lu, parallelism: %s, tier: %s\n",
                c.on_error().c_str(), static_cast<unsigned long>(c.fuel_per_record()),
                c.parallelism() == 0 ? "one per input partition"
                                     : std::to_string(c.parallelism()).c_str(),
                c.tier().empty() ? "-" : c.tier().c_str());
    std::printf("dead-lettered: %lu, mean fuel per record: %.0f, config: %s\n",
                static_cast<unsigned long>(c.dead_lettered()), c.mean_fuel_per_record(),
                HumanBytes(c.config().size()).c_str());
    std::printf("module sha256: %s\ncreated: %s, updated: %s\n", c.module_sha256().c_str(),
                Rfc3339(Micros(c.created_at())).c_str(), Rfc3339(Micros(c.updated_at())).c_str());
    if (!c.last_error().empty()) std::printf("last error: %s\n", c.last_error().c_str());
  }
  std::printf("\n%10s %14s %14s %14s\n", "PARTITION", "COMMITTED", "END", "LAG");
  for (const auto& l : c.lag()) {
    std::printf("%10u %14lu %14lu %14lu\n", l.partition(),
                static_cast<unsigned long>(l.committed()), static_cast<unsigned long>(l.end()),
                static_cast<unsigned long>(l.lag()));
  }
}

// A module file's bytes as the API takes them (the text format assembled). An error message on
// failure.
std::string ReadModuleBytes(const std::string& path, std::string* out) {
  std::vector<uint8_t> bytes;
  if (std::string error = ReadModule(path, &bytes); !error.empty()) return error;
  out->assign(bytes.begin(), bytes.end());
  return "";
}

// `--transform IN:OUT[,OUT...]` into the request; an error message on failure.
std::string ParseTransform(const std::string& text, nodata::v1::AddComponentRequest* req) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return "--transform wants IN:OUT[,OUT...], got \"" + text + "\"";
  }
  req->set_input(text.substr(0, colon));
  for (size_t at = colon + 1;;) {
    const size_t comma = std::min(text.find(',', at), text.size());
    if (comma == at) return "--transform names an empty output topic in \"" + text + "\"";
    req->add_outputs(text.substr(at, comma - at));
    if (comma == text.size()) break;
    at = comma + 1;
  }
  return "";
}

// A program's path as the server takes it: absolute, from the working directory.
std::string AbsolutePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

int ComponentAdd(const ClientOptions& c, const ComponentAddOptions& o) {
  nodata::v1::AddComponentRequest req;
  req.set_name(o.name);
  const int shapes = !o.transform.empty() + !o.source.empty() + !o.sink.empty();
  if (o.wasm.empty() == o.exec.empty()) return Fail("give one of --wasm FILE and --exec PATH");
  if (shapes != 1) return Fail("give one of --transform IN:OUT, --source OUT and --sink IN");
  if (!o.wasm.empty() && o.transform.empty()) {
    return Fail("a WebAssembly component is a transform: --transform IN:OUT[,OUT...]");
  }
  if (!o.transform.empty()) {
    if (std::string error = ParseTransform(o.transform, &req); !error.empty()) return Fail(error);
  } else if (!o.source.empty()) {
    // A source's outputs: the --transform syntax after its colon.
    nodata::v1::AddComponentRequest outputs;
    if (std::string error = ParseTransform("-:" + o.source, &outputs); !error.empty()) {
      return Fail("--source wants OUT[,OUT...], got \"" + o.source + "\"");
    }
    *req.mutable_outputs() = outputs.outputs();
  } else {
    req.set_input(o.sink);
  }
  if (std::string error = ReadConfigFlag(o.config, req.mutable_config()); !error.empty()) {
    return Fail("--config: " + error);
  }
  if (!o.wasm.empty()) {
    if (std::string error = ReadModuleBytes(o.wasm, req.mutable_wasm()); !error.empty()) {
      return Fail("--wasm: " + error);
    }
  } else {
    req.set_exec(AbsolutePath(o.exec));
    for (const std::string& a : o.args) req.add_args(a);
  }
  req.set_on_error(o.on_error);
  req.set_fuel_per_record(o.fuel_per_record);
  req.set_parallelism(o.parallelism);
  auto stub = nodata::v1::ComponentService::NewStub(Connect(c));
  nodata::v1::AddComponentResponse resp;
  grpc::Status s = stub->AddComponent(Context(kModuleCallSeconds).get(), req, &resp);
  if (!s.ok()) return Fail(s);
  const nodata::v1::Component& added = resp.component();
  if (c.json) {
    PrintComponent(added);
  } else {
    std::printf("added component %s: %s -> %s (%s)\n", added.name().c_str(),
                added.input().empty() ? "-" : added.input().c_str(),
                added.outputs().empty() ? "-" : Joined(added.outputs()).c_str(),
                StateName(added.state()).c_str());
  }
  return kExitOk;
}

int ComponentList(const ClientOptions& c) {
  auto stub = nodata::v1::ComponentService::NewStub(Connect(c));
  nodata::v1::ListComponentsResponse resp;
  grpc::Status s = stub->ListComponents(Context().get(), {}, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    json out = json::array();
    for (const auto& component : resp.components()) out.push_back(ComponentJson(component));
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::vector<const nodata::v1::Component*> components;
    for (const auto& component : resp.components()) components.push_back(&component);
    PrintComponentTable(components);
  }
  return kExitOk;
}

int ComponentGet(const ClientOptions& c, const std::string& name) {
  auto stub = nodata::v1::ComponentService::NewStub(Connect(c));
  nodata::v1::GetComponentRequest req;
  req.set_name(name);
  nodata::v1::GetComponentResponse resp;
  grpc::Status s = stub->GetComponent(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    PrintComponent(resp.component());
  } else {
    PrintComponentDetails(resp.component());
  }
  return kExitOk;
}

int ComponentUpdate(const ClientOptions& c, const ComponentUpdateOptions& o) {
  nodata::v1::UpdateComponentRequest req;
  req.set_name(o.name);
  if (!o.wasm.empty() && !o.exec.empty()) return Fail("give --wasm FILE or --exec PATH, not both");
  if (!o.wasm.empty()) {
    if (std::string error = ReadModuleBytes(o.wasm, req.mutable_wasm()); !error.empty()) {
      return Fail("--wasm: " + error);
    }
  }
  if (!o.exec.empty()) {
    req.set_exec(AbsolutePath(o.exec));
    for (const std::string& a : o.args) req.add_args(a);
  } else if (!o.args.empty()) {
    return Fail("program arguments need --exec PATH");
  }
  if (o.wasm.empty() && o.exec.empty() && !o.config) {
    return Fail("nothing to update: give --wasm, --exec or --config");
  }
  if (o.config) {
    if (std::string error = ReadConfigFlag(*o.config, req.mutable_config()); !error.empty()) {
      return Fail("--config: " + error);
    }
  }
  auto stub = nodata::v1::ComponentService::NewStub(Connect(c));
  nodata::v1::UpdateComponentResponse resp;
  grpc::Status s = stub->UpdateComponent(Context(kModuleCallSeconds).get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    PrintComponent(resp.component());
  } else {
    const nodata::v1::Component& u = resp.component();
    if (u.kind() == "program") {
      std::printf("updated component %s: %s restarted\n", u.name().c_str(), u.exec().c_str());
    } else {
      std::printf("updated component %s: module sha256 %s\n", u.name().c_str(),
                  u.module_sha256().c_str());
    }
  }
  return kExitOk;
}

int ComponentReset(const ClientOptions& c, const std::string& name, const std::string& to) {
  nodata::v1::ResetComponentRequest req;
  req.set_name(name);
  if (std::string error = ParsePosition(to, req.mutable_to()); !error.empty()) {
    return Fail("--to: " + error);
  }
  auto stub = nodata::v1::ComponentService::NewStub(Connect(c));
  nodata::v1::ResetComponentResponse resp;
  grpc::Status s = stub->ResetComponent(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    PrintComponent(resp.component());
    return kExitOk;
  }
  std::printf("reset component %s to %s\n", name.c_str(), to.c_str());
  for (const auto& l : resp.component().lag()) {
    std::printf("partition %u -> %lu\n", l.partition(), static_cast<unsigned long>(l.committed()));
  }
  return kExitOk;
}

// Prints a component's log lines until the stream ends (without --follow: once the lines kept
// are printed; with it: when the component is removed, or on Ctrl-C).
int ComponentLogs(const ClientOptions& c, const ComponentLogsOptions& o) {
  auto stub = nodata::v1::ComponentService::NewStub(Connect(c));
  nodata::v1::TailComponentLogRequest req;
  req.set_name(o.name);
  req.set_follow(o.follow);
  req.set_tail(o.tail);
  auto ctx = o.follow ? std::make_unique<grpc::ClientContext>() : Context();
  auto reader = stub->TailComponentLog(ctx.get(), req);
  nodata::v1::TailComponentLogResponse resp;
  while (reader->Read(&resp)) {
    for (const nodata::v1::ComponentLogLine& l : resp.lines()) {
      if (c.json) {
        json j = {{"seq", l.seq()},
                  {"time", Rfc3339(Micros(l.time()))},
                  {"stream", l.stream()},
                  {"level", l.level()},
                  {"text", l.text()}};
        std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      } else {
        std::cout << Rfc3339(Micros(l.time())) << " " << l.stream() << " " << l.level() << " "
                  << l.text() << "\n";
      }
    }
    std::cout.flush();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return Fail(s);
  return kExitOk;
}

int ComponentRemove(const ClientOptions& c, const std::string& name) {
  auto stub = nodata::v1::ComponentService::NewStub(Connect(c));
  nodata::v1::RemoveComponentRequest req;
  req.set_name(name);
  nodata::v1::RemoveComponentResponse resp;
  grpc::Status s = stub->RemoveComponent(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    std::cout << json{{"removed", name}} << "\n";
  } else {
    std::printf("removed component %s\n", name.c_str());
  }
  return kExitOk;
}

void AddComponentClientCommands(CommandSet& set, CLI::App* component) {
  const ClientOptions& co = set.client();
  std::string& name = set.Keep<std::string>();

  ComponentAddOptions& a = set.Keep<ComponentAddOptions>();
  CLI::App* add = component->add_subcommand(
      "add",
      "register a component on the server and start it: a WebAssembly transform (--wasm), or a "
      "program (--exec PATH [-- ARGS...]) that the server runs and restarts");
  add->add_option("name", a.name, "component name ([a-zA-Z0-9._-], at most 200)")->required();
  add->add_option("args", a.args, "the program's arguments (after --)");
  add->add_option("--wasm", a.wasm, "the module (.wasm, or .wat text)");
  add->add_option("--exec", a.exec, "a program built with the SDK (sdk/cpp), run by the server");
  add->add_option("--transform", a.transform,
                  "IN:OUT[,OUT...]: the input topic and the output topics, numbered from 0");
  add->add_option("--source", a.source, "OUT[,OUT...]: a program that publishes to these topics");
  add->add_option("--sink", a.sink, "IN: a program that consumes this topic");
  add->add_option("--config", a.config, "the component's configuration: STRING or @FILE");
  add->add_option("--on-error", a.on_error,
                  "a record that fails: dead-letter (to NAME.dead-letter) | skip | stop")
      ->check(CLI::IsMember({"dead-letter", "skip", "stop"}))
      ->capture_default_str();
  add->add_option("--fuel-per-record", a.fuel_per_record, "fuel budget per input record")
      ->capture_default_str();
  add->add_option("--parallelism", a.parallelism,
                  "input partitions processed at once, at most (0: every partition)")
      ->capture_default_str();
  set.AddClientFlags(add);
  set.OnParsed(add, [&co, &a] {
    if (!a.wasm.empty() && !CheckRegularFile(a.wasm)) return kExitFailed;
    if (!a.config.empty() && a.config[0] == '@' && !CheckRegularFile(a.config.substr(1))) {
      return kExitFailed;
    }
    return ComponentAdd(co, a);
  });

  CLI::App* list = component->add_subcommand("list", "list the server's components");
  set.AddClientFlags(list);
  set.OnParsed(list, [&co] { return ComponentList(co); });

  CLI::App* get = component->add_subcommand(
      "get", "show a component: state, counters, lag per input partition");
  get->add_option("name", name, "component name")->required();
  set.AddClientFlags(get);
  set.OnParsed(get, [&co, &name] { return ComponentGet(co, name); });

  ComponentUpdateOptions& u = set.Keep<ComponentUpdateOptions>();
  CLI::App* update = component->add_subcommand(
      "update",
      "replace a component's module or program (and configuration), keeping its position");
  update->add_option("name", u.name, "component name")->required();
  update->add_option("args", u.args, "with --exec: the program's arguments (after --)");
  update->add_option("--wasm", u.wasm, "the new module (.wasm, or .wat text; default: kept)");
  update->add_option("--exec", u.exec, "a program component's new executable (restarts it)");
  update->add_option("--config", u.config, "new configuration: STRING or @FILE (default: kept)");
  set.AddClientFlags(update);
  set.OnParsed(update, [&co, &u] {
    if (!u.wasm.empty() && !CheckRegularFile(u.wasm)) return kExitFailed;
    if (u.config && !u.config->empty() && (*u.config)[0] == '@' &&
        !CheckRegularFile(u.config->substr(1))) {
      return kExitFailed;
    }
    return ComponentUpdate(co, u);
  });

  std::string& reset_to = set.Keep<std::string>();
  CLI::App* reset = component->add_subcommand(
      "reset", "move a component's input position and process the records from there again");
  reset->add_option("name", name, "component name")->required();
  reset->add_option("--to", reset_to, "earliest | latest | offset:N | time:RFC3339")->required();
  set.AddClientFlags(reset);
  set.OnParsed(reset, [&co, &name, &reset_to] { return ComponentReset(co, name, reset_to); });

  ComponentLogsOptions& l = set.Keep<ComponentLogsOptions>();
  CLI::App* logs = component->add_subcommand(
      "logs", "print a component's log: a program's stdout and stderr, a module's log lines");
  logs->add_option("name", l.name, "component name")->required();
  logs->add_flag("-f,--follow", l.follow, "keep printing lines as they come");
  logs->add_option("--tail", l.tail, "start with the latest N lines (0: every line kept)");
  set.AddClientFlags(logs);
  set.OnParsed(logs, [&co, &l] { return ComponentLogs(co, l); });

  CLI::App* remove = component->add_subcommand(
      "remove", "stop a component, forget it and delete its group's offsets");
  remove->add_option("name", name, "component name")->required();
  set.AddClientFlags(remove);
  set.OnParsed(remove, [&co, &name] { return ComponentRemove(co, name); });
}

}  // namespace

void AddComponentCommands(CommandSet& set) {
  CLI::App* component = set.app().add_subcommand(
      "component", "components: test a WebAssembly transform locally, or manage the server's");
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
  AddComponentClientCommands(set, component);
}

}  // namespace nodata::cli
