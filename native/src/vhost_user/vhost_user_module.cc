// src/vhost_user: the JS face of VsockDevice, plus Unix listening sockets for it and
// test-only helpers a driver harness needs (memfd + mmap, eventfds, sendmsg with fds).
//
//   new VhostUserVsockDevice({ guestCid, udsPath, udsListenFd, udsSeqpacketListenFd?, vhostListenFd | vhostConnectedFd,
//                              bufAlloc, maxConnections, logLinesPerSecond }, onEvent(name, detail))
//     .stats() / .close() / .serviceNow()
//   unixListen(path, backlog, 'stream' | 'seqpacket') -> fd
//   vhostUserTestHelpers: { memfd, map, sendMessage, recv, eventfd, eventfdRead, eventfdWrite, connectUnix }
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "common/errors.h"
#include "common/module.h"
#include "common/unique_fd.h"
#include "vhost_user/vsock_device.h"

namespace vmlink {
namespace {

uint32_t OptionalU32(Napi::Object o, const char* name, uint32_t fallback, uint32_t min, uint32_t max) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::RangeError::New(o.Env(), std::string(name) + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return static_cast<uint32_t>(d);
}

int OptionalFd(Napi::Object o, const char* name) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return -1;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(name) + " must be an fd");
  return v.As<Napi::Number>().Int32Value();
}

class VhostUserVsockDevice : public Napi::ObjectWrap<VhostUserVsockDevice> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VhostUserVsockDevice",
                       {
                           InstanceMethod<&VhostUserVsockDevice::Stats>("stats"),
                           InstanceMethod<&VhostUserVsockDevice::Close>("close"),
                           InstanceMethod<&VhostUserVsockDevice::ServiceNow>("serviceNow"),
                       });
  }

  explicit VhostUserVsockDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VhostUserVsockDevice>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "VhostUserVsockDevice: options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    // Own the fds first, so any throw below still closes them.
    UniqueFd uds(OptionalFd(o, "udsListenFd"));
    UniqueFd uds_seq(OptionalFd(o, "udsSeqpacketListenFd"));
    UniqueFd vhost_listen(OptionalFd(o, "vhostListenFd"));
    UniqueFd vhost_connected(OptionalFd(o, "vhostConnectedFd"));
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "VhostUserVsockDevice: onEvent must be a function");
    if (vhost_listen.valid() == vhost_connected.valid()) {
      throw Napi::TypeError::New(env, "VhostUserVsockDevice: give exactly one of vhostListenFd and vhostConnectedFd");
    }
    VsockDeviceConfig config;
    Napi::Value cid = o.Get("guestCid");
    if (!cid.IsNumber()) throw Napi::TypeError::New(env, "guestCid must be a number");
    double c = cid.As<Napi::Number>().DoubleValue();
    if (!(c >= 3 && c < 4294967295.0) || c != static_cast<double>(static_cast<uint64_t>(c))) {
      throw Napi::RangeError::New(env, "guestCid must be an integer in [3, 4294967294]");
    }
    config.guest_cid = static_cast<uint64_t>(c);
    Napi::Value uds_path = o.Get("udsPath");
    if (!uds_path.IsString()) throw Napi::TypeError::New(env, "udsPath must be a string");
    config.uds_path = uds_path.As<Napi::String>().Utf8Value();
    config.buf_alloc = OptionalU32(o, "bufAlloc", config.buf_alloc, 4096, 64u * 1024 * 1024);
    config.max_connections = OptionalU32(o, "maxConnections", config.max_connections, 1, 1u << 20);
    config.log_lines_per_second = OptionalU32(o, "logLinesPerSecond", config.log_lines_per_second, 0, 1u << 20);
    config.credit_update_bytes = OptionalU32(o, "creditUpdateBytes", std::min<uint32_t>(config.buf_alloc / 2, 128 * 1024), 1, config.buf_alloc);
    config.tx_notify_batch = OptionalU32(o, "txNotifyBatch", config.tx_notify_batch, 1, 32768);
    config.rx_buffers_per_read = OptionalU32(o, "rxBuffersPerRead", config.rx_buffers_per_read, 1, 256);
    config.tx_notify_delay_us = OptionalU32(o, "txNotifyDelayUs", config.tx_notify_delay_us, 0, 10000000);
    config.tx_kick_defer_us = OptionalU32(o, "txKickDeferUs", config.tx_kick_defer_us, 0, 10000000);
    config.tx_kick_batch = OptionalU32(o, "txKickBatch", config.tx_kick_batch, 1, 32768);
    config.tx_stream_bytes = OptionalU32(o, "txStreamBytes", config.tx_stream_bytes, 1, 0xffffffffu);
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, "vmlink:VhostUserVsockDevice", info.This().As<Napi::Object>());
    config.seqpacket = uds_seq.valid();
    config.uds_seqpacket_listen_fd = uds_seq.release();
    config.uds_listen_fd = uds.release();
    config.vhost_listen_fd = vhost_listen.release();
    config.vhost_connected_fd = vhost_connected.release();
    device_ = std::make_unique<VsockDevice>(env, config, [this](const std::string& name, const std::string& detail) {
      Napi::Env e = Env();
      Napi::HandleScope scope(e);
      try {
        on_event_.MakeCallback(Value(), {Napi::String::New(e, name), Napi::String::New(e, detail)}, *async_);
      } catch (const Napi::Error& error) {
        napi_fatal_exception(e, error.Value());
      }
    });
    // Keep the JS object (and so the device) alive while it serves; close() lets go.
    Ref();
    pinned_ = true;
  }

  ~VhostUserVsockDevice() override { device_.reset(); }

 private:
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    if (!device_) {
      out.Set("closed", true);
      return out;
    }
    const VsockCounters& c = device_->counters();
#define VMLINK_EXPORT_COUNTER(name) out.Set(#name, Napi::Number::New(env, static_cast<double>(c.name)));
    VMLINK_VSOCK_COUNTERS(VMLINK_EXPORT_COUNTER)
#undef VMLINK_EXPORT_COUNTER
    out.Set("active_connections", Napi::Number::New(env, static_cast<double>(device_->active_connections())));
    out.Set("pending_handshakes", Napi::Number::New(env, static_cast<double>(device_->pending_handshakes())));
    out.Set("buffered_bytes", Napi::Number::New(env, static_cast<double>(device_->buffered_bytes())));
    out.Set("mapped_bytes", Napi::Number::New(env, static_cast<double>(device_->mapped_bytes())));
    out.Set("memory_regions", Napi::Number::New(env, static_cast<double>(device_->memory_regions())));
    out.Set("driver_ready", Napi::Boolean::New(env, device_->driver_ready()));
    out.Set("qemu_attached", Napi::Boolean::New(env, device_->qemu_attached()));
    out.Set("closed", false);
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    device_.reset();
    if (pinned_) {
      pinned_ = false;
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value ServiceNow(const Napi::CallbackInfo& info) {
    if (device_) device_->ServiceNow();
    return info.Env().Undefined();
  }

  std::unique_ptr<VsockDevice> device_;
  Napi::FunctionReference on_event_;
  std::unique_ptr<Napi::AsyncContext> async_;
  bool pinned_ = false;
};

int IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

int SocketTypeArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined()) return SOCK_STREAM;
  std::string kind = info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
  if (kind == "stream") return SOCK_STREAM;
  if (kind == "seqpacket") return SOCK_SEQPACKET;
  throw Napi::TypeError::New(info.Env(), "type must be 'stream' or 'seqpacket', got '" + kind + "'");
}

// unixListen(path, backlog, type): a non-blocking, close-on-exec AF_UNIX listener.
Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int backlog = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 128;
  int type = SocketTypeArg(info, 2);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) ThrowErrno(env, ENAMETOOLONG, "bind", path);
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) ThrowErrno(env, errno, "socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) ThrowErrno(env, errno, "bind", path);
  if (::listen(fd.get(), backlog) < 0) ThrowErrno(env, errno, "listen", path);
  return Napi::Number::New(env, fd.release());
}

// ---- test-only helpers (a driver harness plays QEMU and the guest driver in-process)

Napi::Value TestMemfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double size = info[0].As<Napi::Number>().DoubleValue();
  UniqueFd fd(::memfd_create("vmlink-test-guest", MFD_CLOEXEC));
  if (!fd.valid()) ThrowErrno(env, errno, "memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) ThrowErrno(env, errno, "ftruncate");
  return Napi::Number::New(env, fd.release());
}

// map(fd, size) -> Buffer over a MAP_SHARED mapping; unmapped when the Buffer is collected.
Napi::Value TestMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  size_t size = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(p), size, [size](Napi::Env, uint8_t* data) { ::munmap(data, size); });
}

// sendMessage(fd, bytes, fds[]) -> bytes sent (one sendmsg with SCM_RIGHTS).
Napi::Value TestSendMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<int> fds;
  if (info[2].IsArray()) {
    Napi::Array a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  iovec iov{data.Data(), data.Length()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  if (n < 0) ThrowErrno(env, errno, "sendmsg");
  return Napi::Number::New(env, static_cast<double>(n));
}

// recv(fd, max) -> Buffer, or null when nothing is there (non-blocking).
Napi::Value TestRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  size_t max = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  std::vector<uint8_t> buffer(max);
  ssize_t n = ::recv(fd, buffer.data(), max, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, errno, "recv");
  }
  return Napi::Buffer<uint8_t>::Copy(env, buffer.data(), static_cast<size_t>(n));
}

// connectUnix(path, type) -> a connected non-blocking fd (AF_UNIX connects complete at once).
Napi::Value TestConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) ThrowErrno(env, ENAMETOOLONG, "connect", path);
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SocketTypeArg(info, 1) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) ThrowErrno(env, errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) ThrowErrno(env, errno, "connect", path);
  return Napi::Number::New(env, fd.release());
}

// accept(fd) -> a new non-blocking fd, or null when nobody is waiting.
Napi::Value TestAccept(const Napi::CallbackInfo& info) {
  int fd = ::accept4(IntArg(info, 0, "fd"), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return info.Env().Null();
    ThrowErrno(info.Env(), errno, "accept");
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value TestEventfd(const Napi::CallbackInfo& info) {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), errno, "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value TestEventfdRead(const Napi::CallbackInfo& info) {
  uint64_t value = 0;
  ssize_t n = ::read(IntArg(info, 0, "fd"), &value, sizeof value);
  if (n < 0 && errno != EAGAIN) ThrowErrno(info.Env(), errno, "read");
  return Napi::Number::New(info.Env(), n == sizeof value ? static_cast<double>(value) : 0);
}

Napi::Value TestEventfdWrite(const Napi::CallbackInfo& info) {
  uint64_t one = 1;
  if (::write(IntArg(info, 0, "fd"), &one, sizeof one) < 0) ThrowErrno(info.Env(), errno, "write");
  return info.Env().Undefined();
}

}  // namespace

void RegisterVhostUser(Napi::Env env, Napi::Object exports) {
  exports.Set("VhostUserVsockDevice", VhostUserVsockDevice::Define(env));
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  Napi::Object test = Napi::Object::New(env);
  test.Set("memfd", Napi::Function::New(env, TestMemfd, "memfd"));
  test.Set("map", Napi::Function::New(env, TestMap, "map"));
  test.Set("sendMessage", Napi::Function::New(env, TestSendMessage, "sendMessage"));
  test.Set("recv", Napi::Function::New(env, TestRecv, "recv"));
  test.Set("eventfd", Napi::Function::New(env, TestEventfd, "eventfd"));
  test.Set("connectUnix", Napi::Function::New(env, TestConnectUnix, "connectUnix"));
  test.Set("accept", Napi::Function::New(env, TestAccept, "accept"));
  test.Set("eventfdRead", Napi::Function::New(env, TestEventfdRead, "eventfdRead"));
  test.Set("eventfdWrite", Napi::Function::New(env, TestEventfdWrite, "eventfdWrite"));
  exports.Set("vhostUserTestHelpers", test);
}

}  // namespace vmlink
