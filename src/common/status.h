// Status helpers shared by every module: early-return macros and errno mapping.
#pragma once

#include <cerrno>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodata {

// Maps an errno value from a failed system call to a canonical status: ENOSPC/EDQUOT become
// RESOURCE_EXHAUSTED, ENOENT NOT_FOUND, and so on. `context` names the call and path.
absl::Status ErrnoToStatus(int err, std::string_view context);

}  // namespace nodata

#define NODATA_CONCAT_INNER(a, b) a##b
#define NODATA_CONCAT(a, b) NODATA_CONCAT_INNER(a, b)

// Returns from the calling function if `expr` yields a non-OK status.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status _nodata_status = (expr);      \
    if (!_nodata_status.ok()) return _nodata_status; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, Fn());` declares x from an OK StatusOr or returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(NODATA_CONCAT(_nodata_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
