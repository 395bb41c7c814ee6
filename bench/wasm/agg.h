/* The aggregation routine of the WebAssembly benchmark (agg.c), as the native build exposes it.
 * Under wasm the same functions are exported without the agg_ prefix (see agg.c). */
#ifndef NODATA_BENCH_WASM_AGG_H_
#define NODATA_BENCH_WASM_AGG_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One input record: 16 bytes, little-endian, no padding. */
struct agg_record {
  uint64_t key;
  int64_t value;
};

/* Records the static input buffer holds; aggregate() takes at most this many at once. */
#define AGG_INPUT_RECORDS 65536u
/* Hash table slots (a power of two); new keys are dropped once AGG_MAX_KEYS are in the table. */
#define AGG_CAPACITY_LOG2 18u
#define AGG_CAPACITY (1u << AGG_CAPACITY_LOG2)
#define AGG_MAX_KEYS (AGG_CAPACITY / 8u * 7u)

/* The static input buffer (in wasm: its address in linear memory). */
struct agg_record* agg_input_buffer(void);
/* Folds `count` records at `records` into the table; returns the number of distinct keys so far. */
uint32_t agg_aggregate(const struct agg_record* records, uint32_t count);
/* Sum and count of `key` (0 and 0 if it was never seen). */
int64_t agg_sum_of(uint64_t key);
int64_t agg_count_of(uint64_t key);
/* Records whose key was dropped because the table was full (0 unless over AGG_MAX_KEYS keys). */
int64_t agg_dropped(void);
/* Sum over keys of key * 31 + sum + count (wrapping), plus dropped: independent of slot order. */
int64_t agg_checksum(void);
/* Empties the table. */
void agg_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* NODATA_BENCH_WASM_AGG_H_ */
