// SPDX-License-Identifier: Apache-2.0
// Fitting the cost model to measurements, and comparing rankings.
//
// A sweep (tools/zcsweep) measures what each threshold really costs on a
// machine; `CalibrateWeights` fits `CostWeights` to those measurements so that
// `zcplan simulate` ranks thresholds for other traces the way the machine
// would. `KendallTau` says how far two rankings agree.
//
// Pure: no clocks, no system calls. Thread safety: all functions are
// reentrant.

#ifndef ZCPLAN_PLANNER_CALIBRATE_H_
#define ZCPLAN_PLANNER_CALIBRATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/planner/cost.h"

namespace zcplan {

// One measurement: what the planner's plans asked of the kernel (counts from
// `EstimateCost`, summed the same way for every sample, e.g. per message) and
// the measured cost of that work in the weights' unit (e.g. CPU nanoseconds
// per message). `measured` must be positive and finite.
struct CalibrationSample {
  PlanCost counts;
  double measured = 0;
};

struct Calibration {
  CostWeights weights;
  // Weights these measurements cannot determine, named as in the weights
  // file: a count that is zero in every sample keeps its weight from
  // `start`; a count that is the same multiple of an earlier one's in every
  // sample (zero-copy iovecs and ops when each zero-copy op has one iovec)
  // gets weight 0, the earlier weight carrying both.
  std::vector<std::string> unfitted;
  // Root mean square of (model - measured) / measured over the samples.
  double rms_relative_error = 0;
};

// Fits non-negative weights that minimise the squared relative error of
// `WeighCounts(sample.counts, weights)` against `sample.measured` (see
// `Calibration::unfitted` for weights the samples cannot determine);
// `start.page_size` is kept. Needs at least two samples. Errors:
// InvalidArgument naming the sample with a bad `measured`, or too few samples.
[[nodiscard]] absl::StatusOr<Calibration> CalibrateWeights(
    absl::Span<const CalibrationSample> samples,
    const CostWeights& start = CostWeights());

// The weighted cost of `counts` under `weights` (what `EstimateCost` puts in
// `PlanCost::cost`).
double WeighCounts(const PlanCost& counts, const CostWeights& weights);

// Kendall's tau-b rank correlation of two equally long score lists: 1 when
// they order every pair the same way, -1 when every pair is reversed, 0 for
// no agreement (also when either list has fewer than two distinct values).
double KendallTau(absl::Span<const double> a, absl::Span<const double> b);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_CALIBRATE_H_
