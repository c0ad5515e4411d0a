// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/trace.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TraceTest, ParsesSizesWithBinarySuffixesInEitherCase) {
  EXPECT_EQ(*ParseSize("0"), 0u);
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("4K"), 4096u);
  EXPECT_EQ(*ParseSize("4k"), 4096u);
  EXPECT_EQ(*ParseSize("1M"), 1u << 20);
  EXPECT_EQ(*ParseSize("2g"), uint64_t{2} << 30);
}

TEST(TraceTest, RejectsBadSizesQuotingThem) {
  EXPECT_THAT(ParseSize("12Q").status().message(),
              HasSubstr("bad size '12Q': unknown suffix"));
  EXPECT_THAT(ParseSize("-4").status().message(),
              HasSubstr("bad size '-4': sizes cannot be negative"));
  // A flag where a size belongs is no number at all, not a negative one.
  EXPECT_EQ(ParseSize("--threshold").status().message(),
            "bad size '--threshold': expected a number of bytes, e.g. 4096, "
            "4K, 1M");
  EXPECT_THAT(ParseSize("-x").status().message(),
              HasSubstr("expected a number"));
  EXPECT_THAT(ParseSize("-").status().message(),
              HasSubstr("expected a number"));
  EXPECT_THAT(ParseSize("K").status().message(),
              HasSubstr("expected a number"));
  EXPECT_THAT(ParseSize("").status().message(), HasSubstr("expected a number"));
  EXPECT_THAT(ParseSize("4KB").status().message(), HasSubstr("unknown suffix"));
  EXPECT_THAT(ParseSize("9223372036854775808").status().message(),
              HasSubstr("larger than the limit"));
  EXPECT_THAT(ParseSize("99999999999999999999999").status().message(),
              HasSubstr("larger than the limit"));
  EXPECT_THAT(ParseSize("8589934592G").status().message(),
              HasSubstr("larger than the limit"));
  EXPECT_EQ(*ParseSize("9223372036854775807"), uint64_t{INT64_MAX});
}

TEST(TraceTest, ParsesListsSeparatedByCommasAndSpaces) {
  EXPECT_THAT(*ParseSizeList("4K,4K 16K,\t32K ,, 2K"),
              ElementsAre(4096, 4096, 16384, 32768, 2048));
  EXPECT_FALSE(ParseSizeList(" , ").ok());
}

TEST(TraceTest, ParsesBatchesSkippingCommentsAndBlankLines) {
  const auto trace = ParseTrace(
      "# header comment\n"
      "4K 4K 16K  # trailing comment\n"
      "\n"
      "   \n"
      "1,2,3\r\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->size(), 2u);
  EXPECT_EQ((*trace)[0].line, 2);
  EXPECT_THAT((*trace)[0].sizes, ElementsAre(4096, 4096, 16384));
  EXPECT_EQ((*trace)[1].line, 5);
  EXPECT_THAT((*trace)[1].sizes, ElementsAre(1, 2, 3));
}

TEST(TraceTest, TraceErrorsNameTheLine) {
  EXPECT_THAT(ParseTrace("1K\n2K\n3X\n").status().message(),
              HasSubstr("line 3: bad size '3X'"));
  EXPECT_THAT(ParseTrace("# nothing\n\n").status().message(),
              HasSubstr("no batch"));
}

TEST(TraceTest, ParserLineByLineGivesTheBatchesOfParseTrace) {
  const std::string text =
      "# header\n4K 4K 16K  # trailing\n\n   \n1,2,3\r\n,,8\n";
  const auto whole = ParseTrace(text);
  ASSERT_TRUE(whole.ok()) << whole.status();
  TraceParser parser;
  TraceBatch batch;
  std::vector<TraceBatch> got;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const absl::StatusOr<bool> more = parser.ParseLine(line, &batch);
    ASSERT_TRUE(more.ok()) << more.status();
    if (*more) got.push_back(batch);
  }
  EXPECT_TRUE(parser.Finish().ok());
  EXPECT_EQ(parser.lines(), 7);  // The empty piece after the last '\n' too.
  EXPECT_EQ(parser.batches(), 3u);
  ASSERT_EQ(got.size(), whole->size());
  for (size_t b = 0; b < got.size(); ++b) {
    EXPECT_EQ(got[b].line, (*whole)[b].line);
    EXPECT_EQ(got[b].sizes, (*whole)[b].sizes);
  }
  EXPECT_THAT(got[2].sizes, ElementsAre(8));
}

TEST(TraceTest, ParserSkipsBlankLinesWithoutTouchingTheBatch) {
  TraceParser parser;
  TraceBatch batch{9, {1, 2}};
  EXPECT_FALSE(*parser.ParseLine("   # only a comment", &batch));
  EXPECT_FALSE(*parser.ParseLine("", &batch));
  EXPECT_EQ(batch.line, 9);
  EXPECT_THAT(batch.sizes, ElementsAre(1, 2));
  EXPECT_EQ(parser.Finish().message(), "the trace holds no batch");
  EXPECT_TRUE(*parser.ParseLine("64K", &batch));
  EXPECT_EQ(batch.line, 3);
  EXPECT_THAT(batch.sizes, ElementsAre(65536));  // Replaced, not appended.
  EXPECT_TRUE(parser.Finish().ok());
}

TEST(TraceTest, ParserErrorsNameTheLine) {
  TraceParser parser;
  TraceBatch batch;
  EXPECT_TRUE(*parser.ParseLine("1K", &batch));
  EXPECT_EQ(parser.ParseLine("2K 3X", &batch).status().message(),
            "line 2: bad size '3X': unknown suffix (use K, M or G)");
  EXPECT_EQ(parser.ParseLine(" , ,", &batch).status().message(),
            "line 3: no sizes given");
  // Same as ParseTrace.
  EXPECT_EQ(ParseTrace("1K\n , ,\n").status().message(),
            "line 2: no sizes given");
}

TEST(TraceTest, FormatSizeUsesTheLargestSuffixThatDividesExactly) {
  EXPECT_EQ(FormatSize(0), "0");
  EXPECT_EQ(FormatSize(1), "1");
  EXPECT_EQ(FormatSize(1000), "1000");
  EXPECT_EQ(FormatSize(1023), "1023");
  EXPECT_EQ(FormatSize(1500), "1500");
  EXPECT_EQ(FormatSize(4096), "4K");
  EXPECT_EQ(FormatSize(1536 * 1024), "1536K");
  EXPECT_EQ(FormatSize(1 << 20), "1M");
  EXPECT_EQ(FormatSize(uint64_t{3} << 30), "3G");
  EXPECT_EQ(FormatSize((uint64_t{1} << 40) + 1024), "1073741825K");
  EXPECT_EQ(FormatSize(kMaxTraceSize), "9223372036854775807");
  EXPECT_EQ(FormatSize(kMaxTraceSize + 1), "8589934592G");
}

TEST(TraceTest, FormatSizeIsTheExactInverseOfParseSize) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 10000; ++i) {
    // Mostly multiples of 1K, 1M or 1G, with some odd sizes among them.
    const int shift = static_cast<int>(rng() % 64);
    const uint64_t n = (rng() >> shift) << (rng() % 4 * 10) & kMaxTraceSize;
    const absl::StatusOr<uint64_t> back = ParseSize(FormatSize(n));
    ASSERT_TRUE(back.ok()) << n << ": " << back.status();
    EXPECT_EQ(*back, n) << FormatSize(n);
  }
}

TEST(TraceTest, HumanSizeRoundsToOneDecimalUnlessExact) {
  EXPECT_EQ(HumanSize(300), "300");
  EXPECT_EQ(HumanSize(1023), "1023");
  EXPECT_EQ(HumanSize(1024), "1K");
  EXPECT_EQ(HumanSize(1536), "1.5K");
  EXPECT_EQ(HumanSize(59392), "58K");
  EXPECT_EQ(HumanSize(3 << 19), "1.5M");
  EXPECT_EQ(HumanSize((uint64_t{5} << 30) + 1), "5.0G");
  EXPECT_EQ(HumanSize(uint64_t{4096} << 30), "4096G");
}

TEST(TraceTest, ParsesThresholdsAsSizesOrNever) {
  EXPECT_EQ(*ParseThreshold("16K"), 16384u);
  EXPECT_EQ(*ParseThreshold("0"), 0u);
  EXPECT_EQ(*ParseThreshold("never"), PlanOptions::kNever);
  EXPECT_EQ(*ParseThreshold("NEVER"), PlanOptions::kNever);
  EXPECT_EQ(ParseThreshold("nevermore").status().message(),
            "bad size 'nevermore': expected a number of bytes, e.g. 4096, 4K, "
            "1M; a threshold may also be 'never'");
  EXPECT_THAT(ParseThreshold("-1").status().message(),
              HasSubstr("bad size '-1'"));
  EXPECT_THAT(ParseThreshold("").status().message(), HasSubstr("bad size ''"));
}

TEST(TraceTest, FormatThresholdIsTheInverseOfParseThreshold) {
  EXPECT_EQ(FormatThreshold(PlanOptions::kNever), "never");
  EXPECT_EQ(FormatThreshold(16384), "16K");
  EXPECT_EQ(FormatThreshold(0), "0");
  for (uint64_t t : {uint64_t{0}, uint64_t{1}, uint64_t{1500},
                     uint64_t{64} << 10, kMaxTraceSize, PlanOptions::kNever}) {
    EXPECT_EQ(*ParseThreshold(FormatThreshold(t)), t);
  }
}

TEST(TraceTest, ParsesThresholdListsWithDoublingRanges) {
  EXPECT_THAT(*ParseThresholdList("1K,4K,never"),
              ElementsAre(1024, 4096, PlanOptions::kNever));
  EXPECT_THAT(*ParseThresholdList("1K..8K"),
              ElementsAre(1024, 2048, 4096, 8192));
  // Up to the last at most B; duplicates and order kept.
  EXPECT_THAT(*ParseThresholdList(" 1K..7K , 16K,1K"),
              ElementsAre(1024, 2048, 4096, 16384, 1024));
  EXPECT_THAT(*ParseThresholdList("3..3"), ElementsAre(3));
  EXPECT_THAT(*ParseThresholdList("1,,2, ,"), ElementsAre(1, 2));
  // The largest range cannot overflow.
  const auto all = ParseThresholdList("1..9223372036854775807");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 63u);
  EXPECT_EQ(all->back(), uint64_t{1} << 62);
}

TEST(TraceTest, ThresholdListErrorsQuoteTheBadText) {
  EXPECT_THAT(ParseThresholdList("1K,abc").status().message(),
              HasSubstr("bad size 'abc'"));
  EXPECT_EQ(ParseThresholdList("64K..1K").status().message(),
            "bad range '64K..1K': expected A..B with 0 < A <= B");
  EXPECT_THAT(ParseThresholdList("0..1K").status().message(),
              HasSubstr("bad range '0..1K'"));
  EXPECT_THAT(ParseThresholdList("1K..never").status().message(),
              HasSubstr("bad size 'never'"));
  EXPECT_THAT(ParseThresholdList("x..1K").status().message(),
              HasSubstr("bad size 'x'"));
  EXPECT_EQ(ParseThresholdList(" , ").status().message(),
            "no thresholds given");
  EXPECT_EQ(ParseThresholdList("").status().message(), "no thresholds given");
}

TEST(ParseCopyOpTest, ReadsWhatCopyOpNameWrites) {
  for (CopyOp op : {CopyOp::kWritev, CopyOp::kSendmsg}) {
    EXPECT_EQ(*ParseCopyOp(CopyOpName(op)), op);
  }
  const absl::Status bad = ParseCopyOp("splice").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("'splice'"), absl::string_view::npos) << bad;
  EXPECT_FALSE(ParseCopyOp("").ok());
  EXPECT_FALSE(ParseCopyOp("Writev").ok());
}

TEST(ParseCountTest, AcceptsDigitsWithinTheRangeOnly) {
  EXPECT_EQ(*ParseCount("0", 0, 10), 0u);
  EXPECT_EQ(*ParseCount("10", 1, 10), 10u);
  EXPECT_EQ(*ParseCount("4294967295", 0, UINT32_MAX), UINT32_MAX);
  for (const char* bad :
       {"", "11", "0", "-1", "+1", "1.0", "1e3", " 1", "x", "4294967296"}) {
    const absl::Status s = ParseCount(bad, 1, 10).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(absl::StrCat("'", bad, "': expected 1..10")),
              absl::string_view::npos)
        << s;
  }
}

}  // namespace
}  // namespace zcplan
