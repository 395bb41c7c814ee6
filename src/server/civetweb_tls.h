// civetweb's TLS on Debian 12: its civetweb 1.15 loads OpenSSL at run time through OpenSSL 1.1's
// function names, one of which OpenSSL 3 no longer exports (civetweb_tls_shim.c). The server
// carries a small shared object that supplies it; LoadCivetwebTlsShim loads it from memory (no
// file besides the binary), so that civetweb's own dlopen("libssl.so") finds it.
#pragma once

#include "absl/status/status.h"

extern "C" const unsigned char nodata_civetweb_tls_shim_begin[];
extern "C" const unsigned char nodata_civetweb_tls_shim_end[];

namespace nodata::server {

// Loads the shim once per process (later calls return the first result). Call before civetweb
// initializes TLS.
absl::Status LoadCivetwebTlsShim();

}  // namespace nodata::server
