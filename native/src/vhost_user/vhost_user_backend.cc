// The vhost-user side of VsockDevice (QEMU docs/interop/vhost-user.rst): one QEMU at a
// time on the Unix socket; messages may carry fds (SCM_RIGHTS). A message we cannot
// make sense of drops the QEMU connection (QEMU then stops the device), never the process.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "common/errors.h"
#include "vhost_user/vsock_connection.h"
#include "vhost_user/vsock_device.h"

namespace vmlink {
namespace {

enum Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSetSlaveReqFd = 21,
  kGetConfig = 24,
  kSetConfig = 25,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
};

constexpr uint32_t kHeaderSize = 12;
constexpr uint32_t kMaxPayload = 4096;
constexpr uint32_t kMaxFds = 8;
constexpr uint32_t kVersion = 0x1;
constexpr uint32_t kFlagReply = 0x4;
constexpr uint32_t kFlagNeedReply = 0x8;
constexpr uint64_t kVringNoFd = 1ull << 8;
constexpr uint64_t kVringIndexMask = 0xff;

constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;
constexpr uint64_t kProtocolReplyAck = 1ull << 3;
constexpr uint64_t kProtocolConfig = 1ull << 9;
constexpr uint64_t kProtocolConfigureMemSlots = 1ull << 15;

constexpr uint64_t kDeviceFeatures = vsock::kFeatureVersion1 | vsock::kFeatureIndirectDesc | vsock::kFeatureEventIdx | kFeatureProtocolFeatures;
constexpr uint64_t kProtocolFeatures = kProtocolReplyAck | kProtocolConfig | kProtocolConfigureMemSlots;

struct __attribute__((packed)) VringState {
  uint32_t index;
  uint32_t num;
};
struct __attribute__((packed)) VringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc;
  uint64_t used;
  uint64_t avail;
  uint64_t log;
};
struct __attribute__((packed)) ConfigHeader {
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
};

template <typename T>
bool PayloadAs(const std::vector<uint8_t>& payload, T* out) {
  if (payload.size() < sizeof(T)) return false;
  memcpy(out, payload.data(), sizeof(T));
  return true;
}

const char* RequestName(uint32_t r) {
  switch (r) {
    case kGetFeatures: return "GET_FEATURES";
    case kSetFeatures: return "SET_FEATURES";
    case kSetOwner: return "SET_OWNER";
    case kResetOwner: return "RESET_OWNER";
    case kSetMemTable: return "SET_MEM_TABLE";
    case kSetVringNum: return "SET_VRING_NUM";
    case kSetVringAddr: return "SET_VRING_ADDR";
    case kSetVringBase: return "SET_VRING_BASE";
    case kGetVringBase: return "GET_VRING_BASE";
    case kSetVringKick: return "SET_VRING_KICK";
    case kSetVringCall: return "SET_VRING_CALL";
    case kSetVringErr: return "SET_VRING_ERR";
    case kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case kGetQueueNum: return "GET_QUEUE_NUM";
    case kSetVringEnable: return "SET_VRING_ENABLE";
    case kGetConfig: return "GET_CONFIG";
    case kSetConfig: return "SET_CONFIG";
    case kGetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case kAddMemReg: return "ADD_MEM_REG";
    case kRemMemReg: return "REM_MEM_REG";
    default: return "request";
  }
}
}  // namespace

uint64_t VsockDevice::DeviceFeatures() const {
  return kDeviceFeatures | (config_.seqpacket ? vsock::kFeatureSeqpacket : 0);
}

void VsockDevice::AcceptQemu() {
  if (vhost_.valid()) return;
  int fd = ::accept4(vhost_listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return;
    // EMFILE etc.: stop accepting rather than spin; the next QEMU disconnect re-arms.
    vhost_listen_watcher_->Stop();
    Log("vhost-user accept failed: " + ErrnoName(err));
    return;
  }
  AttachQemu(fd);
}

void VsockDevice::AttachQemu(int fd) {
  vhost_.reset(fd);
  // One QEMU at a time: later ones wait in the backlog until this one goes.
  if (vhost_listen_watcher_) vhost_listen_watcher_->Stop();
  vhost_watcher_ = std::make_unique<PollWatcher>(env_, vhost_.get());
  vhost_watcher_->Start(UV_READABLE, [this](int status, int) {
    Guarded([&] {
      if (status < 0) DetachQemu(std::string("poll ") + uv_err_name(status));
      else OnVhostReadable();
    });
  });
  counters_.qemu_connections++;
  acked_features_ = 0;
  acked_protocol_features_ = 0;
  features_set_ = false;
  Emit("qemu-connected");
}

void VsockDevice::DetachQemu(const std::string& why) {
  if (!vhost_.valid()) return;
  ResetDriver(why);
  vhost_watcher_.reset();
  vhost_.reset();
  message_.clear();
  message_fds_.clear();
  for (int i = 0; i < vsock::kQueueCount; i++) {
    kick_watchers_[i].reset();
    Virtqueue& q = queues_[i];
    q.Reset();
    q.Unmap();
    q.has_addresses = false;
    q.size = 0;
    q.kick.reset();
    q.call.reset();
    q.err.reset();
  }
  memory_.Clear();
  // The tx interrupt timer serves this QEMU's rings: no fd of the device outlives them.
  tx_timer_watcher_.reset();
  tx_timer_.reset();
  tx_timer_armed_ = false;
  tx_unsignalled_ = 0;
  tx_kick_timer_watcher_.reset();
  tx_kick_timer_.reset();
  tx_kick_timer_armed_ = false;
  tx_kick_skip_ = 0;
  tx_streaming_.clear();
  tx_deferred_conns_.clear();
  Emit("qemu-disconnected", why);
  if (vhost_listen_watcher_) {
    vhost_listen_watcher_->Start(UV_READABLE, [this](int status, int) { Guarded([&] { AcceptQemu(); }); });
  }
}

void VsockDevice::OnVhostReadable() {
  // Bounded per wake-up so one chatty QEMU cannot hold the loop.
  for (int i = 0; i < 64 && vhost_.valid(); i++) {
    if (!ReadVhostMessage()) return;
  }
}

bool VsockDevice::ReadVhostMessage() {
  size_t have = message_.size();
  size_t want = kHeaderSize;
  if (have >= kHeaderSize) {
    uint32_t size;
    memcpy(&size, message_.data() + 8, 4);
    want = kHeaderSize + size;
  }
  message_.resize(want);
  iovec iov{message_.data() + have, want - have};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(vhost_.get(), &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) {
    int err = errno;
    message_.resize(have);
    if (err == EAGAIN || err == EWOULDBLOCK) return false;
    if (err == EINTR) return true;
    DetachQemu("recvmsg " + ErrnoName(err));
    return false;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        message_fds_.emplace_back(fd);
      }
    }
  }
  if (n == 0) {
    message_.resize(have);
    DetachQemu("QEMU closed the vhost-user socket");
    return false;
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    DetachQemu("vhost-user message with too many fds");
    return false;
  }
  message_.resize(have + static_cast<size_t>(n));
  if (message_.size() == kHeaderSize) {
    uint32_t size;
    memcpy(&size, message_.data() + 8, 4);
    if (size > kMaxPayload) {
      DetachQemu("vhost-user message of " + std::to_string(size) + " bytes");
      return false;
    }
    if (size > 0) return true;
  }
  if (message_.size() < kHeaderSize) return true;
  uint32_t request, flags, size;
  memcpy(&request, message_.data(), 4);
  memcpy(&flags, message_.data() + 4, 4);
  memcpy(&size, message_.data() + 8, 4);
  if (message_.size() < kHeaderSize + size) return true;
  std::vector<uint8_t> payload(message_.begin() + kHeaderSize, message_.end());
  std::vector<UniqueFd> fds = std::move(message_fds_);
  message_.clear();
  message_fds_.clear();
  counters_.vhost_user_messages++;
  if ((flags & 0x3) != kVersion) {
    DetachQemu("vhost-user message with version " + std::to_string(flags & 0x3));
    return false;
  }
  bool ok = HandleMessage(request, flags, payload, fds);
  if (!vhost_.valid()) return false;
  if (!ok) {
    counters_.vhost_user_errors++;
    Log(std::string("vhost-user ") + RequestName(request) + " (" + std::to_string(request) + ") rejected");
  }
  bool has_own_reply = request == kGetFeatures || request == kGetProtocolFeatures || request == kGetVringBase ||
                       request == kGetQueueNum || request == kGetConfig || request == kGetMaxMemSlots;
  if ((flags & kFlagNeedReply) && (acked_protocol_features_ & kProtocolReplyAck) && !has_own_reply) {
    uint64_t status = ok ? 0 : 1;
    SendReply(request, &status, sizeof status);
  }
  return vhost_.valid();
}

bool VsockDevice::SendReply(uint32_t request, const void* payload, uint32_t size) {
  uint8_t buffer[kHeaderSize + 512];
  if (size > 512) return false;
  uint32_t flags = kVersion | kFlagReply;
  memcpy(buffer, &request, 4);
  memcpy(buffer + 4, &flags, 4);
  memcpy(buffer + 8, &size, 4);
  memcpy(buffer + kHeaderSize, payload, size);
  // QEMU waits for this reply, so its socket buffer has room; a short write is an error.
  ssize_t n = ::send(vhost_.get(), buffer, kHeaderSize + size, MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(kHeaderSize + size)) {
    DetachQemu("vhost-user reply failed");
    return false;
  }
  return true;
}

bool VsockDevice::HandleMessage(uint32_t request, uint32_t flags, std::vector<uint8_t>& payload, std::vector<UniqueFd>& fds) {
  switch (request) {
    case kGetFeatures: {
      uint64_t features = DeviceFeatures();
      return SendReply(request, &features, sizeof features);
    }
    case kSetFeatures: {
      uint64_t features;
      if (!PayloadAs(payload, &features)) return false;
      if (features & ~DeviceFeatures()) return false;
      acked_features_ = features;
      features_set_ = true;
      for (Virtqueue& q : queues_) q.event_idx = (features & vsock::kFeatureEventIdx) != 0;
      return true;
    }
    case kGetProtocolFeatures: {
      uint64_t features = kProtocolFeatures;
      return SendReply(request, &features, sizeof features);
    }
    case kSetProtocolFeatures: {
      uint64_t features;
      if (!PayloadAs(payload, &features)) return false;
      acked_protocol_features_ = features & kProtocolFeatures;
      return true;
    }
    case kGetQueueNum: {
      uint64_t n = vsock::kQueueCount;
      return SendReply(request, &n, sizeof n);
    }
    case kGetMaxMemSlots: {
      uint64_t n = GuestMemory::kMaxRegions;
      return SendReply(request, &n, sizeof n);
    }
    case kSetOwner:
      return true;
    case kResetOwner:
    case kResetDevice:
      ResetDriver("device reset by QEMU");
      return true;
    case kSetMemTable: {
      uint32_t count;
      if (payload.size() < 8) return false;
      memcpy(&count, payload.data(), 4);
      if (count > 8 || payload.size() < 8 + count * sizeof(MemoryRegionDesc) || fds.size() != count) return false;
      memory_.Clear();
      for (uint32_t i = 0; i < count; i++) {
        MemoryRegionDesc desc;
        memcpy(&desc, payload.data() + 8 + i * sizeof desc, sizeof desc);
        int rc = memory_.Add(desc, fds[i].get());
        if (rc != 0) {
          Log("memory region rejected: " + ErrnoName(rc));
          memory_.Clear();
          RemapQueues();
          return false;
        }
      }
      RemapQueues();
      return true;
    }
    case kAddMemReg: {
      MemoryRegionDesc desc;
      if (payload.size() < 8 + sizeof desc || fds.size() != 1) return false;
      memcpy(&desc, payload.data() + 8, sizeof desc);
      int rc = memory_.Add(desc, fds[0].get());
      if (rc != 0) Log("memory region rejected: " + ErrnoName(rc));
      RemapQueues();
      return rc == 0;
    }
    case kRemMemReg: {
      MemoryRegionDesc desc;
      if (payload.size() < 8 + sizeof desc) return false;
      memcpy(&desc, payload.data() + 8, sizeof desc);
      bool removed = memory_.Remove(desc);
      RemapQueues();
      return removed;
    }
    case kSetVringNum: {
      VringState s;
      if (!PayloadAs(payload, &s) || s.index >= vsock::kQueueCount) return false;
      if (s.num == 0 || s.num > Virtqueue::kMaxSize || (s.num & (s.num - 1)) != 0) return false;
      queues_[s.index].size = s.num;
      queues_[s.index].Map(memory_);
      return true;
    }
    case kSetVringAddr: {
      VringAddr a;
      if (!PayloadAs(payload, &a) || a.index >= vsock::kQueueCount) return false;
      Virtqueue& q = queues_[a.index];
      q.desc_uaddr = a.desc;
      q.used_uaddr = a.used;
      q.avail_uaddr = a.avail;
      q.has_addresses = true;
      bool ok = q.Map(memory_);
      CheckDriverState();
      return ok;
    }
    case kSetVringBase: {
      VringState s;
      if (!PayloadAs(payload, &s) || s.index >= vsock::kQueueCount || s.num > 0xffff) return false;
      queues_[s.index].SetBase(static_cast<uint16_t>(s.num));
      return true;
    }
    case kGetVringBase: {
      VringState s;
      if (!PayloadAs(payload, &s) || s.index >= vsock::kQueueCount) return false;
      StopQueue(static_cast<int>(s.index));
      VringState reply{s.index, queues_[s.index].last_avail()};
      return SendReply(request, &reply, sizeof reply);
    }
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr: {
      uint64_t u;
      if (!PayloadAs(payload, &u)) return false;
      uint64_t index = u & kVringIndexMask;
      if (index >= vsock::kQueueCount) return false;
      bool no_fd = (u & kVringNoFd) != 0;
      if (!no_fd && fds.size() != 1) return false;
      UniqueFd fd = no_fd ? UniqueFd() : std::move(fds[0]);
      // Our reads and writes of these eventfds must never block the loop, whatever QEMU gave.
      if (fd.valid()) {
        int fl = ::fcntl(fd.get(), F_GETFL);
        if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK) < 0) return false;
      }
      Virtqueue& q = queues_[index];
      if (request == kSetVringCall) {
        q.call = std::move(fd);
      } else if (request == kSetVringErr) {
        q.err = std::move(fd);
      } else {
        kick_watchers_[index].reset();
        q.kick = std::move(fd);
        StartQueue(static_cast<int>(index));
      }
      return true;
    }
    case kSetVringEnable: {
      VringState s;
      if (!PayloadAs(payload, &s) || s.index >= vsock::kQueueCount) return false;
      queues_[s.index].enabled = s.num != 0;
      CheckDriverState();
      if (queues_[s.index].enabled) OnKick(static_cast<int>(s.index));
      return true;
    }
    case kGetConfig: {
      ConfigHeader h;
      if (!PayloadAs(payload, &h) || h.size > 256 || payload.size() < sizeof h + h.size) return false;
      std::vector<uint8_t> reply(sizeof h + h.size, 0);
      memcpy(reply.data(), &h, sizeof h);
      // virtio_vsock_config: le64 guest_cid, nothing else.
      uint8_t config[8];
      memcpy(config, &config_.guest_cid, 8);
      for (uint32_t i = 0; i < h.size; i++) {
        uint64_t at = static_cast<uint64_t>(h.offset) + i;
        if (at < sizeof config) reply[sizeof h + i] = config[at];
      }
      return SendReply(request, reply.data(), static_cast<uint32_t>(reply.size()));
    }
    case kSetConfig:
      return true;  // the guest CID is ours to give, not the driver's to change
    case kSetSlaveReqFd:
      return true;  // not offered; the fd (if any) closes with `fds`
    default:
      (void)flags;
      return false;
  }
}

void VsockDevice::RemapQueues() {
  for (Virtqueue& q : queues_) {
    if (q.has_addresses) q.Map(memory_);
  }
  CheckDriverState();
}

void VsockDevice::StartQueue(int index) {
  Virtqueue& q = queues_[index];
  // Without protocol features a ring is enabled as soon as it starts (vhost-user.rst).
  if (!(acked_features_ & kFeatureProtocolFeatures)) q.enabled = true;
  q.started = true;
  if (q.kick.valid()) {
    try {
      kick_watchers_[index] = std::make_unique<PollWatcher>(env_, q.kick.get());
    } catch (const std::exception&) {
      // Not a pollable fd (a regular file...): refuse the ring rather than spin on it.
      Log("ring " + std::to_string(index) + ": the kick fd cannot be polled; ring not started");
      q.kick.reset();
      q.started = false;
      return;
    }
    kick_watchers_[index]->Start(UV_READABLE, [this, index](int status, int) {
      Guarded([&] {
        if (status < 0) {
          Log("kick poll failed: " + std::string(uv_err_name(status)));
          kick_watchers_[index]->Stop();
          return;
        }
        OnKick(index);
      });
    });
  }
  CheckDriverState();
  OnKick(index);
}

void VsockDevice::StopQueue(int index) {
  Virtqueue& q = queues_[index];
  if (index == vsock::kTxQueue) FlushTxNotify();  // completions held back go out before the ring stops
  kick_watchers_[index].reset();
  q.started = false;
  if (index != vsock::kEventQueue) ResetDriver("rings stopped");
}

void VsockDevice::CheckDriverState() {
  bool ready = queues_[vsock::kRxQueue].ready() && queues_[vsock::kTxQueue].ready();
  if (ready && !driver_ready_) {
    driver_ready_ = true;
    counters_.driver_starts++;
    // A new driver must forget every connection of an earlier one (Linux also re-reads
    // the CID on it).
    transport_reset_pending_ = true;
    Emit("driver-ready");
    ServiceEvent();
  }
}

void VsockDevice::ResetDriver(const std::string& why) {
  if (!driver_ready_) {
    ResetAllConnections();
    return;
  }
  driver_ready_ = false;
  counters_.driver_resets++;
  ResetAllConnections();
  Emit("reset", why);
}

}  // namespace vmlink
