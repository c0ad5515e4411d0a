// SPDX-License-Identifier: Apache-2.0
// zcsend: sends data through the zcplan executor, or receives it; see
// zcsend --help.

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "zcplan/tools/zcsend_cli.h"

int main(int argc, char** argv) {
  // Under `bazel run`, resolve file paths against the caller's directory.
  if (const char* dir = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (chdir(dir) != 0) std::perror("zcsend: BUILD_WORKING_DIRECTORY");
  }
  // A peer that goes away is an error the run reports, not a signal.
  signal(SIGPIPE, SIG_IGN);
  const std::vector<std::string> args(argv + 1, argv + argc);
  return zcplan::RunZcsend(args, std::cout, std::cerr);
}
