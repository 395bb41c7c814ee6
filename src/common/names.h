// Validation of names that become paths on disk.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace nodata {

inline constexpr size_t kMaxTopicNameLength = 249;

// OK when `name` matches [a-zA-Z0-9._-]{1,249}, is neither "." nor ".." and does not start with
// '-', so that it is safe as one directory name and as a command-line argument; INVALID_ARGUMENT
// with a readable message otherwise.
absl::Status ValidateTopicName(std::string_view name);
// The same rules for other names ("group", "consumer id"), named `what` in the message.
absl::Status ValidateName(std::string_view what, std::string_view name);

}  // namespace nodata
