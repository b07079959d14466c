#include "aio/threadpool/space_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmlink {
namespace {

constexpr uint64_t kMaxOff = static_cast<uint64_t>(INT64_MAX);

}  // namespace

int SpaceFallocate(int fd, int mode, uint64_t offset, uint64_t length) {
  if (offset > kMaxOff || length > kMaxOff) return EFBIG;
  int rc;
  do rc = fallocate(fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length));
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

int SpaceTruncate(int fd, uint64_t size) {
  if (size > kMaxOff) return EFBIG;
  int rc;
  do rc = ftruncate(fd, static_cast<off_t>(size));
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

int SpaceDiscard(int fd, uint64_t offset, uint64_t length, bool* used_ioctl) {
  *used_ioctl = false;
  struct stat st {};
  if (fstat(fd, &st) != 0) return errno;
  if (!S_ISBLK(st.st_mode)) return SpaceFallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  *used_ioctl = true;
  uint64_t range[2] = {offset, length};
  int rc;
  do rc = ioctl(fd, BLKDISCARD, range);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

}  // namespace vmlink
