// SPDX-License-Identifier: Apache-2.0
// Checks that zcplan, used from another workspace, splits the example batch
// as planner/planner.h describes:
//   writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K].

#include <sys/uio.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "planner/planner.h"  // the consumer's own
#include "zcplan/planner/planner.h"
#include "zcplan/uring/executor.h"

namespace {

TEST(ConsumerExampleTest, SplitsExampleBatchBySize) {
  static char buffer[32 * 1024];
  std::vector<struct iovec> queue;
  for (size_t size : {4096, 4096, 16384, 32768, 2048}) {
    queue.push_back({buffer, size});
  }
  zcplan::PlanOptions options;
  options.zc_threshold = 16 * 1024;
  zcplan::Plan plan;
  ASSERT_TRUE(zcplan::PlanChain(absl::MakeConstSpan(queue), /*offset=*/0,
                                options, &plan)
                  .ok());

  ASSERT_EQ(plan.ops().size(), 3u);
  EXPECT_EQ(plan.ops()[0].kind, zcplan::OpKind::kWritev);
  EXPECT_EQ(plan.ops()[0].bytes, 8192u);
  EXPECT_EQ(plan.ops()[1].kind, zcplan::OpKind::kSendmsgZc);
  EXPECT_EQ(plan.ops()[1].bytes, 49152u);
  EXPECT_EQ(plan.ops()[2].kind, zcplan::OpKind::kSend);
  EXPECT_EQ(plan.ops()[2].bytes, 2048u);
  EXPECT_TRUE(plan.ops()[0].linked);
  EXPECT_TRUE(plan.ops()[1].linked);
  EXPECT_FALSE(plan.ops()[2].linked);
  EXPECT_TRUE(plan.complete());
}

}  // namespace
