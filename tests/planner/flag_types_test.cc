// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/flag_types.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/marshalling.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

template <typename T>
T Parsed(absl::string_view text) {
  T value{};
  std::string error;
  EXPECT_TRUE(absl::ParseFlag(text, &value, &error)) << text << ": " << error;
  return value;
}

template <typename T>
std::string Error(absl::string_view text) {
  T value{};
  std::string error;
  EXPECT_FALSE(absl::ParseFlag(text, &value, &error)) << text;
  return error;
}

TEST(FlagTypesTest, SizesTakeSuffixesAndRoundTrip) {
  EXPECT_EQ(Parsed<ByteSize>("4096").bytes, 4096u);
  EXPECT_EQ(Parsed<ByteSize>("4k").bytes, 4096u);
  EXPECT_EQ(Parsed<ByteSize>("3G").bytes, uint64_t{3} << 30);
  EXPECT_EQ(absl::UnparseFlag(ByteSize{1 << 20}), "1M");
  EXPECT_EQ(absl::UnparseFlag(ByteSize{1500}), "1500");
  EXPECT_THAT(Error<ByteSize>("4X"), HasSubstr("bad size '4X'"));
  EXPECT_THAT(Error<ByteSize>("-1"), HasSubstr("bad size '-1'"));
}

TEST(FlagTypesTest, ThresholdsTakeNever) {
  EXPECT_EQ(Parsed<Threshold>("never").bytes, PlanOptions::kNever);
  EXPECT_EQ(Parsed<Threshold>("NEVER").bytes, PlanOptions::kNever);
  EXPECT_EQ(Parsed<Threshold>("16K").bytes, 16384u);
  EXPECT_EQ(Parsed<Threshold>("0").bytes, 0u);
  EXPECT_EQ(absl::UnparseFlag(Threshold{PlanOptions::kNever}), "never");
  EXPECT_EQ(Parsed<Threshold>(absl::UnparseFlag(Threshold{65536})).bytes,
            65536u);
  EXPECT_THAT(Error<Threshold>("sometimes"), HasSubstr("never"));
}

TEST(FlagTypesTest, ListsKeepOrderAndRefuseEmpty) {
  EXPECT_EQ(Parsed<ByteSizeList>("4K,4K 16K").bytes,
            (std::vector<uint64_t>{4096, 4096, 16384}));
  EXPECT_EQ(absl::UnparseFlag(ByteSizeList{{4096, 100}}), "4K,100");
  EXPECT_TRUE(Parsed<ByteSizeList>("").bytes.empty());  // The default.
  EXPECT_EQ(absl::UnparseFlag(ByteSizeList{}), "");
  EXPECT_TRUE(Parsed<ThresholdList>("").bytes.empty());
  EXPECT_THAT(Error<ByteSizeList>(","), HasSubstr("no sizes"));
  EXPECT_EQ(Parsed<ThresholdList>("1K..4K,never").bytes,
            (std::vector<uint64_t>{1024, 2048, 4096, PlanOptions::kNever}));
  const ThresholdList list = Parsed<ThresholdList>("0,64K,never");
  EXPECT_EQ(Parsed<ThresholdList>(absl::UnparseFlag(list)).bytes, list.bytes);
  EXPECT_THAT(Error<ThresholdList>("8K..1K"), HasSubstr("bad range"));
}

TEST(FlagTypesTest, WholeNumbersAreDecimalDigitsOnly) {
  EXPECT_EQ(Parsed<WholeNumber>("64").value, 64u);
  EXPECT_EQ(Parsed<WholeNumber>("0").value, 0u);
  EXPECT_EQ(Parsed<WholeNumber>("4294967295").value, 4294967295u);
  EXPECT_EQ(absl::UnparseFlag(WholeNumber{17}), "17");
  // What Abseil's own integer flags would take: hex, blanks, signs.
  for (const char* bad :
       {"0x10", " 2", "2 ", "+2", "-1", "", "4294967296", "1e3", "ten"}) {
    EXPECT_THAT(Error<WholeNumber>(bad),
                HasSubstr("': expected a whole number, e.g. 64"))
        << bad;
  }
  EXPECT_EQ(Error<WholeNumber>("0x10"),
            "bad number '0x10': expected a whole number, e.g. 64");
}

TEST(FlagTypesTest, OnOffAndCopyOp) {
  EXPECT_TRUE(Parsed<OnOff>("on").on);
  EXPECT_FALSE(Parsed<OnOff>("off").on);
  EXPECT_EQ(Error<OnOff>("yes"), "bad value 'yes' (on or off)");
  EXPECT_EQ(absl::UnparseFlag(OnOff{true}), "on");
  EXPECT_EQ(Parsed<CopyOp>("sendmsg"), CopyOp::kSendmsg);
  EXPECT_EQ(Parsed<CopyOp>("writev"), CopyOp::kWritev);
  EXPECT_EQ(absl::UnparseFlag(CopyOp::kSendmsg), "sendmsg");
  EXPECT_THAT(Error<CopyOp>("splice"), HasSubstr("unknown copy op 'splice'"));
}

// Every value a flag can hold after a parse (sizes up to kMaxTraceSize,
// kNever, lists) reads back from what AbslUnparseFlag writes: tools/flags.h
// resets each flag from its unparsed default.
template <typename T>
T RoundTrip(const T& value) {
  return Parsed<T>(absl::UnparseFlag(value));
}

TEST(FlagTypesTest, EveryParsableValueRoundTrips) {
  std::mt19937_64 rng(13);
  auto size = [&]() -> uint64_t {
    switch (rng() % 6) {
      case 0:
        return 0;
      case 1:
        return INT64_MAX;  // kMaxTraceSize
      case 2:
        return (rng() % (uint64_t{1} << 33)) << (10 * (rng() % 4));
      case 3:
        return rng() % 5000;
      case 4:
        return (rng() >> 1) & ~((uint64_t{1} << (rng() % 40)) - 1);
      default:
        return rng() >> 1;  // Up to INT64_MAX.
    }
  };
  for (int i = 0; i < 20000; ++i) {
    const uint64_t n = size();
    ASSERT_EQ(RoundTrip(ByteSize{n}).bytes, n) << n;
    ASSERT_EQ(RoundTrip(Threshold{n}).bytes, n) << n;
    ASSERT_EQ(RoundTrip(Threshold{PlanOptions::kNever}).bytes,
              PlanOptions::kNever);
    std::vector<uint64_t> list(rng() % 5);
    for (uint64_t& x : list) x = size();
    ASSERT_EQ(RoundTrip(ByteSizeList{list}).bytes, list);
    std::vector<uint64_t> thresholds = list;
    if (rng() % 2) thresholds.push_back(PlanOptions::kNever);
    ASSERT_EQ(RoundTrip(ThresholdList{thresholds}).bytes, thresholds);
    const uint32_t w = static_cast<uint32_t>(rng());
    ASSERT_EQ(RoundTrip(WholeNumber{w}).value, w);
  }
  EXPECT_EQ(RoundTrip(WholeNumber{UINT32_MAX}).value, UINT32_MAX);
  EXPECT_TRUE(RoundTrip(OnOff{true}).on);
  EXPECT_FALSE(RoundTrip(OnOff{false}).on);
  EXPECT_EQ(RoundTrip(CopyOp::kSendmsg), CopyOp::kSendmsg);
  EXPECT_EQ(RoundTrip(CopyOp::kWritev), CopyOp::kWritev);
}

}  // namespace
}  // namespace zcplan
