// SPDX-License-Identifier: Apache-2.0
// Tests of tune/summary.h: the summaries and the recommendation on made-up
// runs, and the settings' names.

#include "zcplan/tune/summary.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"

namespace zcplan {
namespace {

// A point whose runs moved `bytes` each in the given CPU seconds (1 s wall).
SweepPoint Point(uint64_t threshold, std::vector<double> cpu_seconds,
                 double seconds = 1) {
  SweepPoint p;
  p.setting.plan.zc_threshold = threshold;
  for (double cpu : cpu_seconds) {
    SweepRun r;
    r.seconds = seconds;
    r.cpu_seconds = cpu;
    r.messages = 1000;
    r.bytes = 1000000000;  // 1 GB
    r.stats.ops[static_cast<int>(OpKind::kWritev)] = 3000;
    r.stats.bytes_copied = 750000000;
    r.stats.bytes_zero_copy = 250000000;
    r.stats.notifications = 10;
    r.stats.copied_notifications = 5;
    p.runs.push_back(r);
  }
  return p;
}

TEST(SweepSummaryTest, MediansRangesAndShares) {
  const PointSummary s = Summarize(Point(16384, {0.5, 0.9, 0.6}));
  EXPECT_DOUBLE_EQ(s.cpu_s_per_gb, 0.6);
  EXPECT_DOUBLE_EQ(s.cpu_s_per_gb_min, 0.5);
  EXPECT_DOUBLE_EQ(s.cpu_s_per_gb_max, 0.9);
  EXPECT_DOUBLE_EQ(s.mb_per_s, 1000);
  EXPECT_DOUBLE_EQ(s.cpu_ns_per_message, 0.6e6);
  EXPECT_DOUBLE_EQ(s.ops_per_message, 3);
  EXPECT_DOUBLE_EQ(s.zero_copy_share, 0.25);
  EXPECT_DOUBLE_EQ(s.copied_share, 0.5);
  EXPECT_EQ(s.notifications, 30u);
}

TEST(SweepSummaryTest, NoNotificationsMeansNoCopiedShare) {
  SweepPoint p = Point(PlanOptions::kNever, {1});
  p.runs[0].stats.notifications = 0;
  p.runs[0].stats.copied_notifications = 0;
  EXPECT_LT(Summarize(p).copied_share, 0);
}

TEST(SweepRecommendTest, LowestCpuPerGbWins) {
  const std::vector<SweepPoint> points = {Point(0, {2.0, 2.1, 2.2}),
                                          Point(16384, {0.50, 0.51, 0.52}),
                                          Point(65536, {0.80, 0.81, 0.82})};
  std::vector<PointSummary> sums;
  for (const SweepPoint& p : points) sums.push_back(Summarize(p));
  const Recommendation r = Recommend(points, sums);
  EXPECT_EQ(r.index, 1u);
  EXPECT_EQ(r.within_noise, std::vector<size_t>{1});
  EXPECT_TRUE(absl::StrContains(r.reason, "0.510 s/GB")) << r.reason;
  EXPECT_TRUE(absl::StrContains(r.reason, "threshold 16K")) << r.reason;
}

TEST(SweepRecommendTest, TiesWithinNoiseGoToTheHigherThroughput) {
  // 16K is cheapest but noisy (0.4..0.7); 64K is within that range and
  // twice as fast.
  std::vector<SweepPoint> points = {Point(16384, {0.4, 0.5, 0.7}, 2.0),
                                    Point(65536, {0.55, 0.6, 0.65}, 1.0),
                                    Point(0, {3, 3, 3})};
  std::vector<PointSummary> sums;
  for (const SweepPoint& p : points) sums.push_back(Summarize(p));
  const Recommendation r = Recommend(points, sums);
  EXPECT_EQ(r.index, 1u);
  EXPECT_EQ(r.within_noise, (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(absl::StrContains(r.reason, "highest throughput")) << r.reason;
}

TEST(SweepDescribeTest, NamesEveryKnobThatIsSet) {
  SweepSetting s;
  s.plan.zc_threshold = PlanOptions::kNever;
  s.adaptive = true;
  s.plan.copy_op = CopyOp::kSendmsg;
  s.plan.zc_gap_bytes = 64;
  EXPECT_EQ(DescribeSetting(s), "threshold never, sendmsg, gap 64, adaptive");
  EXPECT_EQ(DescribeSetting(Point(16384, {}).setting), "threshold 16K, writev");
}

TEST(GridSettingsTest, ThresholdsInnermostAdaptiveOutermost) {
  SweepGrid grid;
  grid.thresholds = {0, PlanOptions::kNever};
  grid.copy_ops = {CopyOp::kWritev, CopyOp::kSendmsg};
  grid.gaps = {0, 64};
  grid.adaptive = {false, true};
  const std::vector<SweepSetting> settings = GridSettings(grid);
  ASSERT_EQ(settings.size(), 16u);
  std::vector<std::string> names;
  for (const SweepSetting& s : settings) names.push_back(DescribeSetting(s));
  EXPECT_EQ(names[0], "threshold 0, writev");
  EXPECT_EQ(names[1], "threshold never, writev");
  EXPECT_EQ(names[2], "threshold 0, sendmsg");
  EXPECT_EQ(names[4], "threshold 0, writev, gap 64");
  EXPECT_EQ(names[8], "threshold 0, writev, adaptive");
  EXPECT_EQ(names[15], "threshold never, sendmsg, gap 64, adaptive");
  // Other options keep the planner's defaults.
  EXPECT_EQ(settings[15].plan.max_iovs_per_op, PlanOptions().max_iovs_per_op);
  grid.gaps.clear();
  EXPECT_TRUE(GridSettings(grid).empty());
}

}  // namespace
}  // namespace zcplan
