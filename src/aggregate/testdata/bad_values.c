/* Test module: writes bad values and states, then reports the host's answers as the group's
 * values: {"malformed":…,"array":…,"trailing":…,"bad_utf8":…,"values_too_large":…,
 * "state_too_large":…,"outside_memory":…}. */
#include <nodata/aggregate.h>

static char big[64 * 1024 + 1];

static uint32_t Field(char* out, const char* name, int rc) {
  uint32_t n = 0;
  out[n++] = '"';
  memcpy(out + n, name, strlen(name));
  n += (uint32_t)strlen(name);
  out[n++] = '"';
  out[n++] = ':';
  return n + nd_fmt_i64(out + n, rc);
}

static int Reduce(const nd_group* g) {
  const char* names[] = {"malformed", "array", "trailing", "bad_utf8", "values_too_large",
                         "state_too_large", "outside_memory"};
  int codes[7];
  memset(big, ' ', sizeof big);
  big[0] = '{';
  big[sizeof big - 1] = '}';
  codes[0] = nd_value_write(g->index, nd_str("{\"count\":"));
  codes[1] = nd_value_write(g->index, nd_str("[1,2]"));
  codes[2] = nd_value_write(g->index, nd_str("{} {}"));
  codes[3] = nd_value_write(g->index, nd_str("{\"k\":\"\xff\"}"));
  codes[4] = nd_value_write(g->index, nd_bytes_of(big, sizeof big));
  codes[5] = nd_state_write(g->index, nd_bytes_of(big, sizeof big));
  codes[6] = nd__host_value_write((int32_t)g->index, (const void*)0xfffffff0u, 16);
  char json[512];
  uint32_t n = 0;
  json[n++] = '{';
  for (int i = 0; i < 7; ++i) {
    if (i > 0) json[n++] = ',';
    n += Field(json + n, names[i], codes[i]);
  }
  json[n++] = '}';
  return nd_value_write(g->index, nd_bytes_of(json, n));
}

NODATA_AGGREGATE(Reduce)
