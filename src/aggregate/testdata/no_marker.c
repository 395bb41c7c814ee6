/* Test module: an aggregation in all but the `nodata_aggregate_v1` marker. */
#include <stdint.h>

__attribute__((export_name("nd_aggregate"))) int32_t nd_aggregate(int32_t bytes) {
  return bytes < 0;
}
