/* Count and sum: an aggregation reducer (nodata/aggregate.h) counting each group's records and
 * summing the integer field "amount" of their data (a JSON object; records without an integer
 * amount are counted, not summed). State: 16 bytes, the count and the sum as little-endian
 * int64; values {"count":N,"sum":S}. nd_merge adds two sessions' states. */
#include <nodata/aggregate.h>

typedef struct {
  int64_t count;
  int64_t sum;
} Totals;

/* A state of 16 bytes, or a new one (empty); 0 for anything else. */
static int Decode(nd_bytes state, Totals* t) {
  t->count = t->sum = 0;
  if (state.len == 0) return 1;
  if (state.len != sizeof *t) return 0;
  memcpy(t, state.ptr, sizeof *t); /* wasm32 is little-endian, like the state */
  return 1;
}

static int Write(uint32_t group, const Totals* t) {
  int rc = nd_state_write(group, nd_bytes_of(t, sizeof *t));
  if (rc != ND_OK) return rc;
  char json[64];
  uint32_t n = 0;
  memcpy(json, "{\"count\":", 9);
  n = 9 + nd_fmt_i64(json + 9, t->count);
  memcpy(json + n, ",\"sum\":", 7);
  n += 7;
  n += nd_fmt_i64(json + n, t->sum);
  json[n++] = '}';
  return nd_value_write(group, nd_bytes_of(json, n));
}

static int Reduce(const nd_group* g) {
  Totals t;
  if (!Decode(g->state, &t)) return ND_ERR_BAD_INPUT;
  nd_records it = nd_group_records(g);
  nd_record r;
  while (nd_next_record(&it, &r)) {
    int64_t amount;
    ++t.count;
    /* Wraps on overflow, as unsigned arithmetic does, rather than trapping. */
    if (nd_json_i64(r.data, "amount", &amount)) {
      t.sum = (int64_t)((uint64_t)t.sum + (uint64_t)amount);
    }
  }
  return Write(g->index, &t);
}

static int Merge(const nd_merge_input* m) {
  Totals a, b;
  if (!Decode(m->state_a, &a) || !Decode(m->state_b, &b)) return ND_ERR_BAD_INPUT;
  a.count += b.count;
  a.sum = (int64_t)((uint64_t)a.sum + (uint64_t)b.sum);
  return Write(m->index, &a);
}

NODATA_AGGREGATE(Reduce)
NODATA_AGGREGATE_MERGE(Merge)
