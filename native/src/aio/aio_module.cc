// src/aio: helpers shared by the aio backends.
//   addressOffset(view, alignment) -> address of view's first byte modulo alignment
//   dioAlignment(fd, method?)      -> { memory, offset, length, source }
#include <napi.h>

#include <cstdint>
#include <string>

#include "aio/alignment.h"
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

}  // namespace

void RegisterAioCommon(Napi::Env env, Napi::Object exports) {
  exports.Set("addressOffset", Napi::Function::New(env, AddressOffset, "addressOffset"));
  exports.Set("dioAlignment", Napi::Function::New(env, DioAlignmentOf, "dioAlignment"));
}

}  // namespace vmlink
