// SPDX-License-Identifier: Apache-2.0
// Tests of tune/plot.h: the SVG is well-formed XML, and the CPU axis is
// logarithmic (equal ratios are equal distances; labels at powers of ten).

#include "zcplan/tune/plot.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tune/summary.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

// "" when `xml` is one well-formed element (tags nested and closed, quoted
// attributes, only the five predefined entities, no control characters
// but newlines); else what is wrong.
std::string WellFormedError(absl::string_view xml) {
  std::vector<std::string> open;
  int roots = 0;
  for (size_t i = 0; i < xml.size();) {
    const char ch = xml[i];
    if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n') {
      return absl::StrCat("control character at ", i);
    }
    if (ch == '&') {
      const size_t semi = xml.find(';', i);
      const absl::string_view entity = xml.substr(i, semi - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" &&
          entity != "&quot;" && entity != "&apos;") {
        return absl::StrCat("bad entity at ", i);
      }
      i = semi + 1;
      continue;
    }
    if (ch == '>') return absl::StrCat("stray '>' at ", i);
    if (ch != '<') {
      if (open.empty() && ch != '\n')
        return absl::StrCat("text outside at ", i);
      ++i;
      continue;
    }
    // A tag: find its end outside quoted attribute values.
    size_t j = i + 1;
    bool quoted = false;
    for (; j < xml.size() && (quoted || xml[j] != '>'); ++j) {
      if (xml[j] == '"') quoted = !quoted;
      if (xml[j] == '<') return absl::StrCat("'<' inside a tag at ", j);
    }
    if (j == xml.size()) return "unterminated tag";
    absl::string_view tag = xml.substr(i + 1, j - i - 1);
    i = j + 1;
    if (absl::ConsumePrefix(&tag, "/")) {
      if (open.empty() || open.back() != tag) {
        return absl::StrCat("</", tag, "> closes nothing open");
      }
      open.pop_back();
      continue;
    }
    const bool empty = absl::ConsumeSuffix(&tag, "/");
    const std::string name(tag.substr(0, tag.find_first_of(" \n")));
    if (name.empty()) return "tag without a name";
    if (open.empty() && ++roots > 1) return "more than one root";
    if (!empty) open.push_back(name);
  }
  if (!open.empty()) return absl::StrCat("<", open.back(), "> not closed");
  return roots == 1 ? "" : "no root";
}

TEST(WellFormedErrorTest, CatchesWhatItLooksFor) {
  EXPECT_EQ(WellFormedError("<a x=\"1\"><b/>t &amp; u</a>\n"), "");
  EXPECT_NE(WellFormedError("<a><b></a>"), "");
  EXPECT_NE(WellFormedError("<a>x & y</a>"), "");
  EXPECT_NE(WellFormedError("<a>x</a><a/>"), "");
  EXPECT_NE(WellFormedError("<a>\x01</a>"), "");
}

SweepPoint PointAt(uint64_t threshold) {
  SweepPoint p;
  p.setting.plan.zc_threshold = threshold;
  return p;
}

PointSummary Cpu(double s_per_gb, double mb_per_s = 1000) {
  PointSummary s;
  s.cpu_s_per_gb = s.cpu_s_per_gb_min = s.cpu_s_per_gb_max = s_per_gb;
  s.mb_per_s = s.mb_per_s_min = s.mb_per_s_max = mb_per_s;
  return s;
}

// The cy of every circle, in document order.
std::vector<double> CircleYs(absl::string_view svg) {
  std::vector<double> ys;
  for (size_t at = svg.find("<circle "); at != absl::string_view::npos;
       at = svg.find("<circle ", at + 1)) {
    const size_t cy = svg.find("cy=\"", at) + 4;
    double y = 0;
    EXPECT_TRUE(absl::SimpleAtod(svg.substr(cy, svg.find('"', cy) - cy), &y));
    ys.push_back(y);
  }
  return ys;
}

TEST(SweepPlotSvgTest, IsWellFormedWithBothPanelsAndTheThresholds) {
  const std::vector<SweepPoint> points = {PointAt(0), PointAt(16384),
                                          PointAt(PlanOptions::kNever)};
  const std::vector<PointSummary> sums = {Cpu(2.5, 300), Cpu(0.4, 2000),
                                          Cpu(0.5, 1800)};
  const std::vector<uint64_t> thresholds = {0, 16384, PlanOptions::kNever};
  const std::string svg =
      SweepPlotSvg(points, sums, thresholds, "zcsweep: <a & b>\n", 1);
  EXPECT_EQ(WellFormedError(svg), "") << svg;
  EXPECT_TRUE(
      absl::StartsWith(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_TRUE(absl::EndsWith(svg, "</svg>\n"));
  EXPECT_THAT(svg, HasSubstr(">zcsweep: &lt;a &amp; b&gt;?</text>"));
  EXPECT_THAT(svg, HasSubstr(">throughput, MB/s (higher is better)</text>"));
  EXPECT_THAT(svg, HasSubstr(">sender CPU, s per GB (lower is better; log "
                             "scale)</text>"));
  for (const char* label : {">0</text>", ">16K</text>", ">never</text>",
                            ">zero-copy threshold</text>", ">writev</text>"}) {
    EXPECT_THAT(svg, HasSubstr(label));
  }
  EXPECT_EQ(CircleYs(svg).size(), 6u);  // each point in both panels
  EXPECT_THAT(svg, HasSubstr("r=\"6\" fill=\"black\""));  // recommended
  EXPECT_FALSE(absl::StrContains(svg, "nan"));
  EXPECT_FALSE(absl::StrContains(svg, "inf"));
}

// 0.01, 1 and 100 s/GB: on a log axis the two steps are equally long (on a
// linear one the first would be a hundredth of the second), and the labels
// are powers of ten.
TEST(SweepPlotSvgTest, CpuAxisIsLogarithmic) {
  const std::vector<SweepPoint> points = {PointAt(0), PointAt(4096),
                                          PointAt(65536)};
  const std::vector<PointSummary> sums = {Cpu(100), Cpu(1), Cpu(0.01)};
  const std::string svg =
      SweepPlotSvg(points, sums, {0, 4096, 65536}, "t", /*recommended=*/9);
  EXPECT_EQ(WellFormedError(svg), "") << svg;
  const std::vector<double> ys = CircleYs(svg);
  ASSERT_EQ(ys.size(), 6u);
  const double hundred = ys[3], one = ys[4], hundredth = ys[5];
  EXPECT_LT(hundred, one);  // higher CPU is higher up
  EXPECT_LT(one, hundredth);
  EXPECT_NEAR(one - hundred, hundredth - one, 0.2);
  EXPECT_GT(one - hundred, 100);
  for (const char* tick : {">0.01</text>", ">0.1</text>", ">1</text>",
                           ">10</text>", ">100</text>"}) {
    EXPECT_THAT(svg, HasSubstr(tick));
  }
  EXPECT_FALSE(absl::StrContains(svg, ">5</text>"))
      << "four decades: no 2x and 5x ticks";
  EXPECT_FALSE(absl::StrContains(svg, "fill=\"black\"")) << "none recommended";
}

// A point without runs (CPU 0) sits on the bottom edge of the CPU panel,
// and the others keep their spread.
TEST(SweepPlotSvgTest, ZeroCpuSitsOnTheBottomOfTheLogAxis) {
  const std::vector<SweepPoint> points = {PointAt(0), PointAt(4096),
                                          PointAt(65536)};
  const std::vector<PointSummary> sums = {Cpu(0, 0), Cpu(0.3), Cpu(0.6)};
  const std::string svg =
      SweepPlotSvg(points, sums, {0, 4096, 65536}, "t", /*recommended=*/1);
  EXPECT_EQ(WellFormedError(svg), "") << svg;
  const std::vector<double> ys = CircleYs(svg);
  ASSERT_EQ(ys.size(), 6u);
  EXPECT_GT(ys[3], ys[4]);
  EXPECT_GT(ys[4], ys[5]);
  EXPECT_FALSE(absl::StrContains(svg, "nan"));
  // From the 1-2-5 value below the lowest to the one above the highest
  // (0.2..1), with a tick at each.
  for (const char* tick : {">0.2</text>", ">0.5</text>", ">1</text>"}) {
    EXPECT_THAT(svg, HasSubstr(tick));
  }
  EXPECT_FALSE(absl::StrContains(svg, ">0.1</text>")) << svg;
  EXPECT_FALSE(absl::StrContains(svg, ">2</text>")) << svg;
  // The lowest tick is the panel's bottom edge, the highest its top.
  EXPECT_THAT(svg, HasSubstr("y=\"654.0\" text-anchor=\"end\">0.2</text>"));
  EXPECT_THAT(svg, HasSubstr("y=\"404.0\" text-anchor=\"end\">1</text>"));
}

}  // namespace
}  // namespace zcplan
