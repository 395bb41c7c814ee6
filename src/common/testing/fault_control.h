// Drives a FaultFs from outside the process: a test build of the server (`nodata-faults`) polls a
// control file that a test writes, applies its commands, and answers in a status file. The
// format is in docs/reliability.md ("Injected faults").
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"

#include "common/testing/fault_fs.h"

namespace nodata::testing {

class FaultControl {
 public:
  // Polls `path` every 20 ms until destroyed; writes `path` + ".status" after every change.
  FaultControl(FaultFs& fs, std::string path);
  ~FaultControl();
  FaultControl(const FaultControl&) = delete;
  FaultControl& operator=(const FaultControl&) = delete;

  // Applies the commands of a control file to `fs`; returns its generation (0 without one).
  // Lines: "generation N", "sync fail|ok", "sync-fail-every N", "write-budget N|off",
  // "disk-full on|off", "rename-fail-from N|off"; blank lines and '#' comments are skipped.
  static absl::Status Apply(FaultFs& fs, std::string_view text, uint64_t* generation);

 private:
  void Run();
  void WriteStatus(uint64_t generation, const std::string& error);

  FaultFs& fs_;
  const std::string path_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace nodata::testing
