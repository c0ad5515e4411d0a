// SPDX-License-Identifier: Apache-2.0
// Input files and error lines for zcplan's command-line tools.
//
// Every tool reads user-named files (traces, weights, a file to send) and
// prints user-given text back in error lines. Both are hostile inputs: a path
// may name a directory, a FIFO that never delivers, a device that never ends
// (/dev/zero), or a file far larger than any sane input; a flag value may hold
// control characters or megabytes. These helpers make each case one clear
// error line instead of a hang, an abort or a flood.
//
// Thread safety: the functions are reentrant.

#ifndef ZCPLAN_TOOLS_CLI_IO_H_
#define ZCPLAN_TOOLS_CLI_IO_H_

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/planner/cost.h"

namespace zcplan {

// The largest trace file the tools read (traces are text, a line per batch).
inline constexpr uint64_t kMaxTraceFileBytes = uint64_t{1} << 30;  // 1 GiB
// The largest weights file (a dozen "name value" lines).
inline constexpr uint64_t kMaxWeightsFileBytes = uint64_t{1} << 20;  // 1 MiB

// The longest trace line the tools take (one batch: up to about 512K sizes),
// so that reading a trace line by line holds at most this much.
inline constexpr size_t kMaxTraceLineBytes = size_t{1} << 20;  // 1 MiB

// An open regular file: the descriptor (owned by the caller, close it) and
// its size when opened.
struct RegularFile {
  int fd = -1;
  uint64_t size = 0;
};

// Opens `path` for reading, refusing anything but a regular file of at most
// `max_bytes` bytes. The open never blocks (O_NONBLOCK, so a FIFO cannot
// hang it; the flag is cleared again for a regular file), and the type is
// checked on the open descriptor, not on the name. `what` names the input in
// errors ("trace file", "--file").
// Errors: InvalidArgument, one line naming `what`, the path (escaped and
// capped, see `QuoteForMessage`) and the reason: cannot open (errno), a
// directory, a FIFO, a character or block device, a socket, or a size above
// the limit (both given).
[[nodiscard]] absl::StatusOr<RegularFile> OpenRegularFile(
    const std::string& path, absl::string_view what, uint64_t max_bytes);

// Reads all of a regular file of at most `max_bytes` bytes (as
// `OpenRegularFile`). A file that grows past the limit while being read is
// refused too.
[[nodiscard]] absl::StatusOr<std::string> ReadRegularFile(
    const std::string& path, absl::string_view what, uint64_t max_bytes);

// Reads a cost-weights file (the "name value" lines `zcsweep --calibrate`
// writes, see planner/cost.h) of at most kMaxWeightsFileBytes, as
// `ReadRegularFile`. Errors: InvalidArgument naming the file, for what
// `ParseCostWeights` refuses (its message escaped and capped, see
// `EscapeForMessage`), and for a file that names no weight (empty or
// comments only: a mistake, not a request for the defaults).
[[nodiscard]] absl::StatusOr<CostWeights> ReadCostWeightsFile(
    const std::string& path);

// Checks, before a long run, that the run will be able to write a file at
// `path`: it is not a directory, FIFO (whose open would block), device or
// socket, and either it is an existing regular file open for writing, or it
// does not exist and its parent directory does and can take a new file.
// Nothing is created. Errors: InvalidArgument, one line as for
// `OpenRegularFile`.
[[nodiscard]] absl::Status CheckOutputFile(const std::string& path,
                                           absl::string_view what);

// The same for a directory the run will write files into: `path` is a
// writable directory, or does not exist and its parent directory can take
// it (the caller creates it).
[[nodiscard]] absl::Status CheckOutputDirectory(const std::string& path,
                                                absl::string_view what);

// Reads the lines of an open file from its start, one at a time, holding at
// most one line (and a read buffer), for inputs too large to hold whole.
// It reads with pread from offset 0 and leaves the file position alone, so
// several readers may go over one descriptor in turn (e.g. a check pass, then
// an output pass). It does not own `fd`.
class LineReader {
 public:
  // `max_bytes`: the most it reads in all (a file that grew past it is
  // refused); `max_line_bytes`: the longest line, without its '\n'.
  LineReader(int fd, uint64_t max_bytes, size_t max_line_bytes)
      : fd_(fd), max_bytes_(max_bytes), max_line_bytes_(max_line_bytes) {}

  // Sets `*line` to the next line without its '\n' (valid until the next
  // call) and returns true; returns false at the end (a last line without a
  // '\n' is still a line). Errors: InvalidArgument "cannot read: ...",
  // "line N is longer than the limit of M bytes", "grew above the limit of
  // N bytes while being read"; the caller adds which file.
  [[nodiscard]] absl::StatusOr<bool> Next(absl::string_view* line);

  uint64_t lines() const { return lines_; }  // Lines returned so far.

  // With `skip`, a line longer than the limit is not an error: `Next` reads
  // past it to its '\n' (holding no more of it than the limit) and returns
  // it as an empty line with `last_too_long()` true, so the caller can
  // count it and go on.
  void set_skip_long_lines(bool skip) { skip_long_lines_ = skip; }
  bool last_too_long() const { return too_long_; }

 private:
  int fd_;
  uint64_t max_bytes_;
  size_t max_line_bytes_;
  std::string buffer_;  // Holds [begin_, end_) unread; grows to a line.
  size_t begin_ = 0;
  size_t end_ = 0;
  uint64_t offset_ = 0;  // Of the file, next to read.
  uint64_t lines_ = 0;
  bool eof_ = false;
  bool skip_long_lines_ = false;
  bool too_long_ = false;
};

// `text` made safe for a one-line message: printable ASCII kept, backslash
// and control or non-ASCII bytes written as \n, \t, \\ or \xNN, and cut after
// `max_chars` output characters with "...(N bytes)" giving the input's full
// length.
std::string EscapeForMessage(absl::string_view text, size_t max_chars = 200);

// `EscapeForMessage(text)` in single quotes: 'text'.
std::string QuoteForMessage(absl::string_view text);

// True, after printing "<tool> <version>" and a newline to `out`, when
// `args` (before a "--") hold --version: every tool answers it first, before
// any other flag is looked at.
bool PrintVersionIfAsked(absl::Span<const std::string> args,
                         absl::string_view tool, std::ostream& out);

// What a tool answers before looking at any flag: --version (as
// `PrintVersionIfAsked`), else --help or -h before a "--", with `usage` on
// `out`. kOutputFailed when `out` could not take the answer (stdout on a
// full disk): the tool says so in its own words and fails.
enum class FirstAnswer { kNone, kAnswered, kOutputFailed };
[[nodiscard]] FirstAnswer AnswerVersionOrHelp(
    absl::Span<const std::string> args, absl::string_view tool,
    std::string (*usage)(), std::ostream& out);

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_CLI_IO_H_
