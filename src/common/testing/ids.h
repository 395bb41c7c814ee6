// Strong ids from integer literals, for tests: PartitionOffsets({{0, 5}, {1, 7}}).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <utility>
#include <vector>

#include "common/ids.h"

namespace nodata::testing {

inline std::vector<std::pair<PartitionId, Offset>> PartitionOffsets(
    std::initializer_list<std::pair<uint32_t, uint64_t>> list) {
  std::vector<std::pair<PartitionId, Offset>> out;
  for (const auto& [p, o] : list) out.emplace_back(PartitionId(p), Offset(o));
  return out;
}

inline std::map<PartitionId, Offset> OffsetMap(
    std::initializer_list<std::pair<uint32_t, uint64_t>> list) {
  std::map<PartitionId, Offset> out;
  for (const auto& [p, o] : list) out.emplace(PartitionId(p), Offset(o));
  return out;
}

inline std::vector<PartitionId> Partitions(std::initializer_list<uint32_t> list) {
  std::vector<PartitionId> out;
  for (uint32_t p : list) out.push_back(PartitionId(p));
  return out;
}

}  // namespace nodata::testing
