// SPDX-License-Identifier: Apache-2.0
// The plot of a threshold sweep, as an SVG document: throughput (MB/s, a
// linear axis from 0) above the sending thread's CPU per GB (a logarithmic
// axis between 1-2-5 values, so that one setting far costlier than the rest,
// such as threshold 0 on loopback, does not flatten every other difference),
// both against the thresholds (evenly spaced), one line per series (copy op,
// gap, adaptive), medians with min..max bars.
//
// Pure: returns text, writes nothing. Thread safety: reentrant.

#ifndef ZCPLAN_TUNE_PLOT_H_
#define ZCPLAN_TUNE_PLOT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/tune/summary.h"

namespace zcplan {

// A standalone SVG document of `points`. Requires `summaries[i]` to be
// `Summarize(points[i])` and every point's threshold to be in `thresholds`
// (the x axis, in this order). `recommended` (an index into the points, or
// any value past them for none) is drawn larger, in black. CPU values at
// or below zero (a point without runs) sit on the bottom of the log axis.
// `title` is escaped for XML (control characters become '?').
std::string SweepPlotSvg(absl::Span<const SweepPoint> points,
                         absl::Span<const PointSummary> summaries,
                         absl::Span<const uint64_t> thresholds,
                         absl::string_view title, size_t recommended);

}  // namespace zcplan

#endif  // ZCPLAN_TUNE_PLOT_H_
