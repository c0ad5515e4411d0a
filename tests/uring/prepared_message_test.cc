// SPDX-License-Identifier: Apache-2.0
// PreparedMessage: what Create refuses (and that each refusal names the
// buffer and the limit), the prefix sums, Locate at every boundary, and
// unique ids.

#include "zcplan/uring/prepared_message.h"

#include <sys/mman.h>
#include <sys/uio.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

// A base that is never read: Create copies the iovec array only.
void* FakeBase(uintptr_t n) { return reinterpret_cast<void*>(0x10000 + n); }

TEST(PreparedMessageTest, EmptyMessageIsRefused) {
  const auto m = PreparedMessage::Create({});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "no buffers"))
      << m.status();
}

TEST(PreparedMessageTest, NullBaseNamesTheBufferAndTheLimit) {
  char data[16];
  const std::vector<iovec> b = {{data, 4}, {data + 4, 4}, {nullptr, 4}};
  const auto m = PreparedMessage::Create(b);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "buffer 2 "))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), "null")) << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), "1..SSIZE_MAX"))
      << m.status();
}

TEST(PreparedMessageTest, ZeroLengthNamesTheBufferAndTheLimit) {
  char data[16];
  const std::vector<iovec> b = {{data, 4}, {data + 4, 0}, {data + 8, 4}};
  const auto m = PreparedMessage::Create(b);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "buffer 1 "))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), "length 0"))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), "1..SSIZE_MAX"))
      << m.status();
}

TEST(PreparedMessageTest, LengthAboveSsizeMaxNamesTheBufferAndTheLimit) {
  const size_t too_long = static_cast<size_t>(SSIZE_MAX) + 1;
  const std::vector<iovec> b = {{FakeBase(0), 10}, {FakeBase(1), too_long}};
  const auto m = PreparedMessage::Create(b);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "buffer 1 "))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), absl::StrCat(too_long)))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), "SSIZE_MAX"))
      << m.status();
}

TEST(PreparedMessageTest, ExactlySsizeMaxInOneBufferIsAccepted) {
  const std::vector<iovec> b = {{FakeBase(0), static_cast<size_t>(SSIZE_MAX)}};
  const auto m = PreparedMessage::Create(b);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->bytes(), static_cast<uint64_t>(SSIZE_MAX));
  EXPECT_EQ((*m)->Locate(SSIZE_MAX - 1).buffer, 0u);
  EXPECT_EQ((*m)->Locate(SSIZE_MAX - 1).offset,
            static_cast<uint64_t>(SSIZE_MAX) - 1);
}

TEST(PreparedMessageTest, TotalAboveSsizeMaxNamesTheBufferAndTheLimit) {
  const size_t half = static_cast<size_t>(SSIZE_MAX) / 2;
  // half + half = SSIZE_MAX - 1: fits; one more byte fits; two do not.
  const std::vector<iovec> fits = {
      {FakeBase(0), half}, {FakeBase(1), half}, {FakeBase(2), 1}};
  const auto ok = PreparedMessage::Create(fits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->bytes(), static_cast<uint64_t>(SSIZE_MAX));
  const std::vector<iovec> over = {{FakeBase(0), half},
                                   {FakeBase(1), half},
                                   {FakeBase(2), 1},
                                   {FakeBase(3), 1}};
  const auto m = PreparedMessage::Create(over);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "buffer 3 "))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), absl::StrCat(SSIZE_MAX)))
      << m.status();
  // The sum must not wrap: two buffers of SSIZE_MAX each.
  const std::vector<iovec> wrap = {
      {FakeBase(0), static_cast<size_t>(SSIZE_MAX)},
      {FakeBase(1), static_cast<size_t>(SSIZE_MAX)},
      {FakeBase(2), static_cast<size_t>(SSIZE_MAX)}};
  const auto w = PreparedMessage::Create(wrap);
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::StrContains(w.status().message(), "buffer 1 "))
      << w.status();
}

TEST(PreparedMessageTest, MoreThanMaxBuffersNamesTheCountAndTheLimit) {
  // An address range for kMaxBuffers + 1 iovecs, reserved, never touched:
  // Create refuses on the count before reading any of them.
  const size_t n = PreparedMessage::kMaxBuffers + 1;
  const size_t length = n * sizeof(iovec);
  void* p = mmap(nullptr, length, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    GTEST_SKIP() << "cannot reserve " << length << " bytes of address space";
  }
  const auto m = PreparedMessage::Create(
      absl::Span<const iovec>(static_cast<const iovec*>(p), n));
  munmap(p, length);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(), absl::StrCat(n)))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(),
                                absl::StrCat(PreparedMessage::kMaxBuffers)))
      << m.status();
}

TEST(PreparedMessageTest, CopiesTheIovecArrayAndKeepsPrefixSums) {
  std::vector<char> data(100);
  std::vector<iovec> b = {{data.data(), 1},
                          {data.data() + 10, 5},
                          {data.data() + 20, 3},
                          {data.data() + 30, 10},
                          {data.data() + 50, 1}};
  const auto made = PreparedMessage::Create(b);
  ASSERT_TRUE(made.ok()) << made.status();
  const PreparedMessage& m = **made;
  // The caller's array may change afterwards.
  b[0].iov_base = nullptr;
  b[1].iov_len = 99;
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m.buffers()[0].iov_base, data.data());
  EXPECT_EQ(m.buffers()[1].iov_len, 5u);
  EXPECT_EQ(m.bytes(), 20u);
  const std::vector<uint64_t> before = {0, 1, 6, 9, 19, 20};
  for (size_t i = 0; i <= m.size(); ++i) {
    EXPECT_EQ(m.BytesBefore(i), before[i]) << i;
  }
}

// Locate against a linear scan, at every offset of a message whose buffers
// have lengths 1 and more (the first and last byte of each buffer are the
// boundaries).
TEST(PreparedMessageTest, LocateFindsEveryByteIncludingBoundaries) {
  const std::vector<size_t> sizes = {1, 1, 7, 2, 1, 16, 3, 1};
  std::vector<char> data(64);
  std::vector<iovec> b;
  size_t at = 0;
  for (size_t s : sizes) {
    b.push_back({data.data() + at, s});
    at += s;
  }
  const auto made = PreparedMessage::Create(b);
  ASSERT_TRUE(made.ok()) << made.status();
  const PreparedMessage& m = **made;
  ASSERT_EQ(m.bytes(), at);
  uint64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    for (size_t k = 0; k < sizes[i]; ++k, ++offset) {
      const PreparedMessage::Position p = m.Locate(offset);
      EXPECT_EQ(p.buffer, i) << "offset " << offset;
      EXPECT_EQ(p.offset, k) << "offset " << offset;
    }
    // The first byte of buffer i is BytesBefore(i); its last, one less than
    // BytesBefore(i + 1).
    EXPECT_EQ(m.Locate(m.BytesBefore(i)).buffer, i);
    EXPECT_EQ(m.Locate(m.BytesBefore(i)).offset, 0u);
    EXPECT_EQ(m.Locate(m.BytesBefore(i + 1) - 1).buffer, i);
    EXPECT_EQ(m.Locate(m.BytesBefore(i + 1) - 1).offset, sizes[i] - 1);
  }
}

TEST(PreparedMessageTest, SingleBufferMessage) {
  char data[8] = {};
  const iovec one = {data, 8};
  const auto made = PreparedMessage::Create(absl::MakeConstSpan(&one, 1));
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ((*made)->bytes(), 8u);
  EXPECT_EQ((*made)->BytesBefore(0), 0u);
  EXPECT_EQ((*made)->BytesBefore(1), 8u);
  EXPECT_EQ((*made)->Locate(0).buffer, 0u);
  EXPECT_EQ((*made)->Locate(7).buffer, 0u);
  EXPECT_EQ((*made)->Locate(7).offset, 7u);
}

TEST(PreparedMessageTest, IdsAreUniqueAcrossThreads) {
  char data[1];
  const iovec one = {data, 1};
  constexpr int kThreads = 4;
  constexpr int kEach = 2000;
  std::vector<std::vector<uint64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, &one, t] {
      for (int i = 0; i < kEach; ++i) {
        const auto m = PreparedMessage::Create(absl::MakeConstSpan(&one, 1));
        ASSERT_TRUE(m.ok());
        ids[t].push_back((*m)->id());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<uint64_t> seen;
  for (const auto& v : ids) seen.insert(v.begin(), v.end());
  EXPECT_EQ(seen.size(), size_t{kThreads} * kEach);
  // A message kept alive and one made after it differ too (ids are not
  // addresses that a freed message could give back).
  const auto a = PreparedMessage::Create(absl::MakeConstSpan(&one, 1));
  const uint64_t a_id = (*a)->id();
  const auto b = PreparedMessage::Create(absl::MakeConstSpan(&one, 1));
  EXPECT_NE(a_id, (*b)->id());
  EXPECT_EQ(seen.count(a_id), 0u);
}

// Refused messages use no id, and a failed Create leaves nothing behind
// that a later one could collide with.
TEST(PreparedMessageTest, RefusalsDoNotDisturbLaterMessages) {
  char data[4];
  const std::vector<iovec> bad = {{data, 1}, {nullptr, 1}};
  EXPECT_FALSE(PreparedMessage::Create(bad).ok());
  const std::vector<iovec> good = {{data, 1}, {data + 1, 3}};
  const auto m = PreparedMessage::Create(good);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->bytes(), 4u);
}

}  // namespace
}  // namespace zcplan
