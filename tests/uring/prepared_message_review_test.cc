// SPDX-License-Identifier: Apache-2.0
// Review tests of prepared messages (Executor::EnqueueMessage) through the
// fake ring: the executor's contract (bytes in order exactly once, every
// token released exactly once and never while the kernel may still read the
// memory, bad input refused, nothing hangs) for streams that mix plain
// buffers and prepared messages, under short sends, ops limits, the
// notification cap, -ENOMEM fallbacks, Close / Abort / Shutdown and the
// caller's-ring mode; and on a real io_uring over loopback at the end.

#include <liburing.h>
#include <signal.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/fake_executor_fixture.h"
#include "zcplan/tests/uring/fake_ring.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/receiver.h"
#include "zcplan/uring/stats.h"

namespace zcplan {
namespace {

constexpr size_t K = 1024;

class PreparedMessageReviewTest : public FakeExecutorFixture {
 protected:
  // Releases go into `ledger_`, then to `release_hook_`; the notification
  // cap defaults to 64 MiB.
  void Make(FakeRingOptions ring_options = FakeRingOptions(),
            ExecutorOptions options = ExecutorOptions()) {
    ReleaseCallback ledger = ledger_.callback();
    options.on_release = [this, ledger](ConnectionId c, uint64_t token,
                                        const absl::Status& status) {
      ledger(c, token, status);
      if (release_hook_) release_hook_(c);
    };
    if (options.max_bytes_awaiting_notification == 0) {
      options.max_bytes_awaiting_notification = 64 * 1024 * K;
    }
    MakeExecutor(ring_options, std::move(options));
  }

  // Fresh memory, patterned as the next bytes of `id`'s stream.
  // From `pool_` while it has room (a test may register it), else a new
  // allocation.
  unsigned char* Fill(ConnectionId id, size_t size) {
    unsigned char* p;
    if (pool_used_ + size <= pool_.size()) {
      p = pool_.data() + pool_used_;
      pool_used_ += size;
    } else {
      auto buffer = std::make_unique<std::vector<unsigned char>>(size);
      p = buffer->data();
      memory_.push_back(std::move(buffer));
    }
    std::string& expected = expected_[id.value];
    for (size_t i = 0; i < size; ++i) {
      p[i] = PatternByte(id.value, expected.size() + i);
    }
    expected.append(reinterpret_cast<const char*>(p), size);
    return p;
  }

  // Plain buffers, one Enqueue each.
  std::vector<uint64_t> Send(ConnectionId id,
                             const std::vector<size_t>& sizes) {
    std::vector<uint64_t> tokens;
    for (size_t size : sizes) {
      unsigned char* p = Fill(id, size);
      const uint64_t token = ledger_.Expect(id, p, size);
      const absl::Status s = executor_->Enqueue(id, p, size, token);
      EXPECT_TRUE(s.ok()) << s;
      tokens.push_back(token);
    }
    return tokens;
  }

  // A prepared message over fresh memory (Fill: the next bytes of `id`'s
  // stream), one arena cut into `sizes`; `*arena` and `*total` get the
  // arena and its size.
  std::shared_ptr<const PreparedMessage> NewMessage(
      ConnectionId id, const std::vector<size_t>& sizes, unsigned char** arena,
      size_t* total) {
    *total = 0;
    for (size_t s : sizes) *total += s;
    unsigned char* p = Fill(id, *total);
    std::vector<iovec> iovs;
    size_t at = 0;
    for (size_t s : sizes) {
      iovs.push_back({p + at, s});
      at += s;
    }
    absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
        PreparedMessage::Create(iovs);
    EXPECT_TRUE(m.ok()) << m.status();
    *arena = p;
    return *m;
  }

  // A prepared message over fresh memory (one arena cut into `sizes`),
  // enqueued once; the ledger poisons the arena when its token comes back.
  std::shared_ptr<const PreparedMessage> SendMessage(
      ConnectionId id, const std::vector<size_t>& sizes,
      uint64_t* token_out = nullptr, bool poison = true) {
    unsigned char* p = nullptr;
    size_t total = 0;
    const std::shared_ptr<const PreparedMessage> m =
        NewMessage(id, sizes, &p, &total);
    const uint64_t token = ledger_.Expect(id, poison ? p : nullptr, total);
    const absl::Status s = executor_->EnqueueMessage(id, m, token);
    EXPECT_TRUE(s.ok()) << s;
    if (token_out != nullptr) *token_out = token;
    if (keep_messages_) messages_.push_back(m);
    return m;
  }

  // SendMessage for a connection that may refuse it (from inside the
  // release callback): on error nothing is expected of it.
  bool TrySendMessage(ConnectionId id, const std::vector<size_t>& sizes) {
    std::string& expected = expected_[id.value];
    const size_t before = expected.size();
    unsigned char* p = nullptr;
    size_t total = 0;
    const std::shared_ptr<const PreparedMessage> m =
        NewMessage(id, sizes, &p, &total);
    const uint64_t token = ledger_.Expect(id, p, total);
    if (!executor_->EnqueueMessage(id, m, token).ok()) {
      ledger_.Forget(token);
      expected_[id.value].resize(before);
      return false;
    }
    if (keep_messages_) messages_.push_back(m);
    return true;
  }

  // Enqueues an existing message again (its memory is not poisoned: other
  // enqueues share it). Appends its bytes to the expected stream.
  uint64_t SendAgain(ConnectionId id,
                     const std::shared_ptr<const PreparedMessage>& m) {
    std::string& expected = expected_[id.value];
    for (const iovec& b : m->buffers()) {
      expected.append(static_cast<const char*>(b.iov_base), b.iov_len);
    }
    const uint64_t token = ledger_.Expect(id, nullptr, 0);
    const absl::Status s = executor_->EnqueueMessage(id, m, token);
    EXPECT_TRUE(s.ok()) << s;
    return token;
  }

  // Every message enqueued by SendMessage is referenced by the test alone
  // once everything was released (the executor keeps none).
  void ExpectMessagesDropped() {
    for (size_t i = 0; i < messages_.size(); ++i) {
      EXPECT_EQ(messages_[i].use_count(), 1) << "message " << i;
    }
  }

  // As the fixture's, and then the fake saw no violation.
  void TearDown() override {
    if (executor_ == nullptr) return;
    FakeExecutorFixture::TearDown();
    CheckNoViolations();
  }

  std::vector<std::unique_ptr<std::vector<unsigned char>>> memory_;
  std::vector<unsigned char> pool_;
  std::function<void(ConnectionId)> release_hook_;
  // Whether the test keeps a reference to each message it makes; without
  // one the executor's is the only one (for ASan to see a message freed
  // too early).
  bool keep_messages_ = true;
  int hook_left_ = 0;
  std::mt19937_64 hook_rng_;
  size_t pool_used_ = 0;
  std::vector<std::shared_ptr<const PreparedMessage>> messages_;
};

// --- Basics ------------------------------------------------------------------

TEST_F(PreparedMessageReviewTest, MessageGoesOutWholeWithOneToken) {
  Make();
  const ConnectionId c = Attach();
  uint64_t token = 0;
  SendMessage(c, {100, 200, 32 * K, 64 * K, 7}, &token);
  Pump();
  ExpectExact(c);
  EXPECT_EQ(Releases(token), 1);
  EXPECT_TRUE(ledger_.Find(token)->status.ok());
  const SendStats s = *executor_->connection_stats(c);
  EXPECT_EQ(s.buffers_enqueued, 1u);
  EXPECT_EQ(s.buffers_released, 1u);
  ExpectMessagesDropped();
}

TEST_F(PreparedMessageReviewTest, NullMessageIsRefused) {
  Make();
  const ConnectionId c = Attach();
  const absl::Status s = executor_->EnqueueMessage(c, nullptr, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(executor_->Idle(c));
}

TEST_F(PreparedMessageReviewTest, RefusedEnqueuesDisturbNothing) {
  Make();
  ConnectionOptions o = Options();
  o.max_queued_bytes = 10 * K;
  const ConnectionId c = Attach(o);
  std::vector<unsigned char> big(11 * K, 1);
  const iovec b{big.data(), big.size()};
  absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
      PreparedMessage::Create({&b, 1});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(executor_->EnqueueMessage(c, *m, 1).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(executor_->EnqueueMessage(ConnectionId{12345}, *m, 1).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(m->use_count(), 1) << "a refused enqueue keeps no reference";
  EXPECT_TRUE(executor_->Idle(c));
  SendMessage(c, {100, 200});
  Pump();
  ExpectExact(c);
  ExpectMessagesDropped();
}

TEST_F(PreparedMessageReviewTest, CreateRefusesBadBuffers) {
  char x[4];
  const iovec null_base{nullptr, 4};
  const iovec empty{x, 0};
  EXPECT_EQ(PreparedMessage::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PreparedMessage::Create({&null_base, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PreparedMessage::Create({&empty, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const iovec huge[2] = {{x, static_cast<size_t>(SSIZE_MAX)}, {x, 1}};
  EXPECT_EQ(PreparedMessage::Create(huge).status().code(),
            absl::StatusCode::kInvalidArgument);
  const iovec three[3] = {{x, 1}, {x + 1, 2}, {x, 4}};
  absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
      PreparedMessage::Create(three);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->bytes(), 7u);
  EXPECT_EQ((*m)->Locate(0).buffer, 0u);
  EXPECT_EQ((*m)->Locate(1).buffer, 1u);
  EXPECT_EQ((*m)->Locate(1).offset, 0u);
  EXPECT_EQ((*m)->Locate(2).offset, 1u);
  EXPECT_EQ((*m)->Locate(3).buffer, 2u);
  EXPECT_EQ((*m)->Locate(6).offset, 3u);
}

// A message held by the kernel at Shutdown comes back once, as
// KernelMayStillRead, and the executor lets go of it.
TEST_F(PreparedMessageReviewTest, ShutdownHandsBackAHeldMessageOnce) {
  Make();
  const ConnectionId c = Attach(Options(0));
  ring_->set_hold_notifications(true);
  uint64_t token = 0;
  Send(c, {100});
  SendMessage(c, {32 * K, 64 * K, 5}, &token);
  Send(c, {300});
  Pump(5);
  ASSERT_FALSE(ring_->held_notifications().empty());
  EXPECT_FALSE(executor_->Shutdown(absl::ZeroDuration()).ok());
  EXPECT_EQ(Releases(token), 1);
  EXPECT_TRUE(KernelMayStillRead(ledger_.Find(token)->status));
  ExpectMessagesDropped();
}

// Close with a message's chain blocked on a slow reader, part of it sent.
TEST_F(PreparedMessageReviewTest, CloseMidMessageReleasesItOnce) {
  Make();
  const ConnectionId c = Attach(Options(0));
  ring_->SetCapacity(Fd(c), 50 * K);
  uint64_t token = 0;
  SendMessage(c, {32 * K, 64 * K, 5}, &token);
  Send(c, {300});
  Pump(5);
  ASSERT_TRUE(executor_->Close(c).ok());
  Pump();
  EXPECT_TRUE(executor_->Idle(c));
  EXPECT_EQ(Releases(token), 1);
  EXPECT_FALSE(ledger_.Find(token)->status.ok());
  ExpectPrefix(c);
  ExpectMessagesDropped();
}

// A connection freed and its slot reused: seqs start again at 0, and the
// new connection's messages are its own.
TEST_F(PreparedMessageReviewTest, ReusedConnectionSlotSendsItsOwnMessages) {
  Make();
  const ConnectionId a = Attach();
  SendMessage(a, {100, 200});
  Send(a, {50});
  SendMessage(a, {300});
  Pump();
  ExpectExact(a);
  ASSERT_TRUE(executor_->Close(a).ok());
  Pump();
  ASSERT_FALSE(executor_->ConnectionError(a).ok()) << "a is gone";
  const ConnectionId b = Attach();
  Send(b, {70});
  SendMessage(b, {400, 500});
  Pump();
  ExpectExact(b);
  ExpectMessagesDropped();
}

// Caller's ring: Prepare (no submit), more enqueues and a Prepare again
// before the caller submits; then the caller's loop.
TEST_F(PreparedMessageReviewTest, CallersRingPrepareThenMoreEnqueues) {
  ExecutorOptions eo;
  eo.user_data_tag = 7;
  Make(FakeRingOptions(), eo);
  const ConnectionId c = Attach(Options(4 * K, CopyOp::kSendmsg));
  SendMessage(c, {100, 8 * K, 200, 64 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  std::shared_ptr<const PreparedMessage> m2 = SendMessage(c, {1 * K, 2 * K});
  Send(c, {3 * K});
  SendAgain(c, m2);
  ASSERT_TRUE(executor_->Prepare().ok());
  for (int round = 0; round < 100 && !executor_->Idle(); ++round) {
    ASSERT_NO_FATAL_FAILURE(CallerRound());
  }
  ASSERT_TRUE(executor_->Idle());
  ExpectExact(c);
  m2.reset();
  ExpectMessagesDropped();
}

// Caller's ring: a message's SQEs on the ring, unsubmitted, when the
// connection is closed: they become NOPs, and the message comes back once.
TEST_F(PreparedMessageReviewTest, CallersRingCloseBeforeSubmit) {
  ExecutorOptions eo;
  eo.user_data_tag = 7;
  Make(FakeRingOptions(), eo);
  const ConnectionId c = Attach(Options(0));
  uint64_t token = 0;
  SendMessage(c, {32 * K, 64 * K}, &token);
  ASSERT_TRUE(executor_->Prepare().ok());
  ASSERT_TRUE(executor_->Close(c).ok());
  EXPECT_EQ(Releases(token), 1);
  ring_->SubmitAndWait(0, 0);
  EXPECT_EQ(ring_->received(Fd(c)).size(), 0u);
  ExpectMessagesDropped();
}

// More buffers than one op may carry (UIO_MAXIOV): the message's ops point
// into its own iovec array, at most 1024 iovecs each.
TEST_F(PreparedMessageReviewTest, MessageOfManyBuffersStaysUnderUioMaxiov) {
  Make();
  const ConnectionId c = Attach(Options(PlanOptions::kNever));
  SendMessage(c, std::vector<size_t>(3000, 7));
  Send(c, {5});
  SendMessage(c, std::vector<size_t>(1500, 3));
  Pump();
  ExpectExact(c);
  for (const SqeRecord& r : ring_->log()) EXPECT_LE(r.iov_count, 1024u);
  ExpectMessagesDropped();
}

// More distinct messages than the executor keeps plans for: the cache is
// emptied on the way, and every message still goes out right.
TEST_F(PreparedMessageReviewTest, MoreMessagesThanThePlanCacheHolds) {
  Make();
  ConnectionOptions o = Options(64);
  o.plan.max_ops_per_chain = 8;
  const ConnectionId c = Attach(o);
  for (int i = 0; i < 5000; ++i) {
    SendMessage(c, {static_cast<size_t>(1 + i % 7), 64, 3});
    if (i % 100 == 0) Pump(1);
  }
  Pump(100000);
  ExpectExact(c);
  ExpectMessagesDropped();
}

// One message on two connections whose plan options differ, enqueued in
// turn: each connection's ops follow its own options.
TEST_F(PreparedMessageReviewTest, SharedMessageFollowsEachConnectionsOptions) {
  Make();
  ConnectionOptions oa = Options(PlanOptions::kNever);
  oa.plan.max_iovs_per_op = 2;
  ConnectionOptions ob = Options(0);
  const ConnectionId a = Attach(oa);
  const ConnectionId b = Attach(ob);
  std::shared_ptr<const PreparedMessage> m =
      SendMessage(a, {100, 200, 300, 400}, nullptr, /*poison=*/false);
  SendAgain(b, m);
  SendAgain(a, m);
  SendAgain(b, m);
  Pump();
  ExpectExact(a);
  ExpectExact(b);
  for (const SqeRecord& r : ring_->log()) {
    if (r.fd == Fd(a)) {
      EXPECT_EQ(r.opcode, IORING_OP_WRITEV);
      EXPECT_LE(r.iov_count, 2u);
    } else {
      EXPECT_TRUE(FakeRing::IsZeroCopyOpcode(r.opcode)) << int{r.opcode};
    }
  }
}

// The executor runs one linked chain through plain buffers and messages
// alike (executor.h), and where a plain buffer's copy op meets a message's
// it makes them one op: [100] + [200, 32K] + [300] + [400] is a writev of
// 100 and 200, the 32K zero-copy, and a writev of 300 and 400.
TEST_F(PreparedMessageReviewTest, OneChainRunsThroughAMessageAndOn) {
  Make();
  const ConnectionId c = Attach(Options(16 * K));
  Send(c, {100});
  SendMessage(c, {200, 32 * K});
  Send(c, {300});
  SendMessage(c, {400});
  ASSERT_TRUE(executor_->Flush().ok());
  const std::vector<SqeRecord>& log = ring_->log();
  ASSERT_EQ(log.size(), 3u);
  for (const SqeRecord& r : log) EXPECT_EQ(r.chain, log[0].chain);
  EXPECT_EQ(log[0].opcode, IORING_OP_WRITEV);
  EXPECT_EQ(log[0].bytes_requested, 300u);
  EXPECT_TRUE(FakeRing::IsZeroCopyOpcode(log[1].opcode));
  EXPECT_EQ(log[2].opcode, IORING_OP_WRITEV);
  EXPECT_EQ(log[2].bytes_requested, 700u);
  Pump();
  ExpectExact(c);
  ExpectMessagesDropped();
}

// --- Randomised: plain buffers and messages mixed, under faults ------------

class PreparedMessageRandomTest : public PreparedMessageReviewTest,
                                  public testing::WithParamInterface<int> {};

TEST_P(PreparedMessageRandomTest, MixedStreamsArriveExactlyOnce) {
  std::mt19937_64 rng(GetParam());
  auto pick = [&](auto... v) {
    const uint64_t values[] = {static_cast<uint64_t>(v)...};
    return values[rng() % sizeof...(v)];
  };
  FakeRingOptions ro;
  ro.sq_entries = static_cast<uint32_t>(pick(3, 4, 8, 64));
  ro.cq_entries = static_cast<uint32_t>(pick(2, 8, 1024));
  ro.features.sendmsg_zc_fixed = rng() % 2 == 0;
  ro.features.zc_report_usage = rng() % 4 != 0;
  ro.notify_cancelled_zc = rng() % 4 != 0;
  ExecutorOptions eo;
  eo.max_bytes_awaiting_notification = pick(64 * K, 256 * K, 64 * 1024 * K);
  Make(ro, eo);
  keep_messages_ = rng() % 2 == 0;
  if (rng() % 3 == 0) {
    // Part of the memory registered: fixed-buffer ops for what lies in it.
    pool_.resize(4096 * K);
    const iovec region{pool_.data(), pool_.size() / 2};
    ASSERT_TRUE(executor_->RegisterBuffers({&region, 1}).ok());
  }
  const int nconns = 1 + static_cast<int>(rng() % 2);
  std::vector<ConnectionId> conns;
  for (int i = 0; i < nconns; ++i) {
    ConnectionOptions o =
        Options(pick(0, 4 * K, 16 * K, PlanOptions::kNever),
                rng() % 2 ? CopyOp::kWritev : CopyOp::kSendmsg);
    o.plan.max_iovs_per_op = static_cast<uint32_t>(pick(1, 2, 3, 1024));
    o.plan.max_bytes_per_op = pick(1000, 5000, 64 * K, kMaxBytesPerOp);
    o.plan.max_ops_per_chain = static_cast<uint32_t>(pick(1, 2, 3, 5, 64));
    o.plan.zc_gap_bytes = pick(0, 100);
    const bool adaptive = rng() % 3 == 0;
    if (adaptive) {
      // Copied notifications turn zero-copy off and, after a few chains,
      // on again.
      o.adaptive_zero_copy = true;
      o.adaptive_copied_limit = 2;
      o.adaptive_retry_chains = 3;
    }
    conns.push_back(Attach(o));
    if (adaptive) ring_->SetCopied(Fd(conns.back()), true);
  }
  auto size = [&] {
    return static_cast<size_t>(
        pick(1, 10, 500, 3000, 5000, 17000, 40000, 70000));
  };
  std::vector<std::shared_ptr<const PreparedMessage>> shared;
  // Now and then a release enqueues a message from inside the callback
  // (state in members: the hook may run at teardown).
  hook_left_ = static_cast<int>(rng() % 2) * 15;
  hook_rng_.seed(rng());
  release_hook_ = [this](ConnectionId c) {
    if (hook_left_ > 0 && hook_rng_() % 3 == 0) {
      --hook_left_;
      static constexpr size_t kSizes[] = {1, 500, 5000, 17000, 70000};
      std::vector<size_t> sizes(1 + hook_rng_() % 4);
      for (size_t& s : sizes) s = kSizes[hook_rng_() % 5];
      TrySendMessage(c, sizes);
    }
  };
  for (int step = 0; step < 40; ++step) {
    const ConnectionId c = conns[rng() % conns.size()];
    const int fd = Fd(c);
    switch (rng() % 8) {
      case 0:
      case 1: {
        std::vector<size_t> sizes(1 + rng() % 3);
        for (size_t& s : sizes) s = size();
        Send(c, sizes);
        break;
      }
      case 2:
      case 3: {
        std::vector<size_t> sizes(1 + rng() % 8);
        for (size_t& s : sizes) s = size();
        if (rng() % 3 == 0) {
          // Kept by the test and enqueued again later, maybe elsewhere.
          // (its memory is not poisoned: other enqueues share it).
          shared.push_back(SendMessage(c, sizes, nullptr, /*poison=*/false));
        } else {
          SendMessage(c, sizes);
        }
        break;
      }
      case 4:
        if (!shared.empty()) SendAgain(c, shared[rng() % shared.size()]);
        break;
      case 5: {
        const int kind = static_cast<int>(rng() % 4);
        if (kind == 3) {
          ring_->AddFault(fd, FakeFault{-1, -1, rng() % 2 ? -EAGAIN : -EINTR});
        } else if (kind == 0) {
          ring_->AddFault(fd,
                          FakeFault{-1, static_cast<int64_t>(rng() % 9000)});
        } else {
          FakeFault f{kind == 1 ? IORING_OP_SEND_ZC : IORING_OP_SENDMSG_ZC, -1,
                      -ENOMEM};
          f.more = false;
          f.notify = false;
          ring_->AddFault(fd, f);
        }
        break;
      }
      case 6:
        if (rng() % 8 == 0) ring_->SetZeroCopySupported(fd, false);
        if (rng() % 4 == 0) {
          ring_->InjectSubmitResult(static_cast<int>(pick(-EINTR, -EBUSY)));
        }
        ring_->set_hold_notifications(rng() % 2 == 0);
        if (rng() % 2) ring_->DeliverAllNotifications(rng() % 2 == 0);
        break;
      case 7: {
        if (rng() % 4 == 0) {
          ring_->SetCapacity(fd, static_cast<int64_t>(rng() % 20000));
        }
        absl::StatusOr<size_t> n = executor_->Poll(absl::ZeroDuration());
        ASSERT_TRUE(n.ok()) << n.status();
        break;
      }
    }
  }
  // Some connections end early: Close or Abort with work in flight.
  std::vector<bool> stopped(conns.size(), false);
  for (size_t i = 0; i < conns.size(); ++i) {
    switch (rng() % 6) {
      case 0:
        ASSERT_TRUE(executor_->Close(conns[i]).ok());
        stopped[i] = true;
        break;
      case 1:
        (void)executor_->Abort(conns[i]);
        stopped[i] = true;
        break;
      default:
        break;
    }
  }
  ring_->set_hold_notifications(false);
  ring_->DeliverAllNotifications();
  hook_left_ = 0;
  for (int round = 0; round < 200000 && !AllIdle(); ++round) {
    absl::StatusOr<size_t> n = executor_->Poll(absl::ZeroDuration());
    ASSERT_TRUE(n.ok()) << n.status();
    ring_->DeliverAllNotifications();
    for (ConnectionId c : conns) ring_->AddCapacity(Fd(c), 1 << 20);
  }
  if (!AllIdle() || getenv("REVIEW_DEBUG")) {
    for (ConnectionId c : conns) {
      absl::StatusOr<SendStats> st = executor_->connection_stats(c);
      printf("conn %lu idle=%d zc=%d err=%s sent=%zu/%zu: %s\n", c.value,
             executor_->Idle(c), executor_->ZeroCopyEnabled(c),
             executor_->ConnectionError(c).ToString().c_str(),
             ring_->received(Fd(c)).size(), expected_[c.value].size(),
             st.ok() ? FormatStats(*st).c_str() : "-");
    }
    printf("blocked=%zu held=%zu pending=%u log=%zu cap=%lu\n",
           ring_->blocked_ops(), ring_->held_notifications().size(),
           ring_->sq_pending(), ring_->log().size(),
           executor_->max_bytes_awaiting_notification());
  }
  ASSERT_TRUE(AllIdle());
  for (size_t i = 0; i < conns.size(); ++i) {
    if (stopped[i]) {
      ExpectPrefix(conns[i]);
      continue;
    }
    EXPECT_TRUE(executor_->ConnectionError(conns[i]).ok())
        << executor_->ConnectionError(conns[i]);
    ExpectExact(conns[i]);
  }
  CheckNoViolations();
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  if (std::find(stopped.begin(), stopped.end(), true) == stopped.end()) {
    EXPECT_EQ(ledger_.failed(), 0u);
  }
  if (getenv("REVIEW_STATS")) {
    for (ConnectionId c : conns) {
      absl::StatusOr<SendStats> st = executor_->connection_stats(c);
      if (!st.ok()) continue;
      printf("seed %d conn %lu: %s\n", GetParam(), c.value,
             FormatStats(*st).c_str());
    }
  }
  for (const auto& m : messages_) {
    // The test's own two references at most (messages_ and `shared`).
    EXPECT_LE(m.use_count(), 2);
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PreparedMessageRandomTest,
                         testing::Range(0, 300));

// --- Real io_uring over loopback (skips where io_uring is unavailable) ------
//
// A stream cut into plain buffers and prepared messages, zero-copy and copy,
// with a slow reader (short sends) and registered buffers. Every byte the
// receiver gets must be the stream's byte at that offset. Timeouts are hang
// guards only.

class LoopbackMessageTest
    : public testing::TestWithParam<std::tuple<uint64_t, CopyOp, bool>> {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  TokenLedger ledger_;
  std::deque<std::unique_ptr<Stream>> streams_;
  std::deque<TcpPair> pairs_;
  std::unique_ptr<Executor> executor_;
};

TEST_P(LoopbackMessageTest, MixedStreamIsByteExact) {
  const auto [threshold, copy_op, slow] = GetParam();
  ExecutorOptions eo;
  eo.on_release = ledger_.callback();
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(std::move(eo));
  if (!executor.ok()) GTEST_SKIP() << IoUringSkipReason(executor.status());
  executor_ = *std::move(executor);

  std::mt19937_64 rng(threshold * 7 + static_cast<int>(copy_op) * 3 + slow);
  constexpr size_t kSizes[] = {1, 100, 3000, 5000, 17000, 70000, 300000};
  std::vector<size_t> sizes(600);
  for (size_t& s : sizes) s = kSizes[rng() % 7];
  streams_.push_back(std::make_unique<Stream>(1, sizes));
  Stream& stream = *streams_.back();
  const iovec region{stream.data(), stream.total() / 2};
  ASSERT_TRUE(executor_->RegisterBuffers({&region, 1}).ok());

  absl::StatusOr<TcpPair> pair =
      slow ? MakeTcpPair(16 * K, 16 * K) : MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  pairs_.push_back(*std::move(pair));
  ConnectionOptions o;
  o.plan.zc_threshold = threshold;
  o.plan.copy_op = copy_op;
  o.plan.max_ops_per_chain = 8;
  o.adaptive_zero_copy = false;
  absl::StatusOr<ConnectionId> c = executor_->Attach(pairs_.back().client, o);
  ASSERT_TRUE(c.ok()) << c.status();

  ReceiverOptions ro;
  ro.check_pattern = true;
  ro.pattern_streams = {stream.id()};
  ro.byte_limits = {stream.total()};
  ro.timeout = absl::Seconds(120);
  ro.read_size = slow ? 4 * K : 256 * K;
  if (slow) ro.pause_after_read = absl::Microseconds(200);
  absl::StatusOr<std::unique_ptr<Receiver>> receiver =
      Receiver::OnSockets({pairs_.back().server}, std::move(ro));
  ASSERT_TRUE(receiver.ok()) << receiver.status();

  // Runs of 1..12 buffers: a plain Enqueue each, or one prepared message.
  size_t offset = 0;
  size_t i = 0;
  while (i < sizes.size()) {
    const size_t n = std::min<size_t>(1 + rng() % 12, sizes.size() - i);
    if (rng() % 2) {
      std::vector<iovec> iovs;
      size_t bytes = 0;
      for (size_t k = 0; k < n; ++k) {
        iovs.push_back({stream.data() + offset + bytes, sizes[i + k]});
        bytes += sizes[i + k];
      }
      absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
          PreparedMessage::Create(iovs);
      ASSERT_TRUE(m.ok());
      const uint64_t token = ledger_.Expect(*c, stream.data() + offset, bytes);
      ASSERT_TRUE(executor_->EnqueueMessage(*c, *m, token).ok());
      offset += bytes;
    } else {
      for (size_t k = 0; k < n; ++k) {
        unsigned char* p = stream.data() + offset;
        const uint64_t token = ledger_.Expect(*c, p, sizes[i + k]);
        ASSERT_TRUE(executor_->Enqueue(*c, p, sizes[i + k], token).ok());
        offset += sizes[i + k];
      }
    }
    i += n;
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  ASSERT_TRUE(executor_->Drain(absl::Seconds(120)).ok());
  (void)(*receiver)->Join();
  const ReceivedConnection& got = (*receiver)->connections()[0];
  EXPECT_EQ(got.mismatch_at, -1);
  EXPECT_EQ(got.bytes, stream.total());
  EXPECT_TRUE(executor_->ConnectionError(*c).ok());
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.failed(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    All, LoopbackMessageTest,
    testing::Combine(testing::Values(uint64_t{0}, uint64_t{16 * K},
                                     PlanOptions::kNever),
                     testing::Values(CopyOp::kWritev, CopyOp::kSendmsg),
                     testing::Bool()));

}  // namespace
}  // namespace zcplan
