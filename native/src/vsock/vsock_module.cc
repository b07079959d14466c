// src/vsock: AF_VSOCK system calls for @vmlink/vsock. Plain functions on fds that JS has
// already handed to an owner (FdStream or VsockListener); the only fd-creating calls are
// vsockSocket (whose result JS wraps at once) and the listener's accept.
//
//   vsockSocket(type)                      -> fd (SOCK_NONBLOCK|SOCK_CLOEXEC)
//   vsockProbe(type)                       -> 0 or the errno socket() fails with
//   vsockBind(fd, cid, port)               bind; errors carry cid/port
//   vsockListen(fd, backlog)
//   vsockConnect(fd, cid, port, flags)     -> true (connected) | false (EINPROGRESS)
//   vsockConnectResult(fd, cid, port)      -> Error | null, from SO_ERROR
//   vsockSockName(fd) / vsockPeerName(fd)  -> { cid, port }
//   vsockSetConnectTimeout(fd, ms)         SO_VM_SOCKETS_CONNECT_TIMEOUT
//   vsockSetBufferSize(fd, bytes) / vsockGetBufferSize(fd)   SO_VM_SOCKETS_BUFFER_SIZE
//   vsockAdoptFd(fd)                       -> { domain, type, listening }, sets O_NONBLOCK|FD_CLOEXEC
//   vsockLocalCid()                        IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock
//   VsockListener                          see vsock_listener.h
//   vsockConstants                         AF_VSOCK, SOCK_*, VMADDR_*
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/vm_sockets.h>

#include <string>

#include "common/errors.h"
#include "common/module.h"
#include "common/unique_fd.h"
#include "vsock/vsock_address.h"
#include "vsock/vsock_listener.h"

namespace vmlink {
namespace {

int SocketType(const Napi::CallbackInfo& info, size_t index) {
  std::string name = info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
  if (name == "stream") return SOCK_STREAM;
  if (name == "seqpacket") return SOCK_SEQPACKET;
  if (name == "dgram") return SOCK_DGRAM;
  throw Napi::TypeError::New(info.Env(), "socket type must be 'stream', 'seqpacket' or 'dgram', got '" + name + "'");
}

const char* TypeName(int type) {
  switch (type) {
    case SOCK_STREAM: return "stream";
    case SOCK_SEQPACKET: return "seqpacket";
    case SOCK_DGRAM: return "dgram";
    default: return "other";
  }
}

Napi::Value Socket(const Napi::CallbackInfo& info) {
  int fd = ::socket(AF_VSOCK, SocketType(info, 0) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), errno, "socket");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  UniqueFd fd(::socket(AF_VSOCK, SocketType(info, 0) | SOCK_CLOEXEC, 0));
  return Napi::Number::New(info.Env(), fd ? 0 : errno);
}

Napi::Value Bind(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint32_t cid = Uint32Arg(info, 1, "cid");
  uint32_t port = Uint32Arg(info, 2, "port");
  sockaddr_vm address = MakeVsockAddress(cid, port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
    throw VsockErrnoError(info.Env(), errno, "bind", cid, port);
  }
  return info.Env().Undefined();
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint32_t backlog = Uint32Arg(info, 1, "backlog");
  if (::listen(fd, static_cast<int>(backlog > 65535 ? 65535 : backlog)) < 0) ThrowErrno(info.Env(), errno, "listen");
  return info.Env().Undefined();
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint32_t cid = Uint32Arg(info, 1, "cid");
  uint32_t port = Uint32Arg(info, 2, "port");
  uint32_t flags = Uint32Arg(info, 3, "flags");
  sockaddr_vm address = MakeVsockAddress(cid, port, static_cast<uint8_t>(flags));
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == EINPROGRESS) return Napi::Boolean::New(info.Env(), false);
  throw VsockErrnoError(info.Env(), errno, "connect", cid, port);
}

Napi::Value ConnectResult(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint32_t cid = Uint32Arg(info, 1, "cid");
  uint32_t port = Uint32Arg(info, 2, "port");
  int err = 0;
  socklen_t length = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0) err = errno;
  if (err == 0) return info.Env().Null();
  return VsockErrnoError(info.Env(), err, "connect", cid, port).Value();
}

Napi::Value Name(const Napi::CallbackInfo& info, bool peer) {
  int fd = FdArg(info, 0);
  sockaddr_vm address{};
  socklen_t length = sizeof address;
  int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length)
                : getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  if (rc < 0) ThrowErrno(info.Env(), errno, peer ? "getpeername" : "getsockname");
  return AddressObject(info.Env(), address);
}

Napi::Value SockName(const Napi::CallbackInfo& info) { return Name(info, false); }
Napi::Value PeerName(const Napi::CallbackInfo& info) { return Name(info, true); }

Napi::Value SetConnectTimeout(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  uint32_t ms = Uint32Arg(info, 1, "timeout");
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof tv) < 0) {
    ThrowErrno(info.Env(), errno, "setsockopt");
  }
  return info.Env().Undefined();
}

// The kernel clamps SO_VM_SOCKETS_BUFFER_SIZE to [MIN, MAX]; raise MAX first to grow.
Napi::Value SetBufferSize(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  unsigned long long size = Uint32Arg(info, 1, "size");
  unsigned long long max = 0;
  socklen_t length = sizeof max;
  if (getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &max, &length) < 0) ThrowErrno(info.Env(), errno, "getsockopt");
  if (size > max && setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &size, sizeof size) < 0) {
    ThrowErrno(info.Env(), errno, "setsockopt");
  }
  if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, sizeof size) < 0) ThrowErrno(info.Env(), errno, "setsockopt");
  return info.Env().Undefined();
}

Napi::Value GetBufferSize(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  unsigned long long size = 0;
  socklen_t length = sizeof size;
  if (getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, &length) < 0) ThrowErrno(info.Env(), errno, "getsockopt");
  return Napi::Number::New(info.Env(), static_cast<double>(size));
}

// Inspects an fd handed to us (systemd activation, fromFd) and makes it non-blocking and
// close-on-exec. The caller decides what domain/type it accepts.
Napi::Value AdoptFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int domain = 0, type = 0, listening = 0;
  socklen_t length = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) < 0) ThrowErrno(env, errno, "getsockopt");
  length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0) ThrowErrno(env, errno, "getsockopt");
  length = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) < 0) ThrowErrno(env, errno, "getsockopt");
  Napi::Object result = Napi::Object::New(env);
  result.Set("vsock", Napi::Boolean::New(env, domain == AF_VSOCK));
  result.Set("type", Napi::String::New(env, TypeName(type)));
  result.Set("listening", Napi::Boolean::New(env, listening != 0));
  if (domain != AF_VSOCK) return result;  // leave foreign fds untouched
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) ThrowErrno(env, errno, "fcntl");
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) ThrowErrno(env, errno, "fcntl");
  return result;
}

Napi::Value LocalCid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UniqueFd fd(open("/dev/vsock", O_RDONLY | O_CLOEXEC));
  if (!fd) {
    Napi::Error error = ErrnoError(env, errno, "open", "/dev/vsock");
    error.Value().Set("path", "/dev/vsock");
    throw error;
  }
  unsigned int cid = 0;
  if (ioctl(fd.get(), IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0) ThrowErrno(env, errno, "ioctl", "/dev/vsock");
  return Napi::Number::New(env, cid);
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("AF_VSOCK", Napi::Number::New(env, AF_VSOCK));
  c.Set("VMADDR_CID_ANY", Napi::Number::New(env, VMADDR_CID_ANY));
  c.Set("VMADDR_CID_HYPERVISOR", Napi::Number::New(env, VMADDR_CID_HYPERVISOR));
  c.Set("VMADDR_CID_LOCAL", Napi::Number::New(env, VMADDR_CID_LOCAL));
  c.Set("VMADDR_CID_HOST", Napi::Number::New(env, VMADDR_CID_HOST));
  c.Set("VMADDR_PORT_ANY", Napi::Number::New(env, VMADDR_PORT_ANY));
  c.Set("VMADDR_FLAG_TO_HOST", Napi::Number::New(env, VMADDR_FLAG_TO_HOST));
  c.Set("SOMAXCONN", Napi::Number::New(env, SOMAXCONN));
  return c;
}

}  // namespace

void RegisterVsock(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Function::Callback callback) {
    exports.Set(name, Napi::Function::New(env, callback, name));
  };
  fn("vsockSocket", Socket);
  fn("vsockProbe", Probe);
  fn("vsockBind", Bind);
  fn("vsockListen", Listen);
  fn("vsockConnect", Connect);
  fn("vsockConnectResult", ConnectResult);
  fn("vsockSockName", SockName);
  fn("vsockPeerName", PeerName);
  fn("vsockSetConnectTimeout", SetConnectTimeout);
  fn("vsockSetBufferSize", SetBufferSize);
  fn("vsockGetBufferSize", GetBufferSize);
  fn("vsockAdoptFd", AdoptFd);
  fn("vsockLocalCid", LocalCid);
  exports.Set("VsockListener", VsockListener::Define(env));
  exports.Set("vsockConstants", Constants(env));
}

}  // namespace vmlink
