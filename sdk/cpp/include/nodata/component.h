// nodata program components: sources, sinks and transforms as ordinary executables that the
// server starts and supervises (`nodata component add NAME --exec PATH ...`).
//
// The server passes a component its place through the environment (ComponentEnv): the gRPC
// address, the component's name, its input and output topics and its configuration. A program
// implements one of the three interfaces below and hands it to RunComponent, which reads that
// environment, consumes as consumer group `component.<name>`, publishes, commits, stops cleanly
// on SIGTERM or SIGINT and returns the process exit code:
//
//   class Upper : public nodata::component::Transform {
//     absl::Status Process(const nodata::client::Record& in, Emitter& out) override {
//       nodata::client::Event e = in.event;
//       for (char& c : e.data) c = std::toupper(static_cast<unsigned char>(c));
//       return out.Emit(0, std::move(e));
//     }
//   };
//   int main() { Upper t; return nodata::component::RunComponent(t); }
#ifndef NODATA_COMPONENT_H_
#define NODATA_COMPONENT_H_

#include <chrono>
#include <cstddef>
#include <future>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nodata/client.h"

namespace nodata::component {

// What the server tells a program component, from these environment variables:
//   NODATA_ADDR       host:port of the gRPC listener (required)
//   NODATA_COMPONENT  the component's name (required)
//   NODATA_INPUTS     comma-separated input topics (empty or unset for a source)
//   NODATA_OUTPUTS    comma-separated output topics (empty or unset for a sink)
//   NODATA_CONFIG     the component's configuration text (unset: empty)
struct ComponentEnv {
  std::string address;
  std::string name;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::string config;
  // NODATA_TOKEN: the bearer token the server gave the program (with --auth tokens), carried
  // by every call; empty without.
  std::string token;

  // INVALID_ARGUMENT naming the variable when a required one is missing or empty, or a topic
  // list has an empty item ("a,,b").
  static absl::StatusOr<ComponentEnv> FromEnvironment();
};

// Collects a transform's outputs for the input record being processed. Not thread-safe; valid
// only during the Process call it is passed to.
class Emitter {
 public:
  virtual ~Emitter() = default;
  // Adds an output for output topic number `output` (0-based, in NODATA_OUTPUTS order). The
  // event's topic and id are set by the runtime; an unset timestamp becomes the input record's.
  // INVALID_ARGUMENT when there is no such output.
  virtual absl::Status Emit(size_t output, client::Event event) = 0;
};

// Turns each input record into zero or more outputs, exactly once: output number i of the
// record at (partition, offset) is published with id `<name>:<partition>:<offset>:<i>`, so a
// record processed again after a crash yields duplicates the server drops; input offsets are
// committed only once every output of the records before them is acknowledged. Outputs are
// published in input order per input partition. Called from one thread.
class Transform {
 public:
  virtual ~Transform() = default;
  // Once, before the first record. An error ends the run.
  virtual absl::Status Open(const ComponentEnv& /*env*/) { return absl::OkStatus(); }
  // An error ends the run (exit code 1): the record's outputs are dropped, and it and the
  // records after it are not committed, so the restarted program sees it again.
  virtual absl::Status Process(const client::Record& in, Emitter& out) = 0;
};

// Writes records somewhere outside nodata. A batch's offsets are committed after Write returns
// OK, so delivery is at-least-once: after a crash between a Write and its commit the batch is
// written again. Records carry (partition, offset), which a sink can use to write idempotently.
// Called from one thread.
class Sink {
 public:
  virtual ~Sink() = default;
  // Once, before the first batch. An error ends the run.
  virtual absl::Status Open(const ComponentEnv& /*env*/) { return absl::OkStatus(); }
  // Records of one or more partitions, in offset order per partition. An error ends the run
  // (exit code 1) without committing the batch.
  virtual absl::Status Write(const std::vector<client::Record>& batch) = 0;
};

// What a running Source uses. Publish, Flush and stopping are safe for concurrent use.
class SourceContext {
 public:
  virtual ~SourceContext() = default;
  // Publishes `event` to output topic number `output` (its topic is set here). Give events
  // deterministic ids (derived from the data's position upstream) so a restarted source's
  // re-publications are dropped as duplicates; an empty id gets a random one.
  // INVALID_ARGUMENT (in the future) when there is no such output. A failed publish also makes
  // RunComponent return 1 once Run returns.
  virtual std::future<absl::StatusOr<client::Ack>> Publish(size_t output, client::Event event) = 0;
  // Returns once every event published so far is acknowledged or failed.
  virtual void Flush() = 0;
  // True once SIGTERM or SIGINT arrived: Run should return soon (the server sends SIGKILL after
  // a grace period).
  virtual bool stopping() const = 0;
  // Waits until stopping() or `timeout` passed; returns stopping().
  virtual bool WaitForStop(std::chrono::milliseconds timeout) = 0;
  virtual const ComponentEnv& env() const = 0;
  const std::string& config() const { return env().config; }
};

// Produces records. Run returns when stopping() (OK: exit code 0) or on an error (exit code
// 1); everything published is flushed before the program exits.
class Source {
 public:
  virtual ~Source() = default;
  virtual absl::Status Run(SourceContext& ctx) = 0;
};

// Runs a component from the environment until SIGTERM or SIGINT (then 0) or an error (then 1,
// with one line per error on stderr, which the server keeps in the component's log). A
// transform needs one input and at least one output, a sink one input, a source at least one
// output. Call once, from main; it installs SIGTERM and SIGINT handlers for its duration.
int RunComponent(Transform& transform);
int RunComponent(Sink& sink);
int RunComponent(Source& source);

}  // namespace nodata::component

#endif  // NODATA_COMPONENT_H_
