#include "fdstream/fd_stream.h"

#include <string>

namespace vmlink {

Napi::Function FdStream::Define(Napi::Env env) {
  std::vector<Property> properties = CoreProperties();
  properties.push_back(InstanceMethod<&FdStream::AwaitWritable>("awaitWritable"));
  properties.push_back(InstanceMethod<&FdStream::Shutdown>("shutdown"));
  return DefineClass(env, "FdStream", properties);
}

FdStream::FdStream(const Napi::CallbackInfo& info) : FdStreamObject<FdStream>(info) {
  Napi::Env env = info.Env();
  UniqueFd fd = TakeFd(info, "FdStream");
  Napi::Object options = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  if (!info[2].IsObject()) throw Napi::TypeError::New(env, "FdStream: callbacks must be an object");
  Napi::Object callbacks = info[2].As<Napi::Object>();

  FdStreamCore::Options coreOptions;
  coreOptions.messages = options.Get("messages").ToBoolean().Value();
  Napi::Value size = options.Get("readSize");
  if (size.IsNumber()) {
    double requested = size.As<Napi::Number>().DoubleValue();
    if (!(requested >= 1 && requested <= static_cast<double>(FdStreamCore::kMaxReadSize))) {
      throw Napi::RangeError::New(env, "FdStream: readSize must be in 1.." + std::to_string(FdStreamCore::kMaxReadSize));
    }
    coreOptions.readSize = static_cast<size_t>(requested);
  }
  if (!options.Get("hangupMode").IsUndefined()) {
    // Gone from FdStream: a peer that hangs up and comes back is a different stream.
    throw Napi::TypeError::New(env, "FdStream: unknown option hangupMode (use VirtioSerialStream for a port whose peer hangs up and returns)");
  }

  FdStreamCore::Callbacks coreCallbacks;
  coreCallbacks.onData = TakeCallback(callbacks, "FdStream", "onData", true);
  coreCallbacks.onEnd = TakeCallback(callbacks, "FdStream", "onEnd", false);
  coreCallbacks.onError = TakeCallback(callbacks, "FdStream", "onError", true);

  core_ = std::make_unique<FdStreamCore>(env, info.This().As<Napi::Object>(), std::move(fd), coreOptions,
                                         std::move(coreCallbacks), "vmlink:FdStream");
  core_->Open();
}

// awaitWritable(cb): calls cb() once the fd polls writable (a non-blocking connect ends).
Napi::Value FdStream::AwaitWritable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!core_->closed() && !info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "FdStream.awaitWritable: callback must be a function");
  }
  core_->AwaitWritable(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Value FdStream::Shutdown(const Napi::CallbackInfo& info) {
  core_->Shutdown();
  return info.Env().Undefined();
}

}  // namespace vmlink
