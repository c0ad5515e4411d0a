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
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zcplan {

// The largest trace file the tools read (traces are text, a line per batch).
inline constexpr uint64_t kMaxTraceFileBytes = uint64_t{1} << 30;  // 1 GiB
// The largest weights file (a dozen "name value" lines).
inline constexpr uint64_t kMaxWeightsFileBytes = uint64_t{1} << 20;  // 1 MiB

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

// `text` made safe for a one-line message: printable ASCII kept, backslash
// and control or non-ASCII bytes written as \n, \t, \\ or \xNN, and cut after
// `max_chars` output characters with "...(N bytes)" giving the input's full
// length.
std::string EscapeForMessage(absl::string_view text, size_t max_chars = 200);

// `EscapeForMessage(text)` in single quotes: 'text'.
std::string QuoteForMessage(absl::string_view text);

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_CLI_IO_H_
