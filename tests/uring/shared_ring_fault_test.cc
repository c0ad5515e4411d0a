// SPDX-License-Identifier: Apache-2.0
// The executor on the caller's ring (a nonzero user_data_tag), over the fake
// ring: the test plays the caller, which submits and reaps the ring itself
// and hands the executor its completions (Owns / HandleCompletion).
//
// Foreign completions, including ones whose user_data an untagged executor
// would have taken for its own, are interleaved with the executor's; the
// streams must stay byte-exact, every buffer be released once, the fake see
// no violation, and foreign completions change nothing. Also: reaping with
// on_foreign_completion, short sends, Close with ops in flight, Abort,
// Shutdown on the shared ring, the calls that need reaping, tag checks, and
// the caller's own SQEs beside the executor's.

#include <liburing.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/fake_ring.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/ring.h"

namespace zcplan {
namespace {

constexpr size_t K = 1024;
constexpr uint8_t kTag = 0x3C;
constexpr uint64_t kLow56 = (uint64_t{1} << 56) - 1;

class SharedRingFaultTest : public testing::Test {
 protected:
  ~SharedRingFaultTest() override {
    executor_.reset();
    if (caller_sends_on_executor_socket_) return;  // the fake objects
    EXPECT_TRUE(ring_.violations().empty())
        << ring_.violations().size() << " violations, first "
        << ring_.violations().front();
  }

  // `ring` defaults to a BorrowedRing of `ring_`.
  void Make(ExecutorOptions options = ExecutorOptions(),
            std::unique_ptr<Ring> ring = nullptr) {
    options.user_data_tag = kTag;
    ReleaseCallback ledger = ledger_.callback();
    options.on_release = [this, ledger](ConnectionId c, uint64_t token,
                                        const absl::Status& status) {
      ledger(c, token, status);
      if (release_hook_) release_hook_(c);
    };
    options.teardown_timeout = absl::Milliseconds(1);
    if (ring == nullptr) ring = std::make_unique<BorrowedRing>(&ring_);
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::CreateWithRing(std::move(ring), std::move(options));
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = *std::move(executor);
  }

  // A real connected socket (Attach checks it is TCP); the fake uses only
  // the number. Zero-copy from 16K; notifications report zero-copy.
  ConnectionId Attach(uint64_t threshold = 16 * K,
                      CopyOp copy_op = CopyOp::kWritev) {
    absl::StatusOr<TcpPair> pair = MakeTcpPair();
    EXPECT_TRUE(pair.ok()) << pair.status();
    const int fd = pair->client;
    pairs_.push_back(*std::move(pair));
    ConnectionOptions o;
    o.plan.zc_threshold = threshold;
    o.plan.copy_op = copy_op;
    o.adaptive_zero_copy = false;
    absl::StatusOr<ConnectionId> id = executor_->Attach(fd, o);
    EXPECT_TRUE(id.ok()) << id.status();
    ring_.SetCopied(fd, false);
    streams_[id->value] =
        std::make_unique<Stream>(id->value, std::vector<size_t>());
    fds_[id->value] = fd;
    return *id;
  }

  int Fd(ConnectionId id) { return fds_.at(id.value); }

  // One all-zero-copy connection whose ops completed through the caller's
  // loop and whose notifications the fake holds.
  ConnectionId HeldZeroCopy() {
    Make();
    ring_.set_hold_notifications(true);
    const ConnectionId a = Attach(0);
    Send(a, {32 * K, 64 * K});
    Round();
    Round();
    EXPECT_FALSE(ring_.held_notifications().empty());
    return a;
  }

  // Makes connection `id`'s stream of `sizes` and enqueues all of it (once
  // per connection).
  void Send(ConnectionId id, std::vector<size_t> sizes) {
    auto stream = std::make_unique<Stream>(id.value, std::move(sizes));
    while (!stream->done()) {
      ASSERT_TRUE(stream->EnqueueNext(*executor_, ledger_, id).ok());
    }
    streams_[id.value] = std::move(stream);
  }

  // What the fake's socket got is exactly the stream (or a prefix of it
  // when `prefix_ok`).
  void ExpectExact(ConnectionId id, bool prefix_ok = false) {
    const std::string& got = ring_.received(Fd(id));
    StreamCheck check = CheckFor(*streams_.at(id.value));
    check.Feed(reinterpret_cast<const unsigned char*>(got.data()), got.size());
    EXPECT_EQ(check.first_mismatch, -1) << check.Describe();
    if (prefix_ok) {
      EXPECT_LE(check.received, check.expected) << check.Describe();
    } else {
      EXPECT_EQ(check.received, check.expected) << check.Describe();
    }
  }

  // The caller's loop, one round: the executor's SQEs onto the ring, the
  // caller's submit, and every completion dispatched with Owns. Foreign
  // ones are recorded, and HandleCompletion must refuse them.
  void Round() {
    const absl::Status s = executor_->Prepare();
    ASSERT_TRUE(s.ok()) << s;
    ring_.SubmitAndWait(0, 0);
    Completion batch[64];
    const size_t n = ring_.Reap(absl::MakeSpan(batch, 64));
    for (size_t i = 0; i < n; ++i) {
      const io_uring_cqe cqe = ToCqe(batch[i]);
      if (executor_->Owns(cqe.user_data)) {
        EXPECT_TRUE(executor_->HandleCompletion(cqe));
      } else {
        foreign_seen_.push_back(cqe.user_data);
        const std::string before = FormatStats(executor_->stats().totals);
        const size_t released = ledger_.released();
        EXPECT_FALSE(executor_->HandleCompletion(cqe)) << cqe.user_data;
        EXPECT_EQ(FormatStats(executor_->stats().totals), before);
        EXPECT_EQ(ledger_.released(), released);
      }
    }
  }

  void RunUntilIdle(int max_rounds = 200) {
    for (int i = 0; i < max_rounds && !executor_->Idle(); ++i) {
      Round();
      if (HasFatalFailure()) return;
    }
    ASSERT_TRUE(executor_->Idle()) << FormatStats(executor_->stats().totals);
    Round();  // whatever came last
  }

  // The user_data of the executor's send ops in the fake's log.
  std::vector<uint64_t> ExecutorOpUserData() const {
    std::vector<uint64_t> out;
    for (const SqeRecord& r : ring_.log()) {
      if ((r.user_data >> 56) == kTag &&
          (FakeRing::IsSendFamilyOpcode(r.opcode) ||
           r.opcode == IORING_OP_WRITEV)) {
        out.push_back(r.user_data);
      }
    }
    return out;
  }

  FakeRing ring_;
  TokenLedger ledger_;
  std::vector<TcpPair> pairs_;
  std::map<uint64_t, std::unique_ptr<Stream>> streams_;
  std::map<uint64_t, int> fds_;
  std::unique_ptr<Executor> executor_;
  std::vector<uint64_t> foreign_seen_;
  // The test's own op sends on a socket the executor also sends on, which
  // the fake reports as a violation (two chains in flight on one fd).
  bool caller_sends_on_executor_socket_ = false;
  // Runs after the ledger in every release callback.
  std::function<void(ConnectionId)> release_hook_;
};

// A BorrowedRing whose SQE counters run `*skip` ahead of the fake's: raising
// `*skip` stands for that many SQEs of the caller's, obtained and submitted
// while the executor was not called.
class SkippingRing : public BorrowedRing {
 public:
  SkippingRing(FakeRing* ring, const uint32_t* skip)
      : BorrowedRing(ring), ring_(ring), skip_(skip) {}
  uint32_t SqesObtained() override { return ring_->SqesObtained() + *skip_; }
  uint32_t SqesTaken() override { return ring_->SqesTaken() + *skip_; }

 private:
  FakeRing* ring_;
  const uint32_t* skip_;
};

std::vector<size_t> MixedSizes() {
  return {100, 20 * K, 3000, 64 * K, 1, 16 * K, 40 * K, 7, 17 * K, 2 * K};
}

TEST_F(SharedRingFaultTest, ForeignCompletionsAreNeverTakenAndChangeNothing) {
  Make();
  ring_.set_hold_notifications(true);
  const ConnectionId a = Attach();
  const ConnectionId b = Attach(16 * K, CopyOp::kSendmsg);
  Send(a, MixedSizes());
  Send(b, MixedSizes());
  ASSERT_TRUE(executor_->Prepare().ok());
  ring_.SubmitAndWait(0, 0);
  // The executor's ops are on the ring and their completions not yet
  // handed over; zero-copy notifications are held.
  const std::vector<uint64_t> ours = ExecutorOpUserData();
  ASSERT_FALSE(ours.empty());
  std::vector<uint64_t> foreign = {7, uint64_t{1} << 32, ~uint64_t{0}, 0, 1};
  for (uint64_t ud : ours) {
    foreign.push_back(ud & kLow56);  // an untagged executor's value
    foreign.push_back((ud & kLow56) | (uint64_t{kTag + 1} << 56));
    foreign.push_back((ud & kLow56) | (uint64_t{kTag - 1} << 56));
  }
  for (uint64_t ud : foreign) {
    ASSERT_FALSE(executor_->Owns(ud)) << ud;
    // Some look like results, some like zero-copy notifications.
    ring_.InjectCompletion({ud, 1 << 20, 0});
    ring_.InjectCompletion({ud, 0, IORING_CQE_F_NOTIF});
  }
  Round();
  ring_.DeliverAllNotifications();
  for (uint64_t ud : foreign) ring_.InjectCompletion({ud, -ECANCELED, 0});
  RunUntilIdle();
  ExpectExact(a);
  ExpectExact(b);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.failed(), 0u);
  EXPECT_EQ(foreign_seen_.size(), foreign.size() * 3);
  EXPECT_EQ(executor_->stats().totals.stray_notifications, 0u);
}

// A user_data with the executor's tag, the internal bit off and a slot index
// it never used: it is the executor's by the contract (HandleCompletion takes
// it) but must match no op, move no stream and release nothing.
TEST_F(SharedRingFaultTest, TaggedUserDataOfNoOpMatchesNothing) {
  Make();
  ring_.set_hold_notifications(true);
  const ConnectionId a = Attach(0);
  Send(a, {32 * K, 64 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  ring_.SubmitAndWait(0, 0);
  const uint64_t tag = uint64_t{kTag} << 56;
  const uint64_t bogus[] = {tag | 0xFFFFFF, tag | (uint64_t{5} << 32) | 0,
                            tag | 12345};
  for (uint64_t ud : bogus) {
    ASSERT_TRUE(executor_->Owns(ud));
    const size_t released = ledger_.released();
    EXPECT_TRUE(executor_->HandleCompletion(ToCqe({ud, 1 << 20, 0})));
    EXPECT_TRUE(
        executor_->HandleCompletion(ToCqe({ud, 0, IORING_CQE_F_NOTIF})));
    EXPECT_EQ(ledger_.released(), released);
  }
  ring_.DeliverAllNotifications();
  RunUntilIdle();
  ExpectExact(a);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.failed(), 0u);
}

TEST_F(SharedRingFaultTest, OnForeignCompletionGetsEachOnceInOrder) {
  std::vector<io_uring_cqe> delivered;
  ExecutorOptions eo;
  eo.on_foreign_completion = [&](const io_uring_cqe& cqe) {
    delivered.push_back(cqe);
  };
  Make(eo);
  const ConnectionId a = Attach();
  std::vector<uint64_t> injected;
  uint64_t next = 0;
  auto inject = [&](int count) {
    const uint64_t values[] = {7, uint64_t{1} << 32, ~uint64_t{0}, 0,
                               uint64_t{kTag + 1} << 56};
    for (int i = 0; i < count; ++i, ++next) {
      const uint64_t ud = values[next % 5] + (next / 5);
      injected.push_back(ud);
      ring_.InjectCompletion(
          {ud, static_cast<int32_t>(next), static_cast<uint32_t>(next % 3)});
    }
  };
  inject(3);
  Send(a, MixedSizes());
  absl::StatusOr<size_t> polled = executor_->Poll(absl::ZeroDuration());
  ASSERT_TRUE(polled.ok()) << polled.status();
  inject(4);
  polled = executor_->Poll(absl::ZeroDuration());
  ASSERT_TRUE(polled.ok()) << polled.status();
  inject(5);
  ASSERT_TRUE(executor_->Drain(absl::Seconds(1)).ok());
  inject(2);
  polled = executor_->Poll(absl::ZeroDuration());
  ASSERT_TRUE(polled.ok()) << polled.status();
  ASSERT_EQ(delivered.size(), injected.size());
  for (size_t i = 0; i < injected.size(); ++i) {
    EXPECT_EQ(delivered[i].user_data, injected[i]) << i;
    EXPECT_EQ(delivered[i].res, static_cast<int32_t>(i)) << i;
    EXPECT_EQ(delivered[i].flags, i % 3) << i;
  }
  EXPECT_EQ(ring_.cq_ready(), 0u);
  ExpectExact(a);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

TEST_F(SharedRingFaultTest, ShortSendsResumeFromTheExactByte) {
  Make();
  const ConnectionId a = Attach(16 * K, CopyOp::kWritev);
  const ConnectionId b = Attach(16 * K, CopyOp::kSendmsg);
  for (int i = 0; i < 6; ++i) {
    ring_.AddFault(Fd(a), FakeFault{-1, 1000 + 7 * i, 0});
    ring_.AddFault(Fd(b), FakeFault{-1, 333 * (i + 1), 0});
  }
  Send(a, MixedSizes());
  Send(b, MixedSizes());
  ring_.InjectCompletion({7, 0, 0});
  RunUntilIdle();
  ExpectExact(a);
  ExpectExact(b);
  EXPECT_GT(executor_->stats().totals.short_sends, 0u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.failed(), 0u);
  EXPECT_EQ(foreign_seen_, std::vector<uint64_t>{7});
}

TEST_F(SharedRingFaultTest, CloseWithOpsInFlightCancelsThroughTheCallersLoop) {
  Make();
  const ConnectionId a = Attach(0);
  const ConnectionId b = Attach();
  ring_.SetCapacity(Fd(a), 10 * K);  // a slow reader: ops block
  Send(a, {32 * K, 64 * K, 16 * K});
  Send(b, MixedSizes());
  Round();
  Round();
  ASSERT_GT(ring_.blocked_ops(), 0u);
  ASSERT_TRUE(executor_->Close(a).ok());
  ring_.InjectCompletion({uint64_t{1} << 32, -ECANCELED, 0});
  RunUntilIdle();
  EXPECT_EQ(ring_.blocked_ops(), 0u);
  ExpectExact(a, /*prefix_ok=*/true);
  ExpectExact(b);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_GT(ledger_.failed(), 0u);
  EXPECT_EQ(foreign_seen_, std::vector<uint64_t>{uint64_t{1} << 32});
}

TEST_F(SharedRingFaultTest, AbortBringsHeldZeroCopyBuffersBack) {
  const ConnectionId a = HeldZeroCopy();
  if (HasFatalFailure()) return;
  ASSERT_TRUE(executor_->Abort(a).ok());
  EXPECT_EQ(ring_.resets(Fd(a)), 1);
  RunUntilIdle();
  ExpectExact(a, /*prefix_ok=*/true);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.kernel_may_read(), 0u);
}

TEST_F(SharedRingFaultTest, ShutdownCannotWaitAndReapsNothing) {
  HeldZeroCopy();
  if (HasFatalFailure()) return;
  ring_.InjectCompletion({7, 0, 0});
  const size_t cq_before = ring_.cq_ready();
  const absl::Status s = executor_->Shutdown(absl::Milliseconds(50));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_GT(ledger_.kernel_may_read(), 0u);
  // The caller's completion, and any of the executor's, are still there.
  EXPECT_GE(ring_.cq_ready(), cq_before);
  Completion batch[64];
  const size_t n = ring_.Reap(absl::MakeSpan(batch, 64));
  bool saw_seven = false;
  for (size_t i = 0; i < n; ++i) saw_seven |= batch[i].user_data == 7;
  EXPECT_TRUE(saw_seven);
  // The kernel's late notifications are ignored.
  ring_.DeliverAllNotifications();
  const size_t m = ring_.Reap(absl::MakeSpan(batch, 64));
  EXPECT_GT(m, 0u);
  for (size_t i = 0; i < m; ++i) {
    EXPECT_TRUE(executor_->HandleCompletion(ToCqe(batch[i])));
  }
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

TEST_F(SharedRingFaultTest, CallsThatReapNeedOnForeignCompletion) {
  Make();
  const ConnectionId a = Attach();
  Send(a, {100});
  absl::StatusOr<size_t> polled = executor_->Poll(absl::ZeroDuration());
  EXPECT_EQ(polled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(executor_->Drain(absl::Milliseconds(1)).code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<size_t> ready = executor_->HandleReady();
  EXPECT_EQ(ready.status().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<int> watch = executor_->WatchFd();
  EXPECT_EQ(watch.status().code(), absl::StatusCode::kFailedPrecondition);
  RunUntilIdle();
  ExpectExact(a);
}

TEST(SharedRingTagTest, CreateOnRingAndCreateCheckTheTag) {
  ExecutorOptions o;
  o.on_release = [](ConnectionId, uint64_t, const absl::Status&) {};
  io_uring ring{};  // never initialized: each call must fail before using it
  for (int tag : {0, 255}) {
    o.user_data_tag = static_cast<uint8_t>(tag);
    absl::StatusOr<std::unique_ptr<Executor>> e =
        Executor::CreateOnRing(&ring, o);
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << tag;
  }
  o.user_data_tag = 1;
  EXPECT_EQ(Executor::CreateOnRing(nullptr, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Executor::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// SQEs the executor prepared and the caller submitted are the kernel's: a
// later Close must not turn them into NOPs, and their buffers come back only
// with their completions. SQEs still unsubmitted are undone.
TEST_F(SharedRingFaultTest, CloseNeverRewritesSqesTheCallerSubmitted) {
  Make();
  const ConnectionId a = Attach();
  const ConnectionId b = Attach();
  Send(a, {100, 20 * K, 3000});
  Send(b, {200, 30 * K, 4000});
  ASSERT_TRUE(executor_->Prepare().ok());
  ASSERT_GE(ring_.sq_pending(), 2u);
  // The caller submits them, then both are closed before any completion
  // is handed over.
  ring_.SubmitAndWait(0, 0);
  EXPECT_EQ(ring_.sq_pending(), 0u);
  ASSERT_TRUE(executor_->Close(a).ok());
  ASSERT_TRUE(executor_->Close(b).ok());
  EXPECT_EQ(ledger_.released(), 0u);  // all with the kernel
  RunUntilIdle();
  ExpectExact(a);
  ExpectExact(b);
  EXPECT_EQ(ledger_.failed(), 0u);
  EXPECT_EQ(ring_.ops_submitted(IORING_OP_NOP), 0u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

TEST_F(SharedRingFaultTest, CloseUndoesSqesStillUnsubmitted) {
  Make();
  const ConnectionId a = Attach();
  Send(a, {100, 20 * K, 3000});
  ASSERT_TRUE(executor_->Prepare().ok());
  ASSERT_GT(ring_.sq_pending(), 0u);
  ASSERT_TRUE(executor_->Close(a).ok());
  EXPECT_EQ(ledger_.released(), 3u);  // nothing went to the kernel
  RunUntilIdle();
  EXPECT_EQ(ring_.received(Fd(a)).size(), 0u);
  EXPECT_EQ(ledger_.failed(), 3u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// The SQ head says which of the executor's SQEs the caller's submit took:
// Close leaves those alone and turns only the rest into NOPs. And Close and
// Abort submit nothing on the caller's ring: closing a first must not send
// b's prepared chain (or the caller's own SQE) to the kernel.
TEST_F(SharedRingFaultTest, CloseUndoesOnlyTheSqesNotYetSubmitted) {
  Make();
  const ConnectionId a = Attach();
  const ConnectionId b = Attach();
  const ConnectionId c = Attach();
  Send(a, {100, 20 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  ring_.SubmitAndWait(0, 0);  // the caller takes a's chain
  Send(b, {300, 40 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  const uint32_t b_sqes = ring_.sq_pending();
  ASSERT_GT(b_sqes, 0u);
  io_uring_sqe* own = ring_.GetSqe();  // one of the caller's, queued
  ASSERT_NE(own, nullptr);
  io_uring_prep_nop(own);
  own->user_data = 7;
  const uint64_t calls = ring_.submit_calls();
  ASSERT_TRUE(executor_->Close(a).ok());
  ASSERT_TRUE(executor_->Abort(c).ok());
  EXPECT_EQ(ring_.submit_calls(), calls);
  EXPECT_EQ(ledger_.released(), 0u);  // a's are the kernel's
  ASSERT_TRUE(executor_->Close(b).ok());
  EXPECT_EQ(ledger_.released(), 2u);  // b's, at once
  EXPECT_EQ(ring_.submit_calls(), calls);
  RunUntilIdle();
  ExpectExact(a);
  EXPECT_EQ(ring_.received(Fd(b)).size(), 0u);
  // b's SQEs and the caller's own NOP.
  EXPECT_EQ(ring_.ops_submitted(IORING_OP_NOP), b_sqes + 1);
  EXPECT_EQ(ledger_.failed(), 2u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// HandleCompletions on a batch that mixes the caller's completions with the
// executor's takes exactly the executor's.
TEST_F(SharedRingFaultTest, HandleCompletionsTakesOnlyTheExecutors) {
  Make();
  const ConnectionId a = Attach();
  Send(a, MixedSizes());
  std::vector<uint64_t> foreign;
  for (int round = 0; round < 100 && !executor_->Idle(); ++round) {
    ASSERT_TRUE(executor_->Prepare().ok());
    const uint64_t ud = (uint64_t{static_cast<uint32_t>(round)} << 32) | 1;
    ring_.InjectCompletion({ud, 0, 0});
    foreign.push_back(ud);
    ring_.SubmitAndWait(0, 0);
    Completion batch[64];
    const size_t n = ring_.Reap(absl::MakeSpan(batch, 64));
    std::vector<io_uring_cqe> cqes(n);
    std::vector<io_uring_cqe*> pointers(n);
    size_t ours = 0;
    for (size_t i = 0; i < n; ++i) {
      cqes[i] = ToCqe(batch[i]);
      pointers[i] = &cqes[i];
      ours += executor_->Owns(cqes[i].user_data) ? 1 : 0;
    }
    EXPECT_EQ(executor_->HandleCompletions(pointers), ours);
    EXPECT_LT(ours, n);
  }
  ASSERT_TRUE(executor_->Idle());
  ExpectExact(a);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.failed(), 0u);
}

// With on_foreign_completion, Shutdown can wait on the shared ring: it reaps
// the notifications (and hands the caller's completions over, once each)
// and returns OK with nothing left to the kernel.
TEST_F(SharedRingFaultTest, ShutdownWithOnForeignCompletionWaitsAndHandsOver) {
  std::vector<uint64_t> delivered;
  ExecutorOptions eo;
  eo.on_foreign_completion = [&](const io_uring_cqe& cqe) {
    delivered.push_back(cqe.user_data);
  };
  Make(eo);
  ring_.set_hold_notifications(true);
  const ConnectionId a = Attach(0);
  Send(a, {32 * K, 64 * K});
  absl::StatusOr<size_t> polled = executor_->Poll(absl::ZeroDuration());
  ASSERT_TRUE(polled.ok()) << polled.status();
  ASSERT_FALSE(ring_.held_notifications().empty());
  // The in-flight ops' user_data without the tag: the caller's.
  std::vector<uint64_t> injected = {7};
  for (uint64_t ud : ExecutorOpUserData()) injected.push_back(ud & kLow56);
  for (uint64_t ud : injected) ring_.InjectCompletion({ud, 0, 0});
  ring_.DeliverHeldAfterSubmits(2);
  EXPECT_TRUE(executor_->Shutdown(absl::Seconds(1)).ok());
  EXPECT_EQ(delivered, injected);
  EXPECT_EQ(ledger_.kernel_may_read(), 0u);
  ExpectExact(a);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// The caller takes an SQE of its own between two of the executor's calls;
// whatever the executor does next (prepare more, undo its own on Close), the
// caller's SQE runs as the caller wrote it.
TEST_F(SharedRingFaultTest, CallersSqeBetweenExecutorCallsIsNeverTouched) {
  Make();
  const ConnectionId a = Attach();
  const ConnectionId b = Attach();
  Send(a, {100, 20 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  static const char kHello[] = "hello";
  constexpr int kCallerFd = 1000;
  io_uring_sqe* mine = ring_.GetSqe();
  ASSERT_NE(mine, nullptr);
  io_uring_prep_send(mine, kCallerFd, kHello, 5, 0);
  io_uring_sqe_set_data64(mine, 7);
  Send(b, {300, 40 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  ASSERT_TRUE(executor_->Close(a).ok());  // undoes a's SQEs, not mine
  ASSERT_TRUE(executor_->Prepare().ok());
  RunUntilIdle();
  EXPECT_EQ(ring_.received(kCallerFd), "hello");
  bool found = false;
  for (const SqeRecord& r : ring_.log()) {
    if (r.user_data != 7) continue;
    found = true;
    EXPECT_EQ(r.opcode, IORING_OP_SEND);
    EXPECT_EQ(r.fd, kCallerFd);
    EXPECT_EQ(r.flags, 0);
    EXPECT_EQ(r.res, 5);
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(foreign_seen_, std::vector<uint64_t>{7});
  EXPECT_EQ(ring_.received(Fd(a)).size(), 0u);
  ExpectExact(b);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// After the caller's submit the ring hands out the same SQE memory again (the
// fake reuses it at once, as a real ring does after wrapping): an SQE the
// caller now writes there is its own, and a later Close must not take it for
// the executor's old SQE.
TEST_F(SharedRingFaultTest,
       CallersSqeReusingASubmittedSqesMemoryIsNeverTouched) {
  Make();
  const ConnectionId a = Attach();
  ring_.SetCapacity(Fd(a), 0);  // a's ops stay in flight
  Send(a, {100, 20 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  ring_.SubmitAndWait(0, 0);  // the caller takes a's SQEs
  static const char kHello[] = "hello";
  constexpr int kCallerFd = 1000;
  io_uring_sqe* mine = ring_.GetSqe();
  ASSERT_NE(mine, nullptr);
  io_uring_prep_send(mine, kCallerFd, kHello, 5, 0);
  io_uring_sqe_set_data64(mine, 7);
  ASSERT_TRUE(executor_->Close(a).ok());
  ring_.SubmitAndWait(0, 0);
  bool found = false;
  for (const SqeRecord& r : ring_.log()) {
    if (r.user_data != 7) continue;
    found = true;
    EXPECT_EQ(r.opcode, IORING_OP_SEND);
    EXPECT_EQ(r.fd, kCallerFd);
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(ring_.received(kCallerFd), "hello");
  RunUntilIdle();
  EXPECT_EQ(ring_.blocked_ops(), 0u);
  EXPECT_EQ(foreign_seen_, std::vector<uint64_t>{7});
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// Shutdown right after Prepare, before the caller's submit: whatever of the
// executor's the ring then runs must read only memory the executor still
// holds or handed back as KernelMayStillRead (the ledger poisons the rest,
// so a send from it shows up as a mismatch).
TEST_F(SharedRingFaultTest, ShutdownAfterPrepareSendsNothingHandedBack) {
  Make();
  const ConnectionId a = Attach();
  const ConnectionId b = Attach(0);
  Send(a, {100, 20 * K, 3000});
  Send(b, {32 * K, 64 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  (void)executor_->Shutdown(absl::Milliseconds(10));
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  ring_.SubmitAndWait(0, 0);
  ring_.DeliverAllNotifications();
  Completion batch[64];
  while (ring_.Reap(absl::MakeSpan(batch, 64)) > 0) {
  }
  ExpectExact(a, /*prefix_ok=*/true);
  ExpectExact(b, /*prefix_ok=*/true);
  if (ledger_.kernel_may_read() == 0) {
    EXPECT_EQ(ring_.received(Fd(a)).size(), 0u);
    EXPECT_EQ(ring_.received(Fd(b)).size(), 0u);
  }
}

// A completion handed over from inside a release callback (Close releases
// a's unsent buffer) is kept for later; the next one handed over must not
// overtake it. Here they are the completions of the first and second ops of
// b's chain: handled the wrong way round, the second looks out of order and
// fails b ("the stream is corrupt").
TEST_F(SharedRingFaultTest, CompletionDeferredInReleaseCallbackKeepsItsOrder) {
  Make();
  ring_.set_hold_notifications(true);
  const ConnectionId a = Attach();
  const ConnectionId b = Attach();
  Send(b, {100, 20 * K, 3000, 64 * K});
  ASSERT_TRUE(executor_->Prepare().ok());
  ring_.SubmitAndWait(0, 0);
  Completion batch[64];
  const size_t n = ring_.Reap(absl::MakeSpan(batch, 64));
  ASSERT_GE(n, 2u);  // one per op of b's chain
  Send(a, {100});    // queued, not prepared: Close releases it at once
  bool handed = false;
  release_hook_ = [&](ConnectionId c) {
    if (c != a || handed) return;
    handed = true;
    EXPECT_TRUE(executor_->HandleCompletion(ToCqe(batch[0])));
  };
  ASSERT_TRUE(executor_->Close(a).ok());
  ASSERT_TRUE(handed);
  release_hook_ = nullptr;
  for (size_t i = 1; i < n; ++i) {
    EXPECT_TRUE(executor_->HandleCompletion(ToCqe(batch[i])));
  }
  EXPECT_TRUE(executor_->ConnectionError(b).ok())
      << executor_->ConnectionError(b);
  ring_.DeliverAllNotifications();
  RunUntilIdle();
  ExpectExact(b);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  EXPECT_EQ(ledger_.failed(), 1u);  // a's, Cancelled
}

// Close of a connection on the caller's ring cancels the executor's ops,
// not the caller's own ops on the same socket (a server's recv on the
// connection it also sends on; the fake blocks only sends, so the caller's
// op here is a send). IORING_ASYNC_CANCEL_FD | _ALL takes every op on the
// fd, whoever submitted it.
TEST_F(SharedRingFaultTest, CloseNeverCancelsTheCallersOpsOnTheSameSocket) {
  caller_sends_on_executor_socket_ = true;
  Make();
  const ConnectionId a = Attach(PlanOptions::kNever);
  ring_.SetCapacity(Fd(a), 0);  // everything on a blocks
  Send(a, {100});               // one op
  ASSERT_TRUE(executor_->Prepare().ok());
  static const char kHello[] = "hello";
  io_uring_sqe* mine = ring_.GetSqe();
  ASSERT_NE(mine, nullptr);
  io_uring_prep_send(mine, Fd(a), kHello, 5, 0);
  io_uring_sqe_set_data64(mine, 7);
  ring_.SubmitAndWait(0, 0);
  ASSERT_EQ(ring_.blocked_ops(), 2u);  // a's chain and the caller's op
  ASSERT_TRUE(executor_->Close(a).ok());
  RunUntilIdle();
  for (const SqeRecord& r : ring_.log()) {
    if (r.user_data != 7) continue;
    EXPECT_FALSE(r.completed && r.res == -ECANCELED)
        << "the executor's Close cancelled the caller's op on fd " << Fd(a);
  }
  EXPECT_TRUE(foreign_seen_.empty())
      << "the caller got a completion for its op: " << foreign_seen_.size();
  EXPECT_EQ(ring_.blocked_ops(), 1u);  // the caller's, still waiting
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// On the caller's ring with the caller submitting (Prepare only), the
// executor's record of the SQEs it put on the ring is never pruned, and
// SQE numbers compare modulo 2^32 with int32_t(n - taken) < 0 for "taken":
// once 2^31 SQEs (the caller's count too) have gone by since an old record,
// it reads as not taken again. Close then takes the SQE memory that record
// points at (reused since, here by a's chain, which the kernel has taken
// and is running) for one of its own unsubmitted SQEs: it turns it into a
// NOP and releases a's buffers while the kernel still reads them (the
// ledger poisons them, so the bytes sent later are wrong).
TEST_F(SharedRingFaultTest, OldSqeRecordsNeverPassForUnsubmittedAfterWrap) {
  uint32_t skip = 0;
  Make(ExecutorOptions(), std::make_unique<SkippingRing>(&ring_, &skip));
  const ConnectionId b = Attach();
  const ConnectionId a = Attach();
  Send(b, {100});
  Round();  // b's chain: prepared, submitted by the caller, completed
  Round();
  ASSERT_EQ(ledger_.released(), 1u);
  ring_.SetCapacity(Fd(a), 0);  // a's chain stays in flight
  Send(a, {100, 200});
  Round();
  ASSERT_EQ(ring_.blocked_ops(), 1u);
  // 2^31 SQEs of the caller's (at a million a second, 36 minutes).
  skip += uint32_t{1} << 31;
  ASSERT_TRUE(executor_->Close(a).ok());
  EXPECT_EQ(ledger_.released(), 1u) << "a's buffers released while in flight";
  Round();  // the cancel goes with the caller's submit
  ring_.AddCapacity(Fd(a), 1 << 20);
  RunUntilIdle();
  ExpectExact(a, /*prefix_ok=*/true);
  ExpectExact(b);
  EXPECT_EQ(ring_.blocked_ops(), 0u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// Shutdown on the caller's ring closes every connection "as Close", whose
// cancels go with the caller's next submit; it must not then turn those
// cancels into NOPs, or an op blocked on a peer that stopped reading stays
// in the kernel after the executor is gone (still reading the memory it
// handed back as KernelMayStillRead, and keeping the socket open).
TEST_F(SharedRingFaultTest, ShutdownLeavesItsCancelsForTheCallersSubmit) {
  Make();
  const ConnectionId a = Attach();
  ring_.SetCapacity(Fd(a), 0);  // a peer that stopped reading
  Send(a, {100, 20 * K});
  Round();
  ASSERT_GT(ring_.blocked_ops(), 0u);
  const absl::Status s = executor_->Shutdown(absl::Milliseconds(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(ledger_.kernel_may_read(), 2u);
  ring_.SubmitAndWait(0, 0);  // the caller's next submit
  EXPECT_EQ(ring_.blocked_ops(), 0u)
      << "the executor's ops were never cancelled";
  EXPECT_GT(ring_.ops_executed(IORING_OP_ASYNC_CANCEL), 0u);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// on_foreign_completion is called from inside Poll's reaping; the header
// puts no limit on what it may call, and a caller's handler that polls
// again (say, to make progress on sends while it handles its own event)
// reaps into the same completion array the outer Poll is still walking:
// the outer loop then handles the inner one's completions again and never
// sees the rest of what it reaped (here the second foreign completion is
// lost). It must either work or be refused (FailedPrecondition).
TEST_F(SharedRingFaultTest, PollFromOnForeignCompletionLosesNothing) {
  std::vector<uint64_t> delivered;
  std::vector<absl::StatusCode> inner;
  Executor* ex = nullptr;
  ExecutorOptions eo;
  eo.on_foreign_completion = [&](const io_uring_cqe& cqe) {
    delivered.push_back(cqe.user_data);
    if (inner.empty()) {
      inner.push_back(ex->Poll(absl::ZeroDuration()).status().code());
    }
  };
  Make(eo);
  ex = executor_.get();
  const ConnectionId a = Attach(PlanOptions::kNever);
  const ConnectionId b = Attach(PlanOptions::kNever);
  Send(a, {100});
  Send(b, {200});
  ring_.InjectCompletion({7, 0, 0});
  ring_.InjectCompletion({uint64_t{1} << 32, 0, 0});
  // Prepares a's and b's chains; reaps the two foreign completions; the
  // first one's handler polls, which submits the chains and reaps their two
  // completions into the array the outer Poll is walking.
  absl::StatusOr<size_t> polled = executor_->Poll(absl::ZeroDuration());
  ASSERT_TRUE(polled.ok()) << polled.status();
  ASSERT_EQ(inner.size(), 1u);
  for (int i = 0; i < 100 && !executor_->Idle(); ++i) {
    ring_.DeliverAllNotifications();
    polled = executor_->Poll(absl::ZeroDuration());
    ASSERT_TRUE(polled.ok()) << polled.status();
  }
  EXPECT_TRUE(executor_->Idle());
  EXPECT_EQ(delivered, (std::vector<uint64_t>{7, uint64_t{1} << 32}));
  EXPECT_TRUE(executor_->ConnectionError(a).ok())
      << executor_->ConnectionError(a);
  ExpectExact(a);
  ExpectExact(b);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

}  // namespace
}  // namespace zcplan
