// A uv_poll_t on the Node event loop for one fd. No threads: the kernel tells libuv when
// the fd is ready. The handle memory outlives this object until libuv's close callback,
// so destroying the watcher from inside its own callback is safe.
#pragma once
#include <napi.h>
#include <uv.h>

#include <functional>

namespace vmlink {

class PollWatcher {
 public:
  // status < 0 is a libuv error (e.g. UV_EBADF); events is a UV_READABLE|UV_WRITABLE|
  // UV_DISCONNECT|UV_PRIORITIZED mask.
  using Callback = std::function<void(int status, int events)>;

  PollWatcher(Napi::Env env, int fd);
  ~PollWatcher();
  PollWatcher(const PollWatcher&) = delete;
  PollWatcher& operator=(const PollWatcher&) = delete;

  // (Re)starts watching for `events`; replaces the callback. Returns a libuv error or 0.
  int Start(int events, Callback callback);
  // Stops watching; the fd may be closed after this returns.
  void Stop();
  void Ref();
  void Unref();
  bool HasRef() const;
  int events() const { return events_; }

 private:
  struct State;
  State* state_;
  int events_ = 0;
};

}  // namespace vmlink
