// A program component that sinks a topic into a file: appends each record as one JSON line
// {"partition", "offset", "key", "data"} to the file named by the configuration, and fsyncs
// before the batch counts as written (its offsets are committed after that).
//
//   nodata component add archive --exec build-sdk/examples/file_sink_component \
//       --sink orders --config /var/lib/archive/orders.jsonl
//
// At-least-once: after a crash between the fsync and the commit the batch is appended again;
// readers drop lines whose (partition, offset) they have already seen. A line a crash left
// unfinished is cut off when the sink starts again.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "json_quote.h"
#include "nodata/component.h"

namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(what + ": " + std::strerror(errno));
}

class FileSink : public nodata::component::Sink {
 public:
  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Open(const nodata::component::ComponentEnv& env) override {
    path_ = env.config;
    if (path_.empty()) {
      return absl::InvalidArgumentError("the configuration must name the file to append to");
    }
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return Errno("open " + path_);
    return DropTornLine();
  }

  absl::Status Write(const std::vector<nodata::client::Record>& batch) override {
    std::string lines;
    for (const nodata::client::Record& r : batch) {
      lines += "{\"partition\":" + std::to_string(r.partition) +
               ",\"offset\":" + std::to_string(r.offset) + ",\"key\":" + JsonQuote(r.event.key) +
               ",\"data\":" + JsonQuote(r.event.data) + "}\n";
    }
    for (size_t done = 0; done < lines.size();) {
      const ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("write " + path_);
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd_) != 0) return Errno("fsync " + path_);
    return absl::OkStatus();
  }

 private:
  // A crash in the middle of a write leaves the file's last line unfinished: cut it off, so that
  // the batch written again starts on a line of its own. Every line before it was fsynced.
  absl::Status DropTornLine() {
    const off_t size = ::lseek(fd_, 0, SEEK_END);
    if (size < 0) return Errno("seek " + path_);
    off_t end = size;
    char buf[4096];
    while (end > 0) {
      const off_t at = end > static_cast<off_t>(sizeof buf) ? end - sizeof buf : 0;
      const ssize_t n = ::pread(fd_, buf, static_cast<size_t>(end - at), at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("read " + path_);
      if (n == 0) break;  // the file shrank under us: keep what is there
      const void* nl = ::memrchr(buf, '\n', static_cast<size_t>(n));
      if (nl != nullptr) {
        end = at + (static_cast<const char*>(nl) - buf) + 1;
        break;
      }
      end = at;
    }
    if (end == size) return absl::OkStatus();
    if (::ftruncate(fd_, end) != 0 || ::fsync(fd_) != 0) return Errno("truncate " + path_);
    return absl::OkStatus();
  }

  std::string path_;
  int fd_ = -1;
};

}  // namespace

int main() {
  FileSink sink;
  return nodata::component::RunComponent(sink);
}
