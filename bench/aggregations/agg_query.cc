// nodata_agg_query: open-loop HTTP GETs of aggregation keys, for the aggregations benchmark.
//
//   nodata_agg_query --http HOST:PORT --prefix /v1/aggregations/NAME/keys/ --keys FILE
//                    [--rate 10000] [--seconds 10] [--warmup 1] [--conns 64]
//
// Request i (for the key on line i mod n of FILE, percent-encoded by the caller) is due at
// start + i / rate; its latency runs from that moment to the end of its response, so time spent
// waiting for a free connection (at most `conns` open) counts. A response is good when its status
// is 200 and its body starts with {"key". Requests due in the first `warmup` seconds are not
// measured. One thread, epoll, one request per connection: nodata's HTTP server closes every
// connection after its response. Prints one JSON line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

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
  uint64_t index = 0;
  int64_t due_ns = 0;
  std::string request;
  size_t sent = 0;
  std::string response;
};

}  // namespace

int main(int argc, char** argv) {
  std::string http, prefix, keys_file;
  double rate = 10000, seconds = 10, warmup = 1;
  int conns = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--http") http = v;
    else if (a == "--prefix") prefix = v;
    else if (a == "--keys") keys_file = v;
    else if (a == "--rate") rate = std::strtod(v, nullptr);
    else if (a == "--seconds") seconds = std::strtod(v, nullptr);
    else if (a == "--warmup") warmup = std::strtod(v, nullptr);
    else if (a == "--conns") conns = std::atoi(v);
    else Die("unknown option " + a);
  }
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
  std::vector<int> free_slots;
  for (int i = conns; i-- > 0;) free_slots.push_back(i);
  std::vector<double> latency_ms;
  latency_ms.reserve(total);
  uint64_t issued = 0, finished = 0, errors = 0;
  int64_t last_end = 0;
  rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  const int64_t start = NowNs();
  auto due_of = [&](uint64_t i) { return start + static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate); };

  auto finish = [&](int slot, bool ok) {
    Conn& c = slots[slot];
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    const int64_t t = NowNs();
    ok = ok && c.response.compare(0, 12, "HTTP/1.1 200") == 0;
    if (ok) {
      const size_t body = c.response.find("\r\n\r\n");
      ok = body != std::string::npos && c.response.compare(body + 4, 7, "{\"key\":") == 0;
    }
    if (!ok) ++errors;
    if (c.index >= warm) latency_ms.push_back(static_cast<double>(t - c.due_ns) / 1e6);
    last_end = t;
    ++finished;
    free_slots.push_back(slot);
  };

  auto begin = [&](uint64_t i) {
    const int slot = free_slots.back();
    free_slots.pop_back();
    Conn& c = slots[slot];
    c.index = i;
    c.due_ns = due_of(i);
    c.request = "GET " + prefix + keys[(i * 7919 + 13) % keys.size()] + " HTTP/1.1\r\nHost: " + http +
                "\r\nConnection: close\r\n\r\n";
    c.sent = 0;
    c.response.clear();
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) Die(std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
      finish(slot, false);  // counted as an error; its EPOLL_CTL_DEL fails harmlessly
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u32 = static_cast<uint32_t>(slot);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
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
      if ((events[k].events & EPOLLOUT) && c.sent < c.request.size()) {
        const ssize_t w = send(c.fd, c.request.data() + c.sent, c.request.size() - c.sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          finish(slot, false);
          continue;
        }
        if (w > 0) c.sent += static_cast<size_t>(w);
        if (c.sent == c.request.size()) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLRDHUP;
          ev.data.u32 = static_cast<uint32_t>(slot);
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      if (events[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        for (;;) {
          const ssize_t r = recv(c.fd, buf, sizeof buf, 0);
          if (r > 0) {
            c.response.append(buf, static_cast<size_t>(r));
            continue;
          }
          if (r == 0) finish(slot, true);
          else if (errno != EAGAIN) finish(slot, false);
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
      "\"client_cpu\":%.3f,\"latency_ms\":{\"count\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
      rate, latency_ms.size(), static_cast<unsigned long long>(errors),
      static_cast<double>(latency_ms.size()) / measured_secs, conns,
      cpu / (static_cast<double>(last_end - start) / 1e9), latency_ms.size(), at(0.5), at(0.9), at(0.99),
      latency_ms.empty() ? 0.0 : latency_ms.back());
  return errors == 0 ? 0 : 1;
}
