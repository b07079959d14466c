// IoSubmitContext: one kernel AIO context for JS, built for batches. JS fills a shared
// request table and calls submit() once per tick; the native side turns the requests into
// iocbs and hands them to io_submit up to 32 at a time, timing every call. Completions
// wake an eventfd watched on the Node loop; they are reaped in batches and delivered to JS
// with one callback per batch through a shared completion table.
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

#include "aio/iosubmit/kernel_aio.h"
#include "common/errors.h"
#include "common/module.h"
#include "common/poll_watcher.h"

namespace vmlink {
namespace {

// Request table layout (Float64Array, kRequestStride numbers per request).
enum RequestField {
  kFieldSlot = 0,
  kFieldFd,
  kFieldOp,
  kFieldPositionLow,   // position % 2^32
  kFieldPositionHigh,  // floor(position / 2^32)
  kFieldRwFlags,       // RWF_* (RWF_NOWAIT)
  kFieldAlignMemory,   // 0: no alignment check (not O_DIRECT)
  kFieldAlignOffset,
  kFieldAlignLength,
  kRequestStride,
};

enum Op { kOpRead = 0, kOpWrite, kOpReadv, kOpWritev, kOpFsync, kOpFdatasync };

// Per-request submit status written to the status table; positive values are errnos.
constexpr int kStatusSubmitted = 0;
constexpr int kStatusDeferred = -1;    // io_submit said EAGAIN: queue it again later
constexpr int kStatusMisaligned = -2;  // O_DIRECT alignment check failed; not submitted

constexpr int kMaxIocbsPerCall = 32;  // like QEMU's linux-aio
constexpr int kSubmitRecordStride = 3;  // [iocbs passed, iocbs accepted, microseconds]
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
  bool busy = false;
};

class IoSubmitContext : public Napi::ObjectWrap<IoSubmitContext> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IoSubmitContext",
                       {
                           InstanceMethod<&IoSubmitContext::Submit>("submit"),
                           InstanceMethod<&IoSubmitContext::CancelSlot>("cancel"),
                           InstanceMethod<&IoSubmitContext::Destroy>("destroy"),
                           InstanceAccessor<&IoSubmitContext::InFlight>("inFlight"),
                           InstanceAccessor<&IoSubmitContext::Destroyed>("destroyed"),
                           InstanceAccessor<&IoSubmitContext::UsesRing>("usesRing"),
                           InstanceAccessor<&IoSubmitContext::EventFd>("eventFd"),
                       });
  }

  // new IoSubmitContext(maxInFlight, onComplete(count))
  explicit IoSubmitContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoSubmitContext>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "maxInFlight must be a number");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onComplete must be a function");
    int64_t requested = info[0].As<Napi::Number>().Int64Value();
    if (requested < 1 || requested > kMaxInFlightLimit) {
      throw Napi::RangeError::New(env, "maxInFlight must be in 1.." + std::to_string(kMaxInFlightLimit) +
                                           "; got " + std::to_string(requested));
    }
    maxInFlight_ = static_cast<uint32_t>(requested);
    onComplete_ = Napi::Persistent(info[1].As<Napi::Function>());

    const char* failed = "";
    kernel_ = std::make_unique<aio::KernelAio>();
    int err = kernel_->Open(maxInFlight_, &failed);
    if (err != 0) ThrowSetupError(env, err, failed);

    slots_.resize(maxInFlight_);
    events_.resize(maxInFlight_);
    batchIndices_.reserve(kMaxIocbsPerCall);
    batch_.reserve(kMaxIocbsPerCall);

    requests_ = NewTable<Napi::Float64Array>(env, maxInFlight_ * kRequestStride, &requestData_);
    status_ = NewTable<Napi::Int32Array>(env, maxInFlight_, &statusData_);
    completions_ = NewTable<Napi::Float64Array>(env, maxInFlight_ * 2, &completionData_);
    submitRecords_ = NewTable<Napi::Float64Array>(env, (maxInFlight_ + 1) * kSubmitRecordStride, &recordData_);
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("requests", requests_.Value());
    self.Set("status", status_.Value());
    self.Set("completions", completions_.Value());
    self.Set("submitRecords", submitRecords_.Value());

    watcher_ = std::make_unique<PollWatcher>(env, kernel_->eventFd());
    int rc = watcher_->Start(UV_READABLE, [this](int, int) { OnEventFdReadable(); });
    if (rc != 0) throw Napi::Error::New(env, std::string("uv_poll_start ") + uv_err_name(rc));
    watcher_->Unref();  // nothing in flight yet: do not keep the process alive
  }

  ~IoSubmitContext() override { Teardown(); }

 private:
  template <typename Table, typename Element>
  static Napi::Reference<Table> NewTable(Napi::Env env, size_t length, Element** data) {
    Table table = Table::New(env, length);
    *data = table.Data();
    return Napi::Persistent(table);
  }

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
  int Prepare(uint32_t index, const Napi::Value& buffers) {
    const double* req = requestData_ + static_cast<size_t>(index) * kRequestStride;
    double slotNumber = req[kFieldSlot];
    if (!(slotNumber >= 0 && slotNumber < maxInFlight_)) return EINVAL;
    uint32_t slotIndex = static_cast<uint32_t>(slotNumber);
    Slot& slot = slots_[slotIndex];
    if (slot.busy) return EBUSY;  // a JS bookkeeping bug; never reuse a slot in flight
    int op = static_cast<int>(req[kFieldOp]);
    uint64_t position = static_cast<uint64_t>(req[kFieldPositionLow]) +
                        (static_cast<uint64_t>(req[kFieldPositionHigh]) << 32);
    uint64_t alignMemory = static_cast<uint64_t>(req[kFieldAlignMemory]);
    uint64_t alignOffset = static_cast<uint64_t>(req[kFieldAlignOffset]);
    uint64_t alignLength = static_cast<uint64_t>(req[kFieldAlignLength]);
    bool checkAlignment = alignMemory > 0;

    iocb& cb = slot.cb;
    cb = iocb{};
    cb.aio_data = slotIndex;
    cb.aio_fildes = static_cast<uint32_t>(req[kFieldFd]);
    cb.aio_flags = IOCB_FLAG_RESFD;
    cb.aio_resfd = static_cast<uint32_t>(kernel_->eventFd());
    cb.aio_rw_flags = static_cast<int>(req[kFieldRwFlags]);
    cb.aio_offset = static_cast<int64_t>(position);

    if (op == kOpFsync || op == kOpFdatasync) {
      cb.aio_lio_opcode = op == kOpFsync ? IOCB_CMD_FSYNC : IOCB_CMD_FDSYNC;
      cb.aio_rw_flags = 0;
      cb.aio_offset = 0;
      return kStatusSubmitted;
    }
    if (checkAlignment && !IsAligned(position, alignOffset)) return kStatusMisaligned;

    if (op == kOpRead || op == kOpWrite) {
      if (!buffers.IsTypedArray()) return EINVAL;
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
    if (op == kOpReadv || op == kOpWritev) {
      if (!buffers.IsArray()) return EINVAL;
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
      cb.aio_lio_opcode = op == kOpReadv ? IOCB_CMD_PREADV : IOCB_CMD_PWRITEV;
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

  // submit(count, buffers): buffers[i] is the Uint8Array (read/write), Uint8Array[]
  // (readv/writev) or undefined (fsync) of request i. Writes one status per request and
  // one record per io_submit call; returns the number of records.
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckAlive(env);
    if (!info[0].IsNumber() || !info[1].IsArray()) throw Napi::TypeError::New(env, "submit(count, buffers[])");
    int64_t count64 = info[0].As<Napi::Number>().Int64Value();
    if (count64 < 0 || count64 > maxInFlight_) throw Napi::RangeError::New(env, "submit count out of range");
    uint32_t count = static_cast<uint32_t>(count64);
    Napi::Array buffers = info[1].As<Napi::Array>();

    uint32_t records = 0;
    uint32_t next = 0;  // next request to prepare
    batchIndices_.clear();
    for (;;) {
      while (batchIndices_.size() < kMaxIocbsPerCall && next < count) {
        int st = Prepare(next, buffers.Get(next));
        statusData_[next] = st;
        if (st == kStatusSubmitted) batchIndices_.push_back(next);
        next++;
      }
      if (batchIndices_.empty()) break;

      batch_.clear();
      for (uint32_t index : batchIndices_) batch_.push_back(&slots_[SlotOf(index)].cb);
      double start = NowMicros();
      int rc = kernel_->Submit(batch_.data(), static_cast<int>(batch_.size()));
      double elapsed = NowMicros() - start;
      double* record = recordData_ + static_cast<size_t>(records) * kSubmitRecordStride;
      record[0] = static_cast<double>(batch_.size());
      record[1] = rc > 0 ? rc : 0;
      record[2] = elapsed;
      records++;

      if (rc > 0) {
        for (int i = 0; i < rc; i++) {
          slots_[SlotOf(batchIndices_[i])].busy = true;
          statusData_[batchIndices_[i]] = kStatusSubmitted;
        }
        AddInFlight(rc);
        batchIndices_.erase(batchIndices_.begin(), batchIndices_.begin() + rc);
        continue;  // a partial submit: the rest are tried again (the first may now fail alone)
      }
      int err = rc < 0 ? -rc : EIO;
      if (err == EAGAIN) {
        // The context is full: everything not yet accepted waits for completions.
        for (uint32_t index : batchIndices_) statusData_[index] = kStatusDeferred;
        for (uint32_t index = next; index < count; index++) statusData_[index] = kStatusDeferred;
        batchIndices_.clear();
        break;
      }
      // Only the first iocb of the call failed; the others are tried again.
      statusData_[batchIndices_.front()] = err;
      batchIndices_.erase(batchIndices_.begin());
    }
    return Napi::Number::New(env, records);
  }

  uint32_t SlotOf(uint32_t requestIndex) const {
    return static_cast<uint32_t>(requestData_[static_cast<size_t>(requestIndex) * kRequestStride + kFieldSlot]);
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
    for (int i = 0; i < got; i++) {
      uint64_t slotIndex = events_[i].data;
      if (slotIndex < slots_.size()) slots_[slotIndex].busy = false;
      completionData_[2 * i] = static_cast<double>(slotIndex);
      completionData_[2 * i + 1] = static_cast<double>(events_[i].res);
    }
    RemoveInFlight(static_cast<uint32_t>(got));
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    // MakeCallback: runs the tick queue and microtasks afterwards, where JS resubmits.
    onComplete_.MakeCallback(Value(), {Napi::Number::New(env, got)});
  }

  Napi::Value CancelSlot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckAlive(env);
    uint32_t slotIndex = info[0].As<Napi::Number>().Uint32Value();
    if (slotIndex >= slots_.size() || !slots_[slotIndex].busy) return Napi::Number::New(env, ENOENT);
    return Napi::Number::New(env, kernel_->Cancel(&slots_[slotIndex].cb));
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
  Napi::Reference<Napi::Float64Array> requests_;
  Napi::Reference<Napi::Int32Array> status_;
  Napi::Reference<Napi::Float64Array> completions_;
  Napi::Reference<Napi::Float64Array> submitRecords_;
  double* requestData_ = nullptr;
  int32_t* statusData_ = nullptr;
  double* completionData_ = nullptr;
  double* recordData_ = nullptr;
};

Napi::Object Layout(Napi::Env env) {
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("requestStride", static_cast<double>(kRequestStride));
  layout.Set("submitRecordStride", static_cast<double>(kSubmitRecordStride));
  layout.Set("maxIocbsPerCall", static_cast<double>(kMaxIocbsPerCall));
  layout.Set("maxInFlightLimit", static_cast<double>(kMaxInFlightLimit));
  layout.Set("rwfNowait", static_cast<double>(RWF_NOWAIT));
  Napi::Object fields = Napi::Object::New(env);
  fields.Set("slot", static_cast<double>(kFieldSlot));
  fields.Set("fd", static_cast<double>(kFieldFd));
  fields.Set("op", static_cast<double>(kFieldOp));
  fields.Set("positionLow", static_cast<double>(kFieldPositionLow));
  fields.Set("positionHigh", static_cast<double>(kFieldPositionHigh));
  fields.Set("rwFlags", static_cast<double>(kFieldRwFlags));
  fields.Set("alignMemory", static_cast<double>(kFieldAlignMemory));
  fields.Set("alignOffset", static_cast<double>(kFieldAlignOffset));
  fields.Set("alignLength", static_cast<double>(kFieldAlignLength));
  layout.Set("fields", fields);
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("read", static_cast<double>(kOpRead));
  ops.Set("write", static_cast<double>(kOpWrite));
  ops.Set("readv", static_cast<double>(kOpReadv));
  ops.Set("writev", static_cast<double>(kOpWritev));
  ops.Set("fsync", static_cast<double>(kOpFsync));
  ops.Set("fdatasync", static_cast<double>(kOpFdatasync));
  layout.Set("ops", ops);
  Napi::Object status = Napi::Object::New(env);
  status.Set("submitted", static_cast<double>(kStatusSubmitted));
  status.Set("deferred", static_cast<double>(kStatusDeferred));
  status.Set("misaligned", static_cast<double>(kStatusMisaligned));
  layout.Set("status", status);
  return layout;
}

}  // namespace

void RegisterAioIoSubmit(Napi::Env env, Napi::Object exports) {
  exports.Set("IoSubmitContext", IoSubmitContext::Define(env));
  exports.Set("ioSubmitLayout", Layout(env));
}

}  // namespace vmlink
