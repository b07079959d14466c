// A pool of dedicated worker threads doing positioned file I/O (preadv2/pwritev2/fsync/
// fdatasync/fallocate/ftruncate/BLKDISCARD) for JS. Requests arrive in batches (one native
// call per batch, through the request table of batch_layout.h) and completions go back in
// batches (one uv_async_t wake-up, one JS callback per table-full; reads served in the
// hand-over call come back in the loop turn's check phase instead). JS keeps every buffer
// reachable until its completion is delivered. Mechanism only: JS decides when to spawn() workers (and how many);
// a worker idle for idleTimeoutMs exits while more than minThreads live. Every number
// (sizes, idle timeout, completion coalescing bounds) comes from JS.
#pragma once
#include <napi.h>
#include <sched.h>
#include <sys/uio.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "aio/threadpool/handover_queue.h"
#include "aio/threadpool/loop_poller.h"
#include "common/joinable_thread.h"
#include "common/wake_word.h"

namespace vmlink {

// Op codes in the request table's op field (exported as ThreadPool.layout.ops).
// kReadCacheFirst: a read that tries RWF_NOWAIT first, then reads the usual way if that
// did not bring it all; its completion's flags say which (JS judges "cached" from the timings).
enum class PoolOp : uint32_t {
  kRead = 0,
  kWrite = 1,
  kFsync = 2,
  kFdatasync = 3,
  kReadCacheFirst = 4,
  kFallocate = 5,  // mode field = mode bits, position = offset, length
  kTruncate = 6,   // position = size
  kDiscard = 7,    // position = offset, length
  // A read the hand-over call (Submit, on the JS thread) tries with RWF_NOWAIT first: the
  // page cache serves it in the call, or a worker reads it as kRead. Completion flags say
  // which (kFlagServedHere / kFlagMissedHere / kFlagDirectFd). Which reads to mark so, and
  // how many per call, is JS's decision (a warm file, a time budget).
  kReadCachedHere = 8,
};

struct PoolRequest {
  uint32_t slot = 0;
  PoolOp op = PoolOp::kRead;
  int fd = -1;
  uint64_t position = 0;
  uint64_t length = 0;  // kFallocate, kDiscard
  uint32_t mode = 0;    // kFallocate
  std::vector<iovec> iov;
  std::chrono::steady_clock::time_point enqueued;
  uint32_t flags = 0;  // completion flags known at hand-over (a kReadCachedHere that went to a worker)
};

struct PoolCompletion {
  uint32_t slot = 0;
  int64_t result = 0;     // bytes transferred, or -errno
  int64_t partial = 0;    // bytes a failed write transferred before its error
  double queue_wait_us = 0;
  double service_us = 0;
  uint32_t flags = 0;
};

class ThreadPool : public Napi::ObjectWrap<ThreadPool> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ThreadPool(const Napi::CallbackInfo& info);
  ~ThreadPool() override;

 private:
  Napi::Value Submit(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value Spawn(const Napi::CallbackInfo& info);
  Napi::Value Trim(const Napi::CallbackInfo& info);
  Napi::Value SetPolling(const Napi::CallbackInfo& info);
  Napi::Value PollStats(const Napi::CallbackInfo& info);
  Napi::Value Threads(const Napi::CallbackInfo& info);
  Napi::Value IdleThreads(const Napi::CallbackInfo& info);
  Napi::Value PeakThreads(const Napi::CallbackInfo& info);
  Napi::Value SchedulingError(const Napi::CallbackInfo& info);
  Napi::Value SetWorkerCpus(const Napi::CallbackInfo& info);
  Napi::Value AffinityError(const Napi::CallbackInfo& info);
  Napi::Value Queued(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);

  // Reserves up to `count` more workers (capped by max_threads_) and starts the first;
  // each new worker starts the next reserved one, so the JS thread pays for one thread
  // creation per call, not `count` (as QEMU's pool). Returns how many were reserved.
  size_t SpawnWorkers(size_t count);
  // Creates one worker thread; on failure, drops the reservations still waiting.
  void StartWorker();
  void WorkerMain(uint64_t id);
  // Moves the calling worker to the CPU set setWorkerCpus last gave, if it changed since
  // `*applied` (the generation this worker runs under).
  void FollowWorkerCpus(uint64_t* applied);
  // Joins workers that exited after idling (JS thread).
  void ReapExited();
  static void Execute(const PoolRequest& request, PoolCompletion* completion);
  // kReadCachedHere in the hand-over call, reading into `iov` (`fd_flags`: the fd's F_GETFL, or -1): true when
  // served (completion filled); else the request goes to a worker as kRead, `*flags` saying why.
  static bool ReadCachedHere(const PoolRequest& request, const std::vector<iovec>& iov, int fd_flags, PoolCompletion* completion,
                             uint32_t* flags);
  static void OnAsync(uv_async_t* handle);
  // Delivers done_ in this loop turn's check phase (reads served in the hand-over call).
  void DeliverInCheckPhase();
  static void OnCheck(uv_check_t* handle);
  static void OnEnvCleanup(void* arg);
  void DeliverCompletions();
  void AddInFlight(size_t count);
  void RemoveInFlight(size_t count);
  // Stops and joins the workers and closes the uv handle; idempotent.
  void Shutdown();

  Napi::Env env_;
  Napi::FunctionReference on_complete_;
  // The JS-owned completion table (batch_layout.h), filled before each onComplete(count).
  Napi::Reference<Napi::Float64Array> completions_ref_;
  double* completions_ = nullptr;
  size_t completion_capacity_ = 0;
  std::unique_ptr<Napi::AsyncContext> async_context_;
  uv_async_t* async_ = nullptr;  // freed by its close callback
  uv_check_t* check_ = nullptr;  // started while served-here completions wait; freed on close
  uv_idle_t* no_block_ = nullptr;  // started with check_, so the poll does not block before it
  // The loop thread's wait for completions before it blocks (setPolling); made before any
  // worker starts, closed in Shutdown after they are joined.
  std::unique_ptr<LoopPoller> poller_;
  // setPolling: how long a worker looks for a request before it sleeps.
  std::atomic<uint32_t> worker_spin_us_{0};
  std::atomic<bool> worker_looking_{false};  // a worker looks for work without sleeping (one at a time)
  bool shut_down_ = false;
  // Fixed before any worker starts.
  size_t min_threads_ = 0;
  size_t max_threads_ = 0;
  std::chrono::milliseconds idle_timeout_{0};
  double max_hold_us_ = 0;
  size_t max_held_ = 0;
  int worker_policy_ = SCHED_OTHER;  // the workers' Linux policy (config.scheduling)
  // The errno of the first worker refused its policy (0: none); that worker runs as it was.
  std::atomic<int> scheduling_errno_{0};

  // setWorkerCpus: the CPUs workers may run on, and its generation (0: never set, workers
  // keep the affinity they inherit). Empty sets mean default_cpus_, the affinity of the
  // thread that made the pool.
  std::mutex cpus_mutex_;
  cpu_set_t worker_cpus_{};  // under cpus_mutex_
  cpu_set_t default_cpus_{};
  std::atomic<uint64_t> cpus_generation_{0};
  // The errno of the first worker refused its CPU set (0: none); that worker runs where it was.
  std::atomic<int> affinity_errno_{0};

  std::mutex workers_mutex_;
  std::unordered_map<uint64_t, JoinableThread> workers_;  // under workers_mutex_
  std::vector<uint64_t> exited_;  // left WorkerMain, not yet joined; under workers_mutex_
  uint64_t next_worker_id_ = 0;                        // under workers_mutex_
  size_t in_flight_ = 0;  // JS thread only
  // Slots submitted and not yet completed or withdrawn (JS thread only): a slot named again
  // while in flight gets EBUSY, as io_submit's engine does, instead of overwriting the
  // queue's index of the first request (whose cancel would then withdraw the wrong one).
  // A bit per slot: JS reuses freed slots, so the set stays as small as the peak in flight
  // (a hash set cost a node allocation per request on the warm path).
  std::vector<bool> slots_in_flight_;
  bool SlotInFlight(uint32_t slot) const { return slot < slots_in_flight_.size() && slots_in_flight_[slot]; }
  void MarkSlot(uint32_t slot, bool in_flight);
  // Reused by every Submit (JS thread only), so a batch served in the call allocates nothing.
  std::vector<iovec> here_iov_;
  std::vector<PoolCompletion> served_here_;

  // The hand-over: the loop thread queues and withdraws without a lock (handover_queue.h)
  // and wakes a sleeping worker with a futex (wake_word.h); it never waits for a worker.
  using Queue = HandOverQueue<PoolRequest>;
  Queue queue_;
  WakeWord wake_;
  // Per slot, the entry handed to the workers and not yet delivered or withdrawn: the
  // loop thread's reference (JS thread only).
  std::vector<Queue::Entry*> entries_by_slot_;
  std::vector<Queue::Entry*> batch_;  // reused by every Submit (JS thread only)
  // Lets go of a slot's entry once its completion is delivered or it was withdrawn.
  void ReleaseEntry(uint32_t slot);
  // Whether an idle worker leaves now (trim(), or idle for a whole timeout); if so, it is no longer counted live.
  bool Retire(bool timed_out);
  // Takes back a Retire that a request queued meanwhile makes wrong (see WorkerMain);
  // false when the pool is stopping or already full again.
  bool Unretire();
  // live_ > keep_ + starting_: trim() asked for fewer workers than live.
  bool MoreThanKept(std::memory_order order) const;
  std::atomic<bool> stopping_{false};  // set under roster_mutex_
  // The roster (which workers live, start, may stay): guarded by roster_mutex_, which the
  // loop thread takes only to spawn, trim, change CPUs and shut down, never per request.
  std::mutex roster_mutex_;
  // Worker counts: changed under roster_mutex_, readable without it; live_ only by
  // read-modify-writes, since a stopping worker counts itself down without the lock.
  std::atomic<size_t> live_{0};     // running or reserved (starting)
  std::atomic<size_t> idle_{0};     // waiting for work
  std::atomic<size_t> peak_{0};     // most live_ ever
  std::atomic<size_t> starting_{0};  // reserved, not yet started
  std::atomic<size_t> keep_{0};      // workers past this leave when idle (trim; maxThreads at first)
  bool spawner_active_ = false;     // a thread is starting the reserved ones; under roster_mutex_

  // Whether a worker that just finished a request should wake the loop now (true) or
  // leave its completion for the next one to carry (see WorkerMain). Under done_mutex_.
  bool ShouldWake(std::chrono::steady_clock::time_point finished, double service_us, size_t queued);

  std::mutex done_mutex_;
  std::vector<PoolCompletion> done_;
  // What DeliverCompletions swaps with done_ (JS thread only): both keep their capacity.
  std::vector<PoolCompletion> delivering_;
  bool wake_sent_ = false;  // a wake-up is on its way for what done_ holds
  std::chrono::steady_clock::time_point first_held_;
  double recent_service_us_ = 0;  // moving average of service times
  std::atomic<size_t> done_count_{0};  // done_.size(), readable without done_mutex_
};

}  // namespace vmlink
