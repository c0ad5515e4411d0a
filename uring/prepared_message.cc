// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/prepared_message.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zcplan {

absl::StatusOr<std::shared_ptr<const PreparedMessage>> PreparedMessage::Create(
    absl::Span<const iovec> buffers) {
  if (buffers.empty()) {
    return absl::InvalidArgumentError(
        "PreparedMessage: no buffers (a message needs at least one)");
  }
  if (buffers.size() > kMaxBuffers) {
    return absl::InvalidArgumentError(
        absl::StrCat("PreparedMessage: ", buffers.size(),
                     " buffers, more than the limit of ", kMaxBuffers));
  }
  constexpr uint64_t kMaxBytes = SSIZE_MAX;
  std::vector<uint64_t> ends(buffers.size());
  uint64_t sum = 0;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const iovec& b = buffers[i];
    if (b.iov_base == nullptr || b.iov_len == 0 || b.iov_len > kMaxBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("PreparedMessage: buffer ", i, " (base ",
                       b.iov_base == nullptr ? "null" : "set", ", length ",
                       b.iov_len, ") is not a buffer of 1..SSIZE_MAX bytes"));
    }
    if (b.iov_len > kMaxBytes - sum) {
      return absl::InvalidArgumentError(
          absl::StrCat("PreparedMessage: buffer ", i, " (length ", b.iov_len,
                       ") brings the message past SSIZE_MAX (", kMaxBytes,
                       ") bytes, with ", sum, " before it"));
    }
    sum += b.iov_len;
    ends[i] = sum;
  }
  static std::atomic<uint64_t> next_id{1};
  const uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  return std::shared_ptr<const PreparedMessage>(new PreparedMessage(
      std::vector<iovec>(buffers.begin(), buffers.end()), std::move(ends), id));
}

PreparedMessage::Position PreparedMessage::Locate(uint64_t offset) const {
  // The first buffer whose end lies past the offset.
  const size_t i = static_cast<size_t>(
      std::upper_bound(ends_.begin(), ends_.end(), offset) - ends_.begin());
  return Position{i, offset - BytesBefore(i)};
}

}  // namespace zcplan
