#include "wasm/text.h"

#include <memory>
#include <string>

#include "wabt/binary-writer.h"
#include "wabt/error-formatter.h"
#include "wabt/ir.h"
#include "wabt/stream.h"
#include "wabt/wast-lexer.h"
#include "wabt/wast-parser.h"
#include "wasm/internal/prepare.h"

namespace nodata::wasm {

bool IsBinaryModule(std::string_view bytes) {
  return bytes.size() >= 4 && bytes.substr(0, 4) == std::string_view("\0asm", 4);
}

absl::StatusOr<std::vector<uint8_t>> AssembleText(std::string_view text,
                                                  std::string_view filename) {
  wabt::Errors errors;
  std::unique_ptr<wabt::WastLexer> lexer =
      wabt::WastLexer::CreateBufferLexer(filename, text.data(), text.size(), &errors);
  wabt::WastParseOptions parse_options(internal::SupportedFeatures());
  std::unique_ptr<wabt::Module> module;
  if (wabt::Failed(wabt::ParseWatModule(lexer.get(), &module, &errors, &parse_options))) {
    std::string message = wabt::FormatErrorsToString(errors, wabt::Location::Type::Text,
                                                     lexer->MakeLineFinder().get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return absl::InvalidArgumentError(message);
  }
  wabt::MemoryStream stream;
  wabt::WriteBinaryOptions write_options;
  write_options.features = internal::SupportedFeatures();
  if (wabt::Failed(wabt::WriteBinaryModule(&stream, module.get(), write_options))) {
    return absl::InvalidArgumentError("the module cannot be written in the binary format");
  }
  return std::move(stream.output_buffer().data);
}

}  // namespace nodata::wasm
