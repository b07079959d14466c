// Copies between flat buffers and scatter lists of guest memory, with an offset.
#pragma once
#include <string.h>
#include <sys/uio.h>

#include <algorithm>
#include <vector>

namespace vmlink {

// Copies up to `len` bytes of `iov` starting at byte `offset` into `out`; returns the count.
inline size_t CopyFromIov(const std::vector<iovec>& iov, size_t offset, void* out, size_t len) {
  size_t done = 0;
  for (const iovec& v : iov) {
    if (done == len) break;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    size_t n = std::min(v.iov_len - offset, len - done);
    memcpy(static_cast<char*>(out) + done, static_cast<const char*>(v.iov_base) + offset, n);
    done += n;
    offset = 0;
  }
  return done;
}

inline size_t CopyToIov(const std::vector<iovec>& iov, size_t offset, const void* data, size_t len) {
  size_t done = 0;
  for (const iovec& v : iov) {
    if (done == len) break;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    size_t n = std::min(v.iov_len - offset, len - done);
    memcpy(static_cast<char*>(v.iov_base) + offset, static_cast<const char*>(data) + done, n);
    done += n;
    offset = 0;
  }
  return done;
}

// The part [offset, offset+len) of `iov` as a new scatter list (no copy).
inline void SliceIov(const std::vector<iovec>& iov, size_t offset, size_t len, std::vector<iovec>* out) {
  out->clear();
  for (const iovec& v : iov) {
    if (len == 0) break;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    size_t n = std::min(v.iov_len - offset, len);
    out->push_back({static_cast<char*>(v.iov_base) + offset, n});
    len -= n;
    offset = 0;
  }
}

}  // namespace vmlink
