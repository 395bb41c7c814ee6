// libFuzzer target: DecodeOutput, the decoder of the bytes a component's guest hands to `emit`
// (untrusted: any module may write anything). Nothing may crash; a record that decodes encodes
// back to bytes that decode to the same record.
#include <cstdint>
#include <string>

#include "components/abi.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the batch size the record must index into, and the size limit.
  const uint32_t batch_count = data[0] & 0x0f;
  const uint64_t max_bytes = (data[0] & 0x10) ? 64 : (1u << 20);
  nodata::components::OutputRecord out;
  const int32_t rc =
      nodata::components::DecodeOutput({data + 1, size - 1}, batch_count, max_bytes, &out);
  if (rc != nodata::components::kEmitOk) return 0;
  Check(out.input_index < batch_count);
  const std::string again = nodata::components::EncodeOutput(out);
  nodata::components::OutputRecord back;
  Check(nodata::components::DecodeOutput(
            {reinterpret_cast<const uint8_t*>(again.data()), again.size()}, batch_count,
            max_bytes, &back) == nodata::components::kEmitOk);
  Check(back == out);
  return 0;
}
