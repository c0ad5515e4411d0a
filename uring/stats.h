// SPDX-License-Identifier: Apache-2.0
// Send statistics: the counters of one connection (`SendStats`) and of a
// ring (`RingStats`), and one table of `SendStats`' fields that drives
// `SendStats::Add` and `FormatStats` and lets tools print columns.
//
// Every field is in the table (`SendStatsFields`) except `ops`, which is by
// `OpKind` and named by `OpKindName`; stats.cc fails to compile when a field
// is added to `SendStats` without a row.
//
// Thread safety: plain values; the table is immutable.

#ifndef ZCPLAN_URING_STATS_H_
#define ZCPLAN_URING_STATS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/planner/planner.h"

namespace zcplan {

// Counters. Per connection (`Executor::connection_stats`) and summed over the
// ring (`Executor::stats`).
struct SendStats {
  uint64_t ops[kNumOpKinds] = {};      // ops submitted, by OpKind
  uint64_t fixed_buffer_ops = 0;       // zero-copy ops on registered buffers
  uint64_t chains = 0;                 // chains submitted
  uint64_t chains_resumed = 0;         // chains re-planned after a broken chain
  uint64_t short_sends = 0;            // ops that moved fewer bytes than asked
  uint64_t cancelled_ops = 0;          // ops completed -ECANCELED
  uint64_t retried_errors = 0;         // transient errors (-EINTR, -EAGAIN)
  uint64_t bytes_copied = 0;           // bytes sent by copy ops
  uint64_t bytes_zero_copy = 0;        // bytes sent by zero-copy ops
  uint64_t notifications = 0;          // zero-copy notifications received
  uint64_t copied_notifications = 0;   // ... that said the kernel copied
  uint64_t stray_notifications = 0;    // ... for an op already finished
  uint64_t fallbacks_enomem = 0;       // zero-copy ops resent by copy: -ENOMEM
  uint64_t fallbacks_unsupported = 0;  // zero-copy turned off: -EOPNOTSUPP
                                       // or -EINVAL
  uint64_t cap_waits = 0;      // chains held back by the notification-bytes
                               // cap until this connection's own notifications
  uint64_t cap_copies = 0;     // chains sent by copy: the cap was held by other
                               // connections' zero-copy bytes
  uint64_t enomem_pauses = 0;  // times zero-copy was paused after repeated
                               // -ENOMEM (the kernel's RLIMIT_MEMLOCK charge)
  uint64_t chains_zc_paused = 0;  // chains sent by copy during such a pause
  uint64_t buffers_enqueued = 0;
  uint64_t buffers_released = 0;         // released as sent
  uint64_t buffers_released_failed = 0;  // released with an error
  uint64_t buffers_kernel_may_read = 0;  // released by Shutdown while still
                                         // referenced (KernelMayStillRead)
  uint64_t connections_reset = 0;        // Abort, or reset by Shutdown
  uint64_t bytes_enqueued = 0;
  uint64_t bytes_awaiting_notification = 0;       // now
  uint64_t peak_bytes_awaiting_notification = 0;  // highest seen
  uint64_t adaptive_disabled = 0;  // connections where adaptive zero-copy
                                   // turned zero-copy off (0 or 1 per
                                   // connection)
  uint64_t adaptive_retries = 0;   // times it turned zero-copy back on to
                                   // look again (adaptive_retry_chains)
  uint64_t gathered_ops = 0;       // copy ops with bytes sent from a
                                   // gathered copy (gather_bytes)
  uint64_t bytes_gathered = 0;     // ... those bytes, counted when
                                   // submitted (a rest resent after a short
                                   // send is gathered and counted again)

  // Adds `other`'s counters to this one (peaks: sum of peaks).
  void Add(const SendStats& other);
};

// Ring-wide counters besides the per-connection sums.
struct RingStats {
  SendStats totals;  // over all connections ever attached
  uint64_t submit_calls = 0;
  uint64_t submit_busy = 0;       // -EBUSY/-EAGAIN from submit, retried
  uint64_t wait_interrupted = 0;  // -EINTR while waiting
  uint64_t completions = 0;
  uint64_t connections_attached = 0;
  uint64_t connections_open = 0;
};

// What a field's value means, for `Add` and for tools that print rates.
enum class StatKind {
  kCounter,  // counts up from 0: events, bytes
  kGauge,    // a value now (bytes_awaiting_notification)
  kPeak,     // the highest value seen of a gauge
};

// One field of `SendStats`: `stats.*field` is its value.
struct StatField {
  absl::string_view name;  // as `FormatStats` prints it
  uint64_t SendStats::*field;
  StatKind kind;
};

// Every field of `SendStats` but `ops`, in declaration order. The span is
// valid for the life of the program.
absl::Span<const StatField> SendStatsFields();

// "writev=3 sendmsg_zc=2 ..." plus the other non-zero counters, one line:
// the ops by `OpKind`, then the fields in `SendStatsFields` order, each
// "name=value"; "(no activity)" when every one is zero.
std::string FormatStats(const SendStats& stats);

}  // namespace zcplan

#endif  // ZCPLAN_URING_STATS_H_
