// Placeholder until this area is implemented: registers nothing.
#include "common/module.h"

namespace vmlink {
void RegisterAioCommon(Napi::Env env, Napi::Object exports) {}
}  // namespace vmlink
