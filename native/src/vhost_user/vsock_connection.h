// One vsock stream between a guest socket and a host Unix socket, with virtio-vsock's
// credit accounting (virtio 1.2, 5.10.6.3) for each direction.
#pragma once
#include <stdint.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "common/poll_watcher.h"
#include "common/unique_fd.h"
#include "vhost_user/vsock_device.h"

namespace vmlink {

struct VsockDevice::Connection {
  enum class State {
    kAwaitingConnectLine,  // host client accepted, `CONNECT <port>\n` not read yet
    kConnectingGuest,      // REQUEST sent (or queued) to the guest, waiting for RESPONSE
    kEstablished,
  };
  // Control packets owed to the guest (bits; sent before data, in this order).
  static constexpr uint8_t kNeedRequest = 1;
  static constexpr uint8_t kNeedResponse = 2;
  static constexpr uint8_t kNeedCreditUpdate = 4;

  uint64_t id = 0;
  uint16_t type = vsock::kTypeStream;  // or kTypeSeqpacket (host socket SOCK_SEQPACKET)
  State state = State::kAwaitingConnectLine;
  bool registered = false;  // has ports and sits in by_ports_
  uint32_t host_port = 0;
  uint32_t guest_port = 0;
  UniqueFd fd;
  std::unique_ptr<PollWatcher> watcher;
  std::string line;  // partial CONNECT line

  // device -> guest: the guest's receive buffer and how much of it it has consumed.
  uint32_t peer_buf_alloc = 0;
  uint32_t peer_fwd_cnt = 0;
  uint32_t tx_cnt = 0;  // payload bytes we sent to the guest
  // guest -> device: bytes received, bytes forwarded to the host socket, and the
  // forward count the guest last heard from us.
  uint32_t rx_cnt = 0;
  uint32_t fwd_cnt = 0;
  uint32_t last_sent_fwd_cnt = 0;
  // Guest data shape, for the tx kick batching: the largest packet so far, the bytes sent
  // since the stream last paused, the tx pass of the last data and the one that last
  // listed us as streaming.
  uint32_t max_rw_len = 0;
  uint64_t stream_bytes = 0;
  uint64_t data_pass = 0;
  uint64_t streaming_pass = 0;
  std::vector<uint8_t> pending;  // guest bytes the host socket has not taken yet (<= buf_alloc)
  size_t pending_offset = 0;

  // SEQPACKET guest -> host: the message being gathered (until EOM), whole messages the
  // host socket has not taken yet. Counted in the credit like stream bytes.
  std::vector<uint8_t> partial;
  std::deque<std::vector<uint8_t>> records;
  size_t records_bytes = 0;
  // SEQPACKET host -> guest: one record read whole, going out in pieces (EOM on the last).
  std::vector<uint8_t> rx_record;
  size_t rx_record_offset = 0;
  bool rx_record_active = false;

  bool guest_shut_send = false;  // the guest will send no more
  bool guest_shut_rcv = false;   // the guest will read no more
  bool host_eof = false;         // the host socket reached EOF (SHUTDOWN SEND sent)
  bool host_write_shut = false;  // we shut the host socket's write side
  uint8_t control = 0;
  bool in_control_fifo = false;
  bool in_rx_ready = false;

  size_t pending_bytes() const { return pending.size() - pending_offset; }
  bool seqpacket() const { return type == vsock::kTypeSeqpacket; }
  // Guest bytes not yet written to the host socket.
  bool has_unsent() const { return pending_bytes() > 0 || !records.empty(); }
  size_t buffered() const { return pending_bytes() + records_bytes + partial.size() + (rx_record.size() - rx_record_offset); }
};

inline uint64_t PortsKey(uint32_t host_port, uint32_t guest_port) {
  return (static_cast<uint64_t>(host_port) << 32) | guest_port;
}

}  // namespace vmlink
