// SPDX-License-Identifier: Apache-2.0
// The `zcplan` command-line tool as a function, so that tests run it
// in-process with string streams.
//
// `zcplan plan` shows the chains the planner makes for one batch of buffer
// sizes (or each batch of a trace file); `zcplan simulate` compares zero-copy
// thresholds over a trace with the cost model; `zcplan import` turns an
// strace capture of a server's sends into a trace (planner/strace_import.h).
// The tool is a thin shell over planner/: it parses flags (Abseil flags, see
// tools/flags.h), reads the input files and formats the results.
//
// Thread safety: `RunZcplan` keeps no state between calls; concurrent calls
// are safe as long as their streams differ.

#ifndef ZCPLAN_TOOLS_ZCPLAN_CLI_H_
#define ZCPLAN_TOOLS_ZCPLAN_CLI_H_

#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace zcplan {

// Exit codes of `RunZcplan`.
inline constexpr int kZcplanOk = 0;
inline constexpr int kZcplanFailed = 1;
inline constexpr int kZcplanBadInput = 2;

// Runs `zcplan` with `args`, the command line without argv[0].
//
// Input files must be regular files (a directory, FIFO, device or socket is
// refused without blocking), a trace at most kMaxTraceFileBytes with lines of
// at most kMaxTraceLineBytes, a weights file at most kMaxWeightsFileBytes and
// naming at least one weight. The work is bounded before anything is
// planned: MaxOpsToSend summed over the batches (an upper bound on the ops)
// must stay within kDefaultMaxTraceOps, per threshold for `simulate`.
//
// On bad input (unknown command or flag, missing or bad value, an input file
// refused as above, an unparsable or empty trace, work over the bound,
// options out of range) writes exactly one line starting with "zcplan: " that
// names the bad value to `err`, writes nothing to `out`, and returns
// kZcplanBadInput: the whole input is checked before any output.
//
// `import` reads the capture (a regular file, with the trace file limits)
// once, whole, before any output; a capture in which no line makes a batch is
// bad input.
//
// On success returns kZcplanOk. `plan` writes each batch's plan to `out` as
// soon as it is planned (memory is that of one batch and one trace line, not
// of the trace or the output), reading the trace file twice: once to check
// it, once to plan it. `simulate` reads it once and writes its summary at the
// end. If the trace file changes between the two passes so that a line no
// longer parses or the work passes the bound, or `out` fails, writes one line
// to `err` and returns kZcplanFailed; `out` then holds a partial output.
[[nodiscard]] int RunZcplan(absl::Span<const std::string> args,
                            std::ostream& out, std::ostream& err);

// The text printed by `zcplan --help`.
std::string ZcplanUsage();

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_ZCPLAN_CLI_H_
