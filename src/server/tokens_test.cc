#include "server/tokens.h"

#include <gtest/gtest.h>

namespace nodata::server {
namespace {

std::vector<Scope> Scopes(std::string_view text) {
  absl::StatusOr<std::vector<Scope>> s = ParseScopes(text);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : std::vector<Scope>{};
}

TEST(TokensTest, ScopesAreSpelledAsTheFlagsSayAndRoundTrip) {
  for (const char* text : {"admin", "publish:orders", "publish:orders.*", "consume:*",
                           "query:daily-totals", "consume:a.b_c-d*"}) {
    absl::StatusOr<Scope> s = ParseScope(text);
    ASSERT_TRUE(s.ok()) << text << ": " << s.status();
    EXPECT_EQ(ScopeString(*s), text);
  }
  for (const char* text : {"", "read:orders", "publish", "publish:", "publish:or*ders",
                           "publish:a/b", "publish:..", "admin:x", "PUBLISH:orders",
                           "publish:**"}) {
    absl::StatusOr<Scope> s = ParseScope(text);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_NE(ParseScope("read:orders").status().message().find("publish:PATTERN"),
            std::string::npos);
}

TEST(TokensTest, ScopesAllowTheirActionOnMatchingNamesOnly) {
  const std::vector<Scope> s = Scopes("publish:orders.* consume:orders.eu query:daily");
  EXPECT_TRUE(Allows(s, Action::kPublish, "orders.eu"));
  EXPECT_TRUE(Allows(s, Action::kPublish, "orders."));
  EXPECT_FALSE(Allows(s, Action::kPublish, "orders"));
  EXPECT_FALSE(Allows(s, Action::kPublish, "payments"));
  EXPECT_TRUE(Allows(s, Action::kConsume, "orders.eu"));
  EXPECT_FALSE(Allows(s, Action::kConsume, "orders.us"));
  EXPECT_TRUE(Allows(s, Action::kQuery, "daily"));
  EXPECT_FALSE(Allows(s, Action::kQuery, "daily2"));
  EXPECT_FALSE(Allows(s, Action::kAdmin, ""));
  EXPECT_TRUE(Allows(Scopes("consume:*"), Action::kConsume, "anything"));
  EXPECT_FALSE(Allows(Scopes("consume:*"), Action::kPublish, "anything"));
  const std::vector<Scope> admin = Scopes("admin");
  EXPECT_TRUE(Allows(Scopes("group:eu-*"), Action::kGroup, "eu-billing"));
  EXPECT_FALSE(Allows(Scopes("group:eu-*"), Action::kConsume, "eu-billing"));
  EXPECT_FALSE(Allows(Scopes("consume:*"), Action::kGroup, "eu-billing"));
  EXPECT_TRUE(Allows(Scopes("component:etl-*"), Action::kComponent, "etl-1"));
  EXPECT_FALSE(Allows(Scopes("component:etl-*"), Action::kAggregation, "etl-1"));
  EXPECT_EQ(ScopeString(*ParseScope("aggregation:daily")), "aggregation:daily");
  for (Action a : {Action::kPublish, Action::kConsume, Action::kQuery, Action::kGroup,
                   Action::kComponent, Action::kAggregation, Action::kAdmin}) {
    EXPECT_TRUE(Allows(admin, a, "x"));
  }
  EXPECT_FALSE(Allows({}, Action::kPublish, "x"));
}

TEST(TokensTest, AMintedTokenMatchesItsHashAndNothingElseDoes) {
  absl::StatusOr<MintedToken> m = MintToken("alice", Scopes("publish:orders.*"), 1000, 0);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->row.name, "alice");
  EXPECT_EQ(m->row.scopes, "publish:orders.*");
  EXPECT_EQ(m->row.created_at_us, 1000);
  EXPECT_EQ(m->row.hash.find(m->token), std::string::npos) << "the hash holds no secret";
  EXPECT_TRUE(m->row.hash.starts_with("scrypt$16384$8$1$"));
  std::string id;
  ASSERT_TRUE(TokenId(m->token, &id));
  EXPECT_EQ(id, m->row.id);
  EXPECT_EQ(id.size(), 24u);
  EXPECT_TRUE(TokenMatchesHash(m->token, m->row.hash));
  std::string other = m->token;
  other.back() = other.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(TokenMatchesHash(other, m->row.hash));
  EXPECT_FALSE(TokenMatchesHash(m->token, "scrypt$16384$8$1$AAAA$AAAA"));
  EXPECT_FALSE(TokenMatchesHash(m->token, "plain"));
  EXPECT_FALSE(TokenMatchesHash(m->token, "scrypt$99999999$8$1$AAAA$AAAA"));

  absl::StatusOr<MintedToken> again = MintToken("alice", Scopes("publish:orders.*"), 1000, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->token, m->token);
  EXPECT_NE(again->row.hash, m->row.hash) << "salted";

  for (const char* bad : {"", "ndt_", "ndt_abc_x", "xyz_0123456789abcdef01234567_s",
                          "ndt_0123456789ABCDEF01234567_s", "ndt_0123456789abcdef01234567_"}) {
    EXPECT_FALSE(TokenId(bad, &id)) << bad;
  }
  EXPECT_EQ(MintToken("-x", Scopes("admin"), 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MintToken("a/b", Scopes("admin"), 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MintToken("x", {}, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nodata::server
