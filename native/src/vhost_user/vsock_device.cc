// VsockDevice: the virtio-vsock queues. Guest packets (tx) are validated field by field
// before anything acts on them; packets to the guest (rx) go out in this order: RSTs for
// connections that are gone, control packets (REQUEST/RESPONSE/CREDIT_UPDATE), then data
// from host sockets round-robin, each limited by the guest's credit.
#include "vhost_user/vsock_device.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>

#include "common/errors.h"
#include "vhost_user/iov.h"
#include "vhost_user/vsock_connection.h"

namespace vmlink {
namespace {
constexpr size_t kHeaderSize = sizeof(vsock::Header);
constexpr size_t kMaxRstQueue = 4096;
// sendmsg takes at most UIO_MAXIOV pieces.
constexpr size_t kMaxBatchIov = 1024;

void EraseId(std::deque<uint64_t>& list, uint64_t id) {
  auto it = std::find(list.begin(), list.end(), id);
  if (it != list.end()) list.erase(it);
}
}  // namespace

VsockDevice::VsockDevice(Napi::Env env, const VsockDeviceConfig& config, EventSink sink)
    : env_(env), config_(config), sink_(std::move(sink)), alive_(std::make_shared<bool>(true)) {
  uds_listen_.reset(config.uds_listen_fd);
  uds_seq_listen_.reset(config.uds_seqpacket_listen_fd);
  if (config.vhost_listen_fd >= 0) vhost_listen_.reset(config.vhost_listen_fd);
  UniqueFd connected(config.vhost_connected_fd);
  if (uds_listen_.valid()) uds_watcher_ = std::make_unique<PollWatcher>(env, uds_listen_.get());
  if (uds_seq_listen_.valid()) uds_seq_watcher_ = std::make_unique<PollWatcher>(env, uds_seq_listen_.get());
  StartAccepting();
  if (vhost_listen_.valid()) {
    vhost_listen_watcher_ = std::make_unique<PollWatcher>(env, vhost_listen_.get());
    vhost_listen_watcher_->Start(UV_READABLE, [this](int, int) { Guarded([&] { AcceptQemu(); }); });
  }
  if (connected.valid()) AttachQemu(connected.release());
}

VsockDevice::~VsockDevice() {
  *alive_ = false;
  // Watchers go before their fds (member order does this too; be explicit for connections).
  for (auto& [id, conn] : by_id_) conn->watcher.reset();
  by_id_.clear();
  graveyard_.clear();
  for (auto& w : kick_watchers_) w.reset();
  tx_timer_watcher_.reset();
  tx_kick_timer_watcher_.reset();
  vhost_watcher_.reset();
  vhost_listen_watcher_.reset();
  uds_watcher_.reset();
  uds_seq_watcher_.reset();
}

void VsockDevice::StartAccepting() {
  if (uds_watcher_ && uds_watcher_->events() == 0) {
    int fd = uds_listen_.get();
    uds_watcher_->Start(UV_READABLE, [this, fd](int, int) { Guarded([&] { OnUdsListenerReadable(fd, vsock::kTypeStream); }); });
  }
  if (uds_seq_watcher_ && uds_seq_watcher_->events() == 0) {
    int fd = uds_seq_listen_.get();
    uds_seq_watcher_->Start(UV_READABLE, [this, fd](int, int) { Guarded([&] { OnUdsListenerReadable(fd, vsock::kTypeSeqpacket); }); });
  }
}

void VsockDevice::Guarded(const std::function<void()>& fn) {
  std::shared_ptr<bool> alive = alive_;
  // Loop callbacks arrive without a V8 scope; anything that makes a JS value needs one.
  Napi::HandleScope scope(env_);
  depth_++;
  try {
    fn();
  } catch (const std::exception& e) {
    // Only allocation failures can get here; the device carries on with what it has.
    Log(std::string("internal error: ") + e.what());
  }
  depth_--;
  if (depth_ == 0 && *alive) {
    graveyard_.clear();
    FlushEvents();
  }
}

void VsockDevice::Emit(const std::string& name, const std::string& detail) { events_.emplace_back(name, detail); }

void VsockDevice::Log(const std::string& line) {
  uint64_t now_ms = uv_hrtime() / 1000000;
  if (now_ms - log_window_ms_ >= 1000) {
    log_window_ms_ = now_ms;
    log_in_window_ = 0;
  }
  if (log_in_window_ >= config_.log_lines_per_second) {
    counters_.log_lines_suppressed++;
    return;
  }
  log_in_window_++;
  Emit("log", line);
}

void VsockDevice::FlushEvents() {
  std::shared_ptr<bool> alive = alive_;
  EventSink sink = sink_;  // the sink may destroy this device
  while (*alive && !events_.empty()) {
    std::vector<std::pair<std::string, std::string>> batch;
    batch.swap(events_);
    for (const auto& [name, detail] : batch) {
      sink(name, detail);
      if (!*alive) return;
    }
  }
}

void VsockDevice::ServiceNow() {
  Guarded([&] {
    if (vhost_.valid()) OnVhostReadable();
    for (int i = 0; i < vsock::kQueueCount; i++) {
      if (queues_[i].ready()) OnKick(i);
    }
  });
}

size_t VsockDevice::pending_handshakes() const {
  size_t n = 0;
  for (const auto& [id, conn] : by_id_) n += conn->registered ? 0 : 1;
  return n;
}

uint64_t VsockDevice::buffered_bytes() const {
  uint64_t n = 0;
  for (const auto& [id, conn] : by_id_) n += conn->buffered();
  return n;
}

// ---------------------------------------------------------------- queues

void VsockDevice::OnKick(int index) {
  Virtqueue& q = queues_[index];
  if (q.kick.valid()) {
    uint64_t value;
    ssize_t n = ::read(q.kick.get(), &value, sizeof value);
    if (n == sizeof value) {
      counters_.kicks++;
      if (index == vsock::kRxQueue) counters_.kicks_rx++;
      if (index == vsock::kTxQueue) counters_.kicks_tx++;
      if (index == vsock::kEventQueue) counters_.kicks_event++;
    }
  }
  if (index == vsock::kTxQueue) ServiceTx();
  if (index == vsock::kEventQueue) ServiceEvent();
  ServiceRx();
}

void VsockDevice::NotifyQueue(int index) {
  if (!queues_[index].Notify()) return;
  counters_.interrupts++;
  if (index == vsock::kRxQueue) counters_.interrupts_rx++;
  if (index == vsock::kTxQueue) counters_.interrupts_tx++;
  if (index == vsock::kEventQueue) counters_.interrupts_event++;
}

void VsockDevice::AfterTxPushes(uint32_t pushed) {
  tx_unsignalled_ += pushed;
  if (tx_unsignalled_ == 0) return;
  const Virtqueue& q = queues_[vsock::kTxQueue];
  // A guest whose ring is full waits for these: never hold back more than half of it.
  uint32_t batch = std::min<uint32_t>(config_.tx_notify_batch, std::max<uint32_t>(1, q.size / 2));
  if (tx_unsignalled_ >= batch || config_.tx_notify_delay_us == 0 || !ArmTxNotifyTimer()) FlushTxNotify();
}

void VsockDevice::FlushTxNotify() {
  if (tx_timer_armed_) {
    itimerspec off{};
    (void)::timerfd_settime(tx_timer_.get(), 0, &off, nullptr);
    tx_timer_armed_ = false;
  }
  tx_unsignalled_ = 0;
  NotifyQueue(vsock::kTxQueue);
}

// One timer for the oldest held-back completion: later ones ride along with it.
bool VsockDevice::ArmTxNotifyTimer() {
  if (tx_timer_armed_) return true;
  if (!tx_timer_.valid()) {
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) {
      Log("tx interrupt timer unavailable (" + ErrnoName(errno) + "): interrupting at once");
      return false;
    }
    tx_timer_.reset(fd);
    tx_timer_watcher_ = std::make_unique<PollWatcher>(env_, fd);
    tx_timer_watcher_->Start(UV_READABLE, [this](int, int) {
      Guarded([&] {
        uint64_t expirations;
        (void)!::read(tx_timer_.get(), &expirations, sizeof expirations);
        if (!tx_timer_armed_) return;  // disarmed after it fired
        tx_timer_armed_ = false;
        FlushTxNotify();
      });
    });
  }
  itimerspec when{};
  when.it_value.tv_sec = config_.tx_notify_delay_us / 1000000;
  when.it_value.tv_nsec = static_cast<long>(config_.tx_notify_delay_us % 1000000) * 1000;
  if (::timerfd_settime(tx_timer_.get(), 0, &when, nullptr) < 0) return false;
  tx_timer_armed_ = true;
  return true;
}

// Linux guests (6.1.y and later) send a CREDIT_UPDATE whenever a reader drains its socket,
// so a 1-byte request answered by the guest costs two tx packets, each with its own kick
// (a device wake-up) when the ring is idle. After stream data went to the guest, the tx
// ring's avail_event asks for a kick only at the second packet: the credit update rides
// along with the reply. Not while a connection runs low on the guest's credit: then its
// update is what we wait for.
// A guest streaming to the host (a TCG guest queues one 4 KiB packet at a time) would
// otherwise kick, and wake us for one packet and one host write, per packet: while a
// connection streams, avail_event is set StreamKickSkip() packets ahead.
// Either way a one-shot timer finds what arrived silently within tx_kick_defer_us.
void VsockDevice::SettleTxKickDeferral() {
  Virtqueue& q = queues_[vsock::kTxQueue];
  bool delivered = rx_delivered_, credit_low = rx_credit_low_;
  rx_delivered_ = rx_credit_low_ = false;
  uint16_t stream = StreamKickSkip();
  bool rearm = false;  // a new deferral: the timer counts from now
  if (config_.tx_kick_defer_us > 0 && q.ready()) {
    // Widened by streams until the next tx pass asks for kicks again; host data to the guest
    // (request/response: its reply comes next) narrows it to one, low credit to none.
    uint16_t want = credit_low ? 0 : delivered ? std::max<uint16_t>(stream, 1) : std::max(tx_kick_skip_, stream);
    bool pending = false;
    if (want != tx_kick_skip_ && q.DeferKick(want, &pending)) {
      tx_kick_skip_ = want;
      rearm = want > 0;
      if (stream > 0 && want == stream) counters_.tx_stream_deferrals++;
      // Packets arrived meanwhile. A stream's packets within the skip are expected (its next
      // packets kick, or the timer comes); otherwise their kick may not come (or came before
      // we narrowed): ask for kicks as usual and come back on the next loop turn (a kick of
      // our own; no recursion here).
      if (pending && (want == 0 || stream == 0 || q.Pending() > want)) {
        tx_kick_skip_ = 0;
        (void)q.DeferKick(0, &pending);
        uint64_t one = 1;
        if (q.kick.valid()) (void)!::write(q.kick.get(), &one, sizeof one);
      }
    }
  }
  bool deferred = tx_kick_skip_ > 0;
  if ((deferred != tx_kick_timer_armed_ || (deferred && rearm)) && !SetTxKickTimer(deferred) && deferred) {
    // No timer, no deferral: ask for the next kick as usual.
    bool pending = false;
    tx_kick_skip_ = 0;
    if (q.DeferKick(0, &pending) && pending && q.kick.valid()) {
      uint64_t one = 1;
      (void)!::write(q.kick.get(), &one, sizeof one);
    }
  }
}

uint16_t VsockDevice::StreamKickSkip() {
  if (tx_streaming_.empty()) return 0;
  const Virtqueue& q = queues_[vsock::kTxQueue];
  // A quarter of the ring at most: completions held back for their interrupt
  // (tx_notify_batch, at most half the ring) and the silent packets must leave the guest
  // free slots to reach the kick.
  uint32_t skip = std::min<uint32_t>(config_.tx_kick_batch - 1, q.size / 4);
  for (uint64_t id : tx_streaming_) {
    const Connection* conn = Find(id);
    if (conn == nullptr || !conn->registered || conn->guest_shut_send || conn->max_rw_len == 0) continue;
    // What the guest may still send before it needs our next CREDIT_UPDATE: its view of our
    // free space (Linux 6.1.y caps it at its own buf_alloc too). Half of it, so the packets
    // it queues behind the kick find credit too.
    uint32_t window = std::min(config_.buf_alloc, conn->peer_buf_alloc);
    uint32_t unannounced = conn->rx_cnt - conn->last_sent_fwd_cnt;
    uint32_t room = unannounced >= window ? 0 : window - unannounced;
    uint32_t fit = room / 2 / conn->max_rw_len;
    skip = std::min<uint32_t>(skip, fit == 0 ? 0 : fit - 1);
  }
  // Kept until the kick timer's pass: a connection it finds quiet stops streaming.
  tx_deferred_conns_.swap(tx_streaming_);
  tx_streaming_.clear();
  return static_cast<uint16_t>(skip);
}

// A connection streams once it has sent tx_stream_bytes with no pause: the run ends when
// host data goes to the guest on it (request/response traffic) or when a pass started by
// the kick timer finds nothing from it (quiet for tx_kick_defer_us since the deferral). Packet sizes vary (a Linux guest
// sends what one write gave, up to 64 KiB), so the largest one seen bounds the skip.
void VsockDevice::NoteGuestData(Connection& conn, uint32_t len) {
  conn.max_rw_len = std::max(conn.max_rw_len, len);
  conn.stream_bytes += len;
  conn.data_pass = tx_pass_;
  if (config_.tx_kick_batch > 1 && conn.stream_bytes >= config_.tx_stream_bytes && conn.streaming_pass != tx_pass_) {
    conn.streaming_pass = tx_pass_;
    tx_streaming_.push_back(conn.id);
  }
}

bool VsockDevice::SetTxKickTimer(bool on) {
  if (!tx_kick_timer_.valid()) {
    if (!on) return true;
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) {
      Log("tx kick timer unavailable (" + ErrnoName(errno) + "): no kick deferral");
      return false;
    }
    tx_kick_timer_.reset(fd);
    tx_kick_timer_watcher_ = std::make_unique<PollWatcher>(env_, fd);
    tx_kick_timer_watcher_->Start(UV_READABLE, [this](int, int) {
      Guarded([&] {
        uint64_t expirations;
        (void)!::read(tx_kick_timer_.get(), &expirations, sizeof expirations);
        if (!tx_kick_timer_armed_) return;  // disarmed after it fired
        tx_kick_timer_armed_ = false;
        counters_.tx_timer_passes++;
        // Whatever arrived silently is taken; an empty ring asks for the next kick again.
        // The timer runs from the last deferral: a stream with nothing in this pass was
        // quiet for tx_kick_defer_us and stops counting as one.
        std::vector<uint64_t> deferred;
        deferred.swap(tx_deferred_conns_);
        ServiceTx();
        for (uint64_t id : deferred) {
          Connection* conn = Find(id);
          if (conn != nullptr && conn->data_pass != tx_pass_) conn->stream_bytes = 0;
        }
        ServiceRx();
      });
    });
  }
  itimerspec when{};
  if (on) {
    when.it_value.tv_sec = config_.tx_kick_defer_us / 1000000;
    when.it_value.tv_nsec = static_cast<long>(config_.tx_kick_defer_us % 1000000) * 1000;
  }
  if (::timerfd_settime(tx_kick_timer_.get(), 0, &when, nullptr) < 0) return false;
  tx_kick_timer_armed_ = on;
  return true;
}

void VsockDevice::ServiceTx() {
  Virtqueue& q = queues_[vsock::kTxQueue];
  if (!q.ready()) return;
  // Every pass ends with the ring empty and a kick asked for (or with a self-kick).
  tx_kick_skip_ = 0;
  tx_pass_++;
  tx_streaming_.clear();
  // Bounded per wake-up: a guest that keeps the ring full must not hold the loop.
  const uint32_t budget = std::max<uint32_t>(q.size, 256);
  uint32_t done = 0;
  for (;;) {
    if (done >= budget) {
      // Come back on the next loop turn: a kick of our own.
      uint64_t one = 1;
      if (q.kick.valid()) (void)!::write(q.kick.get(), &one, sizeof one);
      break;
    }
    ChainFault fault;
    PopResult r = q.Pop(memory_, &tx_chain_, &fault);
    if (r == PopResult::kEmpty) {
      if (q.EnableKick()) continue;
      break;
    }
    if (r == PopResult::kBroken) {
      counters_.queues_broken++;
      Log("tx queue broken (avail index or head out of range); it stays stopped until the driver resets it");
      break;
    }
    done++;
    if (r == PopResult::kBadChain) {
      counters_.dropped_bad_chain++;
      Log(std::string("tx packet dropped: ") + ChainFaultName(fault));
      q.Push(tx_chain_.head, 0);
      continue;
    }
    if (tx_chain_.readable_bytes < kHeaderSize) {
      counters_.dropped_short_packet++;
      Log("tx packet dropped: " + std::to_string(tx_chain_.readable_bytes) + " readable bytes, less than a header");
      q.Push(tx_chain_.head, 0);
      continue;
    }
    vsock::Header header;
    CopyFromIov(tx_chain_.readable, 0, &header, kHeaderSize);
    counters_.tx_packets++;
    CountGuestOp(header);
    if (!tx_batch_heads_.empty()) {
      // Only more data for the batch's connection may join it; anything else sees the
      // host socket as the guest's order says, so the batch goes first.
      Connection* same = header.op == vsock::kOpRw ? FindByPorts(header.dst_port, header.src_port) : nullptr;
      if (same == nullptr || same->id != tx_batch_conn_) FlushTxBatch();
    }
    tx_deferred_ = false;
    HandlePacket(header, tx_chain_);
    if (tx_deferred_) tx_batch_heads_.push_back(tx_chain_.head);
    else q.Push(tx_chain_.head, 0);
  }
  FlushTxBatch();
  if (done > 0) counters_.tx_passes++;
  AfterTxPushes(done);
}

// Per-op counts of what the guest sends (how a workload's packets split, e.g. how many
// per ping-pong round trip are data and how many are credit traffic).
void VsockDevice::CountGuestOp(const vsock::Header& h) {
  switch (h.op) {
    case vsock::kOpRequest: counters_.tx_op_request++; break;
    case vsock::kOpResponse: counters_.tx_op_response++; break;
    case vsock::kOpRst: counters_.tx_op_rst++; break;
    case vsock::kOpShutdown: counters_.tx_op_shutdown++; break;
    case vsock::kOpRw:
      counters_.tx_op_rw++;
      if (h.len == 0) counters_.tx_op_rw_empty++;
      break;
    case vsock::kOpCreditUpdate: counters_.tx_op_credit_update++; break;
    case vsock::kOpCreditRequest: counters_.tx_op_credit_request++; break;
    default: counters_.tx_op_other++; break;
  }
}

void VsockDevice::HandlePacket(const vsock::Header& h, const DescriptorChain& chain) {
  const size_t payload_room = chain.readable_bytes - kHeaderSize;
  if (h.len > vsock::kMaxPayload) {
    counters_.dropped_oversize++;
    Log("tx packet dropped: len " + std::to_string(h.len) + " > 65536");
    return;
  }
  if (h.len > payload_room) {
    counters_.dropped_bad_len++;
    Log("tx packet dropped: header says len " + std::to_string(h.len) + " but the buffers hold " + std::to_string(payload_room));
    return;
  }
  if (h.src_cid != config_.guest_cid) {
    counters_.dropped_bad_src_cid++;
    Log("tx packet dropped: src_cid " + std::to_string(h.src_cid) + " is not the guest's CID " + std::to_string(config_.guest_cid));
    return;
  }
  if (h.dst_cid != vsock::kHostCid) {
    counters_.dropped_bad_dst_cid++;
    Log("tx packet dropped: dst_cid " + std::to_string(h.dst_cid) + " (only the host, CID 2, is reachable)");
    if (h.op != vsock::kOpRst) QueueRst(h.dst_port, h.src_port, h.type, h.dst_cid);
    return;
  }
  bool seqpacket_ok = h.type == vsock::kTypeSeqpacket && (acked_features_ & vsock::kFeatureSeqpacket);
  Connection* conn = FindByPorts(h.dst_port, h.src_port);
  if ((h.type != vsock::kTypeStream && !seqpacket_ok) || (conn != nullptr && conn->type != h.type)) {
    counters_.dropped_bad_type++;
    Log("tx packet dropped: type " + std::to_string(h.type) + (conn != nullptr ? " does not match the connection's" : " not supported"));
    if (h.op != vsock::kOpRst) QueueRst(h.dst_port, h.src_port, h.type);
    return;
  }
  if (h.op == vsock::kOpRequest) {
    if (conn != nullptr) {
      counters_.dropped_bad_op++;
      Log("REQUEST for a connection that exists (port " + std::to_string(h.src_port) + " -> " + std::to_string(h.dst_port) + "): reset");
      CloseConnection(*conn, true);
      return;
    }
    HandleGuestRequest(h);
    return;
  }
  if (conn == nullptr) {
    if (h.op != vsock::kOpRst) {
      counters_.dropped_unknown_connection++;
      QueueRst(h.dst_port, h.src_port, h.type);
    }
    return;
  }
  if (h.op == vsock::kOpRst) {
    CloseConnection(*conn, false);
    return;
  }
  if (static_cast<int32_t>(h.fwd_cnt - conn->tx_cnt) > 0) {
    counters_.dropped_bad_credit++;
    Log("tx packet dropped: fwd_cnt " + std::to_string(h.fwd_cnt) + " is ahead of the " + std::to_string(conn->tx_cnt) + " bytes sent; connection reset");
    CloseConnection(*conn, true);
    return;
  }
  conn->peer_buf_alloc = h.buf_alloc;
  conn->peer_fwd_cnt = h.fwd_cnt;
  switch (h.op) {
    case vsock::kOpResponse:
      if (conn->state != Connection::State::kConnectingGuest) break;
      conn->state = Connection::State::kEstablished;
      if (!WriteOkLine(*conn)) {
        CloseConnection(*conn, true);
        return;
      }
      UpdatePoll(*conn);
      return;
    case vsock::kOpShutdown:
      if (conn->state != Connection::State::kEstablished) break;
      HandleGuestShutdown(*conn, h.flags);
      return;
    case vsock::kOpRw:
      if (conn->state != Connection::State::kEstablished) break;
      if (conn->seqpacket()) HandleGuestSeqpacketRw(*conn, h, chain);
      else HandleGuestRw(*conn, h, chain);
      return;
    case vsock::kOpCreditUpdate:
      counters_.credit_updates_received++;
      UpdatePoll(*conn);  // the guest's window may have opened
      return;
    case vsock::kOpCreditRequest:
      QueueControl(*conn, Connection::kNeedCreditUpdate);
      return;
    default:
      break;
  }
  counters_.dropped_bad_op++;
  Log("tx packet dropped: op " + std::to_string(h.op) + " not valid now; connection reset");
  CloseConnection(*conn, true);
}

void VsockDevice::HandleGuestRequest(const vsock::Header& h) {
  if (by_ports_.size() >= config_.max_connections) {
    counters_.refused_too_many++;
    Log("guest connect to port " + std::to_string(h.dst_port) + " refused: " + std::to_string(config_.max_connections) + " connections open");
    QueueRst(h.dst_port, h.src_port, h.type);
    return;
  }
  Connection& conn = NewConnection(-1, h.type);
  Register(conn, h.dst_port, h.src_port);
  conn.peer_buf_alloc = h.buf_alloc;
  conn.peer_fwd_cnt = h.fwd_cnt;
  ConnectToHost(conn, h.dst_port);
}

void VsockDevice::HandleGuestRw(Connection& conn, const vsock::Header& h, const DescriptorChain& chain) {
  if (conn.guest_shut_send) {
    counters_.dropped_after_shutdown++;
    Log("tx data dropped: the guest had shut down sending on port " + std::to_string(conn.guest_port));
    return;
  }
  if (h.len == 0) return;
  uint32_t in_flight = conn.rx_cnt - conn.fwd_cnt;
  if (static_cast<uint64_t>(in_flight) + h.len > config_.buf_alloc) {
    counters_.dropped_credit_violation++;
    Log("tx data dropped: " + std::to_string(h.len) + " bytes over the credit (" + std::to_string(in_flight) + " of " +
        std::to_string(config_.buf_alloc) + " in use); connection reset");
    CloseConnection(conn, true);
    return;
  }
  conn.rx_cnt += h.len;
  counters_.tx_bytes += h.len;
  NoteGuestData(conn, h.len);
  SliceIov(chain.readable, kHeaderSize, h.len, &scratch_iov_);
  if (tx_batch_conn_ != 0 && (tx_batch_conn_ != conn.id || tx_batch_iov_.size() + scratch_iov_.size() > kMaxBatchIov)) FlushTxBatch();
  if (conn.registered && conn.pending_bytes() == 0 && conn.fd.valid() && !conn.host_write_shut) {
    // Straight from guest memory to the host socket, with the packets that follow.
    tx_batch_conn_ = conn.id;
    tx_batch_iov_.insert(tx_batch_iov_.end(), scratch_iov_.begin(), scratch_iov_.end());
    tx_batch_bytes_ += h.len;
    tx_deferred_ = true;
    return;
  }
  // The host socket is behind: keep the bytes in order after what it has not taken.
  size_t old = conn.pending.size();
  conn.pending.resize(old + h.len);
  CopyFromIov(scratch_iov_, 0, conn.pending.data() + old, h.len);
  UpdatePoll(conn);
}

void VsockDevice::FlushTxBatch() {
  if (tx_batch_heads_.empty() && tx_batch_iov_.empty()) return;
  Connection* conn = Find(tx_batch_conn_);
  if (conn != nullptr && conn->fd.valid() && !conn->host_write_shut && tx_batch_bytes_ > 0) {
    msghdr msg{};
    msg.msg_iov = tx_batch_iov_.data();
    msg.msg_iovlen = tx_batch_iov_.size();
    ssize_t n;
    counters_.host_writes++;
    do {
      n = ::sendmsg(conn->fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      CloseConnection(*conn, true);  // EPIPE/ECONNRESET: the host end is gone
      conn = nullptr;
    } else {
      size_t written = n < 0 ? 0 : static_cast<size_t>(n);
      counters_.host_write_bytes += written;
      if (written < tx_batch_bytes_) {
        counters_.host_writes_blocked++;
        // What the socket did not take is copied out before the chains go back to the guest.
        size_t old = conn->pending.size();
        conn->pending.resize(old + (tx_batch_bytes_ - written));
        CopyFromIov(tx_batch_iov_, written, conn->pending.data() + old, tx_batch_bytes_ - written);
      }
      conn->fwd_cnt += static_cast<uint32_t>(written);
      if (conn->fwd_cnt - conn->last_sent_fwd_cnt >= config_.credit_update_bytes) QueueControl(*conn, Connection::kNeedCreditUpdate);
      UpdatePoll(*conn);
    }
  }
  Virtqueue& q = queues_[vsock::kTxQueue];
  for (uint16_t head : tx_batch_heads_) q.Push(head, 0);
  tx_batch_heads_.clear();
  tx_batch_iov_.clear();
  tx_batch_bytes_ = 0;
  tx_batch_conn_ = 0;
}

void VsockDevice::HandleGuestSeqpacketRw(Connection& conn, const vsock::Header& h, const DescriptorChain& chain) {
  if (conn.guest_shut_send) {
    counters_.dropped_after_shutdown++;
    Log("tx message dropped: the guest had shut down sending on port " + std::to_string(conn.guest_port));
    return;
  }
  uint32_t in_flight = conn.rx_cnt - conn.fwd_cnt;
  if (static_cast<uint64_t>(in_flight) + h.len > config_.buf_alloc) {
    counters_.dropped_credit_violation++;
    Log("tx message dropped: " + std::to_string(h.len) + " bytes over the credit; connection reset");
    CloseConnection(conn, true);
    return;
  }
  conn.rx_cnt += h.len;
  counters_.tx_bytes += h.len;
  size_t old = conn.partial.size();
  conn.partial.resize(old + h.len);
  SliceIov(chain.readable, kHeaderSize, h.len, &scratch_iov_);
  CopyFromIov(scratch_iov_, 0, conn.partial.data() + old, h.len);
  if (h.flags & vsock::kSeqEom) {
    conn.records_bytes += conn.partial.size();
    conn.records.push_back(std::move(conn.partial));
    conn.partial = std::vector<uint8_t>();
    FlushPending(conn);
  }
}

void VsockDevice::HandleGuestShutdown(Connection& conn, uint32_t flags) {
  if (flags & vsock::kShutdownSend) conn.guest_shut_send = true;
  if (flags & vsock::kShutdownRcv) conn.guest_shut_rcv = true;
  AfterHostFlush(conn);
  UpdatePoll(conn);
}

void VsockDevice::AfterHostFlush(Connection& conn) {
  if (conn.has_unsent() || !conn.registered) return;
  if (conn.guest_shut_send && conn.guest_shut_rcv) {
    // The guest closed its socket; it waits for our RST to finish the close.
    CloseConnection(conn, true);
    return;
  }
  if (conn.guest_shut_send && !conn.host_write_shut && conn.fd.valid()) {
    ::shutdown(conn.fd.get(), SHUT_WR);
    conn.host_write_shut = true;
  }
}

uint32_t VsockDevice::PeerCredit(const Connection& conn) const {
  uint32_t used = conn.tx_cnt - conn.peer_fwd_cnt;
  return used >= conn.peer_buf_alloc ? 0 : conn.peer_buf_alloc - used;
}

vsock::Header VsockDevice::HeaderFor(Connection& conn, uint16_t op, uint32_t flags, uint32_t len) {
  vsock::Header h{};
  h.src_cid = vsock::kHostCid;
  h.dst_cid = config_.guest_cid;
  h.src_port = conn.host_port;
  h.dst_port = conn.guest_port;
  h.len = len;
  h.type = conn.type;
  h.op = op;
  h.flags = flags;
  h.buf_alloc = config_.buf_alloc;
  h.fwd_cnt = conn.fwd_cnt;
  conn.last_sent_fwd_cnt = conn.fwd_cnt;
  return h;
}

void VsockDevice::QueueControl(Connection& conn, uint8_t flag) {
  conn.control |= flag;
  if (!conn.in_control_fifo) {
    conn.in_control_fifo = true;
    control_fifo_.push_back(conn.id);
  }
}

void VsockDevice::QueueRst(uint32_t host_port, uint32_t guest_port, uint16_t type, uint64_t from_cid) {
  if (rst_queue_.size() >= kMaxRstQueue) {
    counters_.dropped_rst_overflow++;
    Log("RST to guest port " + std::to_string(guest_port) + " dropped: " + std::to_string(kMaxRstQueue) + " already queued");
    return;
  }
  // Linux ignores an RST whose type is not its socket's: keep the connection's type.
  rst_queue_.push_back({type, from_cid, host_port, guest_port});
}

void VsockDevice::MarkRxReady(Connection& conn) {
  if (conn.in_rx_ready) return;
  conn.in_rx_ready = true;
  rx_ready_.push_back(conn.id);
}

void VsockDevice::CloseConnection(Connection& conn, bool send_rst) {
  if (conn.registered) {
    if (send_rst) QueueRst(conn.host_port, conn.guest_port, conn.type);
    by_ports_.erase(PortsKey(conn.host_port, conn.guest_port));
    conn.registered = false;
    counters_.connections_closed++;
  }
  if (conn.in_control_fifo) EraseId(control_fifo_, conn.id);
  if (conn.in_rx_ready) EraseId(rx_ready_, conn.id);
  conn.in_control_fifo = conn.in_rx_ready = false;
  conn.control = 0;
  conn.watcher.reset();
  conn.fd.reset();
  auto it = by_id_.find(conn.id);
  if (it != by_id_.end()) {
    // Freed when the outermost handler returns: callers up the stack may still hold it.
    graveyard_.push_back(std::move(it->second));
    by_id_.erase(it);
  }
  if (depth_ == 0) graveyard_.clear();
  // An accept that stopped on EMFILE may work again now.
  StartAccepting();
}

void VsockDevice::ResetAllConnections() {
  std::vector<Connection*> all;
  for (auto& [id, conn] : by_id_) all.push_back(conn.get());
  for (Connection* conn : all) CloseConnection(*conn, false);
  control_fifo_.clear();
  rx_ready_.clear();
  rst_queue_.clear();
}

void VsockDevice::ServiceRx() {
  Virtqueue& q = queues_[vsock::kRxQueue];
  if (!q.ready()) return;
  bool pushed = false;
  while (!rst_queue_.empty() || !control_fifo_.empty() || !rx_ready_.empty()) {
    ChainFault fault;
    PopResult r = q.Pop(memory_, &rx_chain_, &fault);
    if (r == PopResult::kEmpty) {
      if (q.EnableKick()) continue;
      break;  // the guest's rx kick brings us back
    }
    if (r == PopResult::kBroken) {
      counters_.queues_broken++;
      Log("rx queue broken (avail index or head out of range); it stays stopped until the driver resets it");
      break;
    }
    if (r == PopResult::kBadChain || rx_chain_.writable_bytes < kHeaderSize || !rx_chain_.readable.empty()) {
      counters_.dropped_rx_chain++;
      Log(std::string("rx buffer dropped: ") +
          (r == PopResult::kBadChain ? ChainFaultName(fault) : "not a writable buffer of at least 44 bytes"));
      q.Push(rx_chain_.head, 0);
      pushed = true;
      continue;
    }
    if (rx_chain_.writable_bytes == kHeaderSize && rst_queue_.empty() && control_fifo_.empty()) {
      // Room for a header only: no data fits (Linux never posts such buffers).
      counters_.dropped_rx_chain++;
      Log("rx buffer dropped: 44 bytes, no room for data");
      q.Push(rx_chain_.head, 0);
      pushed = true;
      continue;
    }
    uint32_t written = 0;
    if (FillRxChain(rx_chain_, &written)) {
      q.Push(rx_chain_.head, written);
      pushed = true;
      counters_.rx_packets++;
      for (const auto& [head, len] : rx_extra_pushes_) q.Push(head, len);
      counters_.rx_packets += rx_extra_pushes_.size();
      rx_extra_pushes_.clear();
    } else {
      q.Unpop();  // FillRxChain dropped at least one stale entry: the loop makes progress
    }
  }
  if (pushed) NotifyQueue(vsock::kRxQueue);
  SettleTxKickDeferral();
}

bool VsockDevice::FillRxChain(const DescriptorChain& chain, uint32_t* written) {
  if (!rst_queue_.empty()) {
    RstEntry e = rst_queue_.front();
    rst_queue_.pop_front();
    vsock::Header h{};
    h.src_cid = e.from_cid;
    h.dst_cid = config_.guest_cid;
    h.src_port = e.host_port;
    h.dst_port = e.guest_port;
    h.type = e.type;
    h.op = vsock::kOpRst;
    h.buf_alloc = config_.buf_alloc;
    CopyToIov(chain.writable, 0, &h, kHeaderSize);
    *written = kHeaderSize;
    return true;
  }
  while (!control_fifo_.empty()) {
    uint64_t id = control_fifo_.front();
    control_fifo_.pop_front();
    Connection* conn = Find(id);
    if (conn == nullptr) continue;
    conn->in_control_fifo = false;
    uint8_t bit;
    uint16_t op;
    if (conn->control & Connection::kNeedRequest) {
      bit = Connection::kNeedRequest;
      op = vsock::kOpRequest;
    } else if (conn->control & Connection::kNeedResponse) {
      bit = Connection::kNeedResponse;
      op = vsock::kOpResponse;
    } else if (conn->control & Connection::kNeedCreditUpdate) {
      bit = Connection::kNeedCreditUpdate;
      op = vsock::kOpCreditUpdate;
      counters_.credit_updates_sent++;
    } else {
      continue;
    }
    conn->control &= static_cast<uint8_t>(~bit);
    if (conn->control != 0) QueueControl(*conn, 0);
    vsock::Header h = HeaderFor(*conn, op, 0, 0);
    CopyToIov(chain.writable, 0, &h, kHeaderSize);
    *written = kHeaderSize;
    return true;
  }
  // Stale control entries only (dropped above): the caller retries with the same chain.
  if (chain.writable_bytes <= kHeaderSize) return false;
  while (!rx_ready_.empty()) {
    uint64_t id = rx_ready_.front();
    rx_ready_.pop_front();
    Connection* conn = Find(id);
    if (conn == nullptr) continue;
    conn->in_rx_ready = false;
    uint32_t credit = PeerCredit(*conn);
    if (credit == 0 && conn->state == Connection::State::kEstablished) rx_credit_low_ = true;
    if (conn->state != Connection::State::kEstablished || conn->host_eof || !conn->fd.valid() || credit == 0) {
      UpdatePoll(*conn);
      continue;
    }
    if (conn->seqpacket()) {
      if (FillRxRecord(*conn, chain, written)) return true;
      continue;
    }
    ssize_t n = ReadHostIntoRx(*conn, chain, credit, written);
    if (n > 0) return true;
    if (n == 0) {
      conn->host_eof = true;
      vsock::Header h = HeaderFor(*conn, vsock::kOpShutdown, vsock::kShutdownSend, 0);
      CopyToIov(chain.writable, 0, &h, kHeaderSize);
      UpdatePoll(*conn);
      *written = kHeaderSize;
      return true;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      UpdatePoll(*conn);
      continue;
    }
    vsock::Header h = HeaderFor(*conn, vsock::kOpRst, 0, 0);
    CloseConnection(*conn, false);
    CopyToIov(chain.writable, 0, &h, kHeaderSize);
    *written = kHeaderSize;
    return true;
  }
  return false;
}

ssize_t VsockDevice::ReadHostIntoRx(Connection& conn, const DescriptorChain& chain, size_t credit, uint32_t* written) {
  Virtqueue& q = queues_[vsock::kRxQueue];
  const size_t room = chain.writable_bytes - kHeaderSize;
  const size_t first = std::min<size_t>({credit, room, vsock::kMaxPayload});
  SliceIov(chain.writable, kHeaderSize, first, &rx_iov_);
  // Further buffers while the guest's credit lasts: one read instead of one per buffer.
  size_t total = first;
  size_t extras = 0;
  rx_extra_caps_.clear();
  while (first == room && total < credit && extras + 1 < config_.rx_buffers_per_read) {
    if (extras == rx_extra_chains_.size()) rx_extra_chains_.emplace_back();
    DescriptorChain& c = rx_extra_chains_[extras];
    ChainFault fault;
    PopResult r = q.Pop(memory_, &c, &fault);
    if (r == PopResult::kEmpty) break;
    if (r == PopResult::kBroken) {
      counters_.queues_broken++;
      Log("rx queue broken (avail index or head out of range); it stays stopped until the driver resets it");
      break;
    }
    if (r == PopResult::kBadChain || c.writable_bytes <= kHeaderSize || !c.readable.empty()) {
      q.Unpop();  // ServiceRx's own loop drops it (counted, logged) in its turn
      break;
    }
    size_t piece = std::min<size_t>({credit - total, c.writable_bytes - kHeaderSize, vsock::kMaxPayload});
    SliceIov(c.writable, kHeaderSize, piece, &scratch_iov_);
    if (rx_iov_.size() + scratch_iov_.size() > kMaxBatchIov) {
      q.Unpop();  // readv takes at most UIO_MAXIOV pieces: this buffer waits for the next read
      break;
    }
    rx_iov_.insert(rx_iov_.end(), scratch_iov_.begin(), scratch_iov_.end());
    rx_extra_caps_.push_back(piece);
    total += piece;
    extras++;
  }
  ssize_t n;
  counters_.host_reads++;
  do {
    n = ::readv(conn.fd.get(), rx_iov_.data(), static_cast<int>(rx_iov_.size()));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    q.Unpop(static_cast<uint16_t>(extras));
    return n;
  }
  // Packets in buffer order; buffers the read did not reach go back to the ring.
  size_t left = static_cast<size_t>(n);
  size_t len = std::min(left, first);
  vsock::Header h = HeaderFor(conn, vsock::kOpRw, 0, static_cast<uint32_t>(len));
  CopyToIov(chain.writable, 0, &h, kHeaderSize);
  *written = static_cast<uint32_t>(kHeaderSize + len);
  left -= len;
  size_t used = 0;
  while (used < extras && left > 0) {
    const DescriptorChain& c = rx_extra_chains_[used];
    size_t piece = std::min(left, rx_extra_caps_[used]);
    vsock::Header eh = HeaderFor(conn, vsock::kOpRw, 0, static_cast<uint32_t>(piece));
    CopyToIov(c.writable, 0, &eh, kHeaderSize);
    rx_extra_pushes_.emplace_back(c.head, static_cast<uint32_t>(kHeaderSize + piece));
    left -= piece;
    used++;
  }
  q.Unpop(static_cast<uint16_t>(extras - used));
  conn.tx_cnt += static_cast<uint32_t>(n);
  counters_.rx_bytes += static_cast<uint64_t>(n);
  conn.stream_bytes = 0;  // the host answers: request/response, not a stream
  rx_delivered_ = true;
  if (PeerCredit(conn) < conn.peer_buf_alloc / 2) rx_credit_low_ = true;
  if (static_cast<size_t>(n) == total) MarkRxReady(conn);  // maybe more: back of the line
  else UpdatePoll(conn);
  return n;
}

// SEQPACKET host -> guest: a record is read whole (its size from MSG_PEEK|MSG_TRUNC), then
// goes out in pieces as credit and rx buffers allow, EOM on the last piece.
bool VsockDevice::FillRxRecord(Connection& conn, const DescriptorChain& chain, uint32_t* written) {
  if (!conn.rx_record_active) {
    ssize_t size;
    do {
      size = ::recv(conn.fd.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    } while (size < 0 && errno == EINTR);
    if (size < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      UpdatePoll(conn);
      return false;
    }
    if (size == 0) {
      // EOF (an empty record reads the same way: not deliverable, documented).
      conn.host_eof = true;
      vsock::Header h = HeaderFor(conn, vsock::kOpShutdown, vsock::kShutdownSend, 0);
      CopyToIov(chain.writable, 0, &h, kHeaderSize);
      UpdatePoll(conn);
      *written = kHeaderSize;
      return true;
    }
    if (size < 0 || static_cast<uint64_t>(size) > conn.peer_buf_alloc) {
      if (size > 0) Log("host message of " + std::to_string(size) + " bytes exceeds the guest's buffer; connection reset");
      vsock::Header h = HeaderFor(conn, vsock::kOpRst, 0, 0);
      CloseConnection(conn, false);
      CopyToIov(chain.writable, 0, &h, kHeaderSize);
      *written = kHeaderSize;
      return true;
    }
    conn.rx_record.resize(static_cast<size_t>(size));
    ssize_t n = ::recv(conn.fd.get(), conn.rx_record.data(), conn.rx_record.size(), MSG_DONTWAIT);
    if (n != size) {
      vsock::Header h = HeaderFor(conn, vsock::kOpRst, 0, 0);
      CloseConnection(conn, false);
      CopyToIov(chain.writable, 0, &h, kHeaderSize);
      *written = kHeaderSize;
      return true;
    }
    conn.rx_record_offset = 0;
    conn.rx_record_active = true;
  }
  size_t remaining = conn.rx_record.size() - conn.rx_record_offset;
  size_t piece = std::min<size_t>({remaining, PeerCredit(conn), chain.writable_bytes - kHeaderSize, vsock::kMaxPayload});
  if (piece == 0 && remaining > 0) {
    UpdatePoll(conn);
    return false;
  }
  bool last = piece == remaining;
  vsock::Header h = HeaderFor(conn, vsock::kOpRw, last ? vsock::kSeqEom : 0, static_cast<uint32_t>(piece));
  CopyToIov(chain.writable, 0, &h, kHeaderSize);
  CopyToIov(chain.writable, kHeaderSize, conn.rx_record.data() + conn.rx_record_offset, piece);
  conn.rx_record_offset += piece;
  conn.tx_cnt += static_cast<uint32_t>(piece);
  conn.stream_bytes = 0;
  counters_.rx_bytes += piece;
  if (last) {
    conn.rx_record.clear();
    conn.rx_record.shrink_to_fit();
    conn.rx_record_offset = 0;
    conn.rx_record_active = false;
  }
  MarkRxReady(conn);  // more of this record, or maybe another one: EAGAIN sorts it out
  *written = static_cast<uint32_t>(kHeaderSize + piece);
  return true;
}

void VsockDevice::ServiceEvent() {
  Virtqueue& q = queues_[vsock::kEventQueue];
  while (transport_reset_pending_ && q.ready()) {
    ChainFault fault;
    PopResult r = q.Pop(memory_, &event_chain_, &fault);
    if (r == PopResult::kEmpty) {
      if (q.EnableKick()) continue;
      return;
    }
    if (r == PopResult::kBroken) {
      counters_.queues_broken++;
      Log("event queue broken");
      return;
    }
    if (r == PopResult::kBadChain || event_chain_.writable_bytes < 4) {
      counters_.dropped_rx_chain++;
      Log("event buffer dropped: not a writable buffer of at least 4 bytes");
      q.Push(event_chain_.head, 0);
      continue;
    }
    uint32_t id = vsock::kEventTransportReset;
    CopyToIov(event_chain_.writable, 0, &id, sizeof id);
    q.Push(event_chain_.head, sizeof id);
    transport_reset_pending_ = false;
    counters_.transport_resets_sent++;
  }
  NotifyQueue(vsock::kEventQueue);
}

}  // namespace vmlink
