// The `nodata` command line: `serve` runs the server; the other commands are clients of one.
#pragma once

namespace nodata {
class FileSystem;
}

namespace nodata::cli {

// Exit codes of every command (documented in the README).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the command ran and failed: server error, I/O, bad data
inline constexpr int kExitUsage = 2;   // the command line is wrong: unknown flag, bad value
inline constexpr int kExitTrap = 3;    // `wasm run` trapped; `component test`: a record failed

// Parses the arguments, runs the command and returns the process exit code. No exception
// escapes: one that reaches here is printed and ends the command with kExitFailed.
// `file_system`: what `serve` stores its data through; null: the POSIX one (a test build of the
// server passes one that injects faults).
int Main(int argc, char** argv, FileSystem* file_system = nullptr);

}  // namespace nodata::cli
