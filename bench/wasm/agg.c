/* The routine of the WebAssembly benchmark (bench/wasm/run): per-key sum and count of a batch of
 * 16-byte records { uint64 key; int64 value; } folded into an open-addressing hash table (linear
 * probing, multiplicative hash, AGG_CAPACITY slots) in static storage.
 *
 * Freestanding C, no libc. The same source builds two ways (bench/wasm/CMakeLists.txt):
 *   - natively into the driver (gcc -O2): functions agg_input_buffer, agg_aggregate, ... (agg.h);
 *   - to wasm32 (clang --target=wasm32 -O2 -nostdlib): the same functions exported as
 *     input_buffer, aggregate, sum_of, count_of, dropped, checksum, reset, plus the memory.
 * Pointers are the portable part: natively aggregate() takes a host pointer; in wasm32 a pointer
 * is an i32 address in linear memory, so the export is aggregate(i32 ptr, i32 count) -> i32 and
 * input_buffer() -> i32 is the address the host writes records to. */
#include "agg.h"

#ifdef __wasm__
#define AGG_EXPORT(name) __attribute__((export_name(name)))
#else
#define AGG_EXPORT(name)
#endif

/* A slot is empty while its count is 0 (every key in the table has been seen at least once). */
struct agg_slot {
  uint64_t key;
  uint64_t sum; /* unsigned: sums wrap, as int64 addition in wasm does */
  uint64_t count;
};

static struct agg_slot table[AGG_CAPACITY];
static struct agg_record input[AGG_INPUT_RECORDS];
static uint32_t distinct;
static uint64_t dropped;

static inline uint32_t slot_of(uint64_t key) {
  return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> (64u - AGG_CAPACITY_LOG2));
}

/* The slot holding `key`, or the empty slot where it would go. The table never fills up (at most
 * AGG_MAX_KEYS keys), so the probe ends. */
static inline struct agg_slot* find(uint64_t key) {
  uint32_t i = slot_of(key);
  for (;;) {
    struct agg_slot* s = &table[i];
    if (s->count == 0 || s->key == key) return s;
    i = (i + 1u) & (AGG_CAPACITY - 1u);
  }
}

AGG_EXPORT("input_buffer")
struct agg_record* agg_input_buffer(void) { return input; }

AGG_EXPORT("aggregate")
uint32_t agg_aggregate(const struct agg_record* records, uint32_t count) {
  for (uint32_t r = 0; r < count; ++r) {
    const uint64_t key = records[r].key;
    struct agg_slot* s = find(key);
    if (s->count == 0) {
      if (distinct >= AGG_MAX_KEYS) {
        ++dropped;
        continue;
      }
      s->key = key;
      ++distinct;
    }
    s->sum += (uint64_t)records[r].value;
    s->count += 1;
  }
  return distinct;
}

AGG_EXPORT("sum_of")
int64_t agg_sum_of(uint64_t key) {
  const struct agg_slot* s = find(key);
  return s->count ? (int64_t)s->sum : 0;
}

AGG_EXPORT("count_of")
int64_t agg_count_of(uint64_t key) { return (int64_t)find(key)->count; }

AGG_EXPORT("dropped")
int64_t agg_dropped(void) { return (int64_t)dropped; }

AGG_EXPORT("checksum")
int64_t agg_checksum(void) {
  uint64_t c = dropped;
  for (uint32_t i = 0; i < AGG_CAPACITY; ++i) {
    const struct agg_slot* s = &table[i];
    if (s->count) c += s->key * 31u + s->sum + s->count;
  }
  return (int64_t)c;
}

AGG_EXPORT("reset")
void agg_reset(void) {
  /* A plain loop: built with -ffreestanding -fno-builtin, it is not turned into a memset call
   * (there is no libc to provide one in wasm). */
  for (uint32_t i = 0; i < AGG_CAPACITY; ++i) {
    table[i].key = 0;
    table[i].sum = 0;
    table[i].count = 0;
  }
  distinct = 0;
  dropped = 0;
}
