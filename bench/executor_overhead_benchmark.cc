// SPDX-License-Identifier: Apache-2.0
// The executor's own CPU cost per buffer, without a kernel: the user-space
// work that decides how close it comes to a raw liburing loop, which does no
// per-buffer work at all (bench/send_benchmark.cc).
//
//   bazel run -c opt //bench:executor_overhead_benchmark --
//       --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true
// (one line)
//
// The executor runs on `InstantRing`, a ring that completes every SQE in
// full the moment it is submitted (a zero-copy op with F_MORE and then its
// notification, reporting a copy as loopback does) and does nothing else: no
// bytes move, nothing is logged. Per message (the reference message of
// bench/send_benchmark.cc, size_aware, writev or sendmsg): Enqueue of the n
// buffers as one batch (prepared_*: EnqueueMessage of the message made a
// PreparedMessage once), then Poll(0) until every buffer is released
// through the batch release callback, exactly the calls
// bench/send_benchmark.cc times. `per_buffer` is CPU time over n; the ring's
// own share is a few stores per SQE and the sum of an op's iovec lengths (its
// result).
//
// Wall-clock runs of the send benchmark on a loaded 2-core machine swing by
// tens of percent; this one has no system calls and no other thread, so two
// builds of the executor compare to a few percent (run both binaries
// alternately).

#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "zcplan/bench/send_loops.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/ring.h"

namespace zcplan {
namespace {

// A ring whose every SQE succeeds in full at submit.
class InstantRing final : public Ring {
 public:
  InstantRing() : sqes_(kEntries), cqes_(kEntries * 4) {
    features_.send_zc = true;
    features_.sendmsg_zc = true;
    features_.zc_report_usage = true;
    features_.async_cancel_fd = true;
    features_.sq_entries = kEntries;
    features_.cq_entries = kEntries * 4;
    features_.memlock_charged = false;
  }

  const RingFeatures& features() const override { return features_; }
  uint32_t SqSpaceLeft() override { return kEntries - pending_; }
  io_uring_sqe* GetSqe() override {
    if (pending_ == kEntries) return nullptr;
    io_uring_sqe* sqe = &sqes_[pending_++];
    std::memset(sqe, 0, sizeof(*sqe));
    ++obtained_;
    return sqe;
  }
  int SubmitAndWait(uint32_t, int64_t) override {
    const int submitted = static_cast<int>(pending_);
    for (uint32_t i = 0; i < pending_; ++i) Complete(sqes_[i]);
    taken_ += pending_;
    pending_ = 0;
    return submitted;
  }
  size_t Reap(absl::Span<Completion> out) override {
    const size_t n = std::min(out.size(), ready_ - head_);
    std::copy(cqes_.begin() + head_, cqes_.begin() + head_ + n, out.begin());
    head_ += n;
    if (head_ == ready_) head_ = ready_ = 0;
    return n;
  }
  int RegisterBuffers(absl::Span<const iovec>) override { return -ENOTSUP; }
  uint32_t SqesObtained() override { return obtained_; }
  uint32_t SqesTaken() override { return taken_; }
  int AbortConnection(int) override { return 0; }
  int WatchFd() override { return -ENOTSUP; }
  void DrainWatchFd() override {}

 private:
  static constexpr uint32_t kEntries = 256;

  void Post(uint64_t user_data, int32_t res, uint32_t flags) {
    cqes_[ready_++] = Completion{user_data, res, flags};
  }
  static uint64_t Sum(const iovec* v, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; ++i) s += v[i].iov_len;
    return s;
  }
  void Complete(const io_uring_sqe& sqe) {
    uint64_t bytes = 0;
    bool zc = false;
    switch (sqe.opcode) {
      case IORING_OP_WRITEV:
        bytes = Sum(reinterpret_cast<const iovec*>(sqe.addr), sqe.len);
        break;
      case IORING_OP_SENDMSG_ZC:
        zc = true;
        [[fallthrough]];
      case IORING_OP_SENDMSG: {
        const msghdr* m = reinterpret_cast<const msghdr*>(sqe.addr);
        bytes = Sum(m->msg_iov, m->msg_iovlen);
        break;
      }
      case IORING_OP_SEND_ZC:
        zc = true;
        [[fallthrough]];
      case IORING_OP_SEND:
        bytes = sqe.len;
        break;
      default:  // NOP, cancel: nothing to send
        break;
    }
    const int32_t res = static_cast<int32_t>(bytes);
    if (!zc) {
      Post(sqe.user_data, res, 0);
      return;
    }
    Post(sqe.user_data, res, IORING_CQE_F_MORE);
    Post(sqe.user_data, static_cast<int32_t>(IORING_NOTIF_USAGE_ZC_COPIED),
         IORING_CQE_F_NOTIF);
  }

  RingFeatures features_;
  std::vector<io_uring_sqe> sqes_;
  std::vector<Completion> cqes_;
  uint32_t pending_ = 0;
  uint32_t obtained_ = 0;
  uint32_t taken_ = 0;
  size_t head_ = 0;
  size_t ready_ = 0;
};

void BM_ExecutorOverhead(benchmark::State& state, CopyOp copy_op,
                         bool prepared) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  const std::vector<uint64_t> lengths = *ReferenceMessageSizes(n);
  // The bytes are never read: one arena the size of the largest piece.
  static char arena[256 * 1024];
  std::vector<iovec> iovs;
  std::vector<uint64_t> tokens;
  for (uint32_t i = 0; i < n; ++i) {
    iovs.push_back({arena, lengths[i]});
    tokens.push_back(i);
  }
  std::shared_ptr<const PreparedMessage> message;
  if (prepared) message = *PreparedMessage::Create(iovs);
  // Attach wants a connected TCP socket; nothing is ever sent on it.
  bench::Loopback pair;
  if (absl::Status s = pair.Connect(64 * 1024); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  const int receiver = pair.ReleaseReceiver();
  uint64_t released = 0;
  bool failed = false;
  {
    ExecutorOptions options;
    options.on_release_batch = [&](ConnectionId, absl::Span<const uint64_t> t,
                                   const absl::Status& s) {
      released += t.size();
      failed |= !s.ok();
    };
    absl::StatusOr<std::unique_ptr<Executor>> made = Executor::CreateWithRing(
        std::make_unique<InstantRing>(), std::move(options));
    ConnectionOptions conn_options;
    conn_options.plan.copy_op = copy_op;
    absl::StatusOr<ConnectionId> conn =
        made.ok() ? (*made)->Attach(pair.sender(), conn_options)
                  : absl::StatusOr<ConnectionId>(made.status());
    if (!conn.ok()) {
      state.SkipWithError(conn.status().ToString().c_str());
    } else {
      Executor& executor = **made;
      uint64_t target = 0;
      for (auto _ : state) {
        if (!(prepared ? executor.EnqueueMessage(*conn, message, 0)
                       : executor.Enqueue(*conn, iovs, tokens))
                 .ok()) {
          failed = true;
          break;
        }
        target += prepared ? 1 : n;
        while (released < target && !failed) {
          if (!executor.Poll(absl::ZeroDuration()).ok()) failed = true;
        }
      }
      if (failed) state.SkipWithError("a send failed or was refused");
    }
  }
  close(receiver);
  state.counters["per_buffer"] = benchmark::Counter(
      static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                  benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * n);
}

BENCHMARK_CAPTURE(BM_ExecutorOverhead, writev, CopyOp::kWritev, false)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(2048);
BENCHMARK_CAPTURE(BM_ExecutorOverhead, sendmsg, CopyOp::kSendmsg, false)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(2048);
BENCHMARK_CAPTURE(BM_ExecutorOverhead, prepared_writev, CopyOp::kWritev, true)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(2048);
BENCHMARK_CAPTURE(BM_ExecutorOverhead, prepared_sendmsg, CopyOp::kSendmsg, true)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(2048);

}  // namespace
}  // namespace zcplan

BENCHMARK_MAIN();
