// SPDX-License-Identifier: Apache-2.0
// Tests of tune/calibration.h on measurements made up from known weights:
// which points are samples, the fit and the rankings, the errors, and the
// weights file read back by the planner's parser.

#include "zcplan/tune/calibration.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/planner/calibrate.h"
#include "zcplan/planner/cost.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tune/summary.h"

namespace zcplan {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t K = 1024;

uint64_t Ops(const PlanCost& c, OpKind kind) {
  return c.ops_by_kind[static_cast<int>(kind)];
}

// The workload of zcsweep's calibration test: headers, bodies and small
// pieces, so that each threshold plans differently.
const std::vector<std::vector<uint64_t>>& Workload() {
  static const auto* const w = new std::vector<std::vector<uint64_t>>{
      {4 * K, 4 * K, 16 * K, 32 * K, 2 * K, 100, 100, 100, 64 * K}};
  return *w;
}

// A machine whose zero-copy ops are dear and copied bytes cheap: unlike the
// default weights, so that a fit that returned them would not match.
CostWeights Machine() {
  CostWeights w;
  w.per_op = 2500;
  w.per_zc_op = 4000;
  w.per_copy_byte = 0.05;
  w.per_copy_iov = 35;
  w.per_zc_iov = 0;
  w.per_pinned_page = 120;
  return w;
}

SweepPoint PointAt(uint64_t threshold, bool adaptive = false) {
  SweepPoint p;
  p.setting.plan.zc_threshold = threshold;
  p.setting.adaptive = adaptive;
  return p;
}

// Points at `thresholds` whose measured CPU per message is what `Machine()`
// weighs their counts at.
struct Sweep {
  std::vector<SweepPoint> points;
  std::vector<PointSummary> sums;

  void Add(const SweepPoint& p, double ns_per_message) {
    points.push_back(p);
    PointSummary s;
    s.cpu_ns_per_message = ns_per_message;
    sums.push_back(s);
  }
  void AddMeasured(uint64_t threshold) {
    const SweepPoint p = PointAt(threshold);
    absl::StatusOr<PlanCost> counts = CountsPerPass(Workload(), p.setting.plan);
    ASSERT_TRUE(counts.ok()) << counts.status();
    Add(p, WeighCounts(*counts, Machine()) / Workload().size());
  }
};

Sweep MeasuredSweep() {
  Sweep s;
  for (uint64_t t : {uint64_t{0}, 4 * K, 16 * K, 64 * K, PlanOptions::kNever}) {
    s.AddMeasured(t);
  }
  return s;
}

TEST(CountsPerPassTest, SumsThePlansOfEveryMessage) {
  PlanOptions never;
  never.zc_threshold = PlanOptions::kNever;
  absl::StatusOr<PlanCost> one = CountsPerPass({{4096, 100}}, never);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->ops(), 1u);
  EXPECT_EQ(Ops(*one, OpKind::kWritev), 1u);
  EXPECT_EQ(one->bytes_copied, 4196u);
  EXPECT_EQ(one->iovs_copied, 2u);
  EXPECT_EQ(one->bytes_zero_copy, 0u);
  // Two messages: 4196 and 1001 bytes, 4 iovecs and 2 ops in all.
  absl::StatusOr<PlanCost> two = CountsPerPass({{4096, 100}, {1000, 1}}, never);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->bytes_copied, 4196u + 1001u);
  EXPECT_EQ(two->iovs_copied, 4u);
  EXPECT_EQ(two->ops(), 2u);

  PlanOptions zc;
  zc.zc_threshold = 0;
  absl::StatusOr<PlanCost> all_zc = CountsPerPass({{8192}}, zc);
  ASSERT_TRUE(all_zc.ok()) << all_zc.status();
  EXPECT_EQ(all_zc->bytes_zero_copy, 8192u);
  EXPECT_EQ(all_zc->zero_copy_ops(), 1u);
  EXPECT_EQ(all_zc->pages_pinned, 2u);
}

TEST(CountsPerPassTest, ReportsThePlannersError) {
  PlanOptions bad;
  bad.max_iovs_per_op = 0;
  const absl::Status s = CountsPerPass({{4096}}, bad).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(CountsPerPass({}, PlanOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CalibrateSweepTest, FitsTheMachineAndRanksLikeIt) {
  const Sweep s = MeasuredSweep();
  absl::StatusOr<SweepCalibration> c =
      CalibrateSweep(Workload(), s.points, s.sums);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->samples, ElementsAre(0, 1, 2, 3, 4));
  ASSERT_EQ(c->measured.size(), 5u);
  ASSERT_EQ(c->fitted.size(), 5u);
  ASSERT_EQ(c->defaults.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(c->measured[i], s.sums[i].cpu_ns_per_message);
    EXPECT_NEAR(c->fitted[i], c->measured[i], c->measured[i] * 0.02) << i;
  }
  EXPECT_LT(c->fit.rms_relative_error, 0.02);
  EXPECT_DOUBLE_EQ(c->tau_fitted, 1.0);
  EXPECT_DOUBLE_EQ(c->tau_fitted, KendallTau(c->fitted, c->measured));
  EXPECT_DOUBLE_EQ(c->tau_default, KendallTau(c->defaults, c->measured));
  // On this machine zero-copy ops are dear: copying everything is cheapest.
  EXPECT_EQ(c->cheapest_measured, 4u);
  EXPECT_EQ(c->cheapest_fitted, 4u);
  // The default weights favour zero-copy of the large pieces, and rank
  // differently from the machine.
  EXPECT_LT(c->tau_default, 1.0);
  EXPECT_NE(c->cheapest_default, 4u);
}

// A workload of several messages, with counts under one per message (a
// zero-copy op in 3 of 7 messages): the fit, on whole-pass counts, matches
// the machine measured message by message. (That the counts are not rounded
// is CountsPerPassTest's.)
TEST(CalibrateSweepTest, FitsCountsOfLessThanOnePerMessage) {
  std::vector<std::vector<uint64_t>> workload;
  for (int i = 0; i < 4; ++i) workload.push_back({4 * K, 100, 100});
  for (int i = 0; i < 3; ++i) workload.push_back({64 * K, 2 * K, 100});
  Sweep s;
  for (uint64_t t : {uint64_t{0}, 4 * K, 16 * K, 64 * K, PlanOptions::kNever}) {
    const SweepPoint p = PointAt(t);
    // The machine's CPU, message by message (whole counts each).
    double ns = 0;
    for (const std::vector<uint64_t>& message : workload) {
      absl::StatusOr<PlanCost> counts =
          CountsPerPass({message}, p.setting.plan);
      ASSERT_TRUE(counts.ok()) << counts.status();
      ns += WeighCounts(*counts, Machine());
    }
    s.Add(p, ns / workload.size());
  }
  absl::StatusOr<SweepCalibration> c =
      CalibrateSweep(workload, s.points, s.sums);
  ASSERT_TRUE(c.ok()) << c.status();
  for (size_t i = 0; i < c->measured.size(); ++i) {
    EXPECT_DOUBLE_EQ(c->measured[i], s.sums[i].cpu_ns_per_message) << i;
    EXPECT_NEAR(c->fitted[i], c->measured[i], c->measured[i] * 0.02) << i;
  }
  EXPECT_DOUBLE_EQ(c->tau_fitted, 1.0);
  EXPECT_THAT(c->fit.unfitted, Not(Contains("per_zc_op")));
}

TEST(RankSweepTest, RanksByTheGivenWeights) {
  const Sweep s = MeasuredSweep();
  // The machine's own weights rank exactly as it measures.
  absl::StatusOr<SweepRanking> exact =
      RankSweep(Workload(), s.points, s.sums, Machine());
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_THAT(exact->samples, ElementsAre(0, 1, 2, 3, 4));
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_DOUBLE_EQ(exact->measured[i], s.sums[i].cpu_ns_per_message);
    EXPECT_NEAR(exact->modelled[i], exact->measured[i],
                exact->measured[i] * 1e-9);
  }
  EXPECT_DOUBLE_EQ(exact->tau, 1.0);
  EXPECT_EQ(exact->cheapest_measured, 4u);
  EXPECT_EQ(exact->cheapest_modelled, 4u);
  // The defaults rank as CalibrateSweep says they do.
  absl::StatusOr<SweepRanking> defaults =
      RankSweep(Workload(), s.points, s.sums, CostWeights());
  absl::StatusOr<SweepCalibration> c =
      CalibrateSweep(Workload(), s.points, s.sums);
  ASSERT_TRUE(defaults.ok() && c.ok());
  EXPECT_DOUBLE_EQ(defaults->tau, c->tau_default);
  EXPECT_EQ(defaults->cheapest_modelled, c->cheapest_default);
}

// The pages a zero-copy send pins depend on the page size, which is one of
// the weights: counted at 4K, a 256K message pins 64 pages; at 64K, 4 or 5.
TEST(RankSweepTest, CountsPinnedPagesAtTheWeightsPageSize) {
  const std::vector<std::vector<uint64_t>> workload = {{256 * K}};
  Sweep s;
  s.Add(PointAt(0), 1000);
  s.Add(PointAt(PlanOptions::kNever), 2000);
  CostWeights pages;  // Only pinned pages cost: one per page.
  pages.per_op = pages.per_zc_op = pages.per_copy_byte = pages.per_zc_byte =
      pages.per_copy_iov = pages.per_zc_iov = 0;
  pages.per_pinned_page = 1;
  pages.page_size = 64 * K;
  absl::StatusOr<SweepRanking> r = RankSweep(workload, s.points, s.sums, pages);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->modelled.size(), 2u);
  EXPECT_GE(r->modelled[0], 4);
  EXPECT_LE(r->modelled[0], 5);
  EXPECT_EQ(r->modelled[1], 0);
  // A page size the cost model cannot count with is refused, not used.
  pages.page_size = 0;
  EXPECT_EQ(RankSweep(workload, s.points, s.sums, pages).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RankSweepTest, NeedsTwoSamples) {
  Sweep s;
  s.AddMeasured(0);
  s.Add(PointAt(16 * K, /*adaptive=*/true), 5000);
  const absl::Status e =
      RankSweep(Workload(), s.points, s.sums, Machine()).status();
  EXPECT_EQ(e.code(), absl::StatusCode::kInvalidArgument) << e;
  EXPECT_THAT(e.message(), HasSubstr("at least 2"));
}

TEST(CalibrateSweepTest, SkipsAdaptiveAndUnmeasuredPoints) {
  Sweep s = MeasuredSweep();
  // An adaptive point and one without runs would spoil the fit if used.
  s.Add(PointAt(16 * K, /*adaptive=*/true), 1e9);
  s.Add(PointAt(8 * K), 0);
  absl::StatusOr<SweepCalibration> c =
      CalibrateSweep(Workload(), s.points, s.sums);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->samples, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_DOUBLE_EQ(c->tau_fitted, 1.0);
}

TEST(CalibrateSweepTest, ErrorsNameWhatIsWrong) {
  Sweep s;
  s.AddMeasured(0);
  s.Add(PointAt(16 * K, /*adaptive=*/true), 5000);
  absl::Status e = CalibrateSweep(Workload(), s.points, s.sums).status();
  EXPECT_EQ(e.code(), absl::StatusCode::kInvalidArgument) << e;

  s = MeasuredSweep();
  s.sums.pop_back();
  e = CalibrateSweep(Workload(), s.points, s.sums).status();
  EXPECT_EQ(e.code(), absl::StatusCode::kInvalidArgument) << e;
  EXPECT_THAT(std::string(e.message()), HasSubstr("5 points but 4 summaries"));

  s = MeasuredSweep();
  s.points[2].setting.plan.max_iovs_per_op = 0;
  e = CalibrateSweep(Workload(), s.points, s.sums).status();
  EXPECT_EQ(e.code(), absl::StatusCode::kInvalidArgument) << e;
  EXPECT_THAT(std::string(e.message()), HasSubstr("threshold 16K, writev: "));
}

TEST(FormatWeightsFileTest, ThePlannerReadsBackTheFittedWeights) {
  const Sweep s = MeasuredSweep();
  absl::StatusOr<SweepCalibration> c =
      CalibrateSweep(Workload(), s.points, s.sums);
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string text =
      FormatWeightsFile(*c, {"zcsweep", "split 4K,4K", "loopback"});
  EXPECT_TRUE(absl::StartsWith(
      text,
      "# zcplan cost weights (ns per unit), calibrated by zcsweep from 5 "
      "settings of split 4K,4K to loopback\n# rms relative error "))
      << text;
  EXPECT_THAT(text, HasSubstr("Kendall tau vs measured 1.00 (default "
                              "weights: "));
  EXPECT_THAT(text, HasSubstr("\n# use: zcplan simulate --weights FILE"));
  absl::StatusOr<CostWeights> parsed = ParseCostWeights(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  // FormatCostWeights writes each weight exactly (the fewest digits that
  // read back the same), so equal text is equal weights.
  EXPECT_EQ(FormatCostWeights(*parsed), FormatCostWeights(c->fit.weights));
}

TEST(FormatWeightsFileTest, NamesTheUnfittedWeights) {
  SweepCalibration c;
  c.fit.unfitted = {"per_zc_iov", "per_zc_byte"};
  c.samples = {0, 1};
  const std::string text = FormatWeightsFile(c, {"a", "b", "c"});
  EXPECT_THAT(text, HasSubstr("\n# not determined by this sweep (kept or 0): "
                              "per_zc_iov, per_zc_byte\n"));
  EXPECT_TRUE(ParseCostWeights(text).ok()) << text;
}

// An origin with line breaks (a trace path, a host name) stays inside the
// comments: otherwise a line of it would be read as a weight.
TEST(FormatWeightsFileTest, ControlCharactersInTheOriginStayInTheComment) {
  SweepCalibration c;
  c.fit.weights.per_op = 777;
  c.samples = {0, 1};
  const std::string text =
      FormatWeightsFile(c, {"zcsweep", "trace a\nper_op 1\r\n", "host\tname"});
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  for (const std::string& line : lines) {
    EXPECT_FALSE(absl::StartsWith(line, "per_op 1")) << text;
  }
  EXPECT_THAT(text, HasSubstr("of trace a?per_op 1?? to host?name\n"));
  absl::StatusOr<CostWeights> parsed = ParseCostWeights(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(parsed->per_op, 777);
}

}  // namespace
}  // namespace zcplan
