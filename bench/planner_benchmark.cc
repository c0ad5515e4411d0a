// SPDX-License-Identifier: Apache-2.0
// Planner speed against a baseline that only sums the iovec lengths.
//
//   bazel run -c opt //bench:planner_benchmark -- --benchmark_repetitions=5
//
// Two workloads of n iovecs each (the reference message, and an adversarial
// random mix). Prints, after Google Benchmark's table, the ratio of each
// BM_Plan<workload>/<n> to BM_Sum<workload>/<n> from the same run (medians when
// repeated), ns per iovec, and the heap allocations per plan (counted by a
// global operator new).

#include <sys/uio.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/tests/util/alloc_counter.h"

namespace zcplan {
namespace {

// The project's reference message (planner/simulate.h): 256 KiB, a 4 KiB
// header, two 64 KiB pieces at one and two thirds of the body, the rest of
// the body split into n - 3 small pieces. Distinct, never-read addresses.
std::vector<struct iovec> Message(size_t n) {
  const std::vector<uint64_t> lengths =
      *ReferenceMessageSizes(static_cast<uint32_t>(n));
  std::vector<struct iovec> q;
  uintptr_t base = 1 << 20;
  for (uint64_t len : lengths) {
    q.push_back({reinterpret_cast<void*>(base), len});
    base += len + 4096;
  }
  return q;
}

// Adversarial: one piece in eight large, at random, so groups are short and
// their boundaries unpredictable.
std::vector<struct iovec> RandomMix(size_t n) {
  std::mt19937_64 rng(n);
  std::vector<struct iovec> q;
  uintptr_t base = 1 << 20;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t len =
        rng() % 8 == 0 ? 16384 + rng() % 49152 : 100 + rng() % 8000;
    q.push_back({reinterpret_cast<void*>(base), len});
    base += len + 4096;
  }
  return q;
}

PlanOptions BenchOptions() {
  PlanOptions o;
  o.zc_threshold = 16 * 1024;
  o.max_ops_per_chain = kMaxOpsPerChain;  // Plan the whole batch.
  return o;
}

void PlanLoop(benchmark::State& state, const std::vector<struct iovec>& q) {
  const PlanOptions options = BenchOptions();
  Plan plan;
  if (!PlanChain(q, 0, options, &plan).ok()) state.SkipWithError("plan");
  const uint64_t allocs_before = testing::AllocationCount();
  for (auto _ : state) {
    absl::Status s = PlanChain(q, 0, options, &plan);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(plan.ops().data());
  }
  state.counters["allocs_per_plan"] = benchmark::Counter(
      static_cast<double>(testing::AllocationCount() - allocs_before) /
      static_cast<double>(state.iterations()));
  state.counters["ops"] = static_cast<double>(plan.ops().size());
  state.SetItemsProcessed(state.iterations() * q.size());
}

// The least any planner must do: read every length once.
void SumLoop(benchmark::State& state, const std::vector<struct iovec>& q) {
  for (auto _ : state) {
    uint64_t sum = 0;
    for (const struct iovec& v : q) sum += v.iov_len;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * q.size());
}

void BM_PlanMessage(benchmark::State& s) { PlanLoop(s, Message(s.range(0))); }
void BM_SumMessage(benchmark::State& s) { SumLoop(s, Message(s.range(0))); }
void BM_PlanRandomMix(benchmark::State& s) {
  PlanLoop(s, RandomMix(s.range(0)));
}
void BM_SumRandomMix(benchmark::State& s) { SumLoop(s, RandomMix(s.range(0))); }
BENCHMARK(BM_PlanMessage)->Arg(4)->Arg(64)->Arg(1024)->Arg(4096);
BENCHMARK(BM_SumMessage)->Arg(4)->Arg(64)->Arg(1024)->Arg(4096);
BENCHMARK(BM_PlanRandomMix)->Arg(4)->Arg(64)->Arg(1024)->Arg(4096);
BENCHMARK(BM_SumRandomMix)->Arg(4)->Arg(64)->Arg(1024)->Arg(4096);

// Collects per-iteration times so ratios can be printed after the run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // With repetitions, keep the median aggregate; else the single run.
      const bool aggregate = run.run_type == Run::RT_Aggregate;
      if (aggregate && run.aggregate_name != "median") continue;
      const std::string name = run.run_name.str();
      if (!aggregate && repeated_.count(name)) continue;
      if (aggregate) repeated_[name] = true;
      ns_[name] = run.GetAdjustedRealTime();  // In the run's time unit: ns.
      auto it = run.counters.find("allocs_per_plan");
      if (it != run.counters.end()) allocs_[name] = it->second.value;
    }
  }

  void Summarize() const {
    std::printf("\nplanner vs baseline (same run%s):\n",
                repeated_.empty() ? "" : ", medians");
    for (const char* workload : {"Message", "RandomMix"}) {
      for (int n : {4, 64, 1024, 4096}) {
        const std::string arg = std::string(workload) + "/" + std::to_string(n);
        const std::string plan = "BM_Plan" + arg, base = "BM_Sum" + arg;
        if (!ns_.count(plan) || !ns_.count(base)) continue;
        std::printf(
            "  %-15s plan %8.1f ns %5.2f ns/iovec  baseline %7.1f ns  "
            "ratio %5.2fx  allocs/plan %.0f\n",
            arg.c_str(), ns_.at(plan), ns_.at(plan) / n, ns_.at(base),
            ns_.at(plan) / ns_.at(base), allocs_.at(plan));
      }
    }
  }

 private:
  std::map<std::string, double> ns_;
  std::map<std::string, double> allocs_;
  std::map<std::string, bool> repeated_;
};

}  // namespace
}  // namespace zcplan

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  zcplan::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.Summarize();
  benchmark::Shutdown();
  return 0;
}
