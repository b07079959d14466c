#include "fdstream/read_arena.h"

namespace vmlink {
namespace {

// A scratch buffer larger than this (a stream taking huge messages) is not kept for the
// next read: it would stay allocated for the life of the process.
constexpr size_t kKeepMax = 1024 * 1024;

// One environment per thread in Node (the main thread, each worker).
thread_local ReadArena* tArena = nullptr;

}  // namespace

ReadArena* ReadArena::For(napi_env env) {
  if (tArena != nullptr && tArena->env_ == env) return tArena;
  auto* arena = new ReadArena(env);
  if (napi_add_env_cleanup_hook(env, Cleanup, arena) != napi_ok) {
    delete arena;
    return nullptr;
  }
  tArena = arena;
  return arena;
}

void ReadArena::Cleanup(void* arena) { delete static_cast<ReadArena*>(arena); }

ReadArena::~ReadArena() {
  Forget();
  if (tArena == this) tArena = nullptr;
}

// Not Napi::Buffer::New: that throws, and a throw must not escape the loop's callback.
uint8_t* ReadArena::Reserve(size_t capacity) {
  if (data_ != nullptr && capacity_ >= capacity) return data_;
  Forget();
  napi_value buffer;
  void* data;
  // Uninitialised memory (Node skips the zero fill for new Buffers): read() overwrites it.
  if (napi_create_buffer(env_, capacity, &data, &buffer) != napi_ok) return nullptr;
  if (napi_create_reference(env_, buffer, 1, &buffer_) != napi_ok) {
    buffer_ = nullptr;
    return nullptr;
  }
  data_ = static_cast<uint8_t*>(data);
  capacity_ = capacity;
  return data_;
}

napi_value ReadArena::Take(size_t length) {
  napi_value buffer = nullptr;
  if (buffer_ == nullptr || napi_get_reference_value(env_, buffer_, &buffer) != napi_ok || buffer == nullptr) {
    return nullptr;
  }
  napi_value chunk = nullptr;
  if (length == capacity_) {
    chunk = buffer;
    Forget();
    return chunk;
  }
  if (length * 2 >= capacity_) {
    // buffer.subarray(0, length): a Buffer over the same memory.
    napi_value subarray, args[2];
    if (napi_get_named_property(env_, buffer, "subarray", &subarray) == napi_ok &&
        napi_create_uint32(env_, 0, &args[0]) == napi_ok &&
        napi_create_double(env_, static_cast<double>(length), &args[1]) == napi_ok &&
        napi_call_function(env_, buffer, subarray, 2, args, &chunk) == napi_ok) {
      Forget();
      return chunk;
    }
    // Cannot happen with Node's Buffer; should it, a copy loses nothing.
    bool pending = false;
    napi_value ignored;
    if (napi_is_exception_pending(env_, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env_, &ignored);
  }
  {
    void* copy;
    if (napi_create_buffer_copy(env_, length, data_, &copy, &chunk) != napi_ok) return nullptr;
    if (capacity_ > kKeepMax) Forget();
  }
  return chunk;
}

// Drops the arena's hold on its buffer (JS may still hold it). Ignores the status of
// napi_delete_reference: this also runs during environment teardown.
void ReadArena::Forget() {
  if (buffer_ != nullptr) napi_delete_reference(env_, buffer_);
  buffer_ = nullptr;
  data_ = nullptr;
  capacity_ = 0;
}

}  // namespace vmlink
