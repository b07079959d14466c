#include "vhost_user/virtqueue.h"

#include <string.h>
#include <unistd.h>

#include <atomic>

namespace vmlink {
namespace {
constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kDescIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1;

uint16_t LoadU16(const volatile uint16_t* p) { return __atomic_load_n(const_cast<const uint16_t*>(p), __ATOMIC_RELAXED); }
void StoreU16(volatile uint8_t* p, uint16_t v) { __atomic_store_n(reinterpret_cast<uint16_t*>(const_cast<uint8_t*>(p)), v, __ATOMIC_RELAXED); }
void StoreU32(volatile uint8_t* p, uint32_t v) { __atomic_store_n(reinterpret_cast<uint32_t*>(const_cast<uint8_t*>(p)), v, __ATOMIC_RELAXED); }

// virtio's vring_need_event: did new_idx move past event since old?
bool NeedEvent(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}
}  // namespace

const char* ChainFaultName(ChainFault fault) {
  switch (fault) {
    case ChainFault::kNone: return "none";
    case ChainFault::kLoopOrTooLong: return "descriptor chain loops or is too long";
    case ChainFault::kOutOfMemory: return "descriptor address outside the memory table";
    case ChainFault::kBadIndirect: return "malformed indirect descriptor";
    case ChainFault::kWriteBeforeRead: return "readable descriptor after a writable one";
    case ChainFault::kBadIndex: return "descriptor index past the table";
  }
  return "?";
}

bool Virtqueue::Map(const GuestMemory& memory) {
  mapped_ = false;
  if (!has_addresses || size == 0) return false;
  uint8_t* desc = memory.TranslateUser(desc_uaddr, 16ull * size);
  uint8_t* avail = memory.TranslateUser(avail_uaddr, 6ull + 2ull * size);
  uint8_t* used = memory.TranslateUser(used_uaddr, 6ull + 8ull * size);
  if (desc == nullptr || avail == nullptr || used == nullptr) return false;
  // Alignment the spec requires (16, 2, 4); unaligned rings would make our atomics UB.
  if (reinterpret_cast<uintptr_t>(desc) % 16 || reinterpret_cast<uintptr_t>(avail) % 2 || reinterpret_cast<uintptr_t>(used) % 4) return false;
  desc_ = reinterpret_cast<volatile Desc*>(desc);
  avail_ = reinterpret_cast<volatile uint16_t*>(avail);
  used_ = used;
  mapped_ = true;
  return true;
}

void Virtqueue::Unmap() {
  mapped_ = false;
  desc_ = nullptr;
  avail_ = nullptr;
  used_ = nullptr;
}

void Virtqueue::SetBase(uint16_t index) {
  last_avail_ = index;
  used_idx_ = index;
  signalled_valid_ = false;
  broken_ = false;  // a driver setting the ring up anew gets a fresh start
}

void Virtqueue::Reset() {
  started = enabled = false;
  broken_ = false;
  signalled_valid_ = false;
}

uint16_t Virtqueue::AvailIdx() const {
  uint16_t idx = LoadU16(avail_ + 1);
  // The ring entries we read next must not be read before the index that covers them.
  std::atomic_thread_fence(std::memory_order_acquire);
  return idx;
}

uint16_t Virtqueue::Pending() const {
  if (!ready()) return 0;
  return static_cast<uint16_t>(AvailIdx() - last_avail_);
}

PopResult Virtqueue::Pop(const GuestMemory& memory, DescriptorChain* chain, ChainFault* fault) {
  *fault = ChainFault::kNone;
  chain->Clear();
  if (!ready()) return PopResult::kEmpty;
  uint16_t avail_idx = AvailIdx();
  uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_);
  if (pending == 0) return PopResult::kEmpty;
  if (pending > size) {
    broken_ = true;
    return PopResult::kBroken;
  }
  uint16_t head = LoadU16(avail_ + 2 + (last_avail_ % size));
  if (head >= size) {
    broken_ = true;
    return PopResult::kBroken;
  }
  last_avail_++;
  chain->head = head;

  const volatile Desc* table = desc_;
  uint32_t table_size = size;
  uint32_t index = head;
  uint32_t walked = 0;
  bool indirect = false;
  bool seen_writable = false;
  for (;;) {
    if (index >= table_size) {
      *fault = ChainFault::kBadIndex;
      return PopResult::kBadChain;
    }
    // A loop-free chain visits each descriptor of its table at most once.
    if (++walked > table_size || walked > kMaxChainLength) {
      *fault = ChainFault::kLoopOrTooLong;
      return PopResult::kBadChain;
    }
    // One copy of the descriptor: the guest may rewrite it while we look.
    Desc d;
    memcpy(&d, const_cast<const Desc*>(&table[index]), sizeof d);
    if (d.flags & kDescIndirect) {
      if (indirect || (d.flags & kDescNext) || d.len == 0 || d.len % sizeof(Desc) != 0 || d.len / sizeof(Desc) > kMaxChainLength) {
        *fault = ChainFault::kBadIndirect;
        return PopResult::kBadChain;
      }
      uint8_t* t = memory.Translate(d.addr, d.len);
      if (t == nullptr || reinterpret_cast<uintptr_t>(t) % alignof(uint64_t) != 0) {
        *fault = t == nullptr ? ChainFault::kOutOfMemory : ChainFault::kBadIndirect;
        return PopResult::kBadChain;
      }
      table = reinterpret_cast<const volatile Desc*>(t);
      table_size = d.len / sizeof(Desc);
      index = 0;
      walked = 0;
      indirect = true;
      continue;
    }
    if (d.len > 0) {
      uint8_t* p = memory.Translate(d.addr, d.len);
      if (p == nullptr) {
        *fault = ChainFault::kOutOfMemory;
        return PopResult::kBadChain;
      }
      if (d.flags & kDescWrite) {
        seen_writable = true;
        chain->writable.push_back({p, d.len});
        chain->writable_bytes += d.len;
      } else {
        if (seen_writable) {
          *fault = ChainFault::kWriteBeforeRead;
          return PopResult::kBadChain;
        }
        chain->readable.push_back({p, d.len});
        chain->readable_bytes += d.len;
      }
    } else if (d.flags & kDescWrite) {
      seen_writable = true;
    }
    if (!(d.flags & kDescNext)) return PopResult::kChain;
    index = d.next;
  }
}

void Virtqueue::Push(uint16_t head, uint32_t written) {
  volatile uint8_t* entry = used_ + 4 + 8 * (used_idx_ % size);
  StoreU32(entry, head);
  StoreU32(entry + 4, written);
  // The entry must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  used_idx_++;
  StoreU16(used_ + 2, used_idx_);
}

bool Virtqueue::Notify() {
  if (!mapped_ || broken_) return false;
  if (signalled_valid_ && used_idx_ == signalled_used_) return false;  // nothing new since the last interrupt decision
  // Our used index store must be visible before we read the driver's suppression state.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool needed;
  if (event_idx) {
    uint16_t used_event = LoadU16(avail_ + 2 + size);
    needed = !signalled_valid_ || NeedEvent(used_event, used_idx_, signalled_used_);
  } else {
    needed = (LoadU16(avail_) & kAvailNoInterrupt) == 0;
  }
  signalled_used_ = used_idx_;
  signalled_valid_ = true;
  if (needed && call.valid()) {
    uint64_t one = 1;
    ssize_t rc = ::write(call.get(), &one, sizeof one);
    (void)rc;  // EAGAIN means the counter is already non-zero: the driver will look anyway
    return true;
  }
  return false;
}

bool Virtqueue::EnableKick() {
  if (!ready()) return false;
  if (event_idx) {
    StoreU16(used_ + 4 + 8 * size, last_avail_);
  }
  // Publish avail_event before re-reading the avail index (pairs with the driver's
  // barrier between its avail index store and its avail_event load).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return AvailIdx() != last_avail_;
}

bool Virtqueue::DeferKick(uint16_t skip, bool* pending) {
  *pending = false;
  if (!ready() || !event_idx) return false;
  StoreU16(used_ + 4 + 8 * size, static_cast<uint16_t>(last_avail_ + skip));
  std::atomic_thread_fence(std::memory_order_seq_cst);
  *pending = AvailIdx() != last_avail_;
  return true;
}

}  // namespace vmlink
