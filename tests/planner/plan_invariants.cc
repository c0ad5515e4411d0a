// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/planner/plan_invariants.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace zcplan::testing {
namespace {

absl::Status Broken(size_t op, absl::string_view what) {
  return absl::InternalError(absl::StrCat("op ", op, ": ", what));
}

}  // namespace

absl::Status CheckPlan(absl::Span<const struct iovec> queue, uint64_t offset,
                       const PlanOptions& options, const Plan& plan) {
  const size_t n = queue.size();
  auto rem_at_start = [&](size_t j) -> uint64_t {
    return queue[j].iov_len - (j == 0 ? offset : 0);
  };
  auto large = [&](size_t j) {
    return rem_at_start(j) >= options.zc_threshold;
  };

  // Which iovecs may ride in a zero-copy op although small: runs of small
  // iovecs between two large ones whose total is within the gap knob.
  std::vector<bool> gap_ok(n, false);
  if (options.zc_gap_bytes != 0) {
    for (size_t j = 0; j < n; ++j) {
      if (rem_at_start(j) == 0 || !large(j)) continue;
      uint64_t sum = 0;
      size_t k = j + 1;
      while (k < n && (rem_at_start(k) == 0 || !large(k))) {
        sum += rem_at_start(k);
        ++k;
      }
      if (k < n && k > j + 1 && sum <= options.zc_gap_bytes) {
        for (size_t g = j + 1; g < k; ++g) gap_ok[g] = true;
      }
    }
  }

  size_t ci = 0;  // Cursor: the next byte expected is `co` into iovec `ci`.
  uint64_t co = offset;
  auto skip_empty = [&] {
    while (ci < n && queue[ci].iov_len == co) ++ci, co = 0;
  };
  uint64_t total = 0;
  const absl::Span<const Op> ops = plan.ops();
  if (ops.size() > options.max_ops_per_chain) {
    return absl::InternalError("more ops than max_ops_per_chain");
  }
  for (size_t k = 0; k < ops.size(); ++k) {
    const Op& op = ops[k];
    skip_empty();
    if (op.first_iov != ci || op.offset != co) {
      return Broken(k, absl::StrCat("starts at (", op.first_iov, ",", op.offset,
                                    "), expected (", ci, ",", co, ")"));
    }
    if (op.bytes < 1 || op.bytes > options.max_bytes_per_op) {
      return Broken(k, absl::StrCat("bytes ", op.bytes, " out of range"));
    }
    if (op.iov_count < 1 || op.iov_count > options.max_iovs_per_op ||
        op.first_iov + op.iov_count > n) {
      return Broken(k, absl::StrCat("iov_count ", op.iov_count, " invalid"));
    }
    if (op.linked != (k + 1 < ops.size())) return Broken(k, "wrong link flag");

    const bool zc = IsZeroCopy(op.kind);
    uint64_t left = op.bytes;
    size_t last = ci;
    for (size_t j = op.first_iov; j < op.first_iov + op.iov_count; ++j) {
      if (left == 0) return Broken(k, "iovec range longer than its bytes");
      const uint64_t avail = queue[j].iov_len - (j == ci ? co : 0);
      const uint64_t piece = std::min(avail, left);
      if (piece == 0) continue;
      if (large(j) != zc && !(zc && gap_ok[j])) {
        return Broken(k, absl::StrCat("iovec ", j, " of remaining length ",
                                      rem_at_start(j), " in a ",
                                      OpKindName(op.kind), " op"));
      }
      left -= piece;
      last = j;
    }
    if (left != 0) return Broken(k, "bytes beyond its iovec range");
    if (last != op.first_iov + op.iov_count - 1) {
      return Broken(k, "range ends on an empty iovec");
    }
    const bool single = op.iov_count == 1;
    OpKind want = zc       ? (single ? OpKind::kSendZc : OpKind::kSendmsgZc)
                  : single ? OpKind::kSend
                  : options.copy_op == CopyOp::kWritev ? OpKind::kWritev
                                                       : OpKind::kSendmsg;
    if (op.kind != want) {
      return Broken(k, absl::StrCat("kind ", OpKindName(op.kind), ", want ",
                                    OpKindName(want)));
    }

    // Advance the cursor past the op.
    uint64_t rest = op.bytes;
    while (rest > 0) {
      const uint64_t take = std::min(queue[ci].iov_len - co, rest);
      rest -= take;
      co += take;
      if (co == queue[ci].iov_len && rest > 0) ++ci, co = 0;
    }
    total += op.bytes;

    // Maximality: the next op of the same class could not have been merged.
    if (k + 1 < ops.size() && IsZeroCopy(ops[k + 1].kind) == zc) {
      const Op& next = ops[k + 1];
      const bool hit_bytes = op.bytes == options.max_bytes_per_op;
      const bool hit_iovs =
          next.first_iov - op.first_iov + 1 > options.max_iovs_per_op;
      if (!hit_bytes && !hit_iovs) {
        return Broken(k, "split from the next op without reaching a limit");
      }
    }
  }
  skip_empty();
  if (plan.bytes() != total) return absl::InternalError("wrong bytes()");
  if (plan.complete()) {
    if (ci != n) return absl::InternalError("complete, but bytes remain");
    if (plan.end_iov() != n || plan.end_offset() != 0) {
      return absl::InternalError("complete, but end is not (n, 0)");
    }
  } else {
    if (ops.size() != options.max_ops_per_chain) {
      return absl::InternalError("incomplete below the chain limit");
    }
    if (ci == n) return absl::InternalError("incomplete, but nothing remains");
    // The end may be reported before or after trailing empty iovecs.
    size_t ei = plan.end_iov();
    uint64_t eo = plan.end_offset();
    while (ei < n && queue[ei].iov_len == eo) ++ei, eo = 0;
    if (ei != ci || eo != co) {
      return absl::InternalError(
          absl::StrCat("end (", plan.end_iov(), ",", plan.end_offset(),
                       "), expected (", ci, ",", co, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace zcplan::testing
