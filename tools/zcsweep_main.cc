// SPDX-License-Identifier: Apache-2.0
// zcsweep: tunes the zero-copy threshold by measuring; see zcsweep --help.

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "zcplan/tools/zcsweep_cli.h"

int main(int argc, char** argv) {
  // Under `bazel run`, write and read files relative to the caller.
  if (const char* dir = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (chdir(dir) != 0) std::perror("zcsweep: BUILD_WORKING_DIRECTORY");
  }
  const std::vector<std::string> args(argv + 1, argv + argc);
  return zcplan::RunZcsweep(args, std::cout, std::cerr);
}
