// SPDX-License-Identifier: Apache-2.0
// The executor's ops in flight, and the user_data that names them.
//
// Every SQE the executor submits carries a 64-bit user_data that the kernel
// copies into the completion. `UserDataCodec` is the one place that builds
// and takes apart those values; `OpSlotTable` keeps one `OpSlot` per op in
// flight and turns a completion's user_data back into that slot, or into
// nothing when the completion is not one of its ops.
//
// user_data layout:
//
//   63........56 55 54..............32 31...............0
//   [    tag    ][I][ generation (23) ][  slot index (32) ]
//
//   tag         the caller's choice (see "Picking a tag"); every user_data
//               the executor submits carries it, so `Owns` is one compare.
//   I           set for the executor's internal requests (cancels, the NOPs
//               that replace undone SQEs): their completions are ignored, and
//               the other bits are zero.
//   generation  the slot's generation: it moves on each time the slot is
//               freed, so a late completion for a freed or reused slot does
//               not match. It wraps after 2^23 - 1 uses of one slot; only a
//               completion that late could match again.
//   slot index  the op's slot in the table.
//
// Picking a tag: on the executor's own ring any tag works (0 is the default).
// On a ring shared with the caller's own SQEs, pick a tag from 1 to 0xFE and
// give none of your own SQEs a user_data with that top byte:
//   - not 0: user-space pointers have a zero top byte on x86-64 and arm64 (and
//     small integers do too), so a caller that stores pointers or counters in
//     user_data never meets a tag from 1 to 0xFE;
//   - not 0xFF: liburing's own internal timeout completions (for example
//     from io_uring_submit_and_wait_timeout) use user_data ~0
//     (LIBURING_UDATA_TIMEOUT), which the executor would otherwise own.
// Then dispatch the ring's completions with one branch:
//
//   if (codec.Owns(cqe->user_data)) { /* the executor's */ } else { ... }
//
// Errors: none. A user_data that is not one of the table's ops in flight
// (another tag, internal, out of range, freed, an older generation) makes
// `Find` return nullptr; nothing else looks at foreign values.
//
// Thread safety: `UserDataCodec` is an immutable value. An `OpSlotTable` is
// used from one thread at a time.

#ifndef ZCPLAN_URING_OP_SLOTS_H_
#define ZCPLAN_URING_OP_SLOTS_H_

#include <cstdint>
#include <vector>

#include "zcplan/planner/planner.h"

namespace zcplan {

// Builds and takes apart user_data values of one tag (layout above).
class UserDataCodec {
 public:
  static constexpr int kTagShift = 56;
  static constexpr int kInternalShift = 55;
  static constexpr int kGenerationShift = 32;
  static constexpr uint64_t kInternalBit = uint64_t{1} << kInternalShift;
  static constexpr uint32_t kGenerationMask = (1u << 23) - 1;

  explicit constexpr UserDataCodec(uint8_t tag = 0) : tag_(tag) {}

  constexpr uint8_t tag() const { return tag_; }

  // True when `user_data` carries this codec's tag: an op's or an internal
  // request's. Anything else belongs to whoever else uses the ring.
  constexpr bool Owns(uint64_t user_data) const {
    return (user_data >> kTagShift) == tag_;
  }

  // The user_data of the op in slot `index` at `generation` (only its low 23
  // bits count).
  constexpr uint64_t Op(uint32_t index, uint32_t generation) const {
    return (uint64_t{tag_} << kTagShift) |
           (uint64_t{generation & kGenerationMask} << kGenerationShift) | index;
  }

  // The user_data of an internal request (a cancel, a NOP standing in for an
  // undone SQE), whose completion is to be ignored.
  constexpr uint64_t Internal() const {
    return (uint64_t{tag_} << kTagShift) | kInternalBit;
  }

  // True when `user_data` is this codec's tag with the internal bit set.
  constexpr bool IsInternal(uint64_t user_data) const {
    return (user_data >> kInternalShift) == ((uint64_t{tag_} << 1) | 1);
  }

  // The slot index and generation bits of `user_data`; they mean something
  // only when `Owns(user_data) && !IsInternal(user_data)`.
  static constexpr uint32_t Index(uint64_t user_data) {
    return static_cast<uint32_t>(user_data);
  }
  static constexpr uint32_t Generation(uint64_t user_data) {
    return static_cast<uint32_t>(user_data >> kGenerationShift) &
           kGenerationMask;
  }

 private:
  uint8_t tag_;
};

// What the executor keeps per op in flight.
struct OpSlot {
  OpKind kind = OpKind::kSend;
  bool send_done = false;   // first completion seen
  bool notif_seen = false;  // notification seen (it can come first)
  uint32_t conn = 0;        // connection index
  uint32_t iov_count = 0;
  uint64_t first_seq = 0;  // sequence number of its first buffer
  uint64_t offset = 0;     // into the first buffer
  uint64_t bytes = 0;
  uint64_t charge = 0;      // bytes counted as awaiting notification
  uint64_t end_seq = 0;     // where the stream stands once the op sent all
  uint64_t end_offset = 0;  // its bytes
};

// The ops in flight, one slot each, named by user_data of one codec.
//
// Slots are numbered from 0 and never given back to the allocator; a freed
// slot is reused (last freed first) before the table grows. A slot's
// generation starts at 1 and runs through 1..kGenerationMask, skipping 0, so
// no op's user_data is ever `tag << 56` (with tag 0: user_data 0, what an SQE
// nobody set carries).
//
// WARNING: a reference or pointer to an `OpSlot` is valid only until the next
// `Allocate` (which may grow the table); `at` and `user_data` require a slot
// in use.
class OpSlotTable {
 public:
  explicit OpSlotTable(UserDataCodec codec = UserDataCodec()) : codec_(codec) {}

  const UserDataCodec& codec() const { return codec_; }

  // A free slot with its fields reset to the defaults of `OpSlot`; reuses the
  // slot freed last, else grows the table.
  [[nodiscard]] uint32_t Allocate() {
    if (free_head_ == kNone) return Grow();
    const uint32_t index = free_head_;
    Entry& e = entries_[index];
    free_head_ = e.next_free;
    e.user_data = codec_.Op(index, e.generation);
    e.slot = OpSlot();
    ++in_use_;
    return index;
  }

  // The slot `index`, which must be in use.
  OpSlot& at(uint32_t index) { return entries_[index].slot; }
  const OpSlot& at(uint32_t index) const { return entries_[index].slot; }

  // The user_data of the op in slot `index` (in use): `codec().Op(index, its
  // current generation)`.
  uint64_t user_data(uint32_t index) const { return entries_[index].user_data; }

  // The slot in use that `user_data` names, with its index in `*index`;
  // nullptr (and `*index` untouched) when `user_data` is not one of this
  // table's ops in flight: another tag, internal, index out of range, slot
  // free, or an older generation.
  [[nodiscard]] OpSlot* Find(uint64_t user_data, uint32_t* index) {
    const uint32_t i = UserDataCodec::Index(user_data);
    if (i >= entries_.size()) return nullptr;
    Entry& e = entries_[i];
    // A slot in use holds its exact user_data, a free one a value whose index
    // bits are not `i`: one compare checks tag, internal bit, use and
    // generation.
    if (e.user_data != user_data) return nullptr;
    *index = i;
    return &e.slot;
  }

  // Frees slot `index` (in use); its generation moves on, so its old
  // user_data no longer matches.
  void Free(uint32_t index) {
    Entry& e = entries_[index];
    e.user_data = FreeMark(index);
    e.generation =
        e.generation == UserDataCodec::kGenerationMask ? 1 : e.generation + 1;
    e.next_free = free_head_;
    free_head_ = index;
    --in_use_;
  }

  // True when slot `index` exists and is in use.
  bool InUse(uint32_t index) const {
    return index < entries_.size() &&
           entries_[index].user_data != FreeMark(index);
  }

  // Slots in use.
  uint32_t in_use() const { return in_use_; }

  // Slots made so far, in use or free (indices 0..size()-1).
  uint32_t size() const { return static_cast<uint32_t>(entries_.size()); }

  // Makes room for `n` slots, so that `Allocate` does not reallocate until
  // more than `n` are in use at once.
  void Reserve(uint32_t n) { entries_.reserve(n); }

  // Calls `f(uint32_t index, OpSlot& slot)` for every slot in use, in index
  // order. `f` may `Free` the slot it is given (or any other); a slot it
  // allocates may or may not be visited.
  template <typename F>
  void ForEachInUse(F&& f) {
    for (uint32_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].user_data != FreeMark(i)) f(i, entries_[i].slot);
    }
  }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Entry {
    uint64_t user_data;  // in use: codec_.Op(index, generation)
    uint32_t generation;
    uint32_t next_free;  // free: the next free slot, or kNone
    OpSlot slot;
  };

  // What a free slot holds in place of a user_data: its index bits are never
  // the slot's own, so no user_data `Find` looks up there can equal it.
  static constexpr uint64_t FreeMark(uint32_t index) {
    return ~uint64_t{index};
  }

  uint32_t Grow();  // Allocate's slow path: appends a slot in use

  UserDataCodec codec_;
  std::vector<Entry> entries_;
  uint32_t free_head_ = kNone;
  uint32_t in_use_ = 0;
};

}  // namespace zcplan

#endif  // ZCPLAN_URING_OP_SLOTS_H_
