// The `nodata` command line: `serve` runs the server; the other commands are clients of one.
#pragma once

namespace nodata::cli {

// Parses the arguments, runs the command and returns the process exit code.
int Main(int argc, char** argv);

}  // namespace nodata::cli
