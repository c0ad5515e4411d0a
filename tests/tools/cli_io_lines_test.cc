// SPDX-License-Identifier: Apache-2.0
// LineReader (tools/cli_io.h): a file's lines one at a time, bounded.

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/tests/util/files.h"
#include "zcplan/tools/cli_io.h"

namespace zcplan {
namespace {

using ::testing::ElementsAre;

// All lines, or the error, of one LineReader over `fd`.
absl::StatusOr<std::vector<std::string>> ReadLines(int fd, uint64_t max_bytes,
                                                   size_t max_line_bytes) {
  LineReader reader(fd, max_bytes, max_line_bytes);
  std::vector<std::string> lines;
  absl::string_view line;
  for (;;) {
    absl::StatusOr<bool> more = reader.Next(&line);
    if (!more.ok()) return more.status();
    if (!*more) break;
    lines.emplace_back(line);
  }
  EXPECT_EQ(reader.lines(), lines.size());
  return lines;
}

class LineReaderTest : public ::testing::Test {
 protected:
  int Open(const std::string& text) {
    fd_ = open(WriteTestFile("lines", text).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd_, 0);
    return fd_;
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }
  int fd_ = -1;
};

TEST_F(LineReaderTest, SkipsLongLinesWhenAskedAndCountsThem) {
  // Longer than one 64 KiB read, so the skip drops bytes across reads; and
  // a long last line without its '\n'.
  const std::string text = absl::StrCat("a\n", std::string(200000, 'x'),
                                        "\nb\n", std::string(11, 'y'));
  LineReader reader(Open(text), 1 << 20, 10);
  reader.set_skip_long_lines(true);
  std::vector<std::pair<std::string, bool>> got;
  absl::string_view line;
  for (;;) {
    absl::StatusOr<bool> more = reader.Next(&line);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    got.emplace_back(std::string(line), reader.last_too_long());
  }
  EXPECT_THAT(
      got, ElementsAre(std::make_pair("a", false), std::make_pair("", true),
                       std::make_pair("b", false), std::make_pair("", true)));
  EXPECT_EQ(reader.lines(), 4u);
  // Without asking, the same file is an error at the long line.
  EXPECT_EQ(ReadLines(fd_, 1 << 20, 10).status().message(),
            "line 2 is longer than the limit of 10 bytes");
}

// Random files of lines at, just above and far above the limit (across many
// 64 KiB reads, back to back, the last with or without its '\n'): with
// skipping, every line is what a split of the whole text gives, or empty and
// marked too long exactly when it is over the limit.
TEST_F(LineReaderTest, SkippingMatchesASplitOfTheWholeFile) {
  std::mt19937 rng(11);
  for (int round = 0; round < 60; ++round) {
    const size_t limit = 1 + rng() % 70000;
    std::vector<std::string> lines(1 + rng() % 12);
    for (std::string& l : lines) {
      switch (rng() % 5) {
        case 0:
          l.assign(limit, 'a');
          break;
        case 1:
          l.assign(limit + 1, 'b');
          break;
        case 2:
          l.assign(limit + rng() % 300000, 'c');
          break;
        case 3:
          l.assign(rng() % (limit + 1), 'd');
          break;
        default:
          l.clear();
      }
    }
    std::string text = absl::StrJoin(lines, "\n");
    const bool last_newline = rng() % 2;
    if (last_newline) text += '\n';
    if (text.empty()) continue;
    SCOPED_TRACE(absl::StrCat("round ", round, " limit ", limit));
    const int fd = Open(text);
    LineReader reader(fd, text.size(), limit);
    reader.set_skip_long_lines(true);
    size_t k = 0;
    absl::string_view line;
    for (;;) {
      absl::StatusOr<bool> more = reader.Next(&line);
      ASSERT_TRUE(more.ok()) << more.status();
      if (!*more) break;
      ASSERT_LT(k, lines.size());
      const bool too_long = lines[k].size() > limit;
      EXPECT_EQ(reader.last_too_long(), too_long) << k;
      EXPECT_EQ(line, too_long ? "" : lines[k]) << k;
      ++k;
    }
    EXPECT_EQ(k, lines.size() - (!last_newline && lines.back().empty()));
    close(fd_);
    fd_ = -1;
  }
}

// The byte limit holds while a long line is being skipped.
TEST_F(LineReaderTest, SkippingStillRefusesMoreThanTheByteLimit) {
  LineReader reader(Open(absl::StrCat("a\n", std::string(300000, 'x'), "\n")),
                    200000, 10);
  reader.set_skip_long_lines(true);
  absl::string_view line;
  ASSERT_TRUE(*reader.Next(&line));
  EXPECT_EQ(line, "a");
  const absl::StatusOr<bool> more = reader.Next(&line);
  EXPECT_EQ(more.status().message(),
            "grew above the limit of 200000 bytes while being read");
}

TEST_F(LineReaderTest, GivesEachLineWithoutItsNewline) {
  const auto lines = ReadLines(Open("4K 1K\n\n# c\nlast"), 1000, 100);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ElementsAre("4K 1K", "", "# c", "last"));
  const auto none = ReadLines(Open(""), 1000, 100);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(LineReaderTest, LinesAcrossReadsMatchASplitOfTheWholeFile) {
  std::string text;
  for (int k = 0; k < 3000; ++k) {
    text += std::string(static_cast<size_t>(k % 97) * 13, 'x') + "\n";
  }
  const std::vector<std::string> want = absl::StrSplit(text, '\n');
  const auto lines = ReadLines(Open(text), text.size(), 2000);
  ASSERT_TRUE(lines.ok()) << lines.status();
  // The split has an empty piece after the last '\n'; the reader does not.
  EXPECT_EQ(*lines, std::vector<std::string>(want.begin(), want.end() - 1));
}

TEST_F(LineReaderTest, TwoReadersOverOneDescriptorReadTheSameLines) {
  const int fd = Open("a\nb\nc\n");
  const auto first = ReadLines(fd, 100, 10);
  const auto second = ReadLines(fd, 100, 10);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_THAT(*second, ElementsAre("a", "b", "c"));
  EXPECT_EQ(*first, *second);
}

TEST_F(LineReaderTest, RefusesALineAboveTheLimitNamingIt) {
  const std::string ok(100, 'x');
  const auto fits = ReadLines(Open("1\n" + ok + "\n" + ok), 1000, 100);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(fits->size(), 3u);
  EXPECT_EQ(
      ReadLines(Open("1\n" + ok + "x\n2\n"), 1000, 100).status().message(),
      "line 2 is longer than the limit of 100 bytes");
  // Also for a last line without a newline, and one far longer than a read.
  EXPECT_EQ(ReadLines(Open("1\n2\n" + ok + "x"), 1000, 100).status().message(),
            "line 3 is longer than the limit of 100 bytes");
  EXPECT_EQ(ReadLines(Open(std::string(1 << 20, 'y')), 2 << 20, 1000)
                .status()
                .message(),
            "line 1 is longer than the limit of 1000 bytes");
}

TEST_F(LineReaderTest, RefusesMoreThanItsByteLimit) {
  // The file is larger than the reader was told it may be (it grew after
  // its size was checked, say).
  EXPECT_EQ(ReadLines(Open("1\n2\n3\n"), 4, 100).status().message(),
            "grew above the limit of 4 bytes while being read");
  EXPECT_TRUE(ReadLines(Open("1\n2\n3\n"), 6, 100).ok());
}

TEST_F(LineReaderTest, ReportsAReadError) {
  // A directory opens for reading but read() fails with EISDIR.
  fd_ = open(TestTempDir().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd_, 0);
  EXPECT_EQ(ReadLines(fd_, 100, 10).status().message(),
            "cannot read: Is a directory");
}

}  // namespace
}  // namespace zcplan
