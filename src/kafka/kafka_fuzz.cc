// libFuzzer target: what a Kafka client sends before anything else looks at it. The first byte
// chooses: 0, a request header and primitive fields; 1, record batches as given (Produce's
// payload: lengths, CRC-32C, the four codecs, records); 2, the same with each batch's CRC made
// right first, so that the fuzzer reaches past it. Nothing may crash or read out of bounds;
// batches that decode are written again with BatchWriter and must decode to the same records.
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/internal/endian.h"
#include "common/crc32c.h"
#include "kafka/protocol.h"
#include "kafka/records.h"
#include "kafka/wire.h"

namespace {

using namespace nodata::kafka;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

// Sets each batch's CRC field to the CRC-32C of its bytes, as far as the lengths lead.
void FixCrcs(std::string& b) {
  size_t at = 0;
  while (b.size() - at >= kBatchHeaderBytes) {
    const auto length = static_cast<int32_t>(absl::big_endian::Load32(b.data() + at + 8));
    if (length < 49 || static_cast<size_t>(length) > b.size() - at - 12) return;
    const size_t end = at + 12 + static_cast<size_t>(length);
    absl::big_endian::Store32(b.data() + at + 17,
                              nodata::crc32c::Extend(0, b.data() + at + 21, end - at - 21));
    at = end;
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 0) {
    Reader header(input);
    ReadRequestHeader(header);
    header.ArrayLength(true, 1);
    header.NullableBytes(false);
    header.Varlong();
    header.SkipTaggedFields();
    return 0;
  }
  if (data[0] == 2) FixCrcs(input);
  std::string_view in(input);

  std::deque<std::string> keep;
  std::vector<std::vector<KafkaRecord>> decoded;
  std::string rewritten;
  absl::Status st = DecodeBatches(
      in, 1 << 20, &keep, [&](const BatchHeader& h, const std::vector<KafkaRecord>& recs) {
        decoded.push_back(recs);
        BatchWriter w(&rewritten);
        for (size_t i = 0; i < recs.size(); ++i) {
          if (i == 0) w.Begin(h.base_offset, recs[0].timestamp_ms);
          std::vector<std::pair<std::string_view, std::string_view>> headers;
          for (const auto& [k, v] : recs[i].headers) headers.emplace_back(k, v.value_or(""));
          w.Add(h.base_offset + static_cast<int64_t>(i), recs[i].timestamp_ms, recs[i].key,
                recs[i].value, headers);
        }
        w.Finish();
        return absl::OkStatus();
      });
  if (!st.ok()) return 0;
  // Written again, the records decode the same (offsets renumbered densely).
  size_t batch = 0;
  std::deque<std::string> keep2;
  absl::Status again = DecodeBatches(
      rewritten, 1 << 20, &keep2, [&](const BatchHeader&, const std::vector<KafkaRecord>& recs) {
        while (batch < decoded.size() && decoded[batch].empty()) ++batch;
        Check(batch < decoded.size() && recs.size() == decoded[batch].size());
        for (size_t i = 0; i < recs.size(); ++i) {
          Check(recs[i].key == decoded[batch][i].key);
          Check(recs[i].value == decoded[batch][i].value);
          Check(recs[i].timestamp_ms == decoded[batch][i].timestamp_ms);
          Check(recs[i].headers.size() == decoded[batch][i].headers.size());
        }
        ++batch;
        return absl::OkStatus();
      });
  Check(again.ok());
  return 0;
}
