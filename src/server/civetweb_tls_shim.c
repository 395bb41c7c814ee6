/* A shared object loaded into the server (from bytes embedded in it, civetweb_tls.h) before
 * civetweb starts TLS. Debian 12's civetweb 1.15 is built for OpenSSL 1.1's API: it dlopen()s
 * "libssl.so" and looks up SSL_get_peer_certificate, which OpenSSL 3 no longer exports (it became
 * a macro for SSL_get1_peer_certificate, the same function). This object's soname is
 * "libssl.so", so civetweb's dlopen() finds it already loaded; its lookups find that one function
 * here and every other one in libssl.so.3, which it depends on. */
struct ssl_st;
struct x509_st;

struct x509_st* SSL_get1_peer_certificate(const struct ssl_st* ssl);

/* OpenSSL 1.1's contract: the peer's certificate with a reference for the caller, as get1. */
struct x509_st* SSL_get_peer_certificate(const struct ssl_st* ssl) {
  return SSL_get1_peer_certificate(ssl);
}
