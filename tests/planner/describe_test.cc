// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/describe.h"

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"

namespace zcplan {
namespace {

constexpr uint64_t K = 1024;

std::string Chain(const std::vector<uint64_t>& sizes, const PlanOptions& o,
                  uint64_t offset = 0) {
  const auto q = MakeSyntheticQueue(sizes);
  const absl::StatusOr<Plan> plan = PlanChain(q, offset, o);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? DescribeChain(q, *plan) : "";
}

TEST(DescribeTest, SeedExampleInTheNotationOfPlannerH) {
  EXPECT_EQ(Chain({4 * K, 4 * K, 16 * K, 32 * K, 2 * K}, PlanOptions()),
            "writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]");
}

TEST(DescribeTest, ShortensRunsOfThreeOrMoreEqualPieces) {
  PlanOptions o;
  o.zc_threshold = PlanOptions::kNever;
  EXPECT_EQ(Chain({312, 4 * K, 4 * K, 4 * K, K}, o), "writev[312,3x4K,1K]");
  EXPECT_EQ(Chain({4 * K, 4 * K, K}, o), "writev[4K,4K,1K]");
  EXPECT_EQ(Chain({7, 7, 7, 7, 7, 8, 8, 8}, o), "writev[5x7,3x8]");
  o.copy_op = CopyOp::kSendmsg;
  EXPECT_EQ(Chain({1, 2, 1}, o), "sendmsg[1,2,1]");
}

TEST(DescribeTest, ShowsPiecesNotWholeIovecs) {
  // Resumed mid-iovec and split by the byte limit: each op shows the bytes it
  // takes from each iovec, in ParseSize's notation.
  PlanOptions o;
  o.zc_threshold = 0;
  o.max_bytes_per_op = 20 * K;
  EXPECT_EQ(Chain({48 * K, 1500}, o, 4 * K),
            "send_zc[20K] -> send_zc[20K] -> sendmsg_zc[4K,1500]");
}

TEST(DescribeTest, ShowsEmptyIovecsInsideAnOp) {
  EXPECT_EQ(Chain({100, 0, 0, 0, 200}, PlanOptions()), "writev[100,3x0,200]");
  EXPECT_EQ(Chain({100, 0, 200}, PlanOptions()), "writev[100,0,200]");
}

TEST(DescribeTest, DescribesOneOpAndAnEmptyPlan) {
  const auto q = MakeSyntheticQueue({64 * K, 3 * (uint64_t{1} << 30)});
  const Op op{OpKind::kSendmsgZc, false, 0, 2, 0, 64 * K + (1u << 30)};
  EXPECT_EQ(DescribeOp(q, op), "sendmsg_zc[64K,1G]");
  EXPECT_EQ(DescribeChain(q, Plan()), "");
  EXPECT_EQ(Chain({0, 0}, PlanOptions()), "");
}

}  // namespace
}  // namespace zcplan
