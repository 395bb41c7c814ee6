#include "server/record_encoder.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace nodata::server {
namespace {

// Wire types: 0 varint, 2 length-delimited.
constexpr uint8_t Tag(int field, int wire_type) {
  return static_cast<uint8_t>((field << 3) | wire_type);
}

// Room kept before the batch for the response's own tag and length (1 + up to 10 bytes).
constexpr size_t kHeadroom = 16;

size_t VarintSize(uint64_t v) {
  // 7 bits per byte: ceil(significant bits / 7), one byte for 0.
  return (static_cast<size_t>(std::bit_width(v | 1)) + 6) / 7;
}

char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

char* PutBytes(char* p, uint8_t tag, std::string_view s) {
  *p++ = static_cast<char>(tag);
  p = PutVarint(p, s.size());
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// A length-delimited field's size, with its tag and length.
size_t FieldSize(size_t len) { return 1 + VarintSize(len) + len; }
// The same, omitted when empty (proto3 default).
size_t StringSize(std::string_view s) { return s.empty() ? 0 : FieldSize(s.size()); }

// google.protobuf.Timestamp {int64 seconds = 1; int32 nanos = 2;} of a time in microseconds.
struct Ts {
  int64_t seconds;
  int32_t nanos;
  explicit Ts(int64_t micros) {
    seconds = micros / 1000000;
    int64_t rem = micros % 1000000;
    if (rem < 0) {
      rem += 1000000;
      --seconds;
    }
    nanos = static_cast<int32_t>(rem * 1000);
  }
  size_t Size() const {
    return (seconds ? 1 + VarintSize(static_cast<uint64_t>(seconds)) : 0) +
           (nanos ? 1 + VarintSize(static_cast<uint64_t>(nanos)) : 0);
  }
  char* Put(char* p) const {
    if (seconds) {
      *p++ = static_cast<char>(Tag(1, 0));
      p = PutVarint(p, static_cast<uint64_t>(seconds));  // int64: two's complement
    }
    if (nanos) {
      *p++ = static_cast<char>(Tag(2, 0));
      p = PutVarint(p, static_cast<uint64_t>(nanos));
    }
    return p;
  }
};

}  // namespace

void RecordBatchEncoder::Begin(std::string_view topic) {
  // Every record repeats the topic: its field is encoded once per batch.
  topic_field_.clear();
  if (!topic.empty()) {
    topic_field_.resize(FieldSize(topic.size()));
    PutBytes(topic_field_.data(), Tag(1, 2), topic);
  }
  count_ = 0;
  if (buf_.size() < kHeadroom) buf_.resize(kHeadroom);
  size_ = kHeadroom;
}

void RecordBatchEncoder::Add(PartitionId partition_id, const DecodedRecord& r) {
  const uint32_t partition = partition_id.value();
  const uint64_t offset = r.offset.value();
  const Ts ts(r.timestamp_us);
  const Ts ingest(r.ingest_time_us);
  // Event {topic = 1; id = 2; key = 3; data = 4; timestamp = 5; headers = 6 (map entries)}
  size_t event = topic_field_.size() + StringSize(r.id) + StringSize(r.key) + StringSize(r.data) +
                 FieldSize(ts.Size());
  for (const auto& [k, v] : r.headers) event += FieldSize(StringSize(k) + StringSize(v));
  // Record {event = 1; partition = 2; offset = 3; ingest_time = 4}
  const size_t record = FieldSize(event) + (partition ? 1 + VarintSize(partition) : 0) +
                        (offset ? 1 + VarintSize(offset) : 0) + FieldSize(ingest.Size());
  const size_t at = size_;
  size_ += FieldSize(record);
  if (buf_.size() < size_) buf_.resize(std::max(size_, 2 * buf_.size()));
  char* p = buf_.data() + at;
  *p++ = static_cast<char>(Tag(1, 2));  // RecordBatch.records
  p = PutVarint(p, record);
  *p++ = static_cast<char>(Tag(1, 2));  // Record.event
  p = PutVarint(p, event);
  std::memcpy(p, topic_field_.data(), topic_field_.size());
  p += topic_field_.size();
  if (!r.id.empty()) p = PutBytes(p, Tag(2, 2), r.id);
  if (!r.key.empty()) p = PutBytes(p, Tag(3, 2), r.key);
  if (!r.data.empty()) p = PutBytes(p, Tag(4, 2), r.data);
  *p++ = static_cast<char>(Tag(5, 2));
  p = PutVarint(p, ts.Size());
  p = ts.Put(p);
  for (const auto& [k, v] : r.headers) {
    *p++ = static_cast<char>(Tag(6, 2));
    p = PutVarint(p, StringSize(k) + StringSize(v));
    if (!k.empty()) p = PutBytes(p, Tag(1, 2), k);
    if (!v.empty()) p = PutBytes(p, Tag(2, 2), v);
  }
  if (partition) {
    *p++ = static_cast<char>(Tag(2, 0));
    p = PutVarint(p, partition);
  }
  if (offset) {
    *p++ = static_cast<char>(Tag(3, 0));
    p = PutVarint(p, offset);
  }
  *p++ = static_cast<char>(Tag(4, 2));
  p = PutVarint(p, ingest.Size());
  ingest.Put(p);
  ++count_;
}

std::string_view RecordBatchEncoder::Finish() {
  // SubscribeResponse.records = 1, in the headroom just before the batch.
  const size_t batch = size_ - kHeadroom;
  const size_t header = 1 + VarintSize(batch);
  char* p = buf_.data() + kHeadroom - header;
  *p = static_cast<char>(Tag(1, 2));
  PutVarint(p + 1, batch);
  return std::string_view(buf_.data() + kHeadroom - header, header + batch);
}

}  // namespace nodata::server
