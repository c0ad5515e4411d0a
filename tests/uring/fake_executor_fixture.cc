// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/uring/fake_executor_fixture.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace zcplan {

void FakeExecutorFixture::MakeExecutor(FakeRingOptions ring_options,
                                       ExecutorOptions options) {
  owned_ring_ = std::make_unique<FakeRing>(ring_options);
  ring_ = owned_ring_.get();
  options.teardown_timeout = absl::Milliseconds(1);
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::CreateWithRing(
      std::make_unique<BorrowedRing>(ring_), std::move(options));
  ASSERT_TRUE(executor.ok()) << executor.status();
  executor_ = *std::move(executor);
}

ConnectionOptions FakeExecutorFixture::Options(uint64_t threshold,
                                               CopyOp copy_op) {
  ConnectionOptions o;
  o.plan.zc_threshold = threshold;
  o.plan.copy_op = copy_op;
  o.adaptive_zero_copy = false;
  return o;
}

ConnectionId FakeExecutorFixture::Attach(const ConnectionOptions& options) {
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  EXPECT_TRUE(pair.ok()) << pair.status();
  const int fd = pair->client;
  pairs_.push_back(*std::move(pair));
  absl::StatusOr<ConnectionId> id = executor_->Attach(fd, options);
  EXPECT_TRUE(id.ok()) << id.status();
  ring_->SetCopied(fd, false);
  fds_[id->value] = fd;
  return *id;
}

void FakeExecutorFixture::Pump(int rounds) {
  const absl::Status s = PollUntilIdle(*executor_, fds_, rounds);
  ASSERT_TRUE(s.ok()) << s;
}

void FakeExecutorFixture::CallerRound() {
  ASSERT_TRUE(executor_->Prepare().ok());
  ring_->SubmitAndWait(0, 0);
  Completion batch[64];
  const size_t n = ring_->Reap(absl::MakeSpan(batch, 64));
  for (size_t i = 0; i < n; ++i) {
    EXPECT_TRUE(executor_->HandleCompletion(ToCqe(batch[i])));
  }
}

void FakeExecutorFixture::ExpectExact(ConnectionId id) {
  EXPECT_EQ(
      StreamDifference(id.value, ring_->received(Fd(id)), expected_[id.value]),
      "");
}

void FakeExecutorFixture::ExpectPrefix(ConnectionId id) {
  EXPECT_EQ(StreamPrefixDifference(id.value, ring_->received(Fd(id)),
                                   expected_[id.value]),
            "");
}

void FakeExecutorFixture::CheckNoViolations() const {
  for (const std::string& v : ring_->violations()) ADD_FAILURE() << v;
}

void FakeExecutorFixture::TearDown() {
  if (executor_ == nullptr) return;
  executor_.reset();  // releases whatever is still held
  EXPECT_TRUE(ledger_.CheckAllReleasedOnce().ok())
      << ledger_.CheckAllReleasedOnce();
}

}  // namespace zcplan
