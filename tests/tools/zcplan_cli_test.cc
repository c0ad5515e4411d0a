// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/zcplan_cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "zcplan/planner/cost.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tests/util/files.h"
#include "zcplan/tests/util/runfiles.h"
#include "zcplan/tools/cli_io.h"

namespace zcplan {
namespace {

// The sample traces, in the runfiles (data = ["//tools:traces"]).
std::string HttpTrace() { return DataPath("tools/traces/http_server.trace"); }
std::string ChunkedTrace() { return DataPath("tools/traces/chunked.trace"); }

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Zcplan(const std::vector<std::string>& args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = RunZcplan(args, out, err);
  return {code, out.str(), err.str()};
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// The number after `"key": ` at or after `from` in a JSON text.
double JsonNumber(const std::string& json, const std::string& key,
                  size_t from = 0) {
  const std::string needle = absl::StrCat("\"", key, "\": ");
  const size_t at = json.find(needle, from);
  EXPECT_NE(at, std::string::npos) << key;
  if (at == std::string::npos) return -1;
  const size_t begin = at + needle.size();
  const size_t end = json.find_first_of(",}", begin);
  double value = -1;
  EXPECT_TRUE(absl::SimpleAtod(json.substr(begin, end - begin), &value))
      << json.substr(begin, end - begin);
  return value;
}

TEST(ZcplanPlanTest, SeedExampleTable) {
  const Result r =
      Zcplan({"plan", "--threshold=16K", "4K", "4K", "16K", "32K", "2K"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "options: threshold 16K, copy op writev, at most 1024 iovecs and "
            "2147479552 bytes per op, 64 ops per chain, gap off\n"
            "\n"
            "batch 1: 5 iovecs, 58K (59392 bytes) -> 3 ops in 1 chain\n"
            "  writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]\n"
            "\n"
            "  chain  op          iovecs  offset  bytes         linked\n"
            "      0  writev      0..1         0     8K   8192  yes\n"
            "      0  sendmsg_zc  2..3         0    48K  49152  yes\n"
            "      0  send        4            0     2K   2048  no\n");
}

TEST(ZcplanPlanTest, FlagsOfOneRunDoNotCarryOverToTheNext) {
  // Flags are process-wide Abseil flags; each run starts from the defaults.
  const Result set = Zcplan({"plan", "--threshold=never", "--gap=1K",
                             "--max-ops=2", "--copy-op=sendmsg", "64K"});
  ASSERT_EQ(set.code, 0) << set.err;
  EXPECT_TRUE(absl::StartsWith(
      set.out,
      "options: threshold never, copy op sendmsg, at most 1024 "
      "iovecs and 2147479552 bytes per op, 2 ops per chain, gap 1K\n"))
      << set.out;
  const Result next = Zcplan({"plan", "64K"});
  ASSERT_EQ(next.code, 0) << next.err;
  EXPECT_TRUE(absl::StartsWith(
      next.out, absl::StrCat("options: threshold ",
                             FormatThreshold(PlanOptions().zc_threshold),
                             ", copy op writev, at most 1024 iovecs and "
                             "2147479552 bytes per op, 64 ops per chain, gap "
                             "off\n")))
      << next.out;
  // And a run that failed halfway leaves nothing set either.
  EXPECT_EQ(Zcplan({"plan", "--threshold=never", "--max-ops=x", "4K"}).code, 2);
  EXPECT_EQ(Zcplan({"plan", "64K"}).out, next.out);
}

TEST(ZcplanPlanTest, SeedExampleJsonIsExact) {
  const Result r = Zcplan({"plan", "--threshold", "16K", "--format", "json",
                           "4K", "4K", "16K", "32K", "2K"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "{\"batch\": 1, \"iovecs\": 5, \"bytes\": 59392, \"chains\": 1, "
            "\"ops\": ["
            "{\"op\": \"writev\", \"first_iov\": 0, \"iov_count\": 2, "
            "\"offset\": 0, \"bytes\": 8192, \"linked\": true, \"chain\": 0}, "
            "{\"op\": \"sendmsg_zc\", \"first_iov\": 2, \"iov_count\": 2, "
            "\"offset\": 0, \"bytes\": 49152, \"linked\": true, \"chain\": 0}, "
            "{\"op\": \"send\", \"first_iov\": 4, \"iov_count\": 1, "
            "\"offset\": 0, \"bytes\": 2048, \"linked\": false, \"chain\": 0}"
            "]}\n");
}

TEST(ZcplanPlanTest, FlagValueMayFollowAsNextArgument) {
  const Result joined =
      Zcplan({"plan", "--threshold=4K", "--copy-op=sendmsg", "--max-iovs=2",
              "--gap=16", "1K", "1K", "1K", "8K"});
  const Result split =
      Zcplan({"plan", "--threshold", "4K", "--copy-op", "sendmsg", "--max-iovs",
              "2", "--gap", "16", "1K", "1K", "1K", "8K"});
  EXPECT_EQ(joined.code, 0);
  EXPECT_EQ(joined.out, split.out);
  EXPECT_TRUE(absl::StrContains(joined.out, "sendmsg[1K,1K] -> send[1K]"))
      << joined.out;
}

TEST(ZcplanPlanTest, SizesMaySpanArgumentsAndCommas) {
  const Result r = Zcplan({"plan", "4K,4K", "16K", "32K,2K"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(absl::StrContains(
      r.out, "  writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]\n"))
      << r.out;
}

TEST(ZcplanPlanTest, ThresholdNeverCopiesEverything) {
  const Result r =
      Zcplan({"plan", "--threshold=never", "4K", "4K", "16K", "32K", "2K"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "  writev[4K,4K,16K,32K,2K]\n"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "threshold never")) << r.out;
}

TEST(ZcplanPlanTest, ThresholdZeroSendsEverythingZeroCopy) {
  const Result r = Zcplan({"plan", "--threshold=0", "4K", "4K", "2K"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "  sendmsg_zc[4K,4K,2K]\n")) << r.out;
}

TEST(ZcplanPlanTest, GapJoinsChunkFramingIntoOneZeroCopyOp) {
  const std::vector<std::string> sizes = {"231", "6", "32K", "8",
                                          "32K", "8", "16K", "7"};
  std::vector<std::string> args = {"plan"};
  args.insert(args.end(), sizes.begin(), sizes.end());
  const Result without = Zcplan(args);
  args.insert(args.begin() + 1, "--gap=16");
  const Result with = Zcplan(args);
  EXPECT_EQ(without.code, 0);
  EXPECT_EQ(with.code, 0);
  EXPECT_TRUE(absl::StrContains(without.out,
                                "  writev[231,6] -> send_zc[32K] -> send[8] "
                                "-> send_zc[32K] -> send[8] -> send_zc[16K] "
                                "-> send[7]\n"))
      << without.out;
  EXPECT_TRUE(absl::StrContains(
      with.out, "  writev[231,6] -> sendmsg_zc[32K,8,32K,8,16K] -> send[7]\n"))
      << with.out;
  EXPECT_TRUE(absl::StrContains(with.out, "gap 16\n")) << with.out;
}

TEST(ZcplanPlanTest, MaxOpsSplitsBatchIntoChainsWithAbsoluteIovIndices) {
  const Result r = Zcplan({"plan", "--max-ops=2", "--format=json", "4K", "4K",
                           "16K", "32K", "2K", "1K"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(
      r.out,
      "{\"batch\": 1, \"iovecs\": 6, \"bytes\": 60416, \"chains\": 2, "
      "\"ops\": ["
      "{\"op\": \"writev\", \"first_iov\": 0, \"iov_count\": 2, "
      "\"offset\": 0, \"bytes\": 8192, \"linked\": true, \"chain\": 0}, "
      "{\"op\": \"sendmsg_zc\", \"first_iov\": 2, \"iov_count\": 2, "
      "\"offset\": 0, \"bytes\": 49152, \"linked\": false, \"chain\": 0}, "
      "{\"op\": \"writev\", \"first_iov\": 4, \"iov_count\": 2, "
      "\"offset\": 0, \"bytes\": 3072, \"linked\": false, \"chain\": 1}"
      "]}\n");
  const Result table =
      Zcplan({"plan", "--max-ops=2", "4K", "4K", "16K", "32K", "2K", "1K"});
  EXPECT_TRUE(absl::StrContains(
      table.out,
      "  chain 0: writev[4K,4K] -> sendmsg_zc[16K,32K]\n  chain 1: "
      "writev[2K,1K]\n"))
      << table.out;
}

TEST(ZcplanPlanTest, MaxBytesSplitsInsideAnIovecWithOffset) {
  const Result r = Zcplan({"plan", "--max-bytes=20K", "--format=json", "48K"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(absl::StrContains(
      r.out,
      "{\"op\": \"send_zc\", \"first_iov\": 0, \"iov_count\": 1, "
      "\"offset\": 20480, \"bytes\": 20480, \"linked\": true, \"chain\": 0}"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"offset\": 40960, \"bytes\": 8192"))
      << r.out;
}

TEST(ZcplanPlanTest, ZeroSizedBatchHasNothingToSend) {
  const Result r = Zcplan({"plan", "0", "0"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "0 ops in 0 chains\n  nothing to send"))
      << r.out;
}

TEST(ZcplanPlanTest, TraceFileGivesOneJsonLinePerBatchWithLineNumbers) {
  const std::string path = WriteTestFile(
      "plan.trace", "# two batches\n4K 4K 16K\n\n2K, 32K  # trailing\n");
  const Result r = Zcplan({"plan", "--trace", path, "--format=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "{\"batch\": 1, \"line\": 2, \"iovecs\": 3, \"bytes\": 24576, "
      "\"chains\": 1, \"ops\": ["
      "{\"op\": \"writev\", \"first_iov\": 0, \"iov_count\": 2, "
      "\"offset\": 0, \"bytes\": 8192, \"linked\": true, \"chain\": 0}, "
      "{\"op\": \"send_zc\", \"first_iov\": 2, \"iov_count\": 1, "
      "\"offset\": 0, \"bytes\": 16384, \"linked\": false, \"chain\": 0}]}\n"
      "{\"batch\": 2, \"line\": 4, \"iovecs\": 2, \"bytes\": 34816, "
      "\"chains\": 1, \"ops\": ["
      "{\"op\": \"send\", \"first_iov\": 0, \"iov_count\": 1, "
      "\"offset\": 0, \"bytes\": 2048, \"linked\": true, \"chain\": 0}, "
      "{\"op\": \"send_zc\", \"first_iov\": 1, \"iov_count\": 1, "
      "\"offset\": 0, \"bytes\": 32768, \"linked\": false, \"chain\": 0}]}\n");

  const Result table = Zcplan({"plan", "--trace=" + path});
  EXPECT_EQ(table.code, 0);
  EXPECT_TRUE(absl::StrContains(table.out, "batch 2 (line 4): 2 iovecs"))
      << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "\ntotal: 2 batches, 2 chains"))
      << table.out;
}

TEST(ZcplanTraceTest, SampleTracesParseAndModelWhatTheySay) {
  absl::StatusOr<std::vector<TraceBatch>> http =
      ParseTrace(ReadTestFile(HttpTrace()));
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_GE(http->size(), 20u);
  EXPECT_LE(http->size(), 40u);
  bool has_large = false;
  for (const TraceBatch& b : *http) {
    EXPECT_GE(b.sizes[0], 200u) << "header, line " << b.line;
    EXPECT_LE(b.sizes[0], 600u) << "header, line " << b.line;
    for (uint64_t s : b.sizes) has_large |= s >= 16 * 1024;
  }
  EXPECT_TRUE(has_large);

  absl::StatusOr<std::vector<TraceBatch>> chunked =
      ParseTrace(ReadTestFile(ChunkedTrace()));
  ASSERT_TRUE(chunked.ok()) << chunked.status();
  EXPECT_GE(chunked->size(), 10u);
  int terminators = 0;
  for (const TraceBatch& b : *chunked) terminators += b.sizes.back() == 7;
  EXPECT_GE(terminators, 10);

  // The chunked trace is where the gap knob pays.
  PlanOptions options;
  const uint64_t threshold[] = {16 * 1024};
  absl::StatusOr<Simulation> no_gap =
      Simulate(*chunked, threshold, options, CostWeights());
  options.zc_gap_bytes = 16;
  absl::StatusOr<Simulation> gap =
      Simulate(*chunked, threshold, options, CostWeights());
  ASSERT_TRUE(no_gap.ok() && gap.ok());
  EXPECT_LT(gap->results[0].cost.ops() * 2, no_gap->results[0].cost.ops());
}

TEST(ZcplanPlanTest, PlansBothSampleTraces) {
  for (const std::string& trace : {HttpTrace(), ChunkedTrace()}) {
    const Result r = Zcplan({"plan", "--trace", trace, "--format=json"});
    EXPECT_EQ(r.code, 0) << r.err;
    absl::StatusOr<std::vector<TraceBatch>> batches =
        ParseTrace(ReadTestFile(trace));
    ASSERT_TRUE(batches.ok());
    const std::vector<std::string> lines = Lines(r.out);
    ASSERT_EQ(lines.size(), batches->size()) << trace;
    for (size_t i = 0; i < lines.size(); ++i) {
      EXPECT_TRUE(absl::StartsWith(
          lines[i], absl::StrCat("{\"batch\": ", i + 1,
                                 ", \"line\": ", (*batches)[i].line, ", ")))
          << lines[i];
      EXPECT_TRUE(absl::EndsWith(lines[i], "}]}")) << lines[i];
    }
  }
}

// The threshold Simulate() ranks best for the sample trace.
uint64_t LibraryBest(const std::string& trace,
                     absl::Span<const uint64_t> thresholds,
                     const PlanOptions& options = PlanOptions()) {
  absl::StatusOr<std::vector<TraceBatch>> batches =
      ParseTrace(ReadTestFile(trace));
  EXPECT_TRUE(batches.ok());
  absl::StatusOr<Simulation> sim =
      Simulate(*batches, thresholds, options, CostWeights());
  EXPECT_TRUE(sim.ok());
  return sim->results[sim->best].threshold;
}

TEST(ZcplanSimulateTest, TableMarksTheBestThresholdOfTheCostModel) {
  const uint64_t thresholds[] = {1024, 4096, 16384, 65536, PlanOptions::kNever};
  for (const std::string& trace : {HttpTrace(), ChunkedTrace()}) {
    const Result r = Zcplan(
        {"simulate", "--trace", trace, "--thresholds", "1K,4K,16K,64K,never"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    const uint64_t best = LibraryBest(trace, thresholds);
    const std::string best_name = best == 1024    ? "1K"
                                  : best == 4096  ? "4K"
                                  : best == 16384 ? "16K"
                                  : best == 65536 ? "64K"
                                                  : "never";
    EXPECT_TRUE(absl::StrContains(
        r.out, absl::StrCat("\nbest (* above, lowest estimated cost): "
                            "threshold ",
                            best_name, "\n")))
        << r.out;
    int marked = 0;
    for (const std::string& line : Lines(r.out)) {
      if (!absl::StartsWith(line, "*")) continue;
      ++marked;
      EXPECT_TRUE(absl::StrContains(line, absl::StrCat(" ", best_name, " ")))
          << line;
      EXPECT_TRUE(absl::EndsWith(line, " best")) << line;
    }
    EXPECT_EQ(marked, 1) << r.out;
    // One row per threshold below the header.
    for (const char* name : {" 1K ", " 4K ", " 16K ", " 64K ", " never "}) {
      EXPECT_TRUE(absl::StrContains(r.out, name)) << name;
    }
  }
}

TEST(ZcplanSimulateTest, SaysWhichWeightsWereUsedAndThatTheyAreUncalibrated) {
  const Result r = Zcplan({"simulate", "--trace", HttpTrace()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.out,
      "\nweights: per_op=1500 per_zc_op=800 per_copy_byte=0.2 per_zc_byte=0 "
      "per_copy_iov=20 per_zc_iov=200 per_pinned_page=50 page_size=4096\n"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "default weights, rough uncalibrated"))
      << r.out;

  const Result set =
      Zcplan({"simulate", "--trace", HttpTrace(), "--per-op=100"});
  ASSERT_EQ(set.code, 0) << set.err;
  EXPECT_TRUE(absl::StrContains(set.out, "weights: per_op=100 ")) << set.out;
  EXPECT_TRUE(absl::StrContains(set.out, "weights not set by a flag"))
      << set.out;
}

TEST(ZcplanSimulateTest, JsonNamesTheBestThreshold) {
  const Result r = Zcplan({"simulate", "--trace", ChunkedTrace(),
                           "--thresholds", "1K..64K,never", "--format=json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const uint64_t thresholds[] = {1024,  2048,  4096,  8192,
                                 16384, 32768, 65536, PlanOptions::kNever};
  const uint64_t best = LibraryBest(ChunkedTrace(), thresholds);
  ASSERT_NE(best, PlanOptions::kNever);
  EXPECT_EQ(JsonNumber(r.out, "best_threshold"), best);
  EXPECT_EQ(JsonNumber(r.out, "batches"), 22);
  size_t rows = 0;
  size_t best_rows = 0;
  for (const std::string& line : Lines(r.out)) {
    if (!absl::StartsWith(line, "  {\"threshold\": ")) continue;
    ++rows;
    if (absl::StrContains(line, "\"best\": true")) {
      ++best_rows;
      EXPECT_EQ(JsonNumber(line, "threshold"), best);
    }
  }
  EXPECT_EQ(rows, 8u);
  EXPECT_EQ(best_rows, 1u);
  EXPECT_TRUE(absl::StrContains(r.out, "{\"threshold\": \"never\", ")) << r.out;
  for (const char* field :
       {"\"ops_by_kind\": {\"writev\": ", "\"bytes_copied\": ",
        "\"bytes_zero_copy\": ", "\"iovs_copied\": ", "\"iovs_zero_copy\": ",
        "\"pages_pinned\": ", "\"cost\": ", "\"ops_per_batch\": ",
        "\"defaults\": true"}) {
    EXPECT_TRUE(absl::StrContains(r.out, field)) << field;
  }
}

TEST(ZcplanSimulateTest, RangeDoublesUpToTheBound) {
  const Result r = Zcplan(
      {"simulate", "--thresholds=1K..7K,16K", "--format", "json", "4K", "16K"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<double> got;
  for (const std::string& line : Lines(r.out)) {
    if (absl::StartsWith(line, "  {\"threshold\": ")) {
      got.push_back(JsonNumber(line, "threshold"));
    }
  }
  EXPECT_EQ(got, (std::vector<double>{1024, 2048, 4096, 16384}));
}

TEST(ZcplanSimulateTest, GapLowersTheCostOfTheChunkedTrace) {
  const Result without = Zcplan({"simulate", "--trace", ChunkedTrace(),
                                 "--thresholds=16K", "--format=json"});
  const Result with =
      Zcplan({"simulate", "--trace", ChunkedTrace(), "--thresholds=16K",
              "--format=json", "--gap", "16"});
  ASSERT_EQ(without.code, 0);
  ASSERT_EQ(with.code, 0);
  EXPECT_EQ(JsonNumber(with.out, "zc_gap_bytes"), 16);
  EXPECT_LT(JsonNumber(with.out, "cost"), JsonNumber(without.out, "cost"));
}

TEST(ZcplanSimulateTest, WeightsFileSetsTheWeightsOfTheCostModel) {
  const std::string path =
      WriteTestFile("calibrated.weights",
                    "# from zcsweep --calibrate\n"
                    "per_op 100\n"
                    "per_zc_op 0   # folded into per_zc_iov\n"
                    "\n"
                    "per_copy_byte 1.5\n"
                    "page_size 16384\n");
  const Result table =
      Zcplan({"simulate", "--trace", HttpTrace(), "--weights", path});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_EQ(table.err, "");
  // Named weights from the file, the others the defaults.
  EXPECT_TRUE(absl::StrContains(
      table.out,
      "\nweights: per_op=100 per_zc_op=0 per_copy_byte=1.5 per_zc_byte=0 "
      "per_copy_iov=20 per_zc_iov=200 per_pinned_page=50 page_size=16384\n"))
      << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "\nnote: weights from " + path))
      << table.out;
  EXPECT_FALSE(absl::StrContains(table.out, "default weights")) << table.out;
  EXPECT_FALSE(absl::StrContains(table.out, "uncalibrated")) << table.out;

  const Result json = Zcplan({"simulate", "--trace", HttpTrace(),
                              "--format=json", "--weights=" + path});
  ASSERT_EQ(json.code, 0) << json.err;
  const size_t weights_at = json.out.find("\"weights\": {");
  ASSERT_NE(weights_at, std::string::npos) << json.out;
  EXPECT_EQ(JsonNumber(json.out, "per_op", weights_at), 100);
  EXPECT_EQ(JsonNumber(json.out, "per_zc_op", weights_at), 0);
  EXPECT_EQ(JsonNumber(json.out, "per_copy_byte", weights_at), 1.5);
  EXPECT_EQ(JsonNumber(json.out, "per_zc_iov", weights_at), 200);
  EXPECT_EQ(JsonNumber(json.out, "page_size", weights_at), 16384);
  EXPECT_TRUE(absl::StrContains(json.out, "\"defaults\": false")) << json.out;
  EXPECT_FALSE(absl::StrContains(json.out, "\"defaults\": true")) << json.out;

  // The costs are those of the same weights given as flags, not the
  // defaults'.
  const Result flags = Zcplan({"simulate", "--trace", HttpTrace(),
                               "--format=json", "--per-op=100", "--per-zc-op=0",
                               "--per-copy-byte=1.5", "--page-size=16K"});
  ASSERT_EQ(flags.code, 0) << flags.err;
  EXPECT_EQ(json.out, flags.out);
  const Result defaults =
      Zcplan({"simulate", "--trace", HttpTrace(), "--format=json"});
  ASSERT_EQ(defaults.code, 0) << defaults.err;
  EXPECT_NE(JsonNumber(json.out, "cost"), JsonNumber(defaults.out, "cost"));
}

TEST(ZcplanSimulateTest, WeightsFileWrittenByFormatCostWeightsReadsBack) {
  CostWeights w;
  w.per_op = 987.654321;
  w.per_zc_iov = 0.125;
  w.page_size = 8192;
  const std::string path =
      WriteTestFile("formatted.weights", FormatCostWeights(w));
  const Result r = Zcplan({"simulate", "--trace", ChunkedTrace(),
                           "--format=json", "--weights", path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(JsonNumber(r.out, "per_op"), 987.654);  // JSON keeps 6 digits.
  EXPECT_EQ(JsonNumber(r.out, "per_zc_iov"), 0.125);
  EXPECT_EQ(JsonNumber(r.out, "page_size"), 8192);
}

class ZcplanHelpTest : public testing::TestWithParam<std::vector<std::string>> {
};

TEST_P(ZcplanHelpTest, PrintsUsageToStdoutAndExitsZero) {
  const Result r = Zcplan(GetParam());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, ZcplanUsage());
  EXPECT_TRUE(absl::StartsWith(r.out, "usage: zcplan plan ")) << r.out;
  for (const char* flag :
       {"--trace", "--threshold", "--copy-op", "--max-iovs", "--max-bytes",
        "--max-ops", "--gap", "--format", "--thresholds", "--weights",
        "JSON Lines", "zcplan import", "--sizes", "--order", "--connection",
        "--assume-sockets", "--summary",
        "strace -f -yy -e trace=writev,sendmsg,sendto,"
        "write -e signal=none"}) {
    EXPECT_TRUE(absl::StrContains(r.out, flag)) << flag;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllForms, ZcplanHelpTest,
    testing::Values(std::vector<std::string>{"--help"},
                    std::vector<std::string>{"-h"},
                    std::vector<std::string>{"help"},
                    std::vector<std::string>{"plan", "--help"},
                    std::vector<std::string>{"simulate", "-h"},
                    std::vector<std::string>{"plan", "12Q", "--help"},
                    std::vector<std::string>{"import", "--help"},
                    std::vector<std::string>{"import", "--bogus", "-h"}));

// Exit 2, exactly one line on stderr naming the problem, nothing on stdout.
void ExpectBadInput(const std::vector<std::string>& args,
                    const std::string& expected) {
  SCOPED_TRACE(absl::StrJoin(args, " "));
  const Result r = Zcplan(args);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StartsWith(r.err, "zcplan: ")) << r.err;
  EXPECT_TRUE(absl::EndsWith(r.err, "\n")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, expected)) << r.err;
}

struct BadInput {
  std::vector<std::string> args;
  std::string expected;  // In the error line.
};

void PrintTo(const BadInput& input, std::ostream* os) {
  *os << "zcplan " << absl::StrJoin(input.args, " ");
}

class ZcplanBadInputTest : public testing::TestWithParam<BadInput> {};

TEST_P(ZcplanBadInputTest, ExitsTwoWithOneLineOnStderrAndNothingOnStdout) {
  ExpectBadInput(GetParam().args, GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, ZcplanBadInputTest,
    testing::ValuesIn(std::vector<BadInput>{
        {{}, "no command given"},
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"plan", "--bogus", "4K"}, "unknown flag '--bogus' for 'plan'"},
        {{"plan", "--bogus=1", "4K"}, "unknown flag '--bogus' for 'plan'"},
        {{"plan", "-x", "4K"}, "unknown flag '-x'"},
        {{"simulate", "--threshold=4K", "4K"},
         "unknown flag '--threshold' for 'simulate'"},
        {{"plan", "--thresholds=4K", "4K"},
         "unknown flag '--thresholds' for 'plan'"},
        {{"plan", "4K", "--threshold"}, "flag --threshold needs a value"},
        {{"plan", "--threshold", "--format=json", "4K"},
         "flag --threshold needs a value"},
        {{"plan", "--trace"}, "flag --trace needs a value"},
        {{"plan", "12Q"}, "bad size '12Q'"},
        {{"plan", "4K", "-4"}, "bad size '-4': sizes cannot be negative"},
        {{"plan", "--threshold=abc", "4K"}, "--threshold: bad size 'abc'"},
        {{"plan", "--threshold=-1", "4K"}, "bad size '-1'"},
        {{"plan", "--copy-op=splice", "4K"}, "unknown copy op 'splice'"},
        {{"plan", "--format=xml", "4K"}, "unknown format 'xml'"},
        {{"plan", "--max-iovs=abc", "4K"}, "--max-iovs: bad number 'abc'"},
        {{"plan", "--max-iovs=-1", "4K"}, "bad number '-1'"},
        {{"plan", "--max-ops=99999999999", "4K"}, "bad number '99999999999'"},
        {{"plan", "--max-bytes=1X", "4K"}, "--max-bytes: bad size '1X'"},
        {{"plan", "--gap=huge", "4K"}, "--gap: bad size 'huge'"},
        {{"plan", "--max-iovs=0", "4K"}, "max_iovs_per_op is 0"},
        {{"plan", "--max-iovs=1025", "4K"}, "max_iovs_per_op is 1025"},
        {{"plan", "--max-bytes=3G", "4K"}, "max_bytes_per_op is 3221225472"},
        {{"simulate", "--max-ops=40000", "4K"}, "max_ops_per_chain is 40000"},
        {{"plan"}, "no sizes given"},
        {{"plan", "--threshold=4K"}, "no sizes given"},
        {{"plan", "--trace", "/nonexistent/x.trace"},
         "trace file '/nonexistent/x.trace': cannot open: No such file"},
        {{"plan", "--trace", "/dev/zero"},
         "trace file '/dev/zero': is a character device; give a regular "
         "file"},
        {{"plan", "--trace", "/"}, "trace file '/': is a directory"},
        {{"simulate", "--trace", "/dev/null"},
         "trace file '/dev/null': is a character device"},
        {{"simulate", "--weights", "/dev/zero", "4K"},
         "--weights: weights file '/dev/zero': is a character device; give a "
         "regular file"},
        {{"simulate", "--weights", "/", "4K"},
         "--weights: weights file '/': is a directory"},
        // '--' ends the flags: what follows is sizes, and a flag there is
        // named as the bad size it is, not called negative.
        {{"plan", "--", "--threshold", "4K"},
         "bad size '--threshold': it comes after '--', which ends the flags, "
         "so it is taken as a size; give flags before '--'"},
        {{"plan", "4K", "--", "-x"}, "bad size '-x': it comes after '--'"},
        {{"plan", "--", "-4"}, "bad size '-4': sizes cannot be negative"},
        {{"plan", "-"}, "bad size '-': expected a number of bytes"},
        {{"plan", "--threshold", "-x", "4K"},
         "--threshold: bad size '-x': expected a number of bytes"},
        {{"simulate", "--thresholds=1K,abc", "4K"},
         "--thresholds: bad size 'abc'"},
        {{"simulate", "--thresholds=64K..1K", "4K"}, "bad range '64K..1K'"},
        {{"simulate", "--thresholds=0..1K", "4K"}, "bad range '0..1K'"},
        {{"simulate", "--thresholds=,", "4K"}, "no thresholds given"},
        {{"simulate", "--per-op=x", "4K"}, "--per-op: bad weight 'x'"},
        {{"simulate", "--per-op=0x10", "4K"}, "--per-op: bad weight '0x10'"},
        {{"simulate", "--per-zc-op=inf", "4K"},
         "--per-zc-op: bad weight 'inf'"},
        {{"simulate", "--per-zc-iov=-1", "4K"},
         "--per-zc-iov: bad weight '-1'"},
        {{"simulate", "--page-size=3000", "4K"},
         "CostWeights.page_size is 3000"},
        {{"plan", "4K\n4K"}, "bad size '4K\\x0a4K'"},
        {{"plan", "4K", std::string(5 << 20, '7') + "Q"}, "bad size '77777"},
        {{"plan", "--format=x\x1by"}, "unknown format 'x\\x1by'"},
        {{"plan", "9223372036854775807"},
         "batch 1: the batch may take up to 4294975490 ops (with at most "
         "2147479552 bytes and 1024 iovecs per op), more than the limit of "
         "1048576 ops; plan fewer or smaller batches"},
        {{"plan", "--max-bytes=1M", "--max-iovs=8", "1099511627776"},
         "more than the limit of 1048576 ops; plan fewer or smaller batches, "
         "or a larger --max-bytes or --max-iovs"},
        {{"simulate", "--per-op", "1e308", "--per-zc-op", "1e308", "4K", "64K"},
         "--per-op: bad weight '1e308': expected a number in 0..1000000000"},
        {{"simulate", "--per-zc-op=1000000001", "4K"},
         "--per-zc-op: bad weight '1000000001'"},
        {{"simulate", "--per-op=inf", "4K"}, "--per-op: bad weight 'inf'"},
        {{"simulate", "--per-op=nan", "4K"}, "--per-op: bad weight 'nan'"},
        {{"import"}, "no capture given: use zcplan import [flags] CAPTURE"},
        {{"import", "a.txt", "b.txt"},
         "give one capture file (got 'a.txt' and 'b.txt')"},
        {{"import", "--sizes=all", "x"},
         "--sizes: unknown sizes 'all' (sent or requested)"},
        {{"import", "--order=size", "x"},
         "--order: unknown order 'size' (connection or time)"},
        {{"import", "--connection=0", "x"},
         "--connection: bad number '0': expected 1..4294967295"},
        {{"import", "--connection=two", "x"}, "--connection: bad number 'two'"},
        {{"import", "--summary=yes", "x"},
         "flag --summary takes no value (got 'yes')"},
        {{"import", "--threshold=4K", "x"},
         "unknown flag '--threshold' for 'import'"},
        {{"plan", "--summary", "4K"}, "unknown flag '--summary' for 'plan'"},
        {{"simulate", "--sizes=sent", "4K"},
         "unknown flag '--sizes' for 'simulate'"},
        {{"import", "/nonexistent/cap.txt"},
         "capture file '/nonexistent/cap.txt': cannot open: No such file"},
        {{"import", "/dev/zero"},
         "capture file '/dev/zero': is a character device"},
        {{"import", "/"}, "capture file '/': is a directory"},
        {{"simulate", "--max-bytes=1", "2M"},
         "threshold 1K: batch 1: the batch may take up to 2097154 ops (with at "
         "most 1 bytes and 1024 iovecs per op), more than the limit of "
         "1048576 ops; simulate fewer or smaller batches"},
    }));

TEST(ZcplanErrorLineTest, AHugeTokenGivesAShortLineThatKeepsTheReason) {
  for (const std::string& token :
       {std::string(5 << 20, '7') + "Q", std::string(5 << 20, '7')}) {
    const Result r = Zcplan({"plan", token});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_LT(r.err.size(), 400u);
    EXPECT_TRUE(absl::StartsWith(r.err, "zcplan: bad size '7777")) << r.err;
    // The token is cut, saying how long it was, and the reason follows.
    EXPECT_TRUE(absl::StrContains(
        r.err, absl::StrCat("...(", token.size(), " bytes)'")))
        << r.err;
    EXPECT_TRUE(absl::EndsWith(r.err, token.back() == 'Q'
                                          ? ": unknown suffix (use K, M or G)\n"
                                          : " bytes\n"))
        << r.err;
    EXPECT_TRUE(token.back() == 'Q' ||
                absl::StrContains(r.err, "': larger than the limit of "))
        << r.err;
  }
  // In a trace file too, and in a flag's value.
  const std::string path =
      WriteTestFile("huge_token.trace", "4K\n" + std::string(100000, '9'));
  const Result trace = Zcplan({"plan", "--trace", path});
  EXPECT_EQ(trace.code, 2);
  EXPECT_LT(trace.err.size(), 600u);
  EXPECT_TRUE(absl::EndsWith(trace.err,
                             "...(100000 bytes)': larger than the "
                             "limit of 9223372036854775807 bytes\n"))
      << trace.err;
  const Result flag =
      Zcplan({"plan", "--max-iovs", std::string(100000, 'x'), "4K"});
  EXPECT_EQ(flag.code, 2);
  EXPECT_LT(flag.err.size(), 400u);
  EXPECT_TRUE(absl::EndsWith(flag.err, "expected a whole number, e.g. 64\n"))
      << flag.err;
}

TEST(ZcplanSimulateTest, TableEscapesControlCharactersInPaths) {
  // A path may hold a terminal escape sequence; the table shows it escaped
  // (JSON escapes it its own way).
  const std::string trace = WriteTestFile("tr\x1b]0;pwn\x07Y", "4K 64K\n");
  const std::string weights =
      WriteTestFile("w\x1b[2J\x1b]0;x\x07.weights", "per_op 100\n");
  const Result r = Zcplan({"simulate", "--trace", trace, "--weights", weights});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x07'), std::string::npos) << r.out;
  EXPECT_TRUE(absl::StrContains(
      r.out, "input: " + testing::TempDir() + "tr\\x1b]0;pwn\\x07Y: 1 batch"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "note: weights from " +
                                           testing::TempDir() +
                                           "w\\x1b[2J\\x1b]0;x\\x07.weights"))
      << r.out;
  const Result json = Zcplan(
      {"simulate", "--trace", trace, "--weights", weights, "--format=json"});
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(json.out.find('\x1b'), std::string::npos) << json.out;
  EXPECT_TRUE(absl::StrContains(json.out, "tr\\u001b]0;pwn\\u0007Y"))
      << json.out;
}

TEST(ZcplanSimulateTest, LargestWeightsKeepTheCostFinite) {
  std::vector<std::string> args = {"simulate", "--format=json"};
  for (const char* flag :
       {"--per-op", "--per-zc-op", "--per-copy-byte", "--per-zc-byte",
        "--per-copy-iov", "--per-zc-iov", "--per-pinned-page"}) {
    args.push_back(absl::StrCat(flag, "=1000000000"));
  }
  args.push_back("1G");
  args.push_back("64K");
  const Result r = Zcplan(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(absl::StrContains(r.out, "inf")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "nan")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "null")) << r.out;
  EXPECT_GT(JsonNumber(r.out, "cost"), 1e18);
  // A weights file is held to the same limit.
  const std::string path = WriteTestFile("huge.weights", "per_op 1e308\n");
  ExpectBadInput({"simulate", "--weights", path, "4K"},
                 "bad value '1e308' for per_op: expected a number in "
                 "0..1000000000");
}

TEST(ZcplanPlanTest, ChainSummaryOfManyOpsIsCutButEveryOpHasItsRow) {
  std::vector<std::string> sizes;
  for (int k = 0; k < 20000; ++k) {
    sizes.push_back("4K");
    sizes.push_back("64K");
  }
  const std::string path =
      WriteTestFile("long_chain.trace", absl::StrJoin(sizes, " ") + "\n");
  const Result r = Zcplan({"plan", "--max-ops=32768", "--trace", path});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  size_t longest = 0;
  for (const std::string& line : lines)
    longest = std::max(longest, line.size());
  EXPECT_LT(longest, 1100u);
  // Chain 0 holds 32768 ops, chain 1 the other 7232; each summary says how
  // many ops it leaves out, and those counts add up with what it shows.
  for (const auto& [prefix, ops] :
       {std::pair<std::string, int>{"  chain 0: ", 32768},
        std::pair<std::string, int>{"  chain 1: ", 7232}}) {
    const auto it = std::find_if(lines.begin(), lines.end(), [&](auto& l) {
      return absl::StartsWith(l, prefix);
    });
    ASSERT_NE(it, lines.end()) << prefix;
    const size_t more = it->rfind(" -> ... (");
    ASSERT_NE(more, std::string::npos) << *it;
    int left_out = 0;
    ASSERT_TRUE(absl::SimpleAtoi(
        it->substr(more + 9, it->find(' ', more + 9) - more - 9), &left_out))
        << *it;
    const std::string shown = it->substr(prefix.size(), more - prefix.size());
    const std::vector<std::string> shown_ops = absl::StrSplit(shown, " -> ");
    EXPECT_EQ(static_cast<int>(shown_ops.size()) + left_out, ops) << *it;
    EXPECT_TRUE(absl::EndsWith(*it, " more ops, in the rows below)")) << *it;
  }
  // The rows are complete: one per op.
  size_t rows = 0;
  for (const std::string& line : lines) {
    rows += absl::StrContains(line, " send_zc ") ||
            absl::StrContains(line, " send ");
  }
  EXPECT_EQ(rows, 40000u);
}

TEST(ZcplanBadTraceTest, EmptyBadOrUnreadableTraceExitsTwo) {
  const std::string empty = WriteTestFile("empty.trace", "# nothing\n\n");
  const std::string bad_line =
      WriteTestFile("bad_line.trace", "4K 4K\n# ok\n16K 12Q\n");
  ExpectBadInput({"simulate", "--trace", empty},
                 "trace file '" + empty + "': the trace holds no batch");
  ExpectBadInput({"plan", "--trace", empty},
                 "trace file '" + empty + "': the trace holds no batch");
  ExpectBadInput({"plan", "--trace", bad_line},
                 "trace file '" + bad_line + "': line 3: bad size '12Q'");
  ExpectBadInput({"simulate", "--trace", bad_line},
                 "trace file '" + bad_line + "': line 3: bad size '12Q'");
  ExpectBadInput({"plan", "--trace", bad_line, "4K"},
                 "give sizes or --trace, not both");
  ExpectBadInput({"plan", "--trace", testing::TempDir()},
                 "': is a directory; give a regular file");
}

TEST(ZcplanBadWeightsTest, UnreadableOrMalformedWeightsFileExitsTwo) {
  ExpectBadInput({"simulate", "--weights", "/nonexistent/x.weights", "4K"},
                 "--weights: weights file '/nonexistent/x.weights': cannot "
                 "open: No such file");
  ExpectBadInput({"simulate", "--weights", testing::TempDir(), "4K"},
                 "': is a directory; give a regular file");
  const std::string unknown =
      WriteTestFile("unknown.weights", "# ok\nper_op 1\nper_bogus 2\n");
  ExpectBadInput({"simulate", "--weights", unknown, "4K"},
                 "--weights: weights file '" + unknown +
                     "': weights line 3: unknown weight 'per_bogus'");
  const std::string negative =
      WriteTestFile("negative.weights", "per_zc_iov -1\n");
  ExpectBadInput({"simulate", "--weights", negative, "4K"},
                 negative + "': weights line 1: bad value '-1' for per_zc_iov");
  const std::string twice =
      WriteTestFile("twice.weights", "per_op 1\n\nper_op 2\n");
  ExpectBadInput({"simulate", "--weights", twice, "4K"},
                 twice + "': weights line 3: 'per_op' given twice");
  const std::string page = WriteTestFile("page.weights", "page_size 3000\n");
  ExpectBadInput({"simulate", "--weights", page, "4K"},
                 page + "': weights line 1: CostWeights.page_size is 3000");
  ExpectBadInput({"simulate", "--weights=", "4K"}, "--weights: empty path");
  ExpectBadInput({"plan", "--weights", page, "4K"},
                 "unknown flag '--weights' for 'plan'");
}

TEST(ZcplanBadWeightsTest, WeightsFileAndWeightFlagsAreNotBoth) {
  const std::string path = WriteTestFile("ok.weights", "per_op 100\n");
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"simulate", "--weights", path, "--per-op=1", "4K"},
           {"simulate", "--per-zc-iov=1", "--weights", path, "4K"},
           {"simulate", "--weights", path, "--page-size", "8K", "4K"}}) {
    ExpectBadInput(args, "give --weights '" + path +
                             "' or --per-*/--page-size flags, not both");
  }
  // Refused before the file is read: a missing file is not the complaint.
  ExpectBadInput(
      {"simulate", "--per-op=1", "--weights", "/nonexistent/w", "4K"},
      "not both");
}

TEST(ZcplanBadWeightsTest, WeightsFileThatNamesNoWeightExitsTwo) {
  // ParseCostWeights alone takes these as "all defaults": a truncated or
  // empty calibration would silently rank by the uncalibrated guesses.
  const std::string empty = WriteTestFile("empty.weights", "");
  ExpectBadInput({"simulate", "--weights", empty, "4K"},
                 "--weights: weights file '" + empty +
                     "': names no weight (it is empty or holds only comments)");
  const std::string comments =
      WriteTestFile("comments.weights", "# per_op 100\n\n   # nothing\n");
  ExpectBadInput({"simulate", "--weights", comments, "4K"},
                 "': names no weight (it is empty or holds only comments)");
}

// A path of `bytes` bytes that reads as zeros and takes no disk space.
std::string SparseFile(const std::string& name, uint64_t bytes) {
  const std::string path = testing::TempDir() + name;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  EXPECT_GE(fd, 0) << path;
  EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
  close(fd);
  return path;
}

TEST(ZcplanInputFileTest, FilesAboveTheStatedLimitsExitTwoUnread) {
  const std::string trace = SparseFile("huge.trace", kMaxTraceFileBytes + 1);
  ExpectBadInput(
      {"plan", "--trace", trace},
      absl::StrCat("trace file '", trace, "': is ", kMaxTraceFileBytes + 1,
                   " bytes, above the limit of ", kMaxTraceFileBytes,
                   " bytes"));
  ExpectBadInput({"simulate", "--trace", trace}, "above the limit");
  const std::string weights =
      SparseFile("huge.weights", kMaxWeightsFileBytes + 1);
  ExpectBadInput(
      {"simulate", "--weights", weights, "4K"},
      absl::StrCat("weights file '", weights, "': is ",
                   kMaxWeightsFileBytes + 1, " bytes, above the limit of ",
                   kMaxWeightsFileBytes, " bytes"));
  // The help states the limits that are enforced.
  for (uint64_t limit : {kMaxTraceFileBytes, uint64_t{kMaxTraceLineBytes},
                         kMaxWeightsFileBytes, kDefaultMaxTraceOps}) {
    EXPECT_TRUE(absl::StrContains(ZcplanUsage(), absl::StrCat(" ", limit)))
        << limit;
  }
}

TEST(ZcplanInputFileTest, TraceLineAboveTheLineLimitExitsTwo) {
  std::string text = "4K\n";
  for (size_t k = 0; k < kMaxTraceLineBytes / 2 + 1; ++k) text += "1 ";
  text += "\n";
  const std::string path = WriteTestFile("long_line.trace", text);
  for (const char* command : {"plan", "simulate"}) {
    ExpectBadInput({command, "--trace", path},
                   absl::StrCat("trace file '", path,
                                "': line 2 is longer than the limit of ",
                                kMaxTraceLineBytes, " bytes"));
  }
}

// Runs zcplan on a FIFO that has no writer. Opening it for reading without
// O_NONBLOCK would block until a writer comes: the run must refuse it at
// once instead. If it does block, the wait below is bounded, the failure is
// reported, and a writer is opened and closed to release the reader.
TEST(ZcplanInputFileTest, FifoWithoutAWriterExitsTwoAndDoesNotHang) {
  const std::string fifo = testing::TempDir() + "no_writer.fifo";
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"plan", "--trace", fifo},
           {"simulate", "--trace", fifo},
           {"simulate", "--weights", fifo, "4K"}}) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    std::future<Result> run =
        std::async(std::launch::async, [&args] { return Zcplan(args); });
    if (run.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "zcplan blocked on a FIFO with no writer";
      const int writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (writer >= 0) close(writer);
    }
    const Result r = run.get();
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(absl::StrContains(r.err, "': is a FIFO; give a regular file"))
        << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  unlink(fifo.c_str());
}

// Alternating small and large sizes take one op per buffer: far more than
// the lower bound the work check used to count (total bytes / max bytes, 1 op
// per batch here), so this trace of 1.1M ops used to be planned and printed
// in full. The upper bound refuses it before any output.
TEST(ZcplanWorkBoundTest, AlternatingSizesOverTheOpLimitExitTwo) {
  std::string line;
  for (int k = 0; k < 500; ++k) line += "8 20K ";
  line += "\n";
  std::string text;
  for (int b = 0; b < 1100; ++b) text += line;  // 1.1M ops.
  const std::string path = WriteTestFile("alternating.trace", text);
  ExpectBadInput({"plan", "--trace", path},
                 "line 1049: the batches up to here may take up to 1049000 "
                 "ops (with at most 2147479552 bytes and 1024 iovecs per op), "
                 "more than the limit of 1048576 ops");
  ExpectBadInput({"plan", "--trace", path, "--format=json"},
                 "more than the limit of 1048576 ops");
  ExpectBadInput({"simulate", "--trace", path, "--thresholds=16K"},
                 "threshold 16K: line 1049: the batches up to here may take "
                 "up to 1049000 ops");
  // At their maximum (the defaults), --max-bytes and --max-iovs cannot help,
  // so the hint does not name them.
  const Result at_max = Zcplan({"plan", "--trace", path});
  EXPECT_TRUE(absl::EndsWith(at_max.err,
                             "1048576 ops; plan fewer or smaller batches\n"))
      << at_max.err;
  // Under threshold "never" all of it is one copy run per batch: few ops.
  const Result never =
      Zcplan({"simulate", "--trace", path, "--thresholds=never"});
  EXPECT_EQ(never.code, 0) << never.err;
}

// Counts what reaches it: with no buffer of its own, each insertion into the
// stream arrives as one call. Fails every write once `fail_after` bytes have
// been taken, and calls `on_first_write` before taking the first.
class RecordingBuf : public std::streambuf {
 public:
  explicit RecordingBuf(size_t fail_after = SIZE_MAX,
                        std::function<void()> on_first_write = nullptr)
      : fail_after_(fail_after), on_first_write_(std::move(on_first_write)) {}

  size_t writes = 0;
  size_t largest = 0;
  size_t total = 0;
  std::string text;

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (writes == 0 && on_first_write_) on_first_write_();
    const size_t size = static_cast<size_t>(n);
    if (total + size > fail_after_) return 0;
    ++writes;
    largest = std::max(largest, size);
    total += size;
    text.append(s, size);
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return 0;
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }

 private:
  size_t fail_after_;
  std::function<void()> on_first_write_;
};

std::string ManyBatches(int batches) {
  std::string text;
  for (int b = 0; b < batches; ++b) {
    text += absl::StrCat("4K 20K 8 64K ", b + 1, "\n");
  }
  return text;
}

TEST(ZcplanStreamingTest, PlanWritesBatchByBatchNotTheWholeOutputAtOnce) {
  const std::string path = WriteTestFile("many.trace", ManyBatches(500));
  for (const char* format : {"--format=table", "--format=json"}) {
    SCOPED_TRACE(format);
    RecordingBuf buf;
    std::ostream out(&buf);
    std::ostringstream err;
    ASSERT_EQ(RunZcplan({"plan", "--trace", path, format}, out, err), kZcplanOk)
        << err.str();
    // Each batch is written as it is planned: no write holds more than a
    // batch, so memory does not grow with the trace.
    EXPECT_GE(buf.writes, 500u);
    EXPECT_LT(buf.largest, 1000u) << "largest write " << buf.largest;
    EXPECT_GT(buf.total, 500u * 100);
    // The same bytes as the output collected in one string.
    const Result whole = Zcplan({"plan", "--trace", path, format});
    EXPECT_EQ(buf.text, whole.out);
  }
  // JSON stays JSON Lines: one complete object per batch.
  const Result json = Zcplan({"plan", "--trace", path, "--format=json"});
  const std::vector<std::string> lines = Lines(json.out);
  ASSERT_EQ(lines.size(), 500u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_TRUE(absl::StartsWith(
        lines[i], absl::StrCat("{\"batch\": ", i + 1, ", \"line\": ", i + 1,
                               ", \"iovecs\": 5, ")))
        << lines[i];
    EXPECT_TRUE(absl::EndsWith(lines[i], "}]}")) << lines[i];
    EXPECT_EQ(std::count(lines[i].begin(), lines[i].end(), '{'),
              std::count(lines[i].begin(), lines[i].end(), '}'));
  }
}

TEST(ZcplanStreamingTest, AFailingOutputStopsThePlanWithExitOne) {
  const std::string path = WriteTestFile("stop.trace", ManyBatches(500));
  RecordingBuf buf(/*fail_after=*/2000);
  std::ostream out(&buf);
  std::ostringstream err;
  EXPECT_EQ(RunZcplan({"plan", "--trace", path}, out, err), kZcplanFailed);
  EXPECT_EQ(err.str(), "zcplan: cannot write the output\n");
  EXPECT_LE(buf.total, 2000u);
}

TEST(ZcplanStreamingTest, TraceChangedBetweenCheckAndOutputExitsOne) {
  // Larger than the reader's first read, so that the output pass reads the
  // rest after the file was overwritten with lines that do not parse.
  const std::string text = ManyBatches(20000);
  ASSERT_GT(text.size(), 4u << 16);
  const std::string path = WriteTestFile("changing.trace", text);
  RecordingBuf buf(SIZE_MAX, [&] {
    std::string bad;
    while (bad.size() < text.size()) bad += "12Q\n";
    std::ofstream(path, std::ios::binary | std::ios::in) << bad;
  });
  std::ostream out(&buf);
  std::ostringstream err;
  EXPECT_EQ(RunZcplan({"plan", "--trace", path, "--format=json"}, out, err),
            kZcplanFailed);
  EXPECT_TRUE(
      absl::StartsWith(err.str(), "zcplan: trace file '" + path + "': line "))
      << err.str();
  EXPECT_TRUE(absl::StrContains(
      err.str(),
      "bad size '12Q': unknown suffix (use K, M or G); the file changed "
      "after it was checked; the output is incomplete\n"))
      << err.str();
  const std::string line = err.str();
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  EXPECT_GT(buf.total, 0u);
}

TEST(ZcplanStreamingTest, TraceEditedInPlaceButStillValidExitsOne) {
  // The edit keeps every line valid and the work within the bound, so only
  // the bytes can tell that the output pass planned what was never checked.
  // The table writes its options line before the output pass reads, so the
  // output pass reads the edited file.
  const std::string text = ManyBatches(10) + "4K 4K\n";
  const std::string path = WriteTestFile("edited.trace", text);
  RecordingBuf buf(SIZE_MAX, [&] {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(text.size() - 6));
    f << "1G 1G\n";
  });
  std::ostream out(&buf);
  std::ostringstream err;
  EXPECT_EQ(RunZcplan({"plan", "--trace", path}, out, err), kZcplanFailed);
  EXPECT_EQ(err.str(), "zcplan: trace file '" + path +
                           "': changed between the check pass and the output "
                           "pass; the output written is unreliable (it may "
                           "hold batches that were never checked), run plan "
                           "again\n");
  EXPECT_TRUE(absl::StrContains(buf.text, "2 iovecs, 2G (2147483648 bytes)"))
      << buf.text;
  EXPECT_FALSE(absl::StrContains(buf.text, "\ntotal: ")) << buf.text;
  // Unchanged, the same file plans with exit 0.
  const std::string same = WriteTestFile("unedited.trace", text);
  RecordingBuf keep(SIZE_MAX, [] {});
  std::ostream kept(&keep);
  std::ostringstream none;
  EXPECT_EQ(RunZcplan({"plan", "--trace", same}, kept, none), kZcplanOk)
      << none.str();
}

// --- import -----------------------------------------------------------------

std::string NginxCapture() { return DataPath("tools/traces/nginx_strace.txt"); }

// The lines of a trace that hold batches (neither comments nor blank).
std::vector<std::string> BatchLines(const std::string& trace) {
  std::vector<std::string> batches;
  for (const std::string& line : Lines(trace)) {
    if (!absl::StartsWith(line, "#")) batches.push_back(line);
  }
  return batches;
}

TEST(ZcplanImportTest, ShippedCaptureImportsToTheShippedTrace) {
  const Result r = Zcplan({"import", NginxCapture()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // tools/traces/nginx.trace is this output, made from the repository's
  // root: only the capture's path in the first line differs.
  const std::string shipped =
      ReadTestFile(DataPath("tools/traces/nginx.trace"));
  const size_t eol = r.out.find('\n');
  const size_t shipped_eol = shipped.find('\n');
  ASSERT_NE(eol, std::string::npos);
  ASSERT_NE(shipped_eol, std::string::npos);
  EXPECT_EQ(r.out.substr(eol), shipped.substr(shipped_eol));
  EXPECT_TRUE(absl::StartsWith(
      shipped,
      "# zcplan import of capture 'tools/traces/nginx_strace.txt': "
      "sizes as sent"))
      << shipped.substr(0, shipped_eol);

  // The report: every line accounted for, the connections listed.
  EXPECT_TRUE(absl::StrContains(
      r.out,
      "# 173 lines: 141 made 126 batches of 4.0M (4194521 bytes) in 160 "
      "iovecs on 5 connections, 2 short writes; 32 not used\n"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "TCP:[127.0.0.1:18474->127.0.0.1:"))
      << r.out;
  for (const char* reason :
       {"sent nothing: -1 EAGAIN      7", "not a TCP socket: file      25"}) {
    EXPECT_TRUE(absl::StrContains(r.out, reason)) << reason << "\n" << r.out;
  }
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'),
            std::count(shipped.begin(), shipped.end(), '\n'));

  // The batches: one per call, in the trace format, with the sizes nginx
  // wrote: a header and a 1K body, 32K pieces, and the short write's 30K.
  const std::vector<std::string> batches = BatchLines(r.out);
  ASSERT_EQ(batches.size(), 126u);
  EXPECT_EQ(batches[0], "254 1K");
  EXPECT_EQ(std::count(batches.begin(), batches.end(), "32K"), 90);
  EXPECT_NE(std::find(batches.begin(), batches.end(), "30K"), batches.end());
  EXPECT_NE(std::find(batches.begin(), batches.end(), "2K 32K"), batches.end());
  absl::StatusOr<std::vector<TraceBatch>> parsed = ParseTrace(r.out);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->size(), 126u);
  uint64_t bytes = 0;
  for (const TraceBatch& b : *parsed) {
    for (uint64_t size : b.sizes) bytes += size;
  }
  EXPECT_EQ(bytes, 4194521u);
}

TEST(ZcplanImportTest, SimulateRanksThresholdsOnTheImportedTrace) {
  const Result imported = Zcplan({"import", NginxCapture()});
  ASSERT_EQ(imported.code, 0) << imported.err;
  const std::string path = WriteTestFile("nginx.trace", imported.out);
  const Result r = Zcplan({"simulate", "--trace", path,
                           "--thresholds=1K,64K,never", "--format=json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(JsonNumber(r.out, "batches"), 126);
  EXPECT_EQ(JsonNumber(r.out, "bytes"), 4194521);
  // Threshold 64K sends nothing zero-copy here: nginx writes at most 32K
  // per iovec.
  const size_t at_64k = r.out.find("\"threshold\": 65536");
  ASSERT_NE(at_64k, std::string::npos) << r.out;
  EXPECT_EQ(JsonNumber(r.out, "bytes_zero_copy", at_64k), 0);
  EXPECT_GT(JsonNumber(r.out, "bytes_zero_copy"), 4000000);  // Threshold 1K.
}

TEST(ZcplanImportTest, OptionsChooseSizesOrderConnectionAndSummary) {
  const std::string capture = NginxCapture();
  const Result all = Zcplan({"import", capture});
  ASSERT_EQ(all.code, 0) << all.err;
  std::vector<std::string> by_connection = BatchLines(all.out);

  // --order=time: the same batches, in the order the calls started, under
  // no per-connection headers.
  const Result by_time = Zcplan({"import", "--order=time", capture});
  ASSERT_EQ(by_time.code, 0) << by_time.err;
  std::vector<std::string> timed = BatchLines(by_time.out);
  EXPECT_FALSE(absl::StrContains(by_time.out, "\n# connection "));
  EXPECT_NE(timed, by_connection);  // Two connections were concurrent.
  std::sort(timed.begin(), timed.end());
  std::sort(by_connection.begin(), by_connection.end());
  EXPECT_EQ(timed, by_connection);

  // --connection=2: the two HEAD responses, headers only.
  const Result two = Zcplan({"import", "--connection", "2", capture});
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_EQ(BatchLines(two.out), (std::vector<std::string>{"257", "254"}));
  EXPECT_TRUE(absl::StrContains(two.out, "\n# connection 2: TCP:[")) << two.out;

  // --sizes=requested: a short write's iovecs in full.
  const Result requested = Zcplan({"import", "--sizes=requested", capture});
  ASSERT_EQ(requested.code, 0) << requested.err;
  const std::vector<std::string> asked = BatchLines(requested.out);
  EXPECT_EQ(std::find(asked.begin(), asked.end(), "30K"), asked.end());
  EXPECT_TRUE(absl::StrContains(requested.out, "sizes as requested"));

  // --summary: the report alone.
  const Result summary = Zcplan({"import", "--summary", capture});
  ASSERT_EQ(summary.code, 0) << summary.err;
  for (const std::string& line : Lines(summary.out)) {
    EXPECT_TRUE(absl::StartsWith(line, "#")) << line;
  }
  EXPECT_TRUE(absl::StartsWith(all.out, summary.out));
}

TEST(ZcplanImportTest, ALongConnectionNameDoesNotWidenEveryReportRow) {
  // The report's table pads each row to its widest name: one annotation of
  // 200000 bytes among 100 connections made 20 MB of report.
  std::string capture = absl::StrCat(
      "1 write(5<TCP:[", std::string(200000, 'A'), "]>, \"x\", 1) = 1\n");
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&capture, "1 write(", 6 + i, "<TCP:[192.0.2.1:", 1000 + i,
                    "->192.0.2.2:80]>, \"x\", 1) = 1\n");
  }
  const Result r = Zcplan({"import", WriteTestFile("wide.strace", capture)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT(r.out.size(), 2 * capture.size());
  EXPECT_TRUE(
      absl::StrContains(r.out, "\n#   2 TCP:[192.0.2.1:1000->192.0.2.2:80]"))
      << r.out.substr(0, 2000);
}

// `writes` writev calls of 8 iovecs, 1 and `large` bytes in turn.
std::string AlternatingCapture(int writes, uint64_t large) {
  std::string iovecs;
  for (int k = 0; k < 4; ++k) {
    absl::StrAppend(
        &iovecs, k > 0 ? ", " : "",
        "{iov_base=\"a\", iov_len=1}, {iov_base=\"a\", iov_len=", large, "}");
  }
  const std::string line =
      absl::StrCat("1 writev(7<TCP:[192.0.2.1:1->192.0.2.2:80]>, [", iovecs,
                   "], 8) = ", 4 * (large + 1), "\n");
  std::string capture;
  for (int i = 0; i < writes; ++i) capture += line;
  return capture;
}

TEST(ZcplanImportTest, AnImportTooLargeToPlanWholeSaysSo) {
  // 200,000 writes of 8 iovecs, small and large in turn (threshold 16K): up
  // to 8 ops each by the planner's bound, past the 2^20 ops plan and
  // simulate take in one pass.
  const std::string path =
      WriteTestFile("big.strace", AlternatingCapture(200000, 20000));
  const Result r = Zcplan({"import", path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out,
                                "# note: planning this trace may take "
                                "more than 1048576 ops"))
      << r.out.substr(0, 3000);
  // And simulate indeed refuses it whole.
  const std::string trace = WriteTestFile("big.trace", r.out);
  EXPECT_EQ(Zcplan({"simulate", "--trace", trace}).code, 2);
  // A small import has no such note.
  const Result small = Zcplan({"import", NginxCapture()});
  EXPECT_FALSE(absl::StrContains(small.out, "# note:")) << small.out;
}

TEST(ZcplanImportTest, AnImportSimulateCannotTakeWholeSaysSo) {
  // 200,000 writes of 8 iovecs of 1 and 2048 bytes in turn: one run of small
  // buffers under plan's 16K threshold (about 200,000 ops), but 8 runs under
  // simulate's default threshold 2K, past the 2^20 ops of one pass.
  const std::string path =
      WriteTestFile("alternating.strace", AlternatingCapture(200000, 2048));
  const Result r = Zcplan({"import", path});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string trace = WriteTestFile("alternating.trace", r.out);
  const Result simulate = Zcplan({"simulate", "--trace", trace});
  ASSERT_EQ(simulate.code, 2) << simulate.out.substr(0, 2000);
  EXPECT_TRUE(absl::StrContains(r.out,
                                "# note: planning this trace may take "
                                "more than 1048576 ops"))
      << simulate.err << r.out.substr(0, 3000);
}

TEST(ZcplanImportTest, ALineOverTheLimitIsCountedAndTheRestImported) {
  // strace -s 1000000 of a large writev prints one line over 1 MiB: it is
  // counted as unusable, and every other line is still imported.
  std::string capture = ReadTestFile(NginxCapture());
  const size_t first_newline = capture.find('\n');
  capture.insert(first_newline + 1,
                 absl::StrCat("1 writev(7<TCP:[192.0.2.1:1->192.0.2.2:80]>, [{"
                              "iov_base=\"",
                              std::string(kMaxTraceLineBytes, 'z'), "\n"));
  const Result r =
      Zcplan({"import", "--summary", WriteTestFile("long.strace", capture)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "174 lines: 141 made 126 batches"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(
      r.out, absl::StrCat("unusable: longer than ", kMaxTraceLineBytes,
                          " bytes (capture with a smaller strace -s)")))
      << r.out;
}

TEST(ZcplanImportTest, CaptureWithoutATcpSendOrOutOfRangeConnectionExitsTwo) {
  const std::string garbage = WriteTestFile("garbage.strace", "hello\nworld\n");
  ExpectBadInput({"import", garbage},
                 "no send on a TCP socket in its 2 lines (2 unusable: not "
                 "strace output); capture with strace -f -yy");
  const std::string files_only = WriteTestFile(
      "files_only.strace",
      "14187 write(4</tmp/h13nginx/logs/access.log>, \"127.0.0.1\"..., 94) = "
      "94\n14187 +++ exited with 0 +++\n");
  ExpectBadInput({"import", files_only},
                 "in its 2 lines (1 not a TCP socket: file; 1 strace note: "
                 "process exit (+++ ... +++))");
  ExpectBadInput({"import", "--connection=6", NginxCapture()},
                 "--connection 6: capture file '");
  ExpectBadInput({"import", "--connection=6", NginxCapture()},
                 "has 5 connections");
  // Only a line above the line limit: counted, and no send.
  const std::string long_line = WriteTestFile(
      "long_line.strace", std::string(kMaxTraceLineBytes + 1, 'x') + "\n");
  ExpectBadInput({"import", long_line},
                 absl::StrCat("1 unusable: longer than ", kMaxTraceLineBytes,
                              " bytes (capture with a smaller strace -s)"));
}

}  // namespace
}  // namespace zcplan
