#include "cli/cli.h"

#include <algorithm>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "wasm/native/translate.h"

namespace nodata::cli {
namespace {

int Run(int argc, char** argv, FileSystem* file_system);

}  // namespace

int Main(int argc, char** argv, FileSystem* file_system) {
  try {
    return Run(argc, argv, file_system);
  } catch (const std::exception& e) {
    std::cerr << "nodata: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "nodata: unexpected error\n";
  }
  return kExitFailed;
}

namespace {

int Run(int argc, char** argv, FileSystem* file_system) {
  // The native tier's translator runs as a child process of this binary (not a user command).
  if (argc >= 3 && std::string_view(argv[1]) == "wasm" && std::string_view(argv[2]) == "translate") {
    return wasm::TranslateMain(argc - 2, argv + 2);
  }
  CLI::App app{"nodata: durable event ingest, storage and streaming in one binary", "nodata"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("nodata ") + NODATA_VERSION);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->envname("NODATA_LOG_LEVEL");

  CommandSet commands(app);
  AddServeCommand(commands, file_system);
  AddTopicCommands(commands);
  AddPublishCommand(commands);
  AddConsumeCommand(commands);
  AddGroupCommands(commands);
  AddParquetCommands(commands);
  AddWasmCommands(commands);
  AddComponentCommands(commands);
  AddAggregationCommands(commands);
  AddTokenCommands(commands);

  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_error;
  if (!ApplyServeConfigFile(&args, &config_error)) {
    std::cerr << "nodata: " << config_error << "\n";
    return kExitUsage;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  ClientOptions& co = commands.client();
  std::string address_error;
  if (!NormalizeAddress(co.server, 7070, &co.server, &address_error)) {
    std::cerr << "nodata: --server: " << address_error << "\n";
    return kExitUsage;
  }
  std::string tls_error;
  if (!LoadClientTls(&co, &tls_error)) {
    std::cerr << "nodata: " << tls_error << "\n";
    return kExitUsage;
  }

  auto logger = spdlog::stderr_color_mt("nodata");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  return commands.RunParsed();
}

}  // namespace
}  // namespace nodata::cli
