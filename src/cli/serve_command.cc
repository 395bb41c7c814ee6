// nodata serve: the server's flags (also from the environment and a config file) and its start.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "common/strings.h"
#include "server/server.h"
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


// Adds a flag that can also come from the environment (NODATA_<NAME>) and the config file.
template <typename T>
CLI::Option* Flag(CLI::App* app, const std::string& name, T& value, const std::string& help) {
  std::string env = "NODATA_";
  for (char c : name) env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return app->add_option("--" + name, value, help)->envname(env)->capture_default_str();
}

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

}  // namespace

// Serve flags not read from the environment (see AddServeCommand).
const std::set<std::string> kNoEnvironment = {"tls-cert", "tls-key", "tls-client-ca",
                                              "insecure"};

// Precedence: command line, then environment, then config file, then defaults. The config
// file's settings become command-line arguments for the flags given neither way.
bool ApplyServeConfigFile(std::vector<std::string>* args, std::string* error) {
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
    if (!kNoEnvironment.contains(name) && std::getenv(env.c_str()) != nullptr) continue;
    // One argument, so that a flag (insecure = true) takes its value as well as an option.
    out.push_back("--" + name + "=" + value);
  }
  out.insert(out.end(), rest.begin(), rest.end());
  *args = std::move(out);
  return true;
}

void AddServeCommand(CommandSet& set, FileSystem* file_system) {
  server::ServerOptions& so = set.Keep<server::ServerOptions>();
  so.file_system = file_system;
  so.broker.data_dir = "./nodata-data";
  std::string& fsync = set.Keep<std::string>();
  fsync = "always";
  CLI::App* serve = set.app().add_subcommand("serve", "run the server");
  std::string& config_file = set.Keep<std::string>();
  serve->add_option("--config", config_file,
                    "config file of `name = value` lines naming these flags");
  Flag(serve, "listen", so.listen, "gRPC listen address");
  Flag(serve, "http", so.http, "HTTP listen address (/metrics, /healthz, /v1/aggregations)");
  Flag(serve, "kafka", so.kafka,
       "Kafka protocol listen address (empty: none); Kafka clients produce and fetch here");
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
  Flag(serve, "dedupe-checkpoint-ms", so.broker.dedupe_checkpoint_ms,
       "how often a topic's remembered ids are checkpointed (once 16384 are new), so that a "
       "restart reads only the ids after the checkpoint from the log; 0: never")
      ->check(CLI::Range(int64_t{0}, int64_t{24} * 3600 * 1000));
  Flag(serve, "segment-bytes", so.broker.log.segment_bytes, "segment size before a roll")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 31));
  Flag(serve, "segment-ms", so.broker.log.segment_ms, "segment age before a roll");
  Flag(serve, "sync-threads", so.broker.sync_threads, "threads running fdatasync")
      ->check(CLI::Range(1, 64));
  Flag(serve, "journal", so.broker.journal,
       "with --fsync always: acknowledge appends by one fdatasync of a shared journal, over all "
       "partitions, and sync segments behind it (off: one fdatasync per partition)");
  Flag(serve, "journal-file-bytes", so.broker.journal_file_bytes,
       "journal file size before a checkpoint syncs the partitions it covers and deletes it")
      ->check(CLI::Range(uint64_t{1} << 16, uint64_t{1} << 32));
  Flag(serve, "journal-checkpoint-ms", so.broker.journal_checkpoint_ms,
       "longest time between journal checkpoints while anything is journaled")
      ->check(CLI::Range(int64_t{10}, int64_t{24} * 3600 * 1000));
  Flag(serve, "max-open-files", so.broker.max_open_files,
       "segment files kept open over all partitions, least recently used closed first "
       "(0: half the process's open-file limit)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30));
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
  std::string& roll_interval = set.Keep<std::string>();
  roll_interval = "10m";
  Flag(serve, "parquet-roll-interval", roll_interval,
       "longest wait of a record in the hot tier before compaction (e.g. 30s, 10m, 1h)");
  std::string& compression = set.Keep<std::string>();
  compression = "zstd";
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
  // The server's TLS files come from flags or the config file, not the environment: NODATA_TLS_*
  // are the clients' variables (a shell set up for the CLI must not hand its client certificate
  // to a server started from it).
  serve->add_option("--tls-cert", so.tls.cert,
                    "TLS on both listeners: the server's certificate file (PEM, intermediates "
                    "after it); reloaded on SIGHUP");
  serve->add_option("--tls-key", so.tls.key, "the certificate's private key file (PEM)");
  serve->add_option("--tls-client-ca", so.tls.client_ca,
                    "require client certificates signed by these CAs (PEM file; mTLS; HTTP "
                    "/healthz stays open)");
  Flag(serve, "auth", so.auth,
       "none: every caller may do everything (loopback only, unless --insecure); tokens: every "
       "call carries a bearer token with scopes (nodata token create)");
  Flag(serve, "metrics-auth", so.metrics_auth,
       "with --auth tokens, GET /metrics wants a token (tokens) or is open (none)");
  serve->add_flag("--insecure", so.insecure,
                  "serve on an address other machines reach without TLS and client "
                  "certificates");
  Flag(serve, "jwt-key", so.jwt.key_files,
       "with --auth tokens, also take JWTs signed with this PEM public key (RSA: RS256/384/512, "
       "EC: ES256/384/512); repeatable");
  Flag(serve, "jwt-issuer", so.jwt.issuer, "a JWT's iss must be this");
  Flag(serve, "jwt-audience", so.jwt.audience, "a JWT's aud must be or include this");
  Flag(serve, "jwt-scope-claim", so.jwt.scope_claim,
       "the claim holding a JWT's nodata scopes (a space-separated string or an array)");
  Flag(serve, "audit-log", so.audit_log,
       "JSON lines of admin actions and refusals: a file, or none (default: DATA/audit.log "
       "with --auth tokens, none without)");
  Flag(serve, "quota-publish-bytes", so.quotas.publish_bytes_per_second,
       "bytes of events each principal may publish per second, bursts of a second's worth "
       "(0: unlimited); a publish stream over it waits, a single publish gets "
       "RESOURCE_EXHAUSTED with a retry delay")
      ->check(CLI::Range(0.0, 1e15));
  Flag(serve, "quota-requests", so.quotas.requests_per_second,
       "requests each principal may make per second (each batch of a publish stream counts; "
       "0: unlimited)")
      ->check(CLI::Range(0.0, 1e12));
  Flag(serve, "quota-streams", so.quotas.streams,
       "streams (subscriptions, publish streams, reads) each principal may have open "
       "(0: unlimited)")
      ->check(CLI::Range(0, 1 << 30));
  Flag(serve, "max-streams-per-connection", so.max_streams_per_connection,
       "calls one connection may have open at once")
      ->check(CLI::Range(1, 1 << 30));
  Flag(serve, "state-cache-bytes", so.state_cache_bytes,
       "memory for the aggregations' state, all together (the rest stays on disk)")
      ->check(CLI::Range(uint64_t{1} << 16, uint64_t{1} << 44));

  set.OnParsed(serve, [&so, &fsync, &roll_interval, &compression] {
    std::string address_error;
    if (!NormalizeAddress(so.listen, 0, &so.listen, &address_error)) {
      std::cerr << "nodata: --listen: " << address_error << "\n";
      return kExitUsage;
    }
    if (!NormalizeAddress(so.http, 0, &so.http, &address_error)) {
      std::cerr << "nodata: --http: " << address_error << "\n";
      return kExitUsage;
    }
    if (!so.kafka.empty() && !NormalizeAddress(so.kafka, 0, &so.kafka, &address_error)) {
      std::cerr << "nodata: --kafka: " << address_error << "\n";
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
  });
}

}  // namespace nodata::cli
