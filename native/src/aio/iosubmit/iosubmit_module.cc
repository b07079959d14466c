// IoSubmitContext: one kernel AIO context for JS, built for batches. JS (@vmlink/aio's
// BatchQueue) fills a request table (batch_layout.h) and calls submit() once per batch;
// the native side turns the requests into iocbs and hands them to io_submit up to 32 at a
// time, timing every call. Completions wake an eventfd watched on the Node loop; they are
// reaped in batches and delivered to JS with one callback per batch through the completion
// table (batch_layout.h).
//
// Buffers: the native side keeps only raw pointers. The JS side keeps every buffer (and
// this object) strongly reachable until its completion arrives; io_destroy, which runs on
// destroy() or finalization, waits for whatever is still in flight.
#include <errno.h>
#include <sys/uio.h>
#include <time.h>

#include <memory>
#include <string>
#include <vector>

#include "aio/batch_layout.h"
#include "aio/iosubmit/kernel_aio.h"
#include "common/errors.h"
#include "common/module.h"
#include "common/poll_watcher.h"

namespace vmlink {
using namespace batch;  // NOLINT(build/namespaces): the request/completion field names

namespace {

// Op codes in the request table's op field (exported in the layout). A read or write with
// one buffer becomes IOCB_CMD_PREAD/PWRITE, with a list IOCB_CMD_PREADV/PWRITEV.
enum Op { kOpRead = 0, kOpWrite, kOpFsync, kOpFdatasync };

constexpr int kMaxIocbsPerCall = 32;  // like QEMU's linux-aio
constexpr uint32_t kMaxInFlightLimit = 1u << 20;

double NowMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

bool IsAligned(uint64_t value, uint64_t alignment) { return alignment <= 1 || value % alignment == 0; }

struct Slot {
  iocb cb;
  std::vector<iovec> iov;
  bool busy = false;      // in the kernel
  bool reserved = false;  // prepared in the submit() call under way (a slot named twice fails the second time)
  double submittedAt = 0;  // NowMicros() of its io_submit call, for the completion's serviceUs
};

class IoSubmitContext : public Napi::ObjectWrap<IoSubmitContext> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IoSubmitContext",
                       {
                           InstanceMethod<&IoSubmitContext::Submit>("submit"),
                           InstanceMethod<&IoSubmitContext::Destroy>("destroy"),
                           InstanceAccessor<&IoSubmitContext::InFlight>("inFlight"),
                           InstanceAccessor<&IoSubmitContext::Destroyed>("destroyed"),
                           InstanceAccessor<&IoSubmitContext::UsesRing>("usesRing"),
                           InstanceAccessor<&IoSubmitContext::EventFd>("eventFd"),
                           StaticValue("layout", Layout(env)),
                       });
  }

  // { requestStride, request, ..., ops } (batch_layout.h) plus this engine's limits.
  static Napi::Object Layout(Napi::Env env) {
    Napi::Object layout = MakeBatchLayout(env, {{"read", kOpRead}, {"write", kOpWrite}, {"fsync", kOpFsync}, {"fdatasync", kOpFdatasync}});
    layout.Set("maxIocbsPerCall", static_cast<double>(kMaxIocbsPerCall));
    layout.Set("maxInFlightLimit", static_cast<double>(kMaxInFlightLimit));
    layout.Set("rwfNowait", static_cast<double>(RWF_NOWAIT));
    return layout;
  }

  // new IoSubmitContext({ maxInFlight, completions: Float64Array }, onComplete(count))
  explicit IoSubmitContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoSubmitContext>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "IoSubmitContext: config must be an object");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onComplete must be a function");
    Napi::Object config = info[0].As<Napi::Object>();
    if (!config.Get("maxInFlight").IsNumber()) throw Napi::TypeError::New(env, "maxInFlight must be a number");
    int64_t requested = config.Get("maxInFlight").As<Napi::Number>().Int64Value();
    if (requested < 1 || requested > kMaxInFlightLimit) {
      throw Napi::RangeError::New(env, "maxInFlight must be in 1.." + std::to_string(kMaxInFlightLimit) +
                                           "; got " + std::to_string(requested));
    }
    maxInFlight_ = static_cast<uint32_t>(requested);
    size_t completionLength = 0;
    completionData_ = TableData<double>(config.Get("completions"), napi_float64_array, &completionLength);
    if (completionData_ == nullptr || completionLength < static_cast<size_t>(maxInFlight_) * kCompletionStride) {
      throw Napi::TypeError::New(env, "IoSubmitContext: config.completions must be a Float64Array of maxInFlight completions");
    }
    completions_ = Napi::Persistent(config.Get("completions").As<Napi::Float64Array>());
    onComplete_ = Napi::Persistent(info[1].As<Napi::Function>());

    const char* failed = "";
    kernel_ = std::make_unique<aio::KernelAio>();
    int err = kernel_->Open(maxInFlight_, &failed);
    if (err != 0) ThrowSetupError(env, err, failed);

    slots_.resize(maxInFlight_);
    events_.resize(maxInFlight_);
    batchIndices_.reserve(kMaxIocbsPerCall);
    batch_.reserve(kMaxIocbsPerCall);


    watcher_ = std::make_unique<PollWatcher>(env, kernel_->eventFd());
    int rc = watcher_->Start(UV_READABLE, [this](int, int) { OnEventFdReadable(); });
    if (rc != 0) throw Napi::Error::New(env, std::string("uv_poll_start ") + uv_err_name(rc));
    watcher_->Unref();  // nothing in flight yet: do not keep the process alive
  }

  ~IoSubmitContext() override { Teardown(); }

 private:
  [[noreturn]] static void ThrowSetupError(Napi::Env env, int err, const char* syscall) {
    Napi::Error error = ErrnoError(env, err, syscall);
    if (err == EAGAIN && std::string(syscall) == "io_setup") {
      long max = aio::ReadProcLong("/proc/sys/fs/aio-max-nr");
      long used = aio::ReadProcLong("/proc/sys/fs/aio-nr");
      std::string message = "io_setup EAGAIN: the kernel's AIO event limit is exhausted; raise "
                            "/proc/sys/fs/aio-max-nr (now " + std::to_string(max) + ", in use " +
                            std::to_string(used) + ") or lower maxInFlight";
      error.Value().Set("message", message);
      error.Value().Set("aioMaxNr", Napi::Number::New(env, static_cast<double>(max)));
      error.Value().Set("aioNr", Napi::Number::New(env, static_cast<double>(used)));
    }
    throw error;
  }

  void CheckAlive(Napi::Env env) const {
    if (destroyed_) throw CodedError(env, "ERR_VMLINK_CLOSED", "the io_submit context is destroyed");
  }

  // Fills slot.cb from request `index`; returns kStatusSubmitted when ready to submit, else
  // a status (misaligned or an errno) that fails only this request.
  int Prepare(const double* req, const Napi::Value& buffers) {
    double slotNumber = req[kReqSlot];
    if (!(slotNumber >= 0 && slotNumber < maxInFlight_)) return EINVAL;
    uint32_t slotIndex = static_cast<uint32_t>(slotNumber);
    Slot& slot = slots_[slotIndex];
    if (slot.busy || slot.reserved) return EBUSY;  // a JS bookkeeping bug; never reuse a slot in flight
    int op = static_cast<int>(req[kReqOp]);
    uint64_t position = U64Field(req, kReqPositionLow, kReqPositionHigh);
    uint64_t alignMemory = static_cast<uint64_t>(req[kReqAlignMemory]);
    uint64_t alignOffset = static_cast<uint64_t>(req[kReqAlignOffset]);
    uint64_t alignLength = static_cast<uint64_t>(req[kReqAlignLength]);
    bool checkAlignment = alignMemory > 0;

    iocb& cb = slot.cb;
    cb = iocb{};
    cb.aio_data = slotIndex;
    cb.aio_fildes = static_cast<uint32_t>(req[kReqFd]);
    cb.aio_flags = IOCB_FLAG_RESFD;
    cb.aio_resfd = static_cast<uint32_t>(kernel_->eventFd());
    cb.aio_rw_flags = static_cast<int>(req[kReqRwFlags]);
    cb.aio_offset = static_cast<int64_t>(position);

    if (op == kOpFsync || op == kOpFdatasync) {
      cb.aio_lio_opcode = op == kOpFsync ? IOCB_CMD_FSYNC : IOCB_CMD_FDSYNC;
      cb.aio_rw_flags = 0;
      cb.aio_offset = 0;
      return kStatusSubmitted;
    }
    if (checkAlignment && !IsAligned(position, alignOffset)) return kStatusMisaligned;

    if (op != kOpRead && op != kOpWrite) return EINVAL;
    if (buffers.IsTypedArray()) {
      void* data;
      size_t length;
      if (!TypedArrayBytes(buffers, &data, &length)) return EINVAL;
      if (checkAlignment && !(IsAligned(reinterpret_cast<uintptr_t>(data), alignMemory) &&
                              IsAligned(length, alignLength))) {
        return kStatusMisaligned;
      }
      cb.aio_lio_opcode = op == kOpRead ? IOCB_CMD_PREAD : IOCB_CMD_PWRITE;
      cb.aio_buf = reinterpret_cast<uintptr_t>(data);
      cb.aio_nbytes = length;
      return kStatusSubmitted;
    }
    if (buffers.IsArray()) {
      Napi::Array list = buffers.As<Napi::Array>();
      uint32_t count = list.Length();
      if (count == 0 || count > IOV_MAX) return EINVAL;
      slot.iov.resize(count);
      for (uint32_t i = 0; i < count; i++) {
        void* data;
        size_t length;
        if (!TypedArrayBytes(list.Get(i), &data, &length)) return EINVAL;
        if (checkAlignment && !(IsAligned(reinterpret_cast<uintptr_t>(data), alignMemory) &&
                                IsAligned(length, alignLength))) {
          return kStatusMisaligned;
        }
        slot.iov[i] = iovec{data, length};
      }
      cb.aio_lio_opcode = op == kOpRead ? IOCB_CMD_PREADV : IOCB_CMD_PWRITEV;
      cb.aio_buf = reinterpret_cast<uintptr_t>(slot.iov.data());
      cb.aio_nbytes = count;
      return kStatusSubmitted;
    }
    return EINVAL;
  }

  bool TypedArrayBytes(const Napi::Value& value, void** data, size_t* length) {
    if (!value.IsTypedArray()) return false;
    napi_typedarray_type type;
    size_t elements;
    napi_value arrayBuffer;
    size_t byteOffset;
    if (napi_get_typedarray_info(value.Env(), value, &type, &elements, data, &arrayBuffer, &byteOffset) != napi_ok) {
      return false;
    }
    if (type != napi_uint8_array) return false;
    *length = elements;
    return true;
  }

  // submit(requests: Float64Array, count, buffers[], status: Int32Array, records: Float64Array)
  // -> the number of records: buffers[i] is the Uint8Array (one buffer), Uint8Array[] or
  // undefined (fsync) of request i. Writes one status per request and one record per
  // io_submit call (at most count + 1 of them).
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckAlive(env);
    size_t tableLength = 0;
    size_t statusLength = 0;
    size_t recordsLength = 0;
    requestData_ = TableData<double>(info[0], napi_float64_array, &tableLength);
    statusData_ = TableData<int32_t>(info[3], napi_int32_array, &statusLength);
    recordData_ = TableData<double>(info[4], napi_float64_array, &recordsLength);
    if (requestData_ == nullptr || statusData_ == nullptr || recordData_ == nullptr || !info[1].IsNumber() || !info[2].IsArray()) {
      throw Napi::TypeError::New(env, "submit(requests: Float64Array, count, buffers[], status: Int32Array, records: Float64Array)");
    }
    int64_t count64 = info[1].As<Napi::Number>().Int64Value();
    if (count64 < 0 || count64 > maxInFlight_ || static_cast<size_t>(count64) * kRequestStride > tableLength ||
        static_cast<size_t>(count64) > statusLength || (static_cast<size_t>(count64) + 1) * kRecordStride > recordsLength) {
      throw Napi::RangeError::New(env, "submit count out of range");
    }
    uint32_t count = static_cast<uint32_t>(count64);
    Napi::Array buffers = info[2].As<Napi::Array>();

    uint32_t records = 0;
    uint32_t next = 0;  // next request to prepare
    batchIndices_.clear();
    for (;;) {
      while (batchIndices_.size() < kMaxIocbsPerCall && next < count) {
        int st = Prepare(requestData_ + static_cast<size_t>(next) * kRequestStride, buffers.Get(next));
        statusData_[next] = st;
        if (st == kStatusSubmitted) {
          slots_[SlotOf(next)].reserved = true;
          batchIndices_.push_back(next);
        }
        next++;
      }
      if (batchIndices_.empty()) break;

      batch_.clear();
      for (uint32_t index : batchIndices_) batch_.push_back(&slots_[SlotOf(index)].cb);
      double start = NowMicros();
      int rc = kernel_->Submit(batch_.data(), static_cast<int>(batch_.size()));
      double elapsed = NowMicros() - start;
      double* record = recordData_ + static_cast<size_t>(records) * kRecordStride;
      record[0] = static_cast<double>(batch_.size());
      record[1] = rc > 0 ? rc : 0;
      record[2] = elapsed;
      records++;

      if (rc > 0) {
        for (int i = 0; i < rc; i++) {
          Slot& slot = slots_[SlotOf(batchIndices_[i])];
          slot.busy = true;
          slot.reserved = false;
          slot.submittedAt = start;
          statusData_[batchIndices_[i]] = kStatusSubmitted;
        }
        AddInFlight(rc);
        batchIndices_.erase(batchIndices_.begin(), batchIndices_.begin() + rc);
        continue;  // a partial submit: the rest are tried again (the first may now fail alone)
      }
      int err = rc < 0 ? -rc : EIO;
      if (err == EAGAIN) {
        // The context is full: everything not yet accepted waits for completions.
        for (uint32_t index : batchIndices_) {
          statusData_[index] = kStatusDeferred;
          slots_[SlotOf(index)].reserved = false;
        }
        for (uint32_t index = next; index < count; index++) statusData_[index] = kStatusDeferred;
        batchIndices_.clear();
        break;
      }
      // Only the first iocb of the call failed; the others are tried again.
      statusData_[batchIndices_.front()] = err;
      slots_[SlotOf(batchIndices_.front())].reserved = false;
      batchIndices_.erase(batchIndices_.begin());
    }
    return Napi::Number::New(env, records);
  }

  uint32_t SlotOf(uint32_t requestIndex) const {
    return static_cast<uint32_t>(requestData_[static_cast<size_t>(requestIndex) * kRequestStride + kReqSlot]);
  }

  void AddInFlight(uint32_t n) {
    if (inFlight_ == 0 && n > 0 && watcher_) watcher_->Ref();  // keep the loop alive while busy
    inFlight_ += n;
  }

  void RemoveInFlight(uint32_t n) {
    inFlight_ -= n;
    if (inFlight_ == 0 && watcher_) watcher_->Unref();
  }

  // One reap per wake-up, never a loop: requests submitted from the callback may complete
  // inside io_submit (page-cache hits, blocking appends in strict mode), and reaping them
  // here again and again would never give the loop back to libuv (timers would starve).
  // Their completions signal the eventfd, so the next loop iteration delivers them.
  void OnEventFdReadable() {
    if (destroyed_) return;
    kernel_->DrainEventFd();
    int got = kernel_->Reap(events_.data(), static_cast<int>(events_.size()));
    if (got <= 0) return;  // nothing (a wake for events already reaped), or io_getevents failed: retried next wake
    double now = NowMicros();
    for (int i = 0; i < got; i++) {
      uint64_t slotIndex = events_[i].data;
      double* out = completionData_ + static_cast<size_t>(i) * kCompletionStride;
      out[kDoneSlot] = static_cast<double>(slotIndex);
      out[kDoneResult] = static_cast<double>(events_[i].res);
      out[kDonePartial] = 0;
      out[kDoneQueueWaitUs] = 0;
      out[kDoneServiceUs] = 0;
      out[kDoneFlags] = 0;
      if (slotIndex < slots_.size()) {
        slots_[slotIndex].busy = false;
        out[kDoneServiceUs] = now - slots_[slotIndex].submittedAt;
      }
    }
    RemoveInFlight(static_cast<uint32_t>(got));
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    // MakeCallback: runs the tick queue and microtasks afterwards, where JS resubmits.
    onComplete_.MakeCallback(Value(), {Napi::Number::New(env, got)});
  }

  // Waits (in io_destroy) for anything in flight, then releases the context and eventfd.
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Teardown();
    return info.Env().Undefined();
  }

  void Teardown() {
    if (destroyed_) return;
    destroyed_ = true;
    watcher_.reset();  // stops polling before the eventfd closes
    kernel_.reset();   // io_destroy waits for whatever is still in flight
    inFlight_ = 0;
  }

  Napi::Value InFlight(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), inFlight_); }
  Napi::Value Destroyed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), destroyed_); }
  Napi::Value UsesRing(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !destroyed_ && kernel_->usesRing());
  }
  Napi::Value EventFd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), destroyed_ ? -1 : kernel_->eventFd());
  }

  uint32_t maxInFlight_ = 0;
  uint32_t inFlight_ = 0;
  bool destroyed_ = false;
  std::unique_ptr<aio::KernelAio> kernel_;
  std::unique_ptr<PollWatcher> watcher_;
  Napi::FunctionReference onComplete_;
  std::vector<Slot> slots_;
  std::vector<io_event> events_;
  std::vector<uint32_t> batchIndices_;
  std::vector<iocb*> batch_;
  Napi::Reference<Napi::Float64Array> completions_;
  // The tables of the submit() call running (JS's; valid only during it).
  const double* requestData_ = nullptr;
  int32_t* statusData_ = nullptr;
  double* completionData_ = nullptr;
  double* recordData_ = nullptr;
};

}  // namespace

void RegisterAioIoSubmit(Napi::Env env, Napi::Object exports) {
  Napi::Function context = IoSubmitContext::Define(env);
  exports.Set("IoSubmitContext", context);
  exports.Set("ioSubmitLayout", context.Get("layout"));  // the same object, under its older name
}

}  // namespace vmlink
