// SPDX-License-Identifier: Apache-2.0
// The one command-line loop of zcplan's tools, over Abseil flags.
//
// A tool declares its flags with `ABSL_FLAG` at file scope (the project's
// own value types are in planner/flag_types.h) and parses its arguments with
// `ParseFlags`, naming the flags it takes as they are spelled on the command
// line: "copy-op" for `ABSL_FLAG(..., copy_op, ...)` (Abseil's names are
// identifiers; "--copy_op" stays unknown). The syntax is the tools' own:
//
//   --name=value   --name value   (the value may not start with "--")
//   --name         for a bool flag, which takes no value
//   --help, -h     sets `ParsedFlags::help`; the tool prints its usage
//   --             ends the flags, when the tool takes positional arguments
//
// Unlike `absl::ParseCommandLine`, nothing exits the process: every error is
// one InvalidArgument line without the tool's name, for the tool to print
// and exit 2:
//   "unknown flag '--x'<context>; see <tool> --help"
//   "unexpected argument 'x': every input is a flag; see <tool> --help"
//   "flag --x needs a value"
//   "flag --x takes no value (got 'v')"
//   "--x: <the value's parse error>"        (escaped and capped)
//
// Values are read only inside `read`: the tool copies every
// `absl::GetFlag(FLAGS_...)` into its own configuration there. When
// `ParseFlags` returns, every flag is back at its default, and calls are
// serialized by a process-wide mutex, so two tool runs on two threads of one
// process (as tests do) never see each other's values.
//
// WARNING: Abseil aborts at startup when two linked files define flags of
// the same name, so a binary links at most one tool's flags: a tool's
// library never depends on another tool's.
//
// Thread safety: `ParseFlags` may be called from any thread; `read` must not
// call it again (it would deadlock).

#ifndef ZCPLAN_TOOLS_FLAGS_H_
#define ZCPLAN_TOOLS_FLAGS_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace zcplan {

struct ParsedFlags {
  // The arguments that are not flags, in order (only with
  // `FlagSyntax::positional`). An argument like "-5" is positional: a
  // negative number is a bad value for the tool to refuse, not a flag.
  std::vector<std::string> positional;
  // How many of `positional` came before a "--" (all of them without one).
  size_t positional_before_dashes = 0;
  // The names of the flags given, in order, repeats kept.
  std::vector<std::string> given;
  bool help = false;  // --help or -h was given.
};

struct FlagSyntax {
  absl::string_view tool;     // For "see <tool> --help".
  absl::string_view context;  // After an unknown flag, e.g. " for 'plan'".
  bool positional = false;    // Whether arguments that are not flags are taken.
};

// Parses `args` (without argv[0]) against the flags named in `allowed` (each
// defined with ABSL_FLAG in the binary, '-' in a name standing for '_'), then
// calls `read` while the parsed values are set and returns what `read` returns
// if it is not OK. Errors: InvalidArgument as above; Internal when a name in
// `allowed` is not a defined flag (a bug in the tool).
[[nodiscard]] absl::StatusOr<ParsedFlags> ParseFlags(
    absl::Span<const std::string> args,
    absl::Span<const absl::string_view> allowed, const FlagSyntax& syntax,
    absl::FunctionRef<absl::Status(const ParsedFlags&)> read);

// Range checks for `read`, each OK or one InvalidArgument line:
//   "bad number 'N': expected MIN..MAX"
//   "bad size 'S': expected MIN..MAX<note>"   (sizes as FormatSize writes them)
//   "bad duration 'D': expected <expected>"
[[nodiscard]] absl::Status CountInRange(uint64_t n, uint64_t min, uint64_t max);
[[nodiscard]] absl::Status SizeInRange(uint64_t bytes, uint64_t min,
                                       uint64_t max,
                                       absl::string_view note = "");
[[nodiscard]] absl::Status DurationInRange(absl::Duration d, absl::Duration min,
                                           absl::Duration max,
                                           absl::string_view expected);

// One check per flag, in the order the help lists them: the first that
// failed, as "--NAME: message", or OK.
struct FlagCheck {
  absl::string_view flag;
  absl::Status status;
};
[[nodiscard]] absl::Status FirstFailedCheck(
    std::initializer_list<FlagCheck> checks);

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_FLAGS_H_
