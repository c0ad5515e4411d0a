// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/regions.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/uring/memlock.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

// Addresses only: nothing here is dereferenced.
iovec At(uintptr_t address, size_t length) {
  return iovec{reinterpret_cast<void*>(address), length};
}

constexpr uintptr_t kBase = uintptr_t{1} << 32;

TEST(PageSizeTest, TheOnePageSizeIsThisMachines) {
  EXPECT_EQ(static_cast<uint64_t>(sysconf(_SC_PAGESIZE)), kPageBytes);
}

TEST(RegisteredRegionsTest, ValidateAcceptsOneAndTheMost) {
  EXPECT_TRUE(RegisteredRegions::Validate({At(kBase, 1)}).ok());
  std::vector<iovec> most(RegisteredRegions::kMaxRegions, At(kBase, 4096));
  EXPECT_TRUE(RegisteredRegions::Validate(most).ok());
}

TEST(RegisteredRegionsTest, ValidateNamesTheCount) {
  absl::Status none = RegisteredRegions::Validate({});
  EXPECT_EQ(none.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(none.message(), "RegisterBuffers: 0 regions; 1..16384 allowed");
  std::vector<iovec> many(RegisteredRegions::kMaxRegions + 1, At(kBase, 1));
  absl::Status too_many = RegisteredRegions::Validate(many);
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(too_many.message(),
            "RegisterBuffers: 16385 regions; 1..16384 allowed");
}

TEST(RegisteredRegionsTest, ValidateNamesTheBadRegion) {
  absl::Status empty =
      RegisteredRegions::Validate({At(kBase, 10), At(kBase + 10, 0)});
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.message(),
            "RegisterBuffers: region 1 is empty or has a null base");
  absl::Status null =
      RegisteredRegions::Validate({At(kBase, 10), At(kBase, 10), At(0, 10)});
  EXPECT_EQ(null.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(null.message(),
            "RegisterBuffers: region 2 is empty or has a null base");
}

TEST(RegisteredRegionsTest, ValidateRejectsARegionPastTheAddressSpace) {
  // Its end wraps around.
  absl::Status wraps =
      RegisteredRegions::Validate({At(kBase, 1), At(UINTPTR_MAX - 99, 100)});
  EXPECT_EQ(wraps.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wraps.message()), HasSubstr("region 1 "));
  EXPECT_FALSE(
      RegisteredRegions::Validate({At(UINTPTR_MAX - 10, SIZE_MAX)}).ok());
  // Its end fits, but its last page would end past the top.
  absl::Status page =
      RegisteredRegions::Validate({At(UINTPTR_MAX - 199, 100), At(kBase, 1)});
  EXPECT_EQ(page.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(page.message()), HasSubstr("region 0 "));
  // A region in the last whole page below the top is fine.
  const uintptr_t last_page = UINTPTR_MAX / 4096 * 4096 - 4096;
  EXPECT_TRUE(RegisteredRegions::Validate({At(last_page, 4096)}).ok());
  EXPECT_FALSE(RegisteredRegions::Validate({At(last_page, 4097)}).ok());
}

TEST(RegisteredRegionsTest, EmptyUntilSet) {
  RegisteredRegions regions;
  EXPECT_TRUE(regions.empty());
  EXPECT_EQ(regions.pinned_bytes(), 0u);
  const iovec piece = At(kBase, 1);
  EXPECT_EQ(regions.Find({piece}), -1);
  regions.Set({At(kBase, 4096)});
  EXPECT_FALSE(regions.empty());
  EXPECT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions.Find({piece}), 0);
  EXPECT_EQ(regions.Find({}), -1);
}

TEST(RegisteredRegionsTest, PinnedBytesCountWholePagesSpanned) {
  RegisteredRegions regions;
  regions.Set({At(kBase, 4096)});
  EXPECT_EQ(regions.pinned_bytes(), 4096u);
  // One byte over a page boundary spans two pages; one byte, one page.
  regions.Set({At(kBase + 4095, 2), At(kBase + 100, 1)});
  EXPECT_EQ(regions.pinned_bytes(), 3 * 4096u);
  // Unaligned at both ends: 4 pages for 3 pages and 2 bytes.
  regions.Set({At(kBase + 4095, 3 * 4096 + 2)});
  EXPECT_EQ(regions.pinned_bytes(), 5 * 4096u);
  // Set replaces: a shared page counts once per region.
  regions.Set({At(kBase, 10), At(kBase + 20, 10)});
  EXPECT_EQ(regions.pinned_bytes(), 2 * 4096u);
}

class FindTest : public ::testing::Test {
 protected:
  // Given out of address order: index 0 is the highest.
  //   index 1: [kBase,        kBase + 1000)
  //   index 2: [kBase + 2000, kBase + 3000)
  //   index 0: [kBase + 5000, kBase + 6000)
  void SetUp() override {
    regions_.Set(
        {At(kBase + 5000, 1000), At(kBase, 1000), At(kBase + 2000, 1000)});
  }
  int Find(std::vector<iovec> pieces) { return regions_.Find(pieces); }
  RegisteredRegions regions_;
};

TEST_F(FindTest, PiecesInsideOneRegion) {
  EXPECT_EQ(Find({At(kBase, 1000)}), 1);
  EXPECT_EQ(Find({At(kBase + 2100, 10), At(kBase + 2990, 10)}), 2);
  EXPECT_EQ(Find({At(kBase + 5999, 1)}), 0);
  // Pieces out of address order.
  EXPECT_EQ(Find({At(kBase + 5500, 500), At(kBase + 5000, 10)}), 0);
}

TEST_F(FindTest, PieceStraddlingAnEdge) {
  EXPECT_EQ(Find({At(kBase + 999, 2)}), -1);
  EXPECT_EQ(Find({At(kBase + 1999, 2)}), -1);
  EXPECT_EQ(Find({At(kBase + 5000, 1001)}), -1);
}

TEST_F(FindTest, PiecesInDifferentRegions) {
  EXPECT_EQ(Find({At(kBase, 10), At(kBase + 2000, 10)}), -1);
  // The second piece in a region, the first not.
  EXPECT_EQ(Find({At(kBase + 4000, 10), At(kBase + 5000, 10)}), -1);
}

TEST_F(FindTest, PieceInAGapOrOutside) {
  EXPECT_EQ(Find({At(kBase + 1500, 10)}), -1);
  EXPECT_EQ(Find({At(kBase - 10, 10)}), -1);
  EXPECT_EQ(Find({At(kBase - 1, 2)}), -1);
  EXPECT_EQ(Find({At(kBase + 6000, 1)}), -1);
  EXPECT_EQ(Find({At(8, 1)}), -1);
}

TEST_F(FindTest, ZeroLengthPieceMustLieInside) {
  EXPECT_EQ(Find({At(kBase + 10, 10), At(kBase + 1000, 0)}), 1);
  EXPECT_EQ(Find({At(kBase + 10, 10), At(kBase + 1001, 0)}), -1);
  EXPECT_EQ(Find({At(kBase + 10, 10), At(0, 0)}), -1);
}

TEST(RegisteredRegionsTest, FindWithOverlappingRegions) {
  RegisteredRegions regions;
  // index 0: [kBase, +10000) holds everything; index 1 begins later and is
  // small, so the region starting nearest below a piece is not the answer.
  regions.Set({At(kBase, 10000), At(kBase + 100, 100)});
  EXPECT_EQ(regions.Find({At(kBase + 150, 500)}), 0);
  EXPECT_EQ(regions.Find({At(kBase + 9000, 1000)}), 0);
  const int inner = regions.Find({At(kBase + 120, 10)});
  EXPECT_TRUE(inner == 0 || inner == 1) << inner;
  // A chain of overlaps where only the union, not one region, holds it.
  regions.Set({At(kBase, 100), At(kBase + 50, 100), At(kBase + 120, 100)});
  EXPECT_EQ(regions.Find({At(kBase + 60, 80)}), 1);
  EXPECT_EQ(regions.Find({At(kBase + 40, 150)}), -1);
  EXPECT_EQ(regions.Find({At(kBase + 10, 10), At(kBase + 200, 10)}), -1);
  // Same begin, different ends.
  regions.Set({At(kBase, 10), At(kBase, 50), At(kBase, 20)});
  EXPECT_EQ(regions.Find({At(kBase, 50)}), 1);
  EXPECT_EQ(regions.Find({At(kBase, 51)}), -1);
}

TEST(RegisteredRegionsTest, FindAtTheTopOfTheAddressSpace) {
  RegisteredRegions regions;
  const uintptr_t top = UINTPTR_MAX / 4096 * 4096 - 4096;
  regions.Set({At(top, 4096)});
  EXPECT_EQ(regions.Find({At(top + 4095, 1)}), 0);
  EXPECT_EQ(regions.Find({At(top + 4095, 2)}), -1);
}

TEST(RegisteredRegionsTest, FindAmongManyRegions) {
  // 16384 regions of 100 bytes every 256: every piece lands in its own.
  std::vector<iovec> list;
  for (size_t i = 0; i < RegisteredRegions::kMaxRegions; ++i) {
    // Reverse order, so index i is at slot kMaxRegions - 1 - i.
    list.push_back(
        At(kBase + 256 * (RegisteredRegions::kMaxRegions - 1 - i), 100));
  }
  RegisteredRegions regions;
  regions.Set(list);
  for (size_t slot = 0; slot < RegisteredRegions::kMaxRegions; slot += 997) {
    const int want =
        static_cast<int>(RegisteredRegions::kMaxRegions - 1 - slot);
    EXPECT_EQ(regions.Find({At(kBase + 256 * slot + 50, 50)}), want);
    EXPECT_EQ(regions.Find({At(kBase + 256 * slot + 50, 51)}), -1);
  }
}

}  // namespace
}  // namespace zcplan
