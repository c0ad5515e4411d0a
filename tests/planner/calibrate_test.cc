// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/calibrate.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/planner/cost.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"

namespace zcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t K = 1024;

// Deliberately unlike the defaults, so that a fit that returned `start`
// would fail.
CostWeights Truth() {
  CostWeights w;
  w.per_op = 1234;
  w.per_zc_op = 567;
  w.per_copy_byte = 0.31;
  w.per_zc_byte = 0.017;
  w.per_copy_iov = 42;
  w.per_zc_iov = 151;
  w.per_pinned_page = 73;
  return w;
}

uint64_t& Ops(PlanCost& c, OpKind kind) {
  return c.ops_by_kind[static_cast<int>(kind)];
}

// Varied, independent counts: every count is non-zero in some sample and no
// count is a multiple of another.
std::vector<PlanCost> RandomCounts(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<PlanCost> counts;
  for (int i = 0; i < n; ++i) {
    PlanCost c;
    Ops(c, OpKind::kWritev) = 1 + rng() % 20;
    Ops(c, OpKind::kSend) = rng() % 5;
    Ops(c, OpKind::kSendZc) = rng() % 8;
    Ops(c, OpKind::kSendmsgZc) = 1 + rng() % 8;
    c.bytes_copied = 1000 + rng() % 200000;
    c.bytes_zero_copy = rng() % 500000;
    c.iovs_copied = 1 + rng() % 200;
    c.iovs_zero_copy = c.zero_copy_ops() + rng() % 60;
    c.pages_pinned = c.bytes_zero_copy / 4096 + rng() % 40;
    counts.push_back(c);
  }
  return counts;
}

std::vector<CalibrationSample> Measure(const std::vector<PlanCost>& counts,
                                       const CostWeights& truth) {
  std::vector<CalibrationSample> samples;
  for (const PlanCost& c : counts) {
    samples.push_back({c, WeighCounts(c, truth)});
  }
  return samples;
}

void ExpectRelativelyNear(double got, double want, double tolerance,
                          const char* name) {
  EXPECT_NEAR(got, want, std::abs(want) * tolerance) << name;
}

void ExpectWeightsNear(const CostWeights& got, const CostWeights& want,
                       double tolerance) {
  ExpectRelativelyNear(got.per_op, want.per_op, tolerance, "per_op");
  ExpectRelativelyNear(got.per_zc_op, want.per_zc_op, tolerance, "per_zc_op");
  ExpectRelativelyNear(got.per_copy_byte, want.per_copy_byte, tolerance,
                       "per_copy_byte");
  ExpectRelativelyNear(got.per_zc_byte, want.per_zc_byte, tolerance,
                       "per_zc_byte");
  ExpectRelativelyNear(got.per_copy_iov, want.per_copy_iov, tolerance,
                       "per_copy_iov");
  ExpectRelativelyNear(got.per_zc_iov, want.per_zc_iov, tolerance,
                       "per_zc_iov");
  ExpectRelativelyNear(got.per_pinned_page, want.per_pinned_page, tolerance,
                       "per_pinned_page");
  EXPECT_EQ(got.page_size, want.page_size);
}

TEST(WeighCountsTest, IsTheCostEstimateCostComputes) {
  const std::vector<struct iovec> q =
      MakeSyntheticQueue({400, 600, 48 * K, 700, 20 * K + 100, 64 * K});
  PlanOptions o;
  o.zc_threshold = 16 * K;
  const absl::StatusOr<Plan> plan = PlanChain(q, 0, o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const CostWeights& w : {CostWeights(), Truth()}) {
    const PlanCost c = EstimateCost(q, *plan, w);
    ASSERT_GT(c.zero_copy_ops(), 0u);
    ASSERT_GT(c.iovs_copied, 0u);
    EXPECT_DOUBLE_EQ(WeighCounts(c, w), c.cost);
  }
}

TEST(WeighCountsTest, WeighsEachCountByItsOwnWeight) {
  PlanCost c;
  Ops(c, OpKind::kWritev) = 2;
  Ops(c, OpKind::kSendZc) = 3;
  c.bytes_copied = 10;
  c.bytes_zero_copy = 100;
  c.iovs_copied = 4;
  c.iovs_zero_copy = 5;
  c.pages_pinned = 6;
  c.cost = 1e9;  // Ignored: only the counts are weighed.
  CostWeights w;
  w.per_op = 1;
  w.per_zc_op = 10;
  w.per_copy_byte = 100;
  w.per_zc_byte = 1000;
  w.per_copy_iov = 10000;
  w.per_zc_iov = 100000;
  w.per_pinned_page = 1000000;
  EXPECT_EQ(WeighCounts(c, w), 5 + 3 * 10 + 10 * 100 + 100 * 1000 + 4 * 10000 +
                                   5 * 100000 + 6 * 1000000);
}

TEST(CalibrateTest, RecoversKnownWeightsFromExactMeasurements) {
  const CostWeights truth = Truth();
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    const std::vector<CalibrationSample> samples =
        Measure(RandomCounts(12, seed), truth);
    const absl::StatusOr<Calibration> fit = CalibrateWeights(samples);
    ASSERT_TRUE(fit.ok()) << fit.status();
    ExpectWeightsNear(fit->weights, truth, 1e-6);
    EXPECT_THAT(fit->unfitted, IsEmpty());
    EXPECT_LT(fit->rms_relative_error, 1e-9);
  }
}

TEST(CalibrateTest, RecoversAZeroWeightAsZero) {
  CostWeights truth = Truth();
  truth.per_zc_byte = 0;
  const absl::StatusOr<Calibration> fit =
      CalibrateWeights(Measure(RandomCounts(10, 7), truth));
  ASSERT_TRUE(fit.ok()) << fit.status();
  // Zero-copy bytes are ~10^5 per sample: 1e-9 ns per byte is ~1e-4 ns.
  EXPECT_NEAR(fit->weights.per_zc_byte, 0, 1e-9);
  EXPECT_GE(fit->weights.per_zc_byte, 0);
  truth.per_zc_byte = fit->weights.per_zc_byte;
  ExpectWeightsNear(fit->weights, truth, 1e-6);
  EXPECT_LT(fit->rms_relative_error, 1e-9);
}

TEST(CalibrateTest, RecoversWeightsFromTheCountsOfRealPlans) {
  // What a sweep would measure: the reference message in several piece
  // counts, each planned under several thresholds, counted per message.
  const CostWeights truth = Truth();
  std::vector<PlanCost> counts;
  const uint64_t thresholds[] = {0,      1 * K,  4 * K,
                                 16 * K, 64 * K, PlanOptions::kNever};
  for (uint32_t pieces : {1, 4, 16, 64, 256, 1024}) {
    const absl::StatusOr<std::vector<uint64_t>> sizes =
        ReferenceMessageSizes(pieces);
    ASSERT_TRUE(sizes.ok()) << sizes.status();
    // An odd start offset, so that pages pinned are not bytes / 4096.
    std::vector<struct iovec> q = MakeSyntheticQueue(*sizes);
    for (struct iovec& v : q) {
      v.iov_base = static_cast<char*>(v.iov_base) + 100;
    }
    for (uint64_t t : thresholds) {
      PlanOptions o;
      o.zc_threshold = t;
      Plan plan;
      PlanCost c;
      ASSERT_TRUE(ForEachChain(q, o, &plan, [&](const Plan& p, size_t base) {
                    c += EstimateCost(absl::MakeConstSpan(q).subspan(base), p,
                                      truth);
                    return true;
                  }).ok());
      counts.push_back(c);
    }
  }
  const absl::StatusOr<Calibration> fit =
      CalibrateWeights(Measure(counts, truth), /*start=*/CostWeights());
  ASSERT_TRUE(fit.ok()) << fit.status();
  ExpectWeightsNear(fit->weights, truth, 1e-6);
  EXPECT_THAT(fit->unfitted, IsEmpty());
  EXPECT_LT(fit->rms_relative_error, 1e-9);
}

TEST(CalibrateTest, NoisyMeasurementsGiveASmallButNonZeroError) {
  const CostWeights truth = Truth();
  std::vector<CalibrationSample> samples = Measure(RandomCounts(30, 11), truth);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> noise(0.97, 1.03);
  for (CalibrationSample& s : samples) s.measured *= noise(rng);
  const absl::StatusOr<Calibration> fit = CalibrateWeights(samples);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_GT(fit->rms_relative_error, 1e-4);
  EXPECT_LT(fit->rms_relative_error, 0.03);
  // The least-squares fit is at least as good as the truth itself.
  double truth_sum = 0;
  for (const CalibrationSample& s : samples) {
    const double e = (WeighCounts(s.counts, truth) - s.measured) / s.measured;
    truth_sum += e * e;
  }
  EXPECT_LE(fit->rms_relative_error,
            std::sqrt(truth_sum / samples.size()) * (1 + 1e-9));
}

TEST(CalibrateTest, KeepsWeightsNonNegativeWhereTheFreeFitIsNegative) {
  // Only ops and copied bytes; measured = 10 * ops - 0.05 * bytes_copied
  // exactly, so the unconstrained fit has per_copy_byte = -0.05.
  struct Row {
    uint64_t ops, bytes;
    double measured;
  };
  const Row rows[] = {{1, 0, 10}, {1, 100, 5}, {2, 100, 15}};
  std::vector<CalibrationSample> samples;
  for (const Row& r : rows) {
    CalibrationSample s;
    Ops(s.counts, OpKind::kWritev) = r.ops;
    s.counts.bytes_copied = r.bytes;
    s.measured = r.measured;
    samples.push_back(s);
  }
  const absl::StatusOr<Calibration> fit = CalibrateWeights(samples);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->weights.per_copy_byte, 0);
  // With per_copy_byte pinned at 0 (its gradient there is positive), per_op
  // minimises sum (ops_i w / m_i - 1)^2: w = sum r_i / sum r_i^2 with
  // r_i = ops_i / m_i.
  double sum_r = 0, sum_r2 = 0;
  for (const Row& r : rows) {
    const double ri = static_cast<double>(r.ops) / r.measured;
    sum_r += ri;
    sum_r2 += ri * ri;
  }
  EXPECT_NEAR(fit->weights.per_op, sum_r / sum_r2, 1e-9 * sum_r / sum_r2);
  EXPECT_GT(fit->rms_relative_error, 0.1);
  for (double w :
       {fit->weights.per_op, fit->weights.per_zc_op, fit->weights.per_copy_byte,
        fit->weights.per_zc_byte, fit->weights.per_copy_iov,
        fit->weights.per_zc_iov, fit->weights.per_pinned_page}) {
    EXPECT_GE(w, 0);
  }
  // per_copy_byte was fitted (to 0), not left out.
  EXPECT_THAT(fit->unfitted,
              ElementsAre("per_zc_op", "per_zc_byte", "per_copy_iov",
                          "per_zc_iov", "per_pinned_page"));
}

TEST(CalibrateTest, ACountZeroEverywhereKeepsItsStartWeightAndIsListed) {
  const CostWeights truth = Truth();
  std::vector<PlanCost> counts = RandomCounts(12, 4);
  for (PlanCost& c : counts) c.pages_pinned = 0;
  CostWeights start;
  start.per_pinned_page = 77;
  const absl::StatusOr<Calibration> fit =
      CalibrateWeights(Measure(counts, truth), start);
  ASSERT_TRUE(fit.ok()) << fit.status();
  CostWeights want = truth;
  want.per_pinned_page = 77;
  ExpectWeightsNear(fit->weights, want, 1e-6);
  EXPECT_THAT(fit->unfitted, ElementsAre("per_pinned_page"));
  EXPECT_LT(fit->rms_relative_error, 1e-9);
}

TEST(CalibrateTest, ACountProportionalToAnEarlierOneGetsZeroAndIsListed) {
  // Every zero-copy op has `factor` iovecs: per_zc_op carries both weights.
  const CostWeights truth = Truth();
  for (uint64_t factor : {1, 3}) {
    SCOPED_TRACE(factor);
    std::vector<PlanCost> counts = RandomCounts(12, 9);
    for (PlanCost& c : counts) c.iovs_zero_copy = factor * c.zero_copy_ops();
    CostWeights start;
    start.per_zc_iov = 999;  // Must not survive: the count is not zero.
    const absl::StatusOr<Calibration> fit =
        CalibrateWeights(Measure(counts, truth), start);
    ASSERT_TRUE(fit.ok()) << fit.status();
    CostWeights want = truth;
    want.per_zc_op = truth.per_zc_op + factor * truth.per_zc_iov;
    want.per_zc_iov = 0;
    EXPECT_EQ(fit->weights.per_zc_iov, 0);
    ExpectWeightsNear(fit->weights, want, 1e-6);
    EXPECT_THAT(fit->unfitted, ElementsAre("per_zc_iov"));
    EXPECT_LT(fit->rms_relative_error, 1e-9);
    // The model still predicts every measurement.
    for (const PlanCost& c : counts) {
      ExpectRelativelyNear(WeighCounts(c, fit->weights), WeighCounts(c, truth),
                           1e-9, "prediction");
    }
  }
}

TEST(CalibrateTest, KeepsTheStartPageSize) {
  CostWeights start;
  start.page_size = 16384;
  const absl::StatusOr<Calibration> fit =
      CalibrateWeights(Measure(RandomCounts(10, 3), Truth()), start);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->weights.page_size, 16384u);
}

TEST(CalibrateTest, NeedsAtLeastTwoSamples) {
  const std::vector<CalibrationSample> samples =
      Measure(RandomCounts(2, 1), Truth());
  for (size_t n : {0, 1}) {
    const absl::StatusOr<Calibration> fit =
        CalibrateWeights(absl::MakeConstSpan(samples).first(n));
    EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(fit.status().message(),
                HasSubstr(absl::StrCat("at least 2 samples, got ", n)));
  }
  EXPECT_TRUE(CalibrateWeights(samples).ok());
}

TEST(CalibrateTest, RejectsAMeasurementNotPositiveAndFiniteNamingTheSample) {
  const double bad_values[] = {0, -5, std::numeric_limits<double>::quiet_NaN(),
                               std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity()};
  for (double bad : bad_values) {
    SCOPED_TRACE(bad);
    std::vector<CalibrationSample> samples =
        Measure(RandomCounts(4, 1), Truth());
    samples[2].measured = bad;
    const absl::StatusOr<Calibration> fit = CalibrateWeights(samples);
    EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(fit.status().message(),
                HasSubstr(absl::StrCat("calibration sample 2: measured cost ",
                                       bad, " must be positive and finite")));
  }
}

TEST(KendallTauTest, IdenticalOrderIsOne) {
  const std::vector<double> a = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(KendallTau(a, a), 1);
  // Only the order matters, not the values.
  const std::vector<double> b = {10, 40, 90, 160, 1e6};
  EXPECT_DOUBLE_EQ(KendallTau(a, b), 1);
}

TEST(KendallTauTest, ReversedOrderIsMinusOne) {
  const std::vector<double> a = {1, 2, 3, 4, 5};
  const std::vector<double> b = {50, 40, 30, 20, 10};
  EXPECT_DOUBLE_EQ(KendallTau(a, b), -1);
  EXPECT_DOUBLE_EQ(KendallTau(b, a), -1);
}

TEST(KendallTauTest, MatchesHandComputedTauB) {
  // No ties: of the 6 pairs of a = {1, 2, 3, 4}, b = {1, 3, 2, 4} only
  // (1,2) is discordant: (5 - 1) / 6.
  EXPECT_DOUBLE_EQ(KendallTau(std::vector<double>{1, 2, 3, 4},
                              std::vector<double>{1, 3, 2, 4}),
                   2.0 / 3);
  // Pairs of a = {1, 2, 2, 3}, b = {1, 3, 2, 2}: (0,1) (0,2) (0,3)
  // concordant, (1,3) discordant, (1,2) tied in a only, (2,3) tied in b
  // only. tau-b = (3 - 1) / sqrt((6 - 1) * (6 - 1)) = 0.4.
  EXPECT_DOUBLE_EQ(KendallTau(std::vector<double>{1, 2, 2, 3},
                              std::vector<double>{1, 3, 2, 2}),
                   0.4);
  // b = {1, 1, 1, 2} ties 3 pairs; the other 3 are concordant:
  // 3 / sqrt(6 * (6 - 3)) = 1 / sqrt(2). Symmetric in a and b.
  const std::vector<double> a = {1, 2, 3, 4};
  const std::vector<double> b = {1, 1, 1, 2};
  EXPECT_DOUBLE_EQ(KendallTau(a, b), 1 / std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(KendallTau(b, a), 1 / std::sqrt(2.0));
  // A pair tied in both counts in neither denominator term: a = {1, 1, 2, 3},
  // b = {1, 1, 3, 2}: 4 concordant, 1 discordant, (4 - 1) / sqrt(5 * 5).
  EXPECT_DOUBLE_EQ(KendallTau(std::vector<double>{1, 1, 2, 3},
                              std::vector<double>{1, 1, 3, 2}),
                   0.6);
}

TEST(KendallTauTest, FewerThanTwoDistinctValuesIsZero) {
  const std::vector<double> rising = {1, 2, 3};
  const std::vector<double> flat = {7, 7, 7};
  EXPECT_EQ(KendallTau(flat, rising), 0);
  EXPECT_EQ(KendallTau(rising, flat), 0);
  EXPECT_EQ(KendallTau(flat, flat), 0);
  EXPECT_EQ(KendallTau(std::vector<double>{1}, std::vector<double>{1}), 0);
  EXPECT_EQ(KendallTau({}, {}), 0);
}

}  // namespace
}  // namespace zcplan
