/* Test module: runs away (until the host's fuel stops it). */
#include <nodata/aggregate.h>

static int Reduce(const nd_group* g) {
  volatile uint32_t spins = 0;
  for (;;) ++spins;
  return (int)g->index;
}

NODATA_AGGREGATE(Reduce)
