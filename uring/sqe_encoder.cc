// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/sqe_encoder.h"

#include <liburing.h>

#include <cstring>

#include "zcplan/uring/memlock.h"

namespace zcplan {
namespace {

// Every send-family op: MSG_WAITALL so a linked op never succeeds short (the
// kernel retries, and a failure after partial progress breaks the chain);
// MSG_NOSIGNAL so a reset peer is an error code, not SIGPIPE.
constexpr int kSendFlags = MSG_WAITALL | MSG_NOSIGNAL;

}  // namespace

OpLayout LayOutOp(const Op& op, absl::Span<const iovec> queue,
                  uint64_t queue_seq, const RegisteredRegions& regions,
                  const RingFeatures& features, iovec* pieces) {
  // Copied in bulk and then trimmed: this runs for every buffer sent.
  const size_t n = op.iov_count;
  std::memcpy(pieces, queue.data() + op.first_iov, n * sizeof(iovec));
  pieces[0].iov_base = static_cast<char*>(pieces[0].iov_base) + op.offset;
  pieces[0].iov_len -= op.offset;
  uint64_t total = 0;
  for (size_t k = 0; k < n; ++k) total += pieces[k].iov_len;
  pieces[n - 1].iov_len -= total - op.bytes;

  OpLayout layout;
  const size_t last = op.first_iov + n - 1;
  // Where the op stops in its last buffer.
  const uint64_t last_end = (n == 1 ? op.offset : 0) + pieces[n - 1].iov_len;
  if (last_end == queue[last].iov_len) {
    layout.end_seq = queue_seq + last + 1;
  } else {
    layout.end_seq = queue_seq + last;
    layout.end_offset = last_end;
  }
  ChooseBuffer(op, absl::MakeConstSpan(pieces, n), regions, features, &layout);
  return layout;
}

void ChooseBuffer(const Op& op, absl::Span<const iovec> pieces,
                  const RegisteredRegions& regions,
                  const RingFeatures& features, OpLayout* layout) {
  layout->fixed_buffer = -1;
  layout->memlock_charge = 0;
  if (!IsZeroCopy(op.kind)) return;
  if (op.kind == OpKind::kSendZc || features.sendmsg_zc_fixed) {
    layout->fixed_buffer = regions.Find(pieces);
  }
  if (layout->fixed_buffer < 0)
    layout->memlock_charge = MemlockCharge(op.bytes);
}

void EncodeSqe(const Op& op, absl::Span<const iovec> pieces,
               const OpLayout& layout, int fd, uint8_t extra_sqe_flags,
               uint64_t user_data, const RingFeatures& features, msghdr* msg,
               io_uring_sqe* sqe) {
  const uint16_t zc_flags =
      features.zc_report_usage ? IORING_SEND_ZC_REPORT_USAGE : 0;
  if (op.kind == OpKind::kSendmsg || op.kind == OpKind::kSendmsgZc) {
    *msg = msghdr{};
    msg->msg_iov = const_cast<iovec*>(pieces.data());
    msg->msg_iovlen = pieces.size();
  }
  switch (op.kind) {
    case OpKind::kWritev:
      io_uring_prep_writev(sqe, fd, pieces.data(),
                           static_cast<unsigned>(pieces.size()), 0);
      break;
    case OpKind::kSendmsg:
      io_uring_prep_sendmsg(sqe, fd, msg, kSendFlags);
      break;
    case OpKind::kSend:
      io_uring_prep_send(sqe, fd, pieces[0].iov_base, pieces[0].iov_len,
                         kSendFlags);
      break;
    case OpKind::kSendZc:
      if (layout.fixed_buffer >= 0) {
        io_uring_prep_send_zc_fixed(sqe, fd, pieces[0].iov_base,
                                    pieces[0].iov_len, kSendFlags, zc_flags,
                                    static_cast<unsigned>(layout.fixed_buffer));
      } else {
        io_uring_prep_send_zc(sqe, fd, pieces[0].iov_base, pieces[0].iov_len,
                              kSendFlags, zc_flags);
      }
      break;
    case OpKind::kSendmsgZc:
      io_uring_prep_sendmsg_zc(sqe, fd, msg, kSendFlags);
      sqe->ioprio |= zc_flags;
      if (layout.fixed_buffer >= 0) {
        sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
        sqe->buf_index = static_cast<uint16_t>(layout.fixed_buffer);
      }
      break;
  }
  sqe->flags |= extra_sqe_flags;
  sqe->user_data = user_data;
}

}  // namespace zcplan
