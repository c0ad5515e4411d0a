// SPDX-License-Identifier: Apache-2.0
// Size-aware send planning for one TCP connection.
//
// Given the queue of buffers waiting on a connection, `PlanChain` returns the
// ordered chain of send operations to submit next: consecutive small buffers
// are coalesced into one copying op (`writev` or `sendmsg`), consecutive
// buffers at or above a threshold go into one zero-copy `sendmsg_zc`, and a
// group of one buffer uses the plain `send` / `send_zc` form. Every op but the
// last is linked to the next so the bytes leave in order.
//
// Example, threshold 16 KiB:
//   [4K, 4K, 16K, 32K, 2K] -> writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]
//
// The planner is pure: it performs no system calls, allocates nothing once the
// caller's `Plan` has grown to its working size, and knows nothing of
// io_uring. `uring/` turns a `Plan` into submission-queue entries.
//
// Thread safety: all functions are reentrant. A `Plan` is a plain value; do
// not write one from two threads at once.

#ifndef ZCPLAN_PLANNER_PLANNER_H_
#define ZCPLAN_PLANNER_PLANNER_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace zcplan {

// The kinds of send operation a plan can contain.
enum class OpKind : uint8_t {
  kWritev,     // copy, several iovecs (IORING_OP_WRITEV)
  kSendmsg,    // copy, several iovecs (IORING_OP_SENDMSG)
  kSend,       // copy, one iovec (IORING_OP_SEND)
  kSendmsgZc,  // zero-copy, several iovecs (IORING_OP_SENDMSG_ZC)
  kSendZc,     // zero-copy, one iovec (IORING_OP_SEND_ZC)
};
inline constexpr int kNumOpKinds = 5;

// "writev", "sendmsg", "send", "sendmsg_zc" or "send_zc".
absl::string_view OpKindName(OpKind kind);

// True for `kSendmsgZc` and `kSendZc`.
constexpr bool IsZeroCopy(OpKind kind) {
  return kind == OpKind::kSendmsgZc || kind == OpKind::kSendZc;
}

// Which op coalesces a group of several small iovecs.
enum class CopyOp : uint8_t {
  kWritev,   // IORING_OP_WRITEV: cannot take MSG_WAITALL, a short write
             // breaks the chain.
  kSendmsg,  // IORING_OP_SENDMSG with MSG_WAITALL.
};

// "writev" or "sendmsg".
absl::string_view CopyOpName(CopyOp op);

// Kernel limits, also the largest values `PlanOptions` accepts.
inline constexpr uint32_t kMaxIovsPerOp = 1024;  // UIO_MAXIOV
// INT_MAX & PAGE_MASK for 4 KiB pages: the most one send moves.
inline constexpr uint64_t kMaxBytesPerOp = 0x7ffff000;
// IORING_MAX_ENTRIES: no chain can be longer than a submission queue.
inline constexpr uint32_t kMaxOpsPerChain = 32768;

struct PlanOptions {
  // Threshold value meaning "never zero-copy".
  static constexpr uint64_t kNever = UINT64_MAX;

  // An iovec whose remaining length is at or above this goes zero-copy.
  // 0 sends everything zero-copy; `kNever` sends everything by copy.
  uint64_t zc_threshold = 16 * 1024;

  // The op used for a group of two or more small iovecs.
  CopyOp copy_op = CopyOp::kWritev;

  // Groups are split so that no op exceeds these. 1..kMaxIovsPerOp and
  // 1..kMaxBytesPerOp.
  uint32_t max_iovs_per_op = kMaxIovsPerOp;
  uint64_t max_bytes_per_op = kMaxBytesPerOp;

  // At most this many ops in one chain (the free submission-queue entries of
  // one submit). 1..kMaxOpsPerChain. What does not fit is left for the next
  // chain.
  uint32_t max_ops_per_chain = 64;

  // Gap knob, off when 0. A run of small iovecs lying between two zero-copy
  // iovecs joins the zero-copy group when its total length is at most this
  // many bytes (e.g. the chunk headers of HTTP chunked encoding), so that
  // `[64K, 8, 64K]` is one `sendmsg_zc` instead of three ops.
  uint64_t zc_gap_bytes = 0;
};

// Returns OK, or InvalidArgument naming the field, its value and the limit.
[[nodiscard]] absl::Status ValidatePlanOptions(const PlanOptions& options);

// One operation of a chain: a contiguous range of the queue's iovecs.
//
// The op sends `bytes` bytes starting `offset` bytes into iovec `first_iov`
// and continuing through iovecs `first_iov + 1 .. first_iov + iov_count - 1`;
// the last iovec may be sent only in part (the next op then starts inside it).
// Zero-length iovecs inside the range are included (they cost nothing); an op
// never starts or ends on one.
struct Op {
  OpKind kind;
  bool linked;  // IOSQE_IO_LINK to the next op: every op but the chain's last.
  uint32_t first_iov;
  uint32_t iov_count;
  uint64_t offset;  // Into iovec `first_iov`.
  uint64_t bytes;   // 1..max_bytes_per_op.

  friend bool operator==(const Op& a, const Op& b) {
    return a.kind == b.kind && a.linked == b.linked &&
           a.first_iov == b.first_iov && a.iov_count == b.iov_count &&
           a.offset == b.offset && a.bytes == b.bytes;
  }
  friend bool operator!=(const Op& a, const Op& b) { return !(a == b); }
};

// Calls `fn(iov_index, offset, length)` for each iovec in `op`'s range, in
// order: `length` bytes starting `offset` bytes into `queue[iov_index]` are
// what that iovec contributes to the op. `offset` is `op.offset` for the first
// iovec and 0 for the others; the last may be sent only in part. A zero-length
// iovec inside the range is visited with `length` 0 (it is still one of the
// op's iovecs), so there are exactly `op.iov_count` calls.
//
// Requires: `op` was planned from `queue` (with the same indexing), so that its
// range lies inside `queue` and its `bytes` fit in it. `fn` is called inline;
// nothing is allocated.
template <typename Fn>
void ForEachPiece(absl::Span<const struct iovec> queue, const Op& op, Fn&& fn) {
  uint64_t left = op.bytes;
  uint64_t offset = op.offset;
  const uint32_t end = op.first_iov + op.iov_count;
  for (uint32_t j = op.first_iov; j < end; ++j, offset = 0) {
    const uint64_t available = queue[j].iov_len - offset;
    const uint64_t length = available < left ? available : left;
    left -= length;
    fn(j, offset, length);
  }
}

// A planned chain: a value, reused across calls to `PlanChain` so that
// planning in steady state does not allocate.
class Plan {
 public:
  Plan() = default;

  // The chain in submission order. Empty when there was nothing to send.
  absl::Span<const Op> ops() const { return ops_; }

  // Where the queue resumes after this chain: the first byte not planned is
  // `end_offset` bytes into iovec `end_iov`. When `complete()`, `end_iov` is
  // the queue's size and `end_offset` is 0.
  size_t end_iov() const { return end_iov_; }
  uint64_t end_offset() const { return end_offset_; }

  // Total bytes in the chain.
  uint64_t bytes() const { return bytes_; }

  // True when the chain covers the whole queue; false when the chain limit
  // left work for a next chain.
  bool complete() const { return complete_; }

  // Empties the plan, keeping its capacity.
  void Clear();

 private:
  friend absl::Status PlanChain(absl::Span<const struct iovec>, uint64_t,
                                const PlanOptions&, Plan*);

  std::vector<Op> ops_;
  size_t end_iov_ = 0;
  uint64_t end_offset_ = 0;
  uint64_t bytes_ = 0;
  bool complete_ = true;
};

// Plans the next chain for `queue`, whose first `offset` bytes of iovec 0
// were already sent, into `*plan` (its previous contents are replaced).
//
// Requires: `plan` non-null; `offset` at most the length of iovec 0 (0 for an
// empty queue); no iovec with a null base and a non-zero length, or a length
// above SSIZE_MAX; `options` valid. The queue's total may exceed what one
// chain can carry (even 2^64): a chain plans at most max_ops_per_chain *
// max_bytes_per_op bytes and stops there.
// Returns OK, or InvalidArgument naming the offending value and the limit.
// On error `*plan` is left empty. Iovecs past the chain limit are not looked
// at (they are checked when a later chain reaches them).
//
// The plan refers to the queue by index; it holds no pointer into it.
[[nodiscard]] absl::Status PlanChain(absl::Span<const struct iovec> queue,
                                     uint64_t offset,
                                     const PlanOptions& options, Plan* plan);

// Convenience form that returns a new `Plan` (allocates).
[[nodiscard]] absl::StatusOr<Plan> PlanChain(
    absl::Span<const struct iovec> queue, uint64_t offset,
    const PlanOptions& options);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_PLANNER_H_
