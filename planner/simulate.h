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
// starting on its own `page_size` boundary as if freshly allocated, with a
// free page after it. The bases are never dereferenced; they only let the
// cost model count pages. Every base is non-null and page-aligned, and
// `base + length` does not pass the end of the address space: when the next
// buffer would, the layout starts again at `page_size`, so in a queue whose
// sizes add up to nearly 2^64 bases may repeat (page counts do not change).
// Requires a power-of-two `page_size` and sizes of at most kMaxTraceSize.
std::vector<struct iovec> MakeSyntheticQueue(absl::Span<const uint64_t> sizes,
                                             uint64_t page_size = 4096);

// The project's reference message (FIELD_NOTES section 3), 256 KiB in
// `pieces` buffers: for 4 or more, a 4 KiB header, two 64 KiB pieces at one
// and two thirds of the body, and the rest of the body split evenly into
// `pieces - 3` small ones; for 1, one 256 KiB buffer; for 2 or 3, the header
// and the rest in equal parts. InvalidArgument for 0 or more than
// kMaxReferencePieces.
inline constexpr uint32_t kMaxReferencePieces = 65536;
[[nodiscard]] absl::StatusOr<std::vector<uint64_t>> ReferenceMessageSizes(
    uint32_t pieces);

// Plans all of `queue` (from its start), chain after chain, reusing
// `*scratch`. Calls `on_chain(plan, base)` for each non-empty chain; the
// chain's iovec indices are relative to `base`, its first iovec in `queue`.
// `on_chain` returns true to go on, false to stop: there is no further chain
// and no further call.
//
// One huge buffer takes many ops (at least its size / max_bytes_per_op, up to
// about 2^32 for a size near SSIZE_MAX), so a caller that cannot trust the
// sizes should bound the work: check MinOpsToSend up front, or count ops in
// `on_chain` and return false at a limit.
//
// Returns the first planning error, if any; else OK, whether the whole queue
// was planned or `on_chain` stopped early (the caller knows which).
[[nodiscard]] absl::Status ForEachChain(
    absl::Span<const struct iovec> queue, const PlanOptions& options,
    Plan* scratch, absl::FunctionRef<bool(const Plan&, size_t)> on_chain);

// The fewest ops any plan of buffers of `sizes` can take under `options`:
// the total bytes divided by max_bytes_per_op, rounded up. Planning them takes
// at most this many ops plus one per buffer, so this bounds the work.
// Saturates at UINT64_MAX. Requires valid `options`.
uint64_t MinOpsToSend(absl::Span<const uint64_t> sizes,
                      const PlanOptions& options);

// The default limit on the ops of one pass over a trace (see CheckTraceWork):
// about a second of planning.
inline constexpr uint64_t kDefaultMaxTraceOps = uint64_t{1} << 20;

// Returns OK when planning every batch of `trace` once needs at most
// `max_ops` ops by MinOpsToSend, summed over the batches. Otherwise returns
// InvalidArgument naming the batch at which the sum passes the limit (its
// line, or its 1-based position for line 0), the ops needed up to it,
// max_bytes_per_op and the limit. Requires valid `options`.
[[nodiscard]] absl::Status CheckTraceWork(absl::Span<const TraceBatch> trace,
                                          const PlanOptions& options,
                                          uint64_t max_ops);

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
// replaces `options.zc_threshold`), with `weights` for the cost. Before any
// planning, checks `CheckTraceWork(trace, options, max_ops)`, so the work is
// bounded by the number of thresholds times (`max_ops` plus the buffers).
// Returns InvalidArgument for no thresholds, invalid options or weights, a
// trace over `max_ops`, or a batch that cannot be planned (naming its line).
[[nodiscard]] absl::StatusOr<Simulation> Simulate(
    absl::Span<const TraceBatch> trace, absl::Span<const uint64_t> thresholds,
    const PlanOptions& options, const CostWeights& weights,
    uint64_t max_ops = kDefaultMaxTraceOps);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_SIMULATE_H_
