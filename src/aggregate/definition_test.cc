#include "aggregate/definition.h"

#include "gtest/gtest.h"

namespace nodata::aggregate {
namespace {

TEST(DefinitionTest, ParsesWindows) {
  auto t = ParseWindow("tumbling:60s");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->kind, WindowKind::kTumbling);
  EXPECT_EQ(t->size_us, 60'000'000);
  EXPECT_EQ(FormatWindow(*t), "tumbling:1m");
  auto h = ParseWindow("hopping:5m/1m");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->size_us, 300'000'000);
  EXPECT_EQ(h->hop_us, 60'000'000);
  EXPECT_EQ(FormatWindow(*h), "hopping:5m/1m");
  auto s = ParseWindow("session:30s");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->gap_us, 30'000'000);
  EXPECT_EQ(ParseWindow("global")->kind, WindowKind::kGlobal);
  for (const char* bad : {"", "tumbling", "tumbling:", "tumbling:0s", "tumbling:5x", "hopping:5m",
                          "hopping:1m/5m", "hopping:5m/2m", "sliding:5m", "tumbling:-5s",
                          "tumbling:99999999d"}) {
    auto r = ParseWindow(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(DefinitionTest, ParsesPathsToPointers) {
  EXPECT_EQ(ParseJsonPath("$.user")->pointer, "/user");
  EXPECT_EQ(ParseJsonPath("$.a.b[2]")->pointer, "/a/b/2");
  EXPECT_EQ(ParseJsonPath("$['a/b']['c~d']")->pointer, "/a~1b/c~0d");
  for (const char* bad : {"", "user", "$", "$.", "$..a", "$.a[", "$.a[x]", "$.a[01]", "$['a",
                          "$.a b"}) {
    EXPECT_FALSE(ParseJsonPath(bad).ok()) << bad;
  }
  EXPECT_TRUE(ParseKey("key")->event_key);
  EXPECT_FALSE(ParseKey("$.user")->event_key);
  EXPECT_FALSE(ParseKey("user").ok());
}

TEST(DefinitionTest, ParsesMeasuresAndFormatsThemBack) {
  for (const char* text : {"n=count()", "k=count($.a)", "total=sum($.amount)", "lo=min($.x)",
                           "hi=max($.x)", "mean=avg($.x)", "cur=last($.s)",
                           "users=count_distinct($.user)", "p99=quantile($.ms, 0.99)"}) {
    auto m = ParseMeasure(text);
    ASSERT_TRUE(m.ok()) << text << ": " << m.status();
    EXPECT_EQ(FormatMeasure(*m), text);
  }
  auto q = ParseMeasure("p=quantile($['a,b'], 0.5)");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->path->pointer, "/a,b");
  EXPECT_DOUBLE_EQ(q->q, 0.5);
  for (const char* bad : {"count()", "n=", "n=median($.a)", "n=sum()", "n=sum($.a, $.b)",
                          "n=quantile($.a)", "n=quantile($.a, 1.5)", "1n=count()",
                          "n=sum(amount)", "n=count($.a, $.b)"}) {
    auto m = ParseMeasure(bad);
    EXPECT_FALSE(m.ok()) << bad;
  }
  auto unknown = ParseMeasure("n=median($.a)");
  EXPECT_NE(std::string(unknown.status().message()).find("unknown function \"median\""),
            std::string::npos)
      << unknown.status();
}

TEST(DefinitionTest, ValidatesAndRoundTripsJson) {
  AggregationSpec spec;
  spec.name = "revenue";
  spec.input = "orders";
  spec.key = *ParseKey("$.user");
  spec.window = *ParseWindow("hopping:10m/5m");
  spec.lateness_us = 5'000'000;
  spec.from = *ParseStart("time:2026-01-02T03:04:05Z");
  spec.measures = {*ParseMeasure("n=count()"), *ParseMeasure("total=sum($.amount)")};
  ASSERT_TRUE(Validate(spec).ok()) << Validate(spec);
  auto back = FromJson(ToJson(spec));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ToJson(*back), ToJson(spec));
  EXPECT_EQ(FormatStart(back->from), "time:2026-01-02T03:04:05+00:00");

  AggregationSpec twice = spec;
  twice.measures.push_back(*ParseMeasure("n=sum($.x)"));
  EXPECT_FALSE(Validate(twice).ok());
  AggregationSpec none = spec;
  none.measures.clear();
  EXPECT_FALSE(Validate(none).ok());
  AggregationSpec both = spec;
  both.module_sha256 = "ab";
  EXPECT_FALSE(Validate(both).ok());
  AggregationSpec global = spec;
  global.window = *ParseWindow("global");
  EXPECT_FALSE(Validate(global).ok());  // a lateness on a window that never closes
  AggregationSpec badname = spec;
  badname.name = "a/b";
  EXPECT_FALSE(Validate(badname).ok());
  EXPECT_FALSE(FromJson("not json").ok());
}

}  // namespace
}  // namespace nodata::aggregate
