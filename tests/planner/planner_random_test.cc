// SPDX-License-Identifier: Apache-2.0
// Randomized invariants: many random queues and options, fixed seed.

#include <cstdint>
#include <random>

#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/planner/plan_invariants.h"
#include "zcplan/tests/planner/random_queue.h"

namespace zcplan::testing {
namespace {

// Plans each queue chain after chain (up to kMaxChains), checking each chain.
TEST(PlannerRandomTest, EveryByteOnceInOrderWithinLimits) {
  constexpr int kQueues = 100000;
  constexpr int kMaxChains = 50;  // Tiny byte limits could need millions.
  PrngSource src(20261125);
  Plan plan;
  uint64_t chains = 0, ops = 0, incomplete = 0;
  for (int q = 0; q < kQueues; ++q) {
    const Case c = DrawCase(src);
    absl::Span<const struct iovec> rest = c.queue;
    uint64_t offset = c.offset;
    for (int chain = 0; chain < kMaxChains; ++chain) {
      ASSERT_TRUE(PlanChain(rest, offset, c.options, &plan).ok());
      const absl::Status s = CheckPlan(rest, offset, c.options, plan);
      ASSERT_TRUE(s.ok()) << "case " << q << ", chain " << chain << ": " << s
                          << "\n"
                          << Describe(c, rest, offset, plan);
      ++chains;
      ops += plan.ops().size();
      if (plan.complete()) break;
      ++incomplete;
      ASSERT_FALSE(plan.ops().empty());
      rest = rest.subspan(plan.end_iov());
      offset = plan.end_offset();
    }
  }
  // The generator must reach the interesting paths, or this test says little.
  EXPECT_GT(incomplete, 1000u);
  EXPECT_GT(ops, 10u * kQueues);
  RecordProperty("chains", std::to_string(chains));
}

}  // namespace
}  // namespace zcplan::testing
