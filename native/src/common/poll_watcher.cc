#include "common/poll_watcher.h"

#include <stdexcept>

namespace vmlink {

struct PollWatcher::State {
  uv_poll_t handle;
  Callback callback;
  bool alive = true;
};

PollWatcher::PollWatcher(Napi::Env env, int fd) : state_(new State()) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    delete state_;
    throw std::runtime_error("vmlink: no libuv loop for this environment");
  }
  int rc = uv_poll_init(loop, &state_->handle, fd);
  if (rc != 0) {
    delete state_;
    throw Napi::Error::New(env, std::string("uv_poll_init ") + uv_err_name(rc));
  }
  state_->handle.data = state_;
}

PollWatcher::~PollWatcher() {
  State* state = state_;
  state->alive = false;
  state->callback = nullptr;
  uv_poll_stop(&state->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&state->handle),
           [](uv_handle_t* h) { delete static_cast<State*>(h->data); });
}

int PollWatcher::Start(int events, Callback callback) {
  state_->callback = std::move(callback);
  events_ = events;
  return uv_poll_start(&state_->handle, events, [](uv_poll_t* h, int status, int ev) {
    State* state = static_cast<State*>(h->data);
    if (!state->alive || !state->callback) return;
    // Copy: the callback may destroy the watcher (and so reset state->callback).
    Callback cb = state->callback;
    cb(status, ev);
  });
}

void PollWatcher::Stop() {
  events_ = 0;
  uv_poll_stop(&state_->handle);
}

void PollWatcher::Ref() { uv_ref(reinterpret_cast<uv_handle_t*>(&state_->handle)); }
void PollWatcher::Unref() { uv_unref(reinterpret_cast<uv_handle_t*>(&state_->handle)); }
bool PollWatcher::HasRef() const { return uv_has_ref(reinterpret_cast<const uv_handle_t*>(&state_->handle)) != 0; }

}  // namespace vmlink
