// src/aio: helpers shared by the aio backends.
//   addressOffset(view, alignment) -> address of view's first byte modulo alignment
//   dioAlignment(fd, method?)      -> { memory, offset, length, source }
//   fileFallocate(fd, modeBits, offset: bigint, length: bigint) -> Promise<void>
//   fileDiscard(fd, offset: bigint, length: bigint)             -> Promise<void>
// The two file* calls run on libuv's pool (napi async work), like node:fs: they are the
// fs reference backend's fallocate/discard, which node:fs lacks.
#include <napi.h>

#include <cstdint>
#include <string>

#include "aio/alignment.h"
#include "aio/threadpool/space_ops.h"
#include "common/errors.h"
#include "common/module.h"

namespace vmlink {
namespace {

// The real address of a typed array's (or DataView's) first byte.
uintptr_t ViewAddress(Napi::Env env, Napi::Value value, const char* name) {
  if (value.IsTypedArray()) {
    Napi::TypedArray view = value.As<Napi::TypedArray>();
    // napi_get_typedarray_info moves an on-heap typed array off the V8 heap first, so
    // the address it returns stays valid for the life of the view.
    void* data = nullptr;
    size_t length = 0;
    napi_typedarray_type type;
    napi_value buffer;
    size_t offset = 0;
    NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, view, &type, &length, &data, &buffer, &offset), 0);
    return reinterpret_cast<uintptr_t>(data);
  }
  if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    return reinterpret_cast<uintptr_t>(view.Data());
  }
  throw Napi::TypeError::New(env, std::string("The \"") + name + "\" argument must be an ArrayBufferView");
}

Napi::Value AddressOffset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uintptr_t address = ViewAddress(env, info[0], "view");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "The \"alignment\" argument must be a number");
  int64_t alignment = info[1].As<Napi::Number>().Int64Value();
  if (alignment <= 0 || (alignment & (alignment - 1)) != 0) {
    throw CodedError(env, "ERR_OUT_OF_RANGE", "The \"alignment\" argument must be a power of two. Received " +
                                                  std::to_string(alignment));
  }
  return Napi::Number::New(env, static_cast<double>(address & static_cast<uintptr_t>(alignment - 1)));
}

Napi::Value DioAlignmentOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "The \"fd\" argument must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  AlignmentMethod method = AlignmentMethod::kAuto;
  if (info[1].IsString()) {
    std::string name = info[1].As<Napi::String>().Utf8Value();
    if (name == "statx") method = AlignmentMethod::kStatx;
    else if (name == "sysfs") method = AlignmentMethod::kSysfs;
    else if (name != "auto") throw CodedError(env, "ERR_INVALID_ARG_VALUE", "unknown alignment method '" + name + "'");
  }
  DioAlignment alignment;
  int err = QueryDioAlignment(fd, method, &alignment);
  if (err != 0) ThrowErrno(env, err, method == AlignmentMethod::kSysfs ? "fstat" : "statx");
  Napi::Object result = Napi::Object::New(env);
  result.Set("memory", alignment.memory);
  result.Set("offset", alignment.offset);
  result.Set("length", alignment.length);
  result.Set("source", alignment.source);
  return result;
}

uint64_t BigIntArg(Napi::Env env, Napi::Value value, const char* name) {
  if (!value.IsBigInt()) throw Napi::TypeError::New(env, std::string("The \"") + name + "\" argument must be a bigint");
  bool lossless = false;
  uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || result > static_cast<uint64_t>(INT64_MAX)) {
    throw CodedError(env, "ERR_OUT_OF_RANGE", std::string("The \"") + name + "\" argument must be >= 0n and <= 2n ** 63n - 1n");
  }
  return result;
}

int FdArg(Napi::Env env, Napi::Value value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "The \"fd\" argument must be a number");
  return value.As<Napi::Number>().Int32Value();
}

// One fallocate or discard on libuv's pool, settling a promise.
class SpaceWork : public Napi::AsyncWorker {
 public:
  enum class Kind { kFallocate, kDiscard };

  SpaceWork(Napi::Env env, Kind kind, int fd, int mode, uint64_t offset, uint64_t length)
      : Napi::AsyncWorker(env, "vmlink:fileSpace"),
        deferred_(Napi::Promise::Deferred::New(env)),
        kind_(kind),
        fd_(fd),
        mode_(mode),
        offset_(offset),
        length_(length) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    err_ = kind_ == Kind::kFallocate ? SpaceFallocate(fd_, mode_, offset_, length_) : SpaceDiscard(fd_, offset_, length_, &used_ioctl_);
  }

  void OnOK() override {
    if (err_ == 0) {
      deferred_.Resolve(Env().Undefined());
    } else {
      deferred_.Reject(ErrnoError(Env(), err_, used_ioctl_ ? "ioctl" : "fallocate").Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Kind kind_;
  int fd_;
  int mode_;
  uint64_t offset_;
  uint64_t length_;
  int err_ = 0;
  bool used_ioctl_ = false;
};

Napi::Value FileFallocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(env, info[0]);
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "The \"mode\" argument must be a number");
  int mode = info[1].As<Napi::Number>().Int32Value();
  auto* work = new SpaceWork(env, SpaceWork::Kind::kFallocate, fd, mode, BigIntArg(env, info[2], "offset"), BigIntArg(env, info[3], "length"));
  Napi::Promise promise = work->Promise();
  work->Queue();
  return promise;
}

Napi::Value FileDiscard(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(env, info[0]);
  auto* work = new SpaceWork(env, SpaceWork::Kind::kDiscard, fd, 0, BigIntArg(env, info[1], "offset"), BigIntArg(env, info[2], "length"));
  Napi::Promise promise = work->Promise();
  work->Queue();
  return promise;
}

}  // namespace

void RegisterAioCommon(Napi::Env env, Napi::Object exports) {
  exports.Set("addressOffset", Napi::Function::New(env, AddressOffset, "addressOffset"));
  exports.Set("dioAlignment", Napi::Function::New(env, DioAlignmentOf, "dioAlignment"));
  exports.Set("fileFallocate", Napi::Function::New(env, FileFallocate, "fileFallocate"));
  exports.Set("fileDiscard", Napi::Function::New(env, FileDiscard, "fileDiscard"));
}

}  // namespace vmlink
