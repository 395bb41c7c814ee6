#include "cli/command_set.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/cli.h"

namespace nodata::cli {

void CommandSet::AddClientFlags(CLI::App* cmd) {
  cmd->add_option("--server", client_.server, "server address")
      ->envname("NODATA_SERVER")
      ->capture_default_str();
  cmd->add_flag("--json", client_.json, "print JSON");
}

void CommandSet::OnParsed(CLI::App* cmd, std::function<int()> action) {
  actions_.emplace_back(cmd, std::move(action));
}

int CommandSet::RunParsed() {
  // The app requires one subcommand at each level, so at most one command was parsed.
  for (auto& [cmd, action] : actions_) {
    if (cmd->parsed()) return action();
  }
  return kExitUsage;
}

CLI::Option* OnePerFlag(CLI::Option* option) { return option->allow_extra_args(false); }

bool CheckRegularFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    std::cerr << "nodata: cannot read " << path << ": " << std::strerror(errno) << "\n";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    std::cerr << "nodata: " << path << " is "
              << (S_ISDIR(st.st_mode) ? "a directory" : "not a regular file") << "\n";
    return false;
  }
  return true;
}

}  // namespace nodata::cli
