// SPDX-License-Identifier: Apache-2.0
// Finds a test's data files through Bazel's runfiles, so that the tests pass
// both in zcplan's own workspace and as `bazel test @zcplan//...` from another
// workspace (where the working directory is the other workspace's runfiles
// tree, not zcplan's).
//
// Data must be in the test's `data`. Aborts (with the reason on stderr) if
// the runfiles cannot be found at all, since then no data path is right.

#ifndef ZCPLAN_TESTS_UTIL_RUNFILES_H_
#define ZCPLAN_TESTS_UTIL_RUNFILES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace zcplan {

// The absolute path of `path`, relative to zcplan's root (for instance
// "tools/traces/http_server.trace"), in this test's runfiles.
std::string DataPath(absl::string_view path);

}  // namespace zcplan

#endif  // ZCPLAN_TESTS_UTIL_RUNFILES_H_
