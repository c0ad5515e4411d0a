// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/sqe_encoder.h"

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/fake_ring.h"
#include "zcplan/uring/memlock.h"
#include "zcplan/uring/regions.h"
#include "zcplan/uring/ring.h"

namespace zcplan {
namespace {

constexpr int kSendFlags = MSG_WAITALL | MSG_NOSIGNAL;

Op MakeOp(OpKind kind, uint32_t first_iov, uint32_t iov_count, uint64_t offset,
          uint64_t bytes) {
  return Op{kind, false, first_iov, iov_count, offset, bytes};
}

RingFeatures Features(bool report_usage, bool sendmsg_zc_fixed) {
  RingFeatures f;
  f.send_zc = true;
  f.sendmsg_zc = true;
  f.zc_report_usage = report_usage;
  f.sendmsg_zc_fixed = sendmsg_zc_fixed;
  return f;
}

// A queue of buffers cut one after the other from one arena (one byte longer,
// so an empty last buffer still points into it), with lengths `lengths`. With
// `fill`, the arena holds a pattern that does not repeat every few bytes.
class Queue {
 public:
  explicit Queue(std::vector<size_t> lengths, bool fill = true) {
    size_t total = 0;
    for (size_t n : lengths) total += n;
    arena_.resize(total + 1);
    for (size_t i = 0; fill && i < arena_.size(); ++i) {
      arena_[i] = static_cast<char>(i ^ (i >> 8) ^ (i >> 16));
    }
    size_t at = 0;
    for (size_t n : lengths) {
      iovs_.push_back(iovec{arena_.data() + at, n});
      at += n;
    }
  }
  absl::Span<const iovec> iovs() const { return iovs_; }
  char* at(size_t i) const { return static_cast<char*>(iovs_[i].iov_base); }
  iovec arena() { return iovec{arena_.data(), arena_.size()}; }
  std::string bytes() const { return std::string(arena_.data(), size()); }
  size_t size() const { return arena_.size() - 1; }

 private:
  std::string arena_;
  std::vector<iovec> iovs_;
};

// With no registered regions and every feature.
OpLayout LayOut(const Op& op, const Queue& q, uint64_t queue_seq,
                iovec* pieces) {
  return LayOutOp(op, q.iovs(), queue_seq, RegisteredRegions(),
                  Features(true, true), pieces);
}

TEST(LayOutOpTest, PiecesOfOneWholeBuffer) {
  Queue q({100, 200, 300});
  iovec pieces[1];
  const OpLayout l = LayOut(MakeOp(OpKind::kSend, 1, 1, 0, 200), q, 7, pieces);
  EXPECT_EQ(pieces[0].iov_base, q.at(1));
  EXPECT_EQ(pieces[0].iov_len, 200u);
  EXPECT_EQ(l.end_seq, 7u + 2);
  EXPECT_EQ(l.end_offset, 0u);
  EXPECT_EQ(l.fixed_buffer, -1);
  EXPECT_EQ(l.memlock_charge, 0u);
}

TEST(LayOutOpTest, PiecesOfAMiddleSliceOfOneBuffer) {
  Queue q({1000});
  iovec pieces[1];
  const OpLayout l =
      LayOut(MakeOp(OpKind::kSend, 0, 1, 300, 500), q, 0, pieces);
  EXPECT_EQ(pieces[0].iov_base, q.at(0) + 300);
  EXPECT_EQ(pieces[0].iov_len, 500u);
  // Ends mid-buffer: (its seq, 800).
  EXPECT_EQ(l.end_seq, 0u);
  EXPECT_EQ(l.end_offset, 800u);
}

TEST(LayOutOpTest, PiecesWithOffsetAndPartialLast) {
  Queue q({10, 100, 0, 50, 80, 40});
  iovec pieces[4];
  // 90 of buffer 1 (from 10), 0, 50, 30 of 80.
  const OpLayout l =
      LayOut(MakeOp(OpKind::kWritev, 1, 4, 10, 170), q, 1000, pieces);
  EXPECT_EQ(pieces[0].iov_base, q.at(1) + 10);
  EXPECT_EQ(pieces[0].iov_len, 90u);
  EXPECT_EQ(pieces[1].iov_base, q.at(2));
  EXPECT_EQ(pieces[1].iov_len, 0u);
  EXPECT_EQ(pieces[2].iov_base, q.at(3));
  EXPECT_EQ(pieces[2].iov_len, 50u);
  EXPECT_EQ(pieces[3].iov_base, q.at(4));
  EXPECT_EQ(pieces[3].iov_len, 30u);
  EXPECT_EQ(l.end_seq, 1004u);
  EXPECT_EQ(l.end_offset, 30u);
}

TEST(LayOutOpTest, EndAtTheEndOfTheLastBuffer) {
  Queue q({10, 100, 50});
  iovec pieces[2];
  const OpLayout l =
      LayOut(MakeOp(OpKind::kWritev, 1, 2, 99, 51), q, 5, pieces);
  EXPECT_EQ(pieces[0].iov_len, 1u);
  EXPECT_EQ(pieces[1].iov_len, 50u);
  EXPECT_EQ(l.end_seq, 5u + 3);
  EXPECT_EQ(l.end_offset, 0u);
  // One byte less ends inside it.
  const OpLayout short_by_one =
      LayOut(MakeOp(OpKind::kWritev, 1, 2, 99, 50), q, 5, pieces);
  EXPECT_EQ(short_by_one.end_seq, 5u + 2);
  EXPECT_EQ(short_by_one.end_offset, 49u);
}

TEST(LayOutOpTest, PiecesMatchForEachPieceOnManyRandomOps) {
  std::mt19937 rng(9);
  for (int round = 0; round < 200; ++round) {
    std::vector<size_t> lengths(1 + rng() % 1500);
    for (size_t& n : lengths) n = rng() % 5 == 0 ? 0 : 1 + rng() % 70000;
    Queue q(lengths, /*fill=*/false);
    PlanOptions po;
    po.zc_threshold = rng() % 40000;
    po.max_iovs_per_op = 1 + rng() % kMaxIovsPerOp;
    po.max_bytes_per_op = 1 + rng() % (1 << 20);
    po.max_ops_per_chain = 1 + rng() % 200;
    Plan plan;
    uint64_t offset = lengths[0] == 0 ? 0 : rng() % lengths[0];
    ASSERT_TRUE(PlanChain(q.iovs(), offset, po, &plan).ok());
    std::vector<iovec> pieces(kMaxIovsPerOp);
    uint64_t seq = 0;
    uint64_t off = offset;
    for (const Op& op : plan.ops()) {
      const OpLayout l = LayOutOp(op, q.iovs(), 0, RegisteredRegions(),
                                  Features(true, true), pieces.data());
      uint32_t k = 0;
      ForEachPiece(q.iovs(), op, [&](uint32_t j, uint64_t o, uint64_t n) {
        EXPECT_EQ(pieces[k].iov_base, q.at(j) + o);
        EXPECT_EQ(pieces[k].iov_len, n);
        ++k;
      });
      ASSERT_EQ(k, op.iov_count);
      // Each op starts where the previous one ended (skipping empty buffers
      // and finished ones).
      while (seq < lengths.size() && off == lengths[seq]) {
        ++seq;
        off = 0;
      }
      ASSERT_EQ(op.first_iov, seq);
      ASSERT_EQ(op.offset, off);
      seq = l.end_seq;
      off = l.end_offset;
    }
    while (seq < lengths.size() && off == lengths[seq]) {
      ++seq;
      off = 0;
    }
    EXPECT_EQ(seq, plan.end_iov());
    EXPECT_EQ(off, plan.end_offset());
  }
}

TEST(LayOutOpTest, FixedBufferAndChargeByKind) {
  Queue q({8192, 16384, 4096});
  RegisteredRegions regions;
  regions.Set({q.arena()});
  RegisteredRegions none;
  iovec pieces[3];
  struct Case {
    OpKind kind;
    bool sendmsg_zc_fixed;
    const RegisteredRegions* regions;
    int want_fixed;
    bool want_charge;
  };
  const Case cases[] = {
      {OpKind::kWritev, true, &regions, -1, false},
      {OpKind::kSendmsg, true, &regions, -1, false},
      {OpKind::kSend, true, &regions, -1, false},
      {OpKind::kSendZc, false, &regions, 0, false},
      {OpKind::kSendZc, false, &none, -1, true},
      {OpKind::kSendmsgZc, true, &regions, 0, false},
      {OpKind::kSendmsgZc, false, &regions, -1, true},
      {OpKind::kSendmsgZc, true, &none, -1, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << OpKindName(c.kind) << " fixed=" << c.sendmsg_zc_fixed
                 << " regions=" << c.regions->size());
    const bool single = c.kind == OpKind::kSend || c.kind == OpKind::kSendZc;
    const Op op = single ? MakeOp(c.kind, 1, 1, 0, 16384)
                         : MakeOp(c.kind, 0, 3, 100, 20000);
    const OpLayout l = LayOutOp(op, q.iovs(), 0, *c.regions,
                                Features(true, c.sendmsg_zc_fixed), pieces);
    EXPECT_EQ(l.fixed_buffer, c.want_fixed);
    EXPECT_EQ(l.memlock_charge, c.want_charge ? MemlockCharge(op.bytes) : 0);
  }
}

TEST(LayOutOpTest, ZeroCopyOutsideTheRegionsIsCharged) {
  Queue q({8192, 16384});
  RegisteredRegions regions;
  // Registers only the first buffer.
  regions.Set({q.iovs()[0]});
  iovec pieces[2];
  OpLayout l = LayOutOp(MakeOp(OpKind::kSendZc, 0, 1, 0, 8192), q.iovs(), 0,
                        regions, Features(false, false), pieces);
  EXPECT_EQ(l.fixed_buffer, 0);
  EXPECT_EQ(l.memlock_charge, 0u);
  l = LayOutOp(MakeOp(OpKind::kSendZc, 1, 1, 0, 16384), q.iovs(), 0, regions,
               Features(false, false), pieces);
  EXPECT_EQ(l.fixed_buffer, -1);
  EXPECT_EQ(l.memlock_charge, MemlockCharge(16384));
  // Straddling into the second buffer: only the first piece is registered.
  l = LayOutOp(MakeOp(OpKind::kSendmsgZc, 0, 2, 4096, 8192), q.iovs(), 0,
               regions, Features(false, true), pieces);
  EXPECT_EQ(l.fixed_buffer, -1);
  EXPECT_EQ(l.memlock_charge, MemlockCharge(8192));
}

// --- EncodeSqe ---------------------------------------------------------------

struct Encoded {
  io_uring_sqe sqe;
  msghdr msg;
};

// Encodes into an SQE and msghdr full of garbage, so a field left unset
// shows.
Encoded Encode(const Op& op, absl::Span<const iovec> pieces,
               const OpLayout& layout, uint8_t extra, uint64_t user_data,
               const RingFeatures& f) {
  Encoded e;
  std::memset(&e.sqe, 0xa5, sizeof(e.sqe));
  std::memset(&e.msg, 0xa5, sizeof(e.msg));
  EncodeSqe(op, pieces, layout, 42, extra, user_data, f, &e.msg, &e.sqe);
  return e;
}

TEST(EncodeSqeTest, WritevHasNoFlags) {
  Queue q({100, 200});
  iovec pieces[2];
  const Op op = MakeOp(OpKind::kWritev, 0, 2, 10, 250);
  const OpLayout l = LayOut(op, q, 0, pieces);
  const Encoded e =
      Encode(op, pieces, l, IOSQE_IO_LINK, 0x1234, Features(true, true));
  EXPECT_EQ(e.sqe.opcode, IORING_OP_WRITEV);
  EXPECT_EQ(e.sqe.fd, 42);
  EXPECT_EQ(e.sqe.addr, reinterpret_cast<uintptr_t>(&pieces[0]));
  EXPECT_EQ(e.sqe.len, 2u);
  EXPECT_EQ(e.sqe.off, 0u);
  EXPECT_EQ(e.sqe.rw_flags, 0);
  EXPECT_EQ(e.sqe.ioprio, 0);
  EXPECT_EQ(e.sqe.buf_index, 0);
  EXPECT_EQ(e.sqe.flags, IOSQE_IO_LINK);
  EXPECT_EQ(e.sqe.user_data, 0x1234u);
}

TEST(EncodeSqeTest, SendmsgFillsTheMsghdr) {
  Queue q({100, 200, 300});
  iovec pieces[3];
  const Op op = MakeOp(OpKind::kSendmsg, 0, 3, 0, 600);
  const OpLayout l = LayOut(op, q, 0, pieces);
  const Encoded e =
      Encode(op, pieces, l, 0, ~uint64_t{0}, Features(true, true));
  EXPECT_EQ(e.sqe.opcode, IORING_OP_SENDMSG);
  EXPECT_EQ(e.sqe.fd, 42);
  EXPECT_EQ(e.sqe.addr, reinterpret_cast<uintptr_t>(&e.msg));
  EXPECT_EQ(e.sqe.len, 1u);
  EXPECT_EQ(e.sqe.msg_flags, static_cast<uint32_t>(kSendFlags));
  EXPECT_EQ(e.sqe.ioprio, 0);
  EXPECT_EQ(e.sqe.flags, 0);
  EXPECT_EQ(e.sqe.user_data, ~uint64_t{0});
  EXPECT_EQ(e.msg.msg_iov, &pieces[0]);
  EXPECT_EQ(e.msg.msg_iovlen, 3u);
  EXPECT_EQ(e.msg.msg_name, nullptr);
  EXPECT_EQ(e.msg.msg_namelen, 0u);
  EXPECT_EQ(e.msg.msg_control, nullptr);
  EXPECT_EQ(e.msg.msg_controllen, 0u);
  EXPECT_EQ(e.msg.msg_flags, 0);
}

TEST(EncodeSqeTest, SendUsesTheOnePiece) {
  Queue q({100, 200});
  iovec pieces[1];
  const Op op = MakeOp(OpKind::kSend, 1, 1, 20, 150);
  const OpLayout l = LayOut(op, q, 0, pieces);
  Encoded e;
  std::memset(&e.sqe, 0xa5, sizeof(e.sqe));
  // The msghdr is not needed (nor touched) for send.
  EncodeSqe(op, pieces, l, 3, IOSQE_IO_LINK, 9, Features(true, true), nullptr,
            &e.sqe);
  EXPECT_EQ(e.sqe.opcode, IORING_OP_SEND);
  EXPECT_EQ(e.sqe.fd, 3);
  EXPECT_EQ(e.sqe.addr, reinterpret_cast<uintptr_t>(q.at(1) + 20));
  EXPECT_EQ(e.sqe.len, 150u);
  EXPECT_EQ(e.sqe.msg_flags, static_cast<uint32_t>(kSendFlags));
  EXPECT_EQ(e.sqe.ioprio, 0);
  EXPECT_EQ(e.sqe.flags, IOSQE_IO_LINK);
  EXPECT_EQ(e.sqe.user_data, 9u);
}

TEST(EncodeSqeTest, SendZcWithAndWithoutReportUsageAndFixedBuffer) {
  Queue q({65536});
  RegisteredRegions regions;
  regions.Set({iovec{q.at(0) + 65536, 10}, q.iovs()[0]});  // index 1 holds it
  RegisteredRegions none;
  iovec pieces[1];
  const Op op = MakeOp(OpKind::kSendZc, 0, 1, 0, 65536);
  for (bool report : {false, true}) {
    for (const RegisteredRegions* r : {&none, &regions}) {
      SCOPED_TRACE(testing::Message()
                   << "report=" << report << " regions=" << r->size());
      const RingFeatures f = Features(report, false);
      const OpLayout l = LayOutOp(op, q.iovs(), 0, *r, f, pieces);
      const Encoded e = Encode(op, pieces, l, IOSQE_IO_LINK, 77, f);
      EXPECT_EQ(e.sqe.opcode, IORING_OP_SEND_ZC);
      EXPECT_EQ(e.sqe.fd, 42);
      EXPECT_EQ(e.sqe.addr, reinterpret_cast<uintptr_t>(q.at(0)));
      EXPECT_EQ(e.sqe.len, 65536u);
      EXPECT_EQ(e.sqe.msg_flags, static_cast<uint32_t>(kSendFlags));
      const bool fixed = r == &regions;
      EXPECT_EQ(l.fixed_buffer, fixed ? 1 : -1);
      EXPECT_EQ(e.sqe.ioprio, (report ? IORING_SEND_ZC_REPORT_USAGE : 0) |
                                  (fixed ? IORING_RECVSEND_FIXED_BUF : 0));
      EXPECT_EQ(e.sqe.buf_index, fixed ? 1 : 0);
      EXPECT_EQ(e.sqe.flags, IOSQE_IO_LINK);
      EXPECT_EQ(e.sqe.user_data, 77u);
    }
  }
}

TEST(EncodeSqeTest, SendmsgZcFixedOnlyWithTheFeature) {
  Queue q({40000, 50000});
  RegisteredRegions regions;
  regions.Set({iovec{q.at(0), 10}, iovec{q.at(0) + 20, 10}, q.arena()});
  iovec pieces[2];
  const Op op = MakeOp(OpKind::kSendmsgZc, 0, 2, 1000, 80000);
  for (bool report : {false, true}) {
    for (bool feature : {false, true}) {
      SCOPED_TRACE(testing::Message()
                   << "report=" << report << " sendmsg_zc_fixed=" << feature);
      const RingFeatures f = Features(report, feature);
      const OpLayout l = LayOutOp(op, q.iovs(), 0, regions, f, pieces);
      const Encoded e = Encode(op, pieces, l, 0, 5, f);
      EXPECT_EQ(e.sqe.opcode, IORING_OP_SENDMSG_ZC);
      EXPECT_EQ(e.sqe.fd, 42);
      EXPECT_EQ(e.sqe.addr, reinterpret_cast<uintptr_t>(&e.msg));
      EXPECT_EQ(e.sqe.msg_flags, static_cast<uint32_t>(kSendFlags));
      EXPECT_EQ(e.msg.msg_iov, &pieces[0]);
      EXPECT_EQ(e.msg.msg_iovlen, 2u);
      EXPECT_EQ(l.fixed_buffer, feature ? 2 : -1);
      EXPECT_EQ(l.memlock_charge, feature ? 0 : MemlockCharge(80000));
      EXPECT_EQ(e.sqe.ioprio, (report ? IORING_SEND_ZC_REPORT_USAGE : 0) |
                                  (feature ? IORING_RECVSEND_FIXED_BUF : 0));
      EXPECT_EQ(e.sqe.buf_index, feature ? 2 : 0);
      EXPECT_EQ(e.sqe.flags, 0);
      EXPECT_EQ(e.sqe.user_data, 5u);
    }
  }
}

TEST(EncodeSqeTest, OverwritesEveryFieldOfADirtySqe) {
  Queue q({5000, 6000, 7000});
  RegisteredRegions regions;
  regions.Set({q.arena()});
  iovec pieces[3];
  const Op ops[] = {
      MakeOp(OpKind::kWritev, 0, 3, 1, 17000),
      MakeOp(OpKind::kSendmsg, 0, 3, 1, 17000),
      MakeOp(OpKind::kSend, 1, 1, 0, 6000),
      MakeOp(OpKind::kSendZc, 1, 1, 0, 6000),
      MakeOp(OpKind::kSendmsgZc, 0, 3, 1, 17000),
  };
  for (const Op& op : ops) {
    SCOPED_TRACE(OpKindName(op.kind));
    const RingFeatures f = Features(true, true);
    const OpLayout l = LayOutOp(op, q.iovs(), 0, regions, f, pieces);
    io_uring_sqe clean{};
    io_uring_sqe dirty;
    std::memset(&dirty, 0xff, sizeof(dirty));
    msghdr msg;
    EncodeSqe(op, absl::MakeConstSpan(pieces, op.iov_count), l, 8,
              IOSQE_IO_LINK, 1, f, &msg, &clean);
    EncodeSqe(op, absl::MakeConstSpan(pieces, op.iov_count), l, 8,
              IOSQE_IO_LINK, 1, f, &msg, &dirty);
    EXPECT_EQ(std::memcmp(&clean, &dirty, sizeof(clean)), 0);
  }
}

// The encoding as the fake ring (which decodes SQEs as the kernel does)
// reads it: random chains, every byte arrives once, in order, and no fixed
// buffer names memory outside its region.
TEST(EncodeSqeTest, RandomChainsRunOnTheFakeRing) {
  std::mt19937 rng(99);
  // Over all rounds: ops by opcode, and fixed-buffer SEND_ZC / SENDMSG_ZC.
  std::vector<int> by_opcode(256);
  int fixed_send_zc = 0;
  int fixed_sendmsg_zc = 0;
  for (int round = 0; round < 60; ++round) {
    const bool report = rng() % 2;
    const bool fixed_feature = rng() % 2;
    FakeRingOptions options;
    options.sq_entries = 256;
    options.features.zc_report_usage = report;
    options.features.sendmsg_zc_fixed = fixed_feature;
    FakeRing ring(options);
    std::vector<size_t> lengths(1 + rng() % 200);
    for (size_t& n : lengths) n = rng() % 7 == 0 ? 0 : 1 + rng() % 20000;
    Queue q(lengths);
    // Register the middle third of the arena, or nothing.
    RegisteredRegions regions;
    bool whole = false;  // the whole arena is registered
    if (rng() % 3 != 0 && q.size() >= 3) {
      const iovec region{q.arena().iov_base, q.size()};
      const iovec middle{static_cast<char*>(region.iov_base) + q.size() / 3,
                         q.size() / 3};
      const iovec list[] = {middle, region};
      const size_t n = rng() % 2 + 1;
      ASSERT_TRUE(RegisteredRegions::Validate({list, n}).ok());
      ASSERT_EQ(ring.RegisterBuffers({list, n}), 0);
      regions.Set({list, n});
      whole = n == 2;
    }
    PlanOptions po;
    po.zc_threshold = rng() % 30000;
    po.copy_op = rng() % 2 ? CopyOp::kWritev : CopyOp::kSendmsg;
    po.max_iovs_per_op = 1 + rng() % 64;
    po.max_bytes_per_op = 1 + rng() % 200000;
    po.max_ops_per_chain = 200;
    uint64_t seq = 0;
    uint64_t offset = 0;
    std::vector<iovec> pieces;
    std::vector<msghdr> msgs;
    int fixed_ops = 0;
    int zc_fixable = 0;  // zero-copy ops that may name a fixed buffer
    while (seq < lengths.size()) {
      Plan plan;
      ASSERT_TRUE(PlanChain(q.iovs().subspan(seq), offset, po, &plan).ok());
      if (plan.ops().empty()) break;
      size_t total = 0;
      for (const Op& op : plan.ops()) total += op.iov_count;
      pieces.assign(total, iovec{});
      msgs.assign(plan.ops().size(), msghdr{});
      size_t at = 0;
      OpLayout l;
      for (size_t i = 0; i < plan.ops().size(); ++i) {
        const Op& op = plan.ops()[i];
        l = LayOutOp(op, q.iovs().subspan(seq), seq, regions, ring.features(),
                     &pieces[at]);
        if (l.fixed_buffer >= 0) ++fixed_ops;
        if (op.kind == OpKind::kSendZc ||
            (op.kind == OpKind::kSendmsgZc && fixed_feature)) {
          ++zc_fixable;
        }
        EXPECT_EQ(l.memlock_charge, IsZeroCopy(op.kind) && l.fixed_buffer < 0
                                        ? MemlockCharge(op.bytes)
                                        : 0);
        io_uring_sqe* sqe = ring.GetSqe();
        ASSERT_NE(sqe, nullptr);
        EncodeSqe(op, absl::MakeConstSpan(&pieces[at], op.iov_count), l, 5,
                  op.linked ? IOSQE_IO_LINK : 0,
                  (static_cast<uint64_t>(round) << 32) | i, ring.features(),
                  &msgs[i], sqe);
        at += op.iov_count;
      }
      ASSERT_GT(ring.SubmitAndWait(0, 0), 0);
      Completion cqes[64];
      while (ring.Reap(cqes) > 0) {
      }
      seq = l.end_seq;
      offset = l.end_offset;
      while (seq < lengths.size() && offset == lengths[seq]) {
        ++seq;
        offset = 0;
      }
    }
    EXPECT_EQ(ring.received(5), q.bytes());
    EXPECT_TRUE(ring.violations().empty()) << ring.violations()[0];
    for (const SqeRecord& r : ring.log()) {
      ++by_opcode[r.opcode];
      if (r.ioprio & IORING_RECVSEND_FIXED_BUF) {
        ++(r.opcode == IORING_OP_SEND_ZC ? fixed_send_zc : fixed_sendmsg_zc);
      }
      ASSERT_TRUE(r.completed);
      EXPECT_EQ(r.res, static_cast<int32_t>(r.bytes_requested));
      EXPECT_EQ((r.ioprio & IORING_SEND_ZC_REPORT_USAGE) != 0,
                report && FakeRing::IsZeroCopyOpcode(r.opcode));
    }
    if (whole) {
      EXPECT_EQ(fixed_ops, zc_fixable);
    }
  }
  // The rounds reach every kind, and both fixed forms.
  for (int opcode : {IORING_OP_WRITEV, IORING_OP_SENDMSG, IORING_OP_SEND,
                     IORING_OP_SEND_ZC, IORING_OP_SENDMSG_ZC}) {
    EXPECT_GT(by_opcode[opcode], 0) << opcode;
  }
  EXPECT_GT(fixed_send_zc, 0);
  EXPECT_GT(fixed_sendmsg_zc, 0);
}

}  // namespace
}  // namespace zcplan
