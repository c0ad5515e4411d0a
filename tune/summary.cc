// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tune/summary.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "zcplan/planner/trace.h"

namespace zcplan {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

std::string DescribeSetting(const SweepSetting& s) {
  std::string out =
      absl::StrCat("threshold ", FormatThreshold(s.plan.zc_threshold), ", ",
                   CopyOpName(s.plan.copy_op));
  if (s.plan.zc_gap_bytes > 0) {
    absl::StrAppend(&out, ", gap ", FormatSize(s.plan.zc_gap_bytes));
  }
  if (s.adaptive) absl::StrAppend(&out, ", adaptive");
  return out;
}

std::vector<SweepSetting> GridSettings(const SweepGrid& grid) {
  std::vector<SweepSetting> settings;
  for (bool adaptive : grid.adaptive) {
    for (uint64_t gap : grid.gaps) {
      for (CopyOp op : grid.copy_ops) {
        for (uint64_t threshold : grid.thresholds) {
          SweepSetting s;
          s.plan.zc_threshold = threshold;
          s.plan.copy_op = op;
          s.plan.zc_gap_bytes = gap;
          s.adaptive = adaptive;
          settings.push_back(s);
        }
      }
    }
  }
  return settings;
}

PointSummary Summarize(const SweepPoint& point) {
  PointSummary s;
  std::vector<double> mbps, cpu_gb, ns_msg;
  uint64_t ops = 0, messages = 0, zc = 0, sent = 0;
  for (const SweepRun& r : point.runs) {
    if (r.seconds <= 0 || r.bytes == 0) continue;
    mbps.push_back(static_cast<double>(r.bytes) / r.seconds / 1e6);
    cpu_gb.push_back(r.cpu_seconds / (static_cast<double>(r.bytes) / 1e9));
    ns_msg.push_back(r.cpu_seconds * 1e9 / static_cast<double>(r.messages));
    for (uint64_t n : r.stats.ops) ops += n;
    messages += r.messages;
    zc += r.stats.bytes_zero_copy;
    sent += r.stats.bytes_zero_copy + r.stats.bytes_copied;
    s.short_sends += r.stats.short_sends;
    s.notifications += r.stats.notifications;
    s.copied_notifications += r.stats.copied_notifications;
  }
  if (mbps.empty()) return s;
  s.mb_per_s = Median(mbps);
  s.mb_per_s_min = *std::min_element(mbps.begin(), mbps.end());
  s.mb_per_s_max = *std::max_element(mbps.begin(), mbps.end());
  s.cpu_s_per_gb = Median(cpu_gb);
  s.cpu_s_per_gb_min = *std::min_element(cpu_gb.begin(), cpu_gb.end());
  s.cpu_s_per_gb_max = *std::max_element(cpu_gb.begin(), cpu_gb.end());
  s.cpu_ns_per_message = Median(ns_msg);
  s.ops_per_message =
      messages == 0 ? 0
                    : static_cast<double>(ops) / static_cast<double>(messages);
  s.zero_copy_share =
      sent == 0 ? 0 : static_cast<double>(zc) / static_cast<double>(sent);
  s.copied_share = s.notifications == 0
                       ? -1
                       : static_cast<double>(s.copied_notifications) /
                             static_cast<double>(s.notifications);
  return s;
}

Recommendation Recommend(absl::Span<const SweepPoint> points,
                         absl::Span<const PointSummary> summaries) {
  Recommendation r;
  size_t best = 0;
  for (size_t i = 1; i < summaries.size(); ++i) {
    if (summaries[i].cpu_s_per_gb < summaries[best].cpu_s_per_gb) best = i;
  }
  const PointSummary& b = summaries[best];
  const double limit = std::max(b.cpu_s_per_gb_max, b.cpu_s_per_gb * 1.05);
  r.index = best;
  for (size_t i = 0; i < summaries.size(); ++i) {
    if (summaries[i].cpu_s_per_gb > limit) continue;
    r.within_noise.push_back(i);
    if (summaries[i].mb_per_s > summaries[r.index].mb_per_s) r.index = i;
  }
  const PointSummary& w = summaries[r.index];
  r.reason =
      absl::StrFormat("lowest CPU per GB: %.3f s/GB (%s)", b.cpu_s_per_gb,
                      DescribeSetting(points[best].setting));
  if (r.within_noise.size() > 1) {
    absl::StrAppend(
        &r.reason,
        absl::StrFormat("; %d settings are within its noise (up to %.3f s/GB)",
                        r.within_noise.size(), limit));
    if (r.index != best) {
      absl::StrAppend(&r.reason,
                      absl::StrFormat(", of which %s has the highest "
                                      "throughput (%.0f MB/s)",
                                      DescribeSetting(points[r.index].setting),
                                      w.mb_per_s));
    } else {
      absl::StrAppend(&r.reason,
                      ", and it also has the highest throughput of those");
    }
  }
  return r;
}

}  // namespace zcplan
