// SPDX-License-Identifier: Apache-2.0
// The `zcsweep` command-line tool as a function, so that tests run it
// in-process.
//
// `zcsweep` tunes the zero-copy threshold on the machine it runs on: it sends
// a workload (the reference message, a size pattern or a planner trace)
// through the executor under each threshold (and optionally both copy ops,
// gap values and adaptive zero-copy), several times each, measures
// throughput and the sending thread's CPU time, and prints a table, a
// recommendation and, in words, when the numbers cannot say anything about
// zero-copy (every notification reported a copy). It writes CSV, JSON and an
// SVG plot, and with `--calibrate FILE` fits the planner's cost weights to
// the measurements for `zcplan simulate --weights FILE`.
//
// The measuring, the summaries, the plot and the calibration are `//tune`
// (tune/sweep.h, summary.h, plot.h, calibration.h); this is flags and output.
//
// Thread safety: `RunZcsweep` keeps no state between calls. While it sweeps
// it handles SIGINT and SIGTERM (process-wide; the previous dispositions are
// restored before it returns), so do not run two at once.

#ifndef ZCPLAN_TOOLS_ZCSWEEP_CLI_H_
#define ZCPLAN_TOOLS_ZCSWEEP_CLI_H_

#include <ostream>
#include <string>

#include "absl/types/span.h"

namespace zcplan {

inline constexpr int kZcsweepOk = 0;
inline constexpr int kZcsweepFailed = 1;    // the sweep could not run
inline constexpr int kZcsweepBadInput = 2;  // bad command line
// Stopped by a signal: 128 + the signal number (130 SIGINT, 143 SIGTERM).
inline constexpr int kZcsweepInterruptedBase = 128;

// Runs `zcsweep` with `args` (without argv[0]). Results go to `out`;
// progress, warnings and errors to `err`. Bad input (including an output
// that cannot be written and a malformed --peer) writes one line starting
// "zcsweep: " to `err`, nothing to `out`, and returns kZcsweepBadInput
// before anything is started. A failure to reach io_uring or the peer is one
// line and kZcsweepFailed, also before anything is printed on `out`. Bad
// input includes a workload whose buffers would take more than 1 GiB
// (kMaxSweepBufferBytes). When `out` fails (stdout on a full disk), and when
// memory runs out anyway (std::bad_alloc, caught here as a last resort), the
// result is one line and kZcsweepFailed. On SIGINT or SIGTERM during the
// sweep, the runs done are printed and the result is
// kZcsweepInterruptedBase + the signal; the --out directory is made only
// when the files are written.
[[nodiscard]] int RunZcsweep(absl::Span<const std::string> args,
                             std::ostream& out, std::ostream& err);

std::string ZcsweepUsage();

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_ZCSWEEP_CLI_H_
