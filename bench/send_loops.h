// SPDX-License-Identifier: Apache-2.0
// The send loops that bench/send_benchmark.cc times and bench/send_callgrind.cc
// counts instructions of: one message at a time over a loopback TCP pair, by
// a hand-written liburing loop, by the executor on its own ring, or by the
// executor on a ring of the sender's own with the sender's CQE loop.
//
// Thread safety: a `Sender` is used from one thread (its ring is
// SINGLE_ISSUER where the kernel has it); `Loopback` runs a receiver thread
// of its own.

#ifndef ZCPLAN_BENCH_SEND_LOOPS_H_
#define ZCPLAN_BENCH_SEND_LOOPS_H_

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zcplan/planner/planner.h"
#include "zcplan/uring/receiver.h"

namespace zcplan {
namespace bench {

// The size-aware threshold of the benchmarks and of the raw loop.
constexpr uint64_t kSizeAware = 16 * 1024;

// The piece lengths of the reference message (planner/simulate.h) with `n`
// pieces (1 or >= 4).
std::vector<uint64_t> MessageLengths(int n);

// The message's pieces in one arena, each on its own 64-byte line with at
// least 64 bytes between it and the next, filled and faulted in.
class Message {
 public:
  explicit Message(const std::vector<uint64_t>& lengths);

  const std::vector<iovec>& iovs() const { return iovs_; }
  uint64_t bytes() const { return bytes_; }

 private:
  struct FreeDeleter {
    void operator()(char* p) const;
  };
  std::unique_ptr<char, FreeDeleter> arena_;
  std::vector<iovec> iovs_;
  uint64_t bytes_ = 0;
};

// A connected loopback TCP pair and a thread (uring/receiver.h) that reads
// the receiving end until EOF, discarding. TCP_NODELAY on the sender; SO_SNDBUF
// on the sender and SO_RCVBUF on the receiver set to `socket_buffer_bytes`.
class Loopback {
 public:
  Loopback() = default;
  Loopback(const Loopback&) = delete;
  Loopback& operator=(const Loopback&) = delete;
  ~Loopback();

  // Connects the pair and starts the receiver thread; `on_receiver_start`
  // (may be empty) runs first on it.
  absl::Status Open(int socket_buffer_bytes,
                    std::function<void()> on_receiver_start);

  // Connects the pair without a receiver thread: the caller reads the
  // receiving end, which it takes with `ReleaseReceiver` (and then owns).
  absl::Status Connect(int socket_buffer_bytes);
  int ReleaseReceiver();

  int sender() const { return sender_; }

  // Segments the sending side retransmitted so far (TCP_INFO).
  uint64_t Retransmits() const;

  // Ends the stream and waits for the receiver thread; returns the bytes it
  // read (0 without one).
  uint64_t Finish();

 private:
  int sender_ = -1;
  int receiver_ = -1;
  std::unique_ptr<Receiver> receiver_thread_;  // reads `receiver_`
};

enum class SenderKind {
  kRaw,  // plain liburing, size_aware only (no zcplan code in the loop)
  // The raw loop, plus the executor's per-buffer passes done beside it on a
  // send queue of its own: the batch pushed (checked, copied, summed),
  // planned (PlanChain), each op laid out (LayOutOp), and every buffer
  // released (tokens copied out) once the message is done. It submits the
  // raw loop's SQEs, not the laid-out ones. What the executor's per-buffer
  // work costs, measured apart from everything else it does.
  kRawPerBuffer,
  kExecutor,  // Executor::Create, Enqueue + Poll
  kShared,    // Executor::CreateOnRing on the sender's ring, its CQE loop
};

struct SenderConfig {
  SenderKind kind = SenderKind::kExecutor;
  uint64_t zc_threshold = kSizeAware;  // kRaw: always kSizeAware
  CopyOp copy_op = CopyOp::kWritev;
  bool adaptive = false;
  // ConnectionOptions::adaptive_retry_chains (adaptive only; 0: never).
  uint32_t adaptive_retry_chains = 4096;
  // kExecutor and kShared: the message made a PreparedMessage once, before
  // the timed loop, and queued with EnqueueMessage (one token), instead of
  // its buffers with Enqueue (one token each).
  bool prepared = false;
};

// Counts since the sender was made.
struct SenderTotals {
  uint64_t ops = 0;     // SQEs
  uint64_t enters = 0;  // io_uring_enter calls (the executor's submit_calls,
                        // plus the sender's own waits on a shared ring)
  uint64_t short_sends = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_zero_copy = 0;
};

class Sender {
 public:
  virtual ~Sender() = default;
  // Sends the whole message and returns once every buffer may be written
  // again. Errors: Internal for a ring failure, a stall (nothing completed
  // for 10 s), a send error, or (kRaw) a short send, which the raw loop does
  // not handle.
  virtual absl::Status SendMessage() = 0;
  virtual SenderTotals totals() const = 0;
};

// Makes a sender of `message` on the connected socket `fd`; both must
// outlive it. Errors: Unavailable when io_uring or its zero-copy opcodes are
// (and `config` needs them), Internal when the raw loop's ops differ from
// the planner's, the executor's errors otherwise.
absl::StatusOr<std::unique_ptr<Sender>> MakeSender(const SenderConfig& config,
                                                   const Message& message,
                                                   int fd);

}  // namespace bench
}  // namespace zcplan

#endif  // ZCPLAN_BENCH_SEND_LOOPS_H_
