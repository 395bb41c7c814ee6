#include "cli/cli.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/client_commands.h"
#include "cli/client_util.h"
#include "cli/parquet_commands.h"
#include "cli/wasm_commands.h"
#include "wasm/native/translate.h"
#include "common/strings.h"
#include "server/server.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace nodata::cli {
namespace {

// Parses --fsync: always | never | interval:<ms>.
bool ParseFsync(const std::string& value, broker::BrokerOptions* options) {
  if (value == "always") {
    options->log.fsync = log::FsyncPolicy::kAlways;
    return true;
  }
  if (value == "never") {
    options->log.fsync = log::FsyncPolicy::kNever;
    return true;
  }
  if (value.rfind("interval:", 0) == 0) {
    try {
      size_t used = 0;
      std::string ms = value.substr(9);
      long long v = std::stoll(ms, &used);
      if (used != ms.size() || v <= 0) return false;
      options->log.fsync = log::FsyncPolicy::kInterval;
      options->fsync_interval_ms = v;
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  return false;
}

// Parses a duration: a number with a unit (ms, s, m, h, d), e.g. "500ms", "10m". Microseconds.
bool ParseDuration(const std::string& value, int64_t* micros) {
  size_t used = 0;
  long long n;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    return false;
  }
  if (n <= 0) return false;
  const std::string unit = value.substr(used);
  int64_t scale;
  if (unit == "ms") {
    scale = 1000;
  } else if (unit == "s") {
    scale = 1000000;
  } else if (unit == "m") {
    scale = 60LL * 1000000;
  } else if (unit == "h") {
    scale = 3600LL * 1000000;
  } else if (unit == "d") {
    scale = 86400LL * 1000000;
  } else {
    return false;
  }
  if (n > INT64_MAX / scale) return false;
  *micros = n * scale;
  return true;
}

// Adds a flag that can also come from the environment (NODATA_<NAME>) and the config file.
template <typename T>
CLI::Option* Flag(CLI::App* app, const std::string& name, T& value, const std::string& help) {
  std::string env = "NODATA_";
  for (char c : name) env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return app->add_option("--" + name, value, help)->envname(env)->capture_default_str();
}

// A repeatable option takes one value per occurrence (`--header a=1 --header b=2`), so that a
// positional argument after it is never read as one more value.
CLI::Option* OnePerFlag(CLI::Option* option) { return option->allow_extra_args(false); }

// Reads a config file of `name = value` lines (TOML or INI style: `#`/`;` comments, `[section]`
// lines ignored, values optionally quoted) into `--name value` pairs. Names are the serve flags.
bool ReadConfig(const std::string& path, std::vector<std::pair<std::string, std::string>>* out,
                std::string* error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    *error = "cannot read config file " + path + ": " + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    *error = "config file " + path + " is a directory";
    return false;
  }
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read config file " + path;
    return false;
  }
  std::string line;
  int line_no = 0;
  auto trim = [](std::string v) {
    size_t b = v.find_first_not_of(" \t\r");
    size_t e = v.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : v.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    ++line_no;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';' || t[0] == '[') continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) {
      *error = path + ":" + std::to_string(line_no) + ": expected name = value";
      return false;
    }
    std::string name = trim(t.substr(0, eq));
    std::string value = trim(t.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    for (char& c : name) {
      if (c == '_') c = '-';
    }
    out->emplace_back(name, value);
  }
  return true;
}

// Precedence: command line, then environment, then config file, then defaults. The config
// file's settings become command-line arguments for the flags given neither way.
bool ApplyConfigFile(std::vector<std::string>* args, std::string* error) {
  auto serve = std::find(args->begin(), args->end(), "serve");
  if (serve == args->end()) return true;
  std::string path;
  std::vector<std::string> given;
  std::vector<std::string> rest;
  for (auto it = serve + 1; it != args->end(); ++it) {
    if (*it == "--config" && it + 1 != args->end()) {
      path = *++it;
      continue;
    }
    if (it->rfind("--config=", 0) == 0) {
      path = it->substr(9);
      continue;
    }
    if (it->rfind("--", 0) == 0) given.push_back(it->substr(2, it->find('=') - 2));
    rest.push_back(*it);
  }
  if (path.empty()) return true;
  std::vector<std::pair<std::string, std::string>> settings;
  if (!ReadConfig(path, &settings, error)) return false;
  std::vector<std::string> out(args->begin(), serve + 1);
  for (const auto& [name, value] : settings) {
    std::string env = "NODATA_";
    for (char c : name) env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
    if (std::find(given.begin(), given.end(), name) != given.end()) continue;
    if (std::getenv(env.c_str()) != nullptr) continue;
    out.push_back("--" + name);
    out.push_back(value);
  }
  out.insert(out.end(), rest.begin(), rest.end());
  *args = std::move(out);
  return true;
}

// Local commands read whole files: a directory, a fifo or a device is refused up front (reading
// one would fail midway or wait forever).
bool CheckRegularFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    std::cerr << "nodata: cannot read " << path << ": " << std::strerror(errno) << "\n";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    std::cerr << "nodata: " << path << " is "
              << (S_ISDIR(st.st_mode) ? "a directory" : "not a regular file") << "\n";
    return false;
  }
  return true;
}

int Run(int argc, char** argv);

}  // namespace

int Main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "nodata: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "nodata: unexpected error\n";
  }
  return kExitFailed;
}

namespace {

int Run(int argc, char** argv) {
  // The native tier's translator runs as a child process of this binary (not a user command).
  if (argc >= 3 && std::string_view(argv[1]) == "wasm" && std::string_view(argv[2]) == "translate") {
    return wasm::TranslateMain(argc - 2, argv + 2);
  }
  CLI::App app{"nodata: durable event ingest, storage and streaming in one binary", "nodata"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("nodata ") + NODATA_VERSION);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->envname("NODATA_LOG_LEVEL");

  // serve
  server::ServerOptions so;
  so.broker.data_dir = "./nodata-data";
  std::string fsync = "always";
  CLI::App* serve = app.add_subcommand("serve", "run the server");
  std::string config_file;
  serve->add_option("--config", config_file,
                    "config file of `name = value` lines naming these flags");
  Flag(serve, "listen", so.listen, "gRPC listen address");
  Flag(serve, "http", so.http, "HTTP listen address (/metrics, /healthz)");
  Flag(serve, "data", so.broker.data_dir, "data directory");
  Flag(serve, "fsync", fsync, "always | interval:<ms> | never");
  Flag(serve, "default-partitions", so.broker.default_partitions,
       "partitions of an auto-created topic")
      ->check(CLI::Range(1u, 1u << 16));
  Flag(serve, "max-partitions", so.broker.max_partitions, "largest partition count of a topic");
  Flag(serve, "auto-create-topics", so.broker.auto_create_topics,
       "create a topic on first publish");
  Flag(serve, "max-event-bytes", so.broker.max_event_bytes,
       "largest event (topic, id, key, data and headers)");
  Flag(serve, "max-batch-events", so.broker.max_batch_events, "most events in one request");
  Flag(serve, "max-batch-bytes", so.broker.max_batch_bytes, "largest request");
  Flag(serve, "dedupe-window-ms", so.broker.dedupe_window_ms, "how long ids are remembered");
  Flag(serve, "dedupe-max-ids", so.broker.dedupe_max_ids, "most ids remembered per topic");
  Flag(serve, "segment-bytes", so.broker.log.segment_bytes, "segment size before a roll")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 31));
  Flag(serve, "segment-ms", so.broker.log.segment_ms, "segment age before a roll");
  Flag(serve, "sync-threads", so.broker.sync_threads, "threads running fdatasync")
      ->check(CLI::Range(1, 64));
  Flag(serve, "stream-inflight-batches", so.stream_inflight_batches,
       "batches of one PublishStream stored concurrently")
      ->check(CLI::Range(1, 1024));
  Flag(serve, "egress-threads", so.egress_threads, "threads reading records for subscribers")
      ->check(CLI::Range(1, 64));
  Flag(serve, "keepalive-ms", so.keepalive_ms,
       "keepalive ping interval and timeout: a subscriber silent this long is gone")
      ->check(CLI::Range(100, 3600000));
  Flag(serve, "parquet-roll-bytes", so.broker.compaction.roll_bytes,
       "bytes of records (before compression) per Parquet file")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  std::string roll_interval = "10m";
  Flag(serve, "parquet-roll-interval", roll_interval,
       "longest wait of a record in the hot tier before compaction (e.g. 30s, 10m, 1h)");
  std::string compression = "zstd";
  Flag(serve, "parquet-compression", compression, "zstd | snappy | none");
  Flag(serve, "parquet-zstd-level", so.broker.parquet.zstd_level, "zstd level of Parquet pages")
      ->check(CLI::Range(1, 19));
  Flag(serve, "parquet-row-group-bytes", so.broker.parquet.row_group_bytes,
       "bytes of records per row group: bounds the memory of writing and reading")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 32));
  Flag(serve, "retention-ms", so.broker.retention_ms,
       "default retention by ingest time, per partition (-1: unlimited; 0 too)")
      ->check(CLI::Range(int64_t{-1}, INT64_MAX / 1000));
  Flag(serve, "retention-bytes", so.broker.retention_bytes,
       "default retention by size, per partition (-1: unlimited; 0 too)")
      ->check(CLI::Range(int64_t{-1}, INT64_MAX));
  Flag(serve, "maintenance-ms", so.broker.maintenance_period_ms,
       "how often compaction and retention look for due work")
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));

  // Client commands.
  ClientOptions co;
  auto add_client_flags = [&co](CLI::App* cmd) {
    cmd->add_option("--server", co.server, "server address")
        ->envname("NODATA_SERVER")
        ->capture_default_str();
    cmd->add_flag("--json", co.json, "print JSON");
  };
  CLI::App* topic = app.add_subcommand("topic", "manage topics");
  topic->require_subcommand(1);
  std::string topic_name;
  uint32_t partitions = 0;
  RetentionFlags retention;
  auto add_retention_flags = [&retention](CLI::App* cmd) {
    cmd->add_option("--retention-ms", retention.ms,
                    "retention by ingest time, per partition (0: server default, -1: unlimited)");
    cmd->add_option("--retention-bytes", retention.bytes,
                    "retention by size, per partition (0: server default, -1: unlimited)");
  };
  CLI::App* create = topic->add_subcommand("create", "create a topic");
  create->add_option("name", topic_name, "topic name")->required();
  create->add_option("--partitions", partitions, "partition count (0: server default)");
  add_retention_flags(create);
  // Fixed for the topic: publishing refuses other values, Parquet files carry it.
  FormatFlags formats;
  create->add_option("--key-format", formats.key, "format of event keys: bytes | string | json")
      ->check(CLI::IsMember({"bytes", "string", "json"}))
      ->capture_default_str();
  create->add_option("--data-format", formats.data, "format of event data: bytes | string | json")
      ->check(CLI::IsMember({"bytes", "string", "json"}))
      ->capture_default_str();
  add_client_flags(create);
  CLI::App* update =
      topic->add_subcommand("update", "change a topic's retention or add partitions");
  update->add_option("name", topic_name, "topic name")->required();
  add_retention_flags(update);
  std::optional<uint32_t> update_partitions;
  update->add_option("--partitions", update_partitions,
                     "grow to this many partitions (keys then map to other partitions)");
  add_client_flags(update);
  CLI::App* flush = topic->add_subcommand(
      "flush", "compact a topic's hot tier into Parquet files now (returns once durable)");
  flush->add_option("name", topic_name, "topic name")->required();
  add_client_flags(flush);
  ExportOptions eo;
  CLI::App* export_cmd =
      topic->add_subcommand("export", "write a snapshot of a topic as JSONL or Parquet");
  export_cmd->add_option("name", topic_name, "topic name")->required();
  export_cmd->add_option("--format", eo.format, "jsonl | parquet")->capture_default_str();
  export_cmd->add_option("--out", eo.out,
                         "output file (\"-\": stdout, JSONL only); Parquet: one file with a "
                         "partition column, or partition=<p>/ files when --out is an existing "
                         "directory or ends in /")
      ->required();
  OnePerFlag(export_cmd->add_option("--partition", eo.partitions, "partition to export (repeatable)"));
  export_cmd->add_option("--from", eo.from, "first offset in each partition");
  add_client_flags(export_cmd);
  CLI::App* list = topic->add_subcommand("list", "list topics");
  add_client_flags(list);
  CLI::App* get = topic->add_subcommand("get", "show a topic and its partitions");
  get->add_option("name", topic_name, "topic name")->required();
  add_client_flags(get);
  CLI::App* del = topic->add_subcommand("delete", "delete a topic and its data");
  del->add_option("name", topic_name, "topic name")->required();
  add_client_flags(del);

  PublishOptions po;
  CLI::App* publish = app.add_subcommand("publish", "publish one event, or a JSONL file");
  publish->add_option("--topic", po.topic, "topic");
  publish->add_option("--key", po.key, "partition key");
  publish->add_option("--id", po.id, "event id (dedupe key)");
  OnePerFlag(publish->add_option("--header", po.headers, "header NAME=VALUE (repeatable)"));
  publish->add_option("--file", po.file,
                      "JSONL file of events, one object per line (\"-\": stdin); --topic, "
                      "when given, wins over the lines' \"topic\"");
  publish->add_option("--batch", po.batch, "events per batch with --file")
      ->check(CLI::Range(1u, 100000u));
  publish->add_option("--max-line-bytes", po.max_line_bytes,
                      "longest JSONL line, or data on stdin, that is read")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 31));
  CLI::Option* publish_data = publish->add_option(
      "data", po.data, "event data (not given: read from stdin; '' for an empty event)");
  add_client_flags(publish);

  ConsumeOptions cons;
  CLI::App* consume = app.add_subcommand("consume", "print a topic's records as they come");
  consume->add_option("--topic", cons.topic, "topic")->required();
  consume->add_option("--group", cons.group, "consumer group to join (commits as it prints)");
  consume->add_option("--consumer-id", cons.consumer_id, "member id in the group");
  consume->add_option("--from", cons.from,
                      "earliest | latest | committed | offset:N | time:RFC3339 (default: "
                      "committed with a group, else earliest); offset:N outside a partition "
                      "starts at its nearest end");
  OnePerFlag(
      consume->add_option("--partition", cons.partitions, "partition to read (repeatable; no group)"));
  consume->add_option("--format", cons.format, "json (one object per line) | raw (data only)")
      ->capture_default_str();
  consume->add_option("--count", cons.count, "stop after this many records");
  consume->add_flag("--until-end", cons.until_end,
                    "stop once every partition read reached its end offset of when consume "
                    "started (with a group: the assigned partitions)");
  consume->add_option("--max-batch", cons.max_batch, "records per message from the server");
  consume->add_flag("!--no-commit", cons.commit, "with a group: do not commit");
  add_client_flags(consume);

  CLI::App* group = app.add_subcommand("group", "inspect, reset and delete consumer groups");
  group->require_subcommand(1);
  std::string group_name, group_topic, reset_to;
  std::vector<uint32_t> reset_partitions;
  CLI::App* group_list = group->add_subcommand("list", "list groups with members or offsets");
  group_list->add_option("--topic", group_topic, "only groups on this topic");
  add_client_flags(group_list);
  CLI::App* group_get =
      group->add_subcommand("get", "show a group's members, committed offsets and lag");
  group_get->add_option("group", group_name, "group")->required();
  group_get->add_option("--topic", group_topic, "topic")->required();
  add_client_flags(group_get);
  CLI::App* group_reset =
      group->add_subcommand("reset", "move a group's committed offsets (no live members)");
  group_reset->add_option("group", group_name, "group")->required();
  group_reset->add_option("--topic", group_topic, "topic")->required();
  group_reset->add_option("--to", reset_to, "earliest | latest | offset:N | time:RFC3339")
      ->required();
  OnePerFlag(group_reset->add_option("--partition", reset_partitions,
                                     "partition (repeatable; default all)"));
  add_client_flags(group_reset);
  CLI::App* group_delete = group->add_subcommand(
      "delete", "delete a group's committed offsets on a topic (no live members)");
  group_delete->add_option("group", group_name, "group")->required();
  group_delete->add_option("--topic", group_topic, "topic")->required();
  add_client_flags(group_delete);

  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_error;
  if (!ApplyConfigFile(&args, &config_error)) {
    std::cerr << "nodata: " << config_error << "\n";
    return kExitUsage;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  CLI::App* parquet = app.add_subcommand("parquet", "work with Parquet files (locally)");
  parquet->require_subcommand(1);
  std::string parquet_file;
  CLI::App* inspect = parquet->add_subcommand(
      "inspect", "print a Parquet file's schema, row groups and statistics as JSON");
  inspect->add_option("file", parquet_file, "Parquet file")->required();

  CLI::App* wasm_cmd = app.add_subcommand("wasm", "inspect and run WebAssembly modules (locally)");
  wasm_cmd->require_subcommand(1);
  std::string wasm_file;
  CLI::App* wasm_inspect = wasm_cmd->add_subcommand(
      "inspect", "print a module's imports, exports, memory and features, or why it is refused");
  wasm_inspect->add_option("file", wasm_file, ".wasm file")->required();
  WasmRunOptions wro;
  CLI::App* wasm_run = wasm_cmd->add_subcommand("run", "call one exported function");
  wasm_run->add_option("file", wro.path, ".wasm file")->required();
  wasm_run->add_option("--invoke", wro.invoke, "exported function to call")->required();
  wasm_run->add_option("args", wro.args, "arguments, by the function's parameter types");
  wasm_run->add_option("--tier", wro.tier, "interp | native | auto")->capture_default_str();
  wasm_run->add_option("--fuel", wro.fuel, "fuel budget of the call (default 1e9)");
  wasm_run->add_option("--deadline-ms", wro.deadline_ms, "wall-clock limit (default 10000)");
  wasm_run->add_option("--cache-dir", wro.cache_dir,
                       "compiled-module cache (default ~/.cache/nodata/wasm)");

  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  std::string address_error;
  if (!NormalizeAddress(co.server, 7070, &co.server, &address_error)) {
    std::cerr << "nodata: --server: " << address_error << "\n";
    return kExitUsage;
  }

  auto logger = spdlog::stderr_color_mt("nodata");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  if (serve->parsed()) {
    if (!NormalizeAddress(so.listen, 0, &so.listen, &address_error)) {
      std::cerr << "nodata: --listen: " << address_error << "\n";
      return kExitUsage;
    }
    if (!NormalizeAddress(so.http, 0, &so.http, &address_error)) {
      std::cerr << "nodata: --http: " << address_error << "\n";
      return kExitUsage;
    }
    if (!ParseFsync(fsync, &so.broker)) {
      std::cerr << "nodata: --fsync must be always, never or interval:<ms>; got \"" << fsync
                << "\"\n";
      return kExitUsage;
    }
    if (!ParseDuration(roll_interval, &so.broker.compaction.roll_interval_us)) {
      std::cerr << "nodata: --parquet-roll-interval must be a duration such as 30s, 10m or 1h; "
                   "got \""
                << roll_interval << "\"\n";
      return kExitUsage;
    }
    if (compression == "zstd") {
      so.broker.parquet.codec = parquet::Codec::kZstd;
    } else if (compression == "snappy") {
      so.broker.parquet.codec = parquet::Codec::kSnappy;
    } else if (compression == "none") {
      so.broker.parquet.codec = parquet::Codec::kUncompressed;
    } else {
      std::cerr << "nodata: --parquet-compression must be zstd, snappy or none; got \""
                << compression << "\"\n";
      return kExitUsage;
    }
    absl::Status s = server::RunServer(so);
    if (!s.ok()) {
      spdlog::error("{}", ToStd(s.ToString()));
      return kExitFailed;
    }
    return kExitOk;
  }
  if (inspect->parsed()) {
    return CheckRegularFile(parquet_file) ? ParquetInspect(parquet_file) : kExitFailed;
  }
  if (wasm_inspect->parsed()) {
    return CheckRegularFile(wasm_file) ? WasmInspect(wasm_file) : kExitFailed;
  }
  if (wasm_run->parsed()) return CheckRegularFile(wro.path) ? WasmRun(wro) : kExitFailed;
  if (create->parsed()) return TopicCreate(co, topic_name, partitions, retention, formats);
  if (update->parsed()) return TopicUpdate(co, topic_name, retention, update_partitions);
  if (flush->parsed()) return TopicFlush(co, topic_name);
  if (export_cmd->parsed()) return TopicExport(co, topic_name, eo);
  if (consume->parsed()) return Consume(co, cons);
  if (group_list->parsed()) return GroupList(co, group_topic);
  if (group_get->parsed()) return GroupGet(co, group_name, group_topic);
  if (group_reset->parsed()) {
    return GroupReset(co, group_name, group_topic, reset_to, reset_partitions);
  }
  if (group_delete->parsed()) return GroupDelete(co, group_name, group_topic);
  if (list->parsed()) return TopicList(co);
  if (get->parsed()) return TopicGet(co, topic_name);
  if (del->parsed()) return TopicDelete(co, topic_name);
  if (publish->parsed()) {
    po.data_given = publish_data->count() > 0;
    if (po.file.empty() && po.topic.empty()) {
      std::cerr << "nodata: publish needs --topic (or --file with \"topic\" fields)\n";
      return kExitUsage;
    }
    return Publish(co, po);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace nodata::cli
