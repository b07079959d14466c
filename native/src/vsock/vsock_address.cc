#include "vsock/vsock_address.h"

#include <cmath>
#include <cstring>

#include "common/errors.h"

namespace vmlink {

sockaddr_vm MakeVsockAddress(uint32_t cid, uint32_t port, uint8_t flags) {
  sockaddr_vm address;
  std::memset(&address, 0, sizeof address);
  address.svm_family = AF_VSOCK;
  address.svm_cid = cid;
  address.svm_port = port;
  address.svm_flags = flags;
  return address;
}

std::string VsockUri(uint32_t cid, uint32_t port) {
  return "vsock://" + std::to_string(cid) + ":" + std::to_string(port);
}

Napi::Error VsockErrnoError(Napi::Env env, int err, const char* syscall, uint32_t cid, uint32_t port) {
  Napi::Error error = ErrnoError(env, err, syscall, VsockUri(cid, port));
  error.Value().Set("cid", Napi::Number::New(env, cid));
  error.Value().Set("port", Napi::Number::New(env, port));
  return error;
}

Napi::Object AddressObject(Napi::Env env, const sockaddr_vm& address) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("cid", Napi::Number::New(env, address.svm_cid));
  result.Set("port", Napi::Number::New(env, address.svm_port));
  return result;
}

uint32_t Uint32Arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Env env = info.Env();
  if (!info[index].IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 4294967295.0) || std::floor(value) != value) {
    throw Napi::RangeError::New(env, std::string(name) + " must be an integer in 0..4294967295");
  }
  return static_cast<uint32_t>(value);
}

int FdArg(const Napi::CallbackInfo& info, size_t index) {
  uint32_t fd = Uint32Arg(info, index, "fd");
  if (fd > 0x7fffffff) throw Napi::RangeError::New(info.Env(), "fd must be a non-negative int");
  return static_cast<int>(fd);
}

}  // namespace vmlink
