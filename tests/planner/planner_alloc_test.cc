// Planning into a reused Plan allocates nothing once it has grown.

#include <sys/uio.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "gtest/gtest.h"
#include "planner/planner.h"

namespace {
std::atomic<long> g_allocs{0};
}  // namespace

// Replaced to count allocations. noinline keeps GCC from pairing the inlined
// free() with operator new at call sites (-Wmismatched-new-delete).
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

namespace zcplan {
namespace {

TEST(PlannerAllocTest, ReusedPlanDoesNotAllocate) {
  std::vector<struct iovec> q;
  for (int i = 0; i < 4096; ++i) {
    q.push_back({reinterpret_cast<void*>(4096 * (i + 1)),
                 static_cast<size_t>(i % 7 == 0 ? 65536 : 300 + i)});
  }
  PlanOptions options;
  options.max_ops_per_chain = kMaxOpsPerChain;
  Plan plan;
  ASSERT_TRUE(PlanChain(q, 0, options, &plan).ok());  // Grows the plan.
  ASSERT_GT(plan.ops().size(), 1000u);

  const long before = g_allocs.load();
  for (int r = 0; r < 100; ++r) {
    ASSERT_TRUE(PlanChain(q, r, options, &plan).ok());
    // Smaller queues and other options reuse the same capacity.
    ASSERT_TRUE(
        PlanChain(absl::MakeConstSpan(q).subspan(r), 0, PlanOptions(), &plan)
            .ok());
  }
  EXPECT_EQ(g_allocs.load() - before, 0);

  // The counter works: a fresh plan does allocate.
  Plan fresh;
  ASSERT_TRUE(PlanChain(q, 0, options, &fresh).ok());
  EXPECT_GT(g_allocs.load() - before, 0);
}

}  // namespace
}  // namespace zcplan
