// FdStream: the JS class over FdStreamCore for sockets and pipes (stream or message mode):
// level-triggered readiness, EOF ends reading. See fd_stream_core.h for the mechanism and
// types/fdstream.d.cts for the JS contract. A peer that hangs up and comes back (a
// virtio-serial port) is VirtioSerialStream's business (virtio_serial_stream.h).
#pragma once
#include <napi.h>

#include "fdstream/fd_stream_object.h"

namespace vmlink {

class FdStream : public FdStreamObject<FdStream> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new FdStream(fd, options, callbacks). Takes ownership of fd at once.
  explicit FdStream(const Napi::CallbackInfo& info);

 private:
  Napi::Value AwaitWritable(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);
};

}  // namespace vmlink
