#include "server/quotas.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>

#include "server/grpc_util.h"

namespace nodata::server {
namespace {

class QuotasTest : public ::testing::Test {
 protected:
  Quotas Make(QuotaOptions options) {
    return Quotas(options, [this] { return now_us_.load(); });
  }
  std::atomic<int64_t> now_us_{10'000'000};
};

TEST_F(QuotasTest, UnlimitedByDefault) {
  Quotas q = Make({});
  EXPECT_FALSE(q.limits_rates());
  EXPECT_FALSE(q.limits_streams());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(q.Charge("a", 1 << 20), 0);
  absl::StatusOr<Quotas::Stream> s = q.OpenStream("a");
  EXPECT_TRUE(s.ok());
}

TEST_F(QuotasTest, PublishBytesBucketRefillsAtTheRate) {
  Quotas q = Make({.publish_bytes_per_second = 1000});
  EXPECT_EQ(q.Charge("a", 600), 0);        // a second's worth to start: 400 left
  EXPECT_EQ(q.Charge("a", 600), 200'000);  // 200 short at 1000/s
  EXPECT_EQ(q.refusals().publish_bytes, 1u);
  EXPECT_EQ(q.Charge("b", 900), 0);  // another principal is untouched
  now_us_ += 100'000;
  EXPECT_EQ(q.Charge("a", 600), 100'000);
  now_us_ += 100'000;
  EXPECT_EQ(q.Charge("a", 600), 0);  // 0 left
  // Larger than the bucket: waits for a full bucket, then goes and leaves a debt.
  EXPECT_EQ(q.Charge("a", 5000), 1'000'000);
  now_us_ += 1'000'000;
  EXPECT_EQ(q.Charge("a", 5000), 0);      // -4000
  EXPECT_NEAR(q.Charge("a", 1), 4'001'000, 2);  // the debt and the byte
  now_us_ += 60'000'000;                   // refills, but to one second's worth only
  EXPECT_EQ(q.Charge("a", 1000), 0);
  EXPECT_GT(q.Charge("a", 1), 0);
}

TEST_F(QuotasTest, RequestRateCountsRequestsWithoutBytes) {
  Quotas q = Make({.requests_per_second = 10});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(q.Charge("a", 0), 0) << i;
  EXPECT_EQ(q.Charge("a", 0), 100'000);
  absl::Status s = q.Admit("a", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(s.message()).find("a is over its quota of 10 requests/s"),
            std::string::npos)
      << s;
  EXPECT_EQ(RetryDelayMicros(s), 100'000);
  EXPECT_EQ(q.refusals().requests, 2u);
}

TEST_F(QuotasTest, BytesMessageNamesTheRate) {
  Quotas q = Make({.publish_bytes_per_second = 100, .requests_per_second = 1000});
  ASSERT_TRUE(q.Admit("p", 150).ok());
  absl::Status s = q.Admit("p", 10);
  EXPECT_NE(std::string(s.message()).find("100 published bytes/s; retry in 600 ms"),
            std::string::npos)
      << s;
}

TEST_F(QuotasTest, StreamsAreCountedAndGivenBack) {
  Quotas q = Make({.streams = 2});
  absl::StatusOr<Quotas::Stream> a = q.OpenStream("a");
  absl::StatusOr<Quotas::Stream> b = q.OpenStream("a");
  ASSERT_TRUE(a.ok() && b.ok());
  absl::StatusOr<Quotas::Stream> c = q.OpenStream("a");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(q.OpenStream("other").ok());
  {
    Quotas::Stream moved = *std::move(a);  // moving keeps one slot
    EXPECT_FALSE(q.OpenStream("a").ok());
  }
  EXPECT_TRUE(q.OpenStream("a").ok());  // the moved-to slot was given back (and this one too)
  EXPECT_EQ(q.refusals().streams, 2u);
}

TEST_F(QuotasTest, RetryInfoRidesInGrpcStatusDetails) {
  absl::Status s = RetryLater("x is over its quota", 1'500'000);
  EXPECT_EQ(RetryDelayMicros(s), 1'500'000);
  EXPECT_EQ(RetryDelayMicros(absl::ResourceExhaustedError("plain")), -1);
  grpc::Status g = ToGrpc(s);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  const std::string details = g.error_details();
  // google.rpc.Status: code 8, the message, one Any with the RetryInfo type URL.
  ASSERT_GT(details.size(), 4u);
  EXPECT_EQ(details.substr(0, 2), std::string("\x08\x08", 2));
  EXPECT_NE(details.find("type.googleapis.com/google.rpc.RetryInfo"), std::string::npos);
  EXPECT_NE(details.find("retry in 1500 ms"), std::string::npos);
  EXPECT_TRUE(ToGrpc(absl::NotFoundError("no")).error_details().empty());
}

}  // namespace
}  // namespace nodata::server
