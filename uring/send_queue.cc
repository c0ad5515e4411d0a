#include "zcplan/uring/send_queue.h"

namespace zcplan {

void SendQueue::AdvanceSent(uint64_t bytes) {
  while (bytes > 0) {
    assert(sent_seq_ < end_seq());
    const uint64_t available = at(sent_seq_).iov_len - sent_off_;
    if (bytes >= available) {
      bytes -= available;
      ++sent_seq_;
      sent_off_ = 0;
    } else {
      sent_off_ += bytes;
      bytes = 0;
    }
  }
}

bool SendQueue::NextUnreleased(uint64_t* cursor, Run* run) const {
  const uint64_t end = end_seq();
  uint64_t q = std::max(*cursor, base_seq_ + front_);
  while (q < end && (states_[q - base_seq_] & kReleased) != 0) ++q;
  if (q >= end) return false;
  const bool sent = q < sent_seq_;
  const uint64_t run_end = sent ? std::min(end, sent_seq_) : end;
  uint64_t r = q + 1;
  while (r < run_end && (states_[r - base_seq_] & kReleased) == 0) ++r;
  run->first = q;
  run->end = r;
  run->sent = sent;
  *cursor = r;
  return true;
}

void SendQueue::Compact() {
  // Unsent buffers released by a stopped connection stay: they are past
  // sent_seq_, which never moves again.
  while (front_ < states_.size() && states_[front_] == kReleased &&
         base_seq_ + front_ < sent_seq_) {
    ++front_;
  }
  if (front_ == states_.size() && sent_seq_ == base_seq_ + front_) {
    base_seq_ += front_;
    iovs_.clear();
    states_.clear();
    tokens_.clear();
    front_ = 0;
  }
  // Erasing a released front that still has buffers behind it is left to
  // the next Push that would grow the storage: a queue that drains between
  // pushes (the usual case) then never moves its buffers at all.
}

void SendQueue::EraseFront() {
  iovs_.erase(iovs_.begin(), iovs_.begin() + front_);
  states_.erase(states_.begin(), states_.begin() + front_);
  tokens_.erase(tokens_.begin(), tokens_.begin() + front_);
  base_seq_ += front_;
  front_ = 0;
}

void SendQueue::Clear() {
  // Swapped out, not cleared: a freed connection keeps no queue memory.
  std::vector<iovec>().swap(iovs_);
  std::vector<State>().swap(states_);
  std::vector<uint64_t>().swap(tokens_);
  base_seq_ = 0;
  front_ = 0;
  held_ = 0;
  held_bytes_ = 0;
  sent_seq_ = 0;
  sent_off_ = 0;
}

}  // namespace zcplan
