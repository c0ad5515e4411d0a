// SPDX-License-Identifier: Apache-2.0
// Deterministic fault tests of the executor through the ring seam: a
// state-based fake ring (fake_ring.h) runs the SQEs against in-memory sockets
// and plays back each kernel behaviour of docs/kernel.md.
//
// Every test checks the same three invariants besides its own: each socket
// received exactly the bytes enqueued on it, in order (or a prefix of them for
// a connection that failed); every buffer was released exactly once; and the
// fake saw no violation (a zero-copy buffer changed before its notification:
// the ledger poisons each buffer when it is released, so releasing one too
// early shows up; a second chain on a socket with one in flight; SIGPIPE).

#include <liburing.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/fake_executor_fixture.h"
#include "zcplan/tests/uring/fake_ring.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/prepared_message.h"

namespace zcplan {
namespace {

constexpr size_t K = 1024;

class ExecutorFaultTest : public FakeExecutorFixture {
 protected:
  // Makes the executor over a fake ring, releasing into `ledger_` unless
  // `options` sets on_release_batch. Call once per test, first.
  void Make(FakeRingOptions ring_options = FakeRingOptions(),
            ExecutorOptions options = ExecutorOptions()) {
    if (!options.on_release_batch) options.on_release = ledger_.callback();
    MakeExecutor(ring_options, std::move(options));
  }

  // Enqueues one buffer per size, filled with the connection's pattern.
  // Returns the buffers' tokens.
  // With `batch_enqueue_` set, all of them in one batch Enqueue.
  std::vector<uint64_t> Send(ConnectionId id,
                             const std::vector<size_t>& sizes) {
    std::vector<uint64_t> tokens;
    std::vector<iovec> iovs;
    std::string& expected = expected_[id.value];
    for (size_t size : sizes) {
      auto buffer = std::make_unique<std::vector<unsigned char>>(size);
      for (size_t i = 0; i < size; ++i) {
        (*buffer)[i] = PatternByte(id.value, expected.size() + i);
      }
      expected.append(reinterpret_cast<const char*>(buffer->data()), size);
      const uint64_t token = ledger_.Expect(id, buffer->data(), size);
      if (!batch_enqueue_) {
        const absl::Status s =
            executor_->Enqueue(id, buffer->data(), size, token);
        EXPECT_TRUE(s.ok()) << s;
      }
      iovs.push_back({buffer->data(), size});
      buffers_[token] = std::move(buffer);
      tokens.push_back(token);
    }
    if (batch_enqueue_) {
      const absl::Status s = executor_->Enqueue(id, iovs, tokens);
      EXPECT_TRUE(s.ok()) << s;
    }
    return tokens;
  }

  bool batch_enqueue_ = false;

  // Two stalled connections (the fake holds every notification), one marked
  // reset_on_shutdown, then `Shutdown(timeout)`: only the marked one is
  // reset, its buffers come back as sent, and the other's are handed back
  // as KernelMayStillRead.
  void ExpectShutdownResetsMarkedOnly(absl::Duration timeout);

  // Makes the executor with a 256 KiB notification cap and two zero-copy
  // connections: `a`, whose peer reads nothing, holding a blocked chain of
  // `stalled_bytes`, and `b`, with nothing queued yet.
  std::pair<ConnectionId, ConnectionId> StalledBesideLive(
      uint64_t stalled_bytes) {
    ExecutorOptions eo;
    eo.max_bytes_awaiting_notification = 256 * K;
    Make(FakeRingOptions(), eo);
    const ConnectionId a = Attach(Options(0));
    const ConnectionId b = Attach(Options(0));
    ring_->SetCapacity(Fd(a), 0);
    Send(a, {static_cast<size_t>(stalled_bytes)});
    Pump(3);
    return {a, b};
  }

  // RLIMIT_MEMLOCK, or a zero limit when it is infinite or under 1 MiB (the
  // cap tests then skip).
  static rlimit FiniteMemlockLimit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 ||
        limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur < 1024 * K) {
      return rlimit{};
    }
    return limit;
  }

  // The next `faults` SEND_ZC ops on `c` fail -ENOMEM (no F_MORE, no
  // notification), as the kernel's memlock charge makes them; then `chains`
  // chains of one 32 KiB buffer, so one SEND_ZC each, go out, each drained.
  void SendEnomemChains(ConnectionId c, int faults, int chains) {
    FakeFault f{IORING_OP_SEND_ZC, -1, -ENOMEM};
    f.more = false;
    f.notify = false;
    for (int i = 0; i < faults; ++i) ring_->AddFault(Fd(c), f);
    for (int i = 0; i < chains; ++i) {
      Send(c, {32 * K});
      Pump();
    }
  }

  const unsigned char* Data(uint64_t token) { return buffers_[token]->data(); }

  // Ops submitted of each kind, from the fake's log.
  size_t Submitted(int opcode) { return ring_->ops_submitted(opcode); }

  std::map<uint64_t, std::unique_ptr<std::vector<unsigned char>>> buffers_;
};

const std::vector<size_t> kExample = {4 * K, 4 * K, 16 * K, 32 * K, 2 * K};

void ExecutorFaultTest::ExpectShutdownResetsMarkedOnly(absl::Duration timeout) {
  Make();
  ConnectionOptions resettable = Options();
  resettable.reset_on_shutdown = true;
  const ConnectionId reset = Attach(resettable);
  const ConnectionId kept = Attach();
  ring_->set_hold_notifications(true);  // neither peer acknowledges
  const std::vector<uint64_t> reset_tokens = Send(reset, kExample);
  const std::vector<uint64_t> kept_tokens = Send(kept, kExample);
  Pump(5);
  const absl::Status s = executor_->Shutdown(timeout);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "2 buffer(s)")) << s;
  EXPECT_EQ(ring_->resets(Fd(reset)), 1);
  EXPECT_EQ(ring_->resets(Fd(kept)), 0) << "not marked reset_on_shutdown";
  // The reset purged the queue: its zero-copy buffers came back, as sent.
  for (uint64_t t : reset_tokens) {
    EXPECT_FALSE(KernelMayStillRead(ledger_.Find(t)->status))
        << t << ": " << ledger_.Find(t)->status;
  }
  EXPECT_TRUE(KernelMayStillRead(ledger_.Find(kept_tokens[2])->status));
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  ring_->DeliverAllNotifications();
  CheckNoViolations();
  EXPECT_EQ(executor_->stats().totals.buffers_kernel_may_read, 2u);
}

// --- Encoding ----------------------------------------------------------------

TEST_F(ExecutorFaultTest, EncodesTheExampleAsOneLinkedChainWithWaitall) {
  Make();
  const ConnectionId c = Attach();
  Send(c, kExample);
  ASSERT_TRUE(executor_->Flush().ok());
  const std::vector<SqeRecord>& log = ring_->log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].opcode, IORING_OP_WRITEV);
  EXPECT_EQ(log[1].opcode, IORING_OP_SENDMSG_ZC);
  EXPECT_EQ(log[2].opcode, IORING_OP_SEND);
  EXPECT_EQ(log[0].bytes_requested, 8 * K);
  EXPECT_EQ(log[1].bytes_requested, 48 * K);
  EXPECT_EQ(log[2].bytes_requested, 2 * K);
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].submit_call, log[0].submit_call) << "one submit call";
    EXPECT_EQ(log[i].chain, log[0].chain);
    EXPECT_EQ((log[i].flags & IOSQE_IO_LINK) != 0, i + 1 < log.size()) << i;
    EXPECT_EQ(log[i].fd, Fd(c));
  }
  EXPECT_EQ(log[0].msg_flags, 0u) << "writev takes RWF_* flags, not MSG_*";
  for (int i : {1, 2}) {
    EXPECT_EQ(log[i].msg_flags, unsigned{MSG_WAITALL | MSG_NOSIGNAL}) << i;
  }
  EXPECT_EQ(log[1].ioprio, IORING_SEND_ZC_REPORT_USAGE);
  EXPECT_NE(log[0].user_data, log[1].user_data);
  EXPECT_NE(log[1].user_data, log[2].user_data);
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kWritev)], 1u);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kSendmsgZc)], 1u);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kSend)], 1u);
  EXPECT_EQ(s.bytes_copied, 10 * K);
  EXPECT_EQ(s.bytes_zero_copy, 48 * K);
  EXPECT_EQ(s.notifications, 1u);
  EXPECT_EQ(s.buffers_released, 5u);
}

TEST_F(ExecutorFaultTest, SendmsgCopyOpCarriesWaitall) {
  Make();
  const ConnectionId c = Attach(Options(16 * K, CopyOp::kSendmsg));
  Send(c, {100, 200, 300});
  Pump();
  ASSERT_EQ(ring_->log().size(), 1u);
  EXPECT_EQ(ring_->log()[0].opcode, IORING_OP_SENDMSG);
  EXPECT_EQ(ring_->log()[0].msg_flags, unsigned{MSG_WAITALL | MSG_NOSIGNAL});
  ExpectExact(c);
}

TEST_F(ExecutorFaultTest, NoUsageReportWhereTheKernelLacksIt) {
  FakeRingOptions ro;
  ro.features.zc_report_usage = false;
  Make(ro);
  const ConnectionId c = Attach();
  Send(c, {64 * K});
  Pump();
  ASSERT_EQ(ring_->log().size(), 1u);
  EXPECT_EQ(ring_->log()[0].opcode, IORING_OP_SEND_ZC);
  EXPECT_EQ(ring_->log()[0].ioprio, 0) << "the kernel would reject the flag";
  ExpectExact(c);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, WithoutZeroCopyOpcodesEverythingGoesByCopy) {
  FakeRingOptions ro;
  ro.features.send_zc = false;
  ro.features.sendmsg_zc = false;
  Make(ro);
  const ConnectionId c = Attach();
  EXPECT_FALSE(executor_->ZeroCopyEnabled(c));
  Send(c, kExample);
  Pump();
  EXPECT_EQ(Submitted(IORING_OP_SEND_ZC) + Submitted(IORING_OP_SENDMSG_ZC), 0u);
  ExpectExact(c);
}

// --- Short transfers ---------------------------------------------------------

TEST_F(ExecutorFaultTest, ShortWritevCancelsTheChainAndResumesMidBuffer) {
  Make();
  const ConnectionId c = Attach();
  // 5000 bytes: all of the first 4K buffer and 904 bytes of the second.
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_WRITEV, 5000});
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  const std::vector<SqeRecord>& log = ring_->log();
  ASSERT_GE(log.size(), 4u);
  EXPECT_EQ(log[0].res, 5000);
  EXPECT_EQ(log[1].res, -ECANCELED);
  EXPECT_EQ(log[2].res, -ECANCELED);
  // The resumed chain starts at the exact byte: 904 bytes into buffer 1.
  EXPECT_EQ(log[3].chain, log[0].chain + 1);
  ASSERT_FALSE(log[3].iovs.empty());
  EXPECT_EQ(log[3].iovs[0].iov_base, Data(tokens[1]) + 904);
  EXPECT_EQ(log[3].iovs[0].iov_len, 4 * K - 904);
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.short_sends, 1u);
  EXPECT_EQ(s.chains_resumed, 1u);
  EXPECT_EQ(s.cancelled_ops, 2u);
  EXPECT_EQ(s.buffers_released, 5u);
  // The cancelled SENDMSG_ZC had no F_MORE, and its late notification was
  // ignored.
  EXPECT_EQ(log[1].cqe_flags & IORING_CQE_F_MORE, 0u);
  EXPECT_EQ(executor_->stats().totals.stray_notifications, 1u);
}

TEST_F(ExecutorFaultTest,
       ShortZeroCopySendResumesAndKeepsBuffersUntilNotified) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  // The SENDMSG_ZC of [16K, 32K] gives up after 20000 bytes (MSG_WAITALL
  // retried and then hit an error): 3616 bytes into the 32K buffer.
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_SENDMSG_ZC, 20000, -EAGAIN});
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump(50);
  ExpectExact(c);
  const std::vector<SqeRecord>& log = ring_->log();
  ASSERT_GE(log.size(), 4u);
  EXPECT_EQ(log[1].res, 20000);
  EXPECT_NE(log[1].cqe_flags & IORING_CQE_F_MORE, 0u);
  EXPECT_EQ(log[2].res, -ECANCELED);
  EXPECT_EQ(log[3].iovs[0].iov_base, Data(tokens[3]) + 20000 - 16 * K);
  // Copies are released; the zero-copy buffers wait for notifications.
  EXPECT_EQ(Releases(tokens[0]), 1);
  EXPECT_EQ(Releases(tokens[1]), 1);
  EXPECT_EQ(Releases(tokens[4]), 1);
  EXPECT_EQ(Releases(tokens[2]), 0);
  EXPECT_EQ(Releases(tokens[3]), 0);
  EXPECT_FALSE(executor_->Idle(c));
  ring_->DeliverAllNotifications(/*reverse=*/true);
  Pump();
  EXPECT_EQ(Releases(tokens[2]), 1);
  EXPECT_EQ(Releases(tokens[3]), 1);
  EXPECT_TRUE(executor_->Idle(c));
  CheckNoViolations();
  EXPECT_EQ(executor_->connection_stats(c)->chains_resumed, 1u);
}

TEST_F(ExecutorFaultTest, ShortSendWithoutProgressIsRetried) {
  Make();
  const ConnectionId c = Attach();
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_SEND, 0});
  Send(c, {1000});
  Pump();
  ExpectExact(c);
  EXPECT_TRUE(executor_->ConnectionError(c).ok());
  EXPECT_EQ(Submitted(IORING_OP_SEND), 2u);
}

TEST_F(ExecutorFaultTest, SlowReaderMakesShortSendsAndTheStreamStaysExact) {
  Make();
  const ConnectionId c = Attach();
  ring_->SetCapacity(Fd(c), 10000);
  std::vector<size_t> sizes;
  for (int i = 0; i < 40; ++i) sizes.push_back((i % 5 + 1) * 3 * K + i);
  Send(c, sizes);
  for (int round = 0; round < 2000 && !executor_->Idle(c); ++round) {
    Pump(3);
    ring_->AddCapacity(Fd(c), 7000);
  }
  ExpectExact(c);
  CheckNoViolations();
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_GT(s.short_sends, 5u);
  EXPECT_GT(s.chains_resumed, 5u);
}

// --- Notifications -----------------------------------------------------------

TEST_F(ExecutorFaultTest, NotificationsInAnyOrderReleaseEachBufferOnce) {
  Make();
  ring_->set_hold_notifications(true);
  std::vector<ConnectionId> conns;
  std::vector<uint64_t> zc_tokens;
  for (int i = 0; i < 3; ++i) {
    conns.push_back(Attach());
    for (int round = 0; round < 4; ++round) {
      const std::vector<uint64_t> t = Send(conns.back(), kExample);
      zc_tokens.push_back(t[2]);
      zc_tokens.push_back(t[3]);
    }
  }
  Pump(100);
  for (ConnectionId c : conns) ExpectExact(c);
  for (uint64_t t : zc_tokens) EXPECT_EQ(Releases(t), 0) << t;
  // Deliver in a scrambled order (newest first, then the rest from the
  // middle out), one at a time: each delivery releases something, nothing
  // twice.
  std::mt19937 rng(7);
  while (!ring_->held_notifications().empty()) {
    const size_t before = ledger_.released();
    const size_t n = ring_->held_notifications().size();
    ring_->DeliverNotification(
        std::uniform_int_distribution<size_t>(0, n - 1)(rng));
    Pump(1);
    EXPECT_GT(ledger_.released(), before);
  }
  for (uint64_t t : zc_tokens) EXPECT_EQ(Releases(t), 1) << t;
  EXPECT_TRUE(AllIdle());
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, LateNotificationOfACancelledOpCannotHitAReusedSlot) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  // A short writev cancels the chain's SENDMSG_ZC: -ECANCELED without F_MORE,
  // and (as on 6.18) a notification that we hold back.
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_WRITEV, 100});
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump(20);
  ExpectExact(c);
  const std::vector<SqeRecord>& log = ring_->log();
  ASSERT_EQ(log[1].opcode, IORING_OP_SENDMSG_ZC);
  ASSERT_EQ(log[1].res, -ECANCELED);
  // The resumed chain's SENDMSG_ZC reused the cancelled op's slot (same
  // index, next generation).
  const SqeRecord* resent = nullptr;
  for (size_t i = 3; i < log.size(); ++i) {
    if (log[i].opcode == IORING_OP_SENDMSG_ZC) resent = &log[i];
  }
  ASSERT_NE(resent, nullptr);
  EXPECT_EQ(static_cast<uint32_t>(resent->user_data),
            static_cast<uint32_t>(log[1].user_data));
  EXPECT_NE(resent->user_data, log[1].user_data);
  const std::vector<uint64_t> held = ring_->held_notifications();
  ASSERT_EQ(held.size(), 2u);
  ASSERT_EQ(held[0], log[1].user_data);
  // The stale notification arrives first: it must not release the buffers
  // the new op is still sending from.
  ring_->DeliverNotification(0);
  Pump(5);
  EXPECT_EQ(Releases(tokens[2]), 0);
  EXPECT_EQ(Releases(tokens[3]), 0);
  EXPECT_EQ(executor_->stats().totals.stray_notifications, 1u);
  ring_->DeliverNotification(0);
  Pump();
  EXPECT_EQ(Releases(tokens[2]), 1);
  EXPECT_EQ(Releases(tokens[3]), 1);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, CancelledZeroCopyOpWithoutAnyNotificationIsReleased) {
  FakeRingOptions ro;
  ro.notify_cancelled_zc = false;
  Make(ro);
  const ConnectionId c = Attach();
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_WRITEV, 100});
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_TRUE(executor_->Idle(c));
  EXPECT_EQ(executor_->stats().totals.stray_notifications, 0u);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, ErrorWithoutNotificationReleasesOnceWithTheError) {
  Make();
  const ConnectionId c = Attach();
  FakeFault fault{IORING_OP_SENDMSG_ZC, -1, -EIO};
  fault.more = false;
  fault.notify = false;
  ring_->AddFault(Fd(c), fault);
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump();
  EXPECT_TRUE(executor_->Idle(c));
  const absl::Status error = executor_->ConnectionError(c);
  EXPECT_FALSE(error.ok());
  EXPECT_TRUE(absl::StrContains(error.message(), "sendmsg_zc")) << error;
  EXPECT_EQ(ledger_.Find(tokens[0])->status.code(), absl::StatusCode::kOk);
  for (int i : {2, 3, 4}) {
    EXPECT_EQ(ledger_.Find(tokens[i])->status, error) << i;
  }
  ExpectPrefix(c);
  EXPECT_EQ(ring_->received(Fd(c)).size(), 8 * K);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, StrayNotificationForAnUnknownSlotIsIgnored) {
  Make();
  const ConnectionId c = Attach();
  ring_->InjectCompletion(
      Completion{(uint64_t{5} << 32) | 7, 0, IORING_CQE_F_NOTIF});
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_EQ(executor_->stats().totals.stray_notifications, 1u);
}

// --- Locked memory -----------------------------------------------------------

TEST_F(ExecutorFaultTest, EnomemResendsThatDataByCopy) {
  Make();
  const ConnectionId c = Attach();
  FakeFault fault{IORING_OP_SENDMSG_ZC, -1, -ENOMEM};
  fault.more = false;
  fault.notify = false;
  ring_->AddFault(Fd(c), fault);
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_TRUE(executor_->ConnectionError(c).ok());
  EXPECT_TRUE(executor_->ZeroCopyEnabled(c));
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.fallbacks_enomem, 1u);
  EXPECT_EQ(s.bytes_zero_copy, 0u);
  EXPECT_EQ(s.bytes_copied, 58 * K);
  // The refused buffers went by copy; later data goes zero-copy again.
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_EQ(executor_->connection_stats(c)->bytes_zero_copy, 48 * K);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, CapBoundsBytesAwaitingNotification) {
  ExecutorOptions eo;
  eo.max_bytes_awaiting_notification = 256 * K;
  Make(FakeRingOptions(), eo);
  EXPECT_EQ(executor_->max_bytes_awaiting_notification(), 256 * K);
  ring_->set_hold_notifications(true);
  std::vector<ConnectionId> conns = {Attach(), Attach()};
  for (ConnectionId c : conns) {
    for (int i = 0; i < 10; ++i) Send(c, {2 * K, 64 * K, 100 * K});
  }
  uint64_t fake_peak = 0;
  for (int round = 0; round < 500 && !AllIdle(); ++round) {
    Pump(3);
    fake_peak = std::max(fake_peak, ring_->bytes_awaiting_notification());
    // Let notifications trickle in, oldest first.
    if (!ring_->held_notifications().empty()) ring_->DeliverNotification(0);
  }
  ring_->DeliverAllNotifications();
  Pump();
  for (ConnectionId c : conns) ExpectExact(c);
  const RingStats r = executor_->stats();
  EXPECT_GT(r.totals.bytes_zero_copy, 0u);
  EXPECT_LE(r.totals.peak_bytes_awaiting_notification, 256 * K);
  EXPECT_LE(fake_peak, 256 * K);
  EXPECT_GT(r.totals.cap_waits + r.totals.cap_copies, 0u);
  EXPECT_EQ(r.totals.bytes_awaiting_notification, 0u);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, OpLargerThanTheCapIsCutToFit) {
  ExecutorOptions eo;
  eo.max_bytes_awaiting_notification = 64 * K;
  Make(FakeRingOptions(), eo);
  const ConnectionId c = Attach();
  Send(c, {1024 * K});
  Pump();
  ExpectExact(c);
  for (const SqeRecord& r : ring_->log()) {
    EXPECT_LE(r.bytes_requested, 64 * K) << "op of " << r.bytes_requested;
  }
  EXPECT_GT(Submitted(IORING_OP_SEND_ZC), 1u);
  EXPECT_LE(executor_->stats().totals.peak_bytes_awaiting_notification, 64 * K);
}

// --- Zero-copy not supported -------------------------------------------------

TEST_F(ExecutorFaultTest, EopnotsuppTurnsZeroCopyOffAndResendsByCopy) {
  Make();
  const ConnectionId c = Attach();
  ring_->SetZeroCopySupported(Fd(c), false);
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_TRUE(executor_->ConnectionError(c).ok());
  EXPECT_FALSE(executor_->ZeroCopyEnabled(c));
  EXPECT_EQ(executor_->connection_stats(c)->fallbacks_unsupported, 1u);
  const size_t zc_before = Submitted(IORING_OP_SENDMSG_ZC);
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_EQ(Submitted(IORING_OP_SENDMSG_ZC), zc_before);
}

TEST_F(ExecutorFaultTest, EinvalOnAZeroCopyOpTurnsZeroCopyOff) {
  Make();
  const ConnectionId c = Attach();
  FakeFault fault{IORING_OP_SEND_ZC, -1, -EINVAL};
  fault.more = false;
  fault.notify = false;
  ring_->AddFault(Fd(c), fault);
  Send(c, {1000, 64 * K, 1000});
  Pump();
  ExpectExact(c);
  EXPECT_FALSE(executor_->ZeroCopyEnabled(c));
  EXPECT_EQ(executor_->connection_stats(c)->fallbacks_unsupported, 1u);
}

TEST_F(ExecutorFaultTest, NonTcpSocketAllowedSendsByCopyAfterEopnotsupp) {
  Make();
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ConnectionOptions o = Options();
  absl::StatusOr<ConnectionId> refused = executor_->Attach(sv[0], o);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "not TCP"))
      << refused.status();
  o.allow_non_tcp = true;
  absl::StatusOr<ConnectionId> c = executor_->Attach(sv[0], o);
  ASSERT_TRUE(c.ok()) << c.status();
  fds_[c->value] = sv[0];
  ring_->SetZeroCopySupported(sv[0], false);
  Send(*c, kExample);
  Pump();
  ExpectExact(*c);
  EXPECT_FALSE(executor_->ZeroCopyEnabled(*c));
  executor_.reset();
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok());
  close(sv[0]);
  close(sv[1]);
}

// --- Peer reset and close ----------------------------------------------------

class PeerErrorTest : public ExecutorFaultTest,
                      public testing::WithParamInterface<int> {};

TEST_P(PeerErrorTest, FailsOnlyThatConnectionAndReleasesEverythingOnce) {
  Make();
  const ConnectionId bad = Attach();
  const ConnectionId good = Attach();
  ring_->set_hold_notifications(true);
  Send(bad, kExample);
  Send(good, kExample);
  Pump(5);
  // The peer goes away while more is queued and zero-copy buffers await
  // their notifications.
  ring_->SetSocketError(Fd(bad), GetParam());
  const std::vector<uint64_t> after = Send(bad, kExample);
  Send(good, kExample);
  Pump(20);
  const absl::Status error = executor_->ConnectionError(bad);
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.code(), absl::ErrnoToStatus(-GetParam(), "").code());
  EXPECT_TRUE(executor_->ConnectionError(good).ok());
  // Copies are released with the error at once; zero-copy ones only after
  // their notification.
  EXPECT_EQ(Releases(after[0]), 1);
  EXPECT_EQ(ledger_.Find(after[0])->status, error);
  EXPECT_FALSE(executor_->Idle(bad));
  const absl::Status refused = executor_->Enqueue(bad, "x", 1, 999999);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.message(), error.message())) << refused;
  ring_->DeliverAllNotifications();
  Pump();
  EXPECT_TRUE(executor_->Idle(bad));
  EXPECT_TRUE(executor_->Idle(good));
  ExpectPrefix(bad);
  ExpectExact(good);
  EXPECT_EQ(executor_->connection_stats(bad)->buffers_released +
                executor_->connection_stats(bad)->buffers_released_failed,
            10u);
  EXPECT_GT(executor_->connection_stats(bad)->buffers_released_failed, 0u);
  CheckNoViolations();
}

INSTANTIATE_TEST_SUITE_P(ResetAndPipe, PeerErrorTest,
                         testing::Values(-ECONNRESET, -EPIPE));

TEST_F(ExecutorFaultTest, CloseCancelsBlockedChainAndReleasesOnce) {
  Make();
  const ConnectionId c = Attach();
  const ConnectionId other = Attach();
  ring_->SetCapacity(Fd(c), 0);  // the peer reads nothing: the chain blocks
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Send(other, kExample);
  Pump(5);
  EXPECT_GT(ring_->blocked_ops(), 0u);
  const uint64_t late = Send(c, {100})[0];
  ASSERT_TRUE(executor_->Close(c).ok());
  EXPECT_EQ(Releases(late), 1) << "never handed to the kernel";
  EXPECT_EQ(ledger_.Find(late)->status.code(), absl::StatusCode::kCancelled);
  Pump();
  EXPECT_EQ(ring_->blocked_ops(), 0u);
  EXPECT_TRUE(executor_->Idle(c));
  for (uint64_t t : tokens) {
    EXPECT_EQ(ledger_.Find(t)->status.code(), absl::StatusCode::kCancelled);
  }
  EXPECT_EQ(executor_->Enqueue(c, "x", 1, 1).code(),
            absl::StatusCode::kNotFound);
  ExpectExact(other);
  CheckNoViolations();
}

// The kernel still references a sent zero-copy buffer (its notification has
// not come: a peer that stopped reading). Teardown must not call it
// reusable, with any status; the notification that comes after the executor
// is gone then finds the memory unchanged (the ledger poisons every buffer
// released as reusable, so an early release is a violation here).
TEST_F(ExecutorFaultTest, TeardownReleasesWhatTheKernelStillHoldsOnce) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump(5);
  EXPECT_EQ(Releases(tokens[2]), 0);
  EXPECT_EQ(Releases(tokens[0]), 1) << "copied: back once sent";
  CheckNoViolations();
  executor_.reset();
  for (uint64_t t : {tokens[2], tokens[3]}) {
    ASSERT_EQ(Releases(t), 1) << "handed back once, at teardown";
    const absl::Status& status = ledger_.Find(t)->status;
    EXPECT_TRUE(KernelMayStillRead(status)) << status;
    EXPECT_FALSE(status.ok());
  }
  EXPECT_EQ(ledger_.kernel_may_read(), 2u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  ASSERT_EQ(ring_->held_notifications().size(), 1u);
  ring_->DeliverAllNotifications();
  CheckNoViolations();
  ExpectExact(c);
}

TEST_F(ExecutorFaultTest, ShutdownWaitsForLateNotificationsThenReportsOk) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump(5);
  ASSERT_EQ(ring_->held_notifications().size(), 1u);
  // The notification comes while Shutdown waits: at its 50th submit from
  // now, so a Shutdown that does not keep waiting misses it.
  ring_->DeliverHeldAfterSubmits(50);
  EXPECT_TRUE(executor_->Shutdown(absl::Seconds(60)).ok());
  for (uint64_t t : tokens) {
    EXPECT_TRUE(ledger_.Find(t)->status.ok()) << ledger_.Find(t)->status;
  }
  EXPECT_EQ(executor_->Attach(Fd(c)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(executor_->Enqueue(c, "x", 1, 99).code(),
            absl::StatusCode::kFailedPrecondition);
  CheckNoViolations();
}

// The timeout does not change the outcome: the fake acknowledges nothing
// while it lasts, and the reset is followed by a poll however late Shutdown
// runs (see LateShutdownTest).
TEST_F(ExecutorFaultTest, ShutdownResetsMarkedStalledConnectionsOnly) {
  ExpectShutdownResetsMarkedOnly(absl::Milliseconds(20));
}

// A Shutdown whose deadline has passed by the time it resets (a loaded
// server's thread descheduled for the whole timeout; here a timeout of zero,
// or one that passes before Shutdown starts) still resets the marked
// connections and polls once for what the resets freed, instead of handing
// it back as KernelMayStillRead.
class LateShutdownTest : public ExecutorFaultTest,
                         public testing::WithParamInterface<absl::Duration> {};

TEST_P(LateShutdownTest, ShutdownThatRunsLateStillCollectsWhatItsResetFreed) {
  ExpectShutdownResetsMarkedOnly(GetParam());
}

INSTANTIATE_TEST_SUITE_P(PastDeadline, LateShutdownTest,
                         testing::Values(absl::ZeroDuration(),
                                         absl::Microseconds(1)));

TEST_F(ExecutorFaultTest, AbortResetsTheConnectionAndItsBuffersComeBack) {
  Make();
  const ConnectionId c = Attach();
  const ConnectionId other = Attach();
  ring_->set_hold_notifications(true);
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump(5);
  ASSERT_EQ(Releases(tokens[2]), 0);
  ASSERT_TRUE(executor_->Abort(c).ok());
  EXPECT_EQ(ring_->resets(Fd(c)), 1);
  Pump();
  EXPECT_TRUE(executor_->Idle(c));
  for (uint64_t t : tokens) EXPECT_EQ(Releases(t), 1) << t;
  EXPECT_FALSE(KernelMayStillRead(ledger_.Find(tokens[2])->status));
  // Other connections go on.
  ring_->set_hold_notifications(false);
  Send(other, kExample);
  Pump();
  ExpectExact(other);
  CheckNoViolations();
}

// After teardown, completions for ops the executor forgot are harmless even
// when they arrive on a ring that outlived it.
TEST_F(ExecutorFaultTest, NotificationAfterShutdownIsStray) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  Send(c, kExample);
  Pump(5);
  EXPECT_FALSE(executor_->Shutdown(absl::Milliseconds(1)).ok());
  ring_->DeliverAllNotifications();
  absl::StatusOr<size_t> n = executor_->Poll(absl::ZeroDuration());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(executor_->stats().totals.stray_notifications, 1u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok());
  CheckNoViolations();
}

// --- The ring itself ---------------------------------------------------------

TEST_F(ExecutorFaultTest, ChainsFitTheFreeSubmissionQueueEntries) {
  FakeRingOptions ro;
  ro.sq_entries = 4;
  Make(ro);
  std::vector<ConnectionId> conns;
  for (int i = 0; i < 6; ++i) {
    conns.push_back(Attach());
    std::vector<size_t> sizes;
    for (int j = 0; j < 30; ++j) sizes.push_back(j % 2 ? 20 * K : 100 + j);
    Send(conns.back(), sizes);
  }
  Pump();
  for (ConnectionId c : conns) ExpectExact(c);
  std::map<uint64_t, std::pair<uint64_t, int>> chains;  // submit call, ops
  for (const SqeRecord& r : ring_->log()) {
    auto [it, inserted] = chains.try_emplace(r.chain, r.submit_call, 0);
    EXPECT_EQ(it->second.first, r.submit_call) << "chain split across submits";
    ++it->second.second;
  }
  for (const auto& [chain, info] : chains) EXPECT_LE(info.second, 4) << chain;
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, CompletionQueueOverflowIsRetried) {
  // A full submission queue makes the executor submit before it has reaped
  // the completions of the previous submit, which overflowed.
  FakeRingOptions ro;
  ro.sq_entries = 4;
  ro.cq_entries = 2;
  Make(ro);
  std::vector<ConnectionId> conns;
  for (int i = 0; i < 5; ++i) {
    conns.push_back(Attach());
    for (int j = 0; j < 5; ++j) Send(conns.back(), kExample);
  }
  Pump();
  for (ConnectionId c : conns) ExpectExact(c);
  EXPECT_GT(ring_->busy_returns(), 0u);
  EXPECT_GT(executor_->stats().submit_busy, 0u);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, InterruptedWaitIsNotAnError) {
  Make();
  const ConnectionId c = Attach();
  ring_->InjectSubmitResult(-EINTR);
  ring_->InjectSubmitResult(-EINTR);
  ring_->InjectSubmitResult(-EAGAIN);
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_GE(executor_->stats().wait_interrupted, 1u);
  EXPECT_GE(executor_->stats().submit_busy, 1u);
}

TEST_F(ExecutorFaultTest, RingFailureIsReported) {
  Make();
  const ConnectionId c = Attach();
  Send(c, kExample);
  ring_->InjectSubmitResult(-EFAULT);
  absl::StatusOr<size_t> n = executor_->Poll(absl::ZeroDuration());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kInternal) << n.status();
  Pump();
  ExpectExact(c);
}

// --- Adaptive zero-copy and registered buffers -------------------------------

TEST_F(ExecutorFaultTest, AdaptiveZeroCopyStopsWhereTheKernelCopies) {
  Make();
  ConnectionOptions o = Options();
  o.adaptive_zero_copy = true;
  o.adaptive_copied_limit = 3;
  const ConnectionId copying = Attach(o);
  const ConnectionId real_nic = Attach(o);
  ConnectionOptions off = o;
  off.adaptive_zero_copy = false;
  const ConnectionId not_adaptive = Attach(off);
  ring_->SetCopied(Fd(copying), true);
  ring_->SetCopied(Fd(not_adaptive), true);
  for (int i = 0; i < 6; ++i) {
    for (ConnectionId c : {copying, real_nic, not_adaptive}) {
      Send(c, {64 * K});
    }
    Pump();
  }
  for (ConnectionId c : {copying, real_nic, not_adaptive}) ExpectExact(c);
  const SendStats s = *executor_->connection_stats(copying);
  EXPECT_FALSE(executor_->ZeroCopyEnabled(copying));
  EXPECT_EQ(s.adaptive_disabled, 1u);
  EXPECT_EQ(s.copied_notifications, 3u);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kSendZc)], 3u);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kSend)], 3u);
  EXPECT_TRUE(executor_->ZeroCopyEnabled(real_nic));
  EXPECT_EQ(executor_->connection_stats(real_nic)->copied_notifications, 0u);
  EXPECT_TRUE(executor_->ZeroCopyEnabled(not_adaptive));
  EXPECT_EQ(executor_->connection_stats(not_adaptive)->copied_notifications,
            6u);
  EXPECT_EQ(executor_->stats().totals.adaptive_disabled, 1u);
}

// Adaptive mode looks again after adaptive_retry_chains chains, the wait
// doubling each time the kernel still copies; once the route does zero-copy
// (the notifications stop saying "copied") it stays on.
TEST_F(ExecutorFaultTest, AdaptiveZeroCopyLooksAgainAndComesBack) {
  Make();
  ConnectionOptions o = Options();
  o.adaptive_zero_copy = true;
  o.adaptive_copied_limit = 2;
  o.adaptive_retry_chains = 3;
  const ConnectionId c = Attach(o);
  ConnectionOptions never = o;
  never.adaptive_retry_chains = 0;
  const ConnectionId stays_off = Attach(never);
  ring_->SetCopied(Fd(c), true);
  ring_->SetCopied(Fd(stays_off), true);
  // Chains 1-2 zero-copy (copied: off), 3-5 copy, 6-7 zero-copy again
  // (copied: off, wait now 6), 8-13 copy, 14 zero-copy.
  std::vector<bool> zero_copy;
  auto chain = [&](ConnectionId id) {
    const uint64_t before =
        executor_->connection_stats(id)->ops[static_cast<int>(OpKind::kSendZc)];
    Send(id, {64 * K});
    Pump();
    return executor_->connection_stats(id)
               ->ops[static_cast<int>(OpKind::kSendZc)] > before;
  };
  for (int i = 0; i < 13; ++i) {
    zero_copy.push_back(chain(c));
    chain(stays_off);
  }
  EXPECT_EQ(zero_copy,
            std::vector<bool>({true, true, false, false, false, true, true,
                               false, false, false, false, false, false}));
  EXPECT_FALSE(executor_->ZeroCopyEnabled(c));
  // The route changes: the kernel stops copying.
  ring_->SetCopied(Fd(c), false);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(chain(c)) << "chain " << 14 + i;
  EXPECT_TRUE(executor_->ZeroCopyEnabled(c));
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.adaptive_retries, 2u);
  EXPECT_EQ(s.adaptive_disabled, 1u);
  EXPECT_EQ(s.copied_notifications, 4u);
  const SendStats off = *executor_->connection_stats(stays_off);
  EXPECT_EQ(off.adaptive_retries, 0u);
  EXPECT_EQ(off.ops[static_cast<int>(OpKind::kSendZc)], 2u);
  EXPECT_FALSE(executor_->ZeroCopyEnabled(stays_off));
  ExpectExact(c);
  ExpectExact(stays_off);
  ConnectionOptions bad = o;
  bad.adaptive_retry_chains = (1u << 24) + 1;
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  bad.allow_non_tcp = true;
  absl::StatusOr<ConnectionId> refused = executor_->Attach(fds[0], bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("adaptive_retry_chains"),
            std::string::npos)
      << refused.status();
  close(fds[0]);
  close(fds[1]);
}

TEST_F(ExecutorFaultTest, RegisteredBuffersUseFixedBufferOps) {
  Make();
  std::vector<unsigned char> arena(1024 * K);
  const struct iovec region = {arena.data(), arena.size()};
  ASSERT_TRUE(executor_->RegisterBuffers({&region, 1}).ok());
  EXPECT_EQ(executor_->RegisterBuffers({&region, 1}).code(),
            absl::StatusCode::kFailedPrecondition);
  const ConnectionId c = Attach();
  // Two 64K pieces inside the arena (one SENDMSG_ZC), then one alone
  // (SEND_ZC), then a heap buffer outside it.
  std::string& expected = expected_[c.value];
  for (size_t i = 0; i < arena.size(); ++i) arena[i] = PatternByte(99, i);
  for (size_t offset : {0 * K, 64 * K}) {
    const uint64_t t = ledger_.Expect(c, nullptr, 64 * K);
    ASSERT_TRUE(executor_->Enqueue(c, arena.data() + offset, 64 * K, t).ok());
    expected.append(reinterpret_cast<char*>(arena.data() + offset), 64 * K);
  }
  Send(c, {1000});
  const uint64_t t = ledger_.Expect(c, nullptr, 64 * K);
  ASSERT_TRUE(executor_->Enqueue(c, arena.data() + 512 * K, 64 * K, t).ok());
  expected.append(reinterpret_cast<char*>(arena.data() + 512 * K), 64 * K);
  Send(c, {1000, 64 * K});
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  int fixed = 0;
  for (const SqeRecord& r : ring_->log()) {
    if (!FakeRing::IsZeroCopyOpcode(r.opcode)) continue;
    const bool inside =
        r.iovs[0].iov_base >= static_cast<void*>(arena.data()) &&
        r.iovs[0].iov_base < static_cast<void*>(arena.data() + arena.size());
    EXPECT_EQ((r.ioprio & IORING_RECVSEND_FIXED_BUF) != 0, inside);
    if (inside) {
      EXPECT_EQ(r.buf_index, 0);
      ++fixed;
    }
  }
  EXPECT_EQ(fixed, 2);
  EXPECT_EQ(executor_->connection_stats(c)->fixed_buffer_ops, 2u);
  // Only the heap buffer's op was charged against the memlock cap.
  EXPECT_LT(executor_->stats().totals.peak_bytes_awaiting_notification,
            2 * 64 * K);
}

TEST_F(ExecutorFaultTest, FixedSendmsgZcOnlyWhereTheKernelTakesIt) {
  FakeRingOptions ro;
  ro.features.sendmsg_zc_fixed = false;
  Make(ro);
  std::vector<unsigned char> arena(256 * K, 1);
  const struct iovec region = {arena.data(), arena.size()};
  ASSERT_TRUE(executor_->RegisterBuffers({&region, 1}).ok());
  const ConnectionId c = Attach();
  for (size_t offset : {0 * K, 64 * K}) {
    const uint64_t t = ledger_.Expect(c, nullptr, 64 * K);
    ASSERT_TRUE(executor_->Enqueue(c, arena.data() + offset, 64 * K, t).ok());
    expected_[c.value].append(reinterpret_cast<char*>(arena.data() + offset),
                              64 * K);
  }
  Pump();
  ExpectExact(c);
  ASSERT_EQ(ring_->log().size(), 1u);
  EXPECT_EQ(ring_->log()[0].opcode, IORING_OP_SENDMSG_ZC);
  EXPECT_EQ(ring_->log()[0].ioprio & IORING_RECVSEND_FIXED_BUF, 0);
  CheckNoViolations();
}

// --- Bad input ---------------------------------------------------------------

TEST_F(ExecutorFaultTest, BadInputIsRefusedAndDisturbsNothing) {
  Make();
  const ConnectionId c = Attach();
  Send(c, kExample);
  Pump(1);
  char byte = 'x';
  EXPECT_EQ(executor_->Enqueue(c, nullptr, 10, 1).code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status zero = executor_->Enqueue(c, &byte, 0, 1);
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(zero.message(), "length is 0")) << zero;
  EXPECT_EQ(executor_->Enqueue(ConnectionId{12345}, &byte, 1, 1).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(executor_->Attach(-1).status().code(),
            absl::StatusCode::kInvalidArgument);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const absl::Status not_socket = executor_->Attach(pipe_fds[0]).status();
  EXPECT_TRUE(absl::StrContains(not_socket.message(), "not a socket"))
      << not_socket;
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  const absl::Status dgram = executor_->Attach(udp).status();
  EXPECT_TRUE(absl::StrContains(dgram.message(), "not a stream socket"))
      << dgram;
  close(udp);
  const int unconnected = socket(AF_INET, SOCK_STREAM, 0);
  const absl::Status not_connected = executor_->Attach(unconnected).status();
  EXPECT_TRUE(absl::StrContains(not_connected.message(), "not connected"))
      << not_connected;
  close(unconnected);
  const absl::Status twice = executor_->Attach(Fd(c)).status();
  EXPECT_TRUE(absl::StrContains(twice.message(), "already attached")) << twice;
  ConnectionOptions bad = Options();
  bad.plan.max_iovs_per_op = 5000;
  EXPECT_EQ(executor_->Attach(pairs_.back().server, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  ConnectionOptions small = Options();
  small.max_queued_bytes = 1000;
  const ConnectionId limited = Attach(small);
  std::vector<char> big(1001);
  const absl::Status over = executor_->Enqueue(limited, big.data(), 1001, 1);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted) << over;
  // None of that touched the connection in progress.
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_TRUE(executor_->ConnectionError(c).ok());
  EXPECT_EQ(executor_->connection_stats(c)->buffers_released, 10u);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, ReleaseCallbackMayEnqueueMore) {
  FakeRingOptions ro;
  auto ring = std::make_unique<FakeRing>(ro);
  FakeRing* fake = ring.get();
  Executor* self = nullptr;
  ConnectionId conn;
  std::vector<unsigned char> data(3000, 7);
  int released = 0;
  ExecutorOptions eo;
  eo.on_release = [&](ConnectionId id, uint64_t, const absl::Status& s) {
    EXPECT_TRUE(s.ok()) << s;
    if (++released < 5) {
      EXPECT_TRUE(self->Enqueue(id, data.data(), data.size(), released).ok());
    }
    EXPECT_EQ(self->Poll(absl::ZeroDuration()).status().code(),
              absl::StatusCode::kFailedPrecondition);
  };
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::CreateWithRing(std::move(ring), eo);
  ASSERT_TRUE(executor.ok());
  self = executor->get();
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok());
  ConnectionOptions o = Options();
  conn = *self->Attach(pair->client, o);
  ASSERT_TRUE(self->Enqueue(conn, data.data(), data.size(), 0).ok());
  for (int i = 0; i < 100 && !self->Idle(conn); ++i) {
    ASSERT_TRUE(self->Poll(absl::ZeroDuration()).ok());
  }
  EXPECT_EQ(released, 5);
  EXPECT_EQ(fake->received(pair->client).size(), 5 * data.size());
}

// --- Batches ----------------------------------------------------------------

TEST_F(ExecutorFaultTest, BatchEnqueueIsAllOrNothingAndNamesTheBadBuffer) {
  Make();
  const ConnectionId c = Attach();
  std::vector<unsigned char> data(100, 1);
  const std::vector<iovec> bad = {
      {data.data(), 10}, {data.data() + 10, 10}, {nullptr, 10}};
  const std::vector<uint64_t> tokens = {1, 2, 3};
  const absl::Status s = executor_->Enqueue(c, bad, tokens);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "buffer 2")) << s;
  const std::vector<uint64_t> two = {1, 2};
  EXPECT_TRUE(absl::StrContains(executor_->Enqueue(c, bad, two).message(),
                                "3 buffers but 2 tokens"));
  EXPECT_EQ(executor_->Enqueue(ConnectionId{999}, bad, tokens).code(),
            absl::StatusCode::kNotFound);
  Pump();
  EXPECT_TRUE(ring_->log().empty()) << "nothing was queued";
  EXPECT_EQ(executor_->connection_stats(c)->buffers_enqueued, 0u);
  EXPECT_TRUE(executor_->Enqueue(c, {}, {}).ok());
}

TEST_F(ExecutorFaultTest, BatchReleaseReportsRunsInOrderExactlyOnce) {
  auto ring = std::make_unique<FakeRing>();
  ring_ = ring.get();
  ExecutorOptions eo;
  eo.on_release_batch = ledger_.batch_callback();
  absl::StatusOr<std::unique_ptr<Executor>> made =
      Executor::CreateWithRing(std::move(ring), eo);
  ASSERT_TRUE(made.ok()) << made.status();
  executor_ = *std::move(made);
  const ConnectionId c = Attach();
  // 200 small buffers and some large ones, enqueued as one batch; one
  // short writev on the way.
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_WRITEV, 3000});
  std::vector<size_t> sizes(200, 100);
  sizes[50] = sizes[150] = 64 * K;
  std::vector<iovec> iovs;
  std::vector<uint64_t> tokens;
  std::string& expected = expected_[c.value];
  for (size_t size : sizes) {
    auto buffer = std::make_unique<std::vector<unsigned char>>(size);
    for (size_t i = 0; i < size; ++i) {
      (*buffer)[i] = PatternByte(c.value, expected.size() + i);
    }
    expected.append(reinterpret_cast<const char*>(buffer->data()), size);
    const uint64_t token = ledger_.Expect(c, buffer->data(), size);
    iovs.push_back({buffer->data(), size});
    tokens.push_back(token);
    buffers_[token] = std::move(buffer);
  }
  ASSERT_TRUE(executor_->Enqueue(c, iovs, tokens).ok());
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.released(), 200u);
  EXPECT_LT(ledger_.batches(), 20u) << "runs, not one call per buffer";
  EXPECT_EQ(executor_->connection_stats(c)->buffers_released, 200u);
}

// --- Everything at once ------------------------------------------------------

// Random workloads under random faults (fixed seed): short ops, -ENOMEM,
// held notifications delivered in random order, interrupted and busy submits,
// a tiny completion queue. Recoverable faults only, so every stream must
// arrive whole.
TEST_F(ExecutorFaultTest, RandomRecoverableFaultsNeverLoseReorderOrDuplicate) {
  std::mt19937_64 rng(20261125);
  auto uniform = [&rng](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  for (int iteration = 0; iteration < 60; ++iteration) {
    SCOPED_TRACE(absl::StrCat("iteration ", iteration));
    FakeRingOptions ro;
    ro.sq_entries = static_cast<uint32_t>(uniform(2, 64));
    ro.cq_entries = static_cast<uint32_t>(uniform(1, 2) == 1 ? 4 : 1024);
    ro.notify_cancelled_zc = uniform(0, 1) == 1;
    ExecutorOptions eo;
    eo.max_bytes_awaiting_notification = uniform(0, 1) ? 512 * K : 0;
    ledger_ = TokenLedger();
    fds_.clear();
    expected_.clear();
    if (iteration % 2 == 1) eo.on_release_batch = ledger_.batch_callback();
    batch_enqueue_ = iteration % 4 >= 2;
    Make(ro, eo);
    ring_->set_hold_notifications(uniform(0, 1) == 1);
    std::vector<ConnectionId> conns;
    const int nconns = static_cast<int>(uniform(1, 4));
    for (int i = 0; i < nconns; ++i) {
      const uint64_t thresholds[] = {0, 4 * K, 16 * K, 64 * K,
                                     PlanOptions::kNever};
      ConnectionOptions o =
          Options(thresholds[uniform(0, 4)],
                  uniform(0, 1) ? CopyOp::kWritev : CopyOp::kSendmsg);
      o.plan.max_iovs_per_op = static_cast<uint32_t>(uniform(1, 8));
      conns.push_back(Attach(o));
    }
    for (int step = 0; step < 40; ++step) {
      const ConnectionId c = conns[uniform(0, conns.size() - 1)];
      std::vector<size_t> sizes(uniform(1, 6));
      for (size_t& s : sizes) {
        s = uniform(0, 3) == 0 ? uniform(16 * K, 96 * K) : uniform(1, 8 * K);
      }
      Send(c, sizes);
      switch (uniform(0, 6)) {
        case 0:
          ring_->AddFault(
              Fd(c), FakeFault{-1, static_cast<int64_t>(uniform(0, 30 * K))});
          break;
        case 1: {
          FakeFault f{IORING_OP_SENDMSG_ZC, -1, -ENOMEM};
          f.more = false;
          f.notify = false;
          ring_->AddFault(Fd(c), f);
          break;
        }
        case 2:
          ring_->InjectSubmitResult(uniform(0, 1) ? -EINTR : -EBUSY);
          break;
        case 3:
          ring_->AddFault(
              Fd(c),
              FakeFault{IORING_OP_SEND_ZC,
                        static_cast<int64_t>(uniform(1, 16 * K)), -EAGAIN});
          break;
        default:
          break;
      }
      for (int p = static_cast<int>(uniform(0, 3)); p > 0; --p) {
        ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
      }
      while (!ring_->held_notifications().empty() && uniform(0, 2) == 0) {
        ring_->DeliverNotification(
            uniform(0, ring_->held_notifications().size() - 1));
      }
    }
    for (int round = 0; round < 200 && !AllIdle(); ++round) {
      ring_->DeliverAllNotifications(uniform(0, 1) == 1);
      Pump(10);
    }
    ASSERT_TRUE(AllIdle());
    for (ConnectionId c : conns) {
      ExpectExact(c);
      EXPECT_TRUE(executor_->ConnectionError(c).ok())
          << executor_->ConnectionError(c);
    }
    EXPECT_LE(executor_->stats().totals.peak_bytes_awaiting_notification,
              executor_->max_bytes_awaiting_notification());
    CheckNoViolations();
    executor_.reset();
    ASSERT_TRUE(ledger_.CheckAllReleasedOnce().ok())
        << ledger_.CheckAllReleasedOnce();
    pairs_.clear();
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace zcplan

namespace zcplan {
namespace {

// --- Trust under faults
// --------------------------------------------------------

// A's peer reads nothing: its zero-copy chain blocks holding most of the
// ring's notification cap, and its notifications never come. B must not wait
// for that room: it sends by copy and finishes.
TEST_F(ExecutorFaultTest, StalledConnectionHoldingTheCapDoesNotStallOthers) {
  const auto [a, b] = StalledBesideLive(200 * K);
  ASSERT_GT(executor_->stats().totals.bytes_awaiting_notification, 128 * K);
  std::vector<size_t> sizes(64, 64 * K);
  Send(b, sizes);
  for (int i = 0; i < 2000 && !executor_->Idle(b); ++i) {
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  ASSERT_TRUE(executor_->Idle(b)) << "B waited on A's share of the cap";
  ExpectExact(b);
  const SendStats sb = *executor_->connection_stats(b);
  EXPECT_GT(sb.cap_copies, 0u);
  EXPECT_EQ(sb.bytes_copied + sb.bytes_zero_copy, 64 * 64 * K);
  EXPECT_LE(executor_->stats().totals.peak_bytes_awaiting_notification,
            256 * K);
  EXPECT_FALSE(executor_->Idle(a));
  ring_->SetCapacity(Fd(a), -1);
  Pump();
  ExpectExact(a);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, BatchByteSumThatWouldWrapIsRefused) {
  Make();
  ConnectionOptions o = Options();
  o.max_queued_bytes = uint64_t{4} << 30;
  const ConnectionId c = Attach(o);
  static char byte;
  const size_t huge = static_cast<size_t>(SSIZE_MAX);
  const iovec bufs[] = {{&byte, huge}, {&byte, huge}, {&byte, 2}};
  const uint64_t tokens[] = {1, 2, 3};
  const absl::Status s = executor_->Enqueue(c, bufs, tokens);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "buffer 0")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "4294967296")) << s;
  const SendStats st = *executor_->connection_stats(c);
  EXPECT_EQ(st.bytes_enqueued, 0u);
  EXPECT_EQ(st.buffers_enqueued, 0u);
  EXPECT_TRUE(executor_->Idle(c));
}

TEST_F(ExecutorFaultTest, SingleEnqueueThatWouldWrapIsRefused) {
  Make();
  ConnectionOptions o = Options();
  o.max_queued_bytes = ~uint64_t{0};
  const ConnectionId c = Attach(o);
  static char byte;
  const size_t huge = static_cast<size_t>(SSIZE_MAX);
  ledger_.Expect(c, nullptr, 0);  // tokens 1 and 2 come back at teardown
  ledger_.Expect(c, nullptr, 0);
  ASSERT_TRUE(executor_->Enqueue(c, &byte, huge, 1).ok());
  ASSERT_TRUE(executor_->Enqueue(c, &byte, huge, 2).ok());
  // 2 * SSIZE_MAX + 2 is 2^64: the sum would wrap to 0.
  const absl::Status s = executor_->Enqueue(c, &byte, 2, 3);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "length 2")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "18446744073709551615")) << s;
  EXPECT_EQ(executor_->connection_stats(c)->buffers_enqueued, 2u);
  // Never sent (the fake would read the bytes): closed before any Poll.
  ASSERT_TRUE(executor_->Close(c).ok());
  EXPECT_EQ(ledger_.released(), 2u);
}

TEST_F(ExecutorFaultTest, DupOfAnAttachedSocketIsRefused) {
  Make();
  const ConnectionId c = Attach();
  const int copy = dup(Fd(c));
  ASSERT_GE(copy, 0);
  absl::StatusOr<ConnectionId> again = executor_->Attach(copy, Options());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(
      again.status().message(),
      absl::StrCat("is the socket of fd ", Fd(c), ", already attached")))
      << again.status();
  EXPECT_EQ(executor_->Attach(Fd(c), Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Once the first connection is gone, the socket may be attached again.
  ASSERT_TRUE(executor_->Close(c).ok());
  absl::StatusOr<ConnectionId> later = executor_->Attach(copy, Options());
  EXPECT_TRUE(later.ok()) << later.status();
  close(copy);
}

TEST_F(ExecutorFaultTest, RegisterBuffersFromTheReleaseCallbackIsRefused) {
  absl::Status from_callback = absl::OkStatus();
  bool called = false;
  ExecutorOptions eo;
  Executor* executor = nullptr;
  static char region[4096];
  eo.on_release_batch = [&](ConnectionId, absl::Span<const uint64_t>,
                            const absl::Status&) {
    if (called) return;
    called = true;
    from_callback = executor->RegisterBuffers({iovec{region, sizeof(region)}});
  };
  Make(FakeRingOptions(), eo);
  executor = executor_.get();
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok());
  absl::StatusOr<ConnectionId> c = executor_->Attach(pair->client, Options());
  ASSERT_TRUE(c.ok());
  static char data[100];
  ASSERT_TRUE(executor_->Enqueue(*c, data, sizeof(data), 1).ok());
  for (int i = 0; i < 10 && !called; ++i) {
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  ASSERT_TRUE(called);
  EXPECT_EQ(from_callback.code(), absl::StatusCode::kFailedPrecondition)
      << from_callback;
  EXPECT_TRUE(ring_->registered_buffers().empty());
  executor_.reset();
}

// -ENOMEM on every zero-copy op (the memlock budget taken by someone else):
// after two in a row zero-copy pauses, for longer each time, so most chains
// go straight by copy instead of failing and being resent.
TEST_F(ExecutorFaultTest, RepeatedEnomemPausesZeroCopy) {
  Make();
  const ConnectionId c = Attach(Options(0));
  SendEnomemChains(c, /*faults=*/1000, /*chains=*/400);
  ExpectExact(c);
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_TRUE(executor_->ConnectionError(c).ok());
  EXPECT_GE(s.enomem_pauses, 3u);
  EXPECT_GT(s.chains_zc_paused, 300u);
  EXPECT_LT(s.fallbacks_enomem, 20u) << FormatStats(s);
  EXPECT_EQ(s.bytes_copied, 400 * 32 * K);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, ZeroCopySuccessEndsTheEnomemBackOff) {
  Make();
  const ConnectionId c = Attach(Options(0));
  SendEnomemChains(c, /*faults=*/2, /*chains=*/40);
  const SendStats first = *executor_->connection_stats(c);
  EXPECT_EQ(first.enomem_pauses, 1u);
  EXPECT_EQ(first.fallbacks_enomem, 2u);
  EXPECT_EQ(first.chains_zc_paused, 16u);
  EXPECT_GT(first.bytes_zero_copy, 0u) << "zero-copy resumed after the pause";
  // A zero-copy send went through since: the next pause is the first
  // length again (16 chains), not double (32).
  SendEnomemChains(c, /*faults=*/2, /*chains=*/40);
  ExpectExact(c);
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.enomem_pauses, 2u);
  EXPECT_EQ(s.chains_zc_paused, 32u);
}

TEST_F(ExecutorFaultTest, DefaultCapLeavesRoomForTheRingAndRegisteredBuffers) {
  const rlimit limit = FiniteMemlockLimit();
  if (limit.rlim_cur == 0) {
    GTEST_SKIP() << "this test wants a finite RLIMIT_MEMLOCK of at least 1 MiB";
  }
  FakeRingOptions ro;
  ro.features.memlock_bytes = 52 * K;
  Make(ro);
  const uint64_t limit_bytes = limit.rlim_cur;
  EXPECT_EQ(executor_->max_bytes_awaiting_notification(),
            (limit_bytes - 52 * K) / 2 / 4096 * 4096);
  EXPECT_TRUE(absl::StrContains(executor_->DescribeNotificationCap(),
                                "after the ring (52 KiB)"))
      << executor_->DescribeNotificationCap();
  static unsigned char region[256 * 1024] __attribute__((aligned(4096)));
  ASSERT_TRUE(executor_->RegisterBuffers({iovec{region, sizeof(region)}}).ok());
  EXPECT_EQ(executor_->max_bytes_awaiting_notification(),
            (limit_bytes - 52 * K - 256 * K) / 2 / 4096 * 4096);
  EXPECT_TRUE(absl::StrContains(executor_->DescribeNotificationCap(),
                                "registered buffers (256 KiB)"))
      << executor_->DescribeNotificationCap();
}

// A SINGLE_ISSUER ring is bound to the first thread that submits, which need
// not be the one that built the executor; another thread then gets an error
// that says what to do.
TEST_F(ExecutorFaultTest, SingleIssuerRingBindsToTheFirstThreadThatSubmits) {
  FakeRingOptions ro;
  ro.features.setup_flags = IORING_SETUP_SINGLE_ISSUER;
  Make(ro);
  const ConnectionId c = Attach();
  Send(c, kExample);
  std::thread runner([&] {
    for (int i = 0; i < 100 && !executor_->Idle(c); ++i) {
      absl::StatusOr<size_t> n = executor_->Poll(absl::ZeroDuration());
      EXPECT_TRUE(n.ok()) << n.status();
    }
  });
  runner.join();
  EXPECT_TRUE(executor_->Idle(c));
  ExpectExact(c);
  absl::StatusOr<size_t> here = executor_->Poll(absl::ZeroDuration());
  EXPECT_EQ(here.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(here.status().message(), "bound to thread"))
      << here.status();
  EXPECT_TRUE(absl::StrContains(here.status().message(), "defer_taskrun"))
      << here.status();
  EXPECT_EQ(executor_->Flush().code(), absl::StatusCode::kFailedPrecondition);
}

// Shutdown could not submit the chain (-EBUSY, zero timeout). Its SQEs are
// still in the ring: they must never reach the kernel once the executor has
// given their buffers back and forgotten the connection.
TEST_F(ExecutorFaultTest, NothingUnsubmittedGoesOutAfterShutdown) {
  Make();
  const ConnectionId c = Attach(Options(PlanOptions::kNever, CopyOp::kWritev));
  const std::vector<uint64_t> tokens = Send(c, {4 * K, 4 * K, 4 * K});
  ring_->InjectSubmitResult(-EBUSY);
  ASSERT_TRUE(executor_->Flush().ok());
  ASSERT_GT(ring_->sq_pending(), 0u);
  EXPECT_TRUE(executor_->Shutdown(absl::ZeroDuration()).ok())
      << "the kernel never had those buffers";
  for (uint64_t t : tokens) {
    EXPECT_TRUE(absl::IsAborted(ledger_.Find(t)->status))
        << ledger_.Find(t)->status;
  }
  EXPECT_EQ(executor_->stats().connections_open, 0u);
  const size_t logged = ring_->log().size();
  ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  EXPECT_EQ(ring_->log().size(), logged) << "Poll after Shutdown submitted";
  EXPECT_EQ(ring_->received(Fd(c)).size(), 0u);
}

// Close of a connection whose chain was prepared but not yet submitted (the
// submit was refused): its buffers come back at once, Cancelled, and the
// SQEs go out as NOPs, sending nothing.
TEST_F(ExecutorFaultTest, CloseUndoesAChainNotYetSubmitted) {
  Make();
  const ConnectionId c = Attach();
  const ConnectionId other = Attach();
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Send(other, kExample);
  ring_->InjectSubmitResult(-EBUSY);
  ASSERT_TRUE(executor_->Flush().ok());
  ASSERT_GT(ring_->sq_pending(), 0u);
  ASSERT_TRUE(executor_->Close(c).ok());
  for (uint64_t t : tokens) {
    EXPECT_EQ(Releases(t), 1);
    EXPECT_TRUE(absl::IsCancelled(ledger_.Find(t)->status));
  }
  Pump();
  EXPECT_EQ(ring_->received(Fd(c)).size(), 0u);
  ExpectExact(other);
  CheckNoViolations();
}

// Close with the submission queue full: the cancel finds no SQE; it must be
// sent later, or the chain blocked on a peer that reads nothing is never
// cancelled and Close never ends.
TEST_F(ExecutorFaultTest, CloseCancelsEvenWhenTheQueueWasFull) {
  FakeRingOptions ro;
  ro.sq_entries = 2;
  Make(ro);
  const ConnectionId a = Attach();
  const ConnectionId b = Attach();
  const ConnectionId d = Attach();
  ring_->SetCapacity(Fd(a), 0);
  Send(a, {4 * K});
  Pump(3);
  ASSERT_EQ(ring_->blocked_ops(), 1u);
  Send(b, {4 * K});
  Send(d, {4 * K});
  ring_->InjectSubmitResult(-EBUSY);
  ASSERT_TRUE(executor_->Flush().ok());
  ASSERT_EQ(ring_->SqSpaceLeft(), 0u);
  ASSERT_TRUE(executor_->Close(a).ok());
  Pump();
  ExpectExact(b);
  ExpectExact(d);
  EXPECT_EQ(ring_->blocked_ops(), 0u)
      << "the blocked chain was never cancelled";
  EXPECT_TRUE(executor_->Idle(a));
}

// Without IORING_ASYNC_CANCEL_FD (or where its probe failed) Close cancels
// each op in flight by its user_data.
TEST_F(ExecutorFaultTest, CloseCancelsByUserDataWithoutCancelByFd) {
  FakeRingOptions ro;
  ro.features.async_cancel_fd = false;
  Make(ro);
  const ConnectionId c = Attach();
  ring_->SetCapacity(Fd(c), 0);
  Send(c, kExample);
  Pump(3);
  ASSERT_GT(ring_->blocked_ops(), 0u);
  ASSERT_TRUE(executor_->Close(c).ok());
  Pump();
  EXPECT_EQ(ring_->blocked_ops(), 0u);
  EXPECT_TRUE(executor_->Idle(c));
  EXPECT_GT(ring_->ops_executed(IORING_OP_ASYNC_CANCEL), 0u);
  CheckNoViolations();
}

// B's first zero-copy op fits in the little room a stalled A leaves under the
// cap, and B's notifications are slow. B must not then wait for them: it
// holds less than its fair share, so it copies and finishes its stream while
// its own notification is still due.
TEST_F(ExecutorFaultTest, SmallShareOfTheCapDoesNotMakeAConnectionWait) {
  const auto [a, b] = StalledBesideLive(180 * K);
  ring_->set_hold_notifications(true);
  std::vector<size_t> sizes(64, 32 * K);
  Send(b, sizes);
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  EXPECT_EQ(ring_->received(Fd(b)).size(), 64 * 32 * K)
      << FormatStats(*executor_->connection_stats(b));
  EXPECT_EQ(executor_->connection_stats(b)->cap_waits, 0u);
  EXPECT_GT(executor_->connection_stats(b)->cap_copies, 0u);
  ring_->SetCapacity(Fd(a), -1);
  ring_->set_hold_notifications(false);
  ring_->DeliverAllNotifications();
  Pump();
  ExpectExact(a);
  ExpectExact(b);
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, SecondShutdownReturnsTheFirstResult) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  Send(c, kExample);
  Pump(5);
  const absl::Status first = executor_->Shutdown(absl::ZeroDuration());
  EXPECT_EQ(first.code(), absl::StatusCode::kUnavailable) << first;
  EXPECT_EQ(executor_->Shutdown(absl::ZeroDuration()), first);
  ring_->DeliverAllNotifications();
  CheckNoViolations();
}

TEST_F(ExecutorFaultTest, WatchFdOfARingWithoutOneIsAnError) {
  Make();
  EXPECT_EQ(executor_->WatchFd().status().code(),
            absl::StatusCode::kFailedPrecondition);
  const ConnectionId c = Attach();
  Send(c, kExample);
  for (int i = 0; i < 10 && !executor_->Idle(c); ++i) {
    ASSERT_TRUE(executor_->HandleReady().ok());
  }
  ExpectExact(c);
  CheckNoViolations();
}

// A process with CAP_IPC_LOCK is charged nothing: registering buffers must
// not shrink the cap (as root, a 16 MiB region left no room and turned
// zero-copy off).
TEST_F(ExecutorFaultTest, UnchargedRingKeepsTheCapWhenBuffersAreRegistered) {
  const rlimit limit = FiniteMemlockLimit();
  if (limit.rlim_cur == 0) {
    GTEST_SKIP() << "this test wants a finite RLIMIT_MEMLOCK of at least 1 MiB";
  }
  FakeRingOptions ro;
  ro.features.memlock_bytes = 52 * K;
  ro.features.memlock_charged = false;
  Make(ro);
  const uint64_t cap = executor_->max_bytes_awaiting_notification();
  EXPECT_EQ(cap, limit.rlim_cur / 2 / 4096 * 4096);
  static unsigned char region[512 * 1024] __attribute__((aligned(4096)));
  ASSERT_TRUE(executor_->RegisterBuffers({iovec{region, sizeof(region)}}).ok());
  EXPECT_EQ(executor_->max_bytes_awaiting_notification(), cap);
  EXPECT_TRUE(
      absl::StrContains(executor_->DescribeNotificationCap(), "CAP_IPC_LOCK"))
      << executor_->DescribeNotificationCap();
}

// --- Prepared messages -------------------------------------------------------

// A prepared message over buffers of the given sizes, laid out backwards in
// one arena with a gap around each buffer: its buffers are neither
// contiguous nor in memory order, so anything that sent the queue's stand-in
// for the message (one iovec from its first buffer's base over its total
// length) instead of its own iovecs would send the wrong bytes.
struct TestMessage {
  std::shared_ptr<const PreparedMessage> message;
  std::unique_ptr<unsigned char[]> arena;
  size_t arena_size = 0;
  std::string bytes;  // the message, in order

  // The address of byte `offset` of the message.
  const unsigned char* ByteAt(uint64_t offset) const {
    const PreparedMessage::Position p = message->Locate(offset);
    return static_cast<const unsigned char*>(
               message->buffers()[p.buffer].iov_base) +
           p.offset;
  }
  // True when `piece` lies inside one of the message's buffers.
  bool Holds(const iovec& piece) const {
    const auto* p = static_cast<const unsigned char*>(piece.iov_base);
    for (const iovec& b : message->buffers()) {
      const auto* base = static_cast<const unsigned char*>(b.iov_base);
      if (p >= base && p + piece.iov_len <= base + b.iov_len) return true;
    }
    return false;
  }
};

std::unique_ptr<TestMessage> MakeTestMessage(const std::vector<size_t>& sizes,
                                             uint64_t stream) {
  constexpr size_t kGap = 64;
  auto m = std::make_unique<TestMessage>();
  size_t total = kGap;
  for (size_t size : sizes) total += size + kGap;
  m->arena_size = total;
  m->arena = std::make_unique<unsigned char[]>(total);
  std::memset(m->arena.get(), 0xAB, total);
  std::vector<iovec> iovs(sizes.size());
  size_t at = kGap;
  for (size_t i = sizes.size(); i-- > 0;) {
    iovs[i] = {m->arena.get() + at, sizes[i]};
    at += sizes[i] + kGap;
  }
  uint64_t n = 0;
  for (const iovec& b : iovs) {
    auto* p = static_cast<unsigned char*>(b.iov_base);
    for (size_t k = 0; k < b.iov_len; ++k) {
      p[k] = PatternByte(stream, n++);
      m->bytes.push_back(static_cast<char>(p[k]));
    }
  }
  absl::StatusOr<std::shared_ptr<const PreparedMessage>> made =
      PreparedMessage::Create(iovs);
  EXPECT_TRUE(made.ok()) << made.status();
  if (made.ok()) m->message = *std::move(made);
  return m;
}

class MessageFaultTest : public ExecutorFaultTest {
 protected:
  // Enqueues `m` on `id` (its stream grows by the message's bytes) and
  // returns the token. With `poison` (a message enqueued once) the ledger
  // overwrites the whole arena when the token is released, so a release
  // before the kernel is done with a zero-copy op shows up as a violation;
  // a message enqueued more than once must not be poisoned.
  uint64_t SendMessage(ConnectionId id, const TestMessage& m,
                       bool poison = true) {
    const uint64_t token = ledger_.Expect(id, poison ? m.arena.get() : nullptr,
                                          poison ? m.arena_size : 0);
    const absl::Status s = executor_->EnqueueMessage(id, m.message, token);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) {
      ledger_.Forget(token);
      return 0;
    }
    expected_[id.value] += m.bytes;
    return token;
  }

  // The SQEs sent on `fd`, in order.
  std::vector<const SqeRecord*> SqesOn(int fd) {
    std::vector<const SqeRecord*> out;
    for (const SqeRecord& r : ring_->log()) {
      if (r.fd == fd && (FakeRing::IsSendFamilyOpcode(r.opcode) ||
                         r.opcode == IORING_OP_WRITEV)) {
        out.push_back(&r);
      }
    }
    return out;
  }

  // With no short sends and no size limits: every piece of a zero-copy op
  // is at or above the threshold, every piece of a copy op below it.
  void ExpectKindsFollowThreshold(int fd, uint64_t threshold) {
    for (const SqeRecord* r : SqesOn(fd)) {
      const bool zc = FakeRing::IsZeroCopyOpcode(r->opcode);
      for (const iovec& piece : r->iovs) {
        if (zc) {
          EXPECT_GE(piece.iov_len, threshold) << "opcode " << int{r->opcode};
        } else {
          EXPECT_LT(piece.iov_len, threshold) << "opcode " << int{r->opcode};
        }
      }
    }
  }

  // Ops of each chain on `fd`: chain number to count.
  std::map<uint64_t, int> ChainSizes(int fd) {
    std::map<uint64_t, int> sizes;
    for (const SqeRecord* r : SqesOn(fd)) ++sizes[r->chain];
    return sizes;
  }
};

TEST_F(MessageFaultTest, MessageAloneIsSentFromItsOwnIovecsAndReleasedOnce) {
  Make();
  const ConnectionId c = Attach();
  const auto m = MakeTestMessage({100, 3 * K, 64 * K, 200, 20 * K, 1}, 500);
  const uint64_t t = SendMessage(c, *m);
  ASSERT_TRUE(executor_->Flush().ok());
  const std::vector<const SqeRecord*> sqes = SqesOn(Fd(c));
  ASSERT_EQ(sqes.size(), 5u);
  EXPECT_EQ(sqes[0]->opcode, IORING_OP_WRITEV);
  EXPECT_EQ(sqes[1]->opcode, IORING_OP_SEND_ZC);
  EXPECT_EQ(sqes[2]->opcode, IORING_OP_SEND);
  EXPECT_EQ(sqes[3]->opcode, IORING_OP_SEND_ZC);
  EXPECT_EQ(sqes[4]->opcode, IORING_OP_SEND);
  // Whole buffers, in order: every piece is one of the message's buffers.
  size_t next = 0;
  for (size_t i = 0; i < sqes.size(); ++i) {
    EXPECT_EQ(sqes[i]->chain, sqes[0]->chain) << "one chain";
    EXPECT_EQ((sqes[i]->flags & IOSQE_IO_LINK) != 0, i + 1 < sqes.size());
    for (const iovec& piece : sqes[i]->iovs) {
      ASSERT_LT(next, m->message->size());
      EXPECT_EQ(piece.iov_base, m->message->buffers()[next].iov_base);
      EXPECT_EQ(piece.iov_len, m->message->buffers()[next].iov_len);
      ++next;
    }
  }
  EXPECT_EQ(next, m->message->size());
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  EXPECT_EQ(Releases(t), 1);
  EXPECT_TRUE(ledger_.Find(t)->status.ok()) << ledger_.Find(t)->status;
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.buffers_enqueued, 1u) << "a message is one buffer";
  EXPECT_EQ(s.buffers_released, 1u);
  EXPECT_EQ(s.bytes_enqueued, m->bytes.size());
  EXPECT_EQ(s.bytes_copied, 100 + 3 * K + 200 + 1);
  EXPECT_EQ(s.bytes_zero_copy, 84 * K);
  EXPECT_EQ(s.notifications, 2u);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kWritev)], 1u);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kSendZc)], 2u);
  EXPECT_EQ(s.ops[static_cast<int>(OpKind::kSend)], 2u);
  const RingStats rs = executor_->stats();
  EXPECT_EQ(rs.totals.buffers_enqueued, 1u);
  EXPECT_EQ(rs.totals.bytes_enqueued, m->bytes.size());
}

TEST_F(MessageFaultTest, PlainThenMessageThenPlainIsOneChainByThreshold) {
  Make();
  const ConnectionId c = Attach(Options(16 * K));
  const std::vector<uint64_t> before = Send(c, {4 * K, 64 * K});
  const auto m = MakeTestMessage({2 * K, 5 * K, 64 * K, 3 * K, 64 * K}, 501);
  const uint64_t t = SendMessage(c, *m);
  const std::vector<uint64_t> after = Send(c, {K, 64 * K, 100});
  ASSERT_TRUE(executor_->Flush().ok());
  const std::vector<const SqeRecord*> sqes = SqesOn(Fd(c));
  ASSERT_FALSE(sqes.empty());
  for (size_t i = 0; i < sqes.size(); ++i) {
    EXPECT_EQ(sqes[i]->chain, sqes[0]->chain) << i;
    EXPECT_EQ(sqes[i]->submit_call, sqes[0]->submit_call) << i;
    EXPECT_EQ((sqes[i]->flags & IOSQE_IO_LINK) != 0, i + 1 < sqes.size()) << i;
  }
  // Copy ops for the pieces under 16K, zero-copy ones for the 64K pieces,
  // on both sides of the plain/message boundaries.
  ExpectKindsFollowThreshold(Fd(c), 16 * K);
  // The message's [2K, 5K] is one writev; its 64K pieces go zero-copy.
  bool message_writev = false;
  size_t message_zc = 0;
  for (const SqeRecord* r : sqes) {
    if (r->iovs.empty() || !m->Holds(r->iovs[0])) continue;
    if (r->opcode == IORING_OP_WRITEV && r->iovs.size() == 2) {
      message_writev = true;
    }
    message_zc += FakeRing::IsZeroCopyOpcode(r->opcode);
  }
  EXPECT_TRUE(message_writev);
  EXPECT_EQ(message_zc, 2u);
  size_t message_pieces = 0;
  for (const SqeRecord* r : sqes) {
    for (const iovec& piece : r->iovs) message_pieces += m->Holds(piece);
  }
  EXPECT_EQ(message_pieces, m->message->size());
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  for (uint64_t token : before) EXPECT_EQ(Releases(token), 1);
  for (uint64_t token : after) EXPECT_EQ(Releases(token), 1);
  EXPECT_EQ(Releases(t), 1);
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.buffers_enqueued, 6u);
  EXPECT_EQ(s.buffers_released, 6u);
  EXPECT_EQ(s.bytes_enqueued, expected_[c.value].size());
  EXPECT_EQ(s.bytes_copied + s.bytes_zero_copy, expected_[c.value].size());
  EXPECT_EQ(s.chains, 1u);
}

// For every byte offset k inside a small message (with and without a plain
// buffer before it), the peer takes exactly k bytes of it and then stops: the
// send goes short (or the next op waits), and the stream goes on from byte k.
TEST_F(MessageFaultTest, ShortSendAtEveryOffsetOfAMessageResumesThere) {
  FakeRingOptions ro;
  ro.sq_entries = 256;
  Make(ro);
  // Threshold 4: the 5- and 4-byte buffers go zero-copy.
  const std::vector<size_t> sizes = {3, 1, 5, 2, 4, 1};
  std::vector<std::unique_ptr<TestMessage>> messages;
  struct Case {
    ConnectionId c;
    size_t prefix;
    uint64_t k;
    uint64_t token;
    const TestMessage* m;
  };
  std::vector<Case> cases;
  for (size_t prefix : {size_t{0}, size_t{10}}) {
    for (uint64_t k = 1; k < 16; ++k) {
      const ConnectionId c = Attach(Options(4));
      messages.push_back(MakeTestMessage(sizes, 600 + cases.size()));
      ring_->SetCapacity(Fd(c), static_cast<int64_t>(prefix + k));
      if (prefix > 0) Send(c, {prefix});
      const uint64_t t = SendMessage(c, *messages.back());
      cases.push_back({c, prefix, k, t, messages.back().get()});
    }
  }
  Pump(20);
  for (const Case& x : cases) {
    ASSERT_EQ(ring_->received(Fd(x.c)).size(), x.prefix + x.k)
        << "prefix " << x.prefix << " k " << x.k;
    EXPECT_EQ(Releases(x.token), 0);
    ring_->AddCapacity(Fd(x.c), 1 << 20);
  }
  Pump();
  for (const Case& x : cases) {
    SCOPED_TRACE(absl::StrCat("prefix ", x.prefix, " k ", x.k));
    ExpectExact(x.c);
    EXPECT_EQ(Releases(x.token), 1);
    EXPECT_TRUE(ledger_.Find(x.token)->status.ok());
    // Some op, after the peer stopped, starts at byte k of the message.
    bool found = false;
    for (const SqeRecord* r : SqesOn(Fd(x.c))) {
      if (!r->iovs.empty() && r->iovs[0].iov_base == x.m->ByteAt(x.k)) {
        found = true;
      }
      for (const iovec& piece : r->iovs) {
        if (piece.iov_len == 0) continue;
        if (x.prefix == 0) {
          EXPECT_TRUE(x.m->Holds(piece));
        }
      }
    }
    EXPECT_TRUE(found) << "no op starts at byte " << x.k;
    EXPECT_EQ(executor_->connection_stats(x.c)->buffers_released,
              x.prefix > 0 ? 2u : 1u);
  }
  CheckNoViolations();
}

// The same, one byte at a time: every byte of the message after a resume.
TEST_F(MessageFaultTest, OneByteAtATimeThroughMessagesStaysExact) {
  Make();
  const ConnectionId c = Attach(Options(4));
  const auto m1 = MakeTestMessage({3, 1, 5, 2, 4, 1}, 700);
  const auto m2 = MakeTestMessage({6, 1, 1, 9}, 701);
  ring_->SetCapacity(Fd(c), 0);
  Send(c, {7});
  const uint64_t t1 = SendMessage(c, *m1);
  Send(c, {2, 5});
  const uint64_t t2 = SendMessage(c, *m2);
  const size_t total = expected_[c.value].size();
  for (size_t i = 0; i < 10 * total && !executor_->Idle(c); ++i) {
    Pump(3);
    ring_->AddCapacity(Fd(c), 1);
  }
  Pump();
  ExpectExact(c);
  EXPECT_EQ(Releases(t1), 1);
  EXPECT_EQ(Releases(t2), 1);
  EXPECT_TRUE(executor_->Idle(c));
  CheckNoViolations();
  EXPECT_GT(executor_->connection_stats(c)->short_sends, 5u);
}

TEST_F(MessageFaultTest, ZeroCopyMessageIsKeptUntilItsLastNotification) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  auto m = MakeTestMessage({64 * K, 100, 32 * K, 64 * K}, 502);
  const uint64_t t = SendMessage(c, *m);
  // The caller lets go of its reference: the executor keeps one until the
  // release.
  const std::weak_ptr<const PreparedMessage> weak = m->message;
  m->message.reset();
  Pump(5);
  ExpectExact(c);
  EXPECT_EQ(Releases(t), 0);
  EXPECT_FALSE(executor_->Idle(c));
  EXPECT_FALSE(weak.expired());
  ASSERT_EQ(ring_->held_notifications().size(), 2u);
  ring_->DeliverNotification(1);
  Pump(5);
  EXPECT_EQ(Releases(t), 0) << "one zero-copy op of it is still referenced";
  EXPECT_FALSE(weak.expired());
  ring_->DeliverAllNotifications();
  Pump();
  EXPECT_EQ(Releases(t), 1);
  EXPECT_TRUE(ledger_.Find(t)->status.ok());
  EXPECT_TRUE(executor_->Idle(c));
  EXPECT_TRUE(weak.expired()) << "the executor keeps no reference after";
  CheckNoViolations();
}

TEST_F(MessageFaultTest, SendErrorMidMessageReleasesItOnceWithTheError) {
  Make();
  const ConnectionId a = Attach();
  const ConnectionId b = Attach();
  const ConnectionId c = Attach();
  const auto ma = MakeTestMessage({4 * K, 64 * K, 4 * K, 64 * K}, 503);
  const auto mb = MakeTestMessage({4 * K, 64 * K, 4 * K, 64 * K}, 504);
  const auto mc = MakeTestMessage({4 * K, 64 * K, 4 * K, 64 * K}, 505);
  // a: the peer takes 15K (into the first 64K piece of the message) and then
  // resets.
  ring_->SetCapacity(Fd(a), 15 * K);
  const uint64_t before_a = Send(a, {K})[0];
  const uint64_t ta = SendMessage(a, *ma);
  const uint64_t after_a = Send(a, {2 * K})[0];
  // c: its second zero-copy op fails -EPIPE.
  FakeFault pipe{IORING_OP_SEND_ZC, -1, -EPIPE};
  pipe.more = false;
  pipe.notify = false;
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_SEND_ZC});
  ring_->AddFault(Fd(c), pipe);
  const uint64_t tc = SendMessage(c, *mc);
  const uint64_t after_c = Send(c, {3 * K})[0];
  // b: unaffected.
  Send(b, {K});
  const uint64_t tb = SendMessage(b, *mb);
  Pump(5);
  EXPECT_EQ(Releases(ta), 0);
  ring_->SetSocketError(Fd(a), -ECONNRESET);
  Pump();
  const absl::Status ea = executor_->ConnectionError(a);
  const absl::Status ec = executor_->ConnectionError(c);
  EXPECT_FALSE(ea.ok());
  EXPECT_FALSE(ec.ok());
  EXPECT_EQ(Releases(before_a), 1);
  EXPECT_TRUE(ledger_.Find(before_a)->status.ok());
  for (auto [token, error] : {std::pair{ta, ea}, std::pair{after_a, ea},
                              std::pair{tc, ec}, std::pair{after_c, ec}}) {
    EXPECT_EQ(Releases(token), 1) << token;
    EXPECT_EQ(ledger_.Find(token)->status, error) << token;
  }
  ExpectPrefix(a);
  ExpectPrefix(c);
  EXPECT_EQ(ring_->received(Fd(a)).size(), 15 * K);
  EXPECT_EQ(ring_->received(Fd(c)).size(), 4 * K + 64 * K + 4 * K);
  ExpectExact(b);
  EXPECT_EQ(Releases(tb), 1);
  EXPECT_TRUE(executor_->ConnectionError(b).ok());
  const SendStats sa = *executor_->connection_stats(a);
  EXPECT_EQ(sa.buffers_released, 1u);
  EXPECT_EQ(sa.buffers_released_failed, 2u);
  // Enqueueing on a failed connection is refused, naming the error.
  const absl::Status again = executor_->EnqueueMessage(a, mb->message, 999);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_TRUE(absl::StrContains(again.message(), "failed")) << again;
  CheckNoViolations();
}

TEST_F(MessageFaultTest, CloseWithAMessageInFlightCancelsItOnce) {
  Make();
  const ConnectionId c = Attach();
  const ConnectionId other = Attach();
  ring_->SetCapacity(Fd(c), 0);  // the peer reads nothing: the chain blocks
  const auto m1 = MakeTestMessage({64 * K, K, 64 * K}, 506);
  const auto m2 = MakeTestMessage({5 * K, 7}, 507);
  const auto m3 = MakeTestMessage({5 * K, 64 * K, 7}, 508);
  const uint64_t t1 = SendMessage(c, *m1);
  Pump(5);
  EXPECT_GT(ring_->blocked_ops(), 0u);
  const uint64_t t2 = SendMessage(c, *m2);  // not handed to the kernel
  const uint64_t t3 = SendMessage(other, *m3);
  ASSERT_TRUE(executor_->Close(c).ok());
  EXPECT_EQ(Releases(t2), 1) << "never handed to the kernel";
  EXPECT_EQ(ledger_.Find(t2)->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(executor_->EnqueueMessage(c, m2->message, 77).code(),
            absl::StatusCode::kFailedPrecondition)
      << "closed";
  Pump();
  EXPECT_EQ(ring_->blocked_ops(), 0u);
  EXPECT_TRUE(executor_->Idle(c));
  EXPECT_EQ(Releases(t1), 1);
  EXPECT_EQ(ledger_.Find(t1)->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(executor_->EnqueueMessage(c, m2->message, 78).code(),
            absl::StatusCode::kNotFound);
  ExpectExact(other);
  EXPECT_EQ(Releases(t3), 1);
  EXPECT_EQ(m1->message.use_count(), 1) << "the executor let go of it";
  EXPECT_EQ(m2->message.use_count(), 1);
  CheckNoViolations();
}

TEST_F(MessageFaultTest, AbortGivesBackAMessageAwaitingNotification) {
  Make();
  const ConnectionId c = Attach();
  const ConnectionId other = Attach();
  ring_->set_hold_notifications(true);
  const auto m = MakeTestMessage({64 * K, 64 * K, 9}, 509);
  const uint64_t t = SendMessage(c, *m);
  Pump(5);
  ExpectExact(c);
  ASSERT_EQ(Releases(t), 0);
  ASSERT_TRUE(executor_->Abort(c).ok());
  EXPECT_EQ(ring_->resets(Fd(c)), 1);
  Pump();
  EXPECT_TRUE(executor_->Idle(c));
  EXPECT_EQ(Releases(t), 1);
  EXPECT_FALSE(KernelMayStillRead(ledger_.Find(t)->status));
  ring_->set_hold_notifications(false);
  const auto m2 = MakeTestMessage({64 * K, 3}, 510);
  const uint64_t t2 = SendMessage(other, *m2);
  Pump();
  ExpectExact(other);
  EXPECT_EQ(Releases(t2), 1);
  CheckNoViolations();
}

TEST_F(MessageFaultTest, ShutdownHandsBackAHeldMessageAsKernelMayStillRead) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  const auto m = MakeTestMessage({64 * K, 100, 64 * K}, 511);
  const uint64_t t = SendMessage(c, *m);
  const uint64_t plain = Send(c, {32 * K})[0];
  const uint64_t copied = Send(c, {100})[0];
  Pump(5);
  ExpectExact(c);
  EXPECT_EQ(Releases(copied), 1);
  const absl::Status s = executor_->Shutdown(absl::Milliseconds(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "2 buffer(s)")) << s;
  EXPECT_TRUE(absl::StrContains(
      s.message(), absl::StrCat(m->bytes.size() + 32 * K, " bytes")))
      << s;
  for (uint64_t token : {t, plain}) {
    ASSERT_EQ(Releases(token), 1);
    EXPECT_TRUE(KernelMayStillRead(ledger_.Find(token)->status));
  }
  EXPECT_EQ(executor_->stats().totals.buffers_kernel_may_read, 2u);
  EXPECT_EQ(executor_->EnqueueMessage(c, m->message, 5).code(),
            absl::StatusCode::kFailedPrecondition);
  // The notifications come after: the memory was kept, unchanged.
  ring_->DeliverAllNotifications();
  CheckNoViolations();
}

TEST_F(MessageFaultTest, SameMessageManyTimesOnOneAndSeveralConnections) {
  Make();
  ring_->set_hold_notifications(true);
  const auto m = MakeTestMessage({5 * K, 64 * K, 7, 20 * K}, 512);
  std::vector<ConnectionId> conns;
  for (int i = 0; i < 3; ++i) conns.push_back(Attach());
  std::vector<uint64_t> message_tokens;
  std::vector<uint64_t> plain_tokens;
  for (int round = 0; round < 5; ++round) {
    for (size_t i = 0; i < conns.size(); ++i) {
      plain_tokens.push_back(Send(conns[i], {100u + round})[0]);
      message_tokens.push_back(SendMessage(conns[i], *m, /*poison=*/false));
      if (i == 0) {
        // Back to back: one chain runs from one message into the next.
        message_tokens.push_back(SendMessage(conns[i], *m, false));
      }
    }
  }
  Pump(50);
  for (ConnectionId c : conns) ExpectExact(c);
  for (uint64_t token : message_tokens) {
    EXPECT_EQ(Releases(token), 0) << "zero-copy pieces await notification";
  }
  for (uint64_t token : plain_tokens) EXPECT_EQ(Releases(token), 1);
  ring_->DeliverAllNotifications(/*reverse=*/true);
  Pump();
  for (uint64_t token : message_tokens) {
    EXPECT_EQ(Releases(token), 1);
    EXPECT_TRUE(ledger_.Find(token)->status.ok());
  }
  for (ConnectionId c : conns) EXPECT_TRUE(executor_->Idle(c));
  EXPECT_EQ(executor_->connection_stats(conns[0])->buffers_enqueued, 15u);
  EXPECT_EQ(executor_->connection_stats(conns[1])->buffers_enqueued, 10u);
  EXPECT_EQ(m->message.use_count(), 1);
  CheckNoViolations();
}

TEST_F(MessageFaultTest, ReleaseCallbackMayEnqueueTheMessageAgain) {
  const auto m = MakeTestMessage({3 * K, 64 * K, 11}, 513);
  std::vector<ConnectionId> conns;
  int again = 0;
  ExecutorOptions eo;
  eo.on_release_batch = [this, &m, &conns, &again,
                         inner = ledger_.batch_callback()](
                            ConnectionId id, absl::Span<const uint64_t> tokens,
                            const absl::Status& status) {
    inner(id, tokens, status);
    EXPECT_TRUE(status.ok()) << status;
    if (id != conns[0] || again >= 8) return;
    ++again;
    // The same message, on this connection and on the other one.
    for (ConnectionId to : conns) SendMessage(to, *m, /*poison=*/false);
    EXPECT_EQ(executor_->Poll(absl::ZeroDuration()).status().code(),
              absl::StatusCode::kFailedPrecondition);
  };
  Make(FakeRingOptions(), eo);
  conns.push_back(Attach());
  conns.push_back(Attach());
  SendMessage(conns[0], *m, false);
  Pump();
  EXPECT_EQ(again, 8);
  for (ConnectionId c : conns) ExpectExact(c);
  EXPECT_EQ(ring_->received(Fd(conns[0])).size(), 9 * m->bytes.size());
  EXPECT_EQ(ring_->received(Fd(conns[1])).size(), 8 * m->bytes.size());
  EXPECT_EQ(ledger_.released(), 17u);
  CheckNoViolations();
}

// Chains of at most 1, 2 or 3 ops: a message's chain is cut inside it and
// continued from the op where it stopped; the same message under the three
// limits (plans kept per limit), and one of its own on each.
TEST_F(MessageFaultTest, SmallChainLimitsCutAMessageAndContinueIt) {
  Make();
  const auto shared = MakeTestMessage({4 * K, 64 * K, 4 * K, 1, 20 * K}, 514);
  std::vector<std::unique_ptr<TestMessage>> own;
  std::vector<std::pair<ConnectionId, uint32_t>> conns;
  for (uint32_t limit : {1u, 2u, 3u}) {
    ConnectionOptions o = Options();
    o.plan.max_ops_per_chain = limit;
    conns.push_back({Attach(o), limit});
  }
  for (int round = 0; round < 3; ++round) {
    for (const auto& [c, limit] : conns) {
      Send(c, {K});
      SendMessage(c, *shared, /*poison=*/false);
      own.push_back(MakeTestMessage(
          {4 * K, 64 * K, 4 * K, 64 * K, 4 * K, 1, 20 * K}, 520 + own.size()));
      SendMessage(c, *own.back());
      Send(c, {2 * K, 64 * K});
    }
    Pump(round == 1 ? 1 : 1000);
  }
  Pump();
  for (const auto& [c, limit] : conns) {
    SCOPED_TRACE(absl::StrCat("max_ops_per_chain ", limit));
    ExpectExact(c);
    for (const auto& [chain, ops] : ChainSizes(Fd(c))) {
      EXPECT_LE(ops, static_cast<int>(limit)) << "chain " << chain;
    }
    EXPECT_GT(ChainSizes(Fd(c)).size(), 10u);
    const SendStats s = *executor_->connection_stats(c);
    EXPECT_EQ(s.buffers_enqueued, 15u);
    EXPECT_EQ(s.buffers_released, 15u);
  }
  CheckNoViolations();
}

// A notification cap that holds two 64K zero-copy ops: a message's chain
// stops at the cap, waits for its own notifications, and goes on.
TEST_F(MessageFaultTest, TinyNotificationCapCutsAMessageChainAndGoesOn) {
  ExecutorOptions eo;
  eo.max_bytes_awaiting_notification = 160 * K;
  Make(FakeRingOptions(), eo);
  const uint64_t cap = executor_->max_bytes_awaiting_notification();
  ASSERT_EQ(cap, 160 * K);
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  const auto m = MakeTestMessage(
      {64 * K, 10, 64 * K, 10, 64 * K, 10, 64 * K, 10, 64 * K}, 530);
  const auto big = MakeTestMessage({512 * K, 3}, 531);  // above the cap
  const uint64_t t = SendMessage(c, *m);
  const uint64_t tb = SendMessage(c, *big);
  int rounds = 0;
  while (!executor_->Idle(c) && rounds < 200) {
    Pump(3);
    EXPECT_LE(ring_->bytes_awaiting_notification(), cap);
    EXPECT_LE(executor_->stats().totals.bytes_awaiting_notification, cap);
    ring_->DeliverAllNotifications();
    ++rounds;
  }
  Pump();
  ExpectExact(c);
  EXPECT_EQ(Releases(t), 1);
  EXPECT_EQ(Releases(tb), 1);
  EXPECT_GT(ChainSizes(Fd(c)).size(), 2u) << "the cap cut the chain";
  for (const SqeRecord* r : SqesOn(Fd(c))) {
    if (FakeRing::IsZeroCopyOpcode(r->opcode)) {
      EXPECT_LE(r->bytes_requested, cap);
    }
  }
  EXPECT_LE(executor_->stats().totals.peak_bytes_awaiting_notification, cap);
  CheckNoViolations();
}

// One message shared by connections whose options differ: each gets the
// plan of its own options, however their sends interleave.
TEST_F(MessageFaultTest, ConnectionsWithOtherOptionsGetTheirOwnPlans) {
  Make();
  const ConnectionId a = Attach(Options(16 * K));
  const ConnectionId never = Attach(Options(PlanOptions::kNever));
  const ConnectionId all_zc = Attach(Options(0));
  ConnectionOptions two = Options(16 * K, CopyOp::kSendmsg);
  two.plan.max_iovs_per_op = 2;
  const ConnectionId d = Attach(two);
  ConnectionOptions adaptive = Options(16 * K);
  adaptive.adaptive_zero_copy = true;
  adaptive.adaptive_copied_limit = 2;
  adaptive.adaptive_retry_chains = 0;
  const ConnectionId e = Attach(adaptive);
  ring_->SetCopied(Fd(e), true);  // the kernel copies: adaptive mode gives up
  const auto m =
      MakeTestMessage({K, 2 * K, 64 * K, 3 * K, 4 * K, 20 * K, 5, 6, 7}, 540);
  const std::vector<ConnectionId> conns = {a, never, all_zc, d, e};
  for (int round = 0; round < 6; ++round) {
    for (ConnectionId c : conns) {
      SendMessage(c, *m, /*poison=*/false);
      Pump();
    }
  }
  for (ConnectionId c : conns) ExpectExact(c);
  ExpectKindsFollowThreshold(Fd(a), 16 * K);
  for (const SqeRecord* r : SqesOn(Fd(never))) {
    EXPECT_FALSE(FakeRing::IsZeroCopyOpcode(r->opcode));
  }
  EXPECT_FALSE(executor_->ZeroCopyEnabled(never));
  for (const SqeRecord* r : SqesOn(Fd(all_zc))) {
    EXPECT_TRUE(FakeRing::IsZeroCopyOpcode(r->opcode));
  }
  for (const SqeRecord* r : SqesOn(Fd(d))) {
    EXPECT_NE(r->opcode, IORING_OP_WRITEV) << "copy_op is sendmsg";
    EXPECT_LE(r->iov_count, 2u);
  }
  EXPECT_FALSE(executor_->ZeroCopyEnabled(e));
  EXPECT_EQ(executor_->connection_stats(e)->adaptive_disabled, 1u);
  // The last message on e went by copy.
  const std::vector<const SqeRecord*> on_e = SqesOn(Fd(e));
  ASSERT_FALSE(on_e.empty());
  EXPECT_FALSE(FakeRing::IsZeroCopyOpcode(on_e.back()->opcode));
  size_t zc_on_e = 0;
  for (const SqeRecord* r : on_e)
    zc_on_e += FakeRing::IsZeroCopyOpcode(r->opcode);
  EXPECT_LT(zc_on_e, 6u * 2) << "after two copied notifications, copies";
  EXPECT_EQ(ledger_.released(), 30u);
  CheckNoViolations();
}

TEST_F(MessageFaultTest, BadMessageInputIsRefusedAndDisturbsNothing) {
  Make();
  const ConnectionId c = Attach();
  Send(c, kExample);
  const auto m1 = MakeTestMessage({4 * K, 64 * K}, 550);
  SendMessage(c, *m1);
  Pump(1);
  const auto spare = MakeTestMessage({10}, 551);
  const absl::Status null = executor_->EnqueueMessage(c, nullptr, 1);
  EXPECT_EQ(null.code(), absl::StatusCode::kInvalidArgument) << null;
  EXPECT_TRUE(absl::StrContains(null.message(), "null")) << null;
  EXPECT_EQ(
      executor_->EnqueueMessage(ConnectionId{12345}, spare->message, 1).code(),
      absl::StatusCode::kNotFound);
  // Over max_queued_bytes: alone, and with what is queued.
  ConnectionOptions small = Options();
  small.max_queued_bytes = 1000;
  const ConnectionId limited = Attach(small);
  const auto big = MakeTestMessage({500, 501}, 552);
  const absl::Status over = executor_->EnqueueMessage(limited, big->message, 1);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted) << over;
  EXPECT_TRUE(absl::StrContains(over.message(), "1001")) << over;
  EXPECT_TRUE(absl::StrContains(over.message(), "1000")) << over;
  ring_->SetCapacity(Fd(limited), 0);  // what is queued stays queued
  const auto fits = MakeTestMessage({300, 300}, 553);
  const uint64_t t_fits = SendMessage(limited, *fits);
  const absl::Status twice =
      executor_->EnqueueMessage(limited, fits->message, 2);
  EXPECT_EQ(twice.code(), absl::StatusCode::kResourceExhausted) << twice;
  EXPECT_TRUE(absl::StrContains(twice.message(), "600 bytes queued")) << twice;
  const auto exact = MakeTestMessage({400}, 554);
  SendMessage(limited, *exact);  // 600 + 400 = 1000: at the limit, accepted
  EXPECT_EQ(big->message.use_count(), 1) << "a refused message is not kept";
  EXPECT_EQ(fits->message.use_count(), 2) << "kept once, for the one enqueue";
  // A failed connection refuses, naming its error.
  const ConnectionId failed = Attach();
  ring_->SetSocketError(Fd(failed), -ECONNRESET);
  Send(failed, {100});
  Pump(3);
  ASSERT_FALSE(executor_->ConnectionError(failed).ok());
  const absl::Status on_failed =
      executor_->EnqueueMessage(failed, spare->message, 3);
  EXPECT_EQ(on_failed.code(), absl::StatusCode::kFailedPrecondition)
      << on_failed;
  EXPECT_TRUE(absl::StrContains(on_failed.message(), "failed")) << on_failed;
  EXPECT_EQ(spare->message.use_count(), 1);
  // None of that touched the connection in progress, nor the limited one.
  Send(c, kExample);
  Pump();
  ExpectExact(c);
  EXPECT_TRUE(executor_->ConnectionError(c).ok());
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.buffers_enqueued, 11u);
  EXPECT_EQ(s.buffers_released, 11u);
  const SendStats sl = *executor_->connection_stats(limited);
  EXPECT_EQ(sl.buffers_enqueued, 2u);
  EXPECT_EQ(sl.bytes_enqueued, 1000u);
  ring_->AddCapacity(Fd(limited), 1 << 20);
  Pump();
  ExpectExact(limited);
  EXPECT_EQ(Releases(t_fits), 1);
  CheckNoViolations();
  ASSERT_TRUE(executor_->Close(failed).ok());
  Pump();
  EXPECT_TRUE(executor_->Shutdown(absl::Milliseconds(1)).ok());
  EXPECT_EQ(executor_->EnqueueMessage(c, spare->message, 4).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(MessageFaultTest, EnomemInsideAMessageResendsItByCopy) {
  Make();
  const ConnectionId c = Attach();
  FakeFault f{IORING_OP_SEND_ZC, -1, -ENOMEM};
  f.more = false;
  f.notify = false;
  ring_->AddFault(Fd(c), f);
  const auto m = MakeTestMessage({K, 64 * K, 2 * K, 32 * K}, 560);
  const uint64_t t = SendMessage(c, *m);
  const uint64_t after = Send(c, {64 * K})[0];
  Pump();
  ExpectExact(c);
  EXPECT_EQ(Releases(t), 1);
  EXPECT_EQ(Releases(after), 1);
  EXPECT_TRUE(ledger_.Find(t)->status.ok());
  EXPECT_EQ(executor_->connection_stats(c)->fallbacks_enomem, 1u);
  CheckNoViolations();
}

// A SENDMSG_ZC over two whole buffers of the message (its own iovecs) gives
// up after 70000 bytes: the next chain starts 70000 bytes in, inside the
// second buffer.
TEST_F(MessageFaultTest, ShortSendInsideABorrowedOpResumesAtTheByte) {
  Make();
  const ConnectionId c = Attach();
  ring_->set_hold_notifications(true);
  ring_->AddFault(Fd(c), FakeFault{IORING_OP_SENDMSG_ZC, 70000, -EAGAIN});
  const auto m = MakeTestMessage({64 * K, 64 * K, 100}, 561);
  const uint64_t t = SendMessage(c, *m);
  Pump(20);
  ExpectExact(c);
  const std::vector<const SqeRecord*> sqes = SqesOn(Fd(c));
  ASSERT_GE(sqes.size(), 3u);
  EXPECT_EQ(sqes[0]->opcode, IORING_OP_SENDMSG_ZC);
  EXPECT_EQ(sqes[0]->res, 70000);
  EXPECT_EQ(sqes[1]->res, -ECANCELED);
  EXPECT_EQ(sqes[2]->chain, sqes[0]->chain + 1);
  EXPECT_EQ(sqes[2]->iovs[0].iov_base, m->ByteAt(70000));
  EXPECT_EQ(Releases(t), 0);
  ring_->DeliverAllNotifications();
  Pump();
  EXPECT_EQ(Releases(t), 1);
  EXPECT_EQ(executor_->connection_stats(c)->chains_resumed, 1u);
  CheckNoViolations();
}

TEST_F(MessageFaultTest, EopnotsuppInsideAMessageResendsItByCopy) {
  Make();
  const ConnectionId c = Attach();
  ring_->SetZeroCopySupported(Fd(c), false);
  const auto m = MakeTestMessage({K, 64 * K, 2 * K, 64 * K}, 562);
  const uint64_t t = SendMessage(c, *m);
  Pump();
  ExpectExact(c);
  EXPECT_EQ(Releases(t), 1);
  EXPECT_FALSE(executor_->ZeroCopyEnabled(c));
  EXPECT_EQ(executor_->connection_stats(c)->fallbacks_unsupported, 1u);
  CheckNoViolations();
}

TEST_F(MessageFaultTest, RegisteredMessageMemoryUsesFixedBufferOps) {
  Make();
  const auto m = MakeTestMessage({64 * K, 100, 64 * K, 64 * K}, 563);
  const struct iovec region = {m->arena.get(), m->arena_size};
  ASSERT_TRUE(executor_->RegisterBuffers({&region, 1}).ok());
  const ConnectionId c = Attach();
  const uint64_t t = SendMessage(c, *m);
  Pump();
  ExpectExact(c);
  EXPECT_EQ(Releases(t), 1);
  size_t zc = 0;
  for (const SqeRecord* r : SqesOn(Fd(c))) {
    if (!FakeRing::IsZeroCopyOpcode(r->opcode)) continue;
    ++zc;
    EXPECT_NE(r->ioprio & IORING_RECVSEND_FIXED_BUF, 0) << int{r->opcode};
  }
  EXPECT_EQ(zc, 2u);
  EXPECT_EQ(executor_->connection_stats(c)->fixed_buffer_ops, 2u);
  CheckNoViolations();
}

// More messages than the plan cache keeps, between sends of one long-lived
// message on connections with two sets of options.
TEST_F(MessageFaultTest, ManyMessagesOverflowThePlanCacheHarmlessly) {
  Make();
  const ConnectionId a = Attach(Options(16 * K));
  const ConnectionId b = Attach(Options(PlanOptions::kNever));
  const auto kept = MakeTestMessage({20 * K, 30, 40 * K}, 570);
  std::vector<unsigned char> data(10 + 20 * K + 64);
  for (size_t i = 0; i < data.size(); ++i) data[i] = PatternByte(571, i);
  for (int i = 0; i < 5000; ++i) {
    // A message of its own each time, over the same memory.
    const size_t skip = static_cast<size_t>(i % 64);
    const std::vector<iovec> iovs = {{data.data() + skip, 10},
                                     {data.data() + skip + 10, 20 * K}};
    absl::StatusOr<std::shared_ptr<const PreparedMessage>> one =
        PreparedMessage::Create(iovs);
    ASSERT_TRUE(one.ok());
    const ConnectionId c = i % 2 ? a : b;
    const uint64_t token = ledger_.Expect(c, nullptr, 0);
    ASSERT_TRUE(executor_->EnqueueMessage(c, *one, token).ok());
    expected_[c.value].append(reinterpret_cast<const char*>(data.data() + skip),
                              10 + 20 * K);
    if (i % 100 == 0) {
      SendMessage(a, *kept, /*poison=*/false);
      SendMessage(b, *kept, /*poison=*/false);
    }
    if (i % 10 == 0) Pump();
  }
  Pump();
  ExpectExact(a);
  ExpectExact(b);
  for (const SqeRecord* r : SqesOn(Fd(b))) {
    EXPECT_FALSE(FakeRing::IsZeroCopyOpcode(r->opcode));
  }
  ExpectKindsFollowThreshold(Fd(a), 16 * K);
  CheckNoViolations();
}

// The second zero-copy op of a message fails -ENOMEM after the first went
// out: the rest of that message (from the exact byte) goes by copy, the
// plain buffers around it as planned.
TEST_F(MessageFaultTest, EnomemMidMessageResendsItsRestByCopy) {
  Make();
  const ConnectionId c = Attach();
  FakeFault ok{IORING_OP_SEND_ZC};
  FakeFault f{IORING_OP_SEND_ZC, -1, -ENOMEM};
  f.more = false;
  f.notify = false;
  ring_->AddFault(Fd(c), ok);  // the plain 64K buffer
  ring_->AddFault(Fd(c), ok);  // the message's first 64K piece
  ring_->AddFault(Fd(c), f);   // its second
  const uint64_t before = Send(c, {100, 64 * K})[1];
  const auto m = MakeTestMessage({K, 64 * K, 2 * K, 64 * K, 3 * K}, 580);
  const uint64_t t = SendMessage(c, *m);
  const uint64_t after = Send(c, {64 * K, 10})[0];
  Pump();
  ExpectExact(c);
  for (uint64_t token : {before, t, after}) {
    EXPECT_EQ(Releases(token), 1);
    EXPECT_TRUE(ledger_.Find(token)->status.ok());
  }
  // The resumed chain starts at the failed op's first byte: the message's
  // second 64K piece, sent by copy.
  const std::vector<const SqeRecord*> sqes = SqesOn(Fd(c));
  bool resent = false;
  for (const SqeRecord* r : sqes) {
    if (r->res == -ENOMEM) continue;
    if (!r->iovs.empty() &&
        r->iovs[0].iov_base == m->ByteAt(K + 64 * K + 2 * K)) {
      EXPECT_FALSE(FakeRing::IsZeroCopyOpcode(r->opcode));
      resent = true;
    }
  }
  EXPECT_TRUE(resent);
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.fallbacks_enomem, 1u);
  EXPECT_EQ(s.bytes_copied + s.bytes_zero_copy, expected_[c.value].size());
  CheckNoViolations();
}

// Two free submission-queue entries: every chain, through messages too, is
// cut to fit and continued.
TEST_F(MessageFaultTest, ChainsThroughMessagesFitTheFreeSubmissionQueue) {
  FakeRingOptions ro;
  ro.sq_entries = 2;
  Make(ro);
  const auto shared =
      MakeTestMessage({4 * K, 64 * K, 4 * K, 20 * K, 1, 64 * K}, 581);
  std::vector<ConnectionId> conns;
  for (int i = 0; i < 4; ++i) {
    conns.push_back(Attach());
    for (int j = 0; j < 3; ++j) {
      Send(conns.back(), {100u + j, 20 * K});
      SendMessage(conns.back(), *shared, /*poison=*/false);
    }
  }
  Pump();
  for (ConnectionId c : conns) {
    ExpectExact(c);
    for (const auto& [chain, ops] : ChainSizes(Fd(c))) {
      EXPECT_LE(ops, 2) << "chain " << chain;
    }
  }
  EXPECT_EQ(ledger_.released(), 4u * 9);
  CheckNoViolations();
}

// A completion queue of 4 entries: completions and notifications overflow
// and are retried; messages still come back once each.
TEST_F(MessageFaultTest, CompletionQueueOverflowWithMessages) {
  FakeRingOptions ro;
  ro.cq_entries = 4;
  Make(ro);
  std::vector<std::unique_ptr<TestMessage>> messages;
  std::vector<ConnectionId> conns;
  for (int i = 0; i < 3; ++i) {
    conns.push_back(Attach());
    for (int j = 0; j < 4; ++j) {
      messages.push_back(MakeTestMessage(
          {3 * K, 64 * K, 100, 32 * K, 7, 16 * K}, 590 + messages.size()));
      SendMessage(conns.back(), *messages.back());
      Send(conns.back(), {500});
    }
  }
  Pump();
  for (ConnectionId c : conns) {
    ExpectExact(c);
    EXPECT_TRUE(executor_->Idle(c));
  }
  EXPECT_EQ(ledger_.released(), 24u);
  CheckNoViolations();
}

// Released in runs: a message is one token of its run, in enqueue order.
TEST_F(MessageFaultTest, BatchReleaseRunsHoldMessagesInOrder) {
  std::vector<std::vector<uint64_t>> batches;
  ExecutorOptions eo;
  eo.on_release_batch = [&batches, inner = ledger_.batch_callback()](
                            ConnectionId id, absl::Span<const uint64_t> tokens,
                            const absl::Status& status) {
    batches.emplace_back(tokens.begin(), tokens.end());
    inner(id, tokens, status);
  };
  Make(FakeRingOptions(), eo);
  const ConnectionId c = Attach(Options(PlanOptions::kNever));
  std::vector<std::unique_ptr<TestMessage>> messages;
  std::vector<uint64_t> order;
  for (int i = 0; i < 10; ++i) {
    for (uint64_t t : Send(c, {100, 200})) order.push_back(t);
    messages.push_back(MakeTestMessage({50, 60, 70}, 600 + i));
    order.push_back(SendMessage(c, *messages.back()));
  }
  Pump();
  ExpectExact(c);
  std::vector<uint64_t> released;
  for (const std::vector<uint64_t>& b : batches) {
    ASSERT_FALSE(b.empty());
    released.insert(released.end(), b.begin(), b.end());
  }
  EXPECT_EQ(released, order) << "copies only: released in enqueue order";
  EXPECT_LT(batches.size(), order.size()) << "in runs, not one by one";
  CheckNoViolations();
}

// Shutdown resets a connection marked reset_on_shutdown that holds a
// message the kernel still references (its peer never acknowledges): the
// message comes back as sent, not as KernelMayStillRead, and Shutdown
// reports nothing left. (Shutdown waits half its timeout before the reset;
// nothing here depends on how long anything takes.)
TEST_F(MessageFaultTest, ShutdownResetsAMarkedConnectionHoldingAMessage) {
  Make();
  ConnectionOptions resettable = Options();
  resettable.reset_on_shutdown = true;
  const ConnectionId reset = Attach(resettable);
  ring_->set_hold_notifications(true);
  const auto m1 = MakeTestMessage({64 * K, 5, 64 * K}, 610);
  const uint64_t t1 = SendMessage(reset, *m1);
  Pump(5);
  ASSERT_EQ(Releases(t1), 0);
  const absl::Status s = executor_->Shutdown(absl::Seconds(2));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(ring_->resets(Fd(reset)), 1);
  ASSERT_EQ(Releases(t1), 1);
  EXPECT_FALSE(KernelMayStillRead(ledger_.Find(t1)->status));
  EXPECT_EQ(m1->message.use_count(), 1);
  ring_->DeliverAllNotifications();
  CheckNoViolations();
}

// Ops cut inside a message's buffers (max_bytes_per_op) and a message of
// thousands of tiny buffers (more than one op's iovecs): pieces that are not
// whole buffers are laid out of the message's iovecs, and nothing exceeds the
// limits.
TEST_F(MessageFaultTest, MessagesCutByOpLimitsStayExact) {
  Make();
  ConnectionOptions small_ops = Options();
  small_ops.plan.max_bytes_per_op = 5000;
  const ConnectionId a = Attach(small_ops);
  ConnectionOptions few_iovs = Options();
  few_iovs.plan.max_iovs_per_op = 3;
  const ConnectionId b = Attach(few_iovs);
  const ConnectionId c = Attach();
  const auto big = MakeTestMessage({64 * K, 3, 20000, 4999, 5001}, 620);
  const auto big_b = MakeTestMessage({64 * K, 3, 20000, 4999, 5001}, 621);
  std::vector<size_t> tiny(3000);
  for (size_t i = 0; i < tiny.size(); ++i) tiny[i] = 1 + i % 3;
  tiny[1500] = 64 * K;
  const auto many = MakeTestMessage(tiny, 622);
  const uint64_t ta = SendMessage(a, *big);
  const uint64_t tb = SendMessage(b, *big_b);
  const uint64_t tc = SendMessage(c, *many);
  Send(c, {10});
  Pump();
  for (ConnectionId id : {a, b, c}) ExpectExact(id);
  for (uint64_t t : {ta, tb, tc}) EXPECT_EQ(Releases(t), 1);
  for (const SqeRecord* r : SqesOn(Fd(a))) {
    EXPECT_LE(r->bytes_requested, 5000u);
    for (const iovec& piece : r->iovs) EXPECT_TRUE(big->Holds(piece));
  }
  for (const SqeRecord* r : SqesOn(Fd(b))) EXPECT_LE(r->iov_count, 3u);
  for (const SqeRecord* r : SqesOn(Fd(c))) {
    EXPECT_LE(r->iov_count, kMaxIovsPerOp);
  }
  EXPECT_GT(SqesOn(Fd(c)).size(), 3u);
  CheckNoViolations();
}

// A message of one byte, alone and between others.
TEST_F(MessageFaultTest, OneByteMessages) {
  Make();
  const ConnectionId c = Attach();
  std::vector<std::unique_ptr<TestMessage>> messages;
  for (int i = 0; i < 5; ++i) {
    messages.push_back(MakeTestMessage({1}, 630 + i));
    SendMessage(c, *messages.back());
    if (i % 2) Send(c, {1});
  }
  Pump();
  ExpectExact(c);
  EXPECT_EQ(ledger_.released(), 7u);
  EXPECT_EQ(executor_->connection_stats(c)->bytes_enqueued, 7u);
  CheckNoViolations();
}

// A chain through a message prepared but not yet submitted (the submit was
// refused): Close gives the message back at once, Cancelled, and its SQEs
// go out as NOPs; after that the connection takes nothing more.
TEST_F(MessageFaultTest, CloseUndoesAMessageChainNotYetSubmitted) {
  Make();
  const ConnectionId c = Attach();
  const ConnectionId other = Attach();
  const auto m = MakeTestMessage({4 * K, 64 * K, 100, 32 * K}, 640);
  const auto m2 = MakeTestMessage({4 * K, 64 * K, 100, 32 * K}, 641);
  const uint64_t plain = Send(c, {2 * K})[0];
  const uint64_t t = SendMessage(c, *m);
  const uint64_t t2 = SendMessage(other, *m2);
  ring_->InjectSubmitResult(-EBUSY);
  ASSERT_TRUE(executor_->Flush().ok());
  ASSERT_GT(ring_->sq_pending(), 0u);
  ASSERT_TRUE(executor_->Close(c).ok());
  for (uint64_t token : {plain, t}) {
    EXPECT_EQ(Releases(token), 1);
    EXPECT_TRUE(absl::IsCancelled(ledger_.Find(token)->status));
  }
  EXPECT_EQ(m->message.use_count(), 1);
  Pump();
  EXPECT_EQ(ring_->received(Fd(c)).size(), 0u);
  ExpectExact(other);
  EXPECT_EQ(Releases(t2), 1);
  CheckNoViolations();
}

// The same with Shutdown: nothing of the message goes out afterwards, and
// it comes back Aborted (the kernel never had it), not KernelMayStillRead.
TEST_F(MessageFaultTest, NothingOfAMessageGoesOutAfterShutdown) {
  Make();
  const ConnectionId c = Attach(Options(PlanOptions::kNever));
  const auto m = MakeTestMessage({4 * K, 4 * K, 4 * K}, 642);
  const uint64_t t = SendMessage(c, *m);
  ring_->InjectSubmitResult(-EBUSY);
  ASSERT_TRUE(executor_->Flush().ok());
  ASSERT_GT(ring_->sq_pending(), 0u);
  EXPECT_TRUE(executor_->Shutdown(absl::ZeroDuration()).ok());
  EXPECT_TRUE(absl::IsAborted(ledger_.Find(t)->status))
      << ledger_.Find(t)->status;
  const size_t logged = ring_->log().size();
  ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  EXPECT_EQ(ring_->log().size(), logged);
  EXPECT_EQ(ring_->received(Fd(c)).size(), 0u);
}

// Thousands of enqueues of one message on one connection, between plain
// buffers, with a slow reader and notifications held in bursts: the queue
// compacts and moves its storage under the messages (kept by seq), and the
// stream stays exact.
TEST_F(MessageFaultTest, ThousandsOfEnqueuesOfOneMessageUnderASlowReader) {
  Make();
  const ConnectionId c = Attach();
  const auto m = MakeTestMessage({300, 20 * K, 7, 1000}, 650);
  ring_->SetCapacity(Fd(c), 0);
  std::vector<uint64_t> tokens;
  for (int i = 0; i < 3000; ++i) {
    tokens.push_back(SendMessage(c, *m, /*poison=*/false));
    if (i % 3 == 0) tokens.push_back(Send(c, {50u + i % 7})[0]);
    if (i % 50 == 0) {
      ring_->set_hold_notifications(i % 100 == 0);
      Pump(2);
      ring_->AddCapacity(Fd(c), 37 * K + i);
      if (i % 100 == 50) ring_->DeliverAllNotifications();
    }
  }
  ring_->set_hold_notifications(false);
  ring_->DeliverAllNotifications();
  for (int round = 0; round < 5000 && !executor_->Idle(c); ++round) {
    ring_->AddCapacity(Fd(c), 64 * K);
    Pump(2);
  }
  ring_->DeliverAllNotifications();
  Pump();
  ExpectExact(c);
  EXPECT_TRUE(executor_->Idle(c));
  for (uint64_t t : tokens) EXPECT_EQ(Releases(t), 1) << t;
  EXPECT_EQ(m->message.use_count(), 1);
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.buffers_enqueued, tokens.size());
  EXPECT_EQ(s.buffers_released, tokens.size());
  EXPECT_GT(s.short_sends, 10u);
  CheckNoViolations();
}

}  // namespace
}  // namespace zcplan

// For the gather buffers a forced Shutdown leaves to the kernel on purpose.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace zcplan {
namespace {

// =============================================================================
// Gathered copies (ConnectionOptions::gather_bytes / gather_below)
// =============================================================================
//
// A copy op of small pieces goes as one IORING_OP_SEND of a copy of its bytes
// in a pooled per-chain buffer. Checked here through the fake's SQE log: which
// ops are gathered and which stay as planned, short sends of a gathered op at
// many byte offsets, errors, the copy being a snapshot, the pool shared by
// many connections with chains in flight, prepared messages, and Attach's
// limits. The three invariants of the file hold in every test.

namespace gather {

ConnectionOptions GatherOptions(uint64_t gather_bytes, uint32_t gather_below,
                                uint64_t threshold = PlanOptions::kNever,
                                CopyOp copy_op = CopyOp::kWritev) {
  ConnectionOptions o;
  o.plan.zc_threshold = threshold;
  o.plan.copy_op = copy_op;
  o.adaptive_zero_copy = false;
  o.gather_bytes = gather_bytes;
  o.gather_below = gather_below;
  return o;
}

// Sizes of small pieces: first, first + 1, ... first + 79, first again...
// (from 1: every CopySmall size class). `first` >= 1.
std::vector<size_t> SmallSizes(size_t count, size_t first = 1) {
  std::vector<size_t> sizes;
  for (size_t i = 0; i < count; ++i) sizes.push_back(first + i % 80);
  return sizes;
}

size_t Sum(const std::vector<size_t>& sizes) {
  size_t total = 0;
  for (size_t s : sizes) total += s;
  return total;
}

bool Inside(const void* p, const unsigned char* data, size_t length) {
  const unsigned char* q = static_cast<const unsigned char*>(p);
  return q >= data && q < data + length;
}

}  // namespace gather

class ExecutorGatherTest : public ExecutorFaultTest,
                           public testing::WithParamInterface<CopyOp> {
 protected:
  // The log records from `from` on.
  std::vector<SqeRecord> LogFrom(size_t from) {
    const std::vector<SqeRecord>& log = ring_->log();
    return std::vector<SqeRecord>(log.begin() + std::min(from, log.size()),
                                  log.end());
  }

  // True when `record`'s pieces point into none of `tokens`' buffers.
  bool PointsIntoNoBuffer(const SqeRecord& record,
                          const std::vector<uint64_t>& tokens) {
    for (const iovec& v : record.iovs) {
      for (uint64_t t : tokens) {
        if (gather::Inside(v.iov_base, Data(t), buffers_[t]->size())) {
          return false;
        }
      }
    }
    return true;
  }

  // Enqueues a prepared message of `sizes` on `id`, its bytes the
  // connection's pattern at the stream's end, the pieces cut from one arena
  // (kept until the test ends) and laid out in it in reverse order, so the
  // pieces are not contiguous in memory. Returns the token.
  uint64_t SendMessage(ConnectionId id, const std::vector<size_t>& sizes) {
    std::string& expected = expected_[id.value];
    const size_t total = gather::Sum(sizes);
    auto arena = std::make_unique<std::vector<unsigned char>>(total);
    std::vector<iovec> pieces;
    size_t end = total;  // pieces from the arena's end backwards
    for (size_t size : sizes) {
      end -= size;
      unsigned char* p = arena->data() + end;
      for (size_t i = 0; i < size; ++i) {
        p[i] = PatternByte(id.value, expected.size() + i);
      }
      expected.append(reinterpret_cast<const char*>(p), size);
      pieces.push_back({p, size});
    }
    absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
        PreparedMessage::Create(pieces);
    EXPECT_TRUE(m.ok()) << m.status();
    const uint64_t token = ledger_.Expect(id, arena->data(), total);
    const absl::Status s = executor_->EnqueueMessage(id, *m, token);
    EXPECT_TRUE(s.ok()) << s;
    buffers_[token] = std::move(arena);
    return token;
  }

  SendStats Stats(ConnectionId id) {
    absl::StatusOr<SendStats> s = executor_->connection_stats(id);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : SendStats();
  }

  static uint64_t Ops(const SendStats& s, OpKind kind) {
    return s.ops[static_cast<int>(kind)];
  }

  static int PlannedOpcode(CopyOp op) {
    return op == CopyOp::kWritev ? IORING_OP_WRITEV : IORING_OP_SENDMSG;
  }
  static OpKind PlannedKind(CopyOp op) {
    return op == CopyOp::kWritev ? OpKind::kWritev : OpKind::kSendmsg;
  }
};

INSTANTIATE_TEST_SUITE_P(CopyOps, ExecutorGatherTest,
                         testing::Values(CopyOp::kWritev, CopyOp::kSendmsg),
                         [](const testing::TestParamInfo<CopyOp>& info) {
                           return std::string(CopyOpName(info.param));
                         });

TEST_P(ExecutorGatherTest, SmallPiecesGoAsOneSendOfACopy) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam()));
  const std::vector<size_t> sizes = gather::SmallSizes(40);
  const std::vector<uint64_t> tokens = Send(c, sizes);
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  const std::vector<SqeRecord>& log = ring_->log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].opcode, IORING_OP_SEND);
  EXPECT_EQ(log[0].bytes_requested, gather::Sum(sizes));
  EXPECT_EQ(log[0].iov_count, 1u);
  EXPECT_EQ(log[0].msg_flags, unsigned{MSG_WAITALL | MSG_NOSIGNAL});
  EXPECT_EQ(log[0].res, static_cast<int32_t>(gather::Sum(sizes)));
  EXPECT_TRUE(PointsIntoNoBuffer(log[0], tokens))
      << "a gathered send reads the executor's copy, not the buffers";
  const SendStats s = Stats(c);
  EXPECT_EQ(s.gathered_ops, 1u);
  EXPECT_EQ(s.bytes_gathered, gather::Sum(sizes));
  EXPECT_EQ(Ops(s, OpKind::kSend), 1u);
  EXPECT_EQ(Ops(s, PlannedKind(GetParam())), 0u);
  EXPECT_EQ(s.bytes_copied, gather::Sum(sizes));
  EXPECT_EQ(s.buffers_released, sizes.size());
  for (uint64_t t : tokens) {
    EXPECT_EQ(Releases(t), 1);
    EXPECT_TRUE(ledger_.Find(t)->status.ok()) << ledger_.Find(t)->status;
  }
}

TEST_P(ExecutorGatherTest, OffByDefault) {
  Make();
  ConnectionOptions o = Options(PlanOptions::kNever, GetParam());
  ASSERT_EQ(o.gather_bytes, 0u);
  const ConnectionId c = Attach(o);
  Send(c, gather::SmallSizes(10));
  Pump();
  ASSERT_EQ(ring_->log().size(), 1u);
  EXPECT_EQ(ring_->log()[0].opcode, PlannedOpcode(GetParam()));
  EXPECT_EQ(Stats(c).gathered_ops, 0u);
  ExpectExact(c);
}

// The average of the op's pieces against gather_below: below it gathered,
// at or above it as planned.
TEST_P(ExecutorGatherTest, PiecesAveragingAtOrAboveGatherBelowStayAsPlanned) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(64 * K, 100, PlanOptions::kNever, GetParam()));
  struct Case {
    std::vector<size_t> sizes;
    bool gathered;
  };
  // Gathered when bytes < gather_below * pieces.
  const Case cases[] = {
      {{100, 100}, false},
      {{99, 101}, false},
      {{99, 100}, true},
      {{1, 199}, false},
      {{1, 198}, true},
      {{1, 200}, false},
      {{300, 1, 1}, false},
      {{297, 1, 1}, true},
      {{300, 1, 1, 1, 1, 1}, true},
      {{1, 1, 1, 397}, false},
      {{1, 1, 1, 396}, true},
      {{1, 1}, true},
  };
  uint64_t gathered = 0;
  uint64_t gathered_bytes = 0;
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::PrintToString(k.sizes));
    const size_t before = ring_->log().size();
    Send(c, k.sizes);
    Pump();
    const std::vector<SqeRecord> ops = LogFrom(before);
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(ops[0].bytes_requested, gather::Sum(k.sizes));
    if (k.gathered) {
      EXPECT_EQ(ops[0].opcode, IORING_OP_SEND);
      EXPECT_EQ(ops[0].iov_count, 1u);
      ++gathered;
      gathered_bytes += gather::Sum(k.sizes);
    } else {
      EXPECT_EQ(ops[0].opcode, PlannedOpcode(GetParam()));
      EXPECT_EQ(ops[0].iov_count, k.sizes.size());
    }
    EXPECT_EQ(Stats(c).gathered_ops, gathered);
    EXPECT_EQ(Stats(c).bytes_gathered, gathered_bytes);
  }
  ExpectExact(c);
  CheckNoViolations();
}

// Zero-copy ops and single-buffer sends are never gathered, whatever
// gather_below says; the copy ops between them are.
TEST_P(ExecutorGatherTest, ZeroCopyOpsAndSingleSendsAreNeverGathered) {
  Make();
  const ConnectionId c =
      Attach(gather::GatherOptions(1024 * K, 1 << 20, 16 * K, GetParam()));
  // A copy op of 4K + 4K, a SENDMSG_ZC of 16K + 32K, a SEND of 2K.
  const std::vector<uint64_t> tokens = Send(c, kExample);
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  const std::vector<SqeRecord>& log = ring_->log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].opcode, IORING_OP_SEND);
  EXPECT_EQ(log[0].bytes_requested, 8 * K);
  EXPECT_TRUE(PointsIntoNoBuffer(log[0], tokens));
  EXPECT_EQ(log[1].opcode, IORING_OP_SENDMSG_ZC);
  EXPECT_EQ(log[1].bytes_requested, 48 * K);
  EXPECT_EQ(log[2].opcode, IORING_OP_SEND);
  EXPECT_EQ(log[2].bytes_requested, 2 * K);
  ASSERT_EQ(log[2].iovs.size(), 1u);
  EXPECT_EQ(log[2].iovs[0].iov_base, Data(tokens[4]))
      << "a single-buffer send goes from the buffer itself";
  const SendStats s = Stats(c);
  EXPECT_EQ(s.gathered_ops, 1u);
  EXPECT_EQ(s.bytes_gathered, 8 * K);
  EXPECT_EQ(s.bytes_zero_copy, 48 * K);

  // All zero-copy: tiny pieces, still no gathering.
  const ConnectionId z =
      Attach(gather::GatherOptions(1024 * K, 1 << 20, 0, GetParam()));
  Send(z, gather::SmallSizes(20));
  Pump();
  ExpectExact(z);
  EXPECT_EQ(Stats(z).gathered_ops, 0u);
  EXPECT_EQ(Stats(z).bytes_gathered, 0u);
  EXPECT_EQ(Ops(Stats(z), OpKind::kSendmsgZc), 1u);
  CheckNoViolations();
}

TEST_P(ExecutorGatherTest, GatherBytesSmallerThanTheOpLeavesItAsPlanned) {
  Make();
  const ConnectionId c =
      Attach(gather::GatherOptions(119, 512, PlanOptions::kNever, GetParam()));
  Send(c, {60, 60});
  Pump();
  ASSERT_EQ(ring_->log().size(), 1u);
  EXPECT_EQ(ring_->log()[0].opcode, PlannedOpcode(GetParam()));
  EXPECT_EQ(Stats(c).gathered_ops, 0u);
  // Exactly gather_bytes fits.
  Send(c, {60, 59});
  Pump();
  ASSERT_EQ(ring_->log().size(), 2u);
  EXPECT_EQ(ring_->log()[1].opcode, IORING_OP_SEND);
  EXPECT_EQ(ring_->log()[1].bytes_requested, 119u);
  EXPECT_EQ(Stats(c).gathered_ops, 1u);
  EXPECT_EQ(Stats(c).bytes_gathered, 119u);
  ExpectExact(c);
  CheckNoViolations();
}

// Ops of four pieces each: the first ones up to gather_bytes are gathered
// into one send (a gathered op joins the gathered op before it), the rest of
// the chain goes as planned; the next chain gathers again.
TEST_P(ExecutorGatherTest, SeveralOpsOfAChainUpToGatherBytes) {
  Make();
  ConnectionOptions o =
      gather::GatherOptions(500, 512, PlanOptions::kNever, GetParam());
  o.plan.max_iovs_per_op = 4;
  const ConnectionId c = Attach(o);
  // 16 buffers of 50 bytes: 4 ops of 200 bytes; the first two (400 bytes)
  // fit in gather_bytes, the third does not.
  const std::vector<uint64_t> tokens = Send(c, std::vector<size_t>(16, 50));
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  std::vector<SqeRecord> log = LogFrom(0);
  ASSERT_EQ(log.size(), 3u);
  for (size_t i = 0; i < log.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(log[i].chain, log[0].chain) << "one chain";
    EXPECT_EQ(log[i].bytes_requested, i == 0 ? 400u : 200u);
    EXPECT_EQ(log[i].opcode,
              i == 0 ? IORING_OP_SEND : PlannedOpcode(GetParam()));
  }
  EXPECT_TRUE(PointsIntoNoBuffer(log[0], tokens));
  ASSERT_EQ(log[0].iovs.size(), 1u);
  SendStats s = Stats(c);
  EXPECT_EQ(s.gathered_ops, 1u);
  EXPECT_EQ(s.bytes_gathered, 400u);
  EXPECT_EQ(Ops(s, OpKind::kSend), 1u);
  EXPECT_EQ(Ops(s, PlannedKind(GetParam())), 2u);

  // The next chain starts with an empty gather buffer again.
  Send(c, std::vector<size_t>(16, 50));
  Pump();
  ExpectExact(c);
  log = LogFrom(3);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].opcode, IORING_OP_SEND);
  EXPECT_EQ(log[0].bytes_requested, 400u);
  EXPECT_EQ(log[1].opcode, PlannedOpcode(GetParam()));
  EXPECT_EQ(log[2].opcode, PlannedOpcode(GetParam()));
  s = Stats(c);
  EXPECT_EQ(s.gathered_ops, 2u);
  EXPECT_EQ(s.bytes_gathered, 800u);
  CheckNoViolations();
}

// A gathered op held by a reader that takes nothing, then let through a
// given number of bytes: nothing is released while the op is in flight, the
// buffers wholly sent are released once the op has completed (short), the
// rest go in a resumed chain that gathers from the exact byte, and the
// stream is exact. Every byte offset into the op's 40 pieces (1..80 bytes
// each, so all of CopySmall's size classes) on connections of their own.
TEST_P(ExecutorGatherTest, ShortSendsOfAGatheredOpResumeAtEveryOffset) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam()));
  const std::vector<size_t> sizes = gather::SmallSizes(40, 3);
  const size_t total = gather::Sum(sizes);
  std::vector<size_t> offsets;
  for (size_t k = 0; k < total; k += (k < 200 ? 1 : 7)) offsets.push_back(k);
  offsets.push_back(total - 1);
  uint64_t short_sends = 0;
  uint64_t bytes_gathered = 0;
  for (size_t k : offsets) {
    SCOPED_TRACE(absl::StrCat("short at ", k));
    ring_->SetCapacity(Fd(c), 0);
    const size_t base = ring_->received(Fd(c)).size();
    const size_t before = ring_->log().size();
    const std::vector<uint64_t> tokens = Send(c, sizes);
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    ASSERT_EQ(ring_->blocked_ops(), 1u);
    for (uint64_t t : tokens) ASSERT_EQ(Releases(t), 0) << "op in flight";
    ring_->AddCapacity(Fd(c), static_cast<int64_t>(k));
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    EXPECT_EQ(ring_->received(Fd(c)), expected_[c.value].substr(0, base + k));
    // Buffers wholly within the first k bytes are released, once; the
    // others are held by the resumed chain (blocked on the reader).
    size_t end = 0;
    size_t rest_pieces = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      end += sizes[i];
      EXPECT_EQ(Releases(tokens[i]), end <= k ? 1 : 0) << "buffer " << i;
      if (end > k) ++rest_pieces;
    }
    const std::vector<SqeRecord> log = LogFrom(before);
    ASSERT_EQ(log.size(), k == 0 ? 1u : 2u);
    EXPECT_EQ(log[0].opcode, IORING_OP_SEND);
    EXPECT_EQ(log[0].bytes_requested, total);
    EXPECT_TRUE(PointsIntoNoBuffer(log[0], tokens));
    bytes_gathered += total;
    if (k > 0) {
      ++short_sends;
      EXPECT_EQ(log[0].res, static_cast<int32_t>(k));
      EXPECT_EQ(log[1].chain, log[0].chain + 1);
      EXPECT_EQ(log[1].bytes_requested, total - k);
      // The rest: gathered again from the exact byte when it is two or
      // more pieces, else a plain send from the last buffer.
      EXPECT_EQ(log[1].opcode, IORING_OP_SEND);
      ASSERT_EQ(log[1].iovs.size(), 1u);
      if (rest_pieces >= 2) {
        EXPECT_TRUE(PointsIntoNoBuffer(log[1], tokens));
        bytes_gathered += total - k;
      } else {
        EXPECT_EQ(log[1].iovs[0].iov_base,
                  Data(tokens.back()) + (sizes.back() - (total - k)));
      }
    }
    ring_->AddCapacity(Fd(c), 1 << 20);
    Pump();
    ExpectExact(c);
    for (uint64_t t : tokens) {
      EXPECT_EQ(Releases(t), 1);
      EXPECT_TRUE(ledger_.Find(t)->status.ok());
    }
    const SendStats s = Stats(c);
    EXPECT_EQ(s.short_sends, short_sends);
    EXPECT_EQ(s.bytes_gathered, bytes_gathered);
    CheckNoViolations();
    if (HasFailure()) break;
  }
  EXPECT_EQ(Stats(c).bytes_copied, total * offsets.size());
}

// A reader that lets a few bytes through at a time: many short gathered
// sends in a row, each resumption gathered from its exact byte.
TEST_P(ExecutorGatherTest, TrickleOfShortGatheredSendsStaysExact) {
  Make();
  const ConnectionId c =
      Attach(gather::GatherOptions(1024, 512, PlanOptions::kNever, GetParam()));
  ring_->SetCapacity(Fd(c), 0);
  std::mt19937_64 rng(77);
  std::vector<size_t> sizes;
  for (int i = 0; i < 300; ++i) sizes.push_back(1 + rng() % 120);
  const std::vector<uint64_t> tokens = Send(c, sizes);
  for (int round = 0; round < 100000 && !executor_->Idle(c); ++round) {
    ring_->AddCapacity(Fd(c), static_cast<int64_t>(1 + rng() % 97));
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    ASSERT_EQ(ring_->received(Fd(c)),
              expected_[c.value].substr(0, ring_->received(Fd(c)).size()));
  }
  ASSERT_TRUE(executor_->Idle(c));
  ExpectExact(c);
  CheckNoViolations();
  const SendStats s = Stats(c);
  EXPECT_GT(s.short_sends, 10u);
  EXPECT_GT(s.gathered_ops, 10u);
  EXPECT_EQ(s.bytes_copied, gather::Sum(sizes));
  for (uint64_t t : tokens) EXPECT_EQ(Releases(t), 1);
}

TEST_P(ExecutorGatherTest, SendErrorOnAGatheredOpFailsOnlyThatConnection) {
  Make();
  const ConnectionOptions o =
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam());
  const ConnectionId a = Attach(o);
  const ConnectionId b = Attach(o);
  ring_->AddFault(Fd(a), FakeFault{IORING_OP_SEND, -1, -ECONNRESET});
  const std::vector<uint64_t> ta = Send(a, gather::SmallSizes(30));
  const std::vector<uint64_t> tb = Send(b, gather::SmallSizes(30));
  Pump();
  ASSERT_GE(ring_->log().size(), 2u);
  EXPECT_EQ(ring_->log()[0].opcode, IORING_OP_SEND);
  EXPECT_EQ(ring_->log()[0].res, -ECONNRESET);
  EXPECT_FALSE(executor_->ConnectionError(a).ok());
  EXPECT_TRUE(
      absl::StrContains(executor_->ConnectionError(a).message(), "send"))
      << executor_->ConnectionError(a);
  EXPECT_EQ(ring_->received(Fd(a)), "");
  for (uint64_t t : ta) {
    EXPECT_EQ(Releases(t), 1);
    EXPECT_EQ(ledger_.Find(t)->status, executor_->ConnectionError(a));
  }
  EXPECT_TRUE(executor_->ConnectionError(b).ok());
  ExpectExact(b);
  for (uint64_t t : tb) {
    EXPECT_EQ(Releases(t), 1);
    EXPECT_TRUE(ledger_.Find(t)->status.ok());
  }
  EXPECT_EQ(Stats(b).gathered_ops, 1u);
  CheckNoViolations();

  // The pool is fine afterwards: b sends again, gathered, exact.
  Send(b, gather::SmallSizes(50, 7));
  Pump();
  ExpectExact(b);
  EXPECT_EQ(Stats(b).gathered_ops, 2u);
  CheckNoViolations();
}

// An error after partial progress: the gathered op goes short, the resumed
// chain fails on the socket error. The bytes that went are exact, buffers
// wholly sent come back OK, the rest with the error, each once.
TEST_P(ExecutorGatherTest, SocketErrorAfterAShortGatheredSend) {
  Make();
  const ConnectionOptions o =
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam());
  const ConnectionId a = Attach(o);
  const ConnectionId b = Attach(o);
  ring_->SetCapacity(Fd(a), 100);
  ring_->SetCapacity(Fd(b), 0);
  const std::vector<size_t> sizes = gather::SmallSizes(30, 2);
  const std::vector<uint64_t> ta = Send(a, sizes);
  const std::vector<uint64_t> tb = Send(b, sizes);
  Pump(3);
  EXPECT_EQ(ring_->received(Fd(a)).size(), 100u);
  ring_->SetSocketError(Fd(a), -EPIPE);
  Pump(3);
  ExpectPrefix(a);
  EXPECT_EQ(ring_->received(Fd(a)).size(), 100u);
  EXPECT_FALSE(executor_->ConnectionError(a).ok());
  size_t end = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    end += sizes[i];
    EXPECT_EQ(Releases(ta[i]), 1) << i;
    EXPECT_EQ(ledger_.Find(ta[i])->status.ok(), end <= 100) << i;
  }
  // b, held all along, is untouched and then goes through exact.
  EXPECT_EQ(ring_->received(Fd(b)), "");
  for (uint64_t t : tb) EXPECT_EQ(Releases(t), 0);
  ring_->AddCapacity(Fd(b), 1 << 20);
  Pump();
  ExpectExact(b);
  for (uint64_t t : tb) EXPECT_TRUE(ledger_.Find(t)->status.ok());
  CheckNoViolations();
}

// The gathered bytes are a snapshot made when the chain is prepared: a
// buffer overwritten after Prepare (which a caller must not do; here it
// shows where the bytes come from) does not change what a gathered op sends,
// while an op sent from the buffers themselves sends the new bytes.
TEST_P(ExecutorGatherTest, GatheredBytesAreASnapshotTakenAtPrepare) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam()));
  const ConnectionId d = Attach(Options(PlanOptions::kNever, GetParam()));
  const std::vector<size_t> sizes = gather::SmallSizes(20);
  const std::vector<uint64_t> tc = Send(c, sizes);
  const std::vector<uint64_t> td = Send(d, sizes);
  ASSERT_TRUE(executor_->Prepare().ok());
  EXPECT_TRUE(ring_->log().empty()) << "Prepare submits nothing";
  for (uint64_t t : tc)
    std::fill_n(buffers_[t]->data(), buffers_[t]->size(), 0xEE);
  for (uint64_t t : td)
    std::fill_n(buffers_[t]->data(), buffers_[t]->size(), 0xEE);
  Pump();
  ExpectExact(c);  // the bytes as enqueued
  EXPECT_EQ(ring_->received(Fd(d)),
            std::string(gather::Sum(sizes), static_cast<char>(0xEE)))
      << "not gathered: sent from the buffers";
  EXPECT_EQ(Stats(c).gathered_ops, 1u);
  EXPECT_EQ(Stats(d).gathered_ops, 0u);
  expected_[d.value] = ring_->received(Fd(d));
  CheckNoViolations();
}

// Released buffers are poisoned by the ledger as soon as they come back; a
// gathered op's copy stays what it was (the next chain's copy goes to the
// pooled buffer, never over an op in flight).
TEST_P(ExecutorGatherTest, PoisonedReleasedBuffersDoNotChangeGatheredBytes) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(4 * K, 512, PlanOptions::kNever, GetParam()));
  ring_->SetCapacity(Fd(c), 0);
  std::vector<uint64_t> all;
  for (int round = 0; round < 20; ++round) {
    const std::vector<uint64_t> t = Send(c, gather::SmallSizes(30, round + 1));
    all.insert(all.end(), t.begin(), t.end());
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    ring_->AddCapacity(Fd(c), 333);
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  ring_->AddCapacity(Fd(c), 1 << 20);
  Pump();
  ExpectExact(c);
  for (uint64_t t : all) EXPECT_EQ(Releases(t), 1);
  EXPECT_GT(Stats(c).gathered_ops, 10u);
  EXPECT_GT(Stats(c).short_sends, 10u);
  CheckNoViolations();
}

// Many connections each with a gathered chain in flight at once (the reader
// takes nothing), released in a scrambled order, twice over, so the second
// round runs on buffers the pool got back from other connections: no bytes
// of one connection may show up on another.
TEST_P(ExecutorGatherTest, ManyConnectionsWithGatheredChainsInFlightAtOnce) {
  FakeRingOptions ro;
  ro.sq_entries = 256;
  Make(ro);
  constexpr int kConnections = 48;
  std::vector<ConnectionId> ids;
  for (int i = 0; i < kConnections; ++i) {
    ConnectionOptions o = gather::GatherOptions(
        i % 3 == 0 ? 512 : 16 * K, 256, PlanOptions::kNever, GetParam());
    o.plan.max_iovs_per_op = 8 + i % 5;
    ids.push_back(Attach(o));
  }
  std::mt19937_64 rng(4242);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    for (int i = 0; i < kConnections; ++i) {
      ring_->SetCapacity(Fd(ids[i]), 0);
      std::vector<size_t> sizes;
      const int n = 10 + static_cast<int>(rng() % 60);
      for (int k = 0; k < n; ++k) sizes.push_back(1 + rng() % 100);
      Send(ids[i], sizes);
    }
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    EXPECT_GE(ring_->blocked_ops(), static_cast<size_t>(kConnections))
        << "a chain in flight on each";

    std::vector<int> order(kConnections);
    for (int i = 0; i < kConnections; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    // Half of them a little at a time first (short sends, resumed chains
    // taking pool buffers while the others still hold theirs).
    for (int j = 0; j < kConnections; ++j) {
      const int i = order[j];
      ring_->AddCapacity(
          Fd(ids[i]),
          j % 2 == 0 ? 1 << 20 : static_cast<int64_t>(1 + rng() % 500));
      ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    }
    for (int i = 0; i < kConnections; ++i) {
      ring_->AddCapacity(Fd(ids[i]), 1 << 20);
    }
    Pump();
    ASSERT_TRUE(AllIdle());
    for (int i = 0; i < kConnections; ++i) {
      SCOPED_TRACE(absl::StrCat("connection ", i));
      ExpectExact(ids[i]);
    }
  }
  const RingStats r = executor_->stats();
  EXPECT_GE(r.totals.gathered_ops, 3u * kConnections);
  CheckNoViolations();
}

// Closing connections whose gathered chains are blocked: the cancelled ops
// give the buffer back, and the live connections that take it from the pool
// next stay exact.
TEST_P(ExecutorGatherTest, CloseWithGatheredChainsInFlightThenReuse) {
  Make();
  const ConnectionOptions o =
      gather::GatherOptions(8 * K, 512, PlanOptions::kNever, GetParam());
  std::vector<ConnectionId> closing, live;
  for (int i = 0; i < 6; ++i) {
    closing.push_back(Attach(o));
    ring_->SetCapacity(Fd(closing.back()), i * 10);
    Send(closing.back(), gather::SmallSizes(40, i + 1));
  }
  ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  for (const ConnectionId c : closing) ASSERT_TRUE(executor_->Close(c).ok());
  Pump(5);
  for (const ConnectionId c : closing) ExpectPrefix(c);
  for (int i = 0; i < 6; ++i) {
    live.push_back(Attach(o));
    Send(live.back(), gather::SmallSizes(60, 2 * i + 1));
  }
  Pump();
  for (const ConnectionId c : live) {
    ExpectExact(c);
    EXPECT_EQ(Stats(c).gathered_ops, 1u);
  }
  CheckNoViolations();
}

// Close after Prepare, before the submit: the unsubmitted gathered op is
// undone (the kernel never saw it) and its buffer goes back; a connection
// that takes it next sends its own bytes, not the closed one's.
TEST_P(ExecutorGatherTest, CloseAfterPrepareUndoesTheGatheredOp) {
  Make();
  const ConnectionOptions o =
      gather::GatherOptions(8 * K, 512, PlanOptions::kNever, GetParam());
  const ConnectionId a = Attach(o);
  const std::vector<uint64_t> ta = Send(a, gather::SmallSizes(40));
  ASSERT_TRUE(executor_->Prepare().ok());
  ASSERT_TRUE(executor_->Close(a).ok());
  for (uint64_t t : ta) {
    EXPECT_EQ(Releases(t), 1);
    EXPECT_EQ(ledger_.Find(t)->status.code(), absl::StatusCode::kCancelled);
  }
  const ConnectionId b = Attach(o);
  Send(b, gather::SmallSizes(40, 9));
  Pump();
  EXPECT_EQ(ring_->received(Fd(a)), "");
  ExpectExact(b);
  EXPECT_EQ(Stats(b).gathered_ops, 1u);
  CheckNoViolations();
}

// Prepared messages of small pieces: gathered (the message's own iovecs are
// copied from), byte-exact, alone, after plain buffers and with short sends
// at many offsets (a resumption inside the message).
TEST_P(ExecutorGatherTest, PreparedMessagesOfSmallPiecesAreGathered) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam()));
  const std::vector<size_t> sizes = gather::SmallSizes(50, 1);
  const uint64_t token = SendMessage(c, sizes);
  Pump();
  ExpectExact(c);
  ASSERT_EQ(ring_->log().size(), 1u);
  EXPECT_EQ(ring_->log()[0].opcode, IORING_OP_SEND);
  EXPECT_EQ(ring_->log()[0].bytes_requested, gather::Sum(sizes));
  EXPECT_TRUE(PointsIntoNoBuffer(ring_->log()[0], {token}));
  EXPECT_EQ(Releases(token), 1);
  EXPECT_EQ(Stats(c).gathered_ops, 1u);
  EXPECT_EQ(Stats(c).bytes_gathered, gather::Sum(sizes));

  // Plain buffers, then a message, then plain buffers: one chain, every op
  // gathered.
  const size_t before = ring_->log().size();
  const std::vector<uint64_t> t1 = Send(c, {5, 6, 7});
  const uint64_t m2 = SendMessage(c, {9, 8, 7, 6, 5, 4, 3, 2, 1});
  const std::vector<uint64_t> t2 = Send(c, {11, 12});
  Pump();
  ExpectExact(c);
  for (const SqeRecord& r : LogFrom(before)) {
    EXPECT_EQ(r.opcode, IORING_OP_SEND);
  }
  EXPECT_EQ(Releases(m2), 1);
  CheckNoViolations();
}

TEST_P(ExecutorGatherTest, ShortSendsInsideAGatheredPreparedMessage) {
  FakeRingOptions ro;
  ro.sq_entries = 256;
  Make(ro);
  const std::vector<size_t> sizes = gather::SmallSizes(40, 2);
  const size_t total = gather::Sum(sizes);
  for (size_t k = 0; k < total; k += 13) {
    SCOPED_TRACE(absl::StrCat("short at ", k));
    ConnectionOptions o =
        gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam());
    o.plan.max_iovs_per_op = 16;  // several ops in the message
    const ConnectionId c = Attach(o);
    ring_->SetCapacity(Fd(c), static_cast<int64_t>(k));
    const std::vector<uint64_t> before = Send(c, {3, 4});
    const uint64_t token = SendMessage(c, sizes);
    const std::vector<uint64_t> after = Send(c, {5, 6});
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    EXPECT_EQ(ring_->received(Fd(c)), expected_[c.value].substr(0, k));
    EXPECT_EQ(Releases(token), 0) << "the message is not all sent";
    ring_->AddCapacity(Fd(c), 1 << 20);
    Pump();
    ExpectExact(c);
    EXPECT_EQ(Releases(token), 1);
    EXPECT_TRUE(ledger_.Find(token)->status.ok());
    const SendStats s = Stats(c);
    EXPECT_GT(s.gathered_ops, 0u);
    EXPECT_EQ(s.bytes_copied, total + 18);
    for (const SqeRecord& r : ring_->log()) {
      if (r.fd == Fd(c)) {
        EXPECT_EQ(r.opcode, IORING_OP_SEND);
      }
    }
    ASSERT_TRUE(executor_->Close(c).ok());
    Pump(2);
  }
  CheckNoViolations();
}

// One message on several connections at once, each chain held in flight,
// then let through in turn: the message's pieces are read by every
// connection's copy, and each stream is exact. Not poisoned: one arena is
// shared, so the ledger sees one entry per enqueue with no bytes.
TEST_P(ExecutorGatherTest, OneMessageGatheredOnManyConnectionsAtOnce) {
  Make();
  std::vector<unsigned char> arena(2000);
  for (size_t i = 0; i < arena.size(); ++i) arena[i] = PatternByte(99, i);
  std::vector<iovec> pieces;
  std::string bytes;
  for (size_t at = 0, n = 1; at + n <= arena.size(); at += n, n = n % 61 + 1) {
    pieces.push_back({arena.data() + at, n});
    bytes.append(reinterpret_cast<const char*>(arena.data() + at), n);
  }
  absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
      PreparedMessage::Create(pieces);
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<ConnectionId> ids;
  for (int i = 0; i < 12; ++i) {
    ConnectionOptions o = gather::GatherOptions(
        1 + i * 300, 512, PlanOptions::kNever, GetParam());
    o.plan.max_iovs_per_op = 32;
    ids.push_back(Attach(o));
    ring_->SetCapacity(Fd(ids.back()), 0);
    for (int r = 0; r < 3; ++r) {
      const uint64_t token = ledger_.Expect(ids.back(), arena.data(), 0);
      ASSERT_TRUE(executor_->EnqueueMessage(ids.back(), *m, token).ok());
      expected_[ids.back().value] += bytes;
    }
  }
  ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  for (int i = 11; i >= 0; --i) {
    ring_->AddCapacity(Fd(ids[i]), 777);
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  for (const ConnectionId c : ids) ring_->AddCapacity(Fd(c), 1 << 20);
  Pump();
  for (const ConnectionId c : ids) ExpectExact(c);
  EXPECT_GT(executor_->stats().totals.gathered_ops, 0u);
  CheckNoViolations();
}

// Connections with different gather_bytes share the pool: a buffer given
// back by a connection with a small gather_bytes is never taken by one that
// needs more (each chain here fills its connection's gather_bytes to the
// last byte: an undersized buffer would be overrun, which ASan reports and
// the byte check may see), and chains overlap in flight across them.
TEST_P(ExecutorGatherTest, PoolServesConnectionsWithDifferentGatherBytes) {
  FakeRingOptions ro;
  ro.sq_entries = 512;
  Make(ro);
  const uint64_t sizes[] = {256, 64 * K, 1000, 8 * K, 256, 32 * K};
  std::vector<ConnectionId> ids;
  for (uint64_t g : sizes) {
    ConnectionOptions o =
        gather::GatherOptions(g, 512, PlanOptions::kNever, GetParam());
    // Ops of 16 pieces of 16 bytes: 256 bytes each, so every op fits until
    // gather_bytes is used up exactly.
    o.plan.max_iovs_per_op = 16;
    o.plan.max_ops_per_chain = 512;
    ids.push_back(Attach(o));
  }
  std::mt19937_64 rng(31337);
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    std::vector<size_t> order(ids.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      // A chain's worth of gathered ops and one more op.
      const size_t pieces = sizes[i] / 16 + 16;
      if (round % 2 == 0) ring_->SetCapacity(Fd(ids[i]), 0);
      Send(ids[i], std::vector<size_t>(pieces, 16));
      ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    }
    for (size_t i : order) {
      ring_->SetCapacity(Fd(ids[i]), -1);
      ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    }
    Pump();
    ASSERT_TRUE(AllIdle());
    for (const ConnectionId c : ids) ExpectExact(c);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const SendStats s = Stats(ids[i]);
    EXPECT_GT(s.gathered_ops, 0u);
    // Gathered ops next to each other join, so one send may carry a whole
    // chain's gather_bytes, never more.
    EXPECT_LE(s.bytes_gathered, s.gathered_ops * sizes[i]);
  }
  // Every chain gathered at most its connection's gather_bytes (all its
  // sends are gathered: no piece is more than 16 bytes), and a chain that
  // had more to send than that used all but less than one op of it.
  std::map<std::pair<int, uint64_t>, uint64_t> per_chain;
  for (const SqeRecord& r : ring_->log()) {
    if (r.opcode == IORING_OP_SEND) {
      per_chain[{r.fd, r.chain}] += r.bytes_requested;
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    uint64_t most = 0;
    for (const auto& [key, bytes] : per_chain) {
      if (key.first != Fd(ids[i])) continue;
      EXPECT_LE(bytes, sizes[i]) << i;
      most = std::max(most, bytes);
    }
    EXPECT_GT(most + 256, sizes[i]) << i;
  }
  CheckNoViolations();
}

// Abort with gathered chains blocked: the reset fails the ops, the buffers
// come back once with Aborted, and the pool serves the next connections.
TEST_P(ExecutorGatherTest, AbortWithGatheredChainsInFlight) {
  Make();
  const ConnectionOptions o =
      gather::GatherOptions(8 * K, 512, PlanOptions::kNever, GetParam());
  std::vector<ConnectionId> aborted;
  std::vector<std::vector<uint64_t>> tokens;
  for (int i = 0; i < 4; ++i) {
    aborted.push_back(Attach(o));
    ring_->SetCapacity(Fd(aborted.back()), 17 * i);
    tokens.push_back(Send(aborted.back(), gather::SmallSizes(50, i + 1)));
  }
  ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  for (const ConnectionId c : aborted) ASSERT_TRUE(executor_->Abort(c).ok());
  Pump(5);
  for (size_t i = 0; i < aborted.size(); ++i) {
    ExpectPrefix(aborted[i]);
    EXPECT_EQ(ring_->received(Fd(aborted[i])).size(), 17 * i);
    for (uint64_t t : tokens[i]) EXPECT_EQ(Releases(t), 1);
    EXPECT_EQ(ring_->resets(Fd(aborted[i])), 1);
  }
  const ConnectionId next = Attach(o);
  Send(next, gather::SmallSizes(70, 3));
  Pump();
  ExpectExact(next);
  EXPECT_EQ(Stats(next).gathered_ops, 1u);
  CheckNoViolations();
}

// The same on the caller's ring: the executor's SQEs wait on the ring after
// Prepare until the caller submits; what the gathered op sends is what the
// buffers held at Prepare, and the caller's loop (submit, reap, hand over)
// gets every buffer back once, and the next chains, with short sends, stay
// exact.
TEST_P(ExecutorGatherTest, SnapshotOnTheCallersRingBeforeItsSubmit) {
  ExecutorOptions eo;
  eo.user_data_tag = 0x3C;
  Make(FakeRingOptions(), eo);
  const ConnectionId c = Attach(
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam()));
  const std::vector<uint64_t> first = Send(c, gather::SmallSizes(33, 4));
  ASSERT_TRUE(executor_->Prepare().ok());
  EXPECT_TRUE(ring_->log().empty());
  EXPECT_GT(ring_->sq_pending(), 0u);
  for (uint64_t t : first) {
    std::fill_n(buffers_[t]->data(), buffers_[t]->size(), 0x5A);
  }
  CallerRound();
  ASSERT_FALSE(ring_->log().empty());
  EXPECT_EQ(ring_->log()[0].opcode, IORING_OP_SEND);
  for (uint64_t t : first) EXPECT_EQ(Releases(t), 1);
  ExpectExact(c);
  // Then a reader that takes 50 bytes a round.
  ring_->SetCapacity(Fd(c), 0);
  const std::vector<uint64_t> second = Send(c, gather::SmallSizes(60, 2));
  for (int round = 0; round < 1000 && !executor_->Idle(c); ++round) {
    ring_->AddCapacity(Fd(c), 50);
    CallerRound();
  }
  ASSERT_TRUE(executor_->Idle(c));
  ExpectExact(c);
  for (uint64_t t : second) EXPECT_EQ(Releases(t), 1);
  EXPECT_GT(Stats(c).short_sends, 10u);
  EXPECT_GT(Stats(c).gathered_ops, 10u);
  CheckNoViolations();
}

// A forced Shutdown with a gathered op still in the kernel (on the caller's
// ring, where Shutdown cannot wait): the gather buffer is left to the
// kernel. Once the executor is gone and the heap has been churned with
// blocks of the buffer's size, the op still sends the bytes it was given.
TEST_F(ExecutorFaultTest, GatherBufferOfAnOpInFlightOutlivesAForcedShutdown) {
  ExecutorOptions eo;
  eo.user_data_tag = 0x3C;
  Make(FakeRingOptions(), eo);
  constexpr uint64_t kGather = 4 * K;
  ConnectionOptions o = Options(PlanOptions::kNever);
  o.gather_bytes = kGather;
  const ConnectionId c = Attach(o);
  const ConnectionId d = Attach(o);
  ring_->SetCapacity(Fd(c), 0);
  const std::vector<uint64_t> tokens = Send(c, gather::SmallSizes(60, 5));
  Send(d, gather::SmallSizes(30, 1));  // completes: its buffer is pooled
  ASSERT_TRUE(executor_->Flush().ok());
  ASSERT_EQ(ring_->log().size(), 2u);
  EXPECT_EQ(ring_->log()[0].opcode, IORING_OP_SEND);
  EXPECT_EQ(ring_->blocked_ops(), 1u);
  const absl::Status s = executor_->Shutdown(absl::ZeroDuration());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  for (uint64_t t : tokens) {
    EXPECT_EQ(Releases(t), 1);
    EXPECT_TRUE(KernelMayStillRead(ledger_.Find(t)->status));
  }
  executor_.reset();
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  std::vector<std::unique_ptr<char[]>> churn;
  for (int i = 0; i < 256; ++i) {
    churn.emplace_back(new char[kGather]);
    std::fill_n(churn.back().get(), kGather, static_cast<char>(0xAB));
  }
  ring_->AddCapacity(Fd(c), 1 << 20);
  ExpectExact(c);
  CheckNoViolations();
  // The executor leaked both connections' buffers (neither op's completion
  // was handed to it) by design; tell LeakSanitizer so.
#if defined(__SANITIZE_ADDRESS__)
  for (const SqeRecord& r : ring_->log()) {
    if (r.opcode == IORING_OP_SEND && !r.iovs.empty()) {
      __lsan_ignore_object(r.iovs[0].iov_base);
    }
  }
#endif
}

TEST_F(ExecutorFaultTest, GatherAttachRefusesValuesOutOfRange) {
  Make();
  struct Case {
    uint64_t gather_bytes;
    uint32_t gather_below;
    std::string value;
    std::string limit;
  };
  const Case cases[] = {
      {(uint64_t{1} << 30) + 1, 512, "gather_bytes is 1073741825",
       "1073741824"},
      {uint64_t{1} << 40, 512, "gather_bytes is 1099511627776", "1073741824"},
      {64 * K, 0, "gather_below is 0", "1048576"},
      {64 * K, (uint32_t{1} << 20) + 1, "gather_below is 1048577", "1048576"},
      {0, 0, "gather_below is 0", "1048576"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.value);
    absl::StatusOr<TcpPair> pair = MakeTcpPair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    ConnectionOptions o = Options();
    o.gather_bytes = k.gather_bytes;
    o.gather_below = k.gather_below;
    const absl::StatusOr<ConnectionId> id = executor_->Attach(pair->client, o);
    ASSERT_FALSE(id.ok());
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(id.status().message(), k.value))
        << id.status();
    EXPECT_TRUE(absl::StrContains(id.status().message(), k.limit))
        << id.status();
    // Refused without a trace: the socket attaches fine with good values.
    o.gather_bytes = uint64_t{1} << 30;
    o.gather_below = uint32_t{1} << 20;
    const absl::StatusOr<ConnectionId> ok = executor_->Attach(pair->client, o);
    EXPECT_TRUE(ok.ok()) << ok.status();
    if (ok.ok()) {
      ASSERT_TRUE(executor_->Close(*ok).ok());
    }
    Pump(2);
  }
}

// Where plain buffers meet a prepared message the planner sees two
// segments; the executor makes the ops at the seam one, as the planner
// would have for one queue: a small header before a body of small pieces is
// gathered with it into one send, and before a body of one large copied
// piece it goes in the same writev/sendmsg.
TEST_P(ExecutorGatherTest, HeaderAndMessageBodyBecomeOneOp) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(256 * K, 512, PlanOptions::kNever, GetParam()));
  std::vector<uint64_t> tokens = Send(c, {90});  // a header
  const uint64_t body = SendMessage(c, std::vector<size_t>(300, 32));
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  std::vector<SqeRecord> log = LogFrom(0);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].opcode, IORING_OP_SEND);
  EXPECT_EQ(log[0].bytes_requested, 90u + 300 * 32);
  tokens.push_back(body);
  EXPECT_TRUE(PointsIntoNoBuffer(log[0], tokens));
  EXPECT_EQ(Stats(c).gathered_ops, 1u);
  EXPECT_EQ(Stats(c).bytes_gathered, 90u + 300 * 32);
  for (uint64_t t : tokens) EXPECT_EQ(Releases(t), 1);

  // A body of one 64 KiB piece: not gathered (above gather_below), but in
  // one op with the header.
  const std::vector<uint64_t> header = Send(c, {90});
  const uint64_t big = SendMessage(c, {64 * K});
  Pump();
  ExpectExact(c);
  log = LogFrom(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].opcode, PlannedOpcode(GetParam()));
  ASSERT_EQ(log[0].iovs.size(), 2u);
  EXPECT_EQ(log[0].bytes_requested, 90u + 64 * K);
  EXPECT_EQ(log[0].iovs[1].iov_base, Data(big)) << "the body from itself";
  EXPECT_EQ(Releases(header[0]), 1);
  EXPECT_EQ(Releases(big), 1);

  // Gathering off: header and body still one op (a writev of both).
  const ConnectionId d =
      Attach(gather::GatherOptions(0, 512, PlanOptions::kNever, GetParam()));
  Send(d, {90});
  SendMessage(d, std::vector<size_t>(20, 100));
  const size_t before = ring_->log().size();
  Pump();
  ExpectExact(d);
  log = LogFrom(before);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].opcode, PlannedOpcode(GetParam()));
  EXPECT_EQ(log[0].iovs.size(), 21u);
  CheckNoViolations();
}

// The seam join and gathering under short sends: the joined op stops at
// every byte offset across the header, the body and the seam, and the rest
// resumes from the exact byte.
TEST_P(ExecutorGatherTest, JoinedSeamOpShortAtEveryOffset) {
  Make();
  const ConnectionId c = Attach(
      gather::GatherOptions(256 * K, 512, PlanOptions::kNever, GetParam()));
  const size_t total = 7 + 12 * 5;
  for (size_t k = 1; k < total; ++k) {
    SCOPED_TRACE(k);
    ring_->SetCapacity(Fd(c), 0);
    std::vector<uint64_t> tokens = Send(c, {7});
    tokens.push_back(SendMessage(c, std::vector<size_t>(12, 5)));
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    ring_->AddCapacity(Fd(c), static_cast<int64_t>(k));
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
    EXPECT_EQ(Releases(tokens[0]), k >= 7 ? 1 : 0) << "the header";
    EXPECT_EQ(Releases(tokens[1]), 0) << "the body is not all sent";
    ring_->AddCapacity(Fd(c), 1 << 20);
    Pump();
    ExpectExact(c);
    for (uint64_t t : tokens) EXPECT_EQ(Releases(t), 1);
    CheckNoViolations();
    if (HasFailure()) break;
  }
}

// Gathered ops join only while the joined op keeps to max_bytes_per_op:
// 16 pieces of 50 bytes, 4 to an op, max_bytes_per_op 400: two sends of 400
// (each two gathered ops joined), never one of 800.
TEST_P(ExecutorGatherTest, JoinedGatheredOpsKeepToMaxBytesPerOp) {
  Make();
  ConnectionOptions o =
      gather::GatherOptions(64 * K, 512, PlanOptions::kNever, GetParam());
  o.plan.max_iovs_per_op = 4;
  o.plan.max_bytes_per_op = 400;
  const ConnectionId c = Attach(o);
  Send(c, std::vector<size_t>(16, 50));
  Pump();
  ExpectExact(c);
  CheckNoViolations();
  const std::vector<SqeRecord> log = LogFrom(0);
  ASSERT_EQ(log.size(), 2u);
  for (const SqeRecord& r : log) {
    EXPECT_EQ(r.opcode, IORING_OP_SEND);
    EXPECT_EQ(r.bytes_requested, 400u);
  }
}

}  // namespace
}  // namespace zcplan
