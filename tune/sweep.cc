// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tune/sweep.h"

#include <arpa/inet.h>
#include <netinet/in.h>
// linux/tcp.h, not netinet/tcp.h: glibc's tcp_info lacks tcpi_bytes_acked.
#include <linux/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/memlock.h"
#include "zcplan/uring/net.h"
#include "zcplan/uring/receiver.h"

namespace zcplan {
namespace {

using Fd = UniqueFd;

// How long the receiver thread may take to read what is left after the FIN.
constexpr absl::Duration kSinkDrainTimeout = absl::Seconds(10);

double ThreadCpuSeconds() {
  struct rusage ru = {};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

absl::StatusOr<Fd> ConnectTo(const std::string& peer) {
  absl::StatusOr<std::pair<std::string, std::string>> hp = SplitHostPort(peer);
  if (!hp.ok()) return hp.status();
  return ConnectTcp(hp->first, hp->second);
}

// The buffers of one message in flight: every piece starts on its own page
// with a free page after it, so no two pieces are contiguous in memory.
struct MessageBuffers {
  std::vector<std::unique_ptr<unsigned char[]>> storage;
  std::vector<std::vector<iovec>> pieces;  // per workload message
};

// Adds `b` to `a`, saturating at UINT64_MAX.
uint64_t AddSaturating(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

// The bytes MakeBuffers allocates for one message of `sizes`.
uint64_t MessageSpan(const std::vector<uint64_t>& sizes) {
  uint64_t span = kPageBytes;  // alignment
  for (uint64_t s : sizes)
    span = AddSaturating(span, RoundUpToPage(s) + kPageBytes);
  return span;
}

// One copy of the workload; Cancelled as soon as `should_stop` says so.
absl::StatusOr<MessageBuffers> MakeBuffers(
    const std::vector<std::vector<uint64_t>>& messages,
    const std::function<bool()>& should_stop) {
  MessageBuffers b;
  for (const std::vector<uint64_t>& sizes : messages) {
    if (should_stop && should_stop()) {
      return absl::CancelledError("stopped while preparing the buffers");
    }
    const uint64_t span = MessageSpan(sizes);
    b.storage.emplace_back(new unsigned char[span]);
    unsigned char* base = b.storage.back().get();
    std::memset(base, 0x5a, span);  // fault the pages in before timing
    unsigned char* p = reinterpret_cast<unsigned char*>(
        (reinterpret_cast<uintptr_t>(base) + kPageBytes - 1) / kPageBytes *
        kPageBytes);
    std::vector<iovec> message;
    for (uint64_t s : sizes) {
      message.push_back(iovec{p, s});
      p += RoundUpToPage(s) + kPageBytes;
    }
    b.pieces.push_back(std::move(message));
  }
  return b;
}

// Takes buffer memory the kernel may still read after its sweep ended and
// never frees it (see Sweep::Impl::Abandon).
void KeepAliveForever(std::vector<std::unique_ptr<unsigned char[]>> storage) {
  static auto* mu = new std::mutex();
  static auto* kept = new std::vector<std::unique_ptr<unsigned char[]>>();
  const std::lock_guard<std::mutex> lock(*mu);
  for (std::unique_ptr<unsigned char[]>& p : storage) {
    kept->push_back(std::move(p));
  }
}

}  // namespace

uint64_t SweepBufferBytes(const SweepOptions& o) {
  uint64_t per_slot = 0;
  for (const std::vector<uint64_t>& sizes : o.messages) {
    per_slot = AddSaturating(per_slot, MessageSpan(sizes));
  }
  const uint64_t slots = o.messages_in_flight;
  return slots != 0 && per_slot > UINT64_MAX / slots ? UINT64_MAX
                                                     : per_slot * slots;
}

absl::Status ValidateSweepOptions(const SweepOptions& o) {
  if (o.messages.empty()) {
    return absl::InvalidArgumentError("the workload has no message");
  }
  for (size_t i = 0; i < o.messages.size(); ++i) {
    if (o.messages[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("workload message ", i + 1, " has no buffer"));
    }
    for (uint64_t s : o.messages[i]) {
      if (s == 0 || s > (uint64_t{1} << 30)) {
        return absl::InvalidArgumentError(
            absl::StrCat("workload message ", i + 1, " has a buffer of ", s,
                         " bytes; expected 1..1G"));
      }
    }
  }
  if (o.settings.empty()) {
    return absl::InvalidArgumentError("no setting to sweep");
  }
  for (const SweepSetting& s : o.settings) {
    if (absl::Status v = ValidatePlanOptions(s.plan); !v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(DescribeSetting(s), ": ", v.message()));
    }
  }
  if (o.repetitions == 0 || o.repetitions > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetitions is ", o.repetitions, "; expected 1..1000"));
  }
  if (o.messages_in_flight == 0 || o.messages_in_flight > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "messages_in_flight is ", o.messages_in_flight, "; expected 1..1024"));
  }
  if (o.run_time <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("run_time must be positive");
  }
  if (o.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "idle_timeout must not be negative (zero: no limit)");
  }
  if (const uint64_t bytes = SweepBufferBytes(o);
      bytes > kMaxSweepBufferBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the buffers need ",
        bytes == UINT64_MAX
            ? std::string("more than 2^64 bytes")
            : absl::StrFormat("%d bytes (%.1f GiB)", bytes,
                              static_cast<double>(bytes) / (1 << 30)),
        " for ", o.messages_in_flight,
        " message(s) in flight (each a copy of the workload, every piece on "
        "its own pages plus a gap page), above the limit of ",
        kMaxSweepBufferBytes,
        " bytes (1 GiB); use fewer messages in flight or a smaller workload"));
  }
  return absl::OkStatus();
}

// One sweep: the executor, the connection, the buffers and the run in
// progress. Members are destroyed after `~Impl` has ended the connection
// and destroyed the executor (whose release callback writes into them).
class Sweep::Impl {
 public:
  explicit Impl(SweepOptions options) : o_(std::move(options)) {}
  ~Impl();

  absl::Status Start();
  absl::Status Run(const SweepProgress& progress);

  std::vector<SweepPoint> points_;
  size_t done_ = 0;
  size_t total_ = 0;
  std::string destination_;

 private:
  static uint64_t Token(uint32_t slot, size_t piece) {
    return (uint64_t{slot} << 32) | piece;
  }
  void OnRelease(uint64_t token, const absl::Status& status);

  absl::Status Attach(const SweepSetting& setting);
  absl::Status EnqueueMessage(uint32_t slot);
  absl::Status PollOnce();
  absl::Status PollUntilFinished();
  absl::Status Detach();
  absl::StatusOr<SweepRun> RunOnce(const SweepSetting& setting);
  absl::Status IdleError() const;
  // Called when the connection still holds buffers at the end: see ~Sweep.
  void Abandon();

  const SweepOptions o_;
  std::vector<MessageBuffers> buffers_;  // per slot
  std::vector<uint64_t> message_bytes_;  // per workload message
  std::unique_ptr<Receiver> sink_;       // Without a peer: reads and discards.
  Fd fd_;
  std::unique_ptr<Executor> executor_;

  // The connection and its run.
  ConnectionId id_;
  bool attached_ = false;
  size_t next_message_ = 0;
  std::vector<size_t> slot_message_;  // per slot: the message it holds
  std::vector<uint32_t> remaining_;   // per slot: buffers not yet released
  std::vector<uint32_t> finished_;    // slots whose message completed
  absl::Status error_;                // the first failed release
  uint64_t releases_ = 0;
  uint64_t outstanding_bytes_ = 0;  // enqueued, not yet released

  // Progress, for the idle timeout.
  uint64_t progress_releases_ = 0;
  uint64_t bytes_acked_ = 0;
  absl::Time last_progress_;
};

void Sweep::Impl::OnRelease(uint64_t token, const absl::Status& status) {
  const uint32_t slot = static_cast<uint32_t>(token >> 32);
  const size_t piece = static_cast<size_t>(token & 0xffffffffu);
  if (!status.ok() && error_.ok()) error_ = status;
  outstanding_bytes_ -=
      buffers_[slot].pieces[slot_message_[slot]][piece].iov_len;
  ++releases_;
  if (--remaining_[slot] == 0) finished_.push_back(slot);
}

absl::Status Sweep::Impl::Start() {
  if (absl::Status s = ValidateSweepOptions(o_); !s.ok()) return s;
  ExecutorOptions eo;
  eo.sq_entries = o_.sq_entries;
  // The sweep ends every connection itself (resetting a stalled one) before
  // destroying the executor, so teardown has nothing to wait for unless the
  // kernel kept a buffer even after a reset: do not wait long for that.
  eo.teardown_timeout = absl::Milliseconds(200);
  eo.on_release = [this](ConnectionId, uint64_t token,
                         const absl::Status& status) {
    OnRelease(token, status);
  };
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(eo);
  if (!executor.ok()) {
    return absl::UnavailableError(
        absl::StrCat("io_uring unavailable: ", executor.status().ToString()));
  }
  executor_ = std::move(*executor);

  destination_ = o_.peer;
  if (o_.peer.empty()) {
    absl::StatusOr<std::unique_ptr<Receiver>> sink =
        Receiver::Listen(ReceiverOptions());
    if (!sink.ok()) return sink.status();
    sink_ = std::move(*sink);
    destination_ = absl::StrCat("the receiver thread on ", sink_->address());
  }
  absl::StatusOr<Fd> fd = o_.peer.empty()
                              ? ConnectTcp("127.0.0.1", sink_->port())
                              : ConnectTo(o_.peer);
  if (!fd.ok()) return fd.status();
  fd_ = std::move(*fd);
  const int one = 1;
  setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  const uint32_t slots = o_.messages_in_flight;
  for (uint32_t i = 0; i < slots; ++i) {
    absl::StatusOr<MessageBuffers> b = MakeBuffers(o_.messages, o_.should_stop);
    if (!b.ok()) return b.status();
    buffers_.push_back(std::move(*b));
  }
  for (const std::vector<uint64_t>& m : o_.messages) {
    uint64_t sum = 0;
    for (uint64_t s : m) sum += s;
    message_bytes_.push_back(sum);
  }
  slot_message_.assign(slots, 0);
  remaining_.assign(slots, 0);
  points_.resize(o_.settings.size());
  for (size_t i = 0; i < points_.size(); ++i) {
    points_[i].setting = o_.settings[i];
  }
  total_ = points_.size() * o_.repetitions;
  return absl::OkStatus();
}

absl::Status Sweep::Impl::Attach(const SweepSetting& setting) {
  ConnectionOptions co;
  co.plan = setting.plan;
  co.adaptive_zero_copy = setting.adaptive;
  absl::StatusOr<ConnectionId> attached = executor_->Attach(fd_.get(), co);
  if (!attached.ok()) return attached.status();
  id_ = *attached;
  attached_ = true;
  finished_.clear();
  progress_releases_ = releases_;
  last_progress_ = absl::Now();
  return absl::OkStatus();
}

absl::Status Sweep::Impl::EnqueueMessage(uint32_t slot) {
  const size_t m = next_message_++ % o_.messages.size();
  slot_message_[slot] = m;
  const std::vector<iovec>& pieces = buffers_[slot].pieces[m];
  remaining_[slot] = static_cast<uint32_t>(pieces.size());
  outstanding_bytes_ += message_bytes_[m];
  for (size_t i = 0; i < pieces.size(); ++i) {
    absl::Status s = executor_->Enqueue(id_, pieces[i].iov_base,
                                        pieces[i].iov_len, Token(slot, i));
    if (!s.ok()) {
      // The executor did not take this piece or the ones after it.
      remaining_[slot] -= static_cast<uint32_t>(pieces.size() - i);
      for (size_t k = i; k < pieces.size(); ++k) {
        outstanding_bytes_ -= pieces[k].iov_len;
      }
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Sweep::Impl::IdleError() const {
  return absl::DeadlineExceededError(absl::StrCat(
      "no progress for ", absl::FormatDuration(o_.idle_timeout), ": ",
      destination_, " acknowledged no byte and no buffer was released; ",
      outstanding_bytes_, " bytes outstanding (enqueued, not released)"));
}

absl::Status Sweep::Impl::PollOnce() {
  if (o_.should_stop && o_.should_stop()) {
    return absl::CancelledError("stopped");
  }
  absl::StatusOr<size_t> n = executor_->Poll(absl::Milliseconds(100));
  if (!n.ok()) return n.status();
  if (o_.idle_timeout <= absl::ZeroDuration()) return absl::OkStatus();
  const absl::Time now = absl::Now();
  if (releases_ != progress_releases_) {
    progress_releases_ = releases_;
    last_progress_ = now;
    return absl::OkStatus();
  }
  // Only look at the socket once releases have paused for a while: a
  // getsockopt per poll would add to the CPU time being measured.
  if (now - last_progress_ < absl::Milliseconds(100)) return absl::OkStatus();
  struct tcp_info info = {};
  socklen_t len = sizeof(info);
  if (getsockopt(fd_.get(), IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
      len >= offsetof(struct tcp_info, tcpi_bytes_acked) +
                 sizeof(info.tcpi_bytes_acked) &&
      info.tcpi_bytes_acked != bytes_acked_) {
    bytes_acked_ = info.tcpi_bytes_acked;
    last_progress_ = now;
    return absl::OkStatus();
  }
  if (now - last_progress_ >= o_.idle_timeout) return IdleError();
  return absl::OkStatus();
}

absl::Status Sweep::Impl::PollUntilFinished() {
  while (finished_.empty() && error_.ok()) {
    if (absl::Status s = PollOnce(); !s.ok()) return s;
  }
  return error_;
}

absl::Status Sweep::Impl::Detach() {
  if (absl::Status s = executor_->Close(id_); !s.ok()) return s;
  while (!executor_->Idle(id_)) {
    if (absl::Status s = PollOnce(); !s.ok()) return s;
  }
  attached_ = false;
  return absl::OkStatus();
}

absl::StatusOr<SweepRun> Sweep::Impl::RunOnce(const SweepSetting& setting) {
  // Warm-up: one message on an attachment of its own, so that the run's
  // counters are the run's alone.
  if (absl::Status s = Attach(setting); !s.ok()) return s;
  if (absl::Status s = EnqueueMessage(0); !s.ok()) return s;
  if (absl::Status s = PollUntilFinished(); !s.ok()) return s;
  if (absl::Status s = Detach(); !s.ok()) return s;

  if (absl::Status s = Attach(setting); !s.ok()) return s;
  SweepRun run;
  const absl::Time start = absl::Now();
  const absl::Time end = start + o_.run_time;
  const double cpu_start = ThreadCpuSeconds();
  const uint32_t slots = o_.messages_in_flight;
  uint32_t in_flight = 0;
  for (uint32_t slot = 0; slot < slots; ++slot, ++in_flight) {
    if (absl::Status s = EnqueueMessage(slot); !s.ok()) return s;
  }
  bool sending = true;
  while (in_flight > 0) {
    if (absl::Status s = PollUntilFinished(); !s.ok()) return s;
    if (sending && absl::Now() >= end) sending = false;
    std::vector<uint32_t> finished;
    finished.swap(finished_);
    for (uint32_t slot : finished) {
      ++run.messages;
      run.bytes += message_bytes_[slot_message_[slot]];
      if (sending) {
        if (absl::Status s = EnqueueMessage(slot); !s.ok()) return s;
      } else {
        --in_flight;
      }
    }
  }
  run.cpu_seconds = ThreadCpuSeconds() - cpu_start;
  run.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  run.stats = *executor_->connection_stats(id_);
  if (absl::Status s = Detach(); !s.ok()) return s;
  return run;
}

absl::Status Sweep::Impl::Run(const SweepProgress& progress) {
  for (uint32_t rep = 0; rep < o_.repetitions; ++rep) {
    for (SweepPoint& point : points_) {
      absl::StatusOr<SweepRun> run = RunOnce(point.setting);
      if (!run.ok()) {
        absl::Status s = run.status();
        // A receiver thread that gave up (a failed accept) closed the
        // connection under the sender: its error is the cause, not the
        // sender's "not connected".
        if (sink_ != nullptr) {
          const absl::Status sink = sink_->Stop();
          if (!sink.ok() && !absl::IsCancelled(sink)) {
            s = absl::Status(sink.code(), absl::StrCat("the receiver thread: ",
                                                       sink.message()));
          }
        }
        return absl::Status(
            s.code(),
            absl::StrCat(DescribeSetting(point.setting), ": ", s.message()));
      }
      point.runs.push_back(*run);
      ++done_;
      if (progress) progress(done_, total_, point);
    }
  }
  return absl::OkStatus();
}

void Sweep::Impl::Abandon() {
  // Reset the connection (Executor::Abort: RST, the send queue purged), so
  // the kernel drops its references to zero-copy memory and posts the
  // notifications. A stalled peer would otherwise hold them for as long as it
  // likes.
  (void)executor_->Abort(id_);
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  while (!executor_->Idle(id_) && absl::Now() < deadline) {
    if (!executor_->Poll(absl::Milliseconds(50)).ok()) break;
  }
  if (!executor_->Idle(id_)) {
    // The kernel still references some buffer (or the executor could not
    // say that it no longer does). Whatever status teardown gives it, its
    // memory may still be read for the wire: keep every buffer alive for
    // the life of the process. Deliberately leaked (reachable from a static
    // list, so leak checkers do not flag it); bounded by one sweep's buffers
    // (the workload times messages_in_flight).
    for (MessageBuffers& b : buffers_) KeepAliveForever(std::move(b.storage));
  }
}

Sweep::Impl::~Impl() {
  if (executor_ != nullptr && attached_) {
    if (executor_->Idle(id_)) {
      (void)executor_->Close(id_);
    } else {
      Abandon();
    }
  }
  executor_.reset();
  const bool connected = fd_.get() >= 0;
  if (connected) {
    shutdown(fd_.get(), SHUT_WR);
    fd_.Reset();
  }
  if (sink_ != nullptr) {
    // The receiver ends at the FIN; a bounded wait, then it is stopped.
    // Without a connection (the connect failed) no FIN comes: stop it now.
    if (connected) sink_->WaitFor(kSinkDrainTimeout);
    (void)sink_->Stop();  // Its status says only how it ended: not needed.
  }
}

Sweep::Sweep(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sweep::~Sweep() = default;

absl::StatusOr<std::unique_ptr<Sweep>> Sweep::Start(SweepOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<Sweep>(new Sweep(std::move(impl)));
}

absl::Status Sweep::Run(const SweepProgress& progress) {
  return impl_->Run(progress);
}
const std::vector<SweepPoint>& Sweep::points() const { return impl_->points_; }
size_t Sweep::runs_done() const { return impl_->done_; }
size_t Sweep::runs_total() const { return impl_->total_; }
const std::string& Sweep::destination() const { return impl_->destination_; }

absl::StatusOr<std::vector<SweepPoint>> RunSweep(
    const SweepOptions& options, const SweepProgress& progress) {
  absl::StatusOr<std::unique_ptr<Sweep>> sweep = Sweep::Start(options);
  if (!sweep.ok()) return sweep.status();
  if (absl::Status s = (*sweep)->Run(progress); !s.ok()) return s;
  return (*sweep)->points();
}

}  // namespace zcplan
