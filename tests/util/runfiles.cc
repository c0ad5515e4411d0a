// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/util/runfiles.h"

#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace zcplan {
namespace {

using ::bazel::tools::cpp::runfiles::Runfiles;

// zcplan's workspace name (WORKSPACE): its directory in every runfiles tree
// that contains it, whichever workspace runs the test. Under Bzlmod the
// directory is a canonical name instead ("_main", "zcplan+"): there, switch
// to @rules_cc//cc/runfiles and
// Runfiles::CreateForTest(BAZEL_CURRENT_REPOSITORY), which maps "zcplan" to it.
constexpr absl::string_view kWorkspace = "zcplan";

const Runfiles& TestRunfiles() {
  static const Runfiles* const runfiles = [] {
    std::string error;
    Runfiles* created = Runfiles::CreateForTest(&error);
    if (created == nullptr) {
      std::cerr << "cannot find the test's runfiles: " << error << "\n";
      std::abort();
    }
    return created;
  }();
  return *runfiles;
}

}  // namespace

std::string DataPath(absl::string_view path) {
  return TestRunfiles().Rlocation(absl::StrCat(kWorkspace, "/", path));
}

}  // namespace zcplan
