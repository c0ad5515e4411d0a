#include "planner/planner.h"

#include <cstdint>
#include <limits>

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

OpKind KindFor(bool zero_copy, uint32_t iov_count, CopyOp copy_op) {
  if (zero_copy) return iov_count == 1 ? OpKind::kSendZc : OpKind::kSendmsgZc;
  if (iov_count == 1) return OpKind::kSend;
  return copy_op == CopyOp::kWritev ? OpKind::kWritev : OpKind::kSendmsg;
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

  // Each iovec is validated when the planner first reaches it. A chain moves
  // at most kMaxOpsPerChain * kMaxBytesPerOp bytes (< 2^46) and bounds each
  // length by SSIZE_MAX, so no sum the planner forms can overflow.
  size_t checked = 0;
  auto check = [&](size_t j) -> absl::Status {
    const uint64_t len = queue[j].iov_len;
    if (queue[j].iov_base == nullptr && len != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PlanChain: iovec ", j, " has a null base and length ", len));
    }
    if (len > kMaxIovLen) {
      return absl::InvalidArgumentError(
          absl::StrCat("PlanChain: iovec ", j, " has length ", len,
                       ", more than SSIZE_MAX (", kMaxIovLen, ")"));
    }
    checked = j + 1;
    return absl::OkStatus();
  };

  // An iovec's class is fixed by what remains of it when the chain starts.
  const uint64_t threshold = options.zc_threshold;
  auto remaining_at_start = [&](size_t j) -> uint64_t {
    return j == 0 ? queue[0].iov_len - offset : queue[j].iov_len;
  };
  // Small iovecs in [gap_begin, gap_end) were absorbed into a zero-copy group
  // by the gap knob.
  size_t gap_end = 0;
  auto try_absorb_gap = [&](size_t j) {
    uint64_t sum = 0;
    for (size_t k = j; k < n; ++k) {
      const uint64_t len = queue[k].iov_len;
      if (len >= threshold && len != 0) {
        if (k > j) gap_end = k;
        return;
      }
      sum += len;
      if (sum > options.zc_gap_bytes) return;
    }
  };

  std::vector<Op>& ops = plan->ops_;
  size_t i = 0;  // The next unplanned byte is `off` bytes into iovec `i`.
  uint64_t off = offset;
  while (true) {
    for (; i < n; ++i, off = 0) {
      if (i >= checked) {
        if (absl::Status s = check(i); !s.ok()) return plan->Clear(), s;
      }
      if (queue[i].iov_len > off) break;
    }
    if (i == n) break;
    if (ops.size() == options.max_ops_per_chain) {
      plan->complete_ = false;
      break;
    }

    const bool zc = i < gap_end || remaining_at_start(i) >= threshold;
    const size_t first = i;
    const uint64_t first_off = off;
    size_t last = i;  // Last iovec with bytes in this op.
    uint64_t bytes = 0;
    while (true) {
      const uint64_t avail = queue[i].iov_len - off;
      if (avail > options.max_bytes_per_op - bytes) {
        off += options.max_bytes_per_op - bytes;
        bytes = options.max_bytes_per_op;
        last = i;
        break;  // The next op resumes inside iovec `i`.
      }
      bytes += avail;
      last = i;
      if (bytes == options.max_bytes_per_op) {
        off = queue[i].iov_len;
        break;  // Full at an iovec boundary: the next op starts after it.
      }
      // Find the next iovec with bytes; stop if it belongs to another group.
      bool member = false;
      for (++i, off = 0; i < n; ++i) {
        if (i >= checked) {
          if (absl::Status s = check(i); !s.ok()) return plan->Clear(), s;
        }
        const uint64_t len = queue[i].iov_len;
        if (len == 0) continue;
        member = (len >= threshold) == zc || (zc && i < gap_end);
        if (!member && zc && options.zc_gap_bytes != 0) {
          try_absorb_gap(i);
          member = i < gap_end;
        }
        break;
      }
      if (!member || i - first + 1 > options.max_iovs_per_op) break;
    }

    const uint32_t iov_count = static_cast<uint32_t>(last - first + 1);
    ops.push_back(Op{KindFor(zc, iov_count, options.copy_op), true,
                     static_cast<uint32_t>(first), iov_count, first_off,
                     bytes});
    plan->bytes_ += bytes;
  }

  if (!ops.empty()) ops.back().linked = false;
  if (plan->complete_) {
    plan->end_iov_ = n;
    plan->end_offset_ = 0;
  } else {
    plan->end_iov_ = i;
    plan->end_offset_ = off;
  }
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
