// SPDX-License-Identifier: Apache-2.0
// Calibrating the planner's cost model from a threshold sweep: the settings
// that serve as samples, what the model counts for each (per message of the
// workload), the fit (`CalibrateWeights`, planner/calibrate.h), how well the
// fitted and the default weights rank the settings against the measurement
// (Kendall's tau), and the weights file `zcplan simulate --weights` reads.
//
// Pure: no clocks, no system calls, no output; the measurements come from
// `tune/sweep.h` or from anywhere else. Thread safety: plain value types; the
// functions are reentrant.

#ifndef ZCPLAN_TUNE_CALIBRATION_H_
#define ZCPLAN_TUNE_CALIBRATION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/planner/calibrate.h"
#include "zcplan/planner/cost.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tune/summary.h"

namespace zcplan {

// The planner's counts for one pass over the workload under `options`: the
// plans of every message (each laid out by `MakeSyntheticQueue`), summed.
// `CalibrateSweep` fits in this unit, against the CPU of one pass, so that
// counts below one per message (1.14 ops per message, a zero-copy op in
// most but not all messages) are not rounded away. Requires at least one
// message, each of sizes up to kMaxTraceSize. Pinned pages are counted at
// `page_size` (CostWeights::page_size: the weights the counts are weighed
// with). Errors: InvalidArgument for no message or a page size
// ValidateCostWeights refuses, or the planner's error for `options` (see
// ValidatePlanOptions).
[[nodiscard]] absl::StatusOr<PlanCost> CountsPerPass(
    absl::Span<const std::vector<uint64_t>> messages,
    const PlanOptions& options, uint64_t page_size = CostWeights().page_size);

// What `CalibrateSweep` found.
struct SweepCalibration {
  // The fitted weights, the weights the sweep cannot determine, and the rms
  // relative error of the fit.
  Calibration fit;
  // One entry per sample, in the order of the points: the point's index,
  // its measured median CPU ns per message, and the model's cost per message
  // with the fitted and with the default weights.
  std::vector<size_t> samples;
  std::vector<double> measured;
  std::vector<double> fitted;
  std::vector<double> defaults;
  // How the models rank the samples against the measurement (KendallTau: 1
  // is the same order).
  double tau_fitted = 0;
  double tau_default = 0;
  // Indices into the points: the cheapest sample by the measurement, by the
  // fitted model and by the default model (the first of equals).
  size_t cheapest_measured = 0;
  size_t cheapest_fitted = 0;
  size_t cheapest_default = 0;
};

// A setting that can be a calibration sample: one without adaptive
// zero-copy (whose plans the model cannot know in advance).
bool IsCalibrationSetting(const SweepSetting& setting);

// Fits the cost weights to a sweep: every point whose setting
// `IsCalibrationSetting` and whose median CPU per message is positive is a
// sample, with `CountsPerPass(messages, setting.plan)` (chains capped at
// 256 ops) as its counts. Requires `summaries[i]` to be
// `Summarize(points[i])`. Errors: InvalidArgument when the sizes of `points`
// and `summaries` differ, for fewer than two samples (from
// CalibrateWeights), or when a setting cannot be planned (naming it).
[[nodiscard]] absl::StatusOr<SweepCalibration> CalibrateSweep(
    absl::Span<const std::vector<uint64_t>> messages,
    absl::Span<const SweepPoint> points,
    absl::Span<const PointSummary> summaries);

// How given weights rank a sweep's settings: the check of weights
// calibrated on one workload against a sweep of another.
struct SweepRanking {
  // One entry per sample (as for CalibrateSweep): the point's index, its
  // measured median CPU ns per message, the model's cost per message.
  std::vector<size_t> samples;
  std::vector<double> measured;
  std::vector<double> modelled;
  double tau = 0;  // KendallTau(modelled, measured)
  // Indices into the points (the first of equals).
  size_t cheapest_measured = 0;
  size_t cheapest_modelled = 0;
};

// Ranks the samples of a sweep (chosen as for CalibrateSweep) by `weights`
// and compares that with the measurement; pinned pages are counted at
// `weights.page_size`. Errors: InvalidArgument as for CalibrateSweep, for
// weights ValidateCostWeights refuses, and for fewer than two samples.
[[nodiscard]] absl::StatusOr<SweepRanking> RankSweep(
    absl::Span<const std::vector<uint64_t>> messages,
    absl::Span<const SweepPoint> points,
    absl::Span<const PointSummary> summaries, const CostWeights& weights);

// Where a calibration came from, for the comment lines of its weights file.
struct CalibrationOrigin {
  std::string tool = "zcsweep";  // what measured
  std::string workload;          // e.g. "split 4K,64K"
  std::string destination;       // e.g. "loopback" or "10.0.0.2:9000"
};

// The weights file: comment lines naming the origin, the fit's error and
// the taus (and the weights not determined), a usage line, then
// `FormatCostWeights(calibration.fit.weights)`, so that `ParseCostWeights`
// reads back exactly the fitted weights. Control characters in `origin`
// become '?' so that each comment stays one line.
std::string FormatWeightsFile(const SweepCalibration& calibration,
                              const CalibrationOrigin& origin);

}  // namespace zcplan

#endif  // ZCPLAN_TUNE_CALIBRATION_H_
