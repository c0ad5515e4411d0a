// SPDX-License-Identifier: Apache-2.0
// Real io_uring through the `Ring` seam (uring/io_uring_ring.h), and the
// kernel behaviours the executor is built on (docs/kernel.md),
// checked on this machine's kernel over loopback TCP.
//
// Every test skips with the reason when io_uring is unavailable (e.g. the
// kernel.io_uring_disabled sysctl) or the kernel lacks the opcode it needs.

#include "zcplan/uring/io_uring_ring.h"

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/ring.h"

namespace zcplan {
namespace {

constexpr size_t K = 1024;

// (major, minor) of the running kernel, e.g. {6, 18}; {0, 0} if unknown.
std::pair<int, int> KernelVersion() {
  struct utsname u;
  int major = 0, minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) {
    return {0, 0};
  }
  return {major, minor};
}

bool KernelAtLeast(int major, int minor) {
  return KernelVersion() >= std::make_pair(major, minor);
}

std::string Describe(const Completion& c) {
  std::string flags;
  if (c.flags & IORING_CQE_F_MORE) flags += " MORE";
  if (c.flags & IORING_CQE_F_NOTIF) flags += " NOTIF";
  return absl::StrCat("{user_data=", c.user_data, " res=", c.res,
                      " flags=", c.flags, flags, "}");
}

std::string Describe(const std::vector<Completion>& cs) {
  std::string out;
  for (const Completion& c : cs) absl::StrAppend(&out, Describe(c), " ");
  return out;
}

// Submits what is queued and collects completions until `want` have arrived
// or `timeout` passes. With DEFER_TASKRUN completions are only posted while
// the ring is entered, which SubmitAndWait does.
std::vector<Completion> Collect(Ring& ring, size_t want,
                                absl::Duration timeout) {
  std::vector<Completion> out;
  const absl::Time deadline = absl::Now() + timeout;
  Completion buf[32];
  for (;;) {
    const size_t n = ring.Reap(absl::MakeSpan(buf));
    out.insert(out.end(), buf, buf + n);
    if (out.size() >= want) break;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    const int ret = ring.SubmitAndWait(1, absl::ToInt64Nanoseconds(left));
    if (ret < 0 && ret != -ETIME && ret != -EINTR) {
      ADD_FAILURE() << "SubmitAndWait: " << std::strerror(-ret);
      break;
    }
  }
  return out;
}

// Everything that arrives within `quiet` (to see that nothing more comes).
std::vector<Completion> CollectAll(Ring& ring, absl::Duration quiet) {
  return Collect(ring, SIZE_MAX, quiet);
}

// Reads exactly `n` bytes from `fd` (blocking, with a poll timeout so a bug
// cannot hang the test). Returns fewer on EOF, error or timeout.
std::vector<unsigned char> ReadBytes(
    int fd, size_t n, absl::Duration timeout = absl::Seconds(10)) {
  std::vector<unsigned char> out(n);
  size_t got = 0;
  const absl::Time deadline = absl::Now() + timeout;
  while (got < n) {
    struct pollfd p = {fd, POLLIN, 0};
    const int left_ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0) break;
    const ssize_t r = recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

std::vector<unsigned char> Pattern(uint64_t stream, size_t n) {
  std::vector<unsigned char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = PatternByte(stream, i);
  return v;
}

class IoUringRingTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A failing writev on a socket raises SIGPIPE in the submitting task
    // (IORING_OP_WRITEV cannot take MSG_NOSIGNAL); see
    // WritevOnShutDownSocketRaisesSigpipe.
    signal(SIGPIPE, SIG_IGN);
  }

  void SetUp() override { MakeRing(IoUringRingOptions()); }

  void MakeRing(const IoUringRingOptions& options) {
    absl::StatusOr<std::unique_ptr<Ring>> ring = MakeIoUringRing(options);
    if (!ring.ok()) {
      GTEST_SKIP() << IoUringSkipReason(ring.status());
    }
    ring_ = *std::move(ring);
    ring_->SqSpaceLeft();  // enables the ring on this thread and probes it
  }

  // Skips unless the ring can do SEND_ZC with IORING_SEND_ZC_REPORT_USAGE.
  bool NeedSendZc(bool report_usage) {
    if (!ring_->features().send_zc) return false;
    if (report_usage && !ring_->features().zc_report_usage) return false;
    return true;
  }

  std::unique_ptr<Ring> ring_;
};

#define ZC_OR_SKIP(report_usage)                                       \
  do {                                                                 \
    if (!NeedSendZc(report_usage)) {                                   \
      GTEST_SKIP() << "kernel " << KernelRelease() << " lacks SEND_ZC" \
                   << ((report_usage) ? " with REPORT_USAGE" : "");    \
    }                                                                  \
  } while (0)

// A SINGLE_ISSUER ring is made disabled: registering buffers works on it
// from the creating thread, the first thread that uses it binds it, and the
// kernel then refuses submissions from any other thread with -EEXIST.
TEST_F(IoUringRingTest, SingleIssuerRingBindsToTheThreadThatFirstUsesIt) {
  absl::StatusOr<std::unique_ptr<Ring>> made =
      MakeIoUringRing(IoUringRingOptions());
  ASSERT_TRUE(made.ok()) << made.status();
  Ring& ring = **made;
  if ((ring.features().setup_flags & IORING_SETUP_SINGLE_ISSUER) == 0) {
    GTEST_SKIP() << "kernel " << KernelRelease()
                 << " has no IORING_SETUP_SINGLE_ISSUER";
  }
  EXPECT_NE(ring.features().setup_flags & IORING_SETUP_R_DISABLED, 0u)
      << "made disabled";
  static char region[4096] __attribute__((aligned(4096)));
  const iovec whole = {region, sizeof(region)};
  EXPECT_EQ(ring.RegisterBuffers({&whole, 1}), 0) << "before it is enabled";
  int in_thread = -1;
  std::thread runner([&] {
    io_uring_sqe* sqe = ring.GetSqe();  // enables and binds
    if (sqe == nullptr) return;
    io_uring_prep_nop(sqe);
    sqe->user_data = 1;
    in_thread = ring.SubmitAndWait(1, 1000 * 1000 * 1000);
    Completion c[4];
    ring.Reap(c);
  });
  runner.join();
  EXPECT_EQ(in_thread, 1);
  EXPECT_EQ(ring.features().setup_flags & IORING_SETUP_R_DISABLED, 0u);
  io_uring_sqe* sqe = ring.GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  EXPECT_EQ(ring.SubmitAndWait(0, 0), -EEXIST) << "another thread";
}

TEST_F(IoUringRingTest, ProbesZeroCopyFeatures) {
  // MakeRing used the ring once: a SINGLE_ISSUER ring probes its flags then.
  const RingFeatures& f = ring_->features();
  std::printf(
      "kernel %s: send_zc=%d sendmsg_zc=%d zc_report_usage=%d "
      "sendmsg_zc_fixed=%d async_cancel_fd=%d sq=%u cq=%u setup_flags=%#x\n",
      KernelRelease().c_str(), f.send_zc, f.sendmsg_zc, f.zc_report_usage,
      f.sendmsg_zc_fixed, f.async_cancel_fd, f.sq_entries, f.cq_entries,
      f.setup_flags);
  EXPECT_GE(f.sq_entries, 256u);
  EXPECT_GE(f.cq_entries, f.sq_entries);
  if (KernelAtLeast(6, 15)) {
    EXPECT_TRUE(f.send_zc);
    EXPECT_TRUE(f.sendmsg_zc);
    EXPECT_TRUE(f.zc_report_usage);
    EXPECT_TRUE(f.sendmsg_zc_fixed);
    EXPECT_TRUE(f.async_cancel_fd);
    EXPECT_NE(f.setup_flags & IORING_SETUP_DEFER_TASKRUN, 0u);
  }
}

// A ring borrowed from the caller: the same features as a ring of its own
// (the flags probed on a small ring of the borrower's, so nothing lands on
// the caller's completion queue), SQE numbers that follow the caller's
// submits, and the caller's ring left alone when the borrower goes.
TEST_F(IoUringRingTest, BorrowedRingProbesWithoutTouchingTheCallersQueue) {
  io_uring ring;
  ASSERT_EQ(io_uring_queue_init(64, &ring, 0), 0);
  {
    absl::StatusOr<std::unique_ptr<Ring>> borrowed = BorrowIoUringRing(&ring);
    ASSERT_TRUE(borrowed.ok()) << borrowed.status();
    Ring& r = **borrowed;
    const RingFeatures& mine = ring_->features();
    EXPECT_EQ(r.features().send_zc, mine.send_zc);
    EXPECT_EQ(r.features().sendmsg_zc, mine.sendmsg_zc);
    EXPECT_EQ(r.features().zc_report_usage, mine.zc_report_usage);
    EXPECT_EQ(r.features().sendmsg_zc_fixed, mine.sendmsg_zc_fixed);
    EXPECT_EQ(r.features().async_cancel_fd, mine.async_cancel_fd);
    EXPECT_EQ(r.features().sq_entries, 64u);
    EXPECT_EQ(r.features().setup_flags, ring.flags);
    EXPECT_EQ(io_uring_cq_ready(&ring), 0u) << "a probe landed on the ring";
    EXPECT_EQ(io_uring_sq_ready(&ring), 0u);
    EXPECT_EQ(r.WatchFd(), -ENOTSUP);
    // The caller gets an SQE and submits it itself: the count of SQEs taken
    // follows the kernel's head, whoever submitted.
    const uint32_t obtained = r.SqesObtained();
    io_uring_sqe* sqe = r.GetSqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    sqe->user_data = 9;
    EXPECT_EQ(r.SqesObtained(), obtained + 1);
    EXPECT_LT(static_cast<int32_t>(r.SqesTaken() - (obtained + 1)), 0);
    EXPECT_GE(static_cast<int32_t>(obtained - r.SqesTaken()), 0)
        << "not taken before the submit";
    ASSERT_EQ(io_uring_submit(&ring), 1);
    EXPECT_LT(static_cast<int32_t>(obtained - r.SqesTaken()), 0)
        << "taken after the caller's submit";
    io_uring_cqe* cqe = nullptr;
    ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
    EXPECT_EQ(cqe->user_data, 9u);
    io_uring_cqe_seen(&ring, cqe);
  }
  // Still the caller's, and working.
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  EXPECT_EQ(io_uring_submit(&ring), 1);
  io_uring_queue_exit(&ring);
}

TEST_F(IoUringRingTest, BorrowRefusesRingsItCannotUse) {
  EXPECT_EQ(BorrowIoUringRing(nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  io_uring ring;
  if (io_uring_queue_init(8, &ring, IORING_SETUP_IOPOLL) != 0) {
    GTEST_SKIP() << "kernel " << KernelRelease() << " refused an IOPOLL ring";
  }
  absl::StatusOr<std::unique_ptr<Ring>> borrowed = BorrowIoUringRing(&ring);
  EXPECT_EQ(borrowed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(borrowed.status().message().find("IOPOLL"), std::string::npos)
      << borrowed.status();
  io_uring_queue_exit(&ring);
}

TEST_F(IoUringRingTest, NopRoundTrip) {
  const uint32_t space = ring_->SqSpaceLeft();
  EXPECT_EQ(space, ring_->features().sq_entries);
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  sqe->user_data = 42;
  EXPECT_EQ(ring_->SqSpaceLeft(), space - 1);

  const int submitted =
      ring_->SubmitAndWait(1, absl::ToInt64Nanoseconds(absl::Seconds(5)));
  EXPECT_EQ(submitted, 1);
  EXPECT_EQ(ring_->SqSpaceLeft(), space);
  std::vector<Completion> cs = Collect(*ring_, 1, absl::Seconds(5));
  ASSERT_EQ(cs.size(), 1u) << Describe(cs);
  EXPECT_EQ(cs[0].user_data, 42u);
  EXPECT_EQ(cs[0].res, 0);
  EXPECT_EQ(cs[0].flags & IORING_CQE_F_MORE, 0u);
  EXPECT_TRUE(CollectAll(*ring_, absl::Milliseconds(20)).empty());
}

TEST_F(IoUringRingTest, GetSqeReturnsNullWhenQueueIsFull) {
  IoUringRingOptions options;
  options.sq_entries = 4;
  options.cq_entries = 8;
  MakeRing(options);
  ASSERT_EQ(ring_->features().sq_entries, 4u);
  for (uint64_t i = 0; i < 4; ++i) {
    struct io_uring_sqe* sqe = ring_->GetSqe();
    ASSERT_NE(sqe, nullptr) << i;
    io_uring_prep_nop(sqe);
    sqe->user_data = i;
  }
  EXPECT_EQ(ring_->SqSpaceLeft(), 0u);
  EXPECT_EQ(ring_->GetSqe(), nullptr);
  EXPECT_EQ(ring_->SubmitAndWait(4, absl::ToInt64Nanoseconds(absl::Seconds(5))),
            4);
  std::vector<Completion> cs = Collect(*ring_, 4, absl::Seconds(5));
  ASSERT_EQ(cs.size(), 4u) << Describe(cs);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(cs[i].user_data, i);
}

TEST_F(IoUringRingTest, ReapCopiesAtMostTheSpanAndKeepsTheRest) {
  for (uint64_t i = 0; i < 3; ++i) {
    struct io_uring_sqe* sqe = ring_->GetSqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    sqe->user_data = 100 + i;
  }
  ASSERT_EQ(ring_->SubmitAndWait(3, absl::ToInt64Nanoseconds(absl::Seconds(5))),
            3);
  Completion one[1];
  ASSERT_EQ(ring_->Reap(absl::MakeSpan(one)), 1u);
  EXPECT_EQ(one[0].user_data, 100u);
  std::vector<Completion> rest = Collect(*ring_, 2, absl::Seconds(5));
  ASSERT_EQ(rest.size(), 2u) << Describe(rest);
  EXPECT_EQ(rest[0].user_data, 101u);
  EXPECT_EQ(rest[1].user_data, 102u);
}

TEST_F(IoUringRingTest, WaitWithNothingInFlightTimesOut) {
  const int ret =
      ring_->SubmitAndWait(1, absl::ToInt64Nanoseconds(absl::Milliseconds(20)));
  EXPECT_EQ(ret, -ETIME);
  // wait_nr 0 never blocks.
  EXPECT_EQ(ring_->SubmitAndWait(0, -1), 0);
}

TEST_F(IoUringRingTest, SendRoundTripOnLoopback) {
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const std::vector<unsigned char> data = Pattern(1, 3000);
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send(sqe, pair->client, data.data(), data.size(),
                     MSG_WAITALL | MSG_NOSIGNAL);
  sqe->user_data = 7;
  std::vector<Completion> cs = Collect(*ring_, 1, absl::Seconds(5));
  ASSERT_EQ(cs.size(), 1u) << Describe(cs);
  EXPECT_EQ(cs[0].user_data, 7u);
  EXPECT_EQ(cs[0].res, static_cast<int32_t>(data.size()));
  EXPECT_EQ(ReadBytes(pair->server, data.size()), data);
}

// A zero-copy send posts its result with F_MORE, then a notification with the
// same user_data. Loopback always copies on the receiving side
// (skb_orphan_frags_rx), so with REPORT_USAGE the notification says so.
TEST_F(IoUringRingTest, SendZcPostsMoreThenCopiedNotificationOnLoopback) {
  ZC_OR_SKIP(/*report_usage=*/true);
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const std::vector<unsigned char> data = Pattern(2, 64 * K);
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc(sqe, pair->client, data.data(), data.size(),
                        MSG_WAITALL | MSG_NOSIGNAL, 0);
  sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
  sqe->user_data = 0xABCDEF;
  std::vector<Completion> cs = Collect(*ring_, 1, absl::Seconds(5));
  EXPECT_EQ(ReadBytes(pair->server, data.size()), data);
  std::vector<Completion> more = Collect(*ring_, 1, absl::Seconds(5));
  cs.insert(cs.end(), more.begin(), more.end());
  ASSERT_EQ(cs.size(), 2u) << Describe(cs);
  EXPECT_EQ(cs[0].user_data, 0xABCDEFu);
  EXPECT_EQ(cs[0].res, static_cast<int32_t>(data.size()));
  EXPECT_NE(cs[0].flags & IORING_CQE_F_MORE, 0u) << Describe(cs[0]);
  EXPECT_EQ(cs[0].flags & IORING_CQE_F_NOTIF, 0u) << Describe(cs[0]);
  EXPECT_EQ(cs[1].user_data, 0xABCDEFu);
  EXPECT_NE(cs[1].flags & IORING_CQE_F_NOTIF, 0u) << Describe(cs[1]);
  EXPECT_EQ(cs[1].flags & IORING_CQE_F_MORE, 0u) << Describe(cs[1]);
  EXPECT_NE(static_cast<uint32_t>(cs[1].res) & IORING_NOTIF_USAGE_ZC_COPIED, 0u)
      << Describe(cs[1]);
  EXPECT_TRUE(CollectAll(*ring_, absl::Milliseconds(20)).empty());
}

// SENDMSG_ZC with several iovecs, one of them on a registered buffer where
// the kernel supports that (6.15+), and SEND_ZC on a registered buffer.
TEST_F(IoUringRingTest, ZeroCopyOnRegisteredBuffer) {
  ZC_OR_SKIP(/*report_usage=*/false);
  constexpr size_t kRegion = 256 * K;
  void* mem = mmap(nullptr, kRegion, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  std::unique_ptr<void, std::function<void(void*)>> unmap(
      mem, [](void* p) { munmap(p, kRegion); });
  unsigned char* region = static_cast<unsigned char*>(mem);
  for (size_t i = 0; i < kRegion; ++i) region[i] = PatternByte(3, i);
  const struct iovec reg = {region, kRegion};
  const int registered = ring_->RegisterBuffers(absl::MakeConstSpan(&reg, 1));
  ASSERT_EQ(registered, 0) << std::strerror(-registered);

  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  // SEND_ZC on bytes [0, 64K) of the region.
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc_fixed(sqe, pair->client, region, 64 * K,
                              MSG_WAITALL | MSG_NOSIGNAL, 0, 0);
  sqe->user_data = 1;
  sqe->flags |= IOSQE_IO_LINK;
  // SENDMSG_ZC on [64K, 96K) and [96K + 100, 160K): two iovecs in the region.
  struct iovec iov[2] = {{region + 64 * K, 32 * K},
                         {region + 96 * K + 100, 64 * K - 100}};
  struct msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  const bool fixed_msg = ring_->features().sendmsg_zc_fixed;
  const bool have_msg = ring_->features().sendmsg_zc;
  if (have_msg) {
    sqe = ring_->GetSqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_sendmsg_zc(sqe, pair->client, &msg,
                             MSG_WAITALL | MSG_NOSIGNAL);
    if (fixed_msg) {
      sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
      sqe->buf_index = 0;
    }
    sqe->user_data = 2;
  } else {
    sqe->flags &= ~IOSQE_IO_LINK;
  }
  const size_t total = have_msg ? 160 * K - 100 : 64 * K;
  std::vector<Completion> cs =
      Collect(*ring_, have_msg ? 2 : 1, absl::Seconds(5));
  std::vector<unsigned char> got = ReadBytes(pair->server, total);
  std::vector<Completion> notifs =
      Collect(*ring_, have_msg ? 2 : 1, absl::Seconds(5));
  cs.insert(cs.end(), notifs.begin(), notifs.end());
  ASSERT_EQ(cs.size(), have_msg ? 4u : 2u) << Describe(cs);
  int results = 0, notifications = 0;
  for (const Completion& c : cs) {
    if (c.flags & IORING_CQE_F_NOTIF) {
      ++notifications;
      continue;
    }
    ++results;
    EXPECT_NE(c.flags & IORING_CQE_F_MORE, 0u) << Describe(c);
    EXPECT_EQ(c.res, c.user_data == 1 ? 64 * 1024 : 96 * 1024 - 100)
        << Describe(c);
  }
  EXPECT_EQ(results, have_msg ? 2 : 1);
  EXPECT_EQ(notifications, results);
  std::vector<unsigned char> want(region, region + 96 * K);
  if (have_msg)
    want.insert(want.end(), region + 96 * K + 100, region + 160 * K);
  EXPECT_EQ(got, want);
}

// Zero-copy needs a socket that supports it: AF_UNIX refuses with
// -EOPNOTSUPP. Measured on 6.18: the failed result still carries F_MORE and
// a notification follows (the stable contract: F_MORE means one more CQE for
// that user_data).
TEST_F(IoUringRingTest, ZeroCopyOnUnixSocketIsNotSupported) {
  ZC_OR_SKIP(/*report_usage=*/false);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const std::vector<unsigned char> data = Pattern(4, 8 * K);
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc(sqe, sv[0], data.data(), data.size(),
                        MSG_WAITALL | MSG_NOSIGNAL, 0);
  sqe->user_data = 1;
  struct iovec iov = {const_cast<unsigned char*>(data.data()), data.size()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (ring_->features().sendmsg_zc) {
    sqe = ring_->GetSqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_sendmsg_zc(sqe, sv[0], &msg, MSG_WAITALL | MSG_NOSIGNAL);
    sqe->user_data = 2;
  }
  std::vector<Completion> cs = CollectAll(*ring_, absl::Milliseconds(300));
  std::printf("zero-copy on AF_UNIX: %s\n", Describe(cs).c_str());
  int results = 0;
  for (uint64_t ud = 1; ud <= (ring_->features().sendmsg_zc ? 2u : 1u); ++ud) {
    std::vector<Completion> mine;
    for (const Completion& c : cs) {
      if (c.user_data == ud) mine.push_back(c);
    }
    ASSERT_FALSE(mine.empty()) << "no completion for " << ud;
    ++results;
    EXPECT_EQ(mine[0].res, -EOPNOTSUPP) << Describe(mine[0]);
    EXPECT_EQ(mine[0].flags & IORING_CQE_F_NOTIF, 0u);
    if (mine[0].flags & IORING_CQE_F_MORE) {
      ASSERT_EQ(mine.size(), 2u) << Describe(mine);
      EXPECT_NE(mine[1].flags & IORING_CQE_F_NOTIF, 0u);
    } else {
      EXPECT_EQ(mine.size(), 1u) << Describe(mine);
    }
  }
  EXPECT_GT(results, 0);
  // Nothing was sent.
  struct pollfd p = {sv[1], POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);
  close(sv[0]);
  close(sv[1]);
}

// IORING_OP_WRITEV cannot take MSG_WAITALL: with a small send buffer and a
// peer that does not read, it writes what fits and completes short. A short
// result fails the link, so the rest of the chain completes -ECANCELED.
TEST_F(IoUringRingTest, ShortWritevCancelsRestOfChain) {
  absl::StatusOr<TcpPair> pair = MakeTcpPair(4 * K, 4 * K);
  ASSERT_TRUE(pair.ok()) << pair.status();
  constexpr size_t kBig = 4 * K * K;  // far more than both socket buffers
  std::vector<unsigned char> big(kBig, 0x5A);
  std::vector<unsigned char> small(100, 0xA5);
  struct iovec iov = {big.data(), big.size()};
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_writev(sqe, pair->client, &iov, 1, 0);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = 1;
  sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send(sqe, pair->client, small.data(), small.size(),
                     MSG_WAITALL | MSG_NOSIGNAL);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = 2;
  sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  struct iovec iov2 = {small.data(), small.size()};
  io_uring_prep_writev(sqe, pair->client, &iov2, 1, 0);
  sqe->user_data = 3;

  std::vector<Completion> cs = Collect(*ring_, 3, absl::Seconds(5));
  std::printf("short writev chain: %s\n", Describe(cs).c_str());
  ASSERT_EQ(cs.size(), 3u) << Describe(cs);
  EXPECT_EQ(cs[0].user_data, 1u);
  EXPECT_GT(cs[0].res, 0);
  EXPECT_LT(cs[0].res, static_cast<int32_t>(kBig));
  EXPECT_EQ(cs[1].user_data, 2u);
  EXPECT_EQ(cs[1].res, -ECANCELED);
  EXPECT_EQ(cs[2].user_data, 3u);
  EXPECT_EQ(cs[2].res, -ECANCELED);
}

// A failed op (writev on a socket shut down for writing: -EPIPE) cancels the
// rest of its chain. Measured on 6.18 (docs/kernel.md): a cancelled
// zero-copy op posts -ECANCELED WITHOUT F_MORE and then STILL posts a
// notification with the same user_data (with REPORT_USAGE, flagged as copied:
// nothing was sent zero-copy). liburing issue 1462 reports error paths with
// no notification at all, so only "no F_MORE" is the contract; the late
// notification is asserted only on kernels where it was measured (6.15+).
// A zero-copy op that fails by itself (-EPIPE) does carry F_MORE.
TEST_F(IoUringRingTest, CancelledZeroCopyOpPostsNoMoreButLateNotification) {
  ZC_OR_SKIP(/*report_usage=*/false);
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_EQ(shutdown(pair->client, SHUT_WR), 0);
  std::vector<unsigned char> data(8 * K, 0x11);
  struct iovec iov = {data.data(), data.size()};
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_writev(sqe, pair->client, &iov, 1, 0);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = 1;
  sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc(sqe, pair->client, data.data(), data.size(),
                        MSG_WAITALL | MSG_NOSIGNAL, 0);
  if (ring_->features().zc_report_usage) {
    sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
  }
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = 2;
  sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc(sqe, pair->client, data.data(), data.size(),
                        MSG_WAITALL | MSG_NOSIGNAL, 0);
  sqe->user_data = 3;
  // Not linked to the chain: fails by itself.
  sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send_zc(sqe, pair->client, data.data(), data.size(),
                        MSG_WAITALL | MSG_NOSIGNAL, 0);
  sqe->user_data = 4;

  std::vector<Completion> cs = Collect(*ring_, 3 + 2, absl::Seconds(2));
  std::vector<Completion> late = CollectAll(*ring_, absl::Milliseconds(200));
  cs.insert(cs.end(), late.begin(), late.end());
  std::printf("cancelled zero-copy chain: %s\n", Describe(cs).c_str());

  auto of = [&](uint64_t ud) {
    std::vector<Completion> mine;
    for (const Completion& c : cs) {
      if (c.user_data == ud) mine.push_back(c);
    }
    return mine;
  };
  const std::vector<Completion> writev = of(1);
  ASSERT_EQ(writev.size(), 1u) << Describe(cs);
  EXPECT_EQ(writev[0].res, -EPIPE);

  for (uint64_t ud : {2u, 3u}) {
    const std::vector<Completion> mine = of(ud);
    ASSERT_FALSE(mine.empty()) << "no completion for " << ud;
    EXPECT_EQ(mine[0].res, -ECANCELED) << Describe(mine[0]);
    EXPECT_EQ(mine[0].flags & (IORING_CQE_F_MORE | IORING_CQE_F_NOTIF), 0u)
        << "a cancelled zero-copy op posts no F_MORE: " << Describe(mine[0]);
    EXPECT_LE(mine.size(), 2u) << Describe(mine);
    if (mine.size() == 2) {
      EXPECT_NE(mine[1].flags & IORING_CQE_F_NOTIF, 0u) << Describe(mine[1]);
      if (ud == 2 && ring_->features().zc_report_usage) {
        EXPECT_NE(
            static_cast<uint32_t>(mine[1].res) & IORING_NOTIF_USAGE_ZC_COPIED,
            0u)
            << Describe(mine[1]);
      }
    }
    if (KernelAtLeast(6, 15)) {
      EXPECT_EQ(mine.size(), 2u)
          << "measured on 6.18: a late notification follows -ECANCELED; "
          << Describe(mine);
    }
  }

  const std::vector<Completion> alone = of(4);
  ASSERT_EQ(alone.size(), 2u) << Describe(cs);
  EXPECT_EQ(alone[0].res, -EPIPE);
  EXPECT_NE(alone[0].flags & IORING_CQE_F_MORE, 0u);
  EXPECT_NE(alone[1].flags & IORING_CQE_F_NOTIF, 0u);
}

// Why the executor's users must ignore SIGPIPE (or the executor must use
// only send ops with MSG_NOSIGNAL): a writev that fails with -EPIPE raises
// SIGPIPE in the task that submitted it; a send with MSG_NOSIGNAL does not.
TEST_F(IoUringRingTest, WritevOnShutDownSocketRaisesSigpipe) {
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_EQ(shutdown(pair->client, SHUT_WR), 0);
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &pipe_set, &old), 0);
  // An ignored signal is discarded, not left pending: use the default
  // disposition while it is blocked.
  signal(SIGPIPE, SIG_DFL);
  auto take_pending = [&] {
    struct timespec zero = {0, 0};
    bool taken = false;
    while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) taken = true;
    return taken;
  };
  take_pending();

  std::vector<unsigned char> data(100, 1);
  struct io_uring_sqe* sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_send(sqe, pair->client, data.data(), data.size(), MSG_NOSIGNAL);
  sqe->user_data = 1;
  const std::vector<Completion> send = Collect(*ring_, 1, absl::Seconds(5));
  const bool raised_by_send = take_pending();

  struct iovec iov = {data.data(), data.size()};
  sqe = ring_->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_writev(sqe, pair->client, &iov, 1, 0);
  sqe->user_data = 2;
  const std::vector<Completion> writev = Collect(*ring_, 1, absl::Seconds(5));
  const bool raised_by_writev = take_pending();

  signal(SIGPIPE, SIG_IGN);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);

  ASSERT_EQ(send.size(), 1u) << Describe(send);
  EXPECT_EQ(send[0].res, -EPIPE);
  EXPECT_FALSE(raised_by_send);
  ASSERT_EQ(writev.size(), 1u) << Describe(writev);
  EXPECT_EQ(writev[0].res, -EPIPE);
  EXPECT_TRUE(raised_by_writev);
}

}  // namespace
}  // namespace zcplan
