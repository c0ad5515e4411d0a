// SPDX-License-Identifier: Apache-2.0
// The send queue of one connection: the buffers enqueued on it, in order,
// from push to release.
//
// Every buffer pushed gets the next sequence number of the queue (0, 1, 2,
// ..., never reused until `Clear`). The queue keeps, per buffer, its iovec
// and the caller's token; the ranges of buffers the ops in flight reference
// (`Hold` / `Unhold`); the runs of buffers released; and the sent position,
// the first byte not yet confirmed sent. The owner (the executor) asks it
// for the runs of buffers that may be released now, releases them, and calls
// its own release callback; the queue never calls anything.
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
// that (a seq out of range, an Unhold without its Hold, moving the sent
// position backwards) is a bug in the caller and corrupts the queue (debug
// builds assert).
//
// Cost: nothing is done per buffer but storing it at Push and copying its
// token at Release. Holds, released runs and byte counts are kept per range
// (a prefix sum of lengths gives a run's bytes), so Hold, Unhold, Release,
// NextReleasable and Compact cost O(ranges held + runs released apart), a
// few in practice. Plain vectors, no allocation per buffer beyond their
// amortised growth; storage is reclaimed by `Compact` and `Push` in
// amortised O(1) per buffer.
//
// Thread safety: a `SendQueue` is used from one thread at a time.

#ifndef ZCPLAN_URING_SEND_QUEUE_H_
#define ZCPLAN_URING_SEND_QUEUE_H_

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
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
  // caller has already computed (checking a byte limit; debug builds check
  // it again).
  void Push(absl::Span<const iovec> buffers, absl::Span<const uint64_t> tokens,
            uint64_t bytes);
  // Pushes `buffers` if `accept(buffer, bytes_before)` is true for every
  // one of them (`bytes_before`: the bytes of the batch before it), checked
  // in the same pass that sums their lengths; otherwise pushes none of them
  // and returns false. For a caller that checks each buffer anyway.
  template <typename Accept>
  bool PushIf(absl::Span<const iovec> buffers,
              absl::Span<const uint64_t> tokens, Accept&& accept);

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
  // The buffers [first, end); requires first_seq() <= first <= end <=
  // end_seq(). Valid like Unsent().
  absl::Span<const iovec> Range(uint64_t first, uint64_t end) const {
    assert(first >= base_seq_ && first <= end && end <= end_seq());
    return absl::Span<const iovec>(iovs_.data() + (first - base_seq_),
                                   static_cast<size_t>(end - first));
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
  // does. Requires the range stored and unreleased for Hold; Unhold undoes
  // one earlier Hold with the same first and count (a released buffer may
  // still be unheld, see Release). A count of 0 is no hold. At most 2^32 - 1
  // holds of one range at a time.
  void Hold(uint64_t first, uint32_t count);
  void Unhold(uint64_t first, uint32_t count);

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
  // unsent ones too (!run->sent). A run never mixes the two, and is as long
  // as it can be. Sets *cursor to run->end and returns true, or returns false
  // (cursor unchanged) when there is none before `to`.
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

  // Seqs [first, end).
  struct Interval {
    uint64_t first;
    uint64_t end;
  };
  // Buffers [first, end) held `holds` times.
  struct HoldRange {
    uint64_t first;
    uint64_t end;
    uint32_t holds;
  };
  // Leaves new elements uninitialised (they are written at once), so that
  // growing a vector of prefix sums costs no memset.
  template <typename T>
  struct NoInitAllocator : std::allocator<T> {
    template <typename U>
    struct rebind {
      using other = NoInitAllocator<U>;
    };
    NoInitAllocator() = default;
    template <typename U>
    NoInitAllocator(const NoInitAllocator<U>&) {}  // NOLINT: as allocators do
    template <typename U>
    void construct(U* p) {
      ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  };

  // Before pushing `n` buffers: erases the released front if the storage
  // would grow and the front is worth moving the rest for.
  void MakeRoom(size_t n);
  void EraseFront();
  // Byte count of the stream before buffer index `i` (not seq) of the
  // storage; a run's bytes are a difference of two of these.
  uint64_t BytesBefore(size_t i) const {
    return i == 0 ? base_bytes_ : ends_[i - 1];
  }
  // The index in released_ of the first interval that starts after `seq`.
  size_t ReleasedAfter(uint64_t seq) const;
  // The interval of released_ containing `seq`, or nullptr.
  const Interval* ReleasedAt(uint64_t seq) const;
  // Whether any of [first, end) is released (for asserts).
  bool AnyReleased(uint64_t first, uint64_t end) const;
  // Marks [first, end) released, merging it with its neighbours.
  void InsertReleased(uint64_t first, uint64_t end);

  // Buffers from seq base_seq_ on; those before front_ are released (and
  // sent and unheld) and wait for compaction.
  std::vector<iovec> iovs_;
  std::vector<uint64_t> tokens_;  // apart, so a run of them is one copy
  // ends_[i]: the stream's bytes up to and including buffer index i;
  // base_bytes_: those before index 0.
  std::vector<uint64_t, NoInitAllocator<uint64_t>> ends_;
  // Released buffers from front_ on: disjoint, not adjacent, in order.
  std::vector<Interval> released_;
  // What the ops in flight hold, one entry per distinct range, in no order.
  std::vector<HoldRange> holds_;
  uint64_t base_seq_ = 0;
  uint64_t base_bytes_ = 0;
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
  ends_.push_back(BytesBefore(iovs_.size()) + buffer.iov_len);
  iovs_.push_back(buffer);
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
                            absl::Span<const uint64_t> tokens,
                            [[maybe_unused]] uint64_t bytes) {
  [[maybe_unused]] const uint64_t before = held_bytes_;
  PushIf(buffers, tokens, [](const iovec&, uint64_t) { return true; });
  assert(held_bytes_ - before == bytes);
}

template <typename Accept>
bool SendQueue::PushIf(absl::Span<const iovec> buffers,
                       absl::Span<const uint64_t> tokens, Accept&& accept) {
  assert(buffers.size() == tokens.size());
  const size_t n = buffers.size();
  MakeRoom(n);
  const size_t old = iovs_.size();
  const uint64_t start = BytesBefore(old);
  iovs_.insert(iovs_.end(), buffers.begin(), buffers.end());
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  ends_.resize(old + n);
  uint64_t* e = ends_.data() + old;
  uint64_t sum = start;
  bool ok = true;
  for (size_t k = 0; k < n; ++k) {
    ok &= accept(buffers[k], sum - start);
    sum += buffers[k].iov_len;
    e[k] = sum;
  }
  if (!ok) {
    iovs_.resize(old);
    tokens_.resize(old);
    ends_.resize(old);
    return false;
  }
  held_ += n;
  held_bytes_ += sum - start;
  return true;
}

inline void SendQueue::Hold(uint64_t first, uint32_t count) {
  assert(first >= base_seq_ + front_ && first + count <= end_seq());
  assert(!AnyReleased(first, first + count));
  if (count == 0) return;
  for (HoldRange& h : holds_) {
    if (h.first == first && h.end == first + count) {
      assert(h.holds < UINT32_MAX);
      ++h.holds;
      return;
    }
  }
  holds_.push_back({first, first + count, 1});
}

inline void SendQueue::Unhold(uint64_t first, uint32_t count) {
  assert(first >= base_seq_ && first + count <= end_seq());
  if (count == 0) return;
  for (HoldRange& h : holds_) {
    if (h.first == first && h.end == first + count) {
      if (--h.holds == 0) {
        h = holds_.back();
        holds_.pop_back();
      }
      return;
    }
  }
  assert(false && "Unhold without its Hold");
}

inline size_t SendQueue::ReleasedAfter(uint64_t seq) const {
  // Few intervals, mostly one or two: a linear scan beats a binary search.
  size_t i = 0;
  while (i < released_.size() && released_[i].first <= seq) ++i;
  return i;
}

inline const SendQueue::Interval* SendQueue::ReleasedAt(uint64_t seq) const {
  const size_t i = ReleasedAfter(seq);
  if (i == 0 || released_[i - 1].end <= seq) return nullptr;
  return &released_[i - 1];
}

inline bool SendQueue::NextReleasable(uint64_t* cursor, uint64_t to,
                                      bool stopped, Run* run) const {
  uint64_t q = std::max(*cursor, base_seq_ + front_);
  to = std::min(to, end_seq());
  // Before sent_seq_ a buffer is done when no op holds it; from it on, only
  // when the connection has stopped.
  const uint64_t scan_end = stopped ? to : std::min(to, sent_seq_);
  // Jump over released intervals and held ranges until q is neither.
  for (;;) {
    if (q >= scan_end) return false;
    uint64_t next = q;
    if (const Interval* r = ReleasedAt(q)) next = r->end;
    for (const HoldRange& h : holds_) {
      if (h.first <= q && q < h.end) next = std::max(next, h.end);
    }
    if (next == q) break;
    q = next;
  }
  const bool sent = q < sent_seq_;
  uint64_t r = sent ? std::min(scan_end, sent_seq_) : scan_end;
  const size_t i = ReleasedAfter(q);
  if (i < released_.size()) r = std::min(r, released_[i].first);
  // No range holding q: those starting at or before it end at or before it.
  for (const HoldRange& h : holds_) {
    if (h.first > q) r = std::min(r, h.first);
  }
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
  assert(!AnyReleased(run.first, run.end));
  const size_t i = static_cast<size_t>(run.first - base_seq_);
  const size_t j = static_cast<size_t>(run.end - base_seq_);
  const uint64_t bytes = ends_[j - 1] - BytesBefore(i);
  InsertReleased(run.first, run.end);
  held_ -= j - i;
  held_bytes_ -= bytes;
  tokens->assign(tokens_.begin() + i, tokens_.begin() + j);
  return bytes;
}

inline void SendQueue::InsertReleased(uint64_t first, uint64_t end) {
  // Usually at the end (in order) or at the front (the front of the queue).
  const size_t i = ReleasedAfter(first);
  const bool with_prev = i > 0 && released_[i - 1].end == first;
  const bool with_next = i < released_.size() && released_[i].first == end;
  if (with_prev && with_next) {
    released_[i - 1].end = released_[i].end;
    released_.erase(released_.begin() + i);
  } else if (with_prev) {
    released_[i - 1].end = end;
  } else if (with_next) {
    released_[i].first = first;
  } else {
    released_.insert(released_.begin() + i, Interval{first, end});
  }
}

inline void SendQueue::Compact() {
  if (released_.empty()) return;
  Interval& r = released_.front();
  uint64_t front = base_seq_ + front_;
  if (r.first != front) return;
  // The released front goes up to the first held buffer or the first unsent
  // one (unsent buffers released by a stopped connection stay: sent_seq_
  // never moves again).
  uint64_t limit = std::min(r.end, sent_seq_);
  for (const HoldRange& h : holds_) limit = std::min(limit, h.first);
  if (limit <= front) return;
  front = limit;
  front_ = static_cast<size_t>(front - base_seq_);
  if (front == r.end) {
    released_.erase(released_.begin());
  } else {
    r.first = front;
  }
  if (front_ == iovs_.size()) {
    // All of it released, sent and unheld.
    base_seq_ += front_;
    base_bytes_ = 0;
    iovs_.clear();
    tokens_.clear();
    ends_.clear();
    front_ = 0;
  }
  // Erasing a released front that still has buffers behind it is left to
  // the next Push that would grow the storage: a queue that drains between
  // pushes (the usual case) then never moves its buffers at all.
}

}  // namespace zcplan

#endif  // ZCPLAN_URING_SEND_QUEUE_H_
