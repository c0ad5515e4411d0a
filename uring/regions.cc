// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/regions.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "zcplan/uring/memlock.h"

namespace zcplan {

absl::Status RegisteredRegions::Validate(absl::Span<const iovec> regions) {
  if (regions.empty() || regions.size() > kMaxRegions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RegisterBuffers: ", regions.size(), " regions; 1..16384 allowed"));
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    if (regions[i].iov_base == nullptr || regions[i].iov_len == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RegisterBuffers: region ", i, " is empty or has a null base"));
    }
    // Its last page must end inside the address space (the kernel says
    // -EOVERFLOW); `pinned_bytes` rounds up to it.
    const uintptr_t begin = reinterpret_cast<uintptr_t>(regions[i].iov_base);
    if (regions[i].iov_len > UINTPTR_MAX - begin ||
        UINTPTR_MAX - begin - regions[i].iov_len < kPageBytes - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("RegisterBuffers: region ", i, " (", regions[i].iov_len,
                       " bytes) ends past the top of the address space"));
    }
  }
  return absl::OkStatus();
}

void RegisteredRegions::Set(absl::Span<const iovec> regions) {
  std::vector<int> order(regions.size());
  std::iota(order.begin(), order.end(), 0);
  auto begin_of = [&](int i) {
    return reinterpret_cast<uintptr_t>(regions[i].iov_base);
  };
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return begin_of(a) < begin_of(b); });
  begins_.clear();
  reach_.clear();
  pinned_bytes_ = 0;
  Reach reach{0, -1};
  for (int i : order) {
    const uintptr_t begin = begin_of(i);
    const uintptr_t end = begin + regions[i].iov_len;
    if (reach.index < 0 || end > reach.end) reach = Reach{end, i};
    begins_.push_back(begin);
    reach_.push_back(reach);
    pinned_bytes_ += (end + kPageBytes - 1) / kPageBytes * kPageBytes -
                     begin / kPageBytes * kPageBytes;
  }
}

int RegisteredRegions::Find(absl::Span<const iovec> pieces) const {
  if (begins_.empty() || pieces.empty()) return -1;
  // A region holds every piece exactly when it holds [lo, hi).
  uintptr_t lo = UINTPTR_MAX;
  uintptr_t hi = 0;
  for (const iovec& piece : pieces) {
    const uintptr_t b = reinterpret_cast<uintptr_t>(piece.iov_base);
    lo = std::min(lo, b);
    hi = std::max(hi, b + piece.iov_len);
  }
  // Of the regions beginning at or before `lo`, the one reaching furthest.
  const size_t k = static_cast<size_t>(
      std::upper_bound(begins_.begin(), begins_.end(), lo) - begins_.begin());
  if (k == 0) return -1;
  const Reach& r = reach_[k - 1];
  return r.end >= hi ? r.index : -1;
}

}  // namespace zcplan
