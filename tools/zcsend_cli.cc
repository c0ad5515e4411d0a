#include "tools/zcsend_cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "planner/describe.h"
#include "planner/planner.h"
#include "planner/simulate.h"
#include "planner/trace.h"
#include "uring/executor.h"
#include "uring/net.h"

namespace zcplan {

// --- The pattern -------------------------------------------------------------

namespace {

// splitmix64's output function.
uint64_t PatternWord(uint64_t word) {
  uint64_t z = (word + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The 8 stream bytes of word `word`, least significant byte first.
void PatternBytes(uint64_t word, unsigned char out[8]) {
  const uint64_t w = PatternWord(word);
  for (int j = 0; j < 8; ++j) out[j] = static_cast<unsigned char>(w >> (8 * j));
}

}  // namespace

unsigned char PatternByteAt(uint64_t offset) {
  return static_cast<unsigned char>(PatternWord(offset >> 3) >>
                                    (8 * (offset & 7)));
}

void FillPattern(uint64_t offset, absl::Span<unsigned char> data) {
  size_t i = 0;
  for (; i < data.size() && ((offset + i) & 7) != 0; ++i) {
    data[i] = PatternByteAt(offset + i);
  }
  for (; i + 8 <= data.size(); i += 8) {
    PatternBytes((offset + i) >> 3, &data[i]);
  }
  for (; i < data.size(); ++i) data[i] = PatternByteAt(offset + i);
}

size_t FindPatternMismatch(uint64_t offset,
                           absl::Span<const unsigned char> data) {
  size_t i = 0;
  for (; i < data.size() && ((offset + i) & 7) != 0; ++i) {
    if (data[i] != PatternByteAt(offset + i)) return i;
  }
  unsigned char expected[8];
  for (; i + 8 <= data.size(); i += 8) {
    PatternBytes((offset + i) >> 3, expected);
    if (std::memcmp(expected, &data[i], 8) != 0) break;
  }
  for (; i < data.size(); ++i) {
    if (data[i] != PatternByteAt(offset + i)) return i;
  }
  return data.size();
}

namespace {

constexpr uint64_t kDefaultBytes = uint64_t{64} << 20;
constexpr uint64_t kDefaultMaxInFlight = uint64_t{4} << 20;
constexpr uint64_t kMaxMaxInFlight = uint64_t{1} << 30;
constexpr uint32_t kMaxConnections = 1024;
constexpr absl::string_view kDefaultSplit = "4K,4K,16K,32K,2K";
// The most one registered buffer may span (the kernel's limit).
constexpr uint64_t kMaxRegisteredBytes = uint64_t{1} << 30;
// Tokens carry the connection's index above this many bits of sequence.
constexpr int kSeqBits = 44;
constexpr absl::Duration kPollTimeout = absl::Milliseconds(100);
constexpr absl::Duration kDrainTimeout = absl::Seconds(10);

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
  bool loopback = false;  // send to a receiver of our own on 127.0.0.1
  // Receiver.
  bool has_listen = false;
  uint16_t listen_port = 0;
  std::string bind = "0.0.0.0";
  bool has_out = false;
  std::string out_path;
  bool check_pattern = false;
  // Both.
  uint32_t connections = 1;

  std::vector<std::pair<std::string, Side>> given;  // Flags seen, in order.
};

absl::Status ParsePeer(absl::string_view v, Config& c) {
  absl::StatusOr<std::pair<std::string, std::string>> hp =
      SplitHostPort(std::string(v));
  if (!hp.ok()) return hp.status();
  c.has_peer = true;
  c.peer = std::string(v);
  c.peer_host = hp->first;
  c.peer_port = hp->second;
  return absl::OkStatus();
}

absl::Status SetSize(absl::string_view v, uint64_t* field) {
  absl::StatusOr<uint64_t> size = ParseSize(v);
  if (!size.ok()) return size.status();
  *field = *size;
  return absl::OkStatus();
}

absl::Status SetOnOff(absl::string_view v, bool* field) {
  if (v == "on") {
    *field = true;
  } else if (v == "off") {
    *field = false;
  } else {
    return Bad(absl::StrCat("bad value '", v, "' (on or off)"));
  }
  return absl::OkStatus();
}

using Setter = absl::Status (*)(absl::string_view value, Config& config);

struct Flag {
  absl::string_view name;
  Side side;
  bool takes_value;
  Setter set;
};

constexpr Flag kFlags[] = {
    {"peer", kSender, true, ParsePeer},
    {"file", kSender, true,
     [](absl::string_view v, Config& c) {
       c.has_file = true;
       c.file = std::string(v);
       return absl::OkStatus();
     }},
    {"bytes", kSender, true,
     [](absl::string_view v, Config& c) {
       c.has_bytes = true;
       if (absl::Status s = SetSize(v, &c.bytes); !s.ok()) return s;
       if (c.bytes == 0) return Bad("bad size '0': send at least 1 byte");
       return absl::OkStatus();
     }},
    {"split", kSender, true,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<std::vector<uint64_t>> sizes = ParseSizeList(v);
       if (!sizes.ok()) return sizes.status();
       c.has_split = true;
       c.split = *std::move(sizes);
       c.split_text = std::string(v);
       return absl::OkStatus();
     }},
    {"trace", kSender, true,
     [](absl::string_view v, Config& c) {
       c.has_trace = true;
       c.trace_path = std::string(v);
       return absl::OkStatus();
     }},
    {"threshold", kSender, true,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<uint64_t> t = ParseThreshold(v);
       if (!t.ok()) return t.status();
       c.plan.zc_threshold = *t;
       return absl::OkStatus();
     }},
    {"copy-op", kSender, true,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<CopyOp> op = ParseCopyOp(v);
       if (!op.ok()) return op.status();
       c.plan.copy_op = *op;
       return absl::OkStatus();
     }},
    {"gap", kSender, true,
     [](absl::string_view v, Config& c) {
       return SetSize(v, &c.plan.zc_gap_bytes);
     }},
    {"adaptive", kSender, true,
     [](absl::string_view v, Config& c) { return SetOnOff(v, &c.adaptive); }},
    {"registered", kSender, false,
     [](absl::string_view, Config& c) {
       c.registered = true;
       return absl::OkStatus();
     }},
    {"max-in-flight", kSender, true,
     [](absl::string_view v, Config& c) {
       if (absl::Status s = SetSize(v, &c.max_in_flight); !s.ok()) return s;
       if (c.max_in_flight == 0 || c.max_in_flight > kMaxMaxInFlight) {
         return Bad(absl::StrCat("bad size '", v, "': expected 1..",
                                 FormatSize(kMaxMaxInFlight)));
       }
       return absl::OkStatus();
     }},
    {"loopback", kSender, false,
     [](absl::string_view, Config& c) {
       c.loopback = true;
       return absl::OkStatus();
     }},
    {"listen", kReceiver, true,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<uint32_t> port = ParseCount(v, 0, 65535);
       if (!port.ok()) {
         return Bad(absl::StrCat("bad port '", v,
                                 "': expected 0..65535 (0: any free port)"));
       }
       c.has_listen = true;
       c.listen_port = static_cast<uint16_t>(*port);
       return absl::OkStatus();
     }},
    {"bind", kReceiver, true,
     [](absl::string_view v, Config& c) {
       if (v.empty()) return Bad("empty address");
       c.bind = std::string(v);
       return absl::OkStatus();
     }},
    {"out", kReceiver, true,
     [](absl::string_view v, Config& c) {
       if (v.empty()) return Bad("empty path");
       c.has_out = true;
       c.out_path = std::string(v);
       return absl::OkStatus();
     }},
    {"check-pattern", kReceiver, false,
     [](absl::string_view, Config& c) {
       c.check_pattern = true;
       return absl::OkStatus();
     }},
    {"connections", kBoth, true,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<uint32_t> n = ParseCount(v, 1, kMaxConnections);
       if (!n.ok()) return n.status();
       c.connections = *n;
       return absl::OkStatus();
     }},
};

bool IsHelp(absl::string_view arg) { return arg == "--help" || arg == "-h"; }

absl::Status ParseFlags(absl::Span<const std::string> args, Config& config) {
  for (size_t i = 0; i < args.size(); ++i) {
    const absl::string_view arg = args[i];
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return Bad(absl::StrCat("unexpected argument '", arg,
                              "': every input is a flag; see zcsend --help"));
    }
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(2, eq - 2);
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags) {
      if (f.name == name) flag = &f;
    }
    if (flag == nullptr) {
      return Bad(
          absl::StrCat("unknown flag '--", name, "'; see zcsend --help"));
    }
    absl::string_view value;
    if (!flag->takes_value) {
      if (eq != absl::string_view::npos) {
        return Bad(absl::StrCat("flag --", name, " takes no value (got '",
                                arg.substr(eq + 1), "')"));
      }
    } else if (eq != absl::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
      value = args[++i];
    } else {
      return Bad(absl::StrCat("flag --", name, " needs a value"));
    }
    if (absl::Status s = flag->set(value, config); !s.ok()) {
      return Bad(absl::StrCat("--", name, ": ", s.message()));
    }
    config.given.emplace_back(std::string(name), flag->side);
  }
  if (config.has_peer && config.loopback) {
    return Bad(
        "give --peer or --loopback (a receiver of its own on 127.0.0.1), not "
        "both");
  }
  const bool sends = config.has_peer || config.loopback;
  if (sends == config.has_listen) {
    return Bad(sends ? "give --peer or --loopback (send) or --listen "
                       "(receive), not both"
                     : "nothing to do: give --peer HOST:PORT to send, "
                       "--loopback to send to a receiver of its own, or "
                       "--listen PORT to receive; see zcsend --help");
  }
  const Side side = sends ? kSender : kReceiver;
  for (const auto& [name, flag_side] : config.given) {
    if ((flag_side & side) == 0) {
      return Bad(absl::StrCat(
          "flag --", name, " is for the ",
          flag_side == kSender ? "sender (--peer)" : "receiver (--listen)",
          ", not the ",
          side == kSender ? "sender (--peer)" : "receiver (--listen)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Bad(absl::StrCat("cannot read '", path, "': ", Errno(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    text.append(buffer, n);
  }
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) {
    return Bad(absl::StrCat("cannot read '", path, "': ", Errno(error)));
  }
  return text;
}

using Fd = UniqueFd;

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
                            c.file, " and --bytes ", FormatSize(c.bytes), ")"));
  }
  if (c.has_split && c.has_trace) {
    return Bad(absl::StrCat("give --split or --trace, not both (got --split ",
                            c.split_text, " and --trace ", c.trace_path, ")"));
  }
  if (absl::Status s = ValidatePlanOptions(c.plan); !s.ok()) {
    return Bad(absl::StrCat("bad planner options: ", s.message()));
  }
  return absl::OkStatus();
}

uint64_t RoundUpToPage(uint64_t n) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

absl::StatusOr<SendJob> PrepareSend(const Config& c) {
  if (absl::Status s = CheckSendFlags(c); !s.ok()) return s;
  SendJob job;
  if (c.has_file) {
    job.file.Reset(open(c.file.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st;
    if (job.file.get() < 0 || fstat(job.file.get(), &st) != 0) {
      return Bad(
          absl::StrCat("--file: cannot read '", c.file, "': ", Errno(errno)));
    }
    if (!S_ISREG(st.st_mode)) {
      return Bad(absl::StrCat("--file: '", c.file, "' is not a regular file"));
    }
    job.total = static_cast<uint64_t>(st.st_size);
  } else {
    job.total = c.bytes;
  }
  std::string source = absl::StrCat("--split: '", c.split_text, "'");
  if (c.has_trace) {
    absl::StatusOr<std::string> text = ReadTextFile(c.trace_path);
    if (!text.ok())
      return Bad(absl::StrCat("--trace: ", text.status().message()));
    absl::StatusOr<std::vector<TraceBatch>> trace = ParseTrace(*text);
    if (!trace.ok()) {
      return Bad(absl::StrCat("--trace: ", c.trace_path, ": ",
                              trace.status().message()));
    }
    job.first_message = (*trace)[0];
    for (const TraceBatch& batch : *trace) {
      for (uint64_t size : batch.sizes) {
        if (size > c.max_in_flight) {
          return Bad(absl::StrCat(
              "--trace: ", c.trace_path, ": line ", batch.line, ": buffer ",
              FormatSize(size), " is larger than --max-in-flight ",
              FormatSize(c.max_in_flight), "; raise --max-in-flight"));
        }
        if (size > 0) job.pieces.push_back(size);
      }
    }
    source = absl::StrCat("--trace: ", c.trace_path);
  } else {
    job.first_message.sizes =
        c.has_split ? c.split : *ParseSizeList(kDefaultSplit);
    for (uint64_t size : job.first_message.sizes) {
      if (size > c.max_in_flight) {
        return Bad(absl::StrCat(source, ": buffer ", FormatSize(size),
                                " is larger than --max-in-flight ",
                                FormatSize(c.max_in_flight),
                                "; raise --max-in-flight"));
      }
      if (size > 0) job.pieces.push_back(size);
    }
  }
  if (job.pieces.empty()) {
    return Bad(absl::StrCat(source, ": every buffer size is 0"));
  }
  job.largest_piece = *std::max_element(job.pieces.begin(), job.pieces.end());
  // Room for --max-in-flight bytes plus what a wrap at the end wastes.
  job.ring_bytes = RoundUpToPage(c.max_in_flight + job.largest_piece);
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

// Anonymous memory, unmapped on destruction.
class Region {
 public:
  static absl::StatusOr<Region> Map(uint64_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot map ", HumanSize(bytes), " of buffers: ", Errno(errno)));
    }
    Region r;
    r.data_ = static_cast<unsigned char*>(p);
    r.size_ = bytes;
    return r;
  }
  Region() = default;
  Region(Region&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(o.size_) {}
  Region& operator=(Region&&) = delete;
  ~Region() {
    if (data_ != nullptr) munmap(data_, size_);
  }
  unsigned char* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  unsigned char* data_ = nullptr;
  uint64_t size_ = 0;
};

absl::StatusOr<Fd> Connect(const Config& c) {
  return ConnectTcp(c.peer_host, c.peer_port);
}

// One connection's buffers: a ring of `capacity` bytes handed out in stream
// order. A buffer's bytes are rewritten only after the executor released it.
struct Conn {
  Fd fd;
  ConnectionId id;
  unsigned char* ring = nullptr;
  uint64_t capacity = 0;
  // Logical positions in the ring: [tail, head) is held by `pieces`.
  uint64_t head = 0;
  uint64_t tail = 0;
  struct Piece {
    uint64_t start;  // logical position
    uint64_t length;
    bool released;
  };
  std::deque<Piece> pieces;  // enqueued and not yet reclaimed, in order
  uint64_t first_seq = 0;    // sequence number of pieces.front()
  uint64_t unreleased = 0;   // bytes enqueued, not yet released
  uint64_t next_offset = 0;  // stream bytes enqueued so far
  size_t next_piece = 0;     // index into SendJob::pieces
  uint64_t released_ok = 0;  // bytes released as sent
  absl::Status error;        // the first error on this connection

  bool Done(uint64_t total) const {
    return pieces.empty() && (next_offset == total || !error.ok());
  }
};

struct SendState {
  const Config* config = nullptr;
  const SendJob* job = nullptr;
  std::vector<Conn> conns;
  absl::Time last_release;
  std::string internal_error;  // a release the executor should not make

  void OnRelease(ConnectionId id, uint64_t token, const absl::Status& status) {
    const uint64_t index = token >> kSeqBits;
    const uint64_t seq = token & ((uint64_t{1} << kSeqBits) - 1);
    if (index >= conns.size() || conns[index].id != id ||
        seq < conns[index].first_seq ||
        seq - conns[index].first_seq >= conns[index].pieces.size() ||
        conns[index].pieces[seq - conns[index].first_seq].released) {
      if (internal_error.empty()) {
        internal_error =
            absl::StrCat("executor released token ", token, " on connection ",
                         id.value, ", which it does not hold");
      }
      return;
    }
    Conn& c = conns[index];
    Conn::Piece& piece = c.pieces[seq - c.first_seq];
    piece.released = true;
    c.unreleased -= piece.length;
    if (status.ok()) {
      c.released_ok += piece.length;
    } else if (c.error.ok()) {
      c.error = status;
    }
    while (!c.pieces.empty() && c.pieces.front().released) {
      c.tail = c.pieces.front().start + c.pieces.front().length;
      c.pieces.pop_front();
      ++c.first_seq;
    }
    last_release = absl::Now();
  }
};

absl::Status ReadSource(const SendJob& job, uint64_t offset,
                        unsigned char* data, size_t length) {
  if (job.file.get() < 0) {
    FillPattern(offset, absl::MakeSpan(data, length));
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
// bytes and its ring has room. Errors are the data source's; a connection
// error is recorded in `c.error`.
absl::Status TopUp(SendState& state, size_t index, Executor& executor) {
  Conn& c = state.conns[index];
  const SendJob& job = *state.job;
  while (c.error.ok() && c.next_offset < job.total) {
    const uint64_t length =
        std::min(job.pieces[c.next_piece], job.total - c.next_offset);
    if (c.unreleased > 0 &&
        c.unreleased + length > state.config->max_in_flight) {
      break;
    }
    if (c.pieces.empty()) c.head = c.tail = 0;
    uint64_t start = c.head;
    if (start % c.capacity + length > c.capacity) {
      start += c.capacity - start % c.capacity;  // wrap
    }
    if (start + length - c.tail > c.capacity) break;
    unsigned char* data = c.ring + start % c.capacity;
    if (absl::Status s = ReadSource(job, c.next_offset, data, length);
        !s.ok()) {
      return s;
    }
    const uint64_t token =
        (uint64_t{index} << kSeqBits) | (c.first_seq + c.pieces.size());
    if (absl::Status s = executor.Enqueue(c.id, data, length, token); !s.ok()) {
      absl::Status sticky = executor.ConnectionError(c.id);
      c.error = sticky.ok() ? s : sticky;
      break;
    }
    c.pieces.push_back({start, length, false});
    c.head = start + length;
    c.unreleased += length;
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

int RunSend(const Config& config, std::ostream& out, std::ostream& err) {
  auto fail = [&err](absl::string_view message) {
    err << "zcsend: " << message << "\n";
    return kZcsendFailed;
  };
  absl::StatusOr<SendJob> prepared = PrepareSend(config);
  if (!prepared.ok()) return BadInput(prepared.status(), err);
  const SendJob& job = *prepared;

  absl::StatusOr<Region> region =
      Region::Map(job.ring_bytes * config.connections);
  if (!region.ok()) return fail(region.status().message());

  SendState state;
  state.config = &config;
  state.job = &job;
  ExecutorOptions options;
  options.on_release = [&state](ConnectionId id, uint64_t token,
                                const absl::Status& status) {
    state.OnRelease(id, token, status);
  };
  absl::StatusOr<std::unique_ptr<Executor>> created =
      Executor::Create(std::move(options));
  if (!created.ok()) {
    return fail(
        absl::StrCat("io_uring unavailable: ", created.status().ToString(),
                     " (is io_uring disabled by the "
                     "kernel.io_uring_disabled sysctl or a seccomp "
                     "filter, or is `ulimit -l` too low?)"));
  }
  Executor& executor = **created;
  const RingFeatures& features = executor.features();

  if (config.registered) {
    const struct iovec whole = {region->data(), region->size()};
    if (absl::Status s = executor.RegisterBuffers({&whole, 1}); !s.ok()) {
      return fail(
          absl::StrCat("--registered: cannot register ",
                       HumanSize(region->size()), " of buffers: ", s.ToString(),
                       " (registered memory counts against `ulimit -l`; lower "
                       "--max-in-flight or --connections)"));
    }
  }

  ConnectionOptions conn_options;
  conn_options.plan = config.plan;
  conn_options.adaptive_zero_copy = config.adaptive;
  state.conns.resize(config.connections);
  for (uint32_t i = 0; i < config.connections; ++i) {
    Conn& c = state.conns[i];
    absl::StatusOr<Fd> fd = Connect(config);
    if (!fd.ok()) return fail(fd.status().message());
    c.fd = *std::move(fd);
    absl::StatusOr<ConnectionId> id = executor.Attach(c.fd.get(), conn_options);
    if (!id.ok()) {
      return fail(absl::StrCat("cannot attach connection ", i + 1, ": ",
                               id.status().ToString()));
    }
    c.id = *id;
    c.ring = region->data() + i * job.ring_bytes;
    c.capacity = job.ring_bytes;
  }

  out << "zcsend: " << SizeAndBytes(job.total) << " of "
      << (config.has_file ? absl::StrCat("'", config.file, "'")
                          : std::string("pattern"))
      << " on " << Count(config.connections, "connection") << " to "
      << config.peer << "\n"
      << "options: "
      << (config.has_trace ? absl::StrCat("trace ", config.trace_path)
                           : absl::StrCat("split ", config.split_text))
      << ", threshold " << FormatThreshold(config.plan.zc_threshold)
      << ", copy op " << CopyOpName(config.plan.copy_op) << ", gap "
      << (config.plan.zc_gap_bytes == 0 ? "off"
                                        : FormatSize(config.plan.zc_gap_bytes))
      << ", adaptive " << (config.adaptive ? "on" : "off") << ", max in flight "
      << FormatSize(config.max_in_flight) << " per connection, registered "
      << (config.registered ? "on" : "off") << "\n"
      << DescribeFirstMessage(config, job);
  if (!features.send_zc || !features.sendmsg_zc) {
    out << "note: this kernel lacks "
        << (features.send_zc ? "IORING_OP_SENDMSG_ZC" : "IORING_OP_SEND_ZC")
        << ": those ops are sent by copy\n";
  }
  out << std::flush;

  const absl::Time start = absl::Now();
  state.last_release = start;
  for (;;) {
    bool busy = false;
    for (size_t i = 0; i < state.conns.size(); ++i) {
      if (absl::Status s = TopUp(state, i, executor); !s.ok()) {
        return fail(s.message());
      }
      if (!state.conns[i].Done(job.total)) busy = true;
    }
    if (!state.internal_error.empty()) return fail(state.internal_error);
    if (!busy) break;
    bool all_failed_or_done = true;
    for (const Conn& c : state.conns) {
      if (c.error.ok() && !c.Done(job.total)) all_failed_or_done = false;
    }
    if (all_failed_or_done) break;  // Drain collects the failed buffers.
    absl::StatusOr<size_t> polled = executor.Poll(kPollTimeout);
    if (!polled.ok()) {
      return fail(absl::StrCat("io_uring: ", polled.status().ToString()));
    }
  }
  if (absl::Status s = executor.Drain(kDrainTimeout); !s.ok()) {
    return fail(absl::StrCat("draining the executor: ", s.ToString()));
  }
  if (!state.internal_error.empty()) return fail(state.internal_error);
  const absl::Duration elapsed = state.last_release - start;

  // Every byte is released: signal the end of the data, as any TCP
  // receiver expects, then let go of the socket.
  for (Conn& c : state.conns) {
    if (c.error.ok() && shutdown(c.fd.get(), SHUT_WR) != 0) {
      c.error = absl::ErrnoToStatus(errno, "shutdown(SHUT_WR)");
    }
  }
  const RingStats ring = executor.stats();
  std::vector<bool> zero_copy_on;
  for (Conn& c : state.conns) {
    zero_copy_on.push_back(executor.ZeroCopyEnabled(c.id));
    if (absl::Status s = executor.Close(c.id); !s.ok() && c.error.ok()) {
      c.error = s;
    }
    c.fd.Reset();
  }

  const SendStats& t = ring.totals;
  uint64_t sent = 0;
  int failed = 0;
  for (const Conn& c : state.conns) {
    sent += c.released_ok;
    if (!c.error.ok()) ++failed;
  }
  out << "sent " << SizeAndBytes(sent) << " on "
      << Count(config.connections, "connection") << " in "
      << absl::StrFormat("%.3f s", absl::ToDoubleSeconds(elapsed)) << ": "
      << Rate(sent, elapsed) << "\n";
  if (config.connections > 1 || failed > 0) {
    for (size_t i = 0; i < state.conns.size(); ++i) {
      const Conn& c = state.conns[i];
      out << "  connection " << i + 1 << ": " << SizeAndBytes(c.released_ok)
          << ", zero-copy " << (zero_copy_on[i] ? "on" : "off")
          << (c.error.ok() ? ""
                           : absl::StrCat(", FAILED: ", c.error.ToString()))
          << "\n";
    }
  }
  out << "ops: " << OpCounts(t) << "\n"
      << "bytes: " << SizeAndBytes(t.bytes_copied) << " copied, "
      << SizeAndBytes(t.bytes_zero_copy) << " zero-copy\n"
      << "short sends " << t.short_sends << ", resumed chains "
      << t.chains_resumed << ", cancelled ops " << t.cancelled_ops << "\n"
      << "notifications " << t.notifications << ", of which copied "
      << t.copied_notifications
      << (features.zc_report_usage ? ""
                                   : " (this kernel does not report copies)")
      << "; fallbacks " << t.fallbacks_enomem + t.fallbacks_unsupported
      << " (-ENOMEM " << t.fallbacks_enomem << ", unsupported "
      << t.fallbacks_unsupported << "); adaptive turned zero-copy off on "
      << t.adaptive_disabled << " of "
      << Count(config.connections, "connection") << "\n"
      << "peak awaiting notification: "
      << SizeAndBytes(t.peak_bytes_awaiting_notification)
      << (config.connections > 1 ? " (sum of per-connection peaks)" : "")
      << ", cap " << SizeAndBytes(executor.max_bytes_awaiting_notification())
      << "\n";
  if (config.registered) {
    out << "registered buffers: " << HumanSize(region->size()) << ", "
        << (t.fixed_buffer_ops > 0
                ? absl::StrCat(t.fixed_buffer_ops,
                               " zero-copy ops used fixed buffers")
                : std::string("no fixed-buffer op happened"))
        << "\n";
  }
  out << "stats: " << FormatStats(t) << "\n";
  if (t.notifications > 0 && t.copied_notifications == t.notifications) {
    out << "warning: every notification (" << t.notifications
        << ") reported that the kernel copied the data (loopback or veth?): "
           "these numbers say nothing about zero-copy on real hardware\n";
  }
  out << std::flush;

  for (size_t i = 0; i < state.conns.size(); ++i) {
    const Conn& c = state.conns[i];
    if (!c.error.ok()) {
      err << "zcsend: connection " << i + 1 << " to " << config.peer
          << " failed after " << c.released_ok
          << " bytes: " << c.error.ToString() << "\n";
    }
  }
  return failed > 0 ? kZcsendFailed : kZcsendOk;
}

// --- Receiver ----------------------------------------------------------------

std::string FormatAddress(const struct sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const struct sockaddr_in&>(addr);
    inet_ntop(AF_INET, &a.sin_addr, host, sizeof(host));
    return absl::StrCat(host, ":", ntohs(a.sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const struct sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof(host));
    return absl::StrCat("[", host, "]:", ntohs(a.sin6_port));
  }
  return "?";
}

struct Peer {
  Fd fd;
  Fd out;
  std::string address;
  uint64_t bytes = 0;
  bool open = true;
};

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

// With `listener` open (--loopback), receives on it instead of opening one.
int RunListen(const Config& config, std::ostream& out, std::ostream& err,
              Fd listener = Fd()) {
  auto fail = [&err](absl::string_view message) {
    err << "zcsend: " << message << "\n";
    return kZcsendFailed;
  };
  std::vector<Peer> peers(config.connections);
  if (config.has_out) {
    for (size_t i = 0; i < peers.size(); ++i) {
      const std::string path = OutPath(config, i);
      peers[i].out.Reset(
          open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (peers[i].out.get() < 0) {
        return BadInput(Bad(absl::StrCat("--out: cannot write '", path,
                                         "': ", Errno(errno))),
                        err);
      }
    }
  }

  if (listener.get() < 0) {
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    struct addrinfo* list = nullptr;
    const std::string port = absl::StrCat(config.listen_port);
    if (int rc = getaddrinfo(config.bind.c_str(), port.c_str(), &hints, &list);
        rc != 0) {
      return fail(absl::StrCat("--bind: cannot resolve '", config.bind,
                               "': ", gai_strerror(rc)));
    }
    int error = 0;
    for (struct addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
      listener.Reset(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                            ai->ai_protocol));
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
      return fail(absl::StrCat("cannot listen on ", config.bind, ":", port,
                               ": ", Errno(error)));
    }
  }
  struct sockaddr_storage local = {};
  socklen_t local_len = sizeof(local);
  getsockname(listener.get(), reinterpret_cast<struct sockaddr*>(&local),
              &local_len);
  out << "listening on " << FormatAddress(local) << std::endl;

  std::vector<unsigned char> buffer(1 << 20);
  size_t accepted = 0;
  size_t open_peers = 0;
  absl::Time start;
  absl::Time end;
  std::string mismatch;  // the first pattern mismatch
  std::string failure;   // the first receive error
  std::vector<struct pollfd> fds;
  std::vector<size_t> fd_peer;
  while (accepted < peers.size() || open_peers > 0) {
    fds.clear();
    fd_peer.clear();
    if (accepted < peers.size()) {
      fds.push_back({listener.get(), POLLIN, 0});
      fd_peer.push_back(peers.size());
    }
    for (size_t i = 0; i < accepted; ++i) {
      if (!peers[i].open) continue;
      fds.push_back({peers[i].fd.get(), POLLIN, 0});
      fd_peer.push_back(i);
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return fail(absl::StrCat("poll: ", Errno(errno)));
    }
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      if (fd_peer[k] == peers.size()) {
        struct sockaddr_storage from = {};
        socklen_t from_len = sizeof(from);
        const int fd =
            accept4(listener.get(), reinterpret_cast<struct sockaddr*>(&from),
                    &from_len, SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          return fail(absl::StrCat("accept: ", Errno(errno)));
        }
        if (accepted == 0) start = absl::Now();
        Peer& p = peers[accepted++];
        p.fd.Reset(fd);
        p.address = FormatAddress(from);
        ++open_peers;
        if (accepted == peers.size()) listener.Reset();
        continue;
      }
      Peer& p = peers[fd_peer[k]];
      const ssize_t n = recv(p.fd.get(), buffer.data(), buffer.size(), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n > 0) {
        const auto got =
            absl::MakeConstSpan(buffer.data(), static_cast<size_t>(n));
        if (config.check_pattern && mismatch.empty()) {
          const size_t at = FindPatternMismatch(p.bytes, got);
          if (at < got.size()) {
            mismatch = absl::StrFormat(
                "connection %d from %s: byte %d is 0x%02x, expected 0x%02x",
                fd_peer[k] + 1, p.address, p.bytes + at, got[at],
                PatternByteAt(p.bytes + at));
          }
        }
        if (p.out.get() >= 0) {
          if (absl::Status s = WriteAll(p.out.get(), got.data(), got.size());
              !s.ok()) {
            return fail(absl::StrCat("--out: ", OutPath(config, fd_peer[k]),
                                     ": ", s.message()));
          }
        }
        p.bytes += static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && failure.empty()) {
        failure =
            absl::StrCat("connection ", fd_peer[k] + 1, " from ", p.address,
                         ": ", Errno(errno), " after ", p.bytes, " bytes");
      }
      p.open = false;
      p.fd.Reset();
      --open_peers;
      end = absl::Now();
      out << "connection " << fd_peer[k] + 1 << " from " << p.address
          << (n == 0 ? " closed" : " failed") << " after "
          << SizeAndBytes(p.bytes) << std::endl;
    }
  }

  uint64_t total = 0;
  for (const Peer& p : peers) total += p.bytes;
  const absl::Duration elapsed = end - start;
  out << "received " << total << " bytes (" << HumanSize(total) << ") on "
      << Count(peers.size(), "connection") << " in "
      << absl::StrFormat("%.3f s", absl::ToDoubleSeconds(elapsed)) << ": "
      << Rate(total, elapsed) << "\n";
  if (config.check_pattern) {
    out << "pattern: "
        << (mismatch.empty() ? absl::StrCat("OK (", total, " bytes checked)")
                             : absl::StrCat("MISMATCH: ", mismatch))
        << "\n";
  }
  if (config.has_out) {
    out << "wrote "
        << (peers.size() == 1
                ? config.out_path
                : absl::StrCat(config.out_path, ".1..", peers.size()))
        << "\n";
  }
  out << std::flush;
  if (!failure.empty()) return fail(failure);
  if (!mismatch.empty())
    return fail(absl::StrCat("pattern mismatch: ", mismatch));
  return kZcsendOk;
}

// --loopback: a receiver (as --listen, checking the pattern when the data is
// the generated pattern) on 127.0.0.1 in a thread, and the sender aimed at it.
int RunLoopback(Config config, std::ostream& out, std::ostream& err) {
  Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener.get() < 0 ||
      bind(listener.get(), reinterpret_cast<struct sockaddr*>(&addr),
           sizeof(addr)) != 0 ||
      listen(listener.get(), static_cast<int>(std::max<uint32_t>(
                                 config.connections, 16))) != 0 ||
      getsockname(listener.get(), reinterpret_cast<struct sockaddr*>(&addr),
                  &len) != 0) {
    err << "zcsend: cannot listen on 127.0.0.1: " << Errno(errno) << "\n";
    return kZcsendFailed;
  }
  // The same socket, to wake the receiver's accept if the sender gives up.
  Fd wake(dup(listener.get()));
  Config receiver_config;
  receiver_config.has_listen = true;
  receiver_config.bind = "127.0.0.1";
  receiver_config.check_pattern = !config.has_file;
  receiver_config.connections = config.connections;
  std::ostringstream receiver_out;
  std::ostringstream receiver_err;
  int receiver_rc = kZcsendFailed;
  std::thread receiver([&] {
    receiver_rc = RunListen(receiver_config, receiver_out, receiver_err,
                            std::move(listener));
  });
  const std::string port = absl::StrCat(ntohs(addr.sin_port));
  config.has_peer = true;
  config.peer_host = "127.0.0.1";
  config.peer_port = port;
  config.peer = absl::StrCat("127.0.0.1:", port);
  const int sender_rc = RunSend(config, out, err);
  if (sender_rc != kZcsendOk && wake.get() >= 0) {
    shutdown(wake.get(), SHUT_RDWR);
  }
  receiver.join();
  out << "receiver on 127.0.0.1:" << port << ":\n";
  std::istringstream lines(receiver_out.str());
  for (std::string line; std::getline(lines, line);) {
    out << "  " << line << "\n";
  }
  out << std::flush;
  err << receiver_err.str();
  return sender_rc != kZcsendOk ? sender_rc : receiver_rc;
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
                       stream --check-pattern verifies) [%s]
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
                       [%s]
  --connections N      open N connections, each sends all the data; one ring
                       [1]

Receiver (--listen PORT, 0 for any free port):
  --bind ADDR          address to listen on [0.0.0.0]
  --connections N      accept N connections, exit when all have closed [1]
  --out PATH           write what arrives to PATH (PATH.1 .. PATH.N with
                       several connections)
  --check-pattern      check that each connection carries the generated
                       pattern from its first byte

Sizes take K, M or G suffixes (binary). Flags take their value as
--flag=VALUE or --flag VALUE.

Output: the sender prints the plan of the first message, then throughput,
ops by kind, bytes copied vs zero-copy, short sends, resumed chains,
notifications (and how many reported a copy), fallbacks and the peak bytes
awaiting notification. The receiver's first line is "listening on ADDR:PORT";
it ends with the bytes received, the throughput and the pattern result.

Exit status: 0 on success; 1 when the run fails (io_uring unavailable,
connection error, a buffer released with an error, pattern mismatch);
2 on bad input, with one line on stderr and nothing on stdout.
)",
      FormatSize(kDefaultBytes), kDefaultSplit, FormatThreshold(d.zc_threshold),
      CopyOpName(d.copy_op), FormatSize(kDefaultMaxInFlight));
}

int RunZcsend(absl::Span<const std::string> args, std::ostream& out,
              std::ostream& err) {
  for (const std::string& arg : args) {
    if (IsHelp(arg)) {
      out << ZcsendUsage();
      return kZcsendOk;
    }
  }
  Config config;
  if (absl::Status s = ParseFlags(args, config); !s.ok()) {
    return BadInput(s, err);
  }
  if (config.loopback) return RunLoopback(config, out, err);
  return config.has_peer ? RunSend(config, out, err)
                         : RunListen(config, out, err);
}

}  // namespace zcplan
