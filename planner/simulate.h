// Offline planning simulation: plan whole traces, compare thresholds.
//
// `Simulate` plans every batch of a trace under each candidate threshold,
// chain after chain as an executor would, and totals the cost estimates so
// that thresholds can be ranked without sending a byte.
//
// Thread safety: all functions are reentrant.

#ifndef ZCPLAN_PLANNER_SIMULATE_H_
#define ZCPLAN_PLANNER_SIMULATE_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "planner/cost.h"
#include "planner/planner.h"
#include "planner/trace.h"

namespace zcplan {

// A queue of iovecs with the given lengths at made-up addresses, each buffer
// starting on its own `page_size` boundary as if freshly allocated. The bases
// are never dereferenced; they only let the cost model count pages.
// Requires a power-of-two `page_size`.
std::vector<struct iovec> MakeSyntheticQueue(absl::Span<const uint64_t> sizes,
                                             uint64_t page_size = 4096);

// Plans all of `queue` (from its start), chain after chain, reusing
// `*scratch`. Calls `on_chain(plan, base)` for each chain; the chain's iovec
// indices are relative to `base`, its first iovec in `queue`.
// Returns the first planning error, if any.
[[nodiscard]] absl::Status ForEachChain(
    absl::Span<const struct iovec> queue, const PlanOptions& options,
    Plan* scratch, absl::FunctionRef<void(const Plan&, size_t)> on_chain);

// The totals for one threshold over a whole trace.
struct ThresholdResult {
  uint64_t threshold = 0;
  uint64_t batches = 0;
  uint64_t chains = 0;
  PlanCost cost;  // Summed over all chains of all batches.
};

struct Simulation {
  std::vector<ThresholdResult> results;  // In the order of the thresholds.
  size_t best = 0;  // Index of the lowest estimated cost (first on a tie).
};

// Plans every batch of `trace` once per threshold in `thresholds` (which
// replaces `options.zc_threshold`), with `weights` for the cost.
// Returns InvalidArgument for no thresholds, invalid options or weights, or a
// batch that cannot be planned (naming its line).
[[nodiscard]] absl::StatusOr<Simulation> Simulate(
    absl::Span<const TraceBatch> trace, absl::Span<const uint64_t> thresholds,
    const PlanOptions& options, const CostWeights& weights);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_SIMULATE_H_
