// SPDX-License-Identifier: Apache-2.0
// The real `Ring`: a liburing instance, probed once when it is made.
//
// Thread safety: one thread (see ring.h).

#ifndef ZCPLAN_URING_IO_URING_RING_H_
#define ZCPLAN_URING_IO_URING_RING_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

struct io_uring;  // liburing.h
#include "zcplan/uring/ring.h"

namespace zcplan {

struct IoUringRingOptions {
  uint32_t sq_entries = 256;
  uint32_t cq_entries = 2048;  // at least sq_entries
  // IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN when the kernel
  // has them (6.1+); the ring is then bound to the first thread that calls
  // `SubmitAndWait` (it is made disabled and enabled there), and only that
  // thread may submit to it.
  bool defer_taskrun = true;
};

// Makes a ring (with IORING_SETUP_SUBMIT_ALL and a sized completion queue,
// falling back to plainer setups on older kernels) and probes the zero-copy
// opcodes and flags (`RingFeatures`). Errors: the kernel's, e.g.
// PermissionDenied when io_uring is disabled, ResourceExhausted when
// RLIMIT_MEMLOCK is too small for the ring.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Ring>> MakeIoUringRing(
    const IoUringRingOptions& options);

// A `Ring` on a liburing ring the caller set up and keeps (with whatever
// flags it chose): it puts SQEs on that ring and submits it, and `Reap`
// consumes every completion, the caller's too (the executor calls it only
// when told what to do with those). The caller's ring must outlive it and
// is never torn down by it. Errors: InvalidArgument for a null ring, one not
// set up, or one set up with IORING_SETUP_IOPOLL (no socket ops);
// FailedPrecondition for a kernel without IORING_FEAT_NODROP (5.5+).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Ring>> BorrowIoUringRing(
    struct io_uring* ring);

}  // namespace zcplan

#endif  // ZCPLAN_URING_IO_URING_RING_H_
