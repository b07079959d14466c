// A pool of dedicated worker threads doing positioned file I/O (preadv2/pwritev2/fsync/
// fdatasync) for JS. Requests arrive in batches (one native call per batch) and
// completions go back in batches (one uv_async_t wake-up, one JS callback per batch).
#pragma once
#include <napi.h>
#include <sys/uio.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace vmlink {

// kReadCacheFirst: a read that tries the page cache alone first (RWF_NOWAIT) and reports
// whether it was served from there, then reads the usual way if not.
enum class PoolOp : uint32_t { kRead = 0, kWrite = 1, kFsync = 2, kFdatasync = 3, kReadCacheFirst = 4 };

// PoolCompletion::flags bits.
constexpr uint32_t kServedFromCache = 1;

// Keeps one submit() call's buffers alive until its last request completes or is cancelled.
struct PoolBatch {
  Napi::ObjectReference buffers;
  size_t remaining = 0;
};

struct PoolRequest {
  uint32_t id = 0;
  PoolOp op = PoolOp::kRead;
  int fd = -1;
  uint64_t position = 0;
  std::vector<iovec> iov;
  PoolBatch* batch = nullptr;
  std::chrono::steady_clock::time_point enqueued;
};

struct PoolCompletion {
  uint32_t id = 0;
  int64_t result = 0;     // bytes transferred, or -errno
  int64_t partial = 0;    // bytes a failed write transferred before its error
  double queue_wait_us = 0;
  double service_us = 0;
  uint32_t flags = 0;
  PoolBatch* batch = nullptr;
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
  Napi::Value Threads(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);

  void WorkerLoop();
  static void Execute(const PoolRequest& request, PoolCompletion* completion);
  static void OnAsync(uv_async_t* handle);
  static void OnEnvCleanup(void* arg);
  void DeliverCompletions();
  void ReleaseBatch(PoolBatch* batch);
  void AddInFlight(size_t count);
  void RemoveInFlight(size_t count);
  // Stops and joins the workers and closes the uv handle; idempotent.
  void Shutdown();

  Napi::Env env_;
  Napi::FunctionReference on_complete_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
  uv_async_t* async_ = nullptr;  // freed by its close callback
  std::vector<std::thread> workers_;
  size_t thread_count_ = 0;  // fixed before the workers start (they read it)
  bool shut_down_ = false;
  size_t in_flight_ = 0;  // JS thread only

  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  bool stopping_ = false;
  std::list<PoolRequest> queue_;
  std::unordered_map<uint32_t, std::list<PoolRequest>::iterator> queued_by_id_;

  // Whether a worker that just finished a request should wake the loop now (true) or
  // leave its completion for the next one to carry (see WorkerLoop). Under done_mutex_.
  bool ShouldWake(std::chrono::steady_clock::time_point finished, double service_us, size_t queued);

  std::mutex done_mutex_;
  std::vector<PoolCompletion> done_;
  bool wake_sent_ = false;  // a wake-up is on its way for what done_ holds
  std::chrono::steady_clock::time_point first_held_;
  double recent_service_us_ = 0;  // moving average of service times
  std::atomic<size_t> queued_{0};  // queue_.size(), readable without queue_mutex_
};

}  // namespace vmlink
