#include "aio/threadpool/thread_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "aio/batch_layout.h"
#include "aio/threadpool/space_ops.h"
#include "common/errors.h"
#include "common/spin.h"

namespace vmlink {
using namespace batch;  // NOLINT(build/namespaces): the request/completion field names

namespace {

constexpr uint32_t kMaxThreads = 256;
// The longest wait setPolling accepts: 10 ms, past any sensible spin.
constexpr uint32_t kMaxPollUs = 10000;
// Slots are JS's request table indexes, reused once free: far below this in practice. The
// bound keeps a malformed slot from growing the in-flight bitmap past a few MiB.
constexpr double kMaxSlot = (1u << 24) - 1;

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

// A Uint8Array's bytes; false for anything else (napi_get_typedarray_info refuses a value
// that is not a typed array with napi_invalid_arg, and raises nothing).
bool ViewToIovec(napi_env env, napi_value value, iovec* out) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value arraybuffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array) return false;
  *out = iovec{data, length};
  return true;
}

// A request's buffers: one Uint8Array, or an Array of them (readv/writev). false when malformed.
bool BuffersToIov(napi_env env, napi_value value, std::vector<iovec>* iov) {
  // One view is the common case (JS passes a lone buffer as itself): tried first, it spares
  // an is-array check per request; a value that is not a view only fails the probe.
  iov->resize(1);
  if (ViewToIovec(env, value, iov->data())) return true;
  bool is_array = false;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array) return false;
  uint32_t count = 0;
  if (napi_get_array_length(env, value, &count) != napi_ok || count == 0 || count > IOV_MAX) return false;
  iov->resize(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    if (napi_get_element(env, value, i, &element) != napi_ok || !ViewToIovec(env, element, &(*iov)[i])) return false;
  }
  return true;
}

}  // namespace

Napi::Function ThreadPool::Define(Napi::Env env) {
  return DefineClass(env, "ThreadPool",
                     {
                         InstanceMethod<&ThreadPool::Submit>("submit"),
                         InstanceMethod<&ThreadPool::Cancel>("cancel"),
                         InstanceMethod<&ThreadPool::Destroy>("destroy"),
                         InstanceMethod<&ThreadPool::Spawn>("spawn"),
                         InstanceMethod<&ThreadPool::Trim>("trim"),
                         InstanceMethod<&ThreadPool::SetPolling>("setPolling"),
                         InstanceMethod<&ThreadPool::PollStats>("pollStats"),
                         InstanceAccessor<&ThreadPool::Threads>("threads"),
                         InstanceAccessor<&ThreadPool::IdleThreads>("idleThreads"),
                         InstanceAccessor<&ThreadPool::PeakThreads>("peakThreads"),
                         InstanceAccessor<&ThreadPool::SchedulingError>("schedulingError"),
                         InstanceMethod<&ThreadPool::SetWorkerCpus>("setWorkerCpus"),
                         InstanceAccessor<&ThreadPool::AffinityError>("affinityError"),
                         InstanceAccessor<&ThreadPool::Queued>("queued"),
                         InstanceAccessor<&ThreadPool::Pending>("inFlight"),
                         StaticValue("layout", MakeBatchLayout(env, {{"read", static_cast<int>(PoolOp::kRead)},
                                                                     {"write", static_cast<int>(PoolOp::kWrite)},
                                                                     {"fsync", static_cast<int>(PoolOp::kFsync)},
                                                                     {"fdatasync", static_cast<int>(PoolOp::kFdatasync)},
                                                                     {"readCacheFirst", static_cast<int>(PoolOp::kReadCacheFirst)},
                                                                     {"fallocate", static_cast<int>(PoolOp::kFallocate)},
                                                                     {"truncate", static_cast<int>(PoolOp::kTruncate)},
                                                                     {"discard", static_cast<int>(PoolOp::kDiscard)},
                                                                     {"readCachedHere", static_cast<int>(PoolOp::kReadCachedHere)}})),
                     });
}

// config.scheduling: the workers' Linux policy by name ("normal", "batch" or "idle").
static int ConfigPolicy(Napi::Env env, Napi::Value value) {
  std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (name == "normal") return SCHED_OTHER;
  if (name == "batch") return SCHED_BATCH;
  if (name == "idle") return SCHED_IDLE;
  if (!value.IsString()) throw Napi::TypeError::New(env, "ThreadPool: config.scheduling must be a string");
  throw CodedError(env, "ERR_OUT_OF_RANGE", "ThreadPool: config.scheduling must be 'normal', 'batch' or 'idle'. Received '" + name + "'");
}

ThreadPool::ThreadPool(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ThreadPool>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "ThreadPool: config must be an object");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "ThreadPool: onComplete must be a function");
  Napi::Object config = info[0].As<Napi::Object>();
  min_threads_ = ConfigNumber(env, config, "minThreads", 0, kMaxThreads);
  max_threads_ = ConfigNumber(env, config, "maxThreads", 1, kMaxThreads);
  keep_ = max_threads_;
  if (min_threads_ > max_threads_) {
    throw CodedError(env, "ERR_OUT_OF_RANGE", "ThreadPool: config.minThreads (" + std::to_string(min_threads_) +
                                                  ") must be <= config.maxThreads (" + std::to_string(max_threads_) + ")");
  }
  idle_timeout_ = std::chrono::milliseconds(ConfigNumber(env, config, "idleTimeoutMs", 1, 24u * 3600 * 1000));
  max_hold_us_ = ConfigNumber(env, config, "maxHoldUs", 0, 1000000);
  max_held_ = ConfigNumber(env, config, "maxHeld", 1, 1 << 20);
  worker_policy_ = ConfigPolicy(env, config.Get("scheduling"));
  size_t table_length = 0;
  completions_ = TableData<double>(config.Get("completions"), napi_float64_array, &table_length);
  completion_capacity_ = table_length / kCompletionStride;
  if (completions_ == nullptr || completion_capacity_ == 0) {
    throw Napi::TypeError::New(env, "ThreadPool: config.completions must be a Float64Array of at least one completion");
  }
  completions_ref_ = Napi::Persistent(config.Get("completions").As<Napi::Float64Array>());
  // What setWorkerCpus([]) gives back: where the pool's maker (the loop thread) may run.
  if (sched_getaffinity(0, sizeof(default_cpus_), &default_cpus_) != 0) ThrowErrno(env, errno, "sched_getaffinity");
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
  // Reads served in the hand-over call are delivered in this loop turn's check phase (as
  // setImmediate's callbacks are): no eventfd write and read, as a uv_async_send costs. The
  // idle handle, while started, keeps the poll from blocking first. Neither keeps the
  // process alive (async_ does, while anything is in flight).
  check_ = new uv_check_t;
  no_block_ = new uv_idle_t;
  uv_check_init(loop, check_);
  uv_idle_init(loop, no_block_);
  check_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  uv_unref(reinterpret_cast<uv_handle_t*>(no_block_));
  poller_ = std::make_unique<LoopPoller>(
      loop, [this] { return in_flight_ > 0; }, [this] { return done_count_.load(std::memory_order_seq_cst) > 0; },
      [this] {
        try {
          DeliverCompletions();
        } catch (...) {
          // Nothing may propagate into libuv; DeliverCompletions reports JS errors itself.
        }
      });
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
  {
    std::lock_guard<std::mutex> lock(roster_mutex_);
    stopping_.store(true, std::memory_order_seq_cst);
  }
  wake_.WakeAll();
  // A worker may be starting another as we go: take and join one at a time until none is left.
  for (;;) {
    JoinableThread worker;
    {
      std::lock_guard<std::mutex> lock(workers_mutex_);
      if (workers_.empty()) break;
      auto it = workers_.begin();
      worker = std::move(it->second);
      workers_.erase(it);
    }
    worker.Join();
  }
  {
    std::lock_guard<std::mutex> lock(workers_mutex_);
    exited_.clear();
  }
  // No worker runs any more: what is queued never will, and nothing will be delivered.
  queue_.Clear();
  for (uint32_t slot = 0; slot < entries_by_slot_.size(); slot++) ReleaseEntry(slot);
  slots_in_flight_.clear();
  {
    std::lock_guard<std::mutex> lock(done_mutex_);
    done_.clear();
    done_count_.store(0, std::memory_order_relaxed);
  }
  if (check_ != nullptr) {
    check_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(check_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_check_t*>(handle); });
    check_ = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(no_block_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_idle_t*>(handle); });
    no_block_ = nullptr;
  }
  if (poller_) poller_->Close();
  if (async_ != nullptr) {
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_async_t*>(handle); });
    async_ = nullptr;
  }
}

// submit(requests: Float64Array, count, buffers[], status: Int32Array, records: Float64Array)
// -> 1: queues requests 0..count-1 of the request table (batch_layout.h); buffers[i] is
// request i's Uint8Array, Uint8Array[] or undefined. A malformed request gets status
// EINVAL and is not queued; the hand-over is one record.
Napi::Value ThreadPool::Submit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (shut_down_) throw CodedError(env, "ERR_VMLINK_CLOSED", "ThreadPool: the pool is destroyed");
  auto started = std::chrono::steady_clock::now();
  ReapExited();
  size_t table_length = 0;
  size_t status_length = 0;
  size_t records_length = 0;
  const double* table = TableData<double>(info[0], napi_float64_array, &table_length);
  int32_t* status = TableData<int32_t>(info[3], napi_int32_array, &status_length);
  double* records = TableData<double>(info[4], napi_float64_array, &records_length);
  if (table == nullptr || status == nullptr || records == nullptr || records_length < kRecordStride || !info[1].IsNumber() ||
      !info[2].IsArray()) {
    throw Napi::TypeError::New(env, "ThreadPool.submit(requests: Float64Array, count, buffers[], status: Int32Array, records: Float64Array)");
  }
  int64_t count64 = info[1].As<Napi::Number>().Int64Value();
  if (count64 < 0 || static_cast<size_t>(count64) * kRequestStride > table_length || static_cast<size_t>(count64) > status_length) {
    throw Napi::RangeError::New(env, "ThreadPool.submit: count out of range");
  }
  size_t count = static_cast<size_t>(count64);
  napi_value buffers = info[2];

  std::vector<Queue::Entry*>& to_queue = batch_;
  to_queue.clear();
  std::vector<PoolCompletion>& served_here = served_here_;
  served_here.clear();
  int flags_fd = -1;
  int fd_flags = -1;
  for (size_t i = 0; i < count; i++) {
    const double* fields = table + i * kRequestStride;
    status[i] = kStatusSubmitted;
    PoolRequest request;
    double op = fields[kReqOp];
    double slot = fields[kReqSlot];
    if (!(op >= 0 && op <= static_cast<double>(PoolOp::kReadCachedHere)) || !(slot >= 0 && slot <= kMaxSlot)) {
      status[i] = EINVAL;
      continue;
    }
    request.slot = static_cast<uint32_t>(slot);
    if (SlotInFlight(request.slot)) {
      status[i] = EBUSY;  // a JS bookkeeping bug; never reuse a slot in flight
      continue;
    }
    request.op = static_cast<PoolOp>(static_cast<uint32_t>(op));
    request.fd = static_cast<int>(fields[kReqFd]);
    request.mode = static_cast<uint32_t>(fields[kReqMode]);
    request.position = U64Field(fields, kReqPositionLow, kReqPositionHigh);
    request.length = U64Field(fields, kReqLengthLow, kReqLengthHigh);
    if (request.position > static_cast<uint64_t>(INT64_MAX) || request.length > static_cast<uint64_t>(INT64_MAX)) {
      status[i] = EINVAL;
      continue;
    }
    bool has_buffers = (request.op <= PoolOp::kReadCacheFirst && request.op != PoolOp::kFsync && request.op != PoolOp::kFdatasync) ||
                       request.op == PoolOp::kReadCachedHere;
    bool here = request.op == PoolOp::kReadCachedHere;
    if (has_buffers) {
      // A read tried in this call fills the reused scratch list: served, it needs none of its own.
      std::vector<iovec>* iov = here ? &here_iov_ : &request.iov;
      napi_value value;
      if (napi_get_element(env, buffers, static_cast<uint32_t>(i), &value) != napi_ok || !BuffersToIov(env, value, iov)) {
        status[i] = EINVAL;
        continue;
      }
    }
    request.enqueued = started;
    MarkSlot(request.slot, true);
    bool is_write = request.op == PoolOp::kWrite;
    if (here || is_write) {
      // One F_GETFL per fd per call (a batch is mostly one file's). Only another thread
      // closing and reusing the fd number during this call could make it stale; the cost
      // would be one read tried here that should not have been, or the reverse, or one
      // write misreported to JS's growth policy.
      if (request.fd != flags_fd) {
        flags_fd = request.fd;
        fd_flags = fcntl(request.fd, F_GETFL);
      }
    }
    if (is_write && fd_flags >= 0 && (fd_flags & O_DIRECT) != 0) request.flags |= kFlagDirectFd;
    if (here) {
      PoolCompletion completion;
      if (ReadCachedHere(request, here_iov_, fd_flags, &completion, &request.flags)) {
        served_here.push_back(completion);
        continue;
      }
      request.iov = here_iov_;
      request.op = PoolOp::kRead;
    }
    uint32_t queued_slot = request.slot;
    auto* entry = new Queue::Entry(std::move(request));
    if (queued_slot >= entries_by_slot_.size()) {
      entries_by_slot_.resize(std::max<size_t>(queued_slot + 1, entries_by_slot_.size() * 2), nullptr);
    }
    entries_by_slot_[queued_slot] = entry;
    to_queue.push_back(entry);
  }
  if (!served_here.empty()) {
    // Delivered after this turn's poll, with whatever the workers finish by then.
    {
      std::lock_guard<std::mutex> lock(done_mutex_);
      done_.insert(done_.end(), served_here.begin(), served_here.end());
      done_count_.store(done_.size(), std::memory_order_release);
    }
    AddInFlight(served_here.size());
    DeliverInCheckPhase();
  }
  size_t to_workers = to_queue.size();
  size_t accepted = to_workers + served_here.size();
  if (to_workers > 0) {
    queue_.Push(to_queue);
    // Wake one sleeping worker (none: no system call); a worker that takes a request and
    // sees more queued wakes the next (WorkerMain). Waking every worker for every batch cost
    // a context switch each on a 2-core machine even when one worker drained the batch
    // alone (page-cache hits take ~2 us).
    wake_.WakeOne();
    AddInFlight(to_workers);
  }
  records[0] = static_cast<double>(count);
  records[1] = static_cast<double>(accepted);
  records[2] = MicrosBetween(started, std::chrono::steady_clock::now());
  return Napi::Number::New(env, 1);
}

// cancel(slots: Uint32Array) -> Uint8Array: per slot, 1 when the request was still queued
// (it will never run, no completion comes), else 0. Each is withdrawn with one
// compare-and-swap against the worker that would take it: no lock, nothing to wait for.
Napi::Value ThreadPool::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "ThreadPool.cancel: slots must be a Uint32Array");
  }
  Napi::Uint32Array slots = info[0].As<Napi::Uint32Array>();
  Napi::Uint8Array withdrawn = Napi::Uint8Array::New(env, slots.ElementLength());
  size_t count = 0;
  for (size_t i = 0; i < slots.ElementLength(); i++) {
    uint32_t slot = slots[i];
    withdrawn[i] = 0;
    if (slot >= entries_by_slot_.size() || entries_by_slot_[slot] == nullptr || !queue_.Withdraw(entries_by_slot_[slot])) continue;
    ReleaseEntry(slot);
    MarkSlot(slot, false);
    withdrawn[i] = 1;
    count++;
  }
  RemoveInFlight(count);
  return withdrawn;
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

// trim(count): workers beyond max(count, minThreads) leave when they next find the queue
// empty, instead of sleeping until the idle timeout. Spawn past it again is allowed.
Napi::Value ThreadPool::Trim(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "ThreadPool.trim: count must be a number");
  int64_t count = info[0].As<Napi::Number>().Int64Value();
  {
    std::lock_guard<std::mutex> lock(roster_mutex_);
    keep_.store(std::max<size_t>(min_threads_, count > 0 ? static_cast<size_t>(count) : 0), std::memory_order_seq_cst);
  }
  // No wake-up: the ceiling trims from completions on the loop thread, where waking every
  // sleeper would cost a system call and a CPU each; the extra ones leave when next woken.
  ReapExited();
  return env.Undefined();
}

Napi::Value ThreadPool::Threads(const Napi::CallbackInfo& info) {
  if (!shut_down_) ReapExited();
  return Napi::Number::New(info.Env(), static_cast<double>(live_.load(std::memory_order_relaxed)));
}

Napi::Value ThreadPool::IdleThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(idle_.load(std::memory_order_seq_cst)));
}

Napi::Value ThreadPool::PeakThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(peak_.load(std::memory_order_relaxed)));
}

// schedulingError: the errno name (e.g. "EPERM") of the first worker refused its policy, else undefined.
Napi::Value ThreadPool::SchedulingError(const Napi::CallbackInfo& info) {
  int err = scheduling_errno_.load(std::memory_order_relaxed);
  if (err == 0) return info.Env().Undefined();
  return Napi::String::New(info.Env(), ErrnoName(err));
}

// setWorkerCpus(cpus: Uint32Array): the CPUs every worker may run on from its next request
// on (sleeping workers are woken to move); empty: the affinity of the thread that made the
// pool. Which CPUs is JS's decision (worker-cpus.ts); a worker refused the set
// (sched_setaffinity) keeps running where it was and affinityError says why.
Napi::Value ThreadPool::SetWorkerCpus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "ThreadPool.setWorkerCpus: cpus must be a Uint32Array");
  }
  Napi::Uint32Array cpus = info[0].As<Napi::Uint32Array>();
  cpu_set_t set;
  CPU_ZERO(&set);
  for (size_t i = 0; i < cpus.ElementLength(); i++) {
    if (cpus[i] >= CPU_SETSIZE) {
      throw CodedError(env, "ERR_OUT_OF_RANGE", "ThreadPool.setWorkerCpus: a CPU number must be < " + std::to_string(CPU_SETSIZE) +
                                                    ". Received " + std::to_string(cpus[i]));
    }
    CPU_SET(cpus[i], &set);
  }
  {
    std::lock_guard<std::mutex> lock(cpus_mutex_);
    worker_cpus_ = cpus.ElementLength() == 0 ? default_cpus_ : set;
    cpus_generation_.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: see WakeWord
  }
  wake_.WakeAll();  // sleeping workers move now (WakeWord: a wake after their look is not lost)
  return env.Undefined();
}

// affinityError: the errno name (e.g. "EINVAL") of the first worker refused its CPU set, else undefined.
Napi::Value ThreadPool::AffinityError(const Napi::CallbackInfo& info) {
  int err = affinity_errno_.load(std::memory_order_relaxed);
  if (err == 0) return info.Env().Undefined();
  return Napi::String::New(info.Env(), ErrnoName(err));
}

void ThreadPool::FollowWorkerCpus(uint64_t* applied) {
  uint64_t generation = cpus_generation_.load(std::memory_order_acquire);
  if (generation == *applied) return;
  cpu_set_t set;
  {
    std::lock_guard<std::mutex> lock(cpus_mutex_);
    set = worker_cpus_;
    generation = cpus_generation_.load(std::memory_order_relaxed);
  }
  *applied = generation;
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    int expected = 0;
    affinity_errno_.compare_exchange_strong(expected, errno, std::memory_order_relaxed);
  }
}

Napi::Value ThreadPool::Queued(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(queue_.queued()));
}

Napi::Value ThreadPool::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(in_flight_));
}

size_t ThreadPool::SpawnWorkers(size_t count) {
  bool start = false;
  size_t reserved = 0;
  {
    std::lock_guard<std::mutex> lock(roster_mutex_);
    if (stopping_.load(std::memory_order_relaxed)) return 0;
    size_t live = live_.load(std::memory_order_relaxed);
    reserved = std::min(count, max_threads_ - std::min(live, max_threads_));
    keep_.store(std::max(keep_.load(std::memory_order_relaxed), live + reserved), std::memory_order_relaxed);  // spawning asks to keep them
    if (reserved == 0) return 0;
    live_.fetch_add(reserved, std::memory_order_relaxed);
    if (live + reserved > peak_.load(std::memory_order_relaxed)) peak_.store(live + reserved, std::memory_order_relaxed);
    starting_.fetch_add(reserved, std::memory_order_relaxed);
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
    workers_.emplace(id, JoinableThread([this, id] { WorkerMain(id); }));
  } catch (...) {
    // No thread (EAGAIN from clone): forget the reservations still waiting.
    std::lock_guard<std::mutex> lock(roster_mutex_);
    live_.fetch_sub(starting_.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    spawner_active_ = false;
  }
}

// Called on the loop thread: joins only the workers that have ended. One that has left
// WorkerMain may still need a CPU to finish; waiting for it here stalled the loop for up
// to 10 ms (O_DIRECT appends on 2 busy cores), so it stays listed for the next call.
// Nor does it wait for the lock: a worker starting the next one holds it across the
// thread's creation, and one preempted there (2 busy cores, a pool growing) would keep the
// loop thread waiting. Reaping is only tidying; the next call does it.
void ThreadPool::ReapExited() {
  std::unique_lock<std::mutex> lock(workers_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  auto unfinished = std::remove_if(exited_.begin(), exited_.end(), [this](uint64_t id) {
    auto it = workers_.find(id);
    if (it == workers_.end()) return true;
    if (!it->second.TryJoin()) return false;
    workers_.erase(it);
    return true;
  });
  exited_.erase(unfinished, exited_.end());
}

void ThreadPool::WorkerMain(uint64_t id) {
  // Named, so that top -H, perf and /proc/PID/task/TID/comm tell the pool's workers from
  // V8's and libuv's threads (all "node" otherwise). Best effort: a name is not a must.
  pthread_setname_np(pthread_self(), "vmlink-aio");
  if (worker_policy_ != SCHED_OTHER) {
    // Lowering the policy (SCHED_BATCH, SCHED_IDLE) needs no privilege; which one is JS's
    // decision (config.scheduling).
    sched_param param{};
    if (sched_setscheduler(0, worker_policy_, &param) != 0) {
      int expected = 0;
      scheduling_errno_.compare_exchange_strong(expected, errno, std::memory_order_relaxed);
    }
  }
  bool start_next = false;
  {
    std::lock_guard<std::mutex> lock(roster_mutex_);
    starting_.fetch_sub(1, std::memory_order_relaxed);
    // Stopping: the reservations not yet started never will be. A read-modify-write, since
    // workers already stopping count themselves down outside the lock meanwhile (a load
    // and a store here once lost one of theirs: threads 1 after destroy, seen in CI).
    if (stopping_.load(std::memory_order_relaxed)) live_.fetch_sub(starting_.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    start_next = starting_.load(std::memory_order_relaxed) > 0;
    if (!start_next) spawner_active_ = false;
  }
  if (start_next) StartWorker();
  uint64_t cpus_applied = 0;
  for (;;) {
    FollowWorkerCpus(&cpus_applied);
    Queue::Entry* entry = nullptr;
    bool slept = false;
    bool looked = false;
    bool retire = false;
    idle_.fetch_add(1, std::memory_order_relaxed);
    while (!stopping_.load(std::memory_order_acquire) && (entry = queue_.Take()) == nullptr) {
      if (cpus_generation_.load(std::memory_order_acquire) != cpus_applied) {
        // Moved while idle (setWorkerCpus woke it), so that its next request starts there.
        FollowWorkerCpus(&cpus_applied);
        continue;
      }
      if ((retire = Retire(false))) break;  // more workers than JS last asked to keep (trim())
      uint32_t spin_us = worker_spin_us_.load(std::memory_order_relaxed);
      if (spin_us > 0 && !looked) {
        looked = true;
        // The loop thread usually hands over the next request within microseconds of a
        // completion: looking for it costs less than sleeping and being woken. One worker
        // looks at a time: more would only take the CPU the others' completions need.
        bool none = false;
        if (worker_looking_.compare_exchange_strong(none, true, std::memory_order_acq_rel)) {
          SpinUntil([this] { return queue_.queued() > 0; }, spin_us);
          worker_looking_.store(false, std::memory_order_release);
          continue;
        }
      }
      uint32_t ticket = wake_.Prepare();
      if (queue_.queued() > 0 || stopping_.load(std::memory_order_seq_cst) ||
          cpus_generation_.load(std::memory_order_seq_cst) != cpus_applied || MoreThanKept(std::memory_order_seq_cst)) {
        wake_.Abandon();
        continue;
      }
      slept = true;
      // Idle for a whole timeout with more than the minimum alive: this worker goes.
      if (!wake_.Sleep(ticket, idle_timeout_) && queue_.queued() == 0 && (retire = Retire(true))) break;
    }
    // seq_cst with JS's look at idleThreads after a submit (Push counts seq_cst too): either
    // JS sees this worker gone and spawns another for what it queued, or the check below
    // sees the request and the worker stays.
    idle_.fetch_sub(1, std::memory_order_seq_cst);
    if (entry == nullptr) {  // stopping, or retiring
      if (retire && queue_.queued() > 0 && !stopping_.load(std::memory_order_seq_cst) && Unretire()) continue;
      if (retire) {
        std::lock_guard<std::mutex> workers_lock(workers_mutex_);
        exited_.push_back(id);
      } else {
        live_.fetch_sub(1, std::memory_order_relaxed);
      }
      return;
    }
    PoolRequest request = std::move(entry->value);
    Queue::Release(entry);
    if (queue_.queued() > 0) wake_.WakeOne();  // chain: a sleeping worker takes the next one
    PoolCompletion completion;
    completion.slot = request.slot;
    auto started = std::chrono::steady_clock::now();
    Execute(request, &completion);
    completion.flags |= request.flags | (slept ? kFlagWorkerSlept : 0);
    auto finished = std::chrono::steady_clock::now();
    completion.queue_wait_us = MicrosBetween(request.enqueued, started);
    completion.service_us = MicrosBetween(started, finished);
    bool wake;
    {
      std::lock_guard<std::mutex> lock(done_mutex_);
      done_.push_back(completion);
      done_count_.store(done_.size(), std::memory_order_seq_cst);
      wake = ShouldWake(finished, completion.service_us, queue_.queued());
    }
    // A loop thread spinning for completions sees this one without the eventfd write.
    if (wake && !poller_->Spinning()) uv_async_send(async_);
  }
}

// Taken only by a worker that found no work: trim() asked for fewer workers, or it idled
// for a whole timeout with more than minThreads alive.
bool ThreadPool::Retire(bool timed_out) {
  if (!timed_out && !MoreThanKept(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lock(roster_mutex_);
  if (stopping_.load(std::memory_order_relaxed)) return false;
  bool leave = MoreThanKept(std::memory_order_relaxed) ||
               (timed_out && live_.load(std::memory_order_relaxed) > min_threads_ + starting_.load(std::memory_order_relaxed));
  if (leave) live_.fetch_sub(1, std::memory_order_relaxed);
  return leave;
}

// More workers alive than JS last asked to keep (trim()), those still starting aside. The
// worker's last look before it sleeps reads it seq_cst (against trim()'s store and wake).
bool ThreadPool::MoreThanKept(std::memory_order order) const {
  return live_.load(order) > keep_.load(order) + starting_.load(order);
}

bool ThreadPool::Unretire() {
  std::lock_guard<std::mutex> lock(roster_mutex_);
  if (stopping_.load(std::memory_order_relaxed) || live_.load(std::memory_order_relaxed) >= max_threads_) return false;  // JS spawned one meanwhile
  live_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void ThreadPool::ReleaseEntry(uint32_t slot) {
  if (slot >= entries_by_slot_.size() || entries_by_slot_[slot] == nullptr) return;
  Queue::Release(entries_by_slot_[slot]);
  entries_by_slot_[slot] = nullptr;
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

void ThreadPool::MarkSlot(uint32_t slot, bool in_flight) {
  if (slot >= slots_in_flight_.size()) {
    if (!in_flight) return;
    slots_in_flight_.resize(std::max<size_t>(slot + 1, slots_in_flight_.size() * 2));
  }
  slots_in_flight_[slot] = in_flight;
}

bool ThreadPool::ReadCachedHere(const PoolRequest& request, const std::vector<iovec>& iov, int fd_flags, PoolCompletion* completion,
                                uint32_t* flags) {
  if (fd_flags < 0) return false;  // EBADF and the like: the worker's read reports it
  if ((fd_flags & O_DIRECT) != 0) {
    *flags = kFlagDirectFd;
    return false;
  }
  size_t length = 0;
  for (const iovec& v : iov) length += v.iov_len;
  auto started = std::chrono::steady_clock::now();
  ssize_t n;
  do n = preadv2(request.fd, iov.data(), static_cast<int>(iov.size()), static_cast<off_t>(request.position), RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) *flags = kFlagMissedHere;
    return false;  // EAGAIN, or an error the worker's read reports with its errno
  }
  if (static_cast<size_t>(n) != length && n != 0) return false;  // a part: the worker reads it all
  completion->slot = request.slot;
  completion->result = n;
  completion->service_us = MicrosBetween(started, std::chrono::steady_clock::now());
  completion->flags = kFlagServedHere;
  return true;
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
        completion->flags = kFlagNowaitServed;
        return;
      }
      // EAGAIN, a part, or EOPNOTSUPP: read again the usual way (the cached part costs a copy).
      [[fallthrough]];
    }
    case PoolOp::kReadCachedHere:  // turned into kRead at hand-over; never queued as itself
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
      if (used_ioctl) completion->flags = kFlagUsedBlkdiscard;
      return;
    }
  }
}

void ThreadPool::DeliverInCheckPhase() {
  if (check_ == nullptr || uv_is_active(reinterpret_cast<uv_handle_t*>(check_))) return;
  uv_idle_start(no_block_, [](uv_idle_t*) {});
  uv_check_start(check_, &ThreadPool::OnCheck);
}

void ThreadPool::OnCheck(uv_check_t* handle) {
  auto* pool = static_cast<ThreadPool*>(handle->data);
  if (pool == nullptr) return;
  // Stopped first: reads served during the delivery start it again, for the next turn
  // (libuv runs a check handle started in its own callback on the next iteration).
  uv_check_stop(pool->check_);
  uv_idle_stop(pool->no_block_);
  try {
    pool->DeliverCompletions();
  } catch (...) {
    // Nothing may propagate into libuv; DeliverCompletions reports JS errors itself.
  }
}

// setPolling(loopPollUs, workerSpinUs): how long the loop thread waits for a completion
// before it blocks in its poll (LoopPoller), and one worker for a request before it sleeps
// (WorkerMain); 0 = never. When and how long is JS's decision (polling.ts).
Napi::Value ThreadPool::SetPolling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static const char* const kNames[] = {"loopPollUs", "workerSpinUs"};
  uint32_t us[2];
  for (size_t i = 0; i < 2; i++) {
    if (!info[i].IsNumber()) throw Napi::TypeError::New(env, std::string("ThreadPool.setPolling: ") + kNames[i] + " must be a number");
    double value = info[i].As<Napi::Number>().DoubleValue();
    if (!(value >= 0 && value <= kMaxPollUs) || value != static_cast<double>(static_cast<uint32_t>(value))) {
      throw CodedError(env, "ERR_OUT_OF_RANGE", std::string("ThreadPool.setPolling: ") + kNames[i] + " must be an integer >= 0 and <= " +
                                                    std::to_string(kMaxPollUs) + ". Received " + Shown(value));
    }
    us[i] = static_cast<uint32_t>(value);
  }
  if (poller_) poller_->SetPollUs(us[0]);
  worker_spin_us_.store(us[1], std::memory_order_relaxed);
  return env.Undefined();
}

// pollStats() -> [polls, hits, spentUs, cutShort] since the pool began (LoopPollStats).
Napi::Value ThreadPool::PollStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, 4);
  const LoopPollStats& stats = poller_->stats();
  out.Set(0u, stats.polls);
  out.Set(1u, stats.hits);
  out.Set(2u, stats.spent_us);
  out.Set(3u, stats.cut_short);
  return out;
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
  std::vector<PoolCompletion>& completions = delivering_;
  completions.clear();
  {
    std::lock_guard<std::mutex> lock(done_mutex_);
    completions.swap(done_);
    done_count_.store(0, std::memory_order_relaxed);
    wake_sent_ = false;
  }
  if (completions.empty()) return;
  // Raw N-API calls with checked statuses: this runs from a libuv callback, where a C++
  // exception must not escape, and the env may be shutting down (a terminated worker).
  napi_env env = env_;
  // One callback per table-full; the table is JS's, reused for every call.
  for (size_t first = 0; first < completions.size() && !shut_down_; first += completion_capacity_) {
    size_t count = std::min(completion_capacity_, completions.size() - first);
    double* out = completions_;
    for (size_t i = first; i < first + count; i++) {
      const PoolCompletion& completion = completions[i];
      out[kDoneSlot] = completion.slot;
      MarkSlot(completion.slot, false);
      ReleaseEntry(completion.slot);
      out[kDoneResult] = static_cast<double>(completion.result);
      out[kDonePartial] = static_cast<double>(completion.partial);
      out[kDoneQueueWaitUs] = completion.queue_wait_us;
      out[kDoneServiceUs] = completion.service_us;
      out[kDoneFlags] = completion.flags;
      out += kCompletionStride;
    }
    RemoveInFlight(count);
    napi_handle_scope scope = nullptr;
    if (napi_open_handle_scope(env, &scope) != napi_ok) continue;
    // MakeCallback, so promise reactions run right after (as for any Node I/O callback).
    napi_value receiver = nullptr;
    napi_value callback = nullptr;
    napi_value argument = nullptr;
    napi_value ignored = nullptr;
    if (napi_get_reference_value(env, static_cast<napi_ref>(*this), &receiver) == napi_ok &&
        napi_get_reference_value(env, static_cast<napi_ref>(on_complete_), &callback) == napi_ok && receiver != nullptr &&
        callback != nullptr && napi_create_uint32(env, static_cast<uint32_t>(count), &argument) == napi_ok) {
      napi_status status = napi_make_callback(env, *async_context_, receiver, callback, 1, &argument, &ignored);
      if (status == napi_pending_exception) {
        napi_value error = nullptr;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
      }
    }
    napi_close_handle_scope(env, scope);
  }
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
