// sockaddr_vm helpers and vsock-shaped errors ("connect ECONNREFUSED vsock://1:1234",
// with cid and port properties).
#pragma once
#include <napi.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

#include <cstdint>
#include <string>

namespace vmlink {

sockaddr_vm MakeVsockAddress(uint32_t cid, uint32_t port, uint8_t flags = 0);
std::string VsockUri(uint32_t cid, uint32_t port);
Napi::Error VsockErrnoError(Napi::Env env, int err, const char* syscall, uint32_t cid, uint32_t port);
Napi::Object AddressObject(Napi::Env env, const sockaddr_vm& address);

// A uint32 argument (CID, port, fd...). The JS layer validates first; this is the guard
// that keeps a bad call from reaching a syscall.
uint32_t Uint32Arg(const Napi::CallbackInfo& info, size_t index, const char* name);
int FdArg(const Napi::CallbackInfo& info, size_t index);

}  // namespace vmlink
