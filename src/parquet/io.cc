#include "parquet/io.h"

#include "common/status.h"
#include "common/strings.h"

namespace nodata::parquet {
namespace {

class FileSink final : public Sink {
 public:
  FileSink(std::unique_ptr<WritableFile> file, bool sync_on_close)
      : file_(std::move(file)), sync_on_close_(sync_on_close) {}

  absl::Status Append(std::string_view data) override {
    if (!file_) return absl::FailedPreconditionError("parquet sink is closed");
    return file_->Append(data);
  }

  absl::Status Close() override {
    if (!file_) return absl::OkStatus();
    absl::Status s = sync_on_close_ ? file_->Sync() : absl::OkStatus();
    file_.reset();
    return s;
  }

 private:
  std::unique_ptr<WritableFile> file_;
  const bool sync_on_close_;
};

class StringSink final : public Sink {
 public:
  explicit StringSink(std::string* out) : out_(*out) {}
  absl::Status Append(std::string_view data) override {
    out_.append(data);
    return absl::OkStatus();
  }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  std::string& out_;
};

class FileSource final : public Source {
 public:
  FileSource(std::unique_ptr<RandomAccessFile> file, uint64_t size, std::string path)
      : file_(std::move(file)), size_(size), path_(std::move(path)) {}
  uint64_t size() const override { return size_; }

  absl::Status ReadAt(uint64_t offset, uint64_t n, std::string* out) const override {
    if (offset > size_ || n > size_ - offset) {
      return absl::OutOfRangeError(StrCat("read past the end of ", path_));
    }
    out->resize(n);
    ASSIGN_OR_RETURN(size_t got, file_->Read(offset, n, out->data()));
    if (got != n) return absl::DataLossError(StrCat(path_, " shrank while reading"));
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<RandomAccessFile> file_;
  uint64_t size_;
  std::string path_;
};

class StringSource final : public Source {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  absl::Status ReadAt(uint64_t offset, uint64_t n, std::string* out) const override {
    if (offset > data_.size() || n > data_.size() - offset) {
      return absl::OutOfRangeError("read past the end of the buffer");
    }
    out->assign(data_, offset, n);
    return absl::OkStatus();
  }

 private:
  std::string data_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Sink>> OpenFileSink(const std::string& path, FileSystem& fs,
                                                   bool sync_on_close) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs.OpenAppendable(path));
  RETURN_IF_ERROR(file->Truncate(0));
  return std::make_unique<FileSink>(std::move(file), sync_on_close);
}

std::unique_ptr<Sink> NewStringSink(std::string* out) { return std::make_unique<StringSink>(out); }

absl::StatusOr<std::unique_ptr<Source>> OpenFileSource(const std::string& path,
                                                       FileSystem& fs) {
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, fs.OpenReadable(path));
  ASSIGN_OR_RETURN(uint64_t size, file->Size());
  return std::make_unique<FileSource>(std::move(file), size, path);
}

std::unique_ptr<Source> NewStringSource(std::string data) {
  return std::make_unique<StringSource>(std::move(data));
}

}  // namespace nodata::parquet
