// The one request/completion contract between @vmlink/aio's BatchQueue and every native
// aio engine (thread pool, io_submit). Defined here once: each engine reads requests and
// writes completions with these field indices, and exports MakeBatchLayout(...) so JS
// reads the same numbers at load (no constant is mirrored by hand in JS).
//
// Tables are Float64Array, owned by JS:
//   requests    kRequestStride numbers per request (64-bit values split low/high 32 bits);
//   status      one int32 per request of a submit() call: 0 submitted, kStatusDeferred,
//               kStatusMisaligned, or a positive errno that failed only that request;
//   records     kRecordStride numbers per hand-over call: [passed, accepted, microseconds];
//   completions kCompletionStride numbers per completion, filled before onComplete(count).
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <utility>

namespace vmlink {
namespace batch {

#define VMLINK_AIO_REQUEST_FIELDS(X) \
  X(kReqSlot, "slot")                \
  X(kReqOp, "op")                    \
  X(kReqFd, "fd")                    \
  X(kReqPositionLow, "positionLow")  \
  X(kReqPositionHigh, "positionHigh") \
  X(kReqLengthLow, "lengthLow")      \
  X(kReqLengthHigh, "lengthHigh")    \
  X(kReqMode, "mode")                \
  X(kReqRwFlags, "rwFlags")          \
  X(kReqAlignMemory, "alignMemory")  \
  X(kReqAlignOffset, "alignOffset")  \
  X(kReqAlignLength, "alignLength")

#define VMLINK_AIO_COMPLETION_FIELDS(X) \
  X(kDoneSlot, "slot")                  \
  X(kDoneResult, "result")              \
  X(kDonePartial, "partial")            \
  X(kDoneQueueWaitUs, "queueWaitUs")    \
  X(kDoneServiceUs, "serviceUs")        \
  X(kDoneFlags, "flags")

#define VMLINK_AIO_ENUM_ENTRY(name, js) name,
enum RequestField { VMLINK_AIO_REQUEST_FIELDS(VMLINK_AIO_ENUM_ENTRY) kRequestStride };
enum CompletionField { VMLINK_AIO_COMPLETION_FIELDS(VMLINK_AIO_ENUM_ENTRY) kCompletionStride };
#undef VMLINK_AIO_ENUM_ENTRY

// Per-request submit status (status table); positive values are errnos.
constexpr int32_t kStatusSubmitted = 0;
constexpr int32_t kStatusDeferred = -1;    // the engine is full (io_submit EAGAIN): queue it again later
constexpr int32_t kStatusMisaligned = -2;  // the O_DIRECT alignment check failed; not submitted

constexpr int kRecordStride = 3;  // [requests passed, requests accepted, microseconds in the call]

// Completion flags bits.
constexpr uint32_t kFlagNowaitServed = 1;   // a cache-first read: its RWF_NOWAIT attempt brought it all (or EOF)
constexpr uint32_t kFlagUsedBlkdiscard = 2;  // a discard ran ioctl(BLKDISCARD) (a block device)
// A read tried in the hand-over call itself (the thread pool's readCachedHere):
constexpr uint32_t kFlagServedHere = 4;  // the page cache served it all (or EOF) in the call
constexpr uint32_t kFlagMissedHere = 8;  // RWF_NOWAIT said EAGAIN: a worker read it
// An O_DIRECT fd: a read marked to be tried in the call was not (NOWAIT would wait for the
// disk; a worker read it); on a write, reported for JS's growth policy (buffered writes to
// one file take its inode lock one at a time).
constexpr uint32_t kFlagDirectFd = 16;
// The thread pool's worker found the queue empty and slept before it took this request
// (it had to be woken for it): JS sizes the pool from how often that happens.
constexpr uint32_t kFlagWorkerSlept = 32;

struct FieldName {
  int index;
  const char* name;
};
#define VMLINK_AIO_NAME_ENTRY(name, js) {name, js},
constexpr FieldName kRequestFieldNames[] = {VMLINK_AIO_REQUEST_FIELDS(VMLINK_AIO_NAME_ENTRY)};
constexpr FieldName kCompletionFieldNames[] = {VMLINK_AIO_COMPLETION_FIELDS(VMLINK_AIO_NAME_ENTRY)};
#undef VMLINK_AIO_NAME_ENTRY

inline uint64_t U64Field(const double* request, int low, int high) {
  return static_cast<uint64_t>(request[low]) + (static_cast<uint64_t>(request[high]) << 32);
}

// { requestStride, request: {name: index}, completionStride, completion: {...},
//   recordStride, status: {...}, flags: {...}, ops: {name: code} }
inline Napi::Object MakeBatchLayout(Napi::Env env, std::initializer_list<std::pair<const char*, int>> ops) {
  Napi::Object layout = Napi::Object::New(env);
  Napi::Object request = Napi::Object::New(env);
  for (const FieldName& field : kRequestFieldNames) request.Set(field.name, static_cast<double>(field.index));
  Napi::Object completion = Napi::Object::New(env);
  for (const FieldName& field : kCompletionFieldNames) completion.Set(field.name, static_cast<double>(field.index));
  layout.Set("requestStride", static_cast<double>(kRequestStride));
  layout.Set("request", request);
  layout.Set("completionStride", static_cast<double>(kCompletionStride));
  layout.Set("completion", completion);
  layout.Set("recordStride", static_cast<double>(kRecordStride));
  Napi::Object status = Napi::Object::New(env);
  status.Set("submitted", static_cast<double>(kStatusSubmitted));
  status.Set("deferred", static_cast<double>(kStatusDeferred));
  status.Set("misaligned", static_cast<double>(kStatusMisaligned));
  layout.Set("status", status);
  Napi::Object flags = Napi::Object::New(env);
  flags.Set("nowaitServed", static_cast<double>(kFlagNowaitServed));
  flags.Set("usedBlkdiscard", static_cast<double>(kFlagUsedBlkdiscard));
  flags.Set("servedHere", static_cast<double>(kFlagServedHere));
  flags.Set("missedHere", static_cast<double>(kFlagMissedHere));
  flags.Set("directFd", static_cast<double>(kFlagDirectFd));
  flags.Set("workerSlept", static_cast<double>(kFlagWorkerSlept));
  layout.Set("flags", flags);
  Napi::Object opCodes = Napi::Object::New(env);
  for (const auto& op : ops) opCodes.Set(op.first, static_cast<double>(op.second));
  layout.Set("ops", opCodes);
  return layout;
}

// The Float64Array / Int32Array behind a typed-array argument, or nullptr when it is not one.
template <typename T>
T* TableData(Napi::Value value, napi_typedarray_type want, size_t* length) {
  if (!value.IsTypedArray()) return nullptr;
  napi_typedarray_type type;
  void* data = nullptr;
  napi_value arraybuffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(value.Env(), value, &type, length, &data, &arraybuffer, &offset) != napi_ok || type != want) return nullptr;
  return static_cast<T*>(data);
}

}  // namespace batch
}  // namespace vmlink
