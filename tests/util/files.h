// SPDX-License-Identifier: Apache-2.0
// Files for tests: one reader and one writer, so every test handles a
// missing or unreadable file the same way (a test failure naming the path,
// never an empty string taken for content).

#ifndef ZCPLAN_TESTS_UTIL_FILES_H_
#define ZCPLAN_TESTS_UTIL_FILES_H_

#include <string>

namespace zcplan {

// The test's scratch directory ($TEST_TMPDIR, else /tmp), without a '/'.
std::string TestTempDir();

// Writes `text` to TestTempDir()/`name` and returns the path. A failure to
// write is a test failure.
std::string WriteTestFile(const std::string& name, const std::string& text);

// The whole of the regular file at `path` (at most 1 GiB), read with the
// tools' own reader (tools/cli_io.h). A failure is a test failure naming the
// path and the reason, and returns "".
std::string ReadTestFile(const std::string& path);

}  // namespace zcplan

#endif  // ZCPLAN_TESTS_UTIL_FILES_H_
