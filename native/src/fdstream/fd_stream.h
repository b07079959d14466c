// FdStream: reads and writes on one non-blocking fd (socket, pipe, FIFO, character
// device), driven by a PollWatcher on the Node loop. No threads. The JS Duplex on top
// (see types/fdstream.d.cts for the contract) drives it:
//   readStart()/readStop()   follow the Duplex's _read()/push() backpressure
//   write(chunks, cb)        tries writev at once; on EAGAIN keeps the rest, polls writable
//   shutdown()               shutdown(SHUT_WR), sockets only
//   dropPendingWrite(err?)   gives up a write the peer will not take; its callback gets err
//   close()                  closes the fd exactly once, even with a write pending
//
// Two ways to learn readiness:
//   hangupMode 'end'    uv_poll on the fd itself, level-triggered. EOF ends reading.
//   hangupMode 'notify' the fd sits in a private epoll set (EPOLLET) and the watcher polls
//                       that epoll fd. EOF/EIO means "peer away" (virtio-serial host gone):
//                       reported once as onHangup, then nothing until the peer is back
//                       (an OUT edge or new data), reported as onReconnect. A level-triggered
//                       poll would spin here: the char device keeps IN|HUP set. For the
//                       same reason nothing re-arms the epoll entry (EPOLL_CTL_MOD re-reports
//                       a level HUP) while the last report said HUP: a write refused with
//                       EAGAIN then waits for the edge of the peer's return.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "common/poll_watcher.h"
#include "common/unique_fd.h"

namespace vmlink {

class FdStream : public Napi::ObjectWrap<FdStream> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit FdStream(const Napi::CallbackInfo& info);
  ~FdStream() override;

 private:
  enum class HangupMode { kEnd, kNotify };

  // One queued chunk of a pending write; `ref` keeps the JS memory alive until written.
  struct PendingChunk {
    Napi::Reference<Napi::Value> ref;
    const uint8_t* data;
    size_t length;
  };

  // JS methods.
  Napi::Value ReadStart(const Napi::CallbackInfo& info);
  Napi::Value ReadStop(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value AwaitWritable(const Napi::CallbackInfo& info);
  Napi::Value DropPendingWrite(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value RefMethod(const Napi::CallbackInfo& info);
  Napi::Value UnrefMethod(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value GetHungUp(const Napi::CallbackInfo& info);
  Napi::Value GetWakeups(const Napi::CallbackInfo& info);
  Napi::Value GetWriteQueueSize(const Napi::CallbackInfo& info);

  // Event loop side.
  void OnPoll(int status, int events);
  void OnEpollWake();
  // Each returns false when the stream was closed by a JS callback: stop touching state.
  bool DoReads();
  bool ReadOnce(bool* again);
  bool FlushWrites();
  bool CompleteWrite(Napi::Value error);
  bool NotifyWritableWaiter();
  bool Hangup();
  bool PeerBack(bool needWritable);
  bool ConfirmReturn();
  bool Reconnect();

  // Sends queued chunks; returns 0, or the errno of a hard failure. Sets *blocked on EAGAIN.
  int WritePending(bool* blocked);
  void UpdateInterest();
  void RearmEpoll();
  void Pin();
  void Unpin();
  void CloseNow();
  // The JS Buffer the next read() fills (allocated on first use); see ReadOnce.
  uint8_t* ReadSlab(Napi::Env env);
  void DropReadSlab();
  bool Call(const Napi::FunctionReference& fn, std::initializer_list<napi_value> args);
  void ThrowIfClosed(Napi::Env env, const char* syscall);

  UniqueFd fd_;
  UniqueFd epoll_;  // only in 'notify' mode
  std::unique_ptr<PollWatcher> watcher_;
  std::unique_ptr<Napi::AsyncContext> async_;
  HangupMode mode_ = HangupMode::kEnd;
  bool messages_ = false;
  size_t readSize_ = 0;
  // A read fills this Buffer. A full read hands it to JS as the chunk (no copy: bulk
  // transfers read full); a shorter one copies out its bytes and keeps it for the next.
  Napi::Reference<Napi::Buffer<uint8_t>> readSlab_;
  uint8_t* readSlabData_ = nullptr;

  Napi::FunctionReference onData_;
  Napi::FunctionReference onEnd_;
  Napi::FunctionReference onError_;
  Napi::FunctionReference onHangup_;
  Napi::FunctionReference onReconnect_;

  std::vector<PendingChunk> pending_;
  size_t pendingIndex_ = 0;   // first chunk not yet fully written
  size_t pendingOffset_ = 0;  // bytes of pending_[pendingIndex_] already written
  size_t pendingBytes_ = 0;
  Napi::FunctionReference writeCallback_;
  Napi::FunctionReference writableWaiter_;

  bool reading_ = false;
  bool readEnded_ = false;
  bool hungUp_ = false;
  // 'notify': the last epoll report had HUP/RDHUP set (the peer is away right now).
  bool peerAway_ = false;
  bool closed_ = false;
  bool pinned_ = false;
  bool refed_ = true;
  uint32_t epollInterest_ = 0;
  double wakeups_ = 0;
};

}  // namespace vmlink
