// SPDX-License-Identifier: Apache-2.0
// zchttpd: an HTTP/1.1 server whose responses go through the zcplan
// executor on the server's own io_uring; see zchttpd --help.

#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "zcplan/tools/zchttpd_cli.h"

int main(int argc, char** argv) {
  // A client that goes away is a connection error, not a signal.
  signal(SIGPIPE, SIG_IGN);
  const std::vector<std::string> args(argv + 1, argv + argc);
  return zcplan::RunZchttpd(args, std::cout, std::cerr);
}
