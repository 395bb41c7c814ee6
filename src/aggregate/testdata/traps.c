/* Test module: a group with key "boom" traps; every other gets state "ok". No nd_merge. */
#include <nodata/aggregate.h>

static int Reduce(const nd_group* g) {
  if (nd_bytes_eq(g->key, nd_str("boom"))) __builtin_trap();
  return nd_state_write(g->index, nd_str("ok"));
}

NODATA_AGGREGATE(Reduce)
