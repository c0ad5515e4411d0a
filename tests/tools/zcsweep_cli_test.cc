// zcsweep run in-process: bad input, and short real sweeps over loopback
// whose table, recommendation, warning, files and calibrated weights are
// checked (they skip with the reason where io_uring is unavailable).

#include "tools/zcsweep_cli.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "planner/cost.h"

namespace zcplan {
namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Zcsweep(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = RunZcsweep(args, out, err);
  return {code, out.str(), err.str()};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string TempDir(const std::string& name) {
  return absl::StrCat(testing::TempDir(), "/", name);
}

class ZcsweepBadInputTest
    : public testing::TestWithParam<
          std::pair<std::vector<std::string>, std::string>> {};

TEST_P(ZcsweepBadInputTest, ExitTwoOneLineOnErrNothingOnOut) {
  const Result r = Zcsweep(GetParam().first);
  EXPECT_EQ(r.code, kZcsweepBadInput) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StartsWith(r.err, "zcsweep: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, GetParam().second)) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ZcsweepBadInputTest,
    testing::Values(
        std::make_pair(std::vector<std::string>{"--bogus", "1"}, "'--bogus'"),
        std::make_pair(std::vector<std::string>{"stray"}, "'stray'"),
        std::make_pair(std::vector<std::string>{"--thresholds", "12Q"}, "12Q"),
        std::make_pair(std::vector<std::string>{"--copy-ops", "splice"},
                       "'splice'"),
        std::make_pair(std::vector<std::string>{"--adaptive", "maybe"},
                       "'maybe'"),
        std::make_pair(std::vector<std::string>{"--repetitions", "0"}, "'0'"),
        std::make_pair(std::vector<std::string>{"--time", "fast"}, "'fast'"),
        std::make_pair(std::vector<std::string>{"--time", "-1s"}, "'-1s'"),
        std::make_pair(std::vector<std::string>{"--in-flight", "5000"},
                       "'5000'"),
        std::make_pair(std::vector<std::string>{"--peer", "nohost"},
                       "'nohost'"),
        std::make_pair(std::vector<std::string>{"--profile", "message:0"},
                       "'0'"),
        std::make_pair(std::vector<std::string>{"--profile", "video"},
                       "'video'"),
        std::make_pair(std::vector<std::string>{"--trace", "/nonexistent/t"},
                       "'/nonexistent/t'"),
        std::make_pair(std::vector<std::string>{"--split", "4K", "--profile",
                                                "message:16"},
                       "one workload"),
        std::make_pair(std::vector<std::string>{"--split", "0,0"},
                       "every buffer is empty"),
        std::make_pair(std::vector<std::string>{"--repetitions"},
                       "needs a value"),
        std::make_pair(std::vector<std::string>{"--out", "/proc/no/such/dir",
                                                "--split", "4K"},
                       "'/proc/no/such/dir'")));

TEST(ZcsweepTest, HelpGoesToOut) {
  const Result r = Zcsweep({"--help"});
  EXPECT_EQ(r.code, kZcsweepOk);
  EXPECT_TRUE(absl::StartsWith(r.out, "usage: zcsweep")) << r.out;
  EXPECT_EQ(r.err, "");
}

// A short sweep; empty result when io_uring is unavailable (the test skips).
Result ShortSweep(std::vector<std::string> extra, const std::string& dir) {
  std::vector<std::string> args = {
      "--thresholds", "0,16K,never", "--repetitions", "2",
      "--time",       "30ms",        "--out",         dir};
  args.insert(args.end(), extra.begin(), extra.end());
  return Zcsweep(args);
}

#define SKIP_IF_NO_IO_URING(r)                                \
  do {                                                        \
    if ((r).code == kZcsweepFailed &&                         \
        absl::StrContains((r).err, "io_uring unavailable")) { \
      GTEST_SKIP() << (r).err;                                \
    }                                                         \
  } while (0)

TEST(ZcsweepTest, SweepPrintsTableRecommendationWarningAndWritesFiles) {
  const std::string dir = TempDir("sweep1");
  const Result r = ShortSweep({"--profile", "message:64"}, dir);
  SKIP_IF_NO_IO_URING(r);
  ASSERT_EQ(r.code, kZcsweepOk) << r.err << r.out;
  for (const char* row : {"threshold 0, writev ", "threshold 16K, writev ",
                          "threshold never, writev "}) {
    EXPECT_TRUE(absl::StrContains(r.out, row)) << row << "\n" << r.out;
  }
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '<'), 1)
      << "one row marked recommended\n"
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\nrecommended: threshold ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "because: lowest CPU per GB")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "the noise is not known")) << r.out;
  // Loopback: every notification said the kernel copied.
  EXPECT_TRUE(absl::StrContains(r.out, "warning: every zero-copy notification"))
      << r.out;
  // Progress: one line per run.
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 6) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "[6/6] ")) << r.err;

  const std::vector<std::string> csv =
      absl::StrSplit(ReadFile(dir + "/sweep.csv"), '\n', absl::SkipEmpty());
  ASSERT_EQ(csv.size(), 7u);  // header + 3 settings x 2 repetitions
  EXPECT_TRUE(absl::StartsWith(csv[0], "threshold,copy_op,gap,adaptive"));
  EXPECT_TRUE(absl::StartsWith(csv[1], "0,writev,0,0,1,"));
  const std::string json = ReadFile(dir + "/sweep.json");
  EXPECT_TRUE(absl::StrContains(json, "\"all_notifications_copied\": true"))
      << json;
  EXPECT_EQ(std::count(json.begin(), json.end(), '{'), 1 + 3 * 3) << json;
  const std::string svg = ReadFile(dir + "/sweep.svg");
  EXPECT_TRUE(absl::StartsWith(svg, "<svg ")) << svg.substr(0, 100);
  EXPECT_TRUE(absl::StrContains(svg, ">16K</text>"));
  EXPECT_TRUE(absl::StrContains(svg, "throughput, MB/s"));
  EXPECT_TRUE(absl::EndsWith(svg, "</svg>\n"));
}

TEST(ZcsweepTest, CalibrateWritesWeightsThePlannerReads) {
  const std::string dir = TempDir("sweep2");
  const std::string weights = dir + "-weights.txt";
  const Result r =
      Zcsweep({"--thresholds", "0,4K,16K,64K,never", "--repetitions", "1",
               "--time", "30ms", "--out", dir, "--calibrate", weights,
               "--quiet", "--split", "4K,4K,16K,32K,2K,100,100,100,64K"});
  SKIP_IF_NO_IO_URING(r);
  ASSERT_EQ(r.code, kZcsweepOk) << r.err << r.out;
  EXPECT_EQ(r.err, "") << "--quiet";
  EXPECT_TRUE(absl::StrContains(r.out, "calibrated cost weights")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Kendall tau")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "the noise is not known")) << r.out;
  const std::string text = ReadFile(weights);
  EXPECT_TRUE(absl::StartsWith(text, "# zcplan cost weights")) << text;
  absl::StatusOr<CostWeights> parsed = ParseCostWeights(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_TRUE(ValidateCostWeights(*parsed).ok());
}

TEST(ZcsweepTest, UnreachablePeerFailsWithExitOne) {
  const Result r = Zcsweep(
      {"--peer", "127.0.0.1:1", "--split", "4K", "--out", TempDir("sweep3")});
  SKIP_IF_NO_IO_URING(r);
  EXPECT_EQ(r.code, kZcsweepFailed) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "cannot connect to 127.0.0.1:1"))
      << r.err;
}

}  // namespace
}  // namespace zcplan
