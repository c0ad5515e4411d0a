// SPDX-License-Identifier: Apache-2.0
// The one seam between the executor and the kernel.
//
// `Ring` is the small part of an io_uring instance the executor uses: get an
// SQE, submit (and maybe wait), reap completions, register buffers. The real
// implementation (`IoUringRing`, io_uring_ring.h) forwards to liburing; tests
// use a state-based fake (tests/uring/fake_ring.h) that executes the SQEs it
// is given against in-memory sockets and plays back faults.
//
// The SQEs are the kernel's own `struct io_uring_sqe`, so the encoding the
// executor writes (opcodes, MSG_WAITALL, IOSQE_IO_LINK, zero-copy flags) is
// exactly what the fake checks.
//
// Thread safety: a `Ring` is used from one thread at a time (the
// executor's, which on a borrowed ring is the caller's ring thread). A ring
// made with IORING_SETUP_SINGLE_ISSUER is bound to the thread that first calls
// `SqSpaceLeft`, `GetSqe` or `SubmitAndWait`; from any other thread
// `SubmitAndWait` then fails with -EEXIST.

#ifndef ZCPLAN_URING_RING_H_
#define ZCPLAN_URING_RING_H_

#include <linux/io_uring.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

// Debian 12 ships liburing 2.3, whose headers predate these (kernel 6.2).
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

namespace zcplan {

// One completion-queue entry, copied out of the ring.
struct Completion {
  uint64_t user_data;
  int32_t res;
  uint32_t flags;  // IORING_CQE_F_MORE, IORING_CQE_F_NOTIF, ...
};

// What the kernel behind a ring supports, found when the ring is made; the
// three flags marked (*) need SQEs to probe, so on a SINGLE_ISSUER ring,
// which is made disabled and enabled by the thread that first uses it, they
// are found then (the first `SqSpaceLeft`, `GetSqe` or `SubmitAndWait`) and
// read false before.
struct RingFeatures {
  bool send_zc = false;           // IORING_OP_SEND_ZC
  bool sendmsg_zc = false;        // IORING_OP_SENDMSG_ZC
  bool zc_report_usage = false;   // (*) IORING_SEND_ZC_REPORT_USAGE (6.2+)
  bool sendmsg_zc_fixed = false;  // (*) IORING_RECVSEND_FIXED_BUF on
                                  // SENDMSG_ZC (6.15+)
  bool async_cancel_fd = false;   // (*) IORING_ASYNC_CANCEL_FD | _ALL (5.19+)
  uint32_t sq_entries = 0;
  uint32_t cq_entries = 0;
  uint32_t setup_flags = 0;  // IORING_SETUP_* flags the ring was made with
  // Bytes of the ring's own memory (submission and completion queues) that
  // the kernel charges to RLIMIT_MEMLOCK of a process without CAP_IPC_LOCK.
  uint64_t memlock_bytes = 0;
  // Whether the kernel charges this ring's locked memory at all: false when
  // the ring was made by a process with CAP_IPC_LOCK (root), which io_uring
  // never charges (for the ring, registered buffers or zero-copy sends).
  bool memlock_charged = true;
};

class Ring {
 public:
  virtual ~Ring() = default;

  virtual const RingFeatures& features() const = 0;

  // Free submission-queue entries.
  virtual uint32_t SqSpaceLeft() = 0;

  // The next free SQE, zeroed, or null when the submission queue is full.
  // The SQE is not submitted until `SubmitAndWait`.
  virtual struct io_uring_sqe* GetSqe() = 0;

  // Submits every SQE obtained since the last call, in one system call (so a
  // linked chain stays one chain), then waits until at least `wait_nr`
  // completions are available or `timeout_ns` passes (negative: no limit).
  // With `wait_nr` 0 it does not block but still lets the kernel post
  // completions that were deferred to this task.
  // Returns the number of SQEs submitted, or a negative errno: -ETIME
  // (timeout), -EINTR (signal), -EBUSY / -EAGAIN (completion backlog or no
  // memory: the SQEs stay queued and go with the next call).
  virtual int SubmitAndWait(uint32_t wait_nr, int64_t timeout_ns) = 0;

  // Copies up to `out.size()` available completions into `out`, in order,
  // consumes them, and returns how many.
  virtual size_t Reap(absl::Span<Completion> out) = 0;

  // SQE accounting, so that SQEs not yet taken by the kernel can still be
  // changed (a stopped connection's are turned into NOPs): `SqesObtained`
  // counts every SQE `GetSqe` has handed out (on a ring shared with the
  // caller, the caller's too), `SqesTaken` those the kernel has taken or may
  // take at any moment (the submission queue's head; with SQPOLL, every SQE
  // made visible to the kernel). Both count modulo 2^32: the SQE that
  // `GetSqe` returned last is number `SqesObtained() - 1`, and an SQE of
  // number `n` is untaken while `int32_t(n - SqesTaken()) >= 0`.
  virtual uint32_t SqesObtained() = 0;
  virtual uint32_t SqesTaken() = 0;

  // Registers `buffers` as fixed buffers 0..n-1 (replacing none: call once).
  // Returns 0 or a negative errno.
  virtual int RegisterBuffers(absl::Span<const struct iovec> buffers) = 0;

  // Resets the TCP connection of socket `fd` at once (connect with
  // AF_UNSPEC: the kernel sends RST and purges the send queue, which ends
  // the ops blocked on it and posts the notifications of every zero-copy
  // send still queued). The descriptor stays open. Returns 0 or a negative
  // errno.
  virtual int AbortConnection(int fd) = 0;

  // A file descriptor for a reactor to watch (an owned ring only; a ring
  // borrowed from the caller returns -ENOTSUP): readable whenever the ring has
  // completions to deliver. It is the ring's own fd, except on a
  // DEFER_TASKRUN ring, where the kernel queues completions as work for the
  // ring's thread and does not wake pollers of the ring fd: there it is an
  // eventfd registered with the ring (IORING_REGISTER_EVENTFD), made on the
  // first call. Returns the fd or a negative errno (-ENOTSUP for a fake).
  virtual int WatchFd() = 0;
  // Clears the readiness of an eventfd from `WatchFd` (reads it); call it
  // before entering the ring to handle what is ready.
  virtual void DrainWatchFd() = 0;
};

}  // namespace zcplan

#endif  // ZCPLAN_URING_RING_H_
