// One split virtqueue (virtio 1.2, 2.7) as seen by the device: pops descriptor chains
// the driver made available, pushes them back as used, and decides when to interrupt.
// The rings live in guest memory the guest can rewrite at any time, so every field is
// read once into a local copy and validated: chain length is bounded (no loops),
// addresses must lie inside the memory table, readable descriptors must come before
// writable ones. A broken ring (an avail index that jumps, a head out of range) marks the
// queue broken: it is not touched again until the driver sets it up anew.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vector>

#include "common/unique_fd.h"
#include "vhost_user/guest_memory.h"

namespace vmlink {

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<iovec> readable;
  std::vector<iovec> writable;
  size_t readable_bytes = 0;
  size_t writable_bytes = 0;
  void Clear() {
    readable.clear();
    writable.clear();
    readable_bytes = writable_bytes = 0;
  }
};

enum class PopResult {
  kEmpty,     // nothing available
  kChain,     // `chain` is valid
  kBadChain,  // the chain is malformed: push it back used with length 0 and go on
  kBroken,    // the ring itself is corrupt: the queue is now broken
};

// Why a chain was bad (for counters and log lines).
enum class ChainFault {
  kNone,
  kLoopOrTooLong,
  kOutOfMemory,   // an address outside the memory table
  kBadIndirect,   // nested, with NEXT, or a size that is not whole descriptors
  kWriteBeforeRead,
  kBadIndex,      // a `next` past the table
};
const char* ChainFaultName(ChainFault fault);

class Virtqueue {
 public:
  static constexpr uint32_t kMaxSize = 32768;
  // Longest chain walked (descriptors, indirect ones included) before calling it a loop.
  static constexpr uint32_t kMaxChainLength = 1024;

  // vhost-user configuration.
  uint32_t size = 0;
  uint64_t desc_uaddr = 0, avail_uaddr = 0, used_uaddr = 0;
  bool has_addresses = false;
  bool started = false;  // kick fd received, not stopped by GET_VRING_BASE
  bool enabled = false;  // SET_VRING_ENABLE
  bool event_idx = false;
  UniqueFd kick, call, err;

  // Resolves the ring pointers through `memory`; false (and not ready) when any ring
  // lies outside it.
  bool Map(const GuestMemory& memory);
  void Unmap();
  bool ready() const { return started && enabled && mapped_ && !broken_; }
  bool mapped() const { return mapped_; }
  bool broken() const { return broken_; }
  void MarkBroken() { broken_ = true; }

  // Chains the driver made available that we have not popped (0 when not ready).
  uint16_t Pending() const;
  void SetBase(uint16_t index);
  uint16_t last_avail() const { return last_avail_; }
  // Forget runtime state (a new driver).
  void Reset();

  PopResult Pop(const GuestMemory& memory, DescriptorChain* chain, ChainFault* fault);
  // Gives the last `count` popped chains back (we had nothing to put in them after all).
  void Unpop(uint16_t count = 1) { last_avail_ = static_cast<uint16_t>(last_avail_ - count); }
  void Push(uint16_t head, uint32_t written);
  // Interrupts the driver if it asked for it since the last call; true when it did.
  bool Notify();
  // Asks for a kick when more is made available. Returns true when something already
  // became available meanwhile (the caller must poll again instead of sleeping).
  bool EnableKick();
  // EVENT_IDX only: asks for a kick once `skip + 1` more chains are available, i.e. lets
  // the next `skip` arrive silently. False without EVENT_IDX (nothing was changed).
  // `*pending` is set when chains are already available (poll instead of waiting).
  bool DeferKick(uint16_t skip, bool* pending);

 private:
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  uint16_t AvailIdx() const;

  volatile Desc* desc_ = nullptr;
  volatile uint16_t* avail_ = nullptr;  // flags, idx, ring[size], used_event
  volatile uint8_t* used_ = nullptr;    // flags, idx, ring[size] of {u32 id, u32 len}, avail_event
  bool mapped_ = false;
  bool broken_ = false;
  uint16_t last_avail_ = 0;
  uint16_t used_idx_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_valid_ = false;
};

}  // namespace vmlink
