// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/simulate.h"

#include <algorithm>
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

uint64_t MaxOpsToSend(absl::Span<const uint64_t> sizes,
                      const PlanOptions& options) {
  const uint64_t max = options.max_bytes_per_op;
  const uint64_t threshold = options.zc_threshold;
  uint64_t full = 0;       // F: whole max-byte ops, summed per buffer...
  uint64_t remainder = 0;  // ...and over the remainders, each below `max`.
  uint64_t large = 0;      // L
  uint64_t runs = 0;       // R
  bool in_run = false;
  bool run_large = false;
  for (uint64_t size : sizes) {
    full += size / max;       // Each size is below 2^63 and max >= 1: F < 2^64
    remainder += size % max;  // until a saturation check below.
    if (remainder >= max) {
      remainder -= max;
      ++full;
    }
    if (full > UINT64_MAX / 4) return UINT64_MAX;  // Sums below cannot wrap.
    if (size == 0) continue;
    const bool is_large = size >= threshold;
    large += is_large;
    if (!in_run || is_large != run_large) ++runs;
    in_run = true;
    run_large = is_large;
  }
  return full + std::min(full, large) + sizes.size() / options.max_iovs_per_op +
         runs;
}

absl::Status TraceWorkLimit::Add(const TraceBatch& batch, size_t index) {
  const uint64_t batch_ops = MaxOpsToSend(batch.sizes, options_);
  const bool first = ops_ == 0;
  if (__builtin_add_overflow(ops_, batch_ops, &ops_)) ops_ = UINT64_MAX;
  if (ops_ <= max_ops_) return absl::OkStatus();
  const int line = batch.line;
  return absl::ResourceExhaustedError(absl::StrCat(
      line > 0 ? absl::StrCat("line ", line)
               : absl::StrCat("batch ", index + 1),
      first ? ": the batch" : ": the batches up to here", " may take up to ",
      ops_, " ops (with at most ", options_.max_bytes_per_op, " bytes and ",
      options_.max_iovs_per_op, " iovecs per op), more than the limit of ",
      max_ops_, " ops"));
}

absl::Status CheckTraceWork(absl::Span<const TraceBatch> trace,
                            const PlanOptions& options, uint64_t max_ops) {
  TraceWorkLimit limit(options, max_ops);
  for (size_t b = 0; b < trace.size(); ++b) {
    if (absl::Status s = limit.Add(trace[b], b); !s.ok()) return s;
  }
  return absl::OkStatus();
}

namespace {

absl::Status UnderThreshold(uint64_t threshold, const absl::Status& s) {
  return absl::Status(
      s.code(), absl::StrCat("threshold ", FormatThreshold(threshold), ": ",
                             s.message()));
}

}  // namespace

absl::StatusOr<Simulator> Simulator::Create(
    absl::Span<const uint64_t> thresholds, const PlanOptions& options,
    const CostWeights& weights, uint64_t max_ops) {
  if (thresholds.empty()) {
    return absl::InvalidArgumentError("Simulate: no thresholds given");
  }
  if (absl::Status s = ValidateCostWeights(weights); !s.ok()) return s;
  if (absl::Status s = ValidatePlanOptions(options); !s.ok()) return s;
  Simulator sim(options, weights);
  for (uint64_t threshold : thresholds) {
    ThresholdResult r;
    r.threshold = threshold;
    sim.results_.push_back(r);
    PlanOptions opts = options;
    opts.zc_threshold = threshold;
    sim.limits_.emplace_back(opts, max_ops);
  }
  return sim;
}

absl::Status Simulator::Add(const TraceBatch& batch, size_t index) {
  for (size_t t = 0; t < limits_.size(); ++t) {
    if (absl::Status s = limits_[t].Add(batch, index); !s.ok()) {
      return UnderThreshold(results_[t].threshold, s);
    }
  }
  queue_ = MakeSyntheticQueue(batch.sizes, weights_.page_size);
  const absl::Span<const struct iovec> queue = queue_;
  for (ThresholdResult& r : results_) {
    PlanOptions opts = options_;
    opts.zc_threshold = r.threshold;
    absl::Status s =
        ForEachChain(queue, opts, &plan_, [&](const Plan& chain, size_t base) {
          ++r.chains;
          r.cost += EstimateCost(queue.subspan(base), chain, weights_);
          return true;
        });
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", batch.line, ": ", s.message()));
    }
    ++r.batches;
  }
  ++batches_;
  return absl::OkStatus();
}

Simulation Simulator::Result() const {
  Simulation sim;
  sim.results = results_;
  for (size_t i = 1; i < sim.results.size(); ++i) {
    if (sim.results[i].cost.cost < sim.results[sim.best].cost.cost) {
      sim.best = i;
    }
  }
  return sim;
}

absl::StatusOr<Simulation> Simulate(absl::Span<const TraceBatch> trace,
                                    absl::Span<const uint64_t> thresholds,
                                    const PlanOptions& options,
                                    const CostWeights& weights,
                                    uint64_t max_ops) {
  absl::StatusOr<Simulator> sim =
      Simulator::Create(thresholds, options, weights, max_ops);
  if (!sim.ok()) return sim.status();
  // The whole trace's work first, so that nothing is planned if it is over.
  for (uint64_t threshold : thresholds) {
    PlanOptions opts = options;
    opts.zc_threshold = threshold;
    if (absl::Status s = CheckTraceWork(trace, opts, max_ops); !s.ok()) {
      return UnderThreshold(threshold, s);
    }
  }
  for (size_t b = 0; b < trace.size(); ++b) {
    if (absl::Status s = sim->Add(trace[b], b); !s.ok()) return s;
  }
  return sim->Result();
}

}  // namespace zcplan
