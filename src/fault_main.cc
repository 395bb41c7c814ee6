// nodata-faults: the server for tests that inject storage faults. The same command line as
// `nodata`, with every file the server stores through a FaultFs driven by the control file named
// in NODATA_FAULTS (common/testing/fault_control.h; docs/reliability.md, "Injected faults").
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>

#include "cli/cli.h"
#include "common/testing/fault_control.h"
#include "common/testing/fault_fs.h"

int main(int argc, char** argv) {
  const char* control = std::getenv("NODATA_FAULTS");
  if (control == nullptr || *control == '\0') {
    std::cerr << "nodata-faults: set NODATA_FAULTS to the path of a fault control file\n";
    return nodata::cli::kExitUsage;
  }
  nodata::testing::FaultFs fs;
  // Only the server is driven: the child processes it starts from this binary (the WebAssembly
  // translator) leave the control file to it.
  std::optional<nodata::testing::FaultControl> driver;
  if (argc >= 2 && std::string_view(argv[1]) == "serve") driver.emplace(fs, control);
  return nodata::cli::Main(argc, argv, &fs);
}
