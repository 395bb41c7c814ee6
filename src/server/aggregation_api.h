// What the aggregation APIs (gRPC, HTTP) and the CLI share: the `Aggregation` message filled from
// the manager's info, its JSON form, the JSON of windows, RFC 3339 times, and the parsing of an
// AddAggregation request into a definition.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "aggregate/manager.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.pb.h"
#include "server/http_query.h"  // ParseTimeUs

namespace nodata::server {

void FillAggregation(const aggregate::AggregationInfo& info, nodata::v1::Aggregation* out);

// The definition an AddAggregation request asks for, from the CLI's spellings; INVALID_ARGUMENT
// naming the field and what is wrong. The manager checks the rest.
absl::StatusOr<aggregate::AggregationSpec> SpecFrom(const nodata::v1::AddAggregationRequest& r);

// "BACKFILLING" and so on.
std::string AggregationStateName(nodata::v1::AggregationState state);

// {"name", "input", "key", "window", "lateness", "from", "measures", "module_sha256",
//  "config", "checkpoint_interval", "fuel_per_record", "state", "last_error", "lag", "keys",
//  "open_windows", "records_in", "late", "skipped", "watermark" (null before the first
//  record), "backfill": {"done", "total", "rate", "eta_seconds"}, "tier", "created_at"}.
nlohmann::ordered_json AggregationJson(const nodata::v1::Aggregation& a);

// RFC 3339 in UTC with microseconds (ParseTimeUs, http_query.h, reads it back).
std::string FormatTimeUs(int64_t us);

// A JSON string of `s`; bytes that are not UTF-8 become U+FFFD.
std::string JsonString(std::string_view s);

// Appends the members of a window, `"start": "...", "end": "...", "final": b, "values": {...}`
// (no start and end for the global window). `values` is the JSON object the manager holds and
// is embedded as it is.
void AppendWindowMembers(std::string* out, int64_t start_us, int64_t end_us, bool final,
                         std::string_view values);

}  // namespace nodata::server
