#include <climits>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "parquet/reader.h"
#include "parquet/writer.h"

namespace nodata::parquet {
namespace {

constexpr int kEncPlain = 0;
constexpr int kEncRleDictionary = 8;

std::vector<Record> MakeRecords(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Record> out;
  for (size_t i = 0; i < n; ++i) {
    Record r;
    r.offset = static_cast<int64_t>(i) + 1000;
    r.timestamp_us = 1'700'000'000'000'000 + static_cast<int64_t>(i) * 7 - 50;
    r.ingest_time_us = r.timestamp_us + static_cast<int64_t>(rng() % 1000);
    r.id = "id-" + std::to_string(rng()) + "-" + std::to_string(i);
    if (i % 3 != 0) r.key = "user-" + std::to_string(rng() % 17);
    r.data.resize(rng() % 200);
    for (char& c : r.data) c = static_cast<char>(rng());
    const size_t headers = i % 5;  // 0..4 entries
    for (size_t h = 0; h < headers; ++h) {
      r.headers.emplace_back("h" + std::to_string(h),
                             h == 2 ? "" : "v" + std::to_string(rng() % 4));
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string WriteToString(const std::vector<Record>& records, const WriterOptions& options,
                          size_t batch = 97) {
  std::string file;
  auto writer = Writer::Open(NewStringSink(&file), options);
  EXPECT_TRUE(writer.ok()) << writer.status();
  for (size_t i = 0; i < records.size(); i += batch) {
    std::vector<Record> part(records.begin() + i,
                             records.begin() + std::min(records.size(), i + batch));
    EXPECT_TRUE((*writer)->WriteBatch(part).ok());
  }
  EXPECT_TRUE((*writer)->Close().ok());
  return file;
}

// The records ReadRowGroupViews returns, as owned records (partition from `like`, which views
// do not read).
std::vector<Record> FromViews(const RowGroupViews& v, const std::vector<Record>& like) {
  std::vector<Record> out(v.rows());
  EXPECT_EQ(v.header_begin.size(), v.rows() + 1);
  for (size_t r = 0; r < v.rows() && r < like.size(); ++r) {
    out[r].offset = v.offset[r];
    out[r].timestamp_us = v.timestamp_us[r];
    out[r].ingest_time_us = v.ingest_time_us[r];
    out[r].id = std::string(v.id[r]);
    out[r].key = std::string(v.key[r]);
    out[r].data = std::string(v.data[r]);
    for (uint32_t h = v.header_begin[r]; h < v.header_begin[r + 1]; ++h) {
      out[r].headers.emplace_back(std::string(v.headers[h].first),
                                  std::string(v.headers[h].second));
    }
    out[r].partition = like[r].partition;
  }
  return out;
}

// Every row group, read by ReadRowGroup; ReadRowGroupViews must return the same records.
std::vector<Record> ReadAll(const Reader& reader) {
  std::vector<Record> out;
  for (size_t g = 0; g < reader.row_groups().size(); ++g) {
    auto records = reader.ReadRowGroup(static_cast<int>(g));
    EXPECT_TRUE(records.ok()) << records.status();
    if (!records.ok()) return out;
    auto views = reader.ReadRowGroupViews(static_cast<int>(g));
    EXPECT_TRUE(views.ok()) << views.status();
    if (views.ok()) {
      RowGroupViews moved = std::move(*views);  // the views stay valid when moved
      EXPECT_EQ(FromViews(moved, *records), *records) << "row group " << g;
    }
    out.insert(out.end(), records->begin(), records->end());
  }
  return out;
}

int64_t DecodeInt64(const std::string& s) {
  int64_t v;
  EXPECT_EQ(s.size(), 8u);
  std::memcpy(&v, s.data(), 8);
  return v;
}

const ColumnChunkInfo& Column(const RowGroupInfo& rg, std::string_view path) {
  for (const auto& c : rg.columns) {
    if (c.path == path) return c;
  }
  ADD_FAILURE() << "no column " << path;
  return rg.columns[0];
}

class RoundTrip : public ::testing::TestWithParam<Codec> {};

TEST_P(RoundTrip, ManyRecordsAcrossRowGroupsAndPages) {
  const auto records = MakeRecords(5000, 1);
  WriterOptions options;
  options.codec = GetParam();
  options.row_group_rows = 1500;
  options.page_size_bytes = 4096;
  const std::string file = WriteToString(records, options);
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->num_rows(), 5000);
  ASSERT_EQ((*reader)->row_groups().size(), 4u);
  EXPECT_EQ((*reader)->row_groups()[3].num_rows, 500);
  for (const auto& c : (*reader)->row_groups()[0].columns) {
    EXPECT_EQ(c.codec, static_cast<int>(GetParam())) << c.path;
  }
  EXPECT_EQ(ReadAll(**reader), records);
}

INSTANTIATE_TEST_SUITE_P(Codecs, RoundTrip,
                         ::testing::Values(Codec::kUncompressed, Codec::kSnappy, Codec::kZstd));

TEST(Writer, ExplicitFlushMakesRowGroupsAndEmptyFileIsValid) {
  std::string file;
  auto writer = Writer::Open(NewStringSink(&file));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->FlushRowGroup().ok());  // nothing buffered: no row group
  ASSERT_TRUE((*writer)->WriteBatch(MakeRecords(3, 2)).ok());
  ASSERT_TRUE((*writer)->FlushRowGroup().ok());
  ASSERT_TRUE((*writer)->WriteBatch(MakeRecords(2, 3)).ok());
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_FALSE((*writer)->WriteBatch(MakeRecords(1, 4)).ok());
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->row_groups().size(), 2u);
  EXPECT_EQ((*reader)->num_rows(), 5);

  std::string empty;
  auto w2 = Writer::Open(NewStringSink(&empty));
  ASSERT_TRUE((*w2)->Close().ok());
  auto r2 = Reader::Open(NewStringSource(empty));
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ((*r2)->num_rows(), 0);
  EXPECT_EQ((*r2)->schema().size(), 8u);
}

TEST(Writer, WritesToAFile) {
  const std::string path = ::testing::TempDir() + "/parquet_writer_test.parquet";
  const auto records = MakeRecords(100, 5);
  auto writer = Writer::Open(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->WriteBatch(records).ok());
  ASSERT_TRUE((*writer)->Close().ok());
  auto reader = Reader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(ReadAll(**reader), records);
  EXPECT_EQ(Reader::Open(path + ".missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(Schema, ExposesLevelsOfTheMapColumns) {
  const std::string file = WriteToString(MakeRecords(10, 6), {});
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok());
  const auto& schema = (*reader)->schema();
  ASSERT_EQ(schema.size(), 8u);
  EXPECT_EQ(schema[4].path, "key");
  EXPECT_EQ(schema[4].max_definition_level, 1);
  EXPECT_EQ(schema[6].path, "headers.key_value.key");
  EXPECT_EQ(schema[6].max_definition_level, 2);
  EXPECT_EQ(schema[6].max_repetition_level, 1);
  EXPECT_EQ(schema[7].max_definition_level, 3);
}

TEST(Schema, KeyAndDataCarryTheTopicsFormatsAsLogicalTypes) {
  std::vector<Record> records = MakeRecords(50, 11);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i].data = "{\"amt\":" + std::to_string(i) + ",\"note\":\"caf\u00e9\"}";
  }
  WriterOptions options;
  options.key_format = DataFormat::kString;
  options.data_format = DataFormat::kJson;
  auto reader = Reader::Open(NewStringSource(WriteToString(records, options)));
  ASSERT_TRUE(reader.ok()) << reader.status();
  const auto& schema = (*reader)->schema();
  ASSERT_EQ(schema.size(), 8u);
  EXPECT_EQ(schema[4].path, "key");
  EXPECT_EQ(schema[4].physical_type, 6);  // still BYTE_ARRAY
  EXPECT_EQ(schema[4].logical_type, "STRING");
  EXPECT_EQ(schema[5].path, "data");
  EXPECT_EQ(schema[5].physical_type, 6);
  EXPECT_EQ(schema[5].logical_type, "JSON");
  EXPECT_EQ(schema[1].logical_type, "TIMESTAMP(MICROS,true)");
  EXPECT_EQ(schema[1].timestamp_unit_nanos, 1000);
  EXPECT_EQ(schema[3].logical_type, "STRING");
  EXPECT_EQ(schema[0].logical_type, "");
  EXPECT_EQ(schema[0].timestamp_unit_nanos, 0);
  // The bytes are stored as given and read back unchanged.
  EXPECT_EQ(ReadAll(**reader), records);

  // Bytes (the default) leave both columns without an annotation.
  auto plain = Reader::Open(NewStringSource(WriteToString(records, {})));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->schema()[4].logical_type, "");
  EXPECT_EQ((*plain)->schema()[5].logical_type, "");
  options.data_format = DataFormat::kString;
  auto text = Reader::Open(NewStringSource(WriteToString(records, options)));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ((*text)->schema()[5].logical_type, "STRING");
}

TEST(Statistics, TextBoundsOfStringDataAreCutOnCharacterBoundaries) {
  std::vector<Record> records(2);
  records[0].data = "a" + std::string(40, 'x');
  records[1].data = std::string(20, 'z') + "\u00e9\u00e9\u00e9";  // 2-byte characters at 20..25
  WriterOptions options;
  options.data_format = DataFormat::kString;
  options.statistics_max_bytes = 21;
  auto reader = Reader::Open(NewStringSource(WriteToString(records, options)));
  ASSERT_TRUE(reader.ok());
  const auto& stats = Column((*reader)->row_groups()[0], "data").statistics;
  EXPECT_EQ(*stats.min_value, "a" + std::string(20, 'x'));
  // 21 bytes would split "\u00e9": the bound is the ASCII prefix with its last byte raised.
  EXPECT_EQ(*stats.max_value, std::string(19, 'z') + "{");
}

TEST(Writer, PartitionColumnHoldsEachRecordsPartition) {
  std::vector<Record> records = MakeRecords(3000, 12);
  for (size_t i = 0; i < records.size(); ++i) records[i].partition = static_cast<int32_t>(i / 1000);
  WriterOptions options;
  options.partition_column = true;
  options.row_group_rows = 1100;  // row groups span partitions
  options.page_size_bytes = 2048;
  auto reader = Reader::Open(NewStringSource(WriteToString(records, options)));
  ASSERT_TRUE(reader.ok()) << reader.status();
  const auto& schema = (*reader)->schema();
  ASSERT_EQ(schema.size(), 9u);
  EXPECT_EQ(schema[8].path, "partition");
  EXPECT_EQ(schema[8].physical_type, 1);  // INT32
  EXPECT_EQ(schema[8].max_definition_level, 0);
  ASSERT_EQ((*reader)->row_groups().size(), 3u);
  const auto& stats = Column((*reader)->row_groups()[1], "partition").statistics;
  ASSERT_EQ(stats.min_value->size(), 4u);  // PLAIN INT32
  int32_t min, max;
  std::memcpy(&min, stats.min_value->data(), 4);
  std::memcpy(&max, stats.max_value->data(), 4);
  EXPECT_EQ(min, 1);
  EXPECT_EQ(max, 2);
  EXPECT_EQ(ReadAll(**reader), records);

  // Without the option there is no such column and the partition reads as 0.
  auto plain = Reader::Open(NewStringSource(WriteToString(records, {})));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->schema().size(), 8u);
  EXPECT_EQ(ReadAll(**plain)[2500].partition, 0);
}

TEST(Statistics, MinMaxAndNullCountsPerColumnChunk) {
  auto records = MakeRecords(300, 7);
  records[10].id = "\xff\xfe";  // unsigned order: above every ASCII id
  records[11].id = "A";
  const std::string file = WriteToString(records, {});
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok());
  const RowGroupInfo& rg = (*reader)->row_groups()[0];
  const auto& offset = Column(rg, "offset").statistics;
  EXPECT_EQ(DecodeInt64(*offset.min_value), 1000);
  EXPECT_EQ(DecodeInt64(*offset.max_value), 1299);
  EXPECT_EQ(*offset.null_count, 0);
  const auto& id = Column(rg, "id").statistics;
  EXPECT_EQ(*id.min_value, "A");
  EXPECT_EQ(*id.max_value, "\xff\xfe");
  EXPECT_EQ(*Column(rg, "key").statistics.null_count,
            100);  // every third key is empty
  EXPECT_EQ(*Column(rg, "headers.key_value.key").statistics.min_value, "h0");
  EXPECT_EQ(*Column(rg, "headers.key_value.key").statistics.max_value, "h3");
  EXPECT_EQ(*Column(rg, "headers.key_value.key").statistics.null_count,
            60);  // empty maps
}

TEST(Statistics, LongValuesAreTruncatedToValidBounds) {
  std::vector<Record> records(2);
  records[0].data = std::string(1000, 'a');
  records[1].data = std::string(1000, '\xff');
  records[0].id = std::string(100, 'b');
  records[1].id = std::string(100, 'c');
  WriterOptions options;
  options.statistics_max_bytes = 16;
  auto reader = Reader::Open(NewStringSource(WriteToString(records, options)));
  ASSERT_TRUE(reader.ok());
  const RowGroupInfo& rg = (*reader)->row_groups()[0];
  EXPECT_EQ(*Column(rg, "data").statistics.min_value, std::string(16, 'a'));
  EXPECT_FALSE(Column(rg, "data").statistics.max_value.has_value());  // no bound fits 16 bytes
  EXPECT_EQ(*Column(rg, "id").statistics.max_value, std::string(15, 'c') + "d");
}

TEST(Dictionary, UsedForRepetitiveColumnsOnly) {
  const std::string file = WriteToString(MakeRecords(2000, 8), {});
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok());
  const RowGroupInfo& rg = (*reader)->row_groups()[0];
  auto has = [](const ColumnChunkInfo& c, int e) {
    return std::find(c.encodings.begin(), c.encodings.end(), e) != c.encodings.end();
  };
  EXPECT_TRUE(has(Column(rg, "key"), kEncRleDictionary));
  EXPECT_TRUE(Column(rg, "key").has_dictionary_page);
  EXPECT_TRUE(has(Column(rg, "headers.key_value.key"), kEncRleDictionary));
  EXPECT_TRUE(has(Column(rg, "headers.key_value.value"), kEncRleDictionary));
  EXPECT_FALSE(has(Column(rg, "id"), kEncRleDictionary));
  EXPECT_FALSE(has(Column(rg, "data"), kEncRleDictionary));
  EXPECT_TRUE(has(Column(rg, "id"), kEncPlain));
}

TEST(Dictionary, OverflowedColumnIsRetriedAfterEightRowGroups) {
  // Row group 0's ids are unique and overflow a 256-byte dictionary, so the next eight row
  // groups are shredded without one; from row group 9 on, the repeated ids get one again.
  std::vector<Record> records = MakeRecords(100 * 11, 21);
  for (size_t i = 100; i < records.size(); ++i) records[i].id = "same";
  WriterOptions options;
  options.row_group_rows = 100;
  options.dictionary_max_bytes = 256;
  const std::string file = WriteToString(records, options, 100);
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok());
  ASSERT_EQ((*reader)->row_groups().size(), 11u);
  for (size_t g = 0; g < 11; ++g) {
    const auto& encodings = Column((*reader)->row_groups()[g], "id").encodings;
    const bool dict = std::find(encodings.begin(), encodings.end(), kEncRleDictionary) !=
                      encodings.end();
    EXPECT_EQ(dict, g >= 9) << "row group " << g;
  }
  EXPECT_EQ(ReadAll(**reader), records);
  options.threads = 2;
  EXPECT_EQ(WriteToString(records, options, 100), file);
}

TEST(RoundTrip, EdgeCasesSurvive) {
  std::vector<Record> records(4);
  records[0].data = std::string("\0\x01\xff", 3);  // key null, id empty
  records[1].id = "only";
  records[1].headers = {{"dup", "1"}, {"dup", ""}, {"", "x"}};
  records[2].offset = INT64_MIN;
  records[2].timestamp_us = INT64_MAX;
  records[2].headers.assign(5000, {"k", "v"});  // one row larger than a page
  records[3].key = std::string(70000, 'k');
  WriterOptions options;
  options.page_size_bytes = 100;
  for (Codec codec : {Codec::kUncompressed, Codec::kSnappy, Codec::kZstd}) {
    options.codec = codec;
    auto reader = Reader::Open(NewStringSource(WriteToString(records, options)));
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ(ReadAll(**reader), records);
  }
  // A row group whose key column is all null has a null count and no bounds.
  std::vector<Record> no_keys(3);
  auto reader = Reader::Open(NewStringSource(WriteToString(no_keys, {})));
  ASSERT_TRUE(reader.ok());
  const auto& stats = Column((*reader)->row_groups()[0], "key").statistics;
  EXPECT_EQ(*stats.null_count, 3);
  EXPECT_FALSE(stats.min_value.has_value());
  EXPECT_EQ(ReadAll(**reader), no_keys);
}

// A sink that fails once `limit` bytes have been written.
class FailingSink : public Sink {
 public:
  explicit FailingSink(size_t limit) : limit_(limit) {}
  absl::Status Append(std::string_view data) override {
    if (written_ + data.size() > limit_) return absl::ResourceExhaustedError("disk full");
    written_ += data.size();
    return absl::OkStatus();
  }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  size_t limit_;
  size_t written_ = 0;
};

TEST(Writer, SinkFailureIsReportedAndPoisonsTheWriter) {
  auto writer = Writer::Open(std::make_unique<FailingSink>(100));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->WriteBatch(MakeRecords(50, 11)).ok());  // buffered only
  EXPECT_EQ((*writer)->FlushRowGroup().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*writer)->WriteBatch(MakeRecords(1, 12)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*writer)->Close().ok());
  EXPECT_FALSE(Writer::Open(std::make_unique<FailingSink>(2)).ok());  // magic does not fit
}

TEST(Writer, FailureOfABackgroundFlushIsReportedByALaterCall) {
  WriterOptions options;
  options.threads = 2;
  options.row_group_rows = 50;
  auto writer = Writer::Open(std::make_unique<FailingSink>(5000), options);
  ASSERT_TRUE(writer.ok());
  absl::Status first_error;
  for (uint32_t i = 0; i < 20 && first_error.ok(); ++i) {
    first_error = (*writer)->WriteBatch(MakeRecords(50, 30 + i));
  }
  if (first_error.ok()) first_error = (*writer)->Close();
  EXPECT_EQ(first_error.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*writer)->WriteBatch(MakeRecords(1, 12)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*writer)->Close().ok());
}

TEST(CorruptFile, BadMagicShortFileAndAbsurdFooterLengthAreCleanErrors) {
  EXPECT_FALSE(Reader::Open(NewStringSource("")).ok());
  EXPECT_FALSE(Reader::Open(NewStringSource("PAR1PAR1")).ok());
  EXPECT_EQ(
      Reader::Open(NewStringSource("PAR1\x01\x02\x03\x04\x05\x06\x07\x08PAR2")).status().code(),
      absl::StatusCode::kInvalidArgument);
  std::string huge = "PAR1xxxx";
  huge += std::string("\xff\xff\xff\x7f", 4) + "PAR1";
  EXPECT_EQ(Reader::Open(NewStringSource(huge)).status().code(), absl::StatusCode::kDataLoss);
  std::string garbage = "PAR1" + std::string(40, '\x19') + std::string("\x28\0\0\0", 4) + "PAR1";
  EXPECT_FALSE(Reader::Open(NewStringSource(garbage)).ok());
  // A footer claiming a list of a billion schema elements in a few bytes.
  std::string bomb = "PAR1";
  std::string footer = {'\x15', '\x02', '\x19', '\xfc', '\xff', '\xff', '\xff', '\x0f', 0};
  bomb += footer;
  bomb += std::string(1, static_cast<char>(footer.size())) + std::string(3, '\0') + "PAR1";
  EXPECT_FALSE(Reader::Open(NewStringSource(bomb)).ok());
}

TEST(CorruptFile, TruncationAtEveryLengthIsACleanError) {
  const std::string file = WriteToString(MakeRecords(50, 9), {});
  for (size_t n = 0; n < file.size(); ++n) {
    auto reader = Reader::Open(NewStringSource(file.substr(0, n)));
    EXPECT_FALSE(reader.ok()) << n;
  }
}

class ColumnRead : public ::testing::TestWithParam<Codec> {};

// ReadByteArrayColumn sees the same values as ReadRowGroup, for plain (id, data) and
// dictionary-encoded (key, header) columns, with levels only where the column has them.
TEST_P(ColumnRead, ByteArrayColumnMatchesRecords) {
  const auto records = MakeRecords(3000, 11);
  WriterOptions options;
  options.codec = GetParam();
  options.row_group_rows = 1200;
  options.page_size_bytes = 2048;
  const std::string file = WriteToString(records, options);
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  ByteArrayColumn data, key, header_values;  // reused across row groups
  size_t row = 0;
  for (size_t g = 0; g < (*reader)->row_groups().size(); ++g) {
    const int group = static_cast<int>(g);
    ASSERT_TRUE((*reader)->ReadByteArrayColumn(group, "data", &data).ok());
    ASSERT_TRUE((*reader)->ReadByteArrayColumn(group, "key", &key).ok());
    ASSERT_TRUE(
        (*reader)->ReadByteArrayColumn(group, "headers.key_value.value", &header_values).ok());
    const int64_t rows = (*reader)->row_groups()[g].num_rows;
    EXPECT_EQ(data.num_levels, rows);
    EXPECT_TRUE(data.definition_levels.empty());
    EXPECT_TRUE(data.repetition_levels.empty());
    ASSERT_EQ(data.values.size(), static_cast<size_t>(rows));
    ASSERT_EQ(key.definition_levels.size(), static_cast<size_t>(rows));
    size_t k = 0, h = 0;
    for (int64_t r = 0; r < rows; ++r, ++row) {
      const Record& want = records[row];
      EXPECT_EQ(data.values[r], want.data) << row;
      if (want.key.empty()) {
        EXPECT_EQ(key.definition_levels[r], 0u) << row;
      } else {
        ASSERT_EQ(key.definition_levels[r], 1u) << row;
        EXPECT_EQ(key.values[k++], want.key) << row;
      }
      for (const auto& [unused, value] : want.headers) {
        ASSERT_LT(h, header_values.values.size());
        EXPECT_EQ(header_values.values[h++], value) << row;
      }
    }
    EXPECT_EQ(k, key.values.size());
    EXPECT_EQ(h, header_values.values.size());
    EXPECT_EQ(header_values.repetition_levels.size(), header_values.definition_levels.size());
  }
  EXPECT_EQ(row, records.size());
  // Views stay valid when the column is moved.
  ByteArrayColumn moved = std::move(data);
  EXPECT_EQ(moved.values.back(), records.back().data);
}

// ScanByteArrayColumn hands out the same values and levels page by page.
TEST_P(ColumnRead, ScanByteArrayColumnMatchesReadByteArrayColumn) {
  const auto records = MakeRecords(3000, 13);
  WriterOptions options;
  options.codec = GetParam();
  options.row_group_rows = 1200;
  options.page_size_bytes = 2048;
  const std::string file = WriteToString(records, options);
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  ByteArrayScratch scratch;
  for (const char* path : {"data", "key", "headers.key_value.key"}) {
    for (size_t g = 0; g < (*reader)->row_groups().size(); ++g) {
      ByteArrayColumn whole;
      ASSERT_TRUE((*reader)->ReadByteArrayColumn(static_cast<int>(g), path, &whole).ok());
      std::vector<std::string> values;
      std::vector<uint32_t> def, rep;
      int64_t levels = 0, pages = 0;
      absl::Status s = (*reader)->ScanByteArrayColumn(
          static_cast<int>(g), path,
          [&](const ByteArrayPage& page) {
            values.insert(values.end(), page.values.begin(), page.values.end());
            def.insert(def.end(), page.definition_levels.begin(), page.definition_levels.end());
            rep.insert(rep.end(), page.repetition_levels.begin(), page.repetition_levels.end());
            levels += page.num_levels;
            ++pages;
            return absl::OkStatus();
          },
          &scratch);
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(values, std::vector<std::string>(whole.values.begin(), whole.values.end()))
          << path;
      EXPECT_EQ(def, whole.definition_levels) << path;
      EXPECT_EQ(rep, whole.repetition_levels) << path;
      EXPECT_EQ(levels, whole.num_levels) << path;
      if (std::string_view(path) == "data") {
        EXPECT_GT(pages, 1) << "want several pages";
      }
    }
  }
  // The callback's error stops the scan.
  int calls = 0;
  absl::Status stop = (*reader)->ScanByteArrayColumn(0, "data", [&](const ByteArrayPage&) {
    ++calls;
    return absl::CancelledError("enough");
  });
  EXPECT_EQ(stop.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);
}

INSTANTIATE_TEST_SUITE_P(Codecs, ColumnRead,
                         ::testing::Values(Codec::kUncompressed, Codec::kSnappy, Codec::kZstd));

TEST(Writer, ThreadsDoNotChangeTheFile) {
  const auto records = MakeRecords(6000, 14);
  WriterOptions options;
  options.row_group_rows = 2500;
  options.page_size_bytes = 4096;
  const std::string one = WriteToString(records, options, 3000);
  options.threads = 3;
  EXPECT_EQ(WriteToString(records, options, 3000), one);
  EXPECT_EQ(WriteToString(records, options, 7), one);  // batches too small to shred in parallel
}

TEST(ColumnRead, WrongColumnOrTypeOrGroupIsAnError) {
  const std::string file = WriteToString(MakeRecords(10, 12), {});
  auto reader = Reader::Open(NewStringSource(file));
  ASSERT_TRUE(reader.ok());
  ByteArrayColumn col;
  EXPECT_EQ((*reader)->ReadByteArrayColumn(0, "nope", &col).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*reader)->ReadByteArrayColumn(0, "offset", &col).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*reader)->ReadByteArrayColumn(1, "data", &col).code(),
            absl::StatusCode::kOutOfRange);
}

TEST(CorruptFile, FlippedBytesNeverCrash) {
  for (Codec codec : {Codec::kUncompressed, Codec::kZstd}) {
    WriterOptions options;
    options.codec = codec;
    const auto records = MakeRecords(40, 10);
    const std::string file = WriteToString(records, options);
    int errors = 0;
    for (size_t i = 0; i < file.size(); ++i) {
      for (uint8_t mask : {0x01, 0x80, 0xff}) {
        std::string bad = file;
        bad[i] = static_cast<char>(bad[i] ^ mask);
        auto reader = Reader::Open(NewStringSource(bad));
        if (!reader.ok()) {
          ++errors;
          continue;
        }
        for (size_t g = 0; g < (*reader)->row_groups().size(); ++g) {
          if (!(*reader)->ReadRowGroup(static_cast<int>(g)).ok()) ++errors;
          if (!(*reader)->ReadRowGroupViews(static_cast<int>(g)).ok()) ++errors;
          ByteArrayColumn column;
          if (!(*reader)->ReadByteArrayColumn(static_cast<int>(g), "data", &column).ok()) ++errors;
          auto noop = [](const ByteArrayPage&) { return absl::OkStatus(); };
          if (!(*reader)->ScanByteArrayColumn(static_cast<int>(g), "id", noop).ok()) ++errors;
        }
      }
    }
    EXPECT_GT(errors, 0);
  }
}

}  // namespace
}  // namespace nodata::parquet
