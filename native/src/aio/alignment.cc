#include "aio/alignment.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>
#include <string>

namespace vmlink {
namespace {

constexpr uint32_t kDefaultAlignment = 4096;

int FromStatx(int fd, DioAlignment* out) {
#ifdef STATX_DIOALIGN
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) != 0) return errno;
  // A zero alignment means the file system does not support O_DIRECT on this file.
  if ((stx.stx_mask & STATX_DIOALIGN) == 0 || stx.stx_dio_offset_align == 0) return EOPNOTSUPP;
  out->memory = stx.stx_dio_mem_align;
  out->offset = stx.stx_dio_offset_align;
  out->length = stx.stx_dio_offset_align;
  out->source = "statx";
  return 0;
#else
  (void)fd;
  (void)out;
  return EOPNOTSUPP;  // Built against headers that predate Linux 6.1.
#endif
}

bool ReadNumber(const std::string& path, uint32_t* value) {
  std::ifstream in(path);
  unsigned long number = 0;
  if (!(in >> number) || number == 0 || number > (1u << 20)) return false;
  *value = static_cast<uint32_t>(number);
  return true;
}

// The logical block size of the device holding the file: a partition has no queue/ of
// its own, so look at its parent too.
int FromSysfs(int fd, DioAlignment* out) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return errno;
  std::string dev = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  uint32_t size = 0;
  if (!ReadNumber(dev + "/queue/logical_block_size", &size) &&
      !ReadNumber(dev + "/../queue/logical_block_size", &size)) {
    return ENOENT;
  }
  out->memory = size;
  out->offset = size;
  out->length = size;
  out->source = "sysfs";
  return 0;
}

}  // namespace

int QueryDioAlignment(int fd, AlignmentMethod method, DioAlignment* out) {
  if (fcntl(fd, F_GETFD) < 0) return errno;
  if (method == AlignmentMethod::kStatx) return FromStatx(fd, out);
  if (method == AlignmentMethod::kSysfs) return FromSysfs(fd, out);
  if (FromStatx(fd, out) == 0 || FromSysfs(fd, out) == 0) return 0;
  out->memory = out->offset = out->length = kDefaultAlignment;
  out->source = "default";
  return 0;
}

}  // namespace vmlink
