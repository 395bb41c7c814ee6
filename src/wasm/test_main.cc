// GoogleTest main for wasm_test. The runtime's translator is this executable's `wasm translate`
// command (as it is nodata's in production), so main hands that over first.
#include <string_view>

#include "gtest/gtest.h"
#include "wasm/native/translate.h"

int main(int argc, char** argv) {
  if (argc >= 3 && std::string_view(argv[1]) == "wasm") {
    return nodata::wasm::TranslateMain(argc - 2, argv + 2);
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
