#include "parquet/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/status.h"
#include "common/strings.h"

namespace nodata::parquet {
namespace {

class FileSink final : public Sink {
 public:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(std::string_view data) override {
    if (fd_ < 0) return absl::FailedPreconditionError("parquet sink is closed");
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, StrCat("write ", path_));
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return ErrnoToStatus(errno, StrCat("close ", path_));
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string path_;
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
  FileSource(int fd, uint64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}
  ~FileSource() override { ::close(fd_); }
  uint64_t size() const override { return size_; }

  absl::Status ReadAt(uint64_t offset, uint64_t n, std::string* out) const override {
    if (offset > size_ || n > size_ - offset) {
      return absl::OutOfRangeError(StrCat("read past the end of ", path_));
    }
    out->resize(n);
    uint64_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, out->data() + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, StrCat("pread ", path_));
      }
      if (r == 0) return absl::DataLossError(StrCat(path_, " shrank while reading"));
      done += static_cast<uint64_t>(r);
    }
    return absl::OkStatus();
  }

 private:
  int fd_;
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

absl::StatusOr<std::unique_ptr<Sink>> OpenFileSink(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  return std::make_unique<FileSink>(fd, path);
}

std::unique_ptr<Sink> NewStringSink(std::string* out) { return std::make_unique<StringSink>(out); }

absl::StatusOr<std::unique_ptr<Source>> OpenFileSource(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, StrCat("fstat ", path));
  }
  return std::make_unique<FileSource>(fd, static_cast<uint64_t>(st.st_size), path);
}

std::unique_ptr<Source> NewStringSource(std::string data) {
  return std::make_unique<StringSource>(std::move(data));
}

}  // namespace nodata::parquet
