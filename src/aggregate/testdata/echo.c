/* Test module: hands the batch back byte for byte, so tests check the host's layouts. Group (or
 * merge) 0's state is the whole batch nd_aggregate (or nd_merge) read, group 1's (when there is
 * one) the configuration; group 0's values {"echo":true}, and one log line per call. nd_init
 * fails with 7 when the configuration is "fail-init". */
#include <nodata/aggregate.h>

static int Echo(int32_t bytes) {
  const uint8_t* batch = nd__read_batch(bytes);
  if (batch == NULL) return ND_ERR_BAD_BATCH;
  nd_log(ND_LOG_INFO, "echo");
  int rc = nd_state_write(0, nd_bytes_of(batch, (size_t)bytes));
  if (rc != ND_OK) return rc;
  if (nd__u32(batch) > 1 && (rc = nd_state_write(1, nd_config())) != ND_OK) return rc;
  return nd_value_write(0, nd_str("{\"echo\":true}"));
}

__attribute__((export_name("nodata_aggregate_v1"))) void nodata_aggregate_v1(void) {}
__attribute__((export_name("nd_init"))) int32_t nd_init(void) {
  return nd_bytes_eq(nd_config(), nd_str("fail-init")) ? 7 : 0;
}
__attribute__((export_name("nd_aggregate"))) int32_t nd_aggregate(int32_t bytes) {
  return Echo(bytes);
}
__attribute__((export_name("nd_merge"))) int32_t nd_merge(int32_t bytes) { return Echo(bytes); }
