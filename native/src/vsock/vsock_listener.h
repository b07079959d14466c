// VsockListener: owns a listening AF_VSOCK fd and accepts on the Node loop (accept4 with
// SOCK_NONBLOCK|SOCK_CLOEXEC), handing each new fd to JS with the peer's address:
//   new VsockListener(fd, { onConnection(fd, cid, port), onError(err) })
//   start() / stop() / close() / ref() / unref() / fd
// The accepted fd belongs to JS from then on (it wraps it in an FdStream at once).
#pragma once
#include <napi.h>

#include <memory>

#include "common/poll_watcher.h"
#include "common/unique_fd.h"

namespace vmlink {

class VsockListener : public Napi::ObjectWrap<VsockListener> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit VsockListener(const Napi::CallbackInfo& info);
  ~VsockListener() override;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value RefMethod(const Napi::CallbackInfo& info);
  Napi::Value UnrefMethod(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);

  void OnReadable(int status);
  bool Call(const Napi::FunctionReference& fn, const std::vector<napi_value>& args);
  void StopWatching();
  void CloseNow();

  UniqueFd fd_;
  std::unique_ptr<PollWatcher> watcher_;
  std::unique_ptr<Napi::AsyncContext> async_;
  Napi::FunctionReference onConnection_;
  Napi::FunctionReference onError_;
  bool closed_ = false;
  bool pinned_ = false;
};

}  // namespace vmlink
