#include "aggregate/manager.h"

#include <atomic>
#include <set>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <string>
#include <vector>

#include "common/strings.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"

namespace nodata::aggregate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kMinute = 60'000'000;
constexpr int64_t kBase = int64_t{1'767'225'600'000'000};  // 2026-01-01T00:00:00Z

struct Event {
  std::string key;
  std::string data;
  int64_t time_us;
};

class AggregateManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           StrCat("nodata-aggregate-", ::getpid(), "-",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    OpenBroker();
    ASSERT_TRUE(broker_->CreateTopic("orders", 2).ok());
  }
  void TearDown() override {
    manager_.reset();
    broker_.reset();
    fs::remove_all(dir_);
  }
  void OpenBroker() {
    broker::BrokerOptions options;
    options.data_dir = dir_.string();
    if (dedupe_window_ms_ > 0) options.dedupe_window_ms = dedupe_window_ms_;
    auto broker = broker::Broker::Open(options, PosixFileSystem(), registry_);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }
  void OpenManager() {
    ManagerOptions options;
    options.data_dir = dir_.string();
    options.runtime = runtime_.get();
    options.native = false;
    options.before_batch = [this](std::string_view) { ++batches_; };
    options.max_watches = max_watches_;
    options.state_cache_bytes = cache_bytes_;
    auto m = Manager::Open(options, *broker_, PosixFileSystem(), registry_);
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
  }
  void Publish(const std::string& topic, const std::vector<Event>& events) {
    std::vector<broker::EventIn> in(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      in[i].topic = topic;
      in[i].key = events[i].key;
      in[i].data = events[i].data;
      in[i].timestamp_us = events[i].time_us;
    }
    std::promise<absl::Status> done;
    broker_->Publish(in, [&](absl::Status s, std::vector<broker::AckOut>) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }
  static Event Order(const std::string& user, int amount, int64_t time_us) {
    return Event{"", StrCat(R"({"user":")", user, R"(","amount":)", amount, "}"), time_us};
  }
  AggregationSpec Spec(const std::string& window, int64_t lateness_us = 0) {
    AggregationSpec spec;
    spec.name = "rev";
    spec.input = "orders";
    spec.key = *ParseKey("$.user");
    spec.window = *ParseWindow(window);
    spec.lateness_us = lateness_us;
    spec.measures = {*ParseMeasure("n=count()"), *ParseMeasure("total=sum($.amount)")};
    spec.checkpoint_interval_us = 20'000;
    return spec;
  }
  // Waits until the aggregation has folded everything published and checkpointed it.
  AggregationInfo Settle(const std::string& name = "rev") {
    AggregationInfo info;
    for (int i = 0; i < 1000; ++i) {
      auto got = manager_->Get(name);
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok()) return info;
      info = *got;
      if (info.lag == 0 && info.state != State::kBackfilling) {
        auto offsets = broker_->CommittedOffsets(info.spec.group(), info.spec.input);
        uint64_t behind = 0;
        if (offsets.ok()) {
          auto topic = broker_->GetTopic(info.spec.input);
          for (const auto& p : topic->partitions) {
            const auto it = offsets->find(p.partition);
            const uint64_t at = it == offsets->end() ? 0 : it->second.value();
            behind += p.stats.end_offset.value() - at;
          }
        }
        if (behind == 0) {
          // Read again: the checkpoint that committed these offsets may have come after the
          // first read, and what it did (evictions) shows only now.
          got = manager_->Get(name);
          EXPECT_TRUE(got.ok()) << got.status();
          return got.ok() ? *got : info;
        }
      }
      usleep(10'000);
    }
    ADD_FAILURE() << "the aggregation did not catch up: state " << StateName(info.state) << ", lag "
                  << info.lag << ", error " << info.last_error;
    return info;
  }
  std::map<int64_t, json> Windows(const std::string& key, const std::string& name = "rev") {
    std::map<int64_t, json> out;
    KeyQuery q;
    q.key = key;
    auto r = manager_->GetKey(name, q);
    if (!r.ok()) return out;
    for (const WindowValues& w : r->windows) {
      json j = json::parse(w.values);
      j["final"] = w.final;
      j["end"] = w.end_us;
      out[w.start_us] = j;
    }
    return out;
  }
  std::vector<json> Topic(const std::string& topic) {
    std::vector<json> out;
    auto info = broker_->GetTopic(topic);
    if (!info.ok()) return out;
    for (const auto& p : info->partitions) {
      std::vector<Record> records;
      EXPECT_TRUE(broker_->Read(topic, p.partition, Offset(0), 100000, 64 << 20, &records).ok());
      for (const Record& r : records) out.push_back(json::parse(r.data));
    }
    return out;
  }

  fs::path dir_;
  prometheus::Registry registry_;
  // Interpreter only: the test binary is no translator.
  std::unique_ptr<wasm::Runtime> runtime_ = *wasm::Runtime::Create({});
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<Manager> manager_;
  std::atomic<uint64_t> batches_{0};  // batches handed to aggregations
  size_t max_watches_ = 1024;
  uint64_t cache_bytes_ = 256ull << 20;
  int64_t dedupe_window_ms_ = 0;  // 0: the broker's default
};

TEST_F(AggregateManagerTest, TumblingWindowsCountAndSumByJsonPath) {
  // Published in event-time order batch by batch: with no lateness, a record of an earlier
  // minute taken after a later one (from another partition) would be late.
  Publish("orders", {Order("ann", 5, kBase + 1), Order("bob", 7, kBase + 2),
                     Order("ann", 10, kBase + 30'000'000)});
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s"), "").ok());
  Settle();
  Publish("orders", {Order("ann", 1, kBase + kMinute + 5)});
  Settle();
  Publish("orders", {Order("bob", 2, kBase + 2 * kMinute + 5)});
  const AggregationInfo info = Settle();
  EXPECT_EQ(info.records_in, 5u);
  EXPECT_EQ(info.late, 0u);
  auto ann = Windows("ann");
  ASSERT_EQ(ann.size(), 2u);
  EXPECT_EQ(ann[kBase]["n"], 2);
  EXPECT_EQ(ann[kBase]["total"], 15);
  EXPECT_EQ(ann[kBase]["end"], kBase + kMinute);
  EXPECT_TRUE(ann[kBase]["final"]);  // the watermark (2m5us) passed its end
  EXPECT_EQ(ann[kBase + kMinute]["n"], 1);
  EXPECT_TRUE(ann[kBase + kMinute]["final"]);
  auto bob = Windows("bob");
  ASSERT_EQ(bob.size(), 2u);
  EXPECT_FALSE(bob[kBase + 2 * kMinute]["final"]);  // still open
  EXPECT_EQ(bob[kBase + 2 * kMinute]["total"], 2);
  // One result per closed (window, key).
  const auto results = Topic("rev.results");
  ASSERT_EQ(results.size(), 3u);
  int ann_results = 0;
  for (const json& r : results) {
    if (r["key"] == "ann") ++ann_results;
    EXPECT_TRUE(r.contains("start") && r.contains("end") && r["values"].contains("n"));
  }
  EXPECT_EQ(ann_results, 2);
  EXPECT_EQ(manager_->GetKey("rev", KeyQuery{"carl", {}, {}, 1000}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->GetKey("nope", KeyQuery{"ann", {}, {}, 1000}).status().code(), absl::StatusCode::kNotFound);
  // A known key with no window in the range: an empty list, from memory (bob's open window)
  // and, after a restart, from the store alone.
  const KeyQuery later_bob{"bob", kBase + 10 * kMinute, {}, 1000};
  ASSERT_TRUE(manager_->GetKey("rev", later_bob).ok());
  EXPECT_TRUE(manager_->GetKey("rev", later_bob)->windows.empty());
  manager_.reset();
  broker_.reset();
  OpenBroker();
  OpenManager();
  const KeyQuery early_ann{"ann", {}, kBase - kMinute, 1000};
  ASSERT_TRUE(manager_->GetKey("rev", early_ann).ok()) << manager_->GetKey("rev", early_ann).status();
  EXPECT_TRUE(manager_->GetKey("rev", early_ann)->windows.empty());
  EXPECT_EQ(manager_->GetKey("rev", KeyQuery{"carl", kBase, {}, 1000}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AggregateManagerTest, ACaughtUpAggregationWaitsForAppends) {
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s"), "").ok());
  Publish("orders", {Order("ann", 5, kBase + 1)});
  Settle();
  // Caught up on every partition: no batch until something is appended (a sink that asked
  // for more after an empty batch would be handed thousands of empty ones here).
  usleep(100'000);
  const uint64_t idle_from = batches_.load();
  usleep(300'000);
  EXPECT_LE(batches_.load() - idle_from, 8u);
  Publish("orders", {Order("bob", 7, kBase + 2)});
  const AggregationInfo info = Settle();
  EXPECT_EQ(info.records_in, 2u);
}

TEST_F(AggregateManagerTest, APartitionReadAheadMakesNoRecordOfAnotherLate) {
  // Two users on different partitions, each in event-time order: "dense" one record a second,
  // "sparse" one a minute. A backfill folds one partition's batch before the other's, so with
  // a watermark from the largest event time of all, one partition's records would be late.
  std::vector<std::string> users;
  std::set<uint32_t> seen;
  for (int i = 0; users.size() < 2 && i < 64; ++i) {
    const std::string user = StrCat("user", i);
    const std::string data = StrCat(R"({"user":")", user, R"(","amount":0})");
    broker::EventIn e;
    e.topic = "probe";
    e.key = user;
    e.data = data;
    std::promise<uint32_t> partition;
    ASSERT_TRUE(broker_->CreateTopic("probe", 2).ok() || i > 0);
    broker_->Publish({&e, 1}, [&](absl::Status, std::vector<broker::AckOut> acks) {
      partition.set_value(acks.empty() ? 0 : acks[0].partition.value());
    });
    if (seen.insert(partition.get_future().get()).second) users.push_back(user);
  }
  ASSERT_EQ(users.size(), 2u);
  std::vector<Event> events;
  for (int i = 0; i < 300; ++i) {
    events.push_back(Event{users[0], StrCat(R"({"user":")", users[0], R"(","amount":1})"),
                           kBase + i * 1'000'000});
    events.push_back(Event{users[1], StrCat(R"({"user":")", users[1], R"(","amount":1})"),
                           kBase + i * kMinute});
  }
  Publish("orders", events);
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s"), "").ok());
  const AggregationInfo info = Settle();
  EXPECT_EQ(info.records_in, 600u);
  EXPECT_EQ(info.late, 0u);
  int64_t dense = 0, sparse = 0;
  for (const auto& [start, w] : Windows(users[0])) dense += w["n"].get<int64_t>();
  for (const auto& [start, w] : Windows(users[1])) sparse += w["n"].get<int64_t>();
  EXPECT_EQ(dense, 300);
  EXPECT_EQ(sparse, 300);
}

TEST_F(AggregateManagerTest, WatchesAreCapped) {
  max_watches_ = 2;
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s"), "").ok());
  auto first = manager_->Watch("rev", std::nullopt);
  auto second = manager_->Watch("rev", std::string("ann"));
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = manager_->Watch("rev", std::nullopt);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_EQ(manager_->Watch("nope", std::nullopt).status().code(), absl::StatusCode::kNotFound);
  first->reset();  // closing one frees its slot
  third = manager_->Watch("rev", std::nullopt);
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST_F(AggregateManagerTest, OutputsPublishedBeforeACrashAreNotPublishedAgain) {
  // A crash after a checkpoint's outputs were acknowledged and before its state was written:
  // the state directory is put back as it was at the checkpoint before. The topics' dedupe
  // window is too short to help.
  manager_.reset();
  broker_.reset();
  dedupe_window_ms_ = 1;
  OpenBroker();
  OpenManager();
  // One partition: the replay folds in the same order.
  ASSERT_TRUE(broker_->CreateTopic("orders1", 1).ok());
  AggregationSpec spec = Spec("tumbling:60s");
  spec.input = "orders1";
  ASSERT_TRUE(manager_->Add(spec, "").ok());
  Publish("orders1", {Order("ann", 1, kBase + 1), Order("bob", 2, kBase + 2)});
  Settle();
  manager_.reset();  // checkpoint N: both windows open
  const fs::path state = dir_ / "aggregations" / "rev";
  const fs::path saved = dir_ / "saved-state";
  fs::copy(state, saved, fs::copy_options::recursive);
  OpenManager();
  // Closes minute 0 (results for ann and bob) and opens minute 2; a late record too.
  Publish("orders1", {Order("carl", 3, kBase + 2 * kMinute + 1)});
  Settle();
  Publish("orders1", {Order("dan", 4, kBase + 5)});
  Settle();
  manager_.reset();  // checkpoint N+1, which the crash loses
  ASSERT_EQ(Topic("rev.results").size(), 2u);
  ASSERT_EQ(Topic("rev.late").size(), 1u);
  broker_.reset();
  fs::remove_all(state);
  fs::rename(saved, state);
  usleep(5'000);  // past the dedupe window
  OpenBroker();
  OpenManager();
  const AggregationInfo info = Settle();
  EXPECT_EQ(info.records_in, 2u);  // folded again since the restart
  EXPECT_EQ(info.late, 1u);
  std::map<std::string, int> results;
  for (const json& r : Topic("rev.results")) ++results[r["key"].get<std::string>()];
  EXPECT_EQ(results, (std::map<std::string, int>{{"ann", 1}, {"bob", 1}}));
  EXPECT_EQ(Topic("rev.late").size(), 1u);
  // And after a second restart, with nothing left to skip, new outputs are published.
  manager_.reset();
  OpenManager();
  Publish("orders1", {Order("carl", 5, kBase + 4 * kMinute)});
  Settle();
  results.clear();
  for (const json& r : Topic("rev.results")) ++results[r["key"].get<std::string>()];
  EXPECT_EQ(results, (std::map<std::string, int>{{"ann", 1}, {"bob", 1}, {"carl", 1}}));
}

TEST_F(AggregateManagerTest, LateRecordsGoToTheLateTopic) {
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s", 10'000'000), "").ok());
  Publish("orders", {Order("ann", 1, kBase + 5 * kMinute)});
  Settle();
  // Watermark 4m50s: a record of minute 3 is late, one of minute 4 is not.
  Publish("orders", {Order("ann", 2, kBase + 3 * kMinute + 1), Order("ann", 3, kBase + 4 * kMinute + 1)});
  const AggregationInfo info = Settle();
  EXPECT_EQ(info.late, 1u);
  const auto late = Topic("rev.late");
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0]["amount"], 2);
  auto ann = Windows("ann");
  EXPECT_EQ(ann.count(kBase + 3 * kMinute), 0u);
  EXPECT_EQ(ann[kBase + 4 * kMinute]["total"], 3);
}

TEST_F(AggregateManagerTest, HoppingWindowsHoldEveryRecordInEachWindow) {
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("hopping:3m/1m", 100 * kMinute), "").ok());
  Publish("orders", {Order("ann", 1, kBase + 10), Order("ann", 10, kBase + kMinute + 10),
                     Order("ann", 100, kBase + 2 * kMinute + 10)});
  Settle();
  auto ann = Windows("ann");
  // Windows start at -2m..2m; [0,3m) holds all three.
  ASSERT_EQ(ann.size(), 5u);
  EXPECT_EQ(ann[kBase - 2 * kMinute]["total"], 1);
  EXPECT_EQ(ann[kBase - kMinute]["total"], 11);
  EXPECT_EQ(ann[kBase]["total"], 111);
  EXPECT_EQ(ann[kBase + kMinute]["total"], 110);
  EXPECT_EQ(ann[kBase + 2 * kMinute]["total"], 100);
}

TEST_F(AggregateManagerTest, SessionWindowsMergeWhenARecordBridgesThem) {
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("session:30s", 100 * kMinute), "").ok());
  Publish("orders", {Order("ann", 1, kBase), Order("ann", 2, kBase + 20'000'000),
                     Order("ann", 4, kBase + 70'000'000)});
  Settle();
  auto ann = Windows("ann");
  ASSERT_EQ(ann.size(), 2u);
  EXPECT_EQ(ann[kBase]["total"], 3);
  EXPECT_EQ(ann[kBase]["end"], kBase + 50'000'000);
  EXPECT_EQ(ann[kBase + 70'000'000]["total"], 4);
  // 45s lies within 30s of the first session's last event (20s) and of the second's (70s).
  Publish("orders", {Order("ann", 8, kBase + 45'000'000)});
  Settle();
  ann = Windows("ann");
  ASSERT_EQ(ann.size(), 1u) << json(ann).dump();
  EXPECT_EQ(ann[kBase]["total"], 15);
  EXPECT_EQ(ann[kBase]["n"], 4);
  EXPECT_EQ(ann[kBase]["end"], kBase + 100'000'000);
  // After a restart the merged session is the one stored (the second's old entry is gone).
  manager_.reset();
  OpenManager();
  ann = Windows("ann");
  ASSERT_EQ(ann.size(), 1u) << json(ann).dump();
  EXPECT_EQ(ann[kBase]["total"], 15);
}

TEST_F(AggregateManagerTest, GlobalWindowAndEventKeys) {
  OpenManager();
  AggregationSpec spec = Spec("global");
  spec.key = *ParseKey("key");
  spec.measures = {*ParseMeasure("n=count()"), *ParseMeasure("hi=max($.v)"),
                   *ParseMeasure("lo=min($.v)"), *ParseMeasure("mean=avg($.v)"),
                   *ParseMeasure("last=last($.s)"), *ParseMeasure("d=count_distinct($.s)"),
                   *ParseMeasure("p50=quantile($.v, 0.5)")};
  ASSERT_TRUE(manager_->Add(spec, "").ok());
  Publish("orders", {{"a/é", R"({"v":1,"s":"x"})", kBase + 3}, {"a/é", R"({"v":3,"s":"y"})", kBase + 1},
                     {"a/é", R"({"v":2.5,"s":"x"})", kBase + 2}, {"b", R"({"w":1})", kBase}});
  Settle();
  auto a = Windows("a/é");
  ASSERT_EQ(a.size(), 1u);
  const json& v = a.begin()->second;
  EXPECT_EQ(v["n"], 3);
  EXPECT_EQ(v["hi"], 3);
  EXPECT_EQ(v["lo"], 1);
  EXPECT_DOUBLE_EQ(v["mean"].get<double>(), 6.5 / 3);
  EXPECT_EQ(v["last"], "x");  // the latest event time, kBase + 3
  EXPECT_EQ(v["d"], 2);
  EXPECT_NEAR(v["p50"].get<double>(), 2.5, 0.03);
  EXPECT_FALSE(v["final"]);
  auto b = Windows("b");
  EXPECT_EQ(b.begin()->second["n"], 1);
  EXPECT_TRUE(b.begin()->second["hi"].is_null());
  EXPECT_TRUE(Topic("rev.results").empty());
}

TEST_F(AggregateManagerTest, RestartKeepsStateAndCountsNothingTwice) {
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s", 100 * kMinute), "").ok());
  Publish("orders", {Order("ann", 5, kBase + 1), Order("ann", 6, kBase + 2)});
  Settle();
  manager_.reset();
  broker_.reset();
  OpenBroker();
  OpenManager();
  Publish("orders", {Order("ann", 7, kBase + 3)});
  Settle();
  auto ann = Windows("ann");
  EXPECT_EQ(ann[kBase]["n"], 3);
  EXPECT_EQ(ann[kBase]["total"], 18);
}

TEST_F(AggregateManagerTest, StateBeyondTheCacheIsEvictedAndLoadedAgain) {
  // The same input folded with every key evicted at each checkpoint (a bound of one byte) and
  // with all of it in memory: the same windows and the same results, through a restart that
  // loads almost nothing, for each kind of window with keys coming and going.
  const std::vector<std::string> windows = {"tumbling:60s", "hopping:2m/1m", "session:30s"};
  auto spec = [&](size_t i, const std::string& prefix) {
    AggregationSpec s = Spec(windows[i]);
    s.name = StrCat(prefix, i);
    return s;
  };
  std::vector<std::string> users;
  for (int u = 0; u < 12; ++u) users.push_back(StrCat("user", u));
  auto step = [&](int m) {
    std::vector<Event> events;
    for (int u = 0; u < 12; ++u) {
      if ((u + m) % 3 == 0) continue;  // away this minute: sessions end, windows miss keys
      const int64_t t = kBase + m * kMinute + u * 1'000'000;
      events.push_back(Order(users[u], u * 10 + m, t));
      if (u % 2 == 0) events.push_back(Order(users[u], 1, t + 20'000'000));
    }
    Publish("orders", events);
  };
  cache_bytes_ = 1;
  OpenManager();
  for (size_t i = 0; i < windows.size(); ++i) ASSERT_TRUE(manager_->Add(spec(i, "small"), "").ok());
  for (int m = 0; m < 7; ++m) {
    if (m == 3) {  // restarted, with room for one key at most
      manager_.reset();
      OpenManager();
    }
    step(m);
    for (size_t i = 0; i < windows.size(); ++i) {
      const AggregationInfo info = Settle(StrCat("small", i));
      EXPECT_EQ(info.keys, 0u) << windows[i] << ": every key is evicted after a checkpoint";
      EXPECT_GT(info.open_windows, 0u) << windows[i];
    }
  }
  std::vector<std::map<std::string, std::map<int64_t, json>>> small(windows.size());
  for (size_t i = 0; i < windows.size(); ++i) {
    for (const std::string& u : users) small[i][u] = Windows(u, StrCat("small", i));
  }
  manager_.reset();
  cache_bytes_ = 256ull << 20;
  OpenManager();
  for (size_t i = 0; i < windows.size(); ++i) {
    ASSERT_TRUE(manager_->Add(spec(i, "whole"), "").ok());
    const AggregationInfo info = Settle(StrCat("whole", i));
    EXPECT_GT(info.keys, 0u);
    size_t compared = 0;
    for (const std::string& u : users) {
      const auto whole = Windows(u, StrCat("whole", i));
      EXPECT_EQ(small[i][u], whole) << windows[i] << " " << u;
      compared += whole.size();
    }
    EXPECT_GT(compared, 20u);
    auto sorted = [](std::vector<json> v) {
      std::vector<std::string> out;
      for (const json& j : v) out.push_back(j.dump());
      std::sort(out.begin(), out.end());
      return out;
    };
    const auto results = sorted(Topic(StrCat("small", i, ".results")));
    EXPECT_FALSE(results.empty());
    EXPECT_EQ(results, sorted(Topic(StrCat("whole", i, ".results")))) << windows[i];
  }
}

TEST_F(AggregateManagerTest, MergedSessionsGiveBackTheirMemory) {
  // The same session of one key built in order and built as two sessions that a third record
  // joins: once it is final, both hold the same memory (the merged-away window's is returned).
  auto spec = [&](const std::string& name, const std::string& input) {
    AggregationSpec s = Spec("session:30s", 100 * kMinute);
    s.name = name;
    s.input = input;
    return s;
  };
  constexpr int64_t kSecond = 1'000'000;
  ASSERT_TRUE(broker_->CreateTopic("ordered", 1).ok());
  ASSERT_TRUE(broker_->CreateTopic("merged", 1).ok());
  Publish("ordered", {Order("ann", 1, kBase), Order("ann", 1, kBase + 25 * kSecond),
                      Order("ann", 1, kBase + 40 * kSecond)});
  Publish("merged", {Order("ann", 1, kBase), Order("ann", 1, kBase + 40 * kSecond),
                     Order("ann", 1, kBase + 25 * kSecond)});
  for (const std::string topic : {"ordered", "merged"}) {
    // Long after: ann's session closes; bob's stays open.
    Publish(topic, {Order("bob", 1, kBase + 200 * kMinute)});
  }
  OpenManager();
  ASSERT_TRUE(manager_->Add(spec("ordered", "ordered"), "").ok());
  ASSERT_TRUE(manager_->Add(spec("merged", "merged"), "").ok());
  const AggregationInfo ordered = Settle("ordered");
  const AggregationInfo merged = Settle("merged");
  EXPECT_EQ(Windows("ann", "merged"), Windows("ann", "ordered"));
  EXPECT_EQ(Windows("ann", "merged").begin()->second["n"], 3);
  EXPECT_EQ(merged.open_windows, 1u);
  EXPECT_GT(ordered.memory_bytes, 0u);
  EXPECT_EQ(merged.memory_bytes, ordered.memory_bytes);
}

TEST_F(AggregateManagerTest, ResetRecomputesAndRemoveDeletesState) {
  Publish("orders", {Order("ann", 5, kBase + 1), Order("bob", 6, kBase + 2)});
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s", 100 * kMinute), "").ok());
  Settle();
  auto reset = manager_->Reset("rev", StartSpec{StartSpec::Kind::kLatest});
  ASSERT_TRUE(reset.ok()) << reset.status();
  Settle();
  EXPECT_TRUE(Windows("ann").empty());
  Publish("orders", {Order("ann", 1, kBase + 3)});
  Settle();
  EXPECT_EQ(Windows("ann")[kBase]["total"], 1);
  ASSERT_TRUE(manager_->Reset("rev", StartSpec{}).ok());
  Settle();
  EXPECT_EQ(Windows("ann")[kBase]["total"], 6);
  EXPECT_EQ(Windows("bob")[kBase]["total"], 6);

  ASSERT_TRUE(manager_->Remove("rev").ok());
  EXPECT_EQ(manager_->Get("rev").status().code(), absl::StatusCode::kNotFound);
  manager_.reset();  // the last reader lets go: the state directory goes
  EXPECT_TRUE(fs::is_empty(dir_ / "aggregations")) << "state left behind";
}

TEST_F(AggregateManagerTest, ListWindowSortsAndPages) {
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s", 100 * kMinute), "").ok());
  std::vector<Event> events;
  for (int u = 0; u < 10; ++u) {
    for (int i = 0; i <= u; ++i) events.push_back(Order(StrCat("u", u), 1, kBase + kMinute + i));
  }
  events.push_back(Order("old", 1, kBase));
  Publish("orders", events);
  Settle();
  WindowQuery q;
  q.order_by = "n";
  q.desc = true;
  q.limit = 3;
  auto page = manager_->ListWindow("rev", q);  // the latest window
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->start_us, kBase + kMinute);
  ASSERT_EQ(page->keys.size(), 3u);
  EXPECT_EQ(page->keys[0].key, "u9");
  EXPECT_EQ(page->keys[2].key, "u7");
  ASSERT_TRUE(page->next.has_value());
  q.after = page->next;
  auto next = manager_->ListWindow("rev", q);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->keys[0].key, "u6");
  q.order_by = "nope";
  EXPECT_EQ(manager_->ListWindow("rev", q).status().code(), absl::StatusCode::kInvalidArgument);
  WindowQuery first;
  first.start_us = kBase;
  auto old = manager_->ListWindow("rev", first);
  ASSERT_TRUE(old.ok());
  ASSERT_EQ(old->keys.size(), 1u);
  EXPECT_EQ(old->keys[0].key, "old");
}

TEST_F(AggregateManagerTest, WatchSeesUpdatesOfItsKey) {
  OpenManager();
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s", 100 * kMinute), "").ok());
  auto watch = manager_->Watch("rev", std::string("ann"));
  ASSERT_TRUE(watch.ok());
  Publish("orders", {Order("bob", 1, kBase), Order("ann", 4, kBase)});
  std::vector<Update> seen;
  for (int i = 0; i < 50 && seen.empty(); ++i) {
    auto got = (*watch)->Next(100, nullptr);
    ASSERT_TRUE(got.ok());
    seen = *got;
  }
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].key, "ann");
  EXPECT_EQ(json::parse(seen[0].window.values)["total"], 4);
  ASSERT_TRUE(manager_->Remove("rev").ok());
  EXPECT_EQ((*watch)->Next(1000, nullptr).status().code(), absl::StatusCode::kCancelled);
}

#ifdef NODATA_WASM_TESTDATA
std::string TestModule(const std::string& name) {
  std::ifstream in(StrCat(NODATA_WASM_TESTDATA, "/", name, ".wasm"), std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(AggregateManagerTest, WasmReducerFoldsWindowsAndMergesSessions) {
  OpenManager();
  const std::string module = TestModule("count_sum");
  ASSERT_FALSE(module.empty());
  AggregationSpec spec = Spec("session:30s", 100 * kMinute);
  spec.measures.clear();
  auto added = manager_->Add(spec, module);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->tier, "interpreter");
  Publish("orders", {Order("ann", 1, kBase), Order("ann", 2, kBase + 20'000'000),
                     Order("ann", 4, kBase + 70'000'000), Order("bob", 9, kBase)});
  Settle();
  auto ann = Windows("ann");
  ASSERT_EQ(ann.size(), 2u);
  EXPECT_EQ(ann[kBase]["sum"], 3);
  EXPECT_EQ(ann[kBase]["count"], 2);
  Publish("orders", {Order("ann", 8, kBase + 45'000'000)});  // bridges them: nd_merge
  Settle();
  ann = Windows("ann");
  ASSERT_EQ(ann.size(), 1u) << json(ann).dump();
  EXPECT_EQ(ann[kBase]["sum"], 15);
  EXPECT_EQ(ann[kBase]["count"], 4);
  manager_.reset();
  OpenManager();  // the module comes back from the data directory
  EXPECT_EQ(Windows("ann")[kBase]["sum"], 15);
  EXPECT_EQ(Windows("bob")[kBase]["sum"], 9);
}

TEST_F(AggregateManagerTest, AReducerThatTrapsFailsItsAggregationOnly) {
  OpenManager();
  AggregationSpec spec = Spec("tumbling:60s", 100 * kMinute);
  spec.name = "boom";
  spec.measures.clear();
  ASSERT_TRUE(manager_->Add(spec, TestModule("traps")).ok());
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s", 100 * kMinute), "").ok());
  Publish("orders", {Order("ann", 1, kBase), Order("boom", 2, kBase)});
  AggregationInfo info;
  for (int i = 0; i < 500 && info.state != State::kFailed; ++i) {
    info = *manager_->Get("boom");
    usleep(10'000);
  }
  EXPECT_EQ(info.state, State::kFailed);
  EXPECT_NE(info.last_error.find("reducer"), std::string::npos) << info.last_error;
  // The other aggregation on the same input goes on.
  Settle("rev");
  EXPECT_EQ(Windows("boom", "rev")[kBase]["total"], 2);
  // A module that is not an aggregation module is refused.
  spec.name = "notagg";
  auto refused = manager_->Add(spec, TestModule("no_marker"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(refused.status().message()).find("not a nodata aggregation module"),
            std::string::npos)
      << refused.status();
  // Session windows need nd_merge.
  spec.name = "nomerge";
  spec.window = *ParseWindow("session:1m");
  EXPECT_EQ(manager_->Add(spec, TestModule("traps")).status().code(),
            absl::StatusCode::kInvalidArgument);
}
#endif

TEST_F(AggregateManagerTest, RefusesBadDefinitions) {
  OpenManager();
  AggregationSpec missing = Spec("tumbling:60s");
  missing.input = "nope";
  EXPECT_EQ(manager_->Add(missing, "").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(manager_->Add(Spec("tumbling:60s"), "").ok());
  EXPECT_EQ(manager_->Add(Spec("tumbling:60s"), "").status().code(),
            absl::StatusCode::kAlreadyExists);
  AggregationSpec wasm = Spec("tumbling:60s");
  wasm.name = "w";
  wasm.measures.clear();
  auto bad = manager_->Add(wasm, "not a module");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
}

}  // namespace
}  // namespace nodata::aggregate
