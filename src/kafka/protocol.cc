#include "kafka/protocol.h"

#include <algorithm>
#include <array>

namespace nodata::kafka {
namespace {

// Produce from v3 and Fetch from v4: the versions whose records are message format v2. Flexible
// versions are served only where noted (ApiVersions from v3); the others end just before theirs.
constexpr std::array<ApiRange, 16> kApis{{
    {kProduce, 3, 8, 9},
    {kFetch, 4, 11, 12},
    {kListOffsets, 1, 5, 6},
    {kMetadata, 0, 8, 9},
    {kOffsetCommit, 2, 7, 8},
    {kOffsetFetch, 1, 5, 6},
    {kFindCoordinator, 0, 2, 3},
    {kJoinGroup, 0, 5, 6},
    {kHeartbeat, 0, 3, 4},
    {kLeaveGroup, 0, 3, 4},
    {kSyncGroup, 0, 3, 4},
    {kApiVersions, 0, 3, 3},
    {kCreateTopics, 0, 4, 5},
    {kDeleteTopics, 0, 3, 4},
    {kInitProducerId, 0, 1, 2},
    {kDescribeConfigs, 0, 2, 4},
}};

}  // namespace

std::span<const ApiRange> SupportedApis() { return kApis; }

const ApiRange* FindApi(int16_t key) {
  auto it = std::find_if(kApis.begin(), kApis.end(),
                         [key](const ApiRange& a) { return a.key == key; });
  return it == kApis.end() ? nullptr : &*it;
}

RequestHeader ReadRequestHeader(Reader& r) {
  RequestHeader h;
  h.api_key = r.Int16();
  h.api_version = r.Int16();
  h.correlation_id = r.Int32();
  h.client_id = r.NullableString(/*compact=*/false);  // never compact, even in header v2
  const ApiRange* api = FindApi(h.api_key);
  h.flexible = api != nullptr && h.api_version >= api->flexible_from;
  if (h.flexible) r.SkipTaggedFields();
  return h;
}

}  // namespace nodata::kafka
