// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/cli_io.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/tests/util/files.h"
#include "zcplan/version.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

TEST(CliIoTest, ReadsARegularFile) {
  const std::string path = WriteTestFile("small", "64K 1K\n");
  absl::StatusOr<std::string> text = ReadRegularFile(path, "trace file", 100);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "64K 1K\n");
}

TEST(CliIoTest, RefusesAFileAboveTheLimitNamingBoth) {
  const std::string path = WriteTestFile("big", std::string(101, 'x'));
  absl::StatusOr<std::string> text = ReadRegularFile(path, "trace file", 100);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("trace file"));
  EXPECT_THAT(text.status().message(), HasSubstr("101 bytes"));
  EXPECT_THAT(text.status().message(), HasSubstr("limit of 100 bytes"));
}

TEST(CliIoTest, RefusesADirectory) {
  absl::StatusOr<std::string> text =
      ReadRegularFile(TestTempDir(), "--trace", kMaxTraceFileBytes);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.status().message(), HasSubstr("is a directory"));
}

TEST(CliIoTest, RefusesACharacterDeviceWithoutReadingIt) {
  absl::StatusOr<std::string> text =
      ReadRegularFile("/dev/zero", "--trace", kMaxTraceFileBytes);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.status().message(), HasSubstr("is a character device"));
}

// A FIFO with no writer blocks a plain open() forever; this must return.
TEST(CliIoTest, RefusesAFifoWithoutBlocking) {
  const std::string path = absl::StrCat(TestTempDir(), "/fifo");
  unlink(path.c_str());
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  absl::StatusOr<RegularFile> file =
      OpenRegularFile(path, "--file", kMaxTraceFileBytes);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("is a FIFO"));
}

TEST(CliIoTest, RefusesAMissingFileWithTheErrno) {
  absl::StatusOr<std::string> text =
      ReadRegularFile("/nonexistent/x", "weights file", kMaxWeightsFileBytes);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.status().message(),
              HasSubstr("weights file '/nonexistent/x': cannot open: No such"));
}

TEST(CliIoTest, OpenedFileIsBlockingAndSized) {
  const std::string path = WriteTestFile("sized", "abcdef");
  absl::StatusOr<RegularFile> file = OpenRegularFile(path, "--file", 6);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size, 6u);
  EXPECT_EQ(fcntl(file->fd, F_GETFL) & O_NONBLOCK, 0);
  close(file->fd);
}

TEST(CliIoTest, EscapesControlCharactersAndCapsLength) {
  EXPECT_EQ(EscapeForMessage("a\nb\tc\x01\\"), "a\\nb\\tc\\x01\\\\");
  EXPECT_EQ(EscapeForMessage("\xff"), "\\xff");
  const std::string huge(5 << 20, 'z');
  const std::string line = EscapeForMessage(huge, 10);
  EXPECT_EQ(line, absl::StrCat(std::string(10, 'z'), "...(5242880 bytes)"));
  EXPECT_EQ(QuoteForMessage("x\n"), "'x\\n'");
}

TEST(CliIoTest, PathInErrorsIsEscaped) {
  absl::StatusOr<std::string> text =
      ReadRegularFile("/nonexistent/a\nb", "--trace", 10);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.status().message(), HasSubstr("'/nonexistent/a\\nb'"));
  EXPECT_EQ(std::string(text.status().message()).find('\n'), std::string::npos);
}

TEST(CliIoTest, OutputFileMayBeNewOrAnExistingRegularFile) {
  EXPECT_TRUE(
      CheckOutputFile(absl::StrCat(TestTempDir(), "/new-output"), "--out")
          .ok());
  EXPECT_TRUE(CheckOutputFile(WriteTestFile("old-output", "x"), "--out").ok());
}

TEST(CliIoTest, OutputFileRefusesADirectoryAFifoAndAMissingParent) {
  absl::Status s = CheckOutputFile(TestTempDir(), "--calibrate");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("is a directory"));
  EXPECT_THAT(s.message(), HasSubstr("--calibrate '"));

  const std::string fifo = absl::StrCat(TestTempDir(), "/output-fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(CheckOutputFile(fifo, "--calibrate").message(),
              HasSubstr("is a FIFO"));

  s = CheckOutputFile("/nonexistent/dir/weights", "--calibrate");
  EXPECT_THAT(s.message(), HasSubstr("'/nonexistent/dir'"));
  EXPECT_THAT(s.message(), HasSubstr("No such file or directory"));
  EXPECT_THAT(CheckOutputFile(absl::StrCat(TestTempDir(), "/missing/"), "--out")
                  .message(),
              HasSubstr("names a directory"));
}

TEST(CliIoTest, OutputDirectoryMayBeNewOrExistingButNotAFile) {
  EXPECT_TRUE(CheckOutputDirectory(TestTempDir(), "--out").ok());
  EXPECT_TRUE(
      CheckOutputDirectory(absl::StrCat(TestTempDir(), "/new-dir/"), "--out")
          .ok());
  const absl::Status s =
      CheckOutputDirectory(WriteTestFile("not-a-dir", "x"), "--out");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("is a regular file; give a directory"));
  EXPECT_THAT(CheckOutputDirectory("/nonexistent/a/b", "--out").message(),
              HasSubstr("cannot create directory: '/nonexistent/a'"));
}

TEST(CliIoTest, OutputChecksEscapeThePath) {
  const absl::Status s = CheckOutputFile(
      "/nonexistent/a\nb/\x01"
      "c",
      "--out");
  EXPECT_EQ(std::string(s.message()).find('\n'), std::string::npos);
  EXPECT_EQ(std::string(s.message()).find('\x01'), std::string::npos);
  EXPECT_THAT(s.message(), HasSubstr("\\x01c"));
}

std::string TestUsage() { return "Usage: tool [flags]\n"; }

TEST(AnswerVersionOrHelpTest, VersionFirstThenHelpBeforeDashes) {
  struct Case {
    std::vector<std::string> args;
    FirstAnswer answer;
    std::string out;
  };
  const std::string version = absl::StrCat("tool ", kVersion, "\n");
  const Case cases[] = {
      {{}, FirstAnswer::kNone, ""},
      {{"--bogus"}, FirstAnswer::kNone, ""},
      {{"--help"}, FirstAnswer::kAnswered, TestUsage()},
      {{"--bogus", "-h"}, FirstAnswer::kAnswered, TestUsage()},
      {{"-h", "--version"}, FirstAnswer::kAnswered, version},
      {{"--", "-h"}, FirstAnswer::kNone, ""},
      {{"--", "--version"}, FirstAnswer::kNone, ""},
  };
  for (const Case& c : cases) {
    std::ostringstream out;
    EXPECT_EQ(AnswerVersionOrHelp(c.args, "tool", TestUsage, out), c.answer)
        << absl::StrJoin(c.args, " ");
    EXPECT_EQ(out.str(), c.out) << absl::StrJoin(c.args, " ");
  }
}

TEST(AnswerVersionOrHelpTest, AnOutputThatFailsIsReported) {
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  EXPECT_EQ(AnswerVersionOrHelp({"--help"}, "tool", TestUsage, out),
            FirstAnswer::kOutputFailed);
  EXPECT_EQ(AnswerVersionOrHelp({"--version"}, "tool", TestUsage, out),
            FirstAnswer::kOutputFailed);
}

}  // namespace
}  // namespace zcplan
