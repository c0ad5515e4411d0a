#include "planner/simulate.h"

#include "absl/strings/str_cat.h"

namespace zcplan {

std::vector<struct iovec> MakeSyntheticQueue(absl::Span<const uint64_t> sizes,
                                             uint64_t page_size) {
  std::vector<struct iovec> queue;
  queue.reserve(sizes.size());
  uintptr_t next = page_size;  // Never 0: a null base means "no buffer".
  for (uint64_t size : sizes) {
    queue.push_back({reinterpret_cast<void*>(next), size});
    next += (size + page_size - 1) / page_size * page_size + page_size;
  }
  return queue;
}

absl::Status ForEachChain(
    absl::Span<const struct iovec> queue, const PlanOptions& options,
    Plan* scratch, absl::FunctionRef<void(const Plan&, size_t)> on_chain) {
  size_t base = 0;
  uint64_t offset = 0;
  while (true) {
    absl::Status s = PlanChain(queue.subspan(base), offset, options, scratch);
    if (!s.ok()) return s;
    if (!scratch->ops().empty()) on_chain(*scratch, base);
    if (scratch->complete()) return absl::OkStatus();
    base += scratch->end_iov();
    offset = scratch->end_offset();
  }
}

absl::StatusOr<Simulation> Simulate(absl::Span<const TraceBatch> trace,
                                    absl::Span<const uint64_t> thresholds,
                                    const PlanOptions& options,
                                    const CostWeights& weights) {
  if (thresholds.empty()) {
    return absl::InvalidArgumentError("Simulate: no thresholds given");
  }
  if (absl::Status s = ValidateCostWeights(weights); !s.ok()) return s;
  if (absl::Status s = ValidatePlanOptions(options); !s.ok()) return s;

  std::vector<std::vector<struct iovec>> queues;
  queues.reserve(trace.size());
  for (const TraceBatch& batch : trace) {
    queues.push_back(MakeSyntheticQueue(batch.sizes, weights.page_size));
  }

  Simulation sim;
  Plan plan;
  for (uint64_t threshold : thresholds) {
    PlanOptions opts = options;
    opts.zc_threshold = threshold;
    ThresholdResult r;
    r.threshold = threshold;
    for (size_t b = 0; b < trace.size(); ++b) {
      const absl::Span<const struct iovec> queue = queues[b];
      absl::Status s =
          ForEachChain(queue, opts, &plan, [&](const Plan& chain, size_t base) {
            ++r.chains;
            r.cost += EstimateCost(queue.subspan(base), chain, weights);
          });
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", trace[b].line, ": ", s.message()));
      }
      ++r.batches;
    }
    if (sim.results.empty() || r.cost.cost < sim.results[sim.best].cost.cost) {
      sim.best = sim.results.size();
    }
    sim.results.push_back(r);
  }
  return sim;
}

}  // namespace zcplan
