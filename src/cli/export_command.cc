// nodata topic export: a snapshot of a topic, read over gRPC (TopicService.ReadTopic), written
// as JSONL (the format `nodata publish --file` reads back) or as Parquet in the cold tier's
// schema.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "cli/client_commands.h"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "cli/record_json.h"
#include "common/status.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.grpc.pb.h"
#include "parquet/writer.h"
#include "server/grpc_util.h"

namespace nodata::cli {
namespace {

using nlohmann::json;

parquet::Record ParquetRecord(const nodata::v1::Record& r) {
  const auto& e = r.event();
  parquet::Record out;
  out.offset = static_cast<int64_t>(r.offset());
  out.timestamp_us = Micros(e.timestamp());
  out.ingest_time_us = Micros(r.ingest_time());
  out.id = e.id();
  out.key = e.key();
  out.data = e.data();
  std::map<std::string, std::string> sorted(e.headers().begin(), e.headers().end());
  out.headers.assign(sorted.begin(), sorted.end());
  return out;
}

// Parquet output: one file with a partition column, or a directory of
// partition=<p>/<first>-<last>.parquet files (the cold tier's layout without dates).
class ParquetOut {
 public:
  ParquetOut(std::string out, bool directory, parquet::WriterOptions options)
      : out_(std::move(out)), directory_(directory), options_(std::move(options)) {
    options_.partition_column = !directory_;
    while (directory_ && out_.size() > 1 && out_.back() == '/') out_.pop_back();
  }

  absl::Status Add(const nodata::v1::Record& r) {
    if (directory_ && writer_ && r.partition() != partition_) RETURN_IF_ERROR(Close());
    if (!writer_) RETURN_IF_ERROR(Open(r.partition(), r.offset()));
    last_ = r.offset();
    ++records_;
    parquet::Record record = ParquetRecord(r);
    record.partition = static_cast<int32_t>(r.partition());
    return writer_->Write(record);
  }

  // Ends the output; a single-file export of no records is a file without rows.
  absl::Status Finish() {
    if (!writer_ && files_ == 0 && !directory_) RETURN_IF_ERROR(Open(0, 0));
    return Close();
  }

  uint64_t records() const { return records_; }
  uint64_t files() const { return files_; }

 private:
  absl::Status Open(uint32_t partition, uint64_t first) {
    partition_ = partition;
    first_ = first;
    if (directory_) {
      const std::string dir = fmt::format("{}/partition={}", out_, partition_);
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) return absl::InternalError(fmt::format("create {}: {}", dir, ec.message()));
      tmp_ = fmt::format("{}/.{:020}.parquet.tmp", dir, first_);
    } else {
      tmp_ = out_ + ".tmp";
    }
    auto w = parquet::Writer::Open(tmp_, options_);
    if (!w.ok()) return w.status();
    writer_ = std::move(*w);
    return absl::OkStatus();
  }

  absl::Status Close() {
    if (!writer_) return absl::OkStatus();
    RETURN_IF_ERROR(writer_->Close());
    writer_.reset();
    std::string final_path =
        directory_ ? fmt::format("{}/partition={}/{:020}-{:020}.parquet", out_, partition_,
                                 first_, last_)
                   : out_;
    std::error_code ec;
    std::filesystem::rename(tmp_, final_path, ec);
    if (ec) return absl::InternalError(fmt::format("rename {}: {}", tmp_, ec.message()));
    ++files_;
    return absl::OkStatus();
  }

  std::string out_;
  const bool directory_;
  parquet::WriterOptions options_;
  std::unique_ptr<parquet::Writer> writer_;
  uint32_t partition_ = 0;
  uint64_t first_ = 0, last_ = 0, records_ = 0, files_ = 0;
  std::string tmp_;
};

}  // namespace

int TopicExport(const ClientOptions& c, const std::string& name, const ExportOptions& e) {
  if (e.format != "jsonl" && e.format != "parquet") {
    return Fail("--format must be jsonl or parquet, got \"" + e.format + "\"");
  }
  if (e.out.empty()) return Fail("--out is required");
  if (e.format == "parquet" && e.out == "-") return Fail("Parquet cannot be written to stdout");

  auto stub = nodata::v1::TopicService::NewStub(Connect(c));
  nodata::v1::GetTopicRequest get;
  get.set_name(name);
  nodata::v1::GetTopicResponse topic;
  grpc::Status s = stub->GetTopic(Context().get(), get, &topic);
  if (!s.ok()) return Fail(s);
  // Parquet keeps the topic's formats as logical types, as the cold tier does.
  parquet::WriterOptions parquet_options;
  auto key_format = server::DataFormatFromProto(topic.topic().key_format(), "key_format");
  auto data_format = server::DataFormatFromProto(topic.topic().data_format(), "data_format");
  if (key_format.ok()) parquet_options.key_format = *key_format;
  if (data_format.ok()) parquet_options.data_format = *data_format;
  // A directory when --out names one or ends in '/'; otherwise one file.
  std::error_code ec;
  const bool to_directory = e.out.ends_with('/') || std::filesystem::is_directory(e.out, ec);

  nodata::v1::ReadTopicRequest req;
  req.set_name(name);
  for (uint32_t p : e.partitions) req.add_partitions(p);
  req.set_start_offset(e.from);
  grpc::ClientContext ctx;
  auto reader = stub->ReadTopic(&ctx, req);

  std::unique_ptr<ParquetOut> parquet_out;
  std::ofstream file;
  std::ostream* text = nullptr;
  // JSONL goes to a temporary file renamed into place, except into a fifo or a device, which is
  // written as it is.
  struct stat out_stat;
  const bool out_exists = e.out != "-" && ::stat(e.out.c_str(), &out_stat) == 0;
  if (e.format == "jsonl" && out_exists && S_ISDIR(out_stat.st_mode)) {
    return Fail("--out " + e.out + " is a directory; JSONL goes to a file");
  }
  const bool direct = out_exists && !S_ISREG(out_stat.st_mode) && !S_ISDIR(out_stat.st_mode);
  const std::string tmp = direct ? e.out : e.out + ".tmp";
  if (e.format == "parquet") {
    parquet_out = std::make_unique<ParquetOut>(e.out, to_directory, parquet_options);
  } else if (e.out == "-") {
    text = &std::cout;
  } else {
    file.open(tmp, std::ios::binary | std::ios::trunc);
    if (!file) return Fail("cannot write " + tmp + ": " + std::strerror(errno));
    text = &file;
  }

  nodata::v1::RecordBatch batch;
  uint64_t records = 0;
  while (reader->Read(&batch)) {
    for (const auto& r : batch.records()) {
      if (parquet_out) {
        absl::Status st = parquet_out->Add(r);
        if (!st.ok()) return Fail(std::string(st.message()));
      } else {
        *text << RecordJson(r).dump() << "\n";
      }
      ++records;
    }
  }
  s = reader->Finish();
  if (!s.ok()) {
    if (file.is_open()) {
      file.close();
      if (!direct) std::remove(tmp.c_str());
    }
    return Fail(s);
  }
  if (parquet_out) {
    absl::Status st = parquet_out->Finish();
    if (!st.ok()) return Fail(std::string(st.message()));
  } else if (file.is_open()) {
    file.close();
    if (!file) return Fail("cannot write " + tmp + ": " + std::strerror(errno));
    if (!direct && std::rename(tmp.c_str(), e.out.c_str()) != 0) {
      return Fail("cannot rename " + tmp + " to " + e.out + ": " + std::strerror(errno));
    }
  } else {
    std::cout.flush();
  }
  if (e.out != "-") {
    if (c.json) {
      std::cout << json{{"topic", name}, {"records", records}, {"out", e.out},
                        {"format", e.format}}
                << "\n";
    } else {
      std::fprintf(stderr, "exported %lu records of %s to %s\n",
                   static_cast<unsigned long>(records), name.c_str(), e.out.c_str());
    }
  }
  return 0;
}

void AddTopicExportCommand(CommandSet& set, CLI::App* topic) {
  std::string& topic_name = set.Keep<std::string>();
  ExportOptions& eo = set.Keep<ExportOptions>();
  CLI::App* export_cmd =
      topic->add_subcommand("export", "write a snapshot of a topic as JSONL or Parquet");
  export_cmd->add_option("name", topic_name, "topic name")->required();
  export_cmd->add_option("--format", eo.format, "jsonl | parquet")->capture_default_str();
  export_cmd->add_option("--out", eo.out,
                         "output file (\"-\": stdout, JSONL only); Parquet: one file with a "
                         "partition column, or partition=<p>/ files when --out is an existing "
                         "directory or ends in /")
      ->required();
  OnePerFlag(export_cmd->add_option("--partition", eo.partitions, "partition to export (repeatable)"));
  export_cmd->add_option("--from", eo.from, "first offset in each partition");
  set.AddClientFlags(export_cmd);
  const ClientOptions& co = set.client();
  set.OnParsed(export_cmd, [&co, &topic_name, &eo] { return TopicExport(co, topic_name, eo); });
}

}  // namespace nodata::cli
