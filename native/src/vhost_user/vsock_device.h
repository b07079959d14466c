// VsockDevice: a virtio-vsock device served to QEMU over vhost-user, with the host side
// as hybrid-vsock Unix sockets (Firecracker's convention). Everything runs on the Node
// loop: uv_poll watchers on the vhost-user socket, the kick eventfds, the host listener
// and each host connection. No threads, no JS call per packet.
//
//   vhost_user_backend.cc  vhost-user messages (features, memory table, vring setup)
//   vsock_device.cc        the queues: tx packets from the guest, rx packets to it,
//                          connection state and credit
//   host_sockets.cc        the Unix-socket side: accept + `CONNECT <port>\n`, connect to
//                          `<uds>_<port>`, host socket reads/writes
#pragma once
#include <napi.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/poll_watcher.h"
#include "common/unique_fd.h"
#include "vhost_user/guest_memory.h"
#include "vhost_user/virtqueue.h"
#include "vhost_user/vsock_packet.h"

namespace vmlink {

struct VsockDeviceConfig {
  uint64_t guest_cid = 3;
  std::string uds_path;
  int vhost_listen_fd = -1;     // listening vhost-user socket (QEMU connects), or
  int vhost_connected_fd = -1;  // an already connected one (test harness, socketpair)
  int uds_listen_fd = -1;       // listening hybrid-vsock socket at uds_path
  int uds_seqpacket_listen_fd = -1;  // optional SOCK_SEQPACKET listener; also turns on VIRTIO_VSOCK_F_SEQPACKET
  bool seqpacket = false;
  uint32_t buf_alloc = 256 * 1024;   // receive buffer we advertise per connection
  uint32_t max_connections = 4096;   // per device; more are refused (RST / close)
  uint32_t log_lines_per_second = 20;
  // Forwarded guest bytes the guest has not heard of (fwd_cnt) before a CREDIT_UPDATE goes
  // out on its own; <= buf_alloc, or a stalled guest would never hear of its credit.
  uint32_t credit_update_bytes = 128 * 1024;
  // tx completions held back before an interrupt (1: one per tx batch, as they come), and
  // the longest any completion waits for it (0: no waiting). Capped at half the ring.
  uint32_t tx_notify_batch = 1;
  uint32_t tx_notify_delay_us = 0;
  // Guest rx buffers one host socket read may fill (a Linux guest posts 4 KiB ones).
  uint32_t rx_buffers_per_read = 1;
  // After host data reaches the guest, let the guest's next tx packet (the CREDIT_UPDATE a
  // Linux reader sends when it drains the socket) arrive without a kick; a one-shot timer
  // looks at the ring after this long at the latest. 0: a kick for every packet batch.
  uint32_t tx_kick_defer_us = 0;
  // While a connection streams (tx_stream_bytes or more in full-size packets in a row), the
  // tx ring asks for a kick only every tx_kick_batch packets: one device wake-up and one
  // host write per batch instead of per packet. Never more packets than the guest's credit
  // room lets it send without our next CREDIT_UPDATE (half of it) or a quarter of the ring;
  // tx_kick_defer_us bounds the wait of the tail. 1: off.
  uint32_t tx_kick_batch = 1;
  uint32_t tx_stream_bytes = 256 * 1024;
};

// Counters; each drop counter has a matching log line (rate-limited).
#define VMLINK_VSOCK_COUNTERS(X)                                                                     \
  X(vhost_user_messages) X(vhost_user_errors) X(qemu_connections) X(driver_starts) X(driver_resets) \
  X(tx_packets) X(rx_packets) X(tx_bytes) X(rx_bytes) X(kicks) X(interrupts)                      \
  X(kicks_rx) X(kicks_tx) X(kicks_event) X(interrupts_rx) X(interrupts_tx) X(interrupts_event)     \
  X(credit_updates_sent) X(credit_updates_received) X(host_reads) X(host_writes)                    \
  X(connections_opened) X(connections_closed) X(host_connect_failed) X(host_accepts)              \
  X(connect_lines_bad) X(refused_not_ready) X(refused_too_many) X(transport_resets_sent)            \
  X(dropped_bad_chain) X(queues_broken) X(dropped_short_packet) X(dropped_bad_len)                  \
  X(dropped_oversize) X(dropped_bad_src_cid) X(dropped_bad_dst_cid) X(dropped_bad_type)             \
  X(dropped_bad_op) X(dropped_credit_violation) X(dropped_unknown_connection) X(dropped_bad_credit) \
  X(dropped_rx_chain) X(dropped_rst_overflow) X(dropped_after_shutdown) X(log_lines_suppressed)                \
  X(tx_op_request) X(tx_op_response) X(tx_op_rst) X(tx_op_shutdown) X(tx_op_rw) X(tx_op_rw_empty)             \
  X(tx_op_credit_update) X(tx_op_credit_request) X(tx_op_other)                                      \
  X(tx_passes) X(tx_timer_passes) X(tx_stream_deferrals) X(host_writes_blocked) X(host_write_bytes)

struct VsockCounters {
#define VMLINK_DECLARE_COUNTER(name) uint64_t name = 0;
  VMLINK_VSOCK_COUNTERS(VMLINK_DECLARE_COUNTER)
#undef VMLINK_DECLARE_COUNTER
};

class VsockDevice {
 public:
  // name: "qemu-connected", "qemu-disconnected", "driver-ready", "reset", "log".
  using EventSink = std::function<void(const std::string& name, const std::string& detail)>;

  VsockDevice(Napi::Env env, const VsockDeviceConfig& config, EventSink sink);
  ~VsockDevice();
  VsockDevice(const VsockDevice&) = delete;
  VsockDevice& operator=(const VsockDevice&) = delete;

  const VsockCounters& counters() const { return counters_; }
  size_t active_connections() const { return by_ports_.size(); }
  size_t pending_handshakes() const;
  uint64_t buffered_bytes() const;
  bool driver_ready() const { return driver_ready_; }
  bool qemu_attached() const { return vhost_.valid(); }
  uint64_t mapped_bytes() const { return memory_.mapped_bytes(); }
  size_t memory_regions() const { return memory_.region_count(); }

  // Test harness: do now, synchronously, what the loop would do on the next wake-ups
  // (read vhost-user messages and kicks, run every queue).
  void ServiceNow();

 private:
  struct Connection;

  // --- dispatch: every loop callback runs through Guarded (events are emitted and dead
  // connections freed only when the outermost handler returns).
  void Guarded(const std::function<void()>& fn);
  void Emit(const std::string& name, const std::string& detail = "");
  void Log(const std::string& line);
  void FlushEvents();

  // --- vhost_user_backend.cc
  void AcceptQemu();
  void AttachQemu(int fd);
  void DetachQemu(const std::string& why);
  void OnVhostReadable();
  bool ReadVhostMessage();  // false when nothing more to read now
  bool HandleMessage(uint32_t request, uint32_t flags, std::vector<uint8_t>& payload, std::vector<UniqueFd>& fds);
  bool SendReply(uint32_t request, const void* payload, uint32_t size);
  void RemapQueues();
  void StartQueue(int index);
  void StopQueue(int index);
  void CheckDriverState();
  void ResetDriver(const std::string& why);

  // --- vsock_device.cc
  void OnKick(int index);
  void NotifyQueue(int index);  // Notify() plus the interrupt counters
  // tx completions: interrupt now, or let them gather (tx_notify_batch/_delay_us).
  void AfterTxPushes(uint32_t pushed);
  // Guest data for one host socket, gathered over the packets of one wake-up and written
  // with one sendmsg; the packets' chains go back to the guest only after the write.
  void FlushTxBatch();
  void FlushTxNotify();
  bool ArmTxNotifyTimer();
  void ServiceTx();
  // tx kick deferral (tx_kick_defer_us): decided after rx work, bounded by a timer.
  void SettleTxKickDeferral();
  // Packets the streaming connections of the last tx pass may send silently (0: none).
  uint16_t StreamKickSkip();
  void NoteGuestData(Connection& conn, uint32_t len);
  bool SetTxKickTimer(bool on);
  void ServiceRx();
  void ServiceEvent();
  void CountGuestOp(const vsock::Header& header);
  void HandlePacket(const vsock::Header& header, const DescriptorChain& chain);
  void HandleGuestRequest(const vsock::Header& header);
  void HandleGuestRw(Connection& conn, const vsock::Header& header, const DescriptorChain& chain);
  void HandleGuestShutdown(Connection& conn, uint32_t flags);
  bool FillRxChain(const DescriptorChain& chain, uint32_t* written);
  // Stream data from conn's host socket into `chain` and, credit allowing, more rx
  // buffers popped behind it (pushed by ServiceRx right after `chain`); the readv result.
  ssize_t ReadHostIntoRx(Connection& conn, const DescriptorChain& chain, size_t credit, uint32_t* written);
  void QueueControl(Connection& conn, uint8_t flag);
  void QueueRst(uint32_t host_port, uint32_t guest_port, uint16_t type, uint64_t from_cid = vsock::kHostCid);
  void HandleGuestSeqpacketRw(Connection& conn, const vsock::Header& header, const DescriptorChain& chain);
  bool FillRxRecord(Connection& conn, const DescriptorChain& chain, uint32_t* written);
  uint64_t DeviceFeatures() const;
  void MarkRxReady(Connection& conn);
  uint32_t PeerCredit(const Connection& conn) const;
  void AfterHostFlush(Connection& conn);
  void CloseConnection(Connection& conn, bool send_rst);
  void ResetAllConnections();
  vsock::Header HeaderFor(Connection& conn, uint16_t op, uint32_t flags, uint32_t len);

  // --- host_sockets.cc
  void OnUdsListenerReadable(int listen_fd, uint16_t type);
  void OnHostEvent(uint64_t id, int status, int events);
  void ReadConnectLine(Connection& conn);
  bool ReadStreamConnectLine(Connection& conn, char* buffer);  // true once the whole line is in conn.line
  void AfterConnectLine(Connection& conn);
  void ConnectToHost(Connection& conn, uint32_t port);
  void FlushPending(Connection& conn);
  void UpdatePoll(Connection& conn);
  bool WriteOkLine(Connection& conn);
  Connection* Find(uint64_t id);
  Connection* FindByPorts(uint32_t host_port, uint32_t guest_port);
  Connection& NewConnection(int fd, uint16_t type);
  void StartAccepting();
  void Register(Connection& conn, uint32_t host_port, uint32_t guest_port);
  uint32_t AllocateHostPort(uint32_t guest_port);

  Napi::Env env_;
  VsockDeviceConfig config_;
  EventSink sink_;
  std::shared_ptr<bool> alive_;
  int depth_ = 0;
  std::vector<std::pair<std::string, std::string>> events_;
  VsockCounters counters_;

  // Rate limit for log lines.
  uint64_t log_window_ms_ = 0;
  uint32_t log_in_window_ = 0;

  // vhost-user
  UniqueFd vhost_listen_;
  std::unique_ptr<PollWatcher> vhost_listen_watcher_;
  UniqueFd vhost_;
  std::unique_ptr<PollWatcher> vhost_watcher_;
  std::vector<uint8_t> message_;  // a message being read (header + payload)
  std::vector<UniqueFd> message_fds_;
  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_features_ = 0;
  bool features_set_ = false;
  GuestMemory memory_;
  Virtqueue queues_[vsock::kQueueCount];
  std::unique_ptr<PollWatcher> kick_watchers_[vsock::kQueueCount];
  bool driver_ready_ = false;
  bool transport_reset_pending_ = false;

  // host side
  UniqueFd uds_listen_;
  std::unique_ptr<PollWatcher> uds_watcher_;
  UniqueFd uds_seq_listen_;
  std::unique_ptr<PollWatcher> uds_seq_watcher_;
  uint64_t next_id_ = 1;
  uint32_t next_host_port_ = 1u << 30;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> by_id_;
  std::unordered_map<uint64_t, uint64_t> by_ports_;  // (host_port << 32 | guest_port) -> id
  std::vector<std::unique_ptr<Connection>> graveyard_;
  std::deque<uint64_t> control_fifo_;  // ids with control packets to send
  std::deque<uint64_t> rx_ready_;      // ids with host bytes to forward
  struct RstEntry {
    uint16_t type;
    uint64_t from_cid;
    uint32_t host_port;
    uint32_t guest_port;
  };
  std::deque<RstEntry> rst_queue_;
  // The write batch (FlushTxBatch): its connection, the payload pieces in guest memory,
  // and the heads of the chains that hold them.
  uint64_t tx_batch_conn_ = 0;
  std::vector<iovec> tx_batch_iov_;
  std::vector<uint16_t> tx_batch_heads_;
  size_t tx_batch_bytes_ = 0;
  bool tx_deferred_ = false;  // HandlePacket took the current chain into the batch
  // tx completions pushed but not yet signalled, and the one-shot timer that bounds their wait.
  uint32_t tx_unsignalled_ = 0;
  bool tx_timer_armed_ = false;
  UniqueFd tx_timer_;
  std::unique_ptr<PollWatcher> tx_timer_watcher_;
  // Kick deferral: the tx ring's avail_event lets tx_kick_skip_ packets through silently;
  // the timer bounds how long such a packet can sit unseen.
  uint16_t tx_kick_skip_ = 0;
  // The tx pass now running (a stamp) and the connections that streamed in it.
  uint64_t tx_pass_ = 0;
  std::vector<uint64_t> tx_streaming_;
  std::vector<uint64_t> tx_deferred_conns_;  // the streams behind the current deferral
  bool rx_delivered_ = false;   // this rx pass put stream data in the guest
  bool rx_credit_low_ = false;  // ... and some connection now needs the guest's credit soon
  bool tx_kick_timer_armed_ = false;
  UniqueFd tx_kick_timer_;
  std::unique_ptr<PollWatcher> tx_kick_timer_watcher_;
  DescriptorChain tx_chain_, rx_chain_, event_chain_;
  std::vector<DescriptorChain> rx_extra_chains_;                 // ReadHostIntoRx's further buffers
  std::vector<std::pair<uint16_t, uint32_t>> rx_extra_pushes_;  // (head, written) to push after rx_chain_
  std::vector<size_t> rx_extra_caps_;  // bytes each further buffer was offered in the read
  std::vector<iovec> rx_iov_;  // reused: no allocation per packet
  std::vector<iovec> scratch_iov_;
};

}  // namespace vmlink
