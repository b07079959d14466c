// The one vmlink addon: each area registers its exports here.
#include <napi.h>

#include "common/module.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vmlink::RegisterCommon(env, exports);
  vmlink::RegisterVsock(env, exports);
  vmlink::RegisterFdStream(env, exports);
  vmlink::RegisterAioThreadPool(env, exports);
  vmlink::RegisterAioIoSubmit(env, exports);
  vmlink::RegisterAioCommon(env, exports);
  vmlink::RegisterSocket(env, exports);
  vmlink::RegisterVhostUser(env, exports);
  vmlink::RegisterPty(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(vmlink, Init)
