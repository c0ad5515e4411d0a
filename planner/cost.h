// SPDX-License-Identifier: Apache-2.0
// Cost estimate for a planned chain, for offline simulation.
//
// `EstimateCost` counts what a plan asks of the kernel (ops by kind, bytes and
// iovecs copied vs sent zero-copy, pages pinned for zero-copy) and weighs the
// counts with per-unit `CostWeights` into one comparable figure. The default
// weights are rough, uncalibrated guesses in nanoseconds; measure your own
// (the sweep tool) before trusting a ranking.
//
// Thread safety: all functions are reentrant.

#ifndef ZCPLAN_PLANNER_COST_H_
#define ZCPLAN_PLANNER_COST_H_

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/planner/planner.h"

namespace zcplan {

// The largest weight accepted (a second per unit, in ns). With every count
// below 2^64 and seven terms, a cost stays below 1.3e29: finite, whatever
// the plan or how many plans are summed.
inline constexpr double kMaxCostWeight = 1e9;

// Per-unit weights. All must be finite, in 0..kMaxCostWeight.
struct CostWeights {
  double per_op = 1500;         // Submitting and completing one op.
  double per_zc_op = 800;       // Extra for a zero-copy op: its notification.
  double per_copy_byte = 0.2;   // Copying a byte into the socket buffer.
  double per_zc_byte = 0;       // Sending a byte zero-copy (beyond pinning).
  double per_copy_iov = 20;     // One iovec of a copying op.
  double per_zc_iov = 200;      // One iovec of a zero-copy op (an skb frag).
  double per_pinned_page = 50;  // Pinning one page for zero-copy.
  uint64_t page_size = 4096;    // A power of two, 512..1 GiB.
};

// Returns OK, or InvalidArgument naming the weight, its value and the range.
[[nodiscard]] absl::Status ValidateCostWeights(const CostWeights& weights);

// A weight as a person writes one: decimal digits with an optional fraction
// and an optional exponent ("12", "0.5", ".5", "1e-3", "+2"). False for
// anything else, including what strtod would also take (hex "0x10", "inf",
// "nan", surrounding spaces).
[[nodiscard]] bool ParseDecimal(absl::string_view text, double* value);

// The weights file `zcplan simulate --weights` reads and `zcsweep` writes: one
// "name value" pair per line (names as the fields above), blank lines and
// '#' comments allowed. Weights not in the file keep their defaults.
// Each weight is written with the fewest digits that read back exactly, so
// `ParseCostWeights(FormatCostWeights(w))` gives `w` back.
std::string FormatCostWeights(const CostWeights& weights);
// Errors: InvalidArgument naming the line (unknown name, bad or negative
// value, a page_size ValidateCostWeights rejects, a name given twice).
[[nodiscard]] absl::StatusOr<CostWeights> ParseCostWeights(
    absl::string_view text);

// What a plan (or a sum of plans) costs.
struct PlanCost {
  std::array<uint64_t, kNumOpKinds> ops_by_kind{};  // Indexed by OpKind.
  uint64_t bytes_copied = 0;
  uint64_t bytes_zero_copy = 0;
  uint64_t iovs_copied = 0;     // Non-empty iovec pieces in copying ops.
  uint64_t iovs_zero_copy = 0;  // Non-empty iovec pieces in zero-copy ops.
  uint64_t pages_pinned = 0;    // Pages spanned by zero-copy pieces.
  double cost = 0;              // The weighted sum.

  uint64_t ops() const;
  uint64_t zero_copy_ops() const;
  PlanCost& operator+=(const PlanCost& other);
};

// The cost of `plan`, which must have been planned from `queue` (the op
// ranges index into it; pages are counted from the iovec base addresses).
// Requires valid `weights` (see ValidateCostWeights).
PlanCost EstimateCost(absl::Span<const struct iovec> queue, const Plan& plan,
                      const CostWeights& weights);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_COST_H_
