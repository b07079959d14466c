// src/socket: options of any connected socket that Node itself does not expose.
//
//   peerCredentials(fd) -> { pid, uid, gid }   SO_PEERCRED of an AF_UNIX stream socket
//
// Used by access control (who may drive the agent over a Unix socket): the kernel fills
// these in at connect()/socketpair() time, so a peer cannot forge them.
#include <errno.h>
#include <sys/socket.h>

#include "common/errors.h"
#include "common/module.h"

namespace vmlink {
namespace {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) ThrowErrno(env, errno, "getsockopt");
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, credentials.pid));
  result.Set("uid", Napi::Number::New(env, credentials.uid));
  result.Set("gid", Napi::Number::New(env, credentials.gid));
  return result;
}

}  // namespace

void RegisterSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
}

}  // namespace vmlink
