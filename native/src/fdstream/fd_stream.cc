#include "fdstream/fd_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "common/errors.h"

namespace vmlink {
namespace {

constexpr size_t kDefaultReadSize = 64 * 1024;
constexpr size_t kMaxReadSize = 64 * 1024 * 1024;
// Reads per wake-up before yielding to the rest of the loop (timers, other fds).
constexpr int kReadBudget = 32;
constexpr int kMaxIov = IOV_MAX < 1024 ? IOV_MAX : 1024;

uint32_t EpollInterest(bool reading) {
  // OUT and RDHUP stay in the set even while paused: their edges tell us the peer came
  // back or left. HUP and ERR are always reported by epoll.
  return EPOLLET | EPOLLRDHUP | EPOLLOUT | (reading ? EPOLLIN : 0u);
}

// A chunk's bytes: Buffer or any Uint8Array (napi moves an on-heap array off the heap
// first, so the pointer stays valid while we hold a reference to the view).
void ChunkBytes(Napi::Env env, Napi::Value value, const uint8_t** data, size_t* length) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "FdStream.write: every chunk must be a Buffer or Uint8Array");
  }
  Napi::Uint8Array view = value.As<Napi::Uint8Array>();
  *data = view.Data();
  *length = view.ByteLength();
}

}  // namespace

Napi::Function FdStream::Define(Napi::Env env) {
  return DefineClass(env, "FdStream",
                     {
                         InstanceMethod<&FdStream::ReadStart>("readStart"),
                         InstanceMethod<&FdStream::ReadStop>("readStop"),
                         InstanceMethod<&FdStream::Write>("write"),
                         InstanceMethod<&FdStream::AwaitWritable>("awaitWritable"),
                         InstanceMethod<&FdStream::DropPendingWrite>("dropPendingWrite"),
                         InstanceMethod<&FdStream::Shutdown>("shutdown"),
                         InstanceMethod<&FdStream::Close>("close"),
                         InstanceMethod<&FdStream::RefMethod>("ref"),
                         InstanceMethod<&FdStream::UnrefMethod>("unref"),
                         InstanceAccessor<&FdStream::GetFd>("fd"),
                         InstanceAccessor<&FdStream::GetClosed>("closed"),
                         InstanceAccessor<&FdStream::GetHungUp>("hungUp"),
                         InstanceAccessor<&FdStream::GetWakeups>("wakeups"),
                         InstanceAccessor<&FdStream::GetWriteQueueSize>("writeQueueSize"),
                     });
}

// new FdStream(fd, options, callbacks). Takes ownership of fd at once: if the
// constructor throws after that, the fd is closed by UniqueFd.
FdStream::FdStream(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdStream>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "FdStream: fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(env, "FdStream: fd must be >= 0");
  fd_.reset(fd);

  Napi::Object options = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  if (!info[2].IsObject()) throw Napi::TypeError::New(env, "FdStream: callbacks must be an object");
  Napi::Object callbacks = info[2].As<Napi::Object>();

  messages_ = options.Get("messages").ToBoolean().Value();
  Napi::Value mode = options.Get("hangupMode");
  if (mode.IsString()) {
    std::string name = mode.As<Napi::String>().Utf8Value();
    if (name == "notify") {
      mode_ = HangupMode::kNotify;
    } else if (name != "end") {
      throw Napi::TypeError::New(env, "FdStream: hangupMode must be 'end' or 'notify', got '" + name + "'");
    }
  }
  size_t readSize = kDefaultReadSize;
  Napi::Value size = options.Get("readSize");
  if (size.IsNumber()) {
    double requested = size.As<Napi::Number>().DoubleValue();
    if (!(requested >= 1 && requested <= static_cast<double>(kMaxReadSize))) {
      throw Napi::RangeError::New(env, "FdStream: readSize must be in 1.." + std::to_string(kMaxReadSize));
    }
    readSize = static_cast<size_t>(requested);
  }
  readSize_ = readSize;

  auto take = [&](const char* name, Napi::FunctionReference* out, bool required) {
    Napi::Value fn = callbacks.Get(name);
    if (fn.IsFunction()) {
      *out = Napi::Persistent(fn.As<Napi::Function>());
    } else if (required || !fn.IsUndefined()) {
      throw Napi::TypeError::New(env, std::string("FdStream: callbacks.") + name + " must be a function");
    }
  };
  take("onData", &onData_, true);
  take("onEnd", &onEnd_, false);
  take("onError", &onError_, true);
  take("onHangup", &onHangup_, mode_ == HangupMode::kNotify);
  take("onReconnect", &onReconnect_, false);

  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
    ThrowErrno(env, errno, "fcntl");
  }

  int watched = fd;
  if (mode_ == HangupMode::kNotify) {
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) ThrowErrno(env, errno, "epoll_create1");
    epoll_event ev{};
    ev.events = epollInterest_ = EpollInterest(false);
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) ThrowErrno(env, errno, "epoll_ctl");
    watched = epoll_.get();
  }
  watcher_ = std::make_unique<PollWatcher>(env, watched);
  async_ = std::make_unique<Napi::AsyncContext>(env, "vmlink:FdStream", info.This().As<Napi::Object>());
  if (mode_ == HangupMode::kNotify) UpdateInterest();
}

FdStream::~FdStream() { CloseNow(); }

// ---- JS methods -------------------------------------------------------------------------

Napi::Value FdStream::ReadStart(const Napi::CallbackInfo& info) {
  if (!closed_ && !reading_) {
    reading_ = true;
    UpdateInterest();
  }
  return info.Env().Undefined();
}

Napi::Value FdStream::ReadStop(const Napi::CallbackInfo& info) {
  if (!closed_ && reading_) {
    reading_ = false;
    UpdateInterest();
  }
  return info.Env().Undefined();
}

// write(chunks: Uint8Array | Uint8Array[], cb) -> true when everything went out now (cb is
// not called), false when the rest waits for POLLOUT (cb(err|null) later). Throws on a
// synchronous failure. One write at a time: the Duplex above serialises them.
Napi::Value FdStream::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ThrowIfClosed(env, messages_ ? "send" : "write");
  if (!pending_.empty()) throw CodedError(env, "ERR_VMLINK_WRITE_PENDING", "FdStream: a write is already pending");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "FdStream.write: callback must be a function");

  Napi::Value input = info[0];
  // The common case first: one chunk, taken whole at once. No vector, no PendingChunk.
  size_t sent = 0;  // bytes of a lone chunk taken by that first attempt
  if (!input.IsArray()) {
    const uint8_t* data;
    size_t length;
    ChunkBytes(env, input, &data, &length);
    if (length == 0) return Napi::Boolean::New(env, true);
    ssize_t n;
    do {
      n = messages_ ? ::send(fd_.get(), data, length, MSG_NOSIGNAL) : ::write(fd_.get(), data, length);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ThrowErrno(env, errno, messages_ ? "send" : "write");
    if (n > 0) sent = static_cast<size_t>(n);
    if (sent == length) {
      ConfirmReturn();  // the device took bytes: see below
      return Napi::Boolean::New(env, true);
    }
  }
  std::vector<Napi::Value> values;
  if (input.IsArray()) {
    Napi::Array array = input.As<Napi::Array>();
    uint32_t count = array.Length();
    values.reserve(count);
    for (uint32_t i = 0; i < count; i++) values.push_back(array.Get(i));
  } else {
    values.push_back(input);
  }
  pendingIndex_ = pendingOffset_ = pendingBytes_ = 0;
  for (const Napi::Value& value : values) {
    PendingChunk chunk{Napi::Reference<Napi::Value>(), nullptr, 0};
    ChunkBytes(env, value, &chunk.data, &chunk.length);
    if (chunk.length == 0) continue;
    pendingBytes_ += chunk.length;
    pending_.push_back(std::move(chunk));
  }
  pendingOffset_ = sent;
  pendingBytes_ -= sent;

  bool blocked = false;
  size_t before = pendingBytes_ + sent;
  int err = WritePending(&blocked);
  // The device took bytes while we thought the peer away: ask the fd whether it is back
  // (its return can come with no edge at all: see ConfirmReturn).
  if (err == 0 && pendingBytes_ < before && !ConfirmReturn()) return Napi::Boolean::New(env, !blocked);
  if (err != 0 || !blocked) {
    pending_.clear();
    pendingBytes_ = 0;
    if (err != 0) ThrowErrno(env, err, messages_ ? "send" : "write");
    return Napi::Boolean::New(env, true);
  }
  // Blocked: pin the memory of the chunks still to send, then wait for POLLOUT.
  size_t index = 0;
  for (const Napi::Value& value : values) {
    const uint8_t* data;
    size_t length;
    ChunkBytes(env, value, &data, &length);
    if (length == 0) continue;
    if (index >= pendingIndex_) pending_[index].ref = Napi::Reference<Napi::Value>::New(value, 1);
    index++;
  }
  writeCallback_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (mode_ == HangupMode::kNotify && !peerAway_) RearmEpoll();
  UpdateInterest();
  return Napi::Boolean::New(env, false);
}

// awaitWritable(cb): calls cb() once the fd polls writable (a non-blocking connect ends).
Napi::Value FdStream::AwaitWritable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ThrowIfClosed(env, "poll");
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "FdStream.awaitWritable: callback must be a function");
  writableWaiter_ = Napi::Persistent(info[0].As<Napi::Function>());
  if (mode_ == HangupMode::kNotify) RearmEpoll();
  UpdateInterest();
  return env.Undefined();
}

// dropPendingWrite(error?) -> true when a write was pending: its unsent bytes are
// forgotten and its callback runs now with `error` (default: `write ECONNRESET`), so the
// Duplex above never loses a callback. The way out of a write a hung-up peer refuses.
Napi::Value FdStream::DropPendingWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || writeCallback_.IsEmpty()) return Napi::Boolean::New(env, false);
  Napi::Value error = info[0];
  if (error.IsUndefined()) {
    error = ErrnoError(env, ECONNRESET, messages_ ? "send" : "write").Value();
  } else if (!error.IsObject()) {
    throw Napi::TypeError::New(env, "FdStream.dropPendingWrite: error must be an Error or undefined");
  }
  pending_.clear();
  pendingIndex_ = pendingOffset_ = pendingBytes_ = 0;
  Napi::FunctionReference callback = std::move(writeCallback_);
  UpdateInterest();
  // A plain call: we are inside JS already, and a throw belongs to our caller.
  callback.Call(Value(), {error});
  return Napi::Boolean::New(env, true);
}

Napi::Value FdStream::Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ThrowIfClosed(env, "shutdown");
  if (::shutdown(fd_.get(), SHUT_WR) < 0) ThrowErrno(env, errno, "shutdown");
  return env.Undefined();
}

Napi::Value FdStream::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}

Napi::Value FdStream::RefMethod(const Napi::CallbackInfo& info) {
  refed_ = true;
  if (watcher_) watcher_->Ref();
  return info.Env().Undefined();
}

Napi::Value FdStream::UnrefMethod(const Napi::CallbackInfo& info) {
  refed_ = false;
  if (watcher_) watcher_->Unref();
  return info.Env().Undefined();
}

Napi::Value FdStream::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_.get()); }
Napi::Value FdStream::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed_); }
Napi::Value FdStream::GetHungUp(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), hungUp_); }
Napi::Value FdStream::GetWakeups(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), wakeups_); }
Napi::Value FdStream::GetWriteQueueSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(pendingBytes_));
}

// ---- event loop side --------------------------------------------------------------------

void FdStream::OnPoll(int status, int events) {
  if (closed_) return;
  wakeups_++;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (status < 0) {
    // libuv has stopped the handle: keep our bookkeeping in step so UpdateInterest restarts it.
    watcher_->Stop();
    if (status != UV_EBADF) {
      reading_ = false;
      Call(onError_, {ErrnoError(env, -status, "poll").Value()});
      return;
    }
    // libuv reports POLLERR as UV_EBADF. It is usually a pending socket error (a refused
    // connect, a reset): let the waiting operations find it (SO_ERROR, read, write).
    events = UV_READABLE | UV_WRITABLE;
  }
  if (mode_ == HangupMode::kNotify) {
    OnEpollWake();
    return;
  }
  if (events & UV_WRITABLE) {
    if (!writableWaiter_.IsEmpty() && !NotifyWritableWaiter()) return;
    if (!pending_.empty() && !FlushWrites()) return;
  }
  if ((events & (UV_READABLE | UV_DISCONNECT)) && reading_ && !DoReads()) return;
  UpdateInterest();
}

void FdStream::OnEpollWake() {
  epoll_event events[4];
  int n = epoll_wait(epoll_.get(), events, 4, 0);
  if (n <= 0) return;  // a spurious wake-up, or EINTR: the next edge brings us back
  uint32_t mask = 0;
  for (int i = 0; i < n; i++) mask |= events[i].events;

  const uint32_t gone = EPOLLHUP | EPOLLRDHUP | EPOLLERR;
  peerAway_ = (mask & (EPOLLHUP | EPOLLRDHUP)) != 0;
  // The mask is only as fresh as the epoll_wait: confirm the return with a poll() now.
  if (hungUp_ && (mask & EPOLLOUT) && !(mask & gone) && PeerBack(true) && !Reconnect()) return;
  if ((mask & (EPOLLOUT | gone)) && !writableWaiter_.IsEmpty() && !NotifyWritableWaiter()) return;
  // Only OUT (room) or ERR (an error to report) can move a pending write on. HUP alone
  // cannot, and retrying on it can spin: a pty master's refused write wakes its own wait
  // queue, so each attempt would bring the next HUP report.
  if ((mask & (EPOLLOUT | EPOLLERR)) && !pending_.empty() && !FlushWrites()) return;
  if ((mask & (EPOLLIN | gone)) && reading_ && !DoReads()) return;
  if (!ConfirmReturn()) return;
  // Reading drains to EOF and reports the hang-up there, after the peer's last bytes.
  // Paused, the HUP edge is the only news we get: report it now, not when reading resumes.
  if (peerAway_ && !reading_ && !Hangup()) return;
  UpdateInterest();
}

bool FdStream::DoReads() {
  int budget = kReadBudget;
  bool again = true;
  while (again && reading_ && !closed_ && budget-- > 0) {
    if (!ReadOnce(&again)) return false;
  }
  // Edge-triggered: stopping before EAGAIN would lose the edge, so ask epoll again.
  if (again && mode_ == HangupMode::kNotify && !closed_) RearmEpoll();
  return !closed_;
}

// One read (or recvmsg for messages). *again says whether another read may find more.
bool FdStream::ReadOnce(bool* again) {
  Napi::Env env = Env();
  size_t size = readSize_;
  uint8_t* buffer = ReadSlab(env);
  if (buffer == nullptr) {
    // No Buffer: Node is tearing the environment down (its handles close in a last loop
    // run). The bytes stay in the kernel; nothing could receive them anyway.
    *again = false;
    return true;
  }
  ssize_t n;
  bool truncated = false;
  if (messages_) {
    iovec iov{buffer, size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // MSG_TRUNC: the return value is the message's real length even when it did not fit.
    n = recvmsg(fd_.get(), &msg, MSG_TRUNC);
    truncated = n > 0 && ((msg.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) > size);
  } else {
    n = ::read(fd_.get(), buffer, size);
  }
  if (n < 0) {
    int err = errno;
    *again = err == EINTR;
    if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) return true;
    // A pty slave whose master closed reads EIO: in notify mode that is a hangup too.
    if (err == EIO && mode_ == HangupMode::kNotify) return Hangup();
    reading_ = false;
    readEnded_ = true;
    return Call(onError_, {ErrnoError(env, err, messages_ ? "recvmsg" : "read").Value()});
  }
  if (n == 0) {
    *again = false;
    if (mode_ == HangupMode::kNotify) return Hangup();
    reading_ = false;
    readEnded_ = true;
    return Call(onEnd_, {});
  }
  // Bytes read while the device still says HUP were left by the peer that went away.
  if (hungUp_ && PeerBack(false) && !Reconnect()) return false;
  size_t length = std::min(static_cast<size_t>(n), size);
  Napi::Value chunk;
  if (length == size) {
    // Full: the slab is the chunk, JS owns it now. The next read allocates another.
    chunk = readSlab_.Value();
    DropReadSlab();
  } else {
    chunk = Napi::Buffer<uint8_t>::Copy(env, buffer, length);
  }
  Napi::Value original = truncated ? Napi::Number::New(env, static_cast<double>(n)) : env.Undefined();
  // Level-triggered streams: a short read means drained; the poll wakes us if more comes.
  *again = messages_ || mode_ == HangupMode::kNotify || length == size;
  return Call(onData_, {chunk, original});
}

// The Buffer the next read fills, or nullptr when none can be made. Not Napi::Buffer::New:
// that throws, and a throw must not escape the loop's callback.
uint8_t* FdStream::ReadSlab(Napi::Env env) {
  if (readSlabData_ != nullptr) return readSlabData_;
  napi_value slab;
  void* data;
  // Uninitialised memory (Node skips the zero fill for new Buffers): read() overwrites it.
  if (napi_create_buffer(env, readSize_, &data, &slab) != napi_ok) return nullptr;
  napi_ref ref;
  if (napi_create_reference(env, slab, 1, &ref) != napi_ok) return nullptr;
  readSlab_ = Napi::Reference<Napi::Buffer<uint8_t>>(env, ref);
  readSlabData_ = static_cast<uint8_t*>(data);
  return readSlabData_;
}

// Forgets the slab (handed to JS, or the stream closed). Through the destructor, which
// ignores napi_delete_reference's status: Reset() throws on failure, and this also runs in
// ~FdStream at exit, where a throw aborts the process.
void FdStream::DropReadSlab() {
  { Napi::Reference<Napi::Buffer<uint8_t>> slab(std::move(readSlab_)); }
  readSlabData_ = nullptr;
}

bool FdStream::FlushWrites() {
  bool blocked = false;
  int err = WritePending(&blocked);
  if (err != 0) return CompleteWrite(ErrnoError(Env(), err, messages_ ? "send" : "write").Value());
  if (!blocked) return CompleteWrite(Env().Null());
  // EAGAIN while the device says HUP: re-arming would re-report that level HUP at once, a
  // busy loop. The peer's return is an edge of its own (OUT without HUP): wait for it.
  if (mode_ == HangupMode::kNotify && !peerAway_) RearmEpoll();
  return true;
}

bool FdStream::CompleteWrite(Napi::Value error) {
  pending_.clear();
  pendingIndex_ = pendingOffset_ = pendingBytes_ = 0;
  Napi::FunctionReference callback = std::move(writeCallback_);
  UpdateInterest();
  return Call(callback, {error});
}

bool FdStream::NotifyWritableWaiter() {
  Napi::FunctionReference waiter = std::move(writableWaiter_);
  UpdateInterest();
  return Call(waiter, {});
}

bool FdStream::Hangup() {
  if (hungUp_) return true;
  hungUp_ = true;
  return Call(onHangup_, {});
}

// A reconnect is a fact about the fd now, not about the wake-up that led here: a
// virtio-serial port polls OUT for a moment after its host left (QEMU discards the queued
// bytes before the guest learns of the hang-up), and a guest reads a new host's first
// bytes under the old IN|HUP, learning of the host a moment later. So: poll() the fd
// itself, without waiting. HUP/RDHUP/ERR says the
// peer is (still or again) away; `needWritable` also asks for room, the sign of a
// virtio-serial host (a FIFO's reader never polls writable: its sign is new data).
bool FdStream::PeerBack(bool needWritable) {
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
bool FdStream::ConfirmReturn() {
  if (mode_ != HangupMode::kNotify || closed_ || !hungUp_ || !PeerBack(false)) return !closed_;
  return Reconnect();
}

bool FdStream::Reconnect() {
  hungUp_ = false;
  return Call(onReconnect_, {});
}

int FdStream::WritePending(bool* blocked) {
  *blocked = false;
  while (pendingIndex_ < pending_.size()) {
    ssize_t n;
    if (messages_) {
      // One send per chunk: each chunk is one message.
      const PendingChunk& chunk = pending_[pendingIndex_];
      n = ::send(fd_.get(), chunk.data + pendingOffset_, chunk.length - pendingOffset_, MSG_NOSIGNAL);
    } else {
      iovec iov[kMaxIov];
      int count = 0;
      for (size_t i = pendingIndex_; i < pending_.size() && count < kMaxIov; i++, count++) {
        size_t skip = i == pendingIndex_ ? pendingOffset_ : 0;
        iov[count].iov_base = const_cast<uint8_t*>(pending_[i].data + skip);
        iov[count].iov_len = pending_[i].length - skip;
      }
      // Node ignores SIGPIPE, so a write to a closed peer fails with EPIPE.
      n = ::writev(fd_.get(), iov, count);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *blocked = true;
        return 0;
      }
      return errno;
    }
    size_t written = static_cast<size_t>(n);
    pendingBytes_ -= written;
    while (written > 0 && pendingIndex_ < pending_.size()) {
      size_t left = pending_[pendingIndex_].length - pendingOffset_;
      if (written < left) {
        pendingOffset_ += written;
        written = 0;
      } else {
        written -= left;
        pending_[pendingIndex_].ref.Reset();
        pendingIndex_++;
        pendingOffset_ = 0;
      }
    }
  }
  return 0;
}

void FdStream::UpdateInterest() {
  if (closed_ || !watcher_) return;
  auto callback = [this](int status, int events) { OnPoll(status, events); };
  if (mode_ == HangupMode::kNotify) {
    uint32_t want = EpollInterest(reading_);
    if (want != epollInterest_) {
      epollInterest_ = want;
      RearmEpoll();  // MOD also re-checks readiness: resuming finds data already queued
    }
    if (watcher_->events() == 0) {
      int rc = watcher_->Start(UV_READABLE, callback);
      if (rc == 0) Pin();
    }
    return;
  }
  int events = 0;
  if (reading_ && !readEnded_) events |= UV_READABLE;
  if (!pending_.empty() || !writableWaiter_.IsEmpty()) events |= UV_WRITABLE;
  if (events == watcher_->events()) return;
  if (events == 0) {
    watcher_->Stop();
    Unpin();
    return;
  }
  if (watcher_->Start(events, callback) == 0) Pin();
}

void FdStream::RearmEpoll() {
  epoll_event ev{};
  ev.events = epollInterest_;
  epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd_.get(), &ev);
}

// While the watcher is active the JS object must stay alive (it receives the callbacks).
void FdStream::Pin() {
  if (!pinned_) {
    pinned_ = true;
    Ref();
  }
}

void FdStream::Unpin() {
  if (pinned_) {
    pinned_ = false;
    Unref();
  }
}

void FdStream::CloseNow() {
  if (closed_) return;
  closed_ = true;
  reading_ = false;
  watcher_.reset();  // uv_close: safe even from inside the watcher's own callback
  epoll_.reset();
  fd_.reset();
  pending_.clear();
  pendingIndex_ = pendingOffset_ = pendingBytes_ = 0;
  writeCallback_.Reset();
  writableWaiter_.Reset();
  DropReadSlab();
  Unpin();
}

bool FdStream::Call(const Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
  if (fn.IsEmpty() || closed_) return !closed_;
  try {
    fn.MakeCallback(Value(), args.size(), args.begin(), *async_);
  } catch (const Napi::Error& error) {
    // Like an exception in any Node callback: 'uncaughtException', or the process dies.
    napi_fatal_exception(Env(), error.Value());
  }
  return !closed_;
}

void FdStream::ThrowIfClosed(Napi::Env env, const char* syscall) {
  if (closed_) ThrowErrno(env, EBADF, syscall);
}

}  // namespace vmlink
