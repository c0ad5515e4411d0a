// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tune/plot.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/trace.h"

namespace zcplan {
namespace {

constexpr double kWidth = 860, kPanelH = 250, kLeft = 80, kRight = 190,
                 kTop = 70, kGap = 80;
constexpr double kPlotW = kWidth - kLeft - kRight;
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                   "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"};

// Text for an SVG text node: markup escaped, control characters (invalid in
// XML 1.0) as '?'.
std::string XmlText(absl::string_view s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f ? '?' : ch;
    }
  }
  return out;
}

// A y axis: where a value sits in a panel, and the ticks to label.
struct Axis {
  bool log = false;
  double lo = 0, hi = 1;  // the value range; for a log axis, its log10
  std::vector<double> ticks;

  // 0 at the bottom of the panel, 1 at the top; clipped to the panel.
  double Fraction(double v) const {
    double f = 0;
    if (!log) {
      f = (v - lo) / (hi - lo);
    } else if (v > 0) {
      f = (std::log10(v) - lo) / (hi - lo);
    }
    return std::clamp(f, 0.0, 1.0);
  }
};

// From 0 to four round steps (1, 2 or 5 times a power of ten) above `max`.
Axis LinearAxis(double max) {
  if (!(max > 0)) max = 1;
  const double raw = max / 4;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  Axis a;
  a.hi = 4 * step;
  for (int t = 0; t <= 4; ++t) {
    a.ticks.push_back(std::round(a.hi * t / 4 / mag) * mag);
  }
  return a;
}

// The 1-2-5 value (1, 2 or 5 times a power of ten) at or below `v` > 0, and
// the one at or above it.
double Round125Down(double v) {
  const double mag = std::pow(10, std::floor(std::log10(v)));
  double down = mag / 2;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag <= v * (1 + 1e-9)) down = m * mag;
  }
  return down;
}
double Round125Up(double v) {
  const double mag = std::pow(10, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= v * (1 - 1e-9)) return m * mag;
  }
  return 20 * mag;
}

// From the 1-2-5 value at or below `min` to the one at or above `max` (both
// positive), with a tick at each 1-2-5 value; past three decades, from
// power of ten to power of ten with a tick at each.
Axis LogAxis(double min, double max) {
  if (!(min > 0) || !(max >= min)) min = max = 1;
  double lo = Round125Down(min);
  double hi = Round125Up(max);
  if (hi <= lo) hi = Round125Up(lo * 1.5);
  const bool decades = std::log10(hi / lo) > 3;
  if (decades) {
    lo = std::pow(10, std::floor(std::log10(min) + 1e-9));
    hi = std::pow(10, std::ceil(std::log10(max) - 1e-9));
  }
  Axis a;
  a.log = true;
  a.lo = std::log10(lo);
  a.hi = std::log10(hi);
  for (double k = std::floor(a.lo) - 1; k <= std::ceil(a.hi); ++k) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10, k);
      if ((m == 1 || !decades) && v >= lo * (1 - 1e-9) &&
          v <= hi * (1 + 1e-9)) {
        a.ticks.push_back(v);
      }
    }
  }
  return a;
}

// One panel: a quantity of the summaries over the thresholds.
struct Panel {
  const char* label;
  double PointSummary::*mid;
  double PointSummary::*lo;
  double PointSummary::*hi;
  double top;  // y of the panel's top edge
  Axis axis;

  double Y(double v) const { return top + kPanelH * (1 - axis.Fraction(v)); }
};

std::string SeriesName(const SweepSetting& s) {
  std::string name(CopyOpName(s.plan.copy_op));
  if (s.plan.zc_gap_bytes > 0) {
    absl::StrAppend(&name, ", gap ", FormatSize(s.plan.zc_gap_bytes));
  }
  if (s.adaptive) absl::StrAppend(&name, ", adaptive");
  return name;
}

double XOf(absl::Span<const uint64_t> thresholds, uint64_t threshold) {
  if (thresholds.size() <= 1) return kLeft + kPlotW / 2;
  const size_t k = std::find(thresholds.begin(), thresholds.end(), threshold) -
                   thresholds.begin();
  return kLeft + kPlotW * static_cast<double>(k) /
                     static_cast<double>(thresholds.size() - 1);
}

// The panel's label, axes, grid lines with their labels, and the thresholds.
void DrawFrame(const Panel& p, absl::Span<const uint64_t> thresholds,
               std::string* svg) {
  absl::StrAppendFormat(
      svg,
      "<text x=\"%.0f\" y=\"%.0f\" font-weight=\"bold\">%s</text>\n"
      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
      "stroke=\"black\"/>\n"
      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
      "stroke=\"black\"/>\n",
      kLeft, p.top - 8, p.label, kLeft, p.top, kLeft, p.top + kPanelH, kLeft,
      p.top + kPanelH, kLeft + kPlotW, p.top + kPanelH);
  for (double v : p.axis.ticks) {
    absl::StrAppendFormat(svg,
                          "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" "
                          "y2=\"%.1f\" stroke=\"#ddd\"/>\n<text x=\"%.0f\" "
                          "y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                          kLeft, p.Y(v), kLeft + kPlotW, p.Y(v), kLeft - 6,
                          p.Y(v) + 4, v);
  }
  for (uint64_t t : thresholds) {
    absl::StrAppendFormat(svg,
                          "<text x=\"%.1f\" y=\"%.0f\" "
                          "text-anchor=\"middle\">%s</text>\n",
                          XOf(thresholds, t), p.top + kPanelH + 16,
                          FormatThreshold(t));
  }
}

// One series in one panel: bars, dots and the line through the medians.
void DrawSeries(const Panel& p, absl::Span<const SweepPoint> points,
                absl::Span<const PointSummary> sums,
                absl::Span<const uint64_t> thresholds,
                const std::vector<size_t>& indices, const char* color,
                size_t recommended, std::string* svg) {
  std::string path;
  for (size_t i : indices) {
    const double x = XOf(thresholds, points[i].setting.plan.zc_threshold);
    const double y = p.Y(sums[i].*p.mid);
    absl::StrAppendFormat(&path, "%s%.1f,%.1f ", path.empty() ? "M" : "L", x,
                          y);
    absl::StrAppendFormat(
        svg,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"%s\"/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" "
        "fill=\"%s\"/>\n",
        x, p.Y(sums[i].*p.lo), x, p.Y(sums[i].*p.hi), color, x, y,
        i == recommended ? 6 : 3, i == recommended ? "black" : color);
  }
  absl::StrAppendFormat(svg,
                        "<path d=\"%s\" fill=\"none\" stroke=\"%s\" "
                        "stroke-width=\"2\"/>\n",
                        path, color);
}

void DrawLegendEntry(int row, const std::string& name, const char* color,
                     std::string* svg) {
  const double y = kTop + 10 + 18 * row;
  absl::StrAppendFormat(
      svg,
      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
      "stroke-width=\"3\"/>\n<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
      kLeft + kPlotW + 15, y, kLeft + kPlotW + 35, y, color,
      kLeft + kPlotW + 40, y + 4, XmlText(name));
}

}  // namespace

std::string SweepPlotSvg(absl::Span<const SweepPoint> points,
                         absl::Span<const PointSummary> sums,
                         absl::Span<const uint64_t> thresholds,
                         absl::string_view title, size_t recommended) {
  std::map<std::string, std::vector<size_t>> series;
  for (size_t i = 0; i < points.size(); ++i) {
    series[SeriesName(points[i].setting)].push_back(i);
  }
  double mb_max = 0, cpu_max = 0, cpu_min = 0;
  for (const PointSummary& s : sums) {
    mb_max = std::max(mb_max, s.mb_per_s_max);
    cpu_max = std::max(cpu_max, s.cpu_s_per_gb_max);
    if (s.cpu_s_per_gb_min > 0 &&
        (cpu_min == 0 || s.cpu_s_per_gb_min < cpu_min)) {
      cpu_min = s.cpu_s_per_gb_min;
    }
  }
  const Panel panels[] = {
      {"throughput, MB/s (higher is better)", &PointSummary::mb_per_s,
       &PointSummary::mb_per_s_min, &PointSummary::mb_per_s_max, kTop,
       LinearAxis(mb_max)},
      {"sender CPU, s per GB (lower is better; log scale)",
       &PointSummary::cpu_s_per_gb, &PointSummary::cpu_s_per_gb_min,
       &PointSummary::cpu_s_per_gb_max, kTop + kPanelH + kGap,
       LogAxis(cpu_min, cpu_max)},
  };
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
      "height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n",
      kWidth, kTop + 2 * kPanelH + kGap + 70, kLeft, XmlText(title));
  for (const Panel& p : panels) {
    DrawFrame(p, thresholds, &svg);
    int color = 0;
    for (const auto& [name, indices] : series) {
      DrawSeries(p, points, sums, thresholds, indices, kColors[color % 8],
                 recommended, &svg);
      if (&p == &panels[0])
        DrawLegendEntry(color, name, kColors[color % 8], &svg);
      ++color;
    }
  }
  const Panel& cpu = panels[1];
  absl::StrAppendFormat(
      &svg,
      "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">zero-copy "
      "threshold</text>\n"
      "<text x=\"%.0f\" y=\"%.0f\" fill=\"#555\">dots: medians; bars: "
      "min..max over repetitions; large black dot: recommended</text>\n",
      kLeft + kPlotW / 2, cpu.top + kPanelH + 36, kLeft,
      kTop + 2 * kPanelH + kGap + 62);
  return svg + "</svg>\n";
}

}  // namespace zcplan
