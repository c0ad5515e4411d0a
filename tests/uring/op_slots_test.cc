// SPDX-License-Identifier: Apache-2.0
// Tests of the user_data codec and the op-slot table: a completion that is
// not one of the table's ops in flight (the caller's, an internal request's,
// a freed or reused slot's) must never be found.

#include "zcplan/uring/op_slots.h"

#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace zcplan {
namespace {

constexpr uint32_t kMask = UserDataCodec::kGenerationMask;

// `tag` in the top byte.
uint64_t Top(int tag) { return static_cast<uint64_t>(tag) << 56; }

TEST(UserDataCodecTest, LayoutIsAsDocumented) {
  EXPECT_EQ(kMask, 0x7fffffu);
  const UserDataCodec codec(0xAB);
  EXPECT_EQ(codec.Op(0x12345678, 0x654321), 0xAB65432112345678u);
  EXPECT_EQ(codec.Internal(), 0xAB80000000000000u);
  EXPECT_EQ(UserDataCodec().tag(), 0);
  EXPECT_EQ(codec.tag(), 0xAB);
}

TEST(UserDataCodecTest, OwnsOnlyItsTag) {
  // User-space pointer values: x86-64 and arm64 keep the top byte zero.
  const auto heap = std::make_unique<int>(0);
  const uint64_t pointer = reinterpret_cast<uintptr_t>(heap.get());
  const uint64_t static_pointer = reinterpret_cast<uintptr_t>(&kMask);
  ASSERT_EQ(pointer >> 56, 0u);
  ASSERT_EQ(static_pointer >> 56, 0u);
  for (const int tag : {0, 1, 0x80, 0xFE}) {
    SCOPED_TRACE(tag);
    const UserDataCodec codec(static_cast<uint8_t>(tag));
    const uint64_t top = Top(tag);
    EXPECT_TRUE(codec.Owns(top));
    EXPECT_TRUE(codec.Owns(top | 7));
    EXPECT_TRUE(codec.Owns(top | (uint64_t{1} << 32)));
    EXPECT_TRUE(codec.Owns(top | 0x00FFFFFFFFFFFFFFu));
    EXPECT_TRUE(codec.Owns(codec.Op(UINT32_MAX, kMask)));
    EXPECT_TRUE(codec.Owns(codec.Internal()));
    // Only tag 0 owns the values a caller typically uses; 0 is the tag for a
    // ring nobody else uses.
    const bool zero = tag == 0;
    EXPECT_EQ(codec.Owns(7), zero);
    EXPECT_EQ(codec.Owns(uint64_t{1} << 32), zero);
    EXPECT_EQ(codec.Owns(pointer), zero);
    EXPECT_EQ(codec.Owns(static_pointer), zero);
    EXPECT_EQ(codec.Owns(0), zero);
    EXPECT_FALSE(codec.Owns(~uint64_t{0}));  // LIBURING_UDATA_TIMEOUT
    EXPECT_FALSE(codec.Owns(Top(tag + 1)));
    EXPECT_FALSE(codec.Owns(Top(tag + 1) | 7));
    EXPECT_FALSE(codec.Owns(top - 1));  // tag - 1 with every lower bit set
    if (tag > 0) {
      EXPECT_FALSE(codec.Owns(Top(tag - 1)));
    }
  }
}

TEST(UserDataCodecTest, RoundTripsIndexAndGenerationAtExtremes) {
  for (const int tag : {0, 1, 0x80, 0xFE, 0xFF}) {
    const UserDataCodec codec(static_cast<uint8_t>(tag));
    for (const uint32_t index : {0u, 1u, 0x80000000u, UINT32_MAX}) {
      for (const uint32_t generation : {0u, 1u, kMask - 1, kMask}) {
        SCOPED_TRACE(testing::Message()
                     << tag << " " << index << " " << generation);
        const uint64_t user_data = codec.Op(index, generation);
        EXPECT_TRUE(codec.Owns(user_data));
        EXPECT_FALSE(codec.IsInternal(user_data));
        EXPECT_EQ(UserDataCodec::Index(user_data), index);
        EXPECT_EQ(UserDataCodec::Generation(user_data), generation);
        EXPECT_EQ(user_data & ~uint64_t{0} << 56, Top(tag));
      }
    }
  }
}

TEST(UserDataCodecTest, MasksGeneration) {
  const UserDataCodec codec(0x80);
  // Bits above the mask would spill into the internal bit and the tag.
  EXPECT_EQ(codec.Op(5, kMask + 1), codec.Op(5, 0));
  EXPECT_EQ(codec.Op(5, UINT32_MAX), codec.Op(5, kMask));
  EXPECT_EQ(codec.Op(5, (1u << 23) | 3), codec.Op(5, 3));
  EXPECT_FALSE(codec.IsInternal(codec.Op(5, UINT32_MAX)));
  EXPECT_TRUE(codec.Owns(codec.Op(5, UINT32_MAX)));
  EXPECT_EQ(UserDataCodec::Generation(codec.Internal()), 0u);
  EXPECT_EQ(UserDataCodec::Generation(~uint64_t{0}), kMask);
}

TEST(UserDataCodecTest, InternalIsItsOwn) {
  for (const int tag : {0, 1, 0x80, 0xFE}) {
    SCOPED_TRACE(tag);
    const UserDataCodec codec(static_cast<uint8_t>(tag));
    const UserDataCodec other(static_cast<uint8_t>(tag + 1));
    EXPECT_TRUE(codec.IsInternal(codec.Internal()));
    EXPECT_TRUE(codec.IsInternal(codec.Internal() | 12345));
    EXPECT_FALSE(codec.IsInternal(other.Internal()));
    EXPECT_FALSE(other.IsInternal(codec.Internal()));
    EXPECT_FALSE(codec.IsInternal(codec.Op(0, 0)));
    EXPECT_FALSE(codec.IsInternal(codec.Op(UINT32_MAX, kMask)));
    EXPECT_NE(codec.Internal(), codec.Op(0, 0));
  }
  // A foreign value with bit 55 set is not internal.
  EXPECT_FALSE(UserDataCodec(0).IsInternal(UserDataCodec::kInternalBit |
                                           uint64_t{1} << 63));
}

TEST(OpSlotTableTest, FirstSlotsAreNumberedFromZero) {
  OpSlotTable table(UserDataCodec(3));
  EXPECT_EQ(table.in_use(), 0u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.codec().tag(), 3);
  EXPECT_EQ(table.Allocate(), 0u);
  EXPECT_EQ(table.Allocate(), 1u);
  EXPECT_EQ(table.Allocate(), 2u);
  EXPECT_EQ(table.in_use(), 3u);
  EXPECT_EQ(table.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    const uint64_t user_data = table.user_data(i);
    EXPECT_EQ(user_data >> 56, 3u);
    EXPECT_EQ(UserDataCodec::Index(user_data), i);
    EXPECT_NE(UserDataCodec::Generation(user_data), 0u);
    uint32_t index = 99;
    EXPECT_EQ(table.Find(user_data, &index), &table.at(i));
    EXPECT_EQ(index, i);
  }
}

TEST(OpSlotTableTest, NoOpUserDataIsTheBareTag) {
  // Tag 0: user_data 0 is what an SQE nobody set carries.
  OpSlotTable table;
  const uint32_t slot = table.Allocate();
  EXPECT_NE(table.user_data(slot), 0u);
  uint32_t index = 99;
  EXPECT_EQ(table.Find(0, &index), nullptr);
  EXPECT_EQ(index, 99u);
}

TEST(OpSlotTableTest, FindRejectsWhatIsNotAnOpInFlight) {
  OpSlotTable table(UserDataCodec(0x80));
  const UserDataCodec& codec = table.codec();
  const uint32_t a = table.Allocate();
  const uint32_t b = table.Allocate();
  const uint64_t ua = table.user_data(a);
  const uint32_t generation = UserDataCodec::Generation(ua);
  uint32_t index = 99;
  ASSERT_NE(table.Find(ua, &index), nullptr);
  index = 99;

  // Internal requests, this tag and others.
  EXPECT_EQ(table.Find(codec.Internal(), &index), nullptr);
  EXPECT_EQ(table.Find(codec.Internal() | ua, &index), nullptr);
  // The same index and generation under another tag.
  EXPECT_EQ(table.Find(UserDataCodec(0x81).Op(a, generation), &index), nullptr);
  EXPECT_EQ(table.Find(UserDataCodec(0x7F).Op(a, generation), &index), nullptr);
  EXPECT_EQ(table.Find(UserDataCodec(0).Op(a, generation), &index), nullptr);
  // The values that collided before the tag: a caller's 7 and 1 << 32.
  EXPECT_EQ(table.Find(7, &index), nullptr);
  EXPECT_EQ(table.Find(uint64_t{1} << 32, &index), nullptr);
  EXPECT_EQ(table.Find(~uint64_t{0}, &index), nullptr);
  // Out of range, and the right slot at other generations.
  EXPECT_EQ(table.Find(codec.Op(2, generation), &index), nullptr);
  EXPECT_EQ(table.Find(codec.Op(UINT32_MAX, generation), &index), nullptr);
  EXPECT_EQ(table.Find(codec.Op(a, generation + 1), &index), nullptr);
  EXPECT_EQ(table.Find(codec.Op(a, generation - 1), &index), nullptr);
  EXPECT_EQ(index, 99u);

  // Freed: its old user_data misses, the other slot still hits.
  table.Free(a);
  EXPECT_FALSE(table.InUse(a));
  EXPECT_TRUE(table.InUse(b));
  EXPECT_FALSE(table.InUse(2));
  EXPECT_EQ(table.Find(ua, &index), nullptr);
  for (uint32_t g = 0; g <= 4; ++g) {
    EXPECT_EQ(table.Find(codec.Op(a, g), &index), nullptr) << g;
  }
  // Whatever a free slot keeps is never a user_data Find takes.
  EXPECT_EQ(table.Find(~uint64_t{a}, &index), nullptr);
  EXPECT_EQ(table.Find(~uint64_t{b}, &index), nullptr);
  EXPECT_EQ(index, 99u);
  EXPECT_EQ(table.Find(table.user_data(b), &index), &table.at(b));
  EXPECT_EQ(index, b);
}

TEST(OpSlotTableTest, ReusedSlotHasNewGeneration) {
  OpSlotTable table(UserDataCodec(1));
  const uint32_t first = table.Allocate();
  const uint64_t old_user_data = table.user_data(first);
  table.Free(first);
  const uint32_t again = table.Allocate();
  ASSERT_EQ(again, first);  // reused, not grown
  EXPECT_EQ(table.size(), 1u);
  const uint64_t new_user_data = table.user_data(again);
  EXPECT_NE(new_user_data, old_user_data);
  EXPECT_EQ(UserDataCodec::Index(new_user_data), first);
  uint32_t index = 99;
  EXPECT_EQ(table.Find(old_user_data, &index), nullptr);  // a late completion
  EXPECT_EQ(index, 99u);
  EXPECT_EQ(table.Find(new_user_data, &index), &table.at(again));
  EXPECT_EQ(index, again);
}

TEST(OpSlotTableTest, ReusesTheSlotFreedLast) {
  OpSlotTable table;
  for (int i = 0; i < 5; ++i) (void)table.Allocate();
  table.Free(1);
  table.Free(3);
  EXPECT_EQ(table.Allocate(), 3u);
  EXPECT_EQ(table.Allocate(), 1u);
  EXPECT_EQ(table.Allocate(), 5u);  // none free: grows
  EXPECT_EQ(table.size(), 6u);
  EXPECT_EQ(table.in_use(), 6u);
}

TEST(OpSlotTableTest, GenerationWrapsWithinItsBits) {
  OpSlotTable table(UserDataCodec(0xFE));
  const UserDataCodec& codec = table.codec();
  (void)table.Allocate();  // a neighbour that must stay findable
  const uint32_t slot = table.Allocate();
  const uint64_t neighbour = table.user_data(0);
  const uint64_t start = table.user_data(slot);
  uint64_t previous = start;
  int wraps = 0;
  // More than 2^23 frees of one slot. Generations run through 1..kMask, so
  // the first user_data comes back after exactly kMask frees.
  for (uint64_t frees = 1; frees <= (uint64_t{1} << 23) + 2; ++frees) {
    table.Free(slot);
    ASSERT_EQ(table.Allocate(), slot);
    const uint64_t now = table.user_data(slot);
    uint32_t index;
    if ((now == start) != (frees % kMask == 0)) {
      FAIL() << "free " << frees << ": " << std::hex << now;
    }
    wraps += now == start;
    if (now == previous || !codec.Owns(now) || codec.IsInternal(now) ||
        UserDataCodec::Index(now) != slot ||
        UserDataCodec::Generation(now) == 0 ||
        table.Find(previous, &index) != nullptr ||
        table.Find(now, &index) == nullptr) {
      FAIL() << "free " << frees << ": previous " << std::hex << previous
             << " now " << now;
    }
    previous = now;
  }
  EXPECT_EQ(wraps, 1);
  uint32_t index = 99;
  EXPECT_EQ(table.Find(neighbour, &index), &table.at(0));
  EXPECT_EQ(table.in_use(), 2u);
}

TEST(OpSlotTableTest, AllocateResetsFields) {
  OpSlotTable table;
  const uint32_t slot = table.Allocate();
  OpSlot& s = table.at(slot);
  s.kind = OpKind::kSendmsgZc;
  s.conn = 9;
  s.iov_count = 3;
  s.first_seq = 100;
  s.offset = 7;
  s.bytes = 1 << 20;
  s.charge = 4096;
  s.end_seq = 103;
  s.end_offset = 11;
  s.send_done = true;
  s.notif_seen = true;
  table.Free(slot);
  ASSERT_EQ(table.Allocate(), slot);
  const OpSlot& r = table.at(slot);
  const OpSlot fresh;
  EXPECT_EQ(r.kind, fresh.kind);
  EXPECT_EQ(r.conn, 0u);
  EXPECT_EQ(r.iov_count, 0u);
  EXPECT_EQ(r.first_seq, 0u);
  EXPECT_EQ(r.offset, 0u);
  EXPECT_EQ(r.bytes, 0u);
  EXPECT_EQ(r.charge, 0u);
  EXPECT_EQ(r.end_seq, 0u);
  EXPECT_EQ(r.end_offset, 0u);
  EXPECT_FALSE(r.send_done);
  EXPECT_FALSE(r.notif_seen);
}

TEST(OpSlotTableTest, CountsSlotsInUse) {
  OpSlotTable table;
  EXPECT_EQ(table.in_use(), 0u);
  const uint32_t a = table.Allocate();
  const uint32_t b = table.Allocate();
  EXPECT_EQ(table.in_use(), 2u);
  table.Free(a);
  EXPECT_EQ(table.in_use(), 1u);
  table.Free(b);
  EXPECT_EQ(table.in_use(), 0u);
  EXPECT_EQ(table.size(), 2u);
  (void)table.Allocate();
  EXPECT_EQ(table.in_use(), 1u);
  EXPECT_EQ(table.size(), 2u);
}

TEST(OpSlotTableTest, ForEachInUseVisitsExactlyTheSlotsInUse) {
  OpSlotTable table;
  int calls = 0;
  table.ForEachInUse([&](uint32_t, OpSlot&) { ++calls; });
  EXPECT_EQ(calls, 0);  // empty table

  for (int i = 0; i < 8; ++i) table.at(table.Allocate()).conn = 100 + i;
  table.Free(0);
  table.Free(4);
  table.Free(7);
  std::vector<uint32_t> seen;
  table.ForEachInUse([&](uint32_t index, OpSlot& slot) {
    EXPECT_EQ(&slot, &table.at(index));
    EXPECT_EQ(slot.conn, 100 + index);
    seen.push_back(index);
  });
  EXPECT_EQ(seen, (std::vector<uint32_t>{1, 2, 3, 5, 6}));

  // Freeing each visited slot (what shutdown does) frees them all.
  seen.clear();
  table.ForEachInUse([&](uint32_t index, OpSlot&) {
    seen.push_back(index);
    table.Free(index);
  });
  EXPECT_EQ(seen, (std::vector<uint32_t>{1, 2, 3, 5, 6}));
  EXPECT_EQ(table.in_use(), 0u);
  calls = 0;
  table.ForEachInUse([&](uint32_t, OpSlot&) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(OpSlotTableTest, ReserveKeepsSlotsInPlace) {
  OpSlotTable table;
  table.Reserve(64);
  const OpSlot* first = &table.at(table.Allocate());
  for (int i = 1; i < 64; ++i) (void)table.Allocate();
  EXPECT_EQ(&table.at(0), first);
}

// Random allocate / free / find against a model of which user_data is live.
TEST(OpSlotTableTest, MatchesModelOnRandomOps) {
  std::mt19937_64 rng(20261201);
  const UserDataCodec codec(0x5A);
  OpSlotTable table(codec);
  std::map<uint32_t, uint64_t> live;   // index -> user_data
  std::map<uint32_t, uint64_t> marks;  // index -> what the test wrote there
  std::vector<uint64_t> issued;        // every user_data handed out
  std::set<uint64_t> issued_set;
  uint32_t index = 0;
  for (int step = 0; step < 200000; ++step) {
    const uint64_t r = rng();
    const int op = static_cast<int>(r % 8);
    if (op <= 2 && live.size() < 300) {  // allocate
      const uint32_t slot = table.Allocate();
      ASSERT_EQ(live.count(slot), 0u) << step;
      const uint64_t user_data = table.user_data(slot);
      ASSERT_EQ(UserDataCodec::Index(user_data), slot);
      ASSERT_TRUE(codec.Owns(user_data));
      ASSERT_FALSE(codec.IsInternal(user_data));
      ASSERT_EQ(table.at(slot).first_seq, 0u) << step;
      const uint64_t mark = rng();
      table.at(slot).first_seq = mark;
      live[slot] = user_data;
      marks[slot] = mark;
      // Fewer than 2^23 - 1 uses of any slot here: never seen before.
      ASSERT_TRUE(issued_set.insert(user_data).second) << step;
      issued.push_back(user_data);
    } else if (op <= 4 && !live.empty()) {  // free one at random
      auto it = live.begin();
      std::advance(it, static_cast<long>((r >> 8) % live.size()));
      table.Free(it->first);
      marks.erase(it->first);
      live.erase(it);
    } else if (op == 5 && !issued.empty()) {  // an old or current user_data
      const uint64_t user_data = issued[(r >> 8) % issued.size()];
      const uint32_t slot = UserDataCodec::Index(user_data);
      const auto it = live.find(slot);
      const bool expected = it != live.end() && it->second == user_data;
      OpSlot* found = table.Find(user_data, &index);
      ASSERT_EQ(found != nullptr, expected) << step;
      if (expected) {
        ASSERT_EQ(index, slot);
        ASSERT_EQ(found->first_seq, marks[slot]) << step;
      }
    } else if (op == 6) {  // a foreign, internal or made-up value
      const uint64_t bits = rng();
      uint64_t user_data = bits;  // almost surely another tag
      switch ((r >> 8) % 3) {
        case 0:
          user_data = (bits & ~(~uint64_t{0} << 55)) | codec.Internal();
          break;
        case 1: {  // this tag, a slot near the table, a recent generation
          const uint32_t slot =
              static_cast<uint32_t>(bits % (table.size() + 2));
          const uint32_t generation =
              static_cast<uint32_t>((bits >> 32) % (issued.size() / 64 + 2));
          user_data = codec.Op(slot, generation);
          break;
        }
      }
      const auto it = live.find(UserDataCodec::Index(user_data));
      const bool expected = it != live.end() && it->second == user_data;
      ASSERT_EQ(table.Find(user_data, &index) != nullptr, expected)
          << step << " " << std::hex << user_data;
    }
    ASSERT_EQ(table.in_use(), live.size()) << step;
    if (step % 512 == 0) {  // the table agrees with the model as a whole
      std::map<uint32_t, uint64_t> visited;
      table.ForEachInUse(
          [&](uint32_t i, OpSlot& slot) { visited[i] = slot.first_seq; });
      ASSERT_EQ(visited, marks) << step;
      for (const auto& [slot, user_data] : live) {
        ASSERT_EQ(table.user_data(slot), user_data);
        ASSERT_TRUE(table.InUse(slot));
      }
    }
  }
  EXPECT_GT(issued.size(), 10000u);
}

}  // namespace
}  // namespace zcplan
