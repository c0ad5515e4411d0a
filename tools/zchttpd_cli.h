// SPDX-License-Identifier: Apache-2.0
// The `zchttpd` HTTP server as a function, so that tests run it in-process.
//
// `zchttpd` is an HTTP/1.1 keep-alive server whose responses go out through
// the executor on the server's own ring (uring/executor.h, "On the caller's
// ring"): each thread owns one io_uring (SINGLE_ISSUER | DEFER_TASKRUN where
// the kernel has them) with accept (multishot where available), recv and a
// timeout as the server's own SQEs, and one executor made on that ring with
// `Executor::CreateOnRing`. Its loop hands the executor its completions
// (`Owns` / `HandleCompletion`) and calls `Prepare` before its own submit.
//
// Routes (GET only):
//   GET /<N>        a `--body` byte body sent as the HTTP header buffer and N
//                   pieces: N-1 slices of body/N bytes and the rest;
//                   1 <= N <= min(body, 65536), else 400.
//   GET /mixed/<N>  the project's 256 KiB reference message
//                   (planner/simulate.h ReferenceMessageSizes: a 4 KiB piece,
//                   two 64 KiB pieces at one and two thirds, N-3 small ones)
//                   as the body after the HTTP header buffer; 1 <= N <= 65536.
// The body bytes are the same for both: byte i of a body is byte i % 4 of
// the 32-bit little-endian integer i / 4 (`ZchttpdBodyByte`), i.e. the
// body is the words 0, 1, 2, ... so that a lost, repeated or misplaced byte
// shows at its offset. Bodies are read from one arena per shape built at
// startup and never written again; the HTTP headers come from a pool of
// per-response buffers that goes back to the pool only when the executor's
// release callback returns it (never after a `KernelMayStillRead` status).
//
// Requests: pipelined requests are answered in order; an absolute-form
// target is its path. A malformed request gets 400, an unknown path 404, a
// method other than GET 405 (with "Allow: GET"), a request header over
// 8 KiB 431, an HTTP version other than 1.x 505; the connection is then
// closed once that response is sent (as after `Connection: close`, or an
// HTTP/1.0 request without keep-alive). Request bodies are refused (400).
// A client that resets mid-response costs only its own connection.
//
// Output (stdout, flushed): first "listening on ADDR:PORT ..." (the bound
// address, with the port chosen for port 0), then with --stats-every a
// "stats: ..." line each period, and on SIGINT or SIGTERM (or the test
// hook) "stopping (SIGINT)" and a "final: ..." line. Stats lines are
// "key=value" words: the server's counters (requests, responses by status,
// connections) then `FormatStats` of the executors' counters summed over
// the threads.
//
// Thread safety: `RunZchttpd` keeps no state between calls; concurrent calls
// are safe as long as their streams differ. It installs process-wide
// SIGINT/SIGTERM handlers while it runs (tools/stop_signals.h).

#ifndef ZCPLAN_TOOLS_ZCHTTPD_CLI_H_
#define ZCPLAN_TOOLS_ZCHTTPD_CLI_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace zcplan {

// Exit codes of `RunZchttpd`.
inline constexpr int kZchttpdOk = 0;        // stopped by a signal or the hook
inline constexpr int kZchttpdFailed = 1;    // cannot listen, io_uring, ...
inline constexpr int kZchttpdBadInput = 2;  // bad command line

// Runs `zchttpd` with `args`, the command line without argv[0], until
// SIGINT or SIGTERM. Bad input writes exactly one line "zchttpd: ..." to
// `err` (user text escaped, see tools/cli_io.h), nothing to `out`, and
// returns kZchttpdBadInput before anything is started. A failure to start
// (address in use, io_uring unavailable) or of a ring while serving is one
// line on `err` and kZchttpdFailed.
[[nodiscard]] int RunZchttpd(absl::Span<const std::string> args,
                             std::ostream& out, std::ostream& err);

struct ZchttpdTestHooks {
  // When set, the server also stops once `*stop` is true (looked at every
  // 50 ms), as on SIGINT.
  const std::atomic<bool>* stop = nullptr;
};

// `RunZchttpd` with `hooks`.
[[nodiscard]] int RunZchttpdWithHooks(absl::Span<const std::string> args,
                                      std::ostream& out, std::ostream& err,
                                      const ZchttpdTestHooks& hooks);

// The text printed by `zchttpd --help`.
std::string ZchttpdUsage();

// Byte `offset` of every response body: byte offset % 4 of the
// little-endian 32-bit integer offset / 4.
inline unsigned char ZchttpdBodyByte(uint64_t offset) {
  return static_cast<unsigned char>(static_cast<uint32_t>(offset >> 2) >>
                                    (8 * (offset & 3)));
}

// One request as `ParseHttpRequest` sees it.
struct HttpRequestParse {
  enum class Outcome {
    kIncomplete,  // no full request header yet (and under the bound)
    kComplete,    // a GET or HEAD request: see `consumed`, `target`, ...
    kError,       // answer `status` and close the connection
  };
  Outcome outcome = Outcome::kIncomplete;
  size_t consumed = 0;       // kComplete: bytes of this request
  int status = 0;            // kError: 400, 405, 431 or 505
  absl::string_view target;  // kComplete: the path, without "?query"
  bool keep_alive = true;    // kComplete: false for Connection: close etc.
  bool http10 = false;       // kComplete: an HTTP/1.0 request
  // A HEAD request (kComplete, or kError once the method was read): the
  // answer is the header a GET would get, without the body.
  bool head = false;
};

// The request header at the start of `data` (leading empty lines skipped).
// An absolute-form target ("http://host/16") stands for its path. HTTP/1.1
// needs one Host header; a body (Content-Length other than 0, or
// Transfer-Encoding) is refused with 400, as is a control byte other than
// HTAB in the target or a field value (NUL, a bare CR); a header that has
// not ended within `max_header_bytes`, counted from the first byte of
// `data` (leading empty lines too), is 431. `target` points into `data`.
HttpRequestParse ParseHttpRequest(absl::string_view data,
                                  size_t max_header_bytes);

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_ZCHTTPD_CLI_H_
