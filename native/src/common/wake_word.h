// Sleeping threads a producer wakes without taking a lock: a futex word. A condition
// variable's notify takes a lock its waiters also take (glibc's condvar has one inside);
// when a waiter holding it is preempted (32 workers sharing one CPU), the notifier waits
// for it: the event loop's hand-over to the thread pool waited up to 3.4 ms so. A futex
// wake takes only a kernel lock that is never held across a preemption.
//
// The sleeper's side, so that a wake between its look for work and its sleep is not lost:
//   uint32_t ticket = word.Prepare();          // counts it as a sleeper
//   if (work available) { word.Abandon(); ... } // the producer published before looking
//   else word.Sleep(ticket, timeout);          // returns at once if woken since Prepare
// The producer publishes its work (seq_cst), then calls WakeOne()/WakeAll().
#pragma once
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace vmlink {

class WakeWord {
 public:
  uint32_t Prepare() {
    uint32_t ticket = word_.load(std::memory_order_acquire);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    return ticket;
  }

  void Abandon() { sleepers_.fetch_sub(1, std::memory_order_seq_cst); }

  // Sleeps until woken or `timeout` passes; false when it timed out.
  bool Sleep(uint32_t ticket, std::chrono::milliseconds timeout) {
    timespec relative{static_cast<time_t>(timeout.count() / 1000), static_cast<long>((timeout.count() % 1000) * 1000000)};  // NOLINT(runtime/int)
    long rc = syscall(SYS_futex, &word_, FUTEX_WAIT_PRIVATE, ticket, &relative, nullptr, 0);  // NOLINT(runtime/int)
    bool timed_out = rc != 0 && errno == ETIMEDOUT;
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    return !timed_out;
  }

  // No system call while nobody sleeps (the common case under load).
  void WakeOne() { Wake(1); }
  void WakeAll() { Wake(INT_MAX); }

 private:
  void Wake(int count) {
    if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
    word_.fetch_add(1, std::memory_order_seq_cst);
    syscall(SYS_futex, &word_, FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
  }

  std::atomic<uint32_t> word_{0};
  std::atomic<uint32_t> sleepers_{0};
};

}  // namespace vmlink
