#include "common/record.h"

namespace nodata {

Record Record::From(const DecodedRecord& r) {
  Record out;
  out.offset = r.offset;
  out.timestamp_us = r.timestamp_us;
  out.ingest_time_us = r.ingest_time_us;
  out.flags = r.flags;
  out.id = std::string(r.id);
  out.key = std::string(r.key);
  out.data = std::string(r.data);
  out.headers.reserve(r.headers.size());
  for (const auto& [k, v] : r.headers) out.headers.emplace_back(std::string(k), std::string(v));
  return out;
}

}  // namespace nodata
