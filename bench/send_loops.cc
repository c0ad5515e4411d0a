// SPDX-License-Identifier: Apache-2.0
#include "zcplan/bench/send_loops.h"

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/memlock.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/receiver.h"
#include "zcplan/uring/regions.h"
#include "zcplan/uring/send_queue.h"
#include "zcplan/uring/sqe_encoder.h"

// Debian 12 ships liburing 2.3, whose headers predate this (kernel 6.2).
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif

namespace zcplan {
namespace bench {
namespace {

// A message not done after this long is reported as stalled.
constexpr absl::Duration kStallTimeout = absl::Seconds(10);
constexpr uint32_t kSqEntries = 256;
constexpr uint32_t kCqFactor = 8;
// The caller's-ring sender's user_data tag (top byte).
constexpr uint8_t kTag = 0x5a;

absl::Status UnavailableZc() {
  return absl::UnavailableError(
      "io_uring unavailable: the kernel lacks IORING_OP_SEND_ZC / "
      "IORING_OP_SENDMSG_ZC");
}

// True once nothing has completed for kStallTimeout; call once per wait.
class StallClock {
 public:
  bool Stalled(bool progress) {
    if (progress) {
      deadline_ = absl::InfiniteFuture();
    } else if (deadline_ == absl::InfiniteFuture()) {
      deadline_ = absl::Now() + kStallTimeout;
    } else if (absl::Now() > deadline_) {
      return true;
    }
    return false;
  }

 private:
  absl::Time deadline_ = absl::InfiniteFuture();
};

// The executor's own ring setup (uring/io_uring_ring.cc) without
// IORING_SETUP_R_DISABLED (this ring is made on the thread that runs it):
// SUBMIT_ALL, SINGLE_ISSUER | DEFER_TASKRUN, a completion queue 8x the
// submission queue; flags the kernel lacks dropped one group at a time.
absl::Status InitRing(io_uring* ring) {
  const uint32_t base = IORING_SETUP_CQSIZE;
  int ret = -EINVAL;
  for (uint32_t flags :
       {base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN,
        base | IORING_SETUP_SUBMIT_ALL, base}) {
    io_uring_params params{};
    params.flags = flags;
    params.cq_entries = kSqEntries * kCqFactor;
    ret = io_uring_queue_init_params(kSqEntries, ring, &params);
    if (ret != -EINVAL) break;
  }
  if (ret < 0) {
    return absl::UnavailableError(
        absl::StrCat("io_uring unavailable: ", std::strerror(-ret)));
  }
  return absl::OkStatus();
}

// Waits (up to a second, as the executor's Poll(absl::Seconds(1))) for a
// completion after submitting what is queued; a timeout or signal is no
// error.
absl::Status SubmitAndWait(io_uring* ring) {
  __kernel_timespec ts{1, 0};
  io_uring_cqe* cqe = nullptr;
  const int ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nullptr);
  if (ret < 0 && ret != -ETIME && ret != -EINTR) {
    return absl::InternalError(absl::StrCat(
        "io_uring_submit_and_wait_timeout: ", std::strerror(-ret)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The baseline: plain liburing, no zcplan code in the loop.

struct RawOp {
  OpKind kind;  // the planner's name for the SQE the loop submits
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
    RawOp op{OpKind::kSend, i, 0, 0};
    while (i < iovs.size() && (iovs[i].iov_len >= threshold) == zc &&
           op.count < 1024) {
      op.bytes += iovs[i].iov_len;
      ++op.count;
      ++i;
    }
    if (zc) {
      op.kind = op.count == 1 ? OpKind::kSendZc : OpKind::kSendmsgZc;
    } else if (op.count == 1) {
      op.kind = OpKind::kSend;
    } else {
      op.kind = writev ? OpKind::kWritev : OpKind::kSendmsg;
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
    same = planned[i].kind == ops[i].kind &&
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

// Submits the SQEs the planner makes for size_aware as one linked chain and
// waits for every completion and notification. Assumes no short sends.
class RawSender final : public Sender {
 public:
  // `per_buffer`: also do the executor's per-buffer passes
  // (SenderKind::kRawPerBuffer).
  RawSender(const Message& message, int fd, CopyOp copy_op, bool per_buffer)
      : per_buffer_(per_buffer),
        copy_op_(copy_op),
        tokens_(message.iovs().size()),
        iovs_(message.iovs()),
        fd_(fd),
        ops_(GroupBySize(iovs_, kSizeAware, copy_op == CopyOp::kWritev)),
        msgs_(ops_.size()),
        awaiting_notif_(ops_.size()) {
    for (size_t i = 0; i < ops_.size(); ++i) {
      msgs_[i].msg_iov = const_cast<iovec*>(&iovs_[ops_[i].first]);
      msgs_[i].msg_iovlen = ops_[i].count;
    }
  }
  ~RawSender() override {
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  absl::Status Init(CopyOp copy_op) {
    if (absl::Status s = CheckAgainstPlanner(iovs_, ops_, copy_op); !s.ok()) {
      return s;
    }
    if (absl::Status s = InitRing(&ring_); !s.ok()) return s;
    ring_ready_ = true;
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    const bool zc_ok = probe != nullptr &&
                       io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) &&
                       io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
    if (probe != nullptr) io_uring_free_probe(probe);
    return zc_ok ? absl::OkStatus() : UnavailableZc();
  }

  absl::Status SendMessage() override {
    if (per_buffer_ && !PushAndLayOut()) {
      return absl::InternalError("the per-buffer passes refused the message");
    }
    constexpr int kFlags = MSG_WAITALL | MSG_NOSIGNAL;
    for (size_t i = 0; i < ops_.size(); ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // never full: <= 5 ops
      const iovec& first = iovs_[ops_[i].first];
      switch (ops_[i].kind) {
        case OpKind::kWritev:
          io_uring_prep_writev(sqe, fd_, &first,
                               static_cast<unsigned>(ops_[i].count), 0);
          break;
        case OpKind::kSendmsg:
          io_uring_prep_sendmsg(sqe, fd_, &msgs_[i], kFlags);
          break;
        case OpKind::kSend:
          io_uring_prep_send(sqe, fd_, first.iov_base, first.iov_len, kFlags);
          break;
        case OpKind::kSendZc:
          io_uring_prep_send_zc(sqe, fd_, first.iov_base, first.iov_len, kFlags,
                                IORING_SEND_ZC_REPORT_USAGE);
          break;
        case OpKind::kSendmsgZc:
          io_uring_prep_sendmsg_zc(sqe, fd_, &msgs_[i], kFlags);
          sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
          break;
      }
      if (i + 1 < ops_.size()) sqe->flags |= IOSQE_IO_LINK;
      sqe->user_data = i;
    }
    totals_.ops += ops_.size();
    // Every op's first completion, then a notification for each that said
    // F_MORE; only then may the buffers be written again.
    size_t sends_pending = ops_.size(), notifs_pending = 0;
    std::fill(awaiting_notif_.begin(), awaiting_notif_.end(), false);
    std::string failure;
    StallClock stall;
    while (sends_pending + notifs_pending > 0) {
      ++totals_.enters;
      if (absl::Status s = SubmitAndWait(&ring_); !s.ok()) return s;
      unsigned head, seen = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        const size_t i = cqe->user_data;
        if (cqe->flags & IORING_CQE_F_NOTIF) {
          // A cancelled zero-copy op can post one without having said
          // F_MORE (docs/kernel.md): count only those announced.
          if (awaiting_notif_[i]) --notifs_pending;
          awaiting_notif_[i] = false;
          continue;
        }
        --sends_pending;
        const RawOp& op = ops_[i];
        if (cqe->flags & IORING_CQE_F_MORE) {
          awaiting_notif_[i] = true;
          ++notifs_pending;
        }
        if (cqe->res == static_cast<int>(op.bytes)) {
          totals_.bytes_sent += op.bytes;
          if (IsZeroCopy(op.kind)) {
            totals_.bytes_zero_copy += op.bytes;
          }
        } else if (failure.empty()) {
          // Not handled here: the executor re-plans from the byte reached.
          failure = absl::StrCat(
              OpKindName(op.kind), " of ", op.bytes, " bytes completed with ",
              cqe->res < 0 ? std::strerror(-cqe->res)
                           : absl::StrCat(cqe->res, " bytes").c_str(),
              "; the baseline does not handle short sends");
        }
      }
      io_uring_cq_advance(&ring_, seen);
      if (stall.Stalled(seen > 0)) {
        return absl::InternalError(absl::StrCat(
            "stalled waiting for completions: ", sends_pending, " sends and ",
            notifs_pending, " notifications pending"));
      }
    }
    if (per_buffer_) ReleaseAll();
    return failure.empty() ? absl::OkStatus() : absl::InternalError(failure);
  }

  SenderTotals totals() const override { return totals_; }

 private:
  // The executor's passes over a batch before its SQEs are written, as
  // Executor::Enqueue and its chain preparation make them.
  bool PushAndLayOut() {
    const uint64_t room = uint64_t{1} << 32;  // the default max_queued_bytes
    const bool pushed =
        queue_.PushIf(iovs_, tokens_, [room](const iovec& b, uint64_t before) {
          return (b.iov_base != nullptr) &
                 (b.iov_len - 1 < static_cast<size_t>(SSIZE_MAX)) &
                 (b.iov_len <= room - before);
        });
    PlanOptions po;
    po.copy_op = copy_op_;
    if (!pushed || !PlanChain(queue_.Unsent(), 0, po, &plan_).ok()) {
      return false;
    }
    size_t pieces = 0;
    for (const Op& op : plan_.ops()) pieces += op.iov_count;
    pieces_.resize(pieces);
    size_t piece = 0;
    for (const Op& op : plan_.ops()) {
      const OpLayout layout =
          LayOutOp(op, queue_.Unsent(), queue_.sent_seq(), regions_,
                   RingFeatures(), pieces_.data() + piece);
      queue_.Hold(queue_.sent_seq() + op.first_iov, op.iov_count);
      held_.push_back({queue_.sent_seq() + op.first_iov, op.iov_count});
      ends_ += layout.end_seq;
      piece += op.iov_count;
    }
    return true;
  }
  // And after its completions: every buffer released, tokens copied out.
  void ReleaseAll() {
    queue_.SetSent(queue_.end_seq(), 0);
    for (const auto& [first, count] : held_) queue_.Unhold(first, count);
    held_.clear();
    uint64_t cursor = 0;
    SendQueue::Run run;
    while (queue_.NextReleasable(&cursor, queue_.end_seq(), false, &run)) {
      queue_.Release(run, &released_);
      released_count_ += released_.size();
    }
    queue_.Compact();
  }

  const bool per_buffer_;
  const CopyOp copy_op_;
  const std::vector<uint64_t> tokens_;  // kRawPerBuffer: all 0
  SendQueue queue_;
  Plan plan_;
  std::vector<iovec> pieces_;
  std::vector<std::pair<uint64_t, uint32_t>> held_;
  std::vector<uint64_t> released_;
  RegisteredRegions regions_;
  uint64_t ends_ = 0;            // kept, so the layouts are not optimised out
  uint64_t released_count_ = 0;  // likewise
  const std::vector<iovec>& iovs_;
  const int fd_;
  const std::vector<RawOp> ops_;
  std::vector<msghdr> msgs_;
  std::vector<bool> awaiting_notif_;
  io_uring ring_{};
  bool ring_ready_ = false;
  SenderTotals totals_;
};

// ---------------------------------------------------------------------------
// The executor, on its own ring or on the sender's.

class ExecutorSender final : public Sender {
 public:
  ExecutorSender(const Message& message, bool shared)
      : iovs_(message.iovs()), tokens_(iovs_.size()), shared_(shared) {
    for (size_t i = 0; i < tokens_.size(); ++i) tokens_[i] = i;
  }
  ~ExecutorSender() override {
    executor_.reset();  // before the ring it runs on
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  absl::Status Init(const SenderConfig& config, int fd) {
    ExecutorOptions options;
    // The batch forms of Enqueue and of the release callback: one call per
    // message and per run of released buffers, not one per buffer.
    options.on_release_batch = [this](ConnectionId,
                                      absl::Span<const uint64_t> tokens,
                                      const absl::Status& s) {
      released_ += tokens.size();
      if (!s.ok() && failure_.empty()) failure_ = s.ToString();
    };
    absl::StatusOr<std::unique_ptr<Executor>> made;
    if (shared_) {
      if (absl::Status s = InitRing(&ring_); !s.ok()) return s;
      ring_ready_ = true;
      options.user_data_tag = kTag;
      made = Executor::CreateOnRing(&ring_, std::move(options));
    } else {
      made = Executor::Create(std::move(options));
    }
    if (!made.ok()) {
      return absl::UnavailableError("io_uring unavailable: " +
                                    made.status().ToString());
    }
    executor_ = *std::move(made);
    const RingFeatures& features = executor_->features();
    if (config.zc_threshold != PlanOptions::kNever &&
        !(features.send_zc && features.sendmsg_zc)) {
      return UnavailableZc();
    }
    ConnectionOptions conn_options;
    conn_options.plan.zc_threshold = config.zc_threshold;
    conn_options.plan.copy_op = config.copy_op;
    conn_options.adaptive_zero_copy = config.adaptive;
    conn_options.adaptive_retry_chains = config.adaptive_retry_chains;
    absl::StatusOr<ConnectionId> conn = executor_->Attach(fd, conn_options);
    if (!conn.ok()) return conn.status();
    conn_ = *conn;
    if (config.prepared) {
      absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
          PreparedMessage::Create(iovs_);
      if (!m.ok()) return m.status();
      prepared_ = *std::move(m);
    }
    return absl::OkStatus();
  }

  absl::Status SendMessage() override {
    if (prepared_ != nullptr) {
      if (absl::Status s = executor_->EnqueueMessage(conn_, prepared_, 0);
          !s.ok()) {
        return s;
      }
      ++target_;
    } else {
      if (absl::Status s = executor_->Enqueue(conn_, iovs_, tokens_); !s.ok()) {
        return s;
      }
      target_ += iovs_.size();
    }
    absl::Status s = shared_ ? RunSharedLoop() : RunOwnLoop();
    if (s.ok() && !failure_.empty()) s = absl::InternalError(failure_);
    return s;
  }

  SenderTotals totals() const override {
    const RingStats stats = executor_->stats();
    SenderTotals t;
    for (int k = 0; k < kNumOpKinds; ++k) t.ops += stats.totals.ops[k];
    t.enters = stats.submit_calls + waits_;
    t.short_sends = stats.totals.short_sends;
    t.bytes_zero_copy = stats.totals.bytes_zero_copy;
    t.bytes_sent = stats.totals.bytes_copied + stats.totals.bytes_zero_copy;
    return t;
  }

 private:
  absl::Status RunOwnLoop() {
    StallClock stall;
    while (released_ < target_) {
      absl::StatusOr<size_t> n = executor_->Poll(absl::Seconds(1));
      if (!n.ok()) return n.status();
      if (stall.Stalled(*n > 0)) return Stall();
    }
    return absl::OkStatus();
  }

  // A caller's event loop in miniature: the executor's SQEs go on the ring
  // with Prepare and are submitted by the loop's own wait, so each round
  // enters the kernel once, as the raw loop does.
  absl::Status RunSharedLoop() {
    constexpr unsigned kBatch = 64;
    io_uring_cqe* cqes[kBatch];
    if (absl::Status s = executor_->Prepare(); !s.ok()) return s;
    StallClock stall;
    while (released_ < target_) {
      ++waits_;
      if (absl::Status s = SubmitAndWait(&ring_); !s.ok()) return s;
      size_t seen = 0;
      for (unsigned got = kBatch; got == kBatch;) {
        got = io_uring_peek_batch_cqe(&ring_, cqes, kBatch);
        for (unsigned i = 0; i < got; ++i) {
          if (!executor_->Owns(cqes[i]->user_data)) {
            return absl::InternalError(
                absl::StrCat("a completion not the executor's: user_data ",
                             cqes[i]->user_data));
          }
          executor_->HandleCompletion(*cqes[i]);
        }
        io_uring_cq_advance(&ring_, got);
        seen += got;
      }
      if (absl::Status s = executor_->Prepare(); !s.ok()) return s;
      if (stall.Stalled(seen > 0)) return Stall();
    }
    return absl::OkStatus();
  }

  absl::Status Stall() const {
    return absl::InternalError(absl::StrCat("stalled: ", released_, " of ",
                                            target_, " buffers released"));
  }

  const std::vector<iovec>& iovs_;
  std::vector<uint64_t> tokens_;
  const bool shared_;
  io_uring ring_{};
  bool ring_ready_ = false;
  std::unique_ptr<Executor> executor_;
  std::shared_ptr<const PreparedMessage> prepared_;  // config.prepared
  ConnectionId conn_;
  uint64_t released_ = 0;
  uint64_t target_ = 0;
  uint64_t waits_ = 0;
  std::string failure_;
};

}  // namespace

std::vector<uint64_t> MessageLengths(int n) {
  return *ReferenceMessageSizes(static_cast<uint32_t>(n));
}

void Message::FreeDeleter::operator()(char* p) const { std::free(p); }

Message::Message(const std::vector<uint64_t>& lengths) {
  constexpr size_t kAlign = 64, kGap = 64;
  auto round_up = [](size_t v, size_t to) { return (v + to - 1) / to * to; };
  size_t total = 0;
  for (uint64_t len : lengths) total += round_up(len, kAlign) + kGap;
  arena_.reset(
      static_cast<char*>(std::aligned_alloc(kPageBytes, RoundUpToPage(total))));
  size_t at = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    char* p = arena_.get() + at;
    std::memset(p, 'a' + static_cast<int>(i % 26), lengths[i]);
    iovs_.push_back(iovec{p, lengths[i]});
    bytes_ += lengths[i];
    at += round_up(lengths[i], kAlign) + kGap;
  }
}

Loopback::~Loopback() {
  if (receiver_thread_ != nullptr) {
    shutdown(sender_, SHUT_RDWR);
    receiver_thread_.reset();  // stops and joins it
  }
  if (sender_ >= 0) close(sender_);
  if (receiver_ >= 0) close(receiver_);
}

absl::Status Loopback::Connect(int socket_buffer_bytes) {
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
      connect(sender_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
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
  return absl::OkStatus();
}

int Loopback::ReleaseReceiver() { return std::exchange(receiver_, -1); }

absl::Status Loopback::Open(int socket_buffer_bytes,
                            std::function<void()> on_receiver_start) {
  if (absl::Status s = Connect(socket_buffer_bytes); !s.ok()) return s;
  ReceiverOptions options;
  options.on_start = std::move(on_receiver_start);
  absl::StatusOr<std::unique_ptr<Receiver>> started =
      Receiver::OnSockets({receiver_}, std::move(options));
  if (!started.ok()) return started.status();
  receiver_thread_ = *std::move(started);
  return absl::OkStatus();
}

uint64_t Loopback::Retransmits() const {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(sender_, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
  return info.tcpi_total_retrans;
}

uint64_t Loopback::Finish() {
  shutdown(sender_, SHUT_WR);
  if (receiver_thread_ == nullptr) return 0;
  receiver_thread_->Join().IgnoreError();  // the count says what arrived
  return receiver_thread_->total_bytes();
}

absl::StatusOr<std::unique_ptr<Sender>> MakeSender(const SenderConfig& config,
                                                   const Message& message,
                                                   int fd) {
  if (config.kind == SenderKind::kRaw ||
      config.kind == SenderKind::kRawPerBuffer) {
    auto raw = std::make_unique<RawSender>(
        message, fd, config.copy_op, config.kind == SenderKind::kRawPerBuffer);
    if (absl::Status s = raw->Init(config.copy_op); !s.ok()) return s;
    return raw;
  }
  auto sender = std::make_unique<ExecutorSender>(
      message, config.kind == SenderKind::kShared);
  if (absl::Status s = sender->Init(config, fd); !s.ok()) return s;
  return sender;
}

}  // namespace bench
}  // namespace zcplan
