// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tune/calibration.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "zcplan/planner/simulate.h"

namespace zcplan {
namespace {

// The index into `points` of the sample with the lowest `cost`.
size_t Cheapest(const std::vector<size_t>& points,
                const std::vector<double>& cost) {
  return points[std::min_element(cost.begin(), cost.end()) - cost.begin()];
}

// `text` with every control character as '?': one line of a comment.
std::string OneLine(absl::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  }
  return out;
}

}  // namespace

absl::StatusOr<PlanCost> CountsPerPass(
    absl::Span<const std::vector<uint64_t>> messages,
    const PlanOptions& options, uint64_t page_size) {
  if (messages.empty()) {
    return absl::InvalidArgumentError("the workload has no message");
  }
  CostWeights weights;
  weights.page_size = page_size;
  if (absl::Status s = ValidateCostWeights(weights); !s.ok()) return s;
  PlanCost total;
  Plan scratch;
  for (const std::vector<uint64_t>& sizes : messages) {
    const std::vector<iovec> queue = MakeSyntheticQueue(sizes);
    absl::Status s = ForEachChain(
        queue, options, &scratch, [&](const Plan& plan, size_t base) {
          total += EstimateCost(absl::MakeConstSpan(queue).subspan(base), plan,
                                weights);
          return true;
        });
    if (!s.ok()) return s;
  }
  return total;
}

bool IsCalibrationSetting(const SweepSetting& setting) {
  return !setting.adaptive;
}

namespace {

// The samples of a sweep: each point whose setting `IsCalibrationSetting`
// and whose median CPU per message is positive, with one pass's counts and
// one pass's CPU (ns), pages counted at `page_size`; `indices` gets the
// points' indices.
absl::StatusOr<std::vector<CalibrationSample>> SweepSamples(
    absl::Span<const std::vector<uint64_t>> messages,
    absl::Span<const SweepPoint> points,
    absl::Span<const PointSummary> summaries, uint64_t page_size,
    std::vector<size_t>* indices) {
  if (points.size() != summaries.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(points.size(), " points but ", summaries.size(),
                     " summaries; expected one summary per point"));
  }
  std::vector<CalibrationSample> samples;
  for (size_t i = 0; i < points.size(); ++i) {
    const SweepSetting& setting = points[i].setting;
    if (!IsCalibrationSetting(setting) ||
        !(summaries[i].cpu_ns_per_message > 0)) {
      continue;
    }
    PlanOptions options = setting.plan;
    options.max_ops_per_chain =
        std::min<uint32_t>(options.max_ops_per_chain, 256);
    absl::StatusOr<PlanCost> counts =
        CountsPerPass(messages, options, page_size);
    if (!counts.ok()) {
      return absl::Status(counts.status().code(),
                          absl::StrCat(DescribeSetting(setting), ": ",
                                       counts.status().message()));
    }
    samples.push_back(
        {*counts, summaries[i].cpu_ns_per_message * messages.size()});
    indices->push_back(i);
  }
  return samples;
}

}  // namespace

absl::StatusOr<SweepCalibration> CalibrateSweep(
    absl::Span<const std::vector<uint64_t>> messages,
    absl::Span<const SweepPoint> points,
    absl::Span<const PointSummary> summaries) {
  SweepCalibration c;
  absl::StatusOr<std::vector<CalibrationSample>> samples = SweepSamples(
      messages, points, summaries, CostWeights().page_size, &c.samples);
  if (!samples.ok()) return samples.status();
  absl::StatusOr<Calibration> fit = CalibrateWeights(*samples);
  if (!fit.ok()) return fit.status();
  c.fit = *std::move(fit);
  // Reported per message.
  const double n = static_cast<double>(messages.size());
  for (const CalibrationSample& s : *samples) {
    c.measured.push_back(s.measured / n);
    c.fitted.push_back(WeighCounts(s.counts, c.fit.weights) / n);
    c.defaults.push_back(WeighCounts(s.counts, CostWeights()) / n);
  }
  c.tau_fitted = KendallTau(c.fitted, c.measured);
  c.tau_default = KendallTau(c.defaults, c.measured);
  c.cheapest_measured = Cheapest(c.samples, c.measured);
  c.cheapest_fitted = Cheapest(c.samples, c.fitted);
  c.cheapest_default = Cheapest(c.samples, c.defaults);
  return c;
}

absl::StatusOr<SweepRanking> RankSweep(
    absl::Span<const std::vector<uint64_t>> messages,
    absl::Span<const SweepPoint> points,
    absl::Span<const PointSummary> summaries, const CostWeights& weights) {
  if (absl::Status s = ValidateCostWeights(weights); !s.ok()) return s;
  SweepRanking r;
  absl::StatusOr<std::vector<CalibrationSample>> samples =
      SweepSamples(messages, points, summaries, weights.page_size, &r.samples);
  if (!samples.ok()) return samples.status();
  if (samples->size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ranking needs at least 2 measured settings without adaptive "
        "zero-copy, got ",
        samples->size()));
  }
  const double n = static_cast<double>(messages.size());
  for (const CalibrationSample& s : *samples) {
    r.measured.push_back(s.measured / n);
    r.modelled.push_back(WeighCounts(s.counts, weights) / n);
  }
  r.tau = KendallTau(r.modelled, r.measured);
  r.cheapest_measured = Cheapest(r.samples, r.measured);
  r.cheapest_modelled = Cheapest(r.samples, r.modelled);
  return r;
}

std::string FormatWeightsFile(const SweepCalibration& c,
                              const CalibrationOrigin& origin) {
  std::string text = absl::StrCat(
      "# zcplan cost weights (ns per unit), calibrated by ",
      OneLine(origin.tool), " from ", c.samples.size(), " settings of ",
      OneLine(origin.workload), " to ", OneLine(origin.destination), "\n",
      absl::StrFormat("# rms relative error %.1f%%; Kendall tau vs measured "
                      "%.2f (default weights: %.2f)\n",
                      c.fit.rms_relative_error * 100, c.tau_fitted,
                      c.tau_default));
  if (!c.fit.unfitted.empty()) {
    absl::StrAppend(&text, "# not determined by this sweep (kept or 0): ",
                    absl::StrJoin(c.fit.unfitted, ", "), "\n");
  }
  absl::StrAppend(&text, "# use: zcplan simulate --weights FILE ...\n",
                  FormatCostWeights(c.fit.weights));
  return text;
}

}  // namespace zcplan
