// A program component's process: started with the component's environment, its stdout and
// stderr read line by line into the component log, started again with backoff whenever it
// exits, and stopped (SIGTERM, then SIGKILL after a grace period) on remove and shutdown.
//
// The process runs in its own process group, with stdin on /dev/null and no file descriptor of
// the server's but its pipes. It is killed when the server dies (PR_SET_PDEATHSIG), so a server
// that is SIGKILLed leaves no program behind to run twice after its restart.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "components/component_log.h"

namespace nodata::components {

struct ProgramOptions {
  std::string path;  // absolute
  std::vector<std::string> args;
  // The working directory (created by the caller); empty: the server's.
  std::string work_dir;
  // NAME=VALUE pairs set on top of the server's environment.
  std::vector<std::pair<std::string, std::string>> env;
  absl::Duration min_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(30);
  // A process that ran at least this long restarts after min_backoff again.
  absl::Duration healthy_after = absl::Seconds(10);
  absl::Duration stop_grace = absl::Seconds(5);
};

struct ProgramStatus {
  bool running = false;
  int pid = 0;
  uint64_t starts = 0;
  std::string last_exit;  // "exited with status 3", "killed by signal 9", "exec ...: ..."
};

// Safe for concurrent use.
class Program {
 public:
  Program(ProgramOptions options, std::shared_ptr<ComponentLog> log);
  ~Program();  // Stop()

  // Starts the supervising thread (once).
  void Start();
  // Asks the process to stop; Join waits for it. Stop = RequestStop + Join.
  void RequestStop();
  void Join();
  void Stop() {
    RequestStop();
    Join();
  }

  ProgramStatus status();

 private:
  void Supervise();
  // Runs the process once, until it exits; returns how it ended.
  std::string RunOnce();

  const ProgramOptions options_;
  const std::shared_ptr<ComponentLog> log_;
  std::thread thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int pid_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t starts_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_exit_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodata::components
