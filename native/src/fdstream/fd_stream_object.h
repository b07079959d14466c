// FdStreamObject<Wrap>: the JS methods every fd stream class shares (readStart, write,
// close, ...), forwarded to its FdStreamCore. FdStream and VirtioSerialStream derive from
// it, add their own constructor, callbacks and accessors, and list
// CoreProperties() in their DefineClass.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "fdstream/fd_stream_core.h"

namespace vmlink {

template <class Wrap>
class FdStreamObject : public Napi::ObjectWrap<Wrap> {
 public:
  using Base = Napi::ObjectWrap<Wrap>;
  using Property = typename Base::PropertyDescriptor;

 protected:
  explicit FdStreamObject(const Napi::CallbackInfo& info) : Base(info) {}

  static std::vector<Property> CoreProperties() {
    return {
        Base::InstanceMethod("readStart", &FdStreamObject::ReadStart),
        Base::InstanceMethod("readStop", &FdStreamObject::ReadStop),
        Base::InstanceMethod("write", &FdStreamObject::Write),
        Base::InstanceMethod("dropPendingWrite", &FdStreamObject::DropPendingWrite),
        Base::InstanceMethod("close", &FdStreamObject::Close),
        Base::InstanceMethod("ref", &FdStreamObject::RefMethod),
        Base::InstanceMethod("unref", &FdStreamObject::UnrefMethod),
        Base::InstanceAccessor("fd", &FdStreamObject::GetFd, nullptr),
        Base::InstanceAccessor("closed", &FdStreamObject::GetClosed, nullptr),
        Base::InstanceAccessor("wakeups", &FdStreamObject::GetWakeups, nullptr),
        Base::InstanceAccessor("writeQueueSize", &FdStreamObject::GetWriteQueueSize, nullptr),
    };
  }

  // The fd argument: a number >= 0, owned from here on (closed if construction throws).
  static UniqueFd TakeFd(const Napi::CallbackInfo& info, const char* className) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, std::string(className) + ": fd must be a number");
    int fd = info[0].As<Napi::Number>().Int32Value();
    if (fd < 0) throw Napi::RangeError::New(env, std::string(className) + ": fd must be >= 0");
    return UniqueFd(fd);
  }

  // callbacks[name] as a persistent reference; a TypeError when required and missing, or
  // when present and not a function.
  static Napi::FunctionReference TakeCallback(Napi::Object callbacks, const char* className, const char* name,
                                              bool required) {
    Napi::Value fn = callbacks.Get(name);
    if (fn.IsFunction()) return Napi::Persistent(fn.As<Napi::Function>());
    if (required || !fn.IsUndefined()) {
      throw Napi::TypeError::New(callbacks.Env(), std::string(className) + ": callbacks." + name + " must be a function");
    }
    return Napi::FunctionReference();
  }

  std::unique_ptr<FdStreamCore> core_;

 private:
  Napi::Value ReadStart(const Napi::CallbackInfo& info) {
    core_->ReadStart();
    return info.Env().Undefined();
  }

  Napi::Value ReadStop(const Napi::CallbackInfo& info) {
    core_->ReadStop();
    return info.Env().Undefined();
  }

  // write(chunks: Uint8Array | Uint8Array[], cb) -> true when everything went out now (cb
  // is not called), false when the rest waits for POLLOUT (cb(err|null) later).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), core_->Write(info[0], info[1]));
  }

  Napi::Value DropPendingWrite(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), core_->DropPendingWrite(info[0]));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    core_->Close();
    return info.Env().Undefined();
  }

  Napi::Value RefMethod(const Napi::CallbackInfo& info) {
    core_->Ref();
    return info.Env().Undefined();
  }

  Napi::Value UnrefMethod(const Napi::CallbackInfo& info) {
    core_->Unref();
    return info.Env().Undefined();
  }

  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->fd()); }
  Napi::Value GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), core_->closed()); }
  Napi::Value GetWakeups(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->wakeups()); }
  Napi::Value GetWriteQueueSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(core_->writeQueueSize()));
  }
};

}  // namespace vmlink
