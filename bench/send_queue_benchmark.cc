// SPDX-License-Identifier: Apache-2.0
// The send queue's per-message bookkeeping, without a ring: what the
// executor does to a connection's SendQueue for one message sent whole.
//
//   bazel run -c opt //bench:send_queue_benchmark --
//       --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
// (one line)
//
// Per message of n buffers (the reference message, 256 KiB): Push of the
// span, then the size-aware plan's five ops (writev up to the first 64 KiB
// piece, zero-copy of it, writev to the second, zero-copy of it, writev of
// the rest) each held before submission; the ops complete in order
// (SetSent); a writev is unheld and its range released at its completion,
// a zero-copy op at its notification, after the last completion; Compact
// after each release scan. `per_buffer` is the CPU time over n.

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/uring/send_queue.h"

namespace zcplan {
namespace {

struct Op {
  uint64_t first;  // index in the message
  uint32_t count;
  bool zero_copy;
};

// The five ops of the size-aware plan: the 64 KiB pieces go zero-copy.
std::vector<Op> PlanOps(const std::vector<uint64_t>& lengths) {
  std::vector<Op> ops;
  uint64_t start = 0;
  for (uint64_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] < 64 * 1024) continue;
    if (i > start)
      ops.push_back({start, static_cast<uint32_t>(i - start), false});
    ops.push_back({i, 1, true});
    start = i + 1;
  }
  if (start < lengths.size()) {
    ops.push_back(
        {start, static_cast<uint32_t>(lengths.size() - start), false});
  }
  return ops;
}

// ReleaseEligible: every releasable run of [first, first + count), then
// Compact.
uint64_t ReleaseRange(SendQueue& q, uint64_t first, uint64_t count,
                      std::vector<uint64_t>* tokens) {
  uint64_t bytes = 0;
  uint64_t cursor = first;
  SendQueue::Run run;
  while (q.NextReleasable(&cursor, first + count, false, &run)) {
    bytes += q.Release(run, tokens);
    benchmark::DoNotOptimize(tokens->data());
  }
  q.Compact();
  return bytes;
}

void BM_QueueCycle(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<uint64_t> lengths =
      *ReferenceMessageSizes(static_cast<uint32_t>(n));
  std::vector<iovec> buffers;
  std::vector<uint64_t> tokens;
  uint64_t total = 0;
  static char bytes[1 << 16];
  for (size_t i = 0; i < n; ++i) {
    buffers.push_back({bytes + (i * 64) % sizeof(bytes), lengths[i]});
    tokens.push_back(i);
    total += lengths[i];
  }
  const std::vector<Op> ops = PlanOps(lengths);
  SendQueue q;
  std::vector<uint64_t> scratch;
  scratch.reserve(n);
  uint64_t released = 0;
  for (auto _ : state) {
    const uint64_t base = q.end_seq();
    q.Push(buffers, tokens, total);
    for (const Op& op : ops) q.Hold(base + op.first, op.count);
    for (const Op& op : ops) {
      q.SetSent(base + op.first + op.count, 0);
      if (op.zero_copy) continue;
      q.Unhold(base + op.first, op.count);
      released += ReleaseRange(q, base + op.first, op.count, &scratch);
    }
    for (const Op& op : ops) {
      if (!op.zero_copy) continue;
      q.Unhold(base + op.first, op.count);
      released += ReleaseRange(q, base + op.first, op.count, &scratch);
    }
    benchmark::DoNotOptimize(released);
  }
  if (q.held() != 0 || released != total * state.iterations()) {
    state.SkipWithError("not every buffer released");
  }
  state.counters["ops"] = static_cast<double>(ops.size());
  // CPU time per buffer (an inverted rate, shown as e.g. "20ns").
  state.counters["per_buffer"] = benchmark::Counter(
      static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                  benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_QueueCycle)->Arg(64)->Arg(1024)->Arg(2048);

}  // namespace
}  // namespace zcplan

BENCHMARK_MAIN();
