#include "aio/threadpool/thread_pool.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "common/errors.h"

namespace vmlink {
namespace {

// meta layout per request: id, op, fd, buffer count, position low 32 bits, position high 32 bits.
constexpr size_t kMetaFields = 6;
// completions layout per request: id, result, partial, queue wait us, service us, flags.
constexpr size_t kCompletionFields = 6;
constexpr uint32_t kMaxThreads = 256;
// Completion coalescing (see ThreadPool::ShouldWake): a completion may wait for the next
// one only while the workers have plenty queued, requests are fast, and for at most this
// long or this many completions.
constexpr double kMaxHoldUs = 200;
// A read served from the page cache is a copy: ~2 us for 4 KiB here. Anything slower than
// this base plus 2 GB/s did I/O (a 4 KiB read from this machine's disk takes 70+ us).
constexpr double kCachedReadBaseUs = 20;
constexpr double kCachedReadBytesPerUs = 2000;
constexpr size_t kMaxHeld = 16;

double MicrosBetween(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

iovec ViewToIovec(Napi::Env env, Napi::Value value) {
  if (!value.IsTypedArray()) throw Napi::TypeError::New(env, "ThreadPool.submit: every buffer must be a TypedArray");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value arraybuffer;
  size_t offset = 0;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, value, &type, &length, &data, &arraybuffer, &offset), iovec{});
  size_t element = value.As<Napi::TypedArray>().ElementSize();
  return iovec{data, length * element};
}

}  // namespace

Napi::Function ThreadPool::Define(Napi::Env env) {
  return DefineClass(env, "ThreadPool",
                     {
                         InstanceMethod<&ThreadPool::Submit>("submit"),
                         InstanceMethod<&ThreadPool::Cancel>("cancel"),
                         InstanceMethod<&ThreadPool::Destroy>("destroy"),
                         InstanceAccessor<&ThreadPool::Threads>("threads"),
                         InstanceAccessor<&ThreadPool::Pending>("inFlight"),
                     });
}

ThreadPool::ThreadPool(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ThreadPool>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "ThreadPool: threads must be a number");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "ThreadPool: onComplete must be a function");
  int64_t threads = info[0].As<Napi::Number>().Int64Value();
  if (threads < 1 || threads > kMaxThreads) {
    throw CodedError(env, "ERR_OUT_OF_RANGE", "ThreadPool: threads must be >= 1 and <= 256. Received " + std::to_string(threads));
  }
  on_complete_ = Napi::Persistent(info[1].As<Napi::Function>());
  async_context_ = std::make_unique<Napi::AsyncContext>(env, "vmlink:ThreadPool");

  uv_loop_t* loop = nullptr;
  NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));
  async_ = new uv_async_t;
  int err = uv_async_init(loop, async_, &ThreadPool::OnAsync);
  if (err != 0) {
    delete async_;
    async_ = nullptr;
    ThrowErrno(env, -err, "uv_async_init");
  }
  async_->data = this;
  // Idle until something is in flight: an idle pool never keeps the process alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  NAPI_THROW_IF_FAILED_VOID(env, napi_add_env_cleanup_hook(env, &ThreadPool::OnEnvCleanup, this));

  thread_count_ = static_cast<size_t>(threads);
  workers_.reserve(thread_count_);
  for (int64_t i = 0; i < threads; i++) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  if (!shut_down_) napi_remove_env_cleanup_hook(env_, &ThreadPool::OnEnvCleanup, this);
  Shutdown();
}

void ThreadPool::OnEnvCleanup(void* arg) { static_cast<ThreadPool*>(arg)->Shutdown(); }

void ThreadPool::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  std::list<PoolRequest> abandoned;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    stopping_ = true;
    abandoned.swap(queue_);
    queued_by_id_.clear();
    queued_.store(0, std::memory_order_relaxed);
  }
  queue_cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  // Nothing will deliver these any more: drop their buffer references.
  std::vector<PoolCompletion> undelivered;
  {
    std::lock_guard<std::mutex> lock(done_mutex_);
    undelivered.swap(done_);
  }
  for (PoolRequest& request : abandoned) ReleaseBatch(request.batch);
  for (PoolCompletion& completion : undelivered) ReleaseBatch(completion.batch);
  if (async_ != nullptr) {
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_async_t*>(handle); });
    async_ = nullptr;
  }
}

// submit(meta: Uint32Array, buffers: TypedArray[]): queues meta.length / 6 requests.
Napi::Value ThreadPool::Submit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (shut_down_) throw CodedError(env, "ERR_VMLINK_CLOSED", "ThreadPool: the pool is destroyed");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "ThreadPool.submit: meta must be a Uint32Array");
  }
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "ThreadPool.submit: buffers must be an Array");
  Napi::Uint32Array meta = info[0].As<Napi::Uint32Array>();
  Napi::Array buffers = info[1].As<Napi::Array>();
  if (meta.ElementLength() % kMetaFields != 0) throw Napi::TypeError::New(env, "ThreadPool.submit: bad meta length");
  size_t count = meta.ElementLength() / kMetaFields;
  if (count == 0) return env.Undefined();

  std::list<PoolRequest> batch_requests;
  auto* batch = new PoolBatch{Napi::Persistent(buffers.As<Napi::Object>()), count};
  uint32_t buffer_count = buffers.Length();
  uint32_t cursor = 0;
  try {
    auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < count; i++) {
      const uint32_t* fields = meta.Data() + i * kMetaFields;
      PoolRequest request;
      request.id = fields[0];
      if (fields[1] > static_cast<uint32_t>(PoolOp::kReadCacheFirst)) throw Napi::TypeError::New(env, "ThreadPool.submit: bad op");
      request.op = static_cast<PoolOp>(fields[1]);
      request.fd = static_cast<int>(fields[2]);
      uint32_t nbufs = fields[3];
      request.position = (static_cast<uint64_t>(fields[5]) << 32) | fields[4];
      if (request.position > static_cast<uint64_t>(INT64_MAX)) throw Napi::RangeError::New(env, "ThreadPool.submit: position too large");
      if (nbufs > IOV_MAX || cursor + nbufs > buffer_count) throw Napi::TypeError::New(env, "ThreadPool.submit: bad buffer count");
      request.iov.reserve(nbufs);
      for (uint32_t b = 0; b < nbufs; b++) request.iov.push_back(ViewToIovec(env, buffers.Get(cursor++)));
      request.batch = batch;
      request.enqueued = now;
      batch_requests.push_back(std::move(request));
    }
  } catch (...) {
    delete batch;
    throw;
  }
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    for (auto it = batch_requests.begin(); it != batch_requests.end(); ++it) queued_by_id_[it->id] = it;
    queue_.splice(queue_.end(), batch_requests);
    queued_.store(queue_.size(), std::memory_order_relaxed);
  }
  // Wake one worker; a worker that takes a request and sees more queued wakes the next
  // (WorkerLoop). Waking every worker for every batch cost a context switch each on a
  // 2-core machine even when one worker drained the batch alone (page-cache hits take ~2 us).
  queue_cv_.notify_one();
  AddInFlight(count);
  return env.Undefined();
}

// cancel(id): true when the request was still queued (it will never run), else false.
Napi::Value ThreadPool::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  PoolBatch* batch = nullptr;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    auto found = queued_by_id_.find(id);
    if (found == queued_by_id_.end()) return Napi::Boolean::New(env, false);
    batch = found->second->batch;
    queue_.erase(found->second);
    queued_by_id_.erase(found);
    queued_.store(queue_.size(), std::memory_order_relaxed);
  }
  ReleaseBatch(batch);
  RemoveInFlight(1);
  return Napi::Boolean::New(env, true);
}

Napi::Value ThreadPool::Destroy(const Napi::CallbackInfo& info) {
  if (!shut_down_) napi_remove_env_cleanup_hook(env_, &ThreadPool::OnEnvCleanup, this);
  Shutdown();
  return info.Env().Undefined();
}

Napi::Value ThreadPool::Threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(workers_.size()));
}

Napi::Value ThreadPool::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(in_flight_));
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    PoolRequest request;
    bool more;
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      request = std::move(queue_.front());
      queued_by_id_.erase(request.id);
      queue_.pop_front();
      more = !queue_.empty();
      queued_.store(queue_.size(), std::memory_order_relaxed);
    }
    if (more) queue_cv_.notify_one();  // chain: an idle worker takes the next one
    PoolCompletion completion;
    completion.id = request.id;
    completion.batch = request.batch;
    auto started = std::chrono::steady_clock::now();
    Execute(request, &completion);
    auto finished = std::chrono::steady_clock::now();
    completion.queue_wait_us = MicrosBetween(request.enqueued, started);
    completion.service_us = MicrosBetween(started, finished);
    bool wake;
    {
      std::lock_guard<std::mutex> lock(done_mutex_);
      done_.push_back(completion);
      wake = ShouldWake(finished, completion.service_us, queued_.load(std::memory_order_relaxed));
    }
    if (wake) uv_async_send(async_);
  }
}

// Each wake-up costs the worker an eventfd write and the loop a trip through JS: ~4 us per
// request, 5% of a 4 KiB O_DIRECT read here. While the queue holds more work than the
// workers can finish in twice kMaxHoldUs, JS does not need this completion to keep them
// busy, and every new request waits longer than that in the queue anyway; so the
// completion may ride along with a later one, as long as requests are not slow (recent
// mean under kMaxHoldUs), it is younger than kMaxHoldUs and fewer than kMaxHeld wait.
// Otherwise (a short queue, page-cache hits that JS must refill quickly, slow requests,
// the end of a burst) the loop is woken at once.
bool ThreadPool::ShouldWake(std::chrono::steady_clock::time_point finished, double service_us, size_t queued) {
  recent_service_us_ = recent_service_us_ == 0 ? service_us : recent_service_us_ * 0.875 + service_us * 0.125;
  if (wake_sent_) return false;
  if (done_.size() == 1) first_held_ = finished;
  double queued_work_us = static_cast<double>(queued) * recent_service_us_ / static_cast<double>(thread_count_);
  bool hold = queued_work_us > 2 * kMaxHoldUs && recent_service_us_ < kMaxHoldUs && done_.size() < kMaxHeld &&
              MicrosBetween(first_held_, finished) < kMaxHoldUs;
  if (!hold) wake_sent_ = true;
  return !hold;
}

void ThreadPool::Execute(const PoolRequest& request, PoolCompletion* completion) {
  const int iovcnt = static_cast<int>(request.iov.size());
  const off_t position = static_cast<off_t>(request.position);
  switch (request.op) {
    case PoolOp::kReadCacheFirst: {
      size_t length = 0;
      for (const iovec& v : request.iov) length += v.iov_len;
      auto started = std::chrono::steady_clock::now();
      ssize_t n;
      do n = preadv2(request.fd, request.iov.data(), iovcnt, position, RWF_NOWAIT);
      while (n < 0 && errno == EINTR);
      if (n >= 0 && (static_cast<size_t>(n) == length || n == 0)) {
        // All of it, or 0 at EOF. It came from the cache only if it took a copy's time: where
        // the disk answers within the VM exit that submits the readahead (a host-cached
        // virtual disk), a NOWAIT read of an uncached page succeeds after doing the I/O.
        // 0 at EOF waited for nothing (the size is in the inode): cached however long the
        // thread was preempted.
        double budget_us = kCachedReadBaseUs + static_cast<double>(length) / kCachedReadBytesPerUs;
        completion->result = n;
        if (n == 0 || MicrosBetween(started, std::chrono::steady_clock::now()) <= budget_us) completion->flags = kServedFromCache;
        return;
      }
      // EAGAIN, a part, or EOPNOTSUPP: read again the usual way (the cached part costs a copy).
      [[fallthrough]];
    }
    case PoolOp::kRead: {
      ssize_t n;
      do n = preadv2(request.fd, request.iov.data(), iovcnt, position, 0);
      while (n < 0 && errno == EINTR);
      completion->result = n < 0 ? -errno : n;
      return;
    }
    case PoolOp::kWrite: {
      // Loop until everything is written: a short write (e.g. the disk filling up) is
      // followed by one that reports the error, so nothing is claimed that was not written.
      std::vector<iovec> iov = request.iov;
      size_t first = 0;
      int64_t written = 0;
      while (first < iov.size()) {
        ssize_t n = pwritev2(request.fd, iov.data() + first, static_cast<int>(iov.size() - first), position + written, 0);
        if (n < 0) {
          if (errno == EINTR) continue;
          completion->result = -errno;
          completion->partial = written;
          return;
        }
        if (n == 0) break;
        written += n;
        size_t left = static_cast<size_t>(n);
        while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
        if (first < iov.size()) {
          iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
          iov[first].iov_len -= left;
        }
        while (first < iov.size() && iov[first].iov_len == 0) first++;
      }
      completion->result = written;
      return;
    }
    case PoolOp::kFsync:
    case PoolOp::kFdatasync: {
      int rc;
      do rc = request.op == PoolOp::kFsync ? fsync(request.fd) : fdatasync(request.fd);
      while (rc < 0 && errno == EINTR);
      completion->result = rc < 0 ? -errno : 0;
      return;
    }
  }
}

void ThreadPool::OnAsync(uv_async_t* handle) {
  auto* pool = static_cast<ThreadPool*>(handle->data);
  if (pool == nullptr) return;
  try {
    pool->DeliverCompletions();
  } catch (...) {
    // Nothing may propagate into libuv; DeliverCompletions reports JS errors itself.
  }
}

void ThreadPool::DeliverCompletions() {
  std::vector<PoolCompletion> completions;
  {
    std::lock_guard<std::mutex> lock(done_mutex_);
    completions.swap(done_);
    wake_sent_ = false;
  }
  if (completions.empty()) return;
  // Raw N-API calls with checked statuses: this runs from a libuv callback, where a C++
  // exception must not escape, and the env may be shutting down (a terminated worker).
  napi_env env = env_;
  napi_handle_scope scope = nullptr;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    for (const PoolCompletion& completion : completions) ReleaseBatch(completion.batch);
    RemoveInFlight(completions.size());
    return;
  }
  const size_t count = completions.size() * kCompletionFields;
  void* data = nullptr;
  napi_value arraybuffer = nullptr;
  napi_value results = nullptr;
  bool ok = napi_create_arraybuffer(env, count * sizeof(double), &data, &arraybuffer) == napi_ok &&
            napi_create_typedarray(env, napi_float64_array, count, arraybuffer, 0, &results) == napi_ok;
  double* out = static_cast<double*>(data);
  for (const PoolCompletion& completion : completions) {
    if (ok) {
      *out++ = completion.id;
      *out++ = static_cast<double>(completion.result);
      *out++ = static_cast<double>(completion.partial);
      *out++ = completion.queue_wait_us;
      *out++ = completion.service_us;
      *out++ = completion.flags;
    }
    ReleaseBatch(completion.batch);
  }
  RemoveInFlight(completions.size());
  if (ok) {
    // MakeCallback, so promise reactions run right after (as for any Node I/O callback).
    napi_value receiver = nullptr;
    napi_value callback = nullptr;
    napi_value ignored = nullptr;
    if (napi_get_reference_value(env, static_cast<napi_ref>(*this), &receiver) == napi_ok &&
        napi_get_reference_value(env, static_cast<napi_ref>(on_complete_), &callback) == napi_ok && receiver != nullptr &&
        callback != nullptr) {
      napi_status status = napi_make_callback(env, *async_context_, receiver, callback, 1, &results, &ignored);
      if (status == napi_pending_exception) {
        napi_value error = nullptr;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

void ThreadPool::ReleaseBatch(PoolBatch* batch) {
  if (batch != nullptr && --batch->remaining == 0) delete batch;
}

void ThreadPool::AddInFlight(size_t count) {
  if (in_flight_ == 0 && count > 0 && async_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
  in_flight_ += count;
}

void ThreadPool::RemoveInFlight(size_t count) {
  in_flight_ -= std::min(count, in_flight_);
  if (in_flight_ == 0 && async_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
}

}  // namespace vmlink
