// SPDX-License-Identifier: Apache-2.0
// Runs planned send chains on TCP sockets, many connections on one io_uring.
//
// An `Executor` runs on one ring: a ring of its own (`Create`), or the
// caller's (`CreateOnRing`, see "On the caller's ring" below). Attach
// connected TCP sockets to it, enqueue buffers on them, and call `Poll` from
// your event loop (or `HandleReady` when an epoll loop says its `WatchFd` is
// readable; or, on the caller's ring, hand it its completions). For each
// connection with data waiting and no chain in flight, the executor plans a
// chain with the planner (planner/planner.h), encodes it as linked SQEs and
// submits it; when the chain's last op completes it plans the next one at once.
// Zero-copy buffers are parked until the kernel's notification says it no
// longer references them.
//
// Ownership: `Enqueue` hands a buffer to the executor. The executor calls the
// release callback exactly once for each enqueued buffer, with the caller's
// token and the outcome, and only when the kernel no longer references the
// memory: after the send completion for a copy, after the notification for a
// zero-copy send. Until then:
//
//   WARNING: do not write to, free or unmap an enqueued buffer before its
//   release callback has run. The kernel may still be reading it, and for a
//   zero-copy send the bytes on the wire are read from that memory.
//
// Ordering: the bytes of one connection leave in enqueue order, each exactly
// once. One chain is in flight per connection; a chain broken by a short send
// is re-planned from the exact byte reached.
//
// Errors: a connection that fails (peer reset, broken pipe, ...) enters a
// sticky error state; every buffer still held is released with that error,
// other connections are unaffected. Bad input returns an `absl::Status` and
// changes nothing.
//
// Ending: a zero-copy buffer stays referenced until the peer acknowledges its
// bytes, so a peer that stops reading can hold it for ever; `Close` does not
// change that (the bytes are already in the socket's send queue). Only
// resetting the connection (`Abort`, or `Shutdown` for connections marked
// `reset_on_shutdown`) makes the kernel drop them. `Shutdown` (and the
// destructor, which calls it) waits a bounded time and then hands back what
// the kernel still references with a status for which `KernelMayStillRead`
// is true:
//
//   WARNING: a buffer released with `KernelMayStillRead(status)` may still be
//   read by the kernel and sent to the peer. Do not reuse or free it until
//   the executor is destroyed and the socket reset (SO_LINGER {1, 0}, then
//   close; a plain close keeps sending from it, and while the executor lives
//   an op in flight keeps the socket open), or the process exits.
//
//   WARNING: do not destroy the executor from inside its release callback.
//
// On the caller's ring: a server whose loop already runs an io_uring
// (accept, recv, timers) makes the executor on that ring with
// `CreateOnRing(ring, options)` and a `user_data_tag`, 1..254, that no
// user_data of its own has as its top byte (user-space pointers have 0):
//   - user_data: every SQE the executor puts on the ring carries the tag in
//     bits 56..63; `Owns(cqe->user_data)` tells its completions from the
//     caller's, and the caller's loop hands them over with
//     `HandleCompletion` (one branch per CQE). The executor never consumes a
//     completion of the caller's, and takes nothing from the completion
//     queue itself (unless `on_foreign_completion` is set, see there).
//   - Submitting: `Flush` puts the chains that are ready on the ring (each
//     chain's SQEs consecutive, linked among themselves only) and submits
//     the ring, which also submits SQEs the caller had queued; `Prepare`
//     puts them there without submitting, for the caller's next
//     `io_uring_submit`. Either way they go in enqueue order. Call one of
//     them after enqueueing and after each batch of completions (a chain
//     that completes lets the next one go). Either may submit the ring
//     when the submission queue is full. `Close` and `Abort` put their
//     cancels on the ring without submitting; they go with the next submit.
//   - Waiting is the caller's: `Poll`, `Drain` and `HandleReady` fail with
//     FailedPrecondition, and `Shutdown` cannot wait (it hands back what is
//     in flight as `KernelMayStillRead`). To end cleanly, `Close` (or
//     `Abort`) the connections, keep the loop running until `Idle()`, then
//     destroy the executor; the ring must outlive it.
//   After the executor is destroyed, completions with its tag may still
//   come (its cancels, and NOPs it made of SQEs it had put on the ring):
//   drop them. From inside `on_foreign_completion`, `Poll`, `Drain`,
//   `HandleReady` and `Shutdown` fail with FailedPrecondition.
//   WARNING: call the executor only between whole SQE chains of your own:
//   an SQE of yours with IOSQE_IO_LINK set and not yet followed by the rest
//   of its chain would link the executor's first SQE into your chain.
//
//   Refused: a ring set up with IORING_SETUP_IOPOLL (no socket ops), a
//   kernel without IORING_FEAT_NODROP (5.5+).
//
// Thread safety: an `Executor` is used from one thread at a time: on the
// caller's ring, the thread that runs that ring's loop. When the
// ring is made with IORING_SETUP_SINGLE_ISSUER (the default where the kernel
// has it) it is bound to the first thread that uses it (`Flush`, `Prepare`,
// `Poll`, `HandleReady`, `Drain`, or `Close`, `Abort`, `Shutdown` with sends
// in flight, which need an earlier one of those anyway): build the executor on
// one thread and run it on another if you like, but once it has run, every call
// that submits must come from that thread (others fail with
// FailedPrecondition naming both threads), and so should the destructor
// (from another thread it cannot wait for the kernel, so it hands back what
// is in flight as `KernelMayStillRead`). The release callback runs on that
// thread, inside `HandleCompletion(s)`, `Poll`, `HandleReady`, `Drain`,
// `Close`, `Abort`, `Shutdown` or the destructor; from inside it you may call
// `Enqueue` (any connection) and the read-only accessors, not `Poll`,
// `HandleReady`, `Flush`, `Prepare`, `Drain`, `Attach`, `Close`, `Abort`,
// `Shutdown` or `RegisterBuffers` (they fail with FailedPrecondition); a
// completion handed to `HandleCompletion` from there is kept and handled
// right after.

#ifndef ZCPLAN_URING_EXECUTOR_H_
#define ZCPLAN_URING_EXECUTOR_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "zcplan/planner/planner.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/ring.h"
#include "zcplan/uring/stats.h"

struct io_uring;  // liburing.h

namespace zcplan {

// Names a connection of one executor. A closed connection's id is never
// reused by that executor.
struct ConnectionId {
  uint64_t value = 0;
  friend bool operator==(ConnectionId a, ConnectionId b) {
    return a.value == b.value;
  }
  friend bool operator!=(ConnectionId a, ConnectionId b) { return !(a == b); }
};

// The release callback: `token` is what was passed to `Enqueue`; `status` is
// OK when every byte of the buffer was sent, else the error that stopped the
// connection (Cancelled for `Close`, Aborted for `Abort` and `Shutdown`).
// Whatever the status, the kernel no longer reads the buffer, except for a
// status with `KernelMayStillRead(status)` (see the WARNING at the top). The
// status reference is valid only during the call.
using ReleaseCallback = std::function<void(
    ConnectionId connection, uint64_t token, const absl::Status& status)>;

// The same for a run of buffers of one connection released together with
// one status (consecutive in enqueue order), in one call: what a sender of
// many small buffers wants, since a call per buffer is a large part of the
// executor's work per buffer. `tokens` is valid only during the call.
using ReleaseBatchCallback = std::function<void(
    ConnectionId connection, absl::Span<const uint64_t> tokens,
    const absl::Status& status)>;

struct ConnectionOptions {
  // Planning for this connection. `plan.zc_threshold` of `PlanOptions::kNever`
  // sends everything by copy. `plan.max_ops_per_chain` is further limited to
  // the free submission-queue entries.
  PlanOptions plan;

  // Adaptive zero-copy: once `adaptive_copied_limit` notifications in a row
  // report that the kernel copied the data anyway
  // (IORING_NOTIF_USAGE_ZC_COPIED: loopback, veth, a NIC without
  // scatter-gather), send this connection's data by copy. Needs a kernel
  // that reports usage (6.2+).
  bool adaptive_zero_copy = true;
  uint32_t adaptive_copied_limit = 8;
  // ... and look again after this many chains by copy: zero-copy goes back
  // on, and off again after `adaptive_copied_limit` copied notifications in
  // a row, the wait doubling each time (to at most 64 times this), so a
  // connection whose route changes (from loopback or a copying device to
  // one that does zero-copy) gets it back (`adaptive_retries`). 0: never;
  // at most 2^24.
  uint32_t adaptive_retry_chains = 4096;

  // Gathered copies: a copy op (writev or sendmsg of two or more pieces)
  // whose pieces average fewer than `gather_below` bytes is sent as one
  // `send` from a copy of its bytes that the executor makes in a buffer of
  // this connection's, `gather_bytes` long (made on first use, freed with
  // the connection). The kernel copies those bytes either way, and its cost
  // per iovec (tens of ns) is far above memcpy's for small pieces. At most
  // `gather_bytes` bytes are gathered per chain; an op that does not fit in
  // what is left goes as planned. Gathered ops next to each other, and a
  // lone small send next to one, become one send. Counted in
  // `gathered_ops` and `bytes_gathered` (and as `send` in `ops`). 0: off (the
  // default); at most 1 GiB. A `Shutdown` that hands back buffers as
  // `KernelMayStillRead` never frees or reuses the gather buffer of such a
  // connection either (a copy op may still read it).
  uint64_t gather_bytes = 0;
  uint32_t gather_below = 512;  // 1..2^20

  // Enqueue refuses more than this many bytes queued and not yet released
  // (ResourceExhausted); it bounds the memory a slow peer can pin.
  uint64_t max_queued_bytes = uint64_t{1} << 32;

  // Accept a connected stream socket that is not TCP (e.g. AF_UNIX). The
  // kernel refuses zero-copy there (-EOPNOTSUPP); the executor then sends
  // by copy.
  bool allow_non_tcp = false;

  // Lets `Shutdown` (and so the destructor) reset this connection, as
  // `Abort` does, when it still holds buffers halfway through the shutdown
  // timeout (later if `Shutdown` runs late; it always resets before it gives
  // up, see `Executor::Shutdown`): the peer gets a TCP reset and loses what it
  // had not received, and the memory comes back. Set it when the program owns
  // the socket and would rather drop a stalled peer than leave buffers with the
  // kernel.
  bool reset_on_shutdown = false;
};

struct ExecutorOptions {
  // Submission-queue entries (the longest chain); completion queue is
  // `cq_factor` times larger.
  uint32_t sq_entries = 256;
  uint32_t cq_factor = 8;

  // Most bytes (counted as the pages the kernel charges to RLIMIT_MEMLOCK)
  // that unregistered zero-copy sends may hold awaiting notification, over
  // the whole ring. A chain whose zero-copy ops find no room under it waits
  // for the connection's own notifications while it holds at least its share
  // of the bytes awaiting notification (the mean over the connections that
  // hold some; `cap_waits`), and is sent by copy when others hold the room
  // (`cap_copies`), so a peer that stops reading and holds the cap never
  // slows the other connections; an op larger than the whole cap is cut to
  // fit. 0 means half of
  // what RLIMIT_MEMLOCK leaves after the ring itself and the registered buffers
  // (recomputed by `RegisterBuffers`; `DescribeNotificationCap` shows the
  // figures). When that is less than 3 pages zero-copy is not used.
  uint64_t max_bytes_awaiting_notification = 0;

  // Use IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN when the
  // kernel has them.
  bool defer_taskrun = true;

  // A writev on a socket whose peer is gone raises SIGPIPE in the thread
  // that entered the ring (IORING_OP_WRITEV cannot take MSG_NOSIGNAL; the
  // send ops carry it), and SIGPIPE's default action kills the process. When
  // true, `Create` sets SIGPIPE to SIG_IGN if it still has the default action
  // (a handler the program installed is left alone). Set false only if the
  // program handles SIGPIPE itself or every connection uses
  // `CopyOp::kSendmsg`.
  bool ignore_sigpipe = true;

  // The destructor calls `Shutdown(teardown_timeout)` unless `Shutdown` ran.
  absl::Duration teardown_timeout = absl::Seconds(2);

  // On the caller's ring (`CreateOnRing`), the top byte of every user_data
  // the executor puts there: 1..254, and none of the caller's may have it
  // (see "On the caller's ring"). 0 for a ring of the executor's own.
  uint8_t user_data_tag = 0;

  // On the caller's ring: lets `Poll`, `Drain`, `HandleReady` and `Shutdown`
  // reap the ring themselves, handing each completion that is not the
  // executor's to this function (user_data, res and flags; not the extra
  // half of a 32-byte CQE), in order. For a program that waits in the
  // executor; a loop that reaps for itself leaves it empty.
  std::function<void(const io_uring_cqe&)> on_foreign_completion;

  // Required, one of the two: called for every released buffer, or for
  // every run of them (when set, `on_release_batch` is used and
  // `on_release` is not).
  ReleaseCallback on_release;
  ReleaseBatchCallback on_release_batch;
};

class Executor {
 public:
  // Makes a ring with liburing and probes it. Fails with the kernel's error
  // (e.g. io_uring disabled by sysctl, RLIMIT_MEMLOCK too low for the ring).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Executor>> Create(
      ExecutorOptions options);

  // Runs on `ring`, a liburing ring the caller set up and keeps, whatever
  // its flags (see "On the caller's ring"). `options.user_data_tag` must be
  // 1..254; `sq_entries`, `cq_factor` and `defer_taskrun` do not apply.
  // What the kernel supports is probed without a completion on `ring`.
  // Errors: InvalidArgument for a null ring, a bad tag, or a ring set up
  // with IORING_SETUP_IOPOLL (no socket ops); FailedPrecondition for a
  // kernel without IORING_FEAT_NODROP (5.5+).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Executor>> CreateOnRing(
      struct io_uring* ring, ExecutorOptions options);

  // Uses `ring` (e.g. a test fake) instead of a liburing ring; a nonzero
  // `options.user_data_tag` treats it as the caller's ring.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Executor>> CreateWithRing(
      std::unique_ptr<Ring> ring, ExecutorOptions options);

  // `Shutdown(teardown_timeout)` unless it has run. Does not close attached
  // sockets.
  ~Executor();

  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Attaches a connected socket. The executor does not own `fd`: keep it open
  // until the connection is closed and `Idle`.
  // Errors: InvalidArgument for a bad fd, a socket that is not a connected
  // TCP stream (see `allow_non_tcp`), invalid plan options, or a socket
  // already attached, by this fd or any other (a dup of it: two connections
  // on one stream could reorder its bytes); FailedPrecondition after
  // `Shutdown` or from inside the release callback.
  [[nodiscard]] absl::StatusOr<ConnectionId> Attach(
      int fd, const ConnectionOptions& options = ConnectionOptions());

  // Queues `length` bytes at `data` on `connection`, behind what is already
  // queued. On OK the executor owns the buffer until the release callback
  // reports `token` (see the WARNING above); on error it does not take it.
  // Errors: InvalidArgument (null data, zero length, length above SSIZE_MAX),
  // NotFound (unknown connection), FailedPrecondition (closed, or in the
  // error state: the message carries the error), ResourceExhausted (over
  // `max_queued_bytes`, naming the bytes queued, the length and the limit).
  [[nodiscard]] absl::Status Enqueue(ConnectionId connection, const void* data,
                                     size_t length, uint64_t token);

  // Queues `buffers[i]` with `tokens[i]`, in order, as one Enqueue each but
  // checked all first: on error nothing is queued. The spans need not
  // outlive the call (the buffers do, as above). Same errors as Enqueue,
  // naming the index of a bad buffer, plus InvalidArgument when the spans'
  // sizes differ.
  [[nodiscard]] absl::Status Enqueue(ConnectionId connection,
                                     absl::Span<const struct iovec> buffers,
                                     absl::Span<const uint64_t> tokens);

  // Queues every buffer of `message` (see prepared_message.h), in order, as
  // one buffer with one token: the executor keeps a reference to `message`
  // and reports `token` to the release callback once, when the kernel no
  // longer references the bytes of this enqueue. The same message may be
  // queued many times, on any connections: its memory stays the executor's
  // (as above) until every one of those enqueues is released.
  // Nothing is checked or copied per buffer (`PreparedMessage::Create`
  // checked them); the SQEs point into the message's iovec array, and its
  // plan is made once per set of plan options (per executor) and reused.
  // One linked chain runs through plain buffers and messages alike. The
  // stats count a message as one buffer of `bytes()` bytes.
  // Errors: InvalidArgument for a null message; the others as Enqueue.
  [[nodiscard]] absl::Status EnqueueMessage(
      ConnectionId connection,
      const std::shared_ptr<const PreparedMessage>& message, uint64_t token);

  // Plans and submits a chain for every connection that has data and no chain
  // in flight. Does not wait. Poll calls it; call it yourself to start sends
  // early.
  [[nodiscard]] absl::Status Flush();

  // `Flush` without the submit: the chains' SQEs are put on the ring for
  // the caller's next `io_uring_submit` (on the caller's ring), or the next
  // `Flush` or `Poll`. It still submits when the submission queue is full.
  [[nodiscard]] absl::Status Prepare();

  // True when `user_data` is of an SQE the executor put on the ring (its
  // top byte is the executor's `user_data_tag`). One compare.
  bool Owns(uint64_t user_data) const;

  // Handles one of the executor's completions, taken from the ring by the
  // caller (release callbacks run here). Returns false, and does nothing,
  // for a completion that is not the executor's (`Owns` false). Chains it
  // unblocks go on the ring at the next `Flush` or `Prepare`.
  bool HandleCompletion(const io_uring_cqe& cqe);
  // The same for each of `cqes` (as io_uring_peek_batch_cqe gives them);
  // returns how many were the executor's.
  size_t HandleCompletions(absl::Span<io_uring_cqe* const> cqes);

  // Flushes, waits up to `timeout` for at least one completion when anything
  // is in flight, handles every completion available (release callbacks run
  // here), and submits the chains that unblocked. Returns the number of
  // completions handled. A signal or the timeout is not an error.
  // Errors: Internal when the ring itself fails.
  [[nodiscard]] absl::StatusOr<size_t> Poll(absl::Duration timeout);

  // For a program with an epoll (or poll) loop of its own: watch the fd
  // `WatchFd` returns for readability, and call `HandleReady` when it is
  // readable and after enqueueing (to start the sends). It is the ring's fd,
  // or on a DEFER_TASKRUN ring (the default) an eventfd registered with it:
  // the kernel does not wake pollers of such a ring's fd when it queues
  // completions (measured on 6.18, docs/kernel.md), but it does signal the
  // eventfd. Made on the first call, which must come from the ring's thread
  // once the executor has run (see Thread safety); the executor owns the fd.
  // Errors: FailedPrecondition for a ring without a file descriptor (a test
  // fake), the kernel's error otherwise.
  [[nodiscard]] absl::StatusOr<int> WatchFd();

  // `Poll` that never waits, for use with `WatchFd`: clears the fd's
  // readiness, submits the chains that are ready, enters the ring to run the
  // completion work the kernel deferred, handles every completion available
  // and submits what they unblocked. Returns the number of completions
  // handled. Completions that come later make the fd readable again.
  [[nodiscard]] absl::StatusOr<size_t> HandleReady();

  // Polls until every buffer on every connection has been released, or
  // `timeout` passes (DeadlineExceeded).
  [[nodiscard]] absl::Status Drain(absl::Duration timeout);

  // Stops a connection: buffers not yet handed to the kernel are released at
  // once with Cancelled; ops in flight are cancelled and their buffers are
  // released as their completions and notifications arrive (in `Poll`).
  // Further calls with this id fail with NotFound once it is `Idle`.
  // WARNING: zero-copy buffers already in the socket's send queue come back
  // only when the peer acknowledges them; for a peer that stopped reading,
  // use `Abort`.
  [[nodiscard]] absl::Status Close(ConnectionId connection);

  // Closes the connection (as `Close`) and resets its TCP connection (the
  // kernel sends RST and drops the socket's send queue, so every zero-copy
  // buffer comes back at the next `Poll`, released with Aborted, or with the
  // status of an earlier `Close` or failure, unless fully sent before). OK
  // means the local kernel had taken the bytes; a reset loses what the peer
  // had not yet received. The socket stays open, the caller's, but is no
  // longer connected; close it when the connection is `Idle`. For a peer
  // that stopped reading. Errors: NotFound (unknown connection), Internal
  // when the kernel refuses the reset (the connection is then closed anyway).
  [[nodiscard]] absl::Status Abort(ConnectionId connection);

  // Ends the executor's work within `timeout`, and hands back every buffer:
  //   1. every connection is closed, as `Close`;
  //   2. it polls until every buffer is released, for up to `timeout` / 2;
  //   3. connections still holding buffers that set `reset_on_shutdown` are
  //      reset, as `Abort`; it polls again until `timeout` has passed, and
  //      after a reset at least once (without waiting) even when `timeout`
  //      has already passed, so a shutdown that runs late (a loaded or
  //      descheduled thread, or a `timeout` of zero) still collects the
  //      buffers the reset freed;
  //   4. what the kernel still references then is released with a status
  //      for which `KernelMayStillRead` is true (see the WARNING at the top).
  // Returns OK when step 4 released nothing; otherwise Unavailable naming
  // the buffers, bytes and connections left with the kernel; a second call
  // returns the first one's result. Afterwards the executor holds nothing:
  // `Attach` and `Enqueue` fail with FailedPrecondition, `Flush`, `Poll` and
  // `Drain` submit nothing, and completions the kernel posts later are
  // ignored (counted as stray). Called from a thread other than the ring's
  // (see Thread safety), it cannot wait: it resets the marked connections
  // and goes to step 4 at once.
  [[nodiscard]] absl::Status Shutdown(absl::Duration timeout);

  // True when the connection holds no buffer (nothing queued, in flight, or
  // awaiting a notification); also true for an unknown id.
  bool Idle(ConnectionId connection) const;
  // True when no connection holds a buffer and no op is in flight.
  bool Idle() const;

  // The connection's sticky error, OK if none. NotFound for an unknown id.
  absl::Status ConnectionError(ConnectionId connection) const;

  // True when zero-copy is currently used on the connection (false after
  // -EOPNOTSUPP/-EINVAL, adaptive copy detection, or a "never" threshold).
  bool ZeroCopyEnabled(ConnectionId connection) const;

  [[nodiscard]] absl::StatusOr<SendStats> connection_stats(
      ConnectionId connection) const;
  RingStats stats() const;
  // What the ring supports. On a SINGLE_ISSUER ring the flags that need SQEs
  // to probe (marked in uring/ring.h) are known from the first Flush, Poll or
  // Drain, which binds the ring to its thread, and read false before.
  const RingFeatures& features() const;
  uint64_t max_bytes_awaiting_notification() const;
  // How the cap above was chosen, e.g. "2040 KiB: half of the 8 MiB
  // RLIMIT_MEMLOCK less 28 KiB for the ring and 4 MiB of registered
  // buffers", or "set by ExecutorOptions".
  std::string DescribeNotificationCap() const;

  // Registers `regions` as the ring's fixed buffers (once per executor, before
  // or after attaching). A zero-copy op whose buffers all lie inside one region
  // then uses it: SEND_ZC with IORING_RECVSEND_FIXED_BUF, and SENDMSG_ZC with
  // it where the kernel supports that (`features().sendmsg_zc_fixed`).
  // The memory is pinned and charged to RLIMIT_MEMLOCK while the executor
  // lives; keep it valid that long. A default notification cap is
  // recomputed without the registered bytes.
  // Errors: FailedPrecondition if already registered, after `Shutdown`, or
  // from inside the release callback; InvalidArgument for an empty or null
  // region; the kernel's error otherwise.
  [[nodiscard]] absl::Status RegisterBuffers(
      absl::Span<const struct iovec> regions);

 private:
  class Impl;
  explicit Executor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when `status` is a release status that says the kernel may still read
// the buffer (set by `Shutdown` and the destructor; see the WARNING at the
// top). Never true for OK.
bool KernelMayStillRead(const absl::Status& status);

}  // namespace zcplan

#endif  // ZCPLAN_URING_EXECUTOR_H_
