/* Test module: writes group 0's state, then tries a group past the batch's last (and -1) and
 * fails the batch with the host's answer when it is not ND_ERR_NO_GROUP for both, else with
 * the answer of writing values to the group past the last: ND_ERR_NO_GROUP as well. */
#include <nodata/aggregate.h>

static uint32_t groups;

static int Count(const nd_group* g) {
  groups = g->index + 1;
  return ND_OK;
}

__attribute__((export_name("nodata_aggregate_v1"))) void nodata_aggregate_v1(void) {}
__attribute__((export_name("nd_aggregate"))) int32_t nd_aggregate(int32_t bytes) {
  int rc = nd__run(bytes, 0, Count, NULL);
  if (rc != ND_OK) return rc;
  if ((rc = nd_state_write(0, nd_str("written"))) != ND_OK) return 100 + rc;
  rc = nd_state_write(groups, nd_str("x"));
  if (rc != ND_ERR_NO_GROUP) return 200 + rc;
  rc = nd__host_state_write(-1, "x", 1);
  if (rc != ND_ERR_NO_GROUP) return 300 + rc;
  return nd_value_write(groups, nd_str("{}"));
}
