// Adaptive polling for the loop thread, as QEMU's AioContext polls before it blocks in
// ppoll: in libuv's prepare phase (just before the poll that would put the thread to
// sleep) it spins up to poll_us for `ready()`, and calls `deliver()` when that comes.
// A completion due within microseconds then costs no sleep and wake-up of the loop thread.
// The spin ends early when other I/O is ready (the loop's epoll fd) or a timer is due, so
// nothing else waits on it longer than one look. Mechanism only: JS turns it on and off
// and sets poll_us (aio-threadpool's polling.ts), from the stats this counts.
#pragma once
#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>

namespace vmlink {

struct LoopPollStats {
  double polls = 0;      // prepare phases that looked (ready at once, or spun for it)
  double hits = 0;       // ... and saw ready(): each spared the loop thread a sleep and a wake-up
  double cut_short = 0;  // ... and stopped spinning early for other I/O, ready() still false
  double spent_us = 0;   // time spent spinning
};

class LoopPoller {
 public:
  // On the loop thread: `expecting` says whether anything may become ready (nothing in
  // flight: no spin); `ready` is called while it spins (keep it to an atomic load);
  // `deliver` when it said true, from the prepare callback.
  LoopPoller(uv_loop_t* loop, std::function<bool()> expecting, std::function<bool()> ready, std::function<void()> deliver);
  ~LoopPoller();
  LoopPoller(const LoopPoller&) = delete;
  LoopPoller& operator=(const LoopPoller&) = delete;

  // 0 stops polling. JS thread.
  void SetPollUs(uint32_t us);
  // Whether the loop thread is spinning now: a producer that sees true may skip waking the
  // loop (uv_async_send), since the spin will see its work. Sequentially consistent with
  // the producer's own publication (see Poll), so a wake-up is never lost.
  bool Spinning() const { return spinning_.load(std::memory_order_seq_cst); }
  const LoopPollStats& stats() const { return stats_; }
  // Closes the uv handle (freed by its close callback); idempotent.
  void Close();

 private:
  static void OnPrepare(uv_prepare_t* handle);
  void Poll();
  bool OtherIoReady() const;

  uv_loop_t* loop_;
  uv_prepare_t* prepare_ = nullptr;
  uv_idle_t* again_ = nullptr;  // started after a delivery: the next poll does not block
  std::function<bool()> expecting_;
  std::function<bool()> ready_;
  std::function<void()> deliver_;
  uint32_t poll_us_ = 0;
  std::atomic<bool> spinning_{false};
  LoopPollStats stats_;
};

}  // namespace vmlink
