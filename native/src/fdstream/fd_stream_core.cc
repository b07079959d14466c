#include "fdstream/fd_stream_core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "common/errors.h"
#include "fdstream/read_arena.h"

namespace vmlink {
namespace {

// read() calls per wake-up before yielding to the rest of the loop (timers, other fds).
constexpr int kReadBudget = 32;
constexpr int kMaxIov = IOV_MAX < 1024 ? IOV_MAX : 1024;

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

FdStreamCore::FdStreamCore(Napi::Env env, Napi::Object owner, UniqueFd fd, const Options& options,
                           Callbacks callbacks, const char* resourceName)
    : env_(env),
      fd_(std::move(fd)),
      messages_(options.messages),
      owner_(Napi::Weak(owner)),
      readSize_(options.readSize),
      onData_(std::move(callbacks.onData)),
      onEnd_(std::move(callbacks.onEnd)),
      onError_(std::move(callbacks.onError)) {
  int flags = fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) < 0)) {
    ThrowErrno(env, errno, "fcntl");
  }
  async_ = std::make_unique<Napi::AsyncContext>(env, resourceName, owner);
}

FdStreamCore::~FdStreamCore() { CloseNow(); }

void FdStreamCore::Open() { watcher_ = std::make_unique<PollWatcher>(env_, WatchedFd()); }

// ---- operations -------------------------------------------------------------------------

void FdStreamCore::ReadStart() {
  if (!closed_ && !reading_) {
    reading_ = true;
    UpdateInterest();
  }
}

void FdStreamCore::ReadStop() {
  if (!closed_ && reading_) {
    reading_ = false;
    UpdateInterest();
  }
}

// One write at a time: the Duplex above serialises them. Throws on a synchronous failure.
bool FdStreamCore::Write(Napi::Value input, Napi::Value callback) {
  Napi::Env env = env_;
  ThrowIfClosed(WriteSyscall());
  if (!pending_.empty()) throw CodedError(env, "ERR_VMLINK_WRITE_PENDING", "FdStream: a write is already pending");
  if (!callback.IsFunction()) throw Napi::TypeError::New(env, "FdStream.write: callback must be a function");

  // The common case first: one chunk, taken whole at once. No vector, no PendingChunk.
  size_t sent = 0;  // bytes of a lone chunk taken by that first attempt
  if (!input.IsArray()) {
    const uint8_t* data;
    size_t length;
    ChunkBytes(env, input, &data, &length);
    if (length == 0) return true;
    ssize_t n;
    do {
      n = messages_ ? ::send(fd_.get(), data, length, MSG_NOSIGNAL) : ::write(fd_.get(), data, length);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ThrowErrno(env, errno, WriteSyscall());
    if (n > 0) sent = static_cast<size_t>(n);
    if (sent == length) {
      OnBytesWritten();
      return true;
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
  ClearPending();
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
  int err = 0;
  if (!input.IsArray() && !EdgeTriggered()) {
    blocked = true;  // the lone chunk's write above was short or EAGAIN: the buffer is full
  } else {
    err = WritePending(&blocked);
  }
  if (err == 0 && pendingBytes_ < before && !OnBytesWritten()) return !blocked;
  if (err != 0 || !blocked) {
    ClearPending();
    if (err != 0) ThrowErrno(env, err, WriteSyscall());
    return true;
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
  writeCallback_ = Napi::Persistent(callback.As<Napi::Function>());
  OnAwaitingWritable(true);
  UpdateInterest();
  return false;
}

void FdStreamCore::AwaitWritable(Napi::Function callback) {
  ThrowIfClosed("poll");
  writableWaiter_ = Napi::Persistent(callback);
  OnAwaitingWritable(false);
  UpdateInterest();
}

// The pending write's unsent bytes are forgotten and its callback runs now with `error`
// (default: `write ECONNRESET`), so the Duplex above never loses a callback.
bool FdStreamCore::DropPendingWrite(Napi::Value error) {
  if (closed_ || writeCallback_.IsEmpty()) return false;
  if (error.IsUndefined()) {
    error = ErrnoError(env_, ECONNRESET, WriteSyscall()).Value();
  } else if (!error.IsObject()) {
    throw Napi::TypeError::New(env_, "FdStream.dropPendingWrite: error must be an Error or undefined");
  }
  ClearPending();
  Napi::FunctionReference callback = std::move(writeCallback_);
  UpdateInterest();
  // A plain call: we are inside JS already, and a throw belongs to our caller.
  callback.Call(owner_.Value(), {error});
  return true;
}

void FdStreamCore::Shutdown() {
  ThrowIfClosed("shutdown");
  if (::shutdown(fd_.get(), SHUT_WR) < 0) ThrowErrno(env_, errno, "shutdown");
}

void FdStreamCore::Close() { CloseNow(); }

void FdStreamCore::Ref() {
  if (watcher_) watcher_->Ref();
}

void FdStreamCore::Unref() {
  if (watcher_) watcher_->Unref();
}

// ---- event loop side --------------------------------------------------------------------

void FdStreamCore::OnPoll(int status, int events) {
  if (closed_) return;
  wakeups_++;
  Napi::HandleScope scope(env_);
  if (status < 0) {
    // libuv has stopped the handle: keep our bookkeeping in step so UpdateInterest restarts it.
    watcher_->Stop();
    if (status != UV_EBADF) {
      reading_ = false;
      Call(onError_, {ErrnoError(env_, -status, "poll").Value()});
      return;
    }
    // libuv reports POLLERR as UV_EBADF. It is usually a pending socket error (a refused
    // connect, a reset): let the waiting operations find it (SO_ERROR, read, write).
    events = UV_READABLE | UV_WRITABLE;
  }
  OnReady(events);
}

void FdStreamCore::OnReady(int events) {
  if (events & UV_WRITABLE) {
    if (!writableWaiter_.IsEmpty() && !NotifyWritableWaiter()) return;
    if (!pending_.empty() && !FlushWrites()) return;
  }
  if ((events & (UV_READABLE | UV_DISCONNECT)) && reading_ && !DoReads()) return;
  UpdateInterest();
}

bool FdStreamCore::DoReads() {
  int budget = kReadBudget;
  bool again = true;
  while (again && reading_ && !closed_ && budget > 0) {
    if (messages_) {
      budget--;
      if (!ReadMessage(&again)) return false;
    } else if (!ReadChunk(&again, &budget)) {
      return false;
    }
  }
  if (again && !closed_) OnReadsUndrained();
  return !closed_;
}

bool FdStreamCore::OnReadEof() {
  reading_ = false;
  readEnded_ = true;
  return Call(onEnd_, {});
}

bool FdStreamCore::OnReadError(int err) {
  reading_ = false;
  readEnded_ = true;
  return Call(onError_, {ErrnoError(env_, err, messages_ ? "recvmsg" : "read").Value()});
}

// Stream mode: one onData chunk of up to readSize bytes, gathered by as many read() calls
// as it takes to fill it or drain the fd, so a bulk transfer costs one JS call per chunk,
// and the kernel's queue is emptied (its sender gets credit back) before any JS runs.
// *again says whether another chunk may be waiting.
bool FdStreamCore::ReadChunk(bool* again, int* budget) {
  ReadArena* arena = ReadArena::For(env_);
  uint8_t* buffer = arena == nullptr ? nullptr : arena->Reserve(readSize_);
  if (buffer == nullptr) {
    // No Buffer: Node is tearing the environment down (its handles close in a last loop
    // run). The bytes stay in the kernel; nothing could receive them anyway.
    *again = false;
    return true;
  }
  size_t length = 0;
  int failure = 0;  // errno of a failed read (reported after the bytes before it), or -1 for EOF
  *again = false;
  while (length < readSize_ && *budget > 0) {
    --*budget;
    size_t want = readSize_ - length;
    ssize_t n = ::read(fd_.get(), buffer + length, want);
    if (n > 0) {
      length += static_cast<size_t>(n);
      // Level-triggered: a short read means drained; the poll wakes us if more comes.
      if (static_cast<size_t>(n) < want && !EdgeTriggered()) break;
      *again = length == readSize_;
      continue;
    }
    if (n == 0) {
      failure = -1;
    } else if (errno == EINTR) {
      ++*budget;
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      failure = errno;
    }
    *again = false;
    break;
  }
  if (length > 0 && *budget == 0 && length < readSize_) *again = true;  // out of budget, not drained
  if (length > 0 && failure == -1) {
    // EOF after bytes: deliver them, then read again rather than report an EOF that JS may
    // have made stale meanwhile (a virtio-serial host returns while we deliver its first
    // bytes; a FIFO gets a new writer). EOF that still holds is read again at once.
    failure = 0;
    *again = true;
  }
  if (length > 0) {
    // Out of the arena before any JS runs (BeforeDeliver may call back).
    napi_value chunk = arena->Take(length);
    if (!BeforeDeliver()) return false;
    if (chunk != nullptr && !Call(onData_, {chunk, env_.Undefined()})) return false;
  }
  if (failure == -1) return OnReadEof();
  if (failure != 0) return OnReadError(failure);
  return !closed_;
}

// Message mode: one recvmsg, one message, one onData. *again: another may be waiting.
bool FdStreamCore::ReadMessage(bool* again) {
  size_t size = readSize_;
  ReadArena* arena = ReadArena::For(env_);
  uint8_t* buffer = arena == nullptr ? nullptr : arena->Reserve(size);
  if (buffer == nullptr) {
    *again = false;  // as in ReadChunk: Node is tearing down
    return true;
  }
  iovec iov{buffer, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // MSG_TRUNC: the return value is the message's real length even when it did not fit.
  ssize_t n = recvmsg(fd_.get(), &msg, MSG_TRUNC);
  if (n < 0) {
    int err = errno;
    *again = err == EINTR;
    if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) return true;
    return OnReadError(err);
  }
  if (n == 0) {
    *again = false;
    return OnReadEof();
  }
  bool truncated = (msg.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) > size;
  size_t length = std::min(static_cast<size_t>(n), size);
  napi_value chunk = arena->Take(length);  // before any JS runs (BeforeDeliver may call back)
  if (!BeforeDeliver()) return false;
  *again = true;  // each message is its own read
  if (chunk == nullptr) return !closed_;
  Napi::Value original = truncated ? Napi::Number::New(env_, static_cast<double>(n)) : env_.Undefined();
  return Call(onData_, {chunk, original});
}

bool FdStreamCore::FlushWrites() {
  bool blocked = false;
  int err = WritePending(&blocked);
  if (err != 0) return CompleteWrite(ErrnoError(env_, err, WriteSyscall()).Value());
  if (!blocked) return CompleteWrite(env_.Null());
  OnAwaitingWritable(true);
  return true;
}

bool FdStreamCore::CompleteWrite(Napi::Value error) {
  ClearPending();
  Napi::FunctionReference callback = std::move(writeCallback_);
  UpdateInterest();
  return Call(callback, {error});
}

bool FdStreamCore::NotifyWritableWaiter() {
  Napi::FunctionReference waiter = std::move(writableWaiter_);
  UpdateInterest();
  return Call(waiter, {});
}

int FdStreamCore::WritePending(bool* blocked) {
  *blocked = false;
  while (pendingIndex_ < pending_.size()) {
    ssize_t n;
    size_t wanted;
    if (messages_) {
      // One send per chunk: each chunk is one message.
      const PendingChunk& chunk = pending_[pendingIndex_];
      wanted = chunk.length - pendingOffset_;
      n = ::send(fd_.get(), chunk.data + pendingOffset_, wanted, MSG_NOSIGNAL);
    } else {
      iovec iov[kMaxIov];
      int count = 0;
      wanted = 0;
      for (size_t i = pendingIndex_; i < pending_.size() && count < kMaxIov; i++, count++) {
        size_t skip = i == pendingIndex_ ? pendingOffset_ : 0;
        iov[count].iov_base = const_cast<uint8_t*>(pending_[i].data + skip);
        iov[count].iov_len = pending_[i].length - skip;
        wanted += iov[count].iov_len;
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
    bool full = written < wanted && !messages_;
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
    // A short write: the kernel's buffer is full now; POLLOUT says when it is not.
    if (full && !EdgeTriggered() && pendingIndex_ < pending_.size()) {
      *blocked = true;
      return 0;
    }
  }
  return 0;
}

void FdStreamCore::ClearPending() {
  pending_.clear();
  pendingIndex_ = pendingOffset_ = pendingBytes_ = 0;
}

void FdStreamCore::UpdateInterest() {
  if (closed_ || !watcher_) return;
  int events = 0;
  if (reading_ && !readEnded_) events |= UV_READABLE;
  if (!pending_.empty() || !writableWaiter_.IsEmpty()) events |= UV_WRITABLE;
  if (events == watcher_->events()) return;
  if (events == 0) {
    StopWatcher();
    return;
  }
  StartWatcher(events);
}

void FdStreamCore::StartWatcher(int events) {
  if (watcher_->Start(events, [this](int status, int ready) { OnPoll(status, ready); }) == 0) Pin();
}

void FdStreamCore::StopWatcher() {
  watcher_->Stop();
  Unpin();
}

// While the watcher is active the JS object must stay alive (it receives the callbacks).
void FdStreamCore::Pin() {
  if (!pinned_) {
    pinned_ = true;
    owner_.Ref();
  }
}

void FdStreamCore::Unpin() {
  if (pinned_) {
    pinned_ = false;
    owner_.Unref();
  }
}

void FdStreamCore::CloseNow() {
  if (closed_) return;
  closed_ = true;
  reading_ = false;
  watcher_.reset();  // uv_close: safe even from inside the watcher's own callback
  OnClosing();
  fd_.reset();
  ClearPending();
  writeCallback_.Reset();
  writableWaiter_.Reset();
  Unpin();
}

bool FdStreamCore::Call(const Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
  if (fn.IsEmpty() || closed_) return !closed_;
  try {
    fn.MakeCallback(owner_.Value(), args.size(), args.begin(), *async_);
  } catch (const Napi::Error& error) {
    // Like an exception in any Node callback: 'uncaughtException', or the process dies.
    napi_fatal_exception(env_, error.Value());
  }
  return !closed_;
}

void FdStreamCore::ThrowIfClosed(const char* syscall) {
  if (closed_) ThrowErrno(env_, EBADF, syscall);
}

}  // namespace vmlink
