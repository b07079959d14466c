// src/fdstream: Duplex-ready readers/writers for non-blocking fds: FdStream (sockets,
// pipes; fd_stream.h) and VirtioSerialStream (a port whose peer hangs up and returns;
// virtio_serial_stream.h), both over FdStreamCore; plus socketpair(), a real connected
// socket pair for in-process use and tests.
#include <errno.h>
#include <sys/socket.h>

#include "common/errors.h"
#include "common/module.h"
#include "common/unique_fd.h"
#include "fdstream/fd_stream.h"
#include "fdstream/virtio_serial_stream.h"

namespace vmlink {
namespace {

// socketpair('stream' | 'seqpacket') -> [fd, fd], both non-blocking and close-on-exec.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "stream";
  int type;
  if (kind == "stream") {
    type = SOCK_STREAM;
  } else if (kind == "seqpacket") {
    type = SOCK_SEQPACKET;
  } else {
    throw Napi::TypeError::New(env, "socketpair: type must be 'stream' or 'seqpacket', got '" + kind + "'");
  }
  int fds[2];
  if (::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) ThrowErrno(env, errno, "socketpair");
  UniqueFd a(fds[0]), b(fds[1]);
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, a.release()));
  result.Set(1u, Napi::Number::New(env, b.release()));
  return result;
}

}  // namespace

void RegisterFdStream(Napi::Env env, Napi::Object exports) {
  exports.Set("FdStream", FdStream::Define(env));
  exports.Set("VirtioSerialStream", VirtioSerialStream::Define(env));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
}

}  // namespace vmlink
