// SPDX-License-Identifier: Apache-2.0
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
#include "zcplan/planner/cost.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/trace.h"

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

// The project's reference message (the shape of an HTTP response), 256 KiB in
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
// sizes should bound the work: check MaxOpsToSend up front, or count ops in
// `on_chain` and return false at a limit.
//
// Returns the first planning error, if any; else OK, whether the whole queue
// was planned or `on_chain` stopped early (the caller knows which).
[[nodiscard]] absl::Status ForEachChain(
    absl::Span<const struct iovec> queue, const PlanOptions& options,
    Plan* scratch, absl::FunctionRef<bool(const Plan&, size_t)> on_chain);

// The fewest ops any plan of buffers of `sizes` can take under `options`:
// the total bytes divided by max_bytes_per_op, rounded up. A LOWER bound:
// alternating small and large buffers take one op each, far more than this.
// To bound work, use MaxOpsToSend. Saturates at UINT64_MAX. Requires valid
// `options`.
uint64_t MinOpsToSend(absl::Span<const uint64_t> sizes,
                      const PlanOptions& options);

// An UPPER bound on the ops of planning all of a queue of buffers of `sizes`
// under `options` (threshold included), chain after chain as ForEachChain
// does, whatever max_ops_per_chain and zc_gap_bytes are:
//
//   F + min(F, L) + n / max_iovs_per_op + R
//
// F: the total bytes divided by max_bytes_per_op, rounded down; L: the
// buffers at or above the threshold; n: all buffers; R: the runs of non-empty
// buffers on one side of the threshold (zero-length buffers neither start nor
// end a run). Saturates at UINT64_MAX. Requires valid `options`.
//
// Why (from the rules of PlanChain): an op either carries exactly
// max_bytes_per_op bytes (at most F of those) or ends at the end of a buffer,
// the next op starting at a later one, because (1) the queue ends: once; (2) it
// holds max_iovs_per_op iovecs: such ranges do not overlap, so at most n /
// max_iovs_per_op; (3) the next non-empty buffer is of the other class: where a
// run starts, at most R - 1; or (4) a chain began inside a buffer at or above
// the threshold whose rest is below it (an op of max_bytes_per_op bytes ended
// inside it), and the rest went alone into a copying op: at most once per such
// buffer and per full op, so min(F, L). tests/planner checks the bound against
// real plans of random queues and options.
uint64_t MaxOpsToSend(absl::Span<const uint64_t> sizes,
                      const PlanOptions& options);

// The default limit on the ops of one pass over a trace (see CheckTraceWork),
// counted by MaxOpsToSend: about a second of planning and formatting.
inline constexpr uint64_t kDefaultMaxTraceOps = uint64_t{1} << 20;

// Sums MaxOpsToSend over the batches of a trace as they come, against a
// limit, so that a trace read batch by batch is refused at the batch where
// planning it could pass the limit, before any planning.
class TraceWorkLimit {
 public:
  // Requires valid `options`.
  TraceWorkLimit(const PlanOptions& options, uint64_t max_ops)
      : options_(options), max_ops_(max_ops) {}

  // Adds `batch`, the trace's `index`-th batch (0-based; named by position
  // when its line is 0). Returns OK while the sum is at most the limit;
  // otherwise ResourceExhausted naming the batch (its line, or "batch N"), the
  // ops it may take up to here, max_bytes_per_op, max_iovs_per_op and the
  // limit. Once it failed, it fails again for every further batch.
  [[nodiscard]] absl::Status Add(const TraceBatch& batch, size_t index);

  // The sum so far (saturating).
  uint64_t ops() const { return ops_; }

 private:
  PlanOptions options_;
  uint64_t max_ops_;
  uint64_t ops_ = 0;
};

// Returns OK when planning every batch of `trace` once needs at most
// `max_ops` ops by MaxOpsToSend (an upper bound), summed over the batches;
// else the error of TraceWorkLimit::Add for the batch at which the sum passes
// the limit. Requires valid `options`.
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

// Plans a trace batch by batch under several thresholds and totals the cost
// estimates, so that a trace of any length is simulated with the memory of
// one batch. `Simulate` does the same for a trace already in memory.
class Simulator {
 public:
  // Each threshold replaces `options.zc_threshold` for its pass; `max_ops`
  // bounds the ops of each pass (see TraceWorkLimit). Errors:
  // InvalidArgument for no thresholds, invalid options or weights.
  [[nodiscard]] static absl::StatusOr<Simulator> Create(
      absl::Span<const uint64_t> thresholds, const PlanOptions& options,
      const CostWeights& weights, uint64_t max_ops = kDefaultMaxTraceOps);

  // Checks the work of `batch`, the trace's `index`-th (0-based), under every
  // threshold, then plans it under each. Errors: ResourceExhausted when a
  // pass could pass `max_ops` ("threshold T: " and the TraceWorkLimit error;
  // nothing of the batch is planned then), or a planning error naming the
  // batch's line. After an error the totals are not to be used.
  [[nodiscard]] absl::Status Add(const TraceBatch& batch, size_t index);

  // The totals of the batches added so far; `best` is the lowest cost.
  Simulation Result() const;

  // The batches added so far.
  uint64_t batches() const { return batches_; }

 private:
  Simulator(const PlanOptions& options, const CostWeights& weights)
      : options_(options), weights_(weights) {}

  PlanOptions options_;
  CostWeights weights_;
  std::vector<ThresholdResult> results_;
  std::vector<TraceWorkLimit> limits_;  // One per threshold.
  std::vector<struct iovec> queue_;     // Scratch, reused per batch.
  Plan plan_;                           // Scratch, reused per chain.
  uint64_t batches_ = 0;
};

// Plans every batch of `trace` once per threshold in `thresholds` (which
// replaces `options.zc_threshold`), with `weights` for the cost. Before any
// planning, checks the work of every pass with `CheckTraceWork(trace,
// options with that threshold, max_ops)`, so the work is bounded by the
// number of thresholds times `max_ops` ops. Returns InvalidArgument for no
// thresholds, invalid options or weights, or a batch that cannot be planned
// (naming its line); ResourceExhausted for a pass over `max_ops` ("threshold
// T: " and the CheckTraceWork error).
[[nodiscard]] absl::StatusOr<Simulation> Simulate(
    absl::Span<const TraceBatch> trace, absl::Span<const uint64_t> thresholds,
    const PlanOptions& options, const CostWeights& weights,
    uint64_t max_ops = kDefaultMaxTraceOps);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_SIMULATE_H_
