/* Router with fan-out: every record goes unchanged to output 0 (the full stream) and to one routed
 * output, chosen by the configuration, a comma-separated list of
 *   PREFIX=N   keys starting with PREFIX go to output N (the first matching rule wins)
 *   hash=M     other keys go to output 1 + fnv1a32(key) % M (default M = 1: output 1)
 * e.g. "eu-=1,us-=2,hash=3". A configuration that does not parse fails nd_init. */
#include <nodata/component.h>

#define kMaxRules 64

typedef struct Rule {
  nd_bytes prefix;
  uint32_t output;
} Rule;

static Rule rules[kMaxRules];
static uint32_t rule_count;
static uint32_t hash_outputs = 1;

/* A decimal number in [min, 65535]; 0 when s is not one. */
static int ParseNumber(nd_bytes s, uint32_t min, uint32_t* out) {
  if (s.len == 0 || s.len > 5) return 0;
  uint32_t v = 0;
  for (uint32_t i = 0; i < s.len; ++i) {
    if (s.ptr[i] < '0' || s.ptr[i] > '9') return 0;
    v = v * 10 + (uint32_t)(s.ptr[i] - '0');
  }
  if (v < min || v > 65535) return 0;
  *out = v;
  return 1;
}

static int Init(void) {
  nd_bytes config = nd_config();
  uint32_t start = 0;
  while (start < config.len) {
    uint32_t end = start;
    while (end < config.len && config.ptr[end] != ',') ++end;
    nd_bytes entry = nd_bytes_of(config.ptr + start, end - start);
    uint32_t eq = 0;
    while (eq < entry.len && entry.ptr[eq] != '=') ++eq;
    if (eq == entry.len) {
      nd_logf(ND_LOG_ERROR, "router: entry %u has no '='", rule_count);
      return ND_ERR_BAD_INPUT;
    }
    nd_bytes name = nd_bytes_of(entry.ptr, eq);
    nd_bytes number = nd_bytes_of(entry.ptr + eq + 1, entry.len - eq - 1);
    if (nd_bytes_eq(name, nd_str("hash"))) {
      if (!ParseNumber(number, 1, &hash_outputs)) {
        nd_log(ND_LOG_ERROR, "router: hash=M needs 1 <= M <= 65535");
        return ND_ERR_BAD_INPUT;
      }
    } else {
      if (rule_count == kMaxRules || !ParseNumber(number, 0, &rules[rule_count].output)) {
        nd_log(ND_LOG_ERROR, "router: bad PREFIX=N rule (N <= 65535, at most 64 rules)");
        return ND_ERR_BAD_INPUT;
      }
      rules[rule_count++].prefix = name;  // points into nd_config(), kept for the instance
    }
    start = end + 1;
  }
  return ND_OK;
}

static uint32_t Fnv1a32(nd_bytes b) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < b.len; ++i) h = (h ^ b.ptr[i]) * 16777619u;
  return h;
}

static int Process(const nd_record* in) {
  int rc = nd_forward(in, 0);
  if (rc != ND_OK) return rc;
  for (uint32_t i = 0; i < rule_count; ++i) {
    if (nd_bytes_starts_with(in->key, rules[i].prefix)) return nd_forward(in, rules[i].output);
  }
  return nd_forward(in, 1 + Fnv1a32(in->key) % hash_outputs);
}

NODATA_COMPONENT_WITH_INIT(Init, Process)
