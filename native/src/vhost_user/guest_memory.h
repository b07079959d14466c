// The guest's memory as QEMU shares it over vhost-user: regions of memfds we mmap, each
// known by guest-physical address (descriptors) and QEMU virtual address (ring addresses).
// Every lookup checks that the whole range lies inside one region, so a guest can never
// make us touch memory it did not share.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace vmlink {

struct MemoryRegionDesc {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};

class GuestMemory {
 public:
  static constexpr size_t kMaxRegions = 32;

  GuestMemory() = default;
  ~GuestMemory() { Clear(); }
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Maps `fd` (not taken: the caller closes it). Returns 0 or an errno (EINVAL for a
  // region that is empty, overflows or overlaps another, ENOSPC past kMaxRegions).
  int Add(const MemoryRegionDesc& desc, int fd);
  // Unmaps the region with this guest address and size; false when there is none.
  bool Remove(const MemoryRegionDesc& desc);
  void Clear();

  // Host pointer for [gpa, gpa+len) or nullptr when not wholly inside one region.
  uint8_t* Translate(uint64_t gpa, uint64_t len) const;
  // The same for QEMU's virtual addresses (vring addresses).
  uint8_t* TranslateUser(uint64_t uaddr, uint64_t len) const;

  size_t region_count() const { return regions_.size(); }
  uint64_t mapped_bytes() const;
  // Bumped on every change, so holders of translated pointers know to re-translate.
  uint64_t generation() const { return generation_; }

 private:
  struct Region {
    MemoryRegionDesc desc;
    void* map;
    size_t map_length;
    uint8_t* host;  // map + mmap_offset: guest_phys_addr lives here
  };
  std::vector<Region> regions_;
  uint64_t generation_ = 0;
};

}  // namespace vmlink
