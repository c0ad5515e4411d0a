// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/util/alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<uint64_t> g_allocs{0};
}  // namespace

namespace zcplan::testing {
uint64_t AllocationCount() { return g_allocs.load(std::memory_order_relaxed); }
}  // namespace zcplan::testing

// noinline keeps GCC from pairing an inlined free() with operator new at call
// sites (-Wmismatched-new-delete). The array forms forward to these.
__attribute__((noinline)) void* operator new(size_t size) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
