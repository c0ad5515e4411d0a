// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/flags.h"

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/planner/flag_types.h"

ABSL_FLAG(zcplan::ByteSize, size, zcplan::ByteSize{4096}, "a size");
ABSL_FLAG(zcplan::Threshold, threshold, zcplan::Threshold{16384},
          "a threshold");
ABSL_FLAG(bool, loud, false, "a switch");
ABSL_FLAG(uint32_t, count, 1, "a count");
ABSL_FLAG(std::string, name, "", "a name");
ABSL_FLAG(zcplan::ByteSizeList, split, {}, "a size list");
ABSL_FLAG(zcplan::ThresholdList, thresholds, {}, "a threshold list");
ABSL_FLAG(absl::Duration, every, absl::Seconds(1), "a duration");
ABSL_FLAG(zcplan::OnOff, adaptive, zcplan::OnOff{true}, "a switch word");
ABSL_FLAG(zcplan::CopyOp, copy_op, zcplan::CopyOp::kWritev, "a copy op");

namespace zcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::string_view kAll[] = {"size",    "threshold", "loud", "count",
                                      "copy-op", "name",      "every"};
constexpr FlagSyntax kPositional{"tool", " for 'plan'", true};
constexpr FlagSyntax kFlagsOnly{"tool", "", false};

struct Values {
  uint64_t size = 0;
  uint64_t threshold = 0;
  bool loud = false;
  uint32_t count = 0;
  std::string name;
};

absl::StatusOr<ParsedFlags> Parse(
    std::vector<std::string> args, const FlagSyntax& syntax, Values* values,
    absl::Span<const absl::string_view> allowed = kAll) {
  return ParseFlags(args, allowed, syntax, [&](const ParsedFlags&) {
    values->size = absl::GetFlag(FLAGS_size).bytes;
    values->threshold = absl::GetFlag(FLAGS_threshold).bytes;
    values->loud = absl::GetFlag(FLAGS_loud);
    values->count = absl::GetFlag(FLAGS_count);
    values->name = absl::GetFlag(FLAGS_name);
    return absl::OkStatus();
  });
}

std::string ErrorOf(std::vector<std::string> args,
                    const FlagSyntax& syntax = kFlagsOnly) {
  Values v;
  absl::StatusOr<ParsedFlags> parsed = Parse(std::move(args), syntax, &v);
  EXPECT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST(FlagsTest, BothSpellingsAndBoolsSetValuesInsideRead) {
  Values v;
  absl::StatusOr<ParsedFlags> parsed =
      Parse({"--size=1M", "--threshold", "never", "--loud", "--count", "7"},
            kFlagsOnly, &v);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(v.size, uint64_t{1} << 20);
  EXPECT_EQ(v.threshold, PlanOptions::kNever);
  EXPECT_TRUE(v.loud);
  EXPECT_EQ(v.count, 7u);
  EXPECT_THAT(parsed->given, ElementsAre("size", "threshold", "loud", "count"));
  EXPECT_FALSE(parsed->help);
}

TEST(FlagsTest, EveryFlagIsBackAtItsDefaultAfterwards) {
  Values v;
  ASSERT_TRUE(Parse({"--size=8K", "--loud", "--name=x"}, kFlagsOnly, &v).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_size).bytes, 4096u);
  EXPECT_FALSE(absl::GetFlag(FLAGS_loud));
  EXPECT_EQ(absl::GetFlag(FLAGS_name), "");
  ASSERT_TRUE(Parse({}, kFlagsOnly, &v).ok());
  EXPECT_EQ(v.size, 4096u);
  EXPECT_EQ(v.threshold, 16384u);
  EXPECT_FALSE(v.loud);
  // Also after an error half-way through.
  EXPECT_THAT(ErrorOf({"--size=8K", "--count=x"}), HasSubstr("--count"));
  EXPECT_EQ(absl::GetFlag(FLAGS_size).bytes, 4096u);
}

TEST(FlagsTest, HyphensOnTheCommandLineAreUnderscoresInTheName) {
  const absl::string_view copy_op[] = {"copy-op"};
  CopyOp op = CopyOp::kWritev;
  absl::StatusOr<ParsedFlags> parsed = ParseFlags(
      {"--copy-op=sendmsg"}, copy_op, kFlagsOnly, [&](const ParsedFlags&) {
        op = absl::GetFlag(FLAGS_copy_op);
        return absl::OkStatus();
      });
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(op, CopyOp::kSendmsg);
  EXPECT_THAT(parsed->given, ElementsAre("copy-op"));
  parsed = ParseFlags({"--copy_op=sendmsg"}, copy_op, kFlagsOnly,
                      [](const ParsedFlags&) { return absl::OkStatus(); });
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "unknown flag '--copy_op'; see tool --help");
}

TEST(FlagsTest, EveryTypeIsResetSilently) {
  const absl::string_view names[] = {
      "split", "thresholds", "every", "adaptive", "copy-op", "name", "loud"};
  testing::internal::CaptureStderr();
  std::vector<uint64_t> split;
  absl::StatusOr<ParsedFlags> parsed =
      ParseFlags({"--split=4K,8K", "--thresholds=0,never", "--every=5ms",
                  "--adaptive=off", "--copy-op=sendmsg", "--name=n", "--loud"},
                 names, kFlagsOnly, [&](const ParsedFlags&) {
                   split = absl::GetFlag(FLAGS_split).bytes;
                   return absl::OkStatus();
                 });
  const std::string stderr_text = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(split, ElementsAre(4096, 8192));
  EXPECT_EQ(stderr_text, "");  // absl::FlagSaver would log each restore.
  EXPECT_TRUE(absl::GetFlag(FLAGS_split).bytes.empty());
  EXPECT_TRUE(absl::GetFlag(FLAGS_thresholds).bytes.empty());
  EXPECT_EQ(absl::GetFlag(FLAGS_every), absl::Seconds(1));
  EXPECT_TRUE(absl::GetFlag(FLAGS_adaptive).on);
  EXPECT_EQ(absl::GetFlag(FLAGS_copy_op), CopyOp::kWritev);
  EXPECT_EQ(absl::GetFlag(FLAGS_name), "");
  EXPECT_FALSE(absl::GetFlag(FLAGS_loud));
}

TEST(FlagsTest, TheLastOfARepeatedFlagWins) {
  Values v;
  absl::StatusOr<ParsedFlags> parsed =
      Parse({"--count=2", "--count=3"}, kFlagsOnly, &v);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(v.count, 3u);
  EXPECT_THAT(parsed->given, ElementsAre("count", "count"));
}

TEST(FlagsTest, ErrorsAreOneLineNamingTheFlag) {
  EXPECT_EQ(ErrorOf({"--nope"}), "unknown flag '--nope'; see tool --help");
  EXPECT_EQ(ErrorOf({"--nope=1"}, kPositional),
            "unknown flag '--nope' for 'plan'; see tool --help");
  EXPECT_EQ(ErrorOf({"-x"}, kPositional),
            "unknown flag '-x' for 'plan'; see tool --help");
  EXPECT_EQ(ErrorOf({"stray"}),
            "unexpected argument 'stray': every input is a flag; see tool "
            "--help");
  EXPECT_EQ(ErrorOf({"--"}),
            "unexpected argument '--': every input is a flag; see tool --help");
  EXPECT_EQ(ErrorOf({"--size"}), "flag --size needs a value");
  EXPECT_EQ(ErrorOf({"--size", "--loud"}), "flag --size needs a value");
  EXPECT_EQ(ErrorOf({"--loud=yes"}), "flag --loud takes no value (got 'yes')");
  EXPECT_THAT(ErrorOf({"--size=4X"}), HasSubstr("--size: bad size '4X'"));
  EXPECT_EQ(ErrorOf({"--count=abc"}), "--count: bad value 'abc'");
  EXPECT_EQ(ErrorOf({"--every=fast"}),
            "--every: bad duration 'fast': expected a number and a unit, e.g. "
            "300ms or 2s");
  EXPECT_EQ(ErrorOf({"--count=99999999999"}),
            "--count: bad value '99999999999'");
}

TEST(FlagsTest, AFlagNotAllowedIsUnknownEvenIfDefined) {
  Values v;
  const absl::string_view only_size[] = {"size"};
  absl::StatusOr<ParsedFlags> parsed =
      Parse({"--loud"}, kFlagsOnly, &v, only_size);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "unknown flag '--loud'; see tool --help");
}

TEST(FlagsTest, AnAllowedFlagThatIsNotDefinedIsABug) {
  Values v;
  const absl::string_view ghost[] = {"ghost"};
  absl::StatusOr<ParsedFlags> parsed =
      Parse({"--ghost=1"}, kFlagsOnly, &v, ghost);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInternal);
}

TEST(FlagsTest, ControlCharactersInValuesAreEscaped) {
  const std::string message = ErrorOf({std::string("--size=\x01\n9")});
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_EQ(message.find('\x01'), std::string::npos);
  EXPECT_THAT(message, HasSubstr("\\x01\\n9"));
  EXPECT_LT(ErrorOf({"--size=" + std::string(100000, 'x')}).size(), 1000u);
}

// Escaped once, whichever message names the value: the type's own, or the
// one written for a type that gave none.
TEST(FlagsTest, ValuesAreEscapedOnceInEveryKindOfError) {
  EXPECT_EQ(ErrorOf({"--count=\x1b"}), "--count: bad value '\\x1b'");
  EXPECT_EQ(ErrorOf({"--every=\x1b"}),
            "--every: bad duration '\\x1b': expected a number and a unit, "
            "e.g. 300ms or 2s");
  EXPECT_THAT(ErrorOf({"--size=\x1b"}), HasSubstr("bad size '\\x1b'"));
}

TEST(FlagsTest, PositionalArgumentsDashesAndNegativeNumbers) {
  Values v;
  absl::StatusOr<ParsedFlags> parsed = Parse(
      {"4K", "-5", "--loud", "16K", "--", "--size=1", "-h"}, kPositional, &v);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->positional,
              ElementsAre("4K", "-5", "16K", "--size=1", "-h"));
  EXPECT_EQ(parsed->positional_before_dashes, 3u);
  EXPECT_TRUE(v.loud);
  EXPECT_EQ(v.size, 4096u);  // After "--" it is an argument, not a flag.
  EXPECT_FALSE(parsed->help);
}

TEST(FlagsTest, HelpIsReportedNotActedOn) {
  Values v;
  absl::StatusOr<ParsedFlags> parsed =
      Parse({"--count=2", "-h"}, kFlagsOnly, &v);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->help);
  EXPECT_EQ(v.count, 2u);
}

TEST(FlagsTest, ReadsErrorIsReturned) {
  const absl::string_view only_count[] = {"count"};
  absl::StatusOr<ParsedFlags> parsed =
      ParseFlags({"--count=0"}, only_count, kFlagsOnly, [](const ParsedFlags&) {
        return absl::GetFlag(FLAGS_count) == 0
                   ? absl::InvalidArgumentError("count must be positive")
                   : absl::OkStatus();
      });
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "count must be positive");
}

TEST(FlagsTest, ConcurrentParsesNeverSeeEachOthersValues) {
  constexpr int kRounds = 300;
  auto run = [](uint32_t mine, int* wrong) {
    for (int i = 0; i < kRounds; ++i) {
      Values v;
      if (!Parse({"--count=" + std::to_string(mine)}, kFlagsOnly, &v).ok() ||
          v.count != mine) {
        ++*wrong;
      }
    }
  };
  int wrong_a = 0, wrong_b = 0;
  std::thread a(run, 11u, &wrong_a);
  std::thread b(run, 22u, &wrong_b);
  a.join();
  b.join();
  EXPECT_EQ(wrong_a, 0);
  EXPECT_EQ(wrong_b, 0);
}

}  // namespace
}  // namespace zcplan
