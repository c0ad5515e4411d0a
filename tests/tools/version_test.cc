// SPDX-License-Identifier: Apache-2.0
// Every tool answers --version with the one version zcplan has (set in
// MODULE.bazel), before looking at any other flag, and CHANGELOG.md's newest
// entry is that version.

#include "zcplan/version.h"

#include <stdio.h>
#include <sys/wait.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "zcplan/tests/util/runfiles.h"

namespace zcplan {
namespace {

// Runs `command` with stderr joined to stdout; returns the exit code (-1 if
// it did not exit) and sets `*output`.
int RunCapturing(const std::string& command, std::string* output) {
  output->clear();
  FILE* pipe = popen((command + " 2>&1 </dev/null").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output->append(buffer, n);
  }
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The tools run as programs: each defines its own flags, and one process
// cannot link two tools' flags.
TEST(VersionTest, EveryToolPrintsTheVersion) {
  for (const char* tool :
       {"zcplan", "zcsend", "zcsweep", "zchttpd", "zcdoctor"}) {
    const std::string path = DataPath(absl::StrCat("tools/", tool));
    // Even beside a flag that is bad: --version is answered first.
    for (const char* args : {" --version", " --no-such-flag --version"}) {
      std::string output;
      EXPECT_EQ(RunCapturing(path + args, &output), 0)
          << tool << ": " << output;
      EXPECT_EQ(output, absl::StrCat(tool, " ", kVersion, "\n"))
          << tool << args;
    }
  }
}

TEST(VersionTest, VersionIsSemanticAndNewestInTheChangelog) {
  const std::string version = kVersion;
  int dots = 0;
  for (char c : version) {
    if (c == '.') {
      ++dots;
    } else {
      EXPECT_TRUE(c >= '0' && c <= '9') << version;
    }
  }
  EXPECT_EQ(dots, 2) << version;
  std::ifstream changelog(DataPath("CHANGELOG.md"));
  ASSERT_TRUE(changelog) << "CHANGELOG.md not in the runfiles";
  std::string line;
  while (std::getline(changelog, line) && line.rfind("## ", 0) != 0) {
  }
  EXPECT_EQ(line.substr(0, 3 + version.size() + 1), "## " + version + " ")
      << "newest CHANGELOG entry: " << line;
}

}  // namespace
}  // namespace zcplan
