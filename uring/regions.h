// SPDX-License-Identifier: Apache-2.0
// The memory regions registered with a ring as fixed buffers.
//
// `RegisteredRegions` remembers the regions given to
// `io_uring_register_buffers` and answers, for the pieces of one op, which
// registered buffer holds all of them (a zero-copy send that names it pins
// nothing more and is not charged to RLIMIT_MEMLOCK). It also says what the
// registration itself pins. It registers nothing: the owner validates,
// registers through the ring, then calls `Set`.
//
// Ownership: it keeps addresses only; the regions' memory stays the
// caller's. `Find` allocates nothing and takes O(pieces + log regions).
//
// Thread safety: const methods may run concurrently; `Set` may not run
// beside anything else.

#ifndef ZCPLAN_URING_REGIONS_H_
#define ZCPLAN_URING_REGIONS_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace zcplan {

class RegisteredRegions {
 public:
  // The most regions one ring takes (IORING_MAX_REG_BUFFERS).
  static constexpr size_t kMaxRegions = 16384;

  // OK, or InvalidArgument: naming the count unless 1..kMaxRegions regions;
  // naming the index of a region with a null base, a zero length, or a last
  // page past the top of the address space.
  [[nodiscard]] static absl::Status Validate(absl::Span<const iovec> regions);

  // Records `regions`, registered as fixed buffers 0..n-1 in this order,
  // replacing what was recorded. Requires: `Validate(regions)` is OK.
  // Overlapping regions are allowed. Allocates.
  void Set(absl::Span<const iovec> regions);

  bool empty() const { return begins_.empty(); }
  size_t size() const { return begins_.size(); }

  // Bytes the kernel pins and charges for the registration: the whole pages
  // each region spans, summed (regions sharing a page count it twice).
  uint64_t pinned_bytes() const { return pinned_bytes_; }

  // The index (in `Set` order) of a region holding every piece entirely, or
  // -1, also for no pieces or no regions. A zero-length piece must lie inside
  // too (at most at the region's end). Where several regions qualify, any.
  int Find(absl::Span<const iovec> pieces) const;

 private:
  struct Reach {
    uintptr_t end;
    int index;
  };
  // Region begins in ascending order; `reach_[i]`: of the regions at
  // `begins_[0..i]`, the one that ends last.
  std::vector<uintptr_t> begins_;
  std::vector<Reach> reach_;
  uint64_t pinned_bytes_ = 0;
};

}  // namespace zcplan

#endif  // ZCPLAN_URING_REGIONS_H_
