// SPDX-License-Identifier: Apache-2.0
// Tests of the zcsend tool, run in-process: bad input, and real sends over
// loopback TCP through the executor to `zcsend --listen` (run on a thread) or
// to a plain socket the test reads itself. The sending tests skip with the
// reason when io_uring is unavailable.

#include "zcplan/tools/zcsend_cli.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "zcplan/tests/tools/shared_text.h"
#include "zcplan/tests/uring/silent_peer.h"
#include "zcplan/tests/util/files.h"
#include "zcplan/tests/util/runfiles.h"
#include "zcplan/tools/cli_io.h"
#include "zcplan/uring/pattern.h"
#include "zcplan/uring/receiver.h"

namespace zcplan {
namespace {

// A sample trace, in the runfiles (data = ["//tools:traces"]).
std::string HttpTrace() { return DataPath("tools/traces/http_server.trace"); }
constexpr uint64_t k8M = uint64_t{8} << 20;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Zcsend(const std::vector<std::string>& args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = RunZcsend(args, out, err);
  return {code, out.str(), err.str()};
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// The line of `text` that starts with `prefix`, or "" when there is none.
std::string LineStartingWith(const std::string& text,
                             absl::string_view prefix) {
  for (const std::string& line : Lines(text)) {
    if (absl::StartsWith(line, prefix)) return line;
  }
  return "";
}

// The "stats: name=value ..." line of a sender's report as a map (counters
// that are 0 are left out of the line, and so of the map).
std::map<std::string, uint64_t> Stats(const std::string& out) {
  std::map<std::string, uint64_t> stats;
  const std::string line = LineStartingWith(out, "stats: ");
  EXPECT_FALSE(line.empty()) << out;
  for (absl::string_view field :
       absl::StrSplit(absl::string_view(line).substr(7), ' ')) {
    const std::pair<std::string, std::string> kv =
        absl::StrSplit(field, absl::MaxSplits('=', 1));
    uint64_t value = 0;
    if (absl::SimpleAtoi(kv.second, &value)) stats[kv.first] = value;
  }
  return stats;
}

uint64_t Stat(const std::map<std::string, uint64_t>& stats,
              const std::string& name) {
  const auto it = stats.find(name);
  return it == stats.end() ? 0 : it->second;
}

// Opens and closes a TCP connection to 127.0.0.1:`port`.
void Poke(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  (void)connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  close(fd);
}

// `zcsend --listen 0 --bind 127.0.0.1 FLAGS...` on a thread.
class Receiver {
 public:
  explicit Receiver(std::vector<std::string> flags, uint32_t connections = 1)
      : connections_(connections) {
    std::vector<std::string> args = {"--listen", "0", "--bind", "127.0.0.1"};
    if (connections > 1) {
      args.push_back("--connections");
      args.push_back(absl::StrCat(connections));
    }
    args.insert(args.end(), flags.begin(), flags.end());
    thread_ = std::thread([this, args] {
      std::ostream out(&out_);
      std::ostream err(&err_);
      code_ = RunZcsend(args, out, err);
      out_.MarkDone();
      err_.MarkDone();
    });
    if (!out_.WaitFor("\n", absl::Seconds(30))) return;
    const std::string first = Lines(out_.text())[0];
    const size_t colon = first.rfind(':');
    if (!absl::StartsWith(first, "listening on 127.0.0.1:") ||
        !absl::SimpleAtoi(first.substr(colon + 1), &port_)) {
      port_ = 0;
    }
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() {
    if (thread_.joinable()) Join();
  }

  // 0 when the receiver did not say where it listens.
  int port() const { return port_; }
  std::string peer() const { return absl::StrCat("127.0.0.1:", port_); }

  // Waits for the receiver to finish. One that still waits for connections
  // after the sender is done (it failed early, or with `sender_ok` false
  // after a second) is given empty ones, so a test never hangs.
  Result Join(bool sender_ok = true) {
    if (!out_.WaitDone(absl::Seconds(sender_ok ? 60 : 1)) && port_ != 0) {
      if (sender_ok) ADD_FAILURE() << "the receiver did not finish";
      for (uint32_t i = 0; i < connections_; ++i) Poke(port_);
    }
    thread_.join();
    return {code_, out_.text(), err_.text()};
  }

 private:
  const uint32_t connections_;
  SharedText out_;
  SharedText err_;
  int code_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// A TCP socket bound to a free port of 127.0.0.1 that does not listen, so a
// connection to it is refused; the port stays taken while it lives.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ >= 0 &&
        bind(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) ==
            0 &&
        getsockname(fd_, reinterpret_cast<struct sockaddr*>(&addr), &len) ==
            0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  ~ClosedPort() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  std::string peer() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A TCP socket listening on a free port of 127.0.0.1 (stored in `port`), or
// -1.
int ListenOnLoopback(int backlog, int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0) return -1;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, backlog) != 0 ||
      getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// A plain receiver (uring/receiver.h): accepts one connection and reads it
// to the end, keeping what it read.
class PlainSink {
 public:
  PlainSink() {
    ReceiverOptions options;
    options.on_data = [this](size_t, absl::Span<const unsigned char> d) {
      data_.append(reinterpret_cast<const char*>(d.data()), d.size());
      return absl::OkStatus();
    };
    absl::StatusOr<std::unique_ptr<zcplan::Receiver>> r =
        zcplan::Receiver::Listen(std::move(options));
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) receiver_ = *std::move(r);
  }
  PlainSink(const PlainSink&) = delete;
  PlainSink& operator=(const PlainSink&) = delete;
  std::string peer() const {
    return receiver_ == nullptr ? "127.0.0.1:1" : receiver_->address();
  }
  // Everything received; with `stop`, stops a sink nobody connected to.
  const std::string& Join(bool stop = false) {
    if (receiver_ != nullptr) {
      (stop ? receiver_->Stop() : receiver_->Join()).IgnoreError();
    }
    return data_;
  }

 private:
  std::string data_;  // written by the receiver's thread until it ends
  std::unique_ptr<zcplan::Receiver> receiver_;
};

// `RunZcsendWithHooks` on a thread, its output readable while it runs.
class BackgroundRun {
 public:
  explicit BackgroundRun(std::vector<std::string> args,
                         ZcsendTestHooks hooks = ZcsendTestHooks()) {
    thread_ = std::thread([this, args, hooks] {
      std::ostream out(&out_);
      std::ostream err(&err_);
      code_ = RunZcsendWithHooks(args, out, err, hooks);
      err_.MarkDone();
      out_.MarkDone();
    });
  }
  BackgroundRun(const BackgroundRun&) = delete;
  BackgroundRun& operator=(const BackgroundRun&) = delete;
  ~BackgroundRun() {
    if (thread_.joinable()) thread_.join();
  }
  SharedText& out() { return out_; }
  bool WaitDone(absl::Duration timeout) { return out_.WaitDone(timeout); }
  Result Join() {
    thread_.join();
    return {code_, out_.text(), err_.text()};
  }

 private:
  SharedText out_;
  SharedText err_;
  int code_ = -1;
  std::thread thread_;
};

Result ZcsendWithHooks(const std::vector<std::string>& args,
                       const ZcsendTestHooks& hooks) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = RunZcsendWithHooks(args, out, err, hooks);
  return {code, out.str(), err.str()};
}

// `args` joined, escaped and capped, for a trace line.
std::string EscapeArgs(const std::vector<std::string>& args) {
  std::string joined = absl::StrJoin(args, " ");
  if (joined.size() > 200) joined = joined.substr(0, 200) + "...";
  std::string out;
  for (char ch : joined) {
    out += static_cast<unsigned char>(ch) < 0x20 ? '?' : ch;
  }
  return out;
}

size_t LineCount(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Why io_uring sends cannot run here, or "" when they can: zcsend itself
// says so before it connects (a refused connection means io_uring is fine).
const std::string& IoUringUnavailable() {
  static const std::string* const reason = [] {
    ClosedPort closed;
    const Result r = Zcsend({"--peer", closed.peer(), "--bytes", "1"});
    if (r.code == kZcsendFailed &&
        absl::StrContains(r.err, "io_uring unavailable")) {
      return new std::string(r.err);
    }
    return new std::string();
  }();
  return *reason;
}

#define SKIP_WITHOUT_IO_URING()                                         \
  do {                                                                  \
    if (!IoUringUnavailable().empty()) {                                \
      GTEST_SKIP() << "io_uring unavailable: " << IoUringUnavailable(); \
    }                                                                   \
  } while (0)

// Sends with `sender_flags` to a `--check-pattern` receiver and checks that
// both succeed and the receiver got exactly `bytes` x `connections` pattern
// bytes. Returns the sender's result.
Result SendPattern(std::vector<std::string> sender_flags, uint64_t bytes = k8M,
                   uint32_t connections = 1) {
  Receiver receiver({"--check-pattern"}, connections);
  EXPECT_NE(receiver.port(), 0) << "receiver did not start";
  if (receiver.port() == 0) return {-1, "", ""};
  std::vector<std::string> args = {"--peer", receiver.peer(), "--bytes",
                                   absl::StrCat(bytes)};
  if (connections > 1) {
    args.push_back("--connections");
    args.push_back(absl::StrCat(connections));
  }
  args.insert(args.end(), sender_flags.begin(), sender_flags.end());
  const Result sent = Zcsend(args);
  const Result got = receiver.Join(sent.code == kZcsendOk);
  const uint64_t total = bytes * connections;
  EXPECT_EQ(sent.code, kZcsendOk) << sent.err << sent.out;
  EXPECT_EQ(sent.err, "");
  EXPECT_EQ(got.code, kZcsendOk) << got.err << got.out;
  EXPECT_EQ(got.err, "");
  EXPECT_TRUE(
      absl::StrContains(got.out, absl::StrCat("received ", total, " bytes")))
      << got.out;
  EXPECT_TRUE(absl::StrContains(
      got.out, absl::StrCat("pattern: OK (", total, " bytes checked)\n")))
      << got.out;
  const std::map<std::string, uint64_t> stats = Stats(sent.out);
  // Every byte left by exactly one op kind, copy or zero-copy, once: a
  // resent byte would show up here.
  EXPECT_EQ(Stat(stats, "bytes_copied") + Stat(stats, "bytes_zero_copy"), total)
      << sent.out;
  EXPECT_EQ(Stat(stats, "buffers_released_failed"), 0u) << sent.out;
  return sent;
}

// --- The pattern
// ----------------------------------------------------------------

TEST(ZcsendPatternTest, FillMatchesByteAtFromAnyOffset) {
  for (uint64_t offset : {0, 1, 7, 8, 13, 4096, 1000003}) {
    std::vector<unsigned char> data(77);
    Pattern().Fill(offset, absl::MakeSpan(data));
    for (size_t i = 0; i < data.size(); ++i) {
      ASSERT_EQ(data[i], Pattern().ByteAt(offset + i)) << offset << "+" << i;
    }
    EXPECT_EQ(Pattern().FindMismatch(offset, data), data.size());
  }
}

TEST(ZcsendPatternTest, MismatchFoundAtItsIndex) {
  std::vector<unsigned char> data(4096);
  Pattern().Fill(5, absl::MakeSpan(data));
  for (size_t at :
       {size_t{0}, size_t{3}, size_t{8}, size_t{2049}, size_t{4095}}) {
    std::vector<unsigned char> bad = data;
    bad[at] ^= 0x40;
    EXPECT_EQ(Pattern().FindMismatch(5, bad), at);
  }
  // A shifted stream (one byte lost) is caught at once.
  EXPECT_LT(Pattern().FindMismatch(4, data), 16u);
}

TEST(ZcsendPatternTest, PatternIsNotConstantOrShortPeriod) {
  std::vector<unsigned char> data(1 << 16);
  Pattern().Fill(0, absl::MakeSpan(data));
  std::vector<bool> seen(256);
  for (unsigned char b : data) seen[b] = true;
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 256);
  // Two 4 KiB pages differ, so a page sent twice is caught.
  EXPECT_FALSE(
      std::equal(data.begin(), data.begin() + 4096, data.begin() + 4096));
}

// --- Bad input
// ------------------------------------------------------------------

struct BadCase {
  std::vector<std::string> args;
  std::string needle;  // the error line names this
};

class ZcsendBadInputTest : public testing::TestWithParam<BadCase> {};

TEST_P(ZcsendBadInputTest, ExitTwoOneLineOnErrNothingOnOut) {
  const BadCase& c = GetParam();
  const Result r = Zcsend(c.args);
  EXPECT_EQ(r.code, kZcsendBadInput) << r.err << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StartsWith(r.err, "zcsend: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(absl::EndsWith(r.err, "\n")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, c.needle))
      << "expected '" << c.needle << "' in: " << r.err;
}

// Port 9 is never contacted: every case fails before connecting.
INSTANTIATE_TEST_SUITE_P(
    Cases, ZcsendBadInputTest,
    testing::Values(
        BadCase{{}, "nothing to do"},
        BadCase{{"--peer", "127.0.0.1:9", "--bogus"}, "'--bogus'"},
        BadCase{{"--peer", "127.0.0.1:9", "extra"}, "'extra'"},
        BadCase{{"--peer", "127.0.0.1:9", "--bytes", "12Q"}, "12Q"},
        BadCase{{"--peer", "127.0.0.1:9", "--bytes=0"}, "'0'"},
        BadCase{{"--peer", "localhost"}, "'localhost'"},
        BadCase{{"--peer", "127.0.0.1:0"}, "'127.0.0.1:0'"},
        BadCase{{"--peer", "127.0.0.1:65536"}, "'127.0.0.1:65536'"},
        BadCase{{"--peer", ":9000"}, "':9000'"},
        BadCase{{"--peer", "::1:9000"}, "'::1:9000'"},
        BadCase{{"--peer", "127.0.0.1:9", "--threshold", "12Q"}, "12Q"},
        BadCase{{"--peer"}, "--peer needs a value"},
        BadCase{{"--peer", "127.0.0.1:9", "--bytes"}, "--bytes needs a value"},
        BadCase{{"--peer", "127.0.0.1:9", "--connections", "0"}, "'0'"},
        BadCase{{"--listen", "0", "--connections", "0"}, "'0'"},
        BadCase{{"--peer", "127.0.0.1:9", "--connections", "1025"}, "1025"},
        // Decimal digits only, as before the flags moved to Abseil (whose
        // integer parser takes hex and spaces), with the range in the error.
        BadCase{{"--peer", "127.0.0.1:9", "--connections", "0x10"}, "'0x10'"},
        BadCase{{"--peer", "127.0.0.1:9", "--connections", " 2"}, "' 2'"},
        BadCase{{"--peer", "127.0.0.1:9", "--connections", "-1"}, "1..1024"},
        BadCase{{"--peer", "127.0.0.1:9", "--file", "/nonexistent/zcsend"},
                "'/nonexistent/zcsend'"},
        BadCase{{"--peer", "127.0.0.1:9", "--file", "/"}, "is a directory"},
        BadCase{{"--peer", "127.0.0.1:9", "--idle-timeout", "5"}, "'5'"},
        BadCase{{"--peer", "127.0.0.1:9", "--idle-timeout", "-1s"}, "'-1s'"},
        BadCase{{"--listen", "0", "--idle-timeout", "1s"}, "--idle-timeout"},
        BadCase{{"--peer", "127.0.0.1:9", "--trace", "/nonexistent/t"},
                "'/nonexistent/t'"},
        BadCase{{"--peer", "127.0.0.1:9", "--copy-op", "splice"}, "'splice'"},
        BadCase{{"--peer", "127.0.0.1:9", "--adaptive", "maybe"}, "'maybe'"},
        BadCase{{"--peer", "127.0.0.1:9", "--registered=yes"}, "'yes'"},
        BadCase{{"--peer", "127.0.0.1:9", "--max-in-flight", "0"}, "'0'"},
        BadCase{{"--peer", "127.0.0.1:9", "--split", "8M"}, "--max-in-flight"},
        BadCase{{"--peer", "127.0.0.1:9", "--split", "0,0"}, "every buffer"},
        BadCase{{"--peer", "127.0.0.1:9", "--file", "/etc/hostname", "--bytes",
                 "1M"},
                "not both"},
        BadCase{
            {"--peer", "127.0.0.1:9", "--file", "/etc/hostname", "--resend"},
            "give --file or --resend"},
        BadCase{{"--listen", "0", "--resend"}, "--resend"},
        BadCase{{"--peer", "127.0.0.1:9", "--listen", "0"}, "not both"},
        BadCase{{"--peer", "127.0.0.1:9", "--loopback"}, "not both"},
        BadCase{{"--loopback", "--listen", "0"}, "not both"},
        BadCase{{"--loopback", "--check-pattern"}, "--check-pattern"},
        BadCase{{"--peer", "127.0.0.1:9", "--out", "x"}, "--out"},
        BadCase{{"--listen", "0", "--bytes", "1M"}, "--bytes"},
        BadCase{{"--listen", "70000"}, "'70000'"},
        BadCase{{"--listen", "0", "--out", "/nonexistent/dir/out"},
                "'/nonexistent/dir/out'"}));

TEST(ZcsendTest, HelpGoesToOut) {
  const Result r = Zcsend({"--help"});
  EXPECT_EQ(r.code, kZcsendOk);
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(absl::StartsWith(r.out, "usage: zcsend --peer")) << r.out;
  EXPECT_EQ(r.out, ZcsendUsage());
}

// --- Sending
// --------------------------------------------------------------------

TEST(ZcsendSendTest, PatternArrivesAndReportIsComplete) {
  SKIP_WITHOUT_IO_URING();
  const Result sent = SendPattern({});
  // The report: what was sent, the plan of the first message, the counters.
  EXPECT_TRUE(absl::StartsWith(
      sent.out,
      "zcsend: 8M (8388608 bytes) of pattern on 1 connection to "
      "127.0.0.1:"))
      << sent.out;
  EXPECT_TRUE(absl::StrContains(
      sent.out,
      "options: split 4K,4K,16K,32K,2K, threshold 16K, copy op writev, gap "
      "off, adaptive on, max in flight 4M per connection, registered off, "
      "idle timeout 30s\n"))
      << sent.out;
  EXPECT_TRUE(absl::StrContains(
      sent.out,
      "plan of the first message: 5 buffers, 58K (59392 bytes), 1 chain\n"
      "  writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]\n"))
      << sent.out;
  EXPECT_TRUE(absl::StartsWith(LineStartingWith(sent.out, "sent "),
                               "sent 8M (8388608 bytes) on 1 connection in "))
      << sent.out;
  // "sent" is what the local kernel took; the peer's acknowledgements are
  // reported beside it (the receiver read everything).
  EXPECT_TRUE(absl::EndsWith(LineStartingWith(sent.out, "sent "),
                             " (accepted by the local kernel)"))
      << sent.out;
  EXPECT_EQ(LineStartingWith(sent.out, "acknowledged by the peer: "),
            "acknowledged by the peer: 8M (8388608 bytes)")
      << sent.out;
  for (const char* prefix :
       {"ops: ", "bytes: ", "short sends ", "notifications ",
        "peak awaiting notification: ", "stats: "}) {
    EXPECT_NE(LineStartingWith(sent.out, prefix), "")
        << "no line starting '" << prefix << "' in:\n"
        << sent.out;
  }
  const std::map<std::string, uint64_t> stats = Stats(sent.out);
  EXPECT_GT(Stat(stats, "writev"), 0u) << sent.out;
  EXPECT_EQ(Stat(stats, "sendmsg"), 0u) << sent.out;
  // 8M is 141 cycles of the split's 5 buffers (58K), then 4K, 4K and 6K.
  EXPECT_EQ(Stat(stats, "buffers_released"), 141u * 5 + 3) << sent.out;
}

TEST(ZcsendSendTest, LoopbackRunsItsOwnCheckingReceiver) {
  SKIP_WITHOUT_IO_URING();
  const Result r =
      Zcsend({"--loopback", "--bytes", "4M", "--connections", "2"});
  EXPECT_EQ(r.code, kZcsendOk) << r.err << r.out;
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(absl::StrContains(r.out,
                                "  writev[4K,4K] -> sendmsg_zc[16K,32K] "
                                "-> send[2K]\n"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\nreceiver on 127.0.0.1:")) << r.out;
  EXPECT_TRUE(absl::StrContains(
      r.out, absl::StrCat("  pattern: OK (", 8 << 20, " bytes checked)\n")))
      << r.out;
  const std::map<std::string, uint64_t> stats = Stats(r.out);
  EXPECT_EQ(Stat(stats, "bytes_copied") + Stat(stats, "bytes_zero_copy"),
            uint64_t{8} << 20)
      << r.out;
}

TEST(ZcsendSendTest, LoopbackSendsAFileWithoutPatternCheck) {
  SKIP_WITHOUT_IO_URING();
  const std::string path =
      absl::StrCat(testing::TempDir(), "/zcsend_loopback_file");
  {
    std::ofstream f(path, std::ios::binary);
    f << std::string(100000, 'z');
  }
  const Result r = Zcsend({"--loopback", "--file", path});
  EXPECT_EQ(r.code, kZcsendOk) << r.err << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "received 100000 bytes")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "pattern:")) << r.out;
}

// --resend sends its buffers' memory as it was filled at the start: each
// 64K buffer on the wire is one of the ring's five 64K slots (the ring holds
// --max-in-flight + the largest buffer = 320K), never the stream's bytes at
// that offset beyond the first lap.
TEST(ZcsendSendTest, ResendSendsTheSameMemoryWithoutRefilling) {
  SKIP_WITHOUT_IO_URING();
  PlainSink sink;
  constexpr size_t kPiece = 64 << 10;
  const size_t bytes = 40 * kPiece;
  const Result sent =
      Zcsend({"--peer", sink.peer(), "--bytes", absl::StrCat(bytes), "--split",
              "64K", "--max-in-flight", "256K", "--resend"});
  const std::string& got = sink.Join(/*stop=*/sent.code != kZcsendOk);
  EXPECT_EQ(sent.code, kZcsendOk) << sent.err;
  EXPECT_TRUE(absl::StrContains(sent.out, "of pattern, resent from 320K"))
      << sent.out;
  ASSERT_EQ(got.size(), bytes);
  std::vector<std::string> slots;
  for (size_t slot = 0; slot < 5; ++slot) {
    std::string s(kPiece, '\0');
    Pattern().Fill(
        slot * kPiece,
        absl::MakeSpan(reinterpret_cast<unsigned char*>(&s[0]), s.size()));
    slots.push_back(s);
  }
  for (size_t i = 0; i < bytes / kPiece; ++i) {
    const std::string piece = got.substr(i * kPiece, kPiece);
    EXPECT_TRUE(std::find(slots.begin(), slots.end(), piece) != slots.end())
        << "buffer " << i << " is not one of the ring's slots";
  }
  // A refilling sender would have sent the stream: not so here.
  std::string stream(bytes, '\0');
  Pattern().Fill(0, absl::MakeSpan(reinterpret_cast<unsigned char*>(&stream[0]),
                                   stream.size()));
  EXPECT_NE(got, stream);
}

TEST(ZcsendSendTest, LoopbackResendOnlyCounts) {
  SKIP_WITHOUT_IO_URING();
  const Result r = Zcsend({"--loopback", "--bytes", "8M", "--resend"});
  EXPECT_EQ(r.code, kZcsendOk) << r.err << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "received 8388608 bytes")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "pattern:")) << r.out;
}

TEST(ZcsendTest, HelpDefinesThePattern) {
  const std::string help = ZcsendUsage();
  EXPECT_TRUE(
      absl::StrContains(help, absl::StrCat("M = N mod ", kPatternPeriod, "\n")))
      << help;
  EXPECT_TRUE(absl::StrContains(help, "0x9E3779B97F4A7C15")) << help;
  EXPECT_TRUE(absl::StrContains(help, "--resend")) << help;
}

TEST(ZcsendSendTest, CopyOpSendmsg) {
  SKIP_WITHOUT_IO_URING();
  const Result sent = SendPattern({"--copy-op", "sendmsg"});
  const std::map<std::string, uint64_t> stats = Stats(sent.out);
  EXPECT_GT(Stat(stats, "sendmsg"), 0u) << sent.out;
  EXPECT_EQ(Stat(stats, "writev"), 0u) << sent.out;
  EXPECT_TRUE(absl::StrContains(
      sent.out, "  sendmsg[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]\n"))
      << sent.out;
}

TEST(ZcsendSendTest, ThresholdNeverCopiesEverything) {
  SKIP_WITHOUT_IO_URING();
  const Result sent = SendPattern({"--threshold", "never"});
  const std::map<std::string, uint64_t> stats = Stats(sent.out);
  EXPECT_EQ(Stat(stats, "bytes_copied"), k8M) << sent.out;
  EXPECT_EQ(Stat(stats, "bytes_zero_copy"), 0u) << sent.out;
  EXPECT_EQ(Stat(stats, "notifications"), 0u) << sent.out;
  EXPECT_TRUE(absl::StrContains(sent.out, "threshold never")) << sent.out;
}

TEST(ZcsendSendTest, ThresholdZeroWithAdaptiveOffSendsZeroCopy) {
  SKIP_WITHOUT_IO_URING();
  const Result sent = SendPattern({"--threshold", "0", "--adaptive", "off"});
  const std::map<std::string, uint64_t> stats = Stats(sent.out);
  EXPECT_TRUE(absl::StrContains(sent.out, "adaptive off")) << sent.out;
  EXPECT_EQ(Stat(stats, "adaptive_disabled"), 0u) << sent.out;
  EXPECT_TRUE(absl::StrContains(
      sent.out, "adaptive turned zero-copy off on 0 of 1 connection\n"))
      << sent.out;
  if (absl::StrContains(sent.out, "note: this kernel lacks")) return;
  EXPECT_GT(Stat(stats, "bytes_zero_copy"), 0u) << sent.out;
  // Only a fallback may copy when every buffer is above the threshold.
  if (Stat(stats, "fallbacks_enomem") + Stat(stats, "fallbacks_unsupported") ==
      0) {
    EXPECT_EQ(Stat(stats, "bytes_copied"), 0u) << sent.out;
    EXPECT_EQ(Stat(stats, "writev"), 0u) << sent.out;
  }
  EXPECT_EQ(Stat(stats, "notifications"),
            Stat(stats, "sendmsg_zc") + Stat(stats, "send_zc"))
      << sent.out;
}

TEST(ZcsendSendTest, AdaptiveOffKeepsZeroCopyOn) {
  SKIP_WITHOUT_IO_URING();
  const Result sent = SendPattern({"--adaptive", "off"});
  const std::map<std::string, uint64_t> stats = Stats(sent.out);
  EXPECT_EQ(Stat(stats, "adaptive_disabled"), 0u) << sent.out;
  if (absl::StrContains(sent.out, "note: this kernel lacks")) return;
  // With the default split, 48K of every 58K go zero-copy.
  EXPECT_GT(Stat(stats, "bytes_zero_copy"), k8M / 2) << sent.out;
}

TEST(ZcsendSendTest, RegisteredBuffersUseFixedOps) {
  SKIP_WITHOUT_IO_URING();
  // One zero-copy buffer per op (send_zc), which takes fixed buffers since
  // kernel 6.0.
  const Result sent = SendPattern(
      {"--registered", "--adaptive", "off", "--split", "4K,64K,2K"});
  EXPECT_TRUE(absl::StrContains(sent.out, "registered on")) << sent.out;
  EXPECT_TRUE(absl::StrContains(sent.out,
                                "  send[4K] -> send_zc[64K] -> "
                                "send[2K]\n"))
      << sent.out;
  EXPECT_NE(LineStartingWith(sent.out, "registered buffers: "), "") << sent.out;
  if (absl::StrContains(sent.out, "note: this kernel lacks")) return;
  const std::map<std::string, uint64_t> stats = Stats(sent.out);
  EXPECT_GT(Stat(stats, "fixed_buffer_ops"), 0u) << sent.out;
  EXPECT_TRUE(absl::StrContains(sent.out, "zero-copy ops used fixed buffers"))
      << sent.out;
}

TEST(ZcsendSendTest, FourConnectionsEachCarryTheWholeStream) {
  SKIP_WITHOUT_IO_URING();
  const Result sent = SendPattern({}, uint64_t{4} << 20, 4);
  EXPECT_TRUE(
      absl::StrContains(sent.out, "sent 16M (16777216 bytes) on 4 connections"))
      << sent.out;
  for (int i = 1; i <= 4; ++i) {
    EXPECT_TRUE(absl::StrContains(
        sent.out,
        absl::StrCat("  connection ", i, ": sent 4M (4194304 bytes), ")))
        << sent.out;
  }
}

TEST(ZcsendSendTest, TraceSizesDeliverTheStream) {
  SKIP_WITHOUT_IO_URING();
  const std::string trace = HttpTrace();
  ASSERT_EQ(access(trace.c_str(), R_OK), 0) << trace << " not in the runfiles";
  const Result sent = SendPattern({"--trace", trace});
  // Long paths (the runfiles' are) are cut, as in every message.
  EXPECT_TRUE(absl::StrContains(
      sent.out, absl::StrCat("options: trace ", EscapeForMessage(trace), ", ")))
      << sent.out;
  EXPECT_TRUE(absl::StrContains(sent.out,
                                "plan of the first message (trace "
                                "line "))
      << sent.out;
}

TEST(ZcsendSendTest, PlainReceiverGetsThePattern) {
  SKIP_WITHOUT_IO_URING();
  PlainSink sink;
  const uint64_t bytes = (uint64_t{3} << 20) + 4321;
  const Result sent = Zcsend({"--peer", sink.peer(), "--bytes",
                              absl::StrCat(bytes), "--split", "1K,100K,3"});
  const std::string& got = sink.Join(/*stop=*/sent.code != kZcsendOk);
  EXPECT_EQ(sent.code, kZcsendOk) << sent.err;
  ASSERT_EQ(got.size(), bytes);
  std::string expected(bytes, '\0');
  Pattern().Fill(0,
                 absl::MakeSpan(reinterpret_cast<unsigned char*>(&expected[0]),
                                expected.size()));
  EXPECT_TRUE(got == expected)
      << "first difference at byte "
      << std::mismatch(got.begin(), got.end(), expected.begin()).first -
             got.begin();
}

std::string WriteRandomFile(const std::string& name, size_t size) {
  std::string data(size, '\0');
  std::mt19937_64 random(20240611);
  for (char& c : data) c = static_cast<char>(random());
  return WriteTestFile(name, data);
}

TEST(ZcsendSendTest, FileArrivesByteForByte) {
  SKIP_WITHOUT_IO_URING();
  const std::string in =
      WriteRandomFile("zcsend_in.bin", (size_t{5} << 20) + 12345);
  const std::string out = testing::TempDir() + "zcsend_out.bin";
  Receiver receiver({"--out", out});
  ASSERT_NE(receiver.port(), 0);
  const Result sent = Zcsend(
      {"--peer", receiver.peer(), "--file", in, "--split", "4K,4K,16K,32K,2K"});
  const Result got = receiver.Join(sent.code == kZcsendOk);
  EXPECT_EQ(sent.code, kZcsendOk) << sent.err;
  EXPECT_TRUE(absl::StrContains(sent.out, absl::StrCat("of '", in, "'")))
      << sent.out;
  EXPECT_EQ(got.code, kZcsendOk) << got.err;
  EXPECT_TRUE(absl::StrContains(got.out, absl::StrCat("wrote ", out, "\n")))
      << got.out;
  const std::string expected = ReadTestFile(in);
  const std::string actual = ReadTestFile(out);
  ASSERT_EQ(actual.size(), expected.size());
  EXPECT_TRUE(actual == expected) << "files differ";
}

TEST(ZcsendSendTest, FileOnTwoConnectionsWritesTwoCopies) {
  SKIP_WITHOUT_IO_URING();
  const std::string in = WriteRandomFile("zcsend_in2.bin", 777777);
  const std::string out = testing::TempDir() + "zcsend_out2.bin";
  Receiver receiver({"--out", out}, 2);
  ASSERT_NE(receiver.port(), 0);
  const Result sent = Zcsend({"--peer", receiver.peer(), "--file", in,
                              "--connections", "2", "--threshold", "0"});
  const Result got = receiver.Join(sent.code == kZcsendOk);
  EXPECT_EQ(sent.code, kZcsendOk) << sent.err;
  EXPECT_EQ(got.code, kZcsendOk) << got.err;
  const std::string expected = ReadTestFile(in);
  EXPECT_TRUE(ReadTestFile(out + ".1") == expected) << out << ".1 differs";
  EXPECT_TRUE(ReadTestFile(out + ".2") == expected) << out << ".2 differs";
}

TEST(ZcsendSendTest, ClosedPortFailsWithExitOne) {
  SKIP_WITHOUT_IO_URING();
  ClosedPort closed;
  ASSERT_NE(closed.port(), 0);
  const Result r = Zcsend({"--peer", closed.peer(), "--bytes", "1M"});
  EXPECT_EQ(r.code, kZcsendFailed);
  EXPECT_TRUE(absl::StartsWith(
      r.err, absl::StrCat("zcsend: cannot connect to ", closed.peer(), ": ")))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "refused")) << r.err;
  EXPECT_EQ(r.out, "");
}

// --- Bad input found after parsing: nothing starts
// ----------------------------

// Inputs that only a look at the files or at several flags together can
// reject. Under --loopback they used to start the receiver first ("listening
// on ..." on stdout, a second error line from its accept).
TEST(ZcsendBadInputTest, InputErrorsAfterParsingStartNothing) {
  const std::string dir = testing::TempDir();
  const std::string data = WriteTestFile("zcsend_bad_data", "abc");
  const std::string empty = WriteTestFile("zcsend_empty.trace", "");
  const std::string comments =
      WriteTestFile("zcsend_comments.trace", "# nothing\n\n   # here\n");
  const std::string zeros = WriteTestFile("zcsend_zeros.trace", "0,0\n0\n");
  const std::vector<std::vector<std::string>> cases = {
      {"--split", "0"},
      {"--split", "0,0"},
      {"--file", "/dev/zero"},
      {"--file", dir},
      {"--file", dir + "/zcsend_missing_file"},
      {"--file", data, "--bytes", "1M"},
      {"--split", "5M"},
      {"--trace", empty},
      {"--trace", comments},
      {"--trace", zeros},
      {"--trace", "/dev/zero"},
      {"--trace", dir},
      // Size 0: nothing to send, or a size the kernel does not know.
      {"--file", empty},
      {"--file", "/proc/self/status"},
  };
  for (const bool loopback : {true, false}) {
    for (const std::vector<std::string>& c : cases) {
      std::vector<std::string> args = {"--peer", "127.0.0.1:9"};
      if (loopback) args = {"--loopback"};
      args.insert(args.end(), c.begin(), c.end());
      SCOPED_TRACE(absl::StrJoin(args, " "));
      const Result r = Zcsend(args);
      EXPECT_EQ(r.code, kZcsendBadInput) << r.err << r.out;
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(LineCount(r.err), 1u) << r.err;
      EXPECT_TRUE(absl::StartsWith(r.err, "zcsend: ")) << r.err;
    }
  }
}

TEST(ZcsendBadInputTest, HugeOrControlValuesGiveOneShortLine) {
  const std::string huge(size_t{5} << 20, '9');
  const std::vector<std::vector<std::string>> cases = {
      {huge},
      {"--" + huge},
      {"--peer", huge},
      {"--peer", std::string(100000, 'a') + ":1"},
      {"--peer", "127.0.0.1:9", "--bytes", huge},
      {"--loopback", "--split", huge},
      {"--loopback", "--file", "/" + huge},
      {"--loopback", "--trace", "a\nb\x01\x7f"},
      {"--loopback", "--adaptive", "x\ny"},
      {"--loopback", "--idle-timeout", "1\n2"},
      {"--loopback", "--registered=\r\n"},
  };
  for (const std::vector<std::string>& args : cases) {
    SCOPED_TRACE(EscapeArgs(args));
    const Result r = Zcsend(args);
    EXPECT_EQ(r.code, kZcsendBadInput);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(LineCount(r.err), 1u);
    EXPECT_LT(r.err.size(), 1000u);
    EXPECT_TRUE(absl::EndsWith(r.err, "\n"));
    EXPECT_TRUE(std::none_of(r.err.begin(), r.err.end() - 1, [](char ch) {
      return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f;
    })) << r.err.substr(0, 300);
  }
}

// A FIFO never delivers: opening it for reading used to block until a writer
// came.
TEST(ZcsendBadInputTest, FifoIsRefusedWithoutBlocking) {
  const std::string fifo = absl::StrCat(testing::TempDir(), "/zcsend.fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  for (const char* flag : {"--file", "--trace"}) {
    for (const bool loopback : {true, false}) {
      std::vector<std::string> args = {"--peer", "127.0.0.1:9"};
      if (loopback) args = {"--loopback"};
      args.push_back(flag);
      args.push_back(fifo);
      SCOPED_TRACE(absl::StrJoin(args, " "));
      BackgroundRun run(args);
      if (!run.WaitDone(absl::Seconds(10))) {
        ADD_FAILURE() << "zcsend blocked on the FIFO";
        // A writer lets a blocked open go on.
        const int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) close(fd);
      }
      const Result r = run.Join();
      EXPECT_EQ(r.code, kZcsendBadInput) << r.err;
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(LineCount(r.err), 1u) << r.err;
      EXPECT_TRUE(absl::StrContains(r.err, "is a FIFO")) << r.err;
    }
  }
  unlink(fifo.c_str());
}

// --- Faults: stalled peers, signals, a failing receiver
// -----------------------

TEST(ZcsendFaultTest, IdleTimeoutEndsARunToAPeerThatDoesNotRead) {
  SKIP_WITHOUT_IO_URING();
  // Its backlog holds the connections, accepted only at the end: a peer that
  // never reads.
  SilentPeer peer;
  ASSERT_NE(peer.address(), "");
  const Result r = Zcsend({"--peer", peer.address(), "--bytes", "256M",
                           "--connections", "2", "--idle-timeout", "300ms"});
  EXPECT_EQ(r.code, kZcsendFailed) << r.err;
  EXPECT_EQ(LineCount(r.err), 1u) << r.err;
  EXPECT_TRUE(absl::StartsWith(
      r.err, absl::StrCat("zcsend: connection 1 of 2 to ", peer.address(),
                          " (from 127.0.0.1:")))
      << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.err,
      "no byte acknowledged by the peer and no buffer released for "
      "300ms (--idle-timeout); "))
      << r.err;
  // The bytes outstanding: enqueued, not acknowledged; some, not all 256M
  // (at most --max-in-flight held by the executor, plus what the kernel
  // took and the peer did not acknowledge).
  const size_t at = r.err.rfind("; ");
  uint64_t outstanding = 0;
  ASSERT_NE(at, std::string::npos);
  const std::string tail = r.err.substr(at + 2);
  ASSERT_TRUE(absl::SimpleAtoi(tail.substr(0, tail.find(' ')), &outstanding))
      << r.err;
  EXPECT_GT(outstanding, 0u);
  EXPECT_LT(outstanding, uint64_t{256} << 20);
  EXPECT_TRUE(absl::StrContains(r.err, " bytes outstanding (enqueued, not "))
      << r.err;
  // The partial report, and the connections were reset: the peer sees an
  // error, not the end of a complete stream.
  EXPECT_TRUE(absl::StrContains(
      r.out, "stopped (idle timeout): the report is partial\n"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, ", abandoned (reset) with ")) << r.out;
  EXPECT_NE(LineStartingWith(r.out, "stats: "), "") << r.out;
  ASSERT_GE(peer.AcceptNow(), 0);
  EXPECT_EQ(peer.DrainAccepted(), ECONNRESET);
}

// Two connections to one peer that reads only the second. The first one's
// zero-copy bytes fill the executor's notification cap and are never
// acknowledged; the second must still get its whole stream (by copy: the cap
// is held by the other), and only the first is timed out. Before, the second
// waited on the cap and its peer got nothing.
TEST(ZcsendFaultTest, OnePeerNotReadingDoesNotStallTheOtherConnection) {
  SKIP_WITHOUT_IO_URING();
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  constexpr uint64_t kBytes = 8 << 20;
  std::atomic<uint64_t> read_bytes{0};
  std::atomic<int64_t> mismatch{-1};
  int stalled = -1;
  std::thread peer([&] {
    // The first connection is accepted and never read; the second is read
    // to its end and checked against the pattern.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    int live = -1;
    for (int accepted = 0; accepted < 2 && absl::Now() < deadline;) {
      pollfd pfd = {listener, POLLIN, 0};
      if (poll(&pfd, 1, 100) <= 0) continue;
      const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      (accepted++ == 0 ? stalled : live) = fd;
    }
    if (live < 0) return;
    std::vector<unsigned char> buf(256 << 10);
    while (absl::Now() < deadline) {
      pollfd pfd = {live, POLLIN, 0};
      if (poll(&pfd, 1, 100) <= 0) continue;
      const ssize_t n = recv(live, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      const uint64_t at = read_bytes;
      const size_t bad = Pattern().FindMismatch(
          at, absl::MakeConstSpan(buf.data(), static_cast<size_t>(n)));
      if (bad < static_cast<size_t>(n) && mismatch < 0) mismatch = at + bad;
      read_bytes += static_cast<uint64_t>(n);
    }
    close(live);
  });
  const Result r =
      Zcsend({"--peer", address, "--bytes", "8M", "--connections", "2",
              "--threshold", "0", "--adaptive", "off", "--idle-timeout", "2s"});
  peer.join();
  if (stalled >= 0) close(stalled);
  close(listener);
  EXPECT_EQ(r.code, kZcsendFailed) << r.err;
  EXPECT_EQ(LineCount(r.err), 1u) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "connection 1 of 2")) << r.err;
  EXPECT_EQ(read_bytes.load(), kBytes) << r.out;
  EXPECT_EQ(mismatch.load(), -1);
  EXPECT_TRUE(absl::StrContains(r.out, "connection 2: sent 8M")) << r.out;
}

// Buffers the kernel may still read after the run are never reused: here the
// connection is not reset (a test hook), so the executor hands its zero-copy
// buffers back as KernelMayStillRead and the kernel keeps sending from them
// after zcsend returned. What the peer then reads must be the pattern.
TEST(ZcsendFaultTest, MemoryTheKernelMayStillReadIsKept) {
  SKIP_WITHOUT_IO_URING();
  SilentPeer peer;
  ASSERT_NE(peer.address(), "");
  ZcsendTestHooks hooks;
  hooks.sender_never_resets = true;
  const Result r = ZcsendWithHooks(
      {"--peer", peer.address(), "--bytes", "64M", "--threshold", "0",
       "--adaptive", "off", "--idle-timeout", "300ms"},
      hooks);
  EXPECT_EQ(r.code, kZcsendFailed) << r.err;
  if (absl::StrContains(r.out, "note: this kernel lacks")) {
    GTEST_SKIP() << "no zero-copy send ops here";
  }
  EXPECT_TRUE(absl::StrContains(r.out, "\nnote: kept ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "; it is never reused\n")) << r.out;
  // Overwrite freshly mapped memory, as the next user of freed pages would.
  std::vector<unsigned char> scratch(size_t{16} << 20, 0xAA);
  const int fd = peer.AcceptNow();
  ASSERT_GE(fd, 0);
  std::string got;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n > 0) {
      got.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) break;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) break;
  }
  ASSERT_GT(got.size(), 0u);
  const size_t at = Pattern().FindMismatch(
      0, absl::MakeConstSpan(reinterpret_cast<const unsigned char*>(got.data()),
                             got.size()));
  EXPECT_EQ(at, got.size()) << "of " << got.size() << " bytes";
}

std::atomic<int> g_test_handler_calls{0};
extern "C" void CountSignal(int) { ++g_test_handler_calls; }

// Installs `CountSignal` for a signal, so that one sent outside a run cannot
// kill the test, and puts the previous handler back on destruction.
class TestHandler {
 public:
  explicit TestHandler(int signal_number) : signal_number_(signal_number) {
    struct sigaction mine = {};
    mine.sa_handler = CountSignal;
    sigemptyset(&mine.sa_mask);
    installed_ = sigaction(signal_number, &mine, &saved_) == 0;
    g_test_handler_calls = 0;
  }
  ~TestHandler() {
    if (installed_) sigaction(signal_number_, &saved_, nullptr);
  }
  TestHandler(const TestHandler&) = delete;
  TestHandler& operator=(const TestHandler&) = delete;
  bool installed() const { return installed_; }
  // Whether the handler now installed is `CountSignal`.
  bool InPlace() const {
    struct sigaction now = {};
    sigaction(signal_number_, nullptr, &now);
    return now.sa_handler == &CountSignal;
  }

 private:
  const int signal_number_;
  struct sigaction saved_ = {};
  bool installed_ = false;
};

// Waits for the run's header (printed once zcsend's handlers are in place),
// then sends `signal_number` to the process. Returns whether it did.
bool SignalOnceStarted(BackgroundRun& run, int signal_number) {
  if (!run.out().WaitFor("plan of the first message", absl::Seconds(30))) {
    return false;
  }
  kill(getpid(), signal_number);
  EXPECT_TRUE(run.WaitDone(absl::Seconds(40)))
      << "the signal did not stop the run";
  return true;
}

class ZcsendSignalTest : public testing::TestWithParam<int> {};

TEST_P(ZcsendSignalTest, StopsWithPartialReportAndRestoresTheHandler) {
  SKIP_WITHOUT_IO_URING();
  const int signal_number = GetParam();
  const char* const name = signal_number == SIGINT ? "SIGINT" : "SIGTERM";
  TestHandler handler(signal_number);
  ASSERT_TRUE(handler.installed());
  SilentPeer peer;
  ASSERT_NE(peer.address(), "");
  // The idle timeout only ends a run the signal did not stop.
  BackgroundRun run(
      {"--peer", peer.address(), "--bytes", "256M", "--idle-timeout", "20s"});
  const bool started = SignalOnceStarted(run, signal_number);
  const Result r = run.Join();
  EXPECT_TRUE(started) << r.err << r.out;
  EXPECT_TRUE(handler.InPlace()) << "the handler was not restored";
  EXPECT_EQ(g_test_handler_calls.load(), 0);
  EXPECT_EQ(r.code, kZcsendInterrupted + signal_number) << r.err;
  EXPECT_EQ(r.err, absl::StrCat("zcsend: stopped by ", name,
                                "; the report above is partial\n"));
  EXPECT_TRUE(absl::StrContains(
      r.out, absl::StrCat("stopped (", name, "): the report is partial\n")))
      << r.out;
  EXPECT_NE(LineStartingWith(r.out, "sent "), "") << r.out;
  EXPECT_NE(LineStartingWith(r.out, "stats: "), "") << r.out;
}

// Under --loopback the signal stops the sender, which stops the receiver:
// one error line (the sender's), and both partial reports.
TEST(ZcsendSignalLoopbackTest, StopsBothSides) {
  SKIP_WITHOUT_IO_URING();
  TestHandler handler(SIGINT);
  ASSERT_TRUE(handler.installed());
  BackgroundRun run({"--loopback", "--bytes", "64G", "--idle-timeout", "20s"});
  const bool started = SignalOnceStarted(run, SIGINT);
  const Result r = run.Join();
  EXPECT_TRUE(started) << r.err << r.out;
  EXPECT_TRUE(handler.InPlace()) << "the handler was not restored";
  EXPECT_EQ(r.code, kZcsendInterrupted + SIGINT) << r.err;
  EXPECT_EQ(r.err, "zcsend: stopped by SIGINT; the report above is partial\n");
  const std::string received = LineStartingWith(r.out, "  received ");
  EXPECT_NE(received, "") << r.out;
  EXPECT_FALSE(absl::StrContains(received, " in -")) << received;
}

INSTANTIATE_TEST_SUITE_P(Signals, ZcsendSignalTest,
                         testing::Values(SIGINT, SIGTERM));

// The receiver thread of --loopback fails (as accept does with EMFILE): the
// sender used to wait forever on connections nobody would read.
TEST(ZcsendFaultTest, LoopbackReceiverFailureStopsTheSender) {
  SKIP_WITHOUT_IO_URING();
  ZcsendTestHooks hooks;
  hooks.receiver_accept_fails_at = 2;
  hooks.receiver_accept_errno = EMFILE;
  // The idle timeout is only a backstop: without it a regression hangs.
  const Result r = ZcsendWithHooks({"--loopback", "--connections", "4",
                                    "--bytes", "256M", "--idle-timeout", "20s"},
                                   hooks);
  EXPECT_EQ(r.code, kZcsendFailed) << r.out;
  EXPECT_EQ(r.err, "zcsend: accept: Too many open files\n");
  EXPECT_TRUE(absl::StrContains(r.out, "receiver on 127.0.0.1:")) << r.out;
}

// The same for real: too few descriptors for the sender's and the receiver's
// ends of every connection. Whichever side runs out first, the run ends with
// that error.
TEST(ZcsendFaultTest, LoopbackOutOfDescriptorsFailsWithoutHanging) {
  SKIP_WITHOUT_IO_URING();
  int highest = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (struct dirent* e = readdir(d))
      highest = std::max(highest, atoi(e->d_name));
    closedir(d);
  } else {
    GTEST_SKIP() << "no /proc/self/fd";
  }
  struct rlimit saved = {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // Room for the sender's 32 sockets and its ring, not for the receiver's 32.
  struct rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(highest) + 1 + 48;
  if (low.rlim_cur > saved.rlim_cur) GTEST_SKIP() << "RLIMIT_NOFILE is low";
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  const Result r = Zcsend({"--loopback", "--connections", "32", "--bytes",
                           "64M", "--idle-timeout", "20s"});
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(r.code, kZcsendFailed) << r.err << r.out;
  EXPECT_TRUE(absl::StartsWith(r.err, "zcsend: ")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "Too many open files")) << r.err;
  EXPECT_FALSE(absl::StrContains(r.err, "--idle-timeout")) << r.err;
}

// --loopback compares what each connection received with what was sent.
TEST(ZcsendFaultTest, LoopbackCatchesAShortStream) {
  SKIP_WITHOUT_IO_URING();
  ZcsendTestHooks hooks;
  hooks.receiver_undercount_bytes = 100;
  const Result r = ZcsendWithHooks({"--loopback", "--bytes", "1M"}, hooks);
  EXPECT_EQ(r.code, kZcsendFailed) << r.err << r.out;
  EXPECT_EQ(LineCount(r.err), 1u) << r.err;
  EXPECT_TRUE(absl::StartsWith(
      r.err, "zcsend: byte count mismatch: connection 1 (from 127.0.0.1:"))
      << r.err;
  EXPECT_TRUE(absl::EndsWith(
      r.err,
      "): the sender sent 1048576 bytes, the receiver counted 1048476\n"))
      << r.err;
  // The pattern itself was fine: only the count tells.
  EXPECT_TRUE(absl::StrContains(r.out, "  pattern: OK (1048476 bytes checked)"))
      << r.out;
}

// --registered pins what is sent, not the whole --max-in-flight.
TEST(ZcsendSendTest, RegisteredRegionIsSizedToTheData) {
  SKIP_WITHOUT_IO_URING();
  const Result r = Zcsend({"--loopback", "--bytes", "64K", "--connections", "2",
                           "--registered", "--max-in-flight", "256M"});
  EXPECT_EQ(r.code, kZcsendOk) << r.err;
  EXPECT_TRUE(absl::StartsWith(LineStartingWith(r.out, "registered buffers: "),
                               "registered buffers: 128K (131072 bytes), "))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "  pattern: OK (131072 bytes checked)"))
      << r.out;
}

// --- Second round of faults
// ---------------------------------------------------

// A peer that reads `read_bytes` of each connection and then goes away,
// with a reset (SO_LINGER 0) or a plain close.
class BreakingPeer {
 public:
  BreakingPeer(uint64_t read_bytes, bool reset, int connections) {
    int port = 0;
    listener_ = ListenOnLoopback(connections, &port);
    if (listener_ < 0) return;
    peer_ = absl::StrCat("127.0.0.1:", port);
    thread_ = std::thread([this, read_bytes, reset, connections] {
      for (int i = 0; i < connections; ++i) {
        struct pollfd p = {listener_, POLLIN, 0};
        if (poll(&p, 1, 30000) <= 0) return;
        const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        char buffer[1 << 16];
        uint64_t got = 0;
        while (got < read_bytes) {
          struct pollfd q = {fd, POLLIN, 0};
          if (poll(&q, 1, 30000) <= 0) break;
          const ssize_t n = read(fd, buffer, sizeof(buffer));
          if (n <= 0) break;
          got += static_cast<uint64_t>(n);
        }
        if (reset) {
          const struct linger l = {1, 0};
          setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        close(fd);
      }
    });
  }
  BreakingPeer(const BreakingPeer&) = delete;
  BreakingPeer& operator=(const BreakingPeer&) = delete;
  ~BreakingPeer() {
    if (thread_.joinable()) thread_.join();
    if (listener_ >= 0) close(listener_);
  }
  // "127.0.0.1:PORT", or "" when it could not listen.
  const std::string& peer() const { return peer_; }

 private:
  int listener_ = -1;
  std::string peer_;
  std::thread thread_;
};

class ZcsendBrokenPeerTest
    : public testing::TestWithParam<std::pair<bool, int>> {};

// The peer reset or closed the connection mid-stream: that used to count as
// zcsend's own abandoning (exit 0, "abandoned (reset)").
TEST_P(ZcsendBrokenPeerTest, PeerThatGoesAwayMidStreamFailsTheRun) {
  SKIP_WITHOUT_IO_URING();
  const auto [reset, connections] = GetParam();
  BreakingPeer peer(100000, reset, connections);
  ASSERT_NE(peer.peer(), "");
  const Result r =
      Zcsend({"--peer", peer.peer(), "--bytes", "64M", "--connections",
              absl::StrCat(connections), "--idle-timeout", "20s"});
  EXPECT_EQ(r.code, kZcsendFailed) << r.err << r.out;
  EXPECT_TRUE(absl::StrContains(
      r.err,
      absl::StrCat("zcsend: connection 1 to ", peer.peer(), " failed after ")))
      << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.out, "FAILED (broken by the peer or the network, not by zcsend)"))
      << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "abandoned")) << r.out;
}

INSTANTIATE_TEST_SUITE_P(ResetOrClose, ZcsendBrokenPeerTest,
                         testing::Values(std::make_pair(true, 1),
                                         std::make_pair(false, 1),
                                         std::make_pair(true, 2)));

// Tiny buffers: one enqueue loop used to go on for tens of seconds (and
// take ~55 bytes a buffer) before the stop flag was looked at again.
TEST(ZcsendSignalLoopbackTest, StopsPromptlyWithOneByteBuffers) {
  SKIP_WITHOUT_IO_URING();
  TestHandler handler(SIGTERM);
  ASSERT_TRUE(handler.installed());
  BackgroundRun run({"--loopback", "--bytes", "64M", "--split", "1",
                     "--max-in-flight", "64M", "--idle-timeout", "20s"});
  const bool started = SignalOnceStarted(run, SIGTERM);
  const Result r = run.Join();
  EXPECT_TRUE(started) << r.err << r.out;
  EXPECT_EQ(r.code, kZcsendInterrupted + SIGTERM) << r.err;
  EXPECT_EQ(r.err, "zcsend: stopped by SIGTERM; the report above is partial\n");
}

// A listen(0) socket on 127.0.0.1 whose accept queue is full: a further SYN
// gets no answer. `peer()` is "" when it could not be made so.
class FullBacklog {
 public:
  FullBacklog() {
    int port = 0;
    listener_ = ListenOnLoopback(0, &port);
    if (listener_ < 0) return;
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    for (int i = 0; i < 8; ++i) {
      const int fd =
          socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) return;
      fillers_.push_back(fd);
      (void)connect(fd, reinterpret_cast<struct sockaddr*>(&addr),
                    sizeof(addr));
      struct pollfd p = {fd, POLLOUT, 0};
      if (poll(&p, 1, 200) == 0) {  // unanswered: full
        peer_ = absl::StrCat("127.0.0.1:", port);
        return;
      }
    }
  }
  FullBacklog(const FullBacklog&) = delete;
  FullBacklog& operator=(const FullBacklog&) = delete;
  ~FullBacklog() { Close(); }
  const std::string& peer() const { return peer_; }
  // Closes everything (a connect still waiting then fails).
  void Close() {
    for (int fd : fillers_) close(fd);
    fillers_.clear();
    if (listener_ >= 0) close(listener_);
    listener_ = -1;
  }

 private:
  int listener_ = -1;
  std::vector<int> fillers_;
  std::string peer_;
};

TEST(ZcsendFaultTest, ConnectToAFullBacklogTimesOut) {
  SKIP_WITHOUT_IO_URING();
  FullBacklog full;
  if (full.peer().empty()) GTEST_SKIP() << "could not fill a listen(0) backlog";
  BackgroundRun run(
      {"--peer", full.peer(), "--bytes", "1M", "--idle-timeout", "1s"});
  const bool done = run.WaitDone(absl::Seconds(30));
  full.Close();  // lets a hung connect fail
  const Result r = run.Join();
  EXPECT_TRUE(done) << "the connect was not bounded";
  EXPECT_EQ(r.code, kZcsendFailed) << r.err;
  EXPECT_EQ(r.err, absl::StrCat("zcsend: cannot connect to ", full.peer(),
                                ": no answer within 1s\n"));
  EXPECT_EQ(r.out, "");
}

TEST(ZcsendConnectSignalTest, SignalDuringConnectStopsTheRun) {
  SKIP_WITHOUT_IO_URING();
  TestHandler handler(SIGINT);
  ASSERT_TRUE(handler.installed());
  FullBacklog full;
  if (full.peer().empty()) GTEST_SKIP() << "could not fill a listen(0) backlog";
  const std::string peer = full.peer();
  BackgroundRun run({"--peer", peer, "--bytes", "1M", "--idle-timeout", "0"});
  // zcsend's handler replaces the test's before it connects.
  bool replaced = false;
  for (int i = 0;
       i < 3000 && !replaced && !run.WaitDone(absl::Milliseconds(10)); ++i) {
    replaced = !handler.InPlace();
  }
  if (replaced) kill(getpid(), SIGINT);
  const bool done = run.WaitDone(absl::Seconds(20));
  full.Close();
  const Result r = run.Join();
  ASSERT_TRUE(replaced) << r.err;
  EXPECT_TRUE(done) << "the signal did not stop the connect";
  EXPECT_TRUE(handler.InPlace());
  EXPECT_EQ(g_test_handler_calls.load(), 0);
  EXPECT_EQ(r.code, kZcsendInterrupted + SIGINT) << r.err;
  EXPECT_EQ(r.err,
            absl::StrCat("zcsend: stopped by SIGINT while connecting to ", peer,
                         "; nothing was sent\n"));
  EXPECT_EQ(r.out, "");
}

TEST(ZcsendFaultTest, ControlCharactersInTheHostAreEscaped) {
  SKIP_WITHOUT_IO_URING();
  const Result r = Zcsend({"--peer", "local\x1bhost:1", "--bytes", "1"});
  EXPECT_EQ(r.code, kZcsendFailed) << r.err;
  EXPECT_TRUE(
      absl::StartsWith(r.err, "zcsend: cannot resolve 'local\\x1bhost'"))
      << r.err;
  EXPECT_EQ(LineCount(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos);
}

// A stream buffer that takes nothing, as stdout on /dev/full.
class FullBuffer : public std::streambuf {
 protected:
  int_type overflow(int_type) override { return traits_type::eof(); }
  std::streamsize xsputn(const char*, std::streamsize) override { return 0; }
};

TEST(ZcsendTest, OutputThatCannotBeWrittenFailsTheRun) {
  FullBuffer full;
  std::ostream out(&full);
  std::ostringstream err;
  EXPECT_EQ(RunZcsend({"--help"}, out, err), kZcsendFailed);
  EXPECT_EQ(err.str(),
            "zcsend: cannot write the report to the output (stdout)\n");
}

// Outputs whose open would block (a FIFO without a reader) or that are not
// files (/dev/null, which --connections 2 used to give /dev/null.1 and .2
// beside it) are refused before the receiver listens.
TEST(ZcsendBadInputTest, ReceiverRefusesOutputsThatAreNotFiles) {
  const std::string fifo = absl::StrCat(testing::TempDir(), "/zcsend_out.fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--out", fifo}, "is a FIFO"},
      {{"--out", fifo, "--connections", "2"}, "is a FIFO"},
      {{"--out", "/dev/null"}, "is a character device"},
      {{"--out", "/dev/null", "--connections", "2"}, "is a character device"},
  };
  for (const auto& [flags, needle] : cases) {
    std::vector<std::string> args = {"--listen", "0", "--bind", "127.0.0.1"};
    args.insert(args.end(), flags.begin(), flags.end());
    SCOPED_TRACE(absl::StrJoin(args, " "));
    BackgroundRun run(args);
    if (!run.WaitDone(absl::Seconds(10))) {
      ADD_FAILURE() << "zcsend did not refuse the output";
      const int fd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (run.WaitDone(absl::Seconds(2)) == false) {
        // It listens: give it the connections it waits for.
        const std::string first = Lines(run.out().text())[0];
        int port = 0;
        if (absl::SimpleAtoi(first.substr(first.rfind(':') + 1), &port)) {
          Poke(port);
          Poke(port);
        }
      }
      if (fd >= 0) close(fd);
    }
    const Result r = run.Join();
    EXPECT_EQ(r.code, kZcsendBadInput) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(LineCount(r.err), 1u) << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, needle)) << r.err;
  }
  unlink(fifo.c_str());
  EXPECT_NE(access("/dev/null.1", F_OK), 0) << "/dev/null.1 was created";
}

// A connection that closes at once: nothing was checked, so the pattern is
// not "OK".
TEST(ZcsendFaultTest, ReceiverDoesNotCallNoBytesAPatternMatch) {
  Receiver receiver({"--check-pattern"});
  ASSERT_NE(receiver.port(), 0);
  Poke(receiver.port());
  const Result r = receiver.Join();
  EXPECT_EQ(r.code, kZcsendOk) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "pattern: nothing received to check\n"))
      << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "pattern: OK")) << r.out;
}

}  // namespace
}  // namespace zcplan
