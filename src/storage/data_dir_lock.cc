#include "storage/data_dir_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "storage/data_dir.h"

namespace nodata::storage {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// The pid written by the holder, or "unknown" when it has not been written yet.
std::string HolderPid(int fd) {
  char buf[32];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "unknown";
  std::string pid(buf, static_cast<size_t>(n));
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) return "unknown";
  return pid;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(const std::string& dir) {
  RETURN_IF_ERROR(PosixFileSystem().CreateDirs(dir));
  const std::string path = DataDir(dir).LockPath();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    return absl::PermissionDeniedError(
        StrCat("cannot open lock file ", path, ": ", ErrnoText(err)));
  }
  // flock locks belong to the open file description: a second Acquire in this process fails
  // too, and a child process does not inherit the lock (O_CLOEXEC).
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string pid = HolderPid(fd);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(StrCat("data directory ", dir,
                                                  " is in use by another nodata process (pid ",
                                                  pid, ")"));
    }
    return absl::UnavailableError(StrCat("cannot lock ", path, ": ", ErrnoText(err)));
  }
  const std::string pid = StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) !=
                                     static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(StrCat("cannot write lock file ", path, ": ", ErrnoText(err)));
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
}

DataDirLock::~DataDirLock() {
  // The pid stays in the file: a stale pid is harmless, since only the flock is authoritative.
  ::close(fd_);
}

}  // namespace nodata::storage
