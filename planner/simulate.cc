#include "planner/simulate.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace zcplan {

absl::StatusOr<std::vector<uint64_t>> ReferenceMessageSizes(uint32_t pieces) {
  if (pieces == 0 || pieces > kMaxReferencePieces) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference message of ", pieces, " pieces: expected 1..",
                     kMaxReferencePieces));
  }
  constexpr uint64_t kTotal = 256 * 1024, kHeader = 4096, kLarge = 65536;
  auto split = [](uint64_t bytes, uint64_t n, std::vector<uint64_t>* out) {
    for (uint64_t k = 0; k < n; ++k) {
      out->push_back(bytes / n + (k < bytes % n ? 1 : 0));
    }
  };
  std::vector<uint64_t> sizes;
  if (pieces == 1) return std::vector<uint64_t>{kTotal};
  sizes.push_back(kHeader);
  if (pieces < 4) {
    split(kTotal - kHeader, pieces - 1, &sizes);
    return sizes;
  }
  const uint64_t small = pieces - 3;
  const uint64_t rest = kTotal - kHeader - 2 * kLarge;
  for (uint64_t k = 0; k < small; ++k) {
    sizes.push_back(rest / small + (k < rest % small ? 1 : 0));
    if (k == small / 3) sizes.push_back(kLarge);
    if (k == 2 * small / 3) sizes.push_back(kLarge);
  }
  return sizes;
}

std::vector<struct iovec> MakeSyntheticQueue(absl::Span<const uint64_t> sizes,
                                             uint64_t page_size) {
  std::vector<struct iovec> queue;
  queue.reserve(sizes.size());
  uintptr_t next = page_size;  // Never 0: a null base means "no buffer".
  for (uint64_t size : sizes) {
    uintptr_t end;
    if (__builtin_add_overflow(next, size, &end)) next = page_size;
    queue.push_back({reinterpret_cast<void*>(next), size});
    // Past the buffer's last page, then one free page.
    const uint64_t step =
        (size / page_size + (size % page_size != 0) + 1) * page_size;
    if (__builtin_add_overflow(next, step, &next)) next = page_size;
  }
  return queue;
}

absl::Status ForEachChain(
    absl::Span<const struct iovec> queue, const PlanOptions& options,
    Plan* scratch, absl::FunctionRef<bool(const Plan&, size_t)> on_chain) {
  size_t base = 0;
  uint64_t offset = 0;
  while (true) {
    absl::Status s = PlanChain(queue.subspan(base), offset, options, scratch);
    if (!s.ok()) return s;
    if (!scratch->ops().empty() && !on_chain(*scratch, base)) {
      return absl::OkStatus();
    }
    if (scratch->complete()) return absl::OkStatus();
    base += scratch->end_iov();
    offset = scratch->end_offset();
  }
}

uint64_t MinOpsToSend(absl::Span<const uint64_t> sizes,
                      const PlanOptions& options) {
  const uint64_t max = options.max_bytes_per_op;
  uint64_t whole = 0;      // Full ops, summed per buffer.
  uint64_t remainder = 0;  // The bytes left over, each part below `max`.
  for (uint64_t size : sizes) {
    if (__builtin_add_overflow(whole, size / max, &whole)) return UINT64_MAX;
    remainder += size % max;  // Below 2 * max: cannot overflow.
    if (remainder >= max) {
      remainder -= max;
      if (__builtin_add_overflow(whole, 1, &whole)) return UINT64_MAX;
    }
  }
  if (remainder > 0 && __builtin_add_overflow(whole, 1, &whole)) {
    return UINT64_MAX;
  }
  return whole;
}

absl::Status CheckTraceWork(absl::Span<const TraceBatch> trace,
                            const PlanOptions& options, uint64_t max_ops) {
  uint64_t ops = 0;
  for (size_t b = 0; b < trace.size(); ++b) {
    const uint64_t batch_ops = MinOpsToSend(trace[b].sizes, options);
    if (__builtin_add_overflow(ops, batch_ops, &ops)) ops = UINT64_MAX;
    if (ops <= max_ops) continue;
    const int line = trace[b].line;
    return absl::InvalidArgumentError(absl::StrCat(
        line > 0 ? absl::StrCat("line ", line) : absl::StrCat("batch ", b + 1),
        b == 0 ? ": the batch needs" : ": the batches up to here need",
        " at least ", ops, " ops of at most ", options.max_bytes_per_op,
        " bytes (max_bytes_per_op), more than the limit of ", max_ops, " ops"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Simulation> Simulate(absl::Span<const TraceBatch> trace,
                                    absl::Span<const uint64_t> thresholds,
                                    const PlanOptions& options,
                                    const CostWeights& weights,
                                    uint64_t max_ops) {
  if (thresholds.empty()) {
    return absl::InvalidArgumentError("Simulate: no thresholds given");
  }
  if (absl::Status s = ValidateCostWeights(weights); !s.ok()) return s;
  if (absl::Status s = ValidatePlanOptions(options); !s.ok()) return s;
  if (absl::Status s = CheckTraceWork(trace, options, max_ops); !s.ok()) {
    return s;
  }

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
            return true;
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
