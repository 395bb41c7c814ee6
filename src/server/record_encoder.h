// Encodes stored records straight into the protobuf wire format of a SubscribeResponse holding a
// RecordBatch, from the log's views: one copy of each record's bytes, no message objects. This
// is what lets one subscriber read millions of records a second. The layout follows
// proto/nodata/v1/nodata.proto (field numbers in the comments below); a unit test parses the
// output with the generated code.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/record.h"

namespace nodata::server {

class RecordBatchEncoder {
 public:
  // Starts a new SubscribeResponse{records: RecordBatch{...}} for records of `topic`.
  void Begin(std::string_view topic);
  void Add(PartitionId partition, const DecodedRecord& r);
  size_t count() const { return count_; }
  // The encoded SubscribeResponse; valid until the next Begin.
  std::string_view Finish();

 private:
  // Grows and is reused: its bytes past `size_` are scratch, never zero-filled again.
  std::string buf_;
  size_t size_ = 0;
  std::string topic_field_;  // Event.topic's tag, length and bytes (empty for no topic)
  size_t count_ = 0;
};

}  // namespace nodata::server
