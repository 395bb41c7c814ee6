#include "wasm/native/translate.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string_view>
#include <vector>

#include "wabt/apply-names.h"
#include "wabt/binary-reader-ir.h"
#include "wabt/binary-reader.h"
#include "wabt/c-writer.h"
#include "wabt/config.h"
#include "wabt/error-formatter.h"
#include "wabt/feature.h"
#include "wabt/generate-names.h"
#include "wabt/ir.h"
#include "wabt/stream.h"
#include "wabt/validator.h"
#include "wasm/internal/prepare.h"

namespace nodata::wasm {

std::string TranslatorVersion() { return std::string("wabt-c-writer ") + WABT_VERSION_STRING; }

int TranslateMain(int argc, char** argv) {
  if (argc > 0 && std::string_view(argv[0]) == "wasm") {
    --argc;
    ++argv;
  }
  if (argc != 4 || std::string_view(argv[0]) != "translate") {
    std::fprintf(stderr, "usage: nodata wasm translate IN.wasm OUT.c OUT.h\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  // The input is a module nodata prepared: the same features as at load, SIMD among the disabled
  // ones (the C writer of wabt 1.0.32 aborts on SIMD; here it is a decode error instead).
  const wabt::Features features = internal::SupportedFeatures();
  wabt::Errors errors;
  wabt::Module module;
  wabt::ReadBinaryOptions options(features, nullptr, false, true, false);
  wabt::Result result =
      wabt::ReadBinaryIr(argv[1], bytes.data(), bytes.size(), options, &errors, &module);
  if (wabt::Succeeded(result)) {
    result = wabt::ValidateModule(&module, &errors, wabt::ValidateOptions(features));
  }
  if (wabt::Succeeded(result)) result = wabt::GenerateNames(&module);
  if (wabt::Succeeded(result)) result = wabt::ApplyNames(&module);
  if (wabt::Failed(result)) {
    std::string text = wabt::FormatErrorsToString(errors, wabt::Location::Type::Binary);
    std::fprintf(stderr, "translate: %s\n", text.c_str());
    return 1;
  }
  wabt::FileStream c_stream(argv[2]);
  wabt::FileStream h_stream(argv[3]);
  if (!c_stream.is_open() || !h_stream.is_open()) {
    std::fprintf(stderr, "translate: cannot write %s or %s\n", argv[2], argv[3]);
    return 1;
  }
  std::string header = argv[3];
  size_t slash = header.rfind('/');
  if (slash != std::string::npos) header = header.substr(slash + 1);
  wabt::WriteCOptions write_options;
  write_options.module_name = kTranslatedModuleName;
  if (wabt::Failed(wabt::WriteC(&c_stream, &h_stream, header.c_str(), &module, write_options))) {
    std::fprintf(stderr, "translate: the C writer failed\n");
    return 1;
  }
  return 0;
}

}  // namespace nodata::wasm
