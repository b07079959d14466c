#include "vhost_user/guest_memory.h"

#include <errno.h>
#include <sys/mman.h>

namespace vmlink {
namespace {
bool RangeInside(uint64_t start, uint64_t len, uint64_t region_start, uint64_t region_size) {
  if (start < region_start) return false;
  uint64_t offset = start - region_start;
  return offset <= region_size && len <= region_size - offset;
}
}  // namespace

int GuestMemory::Add(const MemoryRegionDesc& desc, int fd) {
  if (regions_.size() >= kMaxRegions) return ENOSPC;
  uint64_t end;
  if (desc.memory_size == 0 || __builtin_add_overflow(desc.guest_phys_addr, desc.memory_size, &end) ||
      __builtin_add_overflow(desc.userspace_addr, desc.memory_size, &end) ||
      __builtin_add_overflow(desc.mmap_offset, desc.memory_size, &end) || end > SIZE_MAX) {
    return EINVAL;
  }
  for (const Region& r : regions_) {
    bool disjoint = desc.guest_phys_addr + desc.memory_size <= r.desc.guest_phys_addr ||
                    r.desc.guest_phys_addr + r.desc.memory_size <= desc.guest_phys_addr;
    if (!disjoint) return EINVAL;
  }
  size_t length = static_cast<size_t>(desc.mmap_offset + desc.memory_size);
  void* map = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (map == MAP_FAILED) return errno;
  regions_.push_back(Region{desc, map, length, static_cast<uint8_t*>(map) + desc.mmap_offset});
  generation_++;
  return 0;
}

bool GuestMemory::Remove(const MemoryRegionDesc& desc) {
  for (size_t i = 0; i < regions_.size(); i++) {
    const Region& r = regions_[i];
    if (r.desc.guest_phys_addr == desc.guest_phys_addr && r.desc.memory_size == desc.memory_size) {
      ::munmap(r.map, r.map_length);
      regions_.erase(regions_.begin() + static_cast<ptrdiff_t>(i));
      generation_++;
      return true;
    }
  }
  return false;
}

void GuestMemory::Clear() {
  for (const Region& r : regions_) ::munmap(r.map, r.map_length);
  if (!regions_.empty()) generation_++;
  regions_.clear();
}

uint8_t* GuestMemory::Translate(uint64_t gpa, uint64_t len) const {
  for (const Region& r : regions_) {
    if (RangeInside(gpa, len, r.desc.guest_phys_addr, r.desc.memory_size)) return r.host + (gpa - r.desc.guest_phys_addr);
  }
  return nullptr;
}

uint8_t* GuestMemory::TranslateUser(uint64_t uaddr, uint64_t len) const {
  for (const Region& r : regions_) {
    if (RangeInside(uaddr, len, r.desc.userspace_addr, r.desc.memory_size)) return r.host + (uaddr - r.desc.userspace_addr);
  }
  return nullptr;
}

uint64_t GuestMemory::mapped_bytes() const {
  uint64_t total = 0;
  for (const Region& r : regions_) total += r.desc.memory_size;
  return total;
}

}  // namespace vmlink
