// FdStreamCore: reads and writes one non-blocking fd (socket, pipe, FIFO, character
// device) on the Node loop, driven by a PollWatcher. No threads. It is the mechanism under
// the JS classes FdStream (fd_stream.h) and VirtioSerialStream (virtio_serial_stream.h),
// whose Duplex on top (see types/fdstream.d.cts for the contract) drives it:
//   ReadStart()/ReadStop()   follow the Duplex's _read()/push() backpressure
//   Write(chunks, cb)        tries writev at once; on EAGAIN keeps the rest, polls writable
//   Shutdown()               shutdown(SHUT_WR), sockets only
//   DropPendingWrite(err?)   gives up a write the peer will not take; its callback gets err
//   Close()                  closes the fd exactly once, even with a write pending
//
// Readiness here is libuv's level-triggered uv_poll on the fd, and EOF ends reading: what
// every socket and pipe wants. A device whose readiness or EOF means something else (a
// virtio-serial port: EOF is "host away", HUP stays set) overrides the hooks at the end of
// the class, the way libuv's tcp.c and pipe.c specialise its generic stream.c.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "common/poll_watcher.h"
#include "common/unique_fd.h"

namespace vmlink {

class FdStreamCore {
 public:
  static constexpr size_t kDefaultReadSize = 64 * 1024;
  static constexpr size_t kMaxReadSize = 64 * 1024 * 1024;

  struct Options {
    // SOCK_SEQPACKET: one recvmsg per message, one send per chunk.
    bool messages = false;
    // Stream mode: the most bytes one onData chunk carries (one chunk gathers what several
    // read() calls find, up to this). Message mode: the largest message taken whole.
    size_t readSize = kDefaultReadSize;
  };

  struct Callbacks {
    Napi::FunctionReference onData;   // (chunk: Buffer, truncatedFrom: number | undefined)
    Napi::FunctionReference onEnd;    // optional
    Napi::FunctionReference onError;  // (error)
  };

  // Takes ownership of `fd` (closed if this throws) and makes it O_NONBLOCK. `owner` is
  // the JS object the callbacks get as `this`; it is kept alive while the watcher runs.
  FdStreamCore(Napi::Env env, Napi::Object owner, UniqueFd fd, const Options& options, Callbacks callbacks,
               const char* resourceName);
  virtual ~FdStreamCore();
  FdStreamCore(const FdStreamCore&) = delete;
  FdStreamCore& operator=(const FdStreamCore&) = delete;

  // Creates the watcher on WatchedFd(); the owner calls it once, right after construction
  // (a constructor cannot call the subclass's hooks).
  void Open();

  // ---- the operations the JS classes expose ----
  void ReadStart();
  void ReadStop();
  // true: all of it went out now (callback not called); false: callback(err|null) later.
  bool Write(Napi::Value chunks, Napi::Value callback);
  void AwaitWritable(Napi::Function callback);
  bool DropPendingWrite(Napi::Value error);
  void Shutdown();
  void Close();
  void Ref();
  void Unref();

  int fd() const { return fd_.get(); }
  bool closed() const { return closed_; }
  double wakeups() const { return wakeups_; }
  size_t writeQueueSize() const { return pendingBytes_; }

 protected:
  // ---- hooks: the default is a socket or pipe behind a level-triggered poll ----

  // The fd the watcher polls.
  virtual int WatchedFd() const { return fd_.get(); }
  // The watcher woke up with these UV_* events (already counted, in a HandleScope).
  virtual void OnReady(int events);
  // Starts, changes or stops the watcher to match what is wanted now.
  virtual void UpdateInterest();
  // read() returned 0. Default: the peer finished writing, reading ends (onEnd).
  virtual bool OnReadEof();
  // read() failed with `err` (not EAGAIN/EINTR). Default: onError, reading ends.
  virtual bool OnReadError(int err);
  // Bytes were read and are about to be delivered.
  virtual bool BeforeDeliver() { return !closed_; }
  // Edge-triggered readiness: reads and writes go on until EAGAIN (the next edge comes only
  // after it). Level-triggered (the default) stops at a short read or write: the kernel
  // queue is drained or full then, and the next poll says when that changes, which spares
  // the syscall that would only return EAGAIN.
  virtual bool EdgeTriggered() const { return false; }
  // The read loop stopped before the fd said EAGAIN (budget spent, or paused).
  virtual void OnReadsUndrained() {}
  // The kernel took bytes of a write.
  virtual bool OnBytesWritten() { return !closed_; }
  // A write is blocked (forWrite) or a caller waits for writability: about to poll for OUT.
  virtual void OnAwaitingWritable(bool forWrite) {}
  // Close() ran: the watcher is gone, the fd not yet closed. A subclass closes what it owns
  // (its destructor must call Close() first: the base destructor cannot reach this hook).
  virtual void OnClosing() {}

  // ---- mechanism shared with the subclasses ----
  // Each bool returns false when the stream was closed by a JS callback: stop touching state.
  bool DoReads();
  bool FlushWrites();
  bool NotifyWritableWaiter();
  bool Call(const Napi::FunctionReference& fn, std::initializer_list<napi_value> args);
  void StartWatcher(int events);
  void StopWatcher();
  void ThrowIfClosed(const char* syscall);
  const char* WriteSyscall() const { return messages_ ? "send" : "write"; }

  Napi::Env env_;
  UniqueFd fd_;
  std::unique_ptr<PollWatcher> watcher_;
  bool messages_ = false;
  bool reading_ = false;
  bool readEnded_ = false;
  bool closed_ = false;
  bool hasPendingWrite() const { return !pending_.empty(); }
  bool hasWritableWaiter() const { return !writableWaiter_.IsEmpty(); }

 private:
  // One queued chunk of a pending write; `ref` keeps the JS memory alive until written.
  struct PendingChunk {
    Napi::Reference<Napi::Value> ref;
    const uint8_t* data;
    size_t length;
  };

  void OnPoll(int status, int events);
  bool ReadChunk(bool* again, int* budget);
  bool ReadMessage(bool* again);
  bool CompleteWrite(Napi::Value error);
  // Sends queued chunks; returns 0, or the errno of a hard failure. Sets *blocked on EAGAIN.
  int WritePending(bool* blocked);
  void ClearPending();
  void Pin();
  void Unpin();
  void CloseNow();

  Napi::ObjectReference owner_;  // weak; strong (pinned) while the watcher runs
  std::unique_ptr<Napi::AsyncContext> async_;
  size_t readSize_ = kDefaultReadSize;

  Napi::FunctionReference onData_;
  Napi::FunctionReference onEnd_;
  Napi::FunctionReference onError_;

  std::vector<PendingChunk> pending_;
  size_t pendingIndex_ = 0;   // first chunk not yet fully written
  size_t pendingOffset_ = 0;  // bytes of pending_[pendingIndex_] already written
  size_t pendingBytes_ = 0;
  Napi::FunctionReference writeCallback_;
  Napi::FunctionReference writableWaiter_;

  bool pinned_ = false;
  double wakeups_ = 0;
};

}  // namespace vmlink
