// SPDX-License-Identifier: Apache-2.0
// zcdoctor: will zero-copy send pay here? See zcdoctor --help.

#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "zcplan/tools/zcdoctor_cli.h"

int main(int argc, char** argv) {
  // A --probe receiver that goes away is reported, not a signal.
  signal(SIGPIPE, SIG_IGN);
  const std::vector<std::string> args(argv + 1, argv + argc);
  return zcplan::RunZcdoctor(args, std::cout, std::cerr);
}
