#include "planner/cost.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/planner.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t K = 1024;

std::vector<struct iovec> At(std::vector<std::pair<uintptr_t, uint64_t>> v) {
  std::vector<struct iovec> q;
  for (auto [base, len] : v) q.push_back({reinterpret_cast<void*>(base), len});
  return q;
}

TEST(CostTest, CountsOpsBytesIovecsAndPinnedPages) {
  // Seed example; the 16K buffer starts mid-page, so it spans 5 pages.
  const auto q = At({{0x10000, 4 * K},
                     {0x20000, 4 * K},
                     {0x30800, 16 * K},
                     {0x40000, 32 * K},
                     {0x50000, 2 * K}});
  PlanOptions o;
  o.zc_threshold = 16 * K;
  const absl::StatusOr<Plan> plan = PlanChain(q, 0, o);
  ASSERT_TRUE(plan.ok());
  CostWeights w;
  const PlanCost c = EstimateCost(q, *plan, w);
  EXPECT_EQ(c.ops_by_kind[static_cast<int>(OpKind::kWritev)], 1u);
  EXPECT_EQ(c.ops_by_kind[static_cast<int>(OpKind::kSendmsgZc)], 1u);
  EXPECT_EQ(c.ops_by_kind[static_cast<int>(OpKind::kSend)], 1u);
  EXPECT_EQ(c.ops(), 3u);
  EXPECT_EQ(c.zero_copy_ops(), 1u);
  EXPECT_EQ(c.bytes_copied, 10 * K);
  EXPECT_EQ(c.bytes_zero_copy, 48 * K);
  EXPECT_EQ(c.iovs_copied, 3u);
  EXPECT_EQ(c.iovs_zero_copy, 2u);
  EXPECT_EQ(c.pages_pinned, 5u + 8u);
  const double want = 3 * w.per_op + 1 * w.per_zc_op +
                      10 * K * w.per_copy_byte + 48 * K * w.per_zc_byte +
                      3 * w.per_copy_iov + 2 * w.per_zc_iov +
                      13 * w.per_pinned_page;
  EXPECT_DOUBLE_EQ(c.cost, want);
}

TEST(CostTest, CountsOnlyThePiecesAnOpSends) {
  // Resumed 1 byte before a page end, and split by the byte limit: pieces,
  // not whole iovecs, are counted.
  const auto q = At({{0x10000, 64 * K}});
  PlanOptions o;
  o.zc_threshold = 0;
  o.max_bytes_per_op = 2;
  const absl::StatusOr<Plan> plan = PlanChain(q, 4095, o);
  ASSERT_TRUE(plan.ok());
  const PlanCost first = EstimateCost(q, *plan, CostWeights());
  EXPECT_EQ(first.ops(), 64u);
  EXPECT_EQ(first.bytes_zero_copy, 128u);
  EXPECT_EQ(first.iovs_zero_copy, 64u);
  // The first op's 2 bytes straddle a page boundary; the rest do not.
  EXPECT_EQ(first.pages_pinned, 65u);
}

TEST(CostTest, CountsPagesWithoutOverflowNearTheTopOfTheAddressSpace) {
  // A buffer ending at the very last byte: start + length wraps to 0.
  const uintptr_t top = UINTPTR_MAX - 16 * K + 1;
  const auto q = At({{top - 100, 16 * K + 100}});
  PlanOptions o;
  o.zc_threshold = 0;
  const absl::StatusOr<Plan> plan = PlanChain(q, 0, o);
  ASSERT_TRUE(plan.ok());
  const PlanCost c = EstimateCost(q, *plan, CostWeights());
  EXPECT_EQ(c.pages_pinned, 5u);  // 100 bytes of one page, then 4 whole.
  EXPECT_EQ(c.iovs_zero_copy, 1u);
}

TEST(CostTest, SkipsEmptyIovecsInsideAnOp) {
  const auto q = At({{0x10000, 100}, {0x20000, 0}, {0x30000, 200}});
  const absl::StatusOr<Plan> plan = PlanChain(q, 0, PlanOptions());
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->ops().size(), 1u);
  ASSERT_EQ(plan->ops()[0].iov_count, 3u);
  const PlanCost c = EstimateCost(q, *plan, CostWeights());
  EXPECT_EQ(c.iovs_copied, 2u);
  EXPECT_EQ(c.bytes_copied, 300u);
}

TEST(CostTest, SumsWithPlusEquals) {
  PlanCost a, b;
  a.ops_by_kind[0] = 1;
  a.bytes_copied = 10;
  a.cost = 1.5;
  b.ops_by_kind[0] = 2;
  b.pages_pinned = 3;
  b.cost = 2;
  a += b;
  EXPECT_EQ(a.ops_by_kind[0], 3u);
  EXPECT_EQ(a.bytes_copied, 10u);
  EXPECT_EQ(a.pages_pinned, 3u);
  EXPECT_DOUBLE_EQ(a.cost, 3.5);
}

TEST(CostTest, RejectsNegativeOrNonFiniteWeightsAndBadPageSize) {
  CostWeights w;
  EXPECT_TRUE(ValidateCostWeights(w).ok());
  w.per_zc_iov = -1;
  EXPECT_THAT(ValidateCostWeights(w).message(),
              HasSubstr("CostWeights.per_zc_iov is -1"));
  w = CostWeights();
  w.per_op = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateCostWeights(w).message(), HasSubstr("per_op is inf"));
  w = CostWeights();
  w.page_size = 3000;
  EXPECT_THAT(ValidateCostWeights(w).message(),
              HasSubstr("page_size is 3000; it must be a power of two"));
}

}  // namespace
}  // namespace zcplan
