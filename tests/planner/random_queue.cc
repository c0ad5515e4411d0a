// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/planner/random_queue.h"

#include "absl/strings/str_cat.h"

namespace zcplan::testing {

std::string Describe(const Case& c, absl::Span<const struct iovec> rest,
                     uint64_t offset, const Plan& plan) {
  const PlanOptions& o = c.options;
  std::string s = absl::StrCat(
      "threshold=", o.zc_threshold, " copy_op=", CopyOpName(o.copy_op),
      " max_iovs=", o.max_iovs_per_op, " max_bytes=", o.max_bytes_per_op,
      " max_ops=", o.max_ops_per_chain, " gap=", o.zc_gap_bytes,
      "\noffset=", offset, " lengths=");
  for (const struct iovec& v : rest.first(std::min<size_t>(rest.size(), 60))) {
    absl::StrAppend(&s, v.iov_len, ",");
  }
  absl::StrAppend(&s, rest.size() > 60 ? "..." : "", "\nops:");
  for (const Op& op : plan.ops()) {
    absl::StrAppend(&s, " ", OpKindName(op.kind), "(", op.first_iov, "+",
                    op.iov_count, "@", op.offset, ",", op.bytes, ")");
  }
  return s;
}

Case DrawCase(ByteSource& src) {
  Case c;
  PlanOptions& o = c.options;
  static constexpr uint64_t kThresholds[] = {0,    1,     100,
                                             4096, 16384, PlanOptions::kNever};
  o.zc_threshold =
      src.Next(4) == 0 ? 1 + src.Next(64 * 1024) : kThresholds[src.Next(6)];
  o.copy_op = src.Next(2) == 0 ? CopyOp::kWritev : CopyOp::kSendmsg;
  o.max_iovs_per_op = src.Next(3) == 0 ? 1 + src.Next(6) : kMaxIovsPerOp;
  o.max_bytes_per_op =
      src.Next(3) == 0 ? 1 + src.Next(40 * 1024) : kMaxBytesPerOp;
  o.max_ops_per_chain = src.Next(3) == 0 ? 1 + src.Next(8) : 64;
  o.zc_gap_bytes = src.Next(3) == 0 ? src.Next(300) : 0;

  const uint64_t t =
      o.zc_threshold == PlanOptions::kNever ? 16384 : o.zc_threshold;
  const size_t n = src.Next(4) == 0 ? src.Next(3000) : src.Next(40);
  uintptr_t base = 4096;
  for (size_t j = 0; j < n; ++j) {
    uint64_t len;
    switch (src.Next(6)) {
      case 0:
        len = 0;
        break;
      case 1:
        len = src.Next(16);
        break;
      case 2:
        len = t == 0 ? 0 : t - 1;
        break;
      case 3:
        len = t + src.Next(2);
        break;
      default:
        len = src.Next(2 * t + 100);
        break;
    }
    c.queue.push_back({reinterpret_cast<void*>(base), len});
    base += len + 1 + src.Next(8192);
  }
  if (n > 0 && src.Next(2) == 0) c.offset = src.Next(c.queue[0].iov_len + 1);
  return c;
}

}  // namespace zcplan::testing
