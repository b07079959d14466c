// Busy-waiting for a condition another thread makes true within microseconds: cheaper than
// sleeping and being woken (a futex or an eventfd, then an IPI to a halted vCPU) when the
// wait is shorter than the wake-up. Callers bound every spin.
#pragma once
#include <chrono>
#include <cstdint>

namespace vmlink {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spins until done() is true or `us` microseconds pass, whichever comes first; between
// looks, also stops when give_up() says so. Returns done()'s last answer.
template <typename Done, typename GiveUp>
bool SpinUntil(Done done, GiveUp give_up, uint32_t us) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (;;) {
    if (done()) return true;
    for (int i = 0; i < 32; i++) CpuRelax();
    if (std::chrono::steady_clock::now() >= deadline || give_up()) return done();
  }
}

template <typename Done>
bool SpinUntil(Done done, uint32_t us) {
  return SpinUntil(done, [] { return false; }, us);
}

}  // namespace vmlink
