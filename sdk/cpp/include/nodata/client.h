// nodata C++ client SDK: publish events to and consume records from a nodata server.
//
// Two classes: `Publisher` (batched, pipelined, retried publishing over IngestService.PublishStream)
// and `Consumer` (a poll loop over ConsumeService.Subscribe, with or without a consumer group).
// Events, acks and records are plain structs: nothing here exposes generated protobuf types.
// Errors are `absl::Status` values with canonical gRPC codes; no exception leaves the SDK.
//
//   nodata::client::Publisher pub({.address = "127.0.0.1:7070"});
//   auto ack = pub.Publish({.topic = "orders", .data = "{\"total\": 12}"}).get();
//   if (!ack.ok()) { ... ack.status() ... } else { ... ack->partition, ack->offset ... }
#ifndef NODATA_CLIENT_H_
#define NODATA_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodata::client {

// One event to publish. `id` is the dedupe key: when empty, the Publisher assigns a unique id
// before the first attempt, so a retried batch is recognised by the server as a duplicate.
struct Event {
  std::string topic;
  std::string id;
  std::string key;   // chooses the partition; empty: the id does
  std::string data;  // opaque bytes
  // Event time; unset: the server uses the ingest time.
  std::optional<std::chrono::system_clock::time_point> timestamp;
  std::map<std::string, std::string> headers;
};

// Where an event is stored. `duplicate` is true when the (topic, id) was already stored (for
// example by an earlier attempt whose answer was lost): partition and offset are the original's.
struct Ack {
  std::string topic;
  std::string id;
  uint32_t partition = 0;
  uint64_t offset = 0;
  bool duplicate = false;
};

// A stored event and its place in the topic.
struct Record {
  Event event;
  uint32_t partition = 0;
  uint64_t offset = 0;
  std::chrono::system_clock::time_point ingest_time;
};

// Retry policy shared by Publisher and Consumer: exponential backoff from `initial_backoff_ms`,
// doubling up to `max_backoff_ms`, reset after a success.
struct Backoff {
  int initial_backoff_ms = 100;
  int max_backoff_ms = 5000;
};

// TLS to a server started with --tls-cert (and, for client certificates, --tls-client-ca). The
// PEM text itself: FromFiles and FromEnvironment read it, so that a missing file is an error
// where the options are made, not a connection that never comes up.
struct TlsOptions {
  bool enabled = false;
  std::string ca_pem;       // the CA(s) of the server's certificate; empty: the system's CAs
  std::string cert_pem;     // a client certificate (chain), with
  std::string key_pem;      // its private key
  std::string server_name;  // the name checked in the server's certificate; empty: the host

  // TLS with these files' contents; an empty path leaves that part unset. INVALID_ARGUMENT
  // naming the file when one cannot be read or holds no PEM block, or a certificate comes
  // without its key.
  static absl::StatusOr<TlsOptions> FromFiles(const std::string& ca_file,
                                              const std::string& cert_file = "",
                                              const std::string& key_file = "");
  // What the CLI reads: NODATA_TLS_CA, NODATA_TLS_CERT, NODATA_TLS_KEY (files),
  // NODATA_TLS_SERVER_NAME and NODATA_TLS (1 or true: TLS with the system's CAs). Disabled when
  // none of them is set.
  static absl::StatusOr<TlsOptions> FromEnvironment();
};

struct PublisherOptions {
  std::string address = "127.0.0.1:7070";  // host:port of the gRPC listener
  TlsOptions tls;                           // plaintext unless tls.enabled
  std::string token;  // bearer token for a server with --auth tokens (NODATA_TOKEN for the CLI)
  size_t max_batch_events = 1000;           // a batch is sent once it has this many events,
  size_t max_batch_bytes = 1 << 20;         // or this many bytes (an event larger goes alone),
  int linger_ms = 5;                        // or its first event waited this long.
  int max_inflight_batches = 8;             // batches sent and not yet answered, per stream
  size_t max_buffered_events = 100000;      // Publish() blocks while this many are unresolved
  // How often one batch is sent again after a retryable failure (see below) before its events
  // fail with the last status. -1: no limit.
  int max_retries = 10;
  Backoff backoff;
  int request_timeout_ms = 30000;  // a sent batch unanswered for this long is sent again
};

// Publishes events in batches over one pipelined PublishStream: up to max_inflight_batches
// batches are on the wire at once and acks resolve asynchronously, in publish order per stream.
//
// Delivery: a batch failing with UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED (by the server, as at
// the end of its shutdown grace period), a dropped connection or no answer is sent again with backoff (same ids, so the server dedupes; an ack with duplicate=true is a
// success). Other errors (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ...) fail the events of
// the batch that caused them with that status; batches pipelined behind it are sent again.
//
// Safe for concurrent use. One background thread sends and reconnects, one reads acks; callbacks
// and future continuations run on them, so they must be quick and must not call Flush or Close.
class Publisher {
 public:
  using Callback = std::function<void(absl::StatusOr<Ack>)>;

  // Connects lazily: a bad or unreachable address shows in the results of the first batch.
  explicit Publisher(PublisherOptions options);
  // Close().
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Queues `event`; the future resolves with its Ack or the error that ended its retries.
  // Blocks while max_buffered_events are unresolved. After Close: FAILED_PRECONDITION.
  std::future<absl::StatusOr<Ack>> Publish(Event event);
  // The same with a callback, run once on an SDK thread (or inline after Close).
  void Publish(Event event, Callback done);

  // Sends every queued event now and returns once each event published before the call is
  // resolved (acked or failed).
  void Flush();
  // Flush(), then stops the threads and closes the stream. Idempotent.
  void Close();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a Consumer starts reading each partition (with a group: partitions the group has no
// committed offset for).
struct StartPosition {
  enum class Kind { kDefault, kEarliest, kLatest, kCommitted, kOffset, kTime };
  Kind kind = Kind::kDefault;  // default: committed with a group, earliest without
  uint64_t offset = 0;         // kOffset: this offset in every partition
  std::chrono::system_clock::time_point time;  // kTime: first record ingested at or after it

  static StartPosition Earliest() { return Of(Kind::kEarliest); }
  static StartPosition Latest() { return Of(Kind::kLatest); }
  static StartPosition Committed() { return Of(Kind::kCommitted); }
  static StartPosition Offset(uint64_t o) {
    StartPosition p = Of(Kind::kOffset);
    p.offset = o;
    return p;
  }
  static StartPosition Time(std::chrono::system_clock::time_point t) {
    StartPosition p = Of(Kind::kTime);
    p.time = t;
    return p;
  }

 private:
  static StartPosition Of(Kind k) {
    StartPosition p;
    p.kind = k;
    return p;
  }
};

struct ConsumerOptions {
  std::string address = "127.0.0.1:7070";
  TlsOptions tls;  // plaintext unless tls.enabled
  std::string token;  // bearer token for a server with --auth tokens
  std::string topic;
  // Empty: no group; the consumer reads `partitions` (empty: all) on its own.
  std::string group;
  // A group member's id; a newer subscription with the same id replaces an older one. Empty: a
  // random id chosen once per Consumer (so a reconnect replaces its own stale membership).
  std::string consumer_id;
  std::vector<uint32_t> partitions;  // only without a group
  StartPosition start;
  uint32_t max_batch = 1000;  // records per Poll() (and per server message)
  // With a group: the server commits each batch's offsets as it sends it (at-most-once for
  // records in flight when the consumer dies). Without: call Commit().
  bool auto_commit = false;
  size_t max_buffered_records = 10000;  // read ahead; beyond it the server is flow-controlled
  Backoff backoff;                      // between reconnects after UNAVAILABLE
  int commit_timeout_ms = 10000;
  // Called from Poll(), on the polling thread, before the records of a new group assignment.
  std::function<void(const std::vector<uint32_t>& partitions, uint64_t generation)> on_assignment;
};

// Reads a topic: the application calls Poll() in a loop; records come in partition-offset order.
//
// A background thread holds the Subscribe stream and reads ahead. When the stream breaks with
// UNAVAILABLE, CANCELLED or DEADLINE_EXCEEDED (server restart, dropped connection) it reconnects
// with backoff: in a group, the server resumes from the committed offsets and the Consumer drops
// records it already returned; without a group it resumes each partition after the last record
// returned (a partition nothing was returned from yet restarts at `start`). Delivery is
// at-least-once across consumers.
//
// Poll, Commit and Close may be called from different threads; Poll from one thread at a time.
class Consumer {
 public:
  // Connects lazily, in the background; errors surface from Poll().
  explicit Consumer(ConsumerOptions options);
  ~Consumer();  // Close()
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Waits up to `timeout` for records and returns up to max_batch of them (empty on timeout).
  // An error is final: the subscription failed with a non-retryable status (NOT_FOUND,
  // INVALID_ARGUMENT, OUT_OF_RANGE, ABORTED, ...) or the Consumer was closed (CANCELLED).
  absl::StatusOr<std::vector<Record>> Poll(std::chrono::milliseconds timeout);

  // Commits, for each partition of the current assignment, the offset after the last record
  // Poll returned from it. Needs a group (FAILED_PRECONDITION without). Durable once OK.
  absl::Status Commit();
  // Commits `next_offset` (the next offset to read) for one partition.
  absl::Status Commit(uint32_t partition, uint64_t next_offset);

  // Partitions of the current assignment (seen by Poll); without a group, those read so far.
  std::vector<uint32_t> Assignment() const;

  // Ends the subscription and stops the thread; does not commit. Idempotent.
  void Close();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodata::client

#endif  // NODATA_CLIENT_H_
