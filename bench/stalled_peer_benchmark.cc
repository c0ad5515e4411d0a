// SPDX-License-Identifier: Apache-2.0
// What one stalled peer costs the other connections on the same ring.
//
// Connection A's peer never reads: A's zero-copy bytes fill the executor's
// notification cap and their notifications never come. Connection B then
// sends 8 MiB per iteration (128 x 64 KiB, threshold 0, adaptive zero-copy
// off, as on a NIC that reports no copies) to a peer that reads everything.
// The baseline is B alone sending the same by copy (threshold never): the
// executor's promise is that B beside the stalled A is as fast as that.
//
//   bazel run -c opt //bench:stalled_peer_benchmark --
//       --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//   (one command line)
//
// Compare the medians of BM_BesideStalledPeer and BM_CopyAlone (bytes/s).

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"

namespace zcplan {
namespace {

constexpr size_t kPiece = 64 * 1024;
constexpr size_t kPieces = 128;  // 8 MiB per iteration
constexpr size_t kStalledPiece = 1 << 20;
constexpr size_t kStalledPieces = 16;  // more than the default cap

// Reads and discards everything `fd` delivers until stopped.
class Sink {
 public:
  explicit Sink(int fd) : thread_([this, fd] { Run(fd); }) {}
  ~Sink() {
    stop_ = true;
    thread_.join();
  }

 private:
  void Run(int fd) {
    std::vector<char> buf(1 << 18);
    while (!stop_) {
      pollfd pfd = {fd, POLLIN, 0};
      if (poll(&pfd, 1, 20) <= 0) continue;
      if (recv(fd, buf.data(), buf.size(), MSG_DONTWAIT) == 0) return;
    }
  }
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void Run(benchmark::State& state, bool stalled_neighbour) {
  signal(SIGPIPE, SIG_IGN);
  ExecutorOptions options;
  options.on_release_batch = [](ConnectionId, absl::Span<const uint64_t>,
                                const absl::Status&) {};
  options.teardown_timeout = absl::Milliseconds(100);
  absl::StatusOr<std::unique_ptr<Executor>> made = Executor::Create(options);
  if (!made.ok()) {
    state.SkipWithError(made.status().ToString().c_str());
    return;
  }
  Executor& executor = **made;
  absl::StatusOr<TcpPair> a = MakeTcpPair();
  absl::StatusOr<TcpPair> b = MakeTcpPair();
  if (!a.ok() || !b.ok()) {
    state.SkipWithError("cannot make loopback pairs");
    return;
  }
  ConnectionOptions zero_copy;
  zero_copy.plan.zc_threshold = 0;
  zero_copy.adaptive_zero_copy = false;
  ConnectionOptions copy;
  copy.plan.zc_threshold = PlanOptions::kNever;
  std::vector<char> stalled(
      stalled_neighbour ? kStalledPiece * kStalledPieces : 0, 'a');
  std::vector<char> data(kPiece * kPieces, 'b');
  std::vector<iovec> pieces;
  std::vector<uint64_t> tokens;
  for (size_t i = 0; i < kPieces; ++i) {
    pieces.push_back({data.data() + i * kPiece, kPiece});
    tokens.push_back(i);
  }
  if (stalled_neighbour) {
    absl::StatusOr<ConnectionId> ia = executor.Attach(a->client, zero_copy);
    if (!ia.ok()) {
      state.SkipWithError(ia.status().ToString().c_str());
      return;
    }
    for (size_t i = 0; i < kStalledPieces; ++i) {
      (void)executor.Enqueue(*ia, stalled.data() + i * kStalledPiece,
                             kStalledPiece, i);
    }
    const absl::Time settle = absl::Now() + absl::Milliseconds(200);
    while (absl::Now() < settle) (void)executor.Poll(absl::Milliseconds(20));
    state.counters["stalled_bytes_awaiting_notification"] = static_cast<double>(
        executor.stats().totals.bytes_awaiting_notification);
  }
  absl::StatusOr<ConnectionId> ib =
      executor.Attach(b->client, stalled_neighbour ? zero_copy : copy);
  if (!ib.ok()) {
    state.SkipWithError(ib.status().ToString().c_str());
    return;
  }
  Sink sink(b->server);
  const absl::Duration kIterationLimit = absl::Seconds(30);  // a hang guard
  for (auto _ : state) {
    if (!executor.Enqueue(*ib, pieces, tokens).ok()) {
      state.SkipWithError("Enqueue failed");
      break;
    }
    const absl::Time deadline = absl::Now() + kIterationLimit;
    while (!executor.Idle(*ib) && absl::Now() < deadline) {
      (void)executor.Poll(absl::Milliseconds(5));
    }
    if (!executor.Idle(*ib)) {
      state.SkipWithError("B did not finish within 30 s");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kPiece * kPieces));
  const SendStats sb = *executor.connection_stats(*ib);
  state.counters["cap_copies"] = static_cast<double>(sb.cap_copies);
  state.counters["cap_waits"] = static_cast<double>(sb.cap_waits);
  // A's memory may still be referenced after teardown (its peer never read):
  // then it must outlive the kernel's use, so it is kept for the life of the
  // process (reachable, so leak checkers do not flag it).
  if (!executor.Shutdown(absl::Milliseconds(100)).ok()) {
    static auto* kept = new std::vector<std::vector<char>>();
    kept->push_back(std::move(stalled));
  }
}

void BM_BesideStalledPeer(benchmark::State& state) { Run(state, true); }
void BM_CopyAlone(benchmark::State& state) { Run(state, false); }

BENCHMARK(BM_BesideStalledPeer)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CopyAlone)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zcplan

BENCHMARK_MAIN();
