// SPDX-License-Identifier: Apache-2.0
// Send throughput on loopback TCP: the executor under each zero-copy strategy,
// next to a hand-written liburing loop that submits the same SQEs.
//
//   bazel run -c opt //bench:send_benchmark -- --benchmark_repetitions=5
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
// The send loops themselves are in bench/send_loops.h, shared with
// bench/send_callgrind.cc (instructions per buffer, bench/callgrind.sh).
//
//   BM_Send/<strategy>[/<copy op>]/n:<n>   the executor (//uring:executor)
//     on a ring of its own (Executor::Create), Enqueue then Poll
//     all_copy       zc_threshold kNever
//     all_zero_copy  zc_threshold 0: one sendmsg_zc per 1024 iovecs (the copy
//                    op is never used, so it has no copy-op variant)
//     size_aware     zc_threshold 16 KiB
//     adaptive       16 KiB with adaptive zero-copy on (off everywhere else;
//                    loopback always copies, so it turns zero-copy off early,
//                    and looks again after 4096 chains, the wait doubling)
//     adaptive_no_retry  the same, never looking again
//                    (adaptive_retry_chains 0): what looking again costs
//   BM_SendShared/size_aware/<copy op>/n:<n>  the executor on the caller's
//     ring (Executor::CreateOnRing, user_data_tag 0x5a): the benchmark sets
//     up the ring with the executor's own flags (SUBMIT_ALL, SINGLE_ISSUER |
//     DEFER_TASKRUN where the kernel has them, CQ 8x SQ) and runs the loop:
//     Enqueue, Prepare, then io_uring_submit_and_wait_timeout, peek a batch,
//     Owns / HandleCompletion each CQE, Prepare, until all are released (one
//     io_uring_enter per round, as the raw loop).
//   BM_SendPrepared/size_aware/<copy op>/n:<n> and
//   BM_SendSharedPrepared/...  the same two modes with the message made a
//     PreparedMessage once, outside the timed loop, and queued with
//     EnqueueMessage: one token per message, nothing done per buffer.
//   BM_Raw/size_aware/<copy op>/n:<n>  no zcplan code: a minimal liburing
//     loop on a ring set up the same way, submitting the SQEs the planner
//     makes for size_aware (checked against the planner once, outside the
//     timed loop). It assumes no short sends and stops with an error if one
//     happens.
//   BM_RawPerBuffer/size_aware/<copy op>/n:<n>  the raw loop plus the
//     executor's per-buffer passes beside it (a send queue's push and
//     release, PlanChain, LayOutOp; bench/send_loops.h kRawPerBuffer): the
//     executor against it shows what its work per message costs, it against
//     the raw loop what the work per buffer costs.
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
// the executor its submit_calls, plus the loop's own waits on the caller's
// ring); short_sends (executor stats; the raw loop
// stops at the first one); zc_share (fraction of bytes sent by zero-copy
// ops); retrans (segments the sender retransmitted in the timed loop).
//
// Defaults added unless given on the command line: --benchmark_min_time=0.4
// (5 repetitions of the 12 size_aware benchmarks at n=1024 and 2048 take
// under a minute here) and
// --benchmark_enable_random_interleaving=true (repetitions of different
// benchmarks are interleaved, so a burst of load on a shared machine does not
// land on one side of a ratio only).
//
// Sockets (--sockbuf=SIZE, default 512K): TCP_NODELAY on the sender;
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

#include <sched.h>
#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "zcplan/bench/send_loops.h"
#include "zcplan/planner/flag_types.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tools/flags.h"

namespace zcplan {

// Where the sending and receiving threads run (--placement): "same",
// "spread" or "any".
enum class Placement { kSame, kSpread, kAny };

constexpr std::pair<Placement, absl::string_view> kPlacements[] = {
    {Placement::kSame, "same"},
    {Placement::kSpread, "spread"},
    {Placement::kAny, "any"}};

bool AbslParseFlag(absl::string_view text, Placement* value,
                   std::string* error) {
  for (const auto& [p, name] : kPlacements) {
    if (text != name) continue;
    *value = p;
    return true;
  }
  *error = absl::StrCat("bad placement '", text, "': same, spread or any");
  return false;
}

std::string AbslUnparseFlag(Placement value) {
  for (const auto& [p, name] : kPlacements) {
    if (p == value) return std::string(name);
  }
  return "?";
}

}  // namespace zcplan

ABSL_FLAG(zcplan::Placement, placement, zcplan::Placement::kSame,
          "where the sending and receiving threads run");
ABSL_FLAG(zcplan::ByteSize, sockbuf, zcplan::ByteSize{512 * 1024},
          "SO_SNDBUF and SO_RCVBUF of the loopback pair");

namespace zcplan {
namespace {

using bench::kSizeAware;
using bench::MessageLengths;
using bench::SenderConfig;
using bench::SenderKind;
using bench::SenderTotals;

constexpr uint64_t kLargeBytes = 64 * 1024;
constexpr int kPieceCounts[] = {1, 16, 64, 256, 1024, 2048};

int failures = 0;  // errors other than "io_uring unavailable"

void Fail(benchmark::State& state, const std::string& message) {
  ++failures;
  state.SkipWithError(message.c_str());
}

void Unavailable(benchmark::State& state, const std::string& message) {
  state.SkipWithError(message.c_str());
}

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

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) +
           static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

void SetCounters(benchmark::State& state, uint64_t message_bytes,
                 double cpu_seconds, const SenderTotals& m,
                 uint64_t retransmits) {
  using benchmark::Counter;
  const double msgs = static_cast<double>(state.iterations());
  const double bytes = msgs * static_cast<double>(message_bytes);
  state.counters["msgs_per_s"] = Counter(msgs, Counter::kIsRate);
  state.counters["bytes_per_s"] =
      Counter(bytes, Counter::kIsRate, Counter::kIs1024);
  state.counters["cpu_s_per_GB"] = cpu_seconds / (bytes / 1e9);
  state.counters["ops_per_msg"] = static_cast<double>(m.ops) / msgs;
  state.counters["enters_per_msg"] = static_cast<double>(m.enters) / msgs;
  state.counters["short_sends"] = static_cast<double>(m.short_sends);
  state.counters["retrans"] = static_cast<double>(retransmits);
  state.counters["zc_share"] = static_cast<double>(m.bytes_zero_copy) / bytes;
}

// One message in flight: each iteration sends the whole message and waits
// until every buffer may be written again (bench/send_loops.h).
void RunSender(benchmark::State& state, const SenderConfig& config,
               const std::vector<uint64_t>& lengths) {
  const bench::Message message(lengths);
  bench::Loopback link;
  if (absl::Status s =
          link.Open(socket_buffer_bytes, [] { PinThread(ReceiverCpu()); });
      !s.ok()) {
    Fail(state, s.ToString());
    return;
  }
  absl::StatusOr<std::unique_ptr<bench::Sender>> made =
      bench::MakeSender(config, message, link.sender());
  if (!made.ok()) {
    if (absl::IsUnavailable(made.status())) {
      Unavailable(state, std::string(made.status().message()));
    } else {
      Fail(state, made.status().ToString());
    }
    return;
  }
  std::unique_ptr<bench::Sender>& sender = *made;

  bool failed = false;
  const PinnedScope pinned;
  const SenderTotals before = sender->totals();
  const uint64_t retrans_before = link.Retransmits();
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    if (absl::Status s = sender->SendMessage(); !s.ok()) {
      Fail(state, s.ToString());
      failed = true;
      break;
    }
  }
  const double cpu_seconds = ProcessCpuSeconds() - cpu_before;
  const uint64_t retransmits = link.Retransmits() - retrans_before;
  const SenderTotals after = sender->totals();
  SenderTotals m;
  m.ops = after.ops - before.ops;
  m.enters = after.enters - before.enters;
  m.short_sends = after.short_sends - before.short_sends;
  m.bytes_zero_copy = after.bytes_zero_copy - before.bytes_zero_copy;
  const uint64_t sent = after.bytes_sent;
  sender.reset();
  const uint64_t received = link.Finish();
  if (failed) return;
  if (received != sent ||
      sent != static_cast<uint64_t>(state.iterations()) * message.bytes()) {
    Fail(state, absl::StrCat("byte count mismatch: ", state.iterations(),
                             " messages of ", message.bytes(), " bytes, ", sent,
                             " sent, ", received, " received"));
    return;
  }
  SetCounters(state, message.bytes(), cpu_seconds, m, retransmits);
}

// ---------------------------------------------------------------------------
// Registration

void RegisterAll() {
  struct Named {
    const char* name;
    uint64_t zc_threshold;
    bool adaptive;
    bool uses_copy_op;
    uint32_t retry_chains = 4096;
  };
  const Named strategies[] = {
      {"all_copy", PlanOptions::kNever, false, true},
      {"all_zero_copy", 0, false, false},
      {"size_aware", kSizeAware, false, true},
      {"adaptive", kSizeAware, true, true},
      {"adaptive_no_retry", kSizeAware, true, true, 0},
  };
  auto add = [](const std::string& name, const SenderConfig& config,
                std::vector<uint64_t> fixed_lengths) {
    benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(
        name.c_str(), [config, fixed_lengths](benchmark::State& state) {
          RunSender(state, config,
                    fixed_lengths.empty()
                        ? MessageLengths(static_cast<int>(state.range(0)))
                        : fixed_lengths);
        });
    if (fixed_lengths.empty()) {
      for (int n : kPieceCounts) b->Arg(n);
      b->ArgName("n");
    }
    b->UseRealTime()->Unit(benchmark::kMicrosecond);
  };
  for (const Named& s : strategies) {
    for (CopyOp copy_op : {CopyOp::kWritev, CopyOp::kSendmsg}) {
      if (!s.uses_copy_op && copy_op != CopyOp::kWritev) continue;
      std::string name = absl::StrCat("BM_Send/", s.name);
      if (s.uses_copy_op) absl::StrAppend(&name, "/", CopyOpName(copy_op));
      add(name,
          SenderConfig{SenderKind::kExecutor, s.zc_threshold, copy_op,
                       s.adaptive, s.retry_chains},
          {});
    }
  }
  // The strategy the raw loop has a twin of, in the other two modes.
  for (CopyOp copy_op : {CopyOp::kWritev, CopyOp::kSendmsg}) {
    const std::string suffix =
        absl::StrCat("/size_aware/", CopyOpName(copy_op));
    add("BM_SendShared" + suffix,
        SenderConfig{SenderKind::kShared, kSizeAware, copy_op, false}, {});
    SenderConfig prepared{SenderKind::kExecutor, kSizeAware, copy_op, false};
    prepared.prepared = true;
    add("BM_SendPrepared" + suffix, prepared, {});
    prepared.kind = SenderKind::kShared;
    add("BM_SendSharedPrepared" + suffix, prepared, {});
    add("BM_Raw" + suffix,
        SenderConfig{SenderKind::kRaw, kSizeAware, copy_op, false}, {});
    add("BM_RawPerBuffer" + suffix,
        SenderConfig{SenderKind::kRawPerBuffer, kSizeAware, copy_op, false},
        {});
  }

  const std::vector<uint64_t> one_64k = {kLargeBytes};
  add("BM_Stream64K/executor_send_zc",
      SenderConfig{SenderKind::kExecutor, 0, CopyOp::kWritev, false}, one_64k);
  add("BM_Stream64K/raw_send_zc",
      SenderConfig{SenderKind::kRaw, kSizeAware, CopyOp::kWritev, false},
      one_64k);
  add("BM_Stream64K/executor_send",
      SenderConfig{SenderKind::kExecutor, PlanOptions::kNever, CopyOp::kWritev,
                   false},
      one_64k);
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
  // This program's own flags (with a value after them when not given as
  // --flag=value), taken out before Google Benchmark sees them.
  std::vector<std::string> own;
  for (size_t i = 1; i < args.size();) {
    const std::string arg = args[i];
    const bool ours =
        arg.rfind("--placement", 0) == 0 || arg.rfind("--sockbuf", 0) == 0;
    if (!ours) {
      ++i;
      continue;
    }
    own.push_back(arg);
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
    if (arg.find('=') == std::string::npos && i < args.size()) {
      own.push_back(args[i]);
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  constexpr absl::string_view kOwnFlags[] = {"placement", "sockbuf"};
  const absl::Status parsed =
      zcplan::ParseFlags(
          own, kOwnFlags, {"send_benchmark", "", false},
          [](const zcplan::ParsedFlags&) {
            zcplan::placement = absl::GetFlag(FLAGS_placement);
            const uint64_t sockbuf = absl::GetFlag(FLAGS_sockbuf).bytes;
            if (sockbuf == 0 || sockbuf > (1u << 30)) {
              return absl::InvalidArgumentError(
                  "--sockbuf: expected 1..1G bytes");
            }
            zcplan::socket_buffer_bytes = static_cast<int>(sockbuf);
            return absl::OkStatus();
          })
          .status();
  if (!parsed.ok()) {
    std::fprintf(stderr, "send_benchmark: %s\n",
                 std::string(parsed.message()).c_str());
    return 2;
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
  benchmark::AddCustomContext("placement",
                              zcplan::AbslUnparseFlag(zcplan::placement));
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
