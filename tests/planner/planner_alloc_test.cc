// SPDX-License-Identifier: Apache-2.0
// Planning into a reused Plan allocates nothing once it has grown.

#include <sys/uio.h>

#include <vector>

#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/util/alloc_counter.h"

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

  const uint64_t before = testing::AllocationCount();
  for (int r = 0; r < 100; ++r) {
    ASSERT_TRUE(PlanChain(q, r, options, &plan).ok());
    // Smaller queues and other options reuse the same capacity.
    ASSERT_TRUE(
        PlanChain(absl::MakeConstSpan(q).subspan(r), 0, PlanOptions(), &plan)
            .ok());
  }
  EXPECT_EQ(testing::AllocationCount() - before, 0u);

  // The counter works: a fresh plan does allocate.
  Plan fresh;
  ASSERT_TRUE(PlanChain(q, 0, options, &fresh).ok());
  EXPECT_GT(testing::AllocationCount() - before, 0u);
}

}  // namespace
}  // namespace zcplan
