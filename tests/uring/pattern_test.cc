// SPDX-License-Identifier: Apache-2.0
// The pattern against its documented definition (uring/pattern.h), at the
// edges of the period and of the precomputed table.

#include "zcplan/uring/pattern.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace zcplan {
namespace {

// The definition in uring/pattern.h, written out independently.
unsigned char Reference(uint64_t n) {
  const uint64_t m = n % 1048573;
  uint64_t z = (m / 8 + 1) * 0x9E3779B97F4A7C15ull;
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<unsigned char>(z >> (8 * (m % 8)));
}

constexpr uint64_t P = kPatternPeriod;

TEST(PatternTest, MatchesTheDocumentedDefinition) {
  const Pattern p;
  for (uint64_t n :
       {uint64_t{0}, uint64_t{1}, uint64_t{7}, uint64_t{8}, uint64_t{4095},
        P - 1, P, P + 1, 2 * P + 5, (uint64_t{1} << 40) + 3, ~uint64_t{0}}) {
    EXPECT_EQ(p.ByteAt(n), Reference(n)) << n;
  }
  // The first bytes, which a client checking by hand starts with.
  EXPECT_EQ(p.ByteAt(0), Reference(0));
  std::vector<unsigned char> data(64);
  p.Fill(0, absl::MakeSpan(data));
  for (size_t i = 0; i < data.size(); ++i) EXPECT_EQ(data[i], Reference(i));
}

TEST(PatternTest, PeriodIsExact) {
  const Pattern p;
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{12345}, P - 1}) {
    EXPECT_EQ(p.ByteAt(n), p.ByteAt(n + P)) << n;
  }
  // Not a shorter period: the bytes one and eight before the period differ
  // from the start somewhere in the first 64.
  std::vector<unsigned char> a(64), b(64), c(64);
  p.Fill(0, absl::MakeSpan(a));
  p.Fill(P - 1, absl::MakeSpan(b));
  p.Fill(P - 8, absl::MakeSpan(c));
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
}

// Fill and FindMismatch over windows that start and end around the period
// boundary and the end of the precomputed table (the period plus 256 KiB).
TEST(PatternTest, FillAndCheckAnyWindow) {
  const uint64_t starts[] = {0,
                             1,
                             7,
                             8,
                             P - 1,
                             P,
                             P + 1,
                             2 * P - 3,
                             12345,
                             256 * 1024 - 1,
                             P - 256 * 1024,
                             (uint64_t{1} << 50) + 17};
  const size_t lengths[] = {
      0, 1, 2, 7, 8, 9, 4096, P - 1, P, P + 1, 256 * 1024 + 1, 2 * P + 3};
  for (const uint64_t stream : {uint64_t{0}, uint64_t{3}}) {
    const Pattern p(stream);
    // Byte by byte, once: the stream from its period start on (ByteAt is
    // periodic, PeriodIsExact).
    std::vector<unsigned char> reference(3 * P + 16);
    for (size_t i = 0; i < reference.size(); ++i) reference[i] = p.ByteAt(i);
    for (uint64_t start : starts) {
      for (size_t length : lengths) {
        std::vector<unsigned char> data(length, 0);
        p.Fill(start, absl::MakeSpan(data));
        const auto first = std::mismatch(data.begin(), data.end(),
                                         reference.begin() + start % P);
        EXPECT_TRUE(first.first == data.end())
            << stream << " " << start << "+" << (first.first - data.begin());
        EXPECT_EQ(p.FindMismatch(start, data), length)
            << start << " " << length;
      }
    }
  }
}

TEST(PatternTest, MismatchPositionIsExact) {
  const Pattern p;
  for (uint64_t start : {uint64_t{0}, uint64_t{5}, P - 3, P - 256 * 1024 - 2}) {
    std::vector<unsigned char> data(P + 10);
    p.Fill(start, absl::MakeSpan(data));
    for (size_t at : {size_t{0}, size_t{1}, size_t{3}, size_t{8},
                      size_t{256 * 1024}, size_t{256 * 1024 + 2},
                      static_cast<size_t>(P - 1), data.size() - 1}) {
      data[at] ^= 0x01;
      EXPECT_EQ(p.FindMismatch(start, data), at) << start << " " << at;
      // A second, later difference does not move the first.
      if (at + 5 < data.size()) {
        data[at + 5] ^= 0x80;
        EXPECT_EQ(p.FindMismatch(start, data), at);
        data[at + 5] ^= 0x80;
      }
      data[at] ^= 0x01;
    }
    EXPECT_EQ(p.FindMismatch(start, data), data.size());
  }
  // A window checked one byte off (a lost byte) fails at once.
  std::vector<unsigned char> data(4096);
  p.Fill(100, absl::MakeSpan(data));
  EXPECT_LT(p.FindMismatch(99, data), 16u);
  EXPECT_LT(p.FindMismatch(101, data), 16u);
}

TEST(PatternTest, StreamsDifferAndStreamZeroIsTheDefault) {
  std::vector<unsigned char> zero(4096), one(4096), two(4096), deflt(4096);
  Pattern(0).Fill(0, absl::MakeSpan(zero));
  Pattern(1).Fill(0, absl::MakeSpan(one));
  Pattern(2).Fill(0, absl::MakeSpan(two));
  Pattern().Fill(0, absl::MakeSpan(deflt));
  EXPECT_EQ(zero, deflt);
  EXPECT_NE(zero, one);
  EXPECT_NE(one, two);
  EXPECT_EQ(Pattern(1).FindMismatch(0, one), one.size());
  EXPECT_LT(Pattern(2).FindMismatch(0, one), 16u);
  // Stream s is stream 0 shifted by s * kPatternStreamShift.
  EXPECT_EQ(Pattern(2).ByteAt(10),
            Pattern().ByteAt(2 * kPatternStreamShift + 10));
}

}  // namespace
}  // namespace zcplan
