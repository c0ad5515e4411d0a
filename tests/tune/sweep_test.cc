// SPDX-License-Identifier: Apache-2.0
// Tests of the sweep engine (tune/sweep.h): option checks, and short real
// sweeps over loopback (they skip with the reason where io_uring is
// unavailable).

#include "zcplan/tune/sweep.h"

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/silent_peer.h"
#include "zcplan/tests/uring/test_util.h"

namespace zcplan {
namespace {

SweepSetting Setting(uint64_t threshold, bool adaptive = false) {
  SweepSetting s;
  s.plan.zc_threshold = threshold;
  s.adaptive = adaptive;
  return s;
}

TEST(RunSweepTest, RejectsBadOptionsNamingThem) {
  SweepOptions o;
  EXPECT_TRUE(absl::StrContains(RunSweep(o).status().message(), "no message"));
  o.messages = {{4096, 0}};
  o.settings = {Setting(16384)};
  EXPECT_TRUE(
      absl::StrContains(RunSweep(o).status().message(), "buffer of 0 bytes"));
  o.messages = {{4096}};
  o.settings[0].plan.max_iovs_per_op = 0;
  const absl::Status bad = RunSweep(o).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.message(), "threshold 16K")) << bad;
  o.settings[0].plan.max_iovs_per_op = 1024;
  o.repetitions = 0;
  EXPECT_TRUE(absl::StrContains(RunSweep(o).status().message(), "repetitions"));
  o.repetitions = 1;
  o.messages_in_flight = 0;
  EXPECT_TRUE(
      absl::StrContains(RunSweep(o).status().message(), "messages_in_flight"));
  o.messages_in_flight = 1;
  o.idle_timeout = absl::Seconds(-1);
  EXPECT_TRUE(
      absl::StrContains(RunSweep(o).status().message(), "idle_timeout"));
}

TEST(SweepBufferBytesTest, CountsPagesPerPieceGapsAndAlignmentPerSlot) {
  SweepOptions o;
  o.settings = {Setting(16384)};
  o.messages = {{1}};
  EXPECT_EQ(SweepBufferBytes(o), 3u * 4096);  // alignment, piece, gap
  o.messages = {{4096, 4097}, {1}};
  EXPECT_EQ(SweepBufferBytes(o), (1 + 2 + 3) * 4096u + 3 * 4096u);
  o.messages_in_flight = 1024;
  EXPECT_EQ(SweepBufferBytes(o), 1024 * 9 * 4096u);
  o.messages = {std::vector<uint64_t>(2000, uint64_t{1} << 30)};
  o.messages_in_flight = 1024;
  EXPECT_GT(SweepBufferBytes(o), uint64_t{1} << 50);  // no wrap-around
}

// Workloads whose buffers would not fit in memory (they once ran the machine
// out of it) are refused before anything is allocated, naming the figure.
TEST(RunSweepTest, RefusesBuffersAboveTheLimit) {
  SweepOptions o;
  o.settings = {Setting(16384)};
  // 50,000 one-byte buffers take 8 KB each: 410 MB for one message...
  o.messages = {std::vector<uint64_t>(50000, 1)};
  EXPECT_TRUE(ValidateSweepOptions(o).ok());
  // ... and 2 GB for five.
  o.messages.assign(5, std::vector<uint64_t>(50000, 1));
  absl::Status s = ValidateSweepOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "2048020480 bytes (1.9 GiB)"))
      << s;
  EXPECT_TRUE(
      absl::StrContains(s.message(), "above the limit of 1073741824 bytes"))
      << s;
  // One 1G piece fits the piece limit, not the memory limit.
  o.messages = {{uint64_t{1} << 30}};
  EXPECT_FALSE(ValidateSweepOptions(o).ok());
  o.messages = {{uint64_t{256} << 20}};
  o.messages_in_flight = 4;
  s = RunSweep(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "4 message(s) in flight")) << s;
}

#define SKIP_IF_NO_IO_URING(status)                                      \
  do {                                                                   \
    if (absl::StrContains((status).message(), "io_uring unavailable")) { \
      GTEST_SKIP() << (status);                                          \
    }                                                                    \
  } while (0)

TEST(SweepTest, StartConnectsBeforeRunning) {
  SilentPeer listener;
  ASSERT_FALSE(listener.address().empty());
  SweepOptions o;
  o.messages = {{4096}};
  o.settings = {Setting(16384)};
  o.peer = listener.address();
  absl::StatusOr<std::unique_ptr<Sweep>> sweep = Sweep::Start(o);
  if (!sweep.ok()) SKIP_IF_NO_IO_URING(sweep.status());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_GE(listener.AcceptNow(), 0) << "no connection before Run";
  EXPECT_EQ((*sweep)->destination(), listener.address());
  EXPECT_EQ((*sweep)->runs_done(), 0u);
  EXPECT_EQ((*sweep)->runs_total(), 3u);

  o.peer.clear();
  sweep = Sweep::Start(o);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_TRUE(absl::StartsWith((*sweep)->destination(),
                               "the receiver thread on 127.0.0.1:"))
      << (*sweep)->destination();
}

TEST(SweepTest, IdlePeerEndsTheSweepAndIsReset) {
  SilentPeer listener;
  ASSERT_FALSE(listener.address().empty());
  SweepOptions o;
  // More than the socket buffers on both ends hold, so the sends stall.
  o.messages = {{1 << 20}};
  o.settings = {Setting(0)};
  o.repetitions = 1;
  o.run_time = absl::Seconds(30);
  o.idle_timeout = absl::Milliseconds(300);
  o.peer = listener.address();
  absl::StatusOr<std::unique_ptr<Sweep>> sweep = Sweep::Start(o);
  if (!sweep.ok()) SKIP_IF_NO_IO_URING(sweep.status());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_GE(listener.AcceptNow(), 0);
  const absl::Status s = (*sweep)->Run();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "no progress for 300ms")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), listener.address())) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), " bytes outstanding")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "threshold 0, writev")) << s;
  EXPECT_EQ(std::string(s.message()).find('\n'), std::string::npos);
  EXPECT_EQ((*sweep)->runs_done(), 0u);
  // Ending the sweep resets the stalled connection (which makes the kernel
  // drop the zero-copy buffers it holds) rather than leaving it to drain.
  sweep->reset();
  EXPECT_EQ(listener.DrainAccepted(), ECONNRESET);
}

TEST(SweepTest, StopDuringBufferPreparationEndsStart) {
  SweepOptions o;
  o.messages = {{4096}, {65536}};
  o.settings = {Setting(0)};
  o.messages_in_flight = 8;
  int asked = 0;
  o.should_stop = [&] { return ++asked > 0; };
  const absl::StatusOr<std::unique_ptr<Sweep>> sweep = Sweep::Start(o);
  ASSERT_FALSE(sweep.ok());
  SKIP_IF_NO_IO_URING(sweep.status());
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kCancelled)
      << sweep.status();
  EXPECT_EQ(asked, 1) << "stops at the first check";
}

TEST(SweepTest, StopKeepsTheRunsDone) {
  SweepOptions o;
  o.messages = {{4096, 65536}};
  o.settings = {Setting(0), Setting(16384), Setting(PlanOptions::kNever)};
  o.repetitions = 2;
  o.run_time = absl::Milliseconds(20);
  size_t progress_calls = 0;
  o.should_stop = [&] { return progress_calls > 0; };
  absl::StatusOr<std::unique_ptr<Sweep>> sweep = Sweep::Start(o);
  if (!sweep.ok()) SKIP_IF_NO_IO_URING(sweep.status());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  const absl::Status s = (*sweep)->Run(
      [&](size_t, size_t, const SweepPoint&) { ++progress_calls; });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(progress_calls, 1u);
  EXPECT_EQ((*sweep)->runs_done(), 1u);
  const std::vector<SweepPoint>& points = (*sweep)->points();
  ASSERT_EQ(points.size(), 3u);
  ASSERT_EQ(points[0].runs.size(), 1u);
  EXPECT_GT(points[0].runs[0].messages, 0u);
  EXPECT_TRUE(points[1].runs.empty());
  EXPECT_TRUE(points[2].runs.empty());
}

TEST(RunSweepTest, MeasuresEverySettingOnLoopback) {
  SweepOptions o;
  o.messages = {{4096, 4096, 16384, 32768, 2048}, {100, 200, 65536}};
  o.settings = {Setting(0), Setting(16384), Setting(PlanOptions::kNever),
                Setting(16384, /*adaptive=*/true)};
  o.repetitions = 2;
  o.run_time = absl::Milliseconds(30);
  o.messages_in_flight = 2;
  std::vector<size_t> progress;
  absl::StatusOr<std::vector<SweepPoint>> points =
      RunSweep(o, [&](size_t done, size_t total, const SweepPoint&) {
        EXPECT_EQ(total, 8u);
        progress.push_back(done);
      });
  if (!points.ok() &&
      absl::StrContains(points.status().message(), "io_uring unavailable")) {
    GTEST_SKIP() << points.status();
  }
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_EQ(progress, (std::vector<size_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_EQ(points->size(), 4u);
  for (const SweepPoint& p : *points) {
    ASSERT_EQ(p.runs.size(), 2u);
    for (const SweepRun& r : p.runs) {
      EXPECT_GT(r.messages, 0u);
      EXPECT_GT(r.seconds, 0);
      // Every byte of every counted message went out exactly once, by one
      // kind of op or the other.
      EXPECT_EQ(r.stats.bytes_copied + r.stats.bytes_zero_copy, r.bytes);
      EXPECT_EQ(r.stats.buffers_released_failed, 0u);
    }
  }
  const SweepRun& all_zc = (*points)[0].runs[0];
  EXPECT_EQ(all_zc.stats.bytes_copied, 0u);
  const SweepRun& never = (*points)[2].runs[0];
  EXPECT_EQ(never.stats.bytes_zero_copy, 0u);
  EXPECT_EQ(never.stats.notifications, 0u);
  // Loopback copies: every notification says so.
  EXPECT_GT((*points)[1].runs[0].stats.notifications, 0u);
  EXPECT_EQ((*points)[1].runs[0].stats.copied_notifications,
            (*points)[1].runs[0].stats.notifications);
}

TEST(RunSweepTest, UnreachablePeerIsUnavailable) {
  SweepOptions o;
  o.messages = {{4096}};
  o.settings = {Setting(16384)};
  absl::StatusOr<uint16_t> closed = ClosedLoopbackPort();
  ASSERT_TRUE(closed.ok()) << closed.status();
  o.peer = absl::StrCat("127.0.0.1:", *closed);
  const absl::Status s = RunSweep(o).status();
  if (absl::StrContains(s.message(), "io_uring unavailable")) {
    GTEST_SKIP() << s;
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), o.peer)) << s;
}

}  // namespace
}  // namespace zcplan
