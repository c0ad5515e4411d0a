// SPDX-License-Identifier: Apache-2.0
// The executor on a ring the test owns (Executor::CreateOnRing), on the real
// kernel: the test is a small server that runs accept, recv and timeouts of
// its own on its io_uring, with user_data values that an executor without a
// tag would have taken for its own (7, 1 << 32, small integers, pointers),
// and sends through the executor on the same ring to many connections.
//
// Every stream must arrive byte-exact (content, not just counts: the ledger
// poisons a buffer when it is released), every buffer be released once,
// every one of the test's own SQEs complete exactly once in its own handler,
// and every executor completion go to HandleCompletion. Variants: plain ring
// and SINGLE_ISSUER | DEFER_TASKRUN; the executor's SQEs submitted by Flush
// or only by the test's own io_uring_submit after Prepare; and Drain reaping
// the shared ring with on_foreign_completion.
//
// Sizes: 16 connections of about 2 MiB each. Every wait is bounded; a stuck
// loop fails at its deadline.

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/prepared_message.h"

namespace zcplan {
namespace {

constexpr size_t K = 1024;
constexpr size_t M = 1024 * K;
constexpr uint8_t kTag = 0xA5;
constexpr int kClients = 16;
constexpr size_t kStreamBytes = 2 * M;
constexpr size_t kRecvBytes = 64 * K;
// Hang guard for each phase; nothing asserts on timing.
constexpr absl::Duration kDeadline = absl::Seconds(30);

// The values the motivating bug misrouted: a caller's 7 was swallowed, and
// 1 << 32 was taken for an op in flight.
constexpr uint64_t kAcceptUserData = 7;
constexpr uint64_t kTimeoutUserData = uint64_t{1} << 32;

// Sizes around the 16K threshold and far from it, so that writev or sendmsg
// (copy), send_zc (one large buffer) and sendmsg_zc (several) all occur.
std::vector<size_t> Sizes(int stream) {
  static constexpr size_t kCycle[] = {
      100,   3000,   16 * K - 1, 16 * K, 20000,   64 * K, 200 * K, 1,
      8 * K, 40 * K, 17 * K,     500,    128 * K, 7,      33 * K,  2 * K};
  std::vector<size_t> sizes;
  size_t total = 0;
  for (size_t i = stream; total < kStreamBytes; ++i) {
    sizes.push_back(kCycle[i % (sizeof(kCycle) / sizeof(kCycle[0]))]);
    total += sizes.back();
  }
  return sizes;
}

enum class Submit { kFlush, kPrepareOnly };

struct Client {
  int fd = -1;
  uint16_t port = 0;  // its local port: finds its accepted end
  uint64_t user_data = 0;
  std::unique_ptr<Stream> stream;
  StreamCheck check;
  std::vector<unsigned char> buf;
  int server_fd = -1;  // the accepted end the executor sends on
  ConnectionId id;
  bool attached = false;
  // With prepared messages: the units enqueued (plain buffers and
  // messages, what the stats count as buffers), and the messages.
  size_t units = 0;
  std::vector<std::shared_ptr<const PreparedMessage>> messages;
};

class SharedRingTest : public testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  ~SharedRingTest() override {
    executor_.reset();  // before the ring, which it borrows
    if (ring_ready_) io_uring_queue_exit(&ring_);
    for (Client& c : clients_) {
      if (c.fd >= 0) close(c.fd);
      if (c.server_fd >= 0) close(c.server_fd);
    }
    if (listener_ >= 0) close(listener_);
  }

  // Sets up the ring, the executor on it, the listener and the connected
  // clients; skips when the kernel lacks io_uring or the flags.
  void SetUpServer(bool defer_taskrun, bool reap_foreign = false) {
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = 4096;
    if (defer_taskrun) {
      p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    }
    const int r = io_uring_queue_init_params(256, &ring_, &p);
    if (r == -EINVAL && defer_taskrun) {
      GTEST_SKIP() << "kernel " << KernelRelease()
                   << " lacks SINGLE_ISSUER or DEFER_TASKRUN";
    }
    if (r < 0) {
      GTEST_SKIP() << IoUringSkipReason(absl::InternalError(
          absl::StrCat("io_uring_queue_init_params: ", std::strerror(-r))));
    }
    ring_ready_ = true;
    ExecutorOptions eo;
    eo.user_data_tag = kTag;
    eo.on_release = ledger_.callback();
    eo.teardown_timeout = absl::Milliseconds(10);
    if (reap_foreign) {
      eo.on_foreign_completion = [this](const io_uring_cqe& cqe) {
        ++foreign_delivered_;
        OnOwnCompletion(cqe);
      };
    }
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::CreateOnRing(&ring_, std::move(eo));
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = *std::move(executor);

    sockaddr_in addr{};
    absl::StatusOr<int> listener = ListenLoopback(kClients, &addr);
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = *listener;
    clients_.resize(kClients);
    for (int i = 0; i < kClients; ++i) {
      Client& c = clients_[i];
      c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ASSERT_GE(c.fd, 0);
      // Completes from the backlog; the ring's accept takes it later.
      ASSERT_EQ(connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
                0);
      sockaddr_in local{};
      socklen_t local_len = sizeof(local);
      ASSERT_EQ(
          getsockname(c.fd, reinterpret_cast<sockaddr*>(&local), &local_len),
          0);
      c.port = ntohs(local.sin_port);
      c.stream = std::make_unique<Stream>(100 + i, Sizes(i));
      c.check = CheckFor(*c.stream);
      c.buf.resize(kRecvBytes);
      // Pointers, small integers, and values shaped like an untagged
      // executor's (generation << 32 | slot).
      switch (i % 3) {
        case 0:
          c.user_data = reinterpret_cast<uint64_t>(&c);
          break;
        case 1:
          c.user_data = 100 + i;
          break;
        default:
          c.user_data = (uint64_t{static_cast<uint32_t>(i)} << 32) | 1;
          break;
      }
      ASSERT_NE(c.user_data >> 56, kTag);
      user_data_to_client_[c.user_data] = i;
    }
  }

  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    EXPECT_NE(sqe, nullptr);
    return sqe;
  }

  void Arm(uint64_t user_data) {
    EXPECT_EQ(in_flight_.count(user_data), 0u) << user_data;
    io_uring_sqe* sqe = Sqe();
    if (sqe == nullptr) return;
    if (user_data == kAcceptUserData) {
      io_uring_prep_accept(sqe, listener_, nullptr, nullptr, SOCK_CLOEXEC);
      ++armed_accepts_;
    } else if (user_data == kTimeoutUserData) {
      io_uring_prep_timeout(sqe, &timeout_, 0, 0);
      ++armed_timeouts_;
    } else {
      Client& c = clients_[user_data_to_client_.at(user_data)];
      const size_t left = c.check.expected - c.check.received;
      io_uring_prep_recv(sqe, c.fd, c.buf.data(), std::min(left, c.buf.size()),
                         0);
      ++armed_recvs_;
    }
    io_uring_sqe_set_data64(sqe, user_data);
    in_flight_.insert(user_data);
  }

  // The test's own handler: every completion of its own exactly once.
  void OnOwnCompletion(const io_uring_cqe& cqe) {
    const uint64_t ud = cqe.user_data;
    if (executor_->Owns(ud) || in_flight_.erase(ud) != 1) {
      ADD_FAILURE() << "completion " << ud << " (res " << cqe.res
                    << ") reached the test's handler and is not one of its "
                       "ops in flight";
      ++misrouted_;
      return;
    }
    if (ud == kAcceptUserData) {
      ++accepts_;
      if (cqe.res < 0) {
        ADD_FAILURE() << "accept: " << std::strerror(-cqe.res);
        return;
      }
      OnAccepted(cqe.res);
      if (accepted_ < kClients) Arm(kAcceptUserData);
    } else if (ud == kTimeoutUserData) {
      ++timeouts_;
      EXPECT_EQ(cqe.res, -ETIME);
      if (!stop_timeouts_) Arm(kTimeoutUserData);
    } else {
      ++recvs_;
      Client& c = clients_[user_data_to_client_.at(ud)];
      if (cqe.res > 0) {
        c.check.Feed(c.buf.data(), static_cast<size_t>(cqe.res));
      } else if (cqe.res == 0) {
        c.check.eof = true;
      } else {
        c.check.error = -cqe.res;
      }
      if (!c.check.Finished()) Arm(ud);
    }
  }

  void OnAccepted(int fd) {
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    ASSERT_EQ(getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len), 0);
    Client* client = nullptr;
    for (Client& c : clients_) {
      if (c.port == ntohs(peer.sin_port)) client = &c;
    }
    ASSERT_NE(client, nullptr);
    client->server_fd = fd;
    ++accepted_;
    if (enqueue_on_accept_) AttachAndEnqueue(*client);
  }

  void AttachAndEnqueue(Client& c) {
    ConnectionOptions o;
    o.plan.zc_threshold = 16 * K;
    o.plan.copy_op =
        (c.stream->id() % 2 == 0) ? CopyOp::kWritev : CopyOp::kSendmsg;
    o.adaptive_zero_copy = false;  // loopback copies; keep zero-copy on
    absl::StatusOr<ConnectionId> id = executor_->Attach(c.server_fd, o);
    ASSERT_TRUE(id.ok()) << id.status();
    c.id = *id;
    c.attached = true;
    if (use_messages_) {
      EnqueueWithMessages(c);
      return;
    }
    while (!c.stream->done()) {
      ASSERT_TRUE(c.stream->EnqueueNext(*executor_, ledger_, c.id).ok());
    }
  }

  // All of the client's stream in units: a plain buffer, or a run of 2..5
  // consecutive buffers as one prepared message, in a fixed cycle.
  void EnqueueWithMessages(Client& c) {
    static constexpr size_t kRuns[] = {1, 3, 1, 2, 5, 1, 4, 2};
    const Stream& stream = *c.stream;
    size_t offset = 0;
    for (size_t i = 0; i < stream.count(); ++c.units) {
      const size_t run =
          std::min(kRuns[(c.units + stream.id()) % 8], stream.count() - i);
      unsigned char* base = stream.data() + offset;
      size_t bytes = 0;
      if (run == 1) {
        bytes = stream.size(i);
        const uint64_t t = ledger_.Expect(c.id, base, bytes);
        ASSERT_TRUE(executor_->Enqueue(c.id, base, bytes, t).ok());
      } else {
        std::vector<iovec> iovs;
        for (size_t k = 0; k < run; ++k) {
          iovs.push_back({base + bytes, stream.size(i + k)});
          bytes += stream.size(i + k);
        }
        absl::StatusOr<std::shared_ptr<const PreparedMessage>> m =
            PreparedMessage::Create(iovs);
        ASSERT_TRUE(m.ok()) << m.status();
        const uint64_t t = ledger_.Expect(c.id, base, bytes);
        ASSERT_TRUE(executor_->EnqueueMessage(c.id, *m, t).ok());
        c.messages.push_back(*std::move(m));
      }
      i += run;
      offset += bytes;
    }
  }

  // One round of the server's loop: the executor's SQEs onto the ring,
  // submit and wait (bounded), then dispatch a batch with Owns.
  void Round(Submit submit) {
    absl::Status s =
        submit == Submit::kFlush ? executor_->Flush() : executor_->Prepare();
    ASSERT_TRUE(s.ok()) << s;
    __kernel_timespec ts{};
    ts.tv_nsec = 50 * 1000 * 1000;
    io_uring_cqe* first = nullptr;
    const int r =
        io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
    ASSERT_TRUE(r >= 0 || r == -ETIME || r == -EINTR) << std::strerror(-r);
    io_uring_cqe* batch[128];
    const unsigned n = io_uring_peek_batch_cqe(&ring_, batch, 128);
    for (unsigned i = 0; i < n; ++i) {
      if (executor_->Owns(batch[i]->user_data)) {
        EXPECT_EQ(in_flight_.count(batch[i]->user_data), 0u);
        EXPECT_TRUE(executor_->HandleCompletion(*batch[i]));
        ++executor_cqes_;
      } else {
        OnOwnCompletion(*batch[i]);
      }
    }
    io_uring_cq_advance(&ring_, n);
  }

  bool AllReceived() const {
    for (const Client& c : clients_) {
      if (!c.check.Finished()) return false;
    }
    return true;
  }

  // Runs rounds until `done` or the deadline (a failure).
  template <typename Done>
  void RunUntil(Submit submit, Done done, const char* what) {
    const absl::Time deadline = absl::Now() + kDeadline;
    while (!done()) {
      ASSERT_LT(absl::Now(), deadline)
          << "stuck waiting for " << what << ": "
          << FormatStats(executor_->stats().totals);
      Round(submit);
      if (HasFatalFailure()) return;
    }
  }

  // Arms the accept, the timeout and every client's recv.
  void ArmAll() {
    Arm(kAcceptUserData);
    Arm(kTimeoutUserData);
    for (Client& c : clients_) Arm(c.user_data);
  }

  // Closes every connection, stops the timeouts and runs the loop until the
  // executor is idle and none of the test's ops is in flight.
  void EndCleanly(Submit submit) {
    for (Client& c : clients_) {
      if (c.attached) {
        EXPECT_TRUE(executor_->Close(c.id).ok());
      }
    }
    stop_timeouts_ = true;
    RunUntil(
        submit, [this] { return executor_->Idle() && in_flight_.empty(); },
        "the executor to go idle and the test's ops to complete");
  }

  // Before Close: a closed connection's stats go once it is idle.
  void CheckConnectionStats() {
    for (const Client& c : clients_) {
      absl::StatusOr<SendStats> s = executor_->connection_stats(c.id);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->bytes_copied + s->bytes_zero_copy, c.stream->total())
          << FormatStats(*s);
      EXPECT_EQ(s->buffers_released,
                use_messages_ ? c.units : c.stream->count())
          << FormatStats(*s);
      EXPECT_EQ(s->buffers_enqueued, s->buffers_released) << FormatStats(*s);
      EXPECT_EQ(s->buffers_released_failed, 0u) << FormatStats(*s);
    }
  }

  void CheckEverything() {
    for (const Client& c : clients_) {
      EXPECT_EQ(c.check.received, c.stream->total()) << c.check.Describe();
      EXPECT_EQ(c.check.first_mismatch, -1) << c.check.Describe();
      EXPECT_FALSE(c.check.eof) << c.check.Describe();
      EXPECT_EQ(c.check.error, 0) << c.check.Describe();
    }
    EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
        << ledger_.CheckAllReleasedOnce();
    EXPECT_EQ(misrouted_, 0u);
    // Each of the test's SQEs completed exactly once, in its handler.
    EXPECT_TRUE(in_flight_.empty());
    EXPECT_EQ(accepts_, armed_accepts_);
    EXPECT_EQ(accepts_, static_cast<uint64_t>(kClients));
    EXPECT_EQ(recvs_, armed_recvs_);
    EXPECT_EQ(timeouts_, armed_timeouts_);
    EXPECT_GE(timeouts_, 1u);
    const RingStats rs = executor_->stats();
    EXPECT_EQ(rs.completions, executor_cqes_ + drain_handled_);
    const SendStats& t = rs.totals;
    EXPECT_GT(t.ops[static_cast<int>(OpKind::kWritev)], 0u) << FormatStats(t);
    EXPECT_GT(t.ops[static_cast<int>(OpKind::kSendmsg)], 0u) << FormatStats(t);
    if (executor_->features().send_zc &&
        executor_->max_bytes_awaiting_notification() > 0) {
      EXPECT_GT(t.ops[static_cast<int>(OpKind::kSendZc)], 0u) << FormatStats(t);
      if (executor_->features().sendmsg_zc) {
        EXPECT_GT(t.ops[static_cast<int>(OpKind::kSendmsgZc)], 0u)
            << FormatStats(t);
      }
    }
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  int listener_ = -1;
  __kernel_timespec timeout_{0, 2 * 1000 * 1000};
  // Destroyed after the executor (declared before it).
  TokenLedger ledger_;
  std::vector<Client> clients_;
  std::map<uint64_t, int> user_data_to_client_;
  std::unique_ptr<Executor> executor_;

  std::set<uint64_t> in_flight_;  // the test's own ops
  bool enqueue_on_accept_ = true;
  bool use_messages_ = false;  // enqueue runs of buffers as prepared messages
  bool stop_timeouts_ = false;
  int accepted_ = 0;
  uint64_t armed_accepts_ = 0, armed_recvs_ = 0, armed_timeouts_ = 0;
  uint64_t accepts_ = 0, recvs_ = 0, timeouts_ = 0;
  uint64_t misrouted_ = 0;
  uint64_t executor_cqes_ = 0;      // handed to HandleCompletion by the loop
  uint64_t drain_handled_ = 0;      // handled inside Drain
  uint64_t foreign_delivered_ = 0;  // by on_foreign_completion
};

class SharedRingServerTest
    : public SharedRingTest,
      public testing::WithParamInterface<std::tuple<bool, Submit>> {};

TEST_P(SharedRingServerTest, OwnOpsAndExecutorSendsShareTheRingExactly) {
  const auto [defer_taskrun, submit] = GetParam();
  SetUpServer(defer_taskrun);
  if (IsSkipped() || HasFatalFailure()) return;
  ArmAll();
  RunUntil(
      submit, [this] { return accepted_ == kClients && AllReceived(); },
      "every stream");
  if (HasFatalFailure()) return;
  CheckConnectionStats();
  EndCleanly(submit);
  if (HasFatalFailure()) return;
  CheckEverything();
  EXPECT_GT(executor_cqes_, 0u);
}

// The same server, its streams enqueued partly as prepared messages (runs of
// buffers, each one message and one token): SQEs that point into the
// messages' own iovecs, on the caller's ring.
TEST_P(SharedRingServerTest, PreparedMessagesShareTheRingExactly) {
  const auto [defer_taskrun, submit] = GetParam();
  use_messages_ = true;
  SetUpServer(defer_taskrun);
  if (IsSkipped() || HasFatalFailure()) return;
  ArmAll();
  RunUntil(
      submit, [this] { return accepted_ == kClients && AllReceived(); },
      "every stream");
  if (HasFatalFailure()) return;
  CheckConnectionStats();
  EndCleanly(submit);
  if (HasFatalFailure()) return;
  CheckEverything();
  size_t messages = 0;
  for (const Client& c : clients_) {
    EXPECT_LT(c.units, c.stream->count());
    for (const auto& m : c.messages) {
      EXPECT_EQ(m.use_count(), 1) << "the executor let go of it";
      ++messages;
    }
  }
  EXPECT_GT(messages, size_t{kClients});
}

INSTANTIATE_TEST_SUITE_P(
    Rings, SharedRingServerTest,
    testing::Combine(testing::Bool(),
                     testing::Values(Submit::kFlush, Submit::kPrepareOnly)),
    [](const testing::TestParamInfo<std::tuple<bool, Submit>>& info) {
      return absl::StrCat(std::get<0>(info.param) ? "DeferTaskrun" : "Plain",
                          std::get<1>(info.param) == Submit::kFlush
                              ? "Flush"
                              : "PrepareThenCallerSubmits");
    });

// Drain reaps the shared ring: the test's recv and timeout completions reach
// it through on_foreign_completion (which re-arms them), each exactly once,
// while the executor's go to the executor.
class SharedRingDrainTest : public SharedRingTest,
                            public testing::WithParamInterface<bool> {};

TEST_P(SharedRingDrainTest, DrainHandsEveryForeignCompletionToTheCallback) {
  SetUpServer(GetParam(), /*reap_foreign=*/true);
  if (IsSkipped() || HasFatalFailure()) return;
  // Accept first, in the test's loop (Attach is not for the callback).
  enqueue_on_accept_ = false;
  Arm(kAcceptUserData);
  Arm(kTimeoutUserData);
  RunUntil(
      Submit::kFlush, [this] { return accepted_ == kClients; }, "the accepts");
  if (HasFatalFailure()) return;
  for (Client& c : clients_) {
    AttachAndEnqueue(c);
    Arm(c.user_data);
  }
  if (HasFatalFailure()) return;
  const uint64_t own_before = recvs_ + timeouts_;
  const uint64_t handled_before = executor_->stats().completions;
  absl::Status drained = executor_->Drain(kDeadline);
  ASSERT_TRUE(drained.ok()) << drained;
  drain_handled_ = executor_->stats().completions - handled_before;
  EXPECT_GT(drain_handled_, 0u);
  // What Drain reaped of the test's went through the callback, once each
  // (OnOwnCompletion fails on a second delivery or an unknown one).
  EXPECT_EQ(foreign_delivered_, recvs_ + timeouts_ - own_before);
  EXPECT_GT(foreign_delivered_, 0u);
  RunUntil(
      Submit::kFlush, [this] { return AllReceived(); }, "every stream");
  if (HasFatalFailure()) return;
  CheckConnectionStats();
  EndCleanly(Submit::kFlush);
  if (HasFatalFailure()) return;
  CheckEverything();
}

INSTANTIATE_TEST_SUITE_P(Rings, SharedRingDrainTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "DeferTaskrun" : "Plain";
                         });

// A server reads and writes the same socket: its own recv waits on the
// connection the executor sends on. Closing the executor's connection must
// cancel the executor's ops only; a cancel by fd (IORING_ASYNC_CANCEL_FD |
// _ALL) also ends the caller's recv with -ECANCELED.
TEST(SharedRingCancelTest, CloseLeavesTheCallersRecvOnTheSameSocket) {
  signal(SIGPIPE, SIG_IGN);
  io_uring ring;
  const int r = io_uring_queue_init(64, &ring, 0);
  if (r < 0) {
    GTEST_SKIP() << IoUringSkipReason(absl::InternalError(
        absl::StrCat("io_uring_queue_init: ", std::strerror(-r))));
  }
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  TokenLedger ledger;
  ExecutorOptions eo;
  eo.user_data_tag = kTag;
  eo.on_release = ledger.callback();
  eo.teardown_timeout = absl::Milliseconds(10);
  absl::StatusOr<std::unique_ptr<Executor>> made =
      Executor::CreateOnRing(&ring, std::move(eo));
  ASSERT_TRUE(made.ok()) << made.status();
  std::unique_ptr<Executor> executor = *std::move(made);
  if (!executor->features().async_cancel_fd) {
    executor.reset();
    io_uring_queue_exit(&ring);
    GTEST_SKIP() << "kernel " << KernelRelease() << " cancels op by op";
  }
  ConnectionOptions o;
  o.plan.zc_threshold = 0;
  o.adaptive_zero_copy = false;
  absl::StatusOr<ConnectionId> id = executor->Attach(pair->client, o);
  ASSERT_TRUE(id.ok()) << id.status();

  // The caller's recv on the executor's socket: the peer sends nothing yet.
  constexpr uint64_t kRecv = 7;
  char recv_buf[64];
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_recv(sqe, pair->client, recv_buf, sizeof(recv_buf), 0);
  io_uring_sqe_set_data64(sqe, kRecv);
  // A zero-copy send whose notification waits for the peer to read (on
  // loopback the data sits in the peer's receive queue).
  Stream stream(1, {256 * K});
  ASSERT_TRUE(stream.EnqueueNext(*executor, ledger, *id).ok());
  ASSERT_TRUE(executor->Flush().ok());

  int recv_res = 1;
  bool recv_done = false;
  bool closed = false;
  const absl::Time deadline = absl::Now() + kDeadline;
  // The caller's loop, one round: submit, wait a little, dispatch.
  auto round = [&] {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, 20 * 1000 * 1000};
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
    while (io_uring_peek_cqe(&ring, &cqe) == 0) {
      const io_uring_cqe copy = *cqe;
      io_uring_cqe_seen(&ring, cqe);
      if (executor->Owns(copy.user_data)) {
        executor->HandleCompletion(copy);
      } else if (copy.user_data == kRecv) {
        recv_done = true;
        recv_res = copy.res;
      }
    }
  };
  while (absl::Now() < deadline) {
    round();
    if (!closed && executor->stats().completions > 0) {
      // The send completed; its notification (and the buffer) still wait.
      ASSERT_FALSE(executor->Idle(*id));
      ASSERT_TRUE(executor->Close(*id).ok());
      closed = true;
    } else if (closed) {
      break;  // one more round after the cancel went with the submit
    }
  }
  ASSERT_TRUE(closed);
  EXPECT_FALSE(recv_done && recv_res == -ECANCELED)
      << "the executor's Close cancelled the caller's recv on fd "
      << pair->client;
  // Let the peer read (the notification comes) and answer (the recv ends).
  std::vector<char> sink(256 * K);
  size_t got = 0;
  while (got < 256 * K) {
    const ssize_t n = read(pair->server, sink.data(), sink.size());
    ASSERT_GT(n, 0);
    got += static_cast<size_t>(n);
  }
  ASSERT_EQ(write(pair->server, "x", 1), 1);
  while (absl::Now() < deadline && !(executor->Idle() && recv_done)) round();
  EXPECT_TRUE(executor->Idle());
  EXPECT_TRUE(recv_done);
  EXPECT_EQ(recv_res, 1);
  EXPECT_TRUE(ledger.CheckAllReleasedOnce().ok())
      << ledger.CheckAllReleasedOnce();
  executor.reset();
  io_uring_queue_exit(&ring);
}

}  // namespace
}  // namespace zcplan
