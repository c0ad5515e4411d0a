// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/uring/fake_ring.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace zcplan {
namespace {

constexpr uint32_t kMaxIov = 1024;  // UIO_MAXIOV
constexpr uint16_t kZcFlags = IORING_RECVSEND_POLL_FIRST |
                              IORING_RECVSEND_FIXED_BUF |
                              IORING_SEND_ZC_REPORT_USAGE;
constexpr uint8_t kLinkFlags = IOSQE_IO_LINK | IOSQE_IO_HARDLINK;

}  // namespace

RingFeatures AllFakeFeatures() {
  RingFeatures f;
  f.send_zc = true;
  f.sendmsg_zc = true;
  f.zc_report_usage = true;
  f.sendmsg_zc_fixed = true;
  f.async_cancel_fd = true;
  return f;
}

bool FakeRing::IsZeroCopyOpcode(int opcode) {
  return opcode == IORING_OP_SEND_ZC || opcode == IORING_OP_SENDMSG_ZC;
}

bool FakeRing::IsSendFamilyOpcode(int opcode) {
  return opcode == IORING_OP_SEND || opcode == IORING_OP_SENDMSG ||
         IsZeroCopyOpcode(opcode);
}

FakeRing::FakeRing(FakeRingOptions options)
    : features_(options.features),
      notify_cancelled_zc_(options.notify_cancelled_zc),
      sq_entries_(std::max<uint32_t>(options.sq_entries, 1)),
      cq_entries_(std::max<uint32_t>(options.cq_entries, 1)),
      sqes_(sq_entries_) {
  features_.sq_entries = sq_entries_;
  features_.cq_entries = cq_entries_;
}

FakeRing::~FakeRing() = default;

uint32_t FakeRing::SqSpaceLeft() { return sq_entries_ - pending_; }

struct io_uring_sqe* FakeRing::GetSqe() {
  if (pending_ >= sq_entries_) return nullptr;
  io_uring_sqe* sqe = &sqes_[pending_++];
  ++sqes_obtained_;
  std::memset(sqe, 0, sizeof(*sqe));
  return sqe;
}

int FakeRing::RegisterBuffers(absl::Span<const struct iovec> buffers) {
  if (!registered_.empty()) return -EBUSY;
  if (buffers.empty()) return -EINVAL;
  for (const iovec& iov : buffers) {
    if (iov.iov_base == nullptr && iov.iov_len != 0) return -EFAULT;
    if (iov.iov_len > (size_t{1} << 30)) return -EFAULT;
  }
  registered_.assign(buffers.begin(), buffers.end());
  return 0;
}

int FakeRing::AbortConnection(int fd) {
  Socket& s = socket(fd);
  ++s.resets;
  s.error = -ECONNRESET;
  ResumeBlocked(fd);
  for (size_t i = 0; i < held_.size();) {
    if (log_[held_[i].log_index].fd == fd) {
      DeliverNotification(i);
    } else {
      ++i;
    }
  }
  return 0;
}

int FakeRing::resets(int fd) const {
  auto it = sockets_.find(fd);
  return it == sockets_.end() ? 0 : it->second.resets;
}

void FakeRing::AddFault(int fd, const FakeFault& fault) {
  socket(fd).faults.push_back(fault);
}

void FakeRing::SetSocketError(int fd, int32_t error) {
  socket(fd).error = error;
  if (error != 0) ResumeBlocked(fd);
}

void FakeRing::SetZeroCopySupported(int fd, bool supported) {
  socket(fd).zc_supported = supported;
}

void FakeRing::SetCopied(int fd, bool copied) { socket(fd).copied = copied; }

void FakeRing::SetCapacity(int fd, int64_t bytes) {
  socket(fd).capacity = bytes < 0 ? -1 : bytes;
  ResumeBlocked(fd);
}

void FakeRing::AddCapacity(int fd, int64_t bytes) {
  Socket& s = socket(fd);
  if (s.capacity >= 0) s.capacity += std::max<int64_t>(bytes, 0);
  ResumeBlocked(fd);
}

void FakeRing::InjectSubmitResult(int result) {
  injected_results_.push_back(result);
}

void FakeRing::InjectCompletion(const Completion& completion) {
  Post(completion);
}

void FakeRing::set_cq_entries(uint32_t entries) {
  cq_entries_ = std::max<uint32_t>(entries, 1);
  features_.cq_entries = cq_entries_;
}

std::vector<uint64_t> FakeRing::held_notifications() const {
  std::vector<uint64_t> out;
  out.reserve(held_.size());
  for (const Notification& n : held_) out.push_back(n.user_data);
  return out;
}

void FakeRing::DeliverNotification(size_t i) {
  if (i >= held_.size()) return;
  Notification n = std::move(held_[i]);
  held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
  PostNotification(std::move(n));
}

void FakeRing::DeliverAllNotifications(bool reverse) {
  std::vector<Notification> all = std::move(held_);
  held_.clear();
  if (reverse) std::reverse(all.begin(), all.end());
  for (Notification& n : all) PostNotification(std::move(n));
}

const std::string& FakeRing::received(int fd) const {
  static const std::string* const kEmpty = new std::string();
  auto it = sockets_.find(fd);
  return it == sockets_.end() ? *kEmpty : it->second.received;
}

uint64_t FakeRing::ops_submitted(int opcode) const {
  return opcode >= 0 && opcode < 256 ? submitted_by_opcode_[opcode] : 0;
}

uint64_t FakeRing::ops_executed(int opcode) const {
  return opcode >= 0 && opcode < 256 ? executed_by_opcode_[opcode] : 0;
}

size_t FakeRing::blocked_ops() const {
  size_t n = 0;
  for (const Chain& c : blocked_) n += c.ops.size();
  return n;
}

void FakeRing::Decode(const io_uring_sqe& sqe, SqeRecord* r) {
  r->sqe = sqe;
  r->opcode = sqe.opcode;
  r->fd = sqe.fd;
  r->user_data = sqe.user_data;
  r->flags = sqe.flags;
  r->ioprio = sqe.ioprio;
  r->buf_index = sqe.buf_index;
  switch (sqe.opcode) {
    case IORING_OP_WRITEV: {
      r->msg_flags = static_cast<uint32_t>(sqe.rw_flags);
      r->iov_count = sqe.len;
      const auto* iov = reinterpret_cast<const iovec*>(sqe.addr);
      if (iov != nullptr && sqe.len <= kMaxIov) {
        r->iovs.assign(iov, iov + sqe.len);
      }
      break;
    }
    case IORING_OP_SENDMSG:
    case IORING_OP_SENDMSG_ZC: {
      r->msg_flags = sqe.msg_flags;
      const auto* msg = reinterpret_cast<const msghdr*>(sqe.addr);
      if (msg != nullptr) {
        r->iov_count = static_cast<uint32_t>(
            std::min<size_t>(msg->msg_iovlen, UINT32_MAX));
        if (msg->msg_iov != nullptr && msg->msg_iovlen <= kMaxIov) {
          r->iovs.assign(msg->msg_iov, msg->msg_iov + msg->msg_iovlen);
        }
      }
      break;
    }
    case IORING_OP_SEND:
    case IORING_OP_SEND_ZC:
      r->msg_flags = sqe.msg_flags;
      r->iov_count = 1;
      r->iovs.push_back(iovec{
          reinterpret_cast<void*>(static_cast<uintptr_t>(sqe.addr)), sqe.len});
      break;
    default:
      break;
  }
  for (const iovec& iov : r->iovs) r->bytes_requested += iov.iov_len;
}

int32_t FakeRing::PrepCheck(const SqeRecord& r) {
  if (r.flags & IOSQE_FIXED_FILE) return -EBADF;
  switch (r.opcode) {
    case IORING_OP_NOP:
      return 0;
    case IORING_OP_ASYNC_CANCEL:
      if ((r.sqe.cancel_flags &
           (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL |
            IORING_ASYNC_CANCEL_ANY)) != 0 &&
          !features_.async_cancel_fd) {
        return -EINVAL;
      }
      return 0;
    case IORING_OP_WRITEV:
      if (r.iov_count > kMaxIov) return -EINVAL;
      if (r.iov_count > 0 && r.sqe.addr == 0) return -EFAULT;
      // The kernel takes rw_flags as RWF_*: MSG_* flags here are wrong.
      if (r.msg_flags != 0) return -EOPNOTSUPP;
      return 0;
    case IORING_OP_SEND:
    case IORING_OP_SENDMSG:
      if (r.ioprio & ~IORING_RECVSEND_POLL_FIRST) return -EINVAL;
      break;
    case IORING_OP_SEND_ZC:
    case IORING_OP_SENDMSG_ZC: {
      const bool is_msg = r.opcode == IORING_OP_SENDMSG_ZC;
      if (is_msg ? !features_.sendmsg_zc : !features_.send_zc) return -EINVAL;
      if (r.ioprio & ~kZcFlags) return -EINVAL;
      if ((r.ioprio & IORING_SEND_ZC_REPORT_USAGE) &&
          !features_.zc_report_usage) {
        return -EINVAL;
      }
      if (r.flags & IOSQE_CQE_SKIP_SUCCESS) return -EINVAL;
      if (r.ioprio & IORING_RECVSEND_FIXED_BUF) {
        if (is_msg && !features_.sendmsg_zc_fixed) return -EINVAL;
        if (r.buf_index >= registered_.size()) {
          violations_.push_back(
              absl::StrCat("fixed-buffer op user_data=", r.user_data, " on fd ",
                           r.fd, " names buf_index ", r.buf_index, " but ",
                           registered_.size(), " buffer(s) are registered"));
          return -EFAULT;
        }
      }
      break;
    }
    default:
      return -EINVAL;
  }
  // Send family.
  if (r.opcode == IORING_OP_SENDMSG || r.opcode == IORING_OP_SENDMSG_ZC) {
    if (r.sqe.addr == 0) return -EFAULT;
    if (r.iov_count > kMaxIov) return -EMSGSIZE;
  }
  return 0;
}

int32_t FakeRing::CheckFixed(const SqeRecord& r) {
  const iovec& region = registered_[r.buf_index];
  const auto lo = reinterpret_cast<uintptr_t>(region.iov_base);
  const uintptr_t hi = lo + region.iov_len;
  for (const iovec& iov : r.iovs) {
    const auto p = reinterpret_cast<uintptr_t>(iov.iov_base);
    if (p < lo || p > hi || iov.iov_len > hi - p) {
      violations_.push_back(absl::StrCat(
          "fixed-buffer op user_data=", r.user_data, " on fd ", r.fd,
          ": range [", p, ", +", iov.iov_len, ") is outside registered buffer ",
          r.buf_index, " [", lo, ", +", region.iov_len, ")"));
      return -EFAULT;
    }
  }
  return 0;
}

void FakeRing::Post(const Completion& completion) {
  ++completions_posted_;
  if (overflow_.empty() && cq_.size() < cq_entries_) {
    cq_.push_back(completion);
  } else {
    overflow_.push_back(completion);
  }
}

void FakeRing::FlushOverflow() {
  while (!overflow_.empty() && cq_.size() < cq_entries_) {
    cq_.push_back(overflow_.front());
    overflow_.pop_front();
  }
}

void FakeRing::Complete(size_t index, int32_t res, uint32_t flags,
                        uint64_t moved) {
  SqeRecord& r = log_[index];
  r.completed = true;
  r.res = res;
  r.cqe_flags = flags;
  r.bytes_moved = moved;
  if ((r.flags & IOSQE_CQE_SKIP_SUCCESS) && res >= 0) return;
  Post(Completion{r.user_data, res, flags});
}

void FakeRing::QueueNotification(size_t index, int32_t res,
                                 std::vector<Snapshot> snapshots,
                                 uint64_t zc_bytes) {
  log_[index].notification_expected = true;
  zc_bytes_pending_ += zc_bytes;
  Notification n{log_[index].user_data, res, index, zc_bytes,
                 std::move(snapshots)};
  if (hold_notifications_) {
    held_.push_back(std::move(n));
  } else {
    PostNotification(std::move(n));
  }
}

void FakeRing::PostNotification(Notification n) {
  for (const Snapshot& s : n.snapshots) {
    if (std::memcmp(s.data, s.bytes.data(), s.bytes.size()) == 0) continue;
    size_t k = 0;
    while (s.data[k] == static_cast<unsigned char>(s.bytes[k])) ++k;
    violations_.push_back(
        absl::StrCat("zero-copy op user_data=", n.user_data, " on fd ",
                     log_[n.log_index].fd, ": buffer at ",
                     reinterpret_cast<uintptr_t>(s.data), " (", s.bytes.size(),
                     " bytes) changed before its notification (first at "
                     "byte ",
                     k, ")"));
  }
  zc_bytes_pending_ -= n.zc_bytes;
  ++notifications_posted_;
  Post(Completion{n.user_data, n.res, IORING_CQE_F_NOTIF});
}

bool FakeRing::RunOp(size_t index, bool chain_failed, bool* breaks_chain) {
  *breaks_chain = false;
  const SqeRecord& r = log_[index];
  const bool zc = IsZeroCopyOpcode(r.opcode);
  const bool report = (r.ioprio & IORING_SEND_ZC_REPORT_USAGE) != 0;
  if (chain_failed) {
    *breaks_chain = true;
    Complete(index, -ECANCELED, 0, 0);
    if (zc && notify_cancelled_zc_) {
      QueueNotification(
          index,
          report ? static_cast<int32_t>(IORING_NOTIF_USAGE_ZC_COPIED) : 0, {},
          0);
    }
    return true;
  }
  if (r.opcode == IORING_OP_NOP) {
    ++executed_by_opcode_[r.opcode];
    Complete(index, 0, 0, 0);
    return true;
  }
  if (r.opcode == IORING_OP_ASYNC_CANCEL) {
    ++executed_by_opcode_[r.opcode];
    RunCancel(index);
    return true;
  }

  Socket& s = socket(r.fd);
  if (zc && !s.zc_supported) {
    ++executed_by_opcode_[r.opcode];
    *breaks_chain = true;
    Complete(index, -EOPNOTSUPP, 0, 0);
    return true;
  }
  if (s.error == 0 && s.capacity == 0 && r.bytes_requested > 0) return false;
  ++executed_by_opcode_[r.opcode];

  int32_t res = 0;
  uint64_t moved = 0;
  bool more = true;
  bool notify = true;
  if (s.error != 0) {
    res = s.error;
  } else if (int32_t e = (zc && (r.ioprio & IORING_RECVSEND_FIXED_BUF))
                             ? CheckFixed(r)
                             : 0;
             e != 0) {
    res = e;
  } else {
    uint64_t want = r.bytes_requested;
    int32_t error = 0;
    auto it =
        std::find_if(s.faults.begin(), s.faults.end(), [&](const FakeFault& f) {
          return f.opcode < 0 || f.opcode == r.opcode;
        });
    if (it != s.faults.end()) {
      const FakeFault f = *it;
      s.faults.erase(it);
      if (f.max_bytes >= 0) {
        want = std::min<uint64_t>(want, static_cast<uint64_t>(f.max_bytes));
      } else if (f.error != 0) {
        want = 0;
      }
      error = f.error;
      more = f.more;
      notify = f.notify;
    }
    if (s.capacity >= 0) {
      want = std::min<uint64_t>(want, static_cast<uint64_t>(s.capacity));
      s.capacity -= static_cast<int64_t>(want);
    }
    moved = want;
    res = (error != 0 && moved == 0) ? error : static_cast<int32_t>(moved);
  }

  std::vector<Snapshot> snapshots;
  uint64_t left = moved;
  for (const iovec& iov : r.iovs) {
    if (left == 0) break;
    const uint64_t n = std::min<uint64_t>(left, iov.iov_len);
    const auto* p = static_cast<const unsigned char*>(iov.iov_base);
    s.received.append(reinterpret_cast<const char*>(p), n);
    if (zc) {
      snapshots.push_back(
          Snapshot{p, std::string(reinterpret_cast<const char*>(p), n)});
    }
    left -= n;
  }

  if (res == -EPIPE && IsSendFamilyOpcode(r.opcode) &&
      !(r.msg_flags & MSG_NOSIGNAL)) {
    violations_.push_back(absl::StrCat("op user_data=", r.user_data, " on fd ",
                                       r.fd,
                                       " got -EPIPE without MSG_NOSIGNAL: the "
                                       "process would get SIGPIPE"));
  }
  const bool must_be_whole =
      r.opcode == IORING_OP_WRITEV || (r.msg_flags & MSG_WAITALL) != 0;
  *breaks_chain = res < 0 || (must_be_whole &&
                              static_cast<uint64_t>(res) != r.bytes_requested);

  if (!zc) {
    Complete(index, res, 0, moved);
    return true;
  }
  Complete(index, res, more ? IORING_CQE_F_MORE : 0, moved);
  if (notify) {
    const bool copied = report && (s.copied || moved == 0);
    QueueNotification(
        index, copied ? static_cast<int32_t>(IORING_NOTIF_USAGE_ZC_COPIED) : 0,
        std::move(snapshots), moved);
  }
  return true;
}

void FakeRing::RunCancel(size_t index) {
  const SqeRecord& r = log_[index];
  const uint32_t flags = r.sqe.cancel_flags;
  const bool all =
      (flags & (IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY)) != 0;
  const uint64_t target = r.sqe.addr;
  const int fd = r.fd;
  int32_t count = 0;
  for (size_t i = 0; i < blocked_.size();) {
    const SqeRecord& head = log_[blocked_[i].ops.front()];
    bool match;
    if (flags & IORING_ASYNC_CANCEL_ANY) {
      match = true;
    } else if (flags & IORING_ASYNC_CANCEL_FD) {
      match = head.fd == fd;
    } else {
      match = head.user_data == target;
    }
    if (!match) {
      ++i;
      continue;
    }
    Chain chain = std::move(blocked_[i]);
    blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
    ++count;
    // The blocked op completes -ECANCELED (no F_MORE for zero-copy, then a
    // notification), and so does the rest of its chain.
    chain.failed = true;
    RunChain(std::move(chain));
    if (!all) break;
  }
  int32_t res;
  if (count == 0) {
    res = -ENOENT;
  } else {
    res = all ? count : 0;
  }
  Complete(index, res, 0, 0);
}

void FakeRing::RunChain(Chain chain) {
  while (!chain.ops.empty()) {
    const size_t index = chain.ops.front();
    bool breaks = false;
    if (!RunOp(index, chain.failed, &breaks)) {
      chain.fd = log_[index].fd;
      blocked_.push_back(std::move(chain));
      return;
    }
    chain.ops.pop_front();
    if (breaks && !(log_[index].flags & IOSQE_IO_HARDLINK)) chain.failed = true;
  }
}

void FakeRing::ResumeBlocked(int fd) {
  std::vector<Chain> ready;
  for (size_t i = 0; i < blocked_.size();) {
    if (blocked_[i].fd == fd) {
      ready.push_back(std::move(blocked_[i]));
      blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  for (Chain& c : ready) RunChain(std::move(c));
}

int FakeRing::SubmitAndWait(uint32_t wait_nr, int64_t timeout_ns) {
  (void)timeout_ns;  // Nothing ever waits: see the file comment.
  ++submit_calls_;
  if (deliver_held_at_submit_ != 0 &&
      submit_calls_ >= deliver_held_at_submit_) {
    deliver_held_at_submit_ = 0;
    DeliverAllNotifications();
  }
  if (!injected_results_.empty()) {
    const int result = injected_results_.front();
    injected_results_.pop_front();
    return result;
  }
  FlushOverflow();
  if (!overflow_.empty() && pending_ > 0) {
    ++busy_returns_;
    return -EBUSY;
  }

  const uint32_t submitted = pending_;
  const size_t first = log_.size();
  for (uint32_t i = 0; i < submitted; ++i) {
    SqeRecord r;
    Decode(sqes_[i], &r);
    r.submit_call = submit_calls_;
    ++submitted_by_opcode_[r.opcode];
    log_.push_back(std::move(r));
  }
  pending_ = 0;
  sqes_taken_ += submitted;

  size_t i = first;
  while (i < log_.size()) {
    Chain chain;
    uint32_t k = 0;
    bool linked = true;
    while (linked && i < log_.size()) {
      log_[i].chain = chains_;
      log_[i].index_in_chain = k++;
      linked = (log_[i].flags & kLinkFlags) != 0;
      chain.ops.push_back(i++);
    }
    ++chains_;
    if (chain.ops.size() > 1) ++linked_chains_;

    // One chain in flight per fd: a new chain on a fd whose earlier chain is
    // still blocked could put its bytes first.
    for (size_t op : chain.ops) {
      const int fd = log_[op].fd;
      if (!IsSendFamilyOpcode(log_[op].opcode) &&
          log_[op].opcode != IORING_OP_WRITEV) {
        continue;
      }
      const bool clash =
          std::any_of(blocked_.begin(), blocked_.end(),
                      [fd](const Chain& c) { return c.fd == fd; });
      if (clash) {
        violations_.push_back(
            absl::StrCat("chain ", log_[op].chain, " submitted on fd ", fd,
                         " while an earlier chain on it is still in flight"));
        break;
      }
    }

    std::vector<int32_t> prep(chain.ops.size());
    bool prep_failed = false;
    for (size_t j = 0; j < chain.ops.size(); ++j) {
      prep[j] = PrepCheck(log_[chain.ops[j]]);
      prep_failed |= prep[j] != 0;
    }
    if (!prep_failed) {
      RunChain(std::move(chain));
      continue;
    }
    for (size_t j = 0; j < chain.ops.size(); ++j) {
      const size_t op = chain.ops[j];
      if (prep[j] != 0) {
        Complete(op, prep[j], 0, 0);
        continue;
      }
      bool ignored;
      RunOp(op, /*chain_failed=*/true, &ignored);
    }
  }

  if (wait_nr > cq_.size() + overflow_.size()) {
    ++timeouts_;
    return -ETIME;
  }
  return static_cast<int>(submitted);
}

size_t FakeRing::Reap(absl::Span<Completion> out) {
  size_t n = 0;
  while (n < out.size()) {
    if (cq_.empty()) FlushOverflow();
    if (cq_.empty()) break;
    out[n++] = cq_.front();
    cq_.pop_front();
  }
  return n;
}

}  // namespace zcplan
