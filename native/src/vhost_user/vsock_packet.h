// virtio-vsock wire format (virtio spec 1.2, 5.10): the 44-byte little-endian packet
// header, its ops/types/flags, the event queue's event and the device config.
#pragma once
#include <stdint.h>

namespace vmlink {
namespace vsock {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio-vsock headers are little-endian; this code reads them in place");

struct __attribute__((packed)) Header {
  uint64_t src_cid;
  uint64_t dst_cid;
  uint32_t src_port;
  uint32_t dst_port;
  uint32_t len;
  uint16_t type;
  uint16_t op;
  uint32_t flags;
  uint32_t buf_alloc;
  uint32_t fwd_cnt;
};
static_assert(sizeof(Header) == 44, "virtio_vsock_hdr is 44 bytes");

constexpr uint64_t kHostCid = 2;
constexpr uint16_t kTypeStream = 1;
constexpr uint16_t kTypeSeqpacket = 2;

enum Op : uint16_t {
  kOpInvalid = 0,
  kOpRequest = 1,
  kOpResponse = 2,
  kOpRst = 3,
  kOpShutdown = 4,
  kOpRw = 5,
  kOpCreditUpdate = 6,
  kOpCreditRequest = 7,
};

constexpr uint32_t kShutdownRcv = 1;
constexpr uint32_t kShutdownSend = 2;
constexpr uint32_t kSeqEom = 1;
constexpr uint32_t kSeqEor = 2;

// Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE: no packet payload may be larger.
constexpr uint32_t kMaxPayload = 64 * 1024;

constexpr uint32_t kEventTransportReset = 0;

// Queue indexes.
constexpr int kRxQueue = 0;  // device -> driver
constexpr int kTxQueue = 1;  // driver -> device
constexpr int kEventQueue = 2;
constexpr int kQueueCount = 3;

// Feature bits.
constexpr uint64_t kFeatureSeqpacket = 1ull << 1;
constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
constexpr uint64_t kFeatureEventIdx = 1ull << 29;
constexpr uint64_t kFeatureVersion1 = 1ull << 32;

}  // namespace vsock
}  // namespace vmlink
