#include "server/tls.h"

#include <gtest/gtest.h>

namespace nodata::server {
namespace {

TEST(TlsTest, LoopbackAddressesAreTheOnesOnlyThisMachineReaches) {
  for (const char* local : {"127.0.0.1:7070", "127.1.2.3:1", "[::1]:7070", "localhost:7070",
                            "unix:/tmp/nodata.sock", "unix-abstract:nodata", "ipv4:127.0.0.1:7070",
                            "dns:///localhost:7070"}) {
    EXPECT_TRUE(IsLoopbackAddress(local)) << local;
  }
  for (const char* exposed : {"0.0.0.0:7070", "[::]:7070", "10.0.0.5:7070", "[fe80::1]:7070",
                              "example.com:7070", ":7070", "128.0.0.1:7070", "[::1:7070",
                              "localhost.example.com:7070"}) {
    EXPECT_FALSE(IsLoopbackAddress(exposed)) << exposed;
  }
}

TEST(TlsTest, MissingFilesAreNamedInTheError) {
  auto loaded = TlsMaterial::Load({"/nonexistent/cert.pem", "/nonexistent/key.pem", ""});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("--tls-cert /nonexistent/cert.pem: cannot read it"),
            std::string::npos)
      << loaded.status();
  auto half = TlsMaterial::Load({"/nonexistent/cert.pem", "", ""});
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("go together"), std::string::npos) << half.status();
}

}  // namespace
}  // namespace nodata::server
