// libFuzzer target: arbitrary bytes as a Parquet file must yield a Status,
// never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "parquet/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto reader = nodata::parquet::Reader::Open(
      nodata::parquet::NewStringSource(std::string(reinterpret_cast<const char*>(data), size)));
  if (!reader.ok()) return 0;
  for (size_t g = 0; g < (*reader)->row_groups().size(); ++g) {
    (void)(*reader)->ReadRowGroup(static_cast<int>(g));
    (void)(*reader)->ReadRowGroupViews(static_cast<int>(g));
  }
  return 0;
}
