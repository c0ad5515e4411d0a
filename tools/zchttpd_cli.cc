// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/zchttpd_cli.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "zcplan/planner/flag_types.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tools/cli_io.h"
#include "zcplan/tools/flags.h"
#include "zcplan/tools/send_flags.h"
#include "zcplan/tools/stop_signals.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/net.h"
#include "zcplan/uring/prepared_message.h"
#include "zcplan/uring/stats.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8080", "HOST:PORT to listen on");
ABSL_FLAG(zcplan::ByteSize, zc_cap, zcplan::ByteSize{0},
          "zero-copy bytes awaiting notification per ring (0: default)");
ABSL_FLAG(zcplan::ByteSize, body, zcplan::ByteSize{64 * 1024},
          "the body of /<N>");
ABSL_FLAG(zcplan::WholeNumber, threads, zcplan::WholeNumber{1},
          "threads, each with its ring and executor");
ABSL_FLAG(zcplan::WholeNumber, max_connections, zcplan::WholeNumber{1024},
          "connections per thread");
ABSL_FLAG(absl::Duration, stats_every, absl::ZeroDuration(),
          "print a stats line this often");
ABSL_FLAG(bool, registered, false, "register the body arenas");
ABSL_FLAG(zcplan::ByteSize, gather, zcplan::ByteSize{256 * 1024},
          "bytes of small pieces gathered into one send per chain (0: off)");
ABSL_FLAG(zcplan::ByteSize, gather_below, zcplan::ByteSize{512},
          "gather a copy op whose pieces average below this");
ABSL_FLAG(zcplan::OnOff, prepared, zcplan::OnOff{true},
          "bodies as prepared messages (on) or as buffers (off)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "close a connection that makes no progress for this long");

namespace zcplan {

// --- Requests ----------------------------------------------------------------

namespace {

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(c) ||
         (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool IsToken(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// A control byte other than HTAB: NUL, a bare CR, DEL, ... (RFC 9110 5.5:
// a field value holding one is refused, or the byte replaced).
bool HasControl(absl::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
  });
}

// The origin-form part of an absolute-form target ("http://a:80/x?q" is
// "/x?q", "http://a" and "http://a?q" are "/"), which a server must accept
// (RFC 9112 3.2.2); any other target as it is. Empty for an http(s) URI
// without a host.
absl::string_view OriginForm(absl::string_view target) {
  size_t scheme = 0;
  if (absl::StartsWithIgnoreCase(target, "http://")) {
    scheme = 7;
  } else if (absl::StartsWithIgnoreCase(target, "https://")) {
    scheme = 8;
  } else {
    return target;
  }
  const absl::string_view rest = target.substr(scheme);
  const size_t path = rest.find_first_of("/?");
  if (path == 0 || rest.empty()) return absl::string_view();  // no host
  if (path == absl::string_view::npos || rest[path] == '?') return "/";
  return rest.substr(path);
}

HttpRequestParse Error(int status) {
  HttpRequestParse p;
  p.outcome = HttpRequestParse::Outcome::kError;
  p.status = status;
  return p;
}

}  // namespace

HttpRequestParse ParseHttpRequest(absl::string_view data,
                                  size_t max_header_bytes) {
  size_t start = 0;
  while (start < data.size() && (data[start] == '\r' || data[start] == '\n')) {
    ++start;
  }
  // Takes the next line (without its line ending) into `*line`; false when
  // the line has not all arrived.
  size_t pos = start;
  auto next_line = [&](absl::string_view* line) {
    const size_t nl = data.find('\n', pos);
    if (nl == absl::string_view::npos) return false;
    *line = data.substr(pos, nl - pos);
    if (absl::EndsWith(*line, "\r")) line->remove_suffix(1);
    pos = nl + 1;
    return true;
  };
  // Once the method is known to be HEAD, errors too are answered without a
  // body.
  bool head = false;
  auto fail = [&head](int status) {
    HttpRequestParse p = Error(status);
    p.head = head;
    return p;
  };
  // The bound counts from the first byte, empty lines before the request
  // line too: what is not yet a request never fills the receive buffer.
  auto incomplete = [&] {
    return data.size() >= max_header_bytes ? fail(431) : HttpRequestParse();
  };
  absl::string_view line;
  if (!next_line(&line)) return incomplete();
  // METHOD SP TARGET SP VERSION, one space each.
  const size_t sp1 = line.find(' ');
  const size_t sp2 =
      sp1 == absl::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == absl::string_view::npos ||
      line.find(' ', sp2 + 1) != absl::string_view::npos) {
    return Error(400);
  }
  const absl::string_view method = line.substr(0, sp1);
  absl::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const absl::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || target.empty() || HasControl(target) ||
      version.size() != 8 || !absl::StartsWith(version, "HTTP/") ||
      !absl::ascii_isdigit(version[5]) || version[6] != '.' ||
      !absl::ascii_isdigit(version[7])) {
    return Error(400);
  }
  if (version[5] != '1') return Error(505);
  const bool http10 = version[7] == '0';
  head = method == "HEAD";
  if (method != "GET" && !head) return fail(405);
  target = OriginForm(target);
  if (target.empty() || target[0] != '/') return fail(400);

  bool close = false, keep_alive = false;
  int hosts = 0;
  for (;;) {
    if (!next_line(&line)) return incomplete();
    if (pos > max_header_bytes) return fail(431);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !IsToken(line.substr(0, colon))) {
      return fail(400);  // also obsolete line folding (a leading space)
    }
    const absl::string_view name = line.substr(0, colon);
    const absl::string_view value =
        absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (HasControl(value)) return fail(400);
    if (absl::EqualsIgnoreCase(name, "host")) {
      ++hosts;
    } else if (absl::EqualsIgnoreCase(name, "connection")) {
      for (absl::string_view option : absl::StrSplit(value, ',')) {
        option = absl::StripAsciiWhitespace(option);
        if (absl::EqualsIgnoreCase(option, "close")) close = true;
        if (absl::EqualsIgnoreCase(option, "keep-alive")) keep_alive = true;
      }
    } else if (absl::EqualsIgnoreCase(name, "content-length")) {
      if (value != "0") return fail(400);
    } else if (absl::EqualsIgnoreCase(name, "transfer-encoding")) {
      return fail(400);
    }
  }
  if (!http10 && hosts != 1) return fail(400);

  HttpRequestParse p;
  p.outcome = HttpRequestParse::Outcome::kComplete;
  p.consumed = pos;
  p.target = target.substr(0, target.find('?'));
  p.keep_alive = !close && (!http10 || keep_alive);
  p.http10 = http10;
  p.head = head;
  return p;
}

namespace {

// --- Configuration -----------------------------------------------------------

constexpr uint64_t kMaxBody = uint64_t{1} << 30;
constexpr uint64_t kMaxZcCap = uint64_t{1} << 40;
// The executor's limits of ConnectionOptions::gather_bytes and gather_below.
constexpr uint64_t kMaxGather = uint64_t{1} << 30;
constexpr uint64_t kMaxGatherBelow = uint64_t{1} << 20;
constexpr uint32_t kMaxPieces = kMaxReferencePieces;  // 65536
constexpr uint64_t kMixedBody = 256 * 1024;
constexpr size_t kMaxRequestHeader = 8 * 1024;
constexpr size_t kRecvBuffer = 16 * 1024;
// What is left of a partial request stays under kMaxRequestHeader (else
// 431), so the next recv always has room: a recv of 0 bytes would read as
// the client's EOF.
static_assert(kRecvBuffer > kMaxRequestHeader);
// Responses queued on one connection before the server stops reading it.
constexpr uint32_t kMaxPipelined = 128;
constexpr uint32_t kMaxThreads = 64;
constexpr uint32_t kMaxConnections = 65536;
constexpr size_t kHeaderSlot = 256;
constexpr uint32_t kSlotsPerChunk = 1024;
constexpr uint8_t kExecutorTag = 0x5A;
constexpr unsigned kSqEntries = 512;
constexpr unsigned kCqEntries = 8192;
constexpr absl::Duration kTick = absl::Milliseconds(50);
// A closing connection reads and drops what the client still sends for at
// most this long after its FIN, so that unread input does not turn the
// close into a reset that could destroy the last response.
constexpr absl::Duration kLinger = absl::Seconds(2);
// How long a stop waits for the connections to go (they are reset first).
constexpr absl::Duration kStopTimeout = absl::Seconds(2);
constexpr absl::Duration kStartTimeout = absl::Seconds(10);
constexpr size_t kMaxMessageChars = 200;

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  PlanOptions plan;
  bool adaptive = true;
  uint64_t body = 64 * 1024;
  uint32_t threads = 1;
  uint32_t max_connections = 1024;
  absl::Duration stats_every = absl::ZeroDuration();
  bool registered = false;
  // Each route's body a PreparedMessage, queued with EnqueueMessage (one
  // token a response), or its pieces queued with Enqueue (one each).
  bool prepared = true;
  // ConnectionOptions::gather_bytes and gather_below.
  uint64_t gather = 256 * 1024;
  uint64_t gather_below = 512;
  uint64_t zc_cap = 0;  // ExecutorOptions::max_bytes_awaiting_notification
  // A connection neither beginning nor completing a request, nor taking a
  // response byte, for this long is closed (reset when a response is
  // stuck); 0: never.
  absl::Duration idle_timeout = absl::Seconds(60);
};

absl::Status Bad(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

constexpr absl::string_view kFlagNames[] = {
    "listen",          "threshold",   "copy-op",     "gap",
    "adaptive",        "zc-cap",      "body",        "threads",
    "max-connections", "stats-every", "registered",  "idle-timeout",
    "prepared",        "gather",      "gather-below"};

// Copies the parsed flags into `c` (called inside ParseFlags).
absl::Status ReadFlags(Config& c) {
  c.listen = absl::GetFlag(FLAGS_listen);
  absl::StatusOr<std::pair<std::string, std::string>> hp =
      SplitHostPort(c.listen, /*min_port=*/0);
  if (!hp.ok()) {
    // Not SplitHostPort's message: it echoes the text unescaped and whole.
    return Bad(absl::StrCat("--listen: bad address ", QuoteForMessage(c.listen),
                            ": expected HOST:PORT (port 0..65535), e.g. "
                            "127.0.0.1:9000 or [::1]:9000"));
  }
  c.host = hp->first;
  c.port = static_cast<uint16_t>(std::stoul(hp->second));
  ReadSendFlags(&c.plan, &c.adaptive);
  c.zc_cap = absl::GetFlag(FLAGS_zc_cap).bytes;
  c.gather = absl::GetFlag(FLAGS_gather).bytes;
  c.gather_below = absl::GetFlag(FLAGS_gather_below).bytes;
  c.body = absl::GetFlag(FLAGS_body).bytes;
  c.threads = absl::GetFlag(FLAGS_threads).value;
  c.max_connections = absl::GetFlag(FLAGS_max_connections).value;
  c.stats_every = absl::GetFlag(FLAGS_stats_every);
  c.registered = absl::GetFlag(FLAGS_registered);
  c.prepared = absl::GetFlag(FLAGS_prepared).on;
  c.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  if (absl::Status s = FirstFailedCheck({
          {"zc-cap", SizeInRange(c.zc_cap, 0, kMaxZcCap, " (0: the default)")},
          {"gather", SizeInRange(c.gather, 0, kMaxGather, " (0: off)")},
          {"gather-below", SizeInRange(c.gather_below, 1, kMaxGatherBelow)},
          {"body", SizeInRange(c.body, 1, kMaxBody)},
          {"threads", CountInRange(c.threads, 1, kMaxThreads)},
          {"max-connections",
           CountInRange(c.max_connections, 1, kMaxConnections)},
      });
      !s.ok()) {
    return s;
  }
  if (c.stats_every < absl::ZeroDuration() ||
      c.stats_every == absl::InfiniteDuration() ||
      (c.stats_every > absl::ZeroDuration() &&
       c.stats_every < absl::Milliseconds(10))) {
    return Bad(absl::StrCat("--stats-every: bad duration '",
                            absl::FormatDuration(c.stats_every),
                            "' (e.g. 1s, 500ms, at least 10ms; 0: off)"));
  }
  if (c.idle_timeout != absl::ZeroDuration()) {
    if (absl::Status s =
            DurationInRange(c.idle_timeout, absl::Milliseconds(100),
                            absl::Hours(24), "100ms..24h, or 0 for never");
        !s.ok()) {
      return Bad(absl::StrCat("--idle-timeout: ", s.message()));
    }
  }
  if (absl::Status s = ValidatePlanOptions(c.plan); !s.ok()) {
    return Bad(absl::StrCat("bad planner options: ", s.message()));
  }
  return absl::OkStatus();
}

// --- Responses ---------------------------------------------------------------

absl::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 505:
      return "HTTP Version Not Supported";
  }
  return "Error";
}

constexpr int kStatuses[] = {200, 400, 404, 405, 431, 505};
constexpr int kNumStatuses = sizeof(kStatuses) / sizeof(kStatuses[0]);

int StatusIndex(int status) {
  for (int i = 0; i < kNumStatuses; ++i) {
    if (kStatuses[i] == status) return i;
  }
  return 1;  // 400
}

// The body arenas, shared read-only by every thread.
struct Bodies {
  std::unique_ptr<unsigned char[]> plain;  // --body bytes
  uint64_t plain_size = 0;
  std::unique_ptr<unsigned char[]> mixed;  // the reference message
};

std::unique_ptr<unsigned char[]> MakeArena(uint64_t size) {
  std::unique_ptr<unsigned char[]> arena(new unsigned char[size]);
  for (uint64_t i = 0; i < size; ++i) arena[i] = ZchttpdBodyByte(i);
  return arena;
}

// What a request target asks for.
struct Route {
  int status = 404;  // 200: serve `mixed` or not, in `pieces`
  bool mixed = false;
  uint32_t pieces = 0;
};

// A decimal count 1..max with nothing else around it, or 0.
uint32_t PieceCount(absl::string_view digits, uint64_t max) {
  uint32_t n = 0;
  if (digits.empty() || digits.size() > 6 ||
      !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(digits, &n) || n == 0 || n > max) {
    return 0;
  }
  return n;
}

Route ResolveRoute(absl::string_view target, uint64_t body) {
  Route r;
  absl::string_view rest = target;
  if (absl::ConsumePrefix(&rest, "/mixed/")) {
    r.mixed = true;
    r.pieces = PieceCount(rest, kMaxPieces);
  } else if (absl::ConsumePrefix(&rest, "/") && !rest.empty() &&
             absl::ascii_isdigit(rest[0])) {
    r.pieces = PieceCount(rest, std::min<uint64_t>(body, kMaxPieces));
  } else {
    return r;  // 404
  }
  r.status = r.pieces == 0 ? 400 : 200;
  return r;
}

// --- Counters ----------------------------------------------------------------

struct HttpCounters {
  uint64_t requests = 0;
  uint64_t responses[kNumStatuses] = {};
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // accepted while stopping
  uint64_t connections_closed = 0;
  uint64_t connections_open = 0;
  uint64_t bytes_received = 0;
  uint64_t accept_errors = 0;
  uint64_t recv_errors = 0;
  uint64_t connections_timed_out = 0;  // closed by --idle-timeout

  void Add(const HttpCounters& o) {
    requests += o.requests;
    for (int i = 0; i < kNumStatuses; ++i) responses[i] += o.responses[i];
    connections_accepted += o.connections_accepted;
    connections_refused += o.connections_refused;
    connections_closed += o.connections_closed;
    connections_open += o.connections_open;
    bytes_received += o.bytes_received;
    accept_errors += o.accept_errors;
    recv_errors += o.recv_errors;
    connections_timed_out += o.connections_timed_out;
  }
  uint64_t total_responses() const {
    uint64_t n = 0;
    for (uint64_t r : responses) n += r;
    return n;
  }
};

std::string FormatCounters(const HttpCounters& c) {
  std::string s =
      absl::StrCat("requests=", c.requests, " responses=", c.total_responses());
  for (int i = 0; i < kNumStatuses; ++i) {
    if (c.responses[i] != 0 || kStatuses[i] == 200) {
      absl::StrAppend(&s, " status_", kStatuses[i], "=", c.responses[i]);
    }
  }
  absl::StrAppend(&s, " connections_accepted=", c.connections_accepted,
                  " connections_open=", c.connections_open,
                  " connections_closed=", c.connections_closed);
  if (c.connections_refused != 0) {
    absl::StrAppend(&s, " connections_refused=", c.connections_refused);
  }
  absl::StrAppend(&s, " bytes_received=", c.bytes_received);
  if (c.accept_errors != 0) {
    absl::StrAppend(&s, " accept_errors=", c.accept_errors);
  }
  if (c.recv_errors != 0) absl::StrAppend(&s, " recv_errors=", c.recv_errors);
  if (c.connections_timed_out != 0) {
    absl::StrAppend(&s, " connections_timed_out=", c.connections_timed_out);
  }
  return s;
}

// What each worker publishes for the printer, under a mutex.
struct Snapshot {
  HttpCounters http;
  SendStats send;
};

// --- user_data and tokens ----------------------------------------------------

// The server's own user_data (top byte 0, never the executor's tag): the
// kind in bits 48..55, a connection's generation in 32..47, its slot in
// 0..31.
enum class OpKindOwn : uint8_t { kAccept = 1, kRecv, kTick, kCancel };

uint64_t EncodeUserData(OpKindOwn kind, uint32_t slot = 0, uint16_t gen = 0) {
  return uint64_t{static_cast<uint8_t>(kind)} << 48 | uint64_t{gen} << 32 |
         slot;
}
OpKindOwn UserDataKind(uint64_t ud) { return static_cast<OpKindOwn>(ud >> 48); }
uint32_t UserDataSlot(uint64_t ud) { return static_cast<uint32_t>(ud); }
uint16_t UserDataGen(uint64_t ud) { return static_cast<uint16_t>(ud >> 32); }

// A buffer's token: bit 39 for the last buffer of a response, and the header
// pool slot + 1 in 0..31 (0 for a body piece). No connection in it: the
// release callback finds the connection by its id, so the body pieces of
// every response of one shape share one token array (`Shape`).
constexpr uint64_t kLastBit = uint64_t{1} << 39;
uint64_t EncodeToken(bool last, uint32_t header_plus_one) {
  return (last ? kLastBit : 0) | header_plus_one;
}
bool TokenLast(uint64_t token) { return (token & kLastBit) != 0; }
uint32_t TokenHeader(uint64_t token) {
  return static_cast<uint32_t>(token & 0xffffffffu);
}

// --- The header pool ---------------------------------------------------------

// Fixed-size header buffers in chunks that never move. A buffer goes back on
// the free list only when the executor released it and the kernel no longer
// reads it; `Leak` abandons every chunk (a buffer came back with
// KernelMayStillRead).
class HeaderPool {
 public:
  ~HeaderPool() {
    if (leak_) {
      for (auto& chunk : chunks_) chunk.release();  // deliberately leaked
    }
  }
  // A free slot, growing the pool by a chunk when none is free.
  uint32_t Take() {
    if (free_.empty()) {
      const uint32_t base =
          static_cast<uint32_t>(chunks_.size()) * kSlotsPerChunk;
      chunks_.emplace_back(new char[kSlotsPerChunk * kHeaderSlot]);
      for (uint32_t i = kSlotsPerChunk; i-- > 0;) free_.push_back(base + i);
    }
    const uint32_t slot = free_.back();
    free_.pop_back();
    return slot;
  }
  void Give(uint32_t slot) { free_.push_back(slot); }
  char* Data(uint32_t slot) {
    return chunks_[slot / kSlotsPerChunk].get() +
           size_t{slot % kSlotsPerChunk} * kHeaderSlot;
  }
  void Leak() { leak_ = true; }

 private:
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::vector<uint32_t> free_;
  bool leak_ = false;
};

// --- A worker: one ring, one executor, one listener --------------------------

struct Shared;

class Worker {
 public:
  Worker(const Config& config, const Bodies& bodies, int listener,
         uint32_t index, Shared& shared)
      : config_(config),
        bodies_(bodies),
        listener_(listener),
        index_(index),
        shared_(shared) {}
  ~Worker();

  // Sets up the ring and the executor on the calling thread (which then
  // runs `Serve`). Errors name what failed.
  absl::Status Start();
  // Runs until the stop flag, then closes every connection. Errors: the
  // ring or the executor failed.
  absl::Status Serve();
  // Destroys the executor and the ring, on the thread that ran them; the
  // last snapshot stays.
  void Teardown();
  // After `Teardown`: a buffer came back that the kernel may still read.
  bool memory_unsafe() const { return memory_unsafe_; }
  const Snapshot& final_snapshot() const { return final_; }

 private:
  enum class State : uint8_t {
    kFree,
    kOpen,       // reading and answering requests
    kDraining,   // no more requests: sending what is queued, then FIN
    kLingering,  // FIN sent; reading and dropping input until EOF
    kClosing,    // Close/Abort called: waiting for Idle and the recv
  };
  struct Conn {
    State state = State::kFree;
    int fd = -1;
    uint16_t gen = 0;
    ConnectionId id;
    bool exec_closed = false;
    bool recv_in_flight = false;
    bool failed = false;  // a buffer came back with an error
    bool dirty = false;
    std::vector<char> buf;
    size_t len = 0;
    uint32_t responses = 0;  // queued, last buffer not yet released
    uint64_t buffers = 0;    // queued, not yet released
    absl::Time linger_until;
    // When a whole request last came in, a response buffer last went out,
    // or the peer was last seen acknowledging bytes, for --idle-timeout.
    absl::Time last_progress;
    // The socket's tcpi_bytes_acked at the last idle scan that looked.
    uint64_t bytes_acked = 0;
  };

  io_uring_sqe* Sqe();
  void ArmAccept();
  void ArmRecv(uint32_t slot);
  void ArmTick();
  // False when no submission entry was free.
  bool Cancel(uint64_t user_data);

  void OnCompletion(const io_uring_cqe& cqe);
  void OnAccept(const io_uring_cqe& cqe);
  void OnRecv(uint32_t slot, int res);
  void OnTick();
  // Closes the connections idle for --idle-timeout.
  void CloseIdle();
  void OnRelease(ConnectionId id, absl::Span<const uint64_t> tokens,
                 const absl::Status& status);

  // Answers the complete requests in the connection's buffer.
  void Answer(uint32_t slot);
  // Queues one response; false when the executor refused it.
  bool Respond(uint32_t slot, int status, const Route& route, bool keep_alive,
               bool http10, bool head);
  void MarkDirty(uint32_t slot);
  void ProcessDirty();
  void CloseConn(uint32_t slot, bool reset);
  void BeginLinger(uint32_t slot);
  void Finish(uint32_t slot);
  void BeginStop();
  void Publish();
  Snapshot TakeSnapshot() const {
    return Snapshot{counters_, exec_ ? exec_->stats().totals : SendStats()};
  }

  const Config& config_;
  const Bodies& bodies_;
  const int listener_;
  const uint32_t index_;
  Shared& shared_;
  Snapshot final_;

  io_uring ring_{};
  bool ring_ready_ = false;
  std::unique_ptr<Executor> exec_;
  ConnectionOptions conn_options_;
  HeaderPool headers_;
  std::vector<Conn> conns_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> dirty_;
  std::vector<uint32_t> closing_;  // kClosing and kLingering slots
  uint32_t in_use_ = 0;
  // No free slot: accept is not armed again until Finish frees one.
  bool accept_paused_ = false;
  bool accept_armed_ = false;
  bool accept_rearm_at_tick_ = false;
  bool tick_armed_ = false;
  bool stopping_ = false;
  bool memory_unsafe_ = false;
  absl::Time stop_deadline_;
  __kernel_timespec tick_{};
  // The time the loop last woke up: progress stamps need no clock read of
  // their own.
  absl::Time now_ = absl::Now();
  absl::Time next_idle_scan_ = absl::InfiniteFuture();
  HttpCounters counters_;
  // The body of one route: its pieces and their tokens (every one 0 but the
  // last, kLastBit), the same for every response of that route, so a
  // response costs no work per piece here.
  struct Shape {
    std::vector<struct iovec> iovs;
    std::vector<uint64_t> tokens;
    // The same pieces as one message (--prepared on); responses in flight
    // keep it alive after the set starts again.
    std::shared_ptr<const PreparedMessage> message;
  };
  // The body of `route` (status 200), made on first use. At most kMaxShapes
  // routes and kMaxShapePieces pieces over all of them are kept (24 bytes a
  // piece: 24 MiB), so a client asking for many large N cannot grow it past
  // that; past either, the set starts again.
  const Shape& BodyShape(const Route& route);
  static constexpr size_t kMaxShapes = 64;
  static constexpr size_t kMaxShapePieces = size_t{1} << 20;
  size_t shape_pieces_ = 0;
  absl::flat_hash_map<uint64_t, Shape> shapes_;  // by (mixed, pieces)
  // Each attached connection's slot, by its executor id (the release
  // callback's way back to the connection).
  absl::flat_hash_map<uint64_t, uint32_t> slot_of_;
};

// What the workers and the printer share.
struct Shared {
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  std::vector<Snapshot> snapshots ABSL_GUARDED_BY(mu);
  int started ABSL_GUARDED_BY(mu) = 0;
  std::string error ABSL_GUARDED_BY(mu);  // the first worker failure
};

Worker::~Worker() { Teardown(); }

void Worker::Teardown() {
  if (exec_ != nullptr) final_ = TakeSnapshot();
  exec_.reset();  // before the ring it borrows
  for (Conn& c : conns_) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
  }
  if (ring_ready_) io_uring_queue_exit(&ring_);
  ring_ready_ = false;
  if (memory_unsafe_) headers_.Leak();
}

absl::Status Worker::Start() {
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN;
  p.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
  if (r == -EINVAL) {  // a kernel before 6.1: a plain ring
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
  }
  if (r < 0) {
    return absl::UnavailableError(
        absl::StrCat("io_uring_queue_init_params: ", std::strerror(-r)));
  }
  ring_ready_ = true;

  ExecutorOptions eo;
  eo.user_data_tag = kExecutorTag;
  eo.max_bytes_awaiting_notification = config_.zc_cap;
  eo.teardown_timeout = absl::ZeroDuration();
  eo.on_release_batch =
      [this](ConnectionId id, absl::Span<const uint64_t> tokens,
             const absl::Status& status) { OnRelease(id, tokens, status); };
  absl::StatusOr<std::unique_ptr<Executor>> exec =
      Executor::CreateOnRing(&ring_, std::move(eo));
  if (!exec.ok()) return exec.status();
  exec_ = *std::move(exec);
  if (config_.registered) {
    const struct iovec regions[] = {
        {bodies_.plain.get(), bodies_.plain_size},
        {bodies_.mixed.get(), kMixedBody},
    };
    if (absl::Status s = exec_->RegisterBuffers(regions); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("--registered: ", s.message()));
    }
  }
  conn_options_.plan = config_.plan;
  conn_options_.adaptive_zero_copy = config_.adaptive;
  conn_options_.reset_on_shutdown = true;
  conn_options_.gather_bytes = config_.gather;
  conn_options_.gather_below = static_cast<uint32_t>(config_.gather_below);
  conns_.resize(config_.max_connections);
  for (uint32_t i = config_.max_connections; i-- > 0;) free_slots_.push_back(i);
  tick_.tv_nsec = absl::ToInt64Nanoseconds(kTick);
  now_ = absl::Now();
  if (config_.idle_timeout > absl::ZeroDuration()) {
    next_idle_scan_ = now_ + std::max(kTick, config_.idle_timeout / 8);
  }
  ArmAccept();
  ArmTick();
  return absl::OkStatus();
}

io_uring_sqe* Worker::Sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  // Full: submit what is there and take a freed entry. A kernel that
  // refuses (-EBUSY: completions to reap first) gets a second try, then
  // the caller does without (the loop reaps and comes back).
  for (int attempt = 0; sqe == nullptr && attempt < 2; ++attempt) {
    const int r = io_uring_submit(&ring_);
    if (r < 0 && r != -EBUSY && r != -EAGAIN && r != -EINTR) return nullptr;
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Worker::ArmAccept() {
  // Full: new connections wait in the listen backlog until Finish frees a
  // slot, rather than being accepted only to be closed.
  if (free_slots_.empty()) {
    accept_paused_ = true;
    return;
  }
  io_uring_sqe* sqe = Sqe();
  if (sqe == nullptr) {
    accept_rearm_at_tick_ = true;
    return;
  }
  // One connection per accept (not multishot, which takes every pending
  // connection at once, however few slots are free).
  io_uring_prep_accept(sqe, listener_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, EncodeUserData(OpKindOwn::kAccept));
  accept_armed_ = true;
}

void Worker::ArmRecv(uint32_t slot) {
  Conn& c = conns_[slot];
  io_uring_sqe* sqe = Sqe();
  if (sqe == nullptr) {
    CloseConn(slot, /*reset=*/true);
    return;
  }
  if (c.buf.size() < kRecvBuffer) c.buf.resize(kRecvBuffer);
  // Lingering: read into the whole buffer and drop it.
  const size_t at = c.state == State::kLingering ? 0 : c.len;
  io_uring_prep_recv(sqe, c.fd, c.buf.data() + at, c.buf.size() - at, 0);
  io_uring_sqe_set_data64(sqe, EncodeUserData(OpKindOwn::kRecv, slot, c.gen));
  c.recv_in_flight = true;
}

void Worker::ArmTick() {
  io_uring_sqe* sqe = Sqe();
  if (sqe == nullptr) return;  // Serve tries again
  io_uring_prep_timeout(sqe, &tick_, 0, 0);
  io_uring_sqe_set_data64(sqe, EncodeUserData(OpKindOwn::kTick));
  tick_armed_ = true;
}

bool Worker::Cancel(uint64_t user_data) {
  io_uring_sqe* sqe = Sqe();
  if (sqe == nullptr) return false;
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, EncodeUserData(OpKindOwn::kCancel));
  return true;
}

absl::Status Worker::Serve() {
  for (;;) {
    if (!stopping_ && shared_.stop.load(std::memory_order_relaxed)) {
      BeginStop();
    }
    if (stopping_ &&
        ((in_use_ == 0 && exec_->Idle()) || absl::Now() >= stop_deadline_)) {
      break;
    }
    if (!tick_armed_) ArmTick();  // it found no free entry last time
    if (absl::Status s = exec_->Prepare(); !s.ok()) return s;
    // The tick keeps the wait bounded: it completes within kTick. Without
    // it (no entry was free), only reap.
    const int r = io_uring_submit_and_wait(&ring_, tick_armed_ ? 1 : 0);
    if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN && r != -ETIME) {
      return absl::InternalError(
          absl::StrCat("io_uring_submit_and_wait: ", std::strerror(-r)));
    }
    // One clock read per wake-up: the progress stamps of this batch (a
    // tick's time could be 50 ms old, and closed connections early).
    now_ = absl::Now();
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (exec_->Owns(cqe->user_data)) {
        exec_->HandleCompletion(*cqe);
      } else {
        OnCompletion(*cqe);
      }
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    ProcessDirty();
  }
  if (!exec_->Idle()) {
    // Out of time: what the kernel still holds comes back as
    // KernelMayStillRead and the memory is then kept for ever.
    (void)exec_->Shutdown(absl::ZeroDuration());
  }
  Publish();
  return absl::OkStatus();
}

void Worker::OnCompletion(const io_uring_cqe& cqe) {
  switch (UserDataKind(cqe.user_data)) {
    case OpKindOwn::kAccept:
      OnAccept(cqe);
      return;
    case OpKindOwn::kRecv: {
      const uint32_t slot = UserDataSlot(cqe.user_data);
      if (slot < conns_.size() &&
          conns_[slot].gen == UserDataGen(cqe.user_data)) {
        OnRecv(slot, cqe.res);
      }
      return;
    }
    case OpKindOwn::kTick:
      tick_armed_ = false;
      OnTick();
      return;
    case OpKindOwn::kCancel:
      return;
  }
  // liburing's own timeouts (LIBURING_UDATA_TIMEOUT) and anything else.
}

void Worker::OnAccept(const io_uring_cqe& cqe) {
  accept_armed_ = false;
  if (cqe.res < 0) {
    if (cqe.res != -ECANCELED) ++counters_.accept_errors;
    // Re-armed at the next tick, so that EMFILE and the like cannot spin.
    if (!stopping_) accept_rearm_at_tick_ = true;
    return;
  }
  const int fd = cqe.res;
  // An accept is armed only while a slot is free; stopping refuses.
  if (stopping_ || free_slots_.empty()) {
    close(fd);
    ++counters_.connections_refused;
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  absl::StatusOr<ConnectionId> id = exec_->Attach(fd, conn_options_);
  if (!id.ok()) {
    close(fd);
    ++counters_.accept_errors;
    if (!stopping_) ArmAccept();
    return;
  }
  const uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  ++in_use_;
  Conn& c = conns_[slot];
  c.state = State::kOpen;
  c.fd = fd;
  c.id = *id;
  c.last_progress = now_;
  c.bytes_acked = 0;
  slot_of_[id->value] = slot;
  c.exec_closed = false;
  c.failed = false;
  c.len = 0;
  c.responses = 0;
  c.buffers = 0;
  ++counters_.connections_accepted;
  ++counters_.connections_open;
  ArmRecv(slot);
  if (!stopping_) ArmAccept();  // pauses when that was the last slot
}

void Worker::OnRecv(uint32_t slot, int res) {
  Conn& c = conns_[slot];
  c.recv_in_flight = false;
  if (c.state == State::kLingering) {
    if (res > 0) {
      ArmRecv(slot);
    } else {
      CloseConn(slot, /*reset=*/false);
    }
    return;
  }
  if (c.state != State::kOpen) {
    MarkDirty(slot);  // kClosing waits for this recv
    return;
  }
  if (res > 0) {
    counters_.bytes_received += static_cast<uint64_t>(res);
    // The first bytes of a request start its clock: it has one timeout to
    // be whole (see Answer).
    if (c.len == 0) c.last_progress = now_;
    c.len += static_cast<size_t>(res);
    Answer(slot);
    return;
  }
  if (res == -EINTR || res == -EAGAIN) {
    ArmRecv(slot);
    return;
  }
  if (res < 0) ++counters_.recv_errors;
  if (res == 0 && !c.failed) {
    // The client has sent all it will: finish what it asked for, then close.
    c.state = State::kDraining;
    MarkDirty(slot);
    return;
  }
  CloseConn(slot, /*reset=*/true);
}

void Worker::OnTick() {
  ArmTick();
  if (accept_rearm_at_tick_ && !stopping_ && !accept_armed_) {
    accept_rearm_at_tick_ = false;
    ArmAccept();
  }
  const absl::Time now = absl::Now();
  now_ = now;
  if (now >= next_idle_scan_) CloseIdle();
  for (size_t i = 0; i < closing_.size(); ++i) {
    const uint32_t slot = closing_[i];
    if (conns_[slot].state == State::kLingering &&
        now >= conns_[slot].linger_until) {
      CloseConn(slot, /*reset=*/false);
    }
  }
  Publish();
}

void Worker::CloseIdle() {
  // A scan per eighth of the timeout (at most one per tick): a connection
  // is closed between 1 and 1.125 timeouts (plus a tick) after its last
  // progress.
  next_idle_scan_ = now_ + std::max(kTick, config_.idle_timeout / 8);
  if (stopping_) return;
  for (uint32_t slot = 0; slot < conns_.size(); ++slot) {
    Conn& c = conns_[slot];
    if ((c.state != State::kOpen && c.state != State::kDraining) ||
        now_ - c.last_progress < config_.idle_timeout) {
      continue;
    }
    if (c.buffers > 0) {
      // A buffer is released only once all of it is sent (zero-copy: acked),
      // so a big one going to a slow but steady reader releases nothing for
      // a long time: the peer acknowledging bytes is progress too.
      struct tcp_info info = {};
      socklen_t len = sizeof(info);
      if (getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
          len >= offsetof(struct tcp_info, tcpi_bytes_acked) +
                     sizeof(info.tcpi_bytes_acked) &&
          info.tcpi_bytes_acked != c.bytes_acked) {
        c.bytes_acked = info.tcpi_bytes_acked;
        c.last_progress = now_;
        continue;
      }
    }
    ++counters_.connections_timed_out;
    // Idle between requests, or stuck inside one: a plain close. A response
    // the peer does not take: a reset, which also ends the executor's sends
    // at once and hands their buffers back.
    CloseConn(slot, /*reset=*/c.buffers > 0);
  }
}

void Worker::Publish() {
  Snapshot s = TakeSnapshot();
  absl::MutexLock lock(&shared_.mu);
  shared_.snapshots[index_] = s;
}

void Worker::OnRelease(ConnectionId id, absl::Span<const uint64_t> tokens,
                       const absl::Status& status) {
  const bool kernel_may_read = KernelMayStillRead(status);
  if (kernel_may_read) memory_unsafe_ = true;
  uint32_t last = 0;
  for (uint64_t token : tokens) {
    if (token == 0) continue;  // a body piece, not its response's last
    if (const uint32_t h = TokenHeader(token); h != 0 && !kernel_may_read) {
      headers_.Give(h - 1);
    }
    last += TokenLast(token);
  }
  // Not found only for a connection already finished (it was Idle, so
  // nothing of it can come back) or while the executor is torn down.
  const auto it = slot_of_.find(id.value);
  if (it == slot_of_.end()) return;
  const uint32_t slot = it->second;
  Conn& c = conns_[slot];
  c.last_progress = now_;
  c.responses -= last;
  c.buffers -= tokens.size();
  if (!status.ok()) c.failed = true;
  MarkDirty(slot);
}

void Worker::MarkDirty(uint32_t slot) {
  if (conns_[slot].dirty) return;
  conns_[slot].dirty = true;
  dirty_.push_back(slot);
}

void Worker::ProcessDirty() {
  // Handling one may dirty others (never itself again in this pass).
  for (size_t i = 0; i < dirty_.size(); ++i) {
    const uint32_t slot = dirty_[i];
    Conn& c = conns_[slot];
    c.dirty = false;
    switch (c.state) {
      case State::kOpen:
        if (c.failed) {
          CloseConn(slot, /*reset=*/true);
        } else if (!c.recv_in_flight && c.responses < kMaxPipelined) {
          Answer(slot);  // what was left while the pipeline was full
        }
        break;
      case State::kDraining:
        if (c.failed) {
          CloseConn(slot, /*reset=*/true);
        } else if (c.buffers == 0) {
          BeginLinger(slot);
        }
        break;
      default:
        break;
    }
  }
  dirty_.clear();
  // Connections waiting for the executor and their recv.
  for (size_t i = 0; i < closing_.size();) {
    const uint32_t slot = closing_[i];
    Conn& c = conns_[slot];
    if (c.state == State::kClosing && !c.recv_in_flight && exec_->Idle(c.id)) {
      Finish(slot);
      closing_[i] = closing_.back();
      closing_.pop_back();
    } else {
      ++i;
    }
  }
}

void Worker::Answer(uint32_t slot) {
  Conn& c = conns_[slot];
  size_t pos = 0;
  while (c.state == State::kOpen && c.responses < kMaxPipelined) {
    const HttpRequestParse p = ParseHttpRequest(
        absl::string_view(c.buf.data() + pos, c.len - pos), kMaxRequestHeader);
    if (p.outcome == HttpRequestParse::Outcome::kIncomplete) break;
    ++counters_.requests;
    // A whole request is progress; bytes of one that never ends (a header
    // a byte at a time) are not.
    c.last_progress = now_;
    if (p.outcome == HttpRequestParse::Outcome::kError) {
      Respond(slot, p.status, Route(), /*keep_alive=*/false, /*http10=*/false,
              p.head);
      pos = c.len;
      break;
    }
    pos += p.consumed;
    const Route route = ResolveRoute(p.target, config_.body);
    const bool keep_alive = p.keep_alive && route.status == 200;
    if (!Respond(slot, route.status, route, keep_alive, p.http10, p.head)) {
      return;
    }
  }
  if (c.state != State::kOpen) {
    c.len = 0;
    MarkDirty(slot);  // kDraining: close once sent
    return;
  }
  if (pos > 0) {
    std::memmove(c.buf.data(), c.buf.data() + pos, c.len - pos);
    c.len -= pos;
  }
  if (c.responses < kMaxPipelined && !c.recv_in_flight) ArmRecv(slot);
}

const Worker::Shape& Worker::BodyShape(const Route& route) {
  const uint64_t key = uint64_t{route.mixed} << 32 | route.pieces;
  if (const auto it = shapes_.find(key); it != shapes_.end()) return it->second;
  const size_t pieces = route.pieces;  // the count of either shape
  if (shapes_.size() >= kMaxShapes ||
      shape_pieces_ + pieces > kMaxShapePieces) {
    shapes_.clear();
    shape_pieces_ = 0;
  }
  shape_pieces_ += pieces;
  Shape& shape = shapes_[key];
  if (route.mixed) {
    unsigned char* const base = bodies_.mixed.get();
    // ResolveRoute admitted the count, so the sizes exist.
    const std::vector<uint64_t> sizes =
        ReferenceMessageSizes(route.pieces).value();
    uint64_t offset = 0;
    for (uint64_t size : sizes) {
      shape.iovs.push_back({base + offset, size});
      offset += size;
    }
  } else {
    unsigned char* const base = bodies_.plain.get();
    const uint64_t length = bodies_.plain_size;
    const uint64_t slice = length / route.pieces;
    for (uint32_t k = 0; k + 1 < route.pieces; ++k) {
      shape.iovs.push_back({base + k * slice, slice});
    }
    const uint64_t done = slice * (route.pieces - 1);
    shape.iovs.push_back({base + done, length - done});
  }
  shape.tokens.assign(shape.iovs.size(), EncodeToken(false, 0));
  shape.tokens.back() = EncodeToken(true, 0);
  if (config_.prepared) {
    // The pieces are the checked body arenas' slices: Create cannot refuse.
    shape.message = PreparedMessage::Create(shape.iovs).value();
  }
  return shape;
}

bool Worker::Respond(uint32_t slot, int status, const Route& route,
                     bool keep_alive, bool http10, bool head) {
  Conn& c = conns_[slot];
  const uint32_t h = headers_.Take();
  char* header = headers_.Data(h);
  const Shape* body = nullptr;
  int n;
  if (status == 200) {
    const uint64_t length = route.mixed ? kMixedBody : bodies_.plain_size;
    n = absl::SNPrintF(
        header, kHeaderSlot,
        "HTTP/1.1 200 OK\r\nContent-Type: "
        "application/octet-stream\r\nContent-Length: %d\r\n%s\r\n",
        length,
        !keep_alive ? "Connection: close\r\n"
        : http10    ? "Connection: keep-alive\r\n"
                    : "");
    // HEAD: the same header, no body (RFC 9110 9.3.2).
    if (!head) body = &BodyShape(route);
  } else {
    const absl::string_view reason = Reason(status);
    // A 405 names the methods there are (RFC 9110 15.5.6).
    n = absl::SNPrintF(header, kHeaderSlot,
                       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                       "Content-Length: %d\r\n%sConnection: close\r\n\r\n%s",
                       status, reason, reason.size() + 1,
                       status == 405 ? "Allow: GET, HEAD\r\n" : "",
                       head ? "" : absl::StrCat(reason, "\n"));
  }
  // The header, then the body: one stream, so one chain when the executor
  // next prepares. A body the executor refuses leaves the header queued (it
  // comes back through the release callback when the connection is reset).
  absl::Status s = exec_->Enqueue(c.id, header, static_cast<size_t>(n),
                                  EncodeToken(body == nullptr, h + 1));
  if (!s.ok()) headers_.Give(h);
  if (s.ok() && body != nullptr) {
    ++c.buffers;
    s = body->message != nullptr
            ? exec_->EnqueueMessage(c.id, body->message, EncodeToken(true, 0))
            : exec_->Enqueue(c.id, body->iovs, body->tokens);
  }
  if (!s.ok()) {
    c.failed = true;
    CloseConn(slot, /*reset=*/true);
    return false;
  }
  ++counters_.responses[StatusIndex(status)];
  ++c.responses;
  c.buffers += body == nullptr            ? 1
               : body->message != nullptr ? 1
                                          : body->iovs.size();
  if (!keep_alive) c.state = State::kDraining;
  return true;
}

void Worker::BeginLinger(uint32_t slot) {
  Conn& c = conns_[slot];
  (void)exec_->Close(c.id);  // holds nothing: idle at once
  c.exec_closed = true;
  shutdown(c.fd, SHUT_WR);
  c.state = State::kLingering;
  c.linger_until = absl::Now() + kLinger;
  closing_.push_back(slot);
  if (!c.recv_in_flight) ArmRecv(slot);
}

void Worker::CloseConn(uint32_t slot, bool reset) {
  Conn& c = conns_[slot];
  if (c.state == State::kFree || c.state == State::kClosing) return;
  if (c.state != State::kLingering) closing_.push_back(slot);
  if (!c.exec_closed) {
    if (reset && c.buffers > 0) {
      (void)exec_->Abort(c.id);  // counted as the executor's connections_reset
    } else {
      (void)exec_->Close(c.id);
    }
    c.exec_closed = true;
  }
  if (c.recv_in_flight &&
      !Cancel(EncodeUserData(OpKindOwn::kRecv, slot, c.gen))) {
    shutdown(c.fd, SHUT_RDWR);  // ends the recv too
  }
  c.state = State::kClosing;
  MarkDirty(slot);
}

void Worker::Finish(uint32_t slot) {
  Conn& c = conns_[slot];
  slot_of_.erase(c.id.value);
  close(c.fd);
  c.fd = -1;
  c.state = State::kFree;
  ++c.gen;
  c.len = 0;
  free_slots_.push_back(slot);
  --in_use_;
  if (accept_paused_ && !accept_armed_ && !stopping_) {
    accept_paused_ = false;
    ArmAccept();
  }
  ++counters_.connections_closed;
  --counters_.connections_open;
}

void Worker::BeginStop() {
  stopping_ = true;
  stop_deadline_ = absl::Now() + kStopTimeout;
  if (accept_armed_) Cancel(EncodeUserData(OpKindOwn::kAccept));
  for (uint32_t slot = 0; slot < conns_.size(); ++slot) {
    CloseConn(slot, /*reset=*/true);
  }
}

// --- Listening ---------------------------------------------------------------

// Binds `threads` listeners to one address, with SO_REUSEPORT when more
// than one (the first picks the port when it is 0). Errors: Unavailable naming
// the address.
absl::StatusOr<std::vector<UniqueFd>> Listen(const struct sockaddr_storage& ss,
                                             socklen_t len, uint32_t threads,
                                             const std::string& shown,
                                             std::string* bound) {
  struct sockaddr_storage addr = ss;
  std::vector<UniqueFd> fds;
  for (uint32_t i = 0; i < threads; ++i) {
    UniqueFd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    if (fd.get() < 0 ||
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) !=
            0 ||
        (threads > 1 && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one,
                                   sizeof(one)) != 0) ||
        bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), len) != 0 ||
        listen(fd.get(), 4096) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ",
                                                 QuoteForMessage(shown), ": ",
                                                 std::strerror(errno)));
    }
    if (i == 0) {
      socklen_t l = len;
      getsockname(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), &l);
      *bound = FormatAddress(addr);
    }
    fds.push_back(std::move(fd));
  }
  return fds;
}

void RunWorker(Worker& worker, Shared& shared) {
  absl::Status s = worker.Start();
  {
    absl::MutexLock lock(&shared.mu);
    if (!s.ok() && shared.error.empty()) shared.error = s.ToString();
    ++shared.started;
  }
  if (s.ok()) s = worker.Serve();
  worker.Teardown();
  absl::MutexLock lock(&shared.mu);
  if (!s.ok() && shared.error.empty()) shared.error = s.ToString();
}

// The sum of the latest snapshot of each worker.
Snapshot Sum(const std::vector<Snapshot>& latest) {
  Snapshot total;
  for (const Snapshot& s : latest) {
    total.http.Add(s.http);
    total.send.Add(s.send);
  }
  return total;
}

int RunServer(const Config& config, const ZchttpdTestHooks& hooks,
              std::ostream& out, std::ostream& err) {
  // Resolved before anything starts: a bad name is bad input.
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* found = nullptr;
  const std::string port = absl::StrCat(config.port);
  if (const int r =
          getaddrinfo(config.host.c_str(), port.c_str(), &hints, &found);
      r != 0 || found == nullptr) {
    err << "zchttpd: --listen: cannot resolve " << QuoteForMessage(config.host)
        << ": " << gai_strerror(r) << "\n";
    return kZchttpdBadInput;
  }
  struct sockaddr_storage addr = {};
  const socklen_t addr_len = found->ai_addrlen;
  std::memcpy(&addr, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);

  ScopedStopSignals signals;
  std::string bound;
  absl::StatusOr<std::vector<UniqueFd>> listeners =
      Listen(addr, addr_len, config.threads, config.listen, &bound);
  if (!listeners.ok()) {
    err << "zchttpd: " << listeners.status().message() << "\n";
    return kZchttpdFailed;
  }

  Bodies bodies;
  bodies.plain = MakeArena(config.body);
  bodies.plain_size = config.body;
  bodies.mixed = MakeArena(kMixedBody);

  Shared shared;
  {
    absl::MutexLock lock(&shared.mu);
    shared.snapshots.resize(config.threads);
  }
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < config.threads; ++i) {
    workers.push_back(std::make_unique<Worker>(
        config, bodies, (*listeners)[i].get(), i, shared));
  }
  for (uint32_t i = 0; i < config.threads; ++i) {
    threads.emplace_back(RunWorker, std::ref(*workers[i]), std::ref(shared));
  }
  auto all_started = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
    return shared.started == static_cast<int>(config.threads) ||
           !shared.error.empty();
  };
  std::string start_error;
  {
    absl::MutexLock lock(&shared.mu);
    if (!shared.mu.AwaitWithTimeout(absl::Condition(&all_started),
                                    kStartTimeout)) {
      shared.error = "the threads did not start in time";
    }
    start_error = shared.error;
  }
  auto stop_and_join = [&] {
    shared.stop.store(true);
    for (std::thread& t : threads) t.join();
  };
  if (!start_error.empty()) {
    stop_and_join();
    err << "zchttpd: cannot start: "
        << EscapeForMessage(start_error, kMaxMessageChars) << "\n";
    return kZchttpdFailed;
  }
  out << "listening on " << bound << " threads=" << config.threads
      << " threshold=" << FormatThreshold(config.plan.zc_threshold)
      << " adaptive=" << (config.adaptive ? "on" : "off")
      << " copy-op=" << CopyOpName(config.plan.copy_op)
      << " body=" << FormatSize(config.body)
      << " registered=" << (config.registered ? "on" : "off")
      << " prepared=" << (config.prepared ? "on" : "off")
      << " gather=" << FormatSize(config.gather) << std::endl;

  const absl::Time start = absl::Now();
  absl::Time next_stats = start + config.stats_every;
  uint64_t last_requests = 0;
  absl::Time last_time = start;
  std::string failure;
  int stop_signal = 0;
  for (;;) {
    stop_signal = ScopedStopSignals::Pending();
    const bool hook_stop = hooks.stop != nullptr && hooks.stop->load();
    {
      absl::MutexLock lock(&shared.mu);
      if (!shared.error.empty()) failure = shared.error;
    }
    if (stop_signal != 0 || hook_stop || !failure.empty()) break;
    absl::SleepFor(kTick);
    if (config.stats_every > absl::ZeroDuration() &&
        absl::Now() >= next_stats) {
      const absl::Time now = absl::Now();
      Snapshot total;
      {
        absl::MutexLock lock(&shared.mu);
        total = Sum(shared.snapshots);
      }
      const double seconds = absl::ToDoubleSeconds(now - last_time);
      out << absl::StrFormat(
                 "stats: t=%.3fs qps=%.1f ", absl::ToDoubleSeconds(now - start),
                 seconds > 0 ? (total.http.requests - last_requests) / seconds
                             : 0.0)
          << FormatCounters(total.http) << " | " << FormatStats(total.send)
          << std::endl;
      last_requests = total.http.requests;
      last_time = now;
      next_stats += config.stats_every;
      if (next_stats < now) next_stats = now + config.stats_every;
    }
  }
  if (stop_signal != 0) {
    out << "stopping (" << (stop_signal == SIGINT ? "SIGINT" : "SIGTERM") << ")"
        << std::endl;
  } else if (failure.empty()) {
    out << "stopping" << std::endl;
  }
  stop_and_join();
  Snapshot total;
  bool memory_unsafe = false;
  for (const auto& w : workers) {
    const Snapshot& s = w->final_snapshot();
    total.http.Add(s.http);
    total.send.Add(s.send);
    memory_unsafe |= w->memory_unsafe();
  }
  out << absl::StrFormat("final: t=%.3fs ",
                         absl::ToDoubleSeconds(absl::Now() - start))
      << FormatCounters(total.http) << " | " << FormatStats(total.send)
      << std::endl;
  if (memory_unsafe) {
    // The kernel may still read the bodies: never free them.
    bodies.plain.release();
    bodies.mixed.release();
  }
  workers.clear();
  if (!failure.empty()) {
    err << "zchttpd: " << EscapeForMessage(failure, kMaxMessageChars) << "\n";
    return kZchttpdFailed;
  }
  return kZchttpdOk;
}

}  // namespace

std::string ZchttpdUsage() {
  return absl::StrFormat(
      R"usage(Usage: zchttpd [flags]

An HTTP/1.1 keep-alive server whose responses are sent by the zcplan
executor on the server's own io_uring (one ring and one executor per thread).

Routes (GET; HEAD answers the same header without the body):
  /<N>         a --body byte body as N pieces (N-1 slices of body/N bytes and
               the rest), after the HTTP header buffer; 1 <= N <= min(body,
               65536)
  /mixed/<N>   the 256 KiB reference message (4 KiB piece, two 64 KiB pieces,
               N-3 small ones); 1 <= N <= 65536
Byte i of every body is byte i %% 4 of the little-endian uint32 i / 4.
Malformed requests get 400 (404 unknown path, 405 not GET/HEAD, 431 header
over 8 KiB, 505 not HTTP/1.x) and the connection is closed after the response.

Flags:
  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080; port 0
                         picks a free one, shown in the first line)
  --threshold SIZE|never zero-copy threshold (default %s; 0: all zero-copy)
  --adaptive on|off      adaptive zero-copy (default on)
  --copy-op writev|sendmsg  the op for groups of small pieces (default %s)
  --gap SIZE             the planner's gap knob (default 0: off)
  --body SIZE            the body of /<N> (default 64K, at most 1G)
  --threads N            threads, each with its ring, executor and
                         SO_REUSEPORT listener (default 1, at most %d)
  --max-connections N    per thread (default 1024); more wait in the listen
                         backlog (4096) until one of them closes
  --stats-every DURATION print a stats line this often (e.g. 1s; default off)
  --registered           register the body arenas as fixed buffers
  --gather SIZE          per connection and chain, the bytes of small pieces
                         copied into one buffer and sent as one send instead
                         of a writev of many iovecs (default 256K; 0: off)
  --gather-below SIZE    gather a copy op whose pieces average below this
                         (default 512, 1..1M)
  --prepared on|off      each route's body a prepared message, queued with
                         one EnqueueMessage a response (on, the default), or
                         its pieces queued with one Enqueue (off)
  --zc-cap SIZE          most bytes of unregistered zero-copy sends awaiting
                         notification per ring (default 0: the executor's
                         default, half of what RLIMIT_MEMLOCK leaves); past
                         it the executor sends by copy (cap_copies)
  --idle-timeout DURATION  close a connection with no progress (no request
                         begun or completed, no response byte taken) for this
                         long: a plain close when idle or inside a request, a
                         reset when a response is stuck; counted as
                         connections_timed_out (default 60s, 100ms..24h; 0:
                         never)

Output: "listening on ADDR:PORT ..." first; "stats: ..." lines; on SIGINT or
SIGTERM "stopping (SIGINT)" and a "final: ..." line with the counters
(requests, responses by status, connections, then the executor's: ops by
kind, bytes copied and zero-copy, notifications and copied ones). A signal
the server was started ignoring stays ignored (nohup; SIGINT for a script's
background job `zchttpd &`): stop those with SIGTERM.

Exit status: 0 when stopped by SIGINT or SIGTERM; 1 when it cannot start or a
ring fails; 2 on bad input, with one line on stderr and nothing on stdout.
)usage",
      FormatThreshold(PlanOptions().zc_threshold),
      CopyOpName(PlanOptions().copy_op), kMaxThreads);
}

int RunZchttpd(absl::Span<const std::string> args, std::ostream& out,
               std::ostream& err) {
  return RunZchttpdWithHooks(args, out, err, ZchttpdTestHooks());
}

int RunZchttpdWithHooks(absl::Span<const std::string> args, std::ostream& out,
                        std::ostream& err, const ZchttpdTestHooks& hooks) {
  switch (AnswerVersionOrHelp(args, "zchttpd", ZchttpdUsage, out)) {
    case FirstAnswer::kAnswered:
      return kZchttpdOk;
    case FirstAnswer::kOutputFailed:
      err << "zchttpd: cannot write the help to standard output\n";
      return kZchttpdFailed;
    case FirstAnswer::kNone:
      break;
  }
  Config config;
  if (absl::Status s =
          ParseFlags(args, kFlagNames, {"zchttpd", "", false},
                     [&](const ParsedFlags&) { return ReadFlags(config); })
              .status();
      !s.ok()) {
    std::string message(s.message());
    std::replace_if(
        message.begin(), message.end(),
        [](char c) { return c == '\n' || c == '\r'; }, ' ');
    err << "zchttpd: " << message << "\n";
    return kZchttpdBadInput;
  }
  return RunServer(config, hooks, out, err);
}

}  // namespace zcplan
