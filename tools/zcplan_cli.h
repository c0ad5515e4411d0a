// The `zcplan` command-line tool as a function, so that tests run it
// in-process with string streams.
//
// `zcplan plan` shows the chains the planner makes for one batch of buffer
// sizes (or each batch of a trace file); `zcplan simulate` compares zero-copy
// thresholds over a trace with the cost model. The tool is a thin shell over
// planner/: it parses flags, reads the trace file and formats the results.
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
inline constexpr int kZcplanBadInput = 2;

// Runs `zcplan` with `args`, the command line without argv[0].
//
// On success writes the whole output to `out` and returns kZcplanOk. On bad
// input (unknown command or flag, missing or bad value, unreadable or empty
// trace, options out of range) writes exactly one line starting with
// "zcplan: " that names the bad value to `err`, writes nothing to `out`, and
// returns kZcplanBadInput. Output is built in memory and written at the end,
// so nothing is ever half-printed.
[[nodiscard]] int RunZcplan(absl::Span<const std::string> args,
                            std::ostream& out, std::ostream& err);

// The text printed by `zcplan --help`.
std::string ZcplanUsage();

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_ZCPLAN_CLI_H_
