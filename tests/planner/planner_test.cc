// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/planner.h"

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/tests/planner/plan_invariants.h"

namespace zcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t K = 1024;

// Iovecs of the given lengths at distinct made-up addresses (never read).
std::vector<struct iovec> Queue(std::vector<uint64_t> sizes) {
  std::vector<struct iovec> q;
  uintptr_t next = 1 << 20;
  for (uint64_t s : sizes) {
    q.push_back({reinterpret_cast<void*>(next), s});
    next += s + 4096;
  }
  return q;
}

PlanOptions Threshold(uint64_t t) {
  PlanOptions o;
  o.zc_threshold = t;
  return o;
}

Plan MustPlan(const std::vector<struct iovec>& q, uint64_t offset,
              const PlanOptions& options) {
  absl::StatusOr<Plan> plan = PlanChain(q, offset, options);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return Plan();
  EXPECT_TRUE(testing::CheckPlan(q, offset, options, *plan).ok())
      << testing::CheckPlan(q, offset, options, *plan);
  return *std::move(plan);
}

Op MakeOp(OpKind kind, bool linked, uint32_t first, uint32_t count,
          uint64_t offset, uint64_t bytes) {
  return Op{kind, linked, first, count, offset, bytes};
}

std::string Describe(const Op& op) {
  return absl::StrCat(OpKindName(op.kind), "(", op.first_iov, "+", op.iov_count,
                      "@", op.offset, ",", op.bytes, op.linked ? ",linked" : "",
                      ")");
}

}  // namespace

// Lets gtest print Ops in failure messages.
void PrintTo(const Op& op, std::ostream* os) { *os << Describe(op); }

namespace {

TEST(PlannerTest, SeedExampleSplitsBySizeInOrder) {
  const auto q = Queue({4 * K, 4 * K, 16 * K, 32 * K, 2 * K});
  const Plan plan = MustPlan(q, 0, Threshold(16 * K));
  EXPECT_THAT(plan.ops(),
              ElementsAre(MakeOp(OpKind::kWritev, true, 0, 2, 0, 8 * K),
                          MakeOp(OpKind::kSendmsgZc, true, 2, 2, 0, 48 * K),
                          MakeOp(OpKind::kSend, false, 4, 1, 0, 2 * K)));
  EXPECT_TRUE(plan.complete());
  EXPECT_EQ(plan.bytes(), 58 * K);
  EXPECT_EQ(plan.end_iov(), 5u);
  EXPECT_EQ(plan.end_offset(), 0u);
}

TEST(PlannerTest, EmptyQueuePlansNothing) {
  const Plan plan = MustPlan({}, 0, PlanOptions());
  EXPECT_TRUE(plan.ops().empty());
  EXPECT_TRUE(plan.complete());
  EXPECT_EQ(plan.bytes(), 0u);
}

TEST(PlannerTest, CoalescesSmallIovecsIntoCopyOpOfChosenKind) {
  const auto q = Queue({100, 200, 300});
  PlanOptions o = Threshold(16 * K);
  EXPECT_THAT(MustPlan(q, 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kWritev, false, 0, 3, 0, 600)));
  o.copy_op = CopyOp::kSendmsg;
  EXPECT_THAT(MustPlan(q, 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kSendmsg, false, 0, 3, 0, 600)));
}

TEST(PlannerTest, LoneIovecsUsePlainSendForms) {
  EXPECT_THAT(MustPlan(Queue({100}), 0, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kSend, false, 0, 1, 0, 100)));
  EXPECT_THAT(MustPlan(Queue({64 * K}), 0, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kSendZc, false, 0, 1, 0, 64 * K)));
}

TEST(PlannerTest, ThresholdIsInclusive) {
  const auto q = Queue({16 * K - 1, 16 * K});
  EXPECT_THAT(MustPlan(q, 0, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kSend, true, 0, 1, 0, 16 * K - 1),
                          MakeOp(OpKind::kSendZc, false, 1, 1, 0, 16 * K)));
}

TEST(PlannerTest, ThresholdZeroSendsAllZeroCopyAndNeverSendsAllByCopy) {
  const auto q = Queue({1, 4 * K, 1024 * K});
  EXPECT_THAT(MustPlan(q, 0, Threshold(0)).ops(),
              ElementsAre(MakeOp(OpKind::kSendmsgZc, false, 0, 3, 0,
                                 1 + 4 * K + 1024 * K)));
  EXPECT_THAT(MustPlan(q, 0, Threshold(PlanOptions::kNever)).ops(),
              ElementsAre(MakeOp(OpKind::kWritev, false, 0, 3, 0,
                                 1 + 4 * K + 1024 * K)));
}

TEST(PlannerTest, ZeroLengthIovecsAreSkippedAndNeverBoundAnOp) {
  const auto q = Queue({0, 4 * K, 0, 4 * K, 0, 32 * K, 0});
  EXPECT_THAT(MustPlan(q, 0, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kWritev, true, 1, 3, 0, 8 * K),
                          MakeOp(OpKind::kSendZc, false, 5, 1, 0, 32 * K)));
  const Plan empty = MustPlan(Queue({0, 0, 0}), 0, PlanOptions());
  EXPECT_TRUE(empty.ops().empty());
  EXPECT_TRUE(empty.complete());
}

TEST(PlannerTest, ResumesMidIovecAndClassifiesByWhatRemains) {
  // 30K of the 32K buffer already left: the 2K rest is small.
  const auto q = Queue({32 * K, 4 * K, 20 * K});
  EXPECT_THAT(MustPlan(q, 30 * K, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kWritev, true, 0, 2, 30 * K, 6 * K),
                          MakeOp(OpKind::kSendZc, false, 2, 1, 0, 20 * K)));
  // 4K of it left: still large.
  EXPECT_THAT(MustPlan(q, 4 * K, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kSendZc, true, 0, 1, 4 * K, 28 * K),
                          MakeOp(OpKind::kSend, true, 1, 1, 0, 4 * K),
                          MakeOp(OpKind::kSendZc, false, 2, 1, 0, 20 * K)));
}

TEST(PlannerTest, OffsetAtEndOfFirstIovecSkipsIt) {
  const auto q = Queue({4 * K, 4 * K});
  EXPECT_THAT(MustPlan(q, 4 * K, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kSend, false, 1, 1, 0, 4 * K)));
}

TEST(PlannerTest, SplitsGroupAtIovLimitAndLoneRemainderIsPlainSend) {
  const auto q = Queue(std::vector<uint64_t>(2 * kMaxIovsPerOp + 1, 100));
  EXPECT_THAT(MustPlan(q, 0, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kWritev, true, 0, 1024, 0, 102400),
                          MakeOp(OpKind::kWritev, true, 1024, 1024, 0, 102400),
                          MakeOp(OpKind::kSend, false, 2048, 1, 0, 100)));
  PlanOptions o = Threshold(0);
  o.max_iovs_per_op = 2;
  EXPECT_THAT(MustPlan(Queue({5, 6, 7}), 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kSendmsgZc, true, 0, 2, 0, 11),
                          MakeOp(OpKind::kSendZc, false, 2, 1, 0, 7)));
}

TEST(PlannerTest, ZeroLengthIovecsCountTowardTheIovLimit) {
  PlanOptions o = Threshold(16 * K);
  o.max_iovs_per_op = 3;
  EXPECT_THAT(MustPlan(Queue({1, 0, 0, 2}), 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kSend, true, 0, 1, 0, 1),
                          MakeOp(OpKind::kSend, false, 3, 1, 0, 2)));
}

TEST(PlannerTest, SplitsAtByteLimitInsideAnIovec) {
  PlanOptions o = Threshold(16 * K);
  o.max_bytes_per_op = 10 * K;
  EXPECT_THAT(MustPlan(Queue({4 * K, 4 * K, 4 * K}), 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kWritev, true, 0, 3, 0, 10 * K),
                          MakeOp(OpKind::kSend, false, 2, 1, 2 * K, 2 * K)));
  EXPECT_THAT(MustPlan(Queue({25 * K}), 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kSendZc, true, 0, 1, 0, 10 * K),
                          MakeOp(OpKind::kSendZc, true, 0, 1, 10 * K, 10 * K),
                          MakeOp(OpKind::kSendZc, false, 0, 1, 20 * K, 5 * K)));
}

TEST(PlannerTest, ChainLimitLeavesTheRestForTheNextChain) {
  const auto q = Queue({4 * K, 4 * K, 16 * K, 32 * K, 2 * K});
  PlanOptions o = Threshold(16 * K);
  o.max_ops_per_chain = 2;
  const Plan first = MustPlan(q, 0, o);
  EXPECT_THAT(first.ops(),
              ElementsAre(MakeOp(OpKind::kWritev, true, 0, 2, 0, 8 * K),
                          MakeOp(OpKind::kSendmsgZc, false, 2, 2, 0, 48 * K)));
  EXPECT_FALSE(first.complete());
  EXPECT_EQ(first.end_iov(), 4u);
  EXPECT_EQ(first.end_offset(), 0u);
  const auto rest = std::vector<struct iovec>(q.begin() + 4, q.end());
  EXPECT_THAT(MustPlan(rest, 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kSend, false, 0, 1, 0, 2 * K)));
}

TEST(PlannerTest, ChainLimitInsideAnIovecReportsTheOffset) {
  PlanOptions o = Threshold(16 * K);
  o.max_bytes_per_op = 8 * K;
  o.max_ops_per_chain = 1;
  const Plan plan = MustPlan(Queue({20 * K}), 0, o);
  EXPECT_FALSE(plan.complete());
  EXPECT_EQ(plan.end_iov(), 0u);
  EXPECT_EQ(plan.end_offset(), 8 * K);
}

TEST(PlannerTest, GapKnobIsOffByDefault) {
  const auto q = Queue({64 * K, 8, 64 * K});
  EXPECT_THAT(MustPlan(q, 0, Threshold(16 * K)).ops(),
              ElementsAre(MakeOp(OpKind::kSendZc, true, 0, 1, 0, 64 * K),
                          MakeOp(OpKind::kSend, true, 1, 1, 0, 8),
                          MakeOp(OpKind::kSendZc, false, 2, 1, 0, 64 * K)));
}

TEST(PlannerTest, GapKnobJoinsSandwichedSmallRunsWithinTheLimit) {
  PlanOptions o = Threshold(16 * K);
  o.zc_gap_bytes = 10;
  EXPECT_THAT(
      MustPlan(Queue({64 * K, 8, 2, 64 * K, 4, 64 * K}), 0, o).ops(),
      ElementsAre(MakeOp(OpKind::kSendmsgZc, false, 0, 6, 0, 192 * K + 14)));
  // 11 bytes between the two: over the limit, three ops.
  EXPECT_EQ(MustPlan(Queue({64 * K, 8, 3, 64 * K}), 0, o).ops().size(), 3u);
}

TEST(PlannerTest, GapKnobLeavesLeadingAndTrailingSmallIovecsAlone) {
  PlanOptions o = Threshold(16 * K);
  o.zc_gap_bytes = 100;
  EXPECT_THAT(MustPlan(Queue({8, 64 * K, 8}), 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kSend, true, 0, 1, 0, 8),
                          MakeOp(OpKind::kSendZc, true, 1, 1, 0, 64 * K),
                          MakeOp(OpKind::kSend, false, 2, 1, 0, 8)));
}

TEST(PlannerTest, ReusedPlanIsReplacedNotAppended) {
  Plan plan;
  const auto q = Queue({4 * K, 4 * K, 16 * K, 32 * K, 2 * K});
  ASSERT_TRUE(PlanChain(q, 0, Threshold(16 * K), &plan).ok());
  ASSERT_TRUE(PlanChain(Queue({1}), 0, Threshold(16 * K), &plan).ok());
  EXPECT_THAT(plan.ops(),
              ElementsAre(MakeOp(OpKind::kSend, false, 0, 1, 0, 1)));
  EXPECT_EQ(plan.bytes(), 1u);
}

TEST(PlannerTest, RejectsNullBaseWithLengthNamingTheIovec) {
  auto q = Queue({4 * K, 4 * K, 4 * K});
  q[1].iov_base = nullptr;
  Plan plan;
  ASSERT_TRUE(PlanChain(q, 0, PlanOptions(), &plan).ok() == false);
  const absl::Status s = PlanChain(q, 0, PlanOptions(), &plan);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("iovec 1 has a null base"));
  EXPECT_TRUE(plan.ops().empty());
  q[1].iov_len = 0;  // A null base with no bytes is harmless.
  EXPECT_TRUE(PlanChain(q, 0, PlanOptions(), &plan).ok());
}

TEST(PlannerTest, RejectsOffsetPastTheFirstIovec) {
  Plan plan;
  absl::Status s = PlanChain(Queue({100}), 101, PlanOptions(), &plan);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("offset 101 is past the end of iovec 0 "
                                     "(length 100)"));
  s = PlanChain({}, 1, PlanOptions(), &plan);
  EXPECT_THAT(s.message(), HasSubstr("offset 1"));
}

TEST(PlannerTest, RejectsLengthsAboveSsizeMax) {
  Plan plan;
  const absl::Status s =
      PlanChain(Queue({1, uint64_t{1} << 63}), 0, PlanOptions(), &plan);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("iovec 1 has length 9223372036854775808, "
                                     "more than SSIZE_MAX"));
}

TEST(PlannerTest, QueueLargerThan64BitsPlansOneChainAtATime) {
  // Three maximal iovecs add up to more than 2^64 bytes; a chain carries at
  // most max_ops_per_chain * max_bytes_per_op of them.
  const uint64_t kBig = (uint64_t{1} << 63) - 1;
  const std::vector<struct iovec> q(3, {reinterpret_cast<void*>(4096), kBig});
  PlanOptions o = Threshold(16 * K);
  o.max_ops_per_chain = 4;
  Plan plan;
  ASSERT_TRUE(PlanChain(q, kBig - 100, o, &plan).ok());
  EXPECT_EQ(plan.bytes(), 100 + 3 * kMaxBytesPerOp);
  EXPECT_FALSE(plan.complete());
  EXPECT_EQ(plan.end_iov(), 1u);
  EXPECT_EQ(plan.end_offset(), 3 * kMaxBytesPerOp);  // 100 B alone: small.
  EXPECT_TRUE(testing::CheckPlan(q, kBig - 100, o, plan).ok());
}

TEST(PlannerTest, OpFullAtAnIovecBoundaryEndsThere) {
  PlanOptions o = Threshold(16 * K);
  o.max_bytes_per_op = 8;
  EXPECT_THAT(MustPlan(Queue({4, 4, 4}), 0, o).ops(),
              ElementsAre(MakeOp(OpKind::kWritev, true, 0, 2, 0, 8),
                          MakeOp(OpKind::kSend, false, 2, 1, 0, 4)));
}

TEST(PlannerTest, RejectsOptionsOutOfRangeNamingFieldAndLimit) {
  struct Case {
    void (*set)(PlanOptions&);
    const char* message;
  };
  const Case cases[] = {
      {[](PlanOptions& o) { o.max_iovs_per_op = 0; },
       "max_iovs_per_op is 0; it must be in 1..1024"},
      {[](PlanOptions& o) { o.max_iovs_per_op = 1025; },
       "max_iovs_per_op is 1025; it must be in 1..1024"},
      {[](PlanOptions& o) { o.max_bytes_per_op = 0; },
       "max_bytes_per_op is 0; it must be in 1..2147479552"},
      {[](PlanOptions& o) { o.max_bytes_per_op = kMaxBytesPerOp + 1; },
       "max_bytes_per_op is 2147479553"},
      {[](PlanOptions& o) { o.max_ops_per_chain = 0; },
       "max_ops_per_chain is 0; it must be in 1..32768"},
      {[](PlanOptions& o) { o.copy_op = static_cast<CopyOp>(7); },
       "copy_op is 7"},
  };
  for (const Case& c : cases) {
    PlanOptions o;
    c.set(o);
    Plan plan;
    const absl::Status s = PlanChain(Queue({1}), 0, o, &plan);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr(c.message));
    EXPECT_EQ(ValidatePlanOptions(o), s);
  }
}

TEST(PlannerTest, RejectsNullPlan) {
  EXPECT_EQ(PlanChain(Queue({1}), 0, PlanOptions(), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

struct Piece {
  uint32_t iov;
  uint64_t offset;
  uint64_t length;
  friend bool operator==(const Piece& a, const Piece& b) {
    return a.iov == b.iov && a.offset == b.offset && a.length == b.length;
  }
};

void PrintTo(const Piece& p, std::ostream* os) {
  *os << p.iov << "@" << p.offset << "+" << p.length;
}

std::vector<Piece> Pieces(absl::Span<const struct iovec> q, const Op& op) {
  std::vector<Piece> pieces;
  ForEachPiece(q, op, [&](uint32_t iov, uint64_t offset, uint64_t length) {
    pieces.push_back({iov, offset, length});
  });
  return pieces;
}

TEST(PlannerTest, ForEachPieceGivesTheBytesEachIovecContributes) {
  // Resumed 1K into iovec 0 and split by the byte limit inside iovec 2, with
  // an empty iovec inside the first op.
  const auto q = Queue({4 * K, 0, 8 * K, 2 * K});
  PlanOptions o = Threshold(PlanOptions::kNever);
  o.max_bytes_per_op = 7 * K;
  const Plan plan = MustPlan(q, K, o);
  ASSERT_EQ(plan.ops().size(), 2u);
  EXPECT_THAT(
      Pieces(q, plan.ops()[0]),
      ElementsAre(Piece{0, K, 3 * K}, Piece{1, 0, 0}, Piece{2, 0, 4 * K}));
  EXPECT_THAT(Pieces(q, plan.ops()[1]),
              ElementsAre(Piece{2, 4 * K, 4 * K}, Piece{3, 0, 2 * K}));
}

TEST(PlannerTest, ForEachPieceCoversEveryPlannedByteOnceInOrder) {
  const auto q = Queue({100, 20 * K, 0, 3, 64 * K, 5, 5, 17 * K, 1});
  PlanOptions o = Threshold(16 * K);
  o.max_bytes_per_op = 7 * K;
  o.max_iovs_per_op = 2;
  const Plan plan = MustPlan(q, 50, o);
  ASSERT_TRUE(plan.complete());
  uint32_t iov = 0;
  uint64_t offset = 50;
  for (const Op& op : plan.ops()) {
    uint32_t calls = 0;
    uint64_t bytes = 0;
    ForEachPiece(q, op, [&](uint32_t j, uint64_t off, uint64_t length) {
      ++calls;
      bytes += length;
      while (iov < j) {  // Only empty or finished iovecs are passed over.
        EXPECT_EQ(offset, q[iov].iov_len) << "iovec " << iov;
        ++iov;
        offset = 0;
      }
      EXPECT_EQ(j, iov);
      EXPECT_EQ(off, offset) << "iovec " << j;
      offset += length;
      EXPECT_LE(offset, q[j].iov_len);
    });
    EXPECT_EQ(calls, op.iov_count) << Describe(op);
    EXPECT_EQ(bytes, op.bytes) << Describe(op);
  }
  EXPECT_EQ(iov + 1, q.size());
  EXPECT_EQ(offset, q.back().iov_len);
}

TEST(PlannerTest, NamesEveryOpKind) {
  EXPECT_EQ(OpKindName(OpKind::kWritev), "writev");
  EXPECT_EQ(OpKindName(OpKind::kSendmsg), "sendmsg");
  EXPECT_EQ(OpKindName(OpKind::kSend), "send");
  EXPECT_EQ(OpKindName(OpKind::kSendmsgZc), "sendmsg_zc");
  EXPECT_EQ(OpKindName(OpKind::kSendZc), "send_zc");
  EXPECT_EQ(CopyOpName(CopyOp::kSendmsg), "sendmsg");
}

}  // namespace
}  // namespace zcplan
