// VirtioSerialStream: an FdStream for a port whose peer hangs up and comes back, such as
// a virtio-serial port in a guest (/dev/virtio-ports/NAME): there EOF means "host away",
// not the end, and the device keeps IN|HUP set while the host is away, so libuv's
// level-triggered poll would spin. Used by @vmlink/transport-virtio-serial (guest side);
// FIFOs and ptys behave alike and stand in for it in tests.
//
// Mechanism only (no timeouts, no retries: those are the plugin's):
//   The fd sits in a private epoll set (EPOLLET) and the watcher polls that epoll fd.
//   EOF/EIO means "peer away": reported once as onHangup, then nothing until the peer is
//   back (an OUT edge, new data, or a write the device took, each confirmed by a poll()
//   of the fd), reported as onReconnect. Nothing re-arms the epoll entry (EPOLL_CTL_MOD
//   re-reports a level HUP) while the last report said HUP: a write refused with EAGAIN
//   then waits for the edge of the peer's return, or for dropPendingWrite().
#pragma once
#include <napi.h>

#include "fdstream/fd_stream_core.h"
#include "fdstream/fd_stream_object.h"

namespace vmlink {

class VirtioSerialCore : public FdStreamCore {
 public:
  VirtioSerialCore(Napi::Env env, Napi::Object owner, UniqueFd fd, const Options& options, Callbacks callbacks,
                   Napi::FunctionReference onHangup, Napi::FunctionReference onReconnect);
  ~VirtioSerialCore() override;

  // Open() and start watching at once, reading or not: a hang-up is news to a paused reader.
  void Watch();
  bool hungUp() const { return hungUp_; }

 protected:
  int WatchedFd() const override { return epoll_.get(); }
  void OnReady(int events) override;
  void UpdateInterest() override;
  bool OnReadEof() override { return Hangup(); }
  bool OnReadError(int err) override;
  bool BeforeDeliver() override;
  bool EdgeTriggered() const override { return true; }
  void OnReadsUndrained() override { RearmEpoll(); }
  bool OnBytesWritten() override { return ConfirmReturn(); }
  void OnAwaitingWritable(bool forWrite) override;
  void OnClosing() override { epoll_.reset(); }

 private:
  bool Hangup();
  bool PeerBack(bool needWritable);
  bool ConfirmReturn();
  bool Reconnect();
  void RearmEpoll();

  UniqueFd epoll_;
  Napi::FunctionReference onHangup_;
  Napi::FunctionReference onReconnect_;
  uint32_t epollInterest_ = 0;
  bool hungUp_ = false;
  // The last epoll report had HUP/RDHUP set (the peer is away right now).
  bool peerAway_ = false;
};

// The JS class: new VirtioSerialStream(fd, options, callbacks) with onHangup (required)
// and onReconnect; `hungUp` says whether the peer is away now.
class VirtioSerialStream : public FdStreamObject<VirtioSerialStream> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit VirtioSerialStream(const Napi::CallbackInfo& info);

 private:
  Napi::Value GetHungUp(const Napi::CallbackInfo& info);
  VirtioSerialCore* port_ = nullptr;  // core_, typed
};

}  // namespace vmlink
