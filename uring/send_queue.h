// The send queue of one connection: the buffers enqueued on it, in order,
// from push to release.
//
// Every buffer pushed gets the next sequence number of the queue (0, 1, 2,
// ..., never reused until `Clear`). The queue keeps, per buffer, its iovec,
// the caller's token, how many ops in flight reference it (`Hold` /
// `Unhold`) and whether it has been released; and the sent position, the
// first byte not yet confirmed sent. The owner (the executor) asks it for
// the runs of buffers that may be released now, releases them, and calls its
// own release callback; the queue never calls anything.
//
// Ownership: the queue stores iovecs, not memory. It never reads or writes
// the bytes a buffer points at.
//
//   WARNING: the queue only says when no op it was told about still holds a
//   buffer. The kernel may read a buffer until every op that references it
//   has completed (and, for zero-copy, been notified): `Hold` each buffer an
//   op references before the op is submitted, and `Unhold` only after that.
//
// Errors: none at run time. Each function states what it requires; breaking
// that (a seq out of range, an Unhold without a Hold, moving the sent
// position backwards) is a bug in the caller and corrupts the queue (debug
// builds assert).
//
// Cost: plain vectors, no allocation per buffer beyond their amortised
// growth; storage is reclaimed by `Compact` in amortised O(1) per buffer.
//
// Thread safety: a `SendQueue` is used from one thread at a time.

#ifndef ZCPLAN_URING_SEND_QUEUE_H_
#define ZCPLAN_URING_SEND_QUEUE_H_

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace zcplan {

class SendQueue {
 public:
  // A run of consecutive buffers [first, end) released together: all fully
  // sent (`sent == true`) or all unsent (partly sent counts as unsent).
  struct Run {
    uint64_t first = 0;
    uint64_t end = 0;
    bool sent = false;
  };

  SendQueue() = default;
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;
  SendQueue(SendQueue&&) = default;
  SendQueue& operator=(SendQueue&&) = default;

  // Appends `buffer` (caller's `token`) with seq `end_seq()`. The caller
  // checks the buffer (non-empty) and any byte limit.
  void Push(const iovec& buffer, uint64_t token);
  // Appends `buffers` in order, buffer i with token i. Requires
  // buffers.size() == tokens.size() (the caller checks).
  void Push(absl::Span<const iovec> buffers, absl::Span<const uint64_t> tokens);
  // The same, with `bytes` the sum of the buffers' lengths, which the
  // caller has already computed (checking a byte limit).
  void Push(absl::Span<const iovec> buffers, absl::Span<const uint64_t> tokens,
            uint64_t bytes);

  // Buffers pushed and not yet released, and their bytes.
  size_t held() const { return held_; }
  uint64_t held_bytes() const { return held_bytes_; }
  // The first seq still stored (released ones before it are gone), and the
  // seq the next Push gets. `stored()` is end_seq() - first_seq().
  uint64_t first_seq() const { return base_seq_; }
  uint64_t end_seq() const { return base_seq_ + iovs_.size(); }
  size_t stored() const { return iovs_.size(); }

  // The sent position: the first byte not yet confirmed sent is byte
  // `sent_offset()` of buffer `sent_seq()` (sent_seq() == end_seq() and
  // offset 0 when all is sent).
  uint64_t sent_seq() const { return sent_seq_; }
  uint64_t sent_offset() const { return sent_off_; }
  bool HasUnsent() const { return sent_seq_ < end_seq(); }

  // The buffers from sent_seq() to the end: element 0 has seq sent_seq(),
  // and its first sent_offset() bytes are sent.
  //
  //   WARNING: valid until the next Push, Compact or Clear.
  absl::Span<const iovec> Unsent() const {
    const size_t start = static_cast<size_t>(sent_seq_ - base_seq_);
    return absl::Span<const iovec>(iovs_.data() + start, iovs_.size() - start);
  }
  // Requires first_seq() <= seq < end_seq(). Valid like Unsent().
  const iovec& at(uint64_t seq) const {
    assert(seq >= base_seq_ && seq < end_seq());
    return iovs_[static_cast<size_t>(seq - base_seq_)];
  }
  // The token of buffer `seq`; requires first_seq() <= seq < end_seq().
  uint64_t token(uint64_t seq) const {
    assert(seq >= base_seq_ && seq < end_seq());
    return tokens_[static_cast<size_t>(seq - base_seq_)];
  }

  // An op in flight references buffers [first, first + count) / no longer
  // does. Requires the range stored; Hold of unreleased buffers only, Unhold
  // only of what was held (a released buffer may still be unheld, see
  // Release). At most 2^31 - 1 holds per buffer.
  void Hold(uint64_t first, uint32_t count) {
    assert(first >= base_seq_ && first + count <= end_seq());
    State* s = states_.data() + (first - base_seq_);
    for (uint32_t k = 0; k < count; ++k) {
      assert((s[k] & kReleased) == 0);
      ++s[k];
    }
  }
  void Unhold(uint64_t first, uint32_t count) {
    assert(first >= base_seq_ && first + count <= end_seq());
    State* s = states_.data() + (first - base_seq_);
    for (uint32_t k = 0; k < count; ++k) {
      assert((s[k] & kHoldMask) != 0);
      --s[k];
    }
  }

  // An op completed whole: the stream now stands at (seq, offset); offset 0
  // means seq is the next unsent buffer. Requires it not before the current
  // position, and offset < at(seq).iov_len (or seq == end_seq(), offset 0).
  void SetSent(uint64_t seq, uint64_t offset) {
    assert(seq > sent_seq_ || (seq == sent_seq_ && offset >= sent_off_));
    assert(seq < end_seq() || (seq == end_seq() && offset == 0));
    assert(seq == end_seq() || offset < at(seq).iov_len);
    sent_seq_ = seq;
    sent_off_ = offset;
  }
  // A short send: `bytes` more bytes are sent from the current position (may
  // cross buffers). Requires no more than the unsent bytes.
  void AdvanceSent(uint64_t bytes);

  // The next run, scanning from *cursor up to min(to, end_seq()) (end_seq()
  // at this call: a release callback's Push extends it), of buffers no op
  // holds and not yet released that may be released now: fully sent ones
  // (run->sent), and, only when `stopped` (the connection is closed or failed),
  // unsent ones too (!run->sent). A run never mixes the two. Sets *cursor to
  // run->end and returns true, or returns false (cursor unchanged) when there
  // is none before `to`.
  [[nodiscard]] bool NextReleasable(uint64_t* cursor, uint64_t to, bool stopped,
                                    Run* run) const;
  // The next run from *cursor of buffers not yet released, held or not
  // (what Shutdown hands back as KernelMayStillRead); split like
  // NextReleasable where sent meets unsent. Sets *cursor to run->end and
  // returns true, or returns false when there is none.
  [[nodiscard]] bool NextUnreleased(uint64_t* cursor, Run* run) const;

  // Marks `run` (from NextReleasable or NextUnreleased, before any Compact)
  // released; copies its tokens into *tokens (replacing its contents) and
  // returns its bytes. The caller then calls its release callback, which may
  // Push to this queue (not Compact or Clear while it still uses the run).
  // Holds on a released buffer stay counted: Unhold may still follow, and
  // the buffer stays stored until it is unheld (or Clear).
  uint64_t Release(const Run& run, std::vector<uint64_t>* tokens);

  // Drops released, sent, unheld buffers from the front: clears the storage
  // when all of it is such. Otherwise the front is erased by the next Push
  // that would grow the storage, when it is at least 1024 buffers and half
  // of it. Seqs do not change. Call after a batch of Releases.
  void Compact();

  // Frees the storage (capacity too) and makes this a new, empty queue: seqs
  // start again at 0, all counts are zero.
  void Clear();

 private:
  static constexpr size_t kMinEraseFront = 1024;
  // Before pushing `n` buffers: erases the released front if the storage
  // would grow and the front is worth moving the rest for.
  void MakeRoom(size_t n);
  void EraseFront();

  // Bits 0..30: ops holding the buffer; bit 31: released.
  using State = uint32_t;
  static constexpr State kReleased = State{1} << 31;
  static constexpr State kHoldMask = kReleased - 1;

  // Buffers from seq base_seq_ on; those before front_ are released (and
  // sent and unheld) and wait for compaction.
  std::vector<iovec> iovs_;
  std::vector<State> states_;
  std::vector<uint64_t> tokens_;  // apart, so a run of them is one copy
  uint64_t base_seq_ = 0;
  size_t front_ = 0;
  size_t held_ = 0;
  uint64_t held_bytes_ = 0;
  uint64_t sent_seq_ = 0;
  uint64_t sent_off_ = 0;
};

inline void SendQueue::MakeRoom(size_t n) {
  if (iovs_.size() + n > iovs_.capacity() && front_ >= kMinEraseFront &&
      front_ * 2 >= iovs_.size()) {
    EraseFront();
  }
}

inline void SendQueue::Push(const iovec& buffer, uint64_t token) {
  MakeRoom(1);
  iovs_.push_back(buffer);
  states_.push_back(0);
  tokens_.push_back(token);
  ++held_;
  held_bytes_ += buffer.iov_len;
}

inline void SendQueue::Push(absl::Span<const iovec> buffers,
                            absl::Span<const uint64_t> tokens) {
  uint64_t bytes = 0;
  for (const iovec& b : buffers) bytes += b.iov_len;
  Push(buffers, tokens, bytes);
}

inline void SendQueue::Push(absl::Span<const iovec> buffers,
                            absl::Span<const uint64_t> tokens, uint64_t bytes) {
  assert(buffers.size() == tokens.size());
  MakeRoom(buffers.size());
  iovs_.insert(iovs_.end(), buffers.begin(), buffers.end());
  states_.resize(states_.size() + buffers.size());
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  held_ += buffers.size();
  held_bytes_ += bytes;
}

inline bool SendQueue::NextReleasable(uint64_t* cursor, uint64_t to,
                                      bool stopped, Run* run) const {
  const State* s = states_.data();
  const uint64_t base = base_seq_;
  uint64_t q = std::max(*cursor, base + front_);
  to = std::min(to, end_seq());
  // Before sent_seq_ a buffer is done when no op holds it; from it on, only
  // when the connection has stopped.
  const uint64_t scan_end = stopped ? to : std::min(to, sent_seq_);
  while (q < scan_end && s[q - base] != 0) ++q;
  if (q >= scan_end) return false;
  const bool sent = q < sent_seq_;
  const uint64_t run_end = sent ? std::min(scan_end, sent_seq_) : scan_end;
  uint64_t r = q + 1;
  while (r < run_end && s[r - base] == 0) ++r;
  run->first = q;
  run->end = r;
  run->sent = sent;
  *cursor = r;
  return true;
}

inline uint64_t SendQueue::Release(const Run& run,
                                   std::vector<uint64_t>* tokens) {
  assert(run.first >= base_seq_ + front_ && run.first < run.end &&
         run.end <= end_seq());
  const size_t i = static_cast<size_t>(run.first - base_seq_);
  const size_t j = static_cast<size_t>(run.end - base_seq_);
  uint64_t bytes = 0;
  State holds = 0;
  for (size_t k = i; k < j; ++k) {
    assert((states_[k] & kReleased) == 0);
    holds |= states_[k];
    states_[k] |= kReleased;
    bytes += iovs_[k].iov_len;
  }
  held_ -= j - i;
  held_bytes_ -= bytes;
  // Sent, unheld buffers at the front need no scan in Compact.
  if (run.sent && holds == 0 && i == front_) front_ = j;
  tokens->assign(tokens_.begin() + i, tokens_.begin() + j);
  return bytes;
}

}  // namespace zcplan

#endif  // ZCPLAN_URING_SEND_QUEUE_H_
