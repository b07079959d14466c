// src/aio/threadpool: exports the ThreadPool class (see thread_pool.h).
#include "aio/threadpool/thread_pool.h"
#include "common/module.h"

namespace vmlink {
void RegisterAioThreadPool(Napi::Env env, Napi::Object exports) {
  exports.Set("ThreadPool", ThreadPool::Define(env));
}
}  // namespace vmlink
