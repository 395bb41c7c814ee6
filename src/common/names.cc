#include "common/names.h"

#include "common/status.h"
#include "common/strings.h"
#include "absl/strings/escaping.h"
#include "fmt/format.h"

namespace nodata {

absl::Status ValidateTopicName(std::string_view name) { return ValidateName("topic", name); }

absl::Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(StrCat(what, " name is empty"));
  if (name.size() > kMaxTopicNameLength) {
    return absl::InvalidArgumentError(StrCat(what, " name is ", name.size(),
                                                   " characters long; the limit is ",
                                                   kMaxTopicNameLength));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(StrCat(what, " name \"", name, "\" is reserved"));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      std::string shown = absl::CHexEscape(absl::string_view(name.data(), name.size()));
      return absl::InvalidArgumentError(
          fmt::format("{} name \"{}\" has character 0x{:02x}; allowed are [a-zA-Z0-9._-]",
                      what, shown, static_cast<unsigned char>(c)));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNewName(std::string_view what, std::string_view name) {
  RETURN_IF_ERROR(ValidateName(what, name));
  if (name.front() == '-') {
    // Such a name reads as a flag on every command line (ours, ls, rm) that is given it.
    return absl::InvalidArgumentError(StrCat(what, " name \"", name,
                                             "\" starts with '-', which reads as a "
                                             "command-line flag; start it with [a-zA-Z0-9._]"));
  }
  return absl::OkStatus();
}

}  // namespace nodata
