#include "wasm/internal/watchdog.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace nodata::wasm::internal {

namespace {
constexpr auto kRepeat = std::chrono::milliseconds(5);
using Clock = std::chrono::steady_clock;
}  // namespace

// One slot per thread that has armed a call: the calls armed on it, innermost last (nested when
// a host function calls into another instance). Slots live as long as their thread; the list
// holds weak references.
struct Watchdog::State {
  struct Armed {
    TierInstance* target;
    uint64_t call_id;
    uint64_t thread;  // pthread_t of the calling thread, alive while the call is armed
    Clock::time_point deadline;
    bool fired;
  };
  struct Slot {
    std::vector<Armed> calls;
  };
  std::mutex mu;  // guards every slot, the list and next_wake
  std::condition_variable cv;
  std::vector<std::weak_ptr<Slot>> slots;
  Clock::time_point next_wake = Clock::time_point::max();
};

namespace {
thread_local std::shared_ptr<Watchdog::State::Slot> t_slot;
}  // namespace

Watchdog& Watchdog::Get() {
  // Never destroyed: calls may be armed from threads that outlive static destruction.
  static Watchdog* watchdog = new Watchdog();
  return *watchdog;
}

Watchdog::Watchdog() : state_(new State()) {
  std::thread([this] { Run(); }).detach();
}

void Watchdog::Arm(uint64_t call_id, TierInstance& target, Clock::time_point deadline) {
  std::lock_guard lock(state_->mu);
  if (t_slot == nullptr) {
    t_slot = std::make_shared<State::Slot>();
    state_->slots.push_back(t_slot);
  }
  t_slot->calls.push_back(
      State::Armed{&target, call_id, static_cast<uint64_t>(pthread_self()), deadline, false});
  if (deadline < state_->next_wake) {
    state_->next_wake = deadline;
    state_->cv.notify_one();
  }
}

bool Watchdog::Disarm(uint64_t call_id) {
  std::lock_guard lock(state_->mu);
  if (t_slot == nullptr || t_slot->calls.empty() || t_slot->calls.back().call_id != call_id) {
    return false;
  }
  bool fired = t_slot->calls.back().fired;
  t_slot->calls.pop_back();
  return fired;
}

void Watchdog::Run() {
  std::unique_lock lock(state_->mu);
  for (;;) {
    auto now = Clock::now();
    auto next = Clock::time_point::max();
    auto& slots = state_->slots;
    slots.erase(std::remove_if(slots.begin(), slots.end(),
                               [](const std::weak_ptr<State::Slot>& w) { return w.expired(); }),
                slots.end());
    for (const auto& weak : slots) {
      std::shared_ptr<State::Slot> slot = weak.lock();
      if (slot == nullptr) continue;
      for (State::Armed& call : slot->calls) {
        if (call.deadline <= now) {
          call.fired = true;
          call.target->Interrupt(call.call_id, call.thread);
          call.deadline = now + kRepeat;
        }
        next = std::min(next, call.deadline);
      }
    }
    state_->next_wake = next;
    if (next == Clock::time_point::max()) {
      state_->cv.wait(lock);
    } else {
      state_->cv.wait_until(lock, next);
    }
  }
}

}  // namespace nodata::wasm::internal
