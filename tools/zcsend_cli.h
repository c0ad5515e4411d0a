// SPDX-License-Identifier: Apache-2.0
// The `zcsend` command-line tool as a function, so that tests run it
// in-process with string streams.
//
// `zcsend --peer HOST:PORT` pushes real data through the executor
// (uring/executor.h) to any TCP receiver: a file's bytes or a generated
// pattern, cut into buffers by a size pattern or a planner trace, on one or
// more connections that share one ring. It prints the plan of the first
// message and, at the end, the executor's counters. `zcsend --listen PORT` is
// a plain (non-io_uring) receiver that counts the bytes, can check the
// pattern (uring/pattern.h, stream 0 on every connection) and can write what
// it received to a file. `zcsend --loopback` runs both in one process, and
// `--resend` sends the same buffer memory again without refilling it, so that
// the send path alone is measured.
//
// The tool is a thin shell over planner/ and uring/: it parses flags, moves
// data into buffers and formats results; the executor does the sending.
//
// Thread safety: `RunZcsend` keeps no state between calls; concurrent calls
// are safe as long as their streams differ. A sending call installs process-
// wide SIGINT/SIGTERM handlers while it runs (see `RunZcsend`).

#ifndef ZCPLAN_TOOLS_ZCSEND_CLI_H_
#define ZCPLAN_TOOLS_ZCSEND_CLI_H_

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "absl/types/span.h"

namespace zcplan {

// Exit codes of `RunZcsend`.
inline constexpr int kZcsendOk = 0;
inline constexpr int kZcsendFailed = 1;    // a run that went wrong (see err)
inline constexpr int kZcsendBadInput = 2;  // bad command line

// Runs `zcsend` with `args`, the command line without argv[0].
//
// Bad input (unknown or misplaced flag, missing or bad value, unreadable
// file or trace) writes exactly one line starting with "zcsend: " that names
// the flag and the value to `err`, writes nothing to `out`, and returns
// kZcsendBadInput. Otherwise the run's report goes to `out` as it happens
// (flushed: the receiver's first line is "listening on ADDR:PORT"), and any
// failure (io_uring unavailable, connection error, a buffer released with an
// error, a pattern mismatch) is described on `err` and returns
// kZcsendFailed.
//
// A sender ends with kZcsendFailed and one line on `err` naming the
// connection (index and peer) and the bytes outstanding when no byte is
// acknowledged by the peer and no buffer released for `--idle-timeout`, or
// when a peer resets or closes a connection before all its data was sent.
// Each connect is bounded by --idle-timeout (30 s when that is 0). While it
// connects and sends, SIGINT and SIGTERM end the run (with the partial report
// once sending has begun) and kZcsendInterrupted + the signal number (130,
// 143); the process's previous handlers for them are restored before
// `RunZcsend` returns (the handlers are process-wide: overlapping sending
// calls share them). When `out` cannot be written (a full disk), one line
// says so on `err` and a run that would have returned kZcsendOk returns
// kZcsendFailed.
[[nodiscard]] int RunZcsend(absl::Span<const std::string> args,
                            std::ostream& out, std::ostream& err);

// The exit code of a sender ended by a signal is this plus the signal number.
inline constexpr int kZcsendInterrupted = 128;

// Faults injected by tests, to check that zcsend handles them. A real run
// uses none.
struct ZcsendTestHooks {
  // The sender abandons stalled connections without resetting them (no
  // Executor::Abort, no reset_on_shutdown), so the executor's teardown hands
  // their zero-copy buffers back as KernelMayStillRead: the memory must then
  // be kept, untouched.
  bool sender_never_resets = false;
  // The rest are faults of zcsend's own `--loopback` receiver.
  // When > 0, the receiver's accept of its connection number
  // `receiver_accept_fails_at` (1-based) fails with `receiver_accept_errno`
  // instead (the connection stays in the backlog, as with EMFILE).
  uint32_t receiver_accept_fails_at = 0;
  int receiver_accept_errno = 0;
  // The receiver counts this many bytes fewer on the first connection it
  // accepted, as if the stream had been cut short.
  uint64_t receiver_undercount_bytes = 0;
};

// `RunZcsend` with `hooks`.
[[nodiscard]] int RunZcsendWithHooks(absl::Span<const std::string> args,
                                     std::ostream& out, std::ostream& err,
                                     const ZcsendTestHooks& hooks);

// The text printed by `zcsend --help`.
std::string ZcsendUsage();

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_ZCSEND_CLI_H_
