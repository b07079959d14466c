// errno -> JS errors shaped like Node's system errors:
// { message: "connect ECONNREFUSED vsock://1:1024", code: "ECONNREFUSED", errno: -111, syscall: "connect" }
#pragma once
#include <napi.h>

#include <string>

namespace vmlink {

// The errno's symbolic name ("ECONNREFUSED"); "E<number>" when unknown.
std::string ErrnoName(int err);

// A JS Error for a failed syscall. `address` (optional) is appended to the message and
// set as the `address` property; callers may add `cid`/`port`/`path` themselves.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& address = "");

// Throws ErrnoError as a C++ exception (the addon is built with exceptions on).
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& address = "");

// A JS Error with our own code, e.g. ("ERR_VMLINK_CLOSED", "socket is closed").
Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message);

}  // namespace vmlink
