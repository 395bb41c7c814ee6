// Mapping between the SDK's plain structs and the generated nodata.v1 protobuf types.
#ifndef NODATA_CLIENT_SRC_CONVERT_H_
#define NODATA_CLIENT_SRC_CONVERT_H_

#include <chrono>
#include <cstddef>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "nodata/client.h"
#include "nodata/v1/nodata.pb.h"

namespace nodata::client::internal {

// Moves `in` into `out` (the strings are moved, not copied).
void ToProto(Event&& in, nodata::v1::Event& out);
Ack FromProto(const nodata::v1::Ack& in);
Record FromProto(nodata::v1::Record&& in);
void ToProto(const StartPosition& in, nodata::v1::StartPosition& out);

// Bytes of the event's payload fields, an estimate of its size on the wire.
size_t EventBytes(const Event& e);

absl::Status FromGrpc(const grpc::Status& s);

// UNAVAILABLE, DEADLINE_EXCEEDED and (server-side) CANCELLED: the request may be sent again.
bool IsRetryable(absl::StatusCode code);

// A channel that reconnects quickly (the SDK does its own backoff between attempts), with TLS
// when `tls.enabled`.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_backoff_ms,
                                           const TlsOptions& tls, const std::string& token);

// Waits up to `slice` (or until `until`, if sooner) for the channel to connect, and drives the
// attempt meanwhile: the synchronous API polls a connection only from a call that waits on it,
// so a client backing off between calls would otherwise leave a handshake (TLS takes several
// round trips) to gRPC's backup poller, every 5 s. True when the channel is ready.
bool DriveConnection(grpc::Channel& channel, std::chrono::steady_clock::time_point until,
                     std::chrono::milliseconds slice = std::chrono::milliseconds(200));

// 32 random hex digits, for ids unique across processes.
std::string RandomHex128();

}  // namespace nodata::client::internal

#endif  // NODATA_CLIENT_SRC_CONVERT_H_
