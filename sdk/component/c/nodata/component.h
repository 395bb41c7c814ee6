/* nodata component SDK for C and C++: WebAssembly transforms against the component ABI, version 1
 * (docs/formats/component-abi.md). Header-only; build with
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -o my.wasm my.c
 *
 * Write one function that is called for each input record and emits outputs, then register it in
 * exactly one translation unit:
 *
 *   #include <nodata/component.h>
 *   static int Process(const nd_record* in) {
 *     return nd_forward(in, 0);              // copy the record to output 0
 *   }
 *   NODATA_COMPONENT(Process)                // or NODATA_COMPONENT_WITH_INIT(Init, Process)
 *
 * The registration defines the module's exports (`nodata_component_v1`, `nd_init`, `nd_process`):
 * `nd_process` reads the batch with `batch_read`, checks the whole batch against the layout before
 * the first callback (a malformed batch emits nothing and returns ND_ERR_BAD_BATCH), then calls the
 * function once per record in order. Every emit names the record it derives from, so the output's
 * `input_index` is always right. A non-zero return from the function stops the batch and becomes
 * `nd_process`'s result (the host then retries record by record and dead-letters the failing one).
 *
 * Memory: the batch buffer and the output buffer are reused across calls and grow to the largest
 * batch and output record seen; nothing else is allocated per record. Not thread-safe (a wasm
 * instance is single-threaded).
 */
#ifndef NODATA_COMPONENT_H_
#define NODATA_COMPONENT_H_

#if !defined(__wasm32__)
#error "nodata/component.h builds WebAssembly components: use clang --target=wasm32-wasi"
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. -1..-3 are the host's answers to `emit`; the rest are the SDK's. Any non-zero
 * return from a record function fails the batch. */
#define ND_OK 0
#define ND_ERR_NO_OUTPUT (-1)   /* emit: no such output topic */
#define ND_ERR_MALFORMED (-2)   /* emit: the host could not decode the output record */
#define ND_ERR_TOO_LARGE (-3)   /* emit: the output record is over the host's size limit */
#define ND_ERR_NO_MEMORY (-4)   /* the guest's memory limit was reached */
#define ND_ERR_BAD_BATCH (-5)   /* nd_process: the input batch does not match the layout */
#define ND_ERR_BAD_INPUT (-6)   /* for record functions: the record is not what the component expects */

/* Log levels of nd_log. */
#define ND_LOG_DEBUG 0
#define ND_LOG_INFO 1
#define ND_LOG_WARN 2
#define ND_LOG_ERROR 3

/* An output's timestamp_us that means "the input record's timestamp". */
#define ND_TIMESTAMP_INHERIT ((int64_t)-1)

/* A byte string inside the current batch (valid until the record function returns) or the user's. */
typedef struct nd_bytes {
  const uint8_t* ptr;
  uint32_t len;
} nd_bytes;

typedef struct nd_header {
  nd_bytes name;
  nd_bytes value;
} nd_header;

/* One input record. Its bytes live in the batch buffer and are valid during the callback only. */
typedef struct nd_record {
  uint32_t index; /* position in the batch: the output's input_index */
  uint32_t partition;
  uint64_t offset;
  int64_t timestamp_us;
  nd_bytes key;
  nd_bytes data;
  uint32_t header_count;
  const uint8_t* headers_; /* the encoded headers (checked); read them with nd_header_at/find */
  uint32_t headers_len_;
} nd_record;

/* An output record. Start from nd_output_new() (empty, the input's timestamp) and set fields. */
typedef struct nd_output {
  int64_t timestamp_us; /* < 0 (ND_TIMESTAMP_INHERIT): the input record's timestamp */
  nd_bytes key;
  nd_bytes data;
  const nd_header* headers;
  uint32_t header_count;
  int inherit_headers; /* non-zero: the input record's headers instead of headers/header_count */
} nd_output;

static inline nd_output nd_output_new(void) {
  nd_output out;
  memset(&out, 0, sizeof out);
  out.timestamp_us = ND_TIMESTAMP_INHERIT;
  out.key.ptr = out.data.ptr = (const uint8_t*)"";
  return out;
}

/* ---- the host (module "nodata") ---- */
__attribute__((import_module("nodata"), import_name("batch_read"))) int32_t nd__host_batch_read(
    void* ptr, int32_t len);
__attribute__((import_module("nodata"), import_name("emit"))) int32_t nd__host_emit(int32_t output,
                                                                                    const void* ptr,
                                                                                    int32_t len);
__attribute__((import_module("nodata"), import_name("config"))) int32_t nd__host_config(void* ptr,
                                                                                        int32_t len);
__attribute__((import_module("nodata"), import_name("log"))) void nd__host_log(int32_t level,
                                                                               const void* ptr,
                                                                               int32_t len);

/* ---- helpers ---- */
static inline nd_bytes nd_bytes_of(const void* ptr, size_t len) {
  nd_bytes b;
  b.ptr = (const uint8_t*)ptr;
  b.len = (uint32_t)len;
  return b;
}
static inline nd_bytes nd_str(const char* s) { return nd_bytes_of(s, strlen(s)); }
static inline int nd_bytes_eq(nd_bytes a, nd_bytes b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}
/* Whether `needle` occurs in `hay` (an empty needle occurs everywhere). */
static inline int nd_bytes_contains(nd_bytes hay, nd_bytes needle) {
  if (needle.len == 0) return 1;
  if (needle.len > hay.len) return 0;
  for (uint32_t i = 0; i + needle.len <= hay.len; ++i) {
    if (hay.ptr[i] == needle.ptr[0] && memcmp(hay.ptr + i, needle.ptr, needle.len) == 0) return 1;
  }
  return 0;
}
static inline int nd_bytes_starts_with(nd_bytes b, nd_bytes prefix) {
  return prefix.len <= b.len && (prefix.len == 0 || memcmp(b.ptr, prefix.ptr, prefix.len) == 0);
}

static inline uint32_t nd__u32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t nd__u64(const uint8_t* p) {
  return (uint64_t)nd__u32(p) | (uint64_t)nd__u32(p + 4) << 32;
}
static inline void nd__put_u32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static inline void nd__put_u64(uint8_t* p, uint64_t v) {
  nd__put_u32(p, (uint32_t)v);
  nd__put_u32(p + 4, (uint32_t)(v >> 32));
}

/* Writes a length-prefixed byte string at p; returns the end. */
static inline uint8_t* nd__put_bytes(uint8_t* p, nd_bytes b) {
  nd__put_u32(p, b.len);
  if (b.len) memcpy(p + 4, b.ptr, b.len);
  return p + 4 + b.len;
}

/* Reads a length-prefixed byte string at *p (before end); 0 when it does not fit. */
static inline int nd__take_bytes(const uint8_t** p, const uint8_t* end, nd_bytes* out) {
  if (end - *p < 4) return 0;
  uint32_t len = nd__u32(*p);
  *p += 4;
  if ((size_t)(end - *p) < len) return 0;
  out->ptr = *p;
  out->len = len;
  *p += len;
  return 1;
}

/* The i-th header of a record (0-based); 0 when i is out of range. Linear in i. */
static inline int nd_header_at(const nd_record* r, uint32_t i, nd_header* out) {
  if (i >= r->header_count) return 0;
  const uint8_t* p = r->headers_;
  const uint8_t* end = p + r->headers_len_;
  for (uint32_t k = 0; k <= i; ++k) {
    if (!nd__take_bytes(&p, end, &out->name) || !nd__take_bytes(&p, end, &out->value)) return 0;
  }
  return 1;
}
/* The value of the first header called `name`; 0 when there is none. */
static inline int nd_header_find(const nd_record* r, nd_bytes name, nd_bytes* value) {
  nd_header h;
  for (uint32_t i = 0; nd_header_at(r, i, &h); ++i) {
    if (nd_bytes_eq(h.name, name)) {
      *value = h.value;
      return 1;
    }
  }
  return 0;
}

/* ---- configuration and log ---- */

/* The component's configuration bytes (given at registration; empty by default). Read from the
 * host once and kept; ptr is never NULL. */
static inline nd_bytes nd_config(void) {
  static uint8_t* cached;
  static uint32_t cached_len;
  static int loaded;
  if (!loaded) {
    int32_t len = nd__host_config(NULL, 0);
    if (len > 0) {
      cached = (uint8_t*)malloc((size_t)len);
      if (cached == NULL) return nd_bytes_of("", 0);
      int32_t got = nd__host_config(cached, len);
      cached_len = (uint32_t)(got < len ? (got < 0 ? 0 : got) : len);
    }
    loaded = 1;
  }
  return cached != NULL ? nd_bytes_of(cached, cached_len) : nd_bytes_of("", 0);
}

static inline void nd_log_bytes(int level, nd_bytes msg) {
  nd__host_log(level, msg.ptr, (int32_t)msg.len);
}
static inline void nd_log(int level, const char* msg) { nd_log_bytes(level, nd_str(msg)); }
/* printf-style; lines longer than 1 KiB are cut. */
__attribute__((format(printf, 2, 3))) static inline void nd_logf(int level, const char* fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  nd__host_log(level, line, n < (int)sizeof line ? n : (int)sizeof line - 1);
}

/* ---- emitting ---- */

/* Grows *buf to at least `need` bytes; 0 on allocation failure (the old buffer stays valid). */
static inline int nd__reserve(uint8_t** buf, size_t* cap, size_t need) {
  if (need <= *cap) return 1;
  size_t n = *cap < 256 ? 256 : *cap;
  while (n < need) n = n > SIZE_MAX / 2 ? need : n * 2;
  uint8_t* p = (uint8_t*)realloc(*buf, n);
  if (p == NULL) return 0;
  *buf = p;
  *cap = n;
  return 1;
}

/* Publishes `out` to output topic `output` (0-based, in registration order), derived from `in`.
 * Returns ND_OK or a negative ND_ERR_*. */
static inline int nd_emit_output(const nd_record* in, uint32_t output, const nd_output* out) {
  static uint8_t* buf;
  static size_t cap;
  /* Sizes are summed in 64 bits: each part is below 4 GiB, so no overflow. */
  uint64_t size = 4 + 8 + 4 + (uint64_t)out->key.len + 4 + out->data.len + 4;
  if (out->inherit_headers) {
    size += in->headers_len_;
  } else {
    for (uint32_t i = 0; i < out->header_count; ++i) {
      size += 8 + (uint64_t)out->headers[i].name.len + out->headers[i].value.len;
    }
  }
  if (size > INT32_MAX) return ND_ERR_TOO_LARGE;
  if (!nd__reserve(&buf, &cap, (size_t)size)) return ND_ERR_NO_MEMORY;
  uint8_t* p = buf;
  nd__put_u32(p, in->index);
  nd__put_u64(p + 4, (uint64_t)(out->timestamp_us < 0 ? ND_TIMESTAMP_INHERIT : out->timestamp_us));
  p = nd__put_bytes(p + 12, out->key);
  p = nd__put_bytes(p, out->data);
  if (out->inherit_headers) {
    /* The input's encoded headers are already in the output layout: one copy. */
    nd__put_u32(p, in->header_count);
    if (in->headers_len_) memcpy(p + 4, in->headers_, in->headers_len_);
  } else {
    nd__put_u32(p, out->header_count);
    p += 4;
    for (uint32_t i = 0; i < out->header_count; ++i) {
      p = nd__put_bytes(p, out->headers[i].name);
      p = nd__put_bytes(p, out->headers[i].value);
    }
  }
  return nd__host_emit((int32_t)output, buf, (int32_t)size);
}

/* An output with the given key and data, no headers, the input's timestamp. */
static inline int nd_emit(const nd_record* in, uint32_t output, nd_bytes key, nd_bytes data) {
  nd_output out = nd_output_new();
  out.key = key;
  out.data = data;
  return nd_emit_output(in, output, &out);
}

/* The input record unchanged (key, data, headers, timestamp) to `output`. */
static inline int nd_forward(const nd_record* in, uint32_t output) {
  nd_output out = nd_output_new();
  out.key = in->key;
  out.data = in->data;
  out.inherit_headers = 1;
  return nd_emit_output(in, output, &out);
}

/* ---- the batch ---- */

/* Decodes the record at *p (before end) into r; 0 when the bytes do not match the layout. */
static inline int nd__take_record(const uint8_t** p, const uint8_t* end, nd_record* r) {
  if (end - *p < 4 + 8 + 8) return 0;
  r->partition = nd__u32(*p);
  r->offset = nd__u64(*p + 4);
  r->timestamp_us = (int64_t)nd__u64(*p + 12);
  *p += 20;
  if (!nd__take_bytes(p, end, &r->key) || !nd__take_bytes(p, end, &r->data)) return 0;
  if (end - *p < 4) return 0;
  r->header_count = nd__u32(*p);
  *p += 4;
  /* Each header takes at least 8 bytes: a count beyond that cannot be real. */
  if (r->header_count > (size_t)(end - *p) / 8) return 0;
  r->headers_ = *p;
  nd_bytes skip;
  for (uint32_t i = 0; i < r->header_count; ++i) {
    if (!nd__take_bytes(p, end, &skip) || !nd__take_bytes(p, end, &skip)) return 0;
  }
  r->headers_len_ = (uint32_t)(*p - r->headers_);
  return 1;
}

typedef int (*nd_record_fn)(const nd_record* in);
typedef int (*nd_init_fn)(void);

/* The body of nd_process: read, check, then run `fn` on each record. */
static inline int nd__process(int32_t batch_bytes, nd_record_fn fn) {
  static uint8_t* buf;
  static size_t cap;
  if (batch_bytes < 4) return ND_ERR_BAD_BATCH;
  if (!nd__reserve(&buf, &cap, (size_t)batch_bytes)) return ND_ERR_NO_MEMORY;
  if (nd__host_batch_read(buf, batch_bytes) != batch_bytes) return ND_ERR_BAD_BATCH;
  const uint8_t* end = buf + batch_bytes;
  uint32_t count = nd__u32(buf);
  /* Each record takes at least 32 bytes. */
  if (count > (uint32_t)(batch_bytes - 4) / 32) return ND_ERR_BAD_BATCH;
  nd_record r;
  const uint8_t* p = buf + 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (!nd__take_record(&p, end, &r)) return ND_ERR_BAD_BATCH;
  }
  if (p != end) return ND_ERR_BAD_BATCH; /* trailing bytes */
  p = buf + 4;
  for (uint32_t i = 0; i < count; ++i) {
    nd__take_record(&p, end, &r);
    r.index = i;
    int rc = fn(&r);
    if (rc != 0) return rc;
  }
  return ND_OK;
}

/* Constructors run once per instance: by the WASI reactor's `_initialize` when the host calls it
 * (before nd_init), otherwise by nd_init itself. */
extern void __wasm_call_ctors(void);
static int nd__ctors_ran;
__attribute__((constructor)) static void nd__mark_ctors(void) { nd__ctors_ran = 1; }
static inline int nd__init(nd_init_fn fn) {
  if (!nd__ctors_ran) __wasm_call_ctors();
  return fn != NULL ? fn() : 0;
}

#ifdef __cplusplus
}
#define ND__EXTERN_C extern "C"
#else
#define ND__EXTERN_C
#endif

/* Defines the module's exports; use in exactly one translation unit. `init` (int (*)(void),
 * may read nd_config()) runs once per instance; non-zero fails the component. */
#define NODATA_COMPONENT_WITH_INIT(init, process)                                                 \
  ND__EXTERN_C __attribute__((export_name("nodata_component_v1"))) void nodata_component_v1(void) {} \
  ND__EXTERN_C __attribute__((export_name("nd_init"))) int32_t nd_init(void) {                    \
    return nd__init(init);                                                                        \
  }                                                                                               \
  ND__EXTERN_C __attribute__((export_name("nd_process"))) int32_t nd_process(int32_t batch_bytes) { \
    return nd__process(batch_bytes, process);                                                     \
  }
#define NODATA_COMPONENT(process) NODATA_COMPONENT_WITH_INIT(NULL, process)

#endif /* NODATA_COMPONENT_H_ */
