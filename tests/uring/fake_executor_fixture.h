// SPDX-License-Identifier: Apache-2.0
// The fixture the fake-ring executor tests share: an executor over a
// FakeRing (fake_ring.h) whose releases go to a TokenLedger, connections on
// real loopback sockets whose numbers the fake uses, and the checks every
// such test makes (what each fake socket received, every buffer released
// once, no violation seen by the fake). A test suite derives from it and
// adds how it fills and enqueues buffers.
//
// Thread safety: as a gtest fixture, used from the test's thread only.

#ifndef ZCPLAN_TESTS_URING_FAKE_EXECUTOR_FIXTURE_H_
#define ZCPLAN_TESTS_URING_FAKE_EXECUTOR_FIXTURE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/fake_ring.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"

namespace zcplan {

class FakeExecutorFixture : public testing::Test {
 protected:
  // Makes `executor_` over a new `ring_` from `options` as given (the
  // caller sets where releases go, usually into `ledger_`), with a teardown
  // timeout of 1 ms. Fails the test (fatally, in this call) if it cannot.
  void MakeExecutor(FakeRingOptions ring_options, ExecutorOptions options);

  // Zero-copy from `threshold`, copies by `copy_op`, no adaptive detection.
  static ConnectionOptions Options(uint64_t threshold = 16 * 1024,
                                   CopyOp copy_op = CopyOp::kWritev);

  // Attaches a real connected loopback socket (the executor checks it is
  // TCP); the fake never touches it, it only uses the number. Notifications
  // on it report zero-copy unless a test says otherwise (a real NIC).
  ConnectionId Attach(const ConnectionOptions& options = Options());

  int Fd(ConnectionId id) const { return fds_.at(id.value); }

  // Polls (without blocking: the fake never waits) until every connection is
  // idle or `rounds` polls have run.
  void Pump(int rounds = 1000);

  bool AllIdle() const { return ConnectionsIdle(*executor_, fds_); }

  // The fake socket of `id` received exactly `expected_[id]`.
  void ExpectExact(ConnectionId id);
  // A failed connection: what arrived is a prefix of what was enqueued.
  void ExpectPrefix(ConnectionId id);

  // One round of a caller that runs the ring itself: `Prepare` (failing
  // fatally, in this call, if it fails), the caller's submit, and every
  // completion reaped handed to `HandleCompletion`, which must take it.
  void CallerRound();

  int Releases(uint64_t token) const { return ledger_.Find(token)->releases; }

  // The fake outlives the executor, so this works after teardown too.
  void CheckNoViolations() const;

  // Destroys the executor (which releases whatever it still holds), then
  // checks every buffer was released exactly once.
  void TearDown() override;

  TokenLedger ledger_;
  std::unique_ptr<FakeRing> owned_ring_;  // outlives executor_
  FakeRing* ring_ = nullptr;
  std::unique_ptr<Executor> executor_;
  std::vector<TcpPair> pairs_;
  std::map<uint64_t, int> fds_;               // by connection id value
  std::map<uint64_t, std::string> expected_;  // by connection id value
};

}  // namespace zcplan

#endif  // ZCPLAN_TESTS_URING_FAKE_EXECUTOR_FIXTURE_H_
