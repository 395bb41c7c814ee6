#include "wasm/internal/watchdog.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace nodata::wasm::internal {

namespace {
constexpr auto kRepeat = std::chrono::milliseconds(5);
}

struct Watchdog::State {
  struct Entry {
    TierInstance* target;
    std::chrono::steady_clock::time_point deadline;
    bool fired = false;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Entry> calls;
  std::chrono::steady_clock::time_point next_wake = std::chrono::steady_clock::time_point::max();
};

Watchdog& Watchdog::Get() {
  // Never destroyed: calls may be armed from threads that outlive static destruction.
  static Watchdog* watchdog = new Watchdog();
  return *watchdog;
}

Watchdog::Watchdog() : state_(new State()) {
  std::thread([this] { Run(); }).detach();
}

void Watchdog::Arm(uint64_t call_id, TierInstance& target,
                   std::chrono::steady_clock::time_point deadline) {
  std::lock_guard lock(state_->mu);
  state_->calls[call_id] = State::Entry{&target, deadline, false};
  if (deadline < state_->next_wake) {
    state_->next_wake = deadline;
    state_->cv.notify_one();
  }
}

bool Watchdog::Disarm(uint64_t call_id) {
  std::lock_guard lock(state_->mu);
  auto it = state_->calls.find(call_id);
  if (it == state_->calls.end()) return false;
  bool fired = it->second.fired;
  state_->calls.erase(it);
  return fired;
}

void Watchdog::Run() {
  std::unique_lock lock(state_->mu);
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    for (auto& [id, entry] : state_->calls) {
      if (entry.deadline <= now) {
        entry.fired = true;
        entry.target->Interrupt(id);
        entry.deadline = now + kRepeat;
      }
      next = std::min(next, entry.deadline);
    }
    state_->next_wake = next;
    if (next == std::chrono::steady_clock::time_point::max()) {
      state_->cv.wait(lock);
    } else {
      state_->cv.wait_until(lock, next);
    }
  }
}

}  // namespace nodata::wasm::internal
