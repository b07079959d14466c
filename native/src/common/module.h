// Registration entry points, one per area of the addon (see src/addon.cc).
#pragma once
#include <napi.h>

namespace vmlink {
void RegisterCommon(Napi::Env env, Napi::Object exports);          // src/common
void RegisterVsock(Napi::Env env, Napi::Object exports);           // src/vsock
void RegisterFdStream(Napi::Env env, Napi::Object exports);        // src/fdstream
void RegisterAioThreadPool(Napi::Env env, Napi::Object exports);   // src/aio/threadpool
void RegisterAioIoSubmit(Napi::Env env, Napi::Object exports);     // src/aio/iosubmit
void RegisterAioCommon(Napi::Env env, Napi::Object exports);       // src/aio (allocAligned, statx)
void RegisterSocket(Napi::Env env, Napi::Object exports);          // src/socket (SO_PEERCRED)
void RegisterVhostUser(Napi::Env env, Napi::Object exports);       // src/vhost_user (virtio-vsock device)
void RegisterPty(Napi::Env env, Napi::Object exports);             // src/pty (pseudo-terminals, pidfd reaping)
}  // namespace vmlink
