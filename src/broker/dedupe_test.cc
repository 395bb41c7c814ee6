#include "broker/dedupe.h"

#include <deque>
#include <map>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace nodata::broker {
namespace {

IdFingerprint Fp(const std::string& id) { return IdFingerprint::Of(id); }

TEST(IdFingerprint, DistinguishesIds) {
  EXPECT_EQ(Fp("abc"), Fp("abc"));
  EXPECT_FALSE(Fp("abc") == Fp("abd"));
  EXPECT_FALSE(Fp("") == Fp(std::string(1, '\0')));
}

TEST(DedupeIndex, FindsIdsWithinTheWindow) {
  DedupeIndex index(/*window_us=*/1000, /*max_ids=*/100);
  index.Insert(Fp("a"), {1, 10}, 0);
  index.Insert(Fp("b"), {2, 20}, 500);
  ASSERT_TRUE(index.Find(Fp("a")));
  EXPECT_EQ(index.Find(Fp("a"))->offset, 10u);
  EXPECT_FALSE(index.Find(Fp("zz")));
  index.Expire(1200);  // "a" is 1200 us old, "b" 700
  EXPECT_FALSE(index.Find(Fp("a")));
  ASSERT_TRUE(index.Find(Fp("b")));
  EXPECT_EQ(index.Find(Fp("b"))->partition, 2u);
  // An expired id is new again.
  EXPECT_FALSE(index.FindOrInsert(Fp("a"), {3, 30}, 1300));
  EXPECT_EQ(index.Find(Fp("a"))->offset, 30u);
}

TEST(DedupeIndex, KeepsTheFirstLocationOfAnId) {
  DedupeIndex index(1000, 100);
  EXPECT_FALSE(index.FindOrInsert(Fp("a"), {1, 10}, 0));
  auto known = index.FindOrInsert(Fp("a"), {3, 30}, 1);
  ASSERT_TRUE(known);
  EXPECT_EQ(known->offset, 10u);
  EXPECT_EQ(index.size(), 1u);
}

TEST(DedupeIndex, ForgetsTheOldestPastTheCap) {
  DedupeIndex index(1'000'000, 3);
  for (int i = 0; i < 5; ++i) index.Insert(Fp(std::to_string(i)), {0, uint64_t(i)}, i);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_FALSE(index.Find(Fp("0")));
  EXPECT_FALSE(index.Find(Fp("1")));
  EXPECT_TRUE(index.Find(Fp("2")));
  EXPECT_TRUE(index.Find(Fp("4")));
}

// Sustained inserts far past the cap: the sweeper keeps the table from growing or filling up.
TEST(DedupeIndex, SteadyStateDoesNotGrow) {
  DedupeIndex index(1'000'000'000, 5000);
  for (int i = 0; i < 200000; ++i) {
    ASSERT_FALSE(index.FindOrInsert(Fp("id-" + std::to_string(i)), {0, uint64_t(i)}, i / 100));
    if (i % 997 == 0) {
      ASSERT_TRUE(index.Find(Fp("id-" + std::to_string(i))));
      if (i >= 5000) {
        ASSERT_FALSE(index.Find(Fp("id-" + std::to_string(i - 5000))));
      }
    }
  }
  EXPECT_EQ(index.size(), 5000u);
}

TEST(DedupeIndex, EraseUndoesAnInsert) {
  DedupeIndex index(1000, 100);
  index.Insert(Fp("a"), {0, 1}, 0);
  index.Insert(Fp("b"), {0, 2}, 0);
  index.Erase(Fp("a"));
  EXPECT_FALSE(index.Find(Fp("a")));
  EXPECT_TRUE(index.Find(Fp("b")));
}

// Random inserts, repeats, time steps and erases against a plain model, through many rebuilds,
// growths and shrinks of the table.
TEST(DedupeIndex, ASnapshotListsTheLiveIdsInInsertionOrderWithTheirTimes) {
  DedupeIndex index(/*window_us=*/1000, /*max_ids=*/300);
  for (int i = 0; i < 400; ++i) {
    index.Insert(Fp("id-" + std::to_string(i)), {static_cast<uint32_t>(i % 3), uint64_t(i)},
                 /*ingest_us=*/i / 10);
  }
  index.Erase(Fp("id-399"));
  DedupeIndex::Snapshot snapshot;
  snapshot.Reserve(10, 2);  // grows past it as needed
  index.Capture(&snapshot);
  std::vector<DedupeIndex::Entry> entries;
  snapshot.ForEach([&](const DedupeIndex::Entry& e) { entries.push_back(e); });
  // The cap keeps the newest 300 (100..399), less the erased one.
  ASSERT_EQ(entries.size(), 299u);
  EXPECT_EQ(snapshot.size(), 299u);
  for (size_t k = 0; k < entries.size(); ++k) {
    const int i = 100 + static_cast<int>(k);
    EXPECT_EQ(entries[k].id, Fp("id-" + std::to_string(i)));
    EXPECT_EQ(entries[k].location.offset, uint64_t(i));
    EXPECT_EQ(entries[k].location.partition, uint32_t(i % 3));
    EXPECT_EQ(entries[k].ingest_us, i / 10);
  }
  // Restored into a reserved index, the entries behave as the original's.
  DedupeIndex restored(1000, 300);
  restored.Reserve(entries.size());
  for (const auto& e : entries) restored.Insert(e.id, e.location, e.ingest_us);
  EXPECT_EQ(restored.size(), 299u);
  EXPECT_EQ(restored.Find(Fp("id-250"))->offset, 250u);
  EXPECT_FALSE(restored.Find(Fp("id-99")));
  restored.Expire(/*now_us=*/1000 + 20);  // ingest times below 20 (ids up to 199) expire
  EXPECT_FALSE(restored.Find(Fp("id-150")));
  EXPECT_TRUE(restored.Find(Fp("id-200")));
}

TEST(DedupeIndex, MatchesAModelUnderChurn) {
  constexpr int64_t kWindow = 5000;
  constexpr size_t kMax = 3000;
  DedupeIndex index(kWindow, kMax);
  struct Entry {
    DedupeIndex::Location loc;
    int64_t ingest;
    uint64_t seq;
  };
  std::map<std::string, Entry> model;
  std::deque<std::pair<uint64_t, std::string>> order;
  uint64_t seq = 0;
  std::mt19937_64 rng(42);
  int64_t now = 0;
  // The index remembers exactly the ids within the window among the newest kMax.
  auto in_window = [&](const Entry& e) { return e.ingest >= now - kWindow; };
  auto must_know = [&](const Entry& e) { return in_window(e) && e.seq + kMax >= seq; };
  auto may_know = must_know;
  for (int step = 0; step < 200000; ++step) {
    if (rng() % 50 == 0) now += static_cast<int64_t>(rng() % 400);
    if (rng() % 1000 == 0) now += kWindow;  // everything expires
    index.Expire(now);
    std::string id = std::to_string(rng() % 20000);
    auto it = model.find(id);
    const bool must = it != model.end() && must_know(it->second);
    const bool may = it != model.end() && may_know(it->second);
    DedupeIndex::Location loc{static_cast<uint32_t>(rng() % 8), static_cast<uint64_t>(step)};
    auto got = index.FindOrInsert(Fp(id), loc, now);
    if (must) {
      ASSERT_TRUE(got.has_value()) << "forgot id " << id << " at step " << step;
    }
    if (!may) {
      ASSERT_FALSE(got.has_value()) << "kept id " << id << " at step " << step;
    }
    const bool known = got.has_value();
    if (known) {
      ASSERT_EQ(got->offset, it->second.loc.offset);
    } else {
      model[id] = Entry{loc, now, seq++};
    }
    if (rng() % 500 == 0 && !known) {
      index.Erase(Fp(id));
      model.erase(id);
    }
  }
  size_t must_count = 0;
  for (const auto& [id, e] : model) must_count += must_know(e);
  EXPECT_EQ(index.size(), must_count);
}

}  // namespace
}  // namespace nodata::broker
