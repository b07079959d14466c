#include "aio/threadpool/thread_pool.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "aio/threadpool/space_ops.h"
#include "common/errors.h"

namespace vmlink {
namespace {

// meta layout per request: id, op, fd, buffer count (fallocate: mode bits), position low
// 32 bits, position high 32 bits, length low 32 bits, length high 32 bits.
constexpr size_t kMetaFields = 8;
// completions layout per request: id, result, partial, queue wait us, service us, flags.
constexpr size_t kCompletionFields = 6;
constexpr uint32_t kMaxThreads = 256;

std::string Shown(double number) {
  if (number == static_cast<double>(static_cast<int64_t>(number))) return std::to_string(static_cast<int64_t>(number));
  return std::to_string(number);
}

uint32_t ConfigNumber(Napi::Env env, Napi::Object config, const char* name, double min, double max) {
  Napi::Value value = config.Get(name);
  if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string("ThreadPool: config.") + name + " must be a number");
  double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= min && number <= max) || number != static_cast<double>(static_cast<uint64_t>(number))) {
    throw CodedError(env, "ERR_OUT_OF_RANGE", std::string("ThreadPool: config.") + name + " must be an integer >= " +
                                                  std::to_string(static_cast<uint64_t>(min)) + " and <= " +
                                                  std::to_string(static_cast<uint64_t>(max)) + ". Received " + Shown(number));
  }
  return static_cast<uint32_t>(number);
}

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
                         InstanceMethod<&ThreadPool::Spawn>("spawn"),
                         InstanceAccessor<&ThreadPool::Threads>("threads"),
                         InstanceAccessor<&ThreadPool::IdleThreads>("idleThreads"),
                         InstanceAccessor<&ThreadPool::PeakThreads>("peakThreads"),
                         InstanceAccessor<&ThreadPool::Queued>("queued"),
                         InstanceAccessor<&ThreadPool::Pending>("inFlight"),
                     });
}

ThreadPool::ThreadPool(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ThreadPool>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "ThreadPool: config must be an object");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "ThreadPool: onComplete must be a function");
  Napi::Object config = info[0].As<Napi::Object>();
  min_threads_ = ConfigNumber(env, config, "minThreads", 0, kMaxThreads);
  max_threads_ = ConfigNumber(env, config, "maxThreads", 1, kMaxThreads);
  if (min_threads_ > max_threads_) {
    throw CodedError(env, "ERR_OUT_OF_RANGE", "ThreadPool: config.minThreads (" + std::to_string(min_threads_) +
                                                  ") must be <= config.maxThreads (" + std::to_string(max_threads_) + ")");
  }
  idle_timeout_ = std::chrono::milliseconds(ConfigNumber(env, config, "idleTimeoutMs", 1, 24u * 3600 * 1000));
  max_hold_us_ = ConfigNumber(env, config, "maxHoldUs", 0, 1000000);
  max_held_ = ConfigNumber(env, config, "maxHeld", 1, 1 << 20);
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

  SpawnWorkers(min_threads_);
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
  // A worker may be starting another as we go: take and join one at a time until none is left.
  for (;;) {
    std::thread worker;
    {
      std::lock_guard<std::mutex> lock(workers_mutex_);
      if (workers_.empty()) break;
      auto it = workers_.begin();
      worker = std::move(it->second);
      workers_.erase(it);
    }
    if (worker.joinable()) worker.join();
  }
  {
    std::lock_guard<std::mutex> lock(workers_mutex_);
    exited_.clear();
  }
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

// submit(meta: Uint32Array, buffers: TypedArray[]): queues meta.length / 8 requests.
Napi::Value ThreadPool::Submit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (shut_down_) throw CodedError(env, "ERR_VMLINK_CLOSED", "ThreadPool: the pool is destroyed");
  ReapExited();
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
      if (fields[1] > static_cast<uint32_t>(PoolOp::kDiscard)) throw Napi::TypeError::New(env, "ThreadPool.submit: bad op");
      request.op = static_cast<PoolOp>(fields[1]);
      request.fd = static_cast<int>(fields[2]);
      bool carries_buffers = request.op <= PoolOp::kReadCacheFirst;
      uint32_t nbufs = carries_buffers ? fields[3] : 0;
      if (request.op == PoolOp::kFallocate) request.mode = fields[3];
      request.position = (static_cast<uint64_t>(fields[5]) << 32) | fields[4];
      request.length = (static_cast<uint64_t>(fields[7]) << 32) | fields[6];
      if (request.position > static_cast<uint64_t>(INT64_MAX)) throw Napi::RangeError::New(env, "ThreadPool.submit: position too large");
      if (request.length > static_cast<uint64_t>(INT64_MAX)) throw Napi::RangeError::New(env, "ThreadPool.submit: length too large");
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
  // (WorkerMain). Waking every worker for every batch cost a context switch each on a
  // 2-core machine even when one worker drained the batch alone (page-cache hits take ~2 us).
  queue_cv_.notify_one();
  AddInFlight(count);
  return env.Undefined();
}

// cancel(id) -> boolean: true when the request was still queued (it will never run).
// cancel(ids: Uint32Array) -> Uint8Array: the same per id, all under one lock, so workers
// cannot take the later ones while the earlier ones are withdrawn (an aborted batch).
Napi::Value ThreadPool::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool many = info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array;
  if (!many && !info[0].IsNumber()) throw Napi::TypeError::New(env, "ThreadPool.cancel: id must be a number or a Uint32Array");
  std::vector<uint32_t> ids;
  if (many) {
    Napi::Uint32Array array = info[0].As<Napi::Uint32Array>();
    ids.assign(array.Data(), array.Data() + array.ElementLength());
  } else {
    ids.push_back(info[0].As<Napi::Number>().Uint32Value());
  }
  std::vector<uint8_t> withdrawn(ids.size(), 0);
  std::vector<PoolBatch*> batches;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    for (size_t i = 0; i < ids.size(); i++) {
      auto found = queued_by_id_.find(ids[i]);
      if (found == queued_by_id_.end()) continue;
      batches.push_back(found->second->batch);
      queue_.erase(found->second);
      queued_by_id_.erase(found);
      withdrawn[i] = 1;
    }
    queued_.store(queue_.size(), std::memory_order_relaxed);
  }
  for (PoolBatch* batch : batches) ReleaseBatch(batch);
  RemoveInFlight(batches.size());
  if (!many) return Napi::Boolean::New(env, withdrawn[0] != 0);
  Napi::Uint8Array result = Napi::Uint8Array::New(env, withdrawn.size());
  std::copy(withdrawn.begin(), withdrawn.end(), result.Data());
  return result;
}

Napi::Value ThreadPool::Destroy(const Napi::CallbackInfo& info) {
  if (!shut_down_) napi_remove_env_cleanup_hook(env_, &ThreadPool::OnEnvCleanup, this);
  Shutdown();
  return info.Env().Undefined();
}

// spawn(count): reserves up to `count` more workers (within maxThreads); returns how many.
Napi::Value ThreadPool::Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (shut_down_) throw CodedError(env, "ERR_VMLINK_CLOSED", "ThreadPool: the pool is destroyed");
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "ThreadPool.spawn: count must be a number");
  int64_t count = info[0].As<Napi::Number>().Int64Value();
  ReapExited();
  return Napi::Number::New(env, static_cast<double>(count > 0 ? SpawnWorkers(static_cast<size_t>(count)) : 0));
}

Napi::Value ThreadPool::Threads(const Napi::CallbackInfo& info) {
  if (!shut_down_) ReapExited();
  return Napi::Number::New(info.Env(), static_cast<double>(live_.load(std::memory_order_relaxed)));
}

Napi::Value ThreadPool::IdleThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(idle_.load(std::memory_order_relaxed)));
}

Napi::Value ThreadPool::PeakThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(peak_.load(std::memory_order_relaxed)));
}

Napi::Value ThreadPool::Queued(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(queued_.load(std::memory_order_relaxed)));
}

Napi::Value ThreadPool::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(in_flight_));
}

size_t ThreadPool::SpawnWorkers(size_t count) {
  bool start = false;
  size_t reserved = 0;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    if (stopping_) return 0;
    size_t live = live_.load(std::memory_order_relaxed);
    reserved = std::min(count, max_threads_ - std::min(live, max_threads_));
    if (reserved == 0) return 0;
    live_.store(live + reserved, std::memory_order_relaxed);
    if (live + reserved > peak_.load(std::memory_order_relaxed)) peak_.store(live + reserved, std::memory_order_relaxed);
    starting_ += reserved;
    start = !spawner_active_;
    spawner_active_ = true;
  }
  if (start) StartWorker();
  return reserved;
}

void ThreadPool::StartWorker() {
  try {
    std::lock_guard<std::mutex> lock(workers_mutex_);
    uint64_t id = next_worker_id_++;
    workers_.emplace(id, std::thread([this, id] { WorkerMain(id); }));
  } catch (...) {
    // No thread (EAGAIN from clone): forget the reservations still waiting.
    std::lock_guard<std::mutex> lock(queue_mutex_);
    live_.store(live_.load(std::memory_order_relaxed) - starting_, std::memory_order_relaxed);
    starting_ = 0;
    spawner_active_ = false;
  }
}

void ThreadPool::ReapExited() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lock(workers_mutex_);
    if (exited_.empty()) return;
    for (uint64_t id : exited_) {
      auto it = workers_.find(id);
      if (it == workers_.end()) continue;
      done.push_back(std::move(it->second));
      workers_.erase(it);
    }
    exited_.clear();
  }
  for (std::thread& worker : done) worker.join();
}

void ThreadPool::WorkerMain(uint64_t id) {
  bool start_next = false;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    starting_--;
    if (stopping_) {
      live_.store(live_.load(std::memory_order_relaxed) - starting_, std::memory_order_relaxed);
      starting_ = 0;
    }
    start_next = starting_ > 0;
    if (!start_next) spawner_active_ = false;
  }
  if (start_next) StartWorker();
  for (;;) {
    PoolRequest request;
    bool more;
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      idle_.fetch_add(1, std::memory_order_relaxed);
      bool retire = false;
      while (!stopping_ && queue_.empty()) {
        // Idle for a whole timeout with more than the minimum alive: this worker goes.
        if (queue_cv_.wait_for(lock, idle_timeout_) == std::cv_status::timeout && queue_.empty() && !stopping_ &&
            live_.load(std::memory_order_relaxed) > min_threads_ + starting_) {
          retire = true;
          break;
        }
      }
      idle_.fetch_sub(1, std::memory_order_relaxed);
      if (stopping_ || retire) {
        live_.fetch_sub(1, std::memory_order_relaxed);
        lock.unlock();
        if (retire) {
          std::lock_guard<std::mutex> workers_lock(workers_mutex_);
          exited_.push_back(id);
        }
        return;
      }
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
// workers can finish in twice max_hold_us_ (0 turns holding off), JS does not need this completion to keep them
// busy, and every new request waits longer than that in the queue anyway; so the
// completion may ride along with a later one, as long as requests are not slow (recent
// mean under max_hold_us_), it is younger than max_hold_us_ and fewer than max_held_ wait.
// Otherwise (a short queue, page-cache hits that JS must refill quickly, slow requests,
// the end of a burst) the loop is woken at once.
bool ThreadPool::ShouldWake(std::chrono::steady_clock::time_point finished, double service_us, size_t queued) {
  recent_service_us_ = recent_service_us_ == 0 ? service_us : recent_service_us_ * 0.875 + service_us * 0.125;
  if (wake_sent_) return false;
  if (done_.size() == 1) first_held_ = finished;
  double threads = static_cast<double>(std::max<size_t>(1, live_.load(std::memory_order_relaxed)));
  double queued_work_us = static_cast<double>(queued) * recent_service_us_ / threads;
  bool hold = max_hold_us_ > 0 && queued_work_us > 2 * max_hold_us_ && recent_service_us_ < max_hold_us_ &&
              done_.size() < max_held_ && MicrosBetween(first_held_, finished) < max_hold_us_;
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
      ssize_t n;
      do n = preadv2(request.fd, request.iov.data(), iovcnt, position, RWF_NOWAIT);
      while (n < 0 && errno == EINTR);
      if (n >= 0 && (static_cast<size_t>(n) == length || n == 0)) {
        // All of it, or 0 at EOF. Whether that was a cache hit is for JS to judge from the
        // service time (a NOWAIT read of an uncached page can succeed after doing the I/O
        // on a host-cached virtual disk).
        completion->result = n;
        completion->flags = kNowaitServed;
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
    case PoolOp::kFallocate:
      completion->result = -SpaceFallocate(request.fd, static_cast<int>(request.mode), request.position, request.length);
      return;
    case PoolOp::kTruncate:
      completion->result = -SpaceTruncate(request.fd, request.position);
      return;
    case PoolOp::kDiscard: {
      bool used_ioctl = false;
      completion->result = -SpaceDiscard(request.fd, request.position, request.length, &used_ioctl);
      if (used_ioctl) completion->flags = kUsedBlkdiscard;
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
