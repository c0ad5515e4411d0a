// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the executor's guarantees under any sequence of faults,
// through the fake ring (fake_ring.h).
// Built as a real fuzzer with --config=fuzz; replayed on random input in
// plain `bazel test` (executor_fuzz_test).
//
// The input is read front to back: a setup (ring sizes and features, the
// notification cap, registered buffers, which release callback, how the run
// ends), then up to kMaxActions actions: attach (random plan options, or
// invalid ones), enqueue (one buffer or a batch, sometimes a bad one, or a
// prepared message of 1..8 pieces, laid out in order or backwards in its
// memory, sometimes a null one), poll,
// flush, hold and deliver notifications (one, all, reversed), faults on the
// next ops (short ops, zero-copy errors with and without F_MORE or a
// notification, -EAGAIN after partial progress), submit results (-EINTR,
// -EBUSY, -EAGAIN, rarely a ring failure), a slow reader, peer errors,
// close or abort (a reset). Then everything is lifted and the executor drained
// and destroyed, or (when the input says so) destroyed with sends in flight,
// and then the kernel's late work is let run. The release callback may enqueue
// more (buffers and prepared messages) and tries the calls it may not make.
//
// One input in four runs the executor on "the caller's ring" (a nonzero
// user_data_tag): the harness is then the caller's loop. It never polls; it
// calls Prepare (and submits the ring itself, or not yet) or Flush, reaps the
// fake and dispatches each completion with Owns / HandleCompletion(s). It
// injects foreign completions whose user_data would collide with an untagged
// executor's (7, 1 << 32, 0, ~0, other tags, an op's user_data with another
// top byte) and puts NOPs of its own on the ring between the executor's
// calls; every foreign completion must come back to it exactly once, and
// none of the executor's may look foreign.
//
// Adaptive zero-copy: small `adaptive_retry_chains` (0 too) and notifications
// that switch between copied and not, so zero-copy goes off, on and off. The
// decoder is our own (gcc has no <fuzzer/FuzzedDataProvider.h>), so an input
// replays the same under libFuzzer and under the replay driver.
//
// Checked; a failure prints what broke and aborts, which libFuzzer reports:
// - every buffer released exactly once, on its connection (TokenLedger, which
//   also poisons it); a batch release is a run of consecutive buffers;
// - an OK release only once all of the buffer's bytes reached the socket; an
//   error release carries the connection's error;
// - each socket received a prefix of what was enqueued on it, in order; all
//   of it, with no connection error, unless it was closed or its peer failed;
// - Attach, Enqueue, Close, Poll and Flush return what the API promises;
// - no FakeRing violation (a zero-copy buffer changed before its
//   notification, two chains in flight on one socket, SIGPIPE);
// - the counters agree with what was enqueued, released and received;
// - on the caller's ring: each foreign completion reaches the caller once,
//   HandleCompletion refuses it, and the caller's own SQEs run unchanged;
// - adaptive_retry_chains 0 never retries.

#include <liburing.h>
#include <linux/io_uring.h>
#include <sanitizer/asan_interface.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "zcplan/planner/planner.h"
#include "zcplan/tests/uring/fake_ring.h"
#include "zcplan/tests/uring/test_util.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/ring.h"

namespace zcplan {
namespace {

constexpr int kSockets = 4;      // connected pairs, made once per process
constexpr int kMaxAttaches = 8;  // connections per input
constexpr int kMaxActions = 256;
constexpr uint64_t kMaxBytes = 256 * 1024;  // enqueued per input
constexpr uint64_t kMaxBuffers = 1024;      // enqueued per input
constexpr uint64_t kMaxBatch = 16;
constexpr uint64_t kMaxCallbackEnqueues = 64;
constexpr uint64_t kRegisteredBytes = 256 * 1024;
// Bytes past each buffer that ASan reports when read.
constexpr uint64_t kGap = 16;
// A fault that lets an op move nothing counts as a transient error, and the
// executor fails a connection after 64 of them in a row: fewer per socket
// keep every such fault recoverable.
constexpr int kMaxNoProgressFaults = 48;
constexpr int kMaxDrainRounds = 10000;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "executor_fuzz: invariant broken: %s\n", what.c_str());
  std::abort();
}

// Reads the input front to back; past its end every value is the lowest.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }

  // A value in [lo, hi], from as few bytes as the range needs.
  uint64_t Range(uint64_t lo, uint64_t hi) {
    const uint64_t span = hi - lo;
    const int bytes = span < (1u << 8) ? 1 : span < (1u << 16) ? 2 : 4;
    uint64_t v = 0;
    for (int k = 0; k < bytes; ++k) v = (v << 8) | Byte();
    return lo + v % (span + 1);
  }

  bool Bool() { return (Byte() & 1) != 0; }

  template <typename T, size_t N>
  T Pick(const T (&values)[N]) {
    return values[Range(0, N - 1)];
  }

 private:
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Stream `s` of every input is PatternByte(s + 1, i), computed once.
const unsigned char* Pattern(int stream) {
  static const std::vector<unsigned char>* const table = [] {
    auto* t = new std::vector<unsigned char>(kMaxAttaches * kMaxBytes);
    for (int s = 0; s < kMaxAttaches; ++s) {
      for (uint64_t i = 0; i < kMaxBytes; ++i) {
        (*t)[s * kMaxBytes + i] = PatternByte(s + 1, i);
      }
    }
    return t;
  }();
  return table->data() + stream * kMaxBytes;
}

// Attach wants a connected TCP socket, and the fake only uses its number:
// the same few pairs serve every input, so millions of runs open no fds.
int ClientFd(int socket) {
  static const std::vector<TcpPair>* const pairs = [] {
    auto* p = new std::vector<TcpPair>;
    for (int i = 0; i < kSockets; ++i) {
      absl::StatusOr<TcpPair> pair = MakeTcpPair();
      if (!pair.ok()) Die(pair.status().ToString());
      p->push_back(*std::move(pair));
    }
    return p;
  }();
  return (*pairs)[socket].client;
}

// Memory for buffers, made once: a fresh allocation per buffer makes ASan map
// and fault in new pages for every input. Each input carves it up again, with
// a poisoned gap after every buffer, so that a read past a buffer's end is
// reported and can never find the stream's next bytes.
class Pool {
 public:
  explicit Pool(uint64_t size) : data_(new unsigned char[size]), size_(size) {}

  unsigned char* data() const { return data_; }
  uint64_t size() const { return size_; }

  void Reset() { Rewind(0); }
  // Null when `length` does not fit.
  unsigned char* Take(uint64_t length) {
    const uint64_t next = (used_ + length + kGap + 15) & ~uint64_t{15};
    if (next > size_) return nullptr;
    unsigned char* p = data_ + used_;
    ASAN_POISON_MEMORY_REGION(p + length, next - used_ - length);
    used_ = next;
    return p;
  }
  uint64_t used() const { return used_; }
  // Gives back everything taken since `used()` was `mark`.
  void Rewind(uint64_t mark) {
    ASAN_UNPOISON_MEMORY_REGION(data_ + mark, used_ - mark);
    used_ = mark;
  }

 private:
  unsigned char* const data_;
  const uint64_t size_;
  uint64_t used_ = 0;
};

Pool& HeapPool() {
  static Pool* const pool = new Pool(kMaxBytes + kMaxBuffers * (kGap + 16));
  return *pool;
}

Pool& RegisteredPool() {
  static Pool* const pool = new Pool(kRegisteredBytes);
  return *pool;
}

class Harness {
 public:
  Harness(const uint8_t* data, size_t size) : in_(data, size) {}
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void Run() {
    Setup();
    for (int a = 0; a < kMaxActions && !in_.empty(); ++a) {
      Act();
      CheckViolations();
    }
    Finish();
  }

 private:
  // One Attach that succeeded.
  struct Conn {
    ConnectionId id;
    int socket = 0;
    int fd = -1;
    int stream = 0;
    size_t base = 0;        // received(fd).size() when attached
    size_t end = SIZE_MAX;  // ... when the next connection took the fd
    uint64_t max_queued = 0;
    uint64_t enqueued = 0;      // bytes enqueued: the stream's length
    uint64_t outstanding = 0;   // bytes enqueued and not yet released
    uint64_t buffers = 0;       // buffers enqueued
    bool closed = false;        // Close was called
    bool peer_error = false;    // the fake's socket failed while attached
    uint32_t retry_chains = 0;  // ConnectionOptions::adaptive_retry_chains
  };
  // One ledger token.
  struct Token {
    int conn = -1;
    uint64_t index = 0;  // enqueue order on the connection
    uint64_t end = 0;    // stream offset past its last byte
    uint64_t length = 0;
    bool queued = false;  // Enqueue took it
    int releases = 0;
  };

  void Setup();
  void Act();
  void Finish();

  int PickConn() {
    return conns_.empty() ? -1
                          : static_cast<int>(in_.Range(0, conns_.size() - 1));
  }
  uint64_t BufferSize();
  unsigned char* NewBuffer(uint64_t length, bool registered);
  bool Gone(const Conn& c) const {
    return ex_->ConnectionError(c.id).code() == absl::StatusCode::kNotFound;
  }
  bool AllIdle() const {
    for (const Conn& c : conns_) {
      if (!ex_->Idle(c.id)) return false;
    }
    return true;
  }

  void Attach();
  void EnqueueAction(bool batch);
  // Enqueues buffers of `sizes` on conns_[k], as one Enqueue each or as one
  // batch, and checks the outcome. `bad` >= 0 makes that buffer invalid
  // (kind 0: null base, 1: length 0); kind 2 passes one token too few.
  void Enqueue(int k, std::vector<uint64_t> sizes, bool batch, int bad,
               int bad_kind, bool registered);
  void EnqueueMessageAction();
  // Enqueues a prepared message of pieces of `sizes` on conns_[k], its
  // memory one region of the pool with the pieces in order or `backwards`
  // (so the message's bytes are not the region's), or a null message, and
  // checks the outcome; the message is one buffer and one token.
  void EnqueueMessage(int k, const std::vector<uint64_t>& sizes, bool backwards,
                      bool null, bool registered);
  void Poll(int times);
  void Flush();
  void DeliverOne();
  void AddFault();
  void InjectSubmitResult();
  void Capacity();
  void PeerError();
  // Close, or Abort (a reset: the fake fails the socket and posts what it
  // held).
  void Close(bool abort);
  void ZeroCopySupport();

  // On the caller's ring: the caller's loop, once: Prepare (then maybe its
  // own submit) or Flush, then reap and dispatch up to `batches` batches.
  void CallerLoop(int batches);
  // The caller's submit of the ring (consumes injected submit results).
  void CallerSubmit();
  // Reaps the fake and dispatches; with `executor_gone` the executor's
  // completions are dropped (the executor no longer exists).
  size_t ReapAndDispatch(int batches, bool executor_gone);
  // A foreign completion injected, or a NOP of the caller's on the ring.
  void Foreign();
  uint64_t ForeignUserData();

  // A call that may submit: fails (Internal) exactly when it consumed an
  // injected ring failure.
  void CheckSubmitOutcome(const absl::Status& s, uint64_t calls_before,
                          const char* what);
  void CheckViolations() const;

  void Released(ConnectionId id, uint64_t token, const absl::Status& status);
  void AfterCallback(ConnectionId id, uint64_t token,
                     const absl::Status& status);
  std::string Describe() const;

  Input in_;
  bool registered_ = false;  // RegisteredPool() is the ring's fixed buffer
  std::unique_ptr<FakeRing> fake_;
  TokenLedger ledger_;
  std::vector<Conn> conns_;
  std::vector<Token> tokens_ = std::vector<Token>(1);  // tokens start at 1
  int current_[kSockets] = {-1, -1, -1, -1};  // conns_ index on the socket
  int no_progress_faults_[kSockets] = {};
  std::deque<int> injected_;
  int attaches_ = 0;
  uint64_t bytes_ = 0;    // enqueued
  uint64_t buffers_ = 0;  // enqueued
  uint64_t ok_releases_ = 0;
  uint64_t failed_releases_ = 0;
  uint64_t kernel_may_read_releases_ = 0;
  unsigned char probe_byte_ = 0;
  uint64_t callbacks_ = 0;
  uint64_t callback_enqueues_ = 0;
  uint64_t enqueue_every_ = 0;  // in the callback, after every Nth; 0: never
  bool probe_ = false;          // in the callback, try the forbidden calls
  bool abrupt_ = false;         // destroy without draining
  int in_callback_ = 0;
  bool tearing_down_ = false;
  std::unique_ptr<Executor> executor_;
  Executor* ex_ = nullptr;
  // The caller's ring: the executor's tag, 0 for its own ring.
  uint8_t tag_ = 0;
  // Foreign completions due back to the caller, by user_data.
  std::map<uint64_t, int> foreign_due_;
  uint64_t foreign_injected_ = 0;
  uint64_t foreign_back_ = 0;
};

void Harness::Setup() {
  FakeRingOptions ro;
  ro.sq_entries = static_cast<uint32_t>(in_.Range(2, 64));
  switch (in_.Range(0, 3)) {
    case 0:
      ro.cq_entries = static_cast<uint32_t>(in_.Range(1, 8));
      break;
    case 1:
      ro.cq_entries = static_cast<uint32_t>(in_.Range(1, 1024));
      break;
    default:
      ro.cq_entries = 1024;
  }
  ro.notify_cancelled_zc = in_.Bool();
  // One input in eight runs on a ring that lacks some features.
  const uint64_t lacks = in_.Range(0, 255);
  if (lacks < 32) {
    ro.features.send_zc = (lacks & 1) == 0;
    ro.features.sendmsg_zc = (lacks & 2) == 0;
    ro.features.zc_report_usage = (lacks & 4) == 0;
    ro.features.sendmsg_zc_fixed = (lacks & 8) == 0;
    ro.features.async_cancel_fd = (lacks & 16) == 0;
  }
  fake_ = std::make_unique<FakeRing>(ro);
  fake_->set_hold_notifications(in_.Bool());

  ExecutorOptions eo;
  const uint64_t caps[] = {0,         8 * 1024,   12 * 1024,   16 * 1024,
                           64 * 1024, 256 * 1024, 1024 * 1024, 0};
  eo.max_bytes_awaiting_notification = in_.Pick(caps);
  eo.teardown_timeout =
      in_.Bool() ? absl::ZeroDuration() : absl::Microseconds(100);
  const uint64_t mode = in_.Range(0, 255);
  abrupt_ = (mode & 7) == 0;
  const uint64_t every = (mode >> 3) & 7;
  enqueue_every_ = every < 3 ? 0 : every - 1;
  probe_ = ((mode >> 6) & 1) != 0;
  if (in_.Range(0, 3) == 0) {
    tag_ = static_cast<uint8_t>(in_.Range(1, 254));
    eo.user_data_tag = tag_;
  }
  if (((mode >> 7) & 1) != 0) {
    eo.on_release_batch = [this, inner = ledger_.batch_callback()](
                              ConnectionId id, absl::Span<const uint64_t> ts,
                              const absl::Status& status) {
      if (ts.empty()) Die("empty batch released");
      for (size_t i = 0; i < ts.size(); ++i) {
        if (ts[i] >= tokens_.size() || !tokens_[ts[i]].queued) {
          Die(absl::StrCat("unknown token ", ts[i], " released"));
        }
        if (i > 0 && (tokens_[ts[i]].conn != tokens_[ts[0]].conn ||
                      tokens_[ts[i]].index != tokens_[ts[i - 1]].index + 1)) {
          Die(absl::StrCat("batch of ", ts.size(), " tokens is not a run: ",
                           ts[i - 1], " then ", ts[i]));
        }
      }
      ++in_callback_;
      inner(id, ts, status);
      for (uint64_t t : ts) Released(id, t, status);
      AfterCallback(id, ts[0], status);
      --in_callback_;
    };
  } else {
    eo.on_release = [this, inner = ledger_.callback()](
                        ConnectionId id, uint64_t token,
                        const absl::Status& status) {
      ++in_callback_;
      inner(id, token, status);
      Released(id, token, status);
      AfterCallback(id, token, status);
      --in_callback_;
    };
  }
  absl::StatusOr<std::unique_ptr<Executor>> made = Executor::CreateWithRing(
      std::make_unique<BorrowedRing>(fake_.get()), std::move(eo));
  if (!made.ok()) Die(made.status().ToString());
  executor_ = *std::move(made);
  ex_ = executor_.get();

  HeapPool().Reset();
  RegisteredPool().Reset();
  if (in_.Range(0, 3) == 0) {
    const struct iovec region = {RegisteredPool().data(),
                                 RegisteredPool().size()};
    const absl::Status s = ex_->RegisterBuffers({&region, 1});
    if (!s.ok()) Die(absl::StrCat("RegisterBuffers: ", s.ToString()));
    registered_ = true;
  }
  Attach();
}

void Harness::Act() {
  const uint64_t op = in_.Range(0, 255);
  if (op < 48) {
    EnqueueAction(/*batch=*/false);
  } else if (op < 64) {
    EnqueueMessageAction();
  } else if (op < 88) {
    EnqueueAction(/*batch=*/true);
  } else if (op < 136) {
    if (tag_ == 0) {
      Poll(static_cast<int>(in_.Range(1, 4)));
    } else if (op < 120) {
      CallerLoop(static_cast<int>(in_.Range(1, 4)));
    } else {
      Foreign();
    }
  } else if (op < 144) {
    Flush();
  } else if (op < 160) {
    DeliverOne();
  } else if (op < 168) {
    fake_->DeliverAllNotifications(/*reverse=*/in_.Bool());
  } else if (op < 176) {
    fake_->set_hold_notifications(in_.Bool());
  } else if (op < 200) {
    AddFault();
  } else if (op < 210) {
    InjectSubmitResult();
  } else if (op < 222) {
    Capacity();
  } else if (op < 227) {
    PeerError();
  } else if (op < 230) {
    Close(/*abort=*/false);
  } else if (op < 232) {
    Close(/*abort=*/true);
  } else if (op < 240) {
    Attach();
  } else if (op < 248) {
    ZeroCopySupport();
  } else if (op < 252) {
    fake_->set_cq_entries(static_cast<uint32_t>(in_.Range(1, 1024)));
  } else {
    // Adaptive zero-copy sees the route change: copied or not from now on.
    const int k = PickConn();
    if (k >= 0) fake_->SetCopied(conns_[k].fd, in_.Bool());
  }
}

uint64_t Harness::BufferSize() {
  switch (in_.Range(0, 7)) {
    case 0:
    case 1:
    case 2:
    case 3:
      return in_.Range(1, 256);
    case 4:
    case 5:
      return in_.Range(257, 8 * 1024);
    case 6:
      return in_.Range(8 * 1024 + 1, 64 * 1024);
    default:
      return in_.Range(64 * 1024 + 1, 200 * 1024);
  }
}

unsigned char* Harness::NewBuffer(uint64_t length, bool registered) {
  if (registered && registered_) {
    if (unsigned char* p = RegisteredPool().Take(length)) return p;
  }
  // Enqueues within the limits always fit; a refused one gives its back.
  unsigned char* p = HeapPool().Take(length);
  if (p == nullptr) Die("the buffer pool is too small");
  return p;
}

void Harness::Attach() {
  const int socket = static_cast<int>(in_.Range(0, kSockets - 1));
  const int fd = ClientFd(socket);
  ConnectionOptions o;
  const uint64_t thresholds[] = {
      0, 1, 1000, 4096, 16 * 1024, 64 * 1024, PlanOptions::kNever, 0};
  const uint64_t t = in_.Range(0, 7);
  o.plan.zc_threshold = t == 7 ? in_.Range(1, 256 * 1024) : thresholds[t];
  o.plan.copy_op = in_.Bool() ? CopyOp::kSendmsg : CopyOp::kWritev;
  const uint32_t iovs[] = {1, 2, 3, 4, 8, 64, kMaxIovsPerOp, kMaxIovsPerOp};
  o.plan.max_iovs_per_op = in_.Pick(iovs);
  const uint64_t op_bytes[] = {kMaxBytesPerOp, kMaxBytesPerOp, 1024,
                               4096,           4097,           16 * 1024,
                               64 * 1024,      100 * 1000};
  o.plan.max_bytes_per_op = in_.Pick(op_bytes);
  const uint64_t chain = in_.Range(0, 7);
  o.plan.max_ops_per_chain = chain < 4 ? 64u
                             : chain == 7
                                 ? kMaxOpsPerChain
                                 : static_cast<uint32_t>(in_.Range(1, 64));
  const uint64_t gaps[] = {0, 0, 8, 64, 4096, 64 * 1024};
  o.plan.zc_gap_bytes = in_.Pick(gaps);
  o.adaptive_zero_copy = in_.Bool();
  o.adaptive_copied_limit = static_cast<uint32_t>(in_.Range(1, 8));
  const uint32_t retries[] = {0, 1, 2, 3, 5, 8, 4096, 1};
  o.adaptive_retry_chains = in_.Pick(retries);
  if (in_.Range(0, 3) == 0) o.max_queued_bytes = in_.Range(1, 256 * 1024);
  const uint64_t invalid = in_.Range(0, 31);
  switch (invalid) {
    case 0:
      o.plan.max_iovs_per_op = in_.Bool() ? 0 : kMaxIovsPerOp + 1;
      break;
    case 1:
      o.adaptive_copied_limit = 0;
      break;
    case 2:
      o.max_queued_bytes = 0;
      break;
    default:
      break;
  }
  const bool zc_supported = in_.Range(0, 7) != 0;
  const bool copied = in_.Bool();
  if (attaches_ >= kMaxAttaches) return;

  // The fd is taken until its connection is closed and idle.
  const bool taken = current_[socket] >= 0 && !Gone(conns_[current_[socket]]);
  if (!taken && invalid > 2) {
    // A fresh peer on the old socket number.
    fake_->SetSocketError(fd, 0);
    fake_->SetCapacity(fd, -1);
    fake_->SetZeroCopySupported(fd, zc_supported);
    fake_->SetCopied(fd, copied);
  }
  const absl::StatusOr<ConnectionId> id = ex_->Attach(fd, o);
  if (taken || invalid <= 2) {
    if (id.status().code() != absl::StatusCode::kInvalidArgument) {
      Die(absl::StrCat("Attach of fd ", fd, taken ? " (taken)" : "",
                       " with invalid=", invalid,
                       ": want InvalidArgument, got ", id.status().ToString()));
    }
    return;
  }
  if (!id.ok()) Die(absl::StrCat("Attach: ", id.status().ToString()));
  Conn c;
  c.id = *id;
  c.socket = socket;
  c.fd = fd;
  c.stream = attaches_++;
  c.base = fake_->received(fd).size();
  c.max_queued = o.max_queued_bytes;
  c.retry_chains = o.adaptive_retry_chains;
  if (current_[socket] >= 0) conns_[current_[socket]].end = c.base;
  current_[socket] = static_cast<int>(conns_.size());
  conns_.push_back(c);
}

void Harness::EnqueueAction(bool batch) {
  const int k = PickConn();
  if (k < 0) return;
  const uint64_t n = batch ? in_.Range(0, kMaxBatch) : 1;
  std::vector<uint64_t> sizes;
  for (uint64_t i = 0; i < n; ++i) sizes.push_back(BufferSize());
  int bad = -1;
  int bad_kind = 0;
  if (in_.Range(0, 31) == 0 && n > 0) {
    bad = static_cast<int>(in_.Range(0, n - 1));
    bad_kind = static_cast<int>(in_.Range(0, batch ? 2 : 1));
  }
  const bool registered = in_.Bool();
  // Keep each input's work bounded.
  uint64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const uint64_t left = kMaxBytes - bytes_ - total;
    if (left == 0 || buffers_ + i >= kMaxBuffers) {
      sizes.resize(i);
      break;
    }
    sizes[i] = std::min(sizes[i], left);
    total += sizes[i];
  }
  if (bad >= static_cast<int>(sizes.size())) bad = -1;  // dropped
  if (sizes.empty() && !batch) return;
  Enqueue(k, std::move(sizes), batch, bad, bad_kind, registered);
}

void Harness::Enqueue(int k, std::vector<uint64_t> sizes, bool batch, int bad,
                      int bad_kind, bool registered) {
  Conn& c = conns_[k];
  const uint64_t heap_mark = HeapPool().used();
  const uint64_t registered_mark = RegisteredPool().used();
  std::vector<struct iovec> iovs;
  std::vector<uint64_t> ts;
  uint64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const uint64_t length = sizes[i];
    unsigned char* p = NewBuffer(length, registered);
    std::memcpy(p, Pattern(c.stream) + c.enqueued + total, length);
    struct iovec iov = {p, length};
    if (static_cast<int>(i) == bad && bad_kind == 0) iov.iov_base = nullptr;
    if (static_cast<int>(i) == bad && bad_kind == 1) iov.iov_len = 0;
    const uint64_t token = ledger_.Expect(c.id, iov.iov_base, iov.iov_len);
    if (token >= tokens_.size()) tokens_.resize(token + 1);
    Token& t = tokens_[token];
    t.conn = k;
    t.index = c.buffers + i;
    t.length = length;
    total += length;
    t.end = c.enqueued + total;
    iovs.push_back(iov);
    ts.push_back(token);
  }
  const bool invalid = bad >= 0;

  // What the API promises, in the order it checks.
  absl::StatusCode want;
  const absl::Status error = ex_->ConnectionError(c.id);
  if (error.code() == absl::StatusCode::kNotFound) {
    if (!c.closed) Die(absl::StrCat("connection ", c.id.value, " vanished"));
    want = absl::StatusCode::kNotFound;
  } else if (invalid) {
    want = absl::StatusCode::kInvalidArgument;
  } else if (!error.ok()) {
    want = absl::StatusCode::kFailedPrecondition;
  } else if (c.outstanding + total > c.max_queued) {
    want = absl::StatusCode::kResourceExhausted;
  } else {
    want = absl::StatusCode::kOk;
  }

  absl::Status s;
  if (batch) {
    absl::Span<const uint64_t> tokens = ts;
    if (bad >= 0 && bad_kind == 2) tokens.remove_suffix(1);
    s = ex_->Enqueue(c.id, iovs, tokens);
  } else {
    s = ex_->Enqueue(c.id, iovs[0].iov_base, iovs[0].iov_len, ts[0]);
  }
  // Inside a per-buffer callback the executor has already let go of the
  // bytes of the whole run, not only of the buffers reported so far.
  const bool loose = in_callback_ > 0 &&
                     want == absl::StatusCode::kResourceExhausted && s.ok();
  if (s.code() != want && !loose) {
    Die(absl::StrCat(batch ? "batch " : "", "Enqueue of ", sizes.size(),
                     " buffer(s), ", total, " bytes, on connection ",
                     c.id.value, " (", c.outstanding, " outstanding, max ",
                     c.max_queued, ", error ", error.ToString(), "): want ",
                     absl::StatusCodeToString(want), ", got ", s.ToString()));
  }
  if (!s.ok()) {
    for (uint64_t token : ts) ledger_.Forget(token);
    HeapPool().Rewind(heap_mark);
    RegisteredPool().Rewind(registered_mark);
    return;
  }
  for (uint64_t token : ts) tokens_[token].queued = true;
  c.enqueued += total;
  c.outstanding += total;
  c.buffers += ts.size();
  bytes_ += total;
  buffers_ += ts.size();
}

void Harness::EnqueueMessageAction() {
  const int k = PickConn();
  if (k < 0) return;
  const uint64_t n = in_.Range(1, 8);
  std::vector<uint64_t> sizes;
  uint64_t total = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t left = kMaxBytes - bytes_ - total;
    if (left == 0) break;
    sizes.push_back(std::min(BufferSize(), left));
    total += sizes.back();
  }
  const bool backwards = in_.Bool();
  const bool null = in_.Range(0, 31) == 0;
  const bool registered = in_.Bool();
  if (sizes.empty() || buffers_ >= kMaxBuffers) return;
  EnqueueMessage(k, sizes, backwards, null, registered);
}

void Harness::EnqueueMessage(int k, const std::vector<uint64_t>& sizes,
                             bool backwards, bool null, bool registered) {
  Conn& c = conns_[k];
  const uint64_t heap_mark = HeapPool().used();
  const uint64_t registered_mark = RegisteredPool().used();
  uint64_t total = 0;
  for (uint64_t size : sizes) total += size;
  unsigned char* region = NewBuffer(total, registered);
  std::vector<struct iovec> iovs;
  uint64_t before = 0;
  for (uint64_t size : sizes) {
    unsigned char* p = region + (backwards ? total - before - size : before);
    std::memcpy(p, Pattern(c.stream) + c.enqueued + before, size);
    iovs.push_back({p, size});
    before += size;
  }
  std::shared_ptr<const PreparedMessage> message;
  if (!null) {
    absl::StatusOr<std::shared_ptr<const PreparedMessage>> made =
        PreparedMessage::Create(iovs);
    if (!made.ok()) {
      Die(absl::StrCat("PreparedMessage::Create: ", made.status().ToString()));
    }
    if ((*made)->bytes() != total || (*made)->size() != sizes.size()) {
      Die("PreparedMessage: wrong size or bytes");
    }
    message = *std::move(made);
  }
  // The ledger poisons the whole region at the release.
  const uint64_t token = ledger_.Expect(c.id, region, total);
  if (token >= tokens_.size()) tokens_.resize(token + 1);
  Token& t = tokens_[token];
  t.conn = k;
  t.index = c.buffers;
  t.length = total;
  t.end = c.enqueued + total;

  absl::StatusCode want;
  const absl::Status error = ex_->ConnectionError(c.id);
  if (error.code() == absl::StatusCode::kNotFound) {
    if (!c.closed) Die(absl::StrCat("connection ", c.id.value, " vanished"));
    want = absl::StatusCode::kNotFound;
  } else if (null) {
    want = absl::StatusCode::kInvalidArgument;
  } else if (!error.ok()) {
    want = absl::StatusCode::kFailedPrecondition;
  } else if (c.outstanding + total > c.max_queued) {
    want = absl::StatusCode::kResourceExhausted;
  } else {
    want = absl::StatusCode::kOk;
  }
  const absl::Status s = ex_->EnqueueMessage(c.id, message, token);
  // As for Enqueue: inside a per-buffer callback the executor has already
  // let go of the bytes of the whole run.
  const bool loose = in_callback_ > 0 &&
                     want == absl::StatusCode::kResourceExhausted && s.ok();
  if (s.code() != want && !loose) {
    Die(absl::StrCat("EnqueueMessage of ", sizes.size(), " piece(s), ", total,
                     " bytes", null ? " (null)" : "", ", on connection ",
                     c.id.value, " (", c.outstanding, " outstanding, max ",
                     c.max_queued, ", error ", error.ToString(), "): want ",
                     absl::StatusCodeToString(want), ", got ", s.ToString()));
  }
  if (!s.ok()) {
    if (message != nullptr && message.use_count() != 1) {
      Die("a refused prepared message was kept by the executor");
    }
    ledger_.Forget(token);
    HeapPool().Rewind(heap_mark);
    RegisteredPool().Rewind(registered_mark);
    return;
  }
  if (message.use_count() < 2) {
    Die("the executor keeps no reference to an enqueued prepared message");
  }
  t.queued = true;
  c.enqueued += total;
  c.outstanding += total;
  c.buffers += 1;
  bytes_ += total;
  buffers_ += 1;
}

void Harness::Poll(int times) {
  // Poll, or the reactor's HandleReady, which enters the ring in rounds.
  const bool handle_ready = in_.Range(0, 3) == 0;
  for (int i = 0; i < times; ++i) {
    const uint64_t calls = fake_->submit_calls();
    const absl::StatusOr<size_t> n =
        handle_ready ? ex_->HandleReady() : ex_->Poll(absl::ZeroDuration());
    CheckSubmitOutcome(n.status(), calls,
                       handle_ready ? "HandleReady" : "Poll");
  }
}

void Harness::Flush() {
  const uint64_t calls = fake_->submit_calls();
  CheckSubmitOutcome(ex_->Flush(), calls, "Flush");
}

void Harness::DeliverOne() {
  const size_t held = fake_->held_notifications().size();
  if (held > 0) fake_->DeliverNotification(in_.Range(0, held - 1));
}

void Harness::AddFault() {
  const int k = PickConn();
  if (k < 0) return;
  const int opcodes[] = {-1,
                         IORING_OP_WRITEV,
                         IORING_OP_SEND,
                         IORING_OP_SENDMSG,
                         IORING_OP_SEND_ZC,
                         IORING_OP_SENDMSG_ZC};
  FakeFault f;
  bool no_progress = false;
  switch (in_.Range(0, 3)) {
    case 0:
    case 1:  // a short op
      f.opcode = in_.Pick(opcodes);
      f.max_bytes = static_cast<int64_t>(in_.Bool() ? in_.Range(0, 4096)
                                                    : in_.Range(0, 65536));
      no_progress = f.max_bytes == 0;
      break;
    case 2: {  // zero-copy refused before sending anything
      f.opcode = in_.Bool() ? IORING_OP_SEND_ZC : IORING_OP_SENDMSG_ZC;
      const int32_t errors[] = {-ENOMEM, -EOPNOTSUPP, -EINVAL};
      f.error = in_.Pick(errors);
      // F_MORE and a notification; neither; or, as for a cancelled op, a
      // notification without F_MORE. (F_MORE without a notification is a
      // kernel bug: the buffers would be held forever.)
      switch (in_.Range(0, 2)) {
        case 0:
          break;
        case 1:
          f.more = false;
          f.notify = false;
          break;
        default:
          f.more = false;
          break;
      }
      break;
    }
    default:  // -EAGAIN, after some progress or none
      f.opcode = in_.Pick(opcodes);
      f.max_bytes = static_cast<int64_t>(in_.Range(0, 16384));
      f.error = -EAGAIN;
      no_progress = true;
      break;
  }
  const int socket = conns_[k].socket;
  if (no_progress) {
    if (no_progress_faults_[socket] >= kMaxNoProgressFaults) return;
    ++no_progress_faults_[socket];
  }
  fake_->AddFault(conns_[k].fd, f);
}

void Harness::InjectSubmitResult() {
  const int results[] = {-EINTR, -EBUSY, -EAGAIN, -EINTR, -EBUSY, -EAGAIN,
                         -EINTR, -EBUSY, -EAGAIN, -EINTR, -EBUSY, -EAGAIN,
                         -EINTR, -EBUSY, -EAGAIN, -EFAULT};
  const int result = in_.Pick(results);
  injected_.push_back(result);
  fake_->InjectSubmitResult(result);
}

void Harness::Capacity() {
  const int k = PickConn();
  if (k < 0) return;
  const int fd = conns_[k].fd;
  switch (in_.Range(0, 3)) {
    case 0:
      fake_->SetCapacity(fd, static_cast<int64_t>(in_.Range(0, 65536)));
      break;
    case 1:
      fake_->AddCapacity(fd, static_cast<int64_t>(in_.Range(1, 65536)));
      break;
    case 2:
      fake_->SetCapacity(fd, 0);
      break;
    default:
      fake_->SetCapacity(fd, -1);
      break;
  }
}

void Harness::PeerError() {
  const int k = PickConn();
  if (k < 0) return;
  const int32_t errors[] = {-ECONNRESET, -EPIPE};
  const int socket = conns_[k].socket;
  conns_[current_[socket]].peer_error = true;
  fake_->SetSocketError(conns_[k].fd, in_.Pick(errors));
}

void Harness::Close(bool abort) {
  const int k = PickConn();
  if (k < 0) return;
  Conn& c = conns_[k];
  const bool gone = Gone(c);
  if (gone && !c.closed)
    Die(absl::StrCat("connection ", c.id.value, " vanished"));
  c.closed = true;
  const uint64_t calls = fake_->submit_calls();
  const absl::Status s = abort ? ex_->Abort(c.id) : ex_->Close(c.id);
  const char* what = abort ? "Abort" : "Close";
  if (gone) {
    if (s.code() != absl::StatusCode::kNotFound) {
      Die(absl::StrCat(what,
                       " of a closed, idle connection: want NotFound, got ",
                       s.ToString()));
    }
    return;
  }
  if (abort) c.peer_error = true;  // the reset fails the socket
  CheckSubmitOutcome(s, calls, what);
}

void Harness::ZeroCopySupport() {
  const int k = PickConn();
  if (k < 0) return;
  fake_->SetZeroCopySupported(conns_[k].fd, in_.Range(0, 3) != 0);
  fake_->SetCopied(conns_[k].fd, in_.Bool());
}

void Harness::CallerSubmit() {
  const uint64_t calls = fake_->submit_calls();
  fake_->SubmitAndWait(0, 0);
  // Whatever it drew is the caller's, not the executor's.
  for (uint64_t n = fake_->submit_calls() - calls; n > 0 && !injected_.empty();
       --n) {
    injected_.pop_front();
  }
}

void Harness::CallerLoop(int batches) {
  const uint64_t calls = fake_->submit_calls();
  switch (in_.Range(0, 3)) {
    case 0:
      CheckSubmitOutcome(ex_->Flush(), calls, "Flush");
      break;
    case 1:  // Prepare, and the caller submits later
      CheckSubmitOutcome(ex_->Prepare(), calls, "Prepare");
      break;
    default:
      CheckSubmitOutcome(ex_->Prepare(), calls, "Prepare");
      CallerSubmit();
      break;
  }
  ReapAndDispatch(batches, /*executor_gone=*/false);
}

size_t Harness::ReapAndDispatch(int batches, bool executor_gone) {
  size_t total = 0;
  // The executor's completions in a row, for the batch form; handed over
  // before anything after them, so that they keep the ring's order.
  std::vector<io_uring_cqe> ours;
  auto hand_over = [&] {
    if (ours.empty()) return;
    std::vector<io_uring_cqe*> ptrs;
    for (io_uring_cqe& o : ours) ptrs.push_back(&o);
    // A foreign one in the span is skipped and not counted.
    io_uring_cqe stranger{};
    stranger.user_data = 7;
    const bool mixed = in_.Bool();
    if (mixed) ptrs.insert(ptrs.begin() + ptrs.size() / 2, &stranger);
    if (ex_->HandleCompletions(ptrs) != ours.size()) {
      Die("HandleCompletions did not count exactly its own");
    }
    ours.clear();
  };
  for (int b = 0; b < batches; ++b) {
    Completion cqes[16];
    const size_t n = fake_->Reap(absl::MakeSpan(
        cqes, executor_gone ? 16 : static_cast<size_t>(in_.Range(1, 16))));
    total += n;
    for (size_t i = 0; i < n; ++i) {
      io_uring_cqe cqe{};
      cqe.user_data = cqes[i].user_data;
      cqe.res = cqes[i].res;
      cqe.flags = cqes[i].flags;
      const bool owned = (cqe.user_data >> 56) == tag_;
      if (!executor_gone && ex_->Owns(cqe.user_data) != owned) {
        Die(absl::StrCat("Owns(", cqe.user_data, ") is ", !owned, " with tag ",
                         tag_));
      }
      if (owned) {
        if (executor_gone) continue;
        if (in_.Bool()) {
          ours.push_back(cqe);
          continue;
        }
        hand_over();
        if (!ex_->HandleCompletion(cqe)) {
          Die(absl::StrCat("HandleCompletion refused its own ", cqe.user_data));
        }
        continue;
      }
      auto it = foreign_due_.find(cqe.user_data);
      if (it == foreign_due_.end() || it->second == 0) {
        Die(absl::StrCat("foreign completion ", cqe.user_data,
                         " came back to the caller more often than it was "
                         "posted"));
      }
      --it->second;
      ++foreign_back_;
      if (!executor_gone) {
        hand_over();
        if (in_.Range(0, 3) == 0 && ex_->HandleCompletion(cqe)) {
          Die(absl::StrCat("HandleCompletion took foreign ", cqe.user_data));
        }
      }
    }
    if (!executor_gone) hand_over();
    if (n == 0) break;
  }
  return total;
}

uint64_t Harness::ForeignUserData() {
  const uint64_t low56 = (uint64_t{1} << 56) - 1;
  uint64_t other = in_.Range(0, 255);
  if (other == tag_) other = 0;
  uint64_t ud = 0;
  switch (in_.Range(0, 7)) {
    case 0:
      ud = 7;
      break;
    case 1:
      ud = uint64_t{1} << 32;
      break;
    case 2:
      ud = in_.Bool() ? 0 : ~uint64_t{0};
      break;
    case 3:
    case 4: {
      // An op of the executor's, in flight or not, under another top byte
      // (0 is what an untagged executor would have used).
      const std::vector<SqeRecord>& log = fake_->log();
      ud = in_.Range(0, 255);
      for (size_t i = log.size(); i > 0; --i) {
        if ((log[i - 1].user_data >> 56) == tag_ && in_.Range(0, 3) != 0) {
          ud = log[i - 1].user_data;
          break;
        }
      }
      ud = (ud & low56) | (in_.Bool() ? 0 : other << 56);
      break;
    }
    case 5:  // the internal bit, as the executor's cancels carry it
      ud = (other << 56) | (uint64_t{1} << 55);
      break;
    default:
      ud = (other << 56) | in_.Range(0, 0xFFFFFFFF);
      break;
  }
  if ((ud >> 56) == tag_) ud &= low56;  // tag_ is never 0
  return ud;
}

void Harness::Foreign() {
  const uint64_t ud = ForeignUserData();
  if (ex_->Owns(ud)) Die(absl::StrCat("Owns foreign ", ud));
  if (in_.Range(0, 3) == 0) {
    // The caller's own SQE, queued between the executor's calls.
    io_uring_sqe* sqe = fake_->GetSqe();
    if (sqe == nullptr) return;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, ud);
  } else {
    const uint32_t flags[] = {0, IORING_CQE_F_MORE, IORING_CQE_F_NOTIF,
                              IORING_CQE_F_NOTIF | IORING_CQE_F_MORE};
    const int32_t results[] = {
        0, 1, 1 << 20, -ECANCELED, -ENOENT, static_cast<int32_t>(0x80000000u)};
    fake_->InjectCompletion({ud, in_.Pick(results), in_.Pick(flags)});
  }
  ++foreign_due_[ud];
  ++foreign_injected_;
}

void Harness::CheckSubmitOutcome(const absl::Status& s, uint64_t calls_before,
                                 const char* what) {
  bool ring_failed = false;
  for (uint64_t n = fake_->submit_calls() - calls_before;
       n > 0 && !injected_.empty(); --n) {
    ring_failed |= injected_.front() == -EFAULT;
    injected_.pop_front();
  }
  if (ring_failed ? s.code() == absl::StatusCode::kInternal : s.ok()) return;
  Die(absl::StrCat(what, ring_failed ? " after an injected ring failure" : "",
                   ": ", s.ToString()));
}

void Harness::CheckViolations() const {
  const std::vector<std::string>& v = fake_->violations();
  if (v.empty()) return;
  std::string message = absl::StrCat(v.size(), " fake ring violation(s):");
  for (size_t i = 0; i < v.size() && i < 5; ++i) {
    absl::StrAppend(&message, "\n  ", v[i]);
  }
  Die(message);
}

void Harness::Released(ConnectionId id, uint64_t token,
                       const absl::Status& status) {
  if (token >= tokens_.size() || !tokens_[token].queued) {
    Die(absl::StrCat("unknown token ", token, " released"));
  }
  Token& t = tokens_[token];
  if (++t.releases > 1) {
    Die(absl::StrCat("token ", token, " released ", t.releases, " times"));
  }
  Conn& c = conns_[t.conn];
  if (c.id != id) {
    Die(absl::StrCat("token ", token, " of connection ", c.id.value,
                     " released on connection ", id.value));
  }
  c.outstanding -= t.length;
  if (status.ok()) {
    ++ok_releases_;
    const uint64_t sent = fake_->received(c.fd).size() - c.base;
    if (sent < t.end) {
      Die(absl::StrCat("token ", token, " (connection ", id.value,
                       ", stream bytes [", t.end - t.length, ", ", t.end,
                       ")) released OK with only ", sent,
                       " bytes of the stream sent"));
    }
    return;
  }
  ++failed_releases_;
  if (KernelMayStillRead(status)) {
    // Only teardown gives up on the kernel, and never after a full drain.
    if (!tearing_down_ || !abrupt_) {
      Die(absl::StrCat(
          "token ", token, " released as KernelMayStillRead ",
          tearing_down_ ? "by teardown after a full drain" : "before teardown",
          ": ", status.ToString()));
    }
    ++kernel_may_read_releases_;
    return;
  }
  if (tearing_down_) return;
  const absl::Status error = ex_->ConnectionError(id);
  if (error.ok() || error != status) {
    Die(absl::StrCat("token ", token, " released with ", status.ToString(),
                     " but connection ", id.value, " has error ",
                     error.ToString()));
  }
}

void Harness::AfterCallback(ConnectionId id, uint64_t token,
                            const absl::Status& status) {
  ++callbacks_;
  if (tearing_down_) return;
  if (probe_ && callbacks_ % 8 == 0) {
    const absl::StatusCode codes[] = {
        ex_->Poll(absl::ZeroDuration()).status().code(),
        ex_->Flush().code(),
        ex_->Close(id).code(),
        ex_->Abort(id).code(),
        ex_->Drain(absl::ZeroDuration()).code(),
        ex_->Shutdown(absl::ZeroDuration()).code(),
        ex_->RegisterBuffers({iovec{&probe_byte_, 1}}).code(),
        ex_->Attach(conns_[tokens_[token].conn].fd).status().code()};
    for (absl::StatusCode code : codes) {
      if (code != absl::StatusCode::kFailedPrecondition) {
        Die(absl::StrCat("a call the release callback may not make gave ",
                         absl::StatusCodeToString(code),
                         ", not FailedPrecondition"));
      }
    }
  }
  if (!status.ok() || enqueue_every_ == 0 || callbacks_ % enqueue_every_ != 0 ||
      callback_enqueues_ >= kMaxCallbackEnqueues || buffers_ >= kMaxBuffers) {
    return;
  }
  // Any connection, by either form.
  const uint64_t length = std::min<uint64_t>(
      1 + (callbacks_ * 2654435761u) % 3000, kMaxBytes - bytes_);
  if (length == 0) return;
  ++callback_enqueues_;
  const int k =
      static_cast<int>((tokens_[token].conn + callbacks_) % conns_.size());
  if (callbacks_ % 5 == 0 && length > 1) {
    // A prepared message of two pieces, the second first in memory.
    EnqueueMessage(k, {length / 2, length - length / 2}, /*backwards=*/true,
                   /*null=*/false, /*registered=*/callbacks_ % 3 == 0);
    return;
  }
  Enqueue(k, {length}, /*batch=*/callbacks_ % 2 == 0, -1, 0,
          /*registered=*/callbacks_ % 3 == 0);
}

std::string Harness::Describe() const {
  std::string out;
  for (const Conn& c : conns_) {
    absl::StrAppend(&out, "\n  connection ", c.id.value, " fd ", c.fd,
                    ": enqueued ", c.enqueued, " bytes, ", c.buffers,
                    " buffers, outstanding ", c.outstanding,
                    c.closed ? ", closed" : "",
                    c.peer_error ? ", peer error" : "",
                    ex_ != nullptr && !ex_->Idle(c.id) ? ", not idle" : "");
    if (ex_ != nullptr) {
      const absl::StatusOr<SendStats> s = ex_->connection_stats(c.id);
      if (s.ok()) absl::StrAppend(&out, "\n    ", FormatStats(*s));
      absl::StrAppend(&out,
                      "\n    error: ", ex_->ConnectionError(c.id).ToString());
    }
  }
  absl::StrAppend(&out, "\n  fake: ", fake_->held_notifications().size(),
                  " held notifications, ", fake_->blocked_ops(),
                  " blocked ops, ", fake_->sq_pending(), " SQEs pending, ",
                  fake_->cq_ready(), "+", fake_->cq_overflow(), " CQEs");
  return out;
}

void Harness::Finish() {
  if (!abrupt_) {
    fake_->set_hold_notifications(false);
    for (int socket = 0; socket < kSockets; ++socket) {
      fake_->SetCapacity(ClientFd(socket), -1);
    }
    bool idle = false;
    for (int round = 0; round < kMaxDrainRounds && !idle; ++round) {
      fake_->DeliverAllNotifications(/*reverse=*/round % 2 == 1);
      idle = AllIdle();
      if (idle) break;
      if (tag_ == 0) {
        Poll(1);
      } else {
        const uint64_t calls = fake_->submit_calls();
        CheckSubmitOutcome(ex_->Prepare(), calls, "Prepare");
        CallerSubmit();
        ReapAndDispatch(64, /*executor_gone=*/false);
      }
    }
    if (tag_ != 0 && idle) {
      // What came last (cancels' completions, foreign ones).
      CallerSubmit();
      ReapAndDispatch(64, /*executor_gone=*/false);
      if (!ex_->Idle())
        Die(absl::StrCat("every connection idle, but Idle() is false",
                         Describe()));
    }
    CheckViolations();
    if (!idle) {
      Die(absl::StrCat("not idle after ", kMaxDrainRounds,
                       " drain rounds with every notification delivered and "
                       "no capacity limit:",
                       Describe()));
    }
    if (ledger_.released() != ledger_.expected()) {
      Die(absl::StrCat("idle, but ", ledger_.released(), " of ",
                       ledger_.expected(), " buffers released"));
    }
    for (const Conn& c : conns_) {
      const absl::StatusOr<SendStats> cs = ex_->connection_stats(c.id);
      if (cs.ok() && c.retry_chains == 0 && cs->adaptive_retries != 0) {
        Die(absl::StrCat("connection ", c.id.value,
                         " retried zero-copy with adaptive_retry_chains 0"));
      }
      if (c.closed || c.peer_error) continue;
      const absl::Status error = ex_->ConnectionError(c.id);
      if (!error.ok()) {
        Die(absl::StrCat("connection ", c.id.value,
                         " failed with only recoverable faults: ",
                         error.ToString(), Describe()));
      }
    }
    const RingStats st = ex_->stats();
    const SendStats& t = st.totals;
    uint64_t received = 0;
    for (int socket = 0; socket < kSockets; ++socket) {
      received += fake_->received(ClientFd(socket)).size();
    }
    const std::string counters = absl::StrCat(
        "attached ", st.connections_attached, "/", attaches_, ", enqueued ",
        t.buffers_enqueued, "/", buffers_, " buffers ", t.bytes_enqueued, "/",
        bytes_, " bytes, released ", t.buffers_released, "/", ok_releases_,
        " ok ", t.buffers_released_failed, "/", failed_releases_,
        " failed, awaiting notification ", t.bytes_awaiting_notification,
        ", peak ", t.peak_bytes_awaiting_notification, " (cap ",
        ex_->max_bytes_awaiting_notification(), "), sent ",
        t.bytes_copied + t.bytes_zero_copy, "/", received, " bytes");
    if (st.connections_attached != static_cast<uint64_t>(attaches_) ||
        t.buffers_enqueued != buffers_ || t.bytes_enqueued != bytes_ ||
        t.buffers_released != ok_releases_ ||
        t.buffers_released_failed != failed_releases_ ||
        t.buffers_released + t.buffers_released_failed != buffers_ ||
        t.bytes_awaiting_notification != 0 ||
        t.peak_bytes_awaiting_notification >
            ex_->max_bytes_awaiting_notification() ||
        t.bytes_copied + t.bytes_zero_copy != received) {
      Die(absl::StrCat("counters disagree (executor/harness): ", counters));
    }
  }

  const size_t released = ledger_.released();
  tearing_down_ = true;
  executor_.reset();
  ex_ = nullptr;
  if (!abrupt_ && ledger_.released() != released) {
    Die("the destructor released buffers after a full drain");
  }
  const absl::Status once = ledger_.CheckAllReleasedOnce();
  if (!once.ok()) Die(once.ToString());
  if (ok_releases_ + failed_releases_ != buffers_) {
    Die(absl::StrCat(ok_releases_, " + ", failed_releases_, " releases for ",
                     buffers_, " buffers"));
  }
  CheckViolations();
  // The kernel goes on after the executor is gone: blocked sends run and the
  // notifications come. Every buffer handed back as reusable was poisoned,
  // those handed back as KernelMayStillRead were kept, so one released too
  // early shows up as a violation here.
  fake_->set_hold_notifications(false);
  for (int socket = 0; socket < kSockets; ++socket) {
    fake_->SetCapacity(ClientFd(socket), -1);
  }
  fake_->DeliverAllNotifications();
  if (tag_ != 0) {
    // The caller's loop goes on: its submits run what is left on the ring
    // (its own SQEs, and the executor's, made inert by the teardown), and
    // every foreign completion comes back to it.
    for (int round = 0;
         round < 8 || !injected_.empty() || fake_->sq_pending() > 0 ||
         fake_->cq_ready() > 0 || fake_->cq_overflow() > 0;
         ++round) {
      if (round > kMaxDrainRounds) Die("the caller's ring never emptied");
      CallerSubmit();
      fake_->DeliverAllNotifications();
      ReapAndDispatch(1 << 20, /*executor_gone=*/true);
    }
    for (const auto& [ud, due] : foreign_due_) {
      if (due != 0) {
        Die(absl::StrCat(due, " foreign completion(s) with user_data ", ud,
                         " never came back to the caller (", foreign_back_,
                         " of ", foreign_injected_, " did)"));
      }
    }
  }
  CheckViolations();
  for (const Conn& c : conns_) {
    const std::string& got = fake_->received(c.fd);
    const size_t n = std::min(c.end, got.size()) - c.base;
    const unsigned char* want = Pattern(c.stream);
    if (n > c.enqueued) {
      Die(absl::StrCat("connection ", c.id.value, " received ", n, " bytes of ",
                       c.enqueued, " enqueued"));
    }
    const auto* p = reinterpret_cast<const unsigned char*>(got.data()) + c.base;
    if (std::memcmp(p, want, n) != 0) {
      size_t i = 0;
      while (p[i] == want[i]) ++i;
      Die(absl::StrCat("connection ", c.id.value, " received ", n,
                       " bytes; the first wrong one is byte ", i));
    }
    if (!abrupt_ && !c.closed && !c.peer_error && n != c.enqueued) {
      Die(absl::StrCat("connection ", c.id.value, " received ", n, " bytes of ",
                       c.enqueued, " enqueued, with no error"));
    }
  }
}

}  // namespace
}  // namespace zcplan

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zcplan::Harness harness(data, size);
  harness.Run();
  return 0;
}
