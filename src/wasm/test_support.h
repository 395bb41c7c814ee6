// Helpers shared by the wasm tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "wasm/runtime.h"

namespace nodata::wasm::test {

// A fresh directory under TMPDIR, removed at exit of the owning object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "nodata-wasm-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::vector<uint8_t> TestModule(const std::string& name) {
  std::ifstream in(std::string(NODATA_WASM_TESTDATA) + "/" + name + ".wasm", std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runtime options for tests, caching in `cache_dir`. Under AddressSanitizer the translator child
// (this test binary) reserves terabytes of shadow memory: its address-space limit is lifted.
inline RuntimeOptions TestOptions(const std::string& cache_dir) {
  RuntimeOptions options;
  options.cache_dir = cache_dir;
#if defined(__SANITIZE_ADDRESS__)
  options.compile_limits.memory_bytes = 1ull << 46;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  options.compile_limits.memory_bytes = 1ull << 46;
#endif
#endif
  return options;
}

// One runtime (and compile cache) for the whole test binary.
inline Runtime& SharedRuntime() {
  static TempDir* dir = new TempDir();
  static std::unique_ptr<Runtime> runtime = [] {
    RuntimeOptions options = TestOptions(dir->path() + "/cache");
    options.compile_threads = 2;
    return std::move(Runtime::Create(options).value());
  }();
  return *runtime;
}

}  // namespace nodata::wasm::test
