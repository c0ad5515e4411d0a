// The real `Ring`: a liburing instance, probed once when it is made.
//
// Thread safety: one thread (see ring.h).

#ifndef ZCPLAN_URING_IO_URING_RING_H_
#define ZCPLAN_URING_IO_URING_RING_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "uring/ring.h"

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

}  // namespace zcplan

#endif  // ZCPLAN_URING_IO_URING_RING_H_
