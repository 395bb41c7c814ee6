#include "server/quotas.h"

#include <google/protobuf/duration.pb.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/cord.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "common/strings.h"

namespace nodata::server {
namespace {

constexpr size_t kMaxIdleAccounts = 65536;

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

// google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }, encoded by hand: one
// length-delimited field holding the Duration.
std::string EncodeRetryInfo(int64_t delay_us) {
  google::protobuf::Duration d;
  d.set_seconds(delay_us / 1000000);
  d.set_nanos(static_cast<int32_t>(delay_us % 1000000) * 1000);
  const std::string duration = d.SerializeAsString();
  std::string out;
  out.push_back(static_cast<char>((1 << 3) | 2));
  size_t n = duration.size();  // < 128: two small varints
  out.push_back(static_cast<char>(n));
  out += duration;
  return out;
}

int64_t DecodeRetryInfo(std::string_view bytes) {
  if (bytes.size() < 2 || bytes[0] != static_cast<char>((1 << 3) | 2)) return -1;
  const size_t n = static_cast<unsigned char>(bytes[1]);
  if (n >= 128 || bytes.size() != 2 + n) return -1;
  google::protobuf::Duration d;
  if (!d.ParseFromArray(bytes.data() + 2, static_cast<int>(n))) return -1;
  return d.seconds() * 1000000 + d.nanos() / 1000;
}

std::string Rate(double per_second, std::string_view unit) {
  return StrCat(static_cast<int64_t>(per_second), " ", unit, "/s");
}

}  // namespace

absl::Status RetryLater(std::string_view message, int64_t delay_us) {
  delay_us = std::max<int64_t>(delay_us, 1000);
  absl::Status s = absl::ResourceExhaustedError(
      StrCat(message, "; retry in ", (delay_us + 999) / 1000, " ms"));
  s.SetPayload(Absl(kRetryInfoTypeUrl), absl::Cord(EncodeRetryInfo(delay_us)));
  return s;
}

int64_t RetryDelayMicros(const absl::Status& status) {
  auto payload = status.GetPayload(Absl(kRetryInfoTypeUrl));
  if (!payload) return -1;
  return DecodeRetryInfo(std::string(*payload));
}

Quotas::Quotas(QuotaOptions options, Clock now_us, prometheus::Registry* registry)
    : options_(options), now_us_(std::move(now_us)) {
  if (registry == nullptr) return;
  auto& family = prometheus::BuildCounter()
                     .Name("nodata_quota_exceeded_total")
                     .Help("Requests over a principal's quota (refused, or a publish stream's "
                           "delayed), by kind: publish_bytes, requests, streams")
                     .Register(*registry);
  exceeded_bytes_ = &family.Add({{"kind", "publish_bytes"}});
  exceeded_requests_ = &family.Add({{"kind", "requests"}});
  exceeded_streams_ = &family.Add({{"kind", "streams"}});
}

Quotas::Account& Quotas::AccountLocked(std::string_view principal, int64_t now) {
  auto it = accounts_.find(Absl(principal));
  if (it != accounts_.end()) return it->second;
  if (accounts_.size() >= kMaxIdleAccounts) {
    // Forget principals with nothing open whose buckets have refilled: they would start full.
    const int64_t idle_us = static_cast<int64_t>(options_.burst_seconds * 1e6) + 1;
    absl::erase_if(accounts_, [&](const auto& entry) {
      return entry.second.streams == 0 && now - entry.second.used_us > idle_us;
    });
  }
  Account& a = accounts_[Absl(principal)];
  a.bytes = {options_.publish_bytes_per_second * options_.burst_seconds, now};
  a.requests = {options_.requests_per_second * options_.burst_seconds, now};
  return a;
}

int64_t Quotas::WaitLocked(Bucket& bucket, double rate, double cost, int64_t now) const {
  if (rate <= 0) return 0;
  const double cap = rate * options_.burst_seconds;
  bucket.level = std::min(cap, bucket.level + rate * static_cast<double>(now - bucket.at_us) / 1e6);
  bucket.at_us = now;
  // A request may go once the bucket holds its cost, or, for one larger than the bucket, once
  // the bucket is full (it then goes into debt).
  const double need = std::min(cost, cap);
  if (bucket.level >= need) return 0;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil((need - bucket.level) / rate * 1e6)));
}

int64_t Quotas::ChargeLocked(std::string_view principal, uint64_t bytes, bool* bytes_limited) {
  const int64_t now = now_us_();
  Account& a = AccountLocked(principal, now);
  a.used_us = now;
  const int64_t wait_requests = WaitLocked(a.requests, options_.requests_per_second, 1, now);
  const int64_t wait_bytes =
      bytes > 0
          ? WaitLocked(a.bytes, options_.publish_bytes_per_second, static_cast<double>(bytes), now)
          : 0;
  const int64_t wait = std::max(wait_requests, wait_bytes);
  if (wait > 0) {
    *bytes_limited = wait_bytes >= wait_requests;
    if (*bytes_limited) {
      ++refusals_.publish_bytes;
      if (exceeded_bytes_) exceeded_bytes_->Increment();
    } else {
      ++refusals_.requests;
      if (exceeded_requests_) exceeded_requests_->Increment();
    }
    return wait;
  }
  if (options_.requests_per_second > 0) a.requests.level -= 1;
  if (options_.publish_bytes_per_second > 0) a.bytes.level -= static_cast<double>(bytes);
  return 0;
}

int64_t Quotas::Charge(std::string_view principal, uint64_t bytes) {
  if (!limits_rates()) return 0;
  bool bytes_limited = false;
  absl::MutexLock lock(&mu_);
  return ChargeLocked(principal, bytes, &bytes_limited);
}

absl::Status Quotas::Admit(std::string_view principal, uint64_t bytes) {
  if (!limits_rates()) return absl::OkStatus();
  bool bytes_limited = false;
  int64_t wait;
  {
    absl::MutexLock lock(&mu_);
    wait = ChargeLocked(principal, bytes, &bytes_limited);
  }
  if (wait == 0) return absl::OkStatus();
  return RetryLater(
      StrCat(principal, " is over its quota of ",
             bytes_limited ? Rate(options_.publish_bytes_per_second, "published bytes")
                           : Rate(options_.requests_per_second, "requests")),
      wait);
}

Quotas::Stream& Quotas::Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    Release();
    quotas_ = std::exchange(other.quotas_, nullptr);
    principal_ = std::move(other.principal_);
  }
  return *this;
}

void Quotas::Stream::Release() {
  if (quotas_ == nullptr) return;
  absl::MutexLock lock(&quotas_->mu_);
  auto it = quotas_->accounts_.find(Absl(principal_));
  if (it != quotas_->accounts_.end()) --it->second.streams;
  quotas_ = nullptr;
}

absl::StatusOr<Quotas::Stream> Quotas::OpenStream(std::string_view principal) {
  if (!limits_streams()) return Stream();
  absl::MutexLock lock(&mu_);
  const int64_t now = now_us_();
  Account& a = AccountLocked(principal, now);
  a.used_us = now;
  if (a.streams >= options_.streams) {
    ++refusals_.streams;
    if (exceeded_streams_) exceeded_streams_->Increment();
    return absl::ResourceExhaustedError(
        StrCat(principal, " has ", a.streams, " streams open, its limit (--quota-streams)"));
  }
  ++a.streams;
  return Stream(this, std::string(principal));
}

Quotas::Refusals Quotas::refusals() const {
  absl::MutexLock lock(&mu_);
  return refusals_;
}

}  // namespace nodata::server
