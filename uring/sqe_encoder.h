// SPDX-License-Identifier: Apache-2.0
// Turns one planned op into its submission-queue entry, with no state.
//
// `LayOutOp` cuts the op's byte ranges out of the queue (the pieces), picks
// the registered buffer the SQE will name, and says what the op costs
// against RLIMIT_MEMLOCK and where the stream stands once it has sent
// everything. `EncodeSqe` then writes the SQE from the op, its pieces and
// that layout. The fixed-buffer choice is made once, in `LayOutOp`, and both
// the caller's accounting and the SQE follow it.
//
// Both are pure: no system calls, no allocation, no counters; the caller
// charges `memlock_charge`, counts fixed-buffer ops and keeps the end
// position.
//
// Ownership: the SQE points at `pieces` (and, for the sendmsg kinds, at
// `msg`, which points at `pieces`); the caller owns both.
//
//   WARNING: keep `pieces` and `msg` unchanged and alive until the kernel has
//   consumed the SQE (on a ring without IORING_FEAT_SUBMIT_STABLE, until the
//   op completes), and the bytes they point at until the op's release rule
//   allows (for a zero-copy op, its notification).
//
// Thread safety: reentrant.

#ifndef ZCPLAN_URING_SQE_ENCODER_H_
#define ZCPLAN_URING_SQE_ENCODER_H_

#include <linux/io_uring.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>

#include "absl/types/span.h"
#include "zcplan/planner/planner.h"
#include "zcplan/uring/regions.h"
#include "zcplan/uring/ring.h"

namespace zcplan {

// The result of laying out one planned op.
struct OpLayout {
  // The registered buffer (index in `RegisteredRegions::Set` order) the SQE
  // names, or -1. Only zero-copy ops use one: SEND_ZC whenever a region holds
  // its bytes, SENDMSG_ZC only with `RingFeatures::sendmsg_zc_fixed`.
  int fixed_buffer = -1;
  // `MemlockCharge(op.bytes)` for a zero-copy op not on a fixed buffer, else
  // 0 (copy ops and fixed-buffer ops pin nothing).
  uint64_t memlock_charge = 0;
  // The stream position once the op has sent all its bytes, as (sequence
  // number of a queue buffer, byte offset into it): (seq of the last
  // buffer + 1, 0) when the op finishes its last buffer, else (seq of the
  // last buffer, offset where the op stops in it).
  uint64_t end_seq = 0;
  uint64_t end_offset = 0;
};

// Fills `pieces[0 .. op.iov_count)` with the byte ranges `op` sends (what
// `ForEachPiece` yields: `queue[op.first_iov ..]`, the first started
// `op.offset` in, the last cut so the total is `op.bytes`), chooses the fixed
// buffer, and computes the charge and the end position. `queue[0]` has
// sequence number `queue_seq`.
//
// Requires: `op` was planned from `queue` (so `op.iov_count >= 1` and its
// range and bytes lie inside `queue`); `pieces` has room for `op.iov_count`
// iovecs and does not overlap `queue`.
[[nodiscard]] OpLayout LayOutOp(const Op& op, absl::Span<const iovec> queue,
                                uint64_t queue_seq,
                                const RegisteredRegions& regions,
                                const RingFeatures& features, iovec* pieces);

// The part of `LayOutOp` that does not depend on the queue: sets
// `layout->fixed_buffer` and `layout->memlock_charge` for `op` sending
// `pieces`. For a caller whose pieces are already in place (a prepared
// message's own iovecs) and who knows the end position.
void ChooseBuffer(const Op& op, absl::Span<const iovec> pieces,
                  const RegisteredRegions& regions,
                  const RingFeatures& features, OpLayout* layout);

// Writes the SQE of `op` to `sqe`, overwriting every field the kernel reads
// (the SQE need not be zeroed):
//   writev                 pieces, no flags;
//   sendmsg / sendmsg_zc   `*msg` (filled here: msg_iov = pieces), flags
//                          MSG_WAITALL | MSG_NOSIGNAL;
//   send / send_zc         pieces[0], MSG_WAITALL | MSG_NOSIGNAL.
// Zero-copy ops carry IORING_SEND_ZC_REPORT_USAGE when
// `features.zc_report_usage`; with `layout.fixed_buffer >= 0`, SEND_ZC is
// the fixed form and SENDMSG_ZC gets IORING_RECVSEND_FIXED_BUF, both with
// buf_index. Then `sqe->flags |= extra_sqe_flags` (e.g. IOSQE_IO_LINK) and
// `sqe->user_data = user_data`.
//
// Requires: `pieces` and `layout` from `LayOutOp` for this op with the same
// `features`; `msg` non-null for kSendmsg and kSendmsgZc (it is not touched,
// and may be null, for the other kinds). See the WARNING above on lifetimes.
void EncodeSqe(const Op& op, absl::Span<const iovec> pieces,
               const OpLayout& layout, int fd, uint8_t extra_sqe_flags,
               uint64_t user_data, const RingFeatures& features, msghdr* msg,
               io_uring_sqe* sqe);

}  // namespace zcplan

#endif  // ZCPLAN_URING_SQE_ENCODER_H_
