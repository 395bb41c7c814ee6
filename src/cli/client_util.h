// Helpers shared by the CLI's client commands: channel, deadlines, error reporting.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "cli/client_commands.h"
#include "nodata/v1/nodata.pb.h"

namespace nodata::cli {

// A channel to `c.server`, with TLS when `c.tls_enabled()` (after LoadClientTls).
std::shared_ptr<grpc::Channel> Connect(const ClientOptions& c);
// Reads the TLS files named in `c` into its *_pem fields. False, with a message that names the
// flag and file, when one cannot be read or a certificate comes without its key.
bool LoadClientTls(ClientOptions* c, std::string* error);
// Checks a server address and fills in the default port: "HOST:PORT", "HOST" (port
// `default_port`), "[IPV6]:PORT", "[IPV6]", or a gRPC target URI (unix:, dns:, ipv4:, ipv6:)
// as given. PORT is 1..65535; without a default port (0, for listen addresses) it is required
// and may be 0 (any free port). On error, a message that names the address.
bool NormalizeAddress(const std::string& address, uint16_t default_port, std::string* out,
                      std::string* error);
// "INVALID_ARGUMENT" and so on.
std::string CodeName(grpc::StatusCode code);
// Print "nodata: ..." on stderr and return the exit code 1.
int Fail(const grpc::Status& s);
int Fail(const std::string& message);
// A positive duration with a unit (ms, s, m, h, d), e.g. "500ms", "10m", "30d", into
// microseconds; false for anything else.
bool ParseDuration(const std::string& value, int64_t* micros);
// "512 B", "1.5 KiB", "3.2 GiB": sizes for people (tables and messages; --json prints bytes).
std::string HumanBytes(uint64_t bytes);
// "earliest" | "latest" | "committed" | "offset:N" | "time:RFC3339" into `out`; an error
// message otherwise.
std::string ParsePosition(const std::string& s, nodata::v1::StartPosition* out);
// `--config STRING|@FILE`: the bytes of FILE, or STRING itself. An error message on failure.
std::string ReadConfigFlag(const std::string& flag, std::string* out);
// A context with a deadline `seconds` from now.
std::unique_ptr<grpc::ClientContext> Context(int seconds = 30);

}  // namespace nodata::cli
