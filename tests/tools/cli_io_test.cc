#include "tools/cli_io.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(TempDir(), "/", name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(CliIoTest, ReadsARegularFile) {
  const std::string path = WriteFile("small", "64K 1K\n");
  absl::StatusOr<std::string> text = ReadRegularFile(path, "trace file", 100);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "64K 1K\n");
}

TEST(CliIoTest, RefusesAFileAboveTheLimitNamingBoth) {
  const std::string path = WriteFile("big", std::string(101, 'x'));
  absl::StatusOr<std::string> text = ReadRegularFile(path, "trace file", 100);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("trace file"));
  EXPECT_THAT(text.status().message(), HasSubstr("101 bytes"));
  EXPECT_THAT(text.status().message(), HasSubstr("limit of 100 bytes"));
}

TEST(CliIoTest, RefusesADirectory) {
  absl::StatusOr<std::string> text =
      ReadRegularFile(TempDir(), "--trace", kMaxTraceFileBytes);
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
  const std::string path = absl::StrCat(TempDir(), "/fifo");
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
  const std::string path = WriteFile("sized", "abcdef");
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

}  // namespace
}  // namespace zcplan
