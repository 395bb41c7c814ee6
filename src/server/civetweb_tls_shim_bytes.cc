// The bytes of the shared object built from civetweb_tls_shim.c (see civetweb_tls.h).
#include "server/civetweb_tls.h"

// NODATA_CIVETWEB_TLS_SHIM: the built object's path, set by CMake.
asm(".pushsection .rodata\n"
    ".balign 64\n"
    ".globl nodata_civetweb_tls_shim_begin\n"
    "nodata_civetweb_tls_shim_begin:\n"
    ".incbin \"" NODATA_CIVETWEB_TLS_SHIM "\"\n"
    ".globl nodata_civetweb_tls_shim_end\n"
    "nodata_civetweb_tls_shim_end:\n"
    ".popsection\n");
