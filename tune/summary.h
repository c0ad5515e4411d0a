// SPDX-License-Identifier: Apache-2.0
// What a threshold sweep measured, and what it says: the settings a sweep
// tries, the runs it records (`tune/sweep.h` makes them), their medians and
// spreads (`Summarize`) and the recommended setting (`Recommend`).
//
// Pure: no clocks, no system calls, so a program can summarize runs it
// measured itself, or stored ones. Thread safety: plain value types; the
// functions are reentrant.

#ifndef ZCPLAN_TUNE_SUMMARY_H_
#define ZCPLAN_TUNE_SUMMARY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "zcplan/planner/planner.h"
#include "zcplan/uring/stats.h"

namespace zcplan {

// One point of a sweep: the planner options and adaptive zero-copy.
struct SweepSetting {
  PlanOptions plan;
  bool adaptive = false;
};

// The settings of a sweep as the product of the values to try.
struct SweepGrid {
  std::vector<uint64_t> thresholds;  // sizes, or PlanOptions::kNever
  std::vector<CopyOp> copy_ops = {CopyOp::kWritev};
  std::vector<uint64_t> gaps = {0};  // PlanOptions::zc_gap_bytes
  std::vector<bool> adaptive = {false};
};

// Every combination of `grid`'s values (other PlanOptions at their
// defaults), ordered by adaptive, then gap, then copy op, then threshold
// (the innermost), so that each series of a plot is one run of thresholds.
std::vector<SweepSetting> GridSettings(const SweepGrid& grid);

// One repetition of one setting.
struct SweepRun {
  double seconds = 0;      // wall time of the timed part
  double cpu_seconds = 0;  // sending thread, user + system (RUSAGE_THREAD)
  uint64_t messages = 0;
  uint64_t bytes = 0;
  SendStats stats;  // the executor's counters for the run's connection
};

struct SweepPoint {
  SweepSetting setting;
  std::vector<SweepRun> runs;
};

// Medians (and min..max) over a point's runs.
struct PointSummary {
  double mb_per_s = 0, mb_per_s_min = 0, mb_per_s_max = 0;  // 10^6 bytes/s
  double cpu_s_per_gb = 0, cpu_s_per_gb_min = 0, cpu_s_per_gb_max = 0;
  double cpu_ns_per_message = 0;  // median
  double ops_per_message = 0;     // over all runs
  double zero_copy_share = 0;     // bytes sent zero-copy / bytes sent
  // Notifications that said the kernel copied / notifications; -1 if none.
  double copied_share = -1;
  uint64_t short_sends = 0;  // over all runs
  uint64_t notifications = 0;
  uint64_t copied_notifications = 0;
};

// The summary of `point`'s runs; runs without time or bytes are skipped (all
// zero when none is left).
PointSummary Summarize(const SweepPoint& point);

struct Recommendation {
  size_t index = 0;  // into the points
  // Points whose CPU per GB is within the noise of the lowest (including
  // `index`).
  std::vector<size_t> within_noise;
  std::string reason;  // one sentence
};

// The setting with the best throughput per CPU: the lowest median CPU
// seconds per GB. Points whose median lies within the noise of the lowest
// (its min..max over the repetitions, and at least 5%) count as ties; of
// those the one with the highest median throughput wins. Requires at least
// one point with runs, and `summaries[i]` to be `Summarize(points[i])`.
Recommendation Recommend(absl::Span<const SweepPoint> points,
                         absl::Span<const PointSummary> summaries);

// "threshold 16K, writev" (and ", gap 64", ", adaptive" when set).
std::string DescribeSetting(const SweepSetting& setting);

}  // namespace zcplan

#endif  // ZCPLAN_TUNE_SUMMARY_H_
