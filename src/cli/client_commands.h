// Client commands of the CLI: each talks to a running server over gRPC.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nodata::cli {

struct ClientOptions {
  std::string server = "127.0.0.1:7070";
  bool json = false;
  // TLS (--tls, or any of the files): the CA file that signed the server's certificate (empty:
  // the system's CAs), and a client certificate and key for a server that wants one.
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;  // the name to check in the server's certificate (empty: host)
  std::string token;            // bearer token for a server with --auth tokens (empty: none)
  // The files' PEM text, read by LoadClientTls.
  std::string tls_ca_pem;
  std::string tls_cert_pem;
  std::string tls_key_pem;
  bool tls_enabled() const {
    return tls || !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty();
  }
};

// Retention flags of topic create/update: unset leaves the value alone (create: server default).
struct RetentionFlags {
  std::optional<int64_t> ms;
  std::optional<int64_t> bytes;
};

// Declared formats of topic create: bytes | string | json.
struct FormatFlags {
  std::string key = "bytes";
  std::string data = "bytes";
};

int TopicCreate(const ClientOptions& c, const std::string& name, uint32_t partitions,
                const RetentionFlags& retention, const FormatFlags& formats = {});
// `partitions`: grow the topic to this many (keys move to other partitions: said on stderr).
int TopicUpdate(const ClientOptions& c, const std::string& name, const RetentionFlags& retention,
                std::optional<uint32_t> partitions);
int TopicFlush(const ClientOptions& c, const std::string& name);

struct ExportOptions {
  std::string format = "jsonl";  // jsonl | parquet
  // A file (Parquet: one file with a partition column), or for Parquet an existing directory
  // or a path ending in '/': partition=<p>/ files in it.
  std::string out;
  std::vector<uint32_t> partitions;
  uint64_t from = 0;
};
// Writes a snapshot of a topic's records (both tiers) read over gRPC.
int TopicExport(const ClientOptions& c, const std::string& name, const ExportOptions& e);
int TopicList(const ClientOptions& c);
int TopicGet(const ClientOptions& c, const std::string& name);
int TopicDelete(const ClientOptions& c, const std::string& name);

struct PublishOptions {
  std::string topic;
  std::string key;
  std::string id;
  std::vector<std::string> headers;  // "k=v"
  std::string data;
  bool data_given = false;  // DATA was on the command line (else it comes from stdin)
  std::string file;         // JSONL, "-" for stdin; replaces data
  uint32_t batch = 1000;
  uint64_t max_line_bytes = 16u << 20;  // longest JSONL line (or stdin data) accepted
};
int Publish(const ClientOptions& c, const PublishOptions& p);

struct ConsumeOptions {
  std::string topic;
  std::string group;
  std::string consumer_id;
  std::string from;  // earliest | latest | committed | offset:N | time:RFC3339; empty: default
  std::vector<uint32_t> partitions;
  std::string format = "json";  // json | raw
  uint64_t count = 0;           // stop after this many records; 0: run until interrupted
  bool until_end = false;       // stop once each partition read reached its end at the start
  uint32_t max_batch = 0;
  bool commit = true;  // with a group: commit after each printed batch
};
// Prints records of a topic as they come; with a group, as a member of it.
int Consume(const ClientOptions& c, const ConsumeOptions& o);
int GroupList(const ClientOptions& c, const std::string& topic);
int GroupGet(const ClientOptions& c, const std::string& group, const std::string& topic);
int GroupReset(const ClientOptions& c, const std::string& group, const std::string& topic,
               const std::string& to, const std::vector<uint32_t>& partitions);
// Deletes a group's committed offsets on a topic (no live members).
int GroupDelete(const ClientOptions& c, const std::string& group, const std::string& topic);

}  // namespace nodata::cli
