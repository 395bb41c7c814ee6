// nodata_agg_query: open-loop HTTP GETs of aggregation keys, for the aggregations benchmark.
//
//   nodata_agg_query --http HOST:PORT --prefix /v1/aggregations/NAME/keys/ --keys FILE
//                    [--rate 10000] [--seconds 10] [--warmup 1] [--conns 16]
//
// Request i (for the key on line i mod n of FILE, percent-encoded by the caller) is due at
// start + i / rate; its latency runs from that moment to the end of its response, so time spent
// waiting for a free connection counts. A response is good when its status is 200 and its body
// starts with {"key". Requests due in the first `warmup` seconds are not measured.
//
// One thread, epoll, at most `conns` persistent HTTP/1.1 connections (keep-alive), opened as
// needed, with one request in flight on each; the end of a response is found from its
// Content-Length. The default of 16 stays below the server's 32 HTTP threads, each of which holds
// one connection while it is open. When the server closes a connection (after its idle timeout
// of 2 s, or with Connection: close) it is reopened for the next request; a request whose
// connection closed before any byte of its response is sent again on a new one (the close raced
// with it), and its latency still runs from its due time. Prints one JSON line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "bench/common/args.h"

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "nodata_agg_query: %s\n", why.c_str());
  std::exit(2);
}

struct Conn {
  int fd = -1;
  bool busy = false;  // a request is in flight
  uint64_t index = 0;
  int64_t due_ns = 0;
  std::string request;
  size_t sent = 0;
  std::string response;
  size_t body_start = 0;   // 0 until the header is complete
  size_t body_length = 0;  // from Content-Length
  bool has_length = false;
  bool close_after = false;  // the response said Connection: close
  bool retried = false;
};

constexpr int kOne = 1;

// nodata's HTTP server writes a response's header and body with two send()s and leaves Nagle's
// algorithm on, so on a kept-alive connection the body waits for the ACK of the header, which a
// client delays up to 40 ms. Acknowledging at once (Linux clears the flag again, so after every
// read) keeps those 40 ms out of the measurement; a client without it sees them (BENCHMARKS.md).
void QuickAck(int fd) { setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &kOne, sizeof kOne); }

// The value of header `name` (lower case, with the colon) in `head`, or npos.
size_t HeaderValue(const std::string& head, const char* name) {
  const size_t n = std::strlen(name);
  for (size_t line = head.find("\r\n"); line != std::string::npos && line + 2 < head.size();
       line = head.find("\r\n", line + 2)) {
    size_t k = 0;
    while (k < n && line + 2 + k < head.size() &&
           std::tolower(static_cast<unsigned char>(head[line + 2 + k])) == name[k]) {
      ++k;
    }
    if (k == n) {
      size_t v = line + 2 + n;
      while (v < head.size() && head[v] == ' ') ++v;
      return v;
    }
  }
  return std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  const nodata::bench::Args args{std::vector<std::string>(argv + 1, argv + argc)};
  const std::string http = args.Get("--http", "");
  const std::string prefix = args.Get("--prefix", "");
  const std::string keys_file = args.Get("--keys", "");
  const double rate = std::strtod(args.Get("--rate", "10000").c_str(), nullptr);
  const double seconds = std::strtod(args.Get("--seconds", "10").c_str(), nullptr);
  const double warmup = std::strtod(args.Get("--warmup", "1").c_str(), nullptr);
  const int conns = static_cast<int>(args.GetInt("--conns", 16));
  if (http.empty() || prefix.empty() || keys_file.empty() || rate <= 0 || conns <= 0) {
    Die("usage: nodata_agg_query --http HOST:PORT --prefix PATH --keys FILE [--rate R] "
        "[--seconds S] [--warmup W] [--conns C]");
  }
  std::vector<std::string> keys;
  {
    std::ifstream in(keys_file);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) keys.push_back(line);
    }
  }
  if (keys.empty()) Die("no keys in " + keys_file);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  const size_t colon = http.rfind(':');
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(http.c_str() + colon + 1)));
  if (colon == std::string::npos || inet_pton(AF_INET, http.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    Die("--http must be IPv4:PORT");
  }

  const uint64_t total = static_cast<uint64_t>(rate * seconds);
  const uint64_t warm = static_cast<uint64_t>(rate * warmup);
  const int ep = epoll_create1(0);
  std::vector<Conn> slots(conns);
  // Idle slots, most recently used last: reusing the warmest connection lets the others reach the
  // server's idle timeout instead of each being kept barely alive.
  std::vector<int> free_slots;
  for (int i = conns; i-- > 0;) free_slots.push_back(i);
  std::vector<double> latency_ms;
  latency_ms.reserve(total);
  uint64_t issued = 0, finished = 0, errors = 0, connects = 0, resent = 0;
  int64_t last_end = 0;
  rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  const int64_t start = NowNs();
  auto due_of = [&](uint64_t i) { return start + static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate); };

  auto drop = [&](Conn& c) {
    if (c.fd < 0) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
  };

  auto watch = [&](int slot, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = static_cast<uint32_t>(slot);
    epoll_ctl(ep, EPOLL_CTL_MOD, slots[slot].fd, &ev);
  };

  auto finish = [&](int slot, bool ok) {
    Conn& c = slots[slot];
    const int64_t t = NowNs();
    ok = ok && c.response.compare(0, 12, "HTTP/1.1 200") == 0 && c.body_start > 0 &&
         c.response.compare(c.body_start, 7, "{\"key\":") == 0;
    if (!ok) ++errors;
    if (!ok || c.close_after || !c.has_length) drop(c);
    if (c.index >= warm) latency_ms.push_back(static_cast<double>(t - c.due_ns) / 1e6);
    last_end = t;
    ++finished;
    c.busy = false;
    free_slots.push_back(slot);
  };

  // Sends slot's request, on its open connection or a new one.
  auto send_request = [&](int slot) {
    Conn& c = slots[slot];
    c.sent = 0;
    c.response.clear();
    c.body_start = 0;
    c.has_length = false;
    c.close_after = false;
    if (c.fd < 0) {
      c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) Die(std::string("socket: ") + std::strerror(errno));
      ++connects;
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &kOne, sizeof kOne);
      QuickAck(c.fd);
      if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
        close(c.fd);
        c.fd = -1;
        finish(slot, false);
        return;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
      ev.data.u32 = static_cast<uint32_t>(slot);
      epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    } else {
      watch(slot, EPOLLOUT | EPOLLIN | EPOLLRDHUP);
    }
  };

  auto begin = [&](uint64_t i) {
    const int slot = free_slots.back();
    free_slots.pop_back();
    Conn& c = slots[slot];
    c.busy = true;
    c.retried = false;
    c.index = i;
    c.due_ns = due_of(i);
    c.request = "GET " + prefix + keys[(i * 7919 + 13) % keys.size()] + " HTTP/1.1\r\nHost: " + http +
                "\r\nConnection: keep-alive\r\n\r\n";
    send_request(slot);
  };

  // The connection ended (EOF or error). A request in flight with no response yet is sent once
  // more on a new connection: the server may close an idle connection just as a request goes out.
  auto closed = [&](int slot, bool eof) {
    Conn& c = slots[slot];
    drop(c);
    if (!c.busy) return;
    if (c.response.empty() && !c.retried) {
      c.retried = true;
      ++resent;
      send_request(slot);
      return;
    }
    // Without Content-Length the response ends with the connection.
    finish(slot, eof && c.body_start > 0 && !c.has_length);
  };

  // Parses what has arrived; finishes the request once the whole body is in.
  auto received = [&](int slot) {
    Conn& c = slots[slot];
    if (c.body_start == 0) {
      const size_t end = c.response.find("\r\n\r\n");
      if (end == std::string::npos) return;
      c.body_start = end + 4;
      const std::string head = c.response.substr(0, end + 2);
      const size_t len = HeaderValue(head, "content-length:");
      if (len != std::string::npos) {
        c.has_length = true;
        c.body_length = std::strtoull(head.c_str() + len, nullptr, 10);
      }
      const size_t conn = HeaderValue(head, "connection:");
      c.close_after = conn != std::string::npos && head.compare(conn, 5, "close") == 0;
    }
    if (c.has_length && c.response.size() >= c.body_start + c.body_length) finish(slot, true);
  };

  std::vector<epoll_event> events(conns);
  char buf[16384];
  while (finished < total) {
    const int64_t now = NowNs();
    while (issued < total && due_of(issued) <= now && !free_slots.empty()) begin(issued++);
    int64_t wait_ns = 50'000'000;
    if (issued < total && !free_slots.empty()) wait_ns = std::max<int64_t>(0, due_of(issued) - NowNs());
    timespec ts{static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
    const int n = epoll_pwait2(ep, events.data(), conns, &ts, nullptr);
    for (int k = 0; k < n; ++k) {
      const int slot = static_cast<int>(events[k].data.u32);
      Conn& c = slots[slot];
      if (c.fd < 0) continue;
      if ((events[k].events & EPOLLOUT) && c.busy && c.sent < c.request.size()) {
        const ssize_t w = send(c.fd, c.request.data() + c.sent, c.request.size() - c.sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          closed(slot, false);
          continue;
        }
        if (w > 0) c.sent += static_cast<size_t>(w);
        if (c.sent == c.request.size()) watch(slot, EPOLLIN | EPOLLRDHUP);
      }
      if (events[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        const uint64_t done_before = finished;
        for (;;) {
          const ssize_t r = recv(c.fd, buf, sizeof buf, 0);
          if (r > 0) {
            if (!c.busy) continue;  // nothing is expected on an idle connection
            QuickAck(c.fd);
            c.response.append(buf, static_cast<size_t>(r));
            received(slot);
            if (finished != done_before) break;  // one request in flight: the response is whole
            continue;
          }
          if (r == 0) closed(slot, true);
          else if (errno != EAGAIN) closed(slot, false);
          break;
        }
      }
    }
  }
  rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  auto secs = [](const timeval& a, const timeval& b) {
    return static_cast<double>(b.tv_sec - a.tv_sec) + static_cast<double>(b.tv_usec - a.tv_usec) / 1e6;
  };
  const double cpu = secs(ru0.ru_utime, ru1.ru_utime) + secs(ru0.ru_stime, ru1.ru_stime);
  std::sort(latency_ms.begin(), latency_ms.end());
  auto at = [&](double q) {
    return latency_ms.empty() ? 0.0
                              : latency_ms[std::min(latency_ms.size() - 1,
                                                    static_cast<size_t>(q * static_cast<double>(latency_ms.size())))];
  };
  const double measured_secs = static_cast<double>(last_end - due_of(warm)) / 1e9;
  std::printf(
      "{\"target_rate\":%.0f,\"requests\":%zu,\"errors\":%llu,\"achieved_rate\":%.0f,\"connections\":%d,"
      "\"connects\":%llu,\"resent\":%llu,\"client_cpu\":%.3f,\"latency_ms\":{\"count\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
      rate, latency_ms.size(), static_cast<unsigned long long>(errors),
      static_cast<double>(latency_ms.size()) / measured_secs, conns,
      static_cast<unsigned long long>(connects), static_cast<unsigned long long>(resent),
      cpu / (static_cast<double>(last_end - start) / 1e9), latency_ms.size(), at(0.5), at(0.9), at(0.99),
      latency_ms.empty() ? 0.0 : latency_ms.back());
  return errors == 0 ? 0 : 1;
}
