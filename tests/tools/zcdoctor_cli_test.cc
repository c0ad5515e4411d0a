// SPDX-License-Identifier: Apache-2.0
// zcdoctor in-process: bad input, --help and --version, the JSON, and live
// runs on this machine (loopback must be judged as copying) and --probe
// against a receiver thread.

#include "zcplan/tools/zcdoctor_cli.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Doctor(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = RunZcdoctor(args, out, err);
  return {code, out.str(), err.str()};
}

// A strict JSON checker: true when `text` is one JSON value and white space.
class JsonChecker {
 public:
  explicit JsonChecker(const std::string& text) : s_(text) {}
  bool Valid() {
    Space();
    if (!Value()) return false;
    Space();
    return i_ == s_.size();
  }

 private:
  void Space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) {
      ++i_;
    }
  }
  bool Eat(char c) {
    Space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool Literal(const char* word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  bool String() {
    if (!Eat('"')) return false;
    while (i_ < s_.size()) {
      const unsigned char c = s_[i_++];
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        const char e = s_[i_++];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k) {
            if (i_ >= s_.size() ||
                !std::isxdigit(static_cast<unsigned char>(s_[i_++]))) {
              return false;
            }
          }
        } else if (!absl::StrContains("\"\\/bfnrt", e)) {
          return false;
        }
      }
    }
    return false;
  }
  bool Number() {
    const size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    while (i_ < s_.size() &&
           (std::isdigit(static_cast<unsigned char>(s_[i_])) ||
            absl::StrContains(".eE+-", s_[i_]))) {
      ++i_;
    }
    return i_ > start;
  }
  bool Value() {
    Space();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      if (Eat('}')) return true;
      do {
        Space();
        if (!String() || !Eat(':') || !Value()) return false;
      } while (Eat(','));
      return Eat('}');
    }
    if (c == '[') {
      ++i_;
      if (Eat(']')) return true;
      do {
        if (!Value()) return false;
      } while (Eat(','));
      return Eat(']');
    }
    if (c == '"') return String();
    if (c == 't') return Literal("true");
    if (c == 'f') return Literal("false");
    if (c == 'n') return Literal("null");
    return Number();
  }

  const std::string& s_;
  size_t i_ = 0;
};

TEST(JsonCheckerTest, TellsGoodFromBad) {
  EXPECT_TRUE(JsonChecker(R"({"a":[1,true,"x\n"],"b":{}})").Valid());
  EXPECT_FALSE(JsonChecker(R"({"a":1,})").Valid());
  EXPECT_FALSE(JsonChecker("{\"a\":\"\n\"}").Valid());
  EXPECT_FALSE(JsonChecker(R"({"a":1} x)").Valid());
}

void ExpectBadInput(const std::vector<std::string>& args,
                    const std::string& needle) {
  const Result r = Doctor(args);
  EXPECT_EQ(r.code, kZcdoctorBadInput) << absl::StrJoin(args, " ");
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("zcdoctor: "));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(needle));
}

TEST(ZcdoctorCliTest, BadInputIsOneLineAndExitTwo) {
  ExpectBadInput({"--frobnicate"}, "unknown flag '--frobnicate'");
  ExpectBadInput({"eth0"}, "unexpected argument 'eth0'");
  ExpectBadInput({"--format=xml"}, "--format: bad format 'xml'");
  ExpectBadInput({"--format"}, "flag --format needs a value");
  ExpectBadInput({"--peer="}, "--peer: bad peer ''");
  ExpectBadInput({"--peer", "a b"}, "--peer: bad peer 'a b'");
  ExpectBadInput({"--peer", "host:0"}, "--peer: bad peer");
  ExpectBadInput({"--peer", "127.0.0.1,,::1"}, "--peer: bad peer ''");
  ExpectBadInput({"--probe", "127.0.0.1"}, "--probe: bad address");
  ExpectBadInput({"--probe", "127.0.0.1:99999"}, "--probe: bad address");
  ExpectBadInput({"--probe-bytes", "0"}, "--probe-bytes: bad size '0'");
  ExpectBadInput({"--probe-bytes", "1G"}, "--probe-bytes: bad size '1G'");
  ExpectBadInput({"--probe-bytes", "lots"}, "--probe-bytes: bad size 'lots'");
  // Below the probe's zero-copy threshold nothing can go zero-copy, and the
  // probe would say "no send went zero-copy" (blocks) of any path.
  ExpectBadInput({"--probe-bytes", "4095"}, "--probe-bytes: bad size '4095'");
  ExpectBadInput({"--probe-bytes", "1"}, "expected 4K..256M");
  ExpectBadInput({"--peer"}, "flag --peer needs a value");
  ExpectBadInput({"--peer\x01"}, "unknown flag '--peer\\x01'");
}

TEST(ZcdoctorCliTest, UnresolvablePeerIsBadInput) {
  // .invalid never resolves (RFC 6761).
  ExpectBadInput({"--peer", "no-such-host.invalid"},
                 "cannot resolve 'no-such-host.invalid'");
}

TEST(ZcdoctorCliTest, HelpAndVersion) {
  const Result help = Doctor({"--help"});
  EXPECT_EQ(help.code, kZcdoctorPays);
  EXPECT_THAT(help.out, StartsWith("usage: zcdoctor"));
  EXPECT_THAT(help.out, HasSubstr("--probe HOST:PORT"));
  EXPECT_EQ(help.err, "");
  const Result version = Doctor({"--frobnicate", "--version"});
  EXPECT_EQ(version.code, kZcdoctorPays);
  EXPECT_THAT(version.out, StartsWith("zcdoctor "));
}

// The lines of `text` for the check `name`, in the table's layout.
std::string CheckLine(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, absl::StrCat("  ", name, " "))) {
      return std::string(line);
    }
  }
  return "";
}

TEST(ZcdoctorCliTest, LoopbackPeerCannotPayHere) {
  const Result r = Doctor({"--peer", "127.0.0.1"});
  EXPECT_EQ(r.code, kZcdoctorBlocked) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("to 127.0.0.1\n"));
  EXPECT_THAT(CheckLine(r.out, "route"), HasSubstr("127.0.0.1 via lo"));
  EXPECT_THAT(CheckLine(r.out, "device"), HasSubstr("blocks   loopback"));
  EXPECT_THAT(r.out, HasSubstr("the receiving side copies"));
  EXPECT_THAT(r.out, HasSubstr("\nverdict: zero-copy cannot pay"));
  // Unless the machine itself blocks, the verdict names loopback.
  if (!absl::StrContains(r.out, "cannot pay on this machine")) {
    EXPECT_THAT(r.out,
                HasSubstr("verdict: zero-copy cannot pay to 127.0.0.1 (lo, "
                          "loopback): the receiving side copies\n"));
  }
}

TEST(ZcdoctorCliTest, SeveralPeersAreEachJudged) {
  const Result r = Doctor({"--peer", "127.0.0.1,127.0.0.2:9000"});
  EXPECT_EQ(r.code, kZcdoctorBlocked);
  EXPECT_THAT(r.out, HasSubstr("to 127.0.0.1\n"));
  EXPECT_THAT(r.out, HasSubstr("to 127.0.0.2\n"));
  EXPECT_THAT(r.out, HasSubstr("127.0.0.2 via lo"));
}

TEST(ZcdoctorCliTest, DefaultRunJudgesLoopbackAmongTheInterfaces) {
  const Result r = Doctor({});
  EXPECT_TRUE(r.code == kZcdoctorPays || r.code == kZcdoctorBlocked) << r.code;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("this machine\n  kernel "));
  const size_t lo = r.out.find("interface lo\n");
  ASSERT_NE(lo, std::string::npos) << r.out;
  EXPECT_THAT(CheckLine(r.out.substr(lo), "device"),
              HasSubstr("blocks   loopback"));
  EXPECT_THAT(r.out, HasSubstr("\nverdict: zero-copy "));
  // The exit code follows the verdict.
  EXPECT_EQ(r.code == kZcdoctorPays,
            absl::StrContains(r.out, "verdict: zero-copy can pay"));
}

TEST(ZcdoctorCliTest, JsonIsWellFormedAndCarriesTheVerdict) {
  const Result r = Doctor({"--format=json", "--peer", "127.0.0.1"});
  EXPECT_EQ(r.code, kZcdoctorBlocked);
  EXPECT_TRUE(JsonChecker(r.out).Valid()) << r.out;
  EXPECT_THAT(r.out, StartsWith("{\"verdict\":{\"pays\":false,"));
  EXPECT_THAT(r.out,
              HasSubstr("\"target\":\"127.0.0.1\",\"interface\":\"lo\""));
  EXPECT_THAT(r.out,
              HasSubstr("{\"name\":\"device\",\"status\":\"blocks\",\"value\":"
                        "\"loopback\""));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  const Result all = Doctor({"--format", "json"});
  EXPECT_TRUE(JsonChecker(all.out).Valid()) << all.out;
}

// A receiver on 127.0.0.1 that accepts one connection and reads it to the
// end; every wait is bounded.
class Receiver {
 public:
  Receiver() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), length) != 0 ||
        listen(fd_, 4) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Receiver() {
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  uint16_t port() const { return port_; }
  // Waits for the connection to end; the bytes read.
  uint64_t Join() {
    if (thread_.joinable()) thread_.join();
    return bytes_;
  }

 private:
  void Serve() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 20000) != 1) return;
    const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    timeval tv{20, 0};
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = read(conn, buf, sizeof(buf));
      if (n <= 0) break;
      bytes_ += static_cast<uint64_t>(n);
    }
    close(conn);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  uint64_t bytes_ = 0;
  std::thread thread_;
};

TEST(ZcdoctorCliTest, ProbeCountsCopiedNotificationsOnLoopback) {
  Receiver receiver;
  ASSERT_NE(receiver.port(), 0) << "cannot listen on 127.0.0.1";
  const Result r =
      Doctor({"--probe", absl::StrCat("127.0.0.1:", receiver.port()),
              "--probe-bytes", "1M"});
  const uint64_t received = receiver.Join();
  EXPECT_EQ(r.code, kZcdoctorBlocked);
  const std::string probe = CheckLine(r.out, "probe");
  ASSERT_NE(probe, "") << r.out;
  if (CheckLine(r.out, "io_uring_ring").find(" ok ") == std::string::npos) {
    GTEST_SKIP() << "io_uring is not usable here: " << probe;
  }
  if (CheckLine(r.out, "zc_report_usage").find(" ok ") == std::string::npos) {
    GTEST_SKIP() << "the kernel does not report copies: " << probe;
  }
  EXPECT_EQ(received, uint64_t{1} << 20);
  // Loopback: the receiving side copies, and every notification says so.
  EXPECT_THAT(probe, HasSubstr("blocks"));
  EXPECT_THAT(probe, HasSubstr("1M zero-copy, 0 by copy"));
  // One notification per 64 KiB buffer (more if a send went short), each
  // saying the kernel copied.
  uint64_t copied = 0;
  uint64_t notifications = 0;
  ASSERT_EQ(std::sscanf(probe.substr(probe.find("; ")).c_str(),
                        "; %" SCNu64 " of %" SCNu64, &copied, &notifications),
            2)
      << probe;
  EXPECT_GE(notifications, 16u);
  EXPECT_EQ(copied, notifications);
  EXPECT_THAT(r.out, HasSubstr("the kernel copied every zero-copy send to "
                               "127.0.0.1:"));
}

TEST(ZcdoctorCliTest, ProbeWithoutReceiverIsAWarningNotAnError) {
  // A socket bound but not listening: connects to its port are refused, and
  // nothing else can take the port while it is held.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), length), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length), 0);
  const Result r =
      Doctor({"--probe", absl::StrCat("127.0.0.1:", ntohs(addr.sin_port)),
              "--format", "json"});
  close(fd);
  EXPECT_EQ(r.code, kZcdoctorBlocked);  // loopback blocks anyway
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(JsonChecker(r.out).Valid()) << r.out;
  EXPECT_THAT(r.out, HasSubstr("{\"name\":\"probe\",\"status\":\"warning\","
                               "\"value\":\"failed: "));
  EXPECT_THAT(r.out, HasSubstr("zcsend --listen"));
}

}  // namespace
}  // namespace zcplan
