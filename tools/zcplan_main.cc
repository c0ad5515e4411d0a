// SPDX-License-Identifier: Apache-2.0
// zcplan: plans io_uring send chains for buffer sizes; see zcplan --help.

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "zcplan/tools/zcplan_cli.h"

int main(int argc, char** argv) {
  // Under `bazel run`, resolve --trace paths against the caller's directory.
  if (const char* dir = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (chdir(dir) != 0) std::perror("zcplan: BUILD_WORKING_DIRECTORY");
  }
  const std::vector<std::string> args(argv + 1, argv + argc);
  return zcplan::RunZcplan(args, std::cout, std::cerr);
}
