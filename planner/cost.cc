#include "planner/cost.h"

#include <cmath>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"

namespace zcplan {

absl::Status ValidateCostWeights(const CostWeights& w) {
  const std::pair<const char*, double> fields[] = {
      {"per_op", w.per_op},
      {"per_zc_op", w.per_zc_op},
      {"per_copy_byte", w.per_copy_byte},
      {"per_zc_byte", w.per_zc_byte},
      {"per_copy_iov", w.per_copy_iov},
      {"per_zc_iov", w.per_zc_iov},
      {"per_pinned_page", w.per_pinned_page},
  };
  for (const auto& [name, value] : fields) {
    if (!std::isfinite(value) || value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("CostWeights.", name, " is ", value,
                       "; it must be finite and non-negative"));
    }
  }
  const uint64_t ps = w.page_size;
  if (ps < 512 || ps > (uint64_t{1} << 30) || (ps & (ps - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CostWeights.page_size is ", ps,
                     "; it must be a power of two in 512..1073741824"));
  }
  return absl::OkStatus();
}

uint64_t PlanCost::ops() const {
  uint64_t sum = 0;
  for (uint64_t n : ops_by_kind) sum += n;
  return sum;
}

uint64_t PlanCost::zero_copy_ops() const {
  return ops_by_kind[static_cast<int>(OpKind::kSendmsgZc)] +
         ops_by_kind[static_cast<int>(OpKind::kSendZc)];
}

PlanCost& PlanCost::operator+=(const PlanCost& o) {
  for (int k = 0; k < kNumOpKinds; ++k) ops_by_kind[k] += o.ops_by_kind[k];
  bytes_copied += o.bytes_copied;
  bytes_zero_copy += o.bytes_zero_copy;
  iovs_copied += o.iovs_copied;
  iovs_zero_copy += o.iovs_zero_copy;
  pages_pinned += o.pages_pinned;
  cost += o.cost;
  return *this;
}

PlanCost EstimateCost(absl::Span<const struct iovec> queue, const Plan& plan,
                      const CostWeights& w) {
  PlanCost c;
  for (const Op& op : plan.ops()) {
    ++c.ops_by_kind[static_cast<int>(op.kind)];
    const bool zc = IsZeroCopy(op.kind);
    uint64_t iovs = 0;
    ForEachPiece(queue, op, [&](uint32_t j, uint64_t off, uint64_t length) {
      if (length == 0) return;
      ++iovs;
      if (zc) {
        // Pages from the one holding the first byte to the one holding the
        // last; only the start's offset into its page matters, so no sum can
        // overflow whatever the base address.
        const uint64_t in_page =
            (reinterpret_cast<uintptr_t>(queue[j].iov_base) + off) %
            w.page_size;
        c.pages_pinned += (in_page + length - 1) / w.page_size + 1;
      }
    });
    (zc ? c.bytes_zero_copy : c.bytes_copied) += op.bytes;
    (zc ? c.iovs_zero_copy : c.iovs_copied) += iovs;
  }
  c.cost = w.per_op * c.ops() + w.per_zc_op * c.zero_copy_ops() +
           w.per_copy_byte * c.bytes_copied +
           w.per_zc_byte * c.bytes_zero_copy + w.per_copy_iov * c.iovs_copied +
           w.per_zc_iov * c.iovs_zero_copy + w.per_pinned_page * c.pages_pinned;
  return c;
}

}  // namespace zcplan
