#include "server/auth.h"

#include <gtest/gtest.h>

#include <atomic>

namespace nodata::server {
namespace {

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = Mint("alice", "publish:orders.*", 0);
    ops_ = Mint("ops", "admin", 0);
    temp_ = Mint("temp", "consume:x", 5'000'000);
  }
  MintedToken Mint(std::string_view name, std::string_view scopes, int64_t expires_at_us) {
    absl::StatusOr<MintedToken> m = MintToken(name, *ParseScopes(scopes), 0, expires_at_us);
    EXPECT_TRUE(m.ok()) << m.status();
    rows_.push_back(m->row);
    return *m;
  }
  Authenticator Make() {
    return Authenticator(
        [this]() -> absl::StatusOr<std::vector<storage::TokenRow>> {
          ++loads_;
          return rows_;
        },
        [this] { return now_us_.load(); }, 1'000'000);
  }
  static std::string Message(const absl::StatusOr<std::shared_ptr<const Principal>>& p) {
    return std::string(p.status().message());
  }

  std::vector<storage::TokenRow> rows_;
  std::atomic<int64_t> now_us_{1'000'000};
  int loads_ = 0;
  MintedToken alice_, ops_, temp_;
};

TEST_F(AuthTest, AKnownTokenIsItsPrincipalWithItsScopes) {
  Authenticator auth = Make();
  auto p = auth.Authenticate(alice_.token);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name, "alice");
  EXPECT_TRUE((*p)->Allows(Action::kPublish, "orders.eu"));
  EXPECT_FALSE((*p)->Allows(Action::kConsume, "orders.eu"));
  EXPECT_FALSE((*p)->Allows(Action::kAdmin, ""));
  auto again = auth.Authenticate(alice_.token);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), p->get()) << "the second time comes from what was verified";
  auto admin = auth.Authenticate(ops_.token);
  ASSERT_TRUE(admin.ok());
  EXPECT_TRUE((*admin)->Allows(Action::kAdmin, ""));
  EXPECT_EQ(loads_, 1);
}

TEST_F(AuthTest, WrongUnknownAndMalformedTokensAreRefusedWithoutEchoingThem) {
  Authenticator auth = Make();
  std::string wrong = alice_.token;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  for (int i = 0; i < 2; ++i) {  // the second time from the remembered failure
    auto p = auth.Authenticate(wrong);
    ASSERT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(Message(p), "the bearer token is wrong");
  }
  std::string unknown = "ndt_000000000000000000000000_" + std::string(43, 'x');
  EXPECT_EQ(Message(auth.Authenticate(unknown)), "the bearer token is unknown");
  const std::string malformed = "the bearer token is not a nodata token (ndt_...)";
  EXPECT_EQ(Message(auth.Authenticate("hunter2")), malformed);
  EXPECT_EQ(Message(auth.Authenticate("")), malformed);
  EXPECT_TRUE(auth.Authenticate(alice_.token).ok()) << "a wrong guess does not block the right one";
}

TEST_F(AuthTest, RevocationIsSeenWithinTheRefreshIntervalAndExpiryAtOnce) {
  Authenticator auth = Make();
  ASSERT_TRUE(auth.Authenticate(alice_.token).ok());
  ASSERT_TRUE(auth.Authenticate(temp_.token).ok());
  rows_[0].revoked_at_us = now_us_;
  now_us_ += 500'000;
  EXPECT_TRUE(auth.Authenticate(alice_.token).ok()) << "not yet reloaded";
  now_us_ += 600'000;
  auto revoked = auth.Authenticate(alice_.token);
  EXPECT_EQ(Message(revoked), "the bearer token is revoked");
  EXPECT_TRUE(auth.Authenticate(ops_.token).ok());
  now_us_ = 5'000'000;
  EXPECT_EQ(Message(auth.Authenticate(temp_.token)), "the bearer token is expired");

  // A token made after the server started is found by its new id (the tokens are read again
  // for an unknown id when the last read is 10 ms old).
  MintedToken late = Mint("late", "query:daily", 0);
  EXPECT_EQ(Message(auth.Authenticate(late.token)), "the bearer token is unknown");
  now_us_ += 10'000;
  auto p = auth.Authenticate(late.token);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE((*p)->Allows(Action::kQuery, "daily"));
}

}  // namespace
}  // namespace nodata::server
