// SPDX-License-Identifier: Apache-2.0
// The `zcdoctor` command-line tool as a function, so that tests run it
// in-process with string streams.
//
// `zcdoctor` says whether zero-copy send can pay on this machine and to a
// peer, and why not: the kernel and io_uring (what the executor uses,
// probed), the memory limits the executor works under, and the path to a
// peer (the interface the route uses, its kind and offloads); with --probe, a
// short live send that counts the notifications in which the kernel said it
// copied. The checks and the verdict are tune/doctor.h's; the tool parses
// flags and prints them.
//
// Thread safety: `RunZcdoctor` keeps no state between calls; concurrent calls
// are safe as long as their streams differ.

#ifndef ZCPLAN_TOOLS_ZCDOCTOR_CLI_H_
#define ZCPLAN_TOOLS_ZCDOCTOR_CLI_H_

#include <ostream>
#include <string>

#include "absl/types/span.h"

namespace zcplan {

// Exit codes of `RunZcdoctor`.
inline constexpr int kZcdoctorPays = 0;      // zero-copy can pay
inline constexpr int kZcdoctorBlocked = 1;   // something blocks it (or the
                                             // report could not be written)
inline constexpr int kZcdoctorBadInput = 2;  // bad command line

// Runs `zcdoctor` with `args`, the command line without argv[0].
//
// Bad input (an unknown flag, a bad value, a peer that does not resolve or
// has no route) writes exactly one line starting with "zcdoctor: " to `err`,
// nothing to `out`, and returns kZcdoctorBadInput. Otherwise the checks and
// the one-line verdict go to `out` (a table, or one JSON object with
// --format=json), and the result is kZcdoctorPays or kZcdoctorBlocked as the
// verdict says. A failed --probe send is a warning in the report, not an
// error.
[[nodiscard]] int RunZcdoctor(absl::Span<const std::string> args,
                              std::ostream& out, std::ostream& err);

// The text printed by `zcdoctor --help`.
std::string ZcdoctorUsage();

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_ZCDOCTOR_CLI_H_
