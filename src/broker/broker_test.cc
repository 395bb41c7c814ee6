#include "broker/broker.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <set>

#include "broker/internal/dedupe_store.h"
#include "common/names.h"
#include "common/time.h"
#include "common/strings.h"
#include "common/testing/fault_fs.h"
#include "common/testing/ids.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "storage/catalog.h"

namespace nodata::broker {
namespace {

namespace fs = std::filesystem;
using ::nodata::testing::PartitionOffsets;

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           StrCat("nodata-broker-", ::getpid(), "-",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Broker> Open(BrokerOptions options = {}) {
    options.data_dir = dir_.string();
    registry_ = std::make_unique<prometheus::Registry>();
    auto broker = Broker::Open(options, fault_, *registry_);
    EXPECT_TRUE(broker.ok()) << broker.status();
    return broker.ok() ? std::move(*broker) : nullptr;
  }

  static absl::StatusOr<std::vector<AckOut>> Publish(Broker& broker,
                                                     const std::vector<EventIn>& events) {
    std::promise<absl::StatusOr<std::vector<AckOut>>> p;
    broker.Publish(events, [&p](absl::Status s, std::vector<AckOut> acks) {
      if (s.ok()) {
        p.set_value(std::move(acks));
      } else {
        p.set_value(s);
      }
    });
    return p.get_future().get();
  }

  static EventIn Event(std::string_view topic, std::string_view id, std::string_view key = "") {
    EventIn e;
    e.topic = topic;
    e.id = id;
    e.key = key;
    e.data = "payload";
    return e;
  }

  fs::path dir_;
  testing::FaultFs fault_;
  std::unique_ptr<prometheus::Registry> registry_;
};

TEST_F(BrokerTest, DuplicateIdsAreAckedWithTheOriginalLocation) {
  auto broker = Open();
  auto first = Publish(*broker, {Event("t", "a"), Event("t", "b"), Event("t", "a")});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE((*first)[0].duplicate);
  EXPECT_TRUE((*first)[2].duplicate);
  EXPECT_EQ((*first)[2].partition, (*first)[0].partition);
  EXPECT_EQ((*first)[2].offset, (*first)[0].offset);
  auto again = Publish(*broker, {Event("t", "b")});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)[0].duplicate);
  EXPECT_EQ((*again)[0].offset, (*first)[1].offset);
  uint64_t total = 0;
  auto info = broker->GetTopic("t");
  ASSERT_TRUE(info.ok());
  for (const auto& p : info->partitions) total += p.stats.record_count;
  EXPECT_EQ(total, 2u);
}

TEST_F(BrokerTest, ABatchNamingAMissingTopicStoresNothingWithoutAutoCreate) {
  BrokerOptions options;
  options.auto_create_topics = false;
  auto broker = Open(options);
  for (int t = 0; t < 20; ++t) ASSERT_TRUE(broker->CreateTopic(StrCat("have", t), 2).ok());
  std::vector<std::string> topics, ids;  // the events' views point into these
  for (int i = 0; i < 200; ++i) {
    topics.push_back(StrCat("have", i % 20));
    ids.push_back(StrCat("id", i));
  }
  topics[150] = "missing";
  std::vector<EventIn> events;
  for (int i = 0; i < 200; ++i) events.push_back(Event(topics[i], ids[i]));
  auto acks = Publish(*broker, events);
  EXPECT_EQ(acks.status().code(), absl::StatusCode::kNotFound) << acks.status();
  EXPECT_NE(acks.status().message().find("missing"), std::string_view::npos) << acks.status();
  for (int t = 0; t < 20; ++t) {
    auto info = broker->GetTopic(StrCat("have", t));
    ASSERT_TRUE(info.ok()) << info.status();
    for (const auto& p : info->partitions) EXPECT_EQ(p.stats.record_count, 0u) << t;
  }
  // Without it, the same batch goes in.
  events[150] = Event("have0", ids[150]);
  ASSERT_TRUE(Publish(*broker, events).ok());
  uint64_t total = 0;
  for (int t = 0; t < 20; ++t) {
    auto info = broker->GetTopic(StrCat("have", t));
    ASSERT_TRUE(info.ok()) << info.status();
    for (const auto& p : info->partitions) total += p.stats.record_count;
  }
  EXPECT_EQ(total, 200u);
}

TEST_F(BrokerTest, ABatchOverManyTopicsIsAckedWhereEachEventIsReadBack) {
  auto broker = Open();
  // Interleaved topics, keyed and not, with duplicates within the batch and across topics'
  // partitions; then a second batch, published from the first one's callback, repeating ids, and a
  // third from the second's.
  std::vector<std::string> topics, ids, keys;
  for (int i = 0; i < 600; ++i) {
    topics.push_back(StrCat("m", i % 37));
    ids.push_back(StrCat("id", i % 500));  // events 500.. repeat ids of their topic or not
    keys.push_back(i % 3 == 0 ? StrCat("k", i % 11) : "");
  }
  std::vector<EventIn> events;
  for (size_t i = 0; i < topics.size(); ++i) events.push_back(Event(topics[i], ids[i], keys[i]));
  std::promise<absl::StatusOr<std::vector<AckOut>>> second;
  size_t third = 0;
  std::vector<AckOut> first;
  absl::Status first_status;
  broker->Publish(events, [&](absl::Status s, std::vector<AckOut> acks) {
    first_status = s;
    first = std::move(acks);
    // All duplicates of acknowledged records: answered inline, while that publish still
    // holds its working memory, where a third one publishes again.
    broker->Publish(events, [&](absl::Status s2, std::vector<AckOut> acks2) {
      broker->Publish(events, [&third](absl::Status s3, std::vector<AckOut> acks3) {
        third = s3.ok() ? acks3.size() : 0;
      });
      if (s2.ok()) {
        second.set_value(std::move(acks2));
      } else {
        second.set_value(s2);
      }
    });
  });
  auto again = second.get_future().get();
  ASSERT_TRUE(first_status.ok()) << first_status;
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(first.size(), events.size());
  EXPECT_EQ(third, events.size());
  std::map<std::pair<std::string, std::string>, size_t> first_of;  // topic, id -> event
  size_t stored = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    auto [it, inserted] = first_of.try_emplace({topics[i], ids[i]}, i);
    const AckOut& a = first[i];
    EXPECT_EQ(a.duplicate, !inserted) << i;
    if (!inserted) {
      EXPECT_EQ(a.partition, first[it->second].partition) << i;
      EXPECT_EQ(a.offset, first[it->second].offset) << i;
      continue;
    }
    ++stored;
    std::vector<Record> out;
    ASSERT_TRUE(broker->Read(topics[i], a.partition, a.offset, 1, 1 << 20, &out).ok());
    ASSERT_EQ(out.size(), 1u) << i;
    EXPECT_EQ(out[0].id, ids[i]) << i;
    EXPECT_EQ(out[0].offset, a.offset) << i;
    // All of one key's events of a topic go to one partition.
    for (size_t j = 0; j < i; ++j) {
      if (!keys[i].empty() && keys[j] == keys[i] && topics[j] == topics[i]) {
        EXPECT_EQ(first[j].partition, a.partition) << i << " " << j;
      }
    }
  }
  // The second batch is all duplicates, answered with the first one's locations.
  for (size_t i = 0; i < events.size(); ++i) {
    const AckOut& original = first[first_of[std::make_pair(topics[i], ids[i])]];
    EXPECT_TRUE((*again)[i].duplicate) << i;
    EXPECT_EQ((*again)[i].partition, original.partition) << i;
    EXPECT_EQ((*again)[i].offset, original.offset) << i;
  }
  uint64_t total = 0;
  for (int t = 0; t < 37; ++t) {
    auto info = broker->GetTopic(StrCat("m", t));
    ASSERT_TRUE(info.ok());
    for (const auto& p : info->partitions) total += p.stats.record_count;
  }
  EXPECT_EQ(total, stored);
}

TEST_F(BrokerTest, DeclaredFormatsRefuseABatchBeforeAnythingIsStored) {
  {
    auto broker = Open();
    TopicConfig json;
    json.key_format = DataFormat::kString;
    json.data_format = DataFormat::kJson;
    ASSERT_TRUE(broker->CreateTopic("j", 2, json).ok());
    std::vector<EventIn> batch = {Event("t", "a"), Event("j", "b", "k1"), Event("j", "c")};
    batch[1].data = R"({"amt": 18})";
    batch[2].data = R"({"amt": )";
    auto refused = Publish(*broker, batch);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(refused.status().message().substr(0, 35), "event 2: data is not valid JSON: Th");
    batch[2].data = "[]";
    batch[2].key = "\xff";
    refused = Publish(*broker, batch);
    EXPECT_EQ(refused.status().message().substr(0, 30), "event 2: key is not valid UTF-");
    // Nothing of either topic was stored ("t" was created by the first publish, empty).
    for (const char* topic : {"t", "j"}) {
      auto stored = broker->GetTopic(topic);
      ASSERT_TRUE(stored.ok());
      for (const auto& p : stored->partitions) EXPECT_EQ(p.stats.end_offset.value(), 0u);
    }
    batch[2].key = "";  // no key
    ASSERT_TRUE(Publish(*broker, batch).ok());
  }
  // Fixed at creation: the reopened broker still knows and enforces them.
  auto broker = Open();
  auto info = broker->GetTopic("j");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->config.key_format, DataFormat::kString);
  EXPECT_EQ(info->config.data_format, DataFormat::kJson);
  EXPECT_EQ(broker->GetTopic("t")->config.data_format, DataFormat::kBytes);
  EXPECT_EQ(Publish(*broker, {Event("j", "d")}).status().code(),
            absl::StatusCode::kInvalidArgument);  // "payload" is not JSON
}

TEST_F(BrokerTest, DedupeStateSurvivesRestart) {
  AckOut original;
  {
    auto broker = Open();
    auto acks = Publish(*broker, {Event("t", "x", "k")});
    ASSERT_TRUE(acks.ok());
    original = (*acks)[0];
  }
  auto broker = Open();
  auto acks = Publish(*broker, {Event("t", "x", "k")});
  ASSERT_TRUE(acks.ok());
  EXPECT_TRUE((*acks)[0].duplicate);
  EXPECT_EQ((*acks)[0].partition, original.partition);
  EXPECT_EQ((*acks)[0].offset, original.offset);
}

// Publishes `n` events with ids prefix0..prefix<n-1> to "t" in batches; returns their acks.
static std::vector<AckOut> PublishIds(Broker& broker, std::string_view prefix, int n,
                                      absl::StatusOr<std::vector<AckOut>> (*publish)(
                                          Broker&, const std::vector<EventIn>&)) {
  std::vector<AckOut> out;
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(StrCat(prefix, i));
  for (int from = 0; from < n; from += 500) {
    std::vector<EventIn> batch;
    for (int i = from; i < std::min(n, from + 500); ++i) {
      EventIn e;
      e.topic = "t";
      e.id = ids[i];
      e.data = "payload";
      batch.push_back(e);
    }
    auto acks = publish(broker, batch);
    EXPECT_TRUE(acks.ok()) << acks.status();
    if (!acks.ok()) return out;
    out.insert(out.end(), acks->begin(), acks->end());
  }
  return out;
}

TEST_F(BrokerTest, DedupeCheckpointAndTheRecordsAfterItRestoreEveryId) {
  const fs::path checkpoint = dir_ / "log" / "t" / "dedupe.checkpoint";
  const fs::path saved = dir_ / "saved.checkpoint";
  std::vector<AckOut> a, b;
  {
    auto broker = Open();
    ASSERT_TRUE(broker->CreateTopic("t", 4).ok());
    a = PublishIds(*broker, "a", 3000, &Publish);
  }
  // A clean stop checkpoints what changed.
  ASSERT_TRUE(fs::exists(checkpoint));
  fs::copy_file(checkpoint, saved);
  {
    auto broker = Open();
    b = PublishIds(*broker, "b", 2000, &Publish);
  }
  ASSERT_EQ(a.size(), 3000u);
  ASSERT_EQ(b.size(), 2000u);
  // What the last checkpoint holds: every id, each partition covered to its end.
  std::map<std::string, DedupeIndex::Location> written;
  auto read = ReadDedupeCheckpoint(
      fault_, checkpoint.string(), [](const DedupeCheckpoint&) { return absl::OkStatus(); },
      [&](const DedupeIndex::Entry& e) {
        written[StrCat(e.id.low, "/", e.id.high)] = e.location;
      });
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->entries, 5000u);
  ASSERT_EQ(read->covered.size(), 4u);
  uint64_t covered = 0;
  for (uint64_t c : read->covered) covered += c;
  EXPECT_EQ(covered, 5000u);
  const IdFingerprint b7 = IdFingerprint::Of("b7");
  ASSERT_TRUE(written.contains(StrCat(b7.low, "/", b7.high)));
  EXPECT_EQ(written[StrCat(b7.low, "/", b7.high)].offset, b[7].offset.value());

  // As after a crash past the first checkpoint: the b ids are only in the log after it.
  fs::copy_file(saved, checkpoint, fs::copy_options::overwrite_existing);
  auto broker = Open();
  std::vector<AckOut> again = PublishIds(*broker, "a", 3000, &Publish);
  std::vector<AckOut> again_b = PublishIds(*broker, "b", 2000, &Publish);
  ASSERT_EQ(again.size(), 3000u);
  ASSERT_EQ(again_b.size(), 2000u);
  for (size_t i = 0; i < again.size(); ++i) {
    ASSERT_TRUE(again[i].duplicate) << "a" << i;
    ASSERT_EQ(again[i].partition, a[i].partition);
    ASSERT_EQ(again[i].offset, a[i].offset);
  }
  for (size_t i = 0; i < again_b.size(); ++i) {
    ASSERT_TRUE(again_b[i].duplicate) << "b" << i;
    ASSERT_EQ(again_b[i].partition, b[i].partition);
    ASSERT_EQ(again_b[i].offset, b[i].offset);
  }
  auto fresh = Publish(*broker, {Event("t", "c")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE((*fresh)[0].duplicate);
}

TEST_F(BrokerTest, ACheckpointPastThePartitionsOrDamagedIsNotUsed) {
  std::vector<AckOut> a;
  int64_t created = 0;
  const fs::path checkpoint = dir_ / "log" / "t" / "dedupe.checkpoint";
  {
    auto broker = Open();
    ASSERT_TRUE(broker->CreateTopic("t", 2).ok());
    a = PublishIds(*broker, "a", 100, &Publish);
  }
  std::vector<uint64_t> ends;
  {
    auto read = ReadDedupeCheckpoint(
        fault_, checkpoint.string(), [](const DedupeCheckpoint&) { return absl::OkStatus(); },
        [](const DedupeIndex::Entry&) {});
    ASSERT_TRUE(read.ok()) << read.status();
    created = read->topic_created_us;
    ends = read->covered;
  }
  ASSERT_EQ(ends.size(), 2u);
  ASSERT_GT(ends[0], 5u);
  // A start takes what a valid checkpoint says: "phantom", never in the log, is known.
  // A checkpoint of one id, written as the server would.
  auto write_one = [&](std::string_view id, uint64_t offset, std::vector<uint64_t> covered,
                       uint64_t max_ids = BrokerOptions{}.dedupe_max_ids) {
    DedupeIndex index(600'000'000, 1000);
    index.Insert(IdFingerprint::Of(id), {0, offset}, NowMicros());
    DedupeIndex::Snapshot snapshot;
    index.Capture(&snapshot);
    DedupeCheckpoint header;
    header.topic_created_us = created;
    header.written_us = NowMicros();
    header.covered = std::move(covered);
    header.window_us = BrokerOptions{}.dedupe_window_ms * 1000;
    header.max_ids = max_ids;
    return WriteDedupeCheckpoint(fault_, checkpoint.string(), header, snapshot);
  };
  {
    ASSERT_TRUE(write_one("phantom", 5, ends).ok());
    auto broker = Open();
    auto phantom = Publish(*broker, {Event("t", "phantom")});
    ASSERT_TRUE(phantom.ok()) << phantom.status();
    EXPECT_TRUE((*phantom)[0].duplicate);
    EXPECT_EQ((*phantom)[0].offset.value(), 5u);
  }
  // A checkpoint that names "ghost" at an offset partition 0 does not reach (records a crash
  // took under --fsync interval): trusting it would drop "ghost" as a duplicate.
  // One whose entry names a record past what it covers is not used at all, nor is one taken
  // under a smaller cap than the server's now (it may lack ids the server keeps).
  {
    ASSERT_TRUE(write_one("beyond", ends[0], ends).ok());
    auto broker = Open();
    auto beyond = Publish(*broker, {Event("t", "beyond")});
    ASSERT_TRUE(beyond.ok()) << beyond.status();
    EXPECT_FALSE((*beyond)[0].duplicate);
  }
  {
    ASSERT_TRUE(write_one("capped", 5, ends, /*max_ids=*/10).ok());
    auto broker = Open();
    auto capped = Publish(*broker, {Event("t", "capped")});
    ASSERT_TRUE(capped.ok()) << capped.status();
    EXPECT_FALSE((*capped)[0].duplicate);
  }
  ASSERT_TRUE(write_one("ghost", 500, {501, 0}).ok());
  {
    auto broker = Open();
    auto ghost = Publish(*broker, {Event("t", "ghost")});
    ASSERT_TRUE(ghost.ok()) << ghost.status();
    EXPECT_FALSE((*ghost)[0].duplicate);
    auto again = PublishIds(*broker, "a", 100, &Publish);
    for (size_t i = 0; i < again.size(); ++i) {
      ASSERT_TRUE(again[i].duplicate) << "a" << i << ": rebuilt from the log";
      ASSERT_EQ(again[i].offset, a[i].offset);
    }
  }
  // A damaged one (a torn write) is not used either.
  {
    std::fstream f(checkpoint, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(60);
    f.put('\x5a');
  }
  auto broker = Open();
  auto again = PublishIds(*broker, "a", 100, &Publish);
  for (size_t i = 0; i < again.size(); ++i) ASSERT_TRUE(again[i].duplicate) << "a" << i;
  auto ghost = Publish(*broker, {Event("t", "ghost")});
  ASSERT_TRUE(ghost.ok());
  EXPECT_TRUE((*ghost)[0].duplicate) << "stored once, above";
}

TEST_F(BrokerTest, ServerAssignsUniqueIdsAndKeysChoosePartitions) {
  auto broker = Open();
  std::vector<EventIn> events;
  for (int i = 0; i < 50; ++i) events.push_back(Event("t", "", "same-key"));
  auto acks = Publish(*broker, events);
  ASSERT_TRUE(acks.ok());
  std::set<std::string> ids;
  for (size_t i = 0; i < acks->size(); ++i) {
    EXPECT_FALSE((*acks)[i].assigned_id.empty());
    ids.insert((*acks)[i].assigned_id);
    EXPECT_EQ((*acks)[i].partition, (*acks)[0].partition);
    EXPECT_EQ((*acks)[i].offset.value(), i);
  }
  EXPECT_EQ(ids.size(), 50u);
}

TEST_F(BrokerTest, BadInputIsRefusedBeforeAnythingIsStored) {
  BrokerOptions options;
  options.max_event_bytes = 100;
  options.max_batch_events = 3;
  auto broker = Open(options);
  EXPECT_EQ(Publish(*broker, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Publish(*broker, {Event("ok", "1"), Event("../x", "2")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string big(200, 'x');
  EventIn e = Event("ok", "1");
  e.data = big;
  EXPECT_EQ(Publish(*broker, {Event("ok", "0"), e}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Publish(*broker, {Event("ok", "1"), Event("ok", "2"), Event("ok", "3"),
                              Event("ok", "4")})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(broker->GetTopic("ok").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker->CreateTopic("t", 5000).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, FullDiskIsResourceExhaustedAndRecovers) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 1).ok());
  ASSERT_TRUE(Publish(*broker, {Event("t", "a")}).ok());
  fault_.SetDiskFull(true);
  std::string big(5 << 20, 'x');
  EventIn e = Event("t", "b");
  e.data = big;
  auto full = Publish(*broker, {e});
  EXPECT_EQ(full.status().code(), absl::StatusCode::kInvalidArgument);  // over 1 MiB
  std::vector<std::string> payloads(8, std::string(900 << 10, 'y'));
  std::vector<EventIn> many;
  for (int i = 0; i < 8; ++i) {
    EventIn m = Event("t", "");
    m.data = payloads[i];
    many.push_back(m);
  }
  EXPECT_EQ(Publish(*broker, many).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(broker->GetTopic("t")->partitions[0].stats.end_offset.value(), 1u);
  fault_.SetDiskFull(false);
  auto ok = Publish(*broker, many);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(broker->GetTopic("t")->partitions[0].stats.end_offset.value(), 9u);
}

TEST_F(BrokerTest, DeleteRemovesDataAndNameCanBeReused) {
  auto broker = Open();
  ASSERT_TRUE(Publish(*broker, {Event("t", "a")}).ok());
  ASSERT_TRUE(fs::exists(dir_ / "log" / "t"));
  ASSERT_TRUE(broker->DeleteTopic("t").ok());
  EXPECT_FALSE(fs::exists(dir_ / "log" / "t"));
  EXPECT_EQ(broker->DeleteTopic("t").code(), absl::StatusCode::kNotFound);
  auto acks = Publish(*broker, {Event("t", "a")});
  ASSERT_TRUE(acks.ok());
  EXPECT_FALSE((*acks)[0].duplicate);
  EXPECT_EQ((*acks)[0].offset.value(), 0u);
}

// Descriptors this process has open.
size_t OpenDescriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST_F(BrokerTest, ManyPartitionsWithFewOpenFiles) {
  // 400 partitions, 16 segment files open at most: every event is stored and read back, across
  // a restart, and a deleted topic's name reused takes nothing of the old one.
  BrokerOptions options;
  options.max_open_files = 16;
  constexpr int kTopics = 100;
  const size_t before = OpenDescriptors();
  auto broker = Open(options);
  std::vector<std::string> topics;  // EventIn borrows its strings
  for (int t = 0; t < kTopics; ++t) topics.push_back(StrCat("t", t));
  std::map<std::string, std::vector<AckOut>> acked;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::string> ids;
    std::vector<EventIn> events;
    ids.reserve(kTopics * 8);
    for (int t = 0; t < kTopics; ++t) {
      for (int i = 0; i < 8; ++i) ids.push_back(StrCat("r", round, "-", t, "-", i));
    }
    for (int t = 0; t < kTopics; ++t) {
      for (int i = 0; i < 8; ++i) events.push_back(Event(topics[t], ids[t * 8 + i]));
    }
    auto acks = Publish(*broker, events);
    ASSERT_TRUE(acks.ok()) << acks.status();
    for (size_t i = 0; i < events.size(); ++i) {
      acked[std::string(events[i].topic)].push_back((*acks)[i]);
    }
  }
  // Besides the segment files: the catalog, the threads' and the broker's own.
  EXPECT_LE(OpenDescriptors(), before + 16 + 24);
  auto read_all = [&](Broker& b) {
    size_t found = 0;
    for (const auto& [topic, acks] : acked) {
      for (const AckOut& a : acks) {
        std::vector<Record> out;
        absl::Status s = b.Read(topic, a.partition, a.offset, 1, 1 << 20, &out);
        ASSERT_TRUE(s.ok()) << s;
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0].offset, a.offset);
        ++found;
      }
    }
    EXPECT_EQ(found, acked.size() * 24);
  };
  read_all(*broker);
  EXPECT_LE(OpenDescriptors(), before + 16 + 24);
  broker.reset();
  broker = Open(options);
  read_all(*broker);
  EXPECT_LE(OpenDescriptors(), before + 16 + 24);
  absl::Status deleted = broker->DeleteTopic("t7");
  ASSERT_TRUE(deleted.ok()) << deleted;
  auto fresh = Publish(*broker, {Event("t7", "new")});
  ASSERT_TRUE(fresh.ok());
  std::vector<Record> out;
  ASSERT_TRUE(broker->Read("t7", (*fresh)[0].partition, Offset(0), 100, 1 << 20, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, "new");
  acked.erase("t7");
  read_all(*broker);
  EXPECT_EQ(acked.size(), size_t{kTopics} - 1);
}

TEST_F(BrokerTest, AggregationDefinitionsLiveInTheCatalogAcrossRestarts) {
  {
    auto broker = Open();
    ASSERT_NE(broker, nullptr);
    storage::AggregationStore& store = broker->aggregation_store();
    ASSERT_TRUE(store.Create({"per-user", R"({"input":"t"})", "", 5, 5}).ok());
    EXPECT_EQ(store.Create({"per-user", "{}", "", 6, 6}).code(),
              absl::StatusCode::kAlreadyExists);
  }
  auto broker = Open();
  ASSERT_NE(broker, nullptr);
  auto rows = broker->aggregation_store().List();
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].name, "per-user");
  EXPECT_EQ((*rows)[0].spec, R"({"input":"t"})");
  EXPECT_TRUE(broker->component_store().List()->empty());
}

TEST_F(BrokerTest, SecondBrokerOnTheSameDirectoryIsRefused) {
  auto broker = Open();
  BrokerOptions options;
  options.data_dir = dir_.string();
  prometheus::Registry registry;
  auto second = Broker::Open(options, fault_, registry);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(second.status().message()).find("is in use by another nodata process"),
            std::string::npos)
      << second.status();
  broker.reset();
  EXPECT_NE(Open(), nullptr);
}

TEST_F(BrokerTest, DeleteOfTheLongestNameIsAllOrNothing) {
  const std::string name(kMaxTopicNameLength, 'n');
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic(name, 2).ok());
  ASSERT_TRUE(Publish(*broker, {Event(name, "a")}).ok());
  std::promise<absl::Status> flushed;
  broker->FlushTopic(name,
                     [&](absl::StatusOr<TopicInfo> info) { flushed.set_value(info.status()); });
  ASSERT_TRUE(flushed.get_future().get().ok());
  ASSERT_TRUE(fs::exists(dir_ / "topics" / name));
  // The first move (hot tier), then the second (cold tier) fail: nothing is deleted.
  for (int after : {0, 1}) {
    fault_.FailRenameAfter(after);
    absl::Status s = broker->DeleteTopic(name);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find("nothing was deleted"), std::string::npos) << s;
    ASSERT_TRUE(broker->GetTopic(name).ok());
    EXPECT_TRUE(fs::exists(dir_ / "log" / name));
    EXPECT_TRUE(fs::exists(dir_ / "topics" / name));
    EXPECT_TRUE(fs::is_empty(dir_ / "trash"));
    auto acks = Publish(*broker, {Event(name, StrCat("after-", after))});
    ASSERT_TRUE(acks.ok()) << acks.status();
    EXPECT_FALSE((*acks)[0].duplicate);
  }
  fault_.FailRenameAfter(-1);
  ASSERT_TRUE(broker->DeleteTopic(name).ok());
  EXPECT_EQ(broker->GetTopic(name).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ / "log" / name));
  EXPECT_FALSE(fs::exists(dir_ / "topics" / name));
  EXPECT_TRUE(fs::is_empty(dir_ / "trash"));
}

TEST_F(BrokerTest, ACreatedTopicHasNoColdDirectoryUntilItsFirstParquetFile) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 2).ok());
  EXPECT_FALSE(fs::exists(dir_ / "topics" / "t"));
  // A delete and a restart of a topic without one.
  ASSERT_TRUE(broker->CreateTopic("gone", 2).ok());
  ASSERT_TRUE(broker->DeleteTopic("gone").ok());
  broker.reset();
  broker = Open();
  auto first = Publish(*broker, {Event("t", "a")});
  ASSERT_TRUE(first.ok());
  std::promise<absl::Status> flushed;
  broker->FlushTopic("t", [&](absl::StatusOr<TopicInfo> info) { flushed.set_value(info.status()); });
  ASSERT_TRUE(flushed.get_future().get().ok());
  const auto partition = StrCat("partition=", (*first)[0].partition.value());
  EXPECT_TRUE(fs::exists(dir_ / "topics" / "t" / partition));
  broker.reset();
  broker = Open();
  std::vector<Record> out;
  ASSERT_TRUE(broker->Read("t", (*first)[0].partition, Offset(0), 10, 1 << 20, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, "a");
  auto info = broker->GetTopic("t");
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->partitions[(*first)[0].partition.value()].stats.cold.file_count, 0u);
}

TEST_F(BrokerTest, ATopicsLogDirectoriesComeWithItsFirstRecords) {
  auto partition_dirs = [&](const std::string& topic) {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "log" / topic)) n += e.is_directory();
    return n;
  };
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 4).ok());
  EXPECT_FALSE(fs::exists(dir_ / "log" / "t")) << "a created topic is its catalog entry only";
  auto first = Publish(*broker, {Event("t", "a")});
  ASSERT_TRUE(first.ok());
  const std::string p = std::to_string((*first)[0].partition.value());
  EXPECT_EQ(partition_dirs("t"), 1u);
  EXPECT_TRUE(fs::exists(dir_ / "log" / "t" / p));
  // Partitions added later start the same way.
  ASSERT_TRUE(broker->AddPartitions("t", 6).ok());
  EXPECT_EQ(partition_dirs("t"), 1u);
  // A topic never written lives through a restart, and deletes like any other.
  ASSERT_TRUE(broker->CreateTopic("empty", 2).ok());
  ASSERT_TRUE(broker->CreateTopic("gone", 2).ok());
  broker.reset();
  broker = Open();
  EXPECT_FALSE(fs::exists(dir_ / "log" / "empty"));
  ASSERT_TRUE(broker->GetTopic("empty").ok());
  ASSERT_TRUE(broker->DeleteTopic("gone").ok());
  std::vector<Record> out;
  ASSERT_TRUE(broker->Read("t", (*first)[0].partition, Offset(0), 10, 1 << 20, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, "a");
  ASSERT_TRUE(broker->DeleteTopic("t").ok());
  EXPECT_FALSE(fs::exists(dir_ / "log" / "t"));
  broker.reset();
  broker = Open();
  EXPECT_EQ(broker->GetTopic("t").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker->GetTopic("gone").status().code(), absl::StatusCode::kNotFound);
  auto empty = broker->GetTopic("empty");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->partition_count, 2u);
  ASSERT_TRUE(Publish(*broker, {Event("empty", "x")}).ok());
}

TEST_F(BrokerTest, DeleteWhoseFilesCannotBeMovedBackTakesTheTopicAwayNow) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 2).ok());
  ASSERT_TRUE(Publish(*broker, {Event("t", "a")}).ok());
  std::promise<absl::Status> flushed;
  broker->FlushTopic("t", [&](absl::StatusOr<TopicInfo> info) { flushed.set_value(info.status()); });
  ASSERT_TRUE(flushed.get_future().get().ok());
  // The hot tier moves into the trash, the cold tier's move fails, and so does the move back.
  fault_.FailRenamesFrom(1);
  absl::Status s = broker->DeleteTopic("t");
  fault_.FailRenamesFrom(-1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("the topic is deleted now"), std::string::npos) << s;
  // Gone now, as the next start decides: nothing is acknowledged into files in the trash.
  EXPECT_EQ(broker->GetTopic("t").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(Publish(*broker, {Event("t", "b")}).ok());
  broker.reset();
  broker = Open();
  EXPECT_EQ(broker->GetTopic("t").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ / "trash"));
  auto acks = Publish(*broker, {Event("t", "a")});
  ASSERT_TRUE(acks.ok()) << acks.status();
  EXPECT_FALSE((*acks)[0].duplicate);
}

TEST_F(BrokerTest, ExistingNamesStartingWithADashStayUsable) {
  {
    // Stored before new names were refused a leading '-'.
    auto catalog = storage::Catalog::Open((dir_ / "meta.db").string());
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    ASSERT_TRUE((*catalog)->topics().Create(storage::TopicMeta{"-tmp", 1, 1}).ok());
    ASSERT_TRUE((*catalog)->offsets().Commit("-old", "-tmp", PartitionOffsets({{0, 0}})).ok());
  }
  auto broker = Open();
  ASSERT_TRUE(broker->GetTopic("-tmp").ok());
  auto acks = Publish(*broker, {Event("-tmp", "a")});
  ASSERT_TRUE(acks.ok()) << acks.status();
  std::vector<Record> out;
  ASSERT_TRUE(broker->Read("-tmp", PartitionId(0), Offset(0), 10, 1 << 20, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(broker->CommitOffsets("-old", "-tmp", PartitionOffsets({{0, 1}})).ok());
  EXPECT_EQ(broker->CommitOffsets("-new", "-tmp", PartitionOffsets({{0, 1}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(broker->DeleteGroup("-old", "-tmp").ok());
  // New names may not start with '-'.
  EXPECT_EQ(broker->CreateTopic("-new", 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Publish(*broker, {Event("-new", "a")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(broker->DeleteTopic("-tmp").ok());
  EXPECT_EQ(broker->GetTopic("-tmp").status().code(), absl::StatusCode::kNotFound);
  broker.reset();
  broker = Open();
  EXPECT_EQ(broker->GetTopic("-tmp").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, GroupWithMembersIsNeitherDeletedNorReset) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 1).ok());
  ASSERT_TRUE(broker->CommitOffsets("g", "t", PartitionOffsets({{0, 0}})).ok());
  auto member = broker->groups().Join("g", "t", "c", "peer", 1, [](const Assignment&) {});
  EXPECT_EQ(broker->DeleteGroup("g", "t").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(broker->ResetOffsets("g", "t", StartSpec{}, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  broker->groups().Leave(member);
  EXPECT_TRUE(broker->ResetOffsets("g", "t", StartSpec{}, {}).ok());
  EXPECT_TRUE(broker->DeleteGroup("g", "t").ok());
  EXPECT_EQ(broker->DeleteGroup("g", "t").code(), absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, DeleteWaitingForACompactionDoesNotStallPublishes) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 1).ok());
  ASSERT_TRUE(Publish(*broker, {Event("t", "a")}).ok());
  // A compaction that takes its time: its Parquet file cannot be opened until released.
  fault_.HoldOpens(".parquet.tmp");
  std::promise<absl::Status> flushed;
  broker->FlushTopic("t", [&](absl::StatusOr<TopicInfo> info) { flushed.set_value(info.status()); });
  while (fault_.held_opens() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The delete waits for the compaction; publishes meanwhile do not wait for the delete.
  auto deleted = std::async(std::launch::async, [&] { return broker->DeleteTopic("t"); });
  ASSERT_EQ(deleted.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  std::promise<absl::Status> published;
  std::vector<EventIn> events{Event("t", "b")};
  broker->Publish(events, [&](absl::Status s, std::vector<AckOut>) { published.set_value(s); });
  auto done = published.get_future();
  const bool prompt = done.wait_for(std::chrono::seconds(2)) == std::future_status::ready;
  fault_.ReleaseOpens();
  EXPECT_TRUE(prompt) << "a publish waited for the compaction the delete waits for";
  EXPECT_TRUE(deleted.get().ok());
  EXPECT_TRUE(done.get().ok());
  flushed.get_future().get().IgnoreError();  // either outcome: the topic went away
  EXPECT_EQ(broker->GetTopic("t").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, DeleteCutShortAfterMovingTheFilesCompletesAtStart) {
  {
    auto broker = Open();
    ASSERT_TRUE(Publish(*broker, {Event("gone", "a"), Event("kept", "b")}).ok());
  }
  // What a crash between the move into the trash and the catalog delete leaves.
  fs::create_directories(dir_ / "trash" / "1-1");
  fs::rename(dir_ / "log" / "gone", dir_ / "trash" / "1-1" / "log");
  { std::ofstream(dir_ / "trash" / "1-1" / "topic") << "gone"; }
  auto broker = Open();
  EXPECT_EQ(broker->GetTopic("gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(broker->GetTopic("kept").ok());
  EXPECT_FALSE(fs::exists(dir_ / "trash"));
}

TEST_F(BrokerTest, ADeleteCutShortCompletesOnlyForTheTopicItDeleted) {
  int64_t old_created_us = 0;
  int64_t newer_created_us = 0;
  {
    auto broker = Open();
    // Never written: no files, only catalog entries.
    auto old_info = broker->CreateTopic("old", 2);
    auto newer_info = broker->CreateTopic("newer", 2);
    ASSERT_TRUE(old_info.ok() && newer_info.ok());
    old_created_us = old_info->created_at_us;
    newer_created_us = newer_info->created_at_us;
  }
  // Trash entries a crash left after the move and before the catalog delete: one for "old" as
  // it is in the catalog, one for an earlier topic named "newer" that the catalog's replaced.
  fs::create_directories(dir_ / "trash" / "1-1" / "log");
  fs::create_directories(dir_ / "trash" / "1-2" / "log");
  { std::ofstream(dir_ / "trash" / "1-1" / "topic") << "old\n" << old_created_us; }
  { std::ofstream(dir_ / "trash" / "1-2" / "topic") << "newer\n" << newer_created_us - 1; }
  auto broker = Open();
  EXPECT_EQ(broker->GetTopic("old").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(broker->GetTopic("newer").ok()) << "a later topic of the name stays";
  EXPECT_FALSE(fs::exists(dir_ / "trash"));
}

TEST_F(BrokerTest, AddPartitionsGrowsDurablyAndRoutesNewKeysByTheNewCount) {
  std::vector<AckOut> before;
  {
    auto broker = Open();
    ASSERT_TRUE(broker->CreateTopic("t", 2).ok());
    // Events borrow their strings: these outlive every Publish.
    std::vector<std::string> keys, ids_a, ids_b;
    for (int i = 0; i < 40; ++i) {
      keys.push_back(StrCat("k", i));
      ids_a.push_back(StrCat("a", i));
      ids_b.push_back(StrCat("b", i));
    }
    std::vector<EventIn> events;
    for (int i = 0; i < 40; ++i) events.push_back(Event("t", ids_a[i], keys[i]));
    auto acks = Publish(*broker, events);
    ASSERT_TRUE(acks.ok());
    before = *acks;
    EXPECT_EQ(broker->AddPartitions("t", 1).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(broker->AddPartitions("t", 5000).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(broker->AddPartitions("missing", 5).status().code(), absl::StatusCode::kNotFound);
    auto grown = broker->AddPartitions("t", 5);
    ASSERT_TRUE(grown.ok()) << grown.status();
    EXPECT_EQ(grown->partition_count, 5u);
    events.clear();
    for (int i = 0; i < 40; ++i) events.push_back(Event("t", ids_b[i], keys[i]));
    acks = Publish(*broker, events);
    ASSERT_TRUE(acks.ok());
    for (int i = 0; i < 40; ++i) {
      EXPECT_EQ((*acks)[i].partition, PartitionFor(keys[i], "", 5)) << keys[i];
    }
  }
  auto broker = Open();
  auto info = broker->GetTopic("t");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->partition_count, 5u);
  uint64_t total = 0;
  for (const auto& p : info->partitions) total += p.stats.record_count;
  EXPECT_EQ(total, 80u);
  // Records published before the grow stay where they were acknowledged.
  for (size_t i = 0; i < before.size(); ++i) {
    std::vector<Record> out;
    ASSERT_TRUE(broker->Read("t", before[i].partition, before[i].offset, 1, 1 << 20, &out).ok());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].id, StrCat("a", i));
  }
}

TEST_F(BrokerTest, EveryReadAndCommitChecksThePartitionTheSameWay) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 2).ok());
  const std::string expected = "topic \"t\" has 2 partitions; 2 is out of range";
  EXPECT_TRUE(CheckPartition("t", 2, PartitionId(1)).ok());
  EXPECT_EQ(CheckPartition("t", 2, PartitionId(2)).message(), expected);
  std::vector<Record> out;
  absl::Status read = broker->Read("t", PartitionId(2), Offset(0), 10, 1 << 20, &out);
  absl::Status scan =
      broker->Scan("t", PartitionId(2), Offset(0), 10, 1 << 20, [](const DecodedRecord&) {});
  absl::Status start =
      broker->ResolveStart("t", PartitionId(2), StartSpec{}, std::nullopt).status();
  absl::Status commit = broker->CommitOffsets("g", "t", PartitionOffsets({{2, 0}}));
  for (const absl::Status& s : {read, scan, start, commit}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(s.message(), expected);
  }
  // A reader waiting on a partition that does not exist is called at once; its read says why.
  bool called = false;
  broker->WhenReadable("t", PartitionId(2), Offset(0), {}, [&] { called = true; });
  EXPECT_TRUE(called);
}

// The value of the gauge `name` with exactly `labels`, or nullopt when it is not exported.
std::optional<double> Gauge(prometheus::Registry& registry, const std::string& name,
                            const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have == labels) return m.gauge.value;
    }
  }
  return std::nullopt;
}

TEST_F(BrokerTest, ADamagedPartitionFailsItsOwnTopicNotTheStart) {
  {
    auto broker = Open();
    ASSERT_TRUE(broker->CreateTopic("good", 1).ok());
    ASSERT_TRUE(broker->CreateTopic("bad", 1).ok());
    ASSERT_TRUE(Publish(*broker, {Event("good", "g1"), Event("bad", "b1"), Event("bad", "b2"),
                                  Event("bad", "b3")})
                    .ok());
  }
  // The first of three records damaged, the two after it intact: not a torn tail, so the
  // partition cannot be opened (DATA_LOSS) rather than cut.
  const fs::path segment = dir_ / "log" / "bad" / "0" / "00000000000000000000.log";
  ASSERT_TRUE(fs::exists(segment));
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(32 + 12);
    f.put('\xff');
  }
  auto broker = Open();  // the start does not open partitions, so it does not fail
  ASSERT_NE(broker, nullptr);
  auto bad = broker->GetTopic("bad");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  auto published = Publish(*broker, {Event("bad", "b4")});
  EXPECT_EQ(published.status().code(), absl::StatusCode::kDataLoss) << published.status();
  std::vector<Record> out;
  EXPECT_EQ(broker->Read("bad", PartitionId(0), Offset(0), 10, 1 << 20, &out).code(),
            absl::StatusCode::kDataLoss);

  // The other topic serves as before.
  auto acks = Publish(*broker, {Event("good", "g2"), Event("good", "g1")});
  ASSERT_TRUE(acks.ok()) << acks.status();
  EXPECT_TRUE((*acks)[1].duplicate);
  out.clear();
  ASSERT_TRUE(broker->Read("good", PartitionId(0), Offset(0), 10, 1 << 20, &out).ok());
  EXPECT_EQ(out.size(), 2u);

  // Listed without partitions; and it can be deleted, and its name used again.
  std::vector<TopicInfo> list = broker->ListTopics();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "bad");
  EXPECT_EQ(list[0].partition_count, 1u);
  EXPECT_TRUE(list[0].partitions.empty());
  EXPECT_EQ(list[1].partitions.size(), 1u);
  ASSERT_TRUE(broker->DeleteTopic("bad").ok());
  EXPECT_EQ(broker->GetTopic("bad").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(broker->CreateTopic("bad", 1).ok());
  ASSERT_TRUE(Publish(*broker, {Event("bad", "b1")}).ok());
  auto again = broker->GetTopic("bad");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->partitions[0].stats.end_offset, Offset(1));
}

TEST_F(BrokerTest, GaugesAreSetByTheScrapeNotByQueries) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 1).ok());
  ASSERT_TRUE(Publish(*broker, {Event("t", "a"), Event("t", "b"), Event("t", "c")}).ok());
  const std::map<std::string, std::string> part{{"topic", "t"}, {"partition", "0"}};
  EXPECT_EQ(Gauge(*registry_, "nodata_partition_end_offset", part), 0.0);  // as created
  ASSERT_TRUE(broker->GetTopic("t").ok());
  broker->ListTopics();
  EXPECT_EQ(Gauge(*registry_, "nodata_partition_end_offset", part), 0.0);
  ASSERT_TRUE(broker->CommitOffsets("g", "t", PartitionOffsets({{0, 1}})).ok());
  ASSERT_TRUE(broker->DescribeGroup("g", "t").ok());
  ASSERT_TRUE(broker->ListGroups("").ok());
  const std::map<std::string, std::string> lag{{"group", "g"}, {"topic", "t"}, {"partition", "0"}};
  EXPECT_EQ(Gauge(*registry_, "nodata_consumer_lag", lag), std::nullopt);

  broker->RefreshMetrics();
  EXPECT_EQ(Gauge(*registry_, "nodata_partition_end_offset", part), 3.0);
  EXPECT_GT(*Gauge(*registry_, "nodata_disk_bytes", part), 0.0);
  EXPECT_EQ(Gauge(*registry_, "nodata_parquet_files", part), 0.0);
  EXPECT_EQ(Gauge(*registry_, "nodata_consumer_lag", lag), 2.0);

  // A deleted group's and topic's series go with them.
  ASSERT_TRUE(broker->DeleteGroup("g", "t").ok());
  EXPECT_EQ(Gauge(*registry_, "nodata_consumer_lag", lag), std::nullopt);
  ASSERT_TRUE(broker->DeleteTopic("t").ok());
  broker->RefreshMetrics();
  EXPECT_EQ(Gauge(*registry_, "nodata_partition_end_offset", part), std::nullopt);
}

TEST_F(BrokerTest, CommitsAreFencedByGenerationAndOwnerAndLagFollowsThem) {
  auto broker = Open();
  ASSERT_TRUE(broker->CreateTopic("t", 2).ok());
  std::vector<EventIn> events;
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(StrCat("id-", i));
  for (const std::string& id : ids) events.push_back(Event("t", id));
  auto acks = Publish(*broker, events);
  ASSERT_TRUE(acks.ok()) << acks.status();
  std::map<PartitionId, Offset> ends;
  for (const AckOut& a : *acks) ends[a.partition] = std::max(ends[a.partition], a.offset.Next());

  auto a = broker->groups().Join("g", "t", "a", "peer", 2, [](const Assignment&) {});
  const uint64_t gen_a = broker->groups().Describe("g", "t").generation;
  auto b = broker->groups().Join("g", "t", "b", "peer", 2, [](const Assignment&) {});
  const GroupInfo live = broker->groups().Describe("g", "t");
  ASSERT_GT(live.generation, gen_a);
  const PartitionId of_b(live.owner.at(PartitionId(0)) == "b" ? 0 : 1);
  const std::vector<std::pair<PartitionId, Offset>> one{{of_b, Offset(1)}};
  // From before the rebalance, and for a partition another member owns: refused.
  EXPECT_EQ(broker->CommitOffsets("g", "t", one, gen_a, "a").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(broker->CommitOffsets("g", "t", one, live.generation, "a").code(),
            absl::StatusCode::kFailedPrecondition);
  // The owner in the current generation commits; past the end is out of range.
  EXPECT_TRUE(broker->CommitOffsets("g", "t", one, live.generation, "b").ok());
  EXPECT_EQ(broker->CommitOffsets("g", "t", {{of_b, ends[of_b].Next()}}, live.generation, "b")
                .code(),
            absl::StatusCode::kOutOfRange);

  auto d = broker->DescribeGroup("g", "t");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->partitions.size(), 2u);
  const GroupPartitionInfo& committed = d->partitions[of_b.value()];
  const PartitionId other(1 - of_b.value());
  EXPECT_EQ(committed.committed, Offset(1));
  EXPECT_EQ(committed.lag, ends[of_b].value() - 1);
  EXPECT_EQ(committed.owner, "b");
  // Without a committed offset, the lag counts from the partition's start.
  EXPECT_EQ(d->partitions[other.value()].lag, ends[other].value());
  auto list = broker->ListGroups("t");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].members, 2u);
  EXPECT_EQ((*list)[0].lag, ends[PartitionId(0)].value() + ends[PartitionId(1)].value() - 1);
  broker->groups().Leave(a);
  broker->groups().Leave(b);
}

}  // namespace
}  // namespace nodata::broker
