// Conversions shared by the gRPC services (and the CLI): statuses, timestamps, stored records,
// data formats.
#pragma once

#include <google/protobuf/any.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "common/data_format.h"
#include "common/ids.h"
#include "common/strings.h"
#include "common/record.h"
#include "nodata/v1/nodata.pb.h"

namespace nodata::server {

// google.rpc.Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details
// = 3; } of `s`, its payloads the details: what gRPC carries as grpc-status-details-bin.
inline std::string StatusDetails(const absl::Status& s) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteTag((1 << 3) | 0);
    coded.WriteVarint32SignExtended(static_cast<int32_t>(s.code()));
    const std::string message(ToStd(s.message()));
    coded.WriteTag((2 << 3) | 2);
    coded.WriteVarint32(static_cast<uint32_t>(message.size()));
    coded.WriteString(message);
    s.ForEachPayload([&coded](absl::string_view type_url, const absl::Cord& payload) {
      google::protobuf::Any any;
      any.set_type_url(std::string(type_url));
      any.set_value(std::string(payload));
      const std::string bytes = any.SerializeAsString();
      coded.WriteTag((3 << 3) | 2);
      coded.WriteVarint32(static_cast<uint32_t>(bytes.size()));
      coded.WriteString(bytes);
    });
  }
  return out;
}

// The gRPC status of `s`; its payloads (a retry delay, quotas.h) go in the status details.
inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  std::string message(ToStd(s.message()));
  bool payloads = false;
  s.ForEachPayload([&payloads](absl::string_view, const absl::Cord&) { payloads = true; });
  if (!payloads) return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::move(message));
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::move(message),
                      StatusDetails(s));
}

// Finishes `reactor` with `checked` and returns true when it is not OK (a refusal).
inline bool Refuse(grpc::ServerUnaryReactor* reactor, const absl::Status& checked) {
  if (checked.ok()) return false;
  reactor->Finish(ToGrpc(checked));
  return true;
}

// A streaming reactor that only finishes: the status is the answer.
template <typename Response>
class FinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(grpc::Status s) { this->Finish(std::move(s)); }
  void OnDone() override { delete this; }
};
template <typename Request, typename Response>
class FinishedBidi final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit FinishedBidi(grpc::Status s) { this->Finish(std::move(s)); }
  void OnDone() override { delete this; }
};

inline void SetTimestamp(int64_t micros, google::protobuf::Timestamp* ts) {
  int64_t seconds = micros / 1000000;
  int64_t rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    --seconds;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(rem * 1000));
}

// Within the proto Timestamp's documented range, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
inline bool ValidTimestamp(const google::protobuf::Timestamp& ts) {
  constexpr int64_t kMinSeconds = -62135596800;
  constexpr int64_t kMaxSeconds = 253402300799;
  return ts.seconds() >= kMinSeconds && ts.seconds() <= kMaxSeconds && ts.nanos() >= 0 &&
         ts.nanos() <= 999999999;
}

inline int64_t TimestampMicros(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

// A request's partition numbers.
inline std::vector<PartitionId> PartitionIds(
    const google::protobuf::RepeatedField<uint32_t>& partitions) {
  std::vector<PartitionId> out;
  out.reserve(partitions.size());
  for (uint32_t p : partitions) out.push_back(PartitionId(p));
  return out;
}

// A stored record as the API returns it, copied from the log's views.
inline void FillRecord(std::string_view topic, PartitionId partition, const DecodedRecord& rec,
                       nodata::v1::Record* out) {
  out->set_partition(partition.value());
  out->set_offset(rec.offset.value());
  SetTimestamp(rec.ingest_time_us, out->mutable_ingest_time());
  auto* e = out->mutable_event();
  e->set_topic(std::string(topic));
  e->set_id(std::string(rec.id));
  e->set_key(std::string(rec.key));
  e->set_data(std::string(rec.data));
  SetTimestamp(rec.timestamp_us, e->mutable_timestamp());
  for (const auto& [k, v] : rec.headers) (*e->mutable_headers())[std::string(k)] = std::string(v);
}

inline nodata::v1::DataFormat DataFormatToProto(DataFormat format) {
  switch (format) {
    case DataFormat::kString:
      return nodata::v1::DATA_FORMAT_STRING;
    case DataFormat::kJson:
      return nodata::v1::DATA_FORMAT_JSON;
    case DataFormat::kBytes:
      break;
  }
  return nodata::v1::DATA_FORMAT_BYTES;
}

// A requested format (`field` names it in the error); unspecified is bytes. INVALID_ARGUMENT for
// a value the API does not define (proto3 enums are open).
inline absl::StatusOr<DataFormat> DataFormatFromProto(int format, std::string_view field) {
  switch (format) {
    case nodata::v1::DATA_FORMAT_UNSPECIFIED:
    case nodata::v1::DATA_FORMAT_BYTES:
      return DataFormat::kBytes;
    case nodata::v1::DATA_FORMAT_STRING:
      return DataFormat::kString;
    case nodata::v1::DATA_FORMAT_JSON:
      return DataFormat::kJson;
    default:
      return absl::InvalidArgumentError(
          StrCat(field, " ", format, " is not a DataFormat (1 bytes, 2 string, 3 json)"));
  }
}

}  // namespace nodata::server
