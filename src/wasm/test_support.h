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

// One runtime (and compile cache) for the whole test binary.
inline Runtime& SharedRuntime() {
  static TempDir* dir = new TempDir();
  static std::unique_ptr<Runtime> runtime = [] {
    RuntimeOptions options;
    options.cache_dir = dir->path() + "/cache";
    options.compile_threads = 2;
    return std::move(Runtime::Create(options).value());
  }();
  return *runtime;
}

}  // namespace nodata::wasm::test
