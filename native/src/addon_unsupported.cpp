// Off Linux the addon exports nothing; the JS loader reports ERR_VMLINK_UNSUPPORTED_PLATFORM.
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(vmlink, Init)
