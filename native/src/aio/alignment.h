// O_DIRECT alignment of an open file: statx(STATX_DIOALIGN) (Linux 6.1+), else the
// device's logical block size from sysfs, else a conservative default.
#pragma once
#include <cstdint>

namespace vmlink {

struct DioAlignment {
  uint32_t memory = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  const char* source = "default";  // "statx", "sysfs" or "default"
};

enum class AlignmentMethod { kAuto, kStatx, kSysfs };

// Returns 0 and fills `out`, or an errno (EBADF for a closed fd). kStatx fails with
// EOPNOTSUPP when the kernel or file system does not report DIOALIGN.
int QueryDioAlignment(int fd, AlignmentMethod method, DioAlignment* out);

}  // namespace vmlink
