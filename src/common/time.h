// Wall-clock and monotonic time in the units nodata stores (microseconds since the Unix epoch).
#pragma once

#include <chrono>
#include <cstdint>

namespace nodata {

inline int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace nodata
