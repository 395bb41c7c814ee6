#include "parquet/writer.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>
#include <unordered_map>

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
using internal::kNumLeaves;
using internal::Leaf;
using internal::LeafSpec;

constexpr std::string_view kMagic = "PAR1";

// Unsigned byte-wise order, the Parquet sort order for BYTE_ARRAY and STRING.
bool BytesLess(std::string_view a, std::string_view b) {
  int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  return c < 0 || (c == 0 && a.size() < b.size());
}

void PutFixed32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutFixed64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
std::string Fixed64(int64_t v) {
  std::string s;
  PutFixed64(static_cast<uint64_t>(v), &s);
  return s;
}

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
    if (spec.is_int64) {
      s.__set_min_value(Fixed64(int_min));
      s.__set_max_value(Fixed64(int_max));
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

// One leaf column of the buffered row group, shredded into levels and non-null
// values.
struct ColumnBuffer {
  std::vector<uint32_t> def,
      rep;                         // one entry per level, kept even when the max level is 0
  std::vector<size_t> row_starts;  // index of each row's first level
  std::vector<int64_t> ints;
  std::vector<std::string> bytes;

  void Clear() { *this = ColumnBuffer(); }
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

format::SchemaElement String(std::string name, format::FieldRepetitionType repetition) {
  auto e = LeafElement(std::move(name), format::Type::BYTE_ARRAY, repetition);
  e.__set_converted_type(format::ConvertedType::UTF8);
  format::LogicalType logical;
  logical.__set_STRING(format::StringType());
  e.__set_logicalType(logical);
  return e;
}

std::vector<format::SchemaElement> BuildSchema() {
  using R = format::FieldRepetitionType;
  std::vector<format::SchemaElement> schema;
  format::SchemaElement root;
  root.__set_name("schema");
  root.__set_num_children(7);
  schema.push_back(root);
  schema.push_back(LeafElement("offset", format::Type::INT64, R::REQUIRED));
  schema.push_back(Timestamp("timestamp"));
  schema.push_back(Timestamp("ingest_time"));
  schema.push_back(String("id", R::REQUIRED));
  schema.push_back(LeafElement("key", format::Type::BYTE_ARRAY, R::OPTIONAL));
  schema.push_back(LeafElement("data", format::Type::BYTE_ARRAY, R::REQUIRED));
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

void EncodeLevels(const std::vector<uint32_t>& levels, size_t begin, size_t end, int max_level,
                  std::string* out) {
  std::vector<uint32_t> slice(levels.begin() + begin, levels.begin() + end);
  std::string encoded;
  internal::EncodeRleHybrid(slice, internal::BitWidth(max_level), &encoded);
  PutFixed32(static_cast<uint32_t>(encoded.size()),
             out);  // data page v1 length prefix
  out->append(encoded);
}

}  // namespace

class Writer::Impl {
 public:
  Impl(std::unique_ptr<Sink> sink, const WriterOptions& options)
      : sink_(std::move(sink)), options_(options) {}

  absl::Status Start() { return Append(kMagic); }

  absl::Status WriteBatch(const std::vector<Record>& records) {
    RETURN_IF_ERROR(CheckUsable());
    for (const Record& r : records) RETURN_IF_ERROR(WriteOne(r));
    return absl::OkStatus();
  }

  absl::Status Write(const Record& r) {
    RETURN_IF_ERROR(CheckUsable());
    return WriteOne(r);
  }

  absl::Status WriteOne(const Record& r) {
    Shred(r);
    if (buffered_rows_ >= options_.row_group_rows || buffered_bytes_ >= options_.row_group_bytes) {
      return FlushRowGroup();
    }
    return absl::OkStatus();
  }

  absl::Status FlushRowGroup() {
    RETURN_IF_ERROR(CheckUsable());
    if (buffered_rows_ == 0) return absl::OkStatus();
    format::RowGroup group;
    group.__set_num_rows(static_cast<int64_t>(buffered_rows_));
    group.__set_file_offset(static_cast<int64_t>(position_));
    group.__set_ordinal(static_cast<int16_t>(row_groups_.size()));
    int64_t uncompressed = 0, compressed = 0;
    for (int i = 0; i < kNumLeaves; ++i) {
      format::ColumnChunk chunk;
      absl::Status s = WriteColumnChunk(kLeaves[i], columns_[i], &chunk);
      if (!s.ok()) {
        failed_ = s;
        return s;
      }
      uncompressed += chunk.meta_data.total_uncompressed_size;
      compressed += chunk.meta_data.total_compressed_size;
      group.columns.push_back(std::move(chunk));
      columns_[i].Clear();
    }
    group.__set_total_byte_size(uncompressed);
    group.__set_total_compressed_size(compressed);
    rows_written_ += buffered_rows_;
    buffered_rows_ = 0;
    buffered_bytes_ = 0;
    row_groups_.push_back(std::move(group));
    return absl::OkStatus();
  }

  absl::Status Close() {
    if (closed_) return absl::FailedPreconditionError("Parquet writer already closed");
    RETURN_IF_ERROR(FlushRowGroup());
    format::FileMetaData meta;
    meta.__set_version(1);
    meta.__set_schema(BuildSchema());
    meta.__set_num_rows(static_cast<int64_t>(rows_written_));
    meta.__set_row_groups(row_groups_);
    meta.__set_created_by(options_.created_by);
    std::vector<format::ColumnOrder> orders(kNumLeaves);
    for (auto& o : orders) o.__set_TYPE_ORDER(format::TypeDefinedOrder());
    meta.__set_column_orders(orders);
    std::string footer;
    RETURN_IF_ERROR(internal::SerializeFooter(meta, &footer));
    PutFixed32(static_cast<uint32_t>(footer.size()), &footer);
    footer.append(kMagic);
    RETURN_IF_ERROR(Append(footer));
    closed_ = true;
    return sink_->Close();
  }

  uint64_t rows_written() const { return rows_written_; }
  uint64_t bytes_written() const { return position_; }

 private:
  absl::Status CheckUsable() const {
    if (closed_) return absl::FailedPreconditionError("Parquet writer is closed");
    if (!failed_.ok()) {
      return absl::FailedPreconditionError(
          StrCat("Parquet writer failed earlier: ", ToStd(failed_.message())));
    }
    return absl::OkStatus();
  }

  absl::Status Append(std::string_view data) {
    absl::Status s = sink_->Append(data);
    if (!s.ok()) {
      failed_ = s;
      return s;
    }
    position_ += data.size();
    return absl::OkStatus();
  }

  void Shred(const Record& r) {
    auto start_row = [](ColumnBuffer& c) { c.row_starts.push_back(c.def.size()); };
    auto put_level = [](ColumnBuffer& c, uint32_t def, uint32_t rep) {
      c.def.push_back(def);
      c.rep.push_back(rep);
    };
    for (auto& c : columns_) start_row(c);
    const int64_t ints[] = {r.offset, r.timestamp_us, r.ingest_time_us};
    for (int i = 0; i < 3; ++i) {
      put_level(columns_[i], 0, 0);
      columns_[i].ints.push_back(ints[i]);
    }
    put_level(columns_[3], 0, 0);
    columns_[3].bytes.push_back(r.id);
    if (r.key.empty()) {
      put_level(columns_[4], 0, 0);
    } else {
      put_level(columns_[4], 1, 0);
      columns_[4].bytes.push_back(r.key);
    }
    put_level(columns_[5], 0, 0);
    columns_[5].bytes.push_back(r.data);
    // An empty header list is an empty (not null) map.
    if (r.headers.empty()) {
      put_level(columns_[6], 1, 0);
      put_level(columns_[7], 1, 0);
    }
    for (size_t j = 0; j < r.headers.size(); ++j) {
      uint32_t rep = j == 0 ? 0 : 1;
      put_level(columns_[6], 2, rep);
      columns_[6].bytes.push_back(r.headers[j].first);
      put_level(columns_[7], 3, rep);
      columns_[7].bytes.push_back(r.headers[j].second);
    }
    ++buffered_rows_;
    buffered_bytes_ += 24 + r.id.size() + r.key.size() + r.data.size();
    for (const auto& [k, v] : r.headers) buffered_bytes_ += k.size() + v.size();
  }

  // Writes a page (header then body) and accounts its sizes into `meta`.
  absl::Status WritePage(format::PageHeader header, const std::string& body,
                         format::ColumnMetaData* meta) {
    std::string compressed;
    RETURN_IF_ERROR(internal::Compress(static_cast<format::CompressionCodec>(options_.codec), body,
                                       options_.zstd_level, &compressed));
    if (body.size() > INT32_MAX || compressed.size() > INT32_MAX) {
      return absl::InvalidArgumentError("Parquet page larger than 2 GiB");
    }
    header.__set_uncompressed_page_size(static_cast<int32_t>(body.size()));
    header.__set_compressed_page_size(static_cast<int32_t>(compressed.size()));
    std::string bytes;
    RETURN_IF_ERROR(internal::SerializePageHeader(header, &bytes));
    meta->total_uncompressed_size += static_cast<int64_t>(bytes.size() + body.size());
    meta->total_compressed_size += static_cast<int64_t>(bytes.size() + compressed.size());
    bytes.append(compressed);
    return Append(bytes);
  }

  absl::Status WriteColumnChunk(const LeafSpec& spec, const ColumnBuffer& col,
                                format::ColumnChunk* chunk) {
    const bool has_levels = spec.max_def > 0 || spec.max_rep > 0;
    format::ColumnMetaData meta;
    meta.__set_type(spec.is_int64 ? format::Type::INT64 : format::Type::BYTE_ARRAY);
    meta.__set_path_in_schema(SplitPath(spec.path));
    meta.__set_codec(static_cast<format::CompressionCodec>(options_.codec));
    meta.__set_num_values(static_cast<int64_t>(col.def.size()));
    meta.total_uncompressed_size = 0;
    meta.total_compressed_size = 0;

    // Dictionary encoding for byte arrays when it pays off.
    std::unordered_map<std::string_view, uint32_t> dict_index;
    std::vector<std::string_view> dict;
    bool use_dict = false;
    if (!spec.is_int64 && !col.bytes.empty()) {
      uint64_t dict_bytes = 0, plain_bytes = 0;
      for (const std::string& v : col.bytes) {
        plain_bytes += 4 + v.size();
        if (dict_bytes <= options_.dictionary_max_bytes &&
            dict_index.emplace(v, static_cast<uint32_t>(dict.size())).second) {
          dict.push_back(v);
          dict_bytes += 4 + v.size();
        }
      }
      uint64_t index_bytes =
          col.bytes.size() * static_cast<uint64_t>(internal::BitWidth(dict.size() - 1)) / 8 + 1;
      use_dict = dict_bytes <= options_.dictionary_max_bytes &&
                 static_cast<double>(dict_bytes + index_bytes) <
                     options_.dictionary_max_ratio * static_cast<double>(plain_bytes);
    }
    const auto data_encoding =
        use_dict ? format::Encoding::RLE_DICTIONARY : format::Encoding::PLAIN;
    const int index_width = use_dict ? std::max(1, internal::BitWidth(dict.size() - 1)) : 0;

    std::vector<format::PageEncodingStats> encoding_stats;
    if (use_dict) {
      std::string body;
      for (std::string_view v : dict) {
        PutFixed32(static_cast<uint32_t>(v.size()), &body);
        body.append(v);
      }
      format::DictionaryPageHeader dict_header;
      dict_header.__set_num_values(static_cast<int32_t>(dict.size()));
      dict_header.__set_encoding(format::Encoding::PLAIN);
      format::PageHeader header;
      header.__set_type(format::PageType::DICTIONARY_PAGE);
      header.__set_dictionary_page_header(dict_header);
      meta.__set_dictionary_page_offset(static_cast<int64_t>(position_));
      RETURN_IF_ERROR(WritePage(header, body, &meta));
      format::PageEncodingStats es;
      es.__set_page_type(format::PageType::DICTIONARY_PAGE);
      es.__set_encoding(format::Encoding::PLAIN);
      es.__set_count(1);
      encoding_stats.push_back(es);
    }
    meta.__set_data_page_offset(static_cast<int64_t>(position_));

    StatsAccumulator chunk_stats;
    int32_t data_pages = 0;
    size_t value_pos = 0;
    const size_t num_rows = col.row_starts.size();
    size_t row = 0;
    while (row < num_rows) {
      // Cut the page at a row boundary once its values reach the target size.
      const size_t level_begin = col.row_starts[row];
      const size_t value_begin = value_pos;
      uint64_t page_bytes = 0;
      StatsAccumulator page_stats;
      size_t level_end = level_begin;
      while (row < num_rows &&
             (page_bytes < options_.page_size_bytes || level_end == level_begin)) {
        size_t row_end = row + 1 < num_rows ? col.row_starts[row + 1] : col.def.size();
        for (size_t l = level_end; l < row_end; ++l) {
          if (col.def[l] == static_cast<uint32_t>(spec.max_def)) {
            if (spec.is_int64) {
              page_stats.AddInt(col.ints[value_pos]);
              page_bytes += 8;
            } else {
              page_stats.AddBytes(col.bytes[value_pos]);
              page_bytes += 4 + col.bytes[value_pos].size();
            }
            ++value_pos;
          } else {
            ++page_stats.null_count;
          }
        }
        level_end = row_end;
        ++row;
      }
      std::string body;
      if (spec.max_rep > 0) EncodeLevels(col.rep, level_begin, level_end, spec.max_rep, &body);
      if (spec.max_def > 0) EncodeLevels(col.def, level_begin, level_end, spec.max_def, &body);
      if (use_dict) {
        std::vector<uint32_t> indices;
        indices.reserve(value_pos - value_begin);
        for (size_t v = value_begin; v < value_pos; ++v)
          indices.push_back(dict_index.at(col.bytes[v]));
        body.push_back(static_cast<char>(index_width));
        internal::EncodeRleHybrid(indices, index_width, &body);
      } else if (spec.is_int64) {
        for (size_t v = value_begin; v < value_pos; ++v) PutFixed64(col.ints[v], &body);
      } else {
        for (size_t v = value_begin; v < value_pos; ++v) {
          PutFixed32(static_cast<uint32_t>(col.bytes[v].size()), &body);
          body.append(col.bytes[v]);
        }
      }
      format::DataPageHeader data_header;
      data_header.__set_num_values(static_cast<int32_t>(level_end - level_begin));
      data_header.__set_encoding(data_encoding);
      data_header.__set_definition_level_encoding(format::Encoding::RLE);
      data_header.__set_repetition_level_encoding(format::Encoding::RLE);
      data_header.__set_statistics(page_stats.ToThrift(spec, options_.statistics_max_bytes));
      format::PageHeader header;
      header.__set_type(format::PageType::DATA_PAGE);
      header.__set_data_page_header(data_header);
      RETURN_IF_ERROR(WritePage(header, body, &meta));
      ++data_pages;
      chunk_stats.Merge(page_stats, spec.is_int64);
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
    meta.__set_statistics(chunk_stats.ToThrift(spec, options_.statistics_max_bytes));
    meta.__set_encoding_stats(encoding_stats);
    chunk->__set_file_offset(0);  // no ColumnMetaData outside the footer
    chunk->__set_meta_data(std::move(meta));
    return absl::OkStatus();
  }

  std::unique_ptr<Sink> sink_;
  WriterOptions options_;
  uint64_t position_ = 0;
  absl::Status failed_;
  bool closed_ = false;
  ColumnBuffer columns_[kNumLeaves];
  uint64_t buffered_rows_ = 0;
  uint64_t buffered_bytes_ = 0;
  uint64_t rows_written_ = 0;
  std::vector<format::RowGroup> row_groups_;
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
