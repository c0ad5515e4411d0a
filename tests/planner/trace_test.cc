#include "planner/trace.h"

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
  EXPECT_THAT(ParseSize("K").status().message(), HasSubstr("expected a number"));
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

}  // namespace
}  // namespace zcplan
