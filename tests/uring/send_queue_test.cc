// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/send_queue.h"

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

using ::testing::ElementsAre;
using QueueRun = SendQueue::Run;

char g_bytes[1 << 16];

// Buffer `i` of a test: distinct base, length `len`.
iovec Buf(size_t i, size_t len) { return iovec{g_bytes + (i * 7) % 4096, len}; }

// Pushes `n` buffers of `len` bytes with tokens 1000 + seq.
void PushN(SendQueue& q, size_t n, size_t len) {
  for (size_t k = 0; k < n; ++k) {
    const uint64_t seq = q.end_seq();
    q.Push(Buf(seq, len), 1000 + seq);
  }
}

// All runs NextReleasable gives from `from` to `to`, without releasing.
std::vector<QueueRun> Runs(const SendQueue& q, uint64_t from, uint64_t to,
                           bool stopped) {
  std::vector<QueueRun> runs;
  QueueRun run;
  uint64_t cursor = from;
  while (q.NextReleasable(&cursor, to, stopped, &run)) runs.push_back(run);
  return runs;
}

// Releases everything releasable, then compacts; returns the tokens.
std::vector<uint64_t> ReleaseAll(SendQueue& q, bool stopped) {
  std::vector<uint64_t> all, tokens;
  QueueRun run;
  uint64_t cursor = q.first_seq();
  while (q.NextReleasable(&cursor, q.end_seq(), stopped, &run)) {
    q.Release(run, &tokens);
    all.insert(all.end(), tokens.begin(), tokens.end());
  }
  q.Compact();
  return all;
}

bool Same(const QueueRun& a, uint64_t first, uint64_t end, bool sent) {
  return a.first == first && a.end == end && a.sent == sent;
}

TEST(SendQueueTest, EmptyQueue) {
  SendQueue q;
  EXPECT_EQ(q.held(), 0u);
  EXPECT_EQ(q.held_bytes(), 0u);
  EXPECT_EQ(q.first_seq(), 0u);
  EXPECT_EQ(q.end_seq(), 0u);
  EXPECT_FALSE(q.HasUnsent());
  EXPECT_TRUE(q.Unsent().empty());
  QueueRun run;
  uint64_t cursor = 0;
  EXPECT_FALSE(q.NextReleasable(&cursor, 100, true, &run));
  EXPECT_FALSE(q.NextUnreleased(&cursor, &run));
  q.Compact();
  EXPECT_EQ(q.end_seq(), 0u);
}

TEST(SendQueueTest, PushNumbersBuffersAndCountsBytes) {
  SendQueue q;
  q.Push(Buf(0, 10), 7);
  const iovec batch[] = {Buf(1, 20), Buf(2, 30)};
  const uint64_t tokens[] = {8, 9};
  q.Push(batch, tokens);
  q.Push(absl::Span<const iovec>(), absl::Span<const uint64_t>());
  EXPECT_EQ(q.end_seq(), 3u);
  EXPECT_EQ(q.held(), 3u);
  EXPECT_EQ(q.held_bytes(), 60u);
  EXPECT_EQ(q.at(1).iov_len, 20u);
  EXPECT_EQ(q.at(2).iov_base, batch[1].iov_base);
  EXPECT_EQ(q.token(0), 7u);
  EXPECT_EQ(q.token(2), 9u);
  EXPECT_TRUE(q.HasUnsent());
  EXPECT_EQ(q.Unsent().size(), 3u);
}

TEST(SendQueueTest, SeqsContinueAcrossCompaction) {
  SendQueue q;
  PushN(q, 5, 10);
  q.SetSent(5, 0);
  EXPECT_EQ(ReleaseAll(q, false).size(), 5u);
  // All released and sent: the storage is cleared, seqs go on.
  EXPECT_EQ(q.first_seq(), 5u);
  EXPECT_EQ(q.end_seq(), 5u);
  EXPECT_EQ(q.stored(), 0u);
  q.Push(Buf(5, 3), 42);
  EXPECT_EQ(q.end_seq(), 6u);
  EXPECT_EQ(q.at(5).iov_len, 3u);
  EXPECT_EQ(q.token(5), 42u);
  EXPECT_EQ(q.sent_seq(), 5u);
  ASSERT_EQ(q.Unsent().size(), 1u);
  EXPECT_EQ(q.Unsent()[0].iov_len, 3u);
}

TEST(SendQueueTest, SetSentMovesUnsentSpan) {
  SendQueue q;
  PushN(q, 4, 100);
  q.SetSent(1, 40);
  EXPECT_EQ(q.sent_seq(), 1u);
  EXPECT_EQ(q.sent_offset(), 40u);
  ASSERT_EQ(q.Unsent().size(), 3u);
  EXPECT_EQ(q.Unsent()[0].iov_base, q.at(1).iov_base);
  q.SetSent(3, 0);
  ASSERT_EQ(q.Unsent().size(), 1u);
  EXPECT_EQ(q.Unsent()[0].iov_base, q.at(3).iov_base);
  q.SetSent(4, 0);
  EXPECT_FALSE(q.HasUnsent());
  EXPECT_TRUE(q.Unsent().empty());
}

TEST(SendQueueTest, AdvanceSentWithinBuffer) {
  SendQueue q;
  PushN(q, 2, 100);
  q.AdvanceSent(30);
  EXPECT_EQ(q.sent_seq(), 0u);
  EXPECT_EQ(q.sent_offset(), 30u);
  q.AdvanceSent(69);
  EXPECT_EQ(q.sent_seq(), 0u);
  EXPECT_EQ(q.sent_offset(), 99u);
  EXPECT_EQ(q.Unsent().size(), 2u);
}

TEST(SendQueueTest, AdvanceSentAcrossBuffers) {
  SendQueue q;
  q.Push(Buf(0, 10), 0);
  q.Push(Buf(1, 20), 1);
  q.Push(Buf(2, 30), 2);
  q.AdvanceSent(5);
  // 5 left of buffer 0, all 20 of buffer 1, 4 into buffer 2.
  q.AdvanceSent(29);
  EXPECT_EQ(q.sent_seq(), 2u);
  EXPECT_EQ(q.sent_offset(), 4u);
  ASSERT_EQ(q.Unsent().size(), 1u);
  EXPECT_EQ(q.Unsent()[0].iov_len, 30u);  // whole; the offset says the rest
}

TEST(SendQueueTest, AdvanceSentToExactBufferEndAndQueueEnd) {
  SendQueue q;
  q.Push(Buf(0, 10), 0);
  q.Push(Buf(1, 20), 1);
  q.AdvanceSent(10);
  EXPECT_EQ(q.sent_seq(), 1u);
  EXPECT_EQ(q.sent_offset(), 0u);
  q.AdvanceSent(20);
  EXPECT_EQ(q.sent_seq(), 2u);
  EXPECT_EQ(q.sent_offset(), 0u);
  EXPECT_FALSE(q.HasUnsent());
  q.AdvanceSent(0);
  EXPECT_EQ(q.sent_seq(), 2u);
}

TEST(SendQueueTest, AdvanceSentFromMiddleOffset) {
  SendQueue q;
  PushN(q, 3, 10);
  q.SetSent(0, 7);
  q.AdvanceSent(3);
  EXPECT_EQ(q.sent_seq(), 1u);
  EXPECT_EQ(q.sent_offset(), 0u);
  q.SetSent(1, 2);
  q.AdvanceSent(15);
  EXPECT_EQ(q.sent_seq(), 2u);
  EXPECT_EQ(q.sent_offset(), 7u);
}

TEST(SendQueueTest, HeldBuffersAreNotReleasable) {
  SendQueue q;
  PushN(q, 5, 10);
  q.Hold(1, 2);  // buffers 1, 2
  q.Hold(2, 1);  // buffer 2 twice
  q.SetSent(5, 0);
  std::vector<QueueRun> runs = Runs(q, 0, 5, false);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_TRUE(Same(runs[0], 0, 1, true));
  EXPECT_TRUE(Same(runs[1], 3, 5, true));
  // Stopped or not, a held buffer stays.
  EXPECT_EQ(Runs(q, 0, 5, true).size(), 2u);
  q.Unhold(1, 2);
  runs = Runs(q, 0, 5, false);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_TRUE(Same(runs[0], 0, 2, true));  // 2 still held once
  q.Unhold(2, 1);
  runs = Runs(q, 0, 5, false);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_TRUE(Same(runs[0], 0, 5, true));
}

TEST(SendQueueTest, UnsentReleasableOnlyWhenStopped) {
  SendQueue q;
  PushN(q, 4, 10);
  q.SetSent(2, 5);  // 0, 1 sent; 2 partly; 3 not
  std::vector<QueueRun> runs = Runs(q, 0, 4, false);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_TRUE(Same(runs[0], 0, 2, true));
  runs = Runs(q, 0, 4, true);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_TRUE(Same(runs[0], 0, 2, true));
  EXPECT_TRUE(Same(runs[1], 2, 4, false));
  // Nothing sent: one unsent run when stopped, none otherwise.
  SendQueue fresh;
  PushN(fresh, 3, 10);
  EXPECT_TRUE(Runs(fresh, 0, 3, false).empty());
  runs = Runs(fresh, 0, 3, true);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_TRUE(Same(runs[0], 0, 3, false));
}

TEST(SendQueueTest, NextReleasableRespectsToAndCursor) {
  SendQueue q;
  PushN(q, 10, 10);
  q.SetSent(10, 0);
  q.Hold(4, 1);
  QueueRun run;
  uint64_t cursor = 2;
  ASSERT_TRUE(q.NextReleasable(&cursor, 7, false, &run));
  EXPECT_TRUE(Same(run, 2, 4, true));
  EXPECT_EQ(cursor, 4u);
  ASSERT_TRUE(q.NextReleasable(&cursor, 7, false, &run));
  EXPECT_TRUE(Same(run, 5, 7, true));
  EXPECT_EQ(cursor, 7u);
  EXPECT_FALSE(q.NextReleasable(&cursor, 7, false, &run));
  EXPECT_EQ(cursor, 7u);
  // `to` past the end is the end.
  ASSERT_TRUE(q.NextReleasable(&cursor, 1000, false, &run));
  EXPECT_TRUE(Same(run, 7, 10, true));
  // `to` at or before the cursor: nothing.
  cursor = 5;
  EXPECT_FALSE(q.NextReleasable(&cursor, 5, false, &run));
  EXPECT_EQ(cursor, 5u);
}

TEST(SendQueueTest, NextReleasableSkipsReleased) {
  SendQueue q;
  PushN(q, 6, 10);
  q.SetSent(6, 0);
  std::vector<uint64_t> tokens;
  q.Release(QueueRun{2, 4, true}, &tokens);
  std::vector<QueueRun> runs = Runs(q, 0, 6, true);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_TRUE(Same(runs[0], 0, 2, true));
  EXPECT_TRUE(Same(runs[1], 4, 6, true));
}

TEST(SendQueueTest, ReleaseReturnsTokensAndBytes) {
  SendQueue q;
  q.Push(Buf(0, 10), 100);
  q.Push(Buf(1, 20), 101);
  q.Push(Buf(2, 30), 102);
  q.Push(Buf(3, 40), 103);
  q.SetSent(3, 0);
  std::vector<uint64_t> tokens = {55, 66, 77, 88, 99};
  QueueRun run;
  uint64_t cursor = 0;
  ASSERT_TRUE(q.NextReleasable(&cursor, 4, false, &run));
  EXPECT_EQ(q.Release(run, &tokens), 60u);
  EXPECT_THAT(tokens, ElementsAre(100, 101, 102));
  EXPECT_EQ(q.held(), 1u);
  EXPECT_EQ(q.held_bytes(), 40u);
  EXPECT_FALSE(q.NextReleasable(&cursor, 4, false, &run));
  ASSERT_TRUE(q.NextReleasable(&cursor, 4, true, &run));
  EXPECT_TRUE(Same(run, 3, 4, false));
  EXPECT_EQ(q.Release(run, &tokens), 40u);
  EXPECT_THAT(tokens, ElementsAre(103));
  EXPECT_EQ(q.held(), 0u);
  EXPECT_EQ(q.held_bytes(), 0u);
}

TEST(SendQueueTest, PushDuringReleaseCallbackKeepsSeqsAndTokens) {
  SendQueue q;
  PushN(q, 6, 10);
  q.SetSent(6, 0);
  q.Hold(2, 1);
  std::vector<uint64_t> released, tokens;
  QueueRun run;
  uint64_t cursor = 0;
  const uint64_t to = q.end_seq();
  while (q.NextReleasable(&cursor, to, false, &run)) {
    q.Release(run, &tokens);
    released.insert(released.end(), tokens.begin(), tokens.end());
    // The "callback" pushes more (enough to move the vectors).
    for (int k = 0; k < 100; ++k) {
      const uint64_t seq = q.end_seq();
      q.Push(Buf(seq, 5), 5000 + seq);
    }
  }
  q.Compact();
  EXPECT_THAT(released, ElementsAre(1000, 1001, 1003, 1004, 1005));
  EXPECT_EQ(q.end_seq(), 206u);
  EXPECT_EQ(q.held(), 201u);
  EXPECT_EQ(q.held_bytes(), 10u + 200 * 5);
  EXPECT_EQ(q.token(2), 1002u);
  EXPECT_EQ(q.token(6), 5006u);
  EXPECT_EQ(q.token(205), 5205u);
  EXPECT_EQ(q.at(205).iov_len, 5u);
  ASSERT_EQ(q.Unsent().size(), 200u);
  EXPECT_EQ(q.Unsent()[0].iov_base, Buf(6, 5).iov_base);
  // The held one goes once unheld; the new ones once sent.
  q.Unhold(2, 1);
  EXPECT_THAT(ReleaseAll(q, false), ElementsAre(1002));
  q.SetSent(206, 0);
  EXPECT_EQ(ReleaseAll(q, false).size(), 200u);
  EXPECT_EQ(q.stored(), 0u);
  EXPECT_EQ(q.first_seq(), 206u);
}

// PushIf pushes a batch only if every buffer is accepted, and gives the
// check the bytes before each buffer in the batch.
TEST(SendQueueTest, PushIfPushesAllOrNothing) {
  SendQueue q;
  PushN(q, 3, 10);
  const iovec batch[] = {Buf(3, 5), Buf(4, 7), Buf(5, 9)};
  const uint64_t tokens[] = {103, 104, 105};
  std::vector<uint64_t> befores;
  EXPECT_FALSE(q.PushIf(batch, tokens, [&](const iovec& b, uint64_t before) {
    befores.push_back(before);
    return b.iov_len != 7;
  }));
  EXPECT_EQ(befores, std::vector<uint64_t>({0, 5, 12}));
  EXPECT_EQ(q.end_seq(), 3u);
  EXPECT_EQ(q.held(), 3u);
  EXPECT_EQ(q.held_bytes(), 30u);
  EXPECT_TRUE(
      q.PushIf(batch, tokens, [](const iovec&, uint64_t) { return true; }));
  EXPECT_EQ(q.end_seq(), 6u);
  EXPECT_EQ(q.held_bytes(), 51u);
  EXPECT_EQ(q.token(5), 105u);
  EXPECT_EQ(q.at(4).iov_len, 7u);
  q.SetSent(6, 0);
  EXPECT_EQ(ReleaseAll(q, false).size(), 6u);
  EXPECT_EQ(q.held_bytes(), 0u);
}

TEST(SendQueueTest, CompactFreesFrontAfterManyBuffers) {
  SendQueue q;
  PushN(q, 10000, 8);
  q.SetSent(9000, 0);
  EXPECT_EQ(ReleaseAll(q, false).size(), 9000u);
  // Draining moves nothing; the front is erased by the Push that would grow
  // the storage.
  EXPECT_EQ(q.first_seq(), 0u);
  size_t pushed = 0;
  while (q.first_seq() == 0 && pushed < 20000) {
    PushN(q, 1, 8);
    ++pushed;
  }
  EXPECT_EQ(q.first_seq(), 9000u);
  EXPECT_LT(pushed, 10000u);  // within the storage's first growth
  EXPECT_EQ(q.stored(), 1000u + pushed);
  EXPECT_EQ(q.end_seq(), 10000u + pushed);
  EXPECT_EQ(q.held(), 1000u + pushed);
  EXPECT_EQ(q.held_bytes(), 8 * (1000u + pushed));
  EXPECT_EQ(q.token(9000), 10000u);
  EXPECT_EQ(q.token(9999), 10999u);
  EXPECT_EQ(q.token(10000), 11000u);
  EXPECT_EQ(q.at(9500).iov_base, Buf(9500, 8).iov_base);
  EXPECT_EQ(q.Unsent().size(), 1000u + pushed);
}

TEST(SendQueueTest, CompactKeepsSmallOrMinorFront) {
  // Each queue gets 5000 more pushes, far past its storage's capacity.
  // Under 1024 released at the front: kept.
  SendQueue small;
  PushN(small, 2000, 8);
  small.SetSent(1000, 0);
  ReleaseAll(small, false);
  PushN(small, 5000, 8);
  EXPECT_EQ(small.first_seq(), 0u);
  EXPECT_EQ(small.stored(), 7000u);
  // 1024 or more, but under half the storage: kept.
  SendQueue minor;
  PushN(minor, 3000, 8);
  minor.SetSent(1100, 0);
  ReleaseAll(minor, false);
  PushN(minor, 5000, 8);
  EXPECT_EQ(minor.first_seq(), 0u);
  // 1024 and half when the storage would grow: erased.
  SendQueue half;
  PushN(half, 2048, 8);  // one at a time: the capacity is 2048
  half.SetSent(1024, 0);
  ReleaseAll(half, false);
  EXPECT_EQ(half.first_seq(), 0u);
  PushN(half, 1, 8);
  EXPECT_EQ(half.first_seq(), 1024u);
  EXPECT_EQ(half.stored(), 1025u);
  EXPECT_EQ(half.token(1024), 2024u);
  EXPECT_EQ(half.token(2048), 3048u);
}

TEST(SendQueueTest, CompactKeepsReleasedUnsentBuffers) {
  SendQueue q;
  PushN(q, 2000, 8);
  q.SetSent(1500, 0);
  EXPECT_EQ(ReleaseAll(q, true).size(), 2000u);
  EXPECT_EQ(q.held(), 0u);
  // The unsent 500 released by the stop stay stored (and, with no Push to
  // come, so do the sent ones before them).
  EXPECT_EQ(q.first_seq(), 0u);
  EXPECT_EQ(q.stored(), 2000u);
  EXPECT_EQ(q.token(1999), 2999u);
  QueueRun run;
  uint64_t cursor = 0;
  EXPECT_FALSE(q.NextReleasable(&cursor, q.end_seq(), true, &run));
  EXPECT_FALSE(q.NextUnreleased(&cursor, &run));
}

TEST(SendQueueTest, CompactSkipsReleasedOutOfOrder) {
  // Released behind a held buffer: front stops there, then moves on.
  SendQueue q;
  PushN(q, 3000, 8);
  q.SetSent(3000, 0);
  q.Hold(10, 1);
  EXPECT_EQ(ReleaseAll(q, false).size(), 2999u);
  EXPECT_EQ(q.first_seq(), 0u);
  q.Unhold(10, 1);
  EXPECT_EQ(ReleaseAll(q, false).size(), 1u);
  EXPECT_EQ(q.stored(), 0u);
  EXPECT_EQ(q.first_seq(), 3000u);
}

TEST(SendQueueTest, NextUnreleasedReturnsHeldBuffers) {
  SendQueue q;
  PushN(q, 6, 10);
  q.SetSent(3, 0);
  q.Hold(1, 3);  // 1, 2 sent; 3 unsent
  std::vector<uint64_t> tokens;
  q.Release(QueueRun{0, 1, true}, &tokens);
  std::vector<QueueRun> runs;
  QueueRun run;
  uint64_t cursor = 0;
  while (q.NextUnreleased(&cursor, &run)) runs.push_back(run);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_TRUE(Same(runs[0], 1, 3, true));
  EXPECT_TRUE(Same(runs[1], 3, 6, false));
  for (const QueueRun& r : runs) q.Release(r, &tokens);
  EXPECT_THAT(tokens, ElementsAre(1003, 1004, 1005));
  EXPECT_EQ(q.held(), 0u);
  EXPECT_EQ(q.held_bytes(), 0u);
  cursor = 0;
  EXPECT_FALSE(q.NextUnreleased(&cursor, &run));
  // Released while held: not releasable again, kept until unheld.
  EXPECT_TRUE(Runs(q, 0, 6, true).empty());
  q.Compact();
  EXPECT_EQ(q.first_seq(), 0u);
  EXPECT_EQ(q.stored(), 6u);
  q.Unhold(1, 3);
  q.SetSent(6, 0);
  q.Compact();
  EXPECT_EQ(q.stored(), 0u);
  EXPECT_EQ(q.first_seq(), 6u);
}

TEST(SendQueueTest, ReleasedWhileHeldStaysStoredUntilUnheld) {
  // A Shutdown of a fully sent queue with an op still holding buffer 1.
  SendQueue q;
  PushN(q, 3, 10);
  q.SetSent(3, 0);
  q.Hold(1, 1);
  QueueRun run;
  uint64_t cursor = 0;
  ASSERT_TRUE(q.NextUnreleased(&cursor, &run));
  EXPECT_TRUE(Same(run, 0, 3, true));
  std::vector<uint64_t> tokens;
  EXPECT_EQ(q.Release(run, &tokens), 30u);
  EXPECT_EQ(q.held(), 0u);
  q.Compact();
  // Buffer 1 is still referenced: it and what follows stay, seqs intact.
  EXPECT_EQ(q.end_seq(), 3u);
  EXPECT_EQ(q.stored(), 3u);
  EXPECT_EQ(q.token(1), 1001u);
  q.Unhold(1, 1);
  EXPECT_TRUE(Runs(q, 0, 3, true).empty());  // not released twice
  q.Compact();
  EXPECT_EQ(q.stored(), 0u);
  EXPECT_EQ(q.first_seq(), 3u);
}

TEST(SendQueueTest, ClearFreesAndRestarts) {
  SendQueue q;
  PushN(q, 5000, 8);
  q.Hold(0, 10);
  q.SetSent(100, 3);
  q.Clear();
  EXPECT_EQ(q.held(), 0u);
  EXPECT_EQ(q.held_bytes(), 0u);
  EXPECT_EQ(q.first_seq(), 0u);
  EXPECT_EQ(q.end_seq(), 0u);
  EXPECT_EQ(q.sent_seq(), 0u);
  EXPECT_EQ(q.sent_offset(), 0u);
  EXPECT_FALSE(q.HasUnsent());
  EXPECT_EQ(q.Unsent().data(), nullptr);  // capacity gone
  QueueRun run;
  uint64_t cursor = 0;
  EXPECT_FALSE(q.NextUnreleased(&cursor, &run));
  // Reused: a fresh queue, no holds left over.
  q.Push(Buf(0, 4), 9);
  EXPECT_EQ(q.end_seq(), 1u);
  q.SetSent(1, 0);
  EXPECT_THAT(ReleaseAll(q, false), ElementsAre(9));
}

TEST(SendQueueTest, OverlappingHoldsKeepBuffersUntilAllUndone) {
  // A chain's op and a resent tail after a short zero-copy send overlap; the
  // same range may be held twice.
  SendQueue q;
  PushN(q, 8, 10);
  q.Hold(0, 4);
  q.Hold(2, 4);
  q.Hold(2, 4);
  q.Hold(3, 0);  // nothing
  q.SetSent(8, 0);
  std::vector<QueueRun> runs = Runs(q, 0, 8, false);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_TRUE(Same(runs[0], 6, 8, true));
  q.Unhold(0, 4);
  runs = Runs(q, 0, 8, false);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_TRUE(Same(runs[0], 0, 2, true));
  q.Unhold(2, 4);
  EXPECT_EQ(Runs(q, 0, 8, true).size(), 2u);  // still held once
  EXPECT_THAT(ReleaseAll(q, false), ElementsAre(1000, 1001, 1006, 1007));
  EXPECT_EQ(q.first_seq(), 0u);  // 2 is held: nothing moves
  EXPECT_EQ(q.held_bytes(), 40u);
  q.Unhold(3, 0);
  q.Unhold(2, 4);
  EXPECT_THAT(ReleaseAll(q, false), ElementsAre(1002, 1003, 1004, 1005));
  EXPECT_EQ(q.stored(), 0u);
  EXPECT_EQ(q.first_seq(), 8u);
  EXPECT_EQ(q.held_bytes(), 0u);
}

TEST(SendQueueTest, ManyReleasedPiecesStayApartUntilFilled) {
  SendQueue q;
  for (uint64_t s = 0; s < 100; ++s) q.Push(Buf(s, 1 + s), s);
  q.SetSent(100, 0);
  std::vector<uint64_t> tokens;
  uint64_t bytes = 0;
  for (uint64_t s = 1; s < 100; s += 2) {
    bytes += q.Release(QueueRun{s, s + 1, true}, &tokens);
  }
  EXPECT_EQ(bytes, 50u * 51);  // 2 + 4 + ... + 100
  EXPECT_EQ(q.held(), 50u);
  EXPECT_EQ(q.held_bytes(), 50u * 50);  // 1 + 3 + ... + 99
  q.Compact();
  EXPECT_EQ(q.first_seq(), 0u);
  std::vector<QueueRun> runs = Runs(q, 0, 100, false);
  ASSERT_EQ(runs.size(), 50u);
  for (size_t k = 0; k < runs.size(); ++k) {
    EXPECT_TRUE(Same(runs[k], 2 * k, 2 * k + 1, true)) << k;
  }
  // Released back to front: each one joins two pieces.
  for (uint64_t s = 98;; s -= 2) {
    EXPECT_EQ(q.Release(QueueRun{s, s + 1, true}, &tokens), s + 1);
    EXPECT_THAT(tokens, ElementsAre(s));
    if (s == 0) break;
  }
  EXPECT_EQ(q.held(), 0u);
  EXPECT_EQ(q.held_bytes(), 0u);
  QueueRun run;
  uint64_t cursor = 0;
  EXPECT_FALSE(q.NextUnreleased(&cursor, &run));
  q.Compact();
  EXPECT_EQ(q.stored(), 0u);
  EXPECT_EQ(q.first_seq(), 100u);
}

TEST(SendQueueTest, BytesAndAdvanceSentAfterFrontErased) {
  SendQueue q;
  for (uint64_t s = 0; s < 2048; ++s) q.Push(Buf(s, 1 + s % 7), s);
  q.SetSent(1024, 0);
  ReleaseAll(q, false);
  q.Push(Buf(2048, 5), 2048);  // grows the storage: the front goes
  ASSERT_EQ(q.first_seq(), 1024u);
  uint64_t unsent = 0;
  for (uint64_t s = 1024; s <= 2048; ++s) unsent += q.at(s).iov_len;
  EXPECT_EQ(q.held_bytes(), unsent);
  // 1024 is 1 + 1024 % 7 = 3 bytes long, 1025 is 4: stop 1 into 1026.
  q.AdvanceSent(3 + 4 + 1);
  EXPECT_EQ(q.sent_seq(), 1026u);
  EXPECT_EQ(q.sent_offset(), 1u);
  q.AdvanceSent(q.at(1026).iov_len - 1);
  EXPECT_EQ(q.sent_seq(), 1027u);
  EXPECT_EQ(q.sent_offset(), 0u);
  std::vector<uint64_t> tokens;
  QueueRun run;
  uint64_t cursor = 0;
  ASSERT_TRUE(q.NextReleasable(&cursor, q.end_seq(), false, &run));
  EXPECT_TRUE(Same(run, 1024, 1027, true));
  EXPECT_EQ(q.Release(run, &tokens), 3u + 4 + 5);
  EXPECT_EQ(q.held_bytes(), unsent - 12);
  // All the rest in one short send: to the very end.
  q.AdvanceSent(unsent - 12);
  EXPECT_EQ(q.sent_seq(), 2049u);
  EXPECT_EQ(q.sent_offset(), 0u);
  EXPECT_EQ(ReleaseAll(q, false).size(), 2049u - 1027);
  EXPECT_EQ(q.stored(), 0u);
  // After the storage is cleared, bytes count from the new buffers alone.
  q.Push(Buf(0, 9), 1);
  q.AdvanceSent(4);
  EXPECT_EQ(q.sent_seq(), 2049u);
  EXPECT_EQ(q.sent_offset(), 4u);
  EXPECT_EQ(q.held_bytes(), 9u);
}

// The reference: one struct per buffer ever pushed and still stored.
struct Model {
  struct Entry {
    uint64_t len;
    uint64_t token;
    uint32_t holds = 0;
    bool released = false;
  };
  std::vector<Entry> entries;  // entry i has seq i (nothing is dropped)
  uint64_t sent_seq = 0;
  uint64_t sent_off = 0;

  uint64_t end() const { return entries.size(); }
  uint64_t unsent_bytes() const {
    uint64_t b = 0;
    for (uint64_t s = sent_seq; s < end(); ++s) b += entries[s].len;
    return b - sent_off;
  }
  bool Releasable(uint64_t s, bool stopped) const {
    const Entry& e = entries[s];
    return !e.released && e.holds == 0 && (s < sent_seq || stopped);
  }
};

// The counts always; the storage, Unsent and NextUnreleased when `full`.
// Adds to *runs_seen the number of runs NextUnreleased gave.
void ExpectMatches(const SendQueue& q, const Model& m, bool full,
                   size_t* runs_seen = nullptr) {
  ASSERT_EQ(q.end_seq(), m.end());
  ASSERT_LE(q.first_seq(), m.end());
  // What is before first_seq() is released (checked below when `full`, and
  // it was then): only the rest is counted in between.
  size_t held = 0;
  uint64_t bytes = 0;
  for (uint64_t s = full ? 0 : q.first_seq(); s < m.end(); ++s) {
    if (!m.entries[s].released) {
      ++held;
      bytes += m.entries[s].len;
    }
  }
  ASSERT_EQ(q.held(), held);
  ASSERT_EQ(q.held_bytes(), bytes);
  ASSERT_EQ(q.sent_seq(), m.sent_seq);
  ASSERT_EQ(q.sent_offset(), m.sent_off);
  if (!full) return;
  // Everything not yet released and not yet sent is still stored.
  for (uint64_t s = 0; s < q.first_seq(); ++s) {
    ASSERT_TRUE(m.entries[s].released) << s;
    ASSERT_EQ(m.entries[s].holds, 0u) << s;
    ASSERT_LT(s, m.sent_seq) << s;
  }
  for (uint64_t s = q.first_seq(); s < m.end(); ++s) {
    ASSERT_EQ(q.at(s).iov_len, m.entries[s].len) << s;
    ASSERT_EQ(q.token(s), m.entries[s].token) << s;
  }
  absl::Span<const iovec> unsent = q.Unsent();
  ASSERT_EQ(unsent.size(), m.end() - m.sent_seq);
  for (size_t k = 0; k < unsent.size(); ++k) {
    ASSERT_EQ(unsent[k].iov_len, m.entries[m.sent_seq + k].len);
  }
  // NextUnreleased gives exactly the unreleased ones, split at sent_seq.
  std::vector<uint64_t> unreleased;
  QueueRun run, last{0, 0, false};
  uint64_t cursor = 0;
  while (q.NextUnreleased(&cursor, &run)) {
    ASSERT_LT(run.first, run.end);
    ASSERT_FALSE(run.first == last.end && run.sent == last.sent &&
                 last.end > 0);
    for (uint64_t s = run.first; s < run.end; ++s) {
      ASSERT_EQ(run.sent, s < m.sent_seq);
      unreleased.push_back(s);
    }
    last = run;
    if (runs_seen != nullptr) ++*runs_seen;
  }
  std::vector<uint64_t> want;
  for (uint64_t s = 0; s < m.end(); ++s) {
    if (!m.entries[s].released) want.push_back(s);
  }
  ASSERT_EQ(unreleased, want);
}

// Releases what is releasable in [from, to) from both and checks they agree.
void ReleaseBoth(SendQueue& q, Model& m, uint64_t from, uint64_t to,
                 bool stopped, std::mt19937_64& rng) {
  // As the executor does: `to` is at most the end when the scan starts.
  to = std::min(to, q.end_seq());
  std::vector<uint64_t> want_tokens;
  uint64_t want_bytes = 0;
  for (uint64_t s = from; s < std::min(to, m.end()); ++s) {
    if (m.Releasable(s, stopped)) {
      want_tokens.push_back(m.entries[s].token);
      want_bytes += m.entries[s].len;
    }
  }
  std::vector<uint64_t> got_tokens, tokens;
  uint64_t got_bytes = 0;
  QueueRun run, last{0, 0, false};
  uint64_t cursor = from;
  while (q.NextReleasable(&cursor, to, stopped, &run)) {
    ASSERT_LT(run.first, run.end);
    ASSERT_GE(run.first, from);
    ASSERT_LE(run.end, to);
    ASSERT_EQ(cursor, run.end);
    // Maximal: a run next to the last one differs in kind.
    ASSERT_FALSE(last.end > 0 && run.first == last.end &&
                 run.sent == last.sent);
    for (uint64_t s = run.first; s < run.end; ++s) {
      ASSERT_TRUE(m.Releasable(s, stopped)) << s;
      ASSERT_EQ(run.sent, s < m.sent_seq) << s;
      m.entries[s].released = true;
    }
    got_bytes += q.Release(run, &tokens);
    got_tokens.insert(got_tokens.end(), tokens.begin(), tokens.end());
    last = run;
    // A "callback" that pushes now and then.
    if (rng() % 4 == 0) {
      const uint64_t len = 1 + rng() % 50;
      const uint64_t token = rng();
      q.Push(Buf(q.end_seq(), len), token);
      m.entries.push_back({len, token});
    }
  }
  ASSERT_EQ(got_tokens, want_tokens);
  ASSERT_EQ(got_bytes, want_bytes);
}

// How a model run goes: `wide` adds holds anywhere in the unreleased part
// (overlapping each other, some the same range twice, as a resent tail after
// a short zero-copy send), and releases of single buffers, so that the
// released part is in many pieces.
struct ModelConfig {
  uint64_t seed;
  int rounds;
  int steps;
  bool wide;
};

// The largest number of runs NextUnreleased gave at one check, and the
// largest first_seq() at a round's end.
struct ModelStats {
  size_t most_runs = 0;
  uint64_t most_compacted = 0;
};

// An unreleased range of up to 8 buffers at a random place, or false.
bool PickUnreleased(const Model& m, uint64_t from, std::mt19937_64& rng,
                    uint64_t* first, uint32_t* count) {
  if (from >= m.end()) return false;
  uint64_t s = from + rng() % (m.end() - from);
  while (s < m.end() && m.entries[s].released) ++s;
  if (s == m.end()) return false;
  const uint32_t want = static_cast<uint32_t>(1 + rng() % 8);
  uint32_t n = 0;
  while (n < want && s + n < m.end() && !m.entries[s + n].released) ++n;
  *first = s;
  *count = n;
  return true;
}

// At most this many holds at once in a wide run (ops in flight of one
// connection are a few), so that they come and go and the front compacts.
constexpr size_t kMostHolds = 32;

void RunModel(const ModelConfig& config, ModelStats* stats) {
  std::mt19937_64 rng(config.seed);
  for (int round = 0; round < config.rounds; ++round) {
    SendQueue q;
    Model m;
    struct HoldRec {
      uint64_t first;
      uint32_t count;
    };
    std::vector<HoldRec> holds;
    bool stopped = false;
    for (int step = 0; step < config.steps; ++step) {
      const int op = static_cast<int>(rng() % (config.wide ? 12 : 10));
      if (op <= 1) {  // push one or a batch
        const size_t n = op == 0 ? 1 : rng() % 16;
        std::vector<iovec> bufs;
        std::vector<uint64_t> tokens;
        for (size_t k = 0; k < n; ++k) {
          const uint64_t len = 1 + rng() % 50;
          bufs.push_back(Buf(m.end() + k, len));
          tokens.push_back(rng());
          m.entries.push_back({len, tokens.back()});
        }
        if (op == 0) {
          q.Push(bufs[0], tokens[0]);
        } else {
          q.Push(bufs, tokens);
        }
      } else if (op == 2 && !stopped && m.sent_seq < m.end() &&
                 (!config.wide || holds.size() < kMostHolds)) {
        // An op: holds a few buffers from the sent position (unreleased).
        const uint32_t count = static_cast<uint32_t>(
            1 + rng() % std::min<uint64_t>(8, m.end() - m.sent_seq));
        q.Hold(m.sent_seq, count);
        for (uint32_t k = 0; k < count; ++k) ++m.entries[m.sent_seq + k].holds;
        holds.push_back({m.sent_seq, count});
      } else if (op == 3 && !holds.empty()) {
        const size_t i = rng() % holds.size();
        const HoldRec h = holds[i];
        holds.erase(holds.begin() + i);
        q.Unhold(h.first, h.count);
        for (uint32_t k = 0; k < h.count; ++k) --m.entries[h.first + k].holds;
        ReleaseBoth(q, m, h.first, h.first + h.count, stopped, rng);
        q.Compact();
      } else if (op == 4 && !stopped && m.unsent_bytes() > 0) {
        const uint64_t bytes = rng() % (m.unsent_bytes() + 1);
        q.AdvanceSent(bytes);
        uint64_t left = bytes;
        while (left > 0) {
          const uint64_t avail = m.entries[m.sent_seq].len - m.sent_off;
          if (left >= avail) {
            left -= avail;
            ++m.sent_seq;
            m.sent_off = 0;
          } else {
            m.sent_off += left;
            left = 0;
          }
        }
      } else if (op == 5 && !stopped && m.sent_seq < m.end()) {
        const uint64_t seq = m.sent_seq + rng() % (m.end() - m.sent_seq + 1);
        uint64_t off = 0;
        if (seq < m.end() && rng() % 2 == 0) {
          off = rng() % m.entries[seq].len;
        }
        if (seq == m.sent_seq) off = std::max(off, m.sent_off);
        q.SetSent(seq, off);
        m.sent_seq = seq;
        m.sent_off = off;
      } else if (op == 6) {
        const uint64_t a = rng() % (m.end() + 2);
        const uint64_t b = rng() % (m.end() + 2);
        ReleaseBoth(q, m, std::min(a, b), std::max(a, b), stopped, rng);
        if (rng() % 2 == 0) q.Compact();
      } else if (op == 7) {
        ReleaseBoth(q, m, q.first_seq(), q.end_seq(), stopped, rng);
        q.Compact();
      } else if (op == 8 && rng() % 200 == 0) {
        stopped = true;
      } else if (op == 9 && rng() % 100 == 0) {
        // Shutdown: everything unreleased goes, held or not; holds stay.
        std::vector<uint64_t> tokens;
        QueueRun run;
        uint64_t cursor = 0;
        while (q.NextUnreleased(&cursor, &run)) {
          q.Release(run, &tokens);
          for (uint64_t s = run.first; s < run.end; ++s) {
            m.entries[s].released = true;
          }
        }
        q.Compact();
        stopped = true;
      } else if (op == 10 && holds.size() < kMostHolds) {
        // A hold anywhere unreleased, or one more of a range held already.
        uint64_t first = 0;
        uint32_t count = 0;
        if (!holds.empty() && rng() % 3 == 0) {
          const HoldRec& h = holds[rng() % holds.size()];
          bool unreleased = true;
          for (uint32_t k = 0; k < h.count; ++k) {
            unreleased = unreleased && !m.entries[h.first + k].released;
          }
          if (unreleased) {
            first = h.first;
            count = h.count;
          }
        } else if (!PickUnreleased(m, q.first_seq(), rng, &first, &count)) {
          count = 0;
        }
        if (count > 0) {
          q.Hold(first, count);
          for (uint32_t k = 0; k < count; ++k) ++m.entries[first + k].holds;
          holds.push_back({first, count});
        }
      } else if (op == 11 && m.end() > 0) {
        // One buffer, or a few: the released part gets many pieces.
        const uint64_t s = rng() % m.end();
        ReleaseBoth(q, m, s, s + 1 + rng() % 3, stopped, rng);
        if (rng() % 4 == 0) q.Compact();
      }
      const bool last_step = step == config.steps - 1;
      size_t runs = 0;
      ExpectMatches(q, m, step % 10 == 0 || last_step, &runs);
      stats->most_runs = std::max(stats->most_runs, runs);
      if (::testing::Test::HasFatalFailure()) {
        FAIL() << "seed " << config.seed << " round " << round << " step "
               << step << " op " << op;
      }
    }
    stats->most_compacted = std::max(stats->most_compacted, q.first_seq());
    if (!config.wide) continue;
    // Every hold undone and all released: nothing stays behind.
    for (const HoldRec& h : holds) {
      q.Unhold(h.first, h.count);
      for (uint32_t k = 0; k < h.count; ++k) --m.entries[h.first + k].holds;
    }
    // (A callback's Push may add more each time.)
    for (int k = 0; k < 100 && q.held() > 0; ++k) {
      ReleaseBoth(q, m, q.first_seq(), q.end_seq(), /*stopped=*/true, rng);
      q.Compact();
    }
    ExpectMatches(q, m, true);
    ASSERT_EQ(q.held(), 0u);
    if (q.sent_seq() == q.end_seq()) {
      ASSERT_EQ(q.stored(), 0u);
    }
  }
}

TEST(SendQueueTest, MatchesReferenceModel) {
  ModelStats stats;
  RunModel({20261201, 4, 3000, false}, &stats);
  // Compaction did its job at least sometimes.
  EXPECT_GT(stats.most_compacted, 0u);
}

TEST(SendQueueTest, MatchesReferenceModelWithOverlappingHolds) {
  ModelStats stats;
  RunModel({20261202, 20, 5000, true}, &stats);
  EXPECT_GT(stats.most_compacted, 0u);
  // The released part was in many pieces at times.
  EXPECT_GE(stats.most_runs, 20u);
}

}  // namespace
}  // namespace zcplan
