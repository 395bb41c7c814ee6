#include "parquet/writer.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <deque>
#include <functional>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "common/strings.h"
#include "parquet/format/parquet_types.h"
#include "parquet/internal/codec.h"
#include "parquet/internal/encoding.h"
#include "parquet/internal/schema.h"
#include "parquet/internal/thrift_io.h"

namespace nodata::parquet {
namespace {

using internal::kLeaves;
using internal::kMaxLeaves;
using internal::kNumLeaves;
using internal::Leaf;
using internal::LeafSpec;

constexpr std::string_view kMagic = "PAR1";
// After a column chunk's dictionary overflows dictionary_max_bytes, the next this many chunks of
// the column are written without trying one.
constexpr int kDictionaryRetryRowGroups = 8;

// Unsigned byte-wise order, the Parquet sort order for BYTE_ARRAY and STRING.
// Compares 8-byte words inline first: statistics compare every value of a PLAIN column against
// the running min and max, and values often share a prefix longer than a library call is worth.
bool BytesLess(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) {
      if constexpr (std::endian::native == std::endian::little) {
        x = __builtin_bswap64(x);
        y = __builtin_bswap64(y);
      }
      return x < y;
    }
  }
  int c = std::memcmp(a.data() + i, b.data() + i, n - i);
  return c < 0 || (c == 0 && a.size() < b.size());
}

void PutFixed32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutFixed64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
// An integer statistics bound, PLAIN-encoded for the column's physical type.
std::string FixedInt(const LeafSpec& spec, int64_t v) {
  std::string s;
  if (spec.is_int32) {
    PutFixed32(static_cast<uint32_t>(v), &s);
  } else {
    PutFixed64(static_cast<uint64_t>(v), &s);
  }
  return s;
}

bool IsInt(const LeafSpec& spec) { return spec.is_int64 || spec.is_int32; }

// A lower bound of `v` at most `limit` bytes long (cut on a UTF-8 character
// boundary).
std::string TruncateMin(std::string_view v, size_t limit, bool utf8) {
  if (v.size() <= limit) return std::string(v);
  size_t n = limit;
  while (utf8 && n > 0 && (static_cast<uint8_t>(v[n]) & 0xC0) == 0x80) --n;
  return std::string(v.substr(0, n));
}

// An upper bound of `v` at most `limit` bytes long: a prefix whose last byte is
// incremented. For UTF-8 only an ASCII byte is incremented so the bound stays
// valid UTF-8.
std::optional<std::string> TruncateMax(std::string_view v, size_t limit, bool utf8) {
  if (v.size() <= limit) return std::string(v);
  std::string s(v.substr(0, limit));
  const uint8_t cap = utf8 ? 0x7f : 0xff;
  while (!s.empty()) {
    auto last = static_cast<uint8_t>(s.back());
    if (last < cap) {
      s.back() = static_cast<char>(last + 1);
      return s;
    }
    s.pop_back();
  }
  return std::nullopt;
}

// Min, max and null count of a page or a column chunk.
struct StatsAccumulator {
  bool has_value = false;
  int64_t int_min = 0, int_max = 0;
  std::string_view bytes_min, bytes_max;
  int64_t null_count = 0;

  void AddInt(int64_t v) {
    if (!has_value || v < int_min) int_min = v;
    if (!has_value || v > int_max) int_max = v;
    has_value = true;
  }
  void AddBytes(std::string_view v) {
    if (!has_value || BytesLess(v, bytes_min)) bytes_min = v;
    if (!has_value || BytesLess(bytes_max, v)) bytes_max = v;
    has_value = true;
  }
  void Merge(const StatsAccumulator& o, bool is_int) {
    null_count += o.null_count;
    if (!o.has_value) return;
    if (is_int) {
      AddInt(o.int_min);
      AddInt(o.int_max);
    } else {
      AddBytes(o.bytes_min);
      AddBytes(o.bytes_max);
    }
  }

  format::Statistics ToThrift(const LeafSpec& spec, size_t limit) const {
    format::Statistics s;
    s.__set_null_count(null_count);
    if (!has_value) return s;
    if (IsInt(spec)) {
      s.__set_min_value(FixedInt(spec, int_min));
      s.__set_max_value(FixedInt(spec, int_max));
      s.__set_is_min_value_exact(true);
      s.__set_is_max_value_exact(true);
      return s;
    }
    s.__set_min_value(TruncateMin(bytes_min, limit, spec.is_utf8));
    s.__set_is_min_value_exact(s.min_value.size() == bytes_min.size());
    if (auto max = TruncateMax(bytes_max, limit, spec.is_utf8)) {
      s.__set_max_value(*max);
      s.__set_is_max_value_exact(max->size() == bytes_max.size() && *max == bytes_max);
    }
    return s;
  }
};

// The distinct values of a byte-array column chunk in first-seen order, found by an
// open-addressing hash table over their indices; values are copied into an own arena. Built
// while rows are buffered, so that each value is hashed once. Not thread-safe.
class DictionaryBuilder {
 public:
  static constexpr uint32_t kAbsent = UINT32_MAX;

  // The index of `v`, added when new; kAbsent when adding it would make the dictionary's PLAIN
  // size (4 + length per entry) exceed `max_plain_bytes`.
  uint32_t IndexOf(std::string_view v, uint64_t max_plain_bytes) {
    const uint64_t hash = std::hash<std::string_view>()(v);
    size_t slot = hash & mask_;
    if (!slots_.empty()) {
      for (; slots_[slot] != 0; slot = (slot + 1) & mask_) {
        const uint32_t e = slots_[slot] - 1;
        if (hashes_[e] == hash && value(e) == v) return e;
      }
    }
    if (plain_bytes_ + 4 + v.size() > max_plain_bytes) return kAbsent;
    const auto e = static_cast<uint32_t>(starts_.size());
    starts_.push_back(arena_.size());
    arena_.append(v);
    hashes_.push_back(hash);
    plain_bytes_ += 4 + v.size();
    if (slots_.empty() || 2 * (e + 1) > slots_.size()) {
      Rehash();  // keeps the load at most 1/2; places `e` too
    } else {
      slots_[slot] = e + 1;
    }
    return e;
  }

  size_t size() const { return starts_.size(); }
  uint64_t plain_bytes() const { return plain_bytes_; }
  std::string_view value(uint32_t e) const {
    const size_t end = e + 1 < starts_.size() ? starts_[e + 1] : arena_.size();
    return std::string_view(arena_).substr(starts_[e], end - starts_[e]);
  }
  // Empties the dictionary, keeping its memory.
  void Clear() {
    arena_.clear();
    starts_.clear();
    hashes_.clear();
    std::fill(slots_.begin(), slots_.end(), 0);
    plain_bytes_ = 0;
  }

 private:
  void Rehash() {
    const size_t capacity = std::max<size_t>(1024, std::bit_ceil(4 * starts_.size()));
    slots_.assign(capacity, 0);
    mask_ = capacity - 1;
    for (uint32_t e = 0; e < starts_.size(); ++e) {
      size_t slot = hashes_[e] & mask_;
      while (slots_[slot] != 0) slot = (slot + 1) & mask_;
      slots_[slot] = e + 1;
    }
  }

  std::string arena_;
  std::vector<size_t> starts_;
  std::vector<uint64_t> hashes_;
  std::vector<uint32_t> slots_;  // entry index + 1; 0 is empty
  size_t mask_ = 0;
  uint64_t plain_bytes_ = 0;
};

// One leaf column of the buffered row group, shredded into levels and non-null values. Levels
// are kept only for columns whose max level is above 0 (required columns have one value per
// row), row starts only for repeated columns. Clear keeps the memory for the next row group.
struct ColumnBuffer {
  std::vector<uint32_t> def, rep;
  std::vector<size_t> row_starts;  // index of each row's first level
  size_t num_levels = 0;
  std::vector<int64_t> ints;
  // Byte-array values: value i is bytes[ends[i - 1], ends[i]).
  std::string bytes;
  std::vector<size_t> ends;
  // While the chunk's distinct values fit dictionary_max_bytes: each value's dictionary index.
  // The writer starts a chunk without a dictionary when recent ones overflowed theirs.
  bool dict_alive = true;
  bool dict_overflowed = false;
  DictionaryBuilder dict;
  std::vector<uint32_t> indices;

  size_t num_values() const { return ints.size() + ends.size(); }
  std::string_view value(size_t i) const {
    const size_t begin = i == 0 ? 0 : ends[i - 1];
    return std::string_view(bytes).substr(begin, ends[i] - begin);
  }
  void AddBytes(std::string_view v, uint64_t dictionary_max_bytes) {
    bytes.append(v);
    ends.push_back(bytes.size());
    if (!dict_alive) return;
    const uint32_t e = dict.IndexOf(v, dictionary_max_bytes);
    if (e == DictionaryBuilder::kAbsent) {
      dict_alive = false;
      dict_overflowed = true;
      indices.clear();
      return;
    }
    indices.push_back(e);
  }
  void Clear() {
    def.clear();
    rep.clear();
    row_starts.clear();
    num_levels = 0;
    ints.clear();
    bytes.clear();
    ends.clear();
    dict_alive = true;
    dict_overflowed = false;
    dict.Clear();
    indices.clear();
  }
};

format::SchemaElement LeafElement(std::string name, format::Type type,
                                  format::FieldRepetitionType repetition) {
  format::SchemaElement e;
  e.__set_name(std::move(name));
  e.__set_type(type);
  e.__set_repetition_type(repetition);
  return e;
}

format::SchemaElement Timestamp(std::string name) {
  auto e = LeafElement(std::move(name), format::Type::INT64, format::FieldRepetitionType::REQUIRED);
  e.__set_converted_type(format::ConvertedType::TIMESTAMP_MICROS);
  format::TimeUnit unit;
  unit.__set_MICROS(format::MicroSeconds());
  format::TimestampType ts;
  ts.__set_isAdjustedToUTC(true);
  ts.__set_unit(unit);
  format::LogicalType logical;
  logical.__set_TIMESTAMP(ts);
  e.__set_logicalType(logical);
  return e;
}

// A BYTE_ARRAY column annotated for its format: STRING (converted type UTF8) for text, JSON
// (converted type JSON) for JSON documents, nothing for bytes.
format::SchemaElement ByteArray(std::string name, format::FieldRepetitionType repetition,
                                DataFormat data_format) {
  auto e = LeafElement(std::move(name), format::Type::BYTE_ARRAY, repetition);
  format::LogicalType logical;
  switch (data_format) {
    case DataFormat::kBytes:
      return e;
    case DataFormat::kString:
      e.__set_converted_type(format::ConvertedType::UTF8);
      logical.__set_STRING(format::StringType());
      break;
    case DataFormat::kJson:
      e.__set_converted_type(format::ConvertedType::JSON);
      logical.__set_JSON(format::JsonType());
      break;
  }
  e.__set_logicalType(logical);
  return e;
}

format::SchemaElement String(std::string name, format::FieldRepetitionType repetition) {
  return ByteArray(std::move(name), repetition, DataFormat::kString);
}

std::vector<format::SchemaElement> BuildSchema(const WriterOptions& options) {
  using R = format::FieldRepetitionType;
  std::vector<format::SchemaElement> schema;
  format::SchemaElement root;
  root.__set_name("schema");
  root.__set_num_children(options.partition_column ? 8 : 7);
  schema.push_back(root);
  schema.push_back(LeafElement("offset", format::Type::INT64, R::REQUIRED));
  schema.push_back(Timestamp("timestamp"));
  schema.push_back(Timestamp("ingest_time"));
  schema.push_back(String("id", R::REQUIRED));
  schema.push_back(ByteArray("key", R::OPTIONAL, options.key_format));
  schema.push_back(ByteArray("data", R::REQUIRED, options.data_format));
  // The standard three-level MAP (LogicalTypes.md).
  format::SchemaElement headers;
  headers.__set_name("headers");
  headers.__set_repetition_type(R::OPTIONAL);
  headers.__set_num_children(1);
  headers.__set_converted_type(format::ConvertedType::MAP);
  format::LogicalType map;
  map.__set_MAP(format::MapType());
  headers.__set_logicalType(map);
  schema.push_back(headers);
  format::SchemaElement key_value;
  key_value.__set_name("key_value");
  key_value.__set_repetition_type(R::REPEATED);
  key_value.__set_num_children(2);
  schema.push_back(key_value);
  schema.push_back(String("key", R::REQUIRED));
  schema.push_back(String("value", R::OPTIONAL));
  if (options.partition_column) {
    schema.push_back(LeafElement(std::string(internal::kPartitionLeaf.path), format::Type::INT32,
                                 R::REQUIRED));
  }
  return schema;
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.emplace_back(path.substr(start, dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts;
}

void EncodeLevels(std::span<const uint32_t> levels, int max_level, std::string* out) {
  const size_t at = out->size();
  out->append(4, '\0');  // data page v1 length prefix
  internal::EncodeRleHybrid(levels, internal::BitWidth(max_level), out);
  const auto len = static_cast<uint32_t>(out->size() - at - 4);
  for (int i = 0; i < 4; ++i) (*out)[at + i] = static_cast<char>(len >> (8 * i));
}

// A page of a column chunk: encoded, then compressed, then written.
struct PendingPage {
  format::PageHeader header;  // without its sizes until written
  std::string body;
  std::string compressed;  // its first compressed_size bytes (the buffer is kept at its peak)
  size_t compressed_size = 0;
};

// A column chunk encoded into pages that wait for compression and their place in the file.
// The page buffers are kept for the next row group.
struct EncodedChunk {
  std::vector<std::unique_ptr<PendingPage>> pages;  // [0, num_pages) are this chunk's
  size_t num_pages = 0;
  bool use_dict = false;
  format::ColumnMetaData meta;  // without page offsets and sizes until written

  PendingPage& NewPage(format::PageHeader header) {
    if (num_pages == pages.size()) pages.push_back(std::make_unique<PendingPage>());
    PendingPage& page = *pages[num_pages++];
    page.header = std::move(header);
    page.body.clear();
    return page;
  }
};

// One row group: its rows shredded into columns, then its column chunks encoded. The writer
// has two, so that one fills while the other is encoded, compressed and written.
struct RowGroupBuffer {
  ColumnBuffer columns[kMaxLeaves];
  EncodedChunk chunks[kMaxLeaves];
  uint64_t rows = 0;

  void Clear() {
    for (ColumnBuffer& c : columns) c.Clear();
    for (EncodedChunk& c : chunks) c.num_pages = 0;
    rows = 0;
  }
};

// Shreds rows from the front of `rows` into `columns` (one per kLeaves entry, then the
// partition column when `partition_column`) until the row group is full: `*buffered_rows`
// reaches `max_rows` or `*buffered_bytes` (raw record bytes) reaches `max_bytes`. Returns the
// number of rows taken. One pass over the records, which are mostly out of cache.
size_t ShredRows(std::span<const Record> rows, uint64_t dict_max, uint64_t max_rows,
                 uint64_t max_bytes, bool partition_column, uint64_t* buffered_rows,
                 uint64_t* buffered_bytes, ColumnBuffer* columns) {
  ColumnBuffer& offset = columns[static_cast<int>(Leaf::kOffset)];
  ColumnBuffer& timestamp = columns[static_cast<int>(Leaf::kTimestamp)];
  ColumnBuffer& ingest = columns[static_cast<int>(Leaf::kIngestTime)];
  ColumnBuffer& id = columns[static_cast<int>(Leaf::kId)];
  ColumnBuffer& key = columns[static_cast<int>(Leaf::kKey)];
  ColumnBuffer& data = columns[static_cast<int>(Leaf::kData)];
  ColumnBuffer& header_key = columns[static_cast<int>(Leaf::kHeaderKey)];
  ColumnBuffer& header_value = columns[static_cast<int>(Leaf::kHeaderValue)];
  ColumnBuffer& partition = columns[static_cast<int>(Leaf::kPartition)];
  uint64_t num_rows = *buffered_rows, num_bytes = *buffered_bytes;
  size_t taken = 0;
  bool full = false;
  while (taken < rows.size() && !full) {
    const Record& r = rows[taken++];
    ++num_rows;
    num_bytes += 24 + r.id.size() + r.key.size() + r.data.size();
    offset.ints.push_back(r.offset);
    timestamp.ints.push_back(r.timestamp_us);
    ingest.ints.push_back(r.ingest_time_us);
    id.AddBytes(r.id, dict_max);
    if (r.key.empty()) {
      key.def.push_back(0);
    } else {
      key.def.push_back(1);
      key.AddBytes(r.key, dict_max);
    }
    data.AddBytes(r.data, dict_max);
    if (partition_column) partition.ints.push_back(r.partition);
    // The map's key and value columns; an empty header list is an empty (not null) map.
    header_key.row_starts.push_back(header_key.num_levels);
    header_value.row_starts.push_back(header_value.num_levels);
    if (r.headers.empty()) {
      for (ColumnBuffer* c : {&header_key, &header_value}) {
        c->def.push_back(1);
        c->rep.push_back(0);
        ++c->num_levels;
      }
    }
    for (size_t j = 0; j < r.headers.size(); ++j) {
      const auto& [k, v] = r.headers[j];
      num_bytes += k.size() + v.size();
      const uint32_t rep = j == 0 ? 0 : 1;
      header_key.def.push_back(2);
      header_key.rep.push_back(rep);
      header_key.AddBytes(k, dict_max);
      header_value.def.push_back(3);
      header_value.rep.push_back(rep);
      header_value.AddBytes(v, dict_max);
    }
    header_key.num_levels += r.headers.size();
    header_value.num_levels += r.headers.size();
    full = num_rows >= max_rows || num_bytes >= max_bytes;
  }
  for (ColumnBuffer* c : {&offset, &timestamp, &ingest, &id, &key, &data}) {
    c->num_levels += taken;
  }
  if (partition_column) partition.num_levels += taken;
  *buffered_rows = num_rows;
  *buffered_bytes = num_bytes;
  return taken;
}

// Appends the PLAIN encoding of values [begin, end) of `col` to `*out`.
void AppendPlain(const LeafSpec& spec, const ColumnBuffer& col, size_t begin, size_t end,
                 std::string* out) {
  if (begin == end) return;
  if (spec.is_int32) {
    const size_t at = out->size();
    out->resize(at + 4 * (end - begin));
    char* p = out->data() + at;
    for (size_t v = begin; v < end; ++v, p += 4) {
      for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<char>(static_cast<uint32_t>(col.ints[v]) >> (8 * i));
      }
    }
    return;
  }
  if (spec.is_int64) {
    const size_t at = out->size();
    out->resize(at + 8 * (end - begin));
    char* p = out->data() + at;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(p, col.ints.data() + begin, 8 * (end - begin));
    } else {
      for (size_t v = begin; v < end; ++v, p += 8) {
        for (int i = 0; i < 8; ++i) {
          p[i] = static_cast<char>(static_cast<uint64_t>(col.ints[v]) >> (8 * i));
        }
      }
    }
    return;
  }
  const size_t first = begin == 0 ? 0 : col.ends[begin - 1];
  const size_t at = out->size();
  out->resize(at + 4 * (end - begin) + (col.ends[end - 1] - first));
  char* p = out->data() + at;
  size_t prev = first;
  for (size_t v = begin; v < end; ++v) {
    const auto len = static_cast<uint32_t>(col.ends[v] - prev);
    for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(len >> (8 * i));
    std::memcpy(p + 4, col.bytes.data() + prev, len);
    p += 4 + len;
    prev = col.ends[v];
  }
}

// Encodes the column chunk of `col` (`num_rows` rows) into uncompressed pages and its metadata
// (all but page offsets and sizes). Touches only `*out`, so chunks may be encoded concurrently.
void EncodeColumnChunk(const LeafSpec& spec, const ColumnBuffer& col, size_t num_rows,
                       const WriterOptions& options, EncodedChunk* out) {
  out->num_pages = 0;
  const bool has_levels = spec.max_def > 0 || spec.max_rep > 0;
  format::ColumnMetaData meta;
  meta.__set_type(spec.is_int64   ? format::Type::INT64
                  : spec.is_int32 ? format::Type::INT32
                                  : format::Type::BYTE_ARRAY);
  meta.__set_path_in_schema(SplitPath(spec.path));
  meta.__set_codec(static_cast<format::CompressionCodec>(options.codec));
  meta.__set_num_values(static_cast<int64_t>(col.num_levels));
  meta.total_uncompressed_size = 0;
  meta.total_compressed_size = 0;

  // Dictionary encoding for byte arrays when it pays off: the dictionary was built while the
  // rows were buffered, and survived if it stayed within dictionary_max_bytes.
  const size_t num_values = col.num_values();
  bool use_dict = false;
  if (!IsInt(spec) && num_values > 0 && col.dict_alive) {
    const uint64_t plain_bytes = 4 * num_values + col.bytes.size();
    const uint64_t dict_bytes = col.dict.plain_bytes();
    const uint64_t index_bytes =
        num_values * static_cast<uint64_t>(internal::BitWidth(col.dict.size() - 1)) / 8 + 1;
    use_dict = static_cast<double>(dict_bytes + index_bytes) <
               options.dictionary_max_ratio * static_cast<double>(plain_bytes);
  }
  out->use_dict = use_dict;
  const auto data_encoding = use_dict ? format::Encoding::RLE_DICTIONARY : format::Encoding::PLAIN;
  const int index_width = use_dict ? std::max(1, internal::BitWidth(col.dict.size() - 1)) : 0;

  std::vector<format::PageEncodingStats> encoding_stats;
  // For dictionary columns, page statistics come from each entry's rank in byte order, so a
  // page's min and max are integer comparisons over its indices.
  std::vector<uint32_t> rank, by_rank;
  if (use_dict) {
    by_rank.resize(col.dict.size());
    for (uint32_t e = 0; e < by_rank.size(); ++e) by_rank[e] = e;
    std::sort(by_rank.begin(), by_rank.end(), [&](uint32_t a, uint32_t b) {
      return BytesLess(col.dict.value(a), col.dict.value(b));
    });
    rank.resize(by_rank.size());
    for (uint32_t r = 0; r < by_rank.size(); ++r) rank[by_rank[r]] = r;

    format::DictionaryPageHeader dict_header;
    dict_header.__set_num_values(static_cast<int32_t>(col.dict.size()));
    dict_header.__set_encoding(format::Encoding::PLAIN);
    format::PageHeader header;
    header.__set_type(format::PageType::DICTIONARY_PAGE);
    header.__set_dictionary_page_header(dict_header);
    std::string& body = out->NewPage(std::move(header)).body;
    for (uint32_t e = 0; e < col.dict.size(); ++e) {
      std::string_view v = col.dict.value(e);
      PutFixed32(static_cast<uint32_t>(v.size()), &body);
      body.append(v);
    }
    format::PageEncodingStats es;
    es.__set_page_type(format::PageType::DICTIONARY_PAGE);
    es.__set_encoding(format::Encoding::PLAIN);
    es.__set_count(1);
    encoding_stats.push_back(es);
  }

  const bool repeated = spec.max_rep > 0;
  const auto max_def = static_cast<uint32_t>(spec.max_def);
  // Level index where row `row` starts (levels == rows for non-repeated columns).
  auto row_start = [&](size_t row) { return repeated ? col.row_starts[row] : row; };
  StatsAccumulator chunk_stats;
  int32_t data_pages = 0;
  size_t value_pos = 0;
  size_t row = 0;
  while (row < num_rows) {
    // Cut the page at a row boundary once its values reach the target size (counted as PLAIN).
    const size_t level_begin = row_start(row);
    const size_t value_begin = value_pos;
    uint64_t page_bytes = 0;
    StatsAccumulator page_stats;
    uint32_t min_rank = UINT32_MAX, max_rank = 0;
    size_t level_end = level_begin;
    while (row < num_rows && (page_bytes < options.page_size_bytes || level_end == level_begin)) {
      const size_t row_end = row + 1 < num_rows ? row_start(row + 1) : col.num_levels;
      for (size_t l = level_end; l < row_end; ++l) {
        if (spec.max_def != 0 && col.def[l] != max_def) {
          ++page_stats.null_count;
          continue;
        }
        if (IsInt(spec)) {
          page_stats.AddInt(col.ints[value_pos]);
          page_bytes += spec.is_int32 ? 4 : 8;
        } else {
          const size_t begin = value_pos == 0 ? 0 : col.ends[value_pos - 1];
          page_bytes += 4 + (col.ends[value_pos] - begin);
          if (use_dict) {
            const uint32_t r = rank[col.indices[value_pos]];
            min_rank = std::min(min_rank, r);
            max_rank = std::max(max_rank, r);
          } else {
            page_stats.AddBytes(col.value(value_pos));
          }
        }
        ++value_pos;
      }
      level_end = row_end;
      ++row;
    }
    if (use_dict && value_pos > value_begin) {
      page_stats.AddBytes(col.dict.value(by_rank[min_rank]));
      page_stats.AddBytes(col.dict.value(by_rank[max_rank]));
    }
    const size_t levels = level_end - level_begin;
    format::DataPageHeader data_header;
    data_header.__set_num_values(static_cast<int32_t>(levels));
    data_header.__set_encoding(data_encoding);
    data_header.__set_definition_level_encoding(format::Encoding::RLE);
    data_header.__set_repetition_level_encoding(format::Encoding::RLE);
    data_header.__set_statistics(page_stats.ToThrift(spec, options.statistics_max_bytes));
    format::PageHeader header;
    header.__set_type(format::PageType::DATA_PAGE);
    header.__set_data_page_header(data_header);
    std::string& body = out->NewPage(std::move(header)).body;
    if (spec.max_rep > 0) {
      EncodeLevels(std::span(col.rep).subspan(level_begin, levels), spec.max_rep, &body);
    }
    if (spec.max_def > 0) {
      EncodeLevels(std::span(col.def).subspan(level_begin, levels), spec.max_def, &body);
    }
    if (use_dict) {
      body.push_back(static_cast<char>(index_width));
      internal::EncodeRleHybrid(
          std::span(col.indices).subspan(value_begin, value_pos - value_begin), index_width,
          &body);
    } else {
      AppendPlain(spec, col, value_begin, value_pos, &body);
    }
    ++data_pages;
    chunk_stats.Merge(page_stats, IsInt(spec));
  }
  format::PageEncodingStats es;
  es.__set_page_type(format::PageType::DATA_PAGE);
  es.__set_encoding(data_encoding);
  es.__set_count(data_pages);
  encoding_stats.push_back(es);

  std::vector<format::Encoding> encodings = {format::Encoding::PLAIN};
  if (has_levels) encodings.push_back(format::Encoding::RLE);
  if (use_dict) encodings.push_back(format::Encoding::RLE_DICTIONARY);
  meta.__set_encodings(encodings);
  meta.__set_statistics(chunk_stats.ToThrift(spec, options.statistics_max_bytes));
  meta.__set_encoding_stats(encoding_stats);
  out->meta = std::move(meta);
}

}  // namespace

// Rows are shredded by the calling thread into the filling RowGroupBuffer. A full one is handed
// over as a flush: a set of tasks (encode a column chunk; compress one of its pages) that the
// writer's threads-1 workers and, while it waits, the caller run in any order, each into its own
// slot; whoever finishes the last task writes the row group. So with threads > 1 the caller
// shreds row group N+1 while the workers flush row group N, and at most one flush is in flight.
// The file does not depend on which thread ran which task.
class Writer::Impl {
 public:
  Impl(std::unique_ptr<Sink> sink, const WriterOptions& options)
      : sink_(std::move(sink)),
        options_(options),
        num_columns_(options.partition_column ? kMaxLeaves : kNumLeaves) {
    std::copy(kLeaves.begin(), kLeaves.end(), specs_.begin());
    specs_[kNumLeaves] = internal::kPartitionLeaf;
    // Text and JSON bounds are cut on character boundaries, as for the STRING columns.
    specs_[static_cast<int>(Leaf::kKey)].is_utf8 = options.key_format != DataFormat::kBytes;
    specs_[static_cast<int>(Leaf::kData)].is_utf8 = options.data_format != DataFormat::kBytes;
    const int threads = std::max(1, options.threads);
    for (int t = 0; t < threads; ++t) {
      compressors_.push_back(std::make_unique<internal::Compressor>(
          static_cast<format::CompressionCodec>(options.codec), options.zstd_level));
    }
    for (auto& b : buffers_) b = std::make_unique<RowGroupBuffer>();
    for (int t = 1; t < threads; ++t) {
      workers_.emplace_back([this, t] { WorkerLoop(*compressors_[t]); });
    }
  }

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;  // workers finish a flush in flight first
    }
    for (std::thread& t : workers_) t.join();
  }

  absl::Status Start() { return Append(kMagic); }

  absl::Status WriteBatch(const std::vector<Record>& records) {
    RETURN_IF_ERROR(CheckUsable());
    return WriteRows(std::span(records));
  }

  absl::Status Write(const Record& r) {
    RETURN_IF_ERROR(CheckUsable());
    return WriteRows(std::span(&r, 1));
  }

  // Buffers `rows`, handing a row group over to be flushed whenever one reaches row_group_rows
  // or row_group_bytes (checked after each row).
  absl::Status WriteRows(std::span<const Record> rows) {
    while (!rows.empty()) {
      const size_t taken = ShredRows(rows, options_.dictionary_max_bytes, options_.row_group_rows,
                                     options_.row_group_bytes, options_.partition_column,
                                     &buffered_rows_, &buffered_bytes_,
                                     buffers_[filling_]->columns);
      rows = rows.subspan(taken);
      if (buffered_rows_ >= options_.row_group_rows ||
          buffered_bytes_ >= options_.row_group_bytes) {
        RETURN_IF_ERROR(StartFlush());
        if (workers_.empty()) RETURN_IF_ERROR(AwaitFlush());
      }
    }
    return absl::OkStatus();
  }

  absl::Status FlushRowGroup() {
    RETURN_IF_ERROR(CheckUsable());
    RETURN_IF_ERROR(StartFlush());
    return AwaitFlush();
  }

  absl::Status Close() {
    if (closed_) return absl::FailedPreconditionError("Parquet writer already closed");
    RETURN_IF_ERROR(FlushRowGroup());
    format::FileMetaData meta;
    meta.__set_version(1);
    meta.__set_schema(BuildSchema(options_));
    meta.__set_num_rows(static_cast<int64_t>(rows_written_.load()));
    meta.__set_row_groups(row_groups_);
    meta.__set_created_by(options_.created_by);
    std::vector<format::ColumnOrder> orders(num_columns_);
    for (auto& o : orders) o.__set_TYPE_ORDER(format::TypeDefinedOrder());
    meta.__set_column_orders(orders);
    std::string footer;
    RETURN_IF_ERROR(internal::SerializeFooter(meta, &footer));
    PutFixed32(static_cast<uint32_t>(footer.size()), &footer);
    footer.append(kMagic);
    absl::Status s = Append(footer);
    if (!s.ok()) {
      failed_ = s;
      return s;
    }
    closed_ = true;
    return sink_->Close();
  }

  uint64_t rows_written() const { return rows_written_.load(); }
  uint64_t bytes_written() const { return position_.load(); }

 private:
  // A unit of a flush: encode column chunk `column` (page < 0), or compress its page `page`.
  struct Task {
    int column;
    int page;
  };

  absl::Status CheckUsable() const {
    if (closed_) return absl::FailedPreconditionError("Parquet writer is closed");
    if (!failed_.ok()) {
      return absl::FailedPreconditionError(
          StrCat("Parquet writer failed earlier: ", ToStd(failed_.message())));
    }
    return absl::OkStatus();
  }

  // Appends to the sink: from the caller while no flush is in flight, else from the thread that
  // writes the row group.
  absl::Status Append(std::string_view data) {
    RETURN_IF_ERROR(sink_->Append(data));
    position_.fetch_add(data.size());
    return absl::OkStatus();
  }

  // Hands the buffered rows over as a flush (after the one in flight, if any, is done); a no-op
  // when none are buffered.
  absl::Status StartFlush() {
    RETURN_IF_ERROR(AwaitFlush());
    if (buffered_rows_ == 0) return absl::OkStatus();
    RowGroupBuffer& rg = *buffers_[filling_];
    rg.rows = buffered_rows_;
    buffered_rows_ = 0;
    buffered_bytes_ = 0;
    filling_ ^= 1;
    // A column whose dictionary overflowed (unique ids, payloads) is not hashed again for the
    // next kDictionaryRetryRowGroups row groups: hashing values that are mostly distinct is
    // wasted work, with a cache miss per value once the table outgrows the cache.
    for (int i = 0; i < num_columns_; ++i) {
      if (rg.columns[i].dict_overflowed) {
        dict_skip_[i] = kDictionaryRetryRowGroups;
      } else if (dict_skip_[i] > 0) {
        --dict_skip_[i];
      }
      buffers_[filling_]->columns[i].dict_alive = dict_skip_[i] == 0;
    }
    // Largest column chunks first, so that their pages are ready to compress early.
    int order[kMaxLeaves];
    uint64_t size[kMaxLeaves];
    for (int i = 0; i < num_columns_; ++i) {
      order[i] = i;
      size[i] = rg.columns[i].bytes.size() + 8 * rg.columns[i].ints.size();
    }
    std::stable_sort(order, order + num_columns_, [&](int a, int b) { return size[a] > size[b]; });
    absl::MutexLock lock(&mu_);
    flushing_ = &rg;
    flush_done_ = false;
    for (int i = 0; i < num_columns_; ++i) tasks_.push_back({order[i], -1});
    return absl::OkStatus();
  }

  // Waits until the flush in flight (if any) is written, running its tasks meanwhile; returns
  // its status. Only from the caller's thread.
  absl::Status AwaitFlush() {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      while (!flush_done_) {
        if (!tasks_.empty()) {
          RunTask(*compressors_[0]);
          continue;
        }
        mu_.Await(absl::Condition(this, &Impl::FlushDoneOrTaskReady));
      }
      status = flush_status_;
    }
    if (!status.ok()) failed_ = status;
    return status;
  }

  bool FlushDoneOrTaskReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return flush_done_ || !tasks_.empty();
  }
  bool StoppingOrTaskReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !tasks_.empty();
  }

  void WorkerLoop(internal::Compressor& compressor) {
    absl::MutexLock lock(&mu_);
    while (true) {
      mu_.Await(absl::Condition(this, &Impl::StoppingOrTaskReady));
      if (tasks_.empty()) return;  // stopping
      RunTask(compressor);
    }
  }

  // Runs the next task (tasks_ is not empty) with mu_ released; the thread that finishes a
  // flush's last task writes its row group.
  void RunTask(internal::Compressor& compressor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Task task = tasks_.front();
    tasks_.pop_front();
    ++running_;
    RowGroupBuffer& rg = *flushing_;
    const bool skip = !flush_status_.ok();
    absl::Status status;
    mu_.Unlock();
    EncodedChunk& chunk = rg.chunks[task.column];
    if (skip) {
    } else if (task.page < 0) {
      EncodeColumnChunk(specs_[task.column], rg.columns[task.column], rg.rows, options_, &chunk);
    } else {
      PendingPage& page = *chunk.pages[task.page];
      absl::StatusOr<size_t> size = compressor.CompressInto(page.body, &page.compressed);
      if (size.ok()) {
        page.compressed_size = *size;
      } else {
        status = size.status();
      }
    }
    mu_.Lock();
    if (!status.ok() && flush_status_.ok()) flush_status_ = status;
    if (task.page < 0 && !skip) {
      for (size_t p = 0; p < chunk.num_pages; ++p) {
        tasks_.push_back({task.column, static_cast<int>(p)});
      }
    }
    --running_;
    if (running_ > 0 || !tasks_.empty()) return;
    // The last task: no other thread touches the flush until flush_done_.
    status = flush_status_;
    mu_.Unlock();
    if (status.ok()) status = WriteRowGroup(rg);
    rg.Clear();
    mu_.Lock();
    if (flush_status_.ok()) flush_status_ = status;
    flushing_ = nullptr;
    flush_done_ = true;
  }

  // Writes the encoded and compressed column chunks of `rg` and records the row group for the
  // footer. Runs on one thread at a time (the one that finished the flush's last task).
  absl::Status WriteRowGroup(RowGroupBuffer& rg) {
    format::RowGroup group;
    group.__set_num_rows(static_cast<int64_t>(rg.rows));
    group.__set_file_offset(static_cast<int64_t>(position_.load()));
    group.__set_ordinal(static_cast<int16_t>(row_groups_.size()));
    int64_t uncompressed = 0, compressed = 0;
    for (int i = 0; i < num_columns_; ++i) {
      EncodedChunk& encoded = rg.chunks[i];
      format::ColumnMetaData& meta = encoded.meta;
      for (size_t p = 0; p < encoded.num_pages; ++p) {
        const uint64_t at = position_.load();
        if (p == 0 && encoded.use_dict) meta.__set_dictionary_page_offset(static_cast<int64_t>(at));
        if (p == (encoded.use_dict ? 1 : 0)) meta.__set_data_page_offset(static_cast<int64_t>(at));
        RETURN_IF_ERROR(WritePage(*encoded.pages[p], &meta));
      }
      uncompressed += meta.total_uncompressed_size;
      compressed += meta.total_compressed_size;
      format::ColumnChunk chunk;
      chunk.__set_file_offset(0);  // no ColumnMetaData outside the footer
      chunk.__set_meta_data(std::move(meta));
      group.columns.push_back(std::move(chunk));
    }
    group.__set_total_byte_size(uncompressed);
    group.__set_total_compressed_size(compressed);
    row_groups_.push_back(std::move(group));
    rows_written_.fetch_add(rg.rows);
    return absl::OkStatus();
  }

  // Writes a compressed page (header then body) and accounts its sizes into `meta`.
  absl::Status WritePage(PendingPage& page, format::ColumnMetaData* meta) {
    if (page.body.size() > INT32_MAX || page.compressed_size > INT32_MAX) {
      return absl::InvalidArgumentError("Parquet page larger than 2 GiB");
    }
    const std::string_view compressed(page.compressed.data(), page.compressed_size);
    page.header.__set_uncompressed_page_size(static_cast<int32_t>(page.body.size()));
    page.header.__set_compressed_page_size(static_cast<int32_t>(compressed.size()));
    header_bytes_.clear();
    RETURN_IF_ERROR(internal::SerializePageHeader(page.header, &header_bytes_));
    meta->total_uncompressed_size += static_cast<int64_t>(header_bytes_.size() + page.body.size());
    meta->total_compressed_size +=
        static_cast<int64_t>(header_bytes_.size() + compressed.size());
    RETURN_IF_ERROR(Append(header_bytes_));
    return Append(compressed);
  }

  const std::unique_ptr<Sink> sink_;
  const WriterOptions options_;
  // The columns written: kLeaves (key and data with the options' formats), then the partition
  // column when asked for.
  const int num_columns_;
  std::array<LeafSpec, kMaxLeaves> specs_;

  // The caller's state.
  absl::Status failed_;
  bool closed_ = false;
  uint64_t buffered_rows_ = 0;   // in buffers_[filling_]
  uint64_t buffered_bytes_ = 0;  // raw record bytes of those rows
  int filling_ = 0;
  // Per column: row groups left to shred without attempting a dictionary.
  int dict_skip_[kMaxLeaves] = {};

  // The row group being filled and the one being flushed (or idle).
  std::unique_ptr<RowGroupBuffer> buffers_[2];
  // compressors_[0] is the caller's, compressors_[t] worker t's.
  std::vector<std::unique_ptr<internal::Compressor>> compressors_;
  std::vector<std::thread> workers_;

  absl::Mutex mu_;
  RowGroupBuffer* flushing_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // tasks taken and not finished
  bool flush_done_ ABSL_GUARDED_BY(mu_) = true;
  absl::Status flush_status_ ABSL_GUARDED_BY(mu_);  // the first failure sticks
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Written by the caller while no flush is in flight, else by the thread writing the row group
  // (handed over through mu_).
  std::vector<format::RowGroup> row_groups_;
  std::string header_bytes_;
  std::atomic<uint64_t> position_{0};
  std::atomic<uint64_t> rows_written_{0};
};

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Writer::~Writer() = default;

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(const std::string& path,
                                                     const WriterOptions& options) {
  ASSIGN_OR_RETURN(auto sink, OpenFileSink(path));
  return Open(std::move(sink), options);
}

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(std::unique_ptr<Sink> sink,
                                                     const WriterOptions& options) {
  switch (options.codec) {
    case Codec::kUncompressed:
    case Codec::kSnappy:
    case Codec::kZstd:
      break;
    default:
      return absl::InvalidArgumentError("unknown Parquet codec");
  }
  auto impl = std::make_unique<Impl>(std::move(sink), options);
  RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

absl::Status Writer::WriteBatch(const std::vector<Record>& records) {
  return impl_->WriteBatch(records);
}
absl::Status Writer::FlushRowGroup() { return impl_->FlushRowGroup(); }
absl::Status Writer::Close() { return impl_->Close(); }
uint64_t Writer::rows_written() const { return impl_->rows_written(); }
uint64_t Writer::bytes_written() const { return impl_->bytes_written(); }
absl::Status Writer::Write(const Record& record) { return impl_->Write(record); }

}  // namespace nodata::parquet
