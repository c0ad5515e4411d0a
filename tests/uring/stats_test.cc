// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/stats.h"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"

namespace zcplan {
namespace {

// Where a field lies in a SendStats, in bytes from its start.
size_t OffsetOf(uint64_t SendStats::*field) {
  static const SendStats probe;
  return static_cast<size_t>(reinterpret_cast<const char*>(&(probe.*field)) -
                             reinterpret_cast<const char*>(&probe));
}

// Every field set to a distinct non-zero value: ops[i] = 1 + i, the table's
// rows 100 + row.
SendStats Distinct() {
  SendStats s;
  for (int i = 0; i < kNumOpKinds; ++i) s.ops[i] = 1 + i;
  uint64_t value = 100;
  for (const StatField& f : SendStatsFields()) s.*f.field = value++;
  return s;
}

TEST(StatsTest, TableCoversEveryFieldOnceInDeclarationOrder) {
  const absl::Span<const StatField> fields = SendStatsFields();
  ASSERT_EQ(fields.size() + kNumOpKinds, sizeof(SendStats) / sizeof(uint64_t));
  // The first row follows ops; each next row is the next field.
  size_t expected = sizeof(SendStats::ops);
  for (const StatField& f : fields) {
    EXPECT_EQ(OffsetOf(f.field), expected) << f.name;
    expected += sizeof(uint64_t);
  }
}

TEST(StatsTest, NamesAreDistinctAndNotOpNames) {
  std::set<std::string> names;
  for (int i = 0; i < kNumOpKinds; ++i) {
    names.insert(std::string(OpKindName(static_cast<OpKind>(i))));
  }
  for (const StatField& f : SendStatsFields()) {
    EXPECT_FALSE(f.name.empty());
    EXPECT_TRUE(names.insert(std::string(f.name)).second) << f.name;
  }
}

TEST(StatsTest, KindsOfTheAwaitingFields) {
  for (const StatField& f : SendStatsFields()) {
    if (f.name == "bytes_awaiting_notification") {
      EXPECT_EQ(f.kind, StatKind::kGauge);
    } else if (f.name == "peak_bytes_awaiting_notification") {
      EXPECT_EQ(f.kind, StatKind::kPeak);
    } else {
      EXPECT_EQ(f.kind, StatKind::kCounter) << f.name;
    }
  }
}

TEST(StatsTest, AddSumsEveryField) {
  const SendStats one = Distinct();
  SendStats sum;
  sum.Add(one);
  sum.Add(one);
  for (int i = 0; i < kNumOpKinds; ++i) {
    EXPECT_EQ(sum.ops[i], 2 * one.ops[i]) << i;
  }
  for (const StatField& f : SendStatsFields()) {
    // Gauges and peaks too: a sum of peaks.
    EXPECT_EQ(sum.*f.field, 2 * (one.*f.field)) << f.name;
  }
  // Adding zeros changes nothing.
  SendStats again = sum;
  again.Add(SendStats());
  for (const StatField& f : SendStatsFields()) {
    EXPECT_EQ(again.*f.field, sum.*f.field) << f.name;
  }
}

TEST(StatsTest, AddWrapsLikeUnsigned) {
  SendStats a;
  a.bytes_copied = UINT64_MAX;
  SendStats b;
  b.bytes_copied = 2;
  a.Add(b);
  EXPECT_EQ(a.bytes_copied, 1u);
}

TEST(StatsTest, FormatStatsNoActivity) {
  EXPECT_EQ(FormatStats(SendStats()), "(no activity)");
}

TEST(StatsTest, FormatStatsPrintsEveryNonZeroFieldInOrder) {
  const SendStats s = Distinct();
  std::vector<std::string> expected;
  for (int i = 0; i < kNumOpKinds; ++i) {
    expected.push_back(
        absl::StrCat(OpKindName(static_cast<OpKind>(i)), "=", s.ops[i]));
  }
  for (const StatField& f : SendStatsFields()) {
    expected.push_back(absl::StrCat(f.name, "=", s.*f.field));
  }
  EXPECT_EQ(FormatStats(s), absl::StrJoin(expected, " "));
}

TEST(StatsTest, FormatStatsPrintsTheEnqueuedFields) {
  SendStats s;
  s.buffers_enqueued = 7;
  s.bytes_enqueued = 70000;
  EXPECT_EQ(FormatStats(s), "buffers_enqueued=7 bytes_enqueued=70000");
}

// Each field alone prints as exactly "name=value": none is skipped, and a
// zero field prints nothing.
TEST(StatsTest, FormatStatsOneFieldAtATime) {
  for (const StatField& f : SendStatsFields()) {
    SendStats s;
    s.*f.field = UINT64_MAX;
    EXPECT_EQ(FormatStats(s), absl::StrCat(f.name, "=", UINT64_MAX));
  }
  for (int i = 0; i < kNumOpKinds; ++i) {
    SendStats s;
    s.ops[i] = 3;
    EXPECT_EQ(FormatStats(s),
              absl::StrCat(OpKindName(static_cast<OpKind>(i)), "=3"));
  }
}

// Today's names and order, which tools and tests parse.
TEST(StatsTest, FormatStatsKeepsTheNamesToolsParse) {
  SendStats s;
  s.ops[static_cast<int>(OpKind::kWritev)] = 3;
  s.ops[static_cast<int>(OpKind::kSendmsgZc)] = 2;
  s.bytes_copied = 10;
  s.bytes_zero_copy = 20;
  s.notifications = 2;
  s.buffers_released = 5;
  s.buffers_released_failed = 1;
  s.peak_bytes_awaiting_notification = 12288;
  s.adaptive_disabled = 1;
  EXPECT_EQ(FormatStats(s),
            "writev=3 sendmsg_zc=2 bytes_copied=10 bytes_zero_copy=20 "
            "notifications=2 buffers_released=5 buffers_released_failed=1 "
            "peak_bytes_awaiting_notification=12288 adaptive_disabled=1");
  // Each is one "name=value" token, as zcsend_cli_test splits them.
  for (absl::string_view token : absl::StrSplit(FormatStats(s), ' ')) {
    const std::vector<absl::string_view> kv = absl::StrSplit(token, '=');
    EXPECT_EQ(kv.size(), 2u) << token;
  }
}

}  // namespace
}  // namespace zcplan
