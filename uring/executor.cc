// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/executor.h"

#include <liburing.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "zcplan/uring/io_uring_ring.h"
#include "zcplan/uring/memlock.h"
#include "zcplan/uring/notification_budget.h"
#include "zcplan/uring/op_slots.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/regions.h"
#include "zcplan/uring/send_queue.h"
#include "zcplan/uring/socket_check.h"
#include "zcplan/uring/sqe_encoder.h"

namespace zcplan {
namespace {

// Transient errors (-EINTR, -EAGAIN, -ENOBUFS) in a row without progress
// before the connection is failed.
constexpr uint32_t kMaxTransientInARow = 64;

// -ENOMEM from zero-copy ops of this many chains in a row pauses zero-copy
// on the connection for a number of chains, doubling from the first to the
// most while -ENOMEM keeps coming back.
constexpr uint32_t kEnomemPauseAfter = 2;
constexpr uint32_t kFirstZcPauseChains = 16;
constexpr uint32_t kMostZcPauseChains = 4096;
// Adaptive zero-copy's wait before it looks again grows to at most this
// many times ConnectionOptions::adaptive_retry_chains.
constexpr uint32_t kMostRetries = 64;
constexpr uint32_t kMostRetryChains = uint32_t{1} << 24;
// ConnectionOptions::gather_bytes and gather_below at most.
constexpr uint64_t kMostGatherBytes = uint64_t{1} << 30;
constexpr uint32_t kMostGatherBelow = uint32_t{1} << 20;

// The payload that marks a release status "the kernel may still read it".
constexpr absl::string_view kKernelMayStillReadUrl =
    "type.zcplan/kernel-may-still-read";

absl::Status KernelMayStillReadStatus(absl::string_view why) {
  absl::Status status = absl::UnavailableError(absl::StrCat(
      why,
      "; the kernel may still read the buffer: do not reuse it until the "
      "executor is destroyed and the socket reset (SO_LINGER 0) and closed"));
  status.SetPayload(kKernelMayStillReadUrl, absl::Cord("1"));
  return status;
}

// SIGPIPE to SIG_IGN, unless the program set a disposition of its own.
void IgnoreSigpipeIfDefault() {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 &&
      (current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
}

// memcpy for the pieces of a gathered op, mostly a few dozen bytes: fixed
// size moves that overlap instead of a call per piece (a call costs more
// than the copy at these sizes).
inline void CopySmall(char* to, const char* from, size_t n) {
  if (n > 64) {
    std::memcpy(to, from, n);
  } else if (n >= 16) {
    // Two to four 16-byte moves, the last ending at n.
    uint64_t a[2], b[2];
    std::memcpy(a, from, 16);
    std::memcpy(b, from + n - 16, 16);
    if (n > 32) {
      uint64_t c[2], d[2];
      std::memcpy(c, from + 16, 16);
      std::memcpy(d, from + n - 32, 16);
      std::memcpy(to + 16, c, 16);
      std::memcpy(to + n - 32, d, 16);
    }
    std::memcpy(to, a, 16);
    std::memcpy(to + n - 16, b, 16);
  } else if (n >= 8) {
    uint64_t a, b;
    std::memcpy(&a, from, 8);
    std::memcpy(&b, from + n - 8, 8);
    std::memcpy(to, &a, 8);
    std::memcpy(to + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, from, 4);
    std::memcpy(&b, from + n - 4, 4);
    std::memcpy(to, &a, 4);
    std::memcpy(to + n - 4, &b, 4);
  } else {
    for (size_t i = 0; i < n; ++i) to[i] = from[i];
  }
}

bool IsTransient(int err) {
  return err == EINTR || err == EAGAIN || err == ENOBUFS;
}

}  // namespace

bool KernelMayStillRead(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kKernelMayStillReadUrl).has_value();
}

class Executor::Impl {
 public:
  Impl(std::unique_ptr<Ring> ring, ExecutorOptions options)
      : ring_(std::move(ring)),
        options_(std::move(options)),
        shared_(options_.user_data_tag != 0),
        slots_(UserDataCodec(options_.user_data_tag)) {
    ChooseCap();
  }

  ~Impl() {
    if (!shut_down_) (void)Shutdown(options_.teardown_timeout);
  }

  absl::StatusOr<ConnectionId> Attach(int fd, const ConnectionOptions& opts);
  absl::Status Enqueue(ConnectionId id, const void* data, size_t length,
                       uint64_t token);
  absl::Status Enqueue(ConnectionId id, absl::Span<const iovec> buffers,
                       absl::Span<const uint64_t> tokens);
  absl::Status EnqueueMessage(
      ConnectionId id, const std::shared_ptr<const PreparedMessage>& message,
      uint64_t token);
  absl::Status Flush();
  absl::StatusOr<size_t> Poll(absl::Duration timeout);
  absl::Status Drain(absl::Duration timeout);
  absl::Status Close(ConnectionId id);
  absl::Status Abort(ConnectionId id);
  absl::Status Shutdown(absl::Duration timeout);
  bool Idle(ConnectionId id) const;
  absl::Status ConnectionError(ConnectionId id) const;
  bool ZeroCopyEnabled(ConnectionId id) const;
  absl::StatusOr<SendStats> connection_stats(ConnectionId id) const;
  RingStats stats() const;
  const RingFeatures& features() const { return ring_->features(); }
  absl::StatusOr<int> WatchFd();
  absl::StatusOr<size_t> HandleReady();
  absl::Status Prepare();
  bool Owns(uint64_t user_data) const { return slots_.codec().Owns(user_data); }
  bool HandleCompletion(const Completion& cqe);
  void HandleDeferred();
  bool Idle() const { return slots_.in_use() == 0 && HeldTotal() == 0; }
  uint64_t cap() const { return budget_.cap(); }
  const std::string& cap_description() const { return cap_description_; }
  absl::Status RegisterBuffers(absl::Span<const iovec> regions);

 private:
  // A connection slot's life: free, then open until it fails or is
  // closed; a closed one is freed once it holds nothing.
  enum class State : uint8_t { kFree, kOpen, kFailed, kClosed };
  // Where its sending stands: nothing to do, in the ready list, held back
  // by the notification cap until its own notifications come, or a chain
  // in flight.
  enum class Phase : uint8_t { kIdle, kReady, kCapWaiting, kInFlight };
  // Its cancel, once stopped with ops in flight: none, due (no free SQE
  // yet, retried before each submit), or sent.
  enum class Cancel : uint8_t { kNone, kDue, kSent };

  // When zero-copy is used on a connection, and the -ENOMEM back-off.
  struct ZeroCopyControl {
    bool enabled = false;
    uint32_t copied_in_a_row = 0;
    // -ENOMEM back-off: chains in a row whose zero-copy op got -ENOMEM, the
    // chains still to send by copy, and the length of the next pause.
    uint32_t enomem_in_a_row = 0;
    uint32_t pause_chains = 0;
    uint32_t pause_next = kFirstZcPauseChains;
    // -ENOMEM fallback: buffers before this sequence number go by copy.
    uint64_t copy_until_seq = 0;
    // Adaptive zero-copy turned it off: chains by copy until it looks
    // again, and the wait after the next time (0: it does not look again).
    bool adaptive_off = false;
    uint32_t retry_in_chains = 0;
    uint32_t retry_next = 0;
  };

  struct Connection {
    uint32_t generation = 1;
    State state = State::kFree;
    Phase phase = Phase::kIdle;
    Cancel cancel = Cancel::kNone;
    // The chain in flight came up short or failed; the next one is a
    // resumption (counted in chains_resumed).
    bool chain_broken = false;
    bool resume_pending = false;
    int fd = -1;
    absl::Status error;  // why it failed or was closed
    ConnectionOptions options;
    ZeroCopyControl zc;
    uint32_t transient_in_a_row = 0;
    SocketKey socket_key;

    SendQueue queue;
    // Gathered copies of the chain in flight's small pieces: a buffer of
    // `gather_size` bytes (at least options.gather_bytes) taken from the
    // executor's pool on first use and given back when the chain is done,
    // and how much of it the chain being prepared has used.
    std::unique_ptr<char[]> gather;
    uint64_t gather_size = 0;
    uint64_t gather_used = 0;
    // The queue's buffers that are prepared messages, by seq, until
    // released (the queue holds each as one buffer of its total length).
    absl::btree_map<uint64_t, std::shared_ptr<const PreparedMessage>> messages;
    uint32_t chain_ops = 0;   // ops of the chain in flight, first CQE pending
    uint32_t slots_held = 0;  // op slots, including those awaiting notification
    BudgetAccount zc_account;  // bytes awaiting notification

    // Scratch for the chain in flight: the plan, and the iovecs and msghdrs
    // its SQEs point to (valid until the kernel has taken them).
    Plan plan;
    std::vector<iovec> chain_iovs;
    size_t chain_used = 0;  // of chain_iovs, by the chain being prepared
    std::vector<msghdr> chain_msgs;
    SendStats stats;

    bool in_use() const { return state != State::kFree; }
    bool stopped() const {
      return state == State::kFailed || state == State::kClosed;
    }
  };

  // One op of the chain being prepared: the op, its layout (end position in
  // the queue's seqs), its pieces (a prepared message's own iovecs, or
  // Connection::chain_iovs from `piece`), and the queue buffers it holds.
  struct ChainOp {
    Op op;
    OpLayout layout;
    const iovec* borrowed;
    size_t piece;
    uint64_t first_seq;
    uint32_t hold_count;
    uint64_t offset;          // into buffer first_seq
    bool gathered;            // one piece, in Connection::gather
    uint64_t gathered_bytes;  // of its bytes, those copied there
  };

  static ConnectionId MakeId(uint32_t index, uint32_t generation) {
    return ConnectionId{(uint64_t{generation} << 32) | index};
  }
  Connection* Find(ConnectionId id);
  const Connection* Find(ConnectionId id) const;
  // The connection an Enqueue names: FailedPrecondition after Shutdown,
  // NotFound for an unknown id.
  absl::StatusOr<Connection*> EnqueueTarget(ConnectionId id);
  // FailedPrecondition (with the error) for a closed or failed connection.
  static absl::Status AcceptsEnqueue(const Connection& c, ConnectionId id);
  ConnectionId IdOf(uint32_t index) const {
    return MakeId(index, conns_[index].generation);
  }

  // Buffers not yet released, over all connections.
  size_t HeldTotal() const {
    size_t held = 0;
    for (const Connection& c : conns_) held += c.queue.held();
    return held;
  }
  void MarkReady(uint32_t index);
  // Plans and prepares the next chain of connection `index`. Returns false
  // when the submission queue had no room (try again after submitting).
  bool PrepareChain(uint32_t index);
  // Plans the connection's unsent buffers before seq `limit` and lays the
  // ops out in `chain_`; returns how many fit under the notification cap
  // (0: none, or the connection waits for it, or it failed).
  size_t PlanUnderCap(uint32_t index, uint64_t limit, PlanOptions po);
  // Plans and lays out, into `chain_`, what goes from the sent position
  // before `limit` under `po`, while the cap's `*room` lasts: plain buffers
  // and prepared messages in turn. Returns false when the planner refused
  // the queue (the connection has failed).
  bool PlanChainOps(uint32_t index, uint64_t limit, const PlanOptions& po,
                    uint64_t* room);
  // Appends the ops of `plan` (planned from `buffers`, whose first buffer
  // is queue seq `seq`), up to `max_ops` of them, while `*room` lasts.
  // Returns the number appended.
  size_t AppendPlainOps(Connection& c, const Plan& plan,
                        absl::Span<const iovec> buffers, uint64_t seq,
                        size_t max_ops, uint64_t* room);
  // Appends the ops of prepared message `m`, queue seq `seq`, from byte
  // `offset` on, up to `max_ops` of them, while `*room` lasts, and says
  // whether that is all of the message's rest. Returns the planner's error
  // (not expected: the options were checked at Attach, the message at
  // Create).
  absl::Status AppendMessageOps(Connection& c, const PreparedMessage& m,
                                uint64_t seq, uint64_t offset,
                                const PlanOptions& po, size_t max_ops,
                                uint64_t* room, bool* complete);
  // Turns `co`, the op just appended, into one `send` of a copy of its
  // bytes in `c.gather` when it is a copy op of small pieces and the
  // gather buffer has room (ConnectionOptions::gather_bytes).
  void MaybeGather(Connection& c, ChainOp* co);
  // Where one segment's ops meet the next's (plain buffers, a prepared
  // message), makes chain_[i - 1] and chain_[i] one op when both are copy
  // ops that fit the limits of `po`, as the planner would have made them had
  // it seen both segments: the header before a message's body goes in the
  // body's writev.
  void JoinCopyOps(Connection& c, size_t i, const PlanOptions& po);
  // Room for `n` more pieces in `c.chain_iovs` after those the chain being
  // prepared uses; returns the index of the first. The vector only grows,
  // so on a warm connection pieces are written, never zeroed first.
  static size_t TakePieces(Connection& c, size_t n) {
    const size_t at = c.chain_used;
    if (c.chain_iovs.size() < at + n) {
      c.chain_iovs.resize(std::max(at + n, 2 * c.chain_iovs.size()));
    }
    c.chain_used = at + n;
    return at;
  }
  // Gives `c` a gather buffer of at least options.gather_bytes: the last
  // one given back when it is large enough, else a new one.
  void TakeGather(Connection& c);
  // Gives `c.gather` back to the pool, once no op of `c` can read it.
  void ReturnGather(Connection& c);
  // The plan of all of `m` under `po` (max_ops_per_chain as the
  // connection's options have it), made once per (message, options) and
  // kept; nullptr with *error set when the planner refuses.
  const Plan* MessagePlan(const PreparedMessage& m, const PlanOptions& po,
                          absl::Status* error);
  // Puts the first `take` laid-out ops on the ring as one linked chain.
  void EncodeChain(uint32_t index, size_t take);
  absl::Status SubmitPending(uint32_t wait_nr, int64_t timeout_ns,
                             bool* waited);
  // Forgets the pending SQEs the kernel has taken (by its count, so on a
  // shared ring whoever submitted).
  void PruneTaken();
  // FailedPrecondition for `what` (Poll, Drain, HandleReady) on the
  // caller's ring without `on_foreign_completion`: the executor cannot reap.
  absl::Status CheckCanReap(absl::string_view what) const;
  // FailedPrecondition for `what` from inside on_foreign_completion.
  absl::Status CheckNotReaping(absl::string_view what) const;

  // Prepares chains for the ready connections without submitting them.
  absl::Status PrepareReady();
  size_t ReapAndHandle();

  void Handle(const Completion& cqe);
  void OnSendResult(uint32_t conn_index, OpSlot& slot, int32_t res);
  void OnNotification(uint32_t conn_index, int32_t res);
  void FinishSlot(uint32_t slot_index);
  void ChainDone(uint32_t conn_index);
  void Fail(uint32_t conn_index, absl::Status status);
  void ReleaseEligible(uint32_t conn_index, uint64_t from_seq, uint64_t to_seq);
  // Releases a run of a connection's buffers, all with `status` (the
  // release callback runs here); returns their bytes.
  uint64_t ReleaseRun(uint32_t conn_index, const SendQueue::Run& run,
                      const absl::Status& status);
  void MaybeFree(uint32_t conn_index);
  // Cancels what connection `index` has in flight: one cancel by fd, or one
  // per op where the kernel lacks that. With no room in the submission
  // queue it is marked due and retried by `RetryCancels`.
  void SendCancel(uint32_t index);
  void RetryCancels();
  // Turns the SQEs of connection `index` that were never submitted into
  // NOPs and ends their ops: the kernel never saw those buffers.
  void UndoUnsubmitted(uint32_t index);
  // Closes connection `index` (state, error, cancel, release of what the
  // kernel does not hold); `error` is the status for an open connection.
  void Stop(uint32_t index, absl::Status error);
  // The index of `id` for Close or Abort (`what`), after their checks.
  absl::StatusOr<uint32_t> IndexForStop(ConnectionId id,
                                        absl::string_view what);
  // Resets connection `index`'s TCP connection; returns the kernel's result.
  int Reset(uint32_t index);
  // Polls until nothing is held or `deadline` passes; with `poll_once`, polls
  // at least once (without waiting) even when `deadline` has passed.
  void WaitUntilReleased(absl::Time deadline, bool poll_once = false);
  // FailedPrecondition when a SINGLE_ISSUER ring is bound to another thread.
  absl::Status CheckThread(absl::string_view what) const;
  bool OnRingThread() const;
  void ChooseCap();

  void Uncharge(Connection& c, uint64_t bytes);
  // The connection's counters with its gauges filled in.
  static SendStats StatsOf(const Connection& c) {
    SendStats stats = c.stats;
    stats.bytes_awaiting_notification = c.zc_account.bytes;
    stats.peak_bytes_awaiting_notification = c.zc_account.peak;
    return stats;
  }

  std::unique_ptr<Ring> ring_;
  ExecutorOptions options_;
  // On the caller's ring: completions that are not ours go to
  // `on_foreign_completion` when the executor reaps, which it does only
  // when that is set.
  const bool shared_;
  // Completions handed in (HandleCompletion) while one was being handled,
  // e.g. from a release callback: handled right after it.
  std::vector<Completion> deferred_;
  bool handling_ = false;
  bool reaping_ = false;  // in ReapAndHandle (on_foreign_completion runs)
  // Bytes awaiting notification, per connection and in all, under the cap.
  NotificationBudget budget_;
  std::string cap_description_;
  bool shut_down_ = false;
  // The thread a SINGLE_ISSUER ring is bound to (its first submit).
  bool bound_ = false;
  pthread_t bound_thread_{};
  pid_t bound_tid_ = 0;  // for messages

  std::vector<Connection> conns_;
  std::vector<uint32_t> free_conns_;
  // By socket, so a dup of an attached fd is recognized.
  absl::flat_hash_map<SocketKey, uint32_t> socket_to_conn_;
  std::vector<uint32_t> ready_;
  std::vector<uint32_t> batch_;
  // Connections whose cancel found no free SQE; retried before each submit.
  std::vector<uint32_t> cancels_due_;

  // The ops in flight, named by their user_data.
  OpSlotTable slots_;

  RegisteredRegions regions_;
  std::vector<ChainOp> chain_;
  // Gather buffers no chain uses, the most recently given back last, so the
  // next chain writes to memory still in cache; at most kMaxPooledGather
  // bytes of them (a server with a chain in flight on every connection at
  // once takes one each, and malloc of a large buffer is an mmap).
  struct PooledGather {
    uint64_t size;
    std::unique_ptr<char[]> buffer;
  };
  static constexpr uint64_t kMaxPooledGather = uint64_t{64} << 20;
  std::vector<PooledGather> gather_pool_;
  uint64_t gather_pooled_ = 0;  // their bytes
  // Plans of prepared messages, by message id and the options they were
  // made under. Emptied when it would pass kMaxMessagePlans plans or
  // kMaxMessagePlanOps ops in all (plans of messages gone stay until then).
  struct MessagePlanKey {
    uint64_t id;
    uint64_t zc_threshold;
    uint64_t max_bytes_per_op;
    uint64_t zc_gap_bytes;
    uint32_t max_iovs_per_op;
    uint32_t max_ops_per_chain;
    CopyOp copy_op;
    friend bool operator==(const MessagePlanKey& a, const MessagePlanKey& b) {
      return a.id == b.id && a.zc_threshold == b.zc_threshold &&
             a.max_bytes_per_op == b.max_bytes_per_op &&
             a.zc_gap_bytes == b.zc_gap_bytes &&
             a.max_iovs_per_op == b.max_iovs_per_op &&
             a.max_ops_per_chain == b.max_ops_per_chain &&
             a.copy_op == b.copy_op;
    }
    template <typename H>
    friend H AbslHashValue(H h, const MessagePlanKey& k) {
      return H::combine(std::move(h), k.id, k.zc_threshold, k.max_bytes_per_op,
                        k.zc_gap_bytes, k.max_iovs_per_op, k.max_ops_per_chain,
                        k.copy_op);
    }
  };
  static constexpr size_t kMaxMessagePlans = 4096;
  static constexpr size_t kMaxMessagePlanOps = size_t{1} << 20;
  absl::flat_hash_map<MessagePlanKey, Plan> message_plans_;
  size_t message_plan_ops_ = 0;
  std::vector<uint64_t> release_scratch_;

  // SQEs obtained and perhaps not yet taken by the kernel, in order, with
  // their numbers (Ring::SqesObtained): those it has not taken, a stopped
  // connection's can be undone.
  struct PendingSqe {
    io_uring_sqe* sqe;
    uint32_t number;
  };
  std::vector<PendingSqe> pending_sqes_;
  absl::Status shutdown_status_;
  int in_callback_ = 0;

  SendStats closed_totals_;  // connections already freed
  uint64_t stray_notifications_ = 0;
  RingStats ring_stats_;
  std::vector<Completion> cqes_ = std::vector<Completion>(256);
};

// ---------------------------------------------------------------------------
// Lookup and bookkeeping

Executor::Impl::Connection* Executor::Impl::Find(ConnectionId id) {
  const uint32_t index = static_cast<uint32_t>(id.value);
  const uint32_t generation = static_cast<uint32_t>(id.value >> 32);
  if (index >= conns_.size()) return nullptr;
  Connection& c = conns_[index];
  if (!c.in_use() || c.generation != generation) return nullptr;
  return &c;
}

const Executor::Impl::Connection* Executor::Impl::Find(ConnectionId id) const {
  return const_cast<Impl*>(this)->Find(id);
}

void Executor::Impl::MarkReady(uint32_t index) {
  Connection& c = conns_[index];
  if (c.phase != Phase::kIdle) return;
  c.phase = Phase::kReady;
  ready_.push_back(index);
}

void Executor::Impl::Uncharge(Connection& c, uint64_t bytes) {
  budget_.Uncharge(c.zc_account, bytes);
  // A connection waits on the cap only for its own notifications.
  if (c.phase == Phase::kCapWaiting) {
    c.phase = Phase::kIdle;
    MarkReady(static_cast<uint32_t>(&c - conns_.data()));
  }
}

void Executor::Impl::ChooseCap() {
  CapChoice choice = ChooseNotificationCap(
      options_.max_bytes_awaiting_notification, MemlockSoftLimit(),
      ring_->features().memlock_charged, ring_->features().memlock_bytes,
      regions_.pinned_bytes());
  budget_.set_cap(choice.cap);
  cap_description_ = std::move(choice.description);
}

bool Executor::Impl::OnRingThread() const {
  // pthread_self is cheap (every Poll checks) and right after fork.
  return !bound_ || pthread_equal(bound_thread_, pthread_self()) != 0;
}

absl::Status Executor::Impl::CheckThread(absl::string_view what) const {
  if (OnRingThread()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what, " called on thread ", gettid(),
      ", but this executor's ring is bound to thread ", bound_tid_,
      ", the first that submitted to it (IORING_SETUP_SINGLE_ISSUER): call "
      "it from that thread, or create the executor with "
      "ExecutorOptions::defer_taskrun = false to use it from any one thread "
      "at a time"));
}

// ---------------------------------------------------------------------------
// Public operations

absl::StatusOr<ConnectionId> Executor::Impl::Attach(
    int fd, const ConnectionOptions& opts) {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "Attach called from inside the release callback");
  }
  if (shut_down_) {
    return absl::FailedPreconditionError(
        "Attach called after Shutdown; the executor takes no more work");
  }
  absl::StatusOr<SendSocket> socket = CheckSendSocket(fd, opts.allow_non_tcp);
  if (!socket.ok()) return socket.status();
  absl::Status valid = ValidatePlanOptions(opts.plan);
  if (!valid.ok()) return valid;
  if (opts.adaptive_copied_limit == 0) {
    return absl::InvalidArgumentError(
        "adaptive_copied_limit is 0; it must be at least 1");
  }
  if (opts.adaptive_retry_chains > kMostRetryChains) {
    return absl::InvalidArgumentError(
        absl::StrCat("adaptive_retry_chains is ", opts.adaptive_retry_chains,
                     "; it must be at most ", kMostRetryChains, " (0: never)"));
  }
  if (opts.max_queued_bytes == 0) {
    return absl::InvalidArgumentError(
        "max_queued_bytes is 0; it must be at least 1");
  }
  if (opts.gather_bytes > kMostGatherBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("gather_bytes is ", opts.gather_bytes,
                     "; it must be at most ", kMostGatherBytes, " (0: off)"));
  }
  if (opts.gather_below == 0 || opts.gather_below > kMostGatherBelow) {
    return absl::InvalidArgumentError(
        absl::StrCat("gather_below is ", opts.gather_below, "; it must be 1..",
                     kMostGatherBelow));
  }
  const SocketKey key = socket->key;
  if (auto it = socket_to_conn_.find(key); it != socket_to_conn_.end()) {
    const Connection& other = conns_[it->second];
    return absl::InvalidArgumentError(absl::StrCat(
        "fd ", fd,
        other.fd == fd ? " is already attached"
                       : absl::StrCat(" is the socket of fd ", other.fd,
                                      ", already attached"),
        " as connection ", IdOf(it->second).value,
        "; one socket takes one connection (two would interleave its bytes)"));
  }
  uint32_t index;
  if (!free_conns_.empty()) {
    index = free_conns_.back();
    free_conns_.pop_back();
  } else {
    index = static_cast<uint32_t>(conns_.size());
    conns_.emplace_back();
  }
  Connection& c = conns_[index];
  const uint32_t generation = c.generation;
  c = Connection();
  c.generation = generation;
  c.state = State::kOpen;
  c.fd = fd;
  c.options = opts;
  const RingFeatures& f = ring_->features();
  // On a stream socket that is not TCP (socket->tcp false) the kernel says
  // -EOPNOTSUPP; it is the authority, and the fallback path is the same.
  c.zc.enabled = f.send_zc && f.sendmsg_zc &&
                 opts.plan.zc_threshold != PlanOptions::kNever;
  c.zc.retry_next = opts.adaptive_retry_chains;
  c.socket_key = key;
  socket_to_conn_[key] = index;
  ++ring_stats_.connections_attached;
  return IdOf(index);
}

absl::StatusOr<Executor::Impl::Connection*> Executor::Impl::EnqueueTarget(
    ConnectionId id) {
  if (shut_down_) {
    return absl::FailedPreconditionError(
        "Enqueue called after Shutdown; the executor takes no more work");
  }
  Connection* c = Find(id);
  if (c == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("connection ", id.value, " is not attached"));
  }
  return c;
}

absl::Status Executor::Impl::AcceptsEnqueue(const Connection& c,
                                            ConnectionId id) {
  if (c.state == State::kClosed) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection ", id.value, " is closed"));
  }
  if (c.state == State::kFailed) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection ", id.value, " failed: ", c.error.ToString()));
  }
  return absl::OkStatus();
}

absl::Status Executor::Impl::Enqueue(ConnectionId id, const void* data,
                                     size_t length, uint64_t token) {
  absl::StatusOr<Connection*> target = EnqueueTarget(id);
  if (!target.ok()) return target.status();
  Connection* c = *target;
  if (data == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Enqueue: data is null (length ", length, ")"));
  }
  if (length == 0) {
    return absl::InvalidArgumentError(
        "Enqueue: length is 0; a buffer must hold at least 1 byte");
  }
  if (length > static_cast<size_t>(SSIZE_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Enqueue: length ", length, " is above SSIZE_MAX (", SSIZE_MAX, ")"));
  }
  if (absl::Status s = AcceptsEnqueue(*c, id); !s.ok()) return s;
  // What is held never exceeds the limit, so this cannot wrap.
  const uint64_t queued = c->queue.held_bytes();
  if (length > c->options.max_queued_bytes - queued) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Enqueue: length ", length, " plus the ", queued,
                     " bytes queued would exceed max_queued_bytes (",
                     c->options.max_queued_bytes, ")"));
  }
  c->queue.Push(iovec{const_cast<void*>(data), length}, token);
  ++c->stats.buffers_enqueued;
  c->stats.bytes_enqueued += length;
  MarkReady(static_cast<uint32_t>(c - conns_.data()));
  return absl::OkStatus();
}

absl::Status Executor::Impl::Enqueue(ConnectionId id,
                                     absl::Span<const iovec> buffers,
                                     absl::Span<const uint64_t> tokens) {
  absl::StatusOr<Connection*> target = EnqueueTarget(id);
  if (!target.ok()) return target.status();
  Connection* c = *target;
  if (buffers.size() != tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("Enqueue: ", buffers.size(),
                                                   " buffers but ",
                                                   tokens.size(), " tokens"));
  }
  // The usual case in one pass: each buffer checked (a base, 1..SSIZE_MAX
  // bytes, room left under max_queued_bytes, summed against the room so the
  // sum cannot wrap) as the queue copies and sums them. Otherwise nothing
  // is queued and the error is found again, in order, below.
  const uint64_t queued = c->queue.held_bytes();
  const uint64_t room = c->options.max_queued_bytes - queued;
  if (c->state == State::kOpen &&
      c->queue.PushIf(buffers, tokens, [room](const iovec& b, uint64_t before) {
        return (b.iov_base != nullptr) &
               (b.iov_len - 1 < static_cast<size_t>(SSIZE_MAX)) &
               (b.iov_len <= room - before);
      })) {
    if (buffers.empty()) return absl::OkStatus();
    c->stats.buffers_enqueued += buffers.size();
    c->stats.bytes_enqueued += c->queue.held_bytes() - queued;
    MarkReady(static_cast<uint32_t>(c - conns_.data()));
    return absl::OkStatus();
  }
  for (size_t i = 0; i < buffers.size(); ++i) {
    const iovec& b = buffers[i];
    if (b.iov_base == nullptr || b.iov_len == 0 ||
        b.iov_len > static_cast<size_t>(SSIZE_MAX)) {
      return absl::InvalidArgumentError(
          absl::StrCat("Enqueue: buffer ", i, " (base ",
                       b.iov_base == nullptr ? "null" : "set", ", length ",
                       b.iov_len, ") is not a buffer of 1..SSIZE_MAX bytes"));
    }
  }
  if (absl::Status s = AcceptsEnqueue(*c, id); !s.ok()) return s;
  uint64_t before = 0;
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (buffers[i].iov_len > room - before) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "Enqueue: buffer ", i, " (length ", buffers[i].iov_len,
          ") brings the batch past max_queued_bytes (",
          c->options.max_queued_bytes, ", with ", queued, " bytes queued and ",
          before, " before it in the batch)"));
    }
    before += buffers[i].iov_len;
  }
  return absl::InternalError("Enqueue: batch refused for no reason found");
}

absl::Status Executor::Impl::EnqueueMessage(
    ConnectionId id, const std::shared_ptr<const PreparedMessage>& message,
    uint64_t token) {
  absl::StatusOr<Connection*> target = EnqueueTarget(id);
  if (!target.ok()) return target.status();
  Connection* c = *target;
  if (message == nullptr) {
    return absl::InvalidArgumentError(
        "EnqueueMessage: the prepared message is null");
  }
  if (absl::Status s = AcceptsEnqueue(*c, id); !s.ok()) return s;
  const uint64_t length = message->bytes();
  const uint64_t queued = c->queue.held_bytes();
  if (length > c->options.max_queued_bytes - queued) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "EnqueueMessage: prepared message of ", length, " bytes plus the ",
        queued, " bytes queued would exceed max_queued_bytes (",
        c->options.max_queued_bytes, ")"));
  }
  // One buffer of the message's length: the queue counts its bytes and
  // positions; its pieces are the message's.
  c->messages.emplace_hint(c->messages.end(), c->queue.end_seq(), message);
  c->queue.Push(iovec{const_cast<void*>(message->buffers()[0].iov_base),
                      static_cast<size_t>(length)},
                token);
  ++c->stats.buffers_enqueued;
  c->stats.bytes_enqueued += length;
  MarkReady(static_cast<uint32_t>(c - conns_.data()));
  return absl::OkStatus();
}

absl::Status Executor::Impl::Flush() {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "Flush called from inside the release callback");
  }
  if (absl::Status s = CheckThread("Flush"); !s.ok()) return s;
  if (shut_down_) return absl::OkStatus();
  absl::Status s = PrepareReady();
  if (!s.ok() || pending_sqes_.empty()) return s;
  bool waited = false;
  return SubmitPending(0, 0, &waited);
}

absl::Status Executor::Impl::PrepareReady() {
  PruneTaken();
  if (!deferred_.empty() && !in_callback_) HandleDeferred();
  if (!cancels_due_.empty()) RetryCancels();
  if (!bound_ &&
      (ring_->features().setup_flags & IORING_SETUP_SINGLE_ISSUER) != 0) {
    // A SINGLE_ISSUER ring is bound to the thread that first uses it; make
    // that this one now (and learn what the ring probes then), not at the
    // first chain.
    ring_->SqSpaceLeft();
    bound_ = true;
    bound_thread_ = pthread_self();
    bound_tid_ = gettid();
  }
  std::vector<uint32_t>& batch = batch_;
  batch.clear();
  batch.swap(ready_);
  for (size_t i = 0; i < batch.size(); ++i) {
    const uint32_t index = batch[i];
    conns_[index].phase = Phase::kIdle;
    if (PrepareChain(index)) continue;
    // No room in the submission queue: submit what is there and retry once.
    bool waited = false;
    absl::Status s = SubmitPending(0, 0, &waited);
    if (s.ok() && PrepareChain(index)) continue;
    // Still no room (the submit was refused with -EBUSY), or the ring failed:
    // keep this and the remaining connections ready for the next call.
    for (size_t j = i; j < batch.size(); ++j) {
      conns_[batch[j]].phase = Phase::kIdle;
      MarkReady(batch[j]);
    }
    return s;
  }
  return absl::OkStatus();
}

size_t Executor::Impl::ReapAndHandle() {
  if (!deferred_.empty() && !in_callback_) HandleDeferred();
  size_t handled = 0;
  reaping_ = true;
  for (;;) {
    const size_t n = ring_->Reap(absl::MakeSpan(cqes_));
    handling_ = true;
    for (size_t i = 0; i < n; ++i) {
      if (Owns(cqes_[i].user_data)) {
        Handle(cqes_[i]);
        ++handled;
      } else if (options_.on_foreign_completion) {
        io_uring_cqe foreign{};
        foreign.user_data = cqes_[i].user_data;
        foreign.res = cqes_[i].res;
        foreign.flags = cqes_[i].flags;
        options_.on_foreign_completion(foreign);
      }
      HandleDeferred();
    }
    handling_ = false;
    if (n < cqes_.size()) break;
  }
  reaping_ = false;
  ring_stats_.completions += handled;
  return handled;
}

absl::Status Executor::Impl::CheckNotReaping(absl::string_view what) const {
  if (!reaping_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what,
      " called from inside on_foreign_completion, while the executor "
      "reaps the ring"));
}

absl::Status Executor::Impl::SubmitPending(uint32_t wait_nr, int64_t timeout_ns,
                                           bool* waited) {
  ++ring_stats_.submit_calls;
  const int ret = ring_->SubmitAndWait(wait_nr, timeout_ns);
  *waited = wait_nr > 0;
  if (!bound_ && ret != -EEXIST &&
      (ring_->features().setup_flags & IORING_SETUP_SINGLE_ISSUER)) {
    bound_ = true;
    bound_thread_ = pthread_self();
    bound_tid_ = gettid();
  }
  PruneTaken();
  if (ret >= 0) return absl::OkStatus();
  switch (-ret) {
    case ETIME:
      return absl::OkStatus();
    case EINTR:
      ++ring_stats_.wait_interrupted;
      return absl::OkStatus();
    case EBUSY:
    case EAGAIN:
      // The SQEs stay queued and go with the next submit, after completions
      // have been reaped.
      ++ring_stats_.submit_busy;
      *waited = false;
      return absl::OkStatus();
    case EEXIST:
      return absl::FailedPreconditionError(absl::StrCat(
          "io_uring submit refused on thread ", gettid(),
          " (EEXIST): the ring is bound to another thread "
          "(IORING_SETUP_SINGLE_ISSUER); submit from that thread, or create "
          "the executor with ExecutorOptions::defer_taskrun = false"));
    default:
      // The ring itself failed (not one operation): nothing the caller did.
      return absl::InternalError(
          absl::StrCat("io_uring submit failed: ", std::strerror(-ret)));
  }
}

void Executor::Impl::PruneTaken() {
  if (pending_sqes_.empty()) return;
  // Untaken are the numbers in [taken, obtained): by distance from `taken`
  // modulo 2^32, so a number long taken never passes for an untaken one
  // (the window is at most the submission queue's size, and this runs at
  // every call that adds to the list or looks at it).
  const uint32_t taken = ring_->SqesTaken();
  const uint32_t window = ring_->SqesObtained() - taken;
  size_t n = 0;
  while (n < pending_sqes_.size() &&
         pending_sqes_[n].number - taken >= window) {
    ++n;
  }
  pending_sqes_.erase(pending_sqes_.begin(), pending_sqes_.begin() + n);
}

absl::Status Executor::Impl::CheckCanReap(absl::string_view what) const {
  if (!shared_ || options_.on_foreign_completion) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what,
      " called on an executor on the caller's ring, whose completions the "
      "caller reaps: dispatch them with Owns and HandleCompletion, or set "
      "ExecutorOptions::on_foreign_completion to let ",
      what, " reap the ring"));
}

absl::Status Executor::Impl::Prepare() {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "Prepare called from inside the release callback");
  }
  if (absl::Status s = CheckThread("Prepare"); !s.ok()) return s;
  if (shut_down_) return absl::OkStatus();
  return PrepareReady();
}

bool Executor::Impl::HandleCompletion(const Completion& cqe) {
  if (!Owns(cqe.user_data)) return false;
  ++ring_stats_.completions;
  // The caller submits: what it took is forgotten here, so the list stays
  // as short as what is really untaken.
  PruneTaken();
  if (handling_ || in_callback_) {
    // From a release callback: kept, and handled once the executor is no
    // longer in the middle of its work.
    deferred_.push_back(cqe);
    return true;
  }
  handling_ = true;
  // Kept ones came first: handled first, so a chain's ops stay in order.
  HandleDeferred();
  Handle(cqe);
  HandleDeferred();
  handling_ = false;
  return true;
}

void Executor::Impl::HandleDeferred() {
  for (size_t i = 0; i < deferred_.size(); ++i) {
    const Completion next = deferred_[i];
    Handle(next);
  }
  deferred_.clear();
}

absl::StatusOr<size_t> Executor::Impl::Poll(absl::Duration timeout) {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "Poll called from inside the release callback");
  }
  if (absl::Status s = CheckThread("Poll"); !s.ok()) return s;
  if (absl::Status s = CheckCanReap("Poll"); !s.ok()) return s;
  if (absl::Status s = CheckNotReaping("Poll"); !s.ok()) return s;
  // After Shutdown nothing is submitted (what is left in the submission
  // queue is NOPs); late completions are only counted.
  if (shut_down_) return ReapAndHandle();
  absl::Status s = PrepareReady();
  if (!s.ok()) return s;
  size_t handled = ReapAndHandle();
  if (handled == 0 && (slots_.in_use() > 0 || !pending_sqes_.empty())) {
    // One system call submits the new chains and waits for completions.
    const int64_t ns =
        timeout == absl::InfiniteDuration()
            ? -1
            : std::max<int64_t>(absl::ToInt64Nanoseconds(timeout), 0);
    bool waited = false;
    s = SubmitPending(slots_.in_use() > 0 ? 1 : 0, ns, &waited);
    if (!s.ok()) return s;
    handled += ReapAndHandle();
  }
  // Chains that the completions unblocked go out now, not at the next Poll.
  s = Flush();
  if (!s.ok()) return s;
  return handled;
}

absl::StatusOr<int> Executor::Impl::WatchFd() {
  if (absl::Status s = CheckThread("WatchFd"); !s.ok()) return s;
  if (shared_) {
    return absl::FailedPreconditionError(
        "WatchFd: this executor is on the caller's ring; the caller's loop "
        "watches that ring");
  }
  const int fd = ring_->WatchFd();
  if (fd == -ENOTSUP) {
    return absl::FailedPreconditionError(
        "WatchFd: this ring has no file descriptor to watch");
  }
  if (fd < 0) return absl::ErrnoToStatus(-fd, "WatchFd");
  return fd;
}

absl::StatusOr<size_t> Executor::Impl::HandleReady() {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "HandleReady called from inside the release callback");
  }
  if (absl::Status s = CheckThread("HandleReady"); !s.ok()) return s;
  if (absl::Status s = CheckCanReap("HandleReady"); !s.ok()) return s;
  if (absl::Status s = CheckNotReaping("HandleReady"); !s.ok()) return s;
  if (shut_down_) return ReapAndHandle();
  // Cleared first: completion work queued from here on signals it again.
  ring_->DrainWatchFd();
  size_t handled = 0;
  // Each round enters the ring (which runs all the deferred work and
  // submits new chains) and handles what that posted; the chains those
  // completions unblock go out in the next round. Bounded: what is left
  // after the last round is signalled again, so the caller comes back.
  for (int round = 0; round < 4; ++round) {
    absl::Status s = PrepareReady();
    if (!s.ok()) return s;
    bool waited = false;
    s = SubmitPending(0, 0, &waited);
    if (!s.ok()) return s;
    const size_t n = ReapAndHandle();
    handled += n;
    if (n == 0 && ready_.empty()) break;
  }
  if (!pending_sqes_.empty() || !ready_.empty()) {
    absl::Status s = Flush();
    if (!s.ok()) return s;
  }
  return handled;
}

absl::Status Executor::Impl::Drain(absl::Duration timeout) {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "Drain called from inside the release callback");
  }
  if (absl::Status s = CheckThread("Drain"); !s.ok()) return s;
  if (absl::Status s = CheckCanReap("Drain"); !s.ok()) return s;
  if (absl::Status s = CheckNotReaping("Drain"); !s.ok()) return s;
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t held = HeldTotal(); held > 0; held = HeldTotal()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("Drain: ", held, " buffer(s) still held after ",
                       absl::FormatDuration(timeout), " (", slots_.in_use(),
                       " op(s) in flight)"));
    }
    absl::StatusOr<size_t> n = Poll(std::min(left, absl::Milliseconds(100)));
    if (!n.ok()) return n.status();
    if (*n == 0 && slots_.in_use() == 0 && pending_sqes_.empty()) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  return absl::OkStatus();
}

void Executor::Impl::Stop(uint32_t index, absl::Status error) {
  Connection& c = conns_[index];
  if (c.state == State::kClosed) return;
  if (c.state == State::kOpen) c.error = std::move(error);
  // A failed connection keeps its failure as the release status.
  c.state = State::kClosed;
  if (c.phase == Phase::kCapWaiting) c.phase = Phase::kIdle;
  UndoUnsubmitted(index);
  if (conns_[index].in_use() && conns_[index].slots_held > 0) {
    SendCancel(index);
  }
  if (!conns_[index].in_use()) return;  // UndoUnsubmitted freed it
  ReleaseEligible(index, c.queue.first_seq(), c.queue.end_seq());
  MaybeFree(index);
}

int Executor::Impl::Reset(uint32_t index) {
  Connection& c = conns_[index];
  const int ret = ring_->AbortConnection(c.fd);
  if (ret == 0) ++c.stats.connections_reset;
  return ret;
}

absl::StatusOr<uint32_t> Executor::Impl::IndexForStop(ConnectionId id,
                                                      absl::string_view what) {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " called from inside the release callback"));
  }
  if (absl::Status s = CheckThread(what); !s.ok()) return s;
  Connection* c = Find(id);
  if (c == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("connection ", id.value, " is not attached"));
  }
  return static_cast<uint32_t>(c - conns_.data());
}

absl::Status Executor::Impl::Close(ConnectionId id) {
  absl::StatusOr<uint32_t> index = IndexForStop(id, "Close");
  if (!index.ok()) return index.status();
  Stop(*index, absl::CancelledError(
                   absl::StrCat("connection ", id.value, " was closed")));
  bool waited = false;
  // On the caller's ring the cancels wait for its next submit (or Flush):
  // submitting here would also submit what the caller has queued.
  if (!shared_ && !pending_sqes_.empty()) {
    return SubmitPending(0, 0, &waited);
  }
  return absl::OkStatus();
}

absl::Status Executor::Impl::Abort(ConnectionId id) {
  absl::StatusOr<uint32_t> found = IndexForStop(id, "Abort");
  if (!found.ok()) return found.status();
  const uint32_t index = *found;
  const int fd = conns_[index].fd;
  // The reset first: its completions come in later Polls, by when the
  // connection is closed with Aborted, the status its buffers get.
  const int ret = Reset(index);
  Stop(index, absl::AbortedError(
                  absl::StrCat("connection ", id.value, " was aborted")));
  bool waited = false;
  absl::Status s = absl::OkStatus();
  if (!shared_ && !pending_sqes_.empty()) s = SubmitPending(0, 0, &waited);
  if (ret < 0) {
    return absl::InternalError(absl::StrCat(
        "Abort: resetting fd ", fd, " failed: ", std::strerror(-ret),
        "; the connection is closed, but buffers the kernel holds come back "
        "only when the peer acknowledges them"));
  }
  return s;
}

void Executor::Impl::WaitUntilReleased(absl::Time deadline, bool poll_once) {
  while (HeldTotal() > 0) {
    if (!cancels_due_.empty()) RetryCancels();
    const absl::Duration left = deadline - absl::Now();
    const bool late = left <= absl::ZeroDuration();
    if (late && !poll_once) return;
    poll_once = false;
    bool waited = false;
    // Past the deadline the one poll only collects what is already done.
    const int64_t ns =
        late ? 0
             : absl::ToInt64Nanoseconds(std::min(left, absl::Milliseconds(50)));
    if (!SubmitPending(!late && slots_.in_use() > 0 ? 1 : 0, ns, &waited)
             .ok()) {
      return;
    }
    ReapAndHandle();
  }
}

absl::Status Executor::Impl::Shutdown(absl::Duration timeout) {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "Shutdown called from inside the release callback");
  }
  if (absl::Status s = CheckNotReaping("Shutdown"); !s.ok()) return s;
  if (shut_down_) return shutdown_status_;
  shut_down_ = true;
  ready_.clear();
  const absl::Time start = absl::Now();
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    if (!conns_[i].in_use()) continue;
    Stop(i, absl::AbortedError(
                absl::StrCat("connection ", IdOf(i).value, " was shut down")));
  }
  // From a thread the ring is not bound to nothing can be submitted or
  // waited for: straight to the end.
  // Nor on the caller's ring when the executor may not reap it.
  const bool can_reap =
      !shared_ || static_cast<bool>(options_.on_foreign_completion);
  const bool can_wait = OnRingThread() && can_reap;
  if (can_wait) WaitUntilReleased(start + timeout / 2);
  // A reset is a plain socket call, so it helps even off the ring's thread
  // (the kernel lets go of the memory; only the notifications go unread).
  bool reset_any = false;
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    Connection& c = conns_[i];
    if (c.in_use() && c.options.reset_on_shutdown &&
        (c.queue.held() > 0 || c.slots_held > 0)) {
      reset_any |= Reset(i) == 0;
    }
  }
  // A shutdown that starts late (a loaded or descheduled thread) may find
  // the deadline already passed here: what the resets freed is still
  // collected, by one poll that does not wait, rather than handed back as
  // KernelMayStillRead.
  if (can_wait) WaitUntilReleased(start + timeout, /*poll_once=*/reset_any);
  // What the kernel still references is handed back as such, and the
  // executor forgets the ops: later completions count as stray.
  size_t left_buffers = 0;
  uint64_t left_bytes = 0;
  size_t left_connections = 0;
  const absl::Status still_read = KernelMayStillReadStatus(absl::StrCat(
      "the executor shut down before the kernel gave the buffer back (",
      absl::FormatDuration(timeout), " allowed",
      can_wait   ? ""
      : can_reap ? ", none used: called off the ring's thread"
                 : ", none used: the caller reaps this ring and "
                   "on_foreign_completion is not set",
      ")"));
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    Connection& c = conns_[i];
    if (!c.in_use() || c.queue.held() == 0) continue;
    ++left_connections;
    uint64_t cursor = c.queue.first_seq();
    SendQueue::Run run;
    while (conns_[i].queue.NextUnreleased(&cursor, &run)) {
      left_buffers += run.end - run.first;
      left_bytes += ReleaseRun(i, run, still_read);
    }
  }
  slots_.ForEachInUse([this](uint32_t index, OpSlot& slot) {
    Connection& c = conns_[slot.conn];
    if (slot.charge > 0) Uncharge(c, slot.charge);
    c.queue.Unhold(slot.first_seq, slot.iov_count);
    slots_.Free(index);
    --c.slots_held;
    c.chain_ops = 0;
    c.phase = Phase::kIdle;
    // A copy op still in the kernel may yet read its gathered bytes: the
    // buffer is never freed or reused (a deliberate leak, at most
    // gather_bytes per connection handed back as KernelMayStillRead).
    if (c.gather != nullptr) {
      char* const kept = c.gather.release();
#if defined(__SANITIZE_ADDRESS__)
      __lsan_ignore_object(kept);  // leaked on purpose
#endif
      (void)kept;
    }
    c.gather_size = 0;
  });
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    if (conns_[i].in_use()) MaybeFree(i);
  }
  cancels_due_.clear();
  // Whatever is still queued and unsubmitted refers to forgotten ops (or to
  // sockets the caller may close and reuse): make it inert.
  PruneTaken();
  for (const PendingSqe& pending : pending_sqes_) {
    // The cancels stay: on the caller's ring its next submit sends them, and
    // they end ops still blocked on a stalled peer.
    if (pending.sqe->opcode == IORING_OP_ASYNC_CANCEL) continue;
    io_uring_prep_nop(pending.sqe);
    pending.sqe->user_data = slots_.codec().Internal();
  }
  if (left_buffers == 0) return shutdown_status_ = absl::OkStatus();
  return shutdown_status_ = absl::UnavailableError(absl::StrCat(
             "Shutdown: ", left_buffers, " buffer(s), ", left_bytes,
             " bytes, on ", left_connections,
             " connection(s) were still referenced by the kernel after ",
             absl::FormatDuration(timeout),
             " and were released as KernelMayStillRead: keep that memory until "
             "the "
             "executor is destroyed and the sockets reset (SO_LINGER 0) and "
             "closed"));
}

bool Executor::Impl::Idle(ConnectionId id) const {
  const Connection* c = Find(id);
  return c == nullptr || (c->queue.held() == 0 && c->slots_held == 0);
}

absl::Status Executor::Impl::ConnectionError(ConnectionId id) const {
  const Connection* c = Find(id);
  if (c == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("connection ", id.value, " is not attached"));
  }
  return c->state == State::kFailed || c->state == State::kClosed
             ? c->error
             : absl::OkStatus();
}

bool Executor::Impl::ZeroCopyEnabled(ConnectionId id) const {
  const Connection* c = Find(id);
  return c != nullptr && c->zc.enabled;
}

absl::StatusOr<SendStats> Executor::Impl::connection_stats(
    ConnectionId id) const {
  const Connection* c = Find(id);
  if (c == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("connection ", id.value, " is not attached"));
  }
  return StatsOf(*c);
}

RingStats Executor::Impl::stats() const {
  RingStats r = ring_stats_;
  r.totals = closed_totals_;
  r.connections_open = 0;
  for (const Connection& c : conns_) {
    if (!c.in_use()) continue;
    ++r.connections_open;
    r.totals.Add(StatsOf(c));
  }
  r.totals.stray_notifications += stray_notifications_;
  r.totals.bytes_awaiting_notification = budget_.total();
  r.totals.peak_bytes_awaiting_notification = budget_.peak();
  return r;
}

absl::Status Executor::Impl::RegisterBuffers(absl::Span<const iovec> regions) {
  if (in_callback_) {
    return absl::FailedPreconditionError(
        "RegisterBuffers called from inside the release callback");
  }
  if (shut_down_) {
    return absl::FailedPreconditionError(
        "RegisterBuffers called after Shutdown");
  }
  if (absl::Status s = CheckThread("RegisterBuffers"); !s.ok()) return s;
  if (!regions_.empty()) {
    return absl::FailedPreconditionError(
        "RegisterBuffers: buffers are already registered");
  }
  if (absl::Status s = RegisteredRegions::Validate(regions); !s.ok()) {
    return s;
  }
  const int ret = ring_->RegisterBuffers(regions);
  if (ret < 0) return absl::ErrnoToStatus(-ret, "io_uring_register_buffers");
  regions_.Set(regions);
  ChooseCap();
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Planning and encoding

bool Executor::Impl::PrepareChain(uint32_t index) {
  Connection& c = conns_[index];
  if (c.state != State::kOpen || c.chain_ops > 0 || !c.queue.HasUnsent()) {
    return true;
  }
  const uint32_t space = ring_->SqSpaceLeft();
  if (space == 0) return false;
  PlanOptions po = c.options.plan;
  po.max_ops_per_chain = std::min(po.max_ops_per_chain, space);
  if (c.zc.adaptive_off && c.zc.retry_in_chains == 0 &&
      c.options.adaptive_retry_chains != 0) {
    // Adaptive mode looks again: the route may do zero-copy by now.
    c.zc.adaptive_off = false;
    c.zc.enabled = true;
    c.zc.copied_in_a_row = 0;
    ++c.stats.adaptive_retries;
  }
  if (!c.zc.enabled || !budget_.zero_copy_possible()) {
    po.zc_threshold = PlanOptions::kNever;
  }
  if (c.zc.pause_chains > 0 && po.zc_threshold != PlanOptions::kNever) {
    --c.zc.pause_chains;
    ++c.stats.chains_zc_paused;
    po.zc_threshold = PlanOptions::kNever;
  }
  uint64_t limit = c.queue.end_seq();
  if (c.zc.copy_until_seq > c.queue.sent_seq()) {
    limit = std::min(limit, c.zc.copy_until_seq);
    po.zc_threshold = PlanOptions::kNever;
  }
  const size_t take = PlanUnderCap(index, limit, po);
  if (take > 0) EncodeChain(index, take);
  return true;
}

size_t Executor::Impl::PlanUnderCap(uint32_t index, uint64_t limit,
                                    PlanOptions po) {
  // Keep unregistered zero-copy bytes under the cap: submit the longest
  // prefix that fits. With nothing that fits, the budget decides: wait for
  // this connection's own notifications, send by copy when others hold the
  // room (they may never give it back: a peer that stopped reading must not
  // stall the rest), or plan smaller ops when one alone is above the cap.
  Connection& c = conns_[index];
  for (int attempt = 0; attempt < 2; ++attempt) {
    uint64_t room = budget_.room();
    if (!PlanChainOps(index, limit, po, &room)) return 0;
    if (!chain_.empty()) return chain_.size();
    switch (budget_.Decide(c.zc_account)) {
      case NotificationBudget::NoRoom::kWaitForOwn:
        ++c.stats.cap_waits;
        c.phase = Phase::kCapWaiting;
        return 0;
      case NotificationBudget::NoRoom::kCopy:
        ++c.stats.cap_copies;
        po.zc_threshold = PlanOptions::kNever;
        break;
      case NotificationBudget::NoRoom::kSmallerOps:
        po.max_bytes_per_op =
            std::min(po.max_bytes_per_op, budget_.largest_op_bytes());
        break;
      case NotificationBudget::NoRoom::kCopyAlways:
        po.zc_threshold = PlanOptions::kNever;
        break;
    }
  }
  return 0;  // not reached: the second plan fits
}

bool Executor::Impl::PlanChainOps(uint32_t index, uint64_t limit,
                                  const PlanOptions& po, uint64_t* room) {
  Connection& c = conns_[index];
  chain_.clear();
  c.chain_used = 0;
  c.gather_used = 0;
  uint64_t seq = c.queue.sent_seq();
  uint64_t offset = c.queue.sent_offset();
  // Plain buffers up to the next prepared message, then the message, and
  // so on while the chain has room: a chain is cut where an op does not fit
  // (the ops limit, or the cap's room).
  auto next = c.messages.lower_bound(seq);
  while (seq < limit && chain_.size() < po.max_ops_per_chain) {
    const size_t max_ops = po.max_ops_per_chain - chain_.size();
    const size_t boundary = chain_.size();
    if (next != c.messages.end() && next->first == seq) {
      bool complete = false;
      if (absl::Status s = AppendMessageOps(c, *next->second, seq, offset, po,
                                            max_ops, room, &complete);
          !s.ok()) {
        Fail(index, absl::InternalError(absl::StrCat(
                        "planner rejected a prepared message: ", s.message())));
        chain_.clear();
        return false;
      }
      JoinCopyOps(c, boundary, po);
      if (!complete) break;
      ++seq;
      offset = 0;
      ++next;
      continue;
    }
    const uint64_t end =
        next == c.messages.end() ? limit : std::min(limit, next->first);
    const absl::Span<const iovec> buffers = c.queue.Range(seq, end);
    PlanOptions plain = po;
    plain.max_ops_per_chain = static_cast<uint32_t>(max_ops);
    if (absl::Status s = PlanChain(buffers, offset, plain, &c.plan); !s.ok()) {
      Fail(index, absl::InternalError(absl::StrCat(
                      "planner rejected the queue: ", s.message())));
      chain_.clear();
      return false;
    }
    const size_t added = AppendPlainOps(c, c.plan, buffers, seq, max_ops, room);
    JoinCopyOps(c, boundary, po);
    if (added < c.plan.ops().size() || !c.plan.complete()) break;
    seq = end;
    offset = 0;
  }
  return true;
}

size_t Executor::Impl::AppendPlainOps(Connection& c, const Plan& plan,
                                      absl::Span<const iovec> buffers,
                                      uint64_t seq, size_t max_ops,
                                      uint64_t* room) {
  size_t added = 0;
  for (const Op& op : plan.ops()) {
    if (added == max_ops) break;
    const size_t piece = TakePieces(c, op.iov_count);
    const OpLayout layout = LayOutOp(op, buffers, seq, regions_,
                                     ring_->features(), &c.chain_iovs[piece]);
    if (layout.memlock_charge > *room) {
      c.chain_used = piece;
      break;
    }
    *room -= layout.memlock_charge;
    chain_.push_back(ChainOp{op, layout, nullptr, piece, seq + op.first_iov,
                             op.iov_count, op.offset, false, 0});
    MaybeGather(c, &chain_.back());
    ++added;
  }
  return added;
}

absl::Status Executor::Impl::AppendMessageOps(
    Connection& c, const PreparedMessage& m, uint64_t seq, uint64_t offset,
    const PlanOptions& po, size_t max_ops, uint64_t* room, bool* complete) {
  // From the start the message's kept plan; from inside it (a resumption
  // after a short send, or the rest of a message whose ops did not fit in
  // one chain) a plan of its rest.
  const Plan* plan;
  size_t base = 0;  // the message buffer the plan's buffer 0 is
  if (offset == 0) {
    // Kept under the connection's own ops limit, not this chain's (which the
    // free SQEs cut): the chain takes the first max_ops of its ops.
    PlanOptions whole = po;
    whole.max_ops_per_chain = c.options.plan.max_ops_per_chain;
    absl::Status error;
    plan = MessagePlan(m, whole, &error);
    if (plan == nullptr) return error;
  } else {
    const PreparedMessage::Position p = m.Locate(offset);
    base = p.buffer;
    PlanOptions rest = po;
    rest.max_ops_per_chain = static_cast<uint32_t>(max_ops);
    if (absl::Status s =
            PlanChain(m.buffers().subspan(base), p.offset, rest, &c.plan);
        !s.ok()) {
      return s;
    }
    plan = &c.plan;
  }
  size_t added = 0;
  const absl::Span<const iovec> buffers = m.buffers();
  for (const Op& op : plan->ops()) {
    if (added == max_ops) break;
    const size_t first = base + op.first_iov;
    const uint64_t start = m.BytesBefore(first) + op.offset;
    const uint64_t stop = start + op.bytes;
    ChainOp co{op, OpLayout{}, nullptr, 0, seq, 1, start, false, 0};
    co.op.first_iov = static_cast<uint32_t>(first);
    if (op.offset == 0 && stop == m.BytesBefore(first + op.iov_count)) {
      // The op sends its buffers whole: the SQE points at the message's own.
      co.borrowed = buffers.data() + first;
      ChooseBuffer(op, absl::MakeConstSpan(co.borrowed, op.iov_count), regions_,
                   ring_->features(), &co.layout);
    } else {
      co.piece = TakePieces(c, op.iov_count);
      co.layout = LayOutOp(co.op, buffers, 0, regions_, ring_->features(),
                           &c.chain_iovs[co.piece]);
    }
    if (co.layout.memlock_charge > *room) {
      if (co.borrowed == nullptr) c.chain_used = co.piece;
      break;
    }
    *room -= co.layout.memlock_charge;
    // The queue sees the message as one buffer: positions are byte offsets
    // into it.
    if (stop == m.bytes()) {
      co.layout.end_seq = seq + 1;
      co.layout.end_offset = 0;
    } else {
      co.layout.end_seq = seq;
      co.layout.end_offset = stop;
    }
    chain_.push_back(co);
    MaybeGather(c, &chain_.back());
    ++added;
  }
  *complete = added == plan->ops().size() && plan->complete();
  return absl::OkStatus();
}

void Executor::Impl::MaybeGather(Connection& c, ChainOp* co) {
  Op& op = co->op;
  const uint64_t below = c.options.gather_below;
  if (IsZeroCopy(op.kind) || op.bytes >= below * op.iov_count) return;
  // The op before it joins when it is gathered and ends where gathering
  // goes on, or when it is a lone small send (a header before a body: at a
  // boundary of segments, the planner never sees the two together).
  ChainOp* prev = chain_.size() >= 2 ? &chain_[chain_.size() - 2] : nullptr;
  bool prev_gathered = prev != nullptr && prev->gathered &&
                       static_cast<char*>(c.chain_iovs[prev->piece].iov_base) +
                               c.chain_iovs[prev->piece].iov_len ==
                           c.gather.get() + c.gather_used;
  bool prev_lone = prev != nullptr && !prev->gathered &&
                   prev->op.kind == OpKind::kSend && prev->op.bytes < below;
  // ... and only when the two together keep to the planner's op limit.
  const bool fits =
      prev != nullptr &&
      prev->op.bytes <= c.options.plan.max_bytes_per_op - op.bytes;
  prev_gathered = prev_gathered && fits;
  prev_lone = prev_lone && fits;
  // A lone send gathered on its own would only be one more copy.
  if (op.kind == OpKind::kSend && !prev_gathered && !prev_lone) return;
  const uint64_t need = op.bytes + (prev_lone ? prev->op.bytes : 0);
  if (need > c.options.gather_bytes - c.gather_used) return;
  if (c.gather == nullptr) TakeGather(c);
  char* const start = c.gather.get() + c.gather_used;
  char* at = start;
  auto copy = [&at](const iovec* pieces, uint32_t n) {
    for (uint32_t k = 0; k < n; ++k) {
      CopySmall(at, static_cast<const char*>(pieces[k].iov_base),
                pieces[k].iov_len);
      at += pieces[k].iov_len;
    }
  };
  if (prev_lone) {
    copy(
        prev->borrowed != nullptr ? prev->borrowed : &c.chain_iovs[prev->piece],
        1);
  }
  copy(co->borrowed != nullptr ? co->borrowed : &c.chain_iovs[co->piece],
       op.iov_count);
  c.gather_used += need;
  // The op's pieces were the last laid out (or borrowed).
  if (co->borrowed == nullptr) c.chain_used = co->piece;
  if (!prev_gathered && !prev_lone) {
    co->borrowed = nullptr;
    co->piece = TakePieces(c, 1);
    c.chain_iovs[co->piece] = iovec{start, static_cast<size_t>(op.bytes)};
    op.kind = OpKind::kSend;
    op.first_iov = 0;
    op.iov_count = 1;
    op.offset = 0;
    co->gathered = true;
    co->gathered_bytes = op.bytes;
    return;
  }
  // One send of both: it holds the buffers of both (adjacent ranges of the
  // queue) and ends where this one ends.
  if (prev_gathered) {
    c.chain_iovs[prev->piece].iov_len += op.bytes;
  } else if (prev->borrowed != nullptr) {
    prev->borrowed = nullptr;
    prev->piece = TakePieces(c, 1);
    c.chain_iovs[prev->piece] = iovec{start, static_cast<size_t>(need)};
  } else {
    c.chain_iovs[prev->piece] = iovec{start, static_cast<size_t>(need)};
  }
  prev->op.kind = OpKind::kSend;
  prev->op.first_iov = 0;
  prev->op.iov_count = 1;
  prev->op.offset = 0;
  prev->op.bytes += op.bytes;
  prev->gathered = true;
  prev->gathered_bytes += need;
  prev->layout.end_seq = co->layout.end_seq;
  prev->layout.end_offset = co->layout.end_offset;
  prev->hold_count =
      static_cast<uint32_t>(std::max(prev->first_seq + prev->hold_count,
                                     co->first_seq + co->hold_count) -
                            prev->first_seq);
  chain_.pop_back();
}

void Executor::Impl::JoinCopyOps(Connection& c, size_t i,
                                 const PlanOptions& po) {
  if (i == 0 || i >= chain_.size()) return;
  ChainOp& a = chain_[i - 1];
  const ChainOp& b = chain_[i];
  const uint32_t na = a.op.iov_count;
  const uint32_t nb = b.op.iov_count;
  if (IsZeroCopy(a.op.kind) || IsZeroCopy(b.op.kind) ||
      na + nb > po.max_iovs_per_op || b.op.bytes > po.max_bytes_per_op ||
      a.op.bytes > po.max_bytes_per_op - b.op.bytes) {
    return;
  }
  // The pieces of both, in order, at the end of chain_iovs (indices, not
  // pointers, into it across the resize).
  const size_t piece = TakePieces(c, na + nb);
  iovec* to = c.chain_iovs.data() + piece;
  const iovec* from_a =
      a.borrowed != nullptr ? a.borrowed : c.chain_iovs.data() + a.piece;
  const iovec* from_b =
      b.borrowed != nullptr ? b.borrowed : c.chain_iovs.data() + b.piece;
  std::memcpy(to, from_a, na * sizeof(iovec));
  std::memcpy(to + na, from_b, nb * sizeof(iovec));
  a.op.kind =
      po.copy_op == CopyOp::kWritev ? OpKind::kWritev : OpKind::kSendmsg;
  a.op.first_iov = 0;
  a.op.iov_count = na + nb;
  a.op.offset = 0;
  a.op.bytes += b.op.bytes;
  a.borrowed = nullptr;
  a.piece = piece;
  a.layout.end_seq = b.layout.end_seq;
  a.layout.end_offset = b.layout.end_offset;
  a.hold_count = static_cast<uint32_t>(
      std::max(a.first_seq + a.hold_count, b.first_seq + b.hold_count) -
      a.first_seq);
  a.gathered = false;  // more than the one gathered piece now
  a.gathered_bytes += b.gathered_bytes;
  chain_.erase(chain_.begin() + i);
}

void Executor::Impl::TakeGather(Connection& c) {
  if (!gather_pool_.empty() &&
      gather_pool_.back().size >= c.options.gather_bytes) {
    c.gather = std::move(gather_pool_.back().buffer);
    c.gather_size = gather_pool_.back().size;
    gather_pooled_ -= c.gather_size;
    gather_pool_.pop_back();
  } else {
    c.gather.reset(new char[c.options.gather_bytes]);
    c.gather_size = c.options.gather_bytes;
  }
}

void Executor::Impl::ReturnGather(Connection& c) {
  if (c.gather == nullptr) return;
  if (c.gather_size <= kMaxPooledGather - gather_pooled_) {
    gather_pooled_ += c.gather_size;
    gather_pool_.push_back({c.gather_size, std::move(c.gather)});
  }
  c.gather.reset();
  c.gather_size = 0;
}

const Plan* Executor::Impl::MessagePlan(const PreparedMessage& m,
                                        const PlanOptions& po,
                                        absl::Status* error) {
  const MessagePlanKey key{
      m.id(),          po.zc_threshold,    po.max_bytes_per_op,
      po.zc_gap_bytes, po.max_iovs_per_op, po.max_ops_per_chain,
      po.copy_op};
  if (auto it = message_plans_.find(key); it != message_plans_.end()) {
    return &it->second;
  }
  Plan plan;
  if (absl::Status s = PlanChain(m.buffers(), 0, po, &plan); !s.ok()) {
    *error = std::move(s);
    return nullptr;
  }
  if (message_plans_.size() >= kMaxMessagePlans ||
      plan.ops().size() > kMaxMessagePlanOps - message_plan_ops_) {
    message_plans_.clear();
    message_plan_ops_ = 0;
  }
  message_plan_ops_ += plan.ops().size();
  return &message_plans_.emplace(key, std::move(plan)).first->second;
}

void Executor::Impl::EncodeChain(uint32_t index, size_t take) {
  Connection& c = conns_[index];
  c.chain_msgs.resize(take);
  io_uring_sqe* previous = nullptr;
  for (size_t i = 0; i < take; ++i) {
    const ChainOp& co = chain_[i];
    const Op& op = co.op;
    io_uring_sqe* sqe = ring_->GetSqe();
    if (sqe == nullptr) {
      // Not expected (the planner made at most the free SQEs' worth of
      // ops), but a chain must never link into whatever is submitted next.
      if (previous != nullptr) previous->flags &= ~IOSQE_IO_LINK;
      break;
    }
    previous = sqe;
    const OpLayout& layout = co.layout;
    const uint32_t slot = slots_.Allocate();
    OpSlot& s = slots_.at(slot);
    s.kind = op.kind;
    s.conn = index;
    s.first_seq = co.first_seq;
    s.iov_count = co.hold_count;
    s.offset = co.offset;
    s.bytes = op.bytes;
    s.end_seq = layout.end_seq;
    s.end_offset = layout.end_offset;
    s.charge = layout.memlock_charge;
    if (s.charge > 0) budget_.Charge(c.zc_account, s.charge);
    if (layout.fixed_buffer >= 0) ++c.stats.fixed_buffer_ops;
    const iovec* pieces =
        co.borrowed != nullptr ? co.borrowed : c.chain_iovs.data() + co.piece;
    EncodeSqe(op, absl::MakeConstSpan(pieces, op.iov_count), layout, c.fd,
              i + 1 < take ? IOSQE_IO_LINK : 0, slots_.user_data(slot),
              ring_->features(), &c.chain_msgs[i], sqe);
    c.queue.Hold(s.first_seq, s.iov_count);
    ++c.slots_held;
    ++c.chain_ops;
    pending_sqes_.push_back({sqe, ring_->SqesObtained() - 1});
    ++c.stats.ops[static_cast<int>(op.kind)];
    if (co.gathered_bytes > 0) {
      ++c.stats.gathered_ops;
      c.stats.bytes_gathered += co.gathered_bytes;
    }
  }
  if (c.chain_ops == 0) return;
  c.phase = Phase::kInFlight;
  ++c.stats.chains;
  // Adaptive mode counts the chains it sends by copy before it looks again.
  if (c.zc.adaptive_off && c.zc.retry_in_chains > 0) --c.zc.retry_in_chains;
  if (c.resume_pending) {
    ++c.stats.chains_resumed;
    c.resume_pending = false;
  }
}

// ---------------------------------------------------------------------------
// Completions

void Executor::Impl::Handle(const Completion& cqe) {
  const bool notif = (cqe.flags & IORING_CQE_F_NOTIF) != 0;
  uint32_t index;
  OpSlot* found = slots_.Find(cqe.user_data, &index);
  if (found == nullptr) {
    // Our cancels and NOPs; or a notification for an op whose first
    // completion had no F_MORE (the kernel posts one for a cancelled
    // zero-copy op anyway): its buffers were released already, and the
    // slot may serve another op by now.
    if (notif) ++stray_notifications_;
    return;
  }
  OpSlot& slot = *found;
  const uint32_t conn = slot.conn;
  if (notif) {
    OnNotification(conn, cqe.res);
    if (slot.send_done) {
      FinishSlot(index);
    } else {
      slot.notif_seen = true;
    }
    return;
  }
  slot.send_done = true;
  OnSendResult(conn, slot, cqe.res);
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!IsZeroCopy(slot.kind) || !more || slot.notif_seen) FinishSlot(index);
  Connection& c = conns_[conn];
  if (--c.chain_ops == 0) ChainDone(conn);
}

void Executor::Impl::OnNotification(uint32_t conn_index, int32_t res) {
  Connection& c = conns_[conn_index];
  ++c.stats.notifications;
  if (static_cast<uint32_t>(res) & IORING_NOTIF_USAGE_ZC_COPIED) {
    ++c.stats.copied_notifications;
    if (++c.zc.copied_in_a_row >= c.options.adaptive_copied_limit &&
        c.options.adaptive_zero_copy && c.zc.enabled) {
      c.zc.enabled = false;
      c.zc.adaptive_off = true;
      c.zc.retry_in_chains = c.zc.retry_next;
      c.zc.retry_next = std::min(
          c.zc.retry_next * 2, c.options.adaptive_retry_chains * kMostRetries);
      c.stats.adaptive_disabled = 1;
    }
  } else {
    c.zc.copied_in_a_row = 0;
  }
}

void Executor::Impl::OnSendResult(uint32_t conn_index, OpSlot& slot,
                                  int32_t res) {
  Connection& c = conns_[conn_index];
  const bool zc = IsZeroCopy(slot.kind);
  if (res < 0) {
    const int err = -res;
    c.chain_broken = true;
    if (err == ECANCELED) {
      ++c.stats.cancelled_ops;
    } else if (c.state != State::kOpen) {
      // Already failed or closed: the first error is the one reported.
    } else if (zc && err == ENOMEM) {
      ++c.stats.fallbacks_enomem;
      c.zc.copy_until_seq =
          std::max(c.zc.copy_until_seq, slot.first_seq + slot.iov_count);
      // Over and over: the memlock budget is taken (by other rings or
      // processes of this user, say); stop trying for a while.
      if (++c.zc.enomem_in_a_row >= kEnomemPauseAfter) {
        c.zc.enomem_in_a_row = 0;
        c.zc.pause_chains = c.zc.pause_next;
        c.zc.pause_next = std::min(c.zc.pause_next * 2, kMostZcPauseChains);
        ++c.stats.enomem_pauses;
      }
    } else if (zc && (err == EOPNOTSUPP || err == EINVAL)) {
      ++c.stats.fallbacks_unsupported;
      c.zc.enabled = false;
      c.zc.adaptive_off = false;  // for good: adaptive mode does not retry
    } else if (IsTransient(err) &&
               ++c.transient_in_a_row < kMaxTransientInARow) {
      ++c.stats.retried_errors;
    } else {
      Fail(conn_index,
           absl::ErrnoToStatus(err, absl::StrCat("send on fd ", c.fd, " (",
                                                 OpKindName(slot.kind), ")")));
    }
    return;
  }
  if (res == 0 && slot.bytes > 0) {
    // No progress and no error: count it like a transient error.
    c.chain_broken = true;
    ++c.stats.short_sends;
    if (++c.transient_in_a_row >= kMaxTransientInARow &&
        c.state == State::kOpen) {
      Fail(conn_index, absl::UnavailableError(absl::StrCat(
                           "send on fd ", c.fd, " made no progress ",
                           kMaxTransientInARow, " times in a row")));
    }
    return;
  }
  if (c.chain_broken || slot.first_seq != c.queue.sent_seq() ||
      slot.offset != c.queue.sent_offset()) {
    // An op ran after an earlier op of its chain came up short: the stream
    // has a hole. Only a kernel that ignores MSG_WAITALL/links can do this.
    if (c.state == State::kOpen) {
      Fail(conn_index, absl::InternalError(absl::StrCat(
                           "send on fd ", c.fd,
                           " completed out of order after a short op; the "
                           "stream is corrupt")));
    }
    return;
  }
  uint64_t moved = std::min<uint64_t>(static_cast<uint64_t>(res), slot.bytes);
  c.transient_in_a_row = 0;
  if (zc) {
    c.stats.bytes_zero_copy += moved;
    c.zc.enomem_in_a_row = 0;
    c.zc.pause_next = kFirstZcPauseChains;
  } else {
    c.stats.bytes_copied += moved;
  }
  if (moved < slot.bytes) {
    ++c.stats.short_sends;
    c.chain_broken = true;
  }
  if (moved == slot.bytes) {
    c.queue.SetSent(slot.end_seq, slot.end_offset);
  } else {
    c.queue.AdvanceSent(moved);
  }
}

void Executor::Impl::FinishSlot(uint32_t slot_index) {
  const OpSlot s = slots_.at(slot_index);
  slots_.Free(slot_index);
  Connection& c = conns_[s.conn];
  --c.slots_held;
  if (s.charge > 0) Uncharge(c, s.charge);
  c.queue.Unhold(s.first_seq, s.iov_count);
  ReleaseEligible(s.conn, s.first_seq, s.first_seq + s.iov_count);
  MaybeFree(s.conn);
}

void Executor::Impl::ChainDone(uint32_t conn_index) {
  Connection& c = conns_[conn_index];
  c.phase = Phase::kIdle;
  // Every op of the chain has completed: the kernel is done with the
  // gathered bytes (only copy ops read them).
  ReturnGather(c);
  const bool more = c.state == State::kOpen && c.queue.HasUnsent();
  if (c.chain_broken && more) c.resume_pending = true;
  c.chain_broken = false;
  if (more) MarkReady(conn_index);
}

void Executor::Impl::Fail(uint32_t conn_index, absl::Status status) {
  Connection& c = conns_[conn_index];
  if (c.state != State::kOpen) return;
  c.state = State::kFailed;
  c.error = std::move(status);
  ReleaseEligible(conn_index, c.queue.first_seq(), c.queue.end_seq());
}

// Releases the buffers in [from_seq, to_seq) that no op references and that
// are fully sent, or all of them once the connection has stopped: in runs,
// one callback per run when the caller takes batches.
void Executor::Impl::ReleaseEligible(uint32_t conn_index, uint64_t from_seq,
                                     uint64_t to_seq) {
  uint64_t cursor = from_seq;
  SendQueue::Run run;
  // conns_[conn_index] each time: a callback may Enqueue, never Attach, so
  // the connection stays put, but its queue may grow.
  while (conns_[conn_index].queue.NextReleasable(
      &cursor, to_seq, conns_[conn_index].stopped(), &run)) {
    if (run.sent) {
      ReleaseRun(conn_index, run, absl::OkStatus());
    } else {
      const absl::Status status = conns_[conn_index].error;
      ReleaseRun(conn_index, run, status);
    }
  }
  conns_[conn_index].queue.Compact();
}

uint64_t Executor::Impl::ReleaseRun(uint32_t conn_index,
                                    const SendQueue::Run& run,
                                    const absl::Status& status) {
  Connection& c = conns_[conn_index];
  const uint64_t bytes = c.queue.Release(run, &release_scratch_);
  const size_t n = run.end - run.first;
  if (!c.messages.empty()) {
    auto it = c.messages.lower_bound(run.first);
    while (it != c.messages.end() && it->first < run.end) {
      it = c.messages.erase(it);
    }
  }
  if (status.ok()) {
    c.stats.buffers_released += n;
  } else if (KernelMayStillRead(status)) {
    c.stats.buffers_kernel_may_read += n;
  } else {
    c.stats.buffers_released_failed += n;
  }
  const ConnectionId id = IdOf(conn_index);
  ++in_callback_;
  if (options_.on_release_batch) {
    options_.on_release_batch(id, release_scratch_, status);
  } else {
    for (uint64_t token : release_scratch_)
      options_.on_release(id, token, status);
  }
  --in_callback_;
  return bytes;
}

void Executor::Impl::MaybeFree(uint32_t conn_index) {
  Connection& c = conns_[conn_index];
  if (c.state != State::kClosed || c.queue.held() > 0 || c.slots_held > 0) {
    return;
  }
  closed_totals_.Add(StatsOf(c));
  socket_to_conn_.erase(c.socket_key);
  c.state = State::kFree;
  c.generation = c.generation + 1 == 0 ? 1 : c.generation + 1;
  // Cleared and swapped out: a freed connection keeps no queue memory.
  c.queue.Clear();
  c.messages.clear();
  ReturnGather(c);
  std::vector<iovec>().swap(c.chain_iovs);
  c.chain_used = 0;
  std::vector<msghdr>().swap(c.chain_msgs);
  free_conns_.push_back(conn_index);
}

void Executor::Impl::SendCancel(uint32_t index) {
  Connection& c = conns_[index];
  if (c.cancel == Cancel::kSent) return;
  // By fd where the kernel can (5.19+), else each op in flight by user_data.
  std::vector<uint64_t> targets;
  // On the caller's ring never by fd: that would cancel the caller's own
  // ops on the socket (its recv) too.
  if (shared_ || !ring_->features().async_cancel_fd) {
    slots_.ForEachInUse([&](uint32_t i, const OpSlot& slot) {
      if (slot.conn == index && !slot.send_done) {
        targets.push_back(slots_.user_data(i));
      }
    });
    if (targets.empty()) return;  // only notifications are outstanding
  }
  const size_t needed = targets.empty() ? 1 : targets.size();
  if (ring_->SqSpaceLeft() < needed) {
    if (c.cancel != Cancel::kDue) {
      c.cancel = Cancel::kDue;
      cancels_due_.push_back(index);
    }
    return;
  }
  for (size_t k = 0; k < needed; ++k) {
    io_uring_sqe* sqe = ring_->GetSqe();
    if (targets.empty()) {
      io_uring_prep_cancel_fd(sqe, c.fd, IORING_ASYNC_CANCEL_ALL);
    } else {
      io_uring_prep_cancel64(sqe, targets[k], 0);
    }
    sqe->user_data = slots_.codec().Internal();
    pending_sqes_.push_back({sqe, ring_->SqesObtained() - 1});
  }
  c.cancel = Cancel::kSent;
}

void Executor::Impl::RetryCancels() {
  std::vector<uint32_t> due;
  due.swap(cancels_due_);
  for (uint32_t index : due) {
    Connection& c = conns_[index];
    if (c.cancel == Cancel::kDue) c.cancel = Cancel::kNone;
    if (c.state == State::kClosed && c.slots_held > 0) SendCancel(index);
  }
}

void Executor::Impl::UndoUnsubmitted(uint32_t index) {
  PruneTaken();
  std::vector<uint32_t> undone;
  for (const PendingSqe& pending : pending_sqes_) {
    io_uring_sqe* sqe = pending.sqe;
    uint32_t slot;
    const OpSlot* op = slots_.Find(sqe->user_data, &slot);
    if (op == nullptr || op->conn != index) continue;
    io_uring_prep_nop(sqe);
    sqe->user_data = slots_.codec().Internal();
    undone.push_back(slot);
  }
  for (uint32_t slot : undone) {
    // Sent nothing: the stream position stays, the buffers come back with
    // the connection's status.
    if (--conns_[index].chain_ops == 0) {
      conns_[index].phase = Phase::kIdle;
      ReturnGather(conns_[index]);
    }
    FinishSlot(slot);
  }
}

// ---------------------------------------------------------------------------
// Executor

Executor::Executor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Executor::~Executor() = default;

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(
    ExecutorOptions options) {
  if (options.user_data_tag != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "user_data_tag is ", options.user_data_tag,
        "; it is for an executor on the caller's ring (CreateOnRing), and "
        "must be 0 for one on a ring of its own"));
  }
  if (options.cq_factor == 0) {
    return absl::InvalidArgumentError("cq_factor is 0; it must be at least 1");
  }
  if (options.ignore_sigpipe) IgnoreSigpipeIfDefault();
  IoUringRingOptions ring_options;
  ring_options.sq_entries = options.sq_entries;
  ring_options.cq_entries = options.sq_entries * options.cq_factor;
  ring_options.defer_taskrun = options.defer_taskrun;
  absl::StatusOr<std::unique_ptr<Ring>> ring = MakeIoUringRing(ring_options);
  if (!ring.ok()) return ring.status();
  return CreateWithRing(*std::move(ring), std::move(options));
}

absl::StatusOr<std::unique_ptr<Executor>> Executor::CreateOnRing(
    struct io_uring* ring, ExecutorOptions options) {
  if (options.user_data_tag == 0 || options.user_data_tag == 0xff) {
    return absl::InvalidArgumentError(absl::StrCat(
        "user_data_tag is ", options.user_data_tag,
        "; on the caller's ring it must be 1..254 (0 is the top byte of "
        "user-space pointers, 255 that of liburing's own timeout "
        "completions), and no user_data of the caller's may have it as its "
        "top byte"));
  }
  if (options.ignore_sigpipe) IgnoreSigpipeIfDefault();
  absl::StatusOr<std::unique_ptr<Ring>> borrowed = BorrowIoUringRing(ring);
  if (!borrowed.ok()) return borrowed.status();
  return CreateWithRing(*std::move(borrowed), std::move(options));
}

absl::StatusOr<std::unique_ptr<Executor>> Executor::CreateWithRing(
    std::unique_ptr<Ring> ring, ExecutorOptions options) {
  if (ring == nullptr) return absl::InvalidArgumentError("ring is null");
  if (options.user_data_tag == 0xff) {
    return absl::InvalidArgumentError(
        "user_data_tag is 255; it must be 0 (a ring of the executor's own) "
        "or 1..254 (the caller's ring): 255 is the top byte of liburing's "
        "own timeout completions");
  }
  if (!options.on_release && !options.on_release_batch) {
    return absl::InvalidArgumentError(
        "ExecutorOptions::on_release and on_release_batch are both empty; "
        "every buffer is handed back through one of them");
  }
  return std::unique_ptr<Executor>(new Executor(
      std::make_unique<Impl>(std::move(ring), std::move(options))));
}

absl::StatusOr<ConnectionId> Executor::Attach(int fd,
                                              const ConnectionOptions& o) {
  return impl_->Attach(fd, o);
}
absl::Status Executor::Enqueue(ConnectionId c, const void* data, size_t length,
                               uint64_t token) {
  return impl_->Enqueue(c, data, length, token);
}
absl::Status Executor::Enqueue(ConnectionId c, absl::Span<const iovec> buffers,
                               absl::Span<const uint64_t> tokens) {
  return impl_->Enqueue(c, buffers, tokens);
}
absl::Status Executor::EnqueueMessage(
    ConnectionId c, const std::shared_ptr<const PreparedMessage>& message,
    uint64_t token) {
  return impl_->EnqueueMessage(c, message, token);
}
absl::Status Executor::Flush() { return impl_->Flush(); }
absl::StatusOr<size_t> Executor::Poll(absl::Duration timeout) {
  return impl_->Poll(timeout);
}
absl::StatusOr<int> Executor::WatchFd() { return impl_->WatchFd(); }
absl::Status Executor::Prepare() { return impl_->Prepare(); }
bool Executor::Owns(uint64_t user_data) const { return impl_->Owns(user_data); }
bool Executor::HandleCompletion(const io_uring_cqe& cqe) {
  return impl_->HandleCompletion(Completion{cqe.user_data, cqe.res, cqe.flags});
}
size_t Executor::HandleCompletions(absl::Span<io_uring_cqe* const> cqes) {
  size_t handled = 0;
  for (const io_uring_cqe* cqe : cqes) {
    handled += impl_->HandleCompletion(
        Completion{cqe->user_data, cqe->res, cqe->flags});
  }
  return handled;
}
bool Executor::Idle() const { return impl_->Idle(); }
absl::StatusOr<size_t> Executor::HandleReady() { return impl_->HandleReady(); }
absl::Status Executor::Drain(absl::Duration timeout) {
  return impl_->Drain(timeout);
}
absl::Status Executor::Close(ConnectionId c) { return impl_->Close(c); }
absl::Status Executor::Abort(ConnectionId c) { return impl_->Abort(c); }
absl::Status Executor::Shutdown(absl::Duration timeout) {
  return impl_->Shutdown(timeout);
}
bool Executor::Idle(ConnectionId c) const { return impl_->Idle(c); }
absl::Status Executor::ConnectionError(ConnectionId c) const {
  return impl_->ConnectionError(c);
}
bool Executor::ZeroCopyEnabled(ConnectionId c) const {
  return impl_->ZeroCopyEnabled(c);
}
absl::StatusOr<SendStats> Executor::connection_stats(ConnectionId c) const {
  return impl_->connection_stats(c);
}
RingStats Executor::stats() const { return impl_->stats(); }
const RingFeatures& Executor::features() const { return impl_->features(); }
uint64_t Executor::max_bytes_awaiting_notification() const {
  return impl_->cap();
}
std::string Executor::DescribeNotificationCap() const {
  return impl_->cap_description();
}
absl::Status Executor::RegisterBuffers(absl::Span<const iovec> regions) {
  return impl_->RegisterBuffers(regions);
}

}  // namespace zcplan
