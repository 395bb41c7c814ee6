#include "server/civetweb_tls.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/strings.h"

namespace nodata::server {
namespace {

absl::Status Load() {
  const int fd = memfd_create("libssl.so", MFD_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(StrCat("memfd_create for the TLS shim: ", std::strerror(errno)));
  }
  const unsigned char* p = nodata_civetweb_tls_shim_begin;
  while (p < nodata_civetweb_tls_shim_end) {
    const ssize_t n = ::write(fd, p, static_cast<size_t>(nodata_civetweb_tls_shim_end - p));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      return absl::InternalError(StrCat("writing the TLS shim: ", std::strerror(e)));
    }
    p += n;
  }
  // Loaded for good: civetweb holds its functions until the process ends.
  void* handle = dlopen(StrCat("/proc/self/fd/", fd).c_str(), RTLD_NOW | RTLD_GLOBAL);
  ::close(fd);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(StrCat("loading the TLS shim: ", dlerror()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadCivetwebTlsShim() {
  static const absl::Status loaded = Load();
  return loaded;
}

}  // namespace nodata::server
