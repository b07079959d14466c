// One Linux AIO context (io_setup/io_submit/io_getevents/io_destroy through raw syscalls,
// no libaio) plus the eventfd its completions signal. No N-API here: iosubmit_module.cc
// wraps it for JS.
#pragma once
#include <linux/aio_abi.h>

#include <cstdint>

#include "common/unique_fd.h"

namespace vmlink {
namespace aio {

class KernelAio {
 public:
  // io_setup(maxEvents) and an EFD_NONBLOCK|EFD_CLOEXEC eventfd. Returns 0 or an errno
  // (`*syscall` names the call that failed).
  int Open(unsigned maxEvents, const char** syscall);
  // io_destroy: the kernel waits for every request still in flight first.
  ~KernelAio();

  int eventFd() const { return eventFd_.get(); }

  // io_submit: the number accepted (a prefix of `iocbs`), or -errno when the first failed.
  // EINTR is retried here.
  int Submit(iocb** iocbs, int count);

  // Completions without blocking: from the userspace ring when its header is one we
  // understand, else io_getevents with a zero timeout. Returns the count, or -errno.
  int Reap(io_event* out, int max);

  // Consumes the eventfd counter so the next completion wakes the poller again.
  void DrainEventFd();

  bool usesRing() const { return ringUsable_; }

 private:
  aio_context_t ctx_ = 0;
  UniqueFd eventFd_;
  bool ringUsable_ = false;
};

// /proc/sys/fs/aio-max-nr and aio-nr, for the io_setup EAGAIN message; -1 when unreadable.
long ReadProcLong(const char* path);

}  // namespace aio
}  // namespace vmlink
