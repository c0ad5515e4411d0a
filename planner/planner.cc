// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/planner.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"

namespace zcplan {
namespace {

// The kernel rejects a transfer larger than SSIZE_MAX; bounding each length
// by it also keeps `PlanOptions::kNever` out of reach of any real length.
constexpr uint64_t kMaxIovLen = std::numeric_limits<int64_t>::max();

absl::Status OutOfRange(absl::string_view field, uint64_t value, uint64_t lo,
                        uint64_t hi) {
  return absl::InvalidArgumentError(absl::StrCat(
      "PlanOptions.", field, " is ", value, "; it must be in ", lo, "..", hi));
}

}  // namespace

absl::string_view OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kWritev:
      return "writev";
    case OpKind::kSendmsg:
      return "sendmsg";
    case OpKind::kSend:
      return "send";
    case OpKind::kSendmsgZc:
      return "sendmsg_zc";
    case OpKind::kSendZc:
      return "send_zc";
  }
  return "unknown";
}

absl::string_view CopyOpName(CopyOp op) {
  return op == CopyOp::kWritev ? "writev" : "sendmsg";
}

absl::Status ValidatePlanOptions(const PlanOptions& options) {
  if (options.max_iovs_per_op < 1 || options.max_iovs_per_op > kMaxIovsPerOp) {
    return OutOfRange("max_iovs_per_op", options.max_iovs_per_op, 1,
                      kMaxIovsPerOp);
  }
  if (options.max_bytes_per_op < 1 ||
      options.max_bytes_per_op > kMaxBytesPerOp) {
    return OutOfRange("max_bytes_per_op", options.max_bytes_per_op, 1,
                      kMaxBytesPerOp);
  }
  if (options.max_ops_per_chain < 1 ||
      options.max_ops_per_chain > kMaxOpsPerChain) {
    return OutOfRange("max_ops_per_chain", options.max_ops_per_chain, 1,
                      kMaxOpsPerChain);
  }
  if (options.copy_op != CopyOp::kWritev &&
      options.copy_op != CopyOp::kSendmsg) {
    return OutOfRange("copy_op", static_cast<uint64_t>(options.copy_op), 0, 1);
  }
  return absl::OkStatus();
}

void Plan::Clear() {
  ops_.clear();
  end_iov_ = 0;
  end_offset_ = 0;
  bytes_ = 0;
  complete_ = true;
}

namespace {

bool ValidIovec(const struct iovec& v) {
  return (v.iov_base != nullptr || v.iov_len == 0) && v.iov_len <= kMaxIovLen;
}

// Cold path: the error for an iovec that failed ValidIovec.
ABSL_ATTRIBUTE_NOINLINE absl::Status InvalidIovec(
    absl::Span<const struct iovec> queue, size_t j, Plan* plan) {
  plan->Clear();
  const uint64_t len = queue[j].iov_len;
  if (len > kMaxIovLen) {
    return absl::InvalidArgumentError(
        absl::StrCat("PlanChain: iovec ", j, " has length ", len,
                     ", more than SSIZE_MAX (", kMaxIovLen, ")"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "PlanChain: iovec ", j, " has a null base and length ", len));
}

// Gap knob: whether the small iovecs from `j` on, up to the next large one,
// total at most `gap` bytes. If so, sets `*gap_end` to that large iovec.
bool AbsorbGap(const struct iovec* q, size_t n, size_t j, uint64_t threshold,
               uint64_t gap, size_t* gap_end) {
  uint64_t sum = 0;
  for (size_t k = j; k < n; ++k) {
    const uint64_t len = q[k].iov_len;
    if (len >= threshold && len != 0) {
      *gap_end = k;
      return true;
    }
    sum += len;
    if (sum > gap) return false;
  }
  return false;
}

// The hot loop: extends a group over iovecs [j, end) while each one is
// plainly a member (right class, fits in `*room`, non-null base), and returns
// the first index it did not take. Anything else stops it for the caller to
// decide. `bound` is `threshold` for a copy group (members are below it) and
// `threshold - 1` (0 for threshold 0) for a zero-copy group (members are
// empty or at least `threshold`).
template <bool kZeroCopy>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline size_t Scan(const struct iovec* q, size_t j,
                                                size_t end, uint64_t bound,
                                                uint64_t* room) {
  uint64_t r = *room;
  for (; j < end; ++j) {
    const uint64_t len = q[j].iov_len;
    if (kZeroCopy ? len - 1 < bound : len >= bound) break;
    if (len >= r) break;
    if (q[j].iov_base == nullptr) break;
    r -= len;
  }
  *room = r;
  return j;
}

}  // namespace

absl::Status PlanChain(absl::Span<const struct iovec> queue, uint64_t offset,
                       const PlanOptions& options, Plan* plan) {
  if (plan == nullptr) {
    return absl::InvalidArgumentError("PlanChain: plan must not be null");
  }
  plan->Clear();
  if (absl::Status s = ValidatePlanOptions(options); !s.ok()) return s;

  const size_t n = queue.size();
  if (n > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("PlanChain: the queue has ", n,
                     " iovecs; at most 4294967295 are supported"));
  }
  if (n == 0 ? offset != 0 : offset > queue[0].iov_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PlanChain: offset ", offset, " is past the end of iovec 0 (length ",
        n == 0 ? 0 : queue[0].iov_len, ")"));
  }

  // Locals, not option fields: stores into `ops` could alias them.
  // Every length is checked against SSIZE_MAX and a chain moves less than
  // kMaxOpsPerChain * kMaxBytesPerOp (< 2^46) bytes, so no sum overflows.
  const struct iovec* const q = queue.data();
  const uint64_t threshold = options.zc_threshold;
  const uint64_t max_bytes = options.max_bytes_per_op;
  const uint64_t gap = options.zc_gap_bytes;
  const size_t max_iovs = options.max_iovs_per_op;
  const size_t max_ops = options.max_ops_per_chain;
  // Op kind by [zero-copy][single iovec]: a lookup, as the group sizes of a
  // mixed queue make a poor branch to predict.
  const OpKind kinds[2][2] = {
      {options.copy_op == CopyOp::kWritev ? OpKind::kWritev : OpKind::kSendmsg,
       OpKind::kSend},
      {OpKind::kSendmsgZc, OpKind::kSendZc}};
  std::vector<Op>& ops = plan->ops_;

  // The next unplanned byte is `off` bytes into iovec `i`. An iovec's class
  // is fixed by what remains of it when the chain starts; small iovecs below
  // `gap_end` were absorbed into a zero-copy group by the gap knob.
  size_t i = 0;
  uint64_t off = offset;
  size_t gap_end = 0;
  uint64_t planned = 0;
  while (true) {
    while (i < n && q[i].iov_len == off) ++i, off = 0;
    if (i == n) break;
    if (ABSL_PREDICT_FALSE(!ValidIovec(q[i]))) {
      return InvalidIovec(queue, i, plan);
    }
    if (ops.size() == max_ops) {
      plan->complete_ = false;
      break;
    }

    const uint64_t at_start = i == 0 ? q[0].iov_len - offset : q[i].iov_len;
    const bool zc = i < gap_end || at_start >= threshold;
    const size_t first = i;
    const uint64_t first_off = off;
    size_t last = i;  // Last iovec with bytes in this op.
    uint64_t bytes = q[i].iov_len - off;
    if (bytes >= max_bytes) {
      bytes = max_bytes;
      off += max_bytes;  // The next op resumes inside (or after) iovec i.
    } else {
      const size_t end = std::min(n, first + max_iovs);
      const uint64_t bound =
          zc ? (threshold == 0 ? 0 : threshold - 1) : threshold;
      uint64_t room = max_bytes - bytes;
      size_t j = i + 1;
      bool full = false;
      while (true) {
        j = zc ? Scan<true>(q, j, end, bound, &room)
               : Scan<false>(q, j, end, bound, &room);
        if (j == end) break;  // End of the queue or the iovec limit.
        if (!ValidIovec(q[j])) return InvalidIovec(queue, j, plan);
        const uint64_t len = q[j].iov_len;
        if (len != 0) {
          const bool member =
              (len >= threshold) == zc ||
              (zc && (j < gap_end || (gap != 0 && AbsorbGap(q, n, j, threshold,
                                                            gap, &gap_end))));
          if (!member) break;  // Another group starts.
          if (len >= room) {
            full = true;  // Resume inside (or after) iovec j.
            break;
          }
          room -= len;
        }
        ++j;
      }
      if (full) {
        last = j;
        off = room;
        bytes = max_bytes;
      } else {
        for (last = j - 1; q[last].iov_len == 0;) --last;
        off = 0;
        bytes = max_bytes - room;
      }
      i = j;
    }

    const uint32_t iov_count = static_cast<uint32_t>(last - first + 1);
    ops.push_back(Op{kinds[zc][iov_count == 1], true,
                     static_cast<uint32_t>(first), iov_count, first_off,
                     bytes});
    planned += bytes;
  }

  if (!ops.empty()) ops.back().linked = false;
  plan->bytes_ = planned;
  plan->end_iov_ = plan->complete_ ? n : i;
  plan->end_offset_ = plan->complete_ ? 0 : off;
  return absl::OkStatus();
}

absl::StatusOr<Plan> PlanChain(absl::Span<const struct iovec> queue,
                               uint64_t offset, const PlanOptions& options) {
  Plan plan;
  if (absl::Status s = PlanChain(queue, offset, options, &plan); !s.ok()) {
    return s;
  }
  return plan;
}

}  // namespace zcplan
