#include "planner/simulate.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t K = 1024;

TEST(SimulateTest, SyntheticQueueIsPageAlignedNonNullAndDisjoint) {
  const auto q = MakeSyntheticQueue({0, 100, 4096, 5000});
  ASSERT_EQ(q.size(), 4u);
  uintptr_t prev_end = 0;
  for (const struct iovec& v : q) {
    const auto base = reinterpret_cast<uintptr_t>(v.iov_base);
    EXPECT_NE(base, 0u);
    EXPECT_EQ(base % 4096, 0u);
    EXPECT_GT(base, prev_end);
    prev_end = base + v.iov_len;
  }
  EXPECT_EQ(q[3].iov_len, 5000u);
}

TEST(SimulateTest, ForEachChainCoversTheQueueWithAbsoluteBases) {
  const auto q = MakeSyntheticQueue({4 * K, 4 * K, 16 * K, 32 * K, 2 * K});
  PlanOptions o;
  o.max_ops_per_chain = 1;
  Plan scratch;
  std::vector<std::pair<size_t, uint32_t>> seen;  // (base, first_iov)
  uint64_t bytes = 0;
  ASSERT_TRUE(ForEachChain(q, o, &scratch, [&](const Plan& p, size_t base) {
                seen.push_back({base, p.ops()[0].first_iov});
                bytes += p.bytes();
              }).ok());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].first + seen[0].second, 0u);
  EXPECT_EQ(seen[1].first + seen[1].second, 2u);
  EXPECT_EQ(seen[2].first + seen[2].second, 4u);
  EXPECT_EQ(bytes, 58 * K);
}

TEST(SimulateTest, RanksThresholdsByEstimatedCost) {
  // Mixed batches: a small header, many small pieces, two large pieces.
  std::vector<uint64_t> sizes = {400, 64 * K};
  for (int i = 0; i < 200; ++i) sizes.push_back(600);
  sizes.push_back(64 * K);
  const std::vector<TraceBatch> trace = {{1, sizes}, {2, sizes}};
  const uint64_t thresholds[] = {0, 16 * K, PlanOptions::kNever};
  const auto sim = Simulate(trace, thresholds, PlanOptions(), CostWeights());
  ASSERT_TRUE(sim.ok()) << sim.status();
  ASSERT_EQ(sim->results.size(), 3u);
  const ThresholdResult& all_zc = sim->results[0];
  const ThresholdResult& split = sim->results[1];
  const ThresholdResult& all_copy = sim->results[2];
  EXPECT_EQ(all_zc.batches, 2u);
  EXPECT_EQ(all_zc.cost.ops(), 2u);  // One sendmsg_zc per batch.
  EXPECT_EQ(all_zc.cost.iovs_zero_copy, 2u * 203);
  EXPECT_EQ(split.cost.zero_copy_ops(), 4u);
  EXPECT_EQ(split.cost.bytes_zero_copy, 4u * 64 * K);
  EXPECT_EQ(all_copy.cost.zero_copy_ops(), 0u);
  // Zero-copy for 200 tiny pieces costs more than copying them.
  EXPECT_GT(all_zc.cost.cost, split.cost.cost);
  EXPECT_EQ(sim->best, 1u);
}

TEST(SimulateTest, TieGoesToTheFirstThreshold) {
  const std::vector<TraceBatch> trace = {{1, {100, 200}}};
  const uint64_t thresholds[] = {64 * K, 16 * K};  // Same plan either way.
  const auto sim = Simulate(trace, thresholds, PlanOptions(), CostWeights());
  ASSERT_TRUE(sim.ok());
  EXPECT_EQ(sim->best, 0u);
}

TEST(SimulateTest, RejectsNoThresholdsAndBadOptions) {
  const std::vector<TraceBatch> trace = {{1, {100}}};
  EXPECT_THAT(Simulate(trace, {}, PlanOptions(), CostWeights())
                  .status()
                  .message(),
              HasSubstr("no thresholds"));
  PlanOptions o;
  o.max_ops_per_chain = 0;
  const uint64_t t[] = {1};
  EXPECT_THAT(Simulate(trace, t, o, CostWeights()).status().message(),
              HasSubstr("max_ops_per_chain is 0"));
  CostWeights w;
  w.page_size = 0;
  EXPECT_THAT(Simulate(trace, t, PlanOptions(), w).status().message(),
              HasSubstr("page_size is 0"));
}

}  // namespace
}  // namespace zcplan
