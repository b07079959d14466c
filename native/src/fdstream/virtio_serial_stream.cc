#include "fdstream/virtio_serial_stream.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>

#include <string>

#include "common/errors.h"

namespace vmlink {
namespace {

uint32_t EpollInterest(bool reading) {
  // OUT and RDHUP stay in the set even while paused: their edges tell us the peer came
  // back or left. HUP and ERR are always reported by epoll.
  return EPOLLET | EPOLLRDHUP | EPOLLOUT | (reading ? EPOLLIN : 0u);
}

}  // namespace

VirtioSerialCore::VirtioSerialCore(Napi::Env env, Napi::Object owner, UniqueFd fd, const Options& options,
                                   Callbacks callbacks, Napi::FunctionReference onHangup,
                                   Napi::FunctionReference onReconnect)
    : FdStreamCore(env, owner, std::move(fd), options, std::move(callbacks), "vmlink:VirtioSerialStream"),
      onHangup_(std::move(onHangup)),
      onReconnect_(std::move(onReconnect)) {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) ThrowErrno(env, errno, "epoll_create1");
  epoll_event ev{};
  ev.events = epollInterest_ = EpollInterest(false);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd_.get(), &ev) < 0) ThrowErrno(env, errno, "epoll_ctl");
}

VirtioSerialCore::~VirtioSerialCore() { Close(); }  // the watcher goes before the epoll fd

void VirtioSerialCore::Watch() {
  Open();
  UpdateInterest();
}

void VirtioSerialCore::OnReady(int /*events: of the epoll fd, not of the port*/) {
  epoll_event events[4];
  int n = epoll_wait(epoll_.get(), events, 4, 0);
  if (n <= 0) return;  // a spurious wake-up, or EINTR: the next edge brings us back
  uint32_t mask = 0;
  for (int i = 0; i < n; i++) mask |= events[i].events;

  const uint32_t gone = EPOLLHUP | EPOLLRDHUP | EPOLLERR;
  peerAway_ = (mask & (EPOLLHUP | EPOLLRDHUP)) != 0;
  // The mask is only as fresh as the epoll_wait: confirm the return with a poll() now.
  if (hungUp_ && (mask & EPOLLOUT) && !(mask & gone) && PeerBack(true) && !Reconnect()) return;
  if ((mask & (EPOLLOUT | gone)) && hasWritableWaiter() && !NotifyWritableWaiter()) return;
  // Only OUT (room) or ERR (an error to report) can move a pending write on. HUP alone
  // cannot, and retrying on it can spin: a pty master's refused write wakes its own wait
  // queue, so each attempt would bring the next HUP report.
  if ((mask & (EPOLLOUT | EPOLLERR)) && hasPendingWrite() && !FlushWrites()) return;
  if ((mask & (EPOLLIN | gone)) && reading_ && !DoReads()) return;
  if (!ConfirmReturn()) return;
  // Reading drains to EOF and reports the hang-up there, after the peer's last bytes.
  // Paused, the HUP edge is the only news we get: report it now, not when reading resumes.
  if (peerAway_ && !reading_ && !Hangup()) return;
  UpdateInterest();
}

void VirtioSerialCore::UpdateInterest() {
  if (closed_ || !watcher_) return;
  uint32_t want = EpollInterest(reading_);
  if (want != epollInterest_) {
    epollInterest_ = want;
    RearmEpoll();  // MOD also re-checks readiness: resuming finds data already queued
  }
  if (watcher_->events() == 0) StartWatcher(UV_READABLE);
}

// A pty slave whose master closed reads EIO: that is a hang-up too.
bool VirtioSerialCore::OnReadError(int err) { return err == EIO ? Hangup() : FdStreamCore::OnReadError(err); }

// Bytes read while the device still says HUP were left by the peer that went away.
bool VirtioSerialCore::BeforeDeliver() {
  if (hungUp_ && PeerBack(false) && !Reconnect()) return false;
  return !closed_;
}

void VirtioSerialCore::OnAwaitingWritable(bool forWrite) {
  // EAGAIN while the device says HUP: re-arming would re-report that level HUP at once, a
  // busy loop. The peer's return is an edge of its own (OUT without HUP): wait for it.
  if (!forWrite || !peerAway_) RearmEpoll();
}

bool VirtioSerialCore::Hangup() {
  if (hungUp_) return true;
  hungUp_ = true;
  return Call(onHangup_, {});
}

// A reconnect is a fact about the fd now, not about the wake-up that led here: a
// virtio-serial port polls OUT for a moment after its host left (QEMU discards the queued
// bytes before the guest learns of the hang-up), and a guest reads a new host's first
// bytes under the old IN|HUP, learning of the host a moment later. So: poll() the fd
// itself, without waiting. HUP/RDHUP/ERR says the peer is (still or again) away;
// `needWritable` also asks for room, the sign of a virtio-serial host (a FIFO's reader
// never polls writable: its sign is new data).
bool VirtioSerialCore::PeerBack(bool needWritable) {
  pollfd pfd{fd_.get(), static_cast<short>(POLLIN | POLLOUT | POLLRDHUP), 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return false;  // cannot tell: stay hung up, the next edge asks again
  if (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) {
    peerAway_ = true;
    return false;
  }
  peerAway_ = false;
  return !needWritable || (pfd.revents & POLLOUT) != 0;
}

// Hung up, after a wake-up or a write the device took: is the peer back? Ask now, because
// its return may bring no edge of its own. A host that arrives while the guest reads its
// first bytes under the old IN|HUP, and then does not read while the guest fills the port,
// leaves the port polling neither IN nor OUT: the edge-triggered set reports nothing.
// A missed return would also hide the next hang-up (reported once per hang-up).
bool VirtioSerialCore::ConfirmReturn() {
  if (closed_ || !hungUp_ || !PeerBack(false)) return !closed_;
  return Reconnect();
}

bool VirtioSerialCore::Reconnect() {
  hungUp_ = false;
  return Call(onReconnect_, {});
}

void VirtioSerialCore::RearmEpoll() {
  if (!epoll_) return;
  epoll_event ev{};
  ev.events = epollInterest_;
  epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd_.get(), &ev);
}

// ---- the JS class ---------------------------------------------------------------------------

Napi::Function VirtioSerialStream::Define(Napi::Env env) {
  std::vector<Property> properties = CoreProperties();
  properties.push_back(InstanceAccessor<&VirtioSerialStream::GetHungUp>("hungUp"));
  return DefineClass(env, "VirtioSerialStream", properties);
}

// new VirtioSerialStream(fd, { readSize? }, { onData, onError, onHangup, onReconnect? }).
// Takes ownership of fd at once; starts watching for hang-ups at once (not only once
// reading starts).
VirtioSerialStream::VirtioSerialStream(const Napi::CallbackInfo& info) : FdStreamObject<VirtioSerialStream>(info) {
  constexpr const char* kName = "VirtioSerialStream";
  Napi::Env env = info.Env();
  UniqueFd fd = TakeFd(info, kName);
  Napi::Object options = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  if (!info[2].IsObject()) throw Napi::TypeError::New(env, std::string(kName) + ": callbacks must be an object");
  Napi::Object callbacks = info[2].As<Napi::Object>();

  FdStreamCore::Options coreOptions;
  Napi::Value size = options.Get("readSize");
  if (size.IsNumber()) {
    double requested = size.As<Napi::Number>().DoubleValue();
    if (!(requested >= 1 && requested <= static_cast<double>(FdStreamCore::kMaxReadSize))) {
      throw Napi::RangeError::New(env, std::string(kName) + ": readSize must be in 1.." +
                                           std::to_string(FdStreamCore::kMaxReadSize));
    }
    coreOptions.readSize = static_cast<size_t>(requested);
  }
  FdStreamCore::Callbacks coreCallbacks;
  coreCallbacks.onData = TakeCallback(callbacks, kName, "onData", true);
  coreCallbacks.onError = TakeCallback(callbacks, kName, "onError", true);
  Napi::FunctionReference onHangup = TakeCallback(callbacks, kName, "onHangup", true);
  Napi::FunctionReference onReconnect = TakeCallback(callbacks, kName, "onReconnect", false);

  auto port = std::make_unique<VirtioSerialCore>(env, info.This().As<Napi::Object>(), std::move(fd), coreOptions,
                                                 std::move(coreCallbacks), std::move(onHangup), std::move(onReconnect));
  port_ = port.get();
  core_ = std::move(port);
  port_->Watch();
}

Napi::Value VirtioSerialStream::GetHungUp(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), port_->hungUp());
}

}  // namespace vmlink
