// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/zcsend_cli.h"

#include <fcntl.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "zcplan/planner/describe.h"
#include "zcplan/planner/flag_types.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tools/cli_io.h"
#include "zcplan/tools/flags.h"
#include "zcplan/tools/send_flags.h"
#include "zcplan/tools/stop_signals.h"
#include "zcplan/uring/buffer_pool.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/memlock.h"
#include "zcplan/uring/net.h"
#include "zcplan/uring/pattern.h"
#include "zcplan/uring/receiver.h"

namespace zcplan {
namespace {

constexpr uint64_t kDefaultBytes = uint64_t{64} << 20;
constexpr uint64_t kDefaultMaxInFlight = uint64_t{4} << 20;
constexpr uint64_t kMaxMaxInFlight = uint64_t{1} << 30;
constexpr uint32_t kMaxConnections = 1024;
constexpr absl::string_view kDefaultSplit = "4K,4K,16K,32K,2K";
// The most one registered buffer may span (the kernel's limit).
constexpr uint64_t kMaxRegisteredBytes = uint64_t{1} << 30;
constexpr absl::Duration kPollTimeout = absl::Milliseconds(100);
constexpr absl::Duration kDrainTimeout = absl::Seconds(10);
constexpr absl::Duration kDefaultIdleTimeout = absl::Seconds(30);
// The bound on each connect when --idle-timeout is 0 (off).
constexpr absl::Duration kDefaultConnectTimeout = absl::Seconds(30);
// The most buffers one connection holds enqueued and not yet reclaimed, so
// that tiny buffers (--split 1) cannot take unbounded bookkeeping memory.
constexpr uint64_t kMaxBuffersInFlight = 65536;
// TopUp looks at the stop signal after this many buffers.
constexpr uint64_t kBuffersPerStopCheck = 1024;
// The longest host name (DNS allows 253 characters).
constexpr size_t kMaxHostChars = 253;
// How long an abandoned run waits for the kernel to give buffers back, once
// in each of its steps (see `Abandon`) and in the executor's teardown.
constexpr absl::Duration kAbandonTimeout = absl::Seconds(1);
// How long a finished run waits for the peer to acknowledge what was sent
// before it reports what the peer acknowledged.
constexpr absl::Duration kAckWait = absl::Seconds(1);
// --file is read piece by piece as it is sent, so its size is not limited.
constexpr uint64_t kMaxSendFileBytes = std::numeric_limits<uint64_t>::max();
// The most characters of a library's error message (which may quote a
// user's value) echoed in an error line.
constexpr size_t kMaxMessageChars = 400;

absl::Status Bad(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

std::string Errno(int error) { return std::strerror(error); }

// One line on `err`, whatever the arguments held.
int BadInput(const absl::Status& status, std::ostream& err) {
  std::string message(status.message());
  std::replace_if(
      message.begin(), message.end(),
      [](char c) { return c == '\n' || c == '\r'; }, ' ');
  err << "zcsend: " << message << "\n";
  return kZcsendBadInput;
}

// "300 bytes", "8M (8388608 bytes)".
std::string SizeAndBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " bytes");
  return absl::StrCat(HumanSize(bytes), " (", bytes, " bytes)");
}

std::string Count(uint64_t n, absl::string_view noun) {
  return absl::StrCat(n, " ", noun, n == 1 ? "" : "s");
}

// "412.3 MB/s, 3.30 Gbit/s"
std::string Rate(uint64_t bytes, absl::Duration elapsed) {
  const double seconds = std::max(absl::ToDoubleSeconds(elapsed), 1e-9);
  return absl::StrFormat("%.1f MB/s, %.2f Gbit/s", bytes / seconds / 1e6,
                         bytes * 8 / seconds / 1e9);
}

}  // namespace
}  // namespace zcplan

ABSL_FLAG(std::string, peer, "", "HOST:PORT to send to");
ABSL_FLAG(std::string, file, "", "send the bytes of this file");
ABSL_FLAG(zcplan::ByteSize, bytes, zcplan::ByteSize{zcplan::kDefaultBytes},
          "bytes of the pattern to send");
ABSL_FLAG(zcplan::ByteSizeList, split,
          zcplan::ByteSizeList{*zcplan::ParseSizeList(zcplan::kDefaultSplit)},
          "buffer sizes, repeated over the data");
ABSL_FLAG(std::string, trace, "", "take the buffer sizes from this trace");
ABSL_FLAG(bool, registered, false, "buffers in one registered region");
ABSL_FLAG(zcplan::ByteSize, max_in_flight,
          zcplan::ByteSize{zcplan::kDefaultMaxInFlight},
          "unreleased bytes per connection");
// Text, parsed in ReadFlags: their errors say what a good value looks like.
ABSL_FLAG(std::string, idle_timeout,
          absl::FormatDuration(zcplan::kDefaultIdleTimeout),
          "end a run without progress for this long (0: off)");
ABSL_FLAG(bool, loopback, false, "send to a receiver of zcsend's own");
ABSL_FLAG(bool, resend, false, "send the same memory again, never refilled");
ABSL_FLAG(std::string, listen, "0", "receive on this port");
ABSL_FLAG(std::string, bind, "0.0.0.0", "the receiver's address");
ABSL_FLAG(std::string, out, "", "write what arrives to this file");
ABSL_FLAG(bool, check_pattern, false, "check the pattern");
// Text, as --listen: decimal digits only (Abseil's integers take hex and
// spaces), and the error names the range.
ABSL_FLAG(std::string, connections, "1", "connections");

namespace zcplan {
namespace {

// --- Configuration -----------------------------------------------------------

enum Side : uint8_t { kSender = 1, kReceiver = 2, kBoth = 3 };

struct Config {
  // Sender.
  bool has_peer = false;
  std::string peer, peer_host, peer_port;
  bool has_file = false;
  std::string file;
  bool has_bytes = false;
  uint64_t bytes = kDefaultBytes;
  bool has_split = false;
  std::vector<uint64_t> split;
  std::string split_text = std::string(kDefaultSplit);
  bool has_trace = false;
  std::string trace_path;
  PlanOptions plan;
  bool adaptive = true;
  bool registered = false;
  uint64_t max_in_flight = kDefaultMaxInFlight;
  absl::Duration idle_timeout = kDefaultIdleTimeout;  // zero: none
  bool loopback = false;  // send to a receiver of our own on 127.0.0.1
  bool resend = false;    // send the same memory again, never refilled
  // Receiver.
  bool has_listen = false;
  uint16_t listen_port = 0;
  std::string bind = "0.0.0.0";
  bool has_out = false;
  std::string out_path;
  bool check_pattern = false;
  // Both.
  uint32_t connections = 1;
};

// Which side each flag is for.
struct FlagSide {
  absl::string_view name;
  Side side;
};

constexpr FlagSide kFlagSides[] = {
    {"peer", kSender},          {"file", kSender},
    {"bytes", kSender},         {"split", kSender},
    {"trace", kSender},         {"threshold", kSender},
    {"copy-op", kSender},       {"gap", kSender},
    {"adaptive", kSender},      {"registered", kSender},
    {"max-in-flight", kSender}, {"idle-timeout", kSender},
    {"loopback", kSender},      {"resend", kSender},
    {"listen", kReceiver},      {"bind", kReceiver},
    {"out", kReceiver},         {"check-pattern", kReceiver},
    {"connections", kBoth},
};

constexpr absl::string_view kFlagNames[] = {
    "peer",     "file",          "bytes",         "split",
    "trace",    "threshold",     "copy-op",       "gap",
    "adaptive", "registered",    "max-in-flight", "idle-timeout",
    "loopback", "resend",        "listen",        "bind",
    "out",      "check-pattern", "connections"};

// "--NAME: MESSAGE", the message (which may quote a value) escaped and
// capped.
absl::Status FlagError(absl::string_view name, absl::string_view message) {
  return Bad(absl::StrCat("--", name, ": ",
                          EscapeForMessage(message, kMaxMessageChars)));
}

absl::Status ReadPeer(absl::string_view v, Config& c) {
  absl::StatusOr<std::pair<std::string, std::string>> hp =
      SplitHostPort(std::string(v));
  if (!hp.ok()) return FlagError("peer", hp.status().message());
  if (hp->first.size() > kMaxHostChars) {
    return FlagError("peer",
                     absl::StrCat("host name of ", hp->first.size(),
                                  " bytes is longer than ", kMaxHostChars, ": ",
                                  QuoteForMessage(hp->first)));
  }
  c.has_peer = true;
  c.peer = std::string(v);
  c.peer_host = hp->first;
  c.peer_port = hp->second;
  return absl::OkStatus();
}

// Which flags were given, and that each is for the side that runs.
absl::Status CheckSides(const ParsedFlags& parsed, Config& c) {
  if (c.has_peer && c.loopback) {
    return Bad(
        "give --peer or --loopback (a receiver of its own on 127.0.0.1), not "
        "both");
  }
  const bool sends = c.has_peer || c.loopback;
  if (sends == c.has_listen) {
    return Bad(sends ? "give --peer or --loopback (send) or --listen "
                       "(receive), not both"
                     : "nothing to do: give --peer HOST:PORT to send, "
                       "--loopback to send to a receiver of its own, or "
                       "--listen PORT to receive; see zcsend --help");
  }
  const Side side = sends ? kSender : kReceiver;
  for (const std::string& name : parsed.given) {
    for (const FlagSide& f : kFlagSides) {
      if (f.name != name || (f.side & side) != 0) continue;
      return Bad(absl::StrCat(
          "flag --", name, " is for the ",
          f.side == kSender ? "sender (--peer)" : "receiver (--listen)",
          ", not the ",
          side == kSender ? "sender (--peer)" : "receiver (--listen)"));
    }
  }
  return absl::OkStatus();
}

// Copies the parsed flags into `c` and checks them (inside ParseFlags).
absl::Status ReadFlags(const ParsedFlags& parsed, Config& c) {
  auto given = [&parsed](absl::string_view name) {
    return std::find(parsed.given.begin(), parsed.given.end(), name) !=
           parsed.given.end();
  };
  if (given("peer")) {
    if (absl::Status s = ReadPeer(absl::GetFlag(FLAGS_peer), c); !s.ok()) {
      return s;
    }
  }
  c.has_file = given("file");
  c.file = absl::GetFlag(FLAGS_file);
  c.has_bytes = given("bytes");
  c.bytes = absl::GetFlag(FLAGS_bytes).bytes;
  if (c.bytes == 0) {
    return FlagError("bytes", "bad size '0': send at least 1 byte");
  }
  c.has_split = given("split");
  c.split = absl::GetFlag(FLAGS_split).bytes;
  c.split_text = AbslUnparseFlag(absl::GetFlag(FLAGS_split));
  if (c.split.empty()) return FlagError("split", "no buffer sizes");
  c.has_trace = given("trace");
  c.trace_path = absl::GetFlag(FLAGS_trace);
  ReadSendFlags(&c.plan, &c.adaptive);
  c.registered = absl::GetFlag(FLAGS_registered);
  c.max_in_flight = absl::GetFlag(FLAGS_max_in_flight).bytes;
  if (c.max_in_flight == 0 || c.max_in_flight > kMaxMaxInFlight) {
    return FlagError(
        "max-in-flight",
        absl::StrCat("bad size '", FormatSize(c.max_in_flight),
                     "': expected 1..", FormatSize(kMaxMaxInFlight)));
  }
  const std::string idle = absl::GetFlag(FLAGS_idle_timeout);
  if (!absl::ParseDuration(idle, &c.idle_timeout) ||
      c.idle_timeout < absl::ZeroDuration() ||
      c.idle_timeout == absl::InfiniteDuration()) {
    return FlagError("idle-timeout",
                     absl::StrCat("bad duration '", idle,
                                  "' (e.g. 30s, 500ms; 0 turns it off)"));
  }
  c.loopback = absl::GetFlag(FLAGS_loopback);
  c.resend = absl::GetFlag(FLAGS_resend);
  c.has_listen = given("listen");
  const std::string port_text = absl::GetFlag(FLAGS_listen);
  absl::StatusOr<uint32_t> port = ParseCount(port_text, 0, 65535);
  if (!port.ok()) {
    return FlagError("listen", absl::StrCat("bad port '", port_text,
                                            "': expected 0..65535 (0: any "
                                            "free port)"));
  }
  c.listen_port = static_cast<uint16_t>(*port);
  c.bind = absl::GetFlag(FLAGS_bind);
  if (c.bind.empty()) return FlagError("bind", "empty address");
  c.has_out = given("out");
  c.out_path = absl::GetFlag(FLAGS_out);
  if (c.has_out && c.out_path.empty()) return FlagError("out", "empty path");
  c.check_pattern = absl::GetFlag(FLAGS_check_pattern);
  absl::StatusOr<uint32_t> connections =
      ParseCount(absl::GetFlag(FLAGS_connections), 1, kMaxConnections);
  if (!connections.ok()) {
    return FlagError("connections", connections.status().message());
  }
  c.connections = *connections;
  return CheckSides(parsed, c);
}

using Fd = UniqueFd;

std::string LocalAddress(int fd) {
  struct sockaddr_storage local = {};
  socklen_t length = sizeof(local);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&local), &length) !=
      0) {
    return "?";
  }
  return FormatAddress(local);
}

// The bytes of the stream the peer has acknowledged, from TCP_INFO; false
// when the kernel does not say (not TCP, or a kernel before 4.1).
bool ReadBytesAcked(int fd, uint64_t* acked) {
  struct tcp_info info = {};
  socklen_t length = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
      length < offsetof(struct tcp_info, tcpi_bytes_acked) +
                   sizeof(info.tcpi_bytes_acked)) {
    return false;
  }
  *acked = info.tcpi_bytes_acked;
  return true;
}

// --- Sender ------------------------------------------------------------------

// What the sender sends, resolved from the flags before anything runs.
struct SendJob {
  Fd file;                       // --file, or closed for the pattern
  uint64_t total = 0;            // bytes per connection
  std::vector<uint64_t> pieces;  // buffer sizes, cycled; no zeros
  uint64_t largest_piece = 0;
  TraceBatch first_message;  // as given (zeros kept)
  uint64_t ring_bytes = 0;   // buffer space per connection
};

absl::Status CheckSendFlags(const Config& c) {
  if (c.has_file && c.has_bytes) {
    return Bad(absl::StrCat("give --file or --bytes, not both (got --file ",
                            QuoteForMessage(c.file), " and --bytes ",
                            FormatSize(c.bytes), ")"));
  }
  if (c.has_file && c.resend) {
    return Bad(absl::StrCat(
        "give --file or --resend (which sends the pattern's memory again), "
        "not both (got --file ",
        QuoteForMessage(c.file), ")"));
  }
  if (c.has_split && c.has_trace) {
    return Bad(absl::StrCat("give --split or --trace, not both (got --split ",
                            QuoteForMessage(c.split_text), " and --trace ",
                            QuoteForMessage(c.trace_path), ")"));
  }
  if (absl::Status s = ValidatePlanOptions(c.plan); !s.ok()) {
    return Bad(absl::StrCat("bad planner options: ", s.message()));
  }
  return absl::OkStatus();
}

// The buffer sizes of `sizes` (zeros dropped) into `job`, each checked
// against --max-in-flight; `where` names them in errors.
absl::Status AddPieces(const Config& c, absl::Span<const uint64_t> sizes,
                       absl::string_view where, SendJob& job) {
  for (uint64_t size : sizes) {
    if (size > c.max_in_flight) {
      return Bad(absl::StrCat(where, ": buffer ", FormatSize(size),
                              " is larger than --max-in-flight ",
                              FormatSize(c.max_in_flight),
                              "; raise --max-in-flight"));
    }
    if (size > 0) job.pieces.push_back(size);
  }
  return absl::OkStatus();
}

// Everything the sender needs that can be wrong in the input, checked before
// anything starts (no socket, thread or output yet).
absl::StatusOr<SendJob> PrepareSend(const Config& c) {
  if (absl::Status s = CheckSendFlags(c); !s.ok()) return s;
  SendJob job;
  if (c.has_file) {
    absl::StatusOr<RegularFile> file =
        OpenRegularFile(c.file, "--file", kMaxSendFileBytes);
    if (!file.ok()) return file.status();
    job.file.Reset(file->fd);
    job.total = file->size;
    if (job.total == 0) {
      return Bad(absl::StrCat(
          "--file ", QuoteForMessage(c.file),
          " is empty (or a /proc-like file whose size is not known)"));
    }
  } else {
    job.total = c.bytes;
  }
  std::string source = absl::StrCat("--split ", QuoteForMessage(c.split_text));
  if (c.has_trace) {
    absl::StatusOr<std::string> text =
        ReadRegularFile(c.trace_path, "--trace", kMaxTraceFileBytes);
    if (!text.ok()) return text.status();
    source = absl::StrCat("--trace ", QuoteForMessage(c.trace_path));
    absl::StatusOr<std::vector<TraceBatch>> trace = ParseTrace(*text);
    if (!trace.ok()) {
      return Bad(absl::StrCat(
          source, ": ",
          EscapeForMessage(trace.status().message(), kMaxMessageChars)));
    }
    job.first_message = (*trace)[0];
    for (const TraceBatch& batch : *trace) {
      if (absl::Status s = AddPieces(
              c, batch.sizes, absl::StrCat(source, ": line ", batch.line), job);
          !s.ok()) {
        return s;
      }
    }
  } else {
    job.first_message.sizes =
        c.has_split ? c.split : *ParseSizeList(kDefaultSplit);
    if (absl::Status s = AddPieces(c, job.first_message.sizes, source, job);
        !s.ok()) {
      return s;
    }
  }
  if (job.pieces.empty()) {
    return Bad(absl::StrCat(source, ": every buffer size is 0"));
  }
  job.largest_piece = *std::max_element(job.pieces.begin(), job.pieces.end());
  // Room for --max-in-flight bytes plus what a wrap at the end wastes, and no
  // more than the data: a ring that holds all of it never wraps.
  job.ring_bytes = RoundUpToPage(std::max<uint64_t>(
      1, std::min(c.max_in_flight + job.largest_piece, job.total)));
  if (c.registered && job.ring_bytes * c.connections > kMaxRegisteredBytes) {
    return Bad(absl::StrCat(
        "--registered: ", c.connections, " connections x ",
        HumanSize(job.ring_bytes), " of buffers (--max-in-flight ",
        FormatSize(c.max_in_flight),
        " + the largest buffer) = ", HumanSize(job.ring_bytes * c.connections),
        " is over 1G, the most one registered buffer can span; lower "
        "--max-in-flight or --connections"));
  }
  return job;
}

// One connection: its socket, where its data is, and its progress. Its
// buffers are ring `index` of `SendState::pool`.
struct Conn {
  Fd fd;
  ConnectionId id;
  std::string local;         // the local address, "HOST:PORT"
  uint64_t next_offset = 0;  // stream bytes enqueued so far
  size_t next_piece = 0;     // index into SendJob::pieces
  uint64_t released_ok = 0;  // bytes released as sent
  absl::Status error;        // the first error on this connection
  // Progress, for --idle-timeout.
  uint64_t releases = 0;       // buffers released so far
  uint64_t releases_seen = 0;  // `releases` when progress was last checked
  bool acked_known = false;    // the kernel reports `acked`
  uint64_t acked = 0;          // stream bytes the peer acknowledged
  uint64_t acked_base = 0;     // TCP_INFO's count before any data (the SYN)
  absl::Time last_progress;
  bool abandoned = false;  // reset by `SendRun::Abandon`

  // Reads what the peer acknowledged; true when it grew.
  bool UpdateAcked() {
    uint64_t now = 0;
    if (fd.get() < 0 || !ReadBytesAcked(fd.get(), &now)) return false;
    acked_known = true;
    // The count includes the SYN (and, after a shutdown, the FIN).
    now = std::min(now - std::min(now, acked_base), next_offset);
    if (now <= acked) return false;
    acked = now;
    return true;
  }
};

struct SendState {
  const Config* config = nullptr;
  const SendJob* job = nullptr;
  std::vector<Conn> conns;
  absl::Time last_release;
  std::string internal_error;  // a release the executor should not make
  // A buffer came back that the kernel may still read (the executor said
  // so, or gave up on it at teardown): the buffer memory must never be
  // reused or unmapped.
  bool memory_unsafe = false;

  // The buffers, one ring per connection; reused only once released.
  std::optional<BufferPool> pool;

  bool Holds(size_t i) const { return pool.has_value() && pool->held(i) > 0; }
  // Nothing held, and all sent or failed.
  bool Done(size_t i) const {
    return !Holds(i) &&
           (conns[i].next_offset == job->total || !conns[i].error.ok());
  }
  bool Complete(size_t i) const {
    return !Holds(i) && conns[i].next_offset == job->total &&
           conns[i].error.ok();
  }
  bool HoldsAny() const { return pool.has_value() && !pool->empty(); }

  void OnRelease(ConnectionId id, uint64_t token, const absl::Status& status) {
    const uint32_t index = BufferPool::TokenRing(token);
    absl::StatusOr<BufferPool::Released> released =
        index < conns.size() && conns[index].id == id
            ? pool->Release(token)
            : absl::NotFoundError("another connection's");
    if (!released.ok()) {
      if (internal_error.empty()) {
        internal_error =
            absl::StrCat("executor released token ", token, " on connection ",
                         id.value, ", which it does not hold");
      }
      return;
    }
    Conn& c = conns[index];
    ++c.releases;
    if (status.ok()) {
      c.released_ok += released->length;
    } else {
      if (c.error.ok()) c.error = status;
      if (KernelMayStillRead(status)) memory_unsafe = true;
    }
    last_release = absl::Now();
  }
};

absl::Status ReadSource(const SendJob& job, uint64_t offset,
                        unsigned char* data, size_t length) {
  if (job.file.get() < 0) {
    Pattern().Fill(offset, absl::MakeSpan(data, length));
    return absl::OkStatus();
  }
  while (length > 0) {
    const ssize_t n =
        pread(job.file.get(), data, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(
          n == 0 ? absl::StrCat("--file ended early at byte ", offset,
                                " (did it shrink?)")
                 : absl::StrCat("cannot read --file at byte ", offset, ": ",
                                Errno(errno)));
    }
    data += n;
    length -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// Enqueues buffers on `c` while it holds at most --max-in-flight unreleased
// bytes and `kMaxBuffersInFlight` buffers and its ring has room, and no stop
// signal came. Errors are the data source's; a connection error is recorded
// in `c.error`.
absl::Status TopUp(SendState& state, size_t index, Executor& executor) {
  Conn& c = state.conns[index];
  BufferPool& pool = *state.pool;
  const uint32_t ring = static_cast<uint32_t>(index);
  const SendJob& job = *state.job;
  for (uint64_t n = 1; c.error.ok() && c.next_offset < job.total; ++n) {
    if (pool.held(ring) >= kMaxBuffersInFlight) break;
    if (n % kBuffersPerStopCheck == 0 && ScopedStopSignals::Pending() != 0) {
      break;
    }
    const uint64_t length =
        std::min(job.pieces[c.next_piece], job.total - c.next_offset);
    const uint64_t unreleased = pool.unreleased_bytes(ring);
    if (unreleased > 0 && unreleased + length > state.config->max_in_flight) {
      break;
    }
    const std::optional<BufferPool::Buffer> buffer = pool.Acquire(ring, length);
    if (!buffer.has_value()) break;
    // --resend: the memory holds what it was filled with at the start.
    if (!state.config->resend) {
      if (absl::Status s = ReadSource(job, c.next_offset, buffer->data, length);
          !s.ok()) {
        pool.Release(buffer->token).IgnoreError();
        return s;
      }
    }
    if (absl::Status s =
            executor.Enqueue(c.id, buffer->data, length, buffer->token);
        !s.ok()) {
      pool.Release(buffer->token).IgnoreError();  // not taken
      absl::Status sticky = executor.ConnectionError(c.id);
      c.error = sticky.ok() ? s : sticky;
      break;
    }
    c.next_offset += length;
    c.next_piece = (c.next_piece + 1) % job.pieces.size();
  }
  return absl::OkStatus();
}

std::string DescribeFirstMessage(const Config& c, const SendJob& job) {
  const TraceBatch& m = job.first_message;
  const std::vector<struct iovec> queue = MakeSyntheticQueue(m.sizes);
  uint64_t bytes = 0;
  for (uint64_t size : m.sizes) bytes += size;
  std::vector<std::string> chains;
  Plan scratch;
  absl::Status s =
      ForEachChain(queue, c.plan, &scratch, [&](const Plan& plan, size_t base) {
        chains.push_back(
            DescribeChain(absl::MakeConstSpan(queue).subspan(base), plan));
        return true;
      });
  std::string out = absl::StrCat(
      "plan of the first message",
      m.line > 0 ? absl::StrCat(" (trace line ", m.line, ")") : "", ": ",
      Count(m.sizes.size(), "buffer"), ", ", SizeAndBytes(bytes), ", ",
      Count(chains.size(), "chain"), "\n");
  if (!s.ok()) return absl::StrCat(out, "  cannot plan: ", s.message(), "\n");
  for (const std::string& chain : chains)
    absl::StrAppend(&out, "  ", chain, "\n");
  return out;
}

std::string OpCounts(const SendStats& s) {
  std::vector<std::string> parts;
  uint64_t total = 0;
  for (int k = 0; k < kNumOpKinds; ++k) {
    total += s.ops[k];
    if (s.ops[k] == 0) continue;
    parts.push_back(
        absl::StrCat(OpKindName(static_cast<OpKind>(k)), " ", s.ops[k]));
  }
  if (parts.empty()) parts.push_back("none");
  return absl::StrCat(absl::StrJoin(parts, ", "), " (", total, " in ",
                      Count(s.chains, "chain"), ")");
}

// --- The send run ------------------------------------------------------------

// What `--loopback` tells the sender while it runs.
// What the caller tells the sender while it runs.
struct SendControl {
  std::function<bool()> peer_failed;  // the receiver gave up
  bool never_reset = false;           // ZcsendTestHooks::sender_never_resets
};

struct SendResult {
  int code = kZcsendFailed;
  // The run ended because the receiver failed (`SendControl::peer_failed`):
  // the receiver's error explains it, the sender printed none.
  bool stopped_by_peer = false;
  // Per connection: the local address and the bytes sent (released OK).
  std::vector<std::pair<std::string, uint64_t>> sent;
};

// How the send loop ended.
enum class Ending { kDone, kIdle, kSignal, kPeerFailed, kFailed };

// One `zcsend --peer` run: sets up the executor and the connections, sends,
// and ends every connection so that nothing waits on a peer forever.
class SendRun {
 public:
  SendRun(const Config& config, const SendJob& job, SendControl control,
          std::ostream& out, std::ostream& err)
      : config_(config), job_(job), control_(control), out_(out), err_(err) {
    state_.config = &config;
    state_.job = &job;
  }
  SendRun(const SendRun&) = delete;
  SendRun& operator=(const SendRun&) = delete;

  SendResult Run();

 private:
  // Writes "zcsend: MESSAGE" on err; returns kZcsendFailed.
  int Fail(absl::string_view message) {
    err_ << "zcsend: " << message << "\n";
    return kZcsendFailed;
  }
  bool PeerFailed() const {
    return control_.peer_failed != nullptr && control_.peer_failed();
  }
  // The executor, the registered region and the connections; a failure is
  // reported on err, or is the peer's (`stopped_by_peer_`).
  bool SetUp();
  void PrintHeader();
  Ending Loop(std::string* message);
  // The index of a connection without progress for --idle-timeout, if any.
  std::optional<size_t> IdleConnection();
  void AwaitAcks();
  void CloseConnections();
  void Abandon(const std::vector<size_t>& stalled);
  void PollUntilReleased(absl::Duration timeout);
  // Destroys the executor; returns whether the buffer memory was kept mapped
  // because the kernel may still read it.
  bool DestroyExecutor();
  void PrintReport(absl::Duration elapsed, Ending ending);
  std::string IdleMessage(size_t index) const;

  const Config& config_;
  const SendJob& job_;
  const SendControl control_;
  std::ostream& out_;
  std::ostream& err_;
  // Destroyed in reverse: the executor (which may still release buffers into
  // `state_`) before the state and the memory the buffers live in.
  SendState state_;
  std::unique_ptr<Executor> executor_;
  bool stopped_by_peer_ = false;
  absl::Time last_idle_check_;
  // Taken before the connections are closed, for the report.
  RingStats ring_stats_;
  std::vector<bool> zero_copy_on_;
  uint64_t cap_ = 0;
  RingFeatures features_;
  std::string cap_description_;
  bool memory_kept_ = false;
  bool held_at_teardown_ = false;
};

bool SendRun::SetUp() {
  absl::StatusOr<BufferPool> pool =
      BufferPool::Create(config_.connections, job_.ring_bytes);
  if (!pool.ok()) {
    Fail(pool.status().message());
    return false;
  }
  state_.pool = *std::move(pool);
  // --resend: filled once, sent again and again.
  if (config_.resend) Pattern().Fill(0, state_.pool->memory());

  ExecutorOptions options;
  // An abandoned run resets its connections first (see `Abandon`): what the
  // kernel has not given back a second later is kept, never reused.
  options.teardown_timeout = kAbandonTimeout;
  options.on_release = [this](ConnectionId id, uint64_t token,
                              const absl::Status& status) {
    state_.OnRelease(id, token, status);
  };
  absl::StatusOr<std::unique_ptr<Executor>> created =
      Executor::Create(std::move(options));
  if (!created.ok()) {
    Fail(absl::StrCat("io_uring unavailable: ", created.status().ToString(),
                      " (is io_uring disabled by the "
                      "kernel.io_uring_disabled sysctl or a seccomp "
                      "filter, or is `ulimit -l` too low?)"));
    return false;
  }
  executor_ = *std::move(created);
  features_ = executor_->features();

  if (config_.registered) {
    const struct iovec whole = {state_.pool->memory().data(),
                                state_.pool->memory().size()};
    if (absl::Status s = executor_->RegisterBuffers({&whole, 1}); !s.ok()) {
      Fail(absl::StrCat("--registered: cannot register ",
                        HumanSize(state_.pool->memory().size()),
                        " of buffers: ", s.ToString(),
                        " (registered memory counts against `ulimit -l`; lower "
                        "--max-in-flight or --connections)"));
      return false;
    }
  }

  ConnectionOptions conn_options;
  conn_options.plan = config_.plan;
  conn_options.adaptive_zero_copy = config_.adaptive;
  // zcsend owns its sockets and would rather drop a stalled peer than leave
  // buffers with the kernel.
  conn_options.reset_on_shutdown = !control_.never_reset;
  state_.conns.resize(config_.connections);
  for (uint32_t i = 0; i < config_.connections; ++i) {
    Conn& c = state_.conns[i];
    absl::StatusOr<Fd> fd = ConnectTcp(
        config_.peer_host, config_.peer_port,
        config_.idle_timeout > absl::ZeroDuration() ? config_.idle_timeout
                                                    : kDefaultConnectTimeout,
        [this] { return ScopedStopSignals::Pending() != 0 || PeerFailed(); });
    if (!fd.ok() || PeerFailed()) {
      stopped_by_peer_ = PeerFailed();
      // A signal is reported by `Run`.
      if (!stopped_by_peer_ && ScopedStopSignals::Pending() == 0) {
        // The message may quote the host: escape and cap it.
        Fail(EscapeForMessage(fd.status().message(), kMaxMessageChars));
      }
      return false;
    }
    c.fd = *std::move(fd);
    c.local = LocalAddress(c.fd.get());
    (void)ReadBytesAcked(c.fd.get(), &c.acked_base);
    absl::StatusOr<ConnectionId> id =
        executor_->Attach(c.fd.get(), conn_options);
    if (!id.ok()) {
      Fail(absl::StrCat("cannot attach connection ", i + 1, ": ",
                        id.status().ToString()));
      return false;
    }
    c.id = *id;
  }
  return true;
}

void SendRun::PrintHeader() {
  const Config& config = config_;
  out_ << "zcsend: " << SizeAndBytes(job_.total) << " of "
       << (config.has_file ? QuoteForMessage(config.file)
           : config.resend ? std::string("pattern, resent from ") +
                                 HumanSize(job_.ring_bytes) + " of memory"
                           : std::string("pattern"))
       << " on " << Count(config.connections, "connection") << " to "
       << EscapeForMessage(config.peer) << "\n"
       << "options: "
       << (config.has_trace
               ? absl::StrCat("trace ", EscapeForMessage(config.trace_path))
               : absl::StrCat("split ", config.split_text))
       << ", threshold " << FormatThreshold(config.plan.zc_threshold)
       << ", copy op " << CopyOpName(config.plan.copy_op) << ", gap "
       << (config.plan.zc_gap_bytes == 0 ? "off"
                                         : FormatSize(config.plan.zc_gap_bytes))
       << ", adaptive " << (config.adaptive ? "on" : "off")
       << ", max in flight " << FormatSize(config.max_in_flight)
       << " per connection, registered " << (config.registered ? "on" : "off")
       << ", idle timeout "
       << (config.idle_timeout == absl::ZeroDuration()
               ? std::string("off")
               : absl::FormatDuration(config.idle_timeout))
       << "\n"
       << DescribeFirstMessage(config, job_);
  const RingFeatures& features = features_;
  if (!features.send_zc || !features.sendmsg_zc) {
    out_ << "note: this kernel lacks "
         << (features.send_zc ? "IORING_OP_SENDMSG_ZC" : "IORING_OP_SEND_ZC")
         << ": those ops are sent by copy\n";
  }
  out_ << std::flush;
}

Ending SendRun::Loop(std::string* message) {
  for (;;) {
    bool busy = false;
    bool all_failed_or_done = true;
    for (size_t i = 0; i < state_.conns.size(); ++i) {
      if (absl::Status s = TopUp(state_, i, *executor_); !s.ok()) {
        *message = std::string(s.message());
        return Ending::kFailed;
      }
      const bool done = state_.Done(i);
      if (!done) busy = true;
      if (state_.conns[i].error.ok() && !done) all_failed_or_done = false;
    }
    if (!state_.internal_error.empty()) {
      *message = state_.internal_error;
      return Ending::kFailed;
    }
    // Drain collects the failed connections' buffers.
    if (!busy || all_failed_or_done) return Ending::kDone;
    if (ScopedStopSignals::Pending() != 0) return Ending::kSignal;
    if (PeerFailed()) return Ending::kPeerFailed;
    if (std::optional<size_t> idle = IdleConnection(); idle.has_value()) {
      *message = IdleMessage(*idle);
      return Ending::kIdle;
    }
    absl::StatusOr<size_t> polled = executor_->Poll(kPollTimeout);
    if (!polled.ok()) {
      *message = absl::StrCat("io_uring: ", polled.status().ToString());
      return Ending::kFailed;
    }
  }
}

std::optional<size_t> SendRun::IdleConnection() {
  const absl::Time now = absl::Now();
  // TCP_INFO is a system call per connection: a few times a second is enough.
  if (now - last_idle_check_ < kPollTimeout / 2) return std::nullopt;
  last_idle_check_ = now;
  std::optional<size_t> idle;
  for (size_t i = 0; i < state_.conns.size(); ++i) {
    Conn& c = state_.conns[i];
    if (state_.Done(i) || !c.error.ok()) continue;
    const bool released = c.releases != c.releases_seen;
    c.releases_seen = c.releases;
    if (c.UpdateAcked() || released) {
      c.last_progress = now;
    } else if (!idle.has_value() &&
               config_.idle_timeout > absl::ZeroDuration() &&
               now - c.last_progress >= config_.idle_timeout) {
      idle = i;
    }
  }
  return idle;
}

std::string SendRun::IdleMessage(size_t index) const {
  const Conn& c = state_.conns[index];
  const uint64_t outstanding = c.next_offset - (c.acked_known ? c.acked : 0);
  return absl::StrCat(
      "connection ", index + 1, " of ", state_.conns.size(), " to ",
      EscapeForMessage(config_.peer), " (from ", c.local,
      "): no byte acknowledged by the peer and no buffer released for ",
      absl::FormatDuration(config_.idle_timeout), " (--idle-timeout); ",
      outstanding, " bytes outstanding (enqueued, not ",
      c.acked_known ? "acknowledged by the peer" : "released", ")");
}

// Gives the peers a moment to acknowledge what the kernel accepted, so that
// the report's "acknowledged" is the final count on a healthy connection.
void SendRun::AwaitAcks() {
  const absl::Time deadline = absl::Now() + kAckWait;
  for (;;) {
    bool all = true;
    for (Conn& c : state_.conns) {
      c.UpdateAcked();
      if (c.acked_known && c.acked < c.released_ok) all = false;
    }
    if (all || absl::Now() >= deadline || ScopedStopSignals::Pending() != 0) {
      return;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

// Lets go of every connection. One that sent all its data gets a FIN, as
// any TCP receiver expects; every other one is abandoned (reset), so that
// its peer does not mistake a cut stream for a whole one.
void SendRun::CloseConnections() {
  std::vector<size_t> abandon;
  for (size_t i = 0; i < state_.conns.size(); ++i) {
    Conn& c = state_.conns[i];
    if (c.fd.get() < 0) continue;
    if (!state_.Complete(i)) {
      abandon.push_back(i);
      continue;
    }
    if (shutdown(c.fd.get(), SHUT_WR) != 0) {
      c.error = absl::ErrnoToStatus(errno, "shutdown(SHUT_WR)");
    }
    if (absl::Status s = executor_->Close(c.id); !s.ok() && c.error.ok()) {
      c.error = s;
    }
    c.fd.Reset();
  }
  if (!abandon.empty()) Abandon(abandon);
}

// Executor::Abort resets the connection (RST, its send queue dropped), which
// ends the kernel's use of the zero-copy buffers in it: they come back, and
// the peer sees an error rather than the end of a whole stream. The socket is
// closed once nothing is held; what is still held after `kAbandonTimeout` is
// left to `DestroyExecutor`.
void SendRun::Abandon(const std::vector<size_t>& stalled) {
  for (size_t i : stalled) {
    Conn& c = state_.conns[i];
    // One the peer or the network already broke is not zcsend's doing: it
    // stays a failure (reported and counted), and is still reset.
    c.abandoned = c.error.ok();
    if (control_.never_reset) continue;
    (void)executor_->Abort(c.id);  // a refused reset still closes it
  }
  if (!control_.never_reset) PollUntilReleased(kAbandonTimeout);
}

void SendRun::PollUntilReleased(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const bool held = state_.HoldsAny();
    const absl::Duration left = deadline - absl::Now();
    if (!held || left <= absl::ZeroDuration()) return;
    if (!executor_->Poll(std::min(left, kPollTimeout)).ok()) return;
  }
}

bool SendRun::DestroyExecutor() {
  const bool held = state_.HoldsAny();
  held_at_teardown_ = held;
  if (executor_ != nullptr) {
    // Resets what still holds buffers (reset_on_shutdown); what the kernel
    // keeps even then comes back as KernelMayStillRead.
    (void)executor_->Shutdown(kAbandonTimeout);
    executor_.reset();
  }
  for (Conn& c : state_.conns) c.fd.Reset();
  // Memory the kernel may still read is never reused or unmapped; as the
  // sweep does, a buffer not given back after the reset counts as such,
  // whatever status teardown gave it.
  if (held) state_.memory_unsafe = true;
  if (!state_.memory_unsafe || !state_.pool.has_value()) return false;
  state_.pool->KeepMapped();
  return true;
}

absl::string_view EndingName(Ending ending, int signal_number) {
  switch (ending) {
    case Ending::kDone:
      return "done";
    case Ending::kIdle:
      return "idle timeout";
    case Ending::kSignal:
      return signal_number == SIGINT ? "SIGINT" : "SIGTERM";
    case Ending::kPeerFailed:
      return "the receiver failed";
    case Ending::kFailed:
      break;
  }
  return "an error";
}

void SendRun::PrintReport(absl::Duration elapsed, Ending ending) {
  const Config& config = config_;
  const SendStats& t = ring_stats_.totals;
  uint64_t sent = 0;
  uint64_t acked = 0;
  bool acked_known = true;
  int failed = 0;
  for (const Conn& c : state_.conns) {
    sent += c.released_ok;
    acked += c.acked;
    acked_known = acked_known && c.acked_known;
    if (!c.error.ok()) ++failed;
  }
  if (ending != Ending::kDone) {
    out_ << "stopped (" << EndingName(ending, ScopedStopSignals::Pending())
         << "): the report is partial\n";
  }
  out_ << "sent " << SizeAndBytes(sent) << " on "
       << Count(config.connections, "connection") << " in "
       << absl::StrFormat("%.3f s", absl::ToDoubleSeconds(elapsed)) << ": "
       << Rate(sent, elapsed) << " (accepted by the local kernel)\n"
       << "acknowledged by the peer: "
       << (acked_known ? SizeAndBytes(acked)
                       : std::string("unknown (no TCP_INFO from the kernel)"))
       << "\n";
  if (config.connections > 1 || failed > 0 || ending != Ending::kDone) {
    for (size_t i = 0; i < state_.conns.size(); ++i) {
      const Conn& c = state_.conns[i];
      out_ << "  connection " << i + 1 << ": sent "
           << SizeAndBytes(c.released_ok) << ", acknowledged "
           << (c.acked_known ? SizeAndBytes(c.acked) : std::string("unknown"))
           << ", zero-copy "
           << (i < zero_copy_on_.size() && zero_copy_on_[i] ? "on" : "off");
      if (c.abandoned) {
        out_ << ", abandoned (reset) with "
             << c.next_offset - (c.acked_known ? c.acked : c.released_ok)
             << " bytes outstanding";
      } else if (!c.error.ok()) {
        out_ << ", FAILED (broken by the peer or the network, not by zcsend): "
             << EscapeForMessage(c.error.ToString(), kMaxMessageChars);
      }
      out_ << "\n";
    }
  }
  out_ << "ops: " << OpCounts(t) << "\n"
       << "bytes: " << SizeAndBytes(t.bytes_copied) << " copied, "
       << SizeAndBytes(t.bytes_zero_copy) << " zero-copy\n"
       << "short sends " << t.short_sends << ", resumed chains "
       << t.chains_resumed << ", cancelled ops " << t.cancelled_ops << "\n"
       << "notifications " << t.notifications << ", of which copied "
       << t.copied_notifications
       << (features_.zc_report_usage ? ""
                                     : " (this kernel does not report copies)")
       << "; fallbacks " << t.fallbacks_enomem + t.fallbacks_unsupported
       << " (-ENOMEM " << t.fallbacks_enomem << ", unsupported "
       << t.fallbacks_unsupported << "); adaptive turned zero-copy off on "
       << t.adaptive_disabled << " of "
       << Count(config.connections, "connection") << "\n"
       << "peak awaiting notification: "
       << SizeAndBytes(t.peak_bytes_awaiting_notification)
       << (config.connections > 1 ? " (sum of per-connection peaks)" : "")
       << ", cap " << SizeAndBytes(cap_) << "\n"
       << "cap: " << cap_description_ << "\n";
  if (t.enomem_pauses > 0) {
    out_ << "zero-copy paused " << t.enomem_pauses
         << " time(s) after repeated -ENOMEM (locked memory taken), "
         << t.chains_zc_paused << " chain(s) sent by copy meanwhile\n";
  }
  if (config.registered) {
    out_ << "registered buffers: " << SizeAndBytes(state_.pool->memory().size())
         << ", "
         << (t.fixed_buffer_ops > 0
                 ? absl::StrCat(t.fixed_buffer_ops,
                                " zero-copy ops used fixed buffers")
                 : std::string("no fixed-buffer op happened"))
         << "\n";
  }
  out_ << "stats: " << FormatStats(t) << "\n";
  if (t.notifications > 0 && t.copied_notifications == t.notifications) {
    out_ << "warning: every notification (" << t.notifications
         << ") reported that the kernel copied the data (loopback or veth?): "
            "these numbers say nothing about zero-copy on real hardware\n";
  }
  if (memory_kept_) {
    out_ << "note: kept " << HumanSize(state_.pool->memory().size())
         << " of buffer memory mapped until exit: "
         << (held_at_teardown_
                 ? "the kernel still held some of it at the end"
                 : "the executor said the kernel may still read some")
         << "; it is never reused\n";
  }
  out_ << std::flush;
}

SendResult SendRun::Run() {
  SendResult result;
  // Installed before connecting, so that a signal during a connect that gets
  // no answer ends the run as one during the sending does.
  ScopedStopSignals signals;
  if (!SetUp()) {
    result.stopped_by_peer = stopped_by_peer_;
    if (executor_ != nullptr) CloseConnections();  // nothing was enqueued
    DestroyExecutor();
    if (const int signal_number = ScopedStopSignals::Pending();
        signal_number != 0 && !stopped_by_peer_) {
      err_ << "zcsend: stopped by "
           << EndingName(Ending::kSignal, signal_number)
           << " while connecting to " << EscapeForMessage(config_.peer)
           << "; nothing was sent\n";
      result.code = kZcsendInterrupted + signal_number;
    }
    return result;
  }
  PrintHeader();
  const absl::Time start = absl::Now();
  state_.last_release = start;
  last_idle_check_ = start;
  for (Conn& c : state_.conns) c.last_progress = start;

  std::string message;
  Ending ending = Loop(&message);
  if (ending == Ending::kDone) {
    if (absl::Status s = executor_->Drain(kDrainTimeout); !s.ok()) {
      ending = Ending::kFailed;
      message = absl::StrCat("draining the executor: ", s.ToString());
    } else if (!state_.internal_error.empty()) {
      ending = Ending::kFailed;
      message = state_.internal_error;
    }
  }
  // Whatever else went wrong, the receiver's failure is the cause.
  stopped_by_peer_ = PeerFailed();
  const absl::Duration elapsed =
      (ending == Ending::kDone ? state_.last_release : absl::Now()) - start;
  if (ending == Ending::kDone) {
    AwaitAcks();
  } else {
    for (Conn& c : state_.conns) c.UpdateAcked();
  }
  for (const Conn& c : state_.conns) {
    zero_copy_on_.push_back(executor_->ZeroCopyEnabled(c.id));
  }
  cap_ = executor_->max_bytes_awaiting_notification();
  cap_description_ = executor_->DescribeNotificationCap();
  // The flags a ring probes on first use are known now (uring/ring.h).
  features_ = executor_->features();
  CloseConnections();
  ring_stats_ = executor_->stats();
  memory_kept_ = DestroyExecutor();
  PrintReport(elapsed, ending);

  result.stopped_by_peer = stopped_by_peer_;
  int failed = 0;
  for (const Conn& c : state_.conns) {
    result.sent.emplace_back(c.local, c.released_ok);
    if (!c.error.ok() && !c.abandoned) ++failed;
  }
  if (stopped_by_peer_) return result;  // kZcsendFailed, the receiver says
  switch (ending) {
    case Ending::kDone:
      for (size_t i = 0; i < state_.conns.size(); ++i) {
        const Conn& c = state_.conns[i];
        if (c.error.ok()) continue;
        err_ << "zcsend: connection " << i + 1 << " to "
             << EscapeForMessage(config_.peer) << " failed after "
             << c.released_ok << " bytes: " << c.error.ToString() << "\n";
      }
      result.code = failed > 0 ? kZcsendFailed : kZcsendOk;
      break;
    case Ending::kSignal: {
      const int signal_number = ScopedStopSignals::Pending();
      err_ << "zcsend: stopped by " << EndingName(ending, signal_number)
           << "; the report above is partial\n";
      result.code = kZcsendInterrupted + signal_number;
      break;
    }
    case Ending::kIdle:
    case Ending::kFailed:
      result.code = Fail(message);
      break;
    case Ending::kPeerFailed:
      break;
  }
  return result;
}

SendResult RunSend(const Config& config, const SendJob& job,
                   SendControl control, std::ostream& out, std::ostream& err) {
  SendRun run(config, job, control, out, err);
  return run.Run();
}

// --- Receiver ----------------------------------------------------------------

absl::Status WriteAll(int fd, const unsigned char* data, size_t length) {
  while (length > 0) {
    const ssize_t n = write(fd, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, "write");
    data += n;
    length -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

std::string OutPath(const Config& c, size_t i) {
  return c.connections == 1 ? c.out_path : absl::StrCat(c.out_path, ".", i + 1);
}

// What the receiver's callbacks (on its thread) print and collect.
struct ReceiveState {
  const Config* config = nullptr;
  std::ostream* out = nullptr;  // the per-connection lines
  uint64_t undercount = 0;      // ZcsendTestHooks
  std::vector<Fd> files;        // --out, per connection
  std::string first_failure;    // the first connection that failed

  // The bytes connection `i` is reported with.
  uint64_t Counted(size_t i, const ReceivedConnection& c) const {
    return c.bytes - (i == 0 && c.eof ? std::min(c.bytes, undercount) : 0);
  }
};

ReceiverOptions MakeReceiverOptions(ReceiveState& state,
                                    const ZcsendTestHooks& hooks) {
  const Config& config = *state.config;
  ReceiverOptions options;
  options.connections = config.connections;
  options.check_pattern = config.check_pattern;
  if (hooks.receiver_accept_fails_at > 0) {
    options.accept_fault = [at = hooks.receiver_accept_fails_at,
                            error = hooks.receiver_accept_errno](size_t n) {
      return n == at ? error : 0;
    };
  }
  if (!state.files.empty()) {
    options.on_data = [&state](size_t i, absl::Span<const unsigned char> d) {
      if (absl::Status s = WriteAll(state.files[i].get(), d.data(), d.size());
          !s.ok()) {
        return absl::DataLossError(absl::StrCat(
            "--out: ", OutPath(*state.config, i), ": ", s.message()));
      }
      return absl::OkStatus();
    };
  }
  options.on_end = [&state](size_t i, const ReceivedConnection& c) {
    if (c.error != 0 && state.first_failure.empty()) {
      state.first_failure =
          absl::StrCat("connection ", i + 1, " from ", c.peer, ": ",
                       Errno(c.error), " after ", c.bytes, " bytes");
    }
    *state.out << "connection " << i + 1 << " from " << c.peer
               << (c.eof ? " closed" : " failed") << " after "
               << SizeAndBytes(state.Counted(i, c)) << std::endl;
  };
  return options;
}

// The receiver's summary on `out` and its exit code, once it has ended;
// `received` (when given) gets each connection's peer and count.
int ReportReceived(
    const Receiver& receiver, const ReceiveState& state, std::ostream& out,
    std::ostream& err,
    std::vector<std::pair<std::string, uint64_t>>* received = nullptr) {
  const Config& config = *state.config;
  auto fail = [&err](absl::string_view message) {
    err << "zcsend: " << message << "\n";
    return kZcsendFailed;
  };
  const absl::Status& status = receiver.status();
  // A failed accept or --out: no summary.
  if (!status.ok() && !absl::IsCancelled(status)) return fail(status.message());
  uint64_t total = 0;
  std::string mismatch;  // the first connection's pattern mismatch
  const std::vector<ReceivedConnection>& conns = receiver.connections();
  for (size_t i = 0; i < conns.size(); ++i) {
    const ReceivedConnection& c = conns[i];
    total += state.Counted(i, c);
    if (received != nullptr)
      received->emplace_back(c.peer, state.Counted(i, c));
    if (c.mismatch_at >= 0 && mismatch.empty()) {
      mismatch = absl::StrFormat(
          "connection %d from %s: byte %d is 0x%02x, expected 0x%02x", i + 1,
          c.peer, c.mismatch_at, c.mismatch_got, c.mismatch_expected);
    }
  }
  const absl::Duration elapsed = receiver.elapsed();
  out << "received " << total << " bytes (" << HumanSize(total) << ") on "
      << Count(config.connections, "connection") << " in "
      << absl::StrFormat("%.3f s", absl::ToDoubleSeconds(elapsed)) << ": "
      << Rate(total, elapsed) << "\n";
  if (config.check_pattern) {
    out << "pattern: "
        << (!mismatch.empty() ? absl::StrCat("MISMATCH: ", mismatch)
            : total == 0      ? std::string("nothing received to check")
                              : absl::StrCat("OK (", total, " bytes checked)"))
        << "\n";
  }
  if (config.has_out) {
    out << "wrote "
        << (config.connections == 1
                ? config.out_path
                : absl::StrCat(config.out_path, ".1..", config.connections))
        << "\n";
  }
  out << std::flush;
  if (!state.first_failure.empty()) return fail(state.first_failure);
  if (absl::IsCancelled(status)) return fail("stopped: the sender gave up");
  if (!mismatch.empty()) {
    return fail(absl::StrCat("pattern mismatch: ", mismatch));
  }
  return kZcsendOk;
}

// A receiver that did not end well: the sender stops (--loopback).
bool ReceiverFailed(const Receiver& receiver) {
  if (!receiver.done()) return false;
  if (!receiver.status().ok()) return true;
  for (const ReceivedConnection& c : receiver.connections()) {
    if (c.error != 0 || c.mismatch_at >= 0) return true;
  }
  return false;
}

// --out: PATH, or PATH.1 .. PATH.N, opened for writing. Errors are bad
// input.
absl::Status OpenOutFiles(const Config& config, std::vector<Fd>& files) {
  // PATH.1 .. PATH.N are written beside PATH: a PATH that is not a regular
  // file (/dev/null) is refused rather than given siblings.
  if (struct stat st = {};
      config.connections > 1 && stat(config.out_path.c_str(), &st) == 0) {
    if (absl::Status s = CheckOutputFile(config.out_path, "--out"); !s.ok()) {
      return s;
    }
  }
  for (size_t i = 0; i < config.connections; ++i) {
    if (absl::Status s = CheckOutputFile(OutPath(config, i), "--out");
        !s.ok()) {
      return s;
    }
  }
  files.resize(config.connections);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string path = OutPath(config, i);
    // Non-blocking, and checked on the descriptor: a FIFO put in place
    // after the check cannot hang the open.
    files[i].Reset(open(path.c_str(),
                        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK,
                        0644));
    struct stat st = {};
    if (files[i].get() < 0 || fstat(files[i].get(), &st) != 0 ||
        !S_ISREG(st.st_mode)) {
      return Bad(absl::StrCat(
          "--out: cannot write ", QuoteForMessage(path), ": ",
          files[i].get() < 0 ? Errno(errno) : "not a regular file"));
    }
  }
  return absl::OkStatus();
}

// The listening socket of --listen PORT --bind ADDR.
absl::StatusOr<Fd> OpenListener(const Config& config) {
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* list = nullptr;
  const std::string port = absl::StrCat(config.listen_port);
  if (int rc = getaddrinfo(config.bind.c_str(), port.c_str(), &hints, &list);
      rc != 0) {
    return absl::UnavailableError(absl::StrCat("--bind: cannot resolve ",
                                               QuoteForMessage(config.bind),
                                               ": ", gai_strerror(rc)));
  }
  Fd listener;
  int error = 0;
  for (struct addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    listener.Reset(
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    const int one = 1;
    if (listener.get() >= 0 &&
        setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one,
                   sizeof(one)) == 0 &&
        bind(listener.get(), ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(listener.get(), static_cast<int>(std::max<uint32_t>(
                                   config.connections, 16))) == 0) {
      error = 0;
      break;
    }
    error = errno;
    listener.Reset();
  }
  freeaddrinfo(list);
  if (listener.get() < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ",
                                               EscapeForMessage(config.bind),
                                               ":", port, ": ", Errno(error)));
  }
  return listener;
}

// zcsend --listen.
int RunListen(const Config& config, std::ostream& out, std::ostream& err) {
  ReceiveState state;
  state.config = &config;
  state.out = &out;
  if (config.has_out) {
    if (absl::Status s = OpenOutFiles(config, state.files); !s.ok()) {
      return BadInput(s, err);
    }
  }
  absl::StatusOr<Fd> listener = OpenListener(config);
  if (!listener.ok()) {
    err << "zcsend: " << listener.status().message() << "\n";
    return kZcsendFailed;
  }
  struct sockaddr_storage local = {};
  socklen_t local_len = sizeof(local);
  getsockname(listener->get(), reinterpret_cast<struct sockaddr*>(&local),
              &local_len);
  // Before the receiver's thread writes to `out`.
  out << "listening on " << FormatAddress(local) << std::endl;
  absl::StatusOr<std::unique_ptr<Receiver>> receiver = Receiver::OnListener(
      *std::move(listener), MakeReceiverOptions(state, ZcsendTestHooks()));
  if (!receiver.ok()) {
    err << "zcsend: " << receiver.status().message() << "\n";
    return kZcsendFailed;
  }
  (*receiver)->Join().IgnoreError();  // reported below
  return ReportReceived(**receiver, state, out, err);
}

// The first connection whose byte count differs between the sender's
// report and the receiver's (matched by address), as an error line, or "".
std::string CompareCounts(
    const std::vector<std::pair<std::string, uint64_t>>& sent,
    const std::vector<std::pair<std::string, uint64_t>>& received) {
  for (size_t i = 0; i < sent.size(); ++i) {
    const auto& [address, bytes] = sent[i];
    const auto it =
        std::find_if(received.begin(), received.end(),
                     [&](const auto& r) { return r.first == address; });
    if (it == received.end()) {
      return absl::StrCat("connection ", i + 1, " (from ", address,
                          "): the sender sent ", bytes,
                          " bytes, the receiver never saw the connection");
    }
    if (it->second != bytes) {
      return absl::StrCat("connection ", i + 1, " (from ", address,
                          "): the sender sent ", bytes,
                          " bytes, the receiver counted ", it->second);
    }
  }
  return "";
}

// --loopback: a receiver (as --listen, checking the pattern when the data is
// the generated pattern) on 127.0.0.1 in a thread, and the sender aimed at it.
// Each stops the other when it fails, and the byte counts are compared.
int RunLoopback(Config config, const SendJob& job, const ZcsendTestHooks& hooks,
                std::ostream& out, std::ostream& err) {
  Config receiver_config;
  receiver_config.has_listen = true;
  receiver_config.bind = "127.0.0.1";
  // --resend sends whatever its buffers were filled with, over and over.
  receiver_config.check_pattern = !config.has_file && !config.resend;
  receiver_config.connections = config.connections;
  std::ostringstream receiver_out;
  std::ostringstream receiver_err;
  ReceiveState state;
  state.config = &receiver_config;
  state.out = &receiver_out;
  state.undercount = hooks.receiver_undercount_bytes;
  // When the receiver fails, its listener and accepted sockets close (the
  // sender's connections are reset) and `peer_failed` stops the sender.
  absl::StatusOr<std::unique_ptr<Receiver>> started =
      Receiver::Listen(MakeReceiverOptions(state, hooks));
  if (!started.ok()) {
    err << "zcsend: " << started.status().message() << "\n";
    return kZcsendFailed;
  }
  Receiver& receiver = **started;
  config.has_peer = true;
  config.peer_host = "127.0.0.1";
  config.peer_port = receiver.port();
  config.peer = receiver.address();
  std::ostringstream sender_err;
  SendControl send_control;
  send_control.peer_failed = [&receiver] { return ReceiverFailed(receiver); };
  send_control.never_reset = hooks.sender_never_resets;
  const SendResult sent = RunSend(config, job, send_control, out, sender_err);
  // A sender that failed has closed its connections; a receiver still
  // waiting for connections that will not come is stopped.
  if (sent.code != kZcsendOk) {
    receiver.Stop().IgnoreError();
  } else {
    receiver.Join().IgnoreError();
  }
  const bool receiver_stopped_by_sender = absl::IsCancelled(receiver.status());
  std::vector<std::pair<std::string, uint64_t>> received;
  const int receiver_rc =
      ReportReceived(receiver, state, receiver_out, receiver_err, &received);
  out << "receiver on " << receiver.address() << ":\n"
      << "  listening on " << receiver.address() << "\n";
  std::istringstream lines(receiver_out.str());
  for (std::string line; std::getline(lines, line);) {
    out << "  " << line << "\n";
  }
  out << std::flush;
  // One side's failure makes the other fail too: report the cause. A
  // receiver that failed on its own is it, even when the sender noticed
  // the closed connections before the receiver's flag (an attach or send
  // error on a socket the receiver had just closed).
  // (A signal stops both sides: the sender reports it, below.)
  if (sent.stopped_by_peer ||
      (receiver_rc != kZcsendOk && !receiver_stopped_by_sender &&
       ScopedStopSignals::Pending() == 0)) {
    err << receiver_err.str();
    return kZcsendFailed;
  }
  if (sent.code != kZcsendOk) {
    err << sender_err.str();
    return sent.code;
  }
  if (receiver_rc != kZcsendOk) {
    err << receiver_err.str();
    return receiver_rc;
  }
  if (const std::string mismatch = CompareCounts(sent.sent, received);
      !mismatch.empty()) {
    err << "zcsend: byte count mismatch: " << mismatch << "\n";
    return kZcsendFailed;
  }
  return kZcsendOk;
}

}  // namespace

std::string ZcsendUsage() {
  const PlanOptions d;
  return absl::StrFormat(
      R"(usage: zcsend --peer HOST:PORT [sender flags]
       zcsend --listen PORT [receiver flags]
       zcsend --help

Sends real data through the size-aware io_uring executor to any TCP
receiver (zcsend --listen, socat, nc), or receives and checks it.

  zcsend --listen 9000 --check-pattern
  zcsend --peer 127.0.0.1:9000 --bytes 64M --split 4K,4K,16K,32K,2K
  zcsend --loopback --bytes 256M

Sender (--peer HOST:PORT, or --loopback):
  --loopback           send to a receiver of zcsend's own on 127.0.0.1 (a
                       thread; it checks the pattern) and print both reports
  --file PATH          send the bytes of this file
  --bytes SIZE         or send SIZE bytes of the generated pattern (the
                       stream --check-pattern verifies; see below) [%s]
  --resend             send the same buffer memory again and again, filled
                       with the pattern once and never refilled (as liburing's
                       examples/send-zerocopy): the send path alone; not with
                       --file, and --loopback's receiver only counts
  --split LIST         buffer sizes, repeated over the data [%s]
  --trace FILE         or take the sizes from a planner trace: each line is
                       one message, the lines repeat over the data
  --threshold SIZE     buffers of at least SIZE go zero-copy; 0 all,
                       'never' none [%s]
  --copy-op OP         writev or sendmsg: the op for several small buffers
                       [%s]
  --gap SIZE           gap knob: small buffers totalling at most SIZE between
                       two zero-copy buffers join the zero-copy op; 0 is off
  --adaptive on|off    turn zero-copy off on a connection whose notifications
                       keep reporting that the kernel copied [on]
  --registered         put the buffers in one registered region, so zero-copy
                       ops use fixed buffers
  --max-in-flight SIZE per connection, at most SIZE bytes enqueued and not yet
                       released (a buffer is refilled only after its release)
                       [%s]; at most %d buffers are held per connection
                       whatever their size
  --connections N      open N connections, each sends all the data; one ring
                       [1]
  --idle-timeout DUR   end the run (exit 1) when a connection has had no byte
                       acknowledged by the peer and no buffer released for
                       DUR (30s, 500ms, ...; 0 is off) [30s]; it also
                       bounds each connect (30s when it is 0)

Receiver (--listen PORT, 0 for any free port):
  --bind ADDR          address to listen on [0.0.0.0]
  --connections N      accept N connections, exit when all have closed [1]
  --out PATH           write what arrives to PATH (PATH.1 .. PATH.N with
                       several connections), a regular file (not a FIFO or a
                       device such as /dev/null: leave --out out to discard)
  --check-pattern      check that each connection carries the generated
                       pattern from its first byte

The pattern: byte N of each connection's stream is byte M %% 8 (least
significant first) of the 64-bit word z(M / 8), where M = N mod %d
(the period, a prime) and z(w) is splitmix64's output for the state
(w + 1) * 0x9E3779B97F4A7C15: z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31.

Sizes take K, M or G suffixes (binary). Flags take their value as
--flag=VALUE or --flag VALUE.

Output: the sender prints the plan of the first message, then the bytes
sent (what the local kernel accepted) with the throughput, the bytes the
peer acknowledged (TCP_INFO), ops by kind, bytes copied vs zero-copy, short
sends, resumed chains, notifications (and how many reported a copy),
fallbacks and the peak bytes awaiting notification. The receiver's first line is "listening on ADDR:PORT";
it ends with the bytes received, the throughput and the pattern result.

SIGINT or SIGTERM while connecting or sending stops the run (with the
partial report once sending has begun).
With --loopback, a receiver that fails stops the sender, and the bytes each
connection received must equal those sent.

Exit status: 0 on success; 1 when the run fails (io_uring unavailable,
connection error or a peer that reset or closed a connection early, connect
or idle timeout, a buffer released with an error, pattern or byte count
mismatch, a report that cannot be written); 2 on bad input, with one line on stderr and nothing on
stdout; 130 or 143 when stopped by SIGINT or SIGTERM.
)",
      FormatSize(kDefaultBytes), kDefaultSplit, FormatThreshold(d.zc_threshold),
      CopyOpName(d.copy_op), FormatSize(kDefaultMaxInFlight),
      kMaxBuffersInFlight, kPatternPeriod);
}

int RunZcsend(absl::Span<const std::string> args, std::ostream& out,
              std::ostream& err) {
  return RunZcsendWithHooks(args, out, err, ZcsendTestHooks());
}

namespace {

int RunZcsendUnchecked(absl::Span<const std::string> args, std::ostream& out,
                       std::ostream& err, const ZcsendTestHooks& hooks) {
  switch (AnswerVersionOrHelp(args, "zcsend", ZcsendUsage, out)) {
    case FirstAnswer::kAnswered:
      return kZcsendOk;
    case FirstAnswer::kOutputFailed:
      return kZcsendFailed;
    case FirstAnswer::kNone:
      break;
  }
  Config config;
  if (absl::Status s = ParseFlags(args, kFlagNames, {"zcsend", "", false},
                                  [&config](const ParsedFlags& parsed) {
                                    return ReadFlags(parsed, config);
                                  })
                           .status();
      !s.ok()) {
    return BadInput(s, err);
  }
  if (config.has_listen) return RunListen(config, out, err);
  // Everything about the input is checked before anything starts.
  absl::StatusOr<SendJob> job = PrepareSend(config);
  if (!job.ok()) return BadInput(job.status(), err);
  if (config.loopback) return RunLoopback(config, *job, hooks, out, err);
  SendControl control;
  control.never_reset = hooks.sender_never_resets;
  return RunSend(config, *job, control, out, err).code;
}

}  // namespace

int RunZcsendWithHooks(absl::Span<const std::string> args, std::ostream& out,
                       std::ostream& err, const ZcsendTestHooks& hooks) {
  int code = RunZcsendUnchecked(args, out, err, hooks);
  // A report that could not be written (stdout on a full disk, a closed
  // pipe) is a failed run, not a success nobody saw.
  out.flush();
  if (!out) {
    err << "zcsend: cannot write the report to the output (stdout)\n";
    if (code == kZcsendOk) code = kZcsendFailed;
  }
  return code;
}

}  // namespace zcplan
