// The thread pool's queue: one producer (the loop thread), which may also withdraw what it
// queued (cancel), and many consumers (the workers). The producer never waits on a lock a
// consumer holds: it publishes a batch with one compare-and-swap and withdraws an entry
// with another. With the mutex-guarded list this replaced, a worker preempted while taking
// a request (32 workers sharing the disk's interrupt CPU) kept the event loop waiting for
// up to 3.5 ms. Consumers take entries in arrival order under a mutex of their own, which
// the producer never touches.
//
// An entry has two references, the producer's and the queue's; the last to let go frees
// it. The producer keeps its own until the entry's completion is delivered or it is
// withdrawn, so Withdraw never touches freed memory; a consumer lets go of the queue's once
// it has moved the value out (or skipped a withdrawn entry).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

namespace vmlink {

template <typename T>
class HandOverQueue {
 public:
  class Entry {
   public:
    explicit Entry(T&& item) : value(std::move(item)) {}
    T value;  // the producer's until Push, then the consumer's that takes it

   private:
    friend class HandOverQueue;
    std::atomic<uint32_t> state_{kQueued};
    std::atomic<uint32_t> refs_{2};
    Entry* next_ = nullptr;  // toward older entries while in the inbox
  };

  HandOverQueue() = default;
  HandOverQueue(const HandOverQueue&) = delete;
  HandOverQueue& operator=(const HandOverQueue&) = delete;
  ~HandOverQueue() { Clear(); }

  // Producer: appends `batch` (made with new Entry) in its order.
  void Push(const std::vector<Entry*>& batch) {
    if (batch.empty()) return;
    // The inbox is newest-first: link the batch so, its oldest pointing at the old head.
    for (size_t i = 1; i < batch.size(); i++) batch[i]->next_ = batch[i - 1];
    Entry* oldest = batch.front();
    Entry* newest = batch.back();
    Entry* head = inbox_.load(std::memory_order_relaxed);
    do oldest->next_ = head;
    while (!inbox_.compare_exchange_weak(head, newest, std::memory_order_release, std::memory_order_relaxed));
    // Counted after publishing, so a consumer that sees the count finds the entries (the
    // count may dip below 0 for a moment; queued() reads it as 0).
    queued_.fetch_add(static_cast<int64_t>(batch.size()), std::memory_order_seq_cst);
  }

  // Producer: true when the entry will never be taken; then it lets go of its reference.
  bool Withdraw(Entry* entry) {
    uint32_t expected = kQueued;
    if (!entry->state_.compare_exchange_strong(expected, kWithdrawn, std::memory_order_acq_rel)) return false;
    queued_.fetch_sub(1, std::memory_order_seq_cst);
    return true;
  }

  // The producer's or a consumer's last use of an entry.
  static void Release(Entry* entry) {
    if (entry->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete entry;
  }

  // Consumer: the oldest entry not withdrawn, now taken (Release it once its value is
  // moved out), or nullptr when none is queued.
  Entry* Take() {
    std::lock_guard<std::mutex> lock(take_mutex_);
    for (;;) {
      if (arrived_.empty() && !Collect()) return nullptr;
      Entry* entry = arrived_.front();
      arrived_.pop_front();
      uint32_t expected = kQueued;
      if (entry->state_.compare_exchange_strong(expected, kTaken, std::memory_order_acq_rel)) {
        queued_.fetch_sub(1, std::memory_order_seq_cst);
        return entry;
      }
      Release(entry);  // withdrawn: the producer let go already
    }
  }

  // Entries queued and neither taken nor withdrawn.
  size_t queued() const { return static_cast<size_t>(std::max<int64_t>(0, queued_.load(std::memory_order_seq_cst))); }

  // Lets go of the queue's references to everything left; only once no consumer runs.
  void Clear() {
    std::lock_guard<std::mutex> lock(take_mutex_);
    Collect();
    for (Entry* entry : arrived_) {
      uint32_t expected = kQueued;
      if (entry->state_.compare_exchange_strong(expected, kWithdrawn, std::memory_order_acq_rel)) {
        queued_.fetch_sub(1, std::memory_order_seq_cst);
      }
      Release(entry);
    }
    arrived_.clear();
  }

 private:
  static constexpr uint32_t kQueued = 0;
  static constexpr uint32_t kTaken = 1;
  static constexpr uint32_t kWithdrawn = 2;

  // Moves the inbox to arrived_ in arrival order; false when the inbox was empty. Under take_mutex_.
  bool Collect() {
    Entry* newest = inbox_.exchange(nullptr, std::memory_order_acquire);
    if (newest == nullptr) return false;
    size_t first = arrived_.size();
    for (Entry* entry = newest; entry != nullptr; entry = entry->next_) arrived_.push_back(entry);
    std::reverse(arrived_.begin() + static_cast<std::ptrdiff_t>(first), arrived_.end());
    return true;
  }

  std::atomic<Entry*> inbox_{nullptr};
  std::atomic<int64_t> queued_{0};
  std::mutex take_mutex_;
  std::deque<Entry*> arrived_;  // under take_mutex_, oldest first
};

}  // namespace vmlink
