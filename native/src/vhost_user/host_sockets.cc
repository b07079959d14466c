// The host side of VsockDevice, as Firecracker's hybrid vsock defines it:
//  - host -> guest: a client connects to uds_path, writes `CONNECT <port>\n`; we answer
//    `OK <port>\n` once the guest accepted, or close the socket (guest RST, bad line,
//    driver not ready, too many connections).
//  - guest -> host port P: we connect to `<uds_path>_<P>`; nobody there = RST.
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>

#include "common/errors.h"
#include "vhost_user/vsock_connection.h"
#include "vhost_user/vsock_device.h"

namespace vmlink {
namespace {
constexpr size_t kMaxConnectLine = 64;
constexpr int kAcceptBudget = 64;

// `CONNECT <port>`: keyword in any case, fields split on whitespace (as Firecracker).
bool ParseConnectLine(const std::string& line, uint32_t* port) {
  std::vector<std::string> words;
  std::string word;
  for (char c : line) {
    if (isspace(static_cast<unsigned char>(c))) {
      if (!word.empty()) words.push_back(word), word.clear();
    } else {
      word.push_back(c);
    }
  }
  if (!word.empty()) words.push_back(word);
  if (words.size() != 2 || words[1].size() > 10) return false;
  if (strcasecmp(words[0].c_str(), "connect") != 0) return false;
  uint64_t value = 0;
  for (char c : words[1]) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > 0xffffffffull) return false;
  *port = static_cast<uint32_t>(value);
  return true;
}
}  // namespace

VsockDevice::Connection* VsockDevice::Find(uint64_t id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second.get();
}

VsockDevice::Connection* VsockDevice::FindByPorts(uint32_t host_port, uint32_t guest_port) {
  auto it = by_ports_.find(PortsKey(host_port, guest_port));
  return it == by_ports_.end() ? nullptr : Find(it->second);
}

VsockDevice::Connection& VsockDevice::NewConnection(int fd, uint16_t type) {
  auto conn = std::make_unique<Connection>();
  conn->id = next_id_++;
  conn->type = type;
  conn->fd.reset(fd);
  Connection& ref = *conn;
  by_id_.emplace(ref.id, std::move(conn));
  return ref;
}

void VsockDevice::Register(Connection& conn, uint32_t host_port, uint32_t guest_port) {
  conn.host_port = host_port;
  conn.guest_port = guest_port;
  conn.registered = true;
  by_ports_[PortsKey(host_port, guest_port)] = conn.id;
  counters_.connections_opened++;
}

uint32_t VsockDevice::AllocateHostPort(uint32_t guest_port) {
  // Firecracker's range, round-robin: [2^30, 2^31). Free ones abound (max_connections).
  for (;;) {
    uint32_t port = next_host_port_++;
    if (next_host_port_ >= (1u << 31)) next_host_port_ = 1u << 30;
    if (by_ports_.count(PortsKey(port, guest_port)) == 0) return port;
  }
}

void VsockDevice::OnUdsListenerReadable(int listen_fd, uint16_t type) {
  for (int i = 0; i < kAcceptBudget; i++) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED) continue;
      // EMFILE: stop instead of spinning; the next closed connection re-arms the accept.
      if (uds_watcher_) uds_watcher_->Stop();
      if (uds_seq_watcher_) uds_seq_watcher_->Stop();
      Log("accept on " + config_.uds_path + " failed: " + ErrnoName(err));
      return;
    }
    counters_.host_accepts++;
    if (by_id_.size() >= config_.max_connections) {
      counters_.refused_too_many++;
      Log("host connection refused: " + std::to_string(config_.max_connections) + " connections open");
      ::close(fd);
      continue;
    }
    Connection& conn = NewConnection(fd, type);
    UpdatePoll(conn);
  }
}

void VsockDevice::OnHostEvent(uint64_t id, int status, int events) {
  Connection* conn = Find(id);
  if (conn == nullptr) return;
  if (status < 0) {
    CloseConnection(*conn, true);
  } else {
    switch (conn->state) {
      case Connection::State::kAwaitingConnectLine:
        ReadConnectLine(*conn);
        break;
      case Connection::State::kConnectingGuest:
        // Only UV_DISCONNECT is watched here: the client gave up before the guest answered.
        CloseConnection(*conn, true);
        break;
      case Connection::State::kEstablished:
        if (events & UV_WRITABLE) FlushPending(*conn);
        conn = Find(id);
        if (conn != nullptr && (events & (UV_READABLE | UV_DISCONNECT))) {
          // Read now, then settle the watch: stopping it first and starting it again
          // after the read would cost two epoll_ctl calls per packet.
          MarkRxReady(*conn);
          ServiceRx();
          conn = Find(id);
          if (conn != nullptr) UpdatePoll(*conn);
          return;
        }
        break;
    }
  }
  ServiceRx();
}

void VsockDevice::ReadConnectLine(Connection& conn) {
  char buffer[kMaxConnectLine];
  if (conn.seqpacket()) {
    // The first record is the whole command.
    ssize_t n = ::recv(conn.fd.get(), buffer, sizeof buffer, MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0 || static_cast<size_t>(n) > sizeof buffer) {
      if (n > 0) counters_.connect_lines_bad++;
      CloseConnection(conn, false);
      return;
    }
    conn.line.assign(buffer, static_cast<size_t>(n));
    if (!conn.line.empty() && conn.line.back() == '\n') conn.line.pop_back();
  } else if (!ReadStreamConnectLine(conn, buffer)) {
    return;
  }
  AfterConnectLine(conn);
}

bool VsockDevice::ReadStreamConnectLine(Connection& conn, char* buffer) {
  size_t room = kMaxConnectLine - conn.line.size();
  // Peek first: bytes after the newline are the client's data for the guest.
  ssize_t n = ::recv(conn.fd.get(), buffer, room, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (n <= 0) {
    CloseConnection(conn, false);
    return false;
  }
  char* newline = static_cast<char*>(memchr(buffer, '\n', static_cast<size_t>(n)));
  size_t take = newline == nullptr ? static_cast<size_t>(n) : static_cast<size_t>(newline - buffer) + 1;
  if (newline == nullptr && conn.line.size() + take >= kMaxConnectLine) {
    counters_.connect_lines_bad++;
    Log("host connection closed: no newline in the first " + std::to_string(kMaxConnectLine) + " bytes");
    CloseConnection(conn, false);
    return false;
  }
  // Consume exactly what we looked at up to the newline (never the data behind it).
  ssize_t got = ::recv(conn.fd.get(), buffer, take, 0);
  if (got != static_cast<ssize_t>(take)) {
    CloseConnection(conn, false);
    return false;
  }
  conn.line.append(buffer, newline == nullptr ? take : take - 1);
  return newline != nullptr;
}

void VsockDevice::AfterConnectLine(Connection& conn) {
  uint32_t port;
  if (!ParseConnectLine(conn.line, &port)) {
    counters_.connect_lines_bad++;
    std::string shown = conn.line.substr(0, 32);
    for (char& c : shown) c = isprint(static_cast<unsigned char>(c)) ? c : '?';
    Log("host connection closed: bad command line '" + shown + "'");
    CloseConnection(conn, false);
    return;
  }
  conn.line.clear();
  conn.line.shrink_to_fit();
  if (!driver_ready_) {
    counters_.refused_not_ready++;
    Log("host connect to guest port " + std::to_string(port) + " refused: the guest driver is not ready");
    CloseConnection(conn, false);
    return;
  }
  if (by_ports_.size() >= config_.max_connections) {
    counters_.refused_too_many++;
    CloseConnection(conn, false);
    return;
  }
  Register(conn, AllocateHostPort(port), port);
  conn.state = Connection::State::kConnectingGuest;
  QueueControl(conn, Connection::kNeedRequest);
  UpdatePoll(conn);
}

void VsockDevice::ConnectToHost(Connection& conn, uint32_t port) {
  std::string path = config_.uds_path + "_" + std::to_string(port);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  int err = 0;
  if (path.size() >= sizeof addr.sun_path) {
    err = ENAMETOOLONG;
  } else {
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, (conn.seqpacket() ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
    } else {
      conn.fd.reset(fd);
      int rc;
      do {
        rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      } while (rc < 0 && errno == EINTR);
      // A non-blocking AF_UNIX connect completes at once or fails (EAGAIN = backlog full).
      if (rc < 0) err = errno;
    }
  }
  if (err != 0) {
    counters_.host_connect_failed++;
    Log("guest connect to host port " + std::to_string(port) + " reset: " + path + ": " + ErrnoName(err));
    CloseConnection(conn, true);
    return;
  }
  conn.state = Connection::State::kEstablished;
  QueueControl(conn, Connection::kNeedResponse);
  UpdatePoll(conn);
}

bool VsockDevice::WriteOkLine(Connection& conn) {
  std::string line = "OK " + std::to_string(conn.guest_port) + "\n";
  // A fresh socket's buffer takes these few bytes whole; anything else means it is gone.
  ssize_t n = ::send(conn.fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return n == static_cast<ssize_t>(line.size());
}

void VsockDevice::FlushPending(Connection& conn) {
  // SEQPACKET: whole records; an AF_UNIX seqpacket send is all or nothing.
  while (!conn.records.empty() && conn.fd.valid()) {
    const std::vector<uint8_t>& record = conn.records.front();
    ssize_t n = ::send(conn.fd.get(), record.data(), record.size(), MSG_NOSIGNAL | MSG_DONTWAIT | MSG_EOR);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Log("host socket refused a " + std::to_string(record.size()) + "-byte message: " + ErrnoName(errno) + "; connection reset");
      CloseConnection(conn, true);
      return;
    }
    conn.fwd_cnt += static_cast<uint32_t>(record.size());
    conn.records_bytes -= record.size();
    conn.records.pop_front();
  }
  while (conn.pending_bytes() > 0 && conn.fd.valid()) {
    counters_.host_writes++;
    ssize_t n = ::send(conn.fd.get(), conn.pending.data() + conn.pending_offset, conn.pending_bytes(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        counters_.host_writes_blocked++;
        break;
      }
      CloseConnection(conn, true);
      return;
    }
    counters_.host_write_bytes += static_cast<size_t>(n);
    conn.pending_offset += static_cast<size_t>(n);
    conn.fwd_cnt += static_cast<uint32_t>(n);
  }
  if (conn.pending_bytes() == 0) {
    conn.pending.clear();
    conn.pending.shrink_to_fit();  // idle connections hold no buffer
    conn.pending_offset = 0;
  } else if (conn.pending_offset >= 64 * 1024) {
    conn.pending.erase(conn.pending.begin(), conn.pending.begin() + static_cast<ptrdiff_t>(conn.pending_offset));
    conn.pending_offset = 0;
  }
  if (conn.fwd_cnt - conn.last_sent_fwd_cnt >= config_.credit_update_bytes) QueueControl(conn, Connection::kNeedCreditUpdate);
  AfterHostFlush(conn);
  UpdatePoll(conn);
}

void VsockDevice::UpdatePoll(Connection& conn) {
  if (!conn.fd.valid()) return;
  int events = 0;
  switch (conn.state) {
    case Connection::State::kAwaitingConnectLine:
      events = UV_READABLE;
      break;
    case Connection::State::kConnectingGuest:
      events = UV_DISCONNECT;
      break;
    case Connection::State::kEstablished:
      if (!conn.host_eof && !conn.in_rx_ready && !conn.guest_shut_rcv && PeerCredit(conn) > 0) {
        // A record half sent to the guest goes on as soon as there is credit, readable or not.
        if (conn.rx_record_active) MarkRxReady(conn);
        else events |= UV_READABLE;
      }
      if (conn.has_unsent()) events |= UV_WRITABLE;
      break;
  }
  if (!conn.watcher) {
    if (events == 0) return;
    try {
      conn.watcher = std::make_unique<PollWatcher>(env_, conn.fd.get());
    } catch (const std::exception& e) {
      Log(std::string("host socket cannot be watched: ") + e.what());
      CloseConnection(conn, true);
      return;
    }
  }
  if (events == conn.watcher->events()) return;
  if (events == 0) {
    conn.watcher->Stop();
    return;
  }
  uint64_t id = conn.id;
  conn.watcher->Start(events, [this, id](int status, int ev) { Guarded([&] { OnHostEvent(id, status, ev); }); });
}

}  // namespace vmlink
