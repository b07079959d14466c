#include "aio/threadpool/loop_poller.h"

#include <poll.h>

#include <algorithm>
#include <chrono>

#include "common/spin.h"

namespace vmlink {

LoopPoller::LoopPoller(uv_loop_t* loop, std::function<bool()> expecting, std::function<bool()> ready, std::function<void()> deliver)
    : loop_(loop), expecting_(std::move(expecting)), ready_(std::move(ready)), deliver_(std::move(deliver)) {
  prepare_ = new uv_prepare_t;
  uv_prepare_init(loop, prepare_);
  prepare_->data = this;
  again_ = new uv_idle_t;
  uv_idle_init(loop, again_);
  // Polling never keeps the process alive: whoever has work in flight does.
  uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
  uv_unref(reinterpret_cast<uv_handle_t*>(again_));
}

LoopPoller::~LoopPoller() { Close(); }

void LoopPoller::Close() {
  if (prepare_ == nullptr) return;
  prepare_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(prepare_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_prepare_t*>(handle); });
  prepare_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(again_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_idle_t*>(handle); });
  again_ = nullptr;
}

void LoopPoller::SetPollUs(uint32_t us) {
  if (prepare_ == nullptr || us == poll_us_) return;
  poll_us_ = us;
  if (us > 0) {
    uv_prepare_start(prepare_, &LoopPoller::OnPrepare);
  } else {
    uv_prepare_stop(prepare_);
    uv_idle_stop(again_);
  }
}

void LoopPoller::OnPrepare(uv_prepare_t* handle) {
  auto* poller = static_cast<LoopPoller*>(handle->data);
  if (poller != nullptr) poller->Poll();
}

// The loop's epoll fd is readable when any fd it watches has an event: then the loop has
// other work, and must not spin past it.
bool LoopPoller::OtherIoReady() const {
  pollfd backend{uv_backend_fd(loop_), POLLIN, 0};
  return poll(&backend, 1, 0) > 0;
}

void LoopPoller::Poll() {
  uv_idle_stop(again_);
  if (poll_us_ == 0 || !expecting_()) return;
  bool ready = ready_();
  if (!ready) {
    // A timer due sooner than the spin (or an idle handle: timeout 0) bounds it; other
    // ready I/O means the loop has work now: no wait, and no poll counted.
    int timeout_ms = uv_backend_timeout(loop_);
    if (timeout_ms == 0 || OtherIoReady()) return;
    uint32_t us = timeout_ms < 0 ? poll_us_ : std::min<uint32_t>(poll_us_, static_cast<uint32_t>(timeout_ms) * 1000);
    auto started = std::chrono::steady_clock::now();
    spinning_.store(true, std::memory_order_seq_cst);
    int looks = 0;
    bool cut_short = false;
    ready = SpinUntil([this] { return ready_(); },
                      [this, &looks, &cut_short] { return (++looks & 3) == 0 && (cut_short = OtherIoReady()); }, us);
    spinning_.store(false, std::memory_order_seq_cst);
    // A producer that saw the spin going skipped its wake-up: its work is visible now.
    ready = ready || ready_();
    stats_.spent_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count();
    if (!ready && cut_short) stats_.cut_short++;
  }
  stats_.polls++;
  if (!ready) return;
  stats_.hits++;
  deliver_();
  if (again_ == nullptr) return;  // closed by what deliver_ ran (the pool destroyed in a callback)
  // What deliver_ set going (the next request) is likely to complete as soon as this one
  // did, but this turn's poll would block for it (nothing else is due): an active idle
  // handle makes the poll's timeout 0, so the next prepare phase looks again instead.
  uv_idle_start(again_, [](uv_idle_t*) {});
}

}  // namespace vmlink
