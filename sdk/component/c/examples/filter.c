/* Filter: keeps the records whose data contains the configuration bytes (all records when the
 * configuration is empty), unchanged, on output 0. */
#include <nodata/component.h>

static int Process(const nd_record* in) {
  if (!nd_bytes_contains(in->data, nd_config())) return ND_OK;
  return nd_forward(in, 0);
}

NODATA_COMPONENT(Process)
