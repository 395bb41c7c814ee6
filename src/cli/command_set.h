// How the command groups join the command line: each group's registration function adds its
// subcommands and flags and says what runs when one of them was parsed.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/client_commands.h"
#include "common/fs.h"

namespace nodata::cli {

// The command line being built for one run of `Main`: the CLI11 app, the client flags every
// client command shares, the values the flags write into and the action of each command. Not
// thread-safe.
class CommandSet {
 public:
  explicit CommandSet(CLI::App& app) : app_(app) {}
  CommandSet(const CommandSet&) = delete;
  CommandSet& operator=(const CommandSet&) = delete;

  CLI::App& app() { return app_; }
  // --server, --json and the TLS flags, shared by every client command.
  ClientOptions& client() { return client_; }
  // Adds --server, --json and the TLS flags to a client command.
  void AddClientFlags(CLI::App* cmd);
  // A value for flags to write into, alive as long as the set.
  template <typename T>
  T& Keep() {
    auto kept = std::make_unique<Kept<T>>();
    T& value = kept->value;
    kept_.push_back(std::move(kept));
    return value;
  }
  // `action` runs, and returns the exit code, when `cmd` is the command parsed.
  void OnParsed(CLI::App* cmd, std::function<int()> action);
  // Runs the parsed command's action; kExitUsage when no command with an action was parsed.
  int RunParsed();

 private:
  struct KeptBase {
    virtual ~KeptBase() = default;
  };
  template <typename T>
  struct Kept : KeptBase {
    T value{};
  };

  CLI::App& app_;
  ClientOptions client_;
  std::vector<std::unique_ptr<KeptBase>> kept_;
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions_;
};

// A repeatable option takes one value per occurrence (`--header a=1 --header b=2`), so that a
// positional argument after it is never read as one more value.
CLI::Option* OnePerFlag(CLI::Option* option);

// Local commands read whole files: a directory, a fifo or a device is refused up front (reading
// one would fail midway or wait forever). Prints why on stderr.
bool CheckRegularFile(const std::string& path);

// The command groups, in the order `nodata --help` lists them; each is defined beside its code.
void AddServeCommand(CommandSet& set, FileSystem* file_system);  // serve_command.cc
void AddTopicCommands(CommandSet& set);                    // client_commands.cc
void AddTopicExportCommand(CommandSet& set, CLI::App* topic);  // export_command.cc
void AddPublishCommand(CommandSet& set);                   // publish_command.cc
void AddConsumeCommand(CommandSet& set);                   // consume_commands.cc
void AddGroupCommands(CommandSet& set);                    // consume_commands.cc
void AddParquetCommands(CommandSet& set);                  // parquet_commands.cc
void AddWasmCommands(CommandSet& set);                     // wasm_commands.cc
void AddComponentCommands(CommandSet& set);                // component_commands.cc
void AddAggregationCommands(CommandSet& set);              // aggregation_commands.cc
void AddTokenCommands(CommandSet& set);                    // token_commands.cc

// `serve --config FILE`: the config file's settings become command-line arguments of `serve`
// for the flags given neither on the command line nor in the environment. False, with the
// reason in `error`, when the file cannot be read.
bool ApplyServeConfigFile(std::vector<std::string>* args, std::string* error);

}  // namespace nodata::cli
