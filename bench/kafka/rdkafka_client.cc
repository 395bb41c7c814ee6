// A librdkafka client of nodata's Kafka listener, for its tests and benchmark: librdkafka is the
// C library under kcat, confluent-kafka and most Kafka clients outside the JVM.
//
//   rdkafka_client produce BROKER TOPIC COUNT PREFIX
//       An idempotent producer (enable.idempotence, acks=all): COUNT records valued
//       PREFIX-<i> (keys k<i%64>). Prints "ack VALUE PARTITION OFFSET" per acknowledged record,
//       "fail VALUE ERROR" per failed one; exits 0 when every record was acknowledged.
//   rdkafka_client consume BROKER TOPIC GROUP COUNT IDLE_MS
//       A consumer in GROUP (from the earliest offset, commits synchronously after each
//       record). Prints "msg VALUE PARTITION OFFSET"; exits 0 once COUNT distinct values were
//       seen, 1 after IDLE_MS without a record.
//   rdkafka_client bench-produce BROKER TOPIC COUNT BYTES
//       COUNT records of BYTES bytes as fast as acks=all allows, linger and batch as a tuned
//       producer sets them; prints "records SECONDS".
//   rdkafka_client bench-consume BROKER TOPIC COUNT
//       Reads COUNT records from the beginning of every partition (no group); prints
//       "records SECONDS".
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace {

void Set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "config %s=%s: %s\n", name, value.c_str(), err);
    std::exit(2);
  }
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

struct ProduceState {
  long acked = 0;
  long failed = 0;
  bool print = true;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<ProduceState*>(opaque);
  if (m->err) {
    ++st->failed;
    if (st->print) {
      std::printf("fail %.*s %s\n", static_cast<int>(m->len), static_cast<const char*>(m->payload),
                  rd_kafka_err2str(m->err));
    }
    return;
  }
  ++st->acked;
  if (st->print) {
    std::printf("ack %.*s %d %lld\n", static_cast<int>(m->len),
                static_cast<const char*>(m->payload), m->partition,
                static_cast<long long>(m->offset));
  }
}

rd_kafka_t* NewProducer(const std::string& broker, ProduceState* st, bool bench) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Set(conf, "bootstrap.servers", broker);
  Set(conf, "enable.idempotence", "true");
  Set(conf, "acks", "all");
  Set(conf, "linger.ms", "5");
  Set(conf, "batch.num.messages", "10000");
  Set(conf, "batch.size", bench ? "1000000" : "100000");
  Set(conf, "queue.buffering.max.messages", "1000000");
  Set(conf, "message.timeout.ms", "180000");
  Set(conf, "reconnect.backoff.max.ms", "500");
  rd_kafka_conf_set_opaque(conf, st);
  rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) {
    std::fprintf(stderr, "rd_kafka_new: %s\n", err);
    std::exit(2);
  }
  return rk;
}

void Produce(rd_kafka_t* rk, const std::string& topic, const std::string& key,
             const std::string& value) {
  while (true) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      std::fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
      std::exit(1);
    }
    rd_kafka_poll(rk, 10);
  }
}

int ProduceMain(const std::string& broker, const std::string& topic, long count,
                const std::string& prefix) {
  ProduceState st;
  rd_kafka_t* rk = NewProducer(broker, &st, false);
  for (long i = 0; i < count; ++i) {
    Produce(rk, topic, "k" + std::to_string(i % 64), prefix + "-" + std::to_string(i));
    rd_kafka_poll(rk, 0);
  }
  while (rd_kafka_outq_len(rk) > 0) rd_kafka_poll(rk, 100);
  std::fflush(stdout);
  rd_kafka_destroy(rk);
  std::fprintf(stderr, "acked %ld failed %ld\n", st.acked, st.failed);
  return st.acked == count ? 0 : 1;
}

int BenchProduce(const std::string& broker, const std::string& topic, long count, size_t bytes) {
  ProduceState st;
  st.print = false;
  rd_kafka_t* rk = NewProducer(broker, &st, true);
  const std::string value(bytes, 'x');
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < count; ++i) {
    Produce(rk, topic, "k" + std::to_string(i % 1024), value);
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  while (rd_kafka_outq_len(rk) > 0) rd_kafka_poll(rk, 10);
  std::printf("%ld %.6f\n", st.acked, Seconds(start));
  rd_kafka_destroy(rk);
  return st.acked == count ? 0 : 1;
}

rd_kafka_t* NewConsumer(const std::string& broker, const std::string& group,
                        bool catch_up = false) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (catch_up) {
    // A reader catching up: large fetches, and a local queue deep enough that every partition
    // is always fetched for (else a fetch for only caught-up partitions long-polls).
    Set(conf, "max.partition.fetch.bytes", "4194304");
    Set(conf, "queued.min.messages", "1000000");
    Set(conf, "queued.max.messages.kbytes", "1048576");
  }
  Set(conf, "bootstrap.servers", broker);
  Set(conf, "group.id", group);
  Set(conf, "auto.offset.reset", "earliest");
  Set(conf, "enable.auto.commit", "false");
  Set(conf, "session.timeout.ms", "6000");
  Set(conf, "heartbeat.interval.ms", "500");
  Set(conf, "fetch.wait.max.ms", "100");
  Set(conf, "reconnect.backoff.max.ms", "500");
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) {
    std::fprintf(stderr, "rd_kafka_new: %s\n", err);
    std::exit(2);
  }
  rd_kafka_poll_set_consumer(rk);
  return rk;
}

int ConsumeMain(const std::string& broker, const std::string& topic, const std::string& group,
                long count, long idle_ms) {
  rd_kafka_t* rk = NewConsumer(broker, group);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  std::set<std::string> seen;
  auto last = std::chrono::steady_clock::now();
  int rc = 1;
  while (Seconds(last) * 1000 < idle_ms) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    std::string value(static_cast<const char*>(m->payload), m->len);
    std::printf("msg %s %d %lld\n", value.c_str(), m->partition,
                static_cast<long long>(m->offset));
    // Commit this record before taking the next: what a crash replays is at most this one.
    rd_kafka_commit_message(rk, m, 0);
    rd_kafka_message_destroy(m);
    seen.insert(value);
    last = std::chrono::steady_clock::now();
    if (static_cast<long>(seen.size()) >= count) {
      rc = 0;
      break;
    }
  }
  std::fflush(stdout);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

int BenchConsume(const std::string& broker, const std::string& topic, long count) {
  rd_kafka_t* rk = NewConsumer(broker, "bench-unused", /*catch_up=*/true);
  // Every partition from its beginning, without a group: catch-up reading.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      md->topic_cnt != 1) {
    std::fprintf(stderr, "metadata for %s failed\n", topic.c_str());
    return 2;
  }
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(8);
  for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  auto start = std::chrono::steady_clock::now();
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  // Messages taken a batch at a time from the consumer queue, as a tuned reader does.
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk);
  std::vector<rd_kafka_message_t*> batch(10000);
  long got = 0;
  while (got < count && Seconds(start) < 300) {
    const ssize_t n = rd_kafka_consume_batch_queue(queue, 1000, batch.data(), batch.size());
    for (ssize_t i = 0; i < n; ++i) {
      if (!batch[i]->err) ++got;
      rd_kafka_message_destroy(batch[i]);
    }
  }
  rd_kafka_queue_destroy(queue);
  std::printf("%ld %.6f\n", got, Seconds(start));
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return got == count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 5 && a[0] == "produce") {
    return ProduceMain(a[1], a[2], std::atol(a[3].c_str()), a[4]);
  }
  if (a.size() == 6 && a[0] == "consume") {
    return ConsumeMain(a[1], a[2], a[3], std::atol(a[4].c_str()), std::atol(a[5].c_str()));
  }
  if (a.size() == 5 && a[0] == "bench-produce") {
    return BenchProduce(a[1], a[2], std::atol(a[3].c_str()),
                        std::strtoul(a[4].c_str(), nullptr, 10));
  }
  if (a.size() == 4 && a[0] == "bench-consume") {
    return BenchConsume(a[1], a[2], std::atol(a[3].c_str()));
  }
  std::fprintf(stderr, "usage: see the comment at the top of rdkafka_client.cc\n");
  return 2;
}
