// SPDX-License-Identifier: Apache-2.0
// What the kernel charges to RLIMIT_MEMLOCK for zero-copy sends.
//
// A zero-copy send on memory that is not a registered buffer pins its pages
// until the notification; the kernel charges (length >> PAGE_SHIFT) + 2
// pages to the user's RLIMIT_MEMLOCK when the op is prepared (for every op
// of a linked chain at once), and gives the charge back with the
// notification. A process with CAP_IPC_LOCK is not charged.

#ifndef ZCPLAN_URING_MEMLOCK_H_
#define ZCPLAN_URING_MEMLOCK_H_

#include <cstdint>

namespace zcplan {

// The page size, zcplan's one source of it: the unit of the kernel's charge
// and of pinning. It is 4 KiB on the machines zcplan supports (x86-64, and
// arm64 kernels with 4 KiB pages); `regions_test` checks it against
// sysconf(_SC_PAGESIZE), so a machine where it differs fails loudly.
inline constexpr uint64_t kPageBytes = 4096;

// The charge for one unregistered zero-copy op of `bytes` bytes.
constexpr uint64_t MemlockCharge(uint64_t bytes) {
  return (bytes / kPageBytes + 2) * kPageBytes;
}

// The most bytes one op may carry for its charge to fit in `budget` bytes;
// 0 when even an empty op would not fit (under 3 pages).
constexpr uint64_t LargestOpUnder(uint64_t budget) {
  return budget < 3 * kPageBytes ? 0 : (budget / kPageBytes - 2) * kPageBytes;
}

}  // namespace zcplan

#endif  // ZCPLAN_URING_MEMLOCK_H_
