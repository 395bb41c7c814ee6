#include "parquet/internal/thrift_io.h"

#include <thrift/TConfiguration.h>
#include <thrift/Thrift.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <algorithm>
#include <limits>
#include <memory>

#include "common/strings.h"

namespace nodata::parquet::internal {
namespace {

using apache::thrift::TConfiguration;
using apache::thrift::protocol::TCompactProtocolT;
using apache::thrift::transport::TMemoryBuffer;

// Nesting in Parquet metadata is shallow; deeper input is hostile.
constexpr int kMaxRecursionDepth = 32;

template <typename T>
absl::Status Serialize(const T& message, std::string* out) {
  try {
    auto buffer = std::make_shared<TMemoryBuffer>();
    TCompactProtocolT<TMemoryBuffer> protocol(buffer);
    message.write(&protocol);
    out->append(buffer->getBufferAsString());
  } catch (const apache::thrift::TException& e) {
    return absl::InternalError(StrCat("serializing Parquet metadata: ", e.what()));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Parse(std::string_view in, T* message, uint64_t* consumed) {
  if (in.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError("Parquet metadata larger than 2 GiB");
  }
  try {
    // The message size limit is the input itself, so a length or count that
    // claims more bytes than remain fails before anything is allocated for it.
    auto config = std::make_shared<TConfiguration>(static_cast<int>(in.size()),
                                                   static_cast<int>(in.size()), kMaxRecursionDepth);
    auto buffer = std::make_shared<TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(const_cast<char*>(in.data())), static_cast<uint32_t>(in.size()),
        TMemoryBuffer::OBSERVE, config);
    const auto limit = static_cast<int32_t>(in.size());
    TCompactProtocolT<TMemoryBuffer> protocol(buffer, limit, limit);
    message->read(&protocol);
    if (consumed != nullptr) *consumed = in.size() - buffer->available_read();
  } catch (const std::exception& e) {
    return absl::DataLossError(StrCat("corrupt Parquet metadata: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SerializeFooter(const format::FileMetaData& message, std::string* out) {
  return Serialize(message, out);
}
absl::Status SerializePageHeader(const format::PageHeader& message, std::string* out) {
  return Serialize(message, out);
}
absl::Status ParseFooter(std::string_view in, format::FileMetaData* message) {
  return Parse(in, message, nullptr);
}
absl::Status ParsePageHeader(std::string_view in, format::PageHeader* message, uint64_t* consumed) {
  return Parse(in, message, consumed);
}

}  // namespace nodata::parquet::internal
