// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/cost.h"

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr uint64_t K = 1024;

std::vector<struct iovec> At(std::vector<std::pair<uintptr_t, uint64_t>> v) {
  std::vector<struct iovec> q;
  for (auto [base, len] : v) q.push_back({reinterpret_cast<void*>(base), len});
  return q;
}

TEST(CostTest, CountsOpsBytesIovecsAndPinnedPages) {
  // Seed example; the 16K buffer starts mid-page, so it spans 5 pages.
  const auto q = At({{0x10000, 4 * K},
                     {0x20000, 4 * K},
                     {0x30800, 16 * K},
                     {0x40000, 32 * K},
                     {0x50000, 2 * K}});
  PlanOptions o;
  o.zc_threshold = 16 * K;
  const absl::StatusOr<Plan> plan = PlanChain(q, 0, o);
  ASSERT_TRUE(plan.ok());
  CostWeights w;
  const PlanCost c = EstimateCost(q, *plan, w);
  EXPECT_EQ(c.ops_by_kind[static_cast<int>(OpKind::kWritev)], 1u);
  EXPECT_EQ(c.ops_by_kind[static_cast<int>(OpKind::kSendmsgZc)], 1u);
  EXPECT_EQ(c.ops_by_kind[static_cast<int>(OpKind::kSend)], 1u);
  EXPECT_EQ(c.ops(), 3u);
  EXPECT_EQ(c.zero_copy_ops(), 1u);
  EXPECT_EQ(c.bytes_copied, 10 * K);
  EXPECT_EQ(c.bytes_zero_copy, 48 * K);
  EXPECT_EQ(c.iovs_copied, 3u);
  EXPECT_EQ(c.iovs_zero_copy, 2u);
  EXPECT_EQ(c.pages_pinned, 5u + 8u);
  const double want = 3 * w.per_op + 1 * w.per_zc_op +
                      10 * K * w.per_copy_byte + 48 * K * w.per_zc_byte +
                      3 * w.per_copy_iov + 2 * w.per_zc_iov +
                      13 * w.per_pinned_page;
  EXPECT_DOUBLE_EQ(c.cost, want);
}

TEST(CostTest, CountsOnlyThePiecesAnOpSends) {
  // Resumed 1 byte before a page end, and split by the byte limit: pieces,
  // not whole iovecs, are counted.
  const auto q = At({{0x10000, 64 * K}});
  PlanOptions o;
  o.zc_threshold = 0;
  o.max_bytes_per_op = 2;
  const absl::StatusOr<Plan> plan = PlanChain(q, 4095, o);
  ASSERT_TRUE(plan.ok());
  const PlanCost first = EstimateCost(q, *plan, CostWeights());
  EXPECT_EQ(first.ops(), 64u);
  EXPECT_EQ(first.bytes_zero_copy, 128u);
  EXPECT_EQ(first.iovs_zero_copy, 64u);
  // The first op's 2 bytes straddle a page boundary; the rest do not.
  EXPECT_EQ(first.pages_pinned, 65u);
}

TEST(CostTest, CountsPagesWithoutOverflowNearTheTopOfTheAddressSpace) {
  // A buffer ending at the very last byte: start + length wraps to 0.
  const uintptr_t top = UINTPTR_MAX - 16 * K + 1;
  const auto q = At({{top - 100, 16 * K + 100}});
  PlanOptions o;
  o.zc_threshold = 0;
  const absl::StatusOr<Plan> plan = PlanChain(q, 0, o);
  ASSERT_TRUE(plan.ok());
  const PlanCost c = EstimateCost(q, *plan, CostWeights());
  EXPECT_EQ(c.pages_pinned, 5u);  // 100 bytes of one page, then 4 whole.
  EXPECT_EQ(c.iovs_zero_copy, 1u);
}

TEST(CostTest, SkipsEmptyIovecsInsideAnOp) {
  const auto q = At({{0x10000, 100}, {0x20000, 0}, {0x30000, 200}});
  const absl::StatusOr<Plan> plan = PlanChain(q, 0, PlanOptions());
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->ops().size(), 1u);
  ASSERT_EQ(plan->ops()[0].iov_count, 3u);
  const PlanCost c = EstimateCost(q, *plan, CostWeights());
  EXPECT_EQ(c.iovs_copied, 2u);
  EXPECT_EQ(c.bytes_copied, 300u);
}

TEST(CostTest, SumsWithPlusEquals) {
  PlanCost a, b;
  a.ops_by_kind[0] = 1;
  a.bytes_copied = 10;
  a.cost = 1.5;
  b.ops_by_kind[0] = 2;
  b.pages_pinned = 3;
  b.cost = 2;
  a += b;
  EXPECT_EQ(a.ops_by_kind[0], 3u);
  EXPECT_EQ(a.bytes_copied, 10u);
  EXPECT_EQ(a.pages_pinned, 3u);
  EXPECT_DOUBLE_EQ(a.cost, 3.5);
}

TEST(CostTest, RejectsNegativeOrNonFiniteWeightsAndBadPageSize) {
  CostWeights w;
  EXPECT_TRUE(ValidateCostWeights(w).ok());
  w.per_zc_iov = -1;
  EXPECT_THAT(ValidateCostWeights(w).message(),
              HasSubstr("CostWeights.per_zc_iov is -1"));
  w = CostWeights();
  w.per_op = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateCostWeights(w).message(), HasSubstr("per_op is inf"));
  w = CostWeights();
  w.per_zc_op = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(ValidateCostWeights(w).message(), HasSubstr("per_zc_op is nan"));
  w = CostWeights();
  w.per_op = kMaxCostWeight;
  EXPECT_TRUE(ValidateCostWeights(w).ok());
  w.per_op = 1e308;  // Finite, but 1e308 * 2 ops is inf.
  EXPECT_THAT(ValidateCostWeights(w).message(),
              HasSubstr("per_op is 1e+308; it must be a number in "
                        "0..1000000000"));
  w = CostWeights();
  w.page_size = 3000;
  EXPECT_THAT(ValidateCostWeights(w).message(),
              HasSubstr("page_size is 3000; it must be a power of two"));
}

void ExpectSameWeights(const CostWeights& got, const CostWeights& want) {
  EXPECT_EQ(got.per_op, want.per_op);
  EXPECT_EQ(got.per_zc_op, want.per_zc_op);
  EXPECT_EQ(got.per_copy_byte, want.per_copy_byte);
  EXPECT_EQ(got.per_zc_byte, want.per_zc_byte);
  EXPECT_EQ(got.per_copy_iov, want.per_copy_iov);
  EXPECT_EQ(got.per_zc_iov, want.per_zc_iov);
  EXPECT_EQ(got.per_pinned_page, want.per_pinned_page);
  EXPECT_EQ(got.page_size, want.page_size);
}

TEST(ParseDecimalTest, TakesDecimalNotationOnly) {
  double v = -1;
  for (const auto& [text, want] :
       std::vector<std::pair<std::string, double>>{{"12", 12},
                                                   {"0.5", 0.5},
                                                   {".5", 0.5},
                                                   {"5.", 5},
                                                   {"1e-3", 1e-3},
                                                   {"2E+2", 200},
                                                   {"+2", 2},
                                                   {"-1.5", -1.5},
                                                   {"0", 0}}) {
    EXPECT_TRUE(ParseDecimal(text, &v)) << text;
    EXPECT_DOUBLE_EQ(v, want) << text;
  }
  // strtod takes all of these; a weight written by a person never is one.
  for (const char* text :
       {"0x10", "0X1p4", "inf", "-inf", "nan", "infinity", "", ".", "e5", "1e",
        "1e+", " 1", "1 ", "1.2.3", "--1", "1_000", "١"}) {
    EXPECT_FALSE(ParseDecimal(text, &v)) << text;
  }
}

TEST(CostWeightsFileTest, RefusesHexadecimalValues) {
  absl::StatusOr<CostWeights> w = ParseCostWeights("per_op 0x10\n");
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::StrContains(w.status().message(), "0x10")) << w.status();
}

TEST(CostWeightsFileTest, FormatsOneNameValueLinePerWeight) {
  EXPECT_EQ(FormatCostWeights(CostWeights()),
            "per_op 1500\n"
            "per_zc_op 800\n"
            "per_copy_byte 0.2\n"
            "per_zc_byte 0\n"
            "per_copy_iov 20\n"
            "per_zc_iov 200\n"
            "per_pinned_page 50\n"
            "page_size 4096\n");
}

TEST(CostWeightsFileTest, RoundTripsDefaultAndOtherWeights) {
  {
    const absl::StatusOr<CostWeights> back =
        ParseCostWeights(FormatCostWeights(CostWeights()));
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameWeights(*back, CostWeights());
  }
  CostWeights w;
  w.per_op = 1234.5;
  w.per_zc_op = 0;
  w.per_copy_byte = 0.000125;
  w.per_zc_byte = 3e-9;
  w.per_copy_iov = 1e9;  // kMaxCostWeight
  w.per_zc_iov = 77;
  w.per_pinned_page = 0.5;
  w.page_size = 65536;
  const absl::StatusOr<CostWeights> back =
      ParseCostWeights(FormatCostWeights(w));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameWeights(*back, w);
}

TEST(CostWeightsFileTest, RoundTripsFittedWeightsExactly) {
  // Weights as a fit returns them: every digit of a double.
  CostWeights w;
  w.per_op = 1234.5678901234567;
  w.per_zc_op = 1.0 / 3;
  w.per_copy_byte = 0.2371946192837465;
  w.per_zc_byte = 1e-7 / 3;
  w.per_copy_iov = 19.999999999999996;
  w.per_zc_iov = 200.00000000000003;
  w.per_pinned_page = 49.123456789;
  w.page_size = 1 << 30;
  const absl::StatusOr<CostWeights> back =
      ParseCostWeights(FormatCostWeights(w));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameWeights(*back, w);
}

TEST(CostWeightsFileTest, SkipsCommentsAndBlankLinesAndAcceptsTabsAndCrlf) {
  const absl::StatusOr<CostWeights> w = ParseCostWeights(
      "# calibrated on host x\n"
      "\n"
      "per_op 7   # trailing comment\n"
      "   # indented comment\n"
      "\t \n"
      "\tper_zc_op\t9 \r\n"
      "page_size 8192");  // No final newline.
  ASSERT_TRUE(w.ok()) << w.status();
  CostWeights want;
  want.per_op = 7;
  want.per_zc_op = 9;
  want.page_size = 8192;
  ExpectSameWeights(*w, want);
}

TEST(CostWeightsFileTest, WeightsNotInTheFileKeepTheirDefaults) {
  const absl::StatusOr<CostWeights> w = ParseCostWeights("per_copy_byte 0.5\n");
  ASSERT_TRUE(w.ok()) << w.status();
  CostWeights want;
  want.per_copy_byte = 0.5;
  ExpectSameWeights(*w, want);

  for (const char* empty : {"", "\n\n", "# only a comment\n"}) {
    const absl::StatusOr<CostWeights> d = ParseCostWeights(empty);
    ASSERT_TRUE(d.ok()) << d.status();
    ExpectSameWeights(*d, CostWeights());
  }
}

struct BadWeightsFile {
  const char* text;
  const char* expected;  // In the error message.
};

class CostWeightsFileErrorTest : public testing::TestWithParam<BadWeightsFile> {
};

TEST_P(CostWeightsFileErrorTest, NamesTheLineAndTheProblem) {
  const absl::StatusOr<CostWeights> w = ParseCostWeights(GetParam().text);
  ASSERT_FALSE(w.ok()) << GetParam().text;
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(w.status().message());
  EXPECT_THAT(message, StartsWith("weights line "));
  EXPECT_THAT(message, HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, CostWeightsFileErrorTest,
    testing::Values(
        BadWeightsFile{"per_op 1\nper_bogus 2\n",
                       "weights line 2: unknown weight 'per_bogus'"},
        BadWeightsFile{"PER_OP 1\n", "weights line 1: unknown weight 'PER_OP'"},
        BadWeightsFile{"per-op 1\n", "weights line 1: unknown weight 'per-op'"},
        BadWeightsFile{"# x\n\nper_zc_op abc\n",
                       "weights line 3: bad value 'abc' for per_zc_op: "
                       "expected a number in 0..1000000000"},
        BadWeightsFile{"per_op 1.5ns\n", "weights line 1: bad value '1.5ns'"},
        BadWeightsFile{"per_op 1\nper_zc_iov -1\n",
                       "weights line 2: bad value '-1' for per_zc_iov"},
        BadWeightsFile{"per_op inf\n", "weights line 1: bad value 'inf'"},
        BadWeightsFile{"per_op -inf\n", "weights line 1: bad value '-inf'"},
        BadWeightsFile{"per_op nan\n", "weights line 1: bad value 'nan'"},
        BadWeightsFile{"per_op 1e999\n", "weights line 1: bad value '1e999'"},
        // Above kMaxCostWeight: finite, but a cost could overflow to inf.
        BadWeightsFile{"per_zc_op 1e308\n",
                       "weights line 1: bad value '1e308' for per_zc_op: "
                       "expected a number in 0..1000000000"},
        BadWeightsFile{"per_op 1000000000.5\n",
                       "weights line 1: bad value '1000000000.5'"},
        BadWeightsFile{"\nper_op 1 2\n",
                       "weights line 2: expected 'name value', got 'per_op 1 "
                       "2'"},
        BadWeightsFile{"per_op\n",
                       "weights line 1: expected 'name value', got 'per_op'"},
        BadWeightsFile{"per_op=1\n", "weights line 1: expected 'name value'"},
        BadWeightsFile{"per_op 1\nper_zc_op 2\nper_op 1\n",
                       "weights line 3: 'per_op' given twice"},
        BadWeightsFile{"page_size 4096\npage_size 4096\n",
                       "weights line 2: 'page_size' given twice"},
        BadWeightsFile{"page_size 4K\n", "weights line 1: bad page_size '4K'"},
        BadWeightsFile{"page_size -4096\n",
                       "weights line 1: bad page_size '-4096'"},
        BadWeightsFile{"page_size 1.5\n", "weights line 1: bad page_size"},
        BadWeightsFile{"per_op 1\npage_size 3000\n",
                       "weights line 2: CostWeights.page_size is 3000; it "
                       "must be a power of two"},
        BadWeightsFile{"page_size 256\n",
                       "weights line 1: CostWeights.page_size "
                       "is 256"},
        BadWeightsFile{"page_size 2147483648\n",
                       "weights line 1: CostWeights.page_size is 2147483648"},
        BadWeightsFile{"page_size 0\n",
                       "weights line 1: CostWeights.page_size is 0"}));

}  // namespace
}  // namespace zcplan
