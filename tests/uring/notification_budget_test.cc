// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/notification_budget.h"

#include <sys/resource.h>

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "zcplan/uring/memlock.h"

namespace zcplan {
namespace {

using NoRoom = NotificationBudget::NoRoom;

constexpr uint64_t kPage = kPageBytes;
constexpr uint64_t kKib = 1024;
constexpr uint64_t kMib = 1024 * 1024;
constexpr char kHint[] =
    "; under 3 pages, so zero-copy sends are not used (raise ulimit -l, or set "
    "max_bytes_awaiting_notification)";

TEST(NotificationBudgetTest, ChargeAndUnchargeKeepAccountsAndTotal) {
  NotificationBudget budget(100 * kPage);
  BudgetAccount a, b;
  budget.Charge(a, 3 * kPage);
  budget.Charge(b, 5 * kPage);
  budget.Charge(a, 4 * kPage);
  EXPECT_EQ(a.bytes, 7 * kPage);
  EXPECT_EQ(b.bytes, 5 * kPage);
  EXPECT_EQ(budget.total(), 12 * kPage);
  EXPECT_EQ(budget.room(), 88 * kPage);

  budget.Uncharge(a, 3 * kPage);
  EXPECT_EQ(a.bytes, 4 * kPage);
  EXPECT_EQ(budget.total(), 9 * kPage);
  budget.Uncharge(b, 5 * kPage);
  budget.Uncharge(a, 4 * kPage);
  EXPECT_EQ(a.bytes, 0u);
  EXPECT_EQ(b.bytes, 0u);
  EXPECT_EQ(budget.total(), 0u);
  EXPECT_EQ(budget.room(), 100 * kPage);
}

TEST(NotificationBudgetTest, HoldersCountAccountsWithBytes) {
  NotificationBudget budget(100 * kPage);
  BudgetAccount a, b, c;
  EXPECT_EQ(budget.holders(), 0u);
  budget.Charge(c, 0);  // charging nothing does not make a holder
  EXPECT_EQ(budget.holders(), 0u);
  budget.Charge(a, kPage);
  EXPECT_EQ(budget.holders(), 1u);
  budget.Charge(a, kPage);  // a second charge of the same account
  EXPECT_EQ(budget.holders(), 1u);
  budget.Charge(b, kPage);
  budget.Charge(c, kPage);
  EXPECT_EQ(budget.holders(), 3u);
  budget.Charge(b, 0);
  EXPECT_EQ(budget.holders(), 3u);

  budget.Uncharge(a, kPage);  // still holds a page
  EXPECT_EQ(budget.holders(), 3u);
  budget.Uncharge(a, kPage);
  EXPECT_EQ(budget.holders(), 2u);
  budget.Uncharge(a, 0);  // nothing from an empty account: no underflow
  EXPECT_EQ(budget.holders(), 2u);
  budget.Uncharge(b, kPage);
  budget.Uncharge(c, kPage);
  EXPECT_EQ(budget.holders(), 0u);
  budget.Uncharge(c, 0);
  EXPECT_EQ(budget.holders(), 0u);

  // Reused after emptying: a holder again.
  budget.Charge(b, kPage);
  EXPECT_EQ(budget.holders(), 1u);
}

TEST(NotificationBudgetTest, PeaksAreHighestSeen) {
  NotificationBudget budget(100 * kPage);
  BudgetAccount a, b;
  budget.Charge(a, 6 * kPage);
  budget.Uncharge(a, 5 * kPage);
  budget.Charge(b, 4 * kPage);  // total 5: below the peak of 6
  EXPECT_EQ(budget.peak(), 6 * kPage);
  budget.Charge(b, 3 * kPage);  // total 8
  EXPECT_EQ(budget.peak(), 8 * kPage);
  budget.Uncharge(b, 7 * kPage);
  budget.Uncharge(a, kPage);
  EXPECT_EQ(budget.total(), 0u);
  EXPECT_EQ(budget.peak(), 8 * kPage);
  EXPECT_EQ(a.peak, 6 * kPage);
  EXPECT_EQ(b.peak, 7 * kPage);
}

TEST(NotificationBudgetTest, RoomIsZeroWhenOverCap) {
  NotificationBudget budget(10 * kPage);
  BudgetAccount a;
  budget.Charge(a, 10 * kPage);
  EXPECT_EQ(budget.room(), 0u);
  budget.Charge(a, kPage);  // Charge does not check the cap
  EXPECT_EQ(budget.total(), 11 * kPage);
  EXPECT_EQ(budget.room(), 0u);

  // Lowering the cap under what is held keeps the bytes; room stays 0 until
  // enough come back.
  budget.set_cap(4 * kPage);
  EXPECT_EQ(budget.cap(), 4 * kPage);
  EXPECT_EQ(budget.room(), 0u);
  budget.Uncharge(a, 8 * kPage);
  EXPECT_EQ(budget.room(), kPage);
}

TEST(NotificationBudgetTest, ZeroCopyPossibleFromThreePages) {
  EXPECT_FALSE(NotificationBudget().zero_copy_possible());
  EXPECT_FALSE(NotificationBudget(3 * kPage - 1).zero_copy_possible());
  EXPECT_TRUE(NotificationBudget(3 * kPage).zero_copy_possible());
  EXPECT_EQ(NotificationBudget(3 * kPage - 1).largest_op_bytes(), 0u);
  EXPECT_EQ(NotificationBudget(3 * kPage).largest_op_bytes(), kPage);
  // The largest op's charge fits in the cap.
  const NotificationBudget budget(10 * kPage + 123);
  EXPECT_EQ(budget.largest_op_bytes(), 8 * kPage);
  EXPECT_LE(MemlockCharge(budget.largest_op_bytes()), budget.cap());
}

TEST(NotificationBudgetTest, DecideCopyAlwaysUnderThreePages) {
  NotificationBudget budget(3 * kPage - 1);
  BudgetAccount a, b;
  EXPECT_EQ(budget.Decide(a), NoRoom::kCopyAlways);
  // Even when it holds bytes (the cap was lowered under them): waiting for
  // them would not make an op fit.
  budget.Charge(a, 2 * kPage);
  EXPECT_EQ(budget.Decide(a), NoRoom::kCopyAlways);
  EXPECT_EQ(budget.Decide(b), NoRoom::kCopyAlways);
}

TEST(NotificationBudgetTest, DecideSmallerOpsWhenNothingAwaits) {
  const NotificationBudget budget(8 * kPage);
  const BudgetAccount a;
  EXPECT_EQ(budget.Decide(a), NoRoom::kSmallerOps);
  EXPECT_EQ(budget.largest_op_bytes(), 6 * kPage);
}

TEST(NotificationBudgetTest, DecideSingleHolderWaitsOthersCopy) {
  NotificationBudget budget(8 * kPage);
  BudgetAccount a, b;
  budget.Charge(a, 3 * kPage);
  EXPECT_EQ(budget.Decide(a), NoRoom::kWaitForOwn);
  EXPECT_EQ(budget.Decide(b), NoRoom::kCopy);
}

// Issue 8: A's peer stopped reading and A holds 90% of the cap; B holds a
// little. B must not wait behind A's notifications (they may never come).
TEST(NotificationBudgetTest, DecideStalledPeerDoesNotHoldUpOthers) {
  NotificationBudget budget(100 * kPage);
  BudgetAccount a, b, idle;
  budget.Charge(a, 90 * kPage);
  budget.Charge(b, 9 * kPage);
  EXPECT_EQ(budget.holders(), 2u);
  EXPECT_EQ(budget.Decide(b), NoRoom::kCopy);
  EXPECT_EQ(budget.Decide(a), NoRoom::kWaitForOwn);
  EXPECT_EQ(budget.Decide(idle), NoRoom::kCopy);
}

TEST(NotificationBudgetTest, DecideEqualSharesBothWait) {
  NotificationBudget budget(10 * kPage);
  BudgetAccount a, b;
  budget.Charge(a, 5 * kPage);
  budget.Charge(b, 5 * kPage);
  EXPECT_EQ(budget.Decide(a), NoRoom::kWaitForOwn);
  EXPECT_EQ(budget.Decide(b), NoRoom::kWaitForOwn);
}

TEST(NotificationBudgetTest, DecideShareIsTheMeanRoundedUp) {
  NotificationBudget budget(10 * kPage);
  BudgetAccount a, b, c;
  budget.Charge(a, 4);
  budget.Charge(b, 3);
  budget.Charge(c, 3);
  // Mean 10/3: 3 bytes is under it, 4 at or over it.
  EXPECT_EQ(budget.Decide(a), NoRoom::kWaitForOwn);
  EXPECT_EQ(budget.Decide(b), NoRoom::kCopy);
  EXPECT_EQ(budget.Decide(c), NoRoom::kCopy);
}

TEST(NotificationBudgetTest, DecideHugeHoldingsDoNotOverflowTheShare) {
  // own * holders would wrap to below the total here.
  NotificationBudget budget(UINT64_MAX);
  BudgetAccount a, b, c;
  budget.Charge(a, (uint64_t{1} << 63) - 2);
  budget.Charge(b, 1);
  budget.Charge(c, 1);
  EXPECT_EQ(budget.total(), uint64_t{1} << 63);
  EXPECT_EQ(budget.Decide(a), NoRoom::kWaitForOwn);
  EXPECT_EQ(budget.Decide(b), NoRoom::kCopy);
}

TEST(NotificationBudgetTest, DecideAfterOthersDrainSmallerOpsAgain) {
  NotificationBudget budget(8 * kPage);
  BudgetAccount a, b;
  budget.Charge(a, 3 * kPage);
  EXPECT_EQ(budget.Decide(b), NoRoom::kCopy);
  budget.Uncharge(a, 3 * kPage);
  EXPECT_EQ(budget.Decide(b), NoRoom::kSmallerOps);
  EXPECT_EQ(budget.Decide(a), NoRoom::kSmallerOps);
}

TEST(NotificationBudgetTest, NoRoomNames) {
  EXPECT_EQ(NoRoomName(NoRoom::kWaitForOwn), "wait_for_own");
  EXPECT_EQ(NoRoomName(NoRoom::kCopy), "copy");
  EXPECT_EQ(NoRoomName(NoRoom::kSmallerOps), "smaller_ops");
  EXPECT_EQ(NoRoomName(NoRoom::kCopyAlways), "copy_always");
}

#ifndef NDEBUG
TEST(NotificationBudgetDeathTest, UnchargeMoreThanHeldIsCaught) {
  NotificationBudget budget(10 * kPage);
  BudgetAccount a, b;
  budget.Charge(a, kPage);
  budget.Charge(b, kPage);
  EXPECT_DEATH(budget.Uncharge(a, 2 * kPage), "bytes <= account.bytes");
}
#endif

TEST(ChooseNotificationCapTest, ConfiguredWins) {
  const CapChoice c =
      ChooseNotificationCap(5 * kMib, 8 * kMib, true, 28 * kKib, 4 * kMib);
  EXPECT_EQ(c.cap, 5 * kMib);
  EXPECT_EQ(c.description,
            "5120 KiB: set by ExecutorOptions::max_bytes_awaiting_"
            "notification");
  // Even over an unlimited limit, and under 3 pages (the caller's choice).
  EXPECT_EQ(ChooseNotificationCap(kPage, RLIM_INFINITY, false, 0, 0).cap,
            kPage);
}

TEST(ChooseNotificationCapTest, UnlimitedIs64Mib) {
  for (bool charged : {true, false}) {
    const CapChoice c =
        ChooseNotificationCap(0, RLIM_INFINITY, charged, 28 * kKib, 4 * kMib);
    EXPECT_EQ(c.cap, 64 * kMib);
    EXPECT_EQ(c.description, "65536 KiB: RLIMIT_MEMLOCK is unlimited");
  }
}

TEST(ChooseNotificationCapTest, ChargedHalvesWhatRingAndBuffersLeave) {
  // 8192 - 28 - 4096 = 4068 KiB left; half is 2034 KiB, 508.5 pages.
  const CapChoice c =
      ChooseNotificationCap(0, 8 * kMib, true, 28 * kKib, 4 * kMib);
  EXPECT_EQ(c.cap, 508 * kPage);
  EXPECT_EQ(c.description,
            "2032 KiB: half of what RLIMIT_MEMLOCK (8192 KiB) leaves after the "
            "ring (28 KiB) and registered buffers (4096 KiB)");
}

TEST(ChooseNotificationCapTest, NotChargedHalvesTheLimit) {
  const CapChoice c =
      ChooseNotificationCap(0, 8 * kMib, false, 28 * kKib, 4 * kMib);
  EXPECT_EQ(c.cap, 4 * kMib);
  EXPECT_EQ(c.description,
            "4096 KiB: half of RLIMIT_MEMLOCK (8192 KiB); this process has "
            "CAP_IPC_LOCK, so the kernel charges it nothing and the cap only "
            "bounds what zero-copy sends pin");
}

TEST(ChooseNotificationCapTest, LimitTakenByTheRingAndBuffersGivesZero) {
  const CapChoice c =
      ChooseNotificationCap(0, 64 * kKib, true, 52 * kKib, 16 * kKib);
  EXPECT_EQ(c.cap, 0u);
  EXPECT_EQ(c.description,
            std::string("0 KiB: half of what RLIMIT_MEMLOCK (64 KiB) leaves "
                        "after the ring (52 KiB) and registered buffers (16 "
                        "KiB)") +
                kHint);
  // Sizes that would wrap when added take the whole limit too.
  EXPECT_EQ(ChooseNotificationCap(0, 8 * kMib, true, UINT64_MAX, 1).cap, 0u);
}

TEST(ChooseNotificationCapTest, UlimitSixtyFourLeavesUnderThreePages) {
  // ulimit -l 64 with the ring's 52 KiB: 6 KiB, one page.
  const CapChoice c = ChooseNotificationCap(0, 64 * kKib, true, 52 * kKib, 0);
  EXPECT_EQ(c.cap, kPage);
  EXPECT_TRUE(absl::EndsWith(c.description, kHint)) << c.description;
}

TEST(ChooseNotificationCapTest, NotChargedTinyLimitHasTheHint) {
  const CapChoice c = ChooseNotificationCap(0, 16 * kKib, false, 0, 0);
  EXPECT_EQ(c.cap, 2 * kPage);
  EXPECT_TRUE(absl::EndsWith(c.description, kHint)) << c.description;
}

TEST(ChooseNotificationCapTest, RoundsDownToWholePages) {
  // 10 pages + 100 bytes: half is 5 pages + 50 bytes.
  EXPECT_EQ(ChooseNotificationCap(0, 10 * kPage + 100, true, 0, 0).cap,
            5 * kPage);
  // 7 pages: half is 3.5 pages, 3 pages: just enough, no hint.
  const CapChoice c = ChooseNotificationCap(0, 7 * kPage, true, 0, 0);
  EXPECT_EQ(c.cap, 3 * kPage);
  EXPECT_FALSE(absl::StrContains(c.description, "under 3 pages"));
  // 5 pages + 4095 bytes: half is under 3 pages.
  EXPECT_EQ(ChooseNotificationCap(0, 6 * kPage - 1, true, 0, 0).cap, 2 * kPage);
  EXPECT_EQ(ChooseNotificationCap(0, 7 * kPage - 1, false, 0, 0).cap,
            3 * kPage);
}

// The hint is there exactly when the budget cannot use zero-copy.
TEST(ChooseNotificationCapTest, HintIffZeroCopyImpossible) {
  for (uint64_t limit = 0; limit <= 16 * kPage; limit += 511) {
    for (bool charged : {true, false}) {
      const CapChoice c =
          ChooseNotificationCap(0, limit, charged, 2 * kPage, kPage);
      EXPECT_EQ(c.cap % kPage, 0u) << limit;
      EXPECT_EQ(absl::StrContains(c.description, "under 3 pages"),
                !NotificationBudget(c.cap).zero_copy_possible())
          << limit << " " << c.description;
    }
  }
}

TEST(MemlockSoftLimitTest, IsGetrlimitsSoftLimit) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &limit), 0);
  EXPECT_EQ(MemlockSoftLimit(), limit.rlim_cur);
}

}  // namespace
}  // namespace zcplan
