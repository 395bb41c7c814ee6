/* nodata aggregation SDK for C and C++: WebAssembly reducers against the aggregation ABI
 * (docs/formats/component-abi.md, "Aggregations"). Header-only, on top of nodata/component.h
 * (byte strings, records, configuration, log); build as a component:
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -o my.wasm my.c
 *
 * Write one function called for each (window, key) group of a batch: it reads the group's state
 * and records and writes the new state and the window's values, then register it in exactly one
 * translation unit:
 *
 *   #include <nodata/aggregate.h>
 *   static int Reduce(const nd_group* g) {
 *     nd_records it = nd_group_records(g);
 *     nd_record r;
 *     while (nd_next_record(&it, &r)) { ... }
 *     int rc = nd_state_write(g->index, state);
 *     return rc != ND_OK ? rc : nd_value_write(g->index, nd_str("{\"n\":1}"));
 *   }
 *   NODATA_AGGREGATE(Reduce)            // or NODATA_AGGREGATE_WITH_INIT(Init, Reduce)
 *   NODATA_AGGREGATE_MERGE(Merge)       // session windows: int Merge(const nd_merge_input* m)
 *
 * The registration defines the exports (`nodata_aggregate_v1`, `nd_init`, `nd_aggregate`, and
 * `nd_merge` with NODATA_AGGREGATE_MERGE). The whole batch is checked against the layout before
 * the first callback: a malformed batch writes nothing and returns ND_ERR_BAD_BATCH. A non-zero
 * return from a callback stops the batch and becomes the export's result: the host then fails
 * the whole batch and keeps no write of it.
 *
 * A reducer must be deterministic: the same state and records must give the same new state and
 * values, because the host may run a batch again after a crash (exactly-once rests on it).
 */
#ifndef NODATA_AGGREGATE_H_
#define NODATA_AGGREGATE_H_

#include "component.h"

#ifdef __cplusplus
extern "C" {
#endif

/* state_write / value_write answers (ND_ERR_MALFORMED -2 and ND_ERR_TOO_LARGE -3 as in
 * component.h: values that are not one JSON object, a write over the host's limit). */
#define ND_ERR_NO_GROUP (-1)

/* The global window's bounds as a group carries them. */
#define ND_GLOBAL_START_US INT64_MIN
#define ND_GLOBAL_END_US INT64_MAX

/* One (window, key) group of a batch. Bytes point into the batch buffer: valid during the
 * callback only. */
typedef struct nd_group {
  uint32_t index; /* the `group` of state_write and value_write */
  int64_t window_start_us;
  int64_t window_end_us;
  nd_bytes key;
  nd_bytes state; /* len 0: a new key/window */
  uint32_t count; /* records */
  const uint8_t* records_;
  uint32_t records_len_;
} nd_group;

/* Two sessions of one key that are merged (session windows); `a` starts first. */
typedef struct nd_merge_input {
  uint32_t index; /* the `group` of state_write and value_write */
  int64_t window_start_us; /* of the merged session */
  int64_t window_end_us;
  nd_bytes key;
  nd_bytes state_a;
  nd_bytes state_b;
} nd_merge_input;

/* ---- the host ---- */
__attribute__((import_module("nodata"), import_name("state_write"))) int32_t
nd__host_state_write(int32_t group, const void* ptr, int32_t len);
__attribute__((import_module("nodata"), import_name("value_write"))) int32_t
nd__host_value_write(int32_t group, const void* ptr, int32_t len);

/* The new state of group (or merge) `group`; ND_OK or a negative ND_ERR_*. The last write of a
 * call counts; a group written nothing keeps its state. */
static inline int nd_state_write(uint32_t group, nd_bytes state) {
  return nd__host_state_write((int32_t)group, state.ptr, (int32_t)state.len);
}
/* The window's values: one JSON object (checked by the host: ND_ERR_MALFORMED otherwise). */
static inline int nd_value_write(uint32_t group, nd_bytes json) {
  return nd__host_value_write((int32_t)group, json.ptr, (int32_t)json.len);
}

/* ---- a group's records ---- */
typedef struct nd_records {
  const uint8_t* p;
  const uint8_t* end;
  uint32_t next;
  uint32_t count;
} nd_records;

static inline nd_records nd_group_records(const nd_group* g) {
  nd_records it;
  it.p = g->records_;
  it.end = g->records_ + g->records_len_;
  it.next = 0;
  it.count = g->count;
  return it;
}
/* The next record of the group into *r (r->index: its position in the group); 0 at the end. */
static inline int nd_next_record(nd_records* it, nd_record* r) {
  if (it->next >= it->count || !nd__take_record(&it->p, it->end, r)) return 0;
  r->index = it->next++;
  return 1;
}

/* ---- JSON helpers ---- */
static inline const uint8_t* nd__json_ws(const uint8_t* p, const uint8_t* e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  return p;
}
/* Past the string that starts at p (a quote); NULL when unterminated. */
static inline const uint8_t* nd__json_string(const uint8_t* p, const uint8_t* e) {
  for (++p; p < e; ++p) {
    if (*p == '\\') {
      ++p;
    } else if (*p == '"') {
      return p + 1;
    }
  }
  return NULL;
}
/* Past the value that starts at p; NULL when it is cut off. Checks nesting only. */
static inline const uint8_t* nd__json_value(const uint8_t* p, const uint8_t* e) {
  if (p >= e) return NULL;
  if (*p == '"') return nd__json_string(p, e);
  if (*p != '{' && *p != '[') {
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r') {
      ++p;
    }
    return p;
  }
  uint32_t depth = 0;
  while (p < e) {
    if (*p == '"') {
      p = nd__json_string(p, e);
      if (p == NULL) return NULL;
      continue;
    }
    if (*p == '{' || *p == '[') {
      ++depth;
    } else if ((*p == '}' || *p == ']') && --depth == 0) {
      return p + 1;
    }
    ++p;
  }
  return NULL;
}
/* A JSON integer (no fraction or exponent) that fits in 64 bits, exactly the bytes [p, e). */
static inline int nd__json_int(const uint8_t* p, const uint8_t* e, int64_t* out) {
  int negative = p < e && *p == '-';
  if (negative) ++p;
  if (p == e) return 0;
  uint64_t v = 0;
  const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; p < e; ++p) {
    if (*p < '0' || *p > '9') return 0;
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (limit - d) / 10) return 0;
    v = v * 10 + d;
  }
  *out = negative ? (int64_t)(0 - v) : (int64_t)v;
  return 1;
}

/* The integer value of the top-level field `name` of the JSON object `json` (the last one when
 * it repeats; names compared as written, escapes not resolved). 1 when found, 0 when the field
 * is absent, not an integer, out of 64-bit range, or `json` is not an object. */
static inline int nd_json_i64(nd_bytes json, const char* name, int64_t* out) {
  const uint8_t* e = json.ptr + json.len;
  const uint8_t* p = nd__json_ws(json.ptr, e);
  const size_t name_len = strlen(name);
  int found = 0;
  if (p == e || *p != '{') return 0;
  p = nd__json_ws(p + 1, e);
  if (p < e && *p == '}') return 0;
  while (p < e && *p == '"') {
    const uint8_t* field = p + 1;
    p = nd__json_string(p, e);
    if (p == NULL) return 0;
    const size_t field_len = (size_t)(p - 1 - field);
    p = nd__json_ws(p, e);
    if (p == e || *p != ':') return 0;
    p = nd__json_ws(p + 1, e);
    const uint8_t* value = p;
    p = nd__json_value(p, e);
    if (p == NULL) return 0;
    if (field_len == name_len && memcmp(field, name, name_len) == 0) {
      int64_t v;
      found = nd__json_int(value, p, &v);
      if (found) *out = v;
    }
    p = nd__json_ws(p, e);
    if (p < e && *p == ',') {
      p = nd__json_ws(p + 1, e);
    } else {
      break;
    }
  }
  return found;
}

/* Writes `v` in decimal at `buf` (room for 20 characters); returns the length. */
static inline uint32_t nd_fmt_i64(char* buf, int64_t v) {
  char digits[20];
  uint32_t n = 0, len = 0;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    digits[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) buf[len++] = '-';
  while (n > 0) buf[len++] = digits[--n];
  return len;
}

/* ---- the batches ---- */
typedef int (*nd_group_fn)(const nd_group* g);
typedef int (*nd_merge_fn)(const nd_merge_input* m);

/* Copies the batch of `bytes` bytes into the reused buffer; NULL when it cannot. */
static inline const uint8_t* nd__read_batch(int32_t bytes) {
  static uint8_t* buf;
  static size_t cap;
  if (bytes < 4 || !nd__reserve(&buf, &cap, (size_t)bytes)) return NULL;
  if (nd__host_batch_read(buf, bytes) != bytes) return NULL;
  return buf;
}

static inline int nd__take_i64(const uint8_t** p, const uint8_t* end, int64_t* out) {
  if (end - *p < 8) return 0;
  *out = (int64_t)nd__u64(*p);
  *p += 8;
  return 1;
}

/* Decodes the group at *p (its records checked, not decoded); 0 when it does not match. */
static inline int nd__take_group(const uint8_t** p, const uint8_t* end, nd_group* g) {
  if (!nd__take_i64(p, end, &g->window_start_us) || !nd__take_i64(p, end, &g->window_end_us) ||
      !nd__take_bytes(p, end, &g->key) || !nd__take_bytes(p, end, &g->state) || end - *p < 4) {
    return 0;
  }
  g->count = nd__u32(*p);
  *p += 4;
  /* Each record takes at least 32 bytes. */
  if (g->count > (size_t)(end - *p) / 32) return 0;
  g->records_ = *p;
  nd_record r;
  for (uint32_t i = 0; i < g->count; ++i) {
    if (!nd__take_record(p, end, &r)) return 0;
  }
  g->records_len_ = (uint32_t)(*p - g->records_);
  return 1;
}

static inline int nd__take_merge(const uint8_t** p, const uint8_t* end, nd_merge_input* m) {
  return nd__take_i64(p, end, &m->window_start_us) && nd__take_i64(p, end, &m->window_end_us) &&
         nd__take_bytes(p, end, &m->key) && nd__take_bytes(p, end, &m->state_a) &&
         nd__take_bytes(p, end, &m->state_b);
}

/* The body of nd_aggregate (merge 0) and of nd_merge (merge 1): read the batch, check all of it
 * against the layout, then run the callback on each group or merge in order. */
static inline int nd__run(int32_t bytes, int merge, nd_group_fn group_fn, nd_merge_fn merge_fn) {
  const uint8_t* buf = nd__read_batch(bytes);
  if (buf == NULL) return ND_ERR_BAD_BATCH;
  const uint8_t* end = buf + bytes;
  const uint32_t count = nd__u32(buf);
  /* Each group or merge takes at least 28 bytes. */
  if (count > (uint32_t)(bytes - 4) / 28) return ND_ERR_BAD_BATCH;
  nd_group g;
  nd_merge_input m;
  for (int call = 0; call < 2; ++call) { /* a checking pass, then a calling one */
    const uint8_t* p = buf + 4;
    for (uint32_t i = 0; i < count; ++i) {
      if (!(merge ? nd__take_merge(&p, end, &m) : nd__take_group(&p, end, &g))) {
        return ND_ERR_BAD_BATCH;
      }
      if (!call) continue;
      g.index = m.index = i;
      int rc = merge ? merge_fn(&m) : group_fn(&g);
      if (rc != 0) return rc;
    }
    if (p != end) return ND_ERR_BAD_BATCH; /* trailing bytes */
  }
  return ND_OK;
}

#ifdef __cplusplus
}
#endif

/* Defines the module's exports; use in exactly one translation unit. `init` (int (*)(void), may
 * read nd_config()) runs once per instance; non-zero fails the aggregation. */
#define NODATA_AGGREGATE_WITH_INIT(init, reduce)                                                 \
  ND__EXTERN_C __attribute__((export_name("nodata_aggregate_v1"))) void nodata_aggregate_v1(void) {} \
  ND__EXTERN_C __attribute__((export_name("nd_init"))) int32_t nd_init(void) {                   \
    return nd__init(init);                                                                       \
  }                                                                                              \
  ND__EXTERN_C __attribute__((export_name("nd_aggregate"))) int32_t nd_aggregate(int32_t bytes) { \
    return nd__run(bytes, 0, reduce, NULL);                                                      \
  }
#define NODATA_AGGREGATE(reduce) NODATA_AGGREGATE_WITH_INIT(NULL, reduce)
/* Adds the `nd_merge` export that session windows need. */
#define NODATA_AGGREGATE_MERGE(merge)                                                      \
  ND__EXTERN_C __attribute__((export_name("nd_merge"))) int32_t nd_merge(int32_t bytes) { \
    return nd__run(bytes, 1, NULL, merge);                                                 \
  }

#endif /* NODATA_AGGREGATE_H_ */
