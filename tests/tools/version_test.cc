// SPDX-License-Identifier: Apache-2.0
// Every tool answers --version with the one version zcplan has (set in
// MODULE.bazel), before looking at any other flag, and CHANGELOG.md's newest
// entry is that version.

#include "zcplan/version.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "zcplan/tests/util/runfiles.h"
#include "zcplan/tools/zchttpd_cli.h"
#include "zcplan/tools/zcplan_cli.h"
#include "zcplan/tools/zcsend_cli.h"
#include "zcplan/tools/zcsweep_cli.h"

namespace zcplan {
namespace {

using Runner = int (*)(absl::Span<const std::string>, std::ostream&,
                       std::ostream&);

TEST(VersionTest, EveryToolPrintsTheVersion) {
  const struct {
    const char* name;
    Runner run;
  } tools[] = {
      {"zcplan", RunZcplan}, {"zcsend", RunZcsend}, {"zcsweep", RunZcsweep}};
  for (const auto& tool : tools) {
    // Even beside a flag that is bad: --version is answered first.
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--version"},
          std::vector<std::string>{"--no-such-flag", "--version"}}) {
      std::ostringstream out, err;
      EXPECT_EQ(tool.run(args, out, err), 0) << tool.name << " " << err.str();
      EXPECT_EQ(out.str(), std::string(tool.name) + " " + kVersion + "\n");
      EXPECT_EQ(err.str(), "");
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
