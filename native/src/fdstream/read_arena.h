// ReadArena: the Buffer every fd stream of one JS environment reads into. Reads run one
// at a time on the loop thread, and the bytes leave the arena (handed over or copied out)
// before any JS runs, so one scratch Buffer serves every stream: idle streams hold no read
// memory, however many there are.
//
// What JS gets for `length` bytes read into a buffer of capacity C (so a chunk never pins
// more than twice its own size):
//   length == C       the buffer itself (no copy); the arena makes a new one next time
//   length >= C / 2   a view of its first `length` bytes (no copy); likewise
//   otherwise         a copy of exactly `length` bytes; the arena keeps its buffer
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vmlink {

class ReadArena {
 public:
  // The arena of `env`, made on first use; nullptr when it cannot be made.
  static ReadArena* For(napi_env env);

  // A buffer of at least `capacity` bytes to read into, or nullptr when no Buffer can be
  // made (Node tearing the environment down).
  uint8_t* Reserve(size_t capacity);
  // JS's chunk holding the first `length` (1..capacity) bytes of the reserved buffer, or
  // nullptr when it cannot be made. The reservation ends.
  napi_value Take(size_t length);

  ReadArena(const ReadArena&) = delete;
  ReadArena& operator=(const ReadArena&) = delete;

 private:
  explicit ReadArena(napi_env env) : env_(env) {}
  ~ReadArena();
  void Forget();
  static void Cleanup(void* arena);

  napi_env env_;
  napi_ref buffer_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace vmlink
