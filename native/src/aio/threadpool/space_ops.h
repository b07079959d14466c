// Space management on an fd, shared by the thread pool's workers and src/aio's async
// fileFallocate/fileDiscard (libuv's pool, for the fs reference backend). Mechanism only:
// each is one syscall (or fstat + one) retried on EINTR; the mode bits come from JS.
#pragma once
#include <cstdint>

namespace vmlink {

// fallocate(fd, mode, offset, length): 0 or an errno.
int SpaceFallocate(int fd, int mode, uint64_t offset, uint64_t length);

// ftruncate(fd, size): 0 or an errno.
int SpaceTruncate(int fd, uint64_t size);

// Punch-hole (keep size) on a regular file, ioctl(BLKDISCARD) on a block device: 0 or an
// errno. `*used_ioctl` says which syscall ran (for the error's syscall name).
int SpaceDiscard(int fd, uint64_t offset, uint64_t length, bool* used_ioctl);

}  // namespace vmlink
