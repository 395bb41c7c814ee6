/* JSON field map: the data of each record is a JSON object; the value of its top-level field named
 * by the configuration goes to output 0 as the data, with the input's key, headers and timestamp.
 * - A string value is output decoded (its UTF-8 bytes, escapes resolved); any other value (number,
 *   true, false, null, object, array) as its JSON text, exactly as written in the input.
 * - A record without the field is skipped (no output, success).
 * - A record whose data is not one JSON object (bad syntax, another type, nesting deeper than 64, a
 *   lone UTF-16 surrogate in an escape) fails with ND_ERR_BAD_INPUT: the host dead-letters it.
 * - When the field occurs more than once the last one counts, as in JavaScript's JSON.parse.
 * Bytes of 0x80 and above inside strings are passed through as they are (not UTF-8-checked). */
#include <nodata/component.h>

#define kMaxDepth 64

typedef struct Scan {
  const uint8_t* p;
  const uint8_t* end;
} Scan;

static void SkipSpace(Scan* s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) ++s->p;
}

static int Hex4(Scan* s, uint32_t* out) {
  if (s->end - s->p < 4) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    uint8_t c = *s->p++;
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return 0;
  }
  *out = v;
  return 1;
}

/* A string at s->p (which is '"'), decoded into out when out is not NULL (it needs room for the
 * raw length: decoding never grows). */
static int String(Scan* s, uint8_t* out, uint32_t* out_len) {
  uint32_t n = 0;
  ++s->p;
  for (;;) {
    if (s->p == s->end) return 0;
    uint8_t c = *s->p++;
    if (c == '"') break;
    if (c < 0x20) return 0;
    if (c != '\\') {
      if (out) out[n] = c;
      ++n;
      continue;
    }
    if (s->p == s->end) return 0;
    c = *s->p++;
    uint32_t cp;
    switch (c) {
      case '"': case '\\': case '/': cp = c; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u': {
        if (!Hex4(s, &cp)) return 0;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t low;
          if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u') return 0;
          s->p += 2;
          if (!Hex4(s, &low) || low < 0xDC00 || low > 0xDFFF) return 0;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        break;
      }
      default: return 0;
    }
    uint8_t u[4];
    uint32_t k;
    if (cp < 0x80) { u[0] = (uint8_t)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (uint8_t)(0xC0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 0x3F)); k = 2; }
    else if (cp < 0x10000) {
      u[0] = (uint8_t)(0xE0 | cp >> 12); u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
      u[2] = (uint8_t)(0x80 | (cp & 0x3F)); k = 3;
    } else {
      u[0] = (uint8_t)(0xF0 | cp >> 18); u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
      u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); u[3] = (uint8_t)(0x80 | (cp & 0x3F)); k = 4;
    }
    if (out) memcpy(out + n, u, k);
    n += k;
  }
  if (out_len) *out_len = n;
  return 1;
}

static int Digits(Scan* s) {
  const uint8_t* start = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') ++s->p;
  return s->p > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int Number(Scan* s) {
  if (s->p < s->end && *s->p == '-') ++s->p;
  if (s->p == s->end) return 0;
  if (*s->p == '0') ++s->p;
  else if (!Digits(s)) return 0;
  if (s->p < s->end && *s->p == '.') {
    ++s->p;
    if (!Digits(s)) return 0;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    ++s->p;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) ++s->p;
    if (!Digits(s)) return 0;
  }
  return 1;
}

static int Literal(Scan* s, const char* word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return 0;
  s->p += n;
  return 1;
}

/* Any value at s->p, checked and skipped; `depth` containers are open around it. */
static int Value(Scan* s, int depth) {
  if (s->p == s->end) return 0;
  switch (*s->p) {
    case '"': return String(s, NULL, NULL);
    case 't': return Literal(s, "true");
    case 'f': return Literal(s, "false");
    case 'n': return Literal(s, "null");
    case '{': case '[': {
      uint8_t close = *s->p == '{' ? '}' : ']';
      if (++depth > kMaxDepth) return 0;
      ++s->p;
      SkipSpace(s);
      if (s->p < s->end && *s->p == close) { ++s->p; return 1; }
      for (;;) {
        if (close == '}') {
          if (s->p == s->end || *s->p != '"' || !String(s, NULL, NULL)) return 0;
          SkipSpace(s);
          if (s->p == s->end || *s->p++ != ':') return 0;
          SkipSpace(s);
        }
        if (!Value(s, depth)) return 0;
        SkipSpace(s);
        if (s->p == s->end) return 0;
        uint8_t c = *s->p++;
        if (c == close) return 1;
        if (c != ',') return 0;
        SkipSpace(s);
      }
    }
    default: return Number(s);
  }
}

static uint8_t* scratch;
static size_t scratch_cap;

static int Process(const nd_record* in) {
  nd_bytes field = nd_config();
  /* Keys are decoded at scratch[0..], a string value at scratch[data.len..]. */
  size_t need = 2 * (size_t)in->data.len + 1;
  if (need > scratch_cap) {
    uint8_t* p = (uint8_t*)realloc(scratch, need);
    if (p == NULL) return ND_ERR_NO_MEMORY;
    scratch = p;
    scratch_cap = need;
  }
  uint8_t* value_buf = scratch + in->data.len;
  Scan s = {in->data.ptr, in->data.ptr + in->data.len};
  int found = 0;
  nd_bytes value = nd_bytes_of("", 0);
  SkipSpace(&s);
  if (s.p == s.end || *s.p++ != '{') return ND_ERR_BAD_INPUT;
  SkipSpace(&s);
  if (s.p < s.end && *s.p == '}') {
    ++s.p;
  } else {
    for (;;) {
      uint32_t key_len;
      if (s.p == s.end || *s.p != '"' || !String(&s, scratch, &key_len)) return ND_ERR_BAD_INPUT;
      SkipSpace(&s);
      if (s.p == s.end || *s.p++ != ':') return ND_ERR_BAD_INPUT;
      SkipSpace(&s);
      if (nd_bytes_eq(nd_bytes_of(scratch, key_len), field)) {
        found = 1;
        if (s.p < s.end && *s.p == '"') {
          uint32_t n;
          if (!String(&s, value_buf, &n)) return ND_ERR_BAD_INPUT;
          value = nd_bytes_of(value_buf, n);
        } else {
          const uint8_t* start = s.p;
          if (!Value(&s, 1)) return ND_ERR_BAD_INPUT;
          value = nd_bytes_of(start, (size_t)(s.p - start));
        }
      } else if (!Value(&s, 1)) {
        return ND_ERR_BAD_INPUT;
      }
      SkipSpace(&s);
      if (s.p == s.end) return ND_ERR_BAD_INPUT;
      uint8_t c = *s.p++;
      if (c == '}') break;
      if (c != ',') return ND_ERR_BAD_INPUT;
      SkipSpace(&s);
    }
  }
  SkipSpace(&s);
  if (s.p != s.end) return ND_ERR_BAD_INPUT;
  if (!found) return ND_OK;
  nd_output out = nd_output_new();
  out.key = in->key;
  out.data = value;
  out.inherit_headers = 1;
  return nd_emit_output(in, 0, &out);
}

NODATA_COMPONENT(Process)
