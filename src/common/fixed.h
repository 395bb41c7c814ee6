// Fixed-width little-endian integers of the on-disk formats (docs/formats/). The server runs on
// little-endian machines only (x86-64, arm64), so these are plain copies.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace nodata {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the on-disk formats are little endian");

template <typename T>
inline T LoadFixed(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint16_t Load16(const char* p) { return LoadFixed<uint16_t>(p); }
inline uint32_t Load32(const char* p) { return LoadFixed<uint32_t>(p); }
inline uint64_t Load64(const char* p) { return LoadFixed<uint64_t>(p); }

inline void Store32(char* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }
inline void Store64(char* p, uint64_t v) { std::memcpy(p, &v, sizeof v); }

inline void Append16(std::string* out, uint16_t v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
inline void Append32(std::string* out, uint32_t v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
inline void Append64(std::string* out, uint64_t v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace nodata
