// SPDX-License-Identifier: Apache-2.0
// The executor on a real io_uring over loopback TCP: byte-exact streams under
// random mixed workloads, short writes, many connections on one ring, a peer
// that resets, adaptive zero-copy, registered buffers, Close mid-stream, and
// the RLIMIT_MEMLOCK charge of zero-copy sends (-ENOMEM and its fallback),
// and prepared messages (Executor::EnqueueMessage) among plain buffers.
//
// Besides its own point, every test checks that each byte a receiver got is
// the byte enqueued at that stream offset (buffers hold PatternByte(stream,
// offset)), and that every buffer was released exactly once. The ledger
// poisons a buffer when it is released, so a zero-copy send that still reads
// a released buffer shows up as a mismatch.
//
// Each test skips with the reason when io_uring is unavailable. Timeouts are
// hang guards only; nothing asserts on timing. The executor is used from the
// test's thread only; receiver threads only read sockets.
//
// Loopback always copies zero-copy data on the receiving side, so every
// notification reports IORING_NOTIF_USAGE_ZC_COPIED (docs/kernel.md).

#include <linux/capability.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/random/distributions.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/receiver.h"

namespace zcplan {
namespace {

constexpr size_t K = 1024;
constexpr size_t M = 1024 * K;

// Hang guards, generous so that sanitizer builds on a loaded machine pass.
constexpr absl::Duration kDrainTimeout = absl::Seconds(120);
constexpr absl::Duration kReceiveTimeout = absl::Seconds(180);
constexpr absl::Duration kStepTimeout = absl::Seconds(60);

uint64_t Ops(const SendStats& s, OpKind kind) {
  return s.ops[static_cast<int>(kind)];
}

uint64_t ZeroCopyOps(const SendStats& s) {
  return Ops(s, OpKind::kSendZc) + Ops(s, OpKind::kSendmsgZc);
}

uint64_t CopyOps(const SendStats& s) {
  return Ops(s, OpKind::kWritev) + Ops(s, OpKind::kSendmsg) +
         Ops(s, OpKind::kSend);
}

OpKind CopyOpKind(CopyOp op) {
  return op == CopyOp::kWritev ? OpKind::kWritev : OpKind::kSendmsg;
}

ConnectionOptions Options(uint64_t threshold, CopyOp copy_op,
                          bool adaptive = false) {
  ConnectionOptions o;
  o.plan.zc_threshold = threshold;
  o.plan.copy_op = copy_op;
  o.adaptive_zero_copy = adaptive;
  return o;
}

// One buffer size from 1 byte to `max_large`: mostly small, some exactly at
// or next to the usual thresholds (4K, 16K, 64K), some large.
size_t MixedSize(std::mt19937_64& rng, size_t max_large) {
  const int kind = absl::Uniform(rng, 0, 100);
  if (kind < 35)
    return absl::Uniform<size_t>(absl::IntervalClosed, rng, 1, 256);
  if (kind < 55)
    return absl::Uniform<size_t>(absl::IntervalClosed, rng, 257, 4 * K);
  if (kind < 70) {
    return absl::Uniform<size_t>(absl::IntervalClosed, rng, 4 * K, 16 * K);
  }
  if (kind < 80) {
    constexpr size_t kThresholds[] = {4 * K, 16 * K, 64 * K};
    return kThresholds[absl::Uniform(rng, 0, 3)] - 1 + absl::Uniform(rng, 0, 3);
  }
  return absl::Uniform<size_t>(absl::IntervalClosed, rng, 16 * K, max_large);
}

std::vector<size_t> MixedSizes(std::mt19937_64& rng, size_t count,
                               size_t max_large = 256 * K) {
  std::vector<size_t> sizes(count);
  for (size_t& s : sizes) s = MixedSize(rng, max_large);
  return sizes;
}

// Mixed sizes adding up to at least `total` bytes.
std::vector<size_t> MixedSizesUntil(std::mt19937_64& rng, size_t total,
                                    size_t max_large = 256 * K) {
  std::vector<size_t> sizes;
  size_t sum = 0;
  while (sum < total) {
    sizes.push_back(MixedSize(rng, max_large));
    sum += sizes.back();
  }
  return sizes;
}

// Reads sockets on a thread (uring/receiver.h) and checks each stream. A
// socket is done when it has carried its stream's length, reaches EOF or
// fails.
class CheckingReceiver {
 public:
  struct Options {
    size_t read_size = 256 * K;
    // Sleep after each read: a slow reader.
    absl::Duration pause = absl::ZeroDuration();
    absl::Duration timeout = kReceiveTimeout;
  };

  CheckingReceiver(std::vector<std::pair<int, StreamCheck>> sockets,
                   Options options) {
    ReceiverOptions o;
    o.read_size = options.read_size;
    o.pause_after_read = options.pause;
    o.timeout = options.timeout;
    o.check_pattern = true;
    std::vector<int> fds;
    for (const auto& [fd, check] : sockets) {
      fds.push_back(fd);
      o.pattern_streams.push_back(check.stream);
      o.byte_limits.push_back(check.expected);
      checks_.push_back(check);
    }
    absl::StatusOr<std::unique_ptr<Receiver>> r =
        Receiver::OnSockets(std::move(fds), std::move(o));
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) receiver_ = *std::move(r);
  }
  explicit CheckingReceiver(std::vector<std::pair<int, StreamCheck>> sockets)
      : CheckingReceiver(std::move(sockets), Options()) {}
  CheckingReceiver(const CheckingReceiver&) = delete;
  CheckingReceiver& operator=(const CheckingReceiver&) = delete;

  void Join() {
    if (receiver_ == nullptr) return;
    receiver_->Join().IgnoreError();  // timed_out() tells
    timed_out_ = absl::IsDeadlineExceeded(receiver_->status());
    for (size_t i = 0; i < receiver_->connections().size(); ++i) {
      const ReceivedConnection& c = receiver_->connections()[i];
      checks_[i].received = c.bytes;
      checks_[i].first_mismatch = c.mismatch_at;
      checks_[i].eof = c.eof;
      checks_[i].error = c.error;
    }
  }
  // Valid after Join.
  const StreamCheck& check(size_t i) const { return checks_[i]; }
  bool timed_out() const { return timed_out_; }

 private:
  std::vector<StreamCheck> checks_;
  std::unique_ptr<Receiver> receiver_;
  bool timed_out_ = false;
};

// What a receiver got of `stream` is all of it, unchanged.
void ExpectReceivedWhole(const StreamCheck& got, const Stream& stream) {
  EXPECT_EQ(got.received, stream.total()) << got.Describe();
  EXPECT_EQ(got.first_mismatch, -1) << got.Describe();
}

// The counters of a connection that sent all of `stream`.
void ExpectCompleteStats(const SendStats& s, const Stream& stream) {
  EXPECT_EQ(s.buffers_enqueued, stream.count());
  EXPECT_EQ(s.buffers_released, stream.count());
  EXPECT_EQ(s.buffers_released_failed, 0u);
  EXPECT_EQ(s.bytes_enqueued, stream.total());
  // Each byte counted once, by the op that moved it.
  EXPECT_EQ(s.bytes_copied + s.bytes_zero_copy, stream.total());
  EXPECT_EQ(s.bytes_awaiting_notification, 0u);
  EXPECT_GE(s.chains, 1u);
  // Every zero-copy op whose result had F_MORE got its notification before
  // its buffers were released; a cancelled or failed one may post none.
  EXPECT_LE(s.notifications, ZeroCopyOps(s));
  EXPECT_GE(s.notifications + s.cancelled_ops + s.fallbacks_enomem,
            ZeroCopyOps(s));
}

// For StartStalledAndLive: two zero-copy connections on the ring: `stalled`,
// whose peer reads nothing, with `stalled_sizes` enqueued and polled for
// `settle`, and `live`, with its stream made but not yet enqueued.
struct StalledAndLive {
  ConnectionId stalled, live;
  Stream* stalled_stream = nullptr;
  Stream* live_stream = nullptr;
  TcpPair* live_pair = nullptr;
};

class ExecutorLoopbackTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A writev on a reset socket raises SIGPIPE in the submitting task
    // (IORING_OP_WRITEV cannot take MSG_NOSIGNAL).
    signal(SIGPIPE, SIG_IGN);
  }

  // Creates the executor, or skips the test when io_uring is unavailable:
  // use MAKE_EXECUTOR_OR_SKIP.
  void Make(ExecutorOptions options) {
    options.on_release = ledger_.callback();
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(std::move(options));
    if (!executor.ok()) GTEST_SKIP() << IoUringSkipReason(executor.status());
    executor_ = *std::move(executor);
  }

  // Drains the executor, failing fatally if it cannot, then waits for
  // `receiver` to finish: call it in ASSERT_NO_FATAL_FAILURE.
  void DrainAndJoin(CheckingReceiver& receiver) {
    ASSERT_TRUE(executor_->Drain(kDrainTimeout).ok());
    receiver.Join();
  }

  // The connections of a many-connection test.
  struct Connections {
    std::vector<ConnectionId> ids;
    std::vector<Stream*> streams;
    // Each one's server end and what it should receive: a CheckingReceiver's.
    std::vector<std::pair<int, StreamCheck>> sockets;
  };

  // Attaches `n` loopback connections, SO_SNDBUF and SO_RCVBUF `buffer` when
  // it is > 0: connection i carries stream `first_stream + i` of buffers
  // `sizes(i)` and is attached with `options(i)` (called in that order, once
  // each). Fails fatally on error: call it in ASSERT_NO_FATAL_FAILURE.
  void AttachStreams(int n, int buffer, uint64_t first_stream,
                     const std::function<std::vector<size_t>(int)>& sizes,
                     const std::function<ConnectionOptions(int)>& options,
                     Connections* out) {
    for (int i = 0; i < n; ++i) {
      TcpPair* pair = NewPair(buffer, buffer);
      ASSERT_NE(pair, nullptr);
      Stream& stream = NewStream(first_stream + i, sizes(i));
      absl::StatusOr<ConnectionId> id =
          executor_->Attach(pair->client, options(i));
      ASSERT_TRUE(id.ok()) << id.status();
      out->ids.push_back(*id);
      out->streams.push_back(&stream);
      out->sockets.emplace_back(pair->server, CheckFor(stream));
    }
  }

  // Connection `id` sent all of `stream` without an error, and `got` (its
  // receiver's check) is the whole stream; `*stats` gets its counters.
  // Fails fatally when they cannot be read: call it in
  // ASSERT_NO_FATAL_FAILURE.
  void ExpectSentWhole(const StreamCheck& got, ConnectionId id,
                       const Stream& stream, SendStats* stats) {
    ExpectReceivedWhole(got, stream);
    EXPECT_TRUE(executor_->ConnectionError(id).ok());
    absl::StatusOr<SendStats> s = executor_->connection_stats(id);
    ASSERT_TRUE(s.ok()) << s.status();
    SCOPED_TRACE(FormatStats(*s));
    ExpectCompleteStats(*s, stream);
    *stats = *s;
  }

  // Every buffer was released exactly once, none with an error.
  void ExpectAllReleasedOk() {
    EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
        << ledger_.CheckAllReleasedOnce();
    EXPECT_EQ(ledger_.failed(), 0u);
  }

  // A loopback pair that lives as long as the test; null on failure.
  TcpPair* NewPair(int sndbuf = 0, int rcvbuf = 0) {
    absl::StatusOr<TcpPair> pair = MakeTcpPair(sndbuf, rcvbuf);
    if (!pair.ok()) {
      ADD_FAILURE() << pair.status();
      return nullptr;
    }
    pairs_.push_back(*std::move(pair));
    return &pairs_.back();
  }

  Stream& NewStream(uint64_t id, std::vector<size_t> sizes) {
    streams_.push_back(std::make_unique<Stream>(id, std::move(sizes)));
    return *streams_.back();
  }

  // Enqueues what is left of `stream` in random batches of 1..`max_batch`,
  // with a Poll that does not wait after each batch, so chains go out and
  // complete while more is enqueued.
  void EnqueueAll(Stream& stream, ConnectionId id, std::mt19937_64& rng,
                  int max_batch = 16) {
    while (!stream.done()) {
      const int batch = absl::Uniform(absl::IntervalClosed, rng, 1, max_batch);
      for (int i = 0; i < batch && !stream.done(); ++i) {
        ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, id).ok());
      }
      absl::StatusOr<size_t> polled = executor_->Poll(absl::ZeroDuration());
      ASSERT_TRUE(polled.ok()) << polled.status();
    }
  }

  // Attaches two connections sending all zero-copy: `stalled`, whose peer
  // reads nothing, with `stalled_sizes` (stream `first_id`) enqueued and
  // polled for `settle`, and `live`, with `live_sizes` (stream `first_id` +
  // 1) made but not enqueued.
  StalledAndLive StartStalledAndLive(uint64_t first_id,
                                     std::vector<size_t> stalled_sizes,
                                     std::vector<size_t> live_sizes,
                                     absl::Duration settle) {
    StalledAndLive t;
    TcpPair* stalled = NewPair();
    t.live_pair = NewPair();
    EXPECT_TRUE(stalled != nullptr && t.live_pair != nullptr);
    if (stalled == nullptr || t.live_pair == nullptr) return t;
    t.stalled_stream = &NewStream(first_id, std::move(stalled_sizes));
    t.live_stream = &NewStream(first_id + 1, std::move(live_sizes));
    ConnectionOptions o = Options(0, CopyOp::kWritev);
    absl::StatusOr<ConnectionId> a = executor_->Attach(stalled->client, o);
    absl::StatusOr<ConnectionId> b = executor_->Attach(t.live_pair->client, o);
    EXPECT_TRUE(a.ok() && b.ok());
    if (!a.ok() || !b.ok()) return t;
    t.stalled = *a;
    t.live = *b;
    while (!t.stalled_stream->done()) {
      EXPECT_TRUE(t.stalled_stream->EnqueueNext(*executor_, ledger_, *a).ok());
    }
    const absl::Time end = absl::Now() + settle;
    while (absl::Now() < end) {
      EXPECT_TRUE(executor_->Poll(absl::Milliseconds(20)).ok());
    }
    return t;
  }

  uint64_t BytesSent(ConnectionId id) const {
    absl::StatusOr<SendStats> s = executor_->connection_stats(id);
    return s.ok() ? s->bytes_copied + s->bytes_zero_copy : 0;
  }

  // Order of destruction: the executor first (it may still release buffers),
  // then the sockets, the buffers, and the ledger.
  TokenLedger ledger_;
  std::deque<std::unique_ptr<Stream>> streams_;
  std::deque<TcpPair> pairs_;
  std::unique_ptr<Executor> executor_;
};

#define MAKE_EXECUTOR_OR_SKIP(options)            \
  do {                                            \
    Make(options);                                \
    if (IsSkipped() || HasFatalFailure()) return; \
  } while (0)

// ---------------------------------------------------------------------------
// 1. Random mixed workloads, every threshold and copy op.

class MixedWorkloadTest
    : public ExecutorLoopbackTest,
      public testing::WithParamInterface<std::tuple<uint64_t, CopyOp>> {};

TEST_P(MixedWorkloadTest, StreamIsByteExactAndStatsMatchThePlan) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  const auto [threshold, copy_op] = GetParam();
  const uint64_t seed =
      1000 + 2 * (threshold == PlanOptions::kNever ? 999 : threshold / K) +
      static_cast<uint64_t>(copy_op);
  std::mt19937_64 rng(seed);
  TcpPair* pair = NewPair();
  ASSERT_NE(pair, nullptr);
  Stream& stream = NewStream(seed, MixedSizes(rng, 500));
  absl::StatusOr<ConnectionId> id =
      executor_->Attach(pair->client, Options(threshold, copy_op));
  ASSERT_TRUE(id.ok()) << id.status();
  CheckingReceiver receiver({{pair->server, CheckFor(stream)}});

  ASSERT_NO_FATAL_FAILURE(EnqueueAll(stream, *id, rng));
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  ExpectReceivedWhole(receiver.check(0), stream);
  ExpectAllReleasedOk();
  EXPECT_TRUE(executor_->ConnectionError(*id).ok());
  EXPECT_TRUE(executor_->Idle(*id));

  absl::StatusOr<SendStats> s = executor_->connection_stats(*id);
  ASSERT_TRUE(s.ok()) << s.status();
  SCOPED_TRACE(FormatStats(*s));
  ExpectCompleteStats(*s, stream);
  const OpKind other_copy =
      copy_op == CopyOp::kWritev ? OpKind::kSendmsg : OpKind::kWritev;
  EXPECT_EQ(Ops(*s, other_copy), 0u);
  EXPECT_EQ(s->fallbacks_enomem, 0u);
  EXPECT_EQ(s->fallbacks_unsupported, 0u);
  EXPECT_EQ(s->adaptive_disabled, 0u);
  const bool zc_possible =
      executor_->features().send_zc && executor_->features().sendmsg_zc;
  // A byte goes zero-copy only from a buffer at or above the threshold
  // (what is left of a buffer is never longer than the buffer). With
  // sendmsg (MSG_WAITALL) no chain breaks, so exactly those bytes do.
  uint64_t at_or_above = 0;
  for (size_t i = 0; i < stream.count(); ++i) {
    if (stream.size(i) >= threshold) at_or_above += stream.size(i);
  }
  EXPECT_LE(s->bytes_zero_copy, at_or_above);
  if (zc_possible && copy_op == CopyOp::kSendmsg && s->short_sends == 0) {
    EXPECT_EQ(s->bytes_zero_copy, at_or_above);
  }
  if (threshold == PlanOptions::kNever || !zc_possible) {
    EXPECT_EQ(ZeroCopyOps(*s), 0u);
    EXPECT_EQ(s->bytes_zero_copy, 0u);
    EXPECT_EQ(s->notifications, 0u);
    EXPECT_GT(Ops(*s, CopyOpKind(copy_op)), 0u);
    EXPECT_FALSE(executor_->ZeroCopyEnabled(*id));
    return;
  }
  EXPECT_TRUE(executor_->ZeroCopyEnabled(*id));
  EXPECT_GT(ZeroCopyOps(*s), 0u);
  EXPECT_GT(s->bytes_zero_copy, 0u);
  EXPECT_GT(s->notifications, 0u);
  if (executor_->features().zc_report_usage) {
    EXPECT_EQ(s->copied_notifications, s->notifications)
        << "loopback copies every zero-copy send";
  }
  if (threshold == 0) {
    EXPECT_EQ(CopyOps(*s), 0u);
    EXPECT_EQ(s->bytes_copied, 0u);
  } else {
    EXPECT_GT(Ops(*s, CopyOpKind(copy_op)), 0u);
    EXPECT_GT(s->bytes_copied, 0u);
  }
}

std::string MixedName(
    const testing::TestParamInfo<std::tuple<uint64_t, CopyOp>>& info) {
  const uint64_t threshold = std::get<0>(info.param);
  return absl::StrCat(threshold == PlanOptions::kNever
                          ? std::string("Never")
                          : absl::StrCat(threshold / K, "K"),
                      "_", CopyOpName(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(
    Thresholds, MixedWorkloadTest,
    testing::Combine(testing::Values(uint64_t{0}, 4 * K, 16 * K, 64 * K,
                                     PlanOptions::kNever),
                     testing::Values(CopyOp::kWritev, CopyOp::kSendmsg)),
    MixedName);

// ---------------------------------------------------------------------------
// 2. Short writes: small socket buffers and a slow reader.

TEST_F(ExecutorLoopbackTest, ShortWritevsResumeFromTheExactByte) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  std::mt19937_64 rng(2002);
  TcpPair* pair = NewPair(/*sndbuf=*/8 * K, /*rcvbuf=*/8 * K);
  ASSERT_NE(pair, nullptr);
  // Runs of small buffers (writev groups of several KiB, more than the send
  // buffer holds) between large zero-copy ones.
  std::vector<size_t> sizes;
  for (int i = 0; i < 300; ++i) {
    sizes.push_back(absl::Uniform(rng, 0, 10) == 0
                        ? absl::Uniform<size_t>(rng, 16 * K, 40 * K)
                        : absl::Uniform<size_t>(rng, 16, 2 * K));
  }
  Stream& stream = NewStream(2002, std::move(sizes));
  absl::StatusOr<ConnectionId> id =
      executor_->Attach(pair->client, Options(16 * K, CopyOp::kWritev));
  ASSERT_TRUE(id.ok()) << id.status();
  CheckingReceiver::Options slow;
  slow.read_size = 2 * K;
  slow.pause = absl::Microseconds(300);
  CheckingReceiver receiver({{pair->server, CheckFor(stream)}}, slow);

  ASSERT_NO_FATAL_FAILURE(EnqueueAll(stream, *id, rng));
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  ExpectReceivedWhole(receiver.check(0), stream);
  ExpectAllReleasedOk();
  absl::StatusOr<SendStats> s = executor_->connection_stats(*id);
  ASSERT_TRUE(s.ok()) << s.status();
  SCOPED_TRACE(FormatStats(*s));
  ExpectCompleteStats(*s, stream);
  EXPECT_GT(Ops(*s, OpKind::kWritev), 0u);
  EXPECT_GT(s->short_sends, 0u);
  EXPECT_GT(s->chains_resumed, 0u);
}

// ---------------------------------------------------------------------------
// 3. Many connections on one ring.

TEST_F(ExecutorLoopbackTest, SixtyFourConnectionsOnOneRingStayExact) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  constexpr int kConnections = 64;
  std::mt19937_64 rng(3003);
  const uint64_t thresholds[] = {4 * K, 16 * K, 64 * K, PlanOptions::kNever};
  Connections c;
  ASSERT_NO_FATAL_FAILURE(AttachStreams(
      kConnections, /*buffer=*/0, 300,
      [&](int) { return MixedSizes(rng, 24, 128 * K); },
      [&](int i) {
        const CopyOp copy_op = i % 2 == 0 ? CopyOp::kWritev : CopyOp::kSendmsg;
        return Options(thresholds[i % 4], copy_op, i % 3 == 0);
      },
      &c));
  const std::vector<ConnectionId>& ids = c.ids;
  const std::vector<Stream*>& streams = c.streams;
  CheckingReceiver receiver(std::move(c.sockets));

  // Interleaved: each round visits the connections in a random order and
  // enqueues 0..2 buffers on each, polling every few enqueues.
  std::vector<int> order(kConnections);
  for (int i = 0; i < kConnections; ++i) order[i] = i;
  int enqueues = 0;
  for (bool more = true; more;) {
    more = false;
    std::shuffle(order.begin(), order.end(), rng);
    for (int i : order) {
      const int n = absl::Uniform(absl::IntervalClosed, rng, 0, 2);
      for (int k = 0; k < n && !streams[i]->done(); ++k) {
        ASSERT_TRUE(streams[i]->EnqueueNext(*executor_, ledger_, ids[i]).ok());
        if (++enqueues % 8 == 0) {
          ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
        }
      }
      more = more || !streams[i]->done();
    }
  }
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  EXPECT_FALSE(receiver.timed_out());

  ExpectAllReleasedOk();
  uint64_t total = 0;
  for (int i = 0; i < kConnections; ++i) {
    SCOPED_TRACE(absl::StrCat("connection ", i));
    SendStats s;
    ASSERT_NO_FATAL_FAILURE(
        ExpectSentWhole(receiver.check(i), ids[i], *streams[i], &s));
    total += streams[i]->total();
  }
  const RingStats ring = executor_->stats();
  EXPECT_EQ(ring.connections_open, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(ring.totals.bytes_copied + ring.totals.bytes_zero_copy, total);
  EXPECT_EQ(ring.totals.buffers_released, ledger_.expected());
  EXPECT_GT(ZeroCopyOps(ring.totals), 0u);
  EXPECT_GT(Ops(ring.totals, OpKind::kWritev), 0u);
  EXPECT_GT(Ops(ring.totals, OpKind::kSendmsg), 0u);
}

// ---------------------------------------------------------------------------
// 4. A peer that resets mid-stream.

class PeerResetTest : public ExecutorLoopbackTest,
                      public testing::WithParamInterface<CopyOp> {};

TEST_P(PeerResetTest, FailsThatConnectionOnlyAndReleasesEveryBufferOnce) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  const CopyOp copy_op = GetParam();
  std::mt19937_64 rng(4004 + static_cast<int>(copy_op));
  TcpPair* victim = NewPair(/*sndbuf=*/32 * K, /*rcvbuf=*/32 * K);
  TcpPair* healthy = NewPair();
  ASSERT_NE(victim, nullptr);
  ASSERT_NE(healthy, nullptr);
  Stream& a = NewStream(401, MixedSizesUntil(rng, 4 * M));
  Stream& b = NewStream(402, MixedSizes(rng, 200));
  absl::StatusOr<ConnectionId> id_a =
      executor_->Attach(victim->client, Options(16 * K, copy_op));
  absl::StatusOr<ConnectionId> id_b =
      executor_->Attach(healthy->client, Options(16 * K, copy_op));
  ASSERT_TRUE(id_a.ok()) << id_a.status();
  ASSERT_TRUE(id_b.ok()) << id_b.status();
  CheckingReceiver receiver({{healthy->server, CheckFor(b)}});

  // All of a's stream is queued; the peer reads its start while the executor
  // runs (and b's buffers trickle in), then resets.
  while (!a.done()) ASSERT_TRUE(a.EnqueueNext(*executor_, ledger_, *id_a).ok());
  StreamCheck a_got = CheckFor(a);
  std::vector<unsigned char> buf(16 * K);
  const absl::Time deadline = absl::Now() + kStepTimeout;
  while (a_got.received < 256 * K && absl::Now() < deadline) {
    ASSERT_TRUE(executor_->Poll(absl::Milliseconds(1)).ok());
    if (!b.done()) {
      ASSERT_TRUE(b.EnqueueNext(*executor_, ledger_, *id_b).ok());
    }
    const ssize_t n =
        recv(victim->server, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) a_got.Feed(buf.data(), static_cast<size_t>(n));
  }
  ASSERT_GE(a_got.received, 256 * K) << a_got.Describe();
  EXPECT_EQ(a_got.first_mismatch, -1) << a_got.Describe();
  // Let the sender fill the socket buffers again, so ops are in flight.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(executor_->Poll(absl::Milliseconds(1)).ok());
  }
  const linger reset = {1, 0};
  ASSERT_EQ(
      setsockopt(victim->server, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)),
      0);
  ASSERT_EQ(close(victim->server), 0);
  victim->server = -1;

  while (!b.done()) {
    ASSERT_TRUE(b.EnqueueNext(*executor_, ledger_, *id_b).ok());
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  const absl::Status drained = executor_->Drain(kDrainTimeout);
  ASSERT_TRUE(drained.ok()) << drained;
  receiver.Join();

  // The victim failed with the reset (or the broken pipe that follows it).
  const absl::Status error = executor_->ConnectionError(*id_a);
  EXPECT_FALSE(error.ok());
  EXPECT_TRUE(absl::StrContains(error.message(), std::strerror(ECONNRESET)) ||
              absl::StrContains(error.message(), std::strerror(EPIPE)))
      << error;
  EXPECT_TRUE(executor_->Idle(*id_a));

  // Every buffer released once: a's are OK up to the byte reached, then all
  // carry the connection's error; b's are all OK.
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  size_t ok_buffers = 0, failed_buffers = 0;
  uint64_t ok_bytes = 0;
  for (size_t i = 0; i < a.count(); ++i) {
    const TokenLedger::Entry* e = ledger_.Find(a.token(i));
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->releases, 1);
    if (e->status.ok()) {
      EXPECT_EQ(failed_buffers, 0u) << "buffer " << i << " released OK after "
                                    << "a failed one";
      ++ok_buffers;
      ok_bytes += a.size(i);
    } else {
      EXPECT_EQ(e->status, error) << "buffer " << i;
      ++failed_buffers;
    }
  }
  EXPECT_GT(failed_buffers, 0u);
  EXPECT_EQ(ledger_.failed(), failed_buffers);
  absl::StatusOr<SendStats> sa = executor_->connection_stats(*id_a);
  ASSERT_TRUE(sa.ok()) << sa.status();
  EXPECT_EQ(sa->buffers_released, ok_buffers) << FormatStats(*sa);
  EXPECT_EQ(sa->buffers_released_failed, failed_buffers) << FormatStats(*sa);
  const uint64_t a_sent = sa->bytes_copied + sa->bytes_zero_copy;
  EXPECT_GE(a_sent, a_got.received) << FormatStats(*sa);
  EXPECT_GE(a_sent, ok_bytes) << FormatStats(*sa);
  EXPECT_LT(a_sent, a.total()) << FormatStats(*sa);

  // The failed connection refuses more data and does not take the buffer.
  unsigned char extra[16] = {};
  const uint64_t token = ledger_.Expect(*id_a, extra, sizeof(extra));
  const absl::Status refused =
      executor_->Enqueue(*id_a, extra, sizeof(extra), token);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  ledger_.Forget(token);

  // The other connection is untouched.
  const StreamCheck& got = receiver.check(0);
  EXPECT_EQ(got.received, b.total()) << got.Describe();
  EXPECT_EQ(got.first_mismatch, -1) << got.Describe();
  EXPECT_TRUE(executor_->ConnectionError(*id_b).ok());
  absl::StatusOr<SendStats> sb = executor_->connection_stats(*id_b);
  ASSERT_TRUE(sb.ok()) << sb.status();
  SCOPED_TRACE(FormatStats(*sb));
  ExpectCompleteStats(*sb, b);
}

INSTANTIATE_TEST_SUITE_P(CopyOps, PeerResetTest,
                         testing::Values(CopyOp::kWritev, CopyOp::kSendmsg),
                         [](const testing::TestParamInfo<CopyOp>& info) {
                           return std::string(CopyOpName(info.param));
                         });

// ---------------------------------------------------------------------------
// 5. Adaptive zero-copy.

class AdaptiveTest : public ExecutorLoopbackTest,
                     public testing::WithParamInterface<bool> {};

// Two rounds of 12 buffers of 64 KiB, each its own SEND_ZC (max_bytes_per_op
// 64 KiB). On loopback every notification says "copied": with adaptive on,
// the first round's notifications turn zero-copy off and the second round is
// copied; with it off, both rounds go zero-copy and every notification counts.
TEST_P(AdaptiveTest, CopiedNotificationsTurnZeroCopyOffOnlyWhenAdaptive) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  const bool adaptive = GetParam();
  const RingFeatures& f = executor_->features();
  if (!f.send_zc || !f.sendmsg_zc || !f.zc_report_usage) {
    GTEST_SKIP() << "kernel " << KernelRelease()
                 << " lacks zero-copy sends with usage reports";
  }
  constexpr size_t kPerRound = 12;
  TcpPair* pair = NewPair();
  ASSERT_NE(pair, nullptr);
  Stream& stream =
      NewStream(500 + adaptive, std::vector<size_t>(2 * kPerRound, 64 * K));
  ConnectionOptions o = Options(16 * K, CopyOp::kSendmsg, adaptive);
  o.plan.max_bytes_per_op = 64 * K;
  ASSERT_GT(kPerRound, o.adaptive_copied_limit);
  absl::StatusOr<ConnectionId> id = executor_->Attach(pair->client, o);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(executor_->ZeroCopyEnabled(*id));
  CheckingReceiver receiver({{pair->server, CheckFor(stream)}});

  for (size_t i = 0; i < kPerRound; ++i) {
    ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, *id).ok());
  }
  ASSERT_TRUE(executor_->Drain(kDrainTimeout).ok());
  absl::StatusOr<SendStats> first = executor_->connection_stats(*id);
  ASSERT_TRUE(first.ok()) << first.status();
  SCOPED_TRACE(absl::StrCat("after round 1: ", FormatStats(*first)));
  EXPECT_EQ(Ops(*first, OpKind::kSendZc), kPerRound);
  EXPECT_EQ(first->notifications, kPerRound);
  EXPECT_EQ(first->copied_notifications, kPerRound);
  EXPECT_EQ(executor_->ZeroCopyEnabled(*id), !adaptive);
  EXPECT_EQ(first->adaptive_disabled, adaptive ? 1u : 0u);

  while (!stream.done()) {
    ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, *id).ok());
  }
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  ExpectReceivedWhole(receiver.check(0), stream);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  absl::StatusOr<SendStats> s = executor_->connection_stats(*id);
  ASSERT_TRUE(s.ok()) << s.status();
  SCOPED_TRACE(absl::StrCat("after round 2: ", FormatStats(*s)));
  ExpectCompleteStats(*s, stream);
  EXPECT_EQ(executor_->ZeroCopyEnabled(*id), !adaptive);
  EXPECT_EQ(s->copied_notifications, s->notifications);
  EXPECT_EQ(executor_->stats().totals.adaptive_disabled, adaptive ? 1u : 0u);
  if (adaptive) {
    EXPECT_EQ(s->adaptive_disabled, 1u);
    EXPECT_EQ(ZeroCopyOps(*s), kPerRound);
    EXPECT_EQ(s->notifications, kPerRound);
    EXPECT_EQ(s->bytes_zero_copy, kPerRound * 64 * K);
    EXPECT_EQ(s->bytes_copied, kPerRound * 64 * K);
  } else {
    EXPECT_EQ(s->adaptive_disabled, 0u);
    EXPECT_EQ(Ops(*s, OpKind::kSendZc), 2 * kPerRound);
    EXPECT_EQ(s->notifications, 2 * kPerRound);
    EXPECT_EQ(s->bytes_zero_copy, stream.total());
    EXPECT_EQ(s->bytes_copied, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Adaptive, AdaptiveTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "On" : "Off";
                         });

// ---------------------------------------------------------------------------
// 6. Registered buffers.

TEST_F(ExecutorLoopbackTest, ZeroCopyOnRegisteredBuffersIsExact) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  const RingFeatures& f = executor_->features();
  if (!f.send_zc || !f.sendmsg_zc) {
    GTEST_SKIP() << "kernel " << KernelRelease() << " lacks zero-copy sends";
  }
  std::mt19937_64 rng(6006);
  // Large buffers, single or in runs, with a few small ones between: all
  // inside one registered arena.
  std::vector<size_t> sizes;
  size_t sum = 0;
  while (sum < 2 * M) {
    sizes.push_back(absl::Uniform(rng, 0, 5) == 0
                        ? absl::Uniform<size_t>(rng, 1, 2 * K)
                        : absl::Uniform<size_t>(rng, 16 * K, 160 * K));
    sum += sizes.back();
  }
  Stream& stream = NewStream(606, std::move(sizes));
  const iovec region = {stream.data(), stream.total()};
  const absl::Status registered =
      executor_->RegisterBuffers(absl::MakeConstSpan(&region, 1));
  ASSERT_TRUE(registered.ok()) << registered;
  TcpPair* pair = NewPair();
  ASSERT_NE(pair, nullptr);
  absl::StatusOr<ConnectionId> id =
      executor_->Attach(pair->client, Options(16 * K, CopyOp::kSendmsg));
  ASSERT_TRUE(id.ok()) << id.status();
  CheckingReceiver receiver({{pair->server, CheckFor(stream)}});

  ASSERT_NO_FATAL_FAILURE(EnqueueAll(stream, *id, rng, 8));
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  ExpectReceivedWhole(receiver.check(0), stream);
  ExpectAllReleasedOk();
  absl::StatusOr<SendStats> s = executor_->connection_stats(*id);
  ASSERT_TRUE(s.ok()) << s.status();
  SCOPED_TRACE(FormatStats(*s));
  ExpectCompleteStats(*s, stream);
  EXPECT_GT(s->fixed_buffer_ops, 0u);
  if (f.sendmsg_zc_fixed) {
    // Every zero-copy op was on the registered arena: nothing was charged.
    EXPECT_EQ(s->fixed_buffer_ops, ZeroCopyOps(*s));
    EXPECT_EQ(s->peak_bytes_awaiting_notification, 0u);
  } else {
    EXPECT_EQ(s->fixed_buffer_ops, Ops(*s, OpKind::kSendZc));
  }
}

// ---------------------------------------------------------------------------
// 7. Close mid-stream.

TEST_F(ExecutorLoopbackTest, CloseMidStreamCancelsTheRestAndGoesIdle) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  std::mt19937_64 rng(7007);
  TcpPair* pair = NewPair(/*sndbuf=*/32 * K, /*rcvbuf=*/32 * K);
  ASSERT_NE(pair, nullptr);
  Stream& stream = NewStream(707, MixedSizesUntil(rng, 4 * M));
  // Short chains, so that most of the stream is not yet handed to the
  // kernel when Close comes.
  ConnectionOptions o = Options(16 * K, CopyOp::kWritev);
  o.plan.max_ops_per_chain = 4;
  absl::StatusOr<ConnectionId> id = executor_->Attach(pair->client, o);
  ASSERT_TRUE(id.ok()) << id.status();
  // A slow reader keeps the socket full, so ops are in flight at Close, and
  // lets zero-copy sends complete (their notifications need the data acked).
  CheckingReceiver::Options slow;
  slow.read_size = 4 * K;
  slow.pause = absl::Milliseconds(1);
  CheckingReceiver receiver({{pair->server, CheckFor(stream)}}, slow);

  while (!stream.done()) {
    ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, *id).ok());
  }
  const absl::Time deadline = absl::Now() + kStepTimeout;
  while (BytesSent(*id) < 256 * K && absl::Now() < deadline) {
    ASSERT_TRUE(executor_->Poll(absl::Milliseconds(1)).ok());
  }
  ASSERT_GE(BytesSent(*id), 256 * K);

  const size_t released_before = ledger_.released();
  ASSERT_TRUE(executor_->Close(*id).ok());
  // What the kernel did not have yet is released at once.
  EXPECT_GT(ledger_.released(), released_before);
  EXPECT_GT(ledger_.failed(), 0u);
  EXPECT_FALSE(executor_->Idle(*id)) << "ops were in flight";
  const absl::Time idle_deadline = absl::Now() + kStepTimeout;
  while (!executor_->Idle(*id) && absl::Now() < idle_deadline) {
    ASSERT_TRUE(executor_->Poll(absl::Milliseconds(10)).ok());
  }
  ASSERT_TRUE(executor_->Idle(*id));
  EXPECT_TRUE(absl::IsNotFound(executor_->ConnectionError(*id)));

  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  size_t failed_buffers = 0;
  uint64_t ok_bytes = 0;
  for (size_t i = 0; i < stream.count(); ++i) {
    const TokenLedger::Entry* e = ledger_.Find(stream.token(i));
    ASSERT_NE(e, nullptr);
    if (e->status.ok()) {
      EXPECT_EQ(failed_buffers, 0u) << "buffer " << i << " released OK after "
                                    << "a cancelled one";
      ok_bytes += stream.size(i);
    } else {
      EXPECT_TRUE(absl::IsCancelled(e->status))
          << "buffer " << i << ": " << e->status;
      ++failed_buffers;
    }
  }
  EXPECT_GT(failed_buffers, 0u);
  const SendStats totals = executor_->stats().totals;
  SCOPED_TRACE(FormatStats(totals));
  EXPECT_EQ(totals.buffers_released + totals.buffers_released_failed,
            stream.count());
  EXPECT_EQ(totals.buffers_released_failed, failed_buffers);

  // The socket stays open (the executor does not own it): what the kernel
  // took is delivered, exactly, and nothing after it.
  ASSERT_EQ(shutdown(pair->client, SHUT_WR), 0);
  receiver.Join();
  const StreamCheck& got = receiver.check(0);
  EXPECT_TRUE(got.eof) << got.Describe();
  EXPECT_EQ(got.first_mismatch, -1) << got.Describe();
  EXPECT_EQ(got.received, totals.bytes_copied + totals.bytes_zero_copy)
      << got.Describe();
  EXPECT_GE(got.received, ok_bytes) << got.Describe();
  EXPECT_LT(got.received, stream.total()) << got.Describe();

  unsigned char extra[16] = {};
  const uint64_t token = ledger_.Expect(*id, extra, sizeof(extra));
  EXPECT_TRUE(
      absl::IsNotFound(executor_->Enqueue(*id, extra, sizeof(extra), token)));
  ledger_.Forget(token);
  EXPECT_TRUE(absl::IsNotFound(executor_->Close(*id)));
}

// ---------------------------------------------------------------------------
// 8. The RLIMIT_MEMLOCK charge of unregistered zero-copy sends.
//
// io_uring charges an unregistered zero-copy send (len >> PAGE_SHIFT) + 2
// pages of locked memory (io_notif_account_mem) until its notification, to
// the ring creator's user and against the task's RLIMIT_MEMLOCK, and fails
// the send with -ENOMEM beyond it. It charges nothing when the ring was made
// by a task with CAP_IPC_LOCK (io_uring_create sets ctx->user only without
// it), which root has. So these tests run in a forked child that becomes an
// unprivileged user of its own (uid 2000000 + pid: its own locked-memory
// count, which no other process shares, and no capabilities), with a low
// RLIMIT_MEMLOCK.

constexpr uint64_t kChildMemlock = 256 * K;  // 64 pages

// What the child sends: `first` alone (drained before the rest), then
// `sizes`, over an executor with notification cap `cap` (0: the default,
// half the limit), adaptive zero-copy off.
struct ChildSpec {
  uint64_t memlock = kChildMemlock;  // RLIMIT_MEMLOCK in the child
  uint64_t cap = 0;
  uint64_t max_bytes_per_op = kMaxBytesPerOp;
  size_t first = 0;  // 0: none
  std::vector<size_t> sizes;
};

struct ChildReport {
  bool ran = false;  // false: `message` says what failed
  char message[512] = {};
  char ledger[256] = {};
  bool ledger_ok = false;
  bool drained = false;
  bool cap_ipc_lock = true;  // still effective after dropping privileges
  uint64_t cap = 0;          // max_bytes_awaiting_notification in effect
  uint64_t total = 0;
  uint64_t received = 0;
  int64_t first_mismatch = -1;
  uint64_t first_bytes_zero_copy = 0;  // after `first` alone
  uint64_t bytes_zero_copy = 0;
  uint64_t bytes_copied = 0;
  uint64_t fallbacks_enomem = 0;
  uint64_t enomem_pauses = 0;
  uint64_t peak_bytes_awaiting_notification = 0;
  uint64_t ring_memlock = 0;  // features().memlock_bytes
  char cap_description[512] = {};
  char stats[512] = {};
};

// Clears CAP_IPC_LOCK from this thread's effective and permitted sets.
void DropCapIpcLock() {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return;
  data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
  data[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~CAP_TO_MASK(CAP_IPC_LOCK);
  syscall(SYS_capset, &header, data);
}

bool CapIpcLockEffective() {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return true;
  return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &
          CAP_TO_MASK(CAP_IPC_LOCK)) != 0;
}

// Runs in the child: lowers RLIMIT_MEMLOCK to `kChildMemlock`, becomes an
// unprivileged user of its own, and sends `spec`'s stream on loopback.
ChildReport RunMemlockChild(const ChildSpec& spec) {
  ChildReport r;
  auto fail = [&r](const std::string& what) {
    std::snprintf(r.message, sizeof(r.message), "%s", what.c_str());
    return r;
  };
  const rlimit limit = {spec.memlock, spec.memlock};
  if (setrlimit(RLIMIT_MEMLOCK, &limit) != 0) {
    return fail(absl::StrCat("setrlimit: ", std::strerror(errno)));
  }
  // A user of our own has its own locked-memory count, so concurrent runs
  // cannot disturb each other, and no capabilities. Where switching users is
  // not allowed, stay (the count is then shared with the user's other
  // processes) and drop CAP_IPC_LOCK if held.
  const uid_t uid = 2000000 + static_cast<uid_t>(getpid());
  if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) {
    DropCapIpcLock();
  }
  r.cap_ipc_lock = CapIpcLockEffective();
  if (r.cap_ipc_lock) return fail("could not drop CAP_IPC_LOCK");

  TokenLedger ledger;
  std::vector<size_t> sizes;
  if (spec.first > 0) sizes.push_back(spec.first);
  sizes.insert(sizes.end(), spec.sizes.begin(), spec.sizes.end());
  Stream stream(808, std::move(sizes));
  r.total = stream.total();
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  if (!pair.ok()) return fail(pair.status().ToString());
  ExecutorOptions options;
  options.max_bytes_awaiting_notification = spec.cap;
  options.on_release = ledger.callback();
  absl::StatusOr<std::unique_ptr<Executor>> made =
      Executor::Create(std::move(options));
  if (!made.ok()) {
    return fail(absl::StrCat("Create: ", made.status().ToString()));
  }
  std::unique_ptr<Executor> executor = *std::move(made);
  r.cap = executor->max_bytes_awaiting_notification();
  r.ring_memlock = executor->features().memlock_bytes;
  std::snprintf(r.cap_description, sizeof(r.cap_description), "%s",
                executor->DescribeNotificationCap().c_str());
  ConnectionOptions o = Options(16 * K, CopyOp::kSendmsg);
  o.plan.max_bytes_per_op = spec.max_bytes_per_op;
  absl::StatusOr<ConnectionId> id = executor->Attach(pair->client, o);
  if (!id.ok()) return fail(absl::StrCat("Attach: ", id.status().ToString()));
  {
    CheckingReceiver receiver({{pair->server, CheckFor(stream)}});
    auto drain = [&]() {
      const absl::Status drained = executor->Drain(kDrainTimeout);
      if (!drained.ok()) {
        std::snprintf(r.message, sizeof(r.message), "Drain: %s",
                      drained.ToString().c_str());
      }
      return drained.ok();
    };
    r.drained = true;
    while (!stream.done()) {
      absl::Status s = stream.EnqueueNext(*executor, ledger, *id);
      if (!s.ok()) return fail(absl::StrCat("Enqueue: ", s.ToString()));
      if (spec.first > 0 && stream.enqueued() == 1) {
        r.drained = drain();
        r.first_bytes_zero_copy = executor->stats().totals.bytes_zero_copy;
      }
    }
    r.drained = drain() && r.drained;
    receiver.Join();
    r.received = receiver.check(0).received;
    r.first_mismatch = receiver.check(0).first_mismatch;
  }
  const SendStats s = executor->stats().totals;
  r.bytes_zero_copy = s.bytes_zero_copy;
  r.bytes_copied = s.bytes_copied;
  r.fallbacks_enomem = s.fallbacks_enomem;
  r.enomem_pauses = s.enomem_pauses;
  r.peak_bytes_awaiting_notification = s.peak_bytes_awaiting_notification;
  std::snprintf(r.stats, sizeof(r.stats), "%s", FormatStats(s).c_str());
  executor.reset();
  const absl::Status ledger_status = ledger.CheckAllReleasedOnce();
  r.ledger_ok = ledger_status.ok();
  std::snprintf(r.ledger, sizeof(r.ledger), "%s",
                ledger_status.ToString().c_str());
  r.ran = true;
  return r;
}

// Forks, runs RunMemlockChild(spec) in the child and returns its report.
absl::StatusOr<ChildReport> InChild(const ChildSpec& spec) {
  int fds[2];
  if (pipe(fds) != 0) return absl::ErrnoToStatus(errno, "pipe");
  const pid_t pid = fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    close(fds[0]);
    const ChildReport r = RunMemlockChild(spec);
    const char* p = reinterpret_cast<const char*>(&r);
    size_t left = sizeof(r);
    while (left > 0) {
      const ssize_t n = write(fds[1], p, left);
      if (n <= 0) _exit(2);
      p += n;
      left -= static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  ChildReport r;
  char* p = reinterpret_cast<char*>(&r);
  size_t got = 0;
  const absl::Time deadline = absl::Now() + kDrainTimeout + kReceiveTimeout;
  while (got < sizeof(r)) {
    pollfd pfd = {fds[0], POLLIN, 0};
    const int ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0 || poll(&pfd, 1, ms) <= 0) break;
    const ssize_t n = read(fds[0], p + got, sizeof(r) - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  if (got < sizeof(r)) kill(pid, SIGKILL);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  if (got < sizeof(r)) {
    return absl::InternalError(
        absl::StrCat("the child sent ", got, " of ", sizeof(r),
                     " report bytes; wait status ", wstatus));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(
        absl::StrCat("the child ended with wait status ", wstatus));
  }
  return r;
}

// Rounds of three small buffers, a large one alone (32..128 KiB: 10..34
// pages) and a 300 KiB one alone (77 pages: above the 64-page limit by
// itself), separated by small ones so each large one is its own SEND_ZC.
std::vector<size_t> MemlockWorkload() {
  std::mt19937_64 rng(8008);
  std::vector<size_t> sizes;
  for (int round = 0; round < 16; ++round) {
    for (int i = 0; i < 3; ++i) {
      sizes.push_back(absl::Uniform<size_t>(rng, 100, 2 * K));
    }
    sizes.push_back(absl::Uniform<size_t>(rng, 32 * K, 128 * K));
    sizes.push_back(absl::Uniform<size_t>(rng, 100, 2 * K));
    sizes.push_back(300 * K);
  }
  return sizes;
}

class MemlockTest : public ExecutorLoopbackTest {
 protected:
  // Skips unless io_uring and zero-copy sends work here (checked in the
  // parent, so a failure in the child is a failure, not a skip).
  void CheckAvailable() {
    Make(ExecutorOptions());
    if (IsSkipped() || HasFatalFailure()) return;
    const RingFeatures& f = executor_->features();
    if (!f.send_zc || !f.sendmsg_zc) {
      GTEST_SKIP() << "kernel " << KernelRelease() << " lacks zero-copy sends";
    }
    executor_.reset();
  }

  static void ExpectExactStream(const ChildReport& r) {
    EXPECT_FALSE(r.cap_ipc_lock);
    EXPECT_TRUE(r.drained) << r.message;
    EXPECT_TRUE(r.ledger_ok) << r.ledger;
    EXPECT_EQ(r.received, r.total);
    EXPECT_EQ(r.first_mismatch, -1);
    EXPECT_EQ(r.bytes_zero_copy + r.bytes_copied, r.total);
  }
};

#define CHECK_AVAILABLE_OR_SKIP()                 \
  do {                                            \
    CheckAvailable();                             \
    if (IsSkipped() || HasFatalFailure()) return; \
  } while (0)

// The executor's own cap set far above the limit (8 MiB against 256 KiB)
// lets the kernel refuse: zero-copy sends fail with -ENOMEM, go again by
// copy, and the stream stays exact. A 64 KiB send alone first (18 pages)
// shows zero-copy itself works under the limit.
//
// Measured on 6.18: the kernel charges each SEND_ZC/SENDMSG_ZC when it
// prepares the SQE, at submit, so a chain is charged for all its zero-copy
// ops at once; one refused op fails the whole chain (the ops before it
// -ECANCELED too), so in this workload every later zero-copy op is refused
// or cancelled and its bytes are copied.
TEST_F(MemlockTest, ZeroCopyAboveTheLockedMemoryLimitFallsBackToCopy) {
  CHECK_AVAILABLE_OR_SKIP();
  ChildSpec spec;
  spec.cap = 8 * M;
  spec.first = 64 * K;
  spec.sizes = MemlockWorkload();
  absl::StatusOr<ChildReport> r = InChild(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ran) << r->message;
  SCOPED_TRACE(r->stats);
  ExpectExactStream(*r);
  EXPECT_EQ(r->cap, 8 * M);
  EXPECT_EQ(r->first_bytes_zero_copy, 64 * K);
  EXPECT_GT(r->fallbacks_enomem, 0u);
}

// With the default cap (half of what RLIMIT_MEMLOCK leaves after the ring)
// the executor keeps its zero-copy bytes under the limit: no -ENOMEM, and the
// 300 KiB buffers still go zero-copy, in pieces that fit.
TEST_F(MemlockTest, DefaultCapKeepsZeroCopyUnderTheLimit) {
  CHECK_AVAILABLE_OR_SKIP();
  ChildSpec spec;
  spec.sizes = MemlockWorkload();
  absl::StatusOr<ChildReport> r = InChild(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ran) << r->message;
  SCOPED_TRACE(r->stats);
  ExpectExactStream(*r);
  EXPECT_GT(r->ring_memlock, 0u);
  EXPECT_EQ(r->cap, (kChildMemlock - r->ring_memlock) / 2 / 4096 * 4096)
      << r->cap_description;
  EXPECT_EQ(r->fallbacks_enomem, 0u);
  EXPECT_EQ(r->bytes_copied + r->bytes_zero_copy, r->total);
  EXPECT_GT(r->bytes_zero_copy, 16 * 300 * K);
  EXPECT_GT(r->peak_bytes_awaiting_notification, 0u);
  EXPECT_LE(r->peak_bytes_awaiting_notification, r->cap);
}

// The executor must count what the kernel charges: (bytes >> PAGE_SHIFT) + 2
// pages per op (io_notif_account_mem), one page more than the pages spanned
// when `bytes` is a multiple of the page size. With the cap at the limit and
// 60 KiB ops, a count of 16 pages per op would put 4 ops in a chain (64
// pages) where the kernel wants 68: every chain failed with -ENOMEM and the
// whole stream was copied (seen: fallbacks_enomem=16, bytes_zero_copy=0).
TEST_F(MemlockTest, CapAtTheLimitIsNeverExceededByTheKernelCharge) {
  CHECK_AVAILABLE_OR_SKIP();
  ChildSpec spec;
  spec.cap = kChildMemlock;
  spec.max_bytes_per_op = 60 * K;
  spec.sizes.assign(64, 60 * K);
  absl::StatusOr<ChildReport> r = InChild(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ran) << r->message;
  SCOPED_TRACE(r->stats);
  ExpectExactStream(*r);
  EXPECT_EQ(r->cap, kChildMemlock);
  EXPECT_EQ(r->fallbacks_enomem, 0u);
  EXPECT_EQ(r->bytes_zero_copy, r->total);
}

// With `ulimit -l 64` the ring itself takes most of the budget (its queues
// are charged too: 52 KiB for 256 SQEs and 2048 CQEs). Half of the 64 KiB
// limit, the old default cap, never fit: every zero-copy op failed -ENOMEM
// and was resent by copy (seen: 848 fallbacks for 24 MB). The cap now counts
// the ring, finds no room for even one op, and says so; nothing fails.
TEST_F(MemlockTest, TightLimitTakenByTheRingTurnsZeroCopyOffUpFront) {
  CHECK_AVAILABLE_OR_SKIP();
  ChildSpec spec;
  spec.memlock = 64 * K;
  spec.sizes.assign(256, 64 * K);
  absl::StatusOr<ChildReport> r = InChild(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ran) << r->message;
  SCOPED_TRACE(r->stats);
  ExpectExactStream(*r);
  EXPECT_LT(r->cap, 3 * 4096u) << r->cap_description;
  EXPECT_TRUE(absl::StrContains(r->cap_description, "zero-copy sends are not"))
      << r->cap_description;
  EXPECT_EQ(r->fallbacks_enomem, 0u);
  EXPECT_EQ(r->bytes_copied, r->total);
}

// The same tight limit with a cap set far above it: -ENOMEM comes back for
// every zero-copy op, and after two in a row zero-copy pauses (16 chains,
// then 32, ...), so only a few ops fail instead of every one.
TEST_F(MemlockTest, RepeatedEnomemPausesZeroCopyOnTheRealKernel) {
  CHECK_AVAILABLE_OR_SKIP();
  ChildSpec spec;
  spec.memlock = 64 * K;
  spec.cap = 8 * M;
  spec.sizes.assign(512, 64 * K);
  absl::StatusOr<ChildReport> r = InChild(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ran) << r->message;
  SCOPED_TRACE(r->stats);
  ExpectExactStream(*r);
  EXPECT_GE(r->enomem_pauses, 1u);
  EXPECT_GT(r->fallbacks_enomem, 0u);
  EXPECT_LT(r->fallbacks_enomem, 64u);
}

// ---------------------------------------------------------------------------
// 9. Trust under faults: a peer that stops reading, teardown, other threads.

// Polls for `duration` (a peer that reads nothing never lets it go idle).
void PollFor(Executor& executor, absl::Duration duration) {
  const absl::Time end = absl::Now() + duration;
  while (absl::Now() < end) {
    absl::StatusOr<size_t> n = executor.Poll(absl::Milliseconds(20));
    ASSERT_TRUE(n.ok()) << n.status();
  }
}

// Reads what `fd` delivers until nothing comes for `quiet`, checking it.
StreamCheck ReadWhatArrives(int fd, const Stream& stream,
                            absl::Duration quiet) {
  StreamCheck check = CheckFor(stream);
  std::vector<unsigned char> buf(256 * K);
  const absl::Time deadline = absl::Now() + kReceiveTimeout;
  while (absl::Now() < deadline) {
    pollfd pfd = {fd, POLLIN, 0};
    const int ready =
        poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(quiet)));
    if (ready <= 0) break;
    const ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) {
      check.Feed(buf.data(), static_cast<size_t>(n));
    } else if (n == 0) {
      check.eof = true;
      break;
    } else if (errno != EAGAIN && errno != EINTR) {
      check.error = errno;
      break;
    }
  }
  return check;
}

struct ReleaseCounts {
  size_t ok = 0;
  size_t kernel_may_read = 0;
  size_t other = 0;
};

ReleaseCounts CountReleases(const TokenLedger& ledger, const Stream& stream) {
  ReleaseCounts counts;
  for (size_t i = 0; i < stream.count(); ++i) {
    const TokenLedger::Entry* e = ledger.Find(stream.token(i));
    if (e == nullptr || e->releases != 1) continue;
    if (e->status.ok()) {
      ++counts.ok;
    } else if (KernelMayStillRead(e->status)) {
      ++counts.kernel_may_read;
    } else {
      ++counts.other;
    }
  }
  return counts;
}

ConnectionOptions AllZeroCopy() {
  ConnectionOptions o = Options(0, CopyOp::kWritev);
  o.adaptive_zero_copy = false;  // loopback reports copies; a NIC would not
  return o;
}

// The peer reads nothing; 64 x 64 KiB go zero-copy; the executor is
// destroyed (teardown 300 ms); every buffer handed back as reusable is
// overwritten by the ledger, as a caller reusing it would. Then the peer
// reads: every byte on the wire must be the byte enqueued. Before, 51 of 64
// came back OK while the kernel still sent from them, and 3,242,684 of the
// 3,358,315 bytes on the wire were the overwritten ones.
TEST_F(ExecutorLoopbackTest, TeardownNeverHandsBackMemoryTheKernelStillSends) {
  ExecutorOptions eo;
  eo.teardown_timeout = absl::Milliseconds(300);
  MAKE_EXECUTOR_OR_SKIP(eo);
  if (!executor_->features().send_zc) GTEST_SKIP() << "no SEND_ZC here";
  TcpPair* pair = NewPair();
  ASSERT_NE(pair, nullptr);
  Stream& stream = NewStream(901, std::vector<size_t>(64, 64 * K));
  absl::StatusOr<ConnectionId> id =
      executor_->Attach(pair->client, AllZeroCopy());
  ASSERT_TRUE(id.ok()) << id.status();
  while (!stream.done()) {
    ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, *id).ok());
  }
  PollFor(*executor_, absl::Milliseconds(500));
  const SendStats before = *executor_->connection_stats(*id);
  ASSERT_GT(before.bytes_awaiting_notification, 0u) << FormatStats(before);
  executor_.reset();

  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  const ReleaseCounts counts = CountReleases(ledger_, stream);
  EXPECT_GT(counts.kernel_may_read, 0u)
      << "the peer read nothing: its data cannot have been acknowledged";
  const StreamCheck got =
      ReadWhatArrives(pair->server, stream, absl::Milliseconds(500));
  EXPECT_GT(got.received, 0u) << got.Describe();
  EXPECT_EQ(got.first_mismatch, -1)
      << "memory handed back as reusable was still being sent: "
      << got.Describe() << " (ok " << counts.ok << ", kernel may read "
      << counts.kernel_may_read << ", other " << counts.other << ")";
}

// The same stalled peer, but the connection allows a reset: Shutdown resets
// it halfway through its timeout, the kernel drops the send queue, every
// buffer comes back, none still referenced, and Shutdown says OK.
TEST_F(ExecutorLoopbackTest, ShutdownResetsAStalledPeerAndGetsEverythingBack) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  if (!executor_->features().send_zc) GTEST_SKIP() << "no SEND_ZC here";
  TcpPair* pair = NewPair();
  ASSERT_NE(pair, nullptr);
  Stream& stream = NewStream(902, std::vector<size_t>(64, 64 * K));
  ConnectionOptions o = AllZeroCopy();
  o.reset_on_shutdown = true;
  absl::StatusOr<ConnectionId> id = executor_->Attach(pair->client, o);
  ASSERT_TRUE(id.ok()) << id.status();
  while (!stream.done()) {
    ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, *id).ok());
  }
  PollFor(*executor_, absl::Milliseconds(300));
  ASSERT_GT(executor_->stats().totals.bytes_awaiting_notification, 0u);
  const absl::Status s = executor_->Shutdown(absl::Seconds(10));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  const ReleaseCounts counts = CountReleases(ledger_, stream);
  EXPECT_EQ(counts.kernel_may_read, 0u);
  EXPECT_EQ(counts.ok + counts.other, stream.count());
  const SendStats totals = executor_->stats().totals;
  EXPECT_EQ(totals.connections_reset, 1u) << FormatStats(totals);
  EXPECT_EQ(totals.bytes_awaiting_notification, 0u);
  // The peer gets what had arrived, exact, then the reset.
  const StreamCheck got =
      ReadWhatArrives(pair->server, stream, absl::Milliseconds(500));
  EXPECT_EQ(got.first_mismatch, -1) << got.Describe();
  EXPECT_EQ(got.error, ECONNRESET) << got.Describe();
}

// Abort: the stalled connection alone is reset, its buffers come back within
// a few polls, the other connection on the ring is untouched.
TEST_F(ExecutorLoopbackTest, AbortGetsAStalledPeersBuffersBack) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  if (!executor_->features().send_zc) GTEST_SKIP() << "no SEND_ZC here";
  StalledAndLive t = StartStalledAndLive(903, std::vector<size_t>(32, 64 * K),
                                         std::vector<size_t>(32, 64 * K),
                                         absl::Milliseconds(200));
  if (HasFailure()) return;
  Stream& s1 = *t.stalled_stream;
  Stream& s2 = *t.live_stream;
  const ConnectionId a = t.stalled, b = t.live;
  TcpPair* live = t.live_pair;
  ASSERT_FALSE(executor_->Idle(a));
  ASSERT_TRUE(executor_->Abort(a).ok());
  const absl::Time deadline = absl::Now() + kStepTimeout;
  while (!executor_->Idle(a) && absl::Now() < deadline) {
    ASSERT_TRUE(executor_->Poll(absl::Milliseconds(10)).ok());
  }
  ASSERT_TRUE(executor_->Idle(a));
  const ReleaseCounts counts = CountReleases(ledger_, s1);
  EXPECT_EQ(counts.ok + counts.other, s1.count());
  EXPECT_EQ(counts.kernel_may_read, 0u);
  CheckingReceiver receiver({{live->server, CheckFor(s2)}});
  while (!s2.done()) ASSERT_TRUE(s2.EnqueueNext(*executor_, ledger_, b).ok());
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  ExpectReceivedWhole(receiver.check(0), s2);
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// Connection A's peer reads nothing; its zero-copy bytes fill the ring's
// notification cap and their notifications never come. Connection B must
// still get its whole stream: its chains find no room under the cap and go
// by copy. Before, B waited on the cap (cap_waits) and its peer got 0 of
// 8 MiB in 2 s, and still 0 two seconds after Close(A).
TEST_F(ExecutorLoopbackTest, StalledPeerHoldingTheCapDoesNotStarveOthers) {
  ExecutorOptions eo;
  eo.max_bytes_awaiting_notification = 4 * M;
  MAKE_EXECUTOR_OR_SKIP(eo);
  if (!executor_->features().send_zc) GTEST_SKIP() << "no SEND_ZC here";
  StalledAndLive t = StartStalledAndLive(905, std::vector<size_t>(16, 1 * M),
                                         std::vector<size_t>(128, 64 * K),
                                         absl::Milliseconds(300));
  if (HasFailure()) return;
  Stream& s2 = *t.live_stream;
  const ConnectionId a = t.stalled, b = t.live;
  TcpPair* live = t.live_pair;
  const uint64_t held = executor_->stats().totals.bytes_awaiting_notification;
  ASSERT_GT(held, 3 * M) << "A should hold most of the 4 MiB cap";

  const absl::Time start = absl::Now();
  CheckingReceiver receiver({{live->server, CheckFor(s2)}});
  while (!s2.done()) ASSERT_TRUE(s2.EnqueueNext(*executor_, ledger_, b).ok());
  const absl::Time deadline = absl::Now() + kStepTimeout;
  while (!executor_->Idle(b) && absl::Now() < deadline) {
    ASSERT_TRUE(executor_->Poll(absl::Milliseconds(10)).ok());
  }
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(executor_->Idle(b))
      << FormatStats(*executor_->connection_stats(b));
  receiver.Join();
  EXPECT_EQ(receiver.check(0).received, s2.total())
      << receiver.check(0).Describe();
  EXPECT_EQ(receiver.check(0).first_mismatch, -1);
  const SendStats sb = *executor_->connection_stats(b);
  EXPECT_GT(sb.cap_copies, 0u) << FormatStats(sb);
  EXPECT_GT(sb.bytes_copied, 0u);
  RecordProperty("b_seconds", absl::StrCat(absl::ToDoubleSeconds(took)));
  ASSERT_TRUE(executor_->Abort(a).ok());
  ASSERT_TRUE(executor_->Drain(kDrainTimeout).ok());
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

// Built on this thread, run on another: the ring (SINGLE_ISSUER where the
// kernel has it) binds to the thread that first submits. Before, the first
// submit from the other thread failed "io_uring submit failed: File exists".
TEST_F(ExecutorLoopbackTest, ExecutorBuiltOnOneThreadRunsOnAnother) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  TcpPair* pair = NewPair();
  ASSERT_NE(pair, nullptr);
  Stream& stream = NewStream(907, std::vector<size_t>(64, 32 * K));
  absl::StatusOr<ConnectionId> id =
      executor_->Attach(pair->client, Options(16 * K, CopyOp::kWritev));
  ASSERT_TRUE(id.ok()) << id.status();
  while (!stream.done()) {
    ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, *id).ok());
  }
  CheckingReceiver receiver({{pair->server, CheckFor(stream)}});
  absl::Status drained;
  std::thread runner([&] { drained = executor_->Drain(kDrainTimeout); });
  runner.join();
  EXPECT_TRUE(drained.ok()) << drained;
  receiver.Join();
  EXPECT_EQ(receiver.check(0).received, stream.total());
  EXPECT_EQ(receiver.check(0).first_mismatch, -1);
  if (executor_->features().setup_flags & IORING_SETUP_SINGLE_ISSUER) {
    const absl::StatusOr<size_t> here = executor_->Poll(absl::ZeroDuration());
    EXPECT_EQ(here.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(here.status().message(), "bound to thread"))
        << here.status();
  }
  // Destroyed on the wrong thread: nothing is held, nothing to wait for.
  executor_.reset();
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok());
}

// ---------------------------------------------------------------------------
// 10. Beside a reactor: an epoll loop watches the executor's ring fd and a
// listening socket, accepts connections, attaches them and sends each a
// zero-copy stream (threshold 0, adaptive off, so notifications come too),
// calling only HandleReady, never Poll with a wait. Every stream must arrive
// exact, and every buffer come back, with the loop woken by the fd alone.
// Small socket buffers (far below each stream) keep a fast receiver from
// letting every send complete inside the HandleReady that follows an accept:
// the last stream can only finish after a ring wake-up.
class EpollTest : public ExecutorLoopbackTest,
                  public testing::WithParamInterface<bool> {};

TEST_P(EpollTest, EpollLoopDrivesTheExecutorThroughItsWatchFd) {
  // With DEFER_TASKRUN the fd is an eventfd: watching the ring fd itself,
  // this loop hung (the kernel does not wake its pollers for deferred
  // completions).
  ExecutorOptions eo;
  eo.defer_taskrun = GetParam();
  MAKE_EXECUTOR_OR_SKIP(eo);
  absl::StatusOr<int> watch = executor_->WatchFd();
  ASSERT_TRUE(watch.ok()) << watch.status();
  sockaddr_in addr{};
  absl::StatusOr<int> listening = ListenLoopback(16, &addr);
  ASSERT_TRUE(listening.ok()) << listening.status();
  const int listener = *listening;
  constexpr int kConnections = 4;
  static constexpr int kSmallBuffer = 64 * K;  // the kernel doubles it
  std::vector<int> clients;
  std::vector<std::pair<int, StreamCheck>> checks;
  for (int i = 0; i < kConnections; ++i) {
    Stream& stream =
        NewStream(1000 + i, std::vector<size_t>(64, (i + 1) * 16 * K));
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSmallBuffer,
                         sizeof(kSmallBuffer)),
              0);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    clients.push_back(fd);
    checks.push_back({fd, CheckFor(stream)});
  }
  CheckingReceiver receiver(checks);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(ep, 0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = *watch;
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, *watch, &ev), 0);
  ev.data.fd = listener;
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev), 0);
  std::vector<int> accepted;
  std::vector<ConnectionId> ids;
  const absl::Time deadline = absl::Now() + kStepTimeout;
  bool all_idle = false;
  size_t ring_wakeups = 0;
  while (!all_idle && absl::Now() < deadline) {
    epoll_event events[4];
    const int n = epoll_wait(ep, events, 4, 100);
    for (int k = 0; k < n; ++k) {
      if (events[k].data.fd == listener) {
        const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        accepted.push_back(fd);
        ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSmallBuffer,
                             sizeof(kSmallBuffer)),
                  0);
        absl::StatusOr<ConnectionId> id = executor_->Attach(fd, AllZeroCopy());
        ASSERT_TRUE(id.ok()) << id.status();
        ids.push_back(*id);
        // Streams go to the accepted connections in accept order, which
        // is connect order on one listener.
        Stream& stream = *streams_[ids.size() - 1];
        while (!stream.done()) {
          ASSERT_TRUE(stream.EnqueueNext(*executor_, ledger_, *id).ok());
        }
      } else {
        ++ring_wakeups;
      }
    }
    // After a wake-up of either kind (new data to start, or completions).
    if (n > 0) {
      ASSERT_TRUE(executor_->HandleReady().ok());
    }
    all_idle = ids.size() == kConnections;
    for (ConnectionId id : ids) all_idle = all_idle && executor_->Idle(id);
  }
  close(ep);
  EXPECT_TRUE(all_idle) << FormatStats(executor_->stats().totals);
  EXPECT_GT(ring_wakeups, 0u);
  for (int fd : accepted) shutdown(fd, SHUT_WR);
  receiver.Join();
  for (int i = 0; i < kConnections; ++i) {
    EXPECT_EQ(receiver.check(i).received, streams_[i]->total())
        << receiver.check(i).Describe();
    EXPECT_EQ(receiver.check(i).first_mismatch, -1);
  }
  const SendStats totals = executor_->stats().totals;
  if (executor_->features().send_zc) {
    EXPECT_GT(totals.notifications, 0u) << FormatStats(totals);
  }
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
  for (ConnectionId id : ids) (void)executor_->Close(id);
  for (int fd : accepted) close(fd);
  for (int fd : clients) close(fd);
  close(listener);
}

INSTANTIATE_TEST_SUITE_P(DeferTaskrun, EpollTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "DeferTaskrun" : "Plain";
                         });

// ---------------------------------------------------------------------------
// Prepared messages on the real kernel.

// Enqueues all of `stream` on `id` in units, each a plain buffer or a run
// of 2..6 consecutive buffers as one prepared message (`messages` keeps
// them), polling without waiting now and then. Returns the units enqueued
// (what the stats count as buffers).
size_t EnqueueWithMessages(
    Executor& executor, TokenLedger& ledger, const Stream& stream,
    ConnectionId id, std::mt19937_64& rng,
    std::vector<std::shared_ptr<const PreparedMessage>>* messages) {
  size_t units = 0;
  size_t offset = 0;
  for (size_t i = 0; i < stream.count();) {
    size_t run = absl::Uniform(rng, 0, 2) == 0
                     ? absl::Uniform<size_t>(absl::IntervalClosed, rng, 2, 6)
                     : 1;
    run = std::min(run, stream.count() - i);
    unsigned char* base = stream.data() + offset;
    size_t bytes = 0;
    if (run == 1) {
      bytes = stream.size(i);
      const uint64_t token = ledger.Expect(id, base, bytes);
      const absl::Status s = executor.Enqueue(id, base, bytes, token);
      EXPECT_TRUE(s.ok()) << s;
    } else {
      std::vector<iovec> iovs;
      for (size_t k = 0; k < run; ++k) {
        iovs.push_back({base + bytes, stream.size(i + k)});
        bytes += stream.size(i + k);
      }
      absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
          PreparedMessage::Create(iovs);
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok()) return units;
      // The ledger poisons all of the message's memory at its release.
      const uint64_t token = ledger.Expect(id, base, bytes);
      const absl::Status s = executor.EnqueueMessage(id, *m, token);
      EXPECT_TRUE(s.ok()) << s;
      messages->push_back(*std::move(m));
    }
    i += run;
    offset += bytes;
    if (++units % 4 == 0) {
      const absl::StatusOr<size_t> polled = executor.Poll(absl::ZeroDuration());
      EXPECT_TRUE(polled.ok()) << polled.status();
    }
  }
  return units;
}

// Several connections with small send buffers and a slow reader: plain
// buffers and prepared messages (large pieces among them, zero-copy) leave in
// short sends, and every stream arrives byte-exact.
TEST_F(ExecutorLoopbackTest, PreparedMessagesAmongPlainBuffersStayExact) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  constexpr int kConnections = 6;
  std::mt19937_64 rng(9009);
  const uint64_t thresholds[] = {16 * K, 4 * K, 64 * K, PlanOptions::kNever};
  Connections c;
  ASSERT_NO_FATAL_FAILURE(AttachStreams(
      kConnections, /*buffer=*/8 * K, 900,
      [&](int) { return MixedSizes(rng, 80, 200 * K); },
      [&](int i) {
        ConnectionOptions o = Options(
            thresholds[i % 4], i % 2 == 0 ? CopyOp::kWritev : CopyOp::kSendmsg);
        if (i == 1) o.plan.max_ops_per_chain = 2;  // chains cut inside messages
        return o;
      },
      &c));
  const std::vector<ConnectionId>& ids = c.ids;
  const std::vector<Stream*>& streams = c.streams;
  CheckingReceiver::Options slow;
  slow.read_size = 4 * K;
  slow.pause = absl::Microseconds(50);
  CheckingReceiver receiver(std::move(c.sockets), slow);

  std::vector<std::shared_ptr<const PreparedMessage>> messages;
  std::vector<size_t> units(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    units[i] = EnqueueWithMessages(*executor_, ledger_, *streams[i], ids[i],
                                   rng, &messages);
  }
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  EXPECT_FALSE(receiver.timed_out());
  ExpectAllReleasedOk();
  uint64_t short_sends = 0;
  for (int i = 0; i < kConnections; ++i) {
    SCOPED_TRACE(absl::StrCat("connection ", i));
    ExpectReceivedWhole(receiver.check(i), *streams[i]);
    absl::StatusOr<SendStats> s = executor_->connection_stats(ids[i]);
    ASSERT_TRUE(s.ok()) << s.status();
    SCOPED_TRACE(FormatStats(*s));
    EXPECT_EQ(s->buffers_enqueued, units[i]);
    EXPECT_EQ(s->buffers_released, units[i]);
    EXPECT_EQ(s->bytes_enqueued, streams[i]->total());
    EXPECT_EQ(s->bytes_copied + s->bytes_zero_copy, streams[i]->total());
    EXPECT_EQ(s->bytes_awaiting_notification, 0u);
    short_sends += s->short_sends;
  }
  EXPECT_GT(short_sends, 0u) << "the small send buffers made none";
  EXPECT_GT(messages.size(), 20u);
  for (const auto& m : messages) {
    EXPECT_EQ(m.use_count(), 1) << "the executor let go of every message";
  }
  const RingStats ring = executor_->stats();
  if (executor_->features().send_zc &&
      executor_->max_bytes_awaiting_notification() > 0) {
    EXPECT_GT(ZeroCopyOps(ring.totals), 0u) << FormatStats(ring.totals);
  }
}

// One prepared message (pieces laid out backwards in their memory, some of
// them large) sent many times on each of several connections, between plain
// buffers; each receiver compares all it read with what was enqueued.
TEST_F(ExecutorLoopbackTest, OneMessageManyTimesOnManyConnectionsIsExact) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  constexpr int kConnections = 4;
  constexpr int kRounds = 12;
  const std::vector<size_t> sizes = {100, 64 * K, 3 * K, 128 * K,
                                     7,   20 * K, 70 * K};
  size_t total = 0;
  for (size_t s : sizes) total += s;
  void* arena = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(arena, MAP_FAILED);
  auto* bytes = static_cast<unsigned char*>(arena);
  std::vector<iovec> iovs;
  std::string message_bytes;
  size_t end = total;
  uint64_t n = 0;
  for (size_t s : sizes) {
    end -= s;
    for (size_t k = 0; k < s; ++k) bytes[end + k] = PatternByte(950, n++);
    iovs.push_back({bytes + end, s});
    message_bytes.append(reinterpret_cast<const char*>(bytes + end), s);
  }
  absl::StatusOr<std::shared_ptr<const PreparedMessage>> message =
      PreparedMessage::Create(iovs);
  ASSERT_TRUE(message.ok()) << message.status();

  std::vector<ConnectionId> ids;
  std::vector<int> fds;
  std::vector<std::string> expected(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    TcpPair* pair = NewPair(/*sndbuf=*/16 * K, /*rcvbuf=*/16 * K);
    ASSERT_NE(pair, nullptr);
    ConnectionOptions o = Options(i == 3 ? PlanOptions::kNever : 16 * K,
                                  i % 2 ? CopyOp::kSendmsg : CopyOp::kWritev);
    absl::StatusOr<ConnectionId> id = executor_->Attach(pair->client, o);
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
    fds.push_back(pair->server);
  }
  // Plain buffers, one per round and connection, all in one arena.
  const size_t plain_each = 5000;
  Stream plain(951, std::vector<size_t>(kRounds * kConnections, plain_each));
  for (int round = 0; round < kRounds; ++round) {
    for (int i = 0; i < kConnections; ++i) {
      const size_t index = static_cast<size_t>(round * kConnections + i);
      unsigned char* p = plain.data() + index * plain_each;
      const uint64_t t = ledger_.Expect(ids[i], p, plain_each);
      ASSERT_TRUE(executor_->Enqueue(ids[i], p, plain_each, t).ok());
      expected[i].append(reinterpret_cast<const char*>(p), plain_each);
      for (int k = 0; k < (i == 0 ? 2 : 1); ++k) {
        // Not poisoned: the other enqueues still send this memory.
        const uint64_t mt = ledger_.Expect(ids[i], nullptr, 0);
        ASSERT_TRUE(executor_->EnqueueMessage(ids[i], *message, mt).ok());
        expected[i] += message_bytes;
      }
    }
  }
  std::vector<std::string> got(kConnections);
  ReceiverOptions ro;
  ro.read_size = 8 * K;
  ro.timeout = kReceiveTimeout;
  for (const std::string& e : expected) ro.byte_limits.push_back(e.size());
  ro.on_data = [&got](size_t connection, absl::Span<const unsigned char> d) {
    got[connection].append(reinterpret_cast<const char*>(d.data()), d.size());
    return absl::OkStatus();
  };
  absl::StatusOr<std::unique_ptr<Receiver>> receiver =
      Receiver::OnSockets(fds, std::move(ro));
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  ASSERT_TRUE(executor_->Drain(kDrainTimeout).ok());
  EXPECT_TRUE((*receiver)->Join().ok()) << (*receiver)->status();
  for (int i = 0; i < kConnections; ++i) {
    SCOPED_TRACE(absl::StrCat("connection ", i));
    ASSERT_EQ(got[i].size(), expected[i].size());
    const auto mismatch =
        std::mismatch(got[i].begin(), got[i].end(), expected[i].begin());
    EXPECT_TRUE(mismatch.first == got[i].end())
        << "first wrong byte at " << (mismatch.first - got[i].begin());
    absl::StatusOr<SendStats> s = executor_->connection_stats(ids[i]);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->buffers_enqueued, kRounds * (i == 0 ? 3u : 2u));
    EXPECT_EQ(s->buffers_released, s->buffers_enqueued);
    EXPECT_EQ(s->bytes_copied + s->bytes_zero_copy, expected[i].size());
  }
  ExpectAllReleasedOk();
  EXPECT_EQ(message->use_count(), 1);
  executor_.reset();
  munmap(arena, total);
}

}  // namespace
}  // namespace zcplan

namespace zcplan {
namespace {

// =============================================================================
// Gathered copies (ConnectionOptions::gather_bytes / gather_below) on a real
// ring: several connections with gathering on, tiny and large buffers mixed,
// a small SO_SNDBUF and slow readers so the gathered sends go short; every
// stream byte-exact, every buffer released once.
// =============================================================================

TEST_F(ExecutorLoopbackTest, GatheredCopiesStayExactUnderShortSends) {
  MAKE_EXECUTOR_OR_SKIP(ExecutorOptions());
  constexpr int kConnections = 6;
  std::mt19937_64 rng(5150);
  Connections c;
  ASSERT_NO_FATAL_FAILURE(AttachStreams(
      kConnections, /*buffer=*/4 * K, 5150,
      [&](int) {
        // Runs of tiny buffers (1..64 bytes) between some large ones.
        std::vector<size_t> sizes;
        for (int k = 0; k < 1500; ++k) {
          const int kind = absl::Uniform(rng, 0, 100);
          sizes.push_back(kind < 85 ? absl::Uniform<size_t>(rng, 1, 65)
                          : kind < 95
                              ? absl::Uniform<size_t>(rng, 65, 2 * K)
                              : absl::Uniform<size_t>(rng, 16 * K, 96 * K));
        }
        return sizes;
      },
      [&](int i) {
        ConnectionOptions o =
            Options(i % 3 == 2 ? PlanOptions::kNever : 16 * K,
                    i % 2 == 0 ? CopyOp::kWritev : CopyOp::kSendmsg,
                    /*adaptive=*/false);
        // Some chains gather all their small ops, some only the first few.
        o.gather_bytes = i % 2 == 0 ? 256 * K : 2 * K;
        o.gather_below = 512;
        // All by copy: large buffers join the tiny ones' ops unless ops are
        // cut short, which keeps some of them small enough to gather.
        o.plan.max_iovs_per_op = i % 3 == 2 ? 16 : (i < 3 ? 1024 : 64);
        return o;
      },
      &c));
  const std::vector<ConnectionId>& ids = c.ids;
  const std::vector<Stream*>& streams = c.streams;
  CheckingReceiver::Options slow;
  slow.read_size = 1500;
  slow.pause = absl::Microseconds(200);
  CheckingReceiver receiver(std::move(c.sockets), slow);

  // Interleaved enqueues across the connections, polling as they go.
  for (bool more = true; more;) {
    more = false;
    for (int i = 0; i < kConnections; ++i) {
      const int n = absl::Uniform(absl::IntervalClosed, rng, 0, 40);
      for (int k = 0; k < n && !streams[i]->done(); ++k) {
        ASSERT_TRUE(streams[i]->EnqueueNext(*executor_, ledger_, ids[i]).ok());
      }
      more = more || !streams[i]->done();
    }
    ASSERT_TRUE(executor_->Poll(absl::ZeroDuration()).ok());
  }
  ASSERT_NO_FATAL_FAILURE(DrainAndJoin(receiver));
  EXPECT_FALSE(receiver.timed_out());

  ExpectAllReleasedOk();
  uint64_t gathered = 0;
  uint64_t short_sends = 0;
  for (int i = 0; i < kConnections; ++i) {
    SCOPED_TRACE(absl::StrCat("connection ", i));
    SendStats s;
    ASSERT_NO_FATAL_FAILURE(
        ExpectSentWhole(receiver.check(i), ids[i], *streams[i], &s));
    SCOPED_TRACE(FormatStats(s));
    EXPECT_GT(s.gathered_ops, 0u);
    EXPECT_LE(s.gathered_ops, Ops(s, OpKind::kSend));
    // bytes_gathered counts the bytes of gathered ops submitted (a short or
    // cancelled one counts in full, and its rest again when resumed).
    EXPECT_GE(s.bytes_gathered, s.gathered_ops);
    gathered += s.gathered_ops;
    short_sends += s.short_sends;
  }
  EXPECT_GT(gathered, 0u);
  EXPECT_GT(short_sends, 0u) << "the small send buffers should cut sends";
}

}  // namespace
}  // namespace zcplan
