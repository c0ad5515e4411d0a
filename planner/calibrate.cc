// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/calibrate.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zcplan {
namespace {

constexpr int kNumWeights = 7;

std::array<double, kNumWeights> Features(const PlanCost& c) {
  return {static_cast<double>(c.ops()),
          static_cast<double>(c.zero_copy_ops()),
          static_cast<double>(c.bytes_copied),
          static_cast<double>(c.bytes_zero_copy),
          static_cast<double>(c.iovs_copied),
          static_cast<double>(c.iovs_zero_copy),
          static_cast<double>(c.pages_pinned)};
}

std::array<double*, kNumWeights> Fields(CostWeights& w) {
  return {&w.per_op,       &w.per_zc_op,  &w.per_copy_byte,  &w.per_zc_byte,
          &w.per_copy_iov, &w.per_zc_iov, &w.per_pinned_page};
}

constexpr const char* kNames[kNumWeights] = {
    "per_op",       "per_zc_op",  "per_copy_byte",  "per_zc_byte",
    "per_copy_iov", "per_zc_iov", "per_pinned_page"};

}  // namespace

double WeighCounts(const PlanCost& counts, const CostWeights& weights) {
  CostWeights w = weights;
  const std::array<double, kNumWeights> f = Features(counts);
  const std::array<double*, kNumWeights> p = Fields(w);
  double sum = 0;
  for (int j = 0; j < kNumWeights; ++j) sum += f[j] * *p[j];
  return sum;
}

absl::StatusOr<Calibration> CalibrateWeights(
    absl::Span<const CalibrationSample> samples, const CostWeights& start) {
  if (samples.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration needs at least 2 samples, got ", samples.size()));
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!std::isfinite(samples[i].measured) || samples[i].measured <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("calibration sample ", i, ": measured cost ",
                       samples[i].measured, " must be positive and finite"));
    }
  }
  const size_t n = samples.size();
  // Rows scaled by 1/measured (relative error); columns scaled to unit norm
  // so that one step size fits all (bytes are ~10^5 per message, ops ~10).
  std::vector<std::array<double, kNumWeights>> a(n);
  std::array<double, kNumWeights> norm{};
  for (size_t i = 0; i < n; ++i) {
    a[i] = Features(samples[i].counts);
    for (int j = 0; j < kNumWeights; ++j) {
      a[i][j] /= samples[i].measured;
      norm[j] += a[i][j] * a[i][j];
    }
  }
  Calibration result;
  result.weights = start;
  std::array<double*, kNumWeights> out = Fields(result.weights);
  std::array<bool, kNumWeights> fit{};
  for (int j = 0; j < kNumWeights; ++j) {
    norm[j] = std::sqrt(norm[j]);
    fit[j] = norm[j] > 0;
    if (!fit[j]) continue;
    for (size_t i = 0; i < n; ++i) a[i][j] /= norm[j];
  }
  // A count proportional to another in every sample (e.g. zero-copy ops and
  // zero-copy iovecs when every zero-copy op has one iovec) gives the two
  // weights no separate meaning: fit only the first of them.
  for (int j = 0; j < kNumWeights; ++j) {
    for (int k = 0; k < j && fit[j]; ++k) {
      if (!fit[k]) continue;
      double dot = 0;
      for (size_t i = 0; i < n; ++i) dot += a[i][j] * a[i][k];
      if (dot > 1 - 1e-12) fit[j] = false;
    }
  }
  // Non-negative least squares by cyclic coordinate descent: each column has
  // unit norm, so the exact step for one coordinate is -gradient.
  std::array<double, kNumWeights> x{};
  std::vector<double> residual(n, -1.0);  // a x - 1, with x = 0
  for (int sweep = 0; sweep < 100000; ++sweep) {
    double largest_step = 0;
    for (int j = 0; j < kNumWeights; ++j) {
      if (!fit[j]) continue;
      double g = 0;
      for (size_t i = 0; i < n; ++i) g += a[i][j] * residual[i];
      const double next = std::max(0.0, x[j] - g);
      const double step = next - x[j];
      if (step == 0) continue;
      for (size_t i = 0; i < n; ++i) residual[i] += step * a[i][j];
      x[j] = next;
      largest_step = std::max(largest_step, std::abs(step));
    }
    if (largest_step < 1e-13) break;
  }
  for (int j = 0; j < kNumWeights; ++j) {
    if (fit[j]) {
      *out[j] = x[j] / norm[j];
    } else {
      // Unfitted: contributes nothing to the fit above, so it must not add
      // to the model either, except where it had no count at all.
      if (norm[j] > 0) *out[j] = 0;
      result.unfitted.push_back(kNames[j]);
    }
  }
  double sum = 0;
  for (const CalibrationSample& s : samples) {
    const double e =
        (WeighCounts(s.counts, result.weights) - s.measured) / s.measured;
    sum += e * e;
  }
  result.rms_relative_error = std::sqrt(sum / static_cast<double>(n));
  return result;
}

double KendallTau(absl::Span<const double> a, absl::Span<const double> b) {
  const size_t n = std::min(a.size(), b.size());
  double concordant = 0, discordant = 0, ties_a = 0, ties_b = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      const double da = a[i] - a[j];
      const double db = b[i] - b[j];
      if (da == 0 && db == 0) continue;
      if (da == 0) {
        ++ties_a;
      } else if (db == 0) {
        ++ties_b;
      } else if ((da > 0) == (db > 0)) {
        ++concordant;
      } else {
        ++discordant;
      }
    }
  }
  const double denominator = std::sqrt((concordant + discordant + ties_a) *
                                       (concordant + discordant + ties_b));
  return denominator == 0 ? 0 : (concordant - discordant) / denominator;
}

}  // namespace zcplan
