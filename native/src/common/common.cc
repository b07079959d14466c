// Exports shared by every area: errno naming (for JS-side errors) and a build marker.
#include <napi.h>

#include "common/errors.h"
#include "common/module.h"

namespace vmlink {

void RegisterCommon(Napi::Env env, Napi::Object exports) {
  exports.Set("errnoName", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    int err = info[0].As<Napi::Number>().Int32Value();
    return Napi::String::New(info.Env(), ErrnoName(err < 0 ? -err : err));
  }));
  exports.Set("addonVersion", Napi::Number::New(env, 1));
}

}  // namespace vmlink
