#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <system_error>

#include "common/strings.h"
#include "common/fs.h"
#include "common/status.h"

namespace nodata {
namespace {

class PosixWritableFile final : public WritableFile {
 public:
  // `allocated`: the blocks the file holds, which may reach past its size (a reservation an
  // earlier writer left), so that Truncate gives them back.
  PosixWritableFile(std::string path, int fd, uint64_t size, uint64_t allocated)
      : path_(std::move(path)), fd_(fd), size_(size), reserved_(std::max(size, allocated)) {}
  ~PosixWritableFile() override { ::close(fd_); }

  absl::Status Append(std::string_view data) override {
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, StrCat("write ", path_));
      }
      p += n;
      left -= static_cast<size_t>(n);
      size_.fetch_add(static_cast<uint64_t>(n), std::memory_order_release);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoToStatus(errno, StrCat("fdatasync ", path_));
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return ErrnoToStatus(errno, StrCat("ftruncate ", path_));
    }
    // O_APPEND writes go to the new end; keep our view of the size in step.
    size_.store(size, std::memory_order_release);
    if (reserved_ > size) {
      // Give back blocks reserved past the new end (some file systems keep them through an
      // ftruncate to the same size). Best effort: without hole punching they stay until deletion.
      ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(size),
                  static_cast<off_t>(reserved_ - size));
      reserved_ = size;
    }
    return absl::OkStatus();
  }

  absl::Status Reserve(uint64_t size) override {
    if (size <= reserved_ || !reserve_supported_) return absl::OkStatus();
    uint64_t from = std::max(reserved_, Size());
    int rc = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                         static_cast<off_t>(size - from));
    if (rc != 0) {
      if (errno == EOPNOTSUPP || errno == ENOSYS) {
        reserve_supported_ = false;
        return absl::OkStatus();
      }
      return ErrnoToStatus(errno, StrCat("fallocate ", path_));
    }
    reserved_ = size;
    return absl::OkStatus();
  }

  uint64_t Size() const override { return size_.load(std::memory_order_acquire); }
  const std::string& path() const override { return path_; }

 private:
  const std::string path_;
  const int fd_;
  std::atomic<uint64_t> size_;
  uint64_t reserved_;
  bool reserve_supported_ = true;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  absl::StatusOr<size_t> Read(uint64_t offset, size_t n, char* scratch) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, scratch + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, StrCat("pread ", path_));
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

  absl::StatusOr<uint64_t> Size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return ErrnoToStatus(errno, StrCat("fstat ", path_));
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  const std::string path_;
  const int fd_;
};

std::string DirOf(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

class PosixFs final : public FileSystem {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenAppendable(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, StrCat("fstat ", path));
    }
    return std::make_unique<PosixWritableFile>(path, fd, static_cast<uint64_t>(st.st_size),
                                               static_cast<uint64_t>(st.st_blocks) * 512);
  }

  absl::StatusOr<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
    return std::make_unique<PosixRandomAccessFile>(path, fd);
  }

  absl::Status WriteFileAtomic(const std::string& path, std::string_view data) override {
    std::string tmp = StrCat(path, ".tmp");
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", tmp));
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return ErrnoToStatus(err, StrCat("write ", tmp));
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ErrnoToStatus(err, StrCat("fsync ", tmp));
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return ErrnoToStatus(err, StrCat("rename ", tmp));
    }
    return SyncDir(DirOf(path));
  }

  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return ErrnoToStatus(err, StrCat("read ", path));
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      names.push_back(entry.path().filename().string());
    }
    if (ec) return ErrnoToStatus(ec.value(), StrCat("list ", dir));
    return names;
  }

  absl::Status CreateDirs(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return ErrnoToStatus(ec.value(), StrCat("mkdir ", dir));
    return absl::OkStatus();
  }

  absl::Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, StrCat("unlink ", path));
    }
    return absl::OkStatus();
  }

  absl::Status RemoveAll(const std::string& path) override {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) return ErrnoToStatus(ec.value(), StrCat("remove ", path));
    return absl::OkStatus();
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoToStatus(errno, StrCat("rename ", from, " to ", to));
    }
    return absl::OkStatus();
  }

  absl::Status SyncDir(const std::string& dir) override {
    return SyncOpened(dir, O_DIRECTORY, ::fsync, "fsync");
  }

  absl::Status SyncFileSystem(const std::string& path) override {
    return SyncOpened(path, 0, ::syncfs, "syncfs");
  }

  bool Exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

 private:
  // `sync` (fsync, syncfs) on `path` opened read-only.
  static absl::Status SyncOpened(const std::string& path, int flags, int (*sync)(int),
                                 std::string_view what) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
    int rc = sync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoToStatus(err, StrCat(what, " ", path));
    return absl::OkStatus();
  }
};

}  // namespace

FileSystem& PosixFileSystem() {
  static PosixFs fs;  // stateless, so its destruction at exit is harmless
  return fs;
}

}  // namespace nodata
