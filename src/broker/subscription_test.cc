#include "broker/subscription.h"

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <set>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/fs.h"
#include "common/strings.h"
#include "common/testing/ids.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace nodata::broker {
namespace {

namespace fs = std::filesystem;
using Offsets = std::map<PartitionId, Offset>;
using ::nodata::testing::OffsetMap;
using ::nodata::testing::PartitionOffsets;
using ::nodata::testing::Partitions;

// Collects what a subscription delivers. With `auto_ready` it takes every delivery at once
// (from inside the callback); otherwise the test calls Ready, like a slow transport.
class TestSink : public SubscriptionSink {
 public:
  explicit TestSink(bool auto_ready = true) : auto_ready_(auto_ready) {}

  void set_subscription(Subscription* s) {
    absl::MutexLock lock(&mu_);
    sub_ = s;
  }

  void OnAssignment(const Assignment& a) override {
    Subscription* sub;
    {
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(in_flight_) << "a delivery while one is in flight";
      assignments_.push_back(a);
      in_flight_ = true;
      sub = auto_ready_ ? sub_ : nullptr;
    }
    if (sub) Take();
  }

  void OnBatch(RecordBatch& batch) override {
    std::vector<std::pair<uint32_t, uint64_t>> got;
    std::vector<std::string> data;
    batch.ForEach([&](const DecodedRecord& r) {
      got.emplace_back(batch.partition().value(), r.offset.value());
      data.emplace_back(r.data);
    });
    if (got.empty()) return;
    bool take;
    {
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(in_flight_) << "a delivery while one is in flight";
      EXPECT_LE(got.size(), max_batch_seen_limit_);
      in_flight_ = true;
      ++batches_;
      records_.insert(records_.end(), got.begin(), got.end());
      data_.insert(data_.end(), data.begin(), data.end());
      take = auto_ready_;
    }
    if (take) Take();
  }

  void OnEnd(absl::Status status) override {
    absl::MutexLock lock(&mu_);
    EXPECT_FALSE(end_.has_value()) << "OnEnd twice";
    end_ = status;
  }

  // Takes the delivery in flight, as a transport whose write completed.
  void Take() {
    Subscription* sub;
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = false;
      sub = sub_;
    }
    sub->Ready();
  }

  bool WaitFor(const std::function<bool(TestSink&)>& pred,
               absl::Duration timeout = absl::Seconds(20)) {
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pred(*this); };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  }
  bool WaitForRecords(size_t n) {
    return WaitFor([n](TestSink& s) {
      s.mu_.AssertHeld();
      return s.records_.size() >= n;
    });
  }
  bool WaitForEnd() {
    return WaitFor([](TestSink& s) {
      s.mu_.AssertHeld();
      return s.end_.has_value();
    });
  }
  bool WaitForInFlight() {
    return WaitFor([](TestSink& s) {
      s.mu_.AssertHeld();
      return s.in_flight_;
    });
  }

  std::vector<std::pair<uint32_t, uint64_t>> records() {
    absl::MutexLock lock(&mu_);
    return records_;
  }
  std::vector<std::string> data() {
    absl::MutexLock lock(&mu_);
    return data_;
  }
  std::vector<Assignment> assignments() {
    absl::MutexLock lock(&mu_);
    return assignments_;
  }
  std::optional<absl::Status> end() {
    absl::MutexLock lock(&mu_);
    return end_;
  }
  size_t batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  void set_max_batch(size_t n) {
    absl::MutexLock lock(&mu_);
    max_batch_seen_limit_ = n;
  }

  absl::Mutex mu_;
  const bool auto_ready_;
  Subscription* sub_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  size_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  size_t max_batch_seen_limit_ ABSL_GUARDED_BY(mu_) = kMaxBatchRecords;
  std::vector<std::pair<uint32_t, uint64_t>> records_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> data_ ABSL_GUARDED_BY(mu_);
  std::vector<Assignment> assignments_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);
};

// A subscription with its sink.
struct Reader {
  std::shared_ptr<TestSink> sink;
  std::unique_ptr<Subscription> sub;
};

class SubscriptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           StrCat("nodata-subscription-", ::getpid(), "-",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    BrokerOptions options;
    options.data_dir = dir_.string();
    options.maintenance_period_ms = 20;
    auto broker = Broker::Open(options, PosixFileSystem(), registry_);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }
  void TearDown() override {
    readers_.clear();
    pool_.WaitIdle();
    broker_.reset();
    fs::remove_all(dir_);
  }

  // Publishes `n` events with keys routed to `partition` of a topic of `partitions`.
  void Publish(const std::string& topic, uint32_t partition, uint32_t partitions, int n) {
    std::vector<std::string> ids, keys;
    for (int i = 0; i < n; ++i) {
      ids.push_back(StrCat("id-", next_id_++));
      std::string key;
      for (int k = 0;; ++k) {
        key = StrCat("k", k);
        if (PartitionFor(key, "", partitions) == PartitionId(partition)) break;
      }
      keys.push_back(key);
    }
    std::vector<EventIn> events(n);
    for (int i = 0; i < n; ++i) {
      events[i].topic = topic;
      events[i].id = ids[i];
      events[i].key = keys[i];
      events[i].data = ids[i];
    }
    std::promise<absl::Status> done;
    broker_->Publish(events, [&done](absl::Status s, std::vector<AckOut>) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  absl::StatusOr<Reader*> Open(SubscriptionOptions options, bool auto_ready = true) {
    auto sink = std::make_shared<TestSink>(auto_ready);
    auto sub = Subscription::Open(*broker_, pool_, std::move(options), sink);
    if (!sub.ok()) return sub.status();
    sink->set_subscription(sub->get());
    (*sub)->Start();
    readers_.push_back(std::make_unique<Reader>(Reader{sink, std::move(*sub)}));
    return readers_.back().get();
  }
  Reader* MustOpen(SubscriptionOptions options, bool auto_ready = true) {
    auto r = Open(std::move(options), auto_ready);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nullptr;
  }

  Offsets EndOffsets(const std::string& topic) {
    Offsets out;
    auto info = broker_->GetTopic(topic);
    EXPECT_TRUE(info.ok());
    for (const auto& p : info->partitions) out[p.partition] = p.stats.end_offset;
    return out;
  }
  // Waits until the group's committed offsets reach the topic's end offsets.
  bool WaitCommittedToEnd(const std::string& group, const std::string& topic) {
    const Offsets end = EndOffsets(topic);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      auto c = broker_->CommittedOffsets(group, topic);
      if (c.ok()) {
        Offsets got = *c;
        for (const auto& [p, e] : end) {
          if (e == Offset(0) && !got.count(p)) got[p] = Offset(0);
        }
        if (got == end) return true;
      }
      // Committed offsets come with no notification: the test looks again shortly.
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  fs::path dir_;
  prometheus::Registry registry_;
  std::unique_ptr<Broker> broker_;
  WorkerPool pool_{2};
  std::vector<std::unique_ptr<Reader>> readers_;
  int next_id_ = 0;
};

std::set<std::pair<uint32_t, uint64_t>> AsSet(const std::vector<std::pair<uint32_t, uint64_t>>& v) {
  return {v.begin(), v.end()};
}

TEST_F(SubscriptionTest, ReadsEveryPartitionInTurnOneBatchInFlight) {
  ASSERT_TRUE(broker_->CreateTopic("t", 3).ok());
  for (uint32_t p = 0; p < 3; ++p) Publish("t", p, 3, 25);
  SubscriptionOptions o;
  o.topic = "t";
  o.max_records = 10;
  Reader* r = MustOpen(o, /*auto_ready=*/false);
  ASSERT_NE(r, nullptr);
  r->sink->set_max_batch(10);
  ASSERT_TRUE(r->sink->WaitForInFlight());
  // Nothing more until the sink takes the batch: a slow transport bounds what is read.
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(r->sink->batches(), 1u);
  EXPECT_EQ(r->sink->records().size(), 10u);
  EXPECT_EQ(r->sink->records()[0].first, 0u);
  r->sink->Take();
  ASSERT_TRUE(r->sink->WaitFor([](TestSink& s) {
    s.mu_.AssertHeld();
    return s.batches_ == 2 && s.in_flight_;
  }));
  EXPECT_EQ(r->sink->records()[10].first, 1u) << "partitions are read in turn";
  while (r->sink->records().size() < 75) {
    r->sink->Take();
    ASSERT_TRUE(r->sink->WaitFor([](TestSink& s) {
      s.mu_.AssertHeld();
      return s.in_flight_;
    }));
  }
  r->sink->Take();
  std::set<std::pair<uint32_t, uint64_t>> want;
  for (uint32_t p = 0; p < 3; ++p) {
    for (uint64_t o = 0; o < 25; ++o) want.emplace(p, o);
  }
  EXPECT_EQ(AsSet(r->sink->records()), want);
  EXPECT_EQ(r->sink->records().size(), 75u);
  // Caught up: it waits on the append notification and delivers what comes next.
  Publish("t", 2, 3, 1);
  ASSERT_TRUE(r->sink->WaitForInFlight());
  EXPECT_EQ(r->sink->records().back(), std::make_pair(2u, uint64_t{25}));
  EXPECT_FALSE(r->sink->end().has_value());
}

TEST_F(SubscriptionTest, StopEndsAnIdleReaderAndAfterTheDeliveryInFlight) {
  ASSERT_TRUE(broker_->CreateTopic("t", 1).ok());
  SubscriptionOptions o;
  o.topic = "t";
  Reader* idle = MustOpen(o);
  absl::SleepFor(absl::Milliseconds(50));
  idle->sub->Stop(absl::UnavailableError("the server is shutting down"));
  ASSERT_TRUE(idle->sink->WaitForEnd());
  EXPECT_EQ(idle->sink->end()->code(), absl::StatusCode::kUnavailable);

  Publish("t", 0, 1, 3);
  Reader* busy = MustOpen(o, /*auto_ready=*/false);
  ASSERT_TRUE(busy->sink->WaitForInFlight());
  busy->sub->Stop(absl::UnavailableError("the server is shutting down"));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(busy->sink->end().has_value()) << "a delivery is in flight";
  busy->sink->Take();
  ASSERT_TRUE(busy->sink->WaitForEnd());
  EXPECT_EQ(busy->sink->end()->code(), absl::StatusCode::kUnavailable);

  // A failed delivery ends the subscription with its status.
  Reader* failed = MustOpen(o, /*auto_ready=*/false);
  ASSERT_TRUE(failed->sink->WaitForInFlight());
  failed->sub->Ready(absl::CancelledError("the subscriber went away"));
  ASSERT_TRUE(failed->sink->WaitForEnd());
  EXPECT_EQ(failed->sink->end()->code(), absl::StatusCode::kCancelled);
}

TEST_F(SubscriptionTest, GroupOfThreeJoiningAndLeavingDeliversEveryRecordOnce) {
  constexpr uint32_t kParts = 6;
  ASSERT_TRUE(broker_->CreateTopic("t", kParts).ok());
  std::set<std::pair<uint32_t, uint64_t>> published;
  auto publish_round = [&](int per_partition) {
    for (uint32_t p = 0; p < kParts; ++p) {
      const uint64_t start = EndOffsets("t")[PartitionId(p)].value();
      Publish("t", p, kParts, per_partition);
      for (int i = 0; i < per_partition; ++i) published.emplace(p, start + i);
    }
  };
  auto member = [&](const std::string& id) {
    SubscriptionOptions o;
    o.topic = "t";
    o.group = "g";
    o.consumer_id = id;
    o.auto_commit = true;
    o.start = StartSpec{StartSpec::Kind::kCommitted};
    o.max_records = 7;
    return MustOpen(o);
  };
  std::vector<Reader*> members;
  // Every record published so far is delivered once, across the members, and committed.
  auto settle = [&] {
    ASSERT_TRUE(WaitCommittedToEnd("g", "t"));
    std::vector<std::pair<uint32_t, uint64_t>> all;
    for (const auto& r : readers_) {
      auto got = r->sink->records();
      all.insert(all.end(), got.begin(), got.end());
    }
    EXPECT_EQ(all.size(), published.size()) << "a record delivered twice";
    EXPECT_EQ(AsSet(all), published);
  };

  members.push_back(member("a"));
  publish_round(20);
  settle();
  members.push_back(member("b"));
  publish_round(20);
  settle();
  members.push_back(member("c"));
  publish_round(20);
  settle();
  for (Reader* r : members) {
    auto a = r->sink->assignments();
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(a.back().partitions.size(), 2u) << "three members share six partitions";
  }
  members[0]->sub->Close();  // a leaves: its partitions move to b and c
  publish_round(20);
  settle();
  EXPECT_EQ(members[1]->sink->assignments().back().partitions.size() +
                members[2]->sink->assignments().back().partitions.size(),
            kParts);
  members[1]->sub->Close();
  publish_round(20);
  settle();
  EXPECT_EQ(members[2]->sink->assignments().back().partitions.size(), kParts);
  auto description = broker_->DescribeGroup("g", "t");
  ASSERT_TRUE(description.ok());
  ASSERT_EQ(description->live.members.size(), 1u);
  EXPECT_EQ(description->live.members[0].consumer_id, "c");
}

TEST_F(SubscriptionTest, AutoCommitAfterTheIntervalAndOnClose) {
  ASSERT_TRUE(broker_->CreateTopic("t", 2).ok());
  Publish("t", 0, 2, 5);
  Publish("t", 1, 2, 3);
  SubscriptionOptions o;
  o.topic = "t";
  o.group = "g";
  o.auto_commit = true;
  Reader* r = MustOpen(o);
  ASSERT_TRUE(r->sink->WaitForRecords(8));
  // Nothing else happens: the timer commits within the interval.
  ASSERT_TRUE(WaitCommittedToEnd("g", "t"));
  EXPECT_EQ(*broker_->CommittedOffsets("g", "t"), OffsetMap({{0, 5}, {1, 3}}));

  Publish("t", 1, 2, 2);
  ASSERT_TRUE(r->sink->WaitForRecords(10));
  r->sub->Close();  // before the interval: the final commit
  pool_.WaitIdle();
  EXPECT_EQ(*broker_->CommittedOffsets("g", "t"), OffsetMap({{0, 5}, {1, 5}}));
  EXPECT_FALSE(broker_->groups().HasMembers("g", "t")) << "closing leaves the group";

  // Without auto-commit nothing is committed.
  o.group = "h";
  o.auto_commit = false;
  Reader* plain = MustOpen(o);
  ASSERT_TRUE(plain->sink->WaitForRecords(10));
  plain->sub->Close();
  pool_.WaitIdle();
  EXPECT_TRUE(broker_->CommittedOffsets("h", "t")->empty());
}

TEST_F(SubscriptionTest, ASecondMemberWithTheSameConsumerIdFencesTheFirst) {
  ASSERT_TRUE(broker_->CreateTopic("t", 2).ok());
  SubscriptionOptions o;
  o.topic = "t";
  o.group = "g";
  o.consumer_id = "worker-1";
  Reader* first = MustOpen(o);
  ASSERT_TRUE(first->sink->WaitFor([](TestSink& s) {
    s.mu_.AssertHeld();
    return !s.assignments_.empty();
  }));
  Reader* second = MustOpen(o);
  ASSERT_TRUE(first->sink->WaitForEnd());
  EXPECT_EQ(first->sink->end()->code(), absl::StatusCode::kAborted);
  EXPECT_EQ(first->sink->end()->message(),
            "consumer id \"worker-1\" was taken by a newer subscription, or the topic was "
            "deleted");
  ASSERT_TRUE(second->sink->WaitFor([](TestSink& s) {
    s.mu_.AssertHeld();
    return !s.assignments_.empty();
  }));
  EXPECT_EQ(second->sink->assignments().back().partitions, Partitions({0, 1}));
  Publish("t", 1, 2, 1);
  ASSERT_TRUE(second->sink->WaitForRecords(1));
  // The fenced member's close does not remove its replacement.
  first->sub->Close();
  pool_.WaitIdle();
  EXPECT_TRUE(broker_->groups().HasMembers("g", "t"));
}

TEST_F(SubscriptionTest, RetentionOvertakingAReaderMakesItSkipAhead) {
  TopicConfig config;
  ASSERT_TRUE(broker_->CreateTopic("t", 1, config).ok());
  auto flush = [&] {
    std::promise<absl::Status> done;
    broker_->FlushTopic("t",
                        [&](absl::StatusOr<TopicInfo> info) { done.set_value(info.status()); });
    ASSERT_TRUE(done.get_future().get().ok());
  };
  Publish("t", 0, 1, 10);
  flush();
  Publish("t", 0, 1, 10);
  flush();
  SubscriptionOptions o;
  o.topic = "t";
  o.max_records = 2;
  Reader* r = MustOpen(o, /*auto_ready=*/false);
  ASSERT_TRUE(r->sink->WaitForInFlight());
  EXPECT_EQ(r->sink->records(), (std::vector<std::pair<uint32_t, uint64_t>>{{0, 0}, {0, 1}}));
  Publish("t", 0, 1, 5);  // stays in the hot tier
  // Retention deletes both Parquet files while the reader holds its first batch.
  config.retention_bytes = 1;
  ASSERT_TRUE(broker_->SetRetention("t", config).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (broker_->GetTopic("t")->partitions[0].stats.start_offset < Offset(20) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(broker_->GetTopic("t")->partitions[0].stats.start_offset, Offset(20));
  for (int i = 0; i < 3; ++i) {
    r->sink->Take();
    ASSERT_TRUE(r->sink->WaitForInFlight());
  }
  EXPECT_EQ(r->sink->records(), (std::vector<std::pair<uint32_t, uint64_t>>{
                                    {0, 0}, {0, 1}, {0, 20}, {0, 21}, {0, 22}, {0, 23}, {0, 24}}));
  EXPECT_FALSE(r->sink->end().has_value());
}

TEST_F(SubscriptionTest, DeletingTheTopicEndsReadersAndMembers) {
  ASSERT_TRUE(broker_->CreateTopic("t", 2).ok());
  Publish("t", 0, 2, 3);
  SubscriptionOptions o;
  o.topic = "t";
  Reader* reader = MustOpen(o);
  o.group = "g";
  Reader* member = MustOpen(o);
  ASSERT_TRUE(reader->sink->WaitForRecords(3));
  ASSERT_TRUE(member->sink->WaitForRecords(3));
  ASSERT_TRUE(broker_->DeleteTopic("t").ok());
  // Created again under the name: another topic, not the one these read.
  ASSERT_TRUE(broker_->CreateTopic("t", 2).ok());
  Publish("t", 0, 2, 1);
  ASSERT_TRUE(reader->sink->WaitForEnd());
  EXPECT_EQ(reader->sink->end()->code(), absl::StatusCode::kNotFound) << *reader->sink->end();
  ASSERT_TRUE(member->sink->WaitForEnd());
  EXPECT_TRUE(member->sink->end()->code() == absl::StatusCode::kAborted ||
              member->sink->end()->code() == absl::StatusCode::kNotFound)
      << *member->sink->end();
  EXPECT_EQ(reader->sink->records().size(), 3u);

  SubscriptionOptions missing;
  missing.topic = "nope";
  EXPECT_EQ(Open(missing).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SubscriptionTest, StartPositionsAndClamp) {
  ASSERT_TRUE(broker_->CreateTopic("t", 2).ok());
  Publish("t", 0, 2, 5);
  Publish("t", 1, 2, 2);
  SubscriptionOptions o;
  o.topic = "t";
  o.start = StartSpec{StartSpec::Kind::kLatest};
  Reader* latest = MustOpen(o);
  o.start = StartSpec{StartSpec::Kind::kOffset, Offset(3)};
  EXPECT_EQ(Open(o).status().code(), absl::StatusCode::kOutOfRange) << "past the end of 1";
  o.clamp_start = true;
  Reader* clamped = MustOpen(o);  // 0 from 3, 1 from its end 2
  o.clamp_start = false;
  o.start = StartSpec{};
  o.partitions = Partitions({1, 0, 1});
  o.start_offsets = PartitionOffsets({{0, 4}});
  Reader* chosen = MustOpen(o);
  ASSERT_TRUE(clamped->sink->WaitForRecords(2));
  ASSERT_TRUE(chosen->sink->WaitForRecords(3));
  Publish("t", 1, 2, 1);
  ASSERT_TRUE(latest->sink->WaitForRecords(1));
  ASSERT_TRUE(clamped->sink->WaitForRecords(3));
  ASSERT_TRUE(chosen->sink->WaitForRecords(4));
  using V = std::set<std::pair<uint32_t, uint64_t>>;
  EXPECT_EQ(AsSet(latest->sink->records()), (V{{1, 2}}));
  EXPECT_EQ(AsSet(clamped->sink->records()), (V{{0, 3}, {0, 4}, {1, 2}}));
  EXPECT_EQ(AsSet(chosen->sink->records()), (V{{0, 4}, {1, 0}, {1, 1}, {1, 2}}));

  // What a client sees for a request it got wrong.
  auto error = [&](SubscriptionOptions bad) { return Open(std::move(bad)).status(); };
  SubscriptionOptions b;
  b.topic = "t";
  b.max_records = kMaxBatchRecords + 1;
  EXPECT_EQ(error(b).message(), "max_batch is 10001; the limit is 10000");
  b.max_records = 0;
  b.auto_commit = true;
  EXPECT_EQ(error(b).message(), "auto_commit needs a group");
  b.auto_commit = false;
  b.partitions = Partitions({2});
  EXPECT_EQ(error(b).message(), "topic \"t\" has 2 partitions; 2 is out of range");
  b.partitions = Partitions({1});
  b.start_offsets = PartitionOffsets({{0, 0}});
  EXPECT_EQ(error(b).message(), "start_offsets: partition 0 is not one of the partitions read");
  b.start_offsets = PartitionOffsets({{1, 0}, {1, 1}});
  EXPECT_EQ(error(b).message(), "start_offsets: partition 1 is listed twice");
  b.group = "g";
  b.start_offsets = {};
  EXPECT_EQ(error(b).message(), "partitions cannot be chosen in a group: the group assigns them");
  b.partitions = {};
  b.consumer_id = "-x";
  EXPECT_EQ(error(b).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SubscriptionTest, AReaderOfEveryPartitionPicksUpThoseAGrowAdds) {
  ASSERT_TRUE(broker_->CreateTopic("t", 2).ok());
  Publish("t", 0, 2, 1);
  SubscriptionOptions o;
  o.topic = "t";
  Reader* all = MustOpen(o);
  o.partitions = Partitions({0, 1});
  Reader* listed = MustOpen(o);
  ASSERT_TRUE(all->sink->WaitForRecords(1));
  ASSERT_TRUE(listed->sink->WaitForRecords(1));
  ASSERT_TRUE(broker_->AddPartitions("t", 4).ok());
  Publish("t", 3, 4, 2);
  Publish("t", 0, 4, 1);
  ASSERT_TRUE(all->sink->WaitForRecords(4));
  ASSERT_TRUE(listed->sink->WaitForRecords(2));
  using V = std::set<std::pair<uint32_t, uint64_t>>;
  EXPECT_EQ(AsSet(all->sink->records()), (V{{0, 0}, {0, 1}, {3, 0}, {3, 1}}));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(AsSet(listed->sink->records()), (V{{0, 0}, {0, 1}})) << "a chosen list stays";
}

TEST_F(SubscriptionTest, ASnapshotStopsAtTheEndOffsetsSeenAtTheStart) {
  ASSERT_TRUE(broker_->CreateTopic("t", 2).ok());
  Publish("t", 0, 2, 5);
  Publish("t", 1, 2, 3);
  SubscriptionOptions o;
  o.topic = "t";
  o.stop_at_end = true;
  o.max_records = 2;
  o.partitions = Partitions({1, 0, 1});
  o.start = StartSpec{StartSpec::Kind::kOffset, Offset(1)};
  o.clamp_start = true;
  Reader* r = MustOpen(o, /*auto_ready=*/false);
  ASSERT_TRUE(r->sink->WaitForInFlight());
  Publish("t", 0, 2, 4);  // after the start: not part of the snapshot
  Publish("t", 1, 2, 4);
  while (!r->sink->end().has_value()) {
    r->sink->Take();
    ASSERT_TRUE(r->sink->WaitFor([](TestSink& s) {
      s.mu_.AssertHeld();
      return s.in_flight_ || s.end_.has_value();
    }));
  }
  EXPECT_TRUE(r->sink->end()->ok()) << *r->sink->end();
  // In the order given, repeats included, batches of at most two records.
  EXPECT_EQ(r->sink->records(),
            (std::vector<std::pair<uint32_t, uint64_t>>{
                {1, 1}, {1, 2}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 1}, {1, 2}}));
  EXPECT_EQ(r->sink->batches(), 4u);

  o.partitions = {};
  o.start = StartSpec{StartSpec::Kind::kOffset, Offset(100)};
  Reader* past = MustOpen(o);
  ASSERT_TRUE(past->sink->WaitForEnd());
  EXPECT_TRUE(past->sink->end()->ok());
  EXPECT_TRUE(past->sink->records().empty());
}

}  // namespace
}  // namespace nodata::broker
