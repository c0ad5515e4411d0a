// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/buffer_pool.h"

#include <cstdint>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

using Token = uint64_t;

TEST(BufferPoolTokenTest, RoundTripsAtTheLimits) {
  const uint32_t rings[] = {0, 1, 1023, BufferPool::kMaxRings - 1};
  const uint64_t seqs[] = {0, 1, BufferPool::kSeqMask - 1,
                           BufferPool::kSeqMask};
  std::set<Token> seen;
  for (uint32_t ring : rings) {
    for (uint64_t seq : seqs) {
      const Token t = BufferPool::MakeToken(ring, seq);
      EXPECT_EQ(BufferPool::TokenRing(t), ring) << ring << " " << seq;
      EXPECT_EQ(BufferPool::TokenSeq(t), seq) << ring << " " << seq;
      EXPECT_TRUE(seen.insert(t).second)
          << "collision at " << ring << " " << seq;
    }
  }
  // The sequence number wraps inside its bits, never into the ring's.
  EXPECT_EQ(BufferPool::MakeToken(5, BufferPool::kSeqMask + 1),
            BufferPool::MakeToken(5, 0));
  EXPECT_EQ(BufferPool::TokenRing(~uint64_t{0}), BufferPool::kMaxRings - 1);
}

TEST(BufferPoolTest, CreateRefusesEmptyPools) {
  EXPECT_EQ(BufferPool::Create(0, 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BufferPool::Create(1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BufferPool::Create(BufferPool::kMaxRings + 1, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BufferPoolTest, RingsAreDisjointPagesOfOneMapping) {
  absl::StatusOr<BufferPool> pool = BufferPool::Create(3, 5000);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(pool->ring_bytes() % 4096, 0u);
  EXPECT_GE(pool->ring_bytes(), 5000u);
  EXPECT_EQ(pool->memory().size(), 3 * pool->ring_bytes());
  for (uint32_t r = 0; r < 3; ++r) {
    std::optional<BufferPool::Buffer> b = pool->Acquire(r, 100);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->data, pool->memory().data() + r * pool->ring_bytes());
    EXPECT_EQ(BufferPool::TokenRing(b->token), r);
  }
}

// Fills a ring with buffers of `size` until Acquire says no.
std::vector<BufferPool::Buffer> Fill(BufferPool& pool, uint64_t size) {
  std::vector<BufferPool::Buffer> got;
  while (std::optional<BufferPool::Buffer> b = pool.Acquire(0, size)) {
    got.push_back(*b);
  }
  return got;
}

TEST(BufferPoolTest, ExhaustedUntilTheOldestIsReleased) {
  absl::StatusOr<BufferPool> pool = BufferPool::Create(1, 4096);
  ASSERT_TRUE(pool.ok());
  const std::vector<BufferPool::Buffer> got = Fill(*pool, 1024);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(pool->held(0), 4u);
  EXPECT_EQ(pool->unreleased_bytes(0), 4096u);
  // In order and contiguous.
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].data, pool->memory().data() + 1024 * i);
  }
  // Out of order: releasing the later ones frees nothing for reuse.
  ASSERT_TRUE(pool->Release(got[3].token).ok());
  ASSERT_TRUE(pool->Release(got[1].token).ok());
  EXPECT_FALSE(pool->Acquire(0, 1).has_value());
  EXPECT_EQ(pool->held(0), 4u);
  EXPECT_EQ(pool->unreleased_bytes(0), 2048u);
  // The oldest goes: it and the released one behind it come back.
  absl::StatusOr<BufferPool::Released> r = pool->Release(got[0].token);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ring, 0u);
  EXPECT_EQ(r->length, 1024u);
  EXPECT_EQ(pool->held(0), 2u);  // got[2] (held) and got[3] (behind it)
  std::optional<BufferPool::Buffer> again = pool->Acquire(0, 2048);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->data, got[0].data);  // the next lap starts at the front
  EXPECT_FALSE(pool->Acquire(0, 1).has_value());
  ASSERT_TRUE(pool->Release(got[2].token).ok());
  ASSERT_TRUE(pool->Release(again->token).ok());
  EXPECT_TRUE(pool->empty());
}

TEST(BufferPoolTest, ABufferThatWouldCrossTheEndWrapsToTheFront) {
  absl::StatusOr<BufferPool> pool = BufferPool::Create(1, 4096);
  ASSERT_TRUE(pool.ok());
  std::optional<BufferPool::Buffer> a = pool->Acquire(0, 3000);
  std::optional<BufferPool::Buffer> b = pool->Acquire(0, 1000);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(pool->Release(a->token).ok());
  // 96 bytes are left before the end: 2000 bytes start at the front.
  std::optional<BufferPool::Buffer> c = pool->Acquire(0, 2000);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->data, pool->memory().data());
  // Nothing overlaps the still held `b` (3000..3999).
  EXPECT_FALSE(pool->Acquire(0, 1500).has_value());
  std::optional<BufferPool::Buffer> d = pool->Acquire(0, 1000);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->data, pool->memory().data() + 2000);
  // Too large for the ring at all.
  EXPECT_FALSE(pool->Acquire(0, 4097).has_value());
  EXPECT_FALSE(pool->Acquire(0, 0).has_value());
  EXPECT_FALSE(pool->Acquire(1, 1).has_value());  // no ring 1
}

TEST(BufferPoolTest, EmptyRingStartsAgainAtTheFront) {
  absl::StatusOr<BufferPool> pool = BufferPool::Create(1, 4096);
  ASSERT_TRUE(pool.ok());
  std::optional<BufferPool::Buffer> a = pool->Acquire(0, 3000);
  ASSERT_TRUE(a && pool->Release(a->token).ok());
  std::optional<BufferPool::Buffer> b = pool->Acquire(0, 4096);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->data, pool->memory().data());
}

TEST(BufferPoolTest, DoubleUnknownAndForeignReleasesAreRefused) {
  absl::StatusOr<BufferPool> pool = BufferPool::Create(2, 4096);
  ASSERT_TRUE(pool.ok());
  std::optional<BufferPool::Buffer> a = pool->Acquire(0, 100);
  std::optional<BufferPool::Buffer> b = pool->Acquire(0, 100);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(pool->Release(b->token).ok());
  // Released already (and still behind `a`).
  EXPECT_EQ(pool->Release(b->token).status().code(),
            absl::StatusCode::kNotFound);
  // Never handed out: the next sequence number, one far ahead, and ring 1's.
  EXPECT_EQ(pool->Release(BufferPool::MakeToken(0, 2)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(pool->Release(BufferPool::MakeToken(0, 1000)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(pool->Release(BufferPool::MakeToken(1, 0)).status().code(),
            absl::StatusCode::kNotFound);
  // A ring the pool does not have.
  EXPECT_EQ(pool->Release(BufferPool::MakeToken(2, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // None of that changed anything.
  EXPECT_EQ(pool->held(0), 2u);
  EXPECT_EQ(pool->unreleased_bytes(0), 100u);
  ASSERT_TRUE(pool->Release(a->token).ok());
  EXPECT_TRUE(pool->empty());
  // Reclaimed: now released twice.
  EXPECT_EQ(pool->Release(a->token).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BufferPoolTest, ManyLapsKeepTokensAndBytesConsistent) {
  absl::StatusOr<BufferPool> pool = BufferPool::Create(1, 8192);
  ASSERT_TRUE(pool.ok());
  std::vector<BufferPool::Buffer> held;
  uint64_t handed = 0;
  for (int round = 0; round < 2000; ++round) {
    const uint64_t size = 1 + (round * 977) % 3000;
    if (std::optional<BufferPool::Buffer> b = pool->Acquire(0, size)) {
      // Its bytes are free: write them, as a sender would.
      for (uint64_t i = 0; i < size; ++i) b->data[i] = 0x5a;
      held.push_back(*b);
      ++handed;
    } else {
      ASSERT_FALSE(held.empty());
      // Release the newest first, then the oldest: out of order.
      ASSERT_TRUE(pool->Release(held.back().token).ok());
      held.pop_back();
      if (!held.empty()) {
        ASSERT_TRUE(pool->Release(held.front().token).ok());
        held.erase(held.begin());
      }
    }
    // No two held buffers overlap.
    for (size_t i = 0; i < held.size(); ++i) {
      for (size_t j = i + 1; j < held.size(); ++j) {
        const bool apart = held[i].data + held[i].length <= held[j].data ||
                           held[j].data + held[j].length <= held[i].data;
        ASSERT_TRUE(apart) << round;
      }
    }
  }
  EXPECT_GT(handed, 500u);
  for (const BufferPool::Buffer& b : held)
    ASSERT_TRUE(pool->Release(b.token).ok());
  EXPECT_TRUE(pool->empty());
  EXPECT_EQ(pool->unreleased_bytes(0), 0u);
}

}  // namespace
}  // namespace zcplan
