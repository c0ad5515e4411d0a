// SPDX-License-Identifier: Apache-2.0
// Tests of the fake ring's own model of the kernel (docs/kernel.md):
// SQEs are prepared with liburing's prep helpers and run on a `FakeRing`
// directly, without the executor, so a fake that drifts from the kernel it
// stands in for shows up here and not as a confusing executor test result.

#include "zcplan/tests/uring/fake_ring.h"

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

constexpr int kFd = 7;
constexpr int kOtherFd = 8;
constexpr int kSendFlags = MSG_WAITALL | MSG_NOSIGNAL;
constexpr uint32_t kCopied = IORING_NOTIF_USAGE_ZC_COPIED;

// Every completion available now, in order.
std::vector<Completion> ReapAll(FakeRing& ring) {
  std::vector<Completion> all;
  Completion batch[16];
  for (;;) {
    const size_t n = ring.Reap(absl::MakeSpan(batch));
    if (n == 0) break;
    all.insert(all.end(), batch, batch + n);
  }
  return all;
}

// Submits every prepared SQE without waiting; expects all of them taken.
void SubmitAll(FakeRing& ring) {
  const uint32_t pending = ring.sq_pending();
  ASSERT_EQ(ring.SubmitAndWait(0, 0), static_cast<int>(pending));
  ASSERT_EQ(ring.sq_pending(), 0u);
}

// A fresh SQE; prep helpers overwrite user_data and flags, so `Finish` sets
// them afterwards.
io_uring_sqe* Sqe(FakeRing& ring) {
  io_uring_sqe* sqe = ring.GetSqe();
  EXPECT_NE(sqe, nullptr) << "submission queue full";
  return sqe;
}

void Finish(io_uring_sqe* sqe, uint64_t user_data, uint8_t flags) {
  sqe->user_data = user_data;
  sqe->flags = flags;
}

void PrepWritev(FakeRing& ring, const iovec* iovs, unsigned n,
                uint64_t user_data, uint8_t flags = 0, int fd = kFd) {
  io_uring_sqe* sqe = Sqe(ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_writev(sqe, fd, iovs, n, 0);
  Finish(sqe, user_data, flags);
}

void PrepSend(FakeRing& ring, const std::string& data, int msg_flags,
              uint64_t user_data, uint8_t flags = 0, int fd = kFd) {
  io_uring_sqe* sqe = Sqe(ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send(sqe, fd, data.data(), data.size(), msg_flags);
  Finish(sqe, user_data, flags);
}

void PrepSendZc(FakeRing& ring, const void* data, size_t length,
                uint64_t user_data, uint8_t flags = 0,
                unsigned zc_flags = IORING_SEND_ZC_REPORT_USAGE, int fd = kFd) {
  io_uring_sqe* sqe = Sqe(ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc(sqe, fd, data, length, kSendFlags, zc_flags);
  Finish(sqe, user_data, flags);
}

void PrepNop(FakeRing& ring, uint64_t user_data) {
  io_uring_sqe* sqe = Sqe(ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  Finish(sqe, user_data, 0);
}

iovec Iov(const std::string& s) {
  return iovec{const_cast<char*>(s.data()), s.size()};
}

std::string Describe(const std::vector<Completion>& cqes) {
  std::vector<std::string> parts;
  for (const Completion& c : cqes) {
    parts.push_back(absl::StrCat("{", c.user_data, ", ", c.res, ", 0x",
                                 absl::Hex(c.flags), "}"));
  }
  return absl::StrJoin(parts, " ");
}

std::string Violations(const FakeRing& ring) {
  return absl::StrJoin(ring.violations(), "\n");
}

// --- Link chains and short transfers ----------------------------------------

TEST(FakeRingTest, LinkedWritevThenSendRunInOrderAndAppend) {
  FakeRing ring;
  const std::string a = "head", b = "ers;", c = "and the body";
  const iovec iovs[] = {Iov(a), Iov(b)};
  PrepWritev(ring, iovs, 2, 1, IOSQE_IO_LINK);
  PrepSend(ring, c, kSendFlags, 2);
  SubmitAll(ring);

  EXPECT_EQ(ring.received(kFd), "headers;and the body");
  EXPECT_EQ(ring.received(kOtherFd), "");
  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 1u);
  EXPECT_EQ(cqes[0].res, 8);
  EXPECT_EQ(cqes[1].user_data, 2u);
  EXPECT_EQ(cqes[1].res, static_cast<int32_t>(c.size()));
  EXPECT_EQ(cqes[0].flags | cqes[1].flags, 0u);
  EXPECT_EQ(ring.chains(), 1u);
  EXPECT_EQ(ring.linked_chains(), 1u);
  ASSERT_EQ(ring.log().size(), 2u);
  EXPECT_EQ(ring.log()[0].opcode, IORING_OP_WRITEV);
  EXPECT_EQ(ring.log()[0].iov_count, 2u);
  EXPECT_EQ(ring.log()[1].index_in_chain, 1u);
  EXPECT_EQ(ring.log()[1].msg_flags, static_cast<uint32_t>(kSendFlags));
  EXPECT_TRUE(ring.violations().empty()) << Violations(ring);
}

TEST(FakeRingTest, ShortWritevBreaksChainAndCancelsTheRest) {
  FakeRing ring;
  ring.AddFault(kFd, FakeFault{IORING_OP_WRITEV, /*max_bytes=*/3});
  const std::string a = "0123456789", b = "abcde", z = "ZEROCOPY";
  const iovec iov = Iov(a);
  PrepWritev(ring, &iov, 1, 1, IOSQE_IO_LINK);
  PrepSend(ring, b, kSendFlags, 2, IOSQE_IO_LINK);
  PrepSendZc(ring, z.data(), z.size(), 3);
  SubmitAll(ring);

  EXPECT_EQ(ring.received(kFd), "012");
  const std::vector<Completion> cqes = ReapAll(ring);
  // writev short, send and send_zc cancelled; the cancelled zero-copy op
  // still gets a notification (docs/kernel.md: measured on 6.18).
  ASSERT_EQ(cqes.size(), 4u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 1u);
  EXPECT_EQ(cqes[0].res, 3);
  EXPECT_EQ(cqes[1].user_data, 2u);
  EXPECT_EQ(cqes[1].res, -ECANCELED);
  EXPECT_EQ(cqes[2].user_data, 3u);
  EXPECT_EQ(cqes[2].res, -ECANCELED);
  EXPECT_EQ(cqes[2].flags & IORING_CQE_F_MORE, 0u);
  EXPECT_EQ(cqes[3].user_data, 3u);
  EXPECT_EQ(cqes[3].flags, static_cast<uint32_t>(IORING_CQE_F_NOTIF));
  EXPECT_EQ(ring.ops_executed(IORING_OP_WRITEV), 1u);
  EXPECT_EQ(ring.ops_executed(IORING_OP_SEND), 0u);
  EXPECT_EQ(ring.ops_executed(IORING_OP_SEND_ZC), 0u);
}

TEST(FakeRingTest, ShortSendWithoutWaitallDoesNotBreakChainLeavingHole) {
  FakeRing ring;
  ring.AddFault(kFd, FakeFault{IORING_OP_SEND, /*max_bytes=*/2});
  const std::string a = "abcde", b = "fghij";
  PrepSend(ring, a, MSG_NOSIGNAL, 1, IOSQE_IO_LINK);
  PrepSend(ring, b, MSG_NOSIGNAL, 2);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].res, 2);
  EXPECT_EQ(cqes[1].res, 5);  // ran although its predecessor went short
  EXPECT_EQ(ring.received(kFd), "abfghij");  // "cde" is missing: a hole
}

TEST(FakeRingTest, ShortSendWithWaitallBreaksChain) {
  FakeRing ring;
  ring.AddFault(kFd, FakeFault{IORING_OP_SEND, /*max_bytes=*/2});
  const std::string a = "abcde", b = "fghij";
  PrepSend(ring, a, kSendFlags, 1, IOSQE_IO_LINK);
  PrepSend(ring, b, kSendFlags, 2);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].res, 2);
  EXPECT_EQ(cqes[1].res, -ECANCELED);
  EXPECT_EQ(ring.received(kFd), "ab");
}

TEST(FakeRingTest, HardlinkKeepsChainGoingAfterShortWritev) {
  FakeRing ring;
  ring.AddFault(kFd, FakeFault{IORING_OP_WRITEV, /*max_bytes=*/1});
  const std::string a = "xyz", b = "123";
  const iovec iov = Iov(a);
  PrepWritev(ring, &iov, 1, 1, IOSQE_IO_HARDLINK);
  PrepSend(ring, b, kSendFlags, 2);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].res, 1);
  EXPECT_EQ(cqes[1].res, 3);
  EXPECT_EQ(ring.received(kFd), "x123");
}

// --- Zero-copy completions and notifications --------------------------------

TEST(FakeRingTest, ZeroCopyPostsMoreThenNotificationReportingCopy) {
  FakeRing ring;
  ring.SetCopied(kFd, true);
  const std::string data(5000, 'z');
  PrepSendZc(ring, data.data(), data.size(), 42);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 42u);
  EXPECT_EQ(cqes[0].res, 5000);
  EXPECT_EQ(cqes[0].flags, static_cast<uint32_t>(IORING_CQE_F_MORE));
  EXPECT_EQ(cqes[1].user_data, 42u);
  EXPECT_EQ(cqes[1].flags, static_cast<uint32_t>(IORING_CQE_F_NOTIF));
  EXPECT_EQ(static_cast<uint32_t>(cqes[1].res), kCopied);
  EXPECT_EQ(ring.received(kFd), data);
  EXPECT_EQ(ring.notifications_posted(), 1u);
  EXPECT_EQ(ring.bytes_awaiting_notification(), 0u);
}

TEST(FakeRingTest, ZeroCopyNotificationWithoutCopyHasNoUsageBit) {
  FakeRing ring;
  ring.SetCopied(kFd, false);
  const std::string data(5000, 'z');
  PrepSendZc(ring, data.data(), data.size(), 42);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].flags, static_cast<uint32_t>(IORING_CQE_F_MORE));
  EXPECT_EQ(cqes[1].flags, static_cast<uint32_t>(IORING_CQE_F_NOTIF));
  EXPECT_EQ(cqes[1].res, 0);
}

TEST(FakeRingTest, ZeroCopyWithoutReportUsageNeverSetsUsageBit) {
  FakeRing ring;
  ring.SetCopied(kFd, true);
  const std::string data(100, 'z');
  PrepSendZc(ring, data.data(), data.size(), 42, 0, /*zc_flags=*/0);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[1].flags, static_cast<uint32_t>(IORING_CQE_F_NOTIF));
  EXPECT_EQ(cqes[1].res, 0);
}

TEST(FakeRingTest, CancelledLinkedZeroCopyHasNoMoreButStillANotification) {
  FakeRing ring;
  ring.SetCopied(kFd, false);
  ring.AddFault(kFd, FakeFault{IORING_OP_WRITEV, /*max_bytes=*/0});
  const std::string a = "abc", z(20000, 'z');
  const iovec iov = Iov(a);
  PrepWritev(ring, &iov, 1, 1, IOSQE_IO_LINK);
  PrepSendZc(ring, z.data(), z.size(), 2);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 3u) << Describe(cqes);
  EXPECT_EQ(cqes[0].res, 0);
  EXPECT_EQ(cqes[1].user_data, 2u);
  EXPECT_EQ(cqes[1].res, -ECANCELED);
  EXPECT_EQ(cqes[1].flags, 0u);
  EXPECT_EQ(cqes[2].user_data, 2u);
  EXPECT_EQ(cqes[2].flags, static_cast<uint32_t>(IORING_CQE_F_NOTIF));
  // Nothing went zero-copy, so the kernel reports "copied" although the
  // socket does not copy.
  EXPECT_EQ(static_cast<uint32_t>(cqes[2].res), kCopied);
  EXPECT_EQ(ring.received(kFd), "");
  EXPECT_TRUE(ring.log()[1].notification_expected);
}

TEST(FakeRingTest, CancelledLinkedZeroCopyWithoutNotificationWhenTurnedOff) {
  FakeRing ring;
  ring.set_notify_cancelled_zc(false);
  ring.AddFault(kFd, FakeFault{IORING_OP_WRITEV, /*max_bytes=*/0});
  const std::string a = "abc", z(20000, 'z');
  const iovec iov = Iov(a);
  PrepWritev(ring, &iov, 1, 1, IOSQE_IO_LINK);
  PrepSendZc(ring, z.data(), z.size(), 2);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[1].res, -ECANCELED);
  EXPECT_EQ(cqes[1].flags, 0u);
  EXPECT_EQ(ring.notifications_posted(), 0u);
  EXPECT_FALSE(ring.log()[1].notification_expected);
}

TEST(FakeRingTest, FaultCanDropMoreAndNotification) {
  FakeRing ring;
  FakeFault fault;
  fault.opcode = IORING_OP_SEND_ZC;
  fault.error = -ENOMEM;
  fault.more = false;
  fault.notify = false;
  ring.AddFault(kFd, fault);
  const std::string z(20000, 'z');
  PrepSendZc(ring, z.data(), z.size(), 9);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 1u) << Describe(cqes);
  EXPECT_EQ(cqes[0].res, -ENOMEM);
  EXPECT_EQ(cqes[0].flags, 0u);
  EXPECT_EQ(ring.received(kFd), "");
}

TEST(FakeRingTest, HeldNotificationsDeliveredNewestFirst) {
  FakeRing ring;
  ring.set_hold_notifications(true);
  const std::string data(3000, 'q');
  for (uint64_t ud = 1; ud <= 3; ++ud) {
    PrepSendZc(ring, data.data(), data.size(), ud);
  }
  SubmitAll(ring);

  std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 3u) << Describe(cqes);
  for (const Completion& c : cqes) {
    EXPECT_EQ(c.flags, static_cast<uint32_t>(IORING_CQE_F_MORE));
  }
  EXPECT_EQ(ring.held_notifications(), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(ring.bytes_awaiting_notification(), 9000u);

  ring.DeliverAllNotifications(/*reverse=*/true);
  cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 3u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 3u);
  EXPECT_EQ(cqes[1].user_data, 2u);
  EXPECT_EQ(cqes[2].user_data, 1u);
  for (const Completion& c : cqes) {
    EXPECT_EQ(c.flags, static_cast<uint32_t>(IORING_CQE_F_NOTIF));
  }
  EXPECT_TRUE(ring.held_notifications().empty());
  EXPECT_EQ(ring.bytes_awaiting_notification(), 0u);
  EXPECT_TRUE(ring.violations().empty()) << Violations(ring);
}

TEST(FakeRingTest, BufferChangedBeforeNotificationIsAViolation) {
  FakeRing ring;
  ring.set_hold_notifications(true);
  std::string touched(4096, 'a');
  std::string untouched(4096, 'b');
  PrepSendZc(ring, touched.data(), touched.size(), 1);
  PrepSendZc(ring, untouched.data(), untouched.size(), 2);
  SubmitAll(ring);
  ReapAll(ring);
  ASSERT_EQ(ring.held_notifications().size(), 2u);

  touched[100] = 'X';           // reused before the kernel let go of it
  ring.DeliverNotification(1);  // user_data 2: untouched
  EXPECT_TRUE(ring.violations().empty()) << Violations(ring);
  ring.DeliverNotification(0);  // user_data 1
  ASSERT_EQ(ring.violations().size(), 1u) << Violations(ring);
  EXPECT_TRUE(absl::StrContains(ring.violations()[0], "user_data=1 "))
      << ring.violations()[0];
  EXPECT_TRUE(absl::StrContains(ring.violations()[0], "first at byte 100"))
      << ring.violations()[0];
  // What went on the wire is what the buffer held when it was sent.
  EXPECT_EQ(ring.received(kFd), std::string(4096, 'a') + untouched);
}

TEST(FakeRingTest, ZeroCopyUnsupportedOnSocket) {
  FakeRing ring;
  ring.SetZeroCopySupported(kFd, false);
  const std::string z(20000, 'z'), tail = "tail";
  PrepSendZc(ring, z.data(), z.size(), 1, IOSQE_IO_LINK);
  PrepSend(ring, tail, kSendFlags, 2);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 1u);
  EXPECT_EQ(cqes[0].res, -EOPNOTSUPP);
  EXPECT_EQ(cqes[0].flags, 0u);
  EXPECT_EQ(cqes[1].res, -ECANCELED);
  EXPECT_EQ(ring.notifications_posted(), 0u);
  EXPECT_EQ(ring.received(kFd), "");
}

// --- Capacity, blocked chains and cancellation ------------------------------

TEST(FakeRingTest, ZeroCapacityBlocksChainUntilCapacityIsAdded) {
  FakeRing ring;
  ring.SetCapacity(kFd, 0);
  const std::string a = "first", b = "second";
  PrepSend(ring, a, kSendFlags, 1, IOSQE_IO_LINK);
  PrepSend(ring, b, kSendFlags, 2);
  SubmitAll(ring);
  EXPECT_EQ(ring.cq_ready(), 0u);
  EXPECT_EQ(ring.blocked_ops(), 2u);
  EXPECT_EQ(ring.received(kFd), "");
  EXPECT_EQ(ring.SubmitAndWait(1, 0), -ETIME);  // nothing to wait for

  ring.AddCapacity(kFd, 1 << 20);
  EXPECT_EQ(ring.blocked_ops(), 0u);
  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].res, 5);
  EXPECT_EQ(cqes[1].res, 6);
  EXPECT_EQ(ring.received(kFd), "firstsecond");
  EXPECT_TRUE(ring.violations().empty()) << Violations(ring);
}

TEST(FakeRingTest, SecondChainOnBlockedFdIsAViolation) {
  FakeRing ring;
  ring.SetCapacity(kFd, 0);
  const std::string a = "first", b = "second", c = "other fd";
  PrepSend(ring, a, kSendFlags, 1);
  SubmitAll(ring);
  PrepSend(ring, c, kSendFlags, 3, 0, kOtherFd);  // another fd is fine
  SubmitAll(ring);
  EXPECT_TRUE(ring.violations().empty()) << Violations(ring);

  PrepSend(ring, b, kSendFlags, 2);
  SubmitAll(ring);
  ASSERT_EQ(ring.violations().size(), 1u) << Violations(ring);
  EXPECT_TRUE(absl::StrContains(ring.violations()[0], "still in flight"))
      << ring.violations()[0];
  EXPECT_EQ(ring.received(kOtherFd), "other fd");
}

TEST(FakeRingTest, AsyncCancelFdAllCancelsBlockedChains) {
  FakeRing ring;
  ring.SetCapacity(kFd, 0);
  const std::string a = "first", b = "second";
  PrepSend(ring, a, kSendFlags, 1, IOSQE_IO_LINK);
  PrepSend(ring, b, kSendFlags, 2);
  SubmitAll(ring);
  ASSERT_EQ(ring.blocked_ops(), 2u);

  io_uring_sqe* sqe = ring.GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_cancel_fd(sqe, kOtherFd, IORING_ASYNC_CANCEL_ALL);
  sqe->user_data = 98;
  sqe = ring.GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_cancel_fd(sqe, kFd, IORING_ASYNC_CANCEL_ALL);
  sqe->user_data = 99;
  SubmitAll(ring);

  EXPECT_EQ(ring.blocked_ops(), 0u);
  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 4u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 98u);
  EXPECT_EQ(cqes[0].res, -ENOENT);  // nothing blocked on the other fd
  EXPECT_EQ(cqes[1].user_data, 1u);
  EXPECT_EQ(cqes[1].res, -ECANCELED);
  EXPECT_EQ(cqes[2].user_data, 2u);
  EXPECT_EQ(cqes[2].res, -ECANCELED);
  EXPECT_EQ(cqes[3].user_data, 99u);
  EXPECT_EQ(cqes[3].res, 1);  // one request (the chain's head) cancelled
  EXPECT_EQ(ring.received(kFd), "");

  // Capacity now does not resurrect them.
  ring.AddCapacity(kFd, 100);
  EXPECT_EQ(ring.cq_ready(), 0u);
  EXPECT_EQ(ring.received(kFd), "");
}

// --- Submit results and the completion queue --------------------------------

TEST(FakeRingTest, OverflowIsKeptAndSubmitReturnsBusyWithSqesPending) {
  FakeRingOptions options;
  options.cq_entries = 2;
  FakeRing ring(options);
  for (uint64_t ud = 1; ud <= 4; ++ud) PrepNop(ring, ud);
  SubmitAll(ring);
  EXPECT_EQ(ring.cq_ready(), 2u);
  EXPECT_EQ(ring.cq_overflow(), 2u);

  PrepNop(ring, 5);
  EXPECT_EQ(ring.SubmitAndWait(0, 0), -EBUSY);
  EXPECT_EQ(ring.sq_pending(), 1u);
  EXPECT_EQ(ring.busy_returns(), 1u);
  EXPECT_EQ(ring.ops_submitted(IORING_OP_NOP), 4u);

  // Nothing is dropped (IORING_FEAT_NODROP), and the order holds.
  std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 4u) << Describe(cqes);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(cqes[i].user_data, i + 1);

  EXPECT_EQ(ring.SubmitAndWait(0, 0), 1);
  cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 1u);
  EXPECT_EQ(cqes[0].user_data, 5u);
}

TEST(FakeRingTest, InjectedSubmitResultIsReturnedOnce) {
  FakeRing ring;
  ring.InjectSubmitResult(-EINTR);
  const std::string a = "abc";
  PrepSend(ring, a, kSendFlags, 1);
  EXPECT_EQ(ring.SubmitAndWait(0, 0), -EINTR);
  EXPECT_EQ(ring.sq_pending(), 1u);
  EXPECT_EQ(ring.received(kFd), "");
  EXPECT_EQ(ring.SubmitAndWait(1, 0), 1);
  EXPECT_EQ(ring.received(kFd), "abc");
  EXPECT_EQ(ring.submit_calls(), 2u);
}

TEST(FakeRingTest, SqeLimitIsSqEntries) {
  FakeRingOptions options;
  options.sq_entries = 2;
  FakeRing ring(options);
  EXPECT_EQ(ring.SqSpaceLeft(), 2u);
  EXPECT_NE(ring.GetSqe(), nullptr);
  EXPECT_NE(ring.GetSqe(), nullptr);
  EXPECT_EQ(ring.SqSpaceLeft(), 0u);
  EXPECT_EQ(ring.GetSqe(), nullptr);
}

// --- Prep-time rejections
// -----------------------------------------------------

TEST(FakeRingTest, ZeroCopyOpcodeMissingFromRingFailsWholeChain) {
  FakeRingOptions options;
  options.features.send_zc = false;
  FakeRing ring(options);
  const std::string a = "abc", z(20000, 'z'), tail = "tail";
  const iovec iov = Iov(a);
  PrepWritev(ring, &iov, 1, 1, IOSQE_IO_LINK);
  PrepSendZc(ring, z.data(), z.size(), 2, IOSQE_IO_LINK);
  PrepSend(ring, tail, kSendFlags, 3);
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 3u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 1u);
  EXPECT_EQ(cqes[0].res, -ECANCELED);  // rejected before anything ran
  EXPECT_EQ(cqes[1].user_data, 2u);
  EXPECT_EQ(cqes[1].res, -EINVAL);
  EXPECT_EQ(cqes[1].flags, 0u);
  EXPECT_EQ(cqes[2].user_data, 3u);
  EXPECT_EQ(cqes[2].res, -ECANCELED);
  EXPECT_EQ(ring.received(kFd), "");
  EXPECT_EQ(ring.ops_executed(IORING_OP_WRITEV), 0u);
  EXPECT_EQ(ring.notifications_posted(), 0u);
}

TEST(FakeRingTest, CqeSkipSuccessOnZeroCopyIsRejected) {
  FakeRing ring;
  const std::string z(20000, 'z'), a = "abc";
  PrepSendZc(ring, z.data(), z.size(), 1, IOSQE_CQE_SKIP_SUCCESS);
  PrepSend(ring, a, kSendFlags, 2, IOSQE_CQE_SKIP_SUCCESS);  // fine on send
  SubmitAll(ring);

  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 1u) << Describe(cqes);
  EXPECT_EQ(cqes[0].user_data, 1u);
  EXPECT_EQ(cqes[0].res, -EINVAL);
  EXPECT_EQ(ring.received(kFd), "abc");
}

// --- Checks
// -------------------------------------------------------------------

TEST(FakeRingTest, EpipeWithoutNosignalIsAViolation) {
  FakeRing ring;
  ring.SetSocketError(kFd, -EPIPE);
  const std::string a = "abc";
  PrepSend(ring, a, MSG_NOSIGNAL, 1);
  SubmitAll(ring);
  EXPECT_TRUE(ring.violations().empty()) << Violations(ring);

  PrepSend(ring, a, MSG_WAITALL, 2);
  SubmitAll(ring);
  const std::vector<Completion> cqes = ReapAll(ring);
  ASSERT_EQ(cqes.size(), 2u) << Describe(cqes);
  EXPECT_EQ(cqes[0].res, -EPIPE);
  EXPECT_EQ(cqes[1].res, -EPIPE);
  ASSERT_EQ(ring.violations().size(), 1u) << Violations(ring);
  EXPECT_TRUE(absl::StrContains(ring.violations()[0], "SIGPIPE"))
      << ring.violations()[0];
  EXPECT_EQ(ring.received(kFd), "");
}

TEST(FakeRingTest, FixedBufferSendOutsideRegisteredBufferIsAViolation) {
  FakeRing ring;
  std::vector<unsigned char> region(8192, 'r');
  std::vector<unsigned char> elsewhere(4096, 'e');
  const iovec whole = {region.data(), region.size()};
  ASSERT_EQ(ring.RegisterBuffers({&whole, 1}), 0);

  io_uring_sqe* sqe = ring.GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc_fixed(sqe, kFd, region.data() + 4096, 4096, kSendFlags,
                              0, 0);
  sqe->user_data = 1;
  SubmitAll(ring);
  EXPECT_TRUE(ring.violations().empty()) << Violations(ring);
  EXPECT_EQ(ring.received(kFd), std::string(4096, 'r'));

  // Runs past the end of the region.
  sqe = ring.GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc_fixed(sqe, kFd, region.data() + 4096, 4097, kSendFlags,
                              0, 0);
  sqe->user_data = 2;
  // Not in the region at all.
  sqe = ring.GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc_fixed(sqe, kFd, elsewhere.data(), elsewhere.size(),
                              kSendFlags, 0, 0);
  sqe->user_data = 3;
  // A buffer index nobody registered.
  sqe = ring.GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc_fixed(sqe, kFd, region.data(), 16, kSendFlags, 0, 1);
  sqe->user_data = 4;
  SubmitAll(ring);

  EXPECT_EQ(ring.violations().size(), 3u) << Violations(ring);
  EXPECT_EQ(ring.received(kFd), std::string(4096, 'r'));
  std::vector<Completion> firsts;
  for (const Completion& c : ReapAll(ring)) {
    if (!(c.flags & IORING_CQE_F_NOTIF) && c.user_data > 1) firsts.push_back(c);
  }
  ASSERT_EQ(firsts.size(), 3u) << Describe(firsts);
  for (const Completion& c : firsts) EXPECT_EQ(c.res, -EFAULT) << c.user_data;
}

}  // namespace
}  // namespace zcplan
