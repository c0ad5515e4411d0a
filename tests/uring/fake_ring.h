// SPDX-License-Identifier: Apache-2.0
// A state-based fake of the ring seam (uring/ring.h) for deterministic tests.
//
// `FakeRing` executes the SQEs it is given against in-memory sockets: each fd
// number is a key to a byte stream (`received(fd)`) that a send appends to.
// The fd numbers are never touched. SQEs are decoded exactly as the kernel
// reads them (the field layout of liburing's prep helpers), grouped into link
// chains by IOSQE_IO_LINK, and run in submission order inside
// `SubmitAndWait`. Tests set state, not call-by-call scripts: per-fd faults
// consumed by the next matching op, sticky socket errors, a send capacity (a
// slow reader), zero-copy support and "the kernel copied" reporting, held and
// reordered notifications, a small completion queue, injected submit
// results. Every submitted SQE is logged with its decoded fields and outcome.
//
// Kernel behaviour modelled (see docs/kernel.md):
// - An op whose result is not the bytes it asked for breaks its link chain
//   (writev always; send-family ops only with MSG_WAITALL, without it a short
//   send counts as success and the chain goes on, leaving a hole). Every later
//   op of the chain completes -ECANCELED without moving bytes.
// - A zero-copy op that was issued posts its first CQE with IORING_CQE_F_MORE
//   and later a notification (IORING_CQE_F_NOTIF, same user_data). A linked
//   zero-copy op cancelled by an earlier failure posts -ECANCELED without
//   F_MORE and then still a notification (measured on 6.18; see
//   `FakeRingOptions::notify_cancelled_zc`). -EOPNOTSUPP (zero-copy not
//   supported on the socket) posts neither.
// - With IORING_SEND_ZC_REPORT_USAGE the notification's res carries
//   IORING_NOTIF_USAGE_ZC_COPIED when the socket copies (`SetCopied`) or when
//   nothing was sent zero-copy (the kernel reports "copied" when no byte went
//   zero-copy, e.g. for a failed or cancelled op).
// - An SQE rejected at prep time (unknown opcode, zero-copy opcode the ring's
//   features lack, unknown zero-copy flags, fixed buffers on SENDMSG_ZC
//   without `sendmsg_zc_fixed`, IOSQE_CQE_SKIP_SUCCESS on zero-copy, more
//   than UIO_MAXIOV iovecs) fails its whole chain before any op of it runs:
//   it completes with its error, every other op of the chain -ECANCELED.
// - Overflowing CQEs are kept (IORING_FEAT_NODROP); while any are, a submit
//   with SQEs pending returns -EBUSY without consuming them.
// - Everything completes inside the submit call except ops blocked on a fd
//   whose capacity is 0 (they and the rest of their chain wait for
//   `AddCapacity` or IORING_OP_ASYNC_CANCEL) and held notifications. The fake
//   never blocks: waiting for more completions than are available returns
//   -ETIME at once.
// - Harsher than the kernel, on purpose or for simplicity: with a capacity
//   set, an op moves what fits and completes short even with MSG_WAITALL
//   (the kernel would keep waiting and end short only on an error after
//   partial progress), so the slow reader makes more short sends than a real
//   one. A rejected SQE fails its whole chain, as on a ring made with
//   IORING_SETUP_SUBMIT_ALL (io_uring_ring.cc asks for it; without it the
//   kernel stops submitting at the bad SQE). The fake cannot raise SIGPIPE:
//   a writev failing -EPIPE raises it on a real kernel
//   (io_uring_ring_test.cc), which is why the executor ignores SIGPIPE.
//
// Checks ("violations"): a zero-copy op's bytes are snapshotted when it sends
// them and compared with the memory when its notification is delivered (a
// buffer released, poisoned or reused before its notification shows up);
// fixed-buffer ranges outside the registered buffers; a second chain started
// on a fd while an earlier chain on it is still blocked (bytes could
// reorder); -EPIPE on an op without MSG_NOSIGNAL (a SIGPIPE).
//
// Thread safety: none; one thread, like `Ring`.

#ifndef ZCPLAN_TESTS_URING_FAKE_RING_H_
#define ZCPLAN_TESTS_URING_FAKE_RING_H_

#include <linux/io_uring.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "zcplan/uring/ring.h"

namespace zcplan {

// The features a fake ring reports unless told otherwise: every zero-copy
// feature on.
RingFeatures AllFakeFeatures();

struct FakeRingOptions {
  uint32_t sq_entries = 64;
  uint32_t cq_entries = 1024;
  // `sq_entries` and `cq_entries` here are overwritten with the two above.
  RingFeatures features = AllFakeFeatures();
  // A linked zero-copy op cancelled by an earlier failure in its chain still
  // posts a notification after its -ECANCELED (kernel 6.18 does).
  bool notify_cancelled_zc = true;
};

// One fault, consumed by the next op on its fd whose opcode matches.
struct FakeFault {
  int opcode = -1;  // IORING_OP_*, or -1 for any send-family op or writev
  // Move at most this many bytes (a short op). Negative: all of them when
  // `error` is 0, none when it is set.
  int64_t max_bytes = -1;
  // Negative errno. The op's res is this when no byte moved, else the bytes
  // moved (the kernel reports partial progress as a positive count).
  int32_t error = 0;
  bool more = true;    // zero-copy: the first CQE carries IORING_CQE_F_MORE
  bool notify = true;  // zero-copy: a notification is posted
};

// One SQE as submitted, decoded, and what became of it.
struct SqeRecord {
  io_uring_sqe sqe;  // copy, as the executor wrote it
  uint8_t opcode = 0;
  int32_t fd = -1;
  uint64_t user_data = 0;
  uint8_t flags = 0;       // IOSQE_*
  uint32_t msg_flags = 0;  // msg_flags (send family) / rw_flags (writev)
  uint16_t ioprio = 0;     // zero-copy flags for SEND_ZC / SENDMSG_ZC
  uint16_t buf_index = 0;
  uint64_t bytes_requested = 0;
  uint32_t iov_count = 0;          // 1 for send / send_zc
  std::vector<struct iovec> iovs;  // the pieces, copied at submit
  uint64_t submit_call = 0;        // 1-based SubmitAndWait call that took it
  uint64_t chain = 0;              // 0-based chain number over the fake's life
  uint32_t index_in_chain = 0;
  // Outcome (valid when `completed`).
  bool completed = false;
  int32_t res = 0;
  uint32_t cqe_flags = 0;  // of the first CQE
  uint64_t bytes_moved = 0;
  bool notification_expected = false;  // zero-copy: a notification follows
};

class FakeRing : public Ring {
 public:
  explicit FakeRing(FakeRingOptions options = FakeRingOptions());
  ~FakeRing() override;

  FakeRing(const FakeRing&) = delete;
  FakeRing& operator=(const FakeRing&) = delete;

  // Ring.
  const RingFeatures& features() const override { return features_; }
  uint32_t SqSpaceLeft() override;
  struct io_uring_sqe* GetSqe() override;
  int SubmitAndWait(uint32_t wait_nr, int64_t timeout_ns) override;
  size_t Reap(absl::Span<Completion> out) override;
  int RegisterBuffers(absl::Span<const struct iovec> buffers) override;
  uint32_t SqesObtained() override { return sqes_obtained_; }
  uint32_t SqesTaken() override { return sqes_taken_; }
  // A reset: the socket's send queue is purged, so every held notification
  // of an op on `fd` is posted (and checked) at once, blocked ops on it and
  // every later op fail -ECONNRESET. Counted in `resets(fd)`.
  int AbortConnection(int fd) override;
  int WatchFd() override { return -ENOTSUP; }
  void DrainWatchFd() override {}

  // --- State a test sets -------------------------------------------------

  // Queues a fault on `fd` (faults of one fd are consumed in order, each by
  // the first later op whose opcode matches).
  void AddFault(int fd, const FakeFault& fault);
  // Every later op on `fd` fails with `error` (negative errno, e.g.
  // -ECONNRESET, -EPIPE); 0 clears it. Blocked ops on `fd` fail at once.
  void SetSocketError(int fd, int32_t error);
  // When false, zero-copy ops on `fd` complete -EOPNOTSUPP, no F_MORE, no
  // notification (as on AF_UNIX). Default true.
  void SetZeroCopySupported(int fd, bool supported);
  // Whether notifications of zero-copy sends on `fd` report that the kernel
  // copied (IORING_NOTIF_USAGE_ZC_COPIED when the op asked for
  // IORING_SEND_ZC_REPORT_USAGE). Default true, like loopback.
  void SetCopied(int fd, bool copied);
  // Limits what `fd` accepts from now on to `bytes` in total (a slow reader):
  // an op moves at most what is left, so it goes short; an op that finds
  // nothing left blocks, with the rest of its chain, until capacity is added.
  // Negative: unlimited (the default).
  void SetCapacity(int fd, int64_t bytes);
  // Adds capacity (only meaningful after SetCapacity) and runs blocked chains
  // of `fd` that can now move, posting their completions.
  void AddCapacity(int fd, int64_t bytes);

  // The next `SubmitAndWait` call returns `result` (e.g. -EINTR, -EBUSY,
  // -EAGAIN) without doing anything; queued results are used in order.
  void InjectSubmitResult(int result);
  // Posts an arbitrary CQE (e.g. a stray notification) as if the kernel had.
  void InjectCompletion(const Completion& completion);

  // Changes the completion-queue capacity (entries beyond it overflow).
  void set_cq_entries(uint32_t entries);
  void set_notify_cancelled_zc(bool on) { notify_cancelled_zc_ = on; }

  // Notifications: when held they are not posted until delivered.
  void set_hold_notifications(bool hold) { hold_notifications_ = hold; }
  // user_data of each held notification, oldest first.
  std::vector<uint64_t> held_notifications() const;
  // Posts held notification `i` (index into `held_notifications()`) and
  // checks its op's memory against the snapshot.
  void DeliverNotification(size_t i);
  // Posts every held notification, oldest first or newest first.
  void DeliverAllNotifications(bool reverse = false);
  // Posts every held notification at the `n`th `SubmitAndWait` call from
  // now (a kernel whose notifications come while the caller waits).
  void DeliverHeldAfterSubmits(uint64_t n) {
    deliver_held_at_submit_ = submit_calls_ + n;
  }

  // --- What a test reads ---------------------------------------------------

  // Bytes sent on `fd`, in order.
  const std::string& received(int fd) const;
  // AbortConnection calls on `fd`.
  int resets(int fd) const;
  // Every SQE submitted, in submission order.
  const std::vector<SqeRecord>& log() const { return log_; }
  // Problems found (see the file comment); empty when all is well.
  const std::vector<std::string>& violations() const { return violations_; }

  uint64_t submit_calls() const { return submit_calls_; }
  // Chains seen (a single unlinked op is a chain of one).
  uint64_t chains() const { return chains_; }
  // Chains of two or more ops.
  uint64_t linked_chains() const { return linked_chains_; }
  // SQEs consumed by submit, by opcode.
  uint64_t ops_submitted(int opcode) const;
  // Ops that ran (not cancelled or rejected), by opcode.
  uint64_t ops_executed(int opcode) const;
  // Completions posted (including notifications).
  uint64_t completions_posted() const { return completions_posted_; }
  uint64_t notifications_posted() const { return notifications_posted_; }
  // SubmitAndWait calls that returned -EBUSY because of overflow.
  uint64_t busy_returns() const { return busy_returns_; }
  // SubmitAndWait calls that returned -ETIME.
  uint64_t timeouts() const { return timeouts_; }
  // CQEs waiting in the completion queue and in the overflow list.
  size_t cq_ready() const { return cq_.size(); }
  size_t cq_overflow() const { return overflow_.size(); }
  // SQEs obtained and not yet submitted.
  uint32_t sq_pending() const { return pending_; }
  // Ops blocked on capacity (in flight, not completed).
  size_t blocked_ops() const;
  // Bytes of zero-copy ops whose notification has not been posted yet.
  uint64_t bytes_awaiting_notification() const { return zc_bytes_pending_; }
  const std::vector<struct iovec>& registered_buffers() const {
    return registered_;
  }

  static bool IsZeroCopyOpcode(int opcode);
  // SEND, SENDMSG, SEND_ZC, SENDMSG_ZC.
  static bool IsSendFamilyOpcode(int opcode);

 private:
  struct Chain {
    std::deque<size_t> ops;  // log indices still to run
    bool failed = false;
    int fd = -1;  // fd of the op it is blocked on
  };
  struct Snapshot {
    const unsigned char* data;
    std::string bytes;
  };
  struct Notification {
    uint64_t user_data;
    int32_t res;
    size_t log_index;
    uint64_t zc_bytes;
    std::vector<Snapshot> snapshots;
  };
  struct Socket {
    std::string received;
    std::deque<FakeFault> faults;
    int32_t error = 0;
    bool zc_supported = true;
    bool copied = true;
    int64_t capacity = -1;
    int resets = 0;
  };

  Socket& socket(int fd) { return sockets_[fd]; }
  void Decode(const io_uring_sqe& sqe, SqeRecord* record);
  int32_t PrepCheck(const SqeRecord& record);
  void RunChain(Chain chain);
  // Runs the op; returns false when it blocks.
  bool RunOp(size_t index, bool chain_failed, bool* breaks_chain);
  void RunCancel(size_t index);
  void Complete(size_t index, int32_t res, uint32_t flags, uint64_t moved);
  void QueueNotification(size_t index, int32_t res,
                         std::vector<Snapshot> snapshots, uint64_t zc_bytes);
  void PostNotification(Notification notification);
  void Post(const Completion& completion);
  void FlushOverflow();
  int32_t CheckFixed(const SqeRecord& record);
  void ResumeBlocked(int fd);

  RingFeatures features_;
  bool notify_cancelled_zc_;
  uint32_t sq_entries_;
  uint32_t cq_entries_;
  std::vector<io_uring_sqe> sqes_;
  uint32_t pending_ = 0;
  uint32_t sqes_obtained_ = 0;  // SqesObtained / SqesTaken
  uint32_t sqes_taken_ = 0;

  std::deque<Completion> cq_;
  std::deque<Completion> overflow_;
  std::deque<int> injected_results_;
  std::vector<struct iovec> registered_;

  std::map<int, Socket> sockets_;
  std::vector<SqeRecord> log_;
  std::deque<Chain> blocked_;  // chains waiting for capacity, oldest first
  bool hold_notifications_ = false;
  uint64_t deliver_held_at_submit_ = 0;  // 0: never
  std::vector<Notification> held_;
  uint64_t zc_bytes_pending_ = 0;
  std::vector<std::string> violations_;

  uint64_t submit_calls_ = 0;
  uint64_t chains_ = 0;
  uint64_t linked_chains_ = 0;
  uint64_t submitted_by_opcode_[256] = {};
  uint64_t executed_by_opcode_[256] = {};
  uint64_t completions_posted_ = 0;
  uint64_t notifications_posted_ = 0;
  uint64_t busy_returns_ = 0;
  uint64_t timeouts_ = 0;
};

// Lends a FakeRing to an executor (`Executor::CreateWithRing` takes
// ownership of its ring), so that the fake outlives the executor: a test can
// read what it saw after teardown and deliver notifications the kernel would
// post after the executor is gone.
class BorrowedRing : public Ring {
 public:
  explicit BorrowedRing(FakeRing* ring) : ring_(ring) {}
  const RingFeatures& features() const override { return ring_->features(); }
  uint32_t SqSpaceLeft() override { return ring_->SqSpaceLeft(); }
  struct io_uring_sqe* GetSqe() override {
    return ring_->GetSqe();
  }
  int SubmitAndWait(uint32_t wait_nr, int64_t timeout_ns) override {
    return ring_->SubmitAndWait(wait_nr, timeout_ns);
  }
  size_t Reap(absl::Span<Completion> out) override { return ring_->Reap(out); }
  int RegisterBuffers(absl::Span<const struct iovec> buffers) override {
    return ring_->RegisterBuffers(buffers);
  }
  uint32_t SqesObtained() override { return ring_->SqesObtained(); }
  uint32_t SqesTaken() override { return ring_->SqesTaken(); }
  int AbortConnection(int fd) override { return ring_->AbortConnection(fd); }
  int WatchFd() override { return ring_->WatchFd(); }
  void DrainWatchFd() override { ring_->DrainWatchFd(); }

 private:
  FakeRing* ring_;
};

// A ring's completion as the CQE the kernel posted, for
// `Executor::HandleCompletion` in tests that reap the fake themselves.
inline io_uring_cqe ToCqe(const Completion& c) {
  io_uring_cqe cqe{};
  cqe.user_data = c.user_data;
  cqe.res = c.res;
  cqe.flags = c.flags;
  return cqe;
}

}  // namespace zcplan

#endif  // ZCPLAN_TESTS_URING_FAKE_RING_H_
