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
  cmd->add_flag("--tls", client_.tls, "connect with TLS, checked against the system's CAs")
      ->envname("NODATA_TLS");
  cmd->add_option("--tls-ca", client_.tls_ca,
                  "connect with TLS, checked against this CA file (PEM)")
      ->envname("NODATA_TLS_CA");
  cmd->add_option("--tls-cert", client_.tls_cert,
                  "client certificate file (PEM), for a server started with --tls-client-ca")
      ->envname("NODATA_TLS_CERT");
  cmd->add_option("--tls-key", client_.tls_key, "the client certificate's private key (PEM)")
      ->envname("NODATA_TLS_KEY");
  cmd->add_option("--token", client_.token,
                  "bearer token for a server started with --auth tokens (nodata token create)")
      ->envname("NODATA_TOKEN");
  cmd->add_option("--tls-server-name", client_.tls_server_name,
                  "name to check in the server's certificate (default: the --server host)")
      ->envname("NODATA_TLS_SERVER_NAME");
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
