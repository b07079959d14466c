#include "vsock/vsock_listener.h"

#include <errno.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

#include "common/errors.h"
#include "vsock/vsock_address.h"

namespace vmlink {
namespace {
// Accepts per wake-up before yielding to the rest of the loop.
constexpr int kAcceptBudget = 64;
}  // namespace

Napi::Function VsockListener::Define(Napi::Env env) {
  return DefineClass(env, "VsockListener",
                     {
                         InstanceMethod<&VsockListener::Start>("start"),
                         InstanceMethod<&VsockListener::Stop>("stop"),
                         InstanceMethod<&VsockListener::Close>("close"),
                         InstanceMethod<&VsockListener::RefMethod>("ref"),
                         InstanceMethod<&VsockListener::UnrefMethod>("unref"),
                         InstanceAccessor<&VsockListener::GetFd>("fd"),
                     });
}

// Takes ownership of the fd first, so a later throw still closes it.
VsockListener::VsockListener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VsockListener>(info) {
  Napi::Env env = info.Env();
  fd_.reset(FdArg(info, 0));
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "VsockListener: callbacks must be an object");
  Napi::Object callbacks = info[1].As<Napi::Object>();
  Napi::Value onConnection = callbacks.Get("onConnection");
  Napi::Value onError = callbacks.Get("onError");
  if (!onConnection.IsFunction() || !onError.IsFunction()) {
    throw Napi::TypeError::New(env, "VsockListener: callbacks.onConnection and callbacks.onError must be functions");
  }
  onConnection_ = Napi::Persistent(onConnection.As<Napi::Function>());
  onError_ = Napi::Persistent(onError.As<Napi::Function>());
  watcher_ = std::make_unique<PollWatcher>(env, fd_.get());
  async_ = std::make_unique<Napi::AsyncContext>(env, "vmlink:VsockListener", info.This().As<Napi::Object>());
}

VsockListener::~VsockListener() { CloseNow(); }

Napi::Value VsockListener::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) ThrowErrno(env, EBADF, "accept");
  if (watcher_->events() == 0) {
    int rc = watcher_->Start(UV_READABLE, [this](int status, int) { OnReadable(status); });
    if (rc != 0) throw Napi::Error::New(env, std::string("uv_poll_start ") + uv_err_name(rc));
    if (!pinned_) {
      pinned_ = true;
      Ref();
    }
  }
  return env.Undefined();
}

Napi::Value VsockListener::Stop(const Napi::CallbackInfo& info) {
  StopWatching();
  return info.Env().Undefined();
}

Napi::Value VsockListener::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}

Napi::Value VsockListener::RefMethod(const Napi::CallbackInfo& info) {
  if (watcher_) watcher_->Ref();
  return info.Env().Undefined();
}

Napi::Value VsockListener::UnrefMethod(const Napi::CallbackInfo& info) {
  if (watcher_) watcher_->Unref();
  return info.Env().Undefined();
}

Napi::Value VsockListener::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_.get()); }

void VsockListener::OnReadable(int status) {
  if (closed_) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (status < 0) {
    StopWatching();
    Call(onError_, {ErrnoError(env, -status, "poll").Value()});
    return;
  }
  for (int i = 0; i < kAcceptBudget && !closed_ && watcher_->events() != 0; i++) {
    sockaddr_vm peer{};
    socklen_t length = sizeof peer;
    int fd = accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      // The peer gave up before we accepted: nothing to report, try the next one.
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      // EMFILE and friends would make a level-triggered poll spin: stop and let JS
      // decide when to start() again.
      StopWatching();
      Call(onError_, {ErrnoError(env, err, "accept").Value()});
      return;
    }
    UniqueFd accepted(fd);
    Napi::Value args[] = {Napi::Number::New(env, accepted.release()), Napi::Number::New(env, peer.svm_cid),
                          Napi::Number::New(env, peer.svm_port)};
    if (!Call(onConnection_, {args[0], args[1], args[2]})) return;
  }
}

bool VsockListener::Call(const Napi::FunctionReference& fn, const std::vector<napi_value>& args) {
  if (closed_) return false;
  try {
    fn.MakeCallback(Value(), args, *async_);
  } catch (const Napi::Error& error) {
    napi_fatal_exception(Env(), error.Value());
  }
  return !closed_;
}

void VsockListener::StopWatching() {
  if (watcher_) watcher_->Stop();
  if (pinned_) {
    pinned_ = false;
    Unref();
  }
}

void VsockListener::CloseNow() {
  if (closed_) return;
  closed_ = true;
  StopWatching();
  watcher_.reset();
  fd_.reset();
}

}  // namespace vmlink
