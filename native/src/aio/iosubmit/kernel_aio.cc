#include "aio/iosubmit/kernel_aio.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace vmlink {
namespace aio {

namespace {

// The header the kernel maps at the context address (fs/aio.c `struct aio_ring`); not in
// the uapi headers, so it is spelled out here, as QEMU and libaio do.
struct AioRing {
  unsigned id;
  unsigned nr;    // number of io_event slots
  unsigned head;  // written by userspace (or io_getevents)
  unsigned tail;  // written by the kernel after the event
  unsigned magic;
  unsigned compat_features;
  unsigned incompat_features;
  unsigned header_length;
  struct io_event io_events[];
};

constexpr unsigned kAioRingMagic = 0xa10a10a1;
constexpr unsigned kAioRingIncompatFeatures = 0;

long SysIoSetup(unsigned nr, aio_context_t* ctx) { return syscall(SYS_io_setup, nr, ctx); }
long SysIoDestroy(aio_context_t ctx) { return syscall(SYS_io_destroy, ctx); }
long SysIoSubmit(aio_context_t ctx, long n, iocb** iocbs) { return syscall(SYS_io_submit, ctx, n, iocbs); }
long SysIoGetevents(aio_context_t ctx, long minNr, long nr, io_event* events, timespec* timeout) {
  return syscall(SYS_io_getevents, ctx, minNr, nr, events, timeout);
}

}  // namespace

int KernelAio::Open(unsigned maxEvents, const char** syscallName) {
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    *syscallName = "eventfd";
    return errno;
  }
  eventFd_.reset(efd);
  aio_context_t ctx = 0;
  if (SysIoSetup(maxEvents, &ctx) < 0) {
    *syscallName = "io_setup";
    return errno;
  }
  ctx_ = ctx;
  const AioRing* ring = reinterpret_cast<const AioRing*>(ctx_);
  ringUsable_ = ring->magic == kAioRingMagic && ring->incompat_features == kAioRingIncompatFeatures &&
                ring->header_length == sizeof(AioRing) && ring->nr > 0;
  return 0;
}

KernelAio::~KernelAio() {
  if (ctx_ != 0) {
    // Blocks until in-flight requests complete, so their buffers may be released after.
    while (SysIoDestroy(ctx_) < 0 && errno == EINTR) {
    }
    ctx_ = 0;
  }
}

int KernelAio::Submit(iocb** iocbs, int count) {
  for (;;) {
    long rc = SysIoSubmit(ctx_, count, iocbs);
    if (rc >= 0) return static_cast<int>(rc);
    if (errno != EINTR) return -errno;
  }
}

int KernelAio::Reap(io_event* out, int max) {
  if (max <= 0) return 0;
  if (ringUsable_) {
    AioRing* ring = reinterpret_cast<AioRing*>(ctx_);
    unsigned nr = ring->nr;
    unsigned head = __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
    // Acquire pairs with the kernel's write barrier between storing an event and
    // publishing the new tail (aio_complete): no event is read before its tail.
    unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
    int count = 0;
    while (head != tail && count < max) {
      out[count++] = ring->io_events[head];
      head = (head + 1) % nr;
    }
    // Release: the slots are copied before the kernel may reuse them.
    if (count > 0) __atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
    return count;
  }
  timespec zero = {0, 0};
  for (;;) {
    long rc = SysIoGetevents(ctx_, 0, max, out, &zero);
    if (rc >= 0) return static_cast<int>(rc);
    if (errno != EINTR) return -errno;
  }
}

void KernelAio::DrainEventFd() {
  uint64_t value;
  while (read(eventFd_.get(), &value, sizeof value) < 0 && errno == EINTR) {
  }
}

long ReadProcLong(const char* path) {
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return -1;
  long value = -1;
  if (std::fscanf(f, "%ld", &value) != 1) value = -1;
  std::fclose(f);
  return value;
}

}  // namespace aio
}  // namespace vmlink
