// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/io_uring_ring.h"

#include <liburing.h>
#include <linux/capability.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "zcplan/uring/memlock.h"

namespace zcplan {
namespace {

constexpr uint64_t kProbeUserData = ~uint64_t{0};

class IoUringRing final : public Ring {
 public:
  IoUringRing() = default;
  ~IoUringRing() override {
    if (initialized_ && ring_ == &own_) io_uring_queue_exit(&own_);
    if (event_fd_ >= 0) close(event_fd_);
  }

  absl::Status Init(const IoUringRingOptions& options) {
    // Most capable setup first; older kernels reject unknown flags with
    // -EINVAL, so drop them one group at a time. A SINGLE_ISSUER ring starts
    // disabled (IORING_SETUP_R_DISABLED): the kernel binds it to the thread
    // that enables it, which `SubmitAndWait` does on its first call, so the
    // ring belongs to the thread that runs it, not the one that made it.
    const uint32_t base = IORING_SETUP_CQSIZE;
    uint32_t attempts[3] = {
        base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        base | IORING_SETUP_SUBMIT_ALL, base};
    int ret = -EINVAL;
    for (uint32_t flags : attempts) {
      if (!options.defer_taskrun && (flags & IORING_SETUP_DEFER_TASKRUN)) {
        continue;
      }
      io_uring_params params;
      std::memset(&params, 0, sizeof(params));
      params.flags = flags;
      params.cq_entries = std::max(options.cq_entries, options.sq_entries);
      ret = io_uring_queue_init_params(options.sq_entries, &own_, &params);
      if (ret == 0) {
        features_.setup_flags = flags;
        features_.sq_entries = params.sq_entries;
        features_.cq_entries = params.cq_entries;
        features_.memlock_bytes =
            RingMemlockBytes(params.flags, params.features, params.sq_entries);
        features_.memlock_charged = !HasCapIpcLock();
        break;
      }
      if (ret != -EINVAL) break;
    }
    if (ret != 0) {
      return absl::ErrnoToStatus(
          -ret, absl::StrCat("io_uring_queue_init_params(sq_entries=",
                             options.sq_entries, ")"));
    }
    initialized_ = true;
    ProbeOpcodes();
    // The flags need SQEs, which a disabled ring refuses: they are probed
    // when the ring is enabled, on its first use. (Not on a second ring of
    // its own: the kernel frees a ring's memory asynchronously, so its
    // RLIMIT_MEMLOCK charge would linger into the first sends.)
    enabled_ = (features_.setup_flags & IORING_SETUP_R_DISABLED) == 0;
    if (enabled_) ProbeFlags();
    return absl::OkStatus();
  }

  // Uses the caller's ring: checks what the executor needs of it and probes
  // what its kernel supports (the flags on a small ring of its own, so no
  // probe completion ever lands on the caller's).
  absl::Status InitBorrowed(io_uring* ring) {
    if (ring->ring_fd < 0) {
      return absl::InvalidArgumentError(
          "the caller's ring is not set up (ring_fd < 0)");
    }
    if (ring->flags & IORING_SETUP_IOPOLL) {
      return absl::InvalidArgumentError(
          "the caller's ring was set up with IORING_SETUP_IOPOLL, which takes "
          "no socket operations; the executor needs a ring without it");
    }
    if ((ring->features & IORING_FEAT_NODROP) == 0) {
      return absl::FailedPreconditionError(
          "the caller's ring lacks IORING_FEAT_NODROP (Linux 5.5+): a full "
          "completion queue could drop the executor's completions");
    }
    ring_ = ring;
    initialized_ = true;
    enabled_ = true;
    borrowed_ = true;
    features_.setup_flags = ring->flags;
    features_.sq_entries = ring->sq.ring_entries;
    features_.cq_entries = ring->cq.ring_entries;
    features_.memlock_bytes =
        RingMemlockBytes(ring->flags, ring->features, ring->sq.ring_entries);
    features_.memlock_charged = !HasCapIpcLock();
    ProbeOpcodes();
    io_uring scratch;
    if (io_uring_queue_init(4, &scratch, 0) == 0) {
      ring_ = &scratch;
      ProbeFlags();
      ring_ = ring;
      io_uring_queue_exit(&scratch);
    }
    return absl::OkStatus();
  }

  const RingFeatures& features() const override { return features_; }

  uint32_t SqesObtained() override { return ring_->sq.sqe_tail; }

  uint32_t SqesTaken() override {
    // With SQPOLL the kernel's thread may take any SQE once the tail shows
    // it; otherwise it takes them only inside io_uring_enter, and the head
    // says how far it got.
    if (ring_->flags & IORING_SETUP_SQPOLL) {
      return io_uring_smp_load_acquire(ring_->sq.ktail);
    }
    return io_uring_smp_load_acquire(ring_->sq.khead);
  }

  uint32_t SqSpaceLeft() override {
    if (!enabled_ && Enable() < 0) return 0;
    return io_uring_sq_space_left(ring_);
  }

  io_uring_sqe* GetSqe() override {
    if (!enabled_ && Enable() < 0) return nullptr;
    io_uring_sqe* sqe = io_uring_get_sqe(ring_);
    if (sqe != nullptr) std::memset(sqe, 0, sizeof(*sqe));
    return sqe;
  }

  int SubmitAndWait(uint32_t wait_nr, int64_t timeout_ns) override {
    if (!enabled_) {
      const int ret = Enable();
      if (ret < 0) return ret;
    }
    if (wait_nr == 0) return io_uring_submit_and_get_events(ring_);
    if (timeout_ns < 0) return io_uring_submit_and_wait(ring_, wait_nr);
    __kernel_timespec ts;
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    io_uring_cqe* cqe = nullptr;
    return io_uring_submit_and_wait_timeout(ring_, &cqe, wait_nr, &ts, nullptr);
  }

  size_t Reap(absl::Span<Completion> out) override {
    io_uring_cqe* cqes[64];
    size_t total = 0;
    while (total < out.size()) {
      const unsigned want =
          static_cast<unsigned>(std::min<size_t>(64, out.size() - total));
      const unsigned n = io_uring_peek_batch_cqe(ring_, cqes, want);
      for (unsigned i = 0; i < n; ++i) {
        out[total + i] =
            Completion{cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
      }
      io_uring_cq_advance(ring_, n);
      total += n;
      if (n < want) break;
    }
    return total;
  }

  int RegisterBuffers(absl::Span<const iovec> buffers) override {
    return io_uring_register_buffers(ring_, buffers.data(),
                                     static_cast<unsigned>(buffers.size()));
  }

  int WatchFd() override {
    if (borrowed_) return -ENOTSUP;
    if ((features_.setup_flags & IORING_SETUP_DEFER_TASKRUN) == 0) {
      return ring_->ring_fd;
    }
    if (event_fd_ >= 0) return event_fd_;
    const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) return -errno;
    const int ret = io_uring_register_eventfd(ring_, efd);
    if (ret < 0) {
      close(efd);
      return ret;
    }
    event_fd_ = efd;
    return event_fd_;
  }

  void DrainWatchFd() override {
    if (event_fd_ < 0) return;
    uint64_t count;
    while (read(event_fd_, &count, sizeof(count)) > 0) {
    }
  }

  int AbortConnection(int fd) override {
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    return connect(fd, &unspec, sizeof(unspec)) == 0 ? 0 : -errno;
  }

 private:
  // Binds the ring to the calling thread, lets it take submissions, and
  // probes what needs SQEs (nothing else is queued on a ring not yet used).
  int Enable() {
    const int ret = io_uring_register(ring_->ring_fd,
                                      IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
    if (ret < 0) return ret;
    enabled_ = true;
    features_.setup_flags &= ~IORING_SETUP_R_DISABLED;  // enabled now
    ProbeFlags();
    return 0;
  }

  // io_uring charges locked memory only to a ring creator without
  // CAP_IPC_LOCK in its effective set.
  static bool HasCapIpcLock() {
    __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) return false;
    return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &
            CAP_TO_MASK(CAP_IPC_LOCK)) != 0;
  }

  // What the kernel charges for the ring's memory: the SQE array and the
  // region holding both rings (one mapping with IORING_FEAT_SINGLE_MMAP),
  // each rounded up to whole pages.
  uint64_t RingMemlockBytes(uint32_t flags, uint32_t kernel_features,
                            uint32_t sq_entries) const {
    auto pages = [](uint64_t bytes) {
      return (bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
    };
    const uint64_t sqe_size =
        (flags & IORING_SETUP_SQE128) ? 128 : sizeof(io_uring_sqe);
    uint64_t rings = ring_->cq.ring_sz;
    if (kernel_features & IORING_FEAT_SINGLE_MMAP) {
      rings = std::max<uint64_t>(rings, ring_->sq.ring_sz);
    } else {
      rings = pages(rings) + pages(ring_->sq.ring_sz);
    }
    return pages(rings) + pages(uint64_t{sq_entries} * sqe_size);
  }

  // Submits the probe SQE (prepared with kProbeUserData) and returns its
  // result, consuming a notification if one follows.
  // Whether the kernel took the flag the probe SQE `sqe` tries: it did
  // unless it refused the SQE with -EINVAL. No answer (the submit failed,
  // or nothing came within the wait) counts as not supported, and an SQE
  // the submit left queued is made a NOP, so nothing later sends it.
  bool Accepted(io_uring_sqe* sqe) {
    const int res = RunProbe();
    if (res == kNoAnswer) {
      io_uring_prep_nop(sqe);
      sqe->user_data = kProbeUserData;
      return false;
    }
    return res != -EINVAL;
  }

  static constexpr int kNoAnswer = INT32_MIN;

  int RunProbe() {
    io_uring* ring = ring_;
    int res = kNoAnswer;
    bool more = false;
    for (int round = 0; round < 2; ++round) {
      // The probes run on an AF_UNIX socket with MSG_DONTWAIT: they complete
      // at once; the wait only bounds a kernel that misbehaves.
      __kernel_timespec ts{0, 200 * 1000 * 1000};
      io_uring_cqe* cqe = nullptr;
      int ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nullptr);
      if (ret < 0 && ret != -EINTR && ret != -ETIME) return res;
      while (io_uring_peek_cqe(ring, &cqe) == 0 && cqe != nullptr) {
        if (cqe->user_data == kProbeUserData) {
          if (cqe->flags & IORING_CQE_F_NOTIF) {
            more = false;
          } else {
            res = cqe->res;
            more = (cqe->flags & IORING_CQE_F_MORE) != 0;
          }
        }
        io_uring_cqe_seen(ring, cqe);
      }
      if (res != kNoAnswer && !more) break;
    }
    return res;
  }

  // The opcodes, from IORING_REGISTER_PROBE (no SQE needed).
  void ProbeOpcodes() {
    io_uring_probe* probe = io_uring_get_probe_ring(ring_);
    if (probe != nullptr) {
      features_.send_zc = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
      features_.sendmsg_zc =
          io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
      io_uring_free_probe(probe);
    }
  }

  // The flags, by trying them. Flags the kernel does not know are rejected
  // with -EINVAL when the SQE is prepared; a known flag gets as far as the
  // socket check, which fails with -EOPNOTSUPP on an AF_UNIX socket.
  void ProbeFlags() {
    io_uring* ring = ring_;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return;
    char byte = 0;
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    auto get_sqe = [ring]() {
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      if (sqe != nullptr) std::memset(sqe, 0, sizeof(*sqe));
      return sqe;
    };
    io_uring_sqe* sqe;
    if (features_.send_zc && (sqe = get_sqe()) != nullptr) {
      io_uring_prep_send_zc(sqe, fds[0], &byte, 1, MSG_DONTWAIT,
                            IORING_SEND_ZC_REPORT_USAGE);
      sqe->user_data = kProbeUserData;
      features_.zc_report_usage = Accepted(sqe);
    }
    if (features_.sendmsg_zc && (sqe = get_sqe()) != nullptr) {
      io_uring_prep_sendmsg_zc(sqe, fds[0], &msg, MSG_DONTWAIT);
      sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
      sqe->user_data = kProbeUserData;
      features_.sendmsg_zc_fixed = Accepted(sqe);
    }
    if ((sqe = get_sqe()) != nullptr) {
      io_uring_prep_cancel_fd(sqe, fds[0], IORING_ASYNC_CANCEL_ALL);
      sqe->user_data = kProbeUserData;
      features_.async_cancel_fd = Accepted(sqe);
    }
    close(fds[0]);
    close(fds[1]);
  }

  io_uring own_;
  io_uring* ring_ = &own_;  // own_, or the caller's ring
  bool initialized_ = false;
  bool enabled_ = false;
  bool borrowed_ = false;
  int event_fd_ = -1;  // WatchFd's eventfd, once made
  RingFeatures features_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Ring>> BorrowIoUringRing(io_uring* ring) {
  if (ring == nullptr) return absl::InvalidArgumentError("ring is null");
  auto borrowed = std::make_unique<IoUringRing>();
  absl::Status status = borrowed->InitBorrowed(ring);
  if (!status.ok()) return status;
  return std::unique_ptr<Ring>(std::move(borrowed));
}

absl::StatusOr<std::unique_ptr<Ring>> MakeIoUringRing(
    const IoUringRingOptions& options) {
  if (options.sq_entries == 0 || options.sq_entries > 32768) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sq_entries is ", options.sq_entries, "; it must be 1..32768"));
  }
  auto ring = std::make_unique<IoUringRing>();
  absl::Status status = ring->Init(options);
  if (!status.ok()) return status;
  return std::unique_ptr<Ring>(std::move(ring));
}

}  // namespace zcplan
