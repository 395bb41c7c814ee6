// The components of a server: their registry (durable in the catalog, module bytes in the data
// directory) and the runners that move records through them. A WebAssembly component consumes
// its input topic as consumer group `component.<name>` through the broker's subscription and
// publishes its outputs through the publish path with ids derived from their input, committing
// the input offsets only once the outputs are acknowledged (docs/formats/component-abi.md,
// "Exactly-once output").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "common/fs.h"
#include "common/worker_pool.h"
#include "components/component_log.h"
#include "wasm/runtime.h"

namespace prometheus {
class Registry;
}

namespace nodata::components {

enum class OnError { kDeadLetter, kSkip, kStop };
const char* OnErrorName(OnError e);  // "dead-letter", "skip", "stop"
std::optional<OnError> OnErrorFromName(std::string_view name);

enum class State { kStarting, kRunning, kFailed, kStopped };
const char* StateName(State s);  // "STARTING", "RUNNING", "FAILED", "STOPPED"

// The hex SHA-256 of module bytes: the name they are stored under in DATA/components/.
std::string Sha256Hex(std::string_view bytes);

// What a component is, as registered.
struct ComponentSpec {
  std::string name;                  // [a-zA-Z0-9._-]{1,200}; the group is component.<name>
  std::string input;                 // the input topic
  std::vector<std::string> outputs;  // output topics, numbered from 0 in this order
  std::string config;                // what the `config` import hands out
  OnError on_error = OnError::kDeadLetter;
  uint64_t fuel_per_record = 100'000'000;
  uint32_t parallelism = 0;          // instances at most (0: one per input partition)
  // A program component: the executable (absolute path) and its arguments. Its input may be
  // empty (a source) or its outputs (a sink); `config` is text.
  std::string exec;
  std::vector<std::string> args;
  // The principal that registered it (or last updated it) and that principal's scopes then,
  // space-separated as `--scope` spells them (server/tokens.h); both empty when registered
  // without authentication. A program component calls the server as this principal
  // (ManagerOptions::program_token).
  std::string owner;
  std::string owner_scopes;

  bool is_program() const { return !exec.empty(); }
};

struct PartitionLag {
  uint32_t partition = 0;
  uint64_t committed = 0;  // the next input offset to process
  uint64_t end = 0;
  uint64_t lag = 0;
};

// A component as GetComponent reports it.
struct ComponentInfo {
  ComponentSpec spec;
  std::string kind = "wasm";  // or "program"
  std::string module_sha256;  // of the module bytes as given
  State state = State::kStarting;
  std::string tier;           // "interpreter" | "native" (of the instances running)
  uint64_t records_in = 0;
  uint64_t records_out = 0;
  uint64_t errors = 0;         // records that failed (whatever the policy did with them)
  uint64_t dead_lettered = 0;
  std::string last_error;
  double mean_fuel_per_record = 0;
  std::vector<PartitionLag> lag;
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
  int pid = 0;            // a program's running process, 0 while none runs
  uint64_t restarts = 0;  // a program's starts after the first, since the server started
};

struct ManagerOptions {
  std::string data_dir;  // module bytes under DATA/components/
  // Loads modules; shared with the aggregations, must outlive the manager.
  wasm::Runtime* runtime = nullptr;
  // Compile modules to native code in the background (tier 1); without, the interpreter.
  bool native = true;
  // Threads that run component batches and the runners' deliveries, acknowledgements and
  // commits, all components together; 0: one per hardware thread, at least 2. A component
  // processes up to this many input partitions at once but one (at least one; fewer with its
  // `parallelism`).
  int threads = 0;
  // Records per batch at most.
  size_t max_batch_records = 1000;
  uint64_t max_event_bytes = 1u << 20;
  // Tests: called on a partition's job just before each batch runs through the module.
  std::function<void(std::string_view component, uint32_t partition)> before_process;
  // The bearer token a program component's calls carry (NODATA_TOKEN), made for its spec's
  // owner each time the program is started anew; unset or empty: none.
  std::function<std::string(const ComponentSpec&)> program_token;
};

// Safe for concurrent use.
class Manager {
 public:
  // Loads every registered component and starts it. `broker` and `registry` must outlive it.
  static absl::StatusOr<std::unique_ptr<Manager>> Open(ManagerOptions options,
                                                       broker::Broker& broker, FileSystem& fs,
                                                       prometheus::Registry& registry);
  ~Manager();  // stops every runner (the group's members leave; offsets stay committed)

  // Registers and starts a WebAssembly component (module bytes given) or a program component
  // (spec.exec given). INVALID_ARGUMENT for a bad name, a module that is not a component, no
  // outputs (WebAssembly) or neither input nor outputs (program), an input that is also an
  // output, an exec that is not an absolute path to an executable file; ALREADY_EXISTS;
  // NOT_FOUND for an input or output topic that does not exist. Programs start once
  // StartPrograms has given them the server's address.
  absl::StatusOr<ComponentInfo> Add(ComponentSpec spec, std::string module_bytes);
  absl::StatusOr<ComponentInfo> Get(std::string_view name);
  std::vector<ComponentInfo> List();
  // Swaps the module at a batch boundary; the position is kept. `config` replaces the
  // configuration when given. A program component takes a new `exec` (with `args`; empty: kept)
  // and is restarted.
  // `owner` (principal name, scopes), when given, becomes the component's.
  absl::StatusOr<ComponentInfo> Update(
      std::string_view name, std::string module_bytes, std::optional<std::string> config,
      std::string exec = {}, std::vector<std::string> args = {},
      std::optional<std::pair<std::string, std::string>> owner = std::nullopt);
  // Moves the component's input position (its group's offsets) and restarts it.
  absl::StatusOr<ComponentInfo> Reset(std::string_view name, const broker::StartSpec& to);
  // Stops the component, forgets it and drops its group's offsets.
  absl::Status Remove(std::string_view name);
  // The component's log; NOT_FOUND when there is no such component.
  absl::StatusOr<std::shared_ptr<ComponentLog>> Log(std::string_view name);

  // Starts the program components (now and as they are added) with NODATA_ADDR=`grpc_address`.
  void StartPrograms(std::string grpc_address);
  // Stops every program (SIGTERM, then SIGKILL after the grace period), all at once.
  void StopPrograms();

  class Impl;

 private:
  explicit Manager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodata::components
