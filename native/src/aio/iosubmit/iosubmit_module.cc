// Placeholder until this area is implemented: registers nothing.
#include "common/module.h"

namespace vmlink {
void RegisterAioIoSubmit(Napi::Env env, Napi::Object exports) {}
}  // namespace vmlink
