// SPDX-License-Identifier: Apache-2.0
// Measures what a workload costs through the executor under several planner
// settings: the engine behind `zcsweep`, for programs that want to tune the
// zero-copy threshold on their own hardware and traffic.
//
// For each setting and repetition, a sweep attaches one TCP connection (to a
// built-in loopback receiver, or to any TCP sink) to an executor with that
// setting, sends the workload's messages in turn for a fixed time with a
// fixed number of messages in flight (a message is done when every one of its
// buffers is released), and records the wall time, the sending thread's CPU
// time and the executor's counters (`tune/summary.h` has the types, and
// `Summarize` and `Recommend`, which turn the runs into medians, spreads and
// a recommended setting).
//
// A sweep never waits without a bound: every poll is bounded, a peer that
// stops taking data ends the sweep after `SweepOptions::idle_timeout`, and
// `SweepOptions::should_stop` is checked between polls. When a sweep ends
// with buffers still in the kernel, the connection is reset (which purges
// its send queue, so the kernel lets go of zero-copy memory) before the
// buffers are freed; a buffer the kernel still holds after that is never
// freed (its memory is leaked on purpose rather than handed back while the
// kernel may still transmit from it).
//
// Thread safety: a sweep uses the calling thread for the executor (its CPU
// time is what is measured) and, for the built-in receiver, one more thread.
// `Sweep` is used from one thread. The other functions are pure.

#ifndef ZCPLAN_TUNE_SWEEP_H_
#define ZCPLAN_TUNE_SWEEP_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tune/summary.h"

namespace zcplan {

struct SweepOptions {
  // The workload: each entry is one message's buffer sizes (at least one
  // entry, each non-empty with sizes >= 1). Messages are sent in this order,
  // over and over.
  std::vector<std::vector<uint64_t>> messages;
  std::vector<SweepSetting> settings;
  uint32_t repetitions = 3;
  // How long each setting sends per repetition (after one warm-up message).
  absl::Duration run_time = absl::Milliseconds(300);
  // Messages enqueued and not yet fully released, per run.
  uint32_t messages_in_flight = 1;
  // "HOST:PORT" of any TCP receiver that reads and discards, or empty for a
  // receiver thread on 127.0.0.1 in this process. With a peer, all runs use
  // one connection (a `zcsend --listen` there needs `--connections 1`).
  std::string peer;
  // Ring size for the executor.
  uint32_t sq_entries = 256;
  // A run that for this long sees no byte acknowledged by the peer (TCP_INFO
  // tcpi_bytes_acked) and no buffer released ends the sweep with
  // DeadlineExceeded, naming the destination and the bytes outstanding.
  // Zero: no limit (a peer that never reads then stalls the sweep for ever).
  absl::Duration idle_timeout = absl::Seconds(30);
  // Checked between polls (polls wait at most 100 ms) and between the
  // buffers `Sweep::Start` prepares; when it returns true the sweep stops
  // with Cancelled, keeping the runs done. May be empty.
  std::function<bool()> should_stop;
};

// Called after each run with the number of runs done and to do.
using SweepProgress =
    std::function<void(size_t done, size_t total, const SweepPoint& point)>;

// The most buffer memory a sweep may allocate (`SweepBufferBytes`): 1 GiB.
inline constexpr uint64_t kMaxSweepBufferBytes = uint64_t{1} << 30;

// The buffer memory a sweep with `options` allocates: for each message in
// flight, one copy of the whole workload, every piece on its own pages with a
// free page after it (so no two pieces are contiguous), plus a page of
// alignment per workload message. Saturates at UINT64_MAX.
uint64_t SweepBufferBytes(const SweepOptions& options);

// Checks `options` as `Sweep::Start` does first, without starting anything:
// InvalidArgument for an empty workload, no settings, a bad setting (naming
// it), bad counts, a negative idle timeout, or buffers above
// `kMaxSweepBufferBytes` (naming both figures).
[[nodiscard]] absl::Status ValidateSweepOptions(const SweepOptions& options);

// A sweep in two steps, so that a caller learns whether the destination can
// be reached before it reports anything: `Start` connects, `Run` measures.
class Sweep {
 public:
  // Validates `options` (`ValidateSweepOptions`), makes the executor and
  // connects to the peer (or starts the receiver thread). Errors:
  // InvalidArgument as `ValidateSweepOptions` or for a malformed peer;
  // Unavailable when io_uring or the peer cannot be reached; Cancelled when
  // `should_stop` said so while the buffers were prepared.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Sweep>> Start(
      SweepOptions options);

  // Ends the connection. If buffers are still in flight (a failed or
  // stopped run), resets the connection first and waits a bounded time for
  // the kernel to release them; what it still holds then is leaked, never
  // freed (see the file comment).
  ~Sweep();

  Sweep(const Sweep&) = delete;
  Sweep& operator=(const Sweep&) = delete;

  // Runs every setting `repetitions` times. Settings are interleaved (all
  // settings once, then all again, ...) so that a slow spell of the machine
  // does not fall on one setting. Call once. Returns OK, or what stopped
  // the sweep: Cancelled when `should_stop` said so, DeadlineExceeded after
  // `idle_timeout` without progress, the connection's error when a send
  // fails, Internal when the ring fails. Either way `points()` holds the
  // runs completed before that.
  [[nodiscard]] absl::Status Run(const SweepProgress& progress = nullptr);

  // One per setting, in the order of `SweepOptions::settings`.
  const std::vector<SweepPoint>& points() const;
  // Runs completed and runs in the whole sweep.
  size_t runs_done() const;
  size_t runs_total() const;
  // "127.0.0.1:9000" (the peer as given) or "the receiver thread on
  // 127.0.0.1:PORT".
  const std::string& destination() const;

 private:
  class Impl;
  explicit Sweep(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `Sweep::Start` and `Sweep::Run` in one call, with the same errors; the
// runs done are lost on error.
[[nodiscard]] absl::StatusOr<std::vector<SweepPoint>> RunSweep(
    const SweepOptions& options, const SweepProgress& progress = nullptr);

}  // namespace zcplan

#endif  // ZCPLAN_TUNE_SWEEP_H_
