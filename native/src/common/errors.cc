#include "common/errors.h"

#include <string.h>

namespace vmlink {

std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* name = strerrorname_np(err)) return name;
#endif
  return "E" + std::to_string(err);
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& address) {
  std::string code = ErrnoName(err);
  std::string message = std::string(syscall) + " " + code;
  if (!address.empty()) message += " " + address;
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("code", code);
  obj.Set("errno", -err);
  obj.Set("syscall", syscall);
  if (!address.empty()) obj.Set("address", address);
  return error;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& address) {
  throw ErrnoError(env, err, syscall, address);
}

Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("code", code);
  return error;
}

}  // namespace vmlink
