// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/simulate.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/tests/planner/random_queue.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t K = 1024;

TEST(SimulateTest, SyntheticQueueIsPageAlignedNonNullAndDisjoint) {
  const auto q = MakeSyntheticQueue({0, 100, 4096, 5000});
  ASSERT_EQ(q.size(), 4u);
  uintptr_t prev_end = 0;
  for (const struct iovec& v : q) {
    const auto base = reinterpret_cast<uintptr_t>(v.iov_base);
    EXPECT_NE(base, 0u);
    EXPECT_EQ(base % 4096, 0u);
    EXPECT_GT(base, prev_end);
    prev_end = base + v.iov_len;
  }
  EXPECT_EQ(q[3].iov_len, 5000u);
}

TEST(SimulateTest, SyntheticQueueOfHugeSizesNeverWrapsTheAddressSpace) {
  // Each buffer spans about 2^63 bytes: the layout must restart rather than
  // wrap past 2^64 (which could also land on a null base).
  const uint64_t huge = kMaxTraceSize;
  const auto q = MakeSyntheticQueue({huge, huge, 100, huge, huge - 4095});
  ASSERT_EQ(q.size(), 5u);
  for (const struct iovec& v : q) {
    const auto base = reinterpret_cast<uintptr_t>(v.iov_base);
    EXPECT_NE(base, 0u);
    EXPECT_EQ(base % 4096, 0u);
    EXPECT_LE(v.iov_len, UINTPTR_MAX - base) << "base + length wraps";
  }
  // And the planner takes it: non-null bases, lengths within SSIZE_MAX.
  PlanOptions o;
  o.max_ops_per_chain = 4;
  EXPECT_TRUE(PlanChain(q, 0, o).ok());
}

TEST(SimulateTest, ForEachChainCoversTheQueueWithAbsoluteBases) {
  const auto q = MakeSyntheticQueue({4 * K, 4 * K, 16 * K, 32 * K, 2 * K});
  PlanOptions o;
  o.max_ops_per_chain = 1;
  Plan scratch;
  std::vector<std::pair<size_t, uint32_t>> seen;  // (base, first_iov)
  uint64_t bytes = 0;
  ASSERT_TRUE(ForEachChain(q, o, &scratch, [&](const Plan& p, size_t base) {
                seen.push_back({base, p.ops()[0].first_iov});
                bytes += p.bytes();
                return true;
              }).ok());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].first + seen[0].second, 0u);
  EXPECT_EQ(seen[1].first + seen[1].second, 2u);
  EXPECT_EQ(seen[2].first + seen[2].second, 4u);
  EXPECT_EQ(bytes, 58 * K);
}

TEST(SimulateTest, ForEachChainStopsWhenTheCallbackReturnsFalse) {
  // A size near SSIZE_MAX takes about 2^32 ops; stopping must be prompt.
  const uint64_t sizes[] = {kMaxTraceSize};
  const auto q = MakeSyntheticQueue(sizes);
  PlanOptions o;
  o.max_ops_per_chain = 8;
  Plan scratch;
  int calls = 0;
  uint64_t ops = 0;
  EXPECT_TRUE(ForEachChain(q, o, &scratch, [&](const Plan& p, size_t) {
                ++calls;
                ops += p.ops().size();
                return ops < 20;
              }).ok());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(ops, 24u);
}

TEST(SimulateTest, ForEachChainReportsPlanningErrors) {
  const struct iovec q[] = {{nullptr, 10}};
  Plan scratch;
  int calls = 0;
  const absl::Status s =
      ForEachChain(q, PlanOptions(), &scratch, [&](const Plan&, size_t) {
        ++calls;
        return true;
      });
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(calls, 0);
}

TEST(SimulateTest, MinOpsToSendIsTheTotalOverTheByteLimitRoundedUp) {
  PlanOptions o;
  o.max_bytes_per_op = 10;
  EXPECT_EQ(MinOpsToSend({}, o), 0u);
  EXPECT_EQ(MinOpsToSend({0, 0}, o), 0u);
  EXPECT_EQ(MinOpsToSend({10}, o), 1u);
  EXPECT_EQ(MinOpsToSend({11}, o), 2u);
  // Remainders add up across buffers: 6 + 6 + 6 = 18 bytes, 2 ops.
  EXPECT_EQ(MinOpsToSend({6, 6, 6}, o), 2u);
  EXPECT_EQ(MinOpsToSend({25, 5}, o), 3u);
  o.max_bytes_per_op = 1;
  EXPECT_EQ(MinOpsToSend({kMaxTraceSize, kMaxTraceSize}, o), 2 * kMaxTraceSize);
  EXPECT_EQ(MinOpsToSend({kMaxTraceSize, kMaxTraceSize, 2}, o), UINT64_MAX);
  EXPECT_EQ(MinOpsToSend({kMaxTraceSize, kMaxTraceSize, kMaxTraceSize}, o),
            UINT64_MAX);
}

// Ops of planning all of `sizes` chain after chain, as the tools do.
uint64_t OpsOfPlanning(const std::vector<uint64_t>& sizes,
                       const PlanOptions& o) {
  const auto q = MakeSyntheticQueue(sizes);
  Plan scratch;
  uint64_t ops = 0;
  EXPECT_TRUE(ForEachChain(q, o, &scratch, [&](const Plan& p, size_t) {
                ops += p.ops().size();
                return true;
              }).ok());
  return ops;
}

TEST(SimulateTest, AlternatingSizesTakeOneOpEachFarAboveTheLowerBound) {
  std::vector<uint64_t> sizes;
  for (int k = 0; k < 5000; ++k) {
    sizes.push_back(8);
    sizes.push_back(20 * K);
  }
  const PlanOptions o;  // Threshold 16K.
  EXPECT_EQ(OpsOfPlanning(sizes, o), 10000u);
  EXPECT_EQ(MinOpsToSend(sizes, o), 1u);  // What the work check used to count.
  // One per run, plus one per 1024 iovecs: within 0.1% here.
  EXPECT_EQ(MaxOpsToSend(sizes, o), 10000u + 10000 / 1024);
  // One copy run, coalesced 1024 iovecs to an op: the bound stays small.
  PlanOptions never = o;
  never.zc_threshold = PlanOptions::kNever;
  EXPECT_EQ(OpsOfPlanning(sizes, never), 10u);
  EXPECT_EQ(MaxOpsToSend(sizes, never), 10000 / 1024 + 1u);
}

TEST(SimulateTest, MaxOpsToSendCountsTheRestCopiedAloneAfterAChainBreak) {
  // Chains of one op of 12 bytes: each 16-byte buffer (zero-copy) takes a
  // full op, then the next chain starts 12 bytes into it, where the 4 bytes
  // left are below the threshold and go alone by copy. Four ops where full
  // ops, runs and iovec limits alone would allow only 2 + 1 = 3.
  PlanOptions o;
  o.zc_threshold = 16;
  o.max_bytes_per_op = 12;
  o.max_ops_per_chain = 1;
  const std::vector<uint64_t> sizes = {16, 16};
  EXPECT_EQ(OpsOfPlanning(sizes, o), 4u);
  EXPECT_EQ(MaxOpsToSend(sizes, o), 2u + 2u + 0u + 1u);
}

TEST(SimulateTest, MaxOpsToSendIsNeverBelowTheOpsOfRandomPlans) {
  testing::PrngSource src(20261201);
  int checked = 0, exact = 0;
  for (int q = 0; q < 15000; ++q) {
    const testing::Case c = testing::DrawCase(src);
    std::vector<uint64_t> sizes;
    for (const struct iovec& v : c.queue) sizes.push_back(v.iov_len);
    // Now and then a few buffers far above the byte limit.
    if (src.Next(8) == 0 && !sizes.empty()) {
      sizes[src.Next(sizes.size())] =
          c.options.max_bytes_per_op * (1 + src.Next(20)) +
          src.Next(c.options.max_bytes_per_op);
    }
    const uint64_t bound = MaxOpsToSend(sizes, c.options);
    ASSERT_GE(bound, MinOpsToSend(sizes, c.options));
    if (bound > 50000) continue;  // Planning is then bounded but slow.
    const uint64_t ops = OpsOfPlanning(sizes, c.options);
    ++checked;
    exact += ops == bound;
    ASSERT_LE(ops, bound) << "case " << q << ": "
                          << testing::Describe(c, c.queue, 0, Plan());
  }
  EXPECT_GT(checked, 12000);
  EXPECT_GT(exact, 500);  // The bound is often attained: it is not loose.
}

TEST(SimulateTest, MaxOpsToSendSaturates) {
  PlanOptions o;
  o.max_bytes_per_op = 1;
  EXPECT_EQ(MaxOpsToSend({}, o), 0u);
  EXPECT_EQ(MaxOpsToSend({0, 0}, o), 0u);
  EXPECT_EQ(MaxOpsToSend({kMaxTraceSize, kMaxTraceSize, kMaxTraceSize}, o),
            UINT64_MAX);
}

TEST(SimulateTest, CheckTraceWorkNamesTheBatchThatPassesTheLimit) {
  PlanOptions o;
  o.max_bytes_per_op = 1024;
  // Each: 40 full ops, one for the rest of a zero-copy buffer after a chain
  // break, one for its run: 42.
  const std::vector<TraceBatch> trace = {
      {3, {40 * K}}, {5, {40 * K}}, {9, {40 * K}}};
  EXPECT_TRUE(CheckTraceWork(trace, o, 126).ok());
  const absl::Status over = CheckTraceWork(trace, o, 100);
  EXPECT_TRUE(absl::IsResourceExhausted(over)) << over;
  EXPECT_EQ(over.message(),
            "line 9: the batches up to here may take up to 126 ops (with at "
            "most 1024 bytes and 1024 iovecs per op), more than the limit of "
            "100 ops");
  EXPECT_EQ(CheckTraceWork(trace, o, 41).message(),
            "line 3: the batch may take up to 42 ops (with at most 1024 bytes "
            "and 1024 iovecs per op), more than the limit of 41 ops");
  // Batches not from a trace text are named by position.
  const std::vector<TraceBatch> unnamed = {{0, {K}}, {0, {kMaxTraceSize}}};
  EXPECT_THAT(CheckTraceWork(unnamed, o, kDefaultMaxTraceOps).message(),
              HasSubstr("batch 2: the batches up to here may take up to "));
  EXPECT_TRUE(CheckTraceWork({}, o, 0).ok());
}

TEST(SimulateTest, TraceWorkLimitAddsBatchByBatchAndStaysFailed) {
  PlanOptions o;
  o.max_bytes_per_op = 1024;
  TraceWorkLimit limit(o, 10);
  EXPECT_TRUE(limit.Add({1, {4 * K}}, 0).ok());  // 4 + 0 + 1.
  EXPECT_EQ(limit.ops(), 5u);
  EXPECT_TRUE(limit.Add({2, {4 * K}}, 1).ok());
  EXPECT_EQ(limit.ops(), 10u);
  EXPECT_TRUE(limit.Add({3, {0, 0}}, 2).ok());  // Empty buffers: no op.
  EXPECT_EQ(limit.ops(), 10u);
  const absl::Status over = limit.Add({4, {1}}, 3);
  EXPECT_TRUE(absl::IsResourceExhausted(over)) << over;
  EXPECT_THAT(over.message(), HasSubstr("line 4: the batches up to here may "
                                        "take up to 11 ops"));
  EXPECT_FALSE(limit.Add({5, {0}}, 4).ok());  // Once over, always over.
}

TEST(SimulateTest, SimulateRefusesATraceOverItsOpLimitBeforePlanning) {
  const std::vector<TraceBatch> trace = {{1, {4 * K}}, {2, {kMaxTraceSize}}};
  const uint64_t thresholds[] = {16 * K};
  // The default limit: the huge batch would take about 2^32 ops.
  EXPECT_THAT(Simulate(trace, thresholds, PlanOptions(), CostWeights())
                  .status()
                  .message(),
              HasSubstr("threshold 16K: line 2: the batches up to here may "
                        "take up to "));
  PlanOptions o;
  o.max_bytes_per_op = 1024;
  const std::vector<TraceBatch> small = {{7, {8 * K}}};
  EXPECT_THAT(
      Simulate(small, thresholds, o, CostWeights(), 8).status().message(),
      HasSubstr("threshold 16K: line 7: the batch may take up to 9 ops"));
  const auto sim = Simulate(small, thresholds, o, CostWeights(), 9);
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_EQ(sim->results[0].cost.ops(), 8u);
}

TEST(SimulateTest, TheWorkOfEachThresholdIsCheckedOnItsOwn) {
  // Alternating sizes: one op each at threshold 16K, but a single copying
  // op when nothing goes zero-copy.
  std::vector<uint64_t> sizes;
  for (int k = 0; k < 50; ++k) {
    sizes.push_back(8);
    sizes.push_back(20 * K);
  }
  const std::vector<TraceBatch> trace = {{1, sizes}};
  const uint64_t never[] = {PlanOptions::kNever};
  EXPECT_TRUE(Simulate(trace, never, PlanOptions(), CostWeights(), 10).ok());
  const uint64_t both[] = {PlanOptions::kNever, 16 * K};
  EXPECT_THAT(
      Simulate(trace, both, PlanOptions(), CostWeights(), 10)
          .status()
          .message(),
      HasSubstr("threshold 16K: line 1: the batch may take up to 100 ops"));
}

TEST(SimulateTest, SimulatorBatchByBatchMatchesSimulate) {
  std::vector<TraceBatch> trace;
  for (int b = 0; b < 30; ++b) {
    std::vector<uint64_t> sizes = {400, 64 * K};
    for (int i = 0; i < b * 7; ++i) sizes.push_back(100 + 300 * i);
    sizes.push_back(20 * K + b);
    trace.push_back({b + 1, sizes});
  }
  const uint64_t thresholds[] = {0, 4 * K, 16 * K, PlanOptions::kNever};
  const auto whole = Simulate(trace, thresholds, PlanOptions(), CostWeights());
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto sim = Simulator::Create(thresholds, PlanOptions(), CostWeights());
  ASSERT_TRUE(sim.ok()) << sim.status();
  for (size_t b = 0; b < trace.size(); ++b) {
    ASSERT_TRUE(sim->Add(trace[b], b).ok());
  }
  EXPECT_EQ(sim->batches(), 30u);
  const Simulation streamed = sim->Result();
  ASSERT_EQ(streamed.results.size(), whole->results.size());
  EXPECT_EQ(streamed.best, whole->best);
  for (size_t t = 0; t < streamed.results.size(); ++t) {
    const ThresholdResult& a = streamed.results[t];
    const ThresholdResult& b = whole->results[t];
    EXPECT_EQ(a.threshold, b.threshold);
    EXPECT_EQ(a.batches, b.batches);
    EXPECT_EQ(a.chains, b.chains);
    EXPECT_EQ(a.cost.ops_by_kind, b.cost.ops_by_kind);
    EXPECT_EQ(a.cost.bytes_copied, b.cost.bytes_copied);
    EXPECT_EQ(a.cost.cost, b.cost.cost);
  }
}

TEST(SimulateTest, RanksThresholdsByEstimatedCost) {
  // Mixed batches: a small header, many small pieces, two large pieces.
  std::vector<uint64_t> sizes = {400, 64 * K};
  for (int i = 0; i < 200; ++i) sizes.push_back(600);
  sizes.push_back(64 * K);
  const std::vector<TraceBatch> trace = {{1, sizes}, {2, sizes}};
  const uint64_t thresholds[] = {0, 16 * K, PlanOptions::kNever};
  const auto sim = Simulate(trace, thresholds, PlanOptions(), CostWeights());
  ASSERT_TRUE(sim.ok()) << sim.status();
  ASSERT_EQ(sim->results.size(), 3u);
  const ThresholdResult& all_zc = sim->results[0];
  const ThresholdResult& split = sim->results[1];
  const ThresholdResult& all_copy = sim->results[2];
  EXPECT_EQ(all_zc.batches, 2u);
  EXPECT_EQ(all_zc.cost.ops(), 2u);  // One sendmsg_zc per batch.
  EXPECT_EQ(all_zc.cost.iovs_zero_copy, 2u * 203);
  EXPECT_EQ(split.cost.zero_copy_ops(), 4u);
  EXPECT_EQ(split.cost.bytes_zero_copy, 4u * 64 * K);
  EXPECT_EQ(all_copy.cost.zero_copy_ops(), 0u);
  // Zero-copy for 200 tiny pieces costs more than copying them.
  EXPECT_GT(all_zc.cost.cost, split.cost.cost);
  EXPECT_EQ(sim->best, 1u);
}

TEST(SimulateTest, TieGoesToTheFirstThreshold) {
  const std::vector<TraceBatch> trace = {{1, {100, 200}}};
  const uint64_t thresholds[] = {64 * K, 16 * K};  // Same plan either way.
  const auto sim = Simulate(trace, thresholds, PlanOptions(), CostWeights());
  ASSERT_TRUE(sim.ok());
  EXPECT_EQ(sim->best, 0u);
}

TEST(SimulateTest, RejectsNoThresholdsAndBadOptions) {
  const std::vector<TraceBatch> trace = {{1, {100}}};
  EXPECT_THAT(
      Simulate(trace, {}, PlanOptions(), CostWeights()).status().message(),
      HasSubstr("no thresholds"));
  PlanOptions o;
  o.max_ops_per_chain = 0;
  const uint64_t t[] = {1};
  EXPECT_THAT(Simulate(trace, t, o, CostWeights()).status().message(),
              HasSubstr("max_ops_per_chain is 0"));
  CostWeights w;
  w.page_size = 0;
  EXPECT_THAT(Simulate(trace, t, PlanOptions(), w).status().message(),
              HasSubstr("page_size is 0"));
}

uint64_t Sum(const std::vector<uint64_t>& sizes) {
  uint64_t sum = 0;
  for (uint64_t s : sizes) sum += s;
  return sum;
}

TEST(ReferenceMessageTest, OnePieceIsOneWholeMessage) {
  const absl::StatusOr<std::vector<uint64_t>> sizes = ReferenceMessageSizes(1);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(*sizes, std::vector<uint64_t>{256 * K});
}

TEST(ReferenceMessageTest, TwoOrThreePiecesAreTheHeaderAndEqualParts) {
  const absl::StatusOr<std::vector<uint64_t>> two = ReferenceMessageSizes(2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*two, (std::vector<uint64_t>{4 * K, 252 * K}));
  const absl::StatusOr<std::vector<uint64_t>> three = ReferenceMessageSizes(3);
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(*three, (std::vector<uint64_t>{4 * K, 126 * K, 126 * K}));
}

TEST(ReferenceMessageTest, FourPiecesAreHeaderBodyAndTheTwoLargePieces) {
  const absl::StatusOr<std::vector<uint64_t>> sizes = ReferenceMessageSizes(4);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(*sizes, (std::vector<uint64_t>{4 * K, 124 * K, 64 * K, 64 * K}));
}

TEST(ReferenceMessageTest, SixteenPiecesAsTheBenchmarksBuildThem) {
  // 13 small pieces share 124 KiB = 126976 bytes: 9767 each, the first 5
  // one byte more; the 64 KiB pieces follow the small pieces 4 and 8
  // (counting from 0: after small / 3 and 2 * small / 3).
  const absl::StatusOr<std::vector<uint64_t>> sizes = ReferenceMessageSizes(16);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(*sizes, (std::vector<uint64_t>{4 * K, 9768, 9768, 9768, 9768, 9768,
                                           64 * K, 9767, 9767, 9767, 9767,
                                           64 * K, 9767, 9767, 9767, 9767}));
}

class ReferenceMessageShapeTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ReferenceMessageShapeTest, IsTheHeaderTwoLargePiecesAndEvenSmallOnes) {
  const uint32_t pieces = GetParam();
  const absl::StatusOr<std::vector<uint64_t>> got =
      ReferenceMessageSizes(pieces);
  ASSERT_TRUE(got.ok()) << got.status();
  const std::vector<uint64_t>& sizes = *got;
  ASSERT_EQ(sizes.size(), pieces);
  EXPECT_EQ(Sum(sizes), 256 * K);
  EXPECT_EQ(sizes[0], 4 * K);
  std::vector<size_t> large;
  uint64_t smallest = UINT64_MAX, largest = 0;
  for (size_t i = 1; i < sizes.size(); ++i) {
    if (sizes[i] == 64 * K) {
      large.push_back(i);
      continue;
    }
    smallest = std::min(smallest, sizes[i]);
    largest = std::max(largest, sizes[i]);
  }
  ASSERT_EQ(large.size(), 2u);
  // The small pieces split the rest of the body evenly, first ones larger.
  EXPECT_GE(smallest, 1u);
  EXPECT_LE(largest - smallest, 1u);
  for (size_t i = 2; i < sizes.size(); ++i) {
    if (sizes[i] != 64 * K && sizes[i - 1] != 64 * K) {
      EXPECT_LE(sizes[i], sizes[i - 1]) << i;
    }
  }
  // Placed after small piece small / 3 and small piece 2 * small / 3.
  const size_t small = pieces - 3;
  EXPECT_EQ(large[0], 1 + small / 3 + 1);
  EXPECT_EQ(large[1], 1 + 2 * small / 3 + 2);
  if (pieces >= 16) {
    // About one and two thirds into the message, by piece count and bytes.
    EXPECT_NEAR(large[0], pieces / 3.0, 2 + pieces / 16.0);
    EXPECT_NEAR(large[1], 2 * pieces / 3.0, 2 + pieces / 16.0);
    uint64_t before_first = 0, before_second = 0;
    for (size_t i = 0; i < large[0]; ++i) before_first += sizes[i];
    for (size_t i = 0; i < large[1]; ++i) before_second += sizes[i];
    EXPECT_GT(before_first, 256 * K / 8) << "too near the start";
    EXPECT_LT(before_first, 256 * K / 2);
    EXPECT_GT(before_second, 256 * K / 2);
    EXPECT_LT(before_second, 256 * K - 64 * K) << "too near the end";
  }
}

INSTANTIATE_TEST_SUITE_P(PieceCounts, ReferenceMessageShapeTest,
                         ::testing::Values(4, 5, 6, 7, 16, 64, 256, 1024, 2048,
                                           kMaxReferencePieces));

TEST(ReferenceMessageTest, EveryPieceCountSumsToTheMessage) {
  for (uint32_t pieces = 1; pieces <= 3000; ++pieces) {
    const absl::StatusOr<std::vector<uint64_t>> sizes =
        ReferenceMessageSizes(pieces);
    ASSERT_TRUE(sizes.ok()) << pieces << ": " << sizes.status();
    ASSERT_EQ(sizes->size(), pieces);
    ASSERT_EQ(Sum(*sizes), 256 * K) << pieces;
    for (uint64_t s : *sizes) ASSERT_GT(s, 0u) << pieces;
  }
}

TEST(ReferenceMessageTest, RejectsZeroAndTooManyPieces) {
  for (uint32_t pieces : {0u, kMaxReferencePieces + 1, UINT32_MAX}) {
    const absl::StatusOr<std::vector<uint64_t>> sizes =
        ReferenceMessageSizes(pieces);
    EXPECT_EQ(sizes.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(sizes.status().message(),
                HasSubstr(absl::StrCat("reference message of ", pieces,
                                       " pieces: expected 1..65536")));
  }
}

}  // namespace
}  // namespace zcplan
