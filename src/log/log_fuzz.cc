// libFuzzer target: frame and index decoding, and recovery of a partition whose last segment
// holds arbitrary bytes after a valid header. Nothing may crash; recovery either opens the
// partition or returns a status.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/strings.h"
#include "log/format.h"
#include "log/partition_log.h"

using nodata::log::DecodedRecord;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      DecodedRecord record;
      size_t frame_bytes = 0;
      while (!input.empty() &&
             nodata::log::DecodeFrame(input, &frame_bytes, &record) ==
                 nodata::log::FrameResult::kOk) {
        input.remove_prefix(frame_bytes);
      }
      break;
    }
    case 1:
      nodata::log::DecodeIndex(input).status().IgnoreError();
      break;
    case 2: {
      static const std::filesystem::path dir =
          std::filesystem::temp_directory_path() / nodata::StrCat("nodata-log-fuzz-", ::getpid());
      std::filesystem::remove_all(dir);
      std::filesystem::create_directories(dir);
      {
        std::ofstream f(dir / nodata::log::SegmentFileName(0), std::ios::binary);
        std::string header = nodata::log::EncodeSegmentHeader(0);
        f.write(header.data(), static_cast<std::streamsize>(header.size()));
        f.write(input.data(), static_cast<std::streamsize>(input.size()));
      }
      static nodata::log::Syncer syncer(1);
      auto log = nodata::log::PartitionLog::Open(nodata::PosixFileSystem(), dir.string(), {},
                                                 syncer);
      if (log.ok()) {
        std::vector<nodata::log::Record> out;
        (*log)->Read(0, 1000, 1 << 20, &out).IgnoreError();
      }
      break;
    }
  }
  return 0;
}
