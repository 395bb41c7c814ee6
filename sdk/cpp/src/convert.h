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

// A channel that reconnects quickly (the SDK does its own backoff between attempts).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_backoff_ms);

// 32 random hex digits, for ids unique across processes.
std::string RandomHex128();

}  // namespace nodata::client::internal

#endif  // NODATA_CLIENT_SRC_CONVERT_H_
