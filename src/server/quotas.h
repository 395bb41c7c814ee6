// Limits that keep one client from starving the others: per principal (a token's name, or the
// client's address with authentication off), a publish-bytes rate, a request rate and a count of
// open streams. Rates are token buckets holding up to a second's worth (--burst): a request goes
// when its principal's bucket holds its cost. One costing more than the bucket holds goes when
// the bucket is full and leaves it in debt, which the next request waits out; so a batch larger
// than a second's allowance still passes, and the rate holds over time. A caller over a rate is
// told how long to wait (RetryLater: RESOURCE_EXHAUSTED with google.rpc.RetryInfo).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace nodata::server {

struct QuotaOptions {
  double publish_bytes_per_second = 0;  // per principal; 0: unlimited
  double requests_per_second = 0;       // per principal; 0: unlimited
  int streams = 0;                      // open streams per principal; 0: unlimited
  // How much a rate may be exceeded at once after a quiet spell, in seconds of its rate.
  double burst_seconds = 1;
};

// The type URL under which RetryLater's delay rides as a status payload (and in gRPC's status
// details): google.rpc.RetryInfo.
inline constexpr std::string_view kRetryInfoTypeUrl = "type.googleapis.com/google.rpc.RetryInfo";

// RESOURCE_EXHAUSTED with `message` and a google.rpc.RetryInfo payload of `delay_us`.
absl::Status RetryLater(std::string_view message, int64_t delay_us);
// The retry delay of a RetryLater status, in microseconds; -1 when it has none.
int64_t RetryDelayMicros(const absl::Status& status);

// Safe for concurrent use.
class Quotas {
 public:
  using Clock = std::function<int64_t()>;  // monotonic microseconds
  // `registry` (optional) gets nodata_quota_exceeded_total{kind}.
  Quotas(QuotaOptions options, Clock now_us, prometheus::Registry* registry = nullptr);

  bool limits_rates() const {
    return options_.publish_bytes_per_second > 0 || options_.requests_per_second > 0;
  }
  bool limits_streams() const { return options_.streams > 0; }

  // Charges one request carrying `bytes` of events to `principal`: 0 when it may go ahead (and
  // is charged), else the microseconds until it may (nothing charged).
  int64_t Charge(std::string_view principal, uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // Charge as a status: OK, or RetryLater naming the principal and the exhausted rate.
  absl::Status Admit(std::string_view principal, uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  // One open stream of a principal, given back when destroyed.
  class Stream {
   public:
    Stream() = default;
    Stream(Stream&& other) noexcept { *this = std::move(other); }
    Stream& operator=(Stream&& other) noexcept;
    ~Stream() { Release(); }

   private:
    friend class Quotas;
    Stream(Quotas* quotas, std::string principal)
        : quotas_(quotas), principal_(std::move(principal)) {}
    void Release();
    Quotas* quotas_ = nullptr;
    std::string principal_;
  };
  // A stream slot for `principal`, or RESOURCE_EXHAUSTED when it has `streams` open.
  absl::StatusOr<Stream> OpenStream(std::string_view principal) ABSL_LOCKS_EXCLUDED(mu_);

  // Requests over a quota so far (refused, or for a publish stream delayed), by kind.
  struct Refusals {
    uint64_t publish_bytes = 0;
    uint64_t requests = 0;
    uint64_t streams = 0;
  };
  Refusals refusals() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Bucket {
    double level = 0;  // below zero: debt
    int64_t at_us = 0;
  };
  struct Account {
    Bucket bytes;
    Bucket requests;
    int streams = 0;
    int64_t used_us = 0;
  };
  // The wait (µs) before `bucket` (refilled to now) can pay `cost`; 0 when it can now.
  int64_t WaitLocked(Bucket& bucket, double rate, double cost, int64_t now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Account& AccountLocked(std::string_view principal, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The rate (publish bytes or requests) that made Charge wait, for messages.
  int64_t ChargeLocked(std::string_view principal, uint64_t bytes, bool* bytes_limited)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const QuotaOptions options_;
  const Clock now_us_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Account> accounts_ ABSL_GUARDED_BY(mu_);
  Refusals refusals_ ABSL_GUARDED_BY(mu_);
  prometheus::Counter* exceeded_bytes_ = nullptr;
  prometheus::Counter* exceeded_requests_ = nullptr;
  prometheus::Counter* exceeded_streams_ = nullptr;
};

}  // namespace nodata::server
