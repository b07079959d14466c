// A thread that can be reaped without waiting: TryJoin() joins it only once it has ended
// (pthread_tryjoin_np). std::thread can only block in join(), and a worker that has said
// it is leaving may still need a CPU to finish (on 2 busy cores: milliseconds), so a loop
// thread that joined it would stall for that long. Join() blocks; the destructor joins.
#pragma once
#include <pthread.h>

#include <exception>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>

namespace vmlink {

class JoinableThread {
 public:
  JoinableThread() = default;

  // Starts `body` on a new thread; throws std::system_error (with the errno) when none starts.
  explicit JoinableThread(std::function<void()> body) {
    auto owned = std::make_unique<std::function<void()>>(std::move(body));
    int rc = pthread_create(&thread_, nullptr, &Run, owned.get());
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_create");
    owned.release();  // the thread owns it now
    joinable_ = true;
  }

  JoinableThread(JoinableThread&& other) noexcept
      : thread_(other.thread_), joinable_(std::exchange(other.joinable_, false)) {}

  JoinableThread& operator=(JoinableThread&& other) noexcept {
    if (this != &other) {
      Join();
      thread_ = other.thread_;
      joinable_ = std::exchange(other.joinable_, false);
    }
    return *this;
  }

  JoinableThread(const JoinableThread&) = delete;
  JoinableThread& operator=(const JoinableThread&) = delete;

  ~JoinableThread() { Join(); }

  // True when the thread has ended and is joined now (or never ran); false, without
  // waiting, while it is still running.
  bool TryJoin() {
    if (!joinable_) return true;
    if (pthread_tryjoin_np(thread_, nullptr) != 0) return false;
    joinable_ = false;
    return true;
  }

  void Join() {
    if (!joinable_) return;
    pthread_join(thread_, nullptr);
    joinable_ = false;
  }

 private:
  static void* Run(void* arg) {
    std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
    try {
      (*body)();
    } catch (...) {
      std::terminate();  // as std::thread does: an exception may not leave a thread
    }
    return nullptr;
  }

  pthread_t thread_{};
  bool joinable_ = false;
};

}  // namespace vmlink
