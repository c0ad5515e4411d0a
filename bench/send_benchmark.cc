// Send throughput on loopback TCP: the executor under each zero-copy strategy,
// next to a hand-written liburing loop that submits the same SQEs.
//
//   bazel run -c opt //bench:send_benchmark -- --benchmark_repetitions=3
//       --benchmark_format=json --benchmark_out=/tmp/send.json
//   python3 bench/ratios.py /tmp/send.json
//
// Workload: the project's reference message (planner/simulate.h), 256 KiB:
// a 4 KiB header, two 64 KiB pieces at one and two thirds of the body, the
// rest of the body in n - 3 small pieces (n = 1: one 256 KiB buffer). Each
// piece starts on its own 64-byte line with a gap before the next, so no two
// pieces are contiguous. One message in flight per connection: enqueue its
// pieces, wait until every one is released, repeat. A thread of the same
// process receives with a plain recv loop and discards.
//
//   BM_Send/<strategy>[/<copy op>]/n:<n>   the executor (//uring:executor)
//     all_copy       zc_threshold kNever
//     all_zero_copy  zc_threshold 0: one sendmsg_zc per 1024 iovecs (the copy
//                    op is never used, so it has no copy-op variant)
//     size_aware     zc_threshold 16 KiB
//     adaptive       16 KiB with adaptive zero-copy on (off everywhere else;
//                    loopback always copies, so it turns zero-copy off early)
//   BM_Raw/size_aware/<copy op>/n:<n>  no zcplan code: a minimal liburing
//     loop submitting the SQEs the planner makes for size_aware (checked
//     against the planner once, outside the timed loop). It assumes no short
//     sends and stops with an error if one happens.
//   BM_Stream64K/<sender>  one 64 KiB buffer per message, as a stream of
//     send_zc ops (executor with threshold 0, or raw liburing) or of copying
//     sends (executor, kNever): compare with liburing's
//     examples/send-zerocopy.
//
// Counters: msgs_per_s and bytes_per_s (rates over real time); cpu_s_per_GB:
// user + system CPU seconds of the whole process (getrusage RUSAGE_SELF, so
// the sending thread, the receiver thread and the kernel work done in their
// context, e.g. the loopback receive path) over the timed loop, per 10^9
// bytes sent; ops_per_msg (SQEs); enters_per_msg (io_uring_enter calls; for
// the executor its submit_calls); short_sends (executor stats; the raw loop
// stops at the first one); zc_share (fraction of bytes sent by zero-copy
// ops); retrans (segments the sender retransmitted in the timed loop).
//
// Defaults added unless given on the command line: --benchmark_min_time=0.4
// (3 repetitions of everything take under two minutes here) and
// --benchmark_enable_random_interleaving=true (repetitions of different
// benchmarks are interleaved, so a burst of load on a shared machine does not
// land on one side of a ratio only).
//
// Sockets (--sockbuf=BYTES, default 524288): TCP_NODELAY on the sender;
// SO_SNDBUF and SO_RCVBUF set (the kernel doubles the value;
// net.core.wmem_max / rmem_max cap it) rather than autotuned, because
//   - autotuning starts the receive buffer at 128 KiB (tcp_rmem), which the
//     truesize of all_zero_copy's many small skbs overruns: the sender then
//     stalls on a 200 ms TCP timer (measured here at n=1024: 24, 208 or
//     414 ms per message from one run to the next), a timer, not a send path;
//   - large buffers let all_copy run megabytes ahead of the receiver (a copy
//     is released once queued), which then reads cache-cold data: at 4 MiB,
//     all_copy n=16 took 185 us per message against 66 us at 512 KiB.
// The raw loop assumes a message fits in the send buffer (no short writev).
// The retrans counter (TCP_INFO) shows any loss.
//
// Threads (--placement=same|spread|any, default same): both threads pinned
// to one CPU, to two, or left to the scheduler, during the timed loop. On
// this project's 2-vCPU VMs a cross-CPU wakeup is slow (size_aware n=16:
// 700 us per message spread, 78 us same, 96-127 us any), "any" flips between
// those from run to run, and a pinned CPU is one the scheduler moves other
// work off. With "same" the time per message is the whole CPU cost of
// sending and receiving it, which is what zero-copy is meant to cut.
//
// Exit status 1 when any benchmark failed for a reason other than io_uring or
// its zero-copy opcodes being unavailable (those are skipped with a reason).

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "planner/planner.h"
#include "planner/simulate.h"
#include "uring/executor.h"

// Debian 12 ships liburing 2.3, whose headers predate this (kernel 6.2).
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif

namespace zcplan {
namespace {

constexpr uint64_t kLargeBytes = 64 * 1024;
constexpr uint64_t kSizeAware = 16 * 1024;
constexpr int kPieceCounts[] = {1, 16, 64, 256, 1024, 2048};
// A message not done after this long is reported as stalled.
constexpr absl::Duration kStallTimeout = absl::Seconds(10);

int failures = 0;  // errors other than "io_uring unavailable"

void Fail(benchmark::State& state, const std::string& message) {
  ++failures;
  state.SkipWithError(message.c_str());
}

void Unavailable(benchmark::State& state, const std::string& message) {
  state.SkipWithError(message.c_str());
}

// Where the sending and receiving threads run (--placement).
enum class Placement { kSame, kSpread, kAny };
Placement placement = Placement::kSame;
int socket_buffer_bytes = 512 * 1024;  // --sockbuf

// The CPUs the process may use, as found at start (pinning changes them).
cpu_set_t allowed_cpus;

// Pins the calling thread to the `k`-th allowed CPU (wrapping around).
void PinThread(int k) {
  if (placement == Placement::kAny) return;
  const int count = CPU_COUNT(&allowed_cpus);
  if (count == 0) return;
  k %= count;
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed_cpus) || seen++ != k) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof(one), &one);
    return;
  }
}

// The receiver's CPU: the sender's (kSame) or the next one (kSpread).
int ReceiverCpu() { return placement == Placement::kSpread ? 1 : 0; }

// The sending thread pinned while in scope; the previous affinity after.
class PinnedScope {
 public:
  PinnedScope() { PinThread(0); }
  ~PinnedScope() {
    if (placement != Placement::kAny) {
      sched_setaffinity(0, sizeof(allowed_cpus), &allowed_cpus);
    }
  }
  PinnedScope(const PinnedScope&) = delete;
  PinnedScope& operator=(const PinnedScope&) = delete;
};

// The piece lengths of the reference message with `n` pieces (1 or >= 4).
std::vector<uint64_t> MessageLengths(int n) {
  return *ReferenceMessageSizes(static_cast<uint32_t>(n));
}

// The message's pieces in one arena, each on its own 64-byte line with at
// least 64 bytes between it and the next, filled and faulted in.
class Message {
 public:
  explicit Message(const std::vector<uint64_t>& lengths) {
    constexpr size_t kAlign = 64, kGap = 64;
    auto round_up = [](size_t v, size_t to) { return (v + to - 1) / to * to; };
    size_t total = 0;
    for (uint64_t len : lengths) total += round_up(len, kAlign) + kGap;
    arena_.reset(
        static_cast<char*>(std::aligned_alloc(4096, round_up(total, 4096))));
    size_t at = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      char* p = arena_.get() + at;
      std::memset(p, 'a' + static_cast<int>(i % 26), lengths[i]);
      iovs_.push_back(iovec{p, lengths[i]});
      bytes_ += lengths[i];
      at += round_up(lengths[i], kAlign) + kGap;
    }
  }

  const std::vector<iovec>& iovs() const { return iovs_; }
  uint64_t bytes() const { return bytes_; }

 private:
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, FreeDeleter> arena_;
  std::vector<iovec> iovs_;
  uint64_t bytes_ = 0;
};

// A connected loopback TCP pair and a thread that reads the receiving end
// until EOF, discarding.
class Loopback {
 public:
  Loopback() = default;
  Loopback(const Loopback&) = delete;
  Loopback& operator=(const Loopback&) = delete;
  ~Loopback() {
    if (thread_.joinable()) {
      shutdown(sender_, SHUT_RDWR);
      thread_.join();
    }
    if (sender_ >= 0) close(sender_);
    if (receiver_ >= 0) close(receiver_);
  }

  absl::Status Open() {
    auto fail = [](const char* what) {
      return absl::ErrnoToStatus(errno, absl::StrCat("loopback pair: ", what));
    };
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) return fail("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      const absl::Status s = fail("bind/listen");
      close(listener);
      return s;
    }
    sender_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    if (sender_ < 0 ||
        setsockopt(sender_, SOL_SOCKET, SO_SNDBUF, &socket_buffer_bytes,
                   sizeof(socket_buffer_bytes)) != 0 ||
        setsockopt(sender_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        connect(sender_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0) {
      const absl::Status s = fail("sender socket");
      close(listener);
      return s;
    }
    receiver_ = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    close(listener);
    if (receiver_ < 0) return fail("accept");
    if (setsockopt(receiver_, SOL_SOCKET, SO_RCVBUF, &socket_buffer_bytes,
                   sizeof(socket_buffer_bytes)) != 0) {
      return fail("SO_RCVBUF");
    }
    thread_ = std::thread([this] {
      PinThread(ReceiverCpu());
      std::vector<char> scratch(256 * 1024);
      uint64_t total = 0;
      for (;;) {
        const ssize_t r = recv(receiver_, scratch.data(), scratch.size(), 0);
        if (r > 0) {
          total += static_cast<uint64_t>(r);
        } else if (r < 0 && errno == EINTR) {
          continue;
        } else {
          break;
        }
      }
      received_ = total;
    });
    return absl::OkStatus();
  }

  int sender() const { return sender_; }

  // Segments the sending side retransmitted so far (TCP_INFO).
  uint64_t Retransmits() const {
    tcp_info info{};
    socklen_t len = sizeof(info);
    if (getsockopt(sender_, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
    return info.tcpi_total_retrans;
  }

  // Ends the stream and waits for the receiver; returns the bytes it read.
  uint64_t Finish() {
    shutdown(sender_, SHUT_WR);
    thread_.join();
    return received_;
  }

 private:
  int sender_ = -1;
  int receiver_ = -1;
  std::thread thread_;
  uint64_t received_ = 0;  // written by the thread before it ends
};

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) +
           static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

struct Measured {
  double cpu_seconds = 0;
  uint64_t ops = 0;
  uint64_t enters = 0;
  uint64_t short_sends = 0;
  uint64_t retransmits = 0;
  uint64_t bytes_zero_copy = 0;
};

void SetCounters(benchmark::State& state, uint64_t message_bytes,
                 const Measured& m) {
  using benchmark::Counter;
  const double msgs = static_cast<double>(state.iterations());
  const double bytes = msgs * static_cast<double>(message_bytes);
  state.counters["msgs_per_s"] = Counter(msgs, Counter::kIsRate);
  state.counters["bytes_per_s"] =
      Counter(bytes, Counter::kIsRate, Counter::kIs1024);
  state.counters["cpu_s_per_GB"] = m.cpu_seconds / (bytes / 1e9);
  state.counters["ops_per_msg"] = static_cast<double>(m.ops) / msgs;
  state.counters["enters_per_msg"] = static_cast<double>(m.enters) / msgs;
  state.counters["short_sends"] = static_cast<double>(m.short_sends);
  state.counters["retrans"] = static_cast<double>(m.retransmits);
  state.counters["zc_share"] = static_cast<double>(m.bytes_zero_copy) / bytes;
}

// ---------------------------------------------------------------------------
// The executor

struct Strategy {
  uint64_t zc_threshold;
  CopyOp copy_op;
  bool adaptive;
};

void RunExecutor(benchmark::State& state, const Strategy& strategy,
                 const std::vector<uint64_t>& lengths) {
  const Message message(lengths);
  const std::vector<iovec>& iovs = message.iovs();
  uint64_t released = 0;
  std::string failure;
  ExecutorOptions options;
  // The batch forms of Enqueue and of the release callback: one call per
  // message and per run of released buffers, not one per buffer.
  options.on_release_batch = [&](ConnectionId, absl::Span<const uint64_t> t,
                                 const absl::Status& s) {
    released += t.size();
    if (!s.ok() && failure.empty()) failure = s.ToString();
  };
  std::vector<uint64_t> tokens(iovs.size());
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = i;
  absl::StatusOr<std::unique_ptr<Executor>> made = Executor::Create(options);
  if (!made.ok()) {
    Unavailable(state, "io_uring unavailable: " + made.status().ToString());
    return;
  }
  std::unique_ptr<Executor>& executor = *made;
  const RingFeatures& features = executor->features();
  if (strategy.zc_threshold != PlanOptions::kNever &&
      !(features.send_zc && features.sendmsg_zc)) {
    Unavailable(state,
                "io_uring unavailable: the kernel lacks IORING_OP_SEND_ZC / "
                "IORING_OP_SENDMSG_ZC");
    return;
  }
  Loopback link;
  if (absl::Status s = link.Open(); !s.ok()) {
    Fail(state, s.ToString());
    return;
  }
  ConnectionOptions conn_options;
  conn_options.plan.zc_threshold = strategy.zc_threshold;
  conn_options.plan.copy_op = strategy.copy_op;
  conn_options.adaptive_zero_copy = strategy.adaptive;
  absl::StatusOr<ConnectionId> conn =
      executor->Attach(link.sender(), conn_options);
  if (!conn.ok()) {
    Fail(state, conn.status().ToString());
    return;
  }

  const PinnedScope pinned;
  const RingStats before = executor->stats();
  const uint64_t retrans_before = link.Retransmits();
  const double cpu_before = ProcessCpuSeconds();
  uint64_t target = 0;
  for (auto _ : state) {
    if (absl::Status s = executor->Enqueue(*conn, iovs, tokens); !s.ok()) {
      failure = s.ToString();
    } else {
      target += iovs.size();
    }
    absl::Time deadline = absl::InfiniteFuture();
    while (released < target) {
      absl::StatusOr<size_t> n = executor->Poll(absl::Seconds(1));
      if (!n.ok()) {
        failure = n.status().ToString();
        break;
      }
      if (*n > 0) {
        deadline = absl::InfiniteFuture();
      } else if (deadline == absl::InfiniteFuture()) {
        deadline = absl::Now() + kStallTimeout;
      } else if (absl::Now() > deadline) {
        failure = absl::StrCat("stalled: ", released, " of ", target,
                               " buffers released");
        break;
      }
    }
    if (!failure.empty()) {
      Fail(state, failure);
      break;
    }
  }
  Measured m;
  m.cpu_seconds = ProcessCpuSeconds() - cpu_before;
  const RingStats after = executor->stats();
  for (int k = 0; k < kNumOpKinds; ++k) {
    m.ops += after.totals.ops[k] - before.totals.ops[k];
  }
  m.enters = after.submit_calls - before.submit_calls;
  m.short_sends = after.totals.short_sends - before.totals.short_sends;
  m.retransmits = link.Retransmits() - retrans_before;
  m.bytes_zero_copy =
      after.totals.bytes_zero_copy - before.totals.bytes_zero_copy;
  const uint64_t sent =
      after.totals.bytes_copied + after.totals.bytes_zero_copy;
  executor.reset();
  const uint64_t received = link.Finish();
  if (!failure.empty()) return;
  if (received != sent ||
      sent != static_cast<uint64_t>(state.iterations()) * message.bytes()) {
    Fail(state, absl::StrCat("byte count mismatch: ", state.iterations(),
                             " messages of ", message.bytes(), " bytes, ", sent,
                             " sent, ", received, " received"));
    return;
  }
  SetCounters(state, message.bytes(), m);
}

// ---------------------------------------------------------------------------
// The baseline: plain liburing, no zcplan code in the loop.

enum class RawKind { kWritev, kSendmsg, kSend, kSendmsgZc, kSendZc };

struct RawOp {
  RawKind kind;
  size_t first;
  size_t count;
  uint64_t bytes;
};

// Size-aware grouping, written out: consecutive pieces below `threshold`
// form one copy op, consecutive ones at or above it one zero-copy op, a
// group of one uses send / send_zc; at most 1024 iovecs per op.
std::vector<RawOp> GroupBySize(const std::vector<iovec>& iovs,
                               uint64_t threshold, bool writev) {
  std::vector<RawOp> ops;
  size_t i = 0;
  while (i < iovs.size()) {
    const bool zc = iovs[i].iov_len >= threshold;
    RawOp op{RawKind::kSend, i, 0, 0};
    while (i < iovs.size() && (iovs[i].iov_len >= threshold) == zc &&
           op.count < 1024) {
      op.bytes += iovs[i].iov_len;
      ++op.count;
      ++i;
    }
    if (zc) {
      op.kind = op.count == 1 ? RawKind::kSendZc : RawKind::kSendmsgZc;
    } else if (op.count == 1) {
      op.kind = RawKind::kSend;
    } else {
      op.kind = writev ? RawKind::kWritev : RawKind::kSendmsg;
    }
    ops.push_back(op);
  }
  return ops;
}

// Outside the timed loop: the baseline must submit what the executor would.
absl::Status CheckAgainstPlanner(const std::vector<iovec>& iovs,
                                 const std::vector<RawOp>& ops,
                                 CopyOp copy_op) {
  PlanOptions options;
  options.zc_threshold = kSizeAware;
  options.copy_op = copy_op;
  absl::StatusOr<Plan> plan = PlanChain(iovs, 0, options);
  if (!plan.ok()) return plan.status();
  const auto& planned = plan->ops();
  bool same = plan->complete() && planned.size() == ops.size();
  for (size_t i = 0; same && i < ops.size(); ++i) {
    same = static_cast<int>(planned[i].kind) == static_cast<int>(ops[i].kind) &&
           planned[i].first_iov == ops[i].first &&
           planned[i].iov_count == ops[i].count &&
           planned[i].bytes == ops[i].bytes && planned[i].offset == 0;
  }
  if (!same) {
    return absl::InternalError(
        "the baseline's ops differ from the planner's for this message");
  }
  return absl::OkStatus();
}

const char* RawKindName(RawKind kind) {
  switch (kind) {
    case RawKind::kWritev:
      return "writev";
    case RawKind::kSendmsg:
      return "sendmsg";
    case RawKind::kSend:
      return "send";
    case RawKind::kSendmsgZc:
      return "sendmsg_zc";
    case RawKind::kSendZc:
      return "send_zc";
  }
  return "?";
}

void RunRaw(benchmark::State& state, CopyOp copy_op,
            const std::vector<uint64_t>& lengths) {
  const Message message(lengths);
  const std::vector<iovec>& iovs = message.iovs();
  const std::vector<RawOp> ops =
      GroupBySize(iovs, kSizeAware, copy_op == CopyOp::kWritev);
  if (absl::Status s = CheckAgainstPlanner(iovs, ops, copy_op); !s.ok()) {
    Fail(state, s.ToString());
    return;
  }

  // The executor's ring setup: SUBMIT_ALL, SINGLE_ISSUER | DEFER_TASKRUN, a
  // completion queue 8x the submission queue.
  io_uring ring;
  int ret = -EINVAL;
  for (uint32_t extra : {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                             IORING_SETUP_DEFER_TASKRUN,
                         0u}) {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE | extra;
    params.cq_entries = 256 * 8;
    ret = io_uring_queue_init_params(256, &ring, &params);
    if (ret != -EINVAL) break;
  }
  if (ret < 0) {
    Unavailable(state,
                absl::StrCat("io_uring unavailable: ", std::strerror(-ret)));
    return;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  const bool zc_ok = probe != nullptr &&
                     io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) &&
                     io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!zc_ok) {
    io_uring_queue_exit(&ring);
    Unavailable(state,
                "io_uring unavailable: the kernel lacks IORING_OP_SEND_ZC / "
                "IORING_OP_SENDMSG_ZC");
    return;
  }
  Loopback link;
  if (absl::Status s = link.Open(); !s.ok()) {
    io_uring_queue_exit(&ring);
    Fail(state, s.ToString());
    return;
  }
  const int fd = link.sender();
  std::vector<msghdr> msgs(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    msgs[i].msg_iov = const_cast<iovec*>(&iovs[ops[i].first]);
    msgs[i].msg_iovlen = ops[i].count;
  }
  constexpr int kFlags = MSG_WAITALL | MSG_NOSIGNAL;
  std::vector<bool> awaiting_notif(ops.size());

  std::string failure;
  uint64_t enters = 0, zc_bytes = 0, sent = 0;
  const PinnedScope pinned;
  const uint64_t retrans_before = link.Retransmits();
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    for (size_t i = 0; i < ops.size(); ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);  // never full: <= 5 ops
      const iovec& first = iovs[ops[i].first];
      switch (ops[i].kind) {
        case RawKind::kWritev:
          io_uring_prep_writev(sqe, fd, &first,
                               static_cast<unsigned>(ops[i].count), 0);
          break;
        case RawKind::kSendmsg:
          io_uring_prep_sendmsg(sqe, fd, &msgs[i], kFlags);
          break;
        case RawKind::kSend:
          io_uring_prep_send(sqe, fd, first.iov_base, first.iov_len, kFlags);
          break;
        case RawKind::kSendZc:
          io_uring_prep_send_zc(sqe, fd, first.iov_base, first.iov_len, kFlags,
                                IORING_SEND_ZC_REPORT_USAGE);
          break;
        case RawKind::kSendmsgZc:
          io_uring_prep_sendmsg_zc(sqe, fd, &msgs[i], kFlags);
          sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
          break;
      }
      if (i + 1 < ops.size()) sqe->flags |= IOSQE_IO_LINK;
      sqe->user_data = i;
    }
    // Every op's first completion, then a notification for each that said
    // F_MORE; only then may the buffers be written again.
    size_t sends_pending = ops.size(), notifs_pending = 0;
    std::fill(awaiting_notif.begin(), awaiting_notif.end(), false);
    absl::Time deadline = absl::InfiniteFuture();
    while (sends_pending + notifs_pending > 0) {
      __kernel_timespec ts{1, 0};  // as the executor's Poll(absl::Seconds(1))
      io_uring_cqe* cqe = nullptr;
      ++enters;
      ret = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
      if (ret < 0 && ret != -ETIME && ret != -EINTR) {
        failure = absl::StrCat("io_uring_submit_and_wait_timeout: ",
                               std::strerror(-ret));
        break;
      }
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        ++seen;
        const size_t i = cqe->user_data;
        if (cqe->flags & IORING_CQE_F_NOTIF) {
          // A cancelled zero-copy op can post one without having said
          // F_MORE (docs/kernel.md): count only those announced.
          if (awaiting_notif[i]) --notifs_pending;
          awaiting_notif[i] = false;
          continue;
        }
        --sends_pending;
        const RawOp& op = ops[i];
        if (cqe->flags & IORING_CQE_F_MORE) {
          awaiting_notif[i] = true;
          ++notifs_pending;
        }
        if (cqe->res == static_cast<int>(op.bytes)) {
          sent += op.bytes;
          if (op.kind == RawKind::kSendZc || op.kind == RawKind::kSendmsgZc) {
            zc_bytes += op.bytes;
          }
        } else if (failure.empty()) {
          // Not handled here: the executor re-plans from the byte reached.
          failure = absl::StrCat(
              RawKindName(op.kind), " of ", op.bytes, " bytes completed with ",
              cqe->res < 0 ? std::strerror(-cqe->res)
                           : absl::StrCat(cqe->res, " bytes").c_str(),
              "; the baseline does not handle short sends");
        }
      }
      io_uring_cq_advance(&ring, seen);
      if (seen > 0) {
        deadline = absl::InfiniteFuture();
      } else if (deadline == absl::InfiniteFuture()) {
        deadline = absl::Now() + kStallTimeout;
      } else if (absl::Now() > deadline) {
        failure = absl::StrCat(
            "stalled waiting for completions: ", sends_pending, " sends and ",
            notifs_pending, " notifications pending; last ret ", ret);
        break;
      }
    }
    if (!failure.empty()) {
      Fail(state, failure);
      break;
    }
  }
  Measured m;
  m.cpu_seconds = ProcessCpuSeconds() - cpu_before;
  m.ops = static_cast<uint64_t>(state.iterations()) * ops.size();
  m.enters = enters;
  m.bytes_zero_copy = zc_bytes;
  m.retransmits = link.Retransmits() - retrans_before;
  io_uring_queue_exit(&ring);
  const uint64_t received = link.Finish();
  if (!failure.empty()) return;
  if (received != sent ||
      sent != static_cast<uint64_t>(state.iterations()) * message.bytes()) {
    Fail(state, absl::StrCat("byte count mismatch: ", state.iterations(),
                             " messages of ", message.bytes(), " bytes, ", sent,
                             " sent, ", received, " received"));
    return;
  }
  SetCounters(state, message.bytes(), m);
}

// ---------------------------------------------------------------------------
// Registration

void RegisterAll() {
  struct Named {
    const char* name;
    uint64_t zc_threshold;
    bool adaptive;
    bool uses_copy_op;
  };
  const Named strategies[] = {
      {"all_copy", PlanOptions::kNever, false, true},
      {"all_zero_copy", 0, false, false},
      {"size_aware", kSizeAware, false, true},
      {"adaptive", kSizeAware, true, true},
  };
  auto add_args = [](benchmark::internal::Benchmark* b) {
    for (int n : kPieceCounts) b->Arg(n);
    b->ArgName("n")->UseRealTime()->Unit(benchmark::kMicrosecond);
  };
  for (const Named& s : strategies) {
    for (CopyOp copy_op : {CopyOp::kWritev, CopyOp::kSendmsg}) {
      if (!s.uses_copy_op && copy_op != CopyOp::kWritev) continue;
      std::string name = absl::StrCat("BM_Send/", s.name);
      if (s.uses_copy_op) absl::StrAppend(&name, "/", CopyOpName(copy_op));
      const Strategy strategy{s.zc_threshold, copy_op, s.adaptive};
      add_args(benchmark::RegisterBenchmark(
          name.c_str(), [strategy](benchmark::State& state) {
            RunExecutor(state, strategy,
                        MessageLengths(static_cast<int>(state.range(0))));
          }));
    }
  }
  for (CopyOp copy_op : {CopyOp::kWritev, CopyOp::kSendmsg}) {
    const std::string name =
        absl::StrCat("BM_Raw/size_aware/", CopyOpName(copy_op));
    add_args(benchmark::RegisterBenchmark(
        name.c_str(), [copy_op](benchmark::State& state) {
          RunRaw(state, copy_op,
                 MessageLengths(static_cast<int>(state.range(0))));
        }));
  }

  const std::vector<uint64_t> one_64k = {kLargeBytes};
  benchmark::RegisterBenchmark(
      "BM_Stream64K/executor_send_zc",
      [one_64k](benchmark::State& state) {
        RunExecutor(state, Strategy{0, CopyOp::kWritev, false}, one_64k);
      })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_Stream64K/raw_send_zc",
                               [one_64k](benchmark::State& state) {
                                 RunRaw(state, CopyOp::kWritev, one_64k);
                               })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(
      "BM_Stream64K/executor_send",
      [one_64k](benchmark::State& state) {
        RunExecutor(state,
                    Strategy{PlanOptions::kNever, CopyOp::kWritev, false},
                    one_64k);
      })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace zcplan

int main(int argc, char** argv) {
  // Defaults that the command line can override (a later flag wins).
  std::vector<char*> args(argv, argv + argc);
  const std::pair<const char*, char*> defaults[] = {
      {"--benchmark_min_time=", const_cast<char*>("--benchmark_min_time=0.4")},
      {"--benchmark_enable_random_interleaving=",
       const_cast<char*>("--benchmark_enable_random_interleaving=true")},
  };
  for (const auto& [prefix, flag] : defaults) {
    bool given = false;
    for (int i = 1; i < argc; ++i) {
      given |= std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0;
    }
    if (!given) args.insert(args.begin() + 1, flag);
  }
  // This program's own flags, taken out before Google Benchmark sees them.
  for (size_t i = 1; i < args.size();) {
    const std::string arg = args[i];
    if (arg == "--placement=same" || arg == "--placement=spread" ||
        arg == "--placement=any") {
      zcplan::placement = arg == "--placement=same" ? zcplan::Placement::kSame
                          : arg == "--placement=spread"
                              ? zcplan::Placement::kSpread
                              : zcplan::Placement::kAny;
    } else if (arg.rfind("--sockbuf=", 0) == 0) {
      zcplan::socket_buffer_bytes = std::atoi(arg.c_str() + 10);
      if (zcplan::socket_buffer_bytes <= 0) {
        std::fprintf(stderr, "--sockbuf needs a positive byte count\n");
        return 2;
      }
    } else if (arg.rfind("--placement", 0) == 0) {
      std::fprintf(stderr, "--placement takes same, spread or any\n");
      return 2;
    } else {
      ++i;
      continue;
    }
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
  }
  if (sched_getaffinity(0, sizeof(zcplan::allowed_cpus),
                        &zcplan::allowed_cpus) != 0) {
    zcplan::placement = zcplan::Placement::kAny;
  }
  if (zcplan::placement == zcplan::Placement::kSpread &&
      CPU_COUNT(&zcplan::allowed_cpus) < 2) {
    std::fprintf(stderr, "--placement=spread needs two CPUs\n");
    return 2;
  }
  benchmark::AddCustomContext(
      "placement", zcplan::placement == zcplan::Placement::kSame     ? "same"
                   : zcplan::placement == zcplan::Placement::kSpread ? "spread"
                                                                     : "any");
  benchmark::AddCustomContext("sockbuf",
                              std::to_string(zcplan::socket_buffer_bytes));
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  zcplan::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return zcplan::failures > 0 ? 1 : 0;
}
