// Helpers shared by the CLI's client commands: channel, deadlines, error reporting.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "cli/client_commands.h"

namespace nodata::cli {

std::shared_ptr<grpc::Channel> Connect(const ClientOptions& c);
// "INVALID_ARGUMENT" and so on.
std::string CodeName(grpc::StatusCode code);
// Print "nodata: ..." on stderr and return the exit code 1.
int Fail(const grpc::Status& s);
int Fail(const std::string& message);
// A context with a deadline `seconds` from now.
std::unique_ptr<grpc::ClientContext> Context(int seconds = 30);

}  // namespace nodata::cli
