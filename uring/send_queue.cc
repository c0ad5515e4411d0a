// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/send_queue.h"

namespace zcplan {

void SendQueue::AdvanceSent(uint64_t bytes) {
  if (bytes == 0) return;
  // The stream position to reach, found among the prefix sums.
  const size_t i = static_cast<size_t>(sent_seq_ - base_seq_);
  const uint64_t target = BytesBefore(i) + sent_off_ + bytes;
  assert(!ends_.empty() && target <= ends_.back());
  const size_t k = static_cast<size_t>(
      std::upper_bound(ends_.begin() + i, ends_.end(), target) - ends_.begin());
  sent_seq_ = base_seq_ + k;
  sent_off_ = target - BytesBefore(k);
  assert(k < ends_.size() || sent_off_ == 0);
}

bool SendQueue::NextUnreleased(uint64_t* cursor, Run* run) const {
  const uint64_t end = end_seq();
  uint64_t q = std::max(*cursor, base_seq_ + front_);
  // Intervals are never adjacent: past one, q is unreleased (or the end).
  if (const Interval* r = ReleasedAt(q)) q = r->end;
  if (q >= end) return false;
  const bool sent = q < sent_seq_;
  uint64_t r = sent ? std::min(end, sent_seq_) : end;
  const size_t i = ReleasedAfter(q);
  if (i < released_.size()) r = std::min(r, released_[i].first);
  run->first = q;
  run->end = r;
  run->sent = sent;
  *cursor = r;
  return true;
}

bool SendQueue::AnyReleased(uint64_t first, uint64_t end) const {
  if (first >= end) return false;
  if (first < base_seq_ + front_) return true;
  if (ReleasedAt(first) != nullptr) return true;
  const size_t i = ReleasedAfter(first);
  return i < released_.size() && released_[i].first < end;
}

void SendQueue::EraseFront() {
  base_bytes_ = BytesBefore(front_);
  iovs_.erase(iovs_.begin(), iovs_.begin() + front_);
  tokens_.erase(tokens_.begin(), tokens_.begin() + front_);
  ends_.erase(ends_.begin(), ends_.begin() + front_);
  base_seq_ += front_;
  front_ = 0;
}

void SendQueue::Clear() {
  // Swapped out, not cleared: a freed connection keeps no queue memory.
  std::vector<iovec>().swap(iovs_);
  std::vector<uint64_t>().swap(tokens_);
  decltype(ends_)().swap(ends_);
  std::vector<Interval>().swap(released_);
  std::vector<HoldRange>().swap(holds_);
  base_seq_ = 0;
  base_bytes_ = 0;
  front_ = 0;
  held_ = 0;
  held_bytes_ = 0;
  sent_seq_ = 0;
  sent_off_ = 0;
}

}  // namespace zcplan
