// CRC-32C (Castagnoli), the checksum of every on-disk frame. Uses SSE4.2 when the CPU has it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace nodata::crc32c {

// Extends `crc` (the CRC of earlier bytes, 0 to start) over `n` bytes.
uint32_t Extend(uint32_t crc, const void* data, size_t n);

inline uint32_t Value(std::string_view s) { return Extend(0, s.data(), s.size()); }

// Stored CRCs are masked (as in leveldb) so that a CRC of bytes which themselves hold CRCs
// does not degenerate. Persistent format: never change kMaskDelta.
inline constexpr uint32_t kMaskDelta = 0xa282ead8u;
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace nodata::crc32c
