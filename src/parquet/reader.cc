#include "parquet/reader.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>

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

constexpr std::string_view kMagic = "PAR1";
constexpr std::string_view kEncryptedMagic = "PARE";
// Bounds on sizes read from untrusted metadata, so that a corrupt length is an
// error rather than a huge allocation.
constexpr uint64_t kMaxFooterBytes = 64 << 20;
constexpr int64_t kMaxPageBytes = 1 << 30;
constexpr int64_t kMaxValuesPerChunk = 1 << 26;
// Dictionary decoding can expand a small page into many copies of a large
// entry.
constexpr uint64_t kMaxDecodedBytesPerChunk = uint64_t{1} << 30;
constexpr int kMaxSchemaDepth = 32;

absl::Status Corrupt(std::string_view what) {
  return absl::DataLossError(StrCat("corrupt Parquet file: ", what));
}

uint32_t LoadFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
int64_t LoadFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return static_cast<int64_t>(v);
}

// A leaf as resolved from the file's schema.
struct ResolvedLeaf {
  ColumnSchema schema;
  // Definition level reached at each node of the path (root excluded), e.g. for
  // headers.key_value.key: {1, 2, 2}.
  std::vector<int> def_at_depth;
  // Multiplier/divisor turning the file's TIMESTAMP unit into microseconds.
  int64_t ts_multiply = 1, ts_divide = 1;
};

// Bytes of a PLAIN value of an integer column (INT32 values are widened to int64 on reading);
// 0 for other columns.
int IntBytes(const ResolvedLeaf& leaf) {
  switch (leaf.schema.physical_type) {
    case format::Type::INT64:
      return 8;
    case format::Type::INT32:
      return 4;
    default:
      return 0;
  }
}

// The annotation of a schema element as parquet-format names it: the logical type when set,
// else the legacy converted type; empty when there is neither.
std::string LogicalTypeName(const format::SchemaElement& e) {
  if (e.__isset.logicalType) {
    const format::LogicalType& l = e.logicalType;
    if (l.__isset.STRING) return "STRING";
    if (l.__isset.JSON) return "JSON";
    if (l.__isset.MAP) return "MAP";
    if (l.__isset.LIST) return "LIST";
    if (l.__isset.TIMESTAMP) {
      const auto& unit = l.TIMESTAMP.unit;
      const char* name = unit.__isset.MILLIS ? "MILLIS" : unit.__isset.NANOS ? "NANOS" : "MICROS";
      return StrCat("TIMESTAMP(", name, ",", l.TIMESTAMP.isAdjustedToUTC ? "true" : "false", ")");
    }
  }
  if (!e.__isset.converted_type) return "";
  switch (e.converted_type) {
    case format::ConvertedType::UTF8:
      return "STRING";
    case format::ConvertedType::JSON:
      return "JSON";
    case format::ConvertedType::MAP:
      return "MAP";
    case format::ConvertedType::LIST:
      return "LIST";
    case format::ConvertedType::TIMESTAMP_MILLIS:
      return "TIMESTAMP(MILLIS,true)";
    case format::ConvertedType::TIMESTAMP_MICROS:
      return "TIMESTAMP(MICROS,true)";
    default:
      return StrCat("CONVERTED_TYPE(", static_cast<int>(e.converted_type), ")");
  }
}

// Levels and non-null values of one column chunk.
struct ColumnValues {
  std::vector<uint32_t> def, rep;
  std::vector<int64_t> ints;
  std::vector<std::string> bytes;
  uint64_t decoded_bytes = 0;  // dictionary-expanded bytes, bounded by kMaxDecodedBytesPerChunk
};

}  // namespace

class Reader::Impl {
 public:
  explicit Impl(std::unique_ptr<Source> source) : source_(std::move(source)) {}

  absl::Status Init() {
    const uint64_t size = source_->size();
    if (size < 12) return absl::InvalidArgumentError("not a Parquet file: shorter than 12 bytes");
    std::string head, tail;
    RETURN_IF_ERROR(source_->ReadAt(0, 4, &head));
    RETURN_IF_ERROR(source_->ReadAt(size - 8, 8, &tail));
    if (std::string_view(tail).substr(4) == kEncryptedMagic) {
      return absl::UnimplementedError("encrypted Parquet footers are not supported");
    }
    if (head != kMagic || std::string_view(tail).substr(4) != kMagic) {
      return absl::InvalidArgumentError("not a Parquet file: missing PAR1 magic");
    }
    const uint64_t footer_len = LoadFixed32(tail.data());
    if (footer_len == 0 || footer_len > size - 12) {
      return Corrupt(
          StrCat("footer length ", footer_len, " does not fit a file of ", size, " bytes"));
    }
    if (footer_len > kMaxFooterBytes) {
      return absl::ResourceExhaustedError(StrCat("Parquet footer of ", footer_len, " bytes"));
    }
    data_end_ = size - 8 - footer_len;
    std::string footer;
    RETURN_IF_ERROR(source_->ReadAt(data_end_, footer_len, &footer));
    RETURN_IF_ERROR(internal::ParseFooter(footer, &meta_));
    RETURN_IF_ERROR(ResolveSchema());
    RETURN_IF_ERROR(ResolveRowGroups());
    return absl::OkStatus();
  }

  const std::vector<ColumnSchema>& schema() const { return schema_; }
  const std::vector<RowGroupInfo>& row_groups() const { return row_groups_; }
  int64_t num_rows() const { return meta_.num_rows; }
  const std::string& created_by() const { return meta_.created_by; }

  absl::StatusOr<std::vector<Record>> ReadRowGroup(int index) const {
    if (index < 0 || static_cast<size_t>(index) >= row_groups_.size()) {
      return absl::OutOfRangeError(StrCat("no row group ", index));
    }
    const int64_t num_rows = row_groups_[index].num_rows;
    std::array<ColumnValues, kMaxLeaves> cols;
    const int num_leaves = has_partition_ ? kMaxLeaves : kNumLeaves;
    for (int i = 0; i < num_leaves; ++i) {
      RETURN_IF_ERROR(ReadColumnChunk(index, i, &cols[i]));
      const bool one_per_row =
          i < static_cast<int>(Leaf::kHeaderKey) || i == static_cast<int>(Leaf::kPartition);
      if (one_per_row && cols[i].def.size() != static_cast<size_t>(num_rows)) {
        return Corrupt(StrCat("column ", leaves_[i].schema.path, " has ", cols[i].def.size(),
                              " values for ", num_rows, " rows"));
      }
    }
    std::vector<Record> records(static_cast<size_t>(num_rows));
    for (int i = 0; i < static_cast<int>(Leaf::kHeaderKey); ++i) {
      const ResolvedLeaf& leaf = leaves_[i];
      const ColumnValues& c = cols[i];
      const auto max_def = static_cast<uint32_t>(leaf.schema.max_definition_level);
      size_t v = 0;
      for (size_t r = 0; r < records.size(); ++r) {
        if (c.def[r] != max_def) continue;  // null: keep the default
        Record& rec = records[r];
        switch (kLeaves[i].leaf) {
          case Leaf::kOffset:
            rec.offset = c.ints[v];
            break;
          case Leaf::kTimestamp:
            rec.timestamp_us = ToMicros(leaf, c.ints[v]);
            break;
          case Leaf::kIngestTime:
            rec.ingest_time_us = ToMicros(leaf, c.ints[v]);
            break;
          case Leaf::kId:
            rec.id = std::move(cols[i].bytes[v]);
            break;
          case Leaf::kKey:
            rec.key = std::move(cols[i].bytes[v]);
            break;
          case Leaf::kData:
            rec.data = std::move(cols[i].bytes[v]);
            break;
          default:
            break;
        }
        ++v;
      }
    }
    RETURN_IF_ERROR(AssembleHeaders(cols[6], cols[7], &records));
    if (has_partition_) {
      const ColumnValues& c = cols[static_cast<int>(Leaf::kPartition)];
      if (c.ints.size() != records.size()) return Corrupt("partition column has nulls");
      for (size_t r = 0; r < records.size(); ++r) {
        records[r].partition = static_cast<int32_t>(c.ints[r]);
      }
    }
    return records;
  }

 private:
  // Saturates instead of overflowing for millisecond values beyond the
  // microsecond range.
  static int64_t ToMicros(const ResolvedLeaf& leaf, int64_t v) {
    int64_t micros;
    if (__builtin_mul_overflow(v, leaf.ts_multiply, &micros)) {
      return v < 0 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
    }
    return micros / leaf.ts_divide;
  }

  absl::Status AssembleHeaders(ColumnValues& keys, ColumnValues& values,
                               std::vector<Record>* records) const {
    const ResolvedLeaf& key_leaf = leaves_[6];
    const ResolvedLeaf& value_leaf = leaves_[7];
    if (keys.def.size() != values.def.size() || keys.rep != values.rep) {
      return Corrupt("header key and value columns have different shapes");
    }
    // headers.key_value exists at the definition level of the repeated group.
    const uint32_t entry_def = static_cast<uint32_t>(key_leaf.def_at_depth[1]);
    const auto key_max = static_cast<uint32_t>(key_leaf.schema.max_definition_level);
    const auto value_max = static_cast<uint32_t>(value_leaf.schema.max_definition_level);
    size_t kv = 0, vv = 0;
    int64_t row = -1;
    for (size_t l = 0; l < keys.def.size(); ++l) {
      if (keys.rep[l] == 0) ++row;
      if (row < 0 || static_cast<size_t>(row) >= records->size()) {
        return Corrupt("headers column has more rows than the row group");
      }
      if (keys.def[l] < entry_def) continue;  // null or empty map
      std::pair<std::string, std::string> entry;
      if (keys.def[l] == key_max) entry.first = std::move(keys.bytes[kv++]);
      if (values.def[l] == value_max) entry.second = std::move(values.bytes[vv++]);
      (*records)[row].headers.push_back(std::move(entry));
    }
    if (static_cast<size_t>(row + 1) != records->size()) {
      return Corrupt("headers column has fewer rows than the row group");
    }
    return absl::OkStatus();
  }

  // Walks the depth-first flattened schema.
  absl::Status Walk(size_t* pos, int depth, std::vector<std::string>& path, std::vector<int>& defs,
                    int def, int rep) {
    if (depth > kMaxSchemaDepth) return Corrupt("schema nested too deeply");
    if (*pos >= meta_.schema.size()) return Corrupt("schema ends early");
    const format::SchemaElement& e = meta_.schema[(*pos)++];
    if (!e.__isset.repetition_type)
      return Corrupt(StrCat("schema node ", e.name, " lacks repetition"));
    if (e.repetition_type == format::FieldRepetitionType::OPTIONAL) ++def;
    if (e.repetition_type == format::FieldRepetitionType::REPEATED) ++def, ++rep;
    path.push_back(e.name);
    defs.push_back(def);
    if (e.__isset.num_children && e.num_children > 0) {
      if (static_cast<size_t>(e.num_children) > meta_.schema.size())
        return Corrupt("bad num_children");
      for (int i = 0; i < e.num_children; ++i)
        RETURN_IF_ERROR(Walk(pos, depth + 1, path, defs, def, rep));
    } else {
      if (!e.__isset.type) return Corrupt(StrCat("leaf ", e.name, " has no type"));
      ResolvedLeaf leaf;
      for (size_t i = 0; i < path.size(); ++i) {
        if (i > 0) leaf.schema.path += '.';
        leaf.schema.path += path[i];
      }
      leaf.schema.physical_type = static_cast<int>(e.type);
      leaf.schema.logical_type = LogicalTypeName(e);
      leaf.schema.max_definition_level = def;
      leaf.schema.max_repetition_level = rep;
      leaf.def_at_depth = defs;
      if (e.__isset.logicalType && e.logicalType.__isset.TIMESTAMP) {
        const auto& unit = e.logicalType.TIMESTAMP.unit;
        if (unit.__isset.MILLIS) leaf.ts_multiply = 1000;
        if (unit.__isset.NANOS) leaf.ts_divide = 1000;
        leaf.schema.timestamp_unit_nanos = unit.__isset.MILLIS ? 1000000
                                           : unit.__isset.NANOS ? 1
                                                                : 1000;
      } else if (e.__isset.converted_type &&
                 e.converted_type == format::ConvertedType::TIMESTAMP_MILLIS) {
        leaf.ts_multiply = 1000;
        leaf.schema.timestamp_unit_nanos = 1000000;
      } else if (e.__isset.converted_type &&
                 e.converted_type == format::ConvertedType::TIMESTAMP_MICROS) {
        leaf.schema.timestamp_unit_nanos = 1000;
      }
      all_leaves_.push_back(std::move(leaf));
    }
    path.pop_back();
    defs.pop_back();
    return absl::OkStatus();
  }

  absl::Status ResolveSchema() {
    if (meta_.schema.empty()) return Corrupt("empty schema");
    const format::SchemaElement& root = meta_.schema[0];
    size_t pos = 1;
    std::vector<std::string> path;
    std::vector<int> defs;
    const int children = root.__isset.num_children ? root.num_children : 0;
    if (children < 0 || static_cast<size_t>(children) > meta_.schema.size()) {
      return Corrupt("bad root num_children");
    }
    for (int i = 0; i < children; ++i) RETURN_IF_ERROR(Walk(&pos, 1, path, defs, 0, 0));
    if (pos != meta_.schema.size()) return Corrupt("schema has nodes outside the root");
    for (const auto& leaf : all_leaves_) schema_.push_back(leaf.schema);
    // Map nodata's leaves onto the file's columns by path.
    leaves_.resize(kNumLeaves);
    for (int i = 0; i < kNumLeaves; ++i) {
      const auto& spec = kLeaves[i];
      auto it = std::find_if(all_leaves_.begin(), all_leaves_.end(),
                             [&](const ResolvedLeaf& l) { return l.schema.path == spec.path; });
      if (it == all_leaves_.end()) {
        return absl::InvalidArgumentError(StrCat("Parquet file lacks nodata column ", spec.path));
      }
      const int want_type = spec.is_int64 ? format::Type::INT64 : format::Type::BYTE_ARRAY;
      const int want_rep = spec.max_rep;
      if (it->schema.physical_type != want_type || it->schema.max_repetition_level != want_rep ||
          (want_rep == 1 && it->def_at_depth.size() != 3)) {
        return absl::InvalidArgumentError(
            StrCat("Parquet column ", spec.path, " has an unexpected type or nesting"));
      }
      leaves_[i] = *it;
      column_index_[i] = static_cast<int>(it - all_leaves_.begin());
    }
    // An export's partition column, when there is one of the expected shape.
    auto it = std::find_if(all_leaves_.begin(), all_leaves_.end(), [](const ResolvedLeaf& l) {
      return l.schema.path == internal::kPartitionLeaf.path &&
             l.schema.physical_type == format::Type::INT32 && l.schema.max_repetition_level == 0;
    });
    if (it != all_leaves_.end()) {
      has_partition_ = true;
      leaves_.push_back(*it);
      column_index_[kNumLeaves] = static_cast<int>(it - all_leaves_.begin());
    }
    return absl::OkStatus();
  }

  absl::Status ResolveRowGroups() {
    if (meta_.num_rows < 0) return Corrupt("negative row count");
    for (const format::RowGroup& rg : meta_.row_groups) {
      if (rg.columns.size() != all_leaves_.size()) {
        return Corrupt("row group column count differs from the schema");
      }
      if (rg.num_rows < 0 || rg.num_rows > kMaxValuesPerChunk)
        return Corrupt("bad row group row count");
      RowGroupInfo info;
      info.num_rows = rg.num_rows;
      info.total_byte_size = rg.total_byte_size;
      for (size_t c = 0; c < rg.columns.size(); ++c) {
        const format::ColumnChunk& chunk = rg.columns[c];
        if (!chunk.__isset.meta_data) return Corrupt("column chunk without metadata");
        if (chunk.__isset.file_path && !chunk.file_path.empty()) {
          return absl::UnimplementedError(
              "Parquet column chunks in external files are not supported");
        }
        const format::ColumnMetaData& m = chunk.meta_data;
        if (static_cast<int>(m.type) != all_leaves_[c].schema.physical_type) {
          return Corrupt(
              StrCat("column ", all_leaves_[c].schema.path, " type differs from schema"));
        }
        ColumnChunkInfo ci;
        ci.path = all_leaves_[c].schema.path;
        ci.codec = static_cast<int>(m.codec);
        ci.num_values = m.num_values;
        ci.total_compressed_size = m.total_compressed_size;
        ci.total_uncompressed_size = m.total_uncompressed_size;
        for (auto e : m.encodings) ci.encodings.push_back(static_cast<int>(e));
        ci.has_dictionary_page = m.__isset.dictionary_page_offset;
        if (m.__isset.statistics) {
          const auto& s = m.statistics;
          if (s.__isset.null_count) ci.statistics.null_count = s.null_count;
          if (s.__isset.min_value) ci.statistics.min_value = s.min_value;
          if (s.__isset.max_value) ci.statistics.max_value = s.max_value;
        }
        info.columns.push_back(std::move(ci));
      }
      row_groups_.push_back(std::move(info));
    }
    return absl::OkStatus();
  }

  // `int_bytes` as IntBytes says.
  absl::Status DecodePlain(int int_bytes, std::string_view in, size_t count,
                           ColumnValues* out) const {
    if (int_bytes == 8) {
      if (in.size() / 8 < count) return Corrupt("PLAIN INT64 values truncated");
      for (size_t i = 0; i < count; ++i) out->ints.push_back(LoadFixed64(in.data() + 8 * i));
      return absl::OkStatus();
    }
    if (int_bytes == 4) {
      if (in.size() / 4 < count) return Corrupt("PLAIN INT32 values truncated");
      for (size_t i = 0; i < count; ++i) {
        out->ints.push_back(static_cast<int32_t>(LoadFixed32(in.data() + 4 * i)));
      }
      return absl::OkStatus();
    }
    for (size_t i = 0; i < count; ++i) {
      if (in.size() < 4) return Corrupt("PLAIN byte array length truncated");
      uint32_t len = LoadFixed32(in.data());
      in.remove_prefix(4);
      if (len > in.size()) return Corrupt("PLAIN byte array truncated");
      out->bytes.emplace_back(in.substr(0, len));
      in.remove_prefix(len);
    }
    return absl::OkStatus();
  }

  absl::Status DecodeValues(const ResolvedLeaf& leaf, format::Encoding encoding,
                            std::string_view in, size_t count, const ColumnValues* dict,
                            ColumnValues* out) const {
    const int int_bytes = IntBytes(leaf);
    const bool is_int = int_bytes > 0;
    switch (encoding) {
      case format::Encoding::PLAIN:
        return DecodePlain(int_bytes, in, count, out);
      case format::Encoding::PLAIN_DICTIONARY:
      case format::Encoding::RLE_DICTIONARY: {
        if (dict == nullptr) return Corrupt("dictionary-encoded page without a dictionary page");
        if (count == 0) return absl::OkStatus();
        if (in.empty()) return Corrupt("dictionary indices truncated");
        const int width = static_cast<uint8_t>(in[0]);
        std::vector<uint32_t> indices;
        RETURN_IF_ERROR(internal::DecodeRleHybrid(in.substr(1), width, count, &indices));
        const size_t dict_size = is_int ? dict->ints.size() : dict->bytes.size();
        for (uint32_t index : indices) {
          if (index >= dict_size) return Corrupt("dictionary index out of range");
          if (is_int) {
            out->ints.push_back(dict->ints[index]);
          } else {
            out->decoded_bytes += dict->bytes[index].size();
            if (out->decoded_bytes > kMaxDecodedBytesPerChunk) {
              return absl::ResourceExhaustedError(
                  StrCat("column chunk ", leaf.schema.path, " decodes to more than 1 GiB"));
            }
            out->bytes.push_back(dict->bytes[index]);
          }
        }
        return absl::OkStatus();
      }
      case format::Encoding::DELTA_BINARY_PACKED: {
        if (!is_int) break;
        size_t before = out->ints.size();
        RETURN_IF_ERROR(internal::DecodeDeltaBinaryPacked(&in, count, &out->ints));
        if (out->ints.size() - before != count) return Corrupt("DELTA_BINARY_PACKED value count");
        return absl::OkStatus();
      }
      case format::Encoding::DELTA_LENGTH_BYTE_ARRAY:
        if (is_int) break;
        return internal::DecodeDeltaLengthByteArray(in, count, &out->bytes);
      case format::Encoding::DELTA_BYTE_ARRAY:
        if (is_int) break;
        return internal::DecodeDeltaByteArray(in, count, &out->bytes);
      default:
        break;
    }
    return absl::UnimplementedError(StrCat("Parquet encoding ", static_cast<int>(encoding),
                                           " is not supported for column ", leaf.schema.path,
                                           " (supported: PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY,"
                                           " DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY,"
                                           " DELTA_BYTE_ARRAY)"));
  }

  // Decodes `n` levels; `with_length` is the data page v1 layout (4-byte length
  // prefix).
  static absl::Status DecodeLevels(std::string_view* in, int max_level, size_t n, bool with_length,
                                   std::vector<uint32_t>* out) {
    if (max_level == 0) {
      out->insert(out->end(), n, 0);
      return absl::OkStatus();
    }
    std::string_view encoded = *in;
    if (with_length) {
      if (in->size() < 4) return Corrupt("level length truncated");
      uint32_t len = LoadFixed32(in->data());
      if (len > in->size() - 4) return Corrupt("levels truncated");
      encoded = in->substr(4, len);
      in->remove_prefix(4 + len);
    }
    size_t before = out->size();
    RETURN_IF_ERROR(internal::DecodeRleHybrid(encoded, internal::BitWidth(max_level), n, out));
    for (size_t i = before; i < out->size(); ++i) {
      if ((*out)[i] > static_cast<uint32_t>(max_level)) return Corrupt("level above its maximum");
    }
    return absl::OkStatus();
  }

  // Materializes a column chunk of one of nodata's leaves (ReadRowGroup's path): levels are
  // filled even when the column's max level is 0.
  absl::Status ReadColumnChunk(int group, int leaf_index, ColumnValues* out) const {
    const ResolvedLeaf& leaf = leaves_[leaf_index];
    const int int_bytes = IntBytes(leaf);
    std::string chunk, page;
    std::optional<ColumnValues> dict;
    PageVisitor visitor;
    visitor.page_buffer = [&page](bool) { return &page; };
    visitor.dictionary = [&](std::string_view bytes, size_t count) {
      dict.emplace();
      return DecodePlain(int_bytes, bytes, count, &*dict);
    };
    visitor.data = [&](format::Encoding encoding, std::string_view values, size_t non_null) {
      return DecodeValues(leaf, encoding, values, non_null, dict ? &*dict : nullptr, out);
    };
    size_t levels = 0;
    RETURN_IF_ERROR(WalkColumnChunk(group, column_index_[leaf_index], leaf, &chunk, visitor,
                                    &out->def, &out->rep, &levels));
    if (leaf.schema.max_definition_level == 0) out->def.assign(levels, 0);
    if (leaf.schema.max_repetition_level == 0) out->rep.assign(levels, 0);
    return absl::OkStatus();
  }

 public:
  absl::StatusOr<RowGroupViews> ReadRowGroupViews(int index) const {
    if (index < 0 || static_cast<size_t>(index) >= row_groups_.size()) {
      return absl::OutOfRangeError(StrCat("no row group ", index));
    }
    const size_t num_rows = static_cast<size_t>(row_groups_[index].num_rows);
    RowGroupViews out;
    // Integer columns: one value per row, nulls 0.
    std::vector<int64_t>* ints[] = {&out.offset, &out.timestamp_us, &out.ingest_time_us};
    for (int i = 0; i < static_cast<int>(Leaf::kId); ++i) {
      const ResolvedLeaf& leaf = leaves_[i];
      ColumnValues c;
      RETURN_IF_ERROR(ReadColumnChunk(index, i, &c));
      if (c.def.size() != num_rows) return RowCountMismatch(i, c.def.size(), num_rows);
      const auto max_def = static_cast<uint32_t>(leaf.schema.max_definition_level);
      std::vector<int64_t>& column = *ints[i];
      column.assign(num_rows, 0);
      size_t v = 0;
      for (size_t r = 0; r < num_rows; ++r) {
        if (c.def[r] != max_def) continue;
        if (v == c.ints.size()) return Corrupt(StrCat("column ", leaf.schema.path, " is short"));
        const int64_t value = c.ints[v++];
        column[r] = kLeaves[i].leaf == Leaf::kOffset ? value : ToMicros(leaf, value);
      }
    }
    // Byte-array columns: views, nulls empty.
    out.storage.resize(kNumLeaves - static_cast<int>(Leaf::kId));
    std::vector<std::string_view>* views[] = {&out.id, &out.key, &out.data};
    for (int i = static_cast<int>(Leaf::kId); i < kNumLeaves; ++i) {
      ByteArrayColumn& c = out.storage[i - static_cast<int>(Leaf::kId)];
      RETURN_IF_ERROR(ReadViews(index, column_index_[i], leaves_[i], &c));
      if (i >= static_cast<int>(Leaf::kHeaderKey)) continue;
      if (static_cast<size_t>(c.num_levels) != num_rows) {
        return RowCountMismatch(i, static_cast<size_t>(c.num_levels), num_rows);
      }
      std::vector<std::string_view>& column = *views[i - static_cast<int>(Leaf::kId)];
      if (c.definition_levels.empty()) {  // required: a value per row
        if (c.values.size() != num_rows) return RowCountMismatch(i, c.values.size(), num_rows);
        column = c.values;
        continue;
      }
      const auto max_def = static_cast<uint32_t>(leaves_[i].schema.max_definition_level);
      column.assign(num_rows, std::string_view());
      size_t v = 0;
      for (size_t r = 0; r < num_rows; ++r) {
        if (c.definition_levels[r] != max_def) continue;
        if (v == c.values.size()) return Corrupt(StrCat("column ", leaves_[i].schema.path,
                                                        " is short"));
        column[r] = c.values[v++];
      }
    }
    RETURN_IF_ERROR(AssembleHeaderViews(num_rows, &out));
    return out;
  }

 private:
  absl::Status RowCountMismatch(int leaf, size_t values, size_t rows) const {
    return Corrupt(StrCat("column ", leaves_[leaf].schema.path, " has ", values, " values for ",
                          rows, " rows"));
  }

  // The headers map of every row from its key and value columns (storage[3] and [4]), shaped
  // as AssembleHeaders expects them.
  absl::Status AssembleHeaderViews(size_t num_rows, RowGroupViews* out) const {
    const ByteArrayColumn& keys = out->storage[3];
    const ByteArrayColumn& values = out->storage[4];
    const ResolvedLeaf& key_leaf = leaves_[6];
    if (keys.definition_levels.size() != values.definition_levels.size() ||
        keys.repetition_levels != values.repetition_levels ||
        keys.definition_levels.size() != keys.repetition_levels.size()) {
      return Corrupt("header key and value columns have different shapes");
    }
    const uint32_t entry_def = static_cast<uint32_t>(key_leaf.def_at_depth[1]);
    const auto key_max = static_cast<uint32_t>(key_leaf.schema.max_definition_level);
    const auto value_max = static_cast<uint32_t>(leaves_[7].schema.max_definition_level);
    out->header_begin.assign(num_rows + 1, 0);
    size_t kv = 0, vv = 0;
    int64_t row = -1;
    for (size_t l = 0; l < keys.definition_levels.size(); ++l) {
      if (keys.repetition_levels[l] == 0) {
        ++row;
        if (static_cast<size_t>(row) >= num_rows) {
          return Corrupt("headers column has more rows than the row group");
        }
        out->header_begin[row] = static_cast<uint32_t>(out->headers.size());
      }
      if (row < 0) return Corrupt("headers column has more rows than the row group");
      if (keys.definition_levels[l] < entry_def) continue;  // null or empty map
      std::pair<std::string_view, std::string_view> entry;
      if (keys.definition_levels[l] == key_max) {
        if (kv == keys.values.size()) return Corrupt("header keys are short");
        entry.first = keys.values[kv++];
      }
      if (values.definition_levels[l] == value_max) {
        if (vv == values.values.size()) return Corrupt("header values are short");
        entry.second = values.values[vv++];
      }
      out->headers.push_back(entry);
    }
    if (static_cast<size_t>(row + 1) != num_rows) {
      return Corrupt("headers column has fewer rows than the row group");
    }
    out->header_begin[num_rows] = static_cast<uint32_t>(out->headers.size());
    return absl::OkStatus();
  }

 public:
  absl::Status ReadByteArrayColumn(int group, std::string_view path, ByteArrayColumn* out) const {
    int column = 0;
    RETURN_IF_ERROR(FindByteArrayColumn(group, path, &column));
    return ReadViews(group, column, all_leaves_[column], out);
  }

 private:
  // Column `column` (index into all_leaves_, a BYTE_ARRAY leaf) of row group `group` as views.
  absl::Status ReadViews(int group, int column, const ResolvedLeaf& leaf,
                         ByteArrayColumn* out) const {
    const std::string& path = leaf.schema.path;
    out->values.clear();
    out->definition_levels.clear();
    out->repetition_levels.clear();
    out->num_levels = 0;
    // storage[0] holds the column chunk's bytes, the rest decompressed pages; each keeps its
    // capacity for the next read into `out`.
    size_t used = 0;
    auto next_buffer = [&]() -> std::string* {
      if (used == out->storage.size()) out->storage.push_back(std::make_unique<std::string>());
      return out->storage[used++].get();
    };
    std::string* chunk = next_buffer();
    ViewDecoder decoder;
    PageVisitor visitor;
    visitor.page_buffer = [&](bool) { return next_buffer(); };
    visitor.dictionary = [&](std::string_view bytes, size_t count) {
      return decoder.Dictionary(bytes, count);
    };
    visitor.data = [&](format::Encoding encoding, std::string_view values, size_t non_null) {
      return decoder.Data(path, encoding, values, non_null, next_buffer, &out->values);
    };
    size_t levels = 0;
    RETURN_IF_ERROR(WalkColumnChunk(group, column, leaf, chunk, visitor,
                                    &out->definition_levels, &out->repetition_levels, &levels));
    out->num_levels = static_cast<int64_t>(levels);
    return absl::OkStatus();
  }

 public:

  absl::Status ScanByteArrayColumn(int group, std::string_view path,
                                   const std::function<absl::Status(const ByteArrayPage&)>& fn,
                                   ByteArrayScratch* scratch) const {
    int column = 0;
    RETURN_IF_ERROR(FindByteArrayColumn(group, path, &column));
    // One buffer for the chunk, one for the dictionary page, one reused for every data page (so
    // it stays in cache), and one for DELTA_* values.
    while (scratch->buffers.size() < 4) scratch->buffers.push_back(std::make_unique<std::string>());
    std::string* chunk = scratch->buffers[0].get();
    ViewDecoder decoder;
    std::vector<uint32_t> def, rep;
    std::vector<std::string_view>& values = scratch->values;
    size_t levels = 0, page_levels_start = 0;
    PageVisitor visitor;
    visitor.page_buffer = [&](bool is_dictionary) {
      return scratch->buffers[is_dictionary ? 1 : 2].get();
    };
    visitor.dictionary = [&](std::string_view bytes, size_t count) {
      return decoder.Dictionary(bytes, count);
    };
    visitor.data = [&](format::Encoding encoding, std::string_view bytes,
                       size_t non_null) -> absl::Status {
      values.clear();
      RETURN_IF_ERROR(decoder.Data(path, encoding, bytes, non_null,
                                   [&] { return scratch->buffers[3].get(); }, &values));
      ByteArrayPage page;
      page.values = values;
      page.definition_levels = def;
      page.repetition_levels = rep;
      page.num_levels = static_cast<int64_t>(levels - page_levels_start);
      page_levels_start = levels;
      RETURN_IF_ERROR(fn(page));
      def.clear();
      rep.clear();
      return absl::OkStatus();
    };
    return WalkColumnChunk(group, column, all_leaves_[column], chunk, visitor, &def, &rep, &levels);
  }

 private:
  absl::Status FindByteArrayColumn(int group, std::string_view path, int* column) const {
    if (group < 0 || static_cast<size_t>(group) >= row_groups_.size()) {
      return absl::OutOfRangeError(StrCat("no row group ", group));
    }
    auto it = std::find_if(all_leaves_.begin(), all_leaves_.end(),
                           [&](const ResolvedLeaf& l) { return l.schema.path == path; });
    if (it == all_leaves_.end()) {
      return absl::NotFoundError(StrCat("Parquet file has no column ", path));
    }
    if (it->schema.physical_type != format::Type::BYTE_ARRAY) {
      return absl::InvalidArgumentError(StrCat("Parquet column ", path, " is not a BYTE_ARRAY"));
    }
    *column = static_cast<int>(it - all_leaves_.begin());
    return absl::OkStatus();
  }

  // Decodes byte-array pages into views: of the page bytes (PLAIN), of the dictionary page
  // (dictionary encodings), or of a buffer the DELTA_* values are copied into.
  class ViewDecoder {
   public:
    absl::Status Dictionary(std::string_view bytes, size_t count) {
      dict_.clear();
      has_dict_ = true;
      return DecodePlainViews(bytes, count, &dict_);
    }

    absl::Status Data(std::string_view path, format::Encoding encoding, std::string_view bytes,
                      size_t non_null, const std::function<std::string*()>& buffer,
                      std::vector<std::string_view>* out) {
      switch (encoding) {
        case format::Encoding::PLAIN:
          return DecodePlainViews(bytes, non_null, out);
        case format::Encoding::PLAIN_DICTIONARY:
        case format::Encoding::RLE_DICTIONARY:
          if (!has_dict_) return Corrupt("dictionary-encoded page without a dictionary page");
          return DecodeDictionaryViews(bytes, non_null, dict_, out);
        case format::Encoding::DELTA_LENGTH_BYTE_ARRAY:
        case format::Encoding::DELTA_BYTE_ARRAY: {
          decoded_.clear();
          RETURN_IF_ERROR(encoding == format::Encoding::DELTA_BYTE_ARRAY
                              ? internal::DecodeDeltaByteArray(bytes, non_null, &decoded_)
                              : internal::DecodeDeltaLengthByteArray(bytes, non_null, &decoded_));
          std::string* copy = buffer();
          copy->clear();
          for (const std::string& v : decoded_) copy->append(v);
          size_t pos = 0;
          for (const std::string& v : decoded_) {
            out->emplace_back(copy->data() + pos, v.size());
            pos += v.size();
          }
          return absl::OkStatus();
        }
        default:
          return absl::UnimplementedError(StrCat("Parquet encoding ", static_cast<int>(encoding),
                                                 " is not supported for column ", path));
      }
    }

   private:
    std::vector<std::string_view> dict_;
    bool has_dict_ = false;
    std::vector<std::string> decoded_;
  };

 private:
  // PLAIN byte arrays as views into `in`.
  static absl::Status DecodePlainViews(std::string_view in, size_t count,
                                       std::vector<std::string_view>* out) {
    out->reserve(out->size() + count);
    const char* p = in.data();
    const char* const end = p + in.size();
    for (size_t i = 0; i < count; ++i) {
      if (end - p < 4) return Corrupt("PLAIN byte array length truncated");
      const uint32_t len = LoadFixed32(p);
      p += 4;
      if (len > static_cast<size_t>(end - p)) return Corrupt("PLAIN byte array truncated");
      out->emplace_back(p, len);
      p += len;
    }
    return absl::OkStatus();
  }

  // RLE_DICTIONARY / PLAIN_DICTIONARY indices (bit width byte, then the hybrid encoding)
  // resolved to views of the dictionary's values.
  static absl::Status DecodeDictionaryViews(std::string_view in, size_t count,
                                            const std::vector<std::string_view>& dict,
                                            std::vector<std::string_view>* out) {
    if (count == 0) return absl::OkStatus();
    if (in.empty()) return Corrupt("dictionary indices truncated");
    std::vector<uint32_t> indices;
    indices.reserve(count);
    RETURN_IF_ERROR(
        internal::DecodeRleHybrid(in.substr(1), static_cast<uint8_t>(in[0]), count, &indices));
    out->reserve(out->size() + count);
    for (uint32_t index : indices) {
      if (index >= dict.size()) return Corrupt("dictionary index out of range");
      out->push_back(dict[index]);
    }
    return absl::OkStatus();
  }

  // What WalkColumnChunk calls per page. `page_buffer` gives the string a compressed page (the
  // dictionary page or a data page) is decompressed into; the bytes passed to `dictionary` and
  // `data` live there, or in the chunk buffer for uncompressed pages.
  struct PageVisitor {
    std::function<std::string*(bool is_dictionary)> page_buffer;
    // A dictionary page: `count` PLAIN values.
    std::function<absl::Status(std::string_view bytes, size_t count)> dictionary;
    // A data page's values (levels already decoded): `non_null` values in `encoding`.
    std::function<absl::Status(format::Encoding encoding, std::string_view values,
                               size_t non_null)>
        data;
  };

  // Reads column `column` (index into all_leaves_) of row group `group` into `*chunk` and walks
  // its pages. Levels are appended to `*def` / `*rep` only for a max level above 0; `*levels`
  // counts them either way.
  absl::Status WalkColumnChunk(int group, int column, const ResolvedLeaf& leaf, std::string* chunk,
                               const PageVisitor& visitor, std::vector<uint32_t>* def,
                               std::vector<uint32_t>* rep, size_t* levels) const {
    const format::ColumnMetaData& m = meta_.row_groups[group].columns[column].meta_data;
    const std::string& path = leaf.schema.path;
    int64_t start = m.data_page_offset;
    if (m.__isset.dictionary_page_offset && m.dictionary_page_offset >= 4 &&
        m.dictionary_page_offset < start) {
      start = m.dictionary_page_offset;
    }
    if (start < 4 || m.total_compressed_size < 0 || static_cast<uint64_t>(start) > data_end_ ||
        static_cast<uint64_t>(m.total_compressed_size) > data_end_ - static_cast<uint64_t>(start)) {
      return Corrupt(StrCat("column chunk ", path, " lies outside the file's data"));
    }
    if (m.num_values < 0 || m.num_values > kMaxValuesPerChunk) {
      return Corrupt(StrCat("column chunk ", path, " has a bad value count"));
    }
    RETURN_IF_ERROR(source_->ReadAt(static_cast<uint64_t>(start),
                                    static_cast<uint64_t>(m.total_compressed_size), chunk));
    const auto codec = m.codec;
    const int max_def = leaf.schema.max_definition_level;
    const int max_rep = leaf.schema.max_repetition_level;
    const size_t total = static_cast<size_t>(m.num_values);
    bool has_dict = false;
    std::string_view rest = *chunk;
    internal::Decompressor decompressor;
    // Uncompressed bytes are used where they lie in the chunk; others are decompressed.
    auto expand = [&](std::string_view raw, uint64_t size, bool is_dictionary,
                      std::string_view* page) {
      if (codec == format::CompressionCodec::UNCOMPRESSED) {
        if (raw.size() != size) {
          return absl::DataLossError("uncompressed page size does not match its header");
        }
        *page = raw;
        return absl::OkStatus();
      }
      std::string* buffer = visitor.page_buffer(is_dictionary);
      RETURN_IF_ERROR(decompressor.Decompress(codec, raw, size, buffer));
      *page = *buffer;
      return absl::OkStatus();
    };
    // Decodes `n` levels into `*out` when max_level > 0 and returns how many equal max_level
    // (all `n` when max_level is 0).
    auto levels_of = [&](std::string_view* in, int max_level, size_t n, bool with_length,
                         std::vector<uint32_t>* out, size_t* at_max) -> absl::Status {
      if (max_level == 0) {
        *at_max = n;
        return absl::OkStatus();
      }
      const size_t begin = out->size();
      RETURN_IF_ERROR(DecodeLevels(in, max_level, n, with_length, out));
      *at_max = static_cast<size_t>(
          std::count(out->begin() + begin, out->end(), static_cast<uint32_t>(max_level)));
      return absl::OkStatus();
    };
    while (*levels < total) {
      if (rest.empty()) return Corrupt(StrCat("column chunk ", path, " ends early"));
      format::PageHeader h;
      uint64_t consumed = 0;
      RETURN_IF_ERROR(internal::ParsePageHeader(rest, &h, &consumed));
      rest.remove_prefix(consumed);
      if (h.compressed_page_size < 0 ||
          static_cast<uint64_t>(h.compressed_page_size) > rest.size() ||
          h.uncompressed_page_size < 0 || h.uncompressed_page_size > kMaxPageBytes) {
        return Corrupt(StrCat("page of column ", path, " has bad sizes"));
      }
      std::string_view raw = rest.substr(0, h.compressed_page_size);
      rest.remove_prefix(h.compressed_page_size);
      switch (h.type) {
        case format::PageType::DICTIONARY_PAGE: {
          if (!h.__isset.dictionary_page_header || has_dict) {
            return Corrupt(StrCat("bad dictionary page in column ", path));
          }
          const auto& dh = h.dictionary_page_header;
          if (dh.encoding != format::Encoding::PLAIN &&
              dh.encoding != format::Encoding::PLAIN_DICTIONARY) {
            return absl::UnimplementedError(
                StrCat("dictionary page encoding ", static_cast<int>(dh.encoding), " in ", path));
          }
          if (dh.num_values < 0) return Corrupt("negative dictionary size");
          std::string_view page;
          RETURN_IF_ERROR(expand(raw, h.uncompressed_page_size, true, &page));
          has_dict = true;
          RETURN_IF_ERROR(visitor.dictionary(page, static_cast<size_t>(dh.num_values)));
          break;
        }
        case format::PageType::DATA_PAGE: {
          if (!h.__isset.data_page_header) return Corrupt("data page without its header");
          const auto& dh = h.data_page_header;
          RETURN_IF_ERROR(CheckPageValues(dh.num_values, *levels, total, path));
          const auto n = static_cast<size_t>(dh.num_values);
          if ((max_rep > 0 && dh.repetition_level_encoding != format::Encoding::RLE) ||
              (max_def > 0 && dh.definition_level_encoding != format::Encoding::RLE)) {
            return absl::UnimplementedError(StrCat("level encoding other than RLE in ", path));
          }
          std::string_view body;
          RETURN_IF_ERROR(expand(raw, h.uncompressed_page_size, false, &body));
          size_t unused = 0, non_null = 0;
          RETURN_IF_ERROR(levels_of(&body, max_rep, n, true, rep, &unused));
          RETURN_IF_ERROR(levels_of(&body, max_def, n, true, def, &non_null));
          *levels += n;
          RETURN_IF_ERROR(visitor.data(dh.encoding, body, non_null));
          break;
        }
        case format::PageType::DATA_PAGE_V2: {
          if (!h.__isset.data_page_header_v2) return Corrupt("data page v2 without its header");
          const auto& dh = h.data_page_header_v2;
          RETURN_IF_ERROR(CheckPageValues(dh.num_values, *levels, total, path));
          const auto n = static_cast<size_t>(dh.num_values);
          const int64_t rep_len = dh.repetition_levels_byte_length;
          const int64_t def_len = dh.definition_levels_byte_length;
          if (rep_len < 0 || def_len < 0 || rep_len + def_len > static_cast<int64_t>(raw.size()) ||
              rep_len + def_len > h.uncompressed_page_size) {
            return Corrupt(StrCat("data page v2 level lengths in ", path));
          }
          std::string_view rep_bytes = raw.substr(0, rep_len);
          std::string_view def_bytes = raw.substr(rep_len, def_len);
          size_t unused = 0, non_null = 0;
          RETURN_IF_ERROR(levels_of(&rep_bytes, max_rep, n, false, rep, &unused));
          RETURN_IF_ERROR(levels_of(&def_bytes, max_def, n, false, def, &non_null));
          *levels += n;
          std::string_view values = raw.substr(rep_len + def_len);
          const uint64_t values_size = h.uncompressed_page_size - rep_len - def_len;
          if (dh.is_compressed) {
            RETURN_IF_ERROR(expand(values, values_size, false, &values));
          }
          RETURN_IF_ERROR(visitor.data(dh.encoding, values, non_null));
          break;
        }
        default:
          break;  // index pages and unknown page types carry no values
      }
    }
    return absl::OkStatus();
  }

  static absl::Status CheckPageValues(int32_t n, size_t have, size_t total, std::string_view path) {
    if (n < 0 || static_cast<size_t>(n) > total - have) {
      return Corrupt(StrCat("page of column ", path, " holds more values than its chunk"));
    }
    return absl::OkStatus();
  }

  std::unique_ptr<Source> source_;
  uint64_t data_end_ = 0;
  format::FileMetaData meta_;
  std::vector<ResolvedLeaf> all_leaves_;
  std::vector<ColumnSchema> schema_;
  // nodata's leaves, in kLeaves order, then the partition column when has_partition_.
  std::vector<ResolvedLeaf> leaves_;
  std::array<int, kMaxLeaves> column_index_{};
  bool has_partition_ = false;
  std::vector<RowGroupInfo> row_groups_;
};

Reader::Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::~Reader() = default;

absl::StatusOr<std::unique_ptr<Reader>> Reader::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto source, OpenFileSource(path));
  return Open(std::move(source));
}

absl::StatusOr<std::unique_ptr<Reader>> Reader::Open(std::unique_ptr<Source> source) {
  auto impl = std::make_unique<Impl>(std::move(source));
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Reader>(new Reader(std::move(impl)));
}

const std::vector<ColumnSchema>& Reader::schema() const { return impl_->schema(); }
const std::vector<RowGroupInfo>& Reader::row_groups() const { return impl_->row_groups(); }
int64_t Reader::num_rows() const { return impl_->num_rows(); }
const std::string& Reader::created_by() const { return impl_->created_by(); }
absl::StatusOr<std::vector<Record>> Reader::ReadRowGroup(int index) const {
  return impl_->ReadRowGroup(index);
}
absl::StatusOr<RowGroupViews> Reader::ReadRowGroupViews(int index) const {
  return impl_->ReadRowGroupViews(index);
}
absl::Status Reader::ReadByteArrayColumn(int index, std::string_view path,
                                         ByteArrayColumn* out) const {
  return impl_->ReadByteArrayColumn(index, path, out);
}
absl::Status Reader::ScanByteArrayColumn(
    int index, std::string_view path, const std::function<absl::Status(const ByteArrayPage&)>& fn,
    ByteArrayScratch* scratch) const {
  ByteArrayScratch local;
  return impl_->ScanByteArrayColumn(index, path, fn, scratch != nullptr ? scratch : &local);
}

}  // namespace nodata::parquet
