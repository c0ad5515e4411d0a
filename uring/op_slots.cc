// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/op_slots.h"

#include <cstdint>

namespace zcplan {

// The layout in the header: tag, internal bit and generation fill the bits
// above the index without overlapping.
static_assert(UserDataCodec::kGenerationShift == 32);
static_assert(UserDataCodec::kInternalShift ==
              UserDataCodec::kGenerationShift + 23);
static_assert(UserDataCodec::kTagShift == UserDataCodec::kInternalShift + 1);
static_assert((uint64_t{UserDataCodec::kGenerationMask}
               << UserDataCodec::kGenerationShift) <
              UserDataCodec::kInternalBit);

uint32_t OpSlotTable::Grow() {
  // Index kNone ends the free list; a table of 2^32 - 1 slots (over 300 GiB)
  // is out of reach, since ops in flight are bounded by the ring.
  const uint32_t index = static_cast<uint32_t>(entries_.size());
  entries_.push_back(Entry{codec_.Op(index, 1), 1, kNone, OpSlot()});
  ++in_use_;
  return index;
}

}  // namespace zcplan
