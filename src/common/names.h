// Validation of names that become paths on disk.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace nodata {

inline constexpr size_t kMaxTopicNameLength = 249;

// OK when `name` matches [a-zA-Z0-9._-]{1,249} and is neither "." nor "..", so that it is safe
// as one directory name; INVALID_ARGUMENT with a readable message otherwise. For names looked
// up: an existing one stays reachable whatever later rules say.
absl::Status ValidateTopicName(std::string_view name);
// The same rules for other names ("group", "consumer id"), named `what` in the message.
absl::Status ValidateName(std::string_view what, std::string_view name);
// ValidateName's rules and, for a name being created, no leading '-', so that the name is safe
// as a command-line argument too.
absl::Status ValidateNewName(std::string_view what, std::string_view name);

}  // namespace nodata
