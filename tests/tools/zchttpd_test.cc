// SPDX-License-Identifier: Apache-2.0
// zchttpd, run in-process on port 0 and driven by clients that are not its
// own: curl (keep-alive over many URLs, several strategies, both shapes,
// every body compared byte for byte with the documented pattern) and raw
// sockets (a pipelined burst, malformed requests, a client that resets
// mid-response while another is served). Bad flags exit 2 with one line.
//
// Every wait is bounded (a stuck server fails the test at its deadline);
// nothing asserts on timing. Tests that need io_uring skip with the reason
// when the server cannot make its ring; the curl tests skip without curl.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "zcplan/tests/tools/shared_text.h"
#include "zcplan/tests/util/files.h"
#include "zcplan/tools/zchttpd_cli.h"

extern char** environ;

namespace zcplan {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(20);

// The first offset where `got` differs from the pattern, or -1.
int64_t FirstMismatch(absl::string_view got) {
  static const std::string* const pattern = [] {
    auto* p = new std::string(size_t{1} << 20, '\0');
    for (size_t i = 0; i < p->size(); ++i) {
      (*p)[i] = static_cast<char>(ZchttpdBodyByte(i));
    }
    return p;
  }();
  if (got.size() > pattern->size())
    return static_cast<int64_t>(pattern->size());
  if (std::memcmp(got.data(), pattern->data(), got.size()) == 0) return -1;
  for (size_t i = 0;; ++i) {
    if (got[i] != (*pattern)[i]) return static_cast<int64_t>(i);
  }
}

// The value of `key=` in the last line of `text` that starts with
// `prefix`, or -1.
int64_t StatValue(const std::string& text, absl::string_view prefix,
                  absl::string_view key) {
  std::string line;
  for (absl::string_view l : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(l, prefix)) line = std::string(l);
  }
  for (absl::string_view word : absl::StrSplit(line, ' ')) {
    if (absl::ConsumePrefix(&word, key) && absl::ConsumePrefix(&word, "=")) {
      int64_t v = -1;
      if (absl::SimpleAtoi(word, &v)) return v;
    }
  }
  return -1;
}

// zchttpd on a thread of the test, on 127.0.0.1 with a port of its choice.
class Server {
 public:
  ~Server() { Stop(); }

  // Starts with `flags` (plus --listen); false with `skip` set when the
  // server could not start for want of io_uring, false with `failure` set
  // for any other failure.
  bool Start(std::vector<std::string> flags) {
    flags.push_back("--listen");
    flags.push_back("127.0.0.1:0");
    args_ = flags;
    thread_ = std::thread([this] {
      std::ostream out(&out_), err(&err_);
      code_ = RunZchttpdWithHooks(args_, out, err, hooks_);
      out_.MarkDone();
      err_.MarkDone();
    });
    if (!out_.WaitFor("\n", kDeadline)) {
      Stop();
      const std::string err = err_.text();
      if (absl::StrContains(err, "io_uring") ||
          absl::StrContains(err, "Operation not permitted") ||
          absl::StrContains(err, "Function not implemented")) {
        skip = "io_uring unavailable: " + err;
      } else {
        failure =
            absl::StrCat("server did not start (exit ", code_, "): ", err);
      }
      return false;
    }
    const std::string first = out_.text();
    const size_t colon = first.find("127.0.0.1:");
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(absl::string_view(first).substr(
                              colon + 10, first.find(' ', colon) - colon - 10),
                          &port)) {
      failure = "no port in: " + first;
      return false;
    }
    return true;
  }

  // Stops the server (as SIGINT would) and returns its exit code.
  int Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return code_;
  }

  std::string out() const { return out_.text(); }
  std::string err() const { return err_.text(); }
  SharedText& out_text() { return out_; }

  int port = 0;
  std::string skip, failure;

 private:
  // Set before the thread reads it: the hook points at the flag.
  ZchttpdTestHooks hooks_{&stop_};
  std::atomic<bool> stop_{false};
  std::vector<std::string> args_;
  SharedText out_, err_;
  std::thread thread_;
  int code_ = -1;
};

#define START_OR_SKIP(server, ...)                               \
  do {                                                           \
    if (!(server).Start(__VA_ARGS__)) {                          \
      if (!(server).skip.empty()) GTEST_SKIP() << (server).skip; \
      FAIL() << (server).failure;                                \
    }                                                            \
  } while (0)

// --- A raw client --------------------------------------------------------

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class Client {
 public:
  // Connects (blocking, every read bounded by SO_RCVTIMEO); `rcvbuf` > 0
  // sets a small receive buffer first.
  explicit Client(int port, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(absl::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response; false (with `error`) on EOF, an error or a
  // malformed response.
  bool Read(Response* r) {
    if (!ReadHeader(r)) return false;
    uint64_t length = 0;
    if (!absl::SimpleAtoi(r->headers["content-length"], &length)) {
      return Fail("no Content-Length");
    }
    while (buf_.size() < length) {
      if (!Fill()) return Fail("body cut short");
    }
    r->body = buf_.substr(0, length);
    buf_.erase(0, length);
    return true;
  }

  // The status and headers only: the answer to a HEAD request.
  bool ReadHeader(Response* r) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return Fail("no complete response header");
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    const std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
    const std::vector<std::string> status = absl::StrSplit(lines[0], ' ');
    if (status.size() < 3 || status[0] != "HTTP/1.1" ||
        !absl::SimpleAtoi(status[1], &r->status)) {
      return Fail("bad status line: " + lines[0]);
    }
    r->headers.clear();
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(": ");
      if (colon == std::string::npos) return Fail("bad header: " + lines[i]);
      r->headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          lines[i].substr(colon + 2);
    }
    r->body.clear();
    return true;
  }

  // True when the server closes the connection (EOF, nothing more).
  bool ReadsEof() {
    if (!buf_.empty()) return Fail("bytes after the last response");
    char c;
    const ssize_t n = recv(fd_, &c, 1, 0);
    if (n == 0) return true;
    return Fail(n < 0 ? absl::StrCat("recv: ", std::strerror(errno))
                      : "more bytes");
  }

  // Reads about `bytes` bytes and drops them.
  void Drop(size_t bytes) {
    while (buf_.size() < bytes && Fill()) {
    }
  }

  // Closes with a TCP reset.
  void Reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd_);
    fd_ = -1;
  }

  std::string error;

 private:
  bool Fill() {
    char chunk[65536];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  bool Fail(const std::string& why) {
    error = why;
    return false;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string Get(absl::string_view target, absl::string_view extra = "") {
  return absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: test\r\n", extra,
                      "\r\n");
}

// --- Running curl ----------------------------------------------------------

std::string FindCurl() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const std::string path = absl::StrCat(dir, "/curl");
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

// Runs `argv` with stdout captured, for at most kDeadline (then killed).
bool RunProgram(const std::vector<std::string>& argv, std::string* out,
                int* code) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return false;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  std::vector<char*> cargv;
  for (const std::string& a : argv)
    cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid;
  const int r = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr,
                            cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (r != 0) {
    close(pipe_fds[0]);
    return false;
  }
  const absl::Time deadline = absl::Now() + kDeadline;
  for (;;) {
    pollfd p{pipe_fds[0], POLLIN, 0};
    const int left =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(&p, 1, left) <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(pipe_fds[0], chunk, sizeof(chunk));
    if (n <= 0) break;
    out->append(chunk, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

// --- Parsing ---------------------------------------------------------------

TEST(ParseHttpRequestTest, CompleteGetWithKeepAliveDefaults) {
  const std::string req = "GET /16?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /";
  const HttpRequestParse p = ParseHttpRequest(req, 8192);
  ASSERT_EQ(p.outcome, HttpRequestParse::Outcome::kComplete);
  EXPECT_EQ(p.target, "/16");
  EXPECT_EQ(p.consumed, req.size() - 5);
  EXPECT_TRUE(p.keep_alive);
}

TEST(ParseHttpRequestTest, HeadIsAGetWithoutItsBodyErrorsToo) {
  const HttpRequestParse p =
      ParseHttpRequest("HEAD /mixed/9 HTTP/1.1\r\nHost: a\r\n\r\n", 8192);
  ASSERT_EQ(p.outcome, HttpRequestParse::Outcome::kComplete);
  EXPECT_TRUE(p.head);
  EXPECT_EQ(p.target, "/mixed/9");
  EXPECT_FALSE(
      ParseHttpRequest("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", 8192).head);
  // Errors found once the method is known carry it.
  const HttpRequestParse no_host =
      ParseHttpRequest("HEAD /1 HTTP/1.1\r\n\r\n", 8192);
  EXPECT_EQ(no_host.status, 400);
  EXPECT_TRUE(no_host.head);
  const HttpRequestParse too_long = ParseHttpRequest(
      "HEAD /1 HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'x'), 8192);
  EXPECT_EQ(too_long.status, 431);
  EXPECT_TRUE(too_long.head);
  EXPECT_EQ(
      ParseHttpRequest("head /1 HTTP/1.1\r\nHost: a\r\n\r\n", 8192).status,
      405);  // methods are case-sensitive
}

TEST(ParseHttpRequestTest, ConnectionCloseAndHttp10) {
  EXPECT_FALSE(
      ParseHttpRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, "
                       "CLOSE\r\n\r\n",
                       8192)
          .keep_alive);
  EXPECT_FALSE(ParseHttpRequest("GET / HTTP/1.0\r\n\r\n", 8192).keep_alive);
  EXPECT_TRUE(
      ParseHttpRequest("GET / HTTP/1.0\nConnection: keep-alive\n\n", 8192)
          .keep_alive);
}

TEST(ParseHttpRequestTest, IncompleteUntilTheEmptyLine) {
  EXPECT_EQ(ParseHttpRequest("GET /1 HTTP/1.1\r\nHost: a\r\n", 8192).outcome,
            HttpRequestParse::Outcome::kIncomplete);
  EXPECT_EQ(ParseHttpRequest("", 8192).outcome,
            HttpRequestParse::Outcome::kIncomplete);
  EXPECT_EQ(ParseHttpRequest("\r\n\r\n", 8192).outcome,
            HttpRequestParse::Outcome::kIncomplete);
}

TEST(ParseHttpRequestTest, ErrorsByKind) {
  const std::pair<std::string, int> cases[] = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET  /1 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET /1 HTTP/1.1 x\r\nHost: a\r\n\r\n", 400},
      {"GET 1 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET /1 HTTP/1.1\r\n\r\n", 400},  // no Host
      {"GET /1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"GET /1 HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},
      {"GET /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 400},
      {"GET /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST /1 HTTP/1.1\r\nHost: a\r\n\r\n", 405},
      {"GET /1 HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"GET /1 HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'x'), 431},
      // Control bytes in a field value or the target (RFC 9110 5.5).
      {"GET /1 HTTP/1.1\r\nHost: a\r\nX: a" + std::string(1, '\0') +
           "b\r\n\r\n",
       400},
      {"GET /1 HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
      {"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\x7f\r\n\r\n", 400},
      {"GET /1\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      // An absolute-form target without a host.
      {"GET http:///1 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      // Empty lines before the request line count toward the bound.
      {std::string(9000, '\n'), 431},
      {std::string(8000, '\n') + "GET /1 HTTP/1.1\r\nHost: a\r\nX: " +
           std::string(300, 'x') + "\r\n\r\n",
       431},
  };
  for (const auto& [request, status] : cases) {
    const HttpRequestParse p = ParseHttpRequest(request, 8192);
    EXPECT_EQ(p.outcome, HttpRequestParse::Outcome::kError) << request;
    EXPECT_EQ(p.status, status) << request;
  }
  // A tab in a value is no control byte; a few empty lines first are fine.
  EXPECT_EQ(ParseHttpRequest(
                "\r\n\r\nGET /1 HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", 8192)
                .outcome,
            HttpRequestParse::Outcome::kComplete);
  // A header just under the bound is fine.
  const std::string fits =
      "GET /1 HTTP/1.1\r\nHost: a\r\nX: " + std::string(8000, 'x') + "\r\n\r\n";
  EXPECT_EQ(ParseHttpRequest(fits, 8192).outcome,
            HttpRequestParse::Outcome::kComplete);
}

TEST(ParseHttpRequestTest, AbsoluteFormTargetIsItsPath) {
  const std::pair<std::string, std::string> cases[] = {
      {"http://a:8080/16?x=1", "/16"},
      {"HTTP://A/mixed/3", "/mixed/3"},
      {"https://a/1", "/1"},
      {"http://a", "/"},
      {"http://a?x", "/"},
      {"/16", "/16"},
  };
  for (const auto& [target, path] : cases) {
    const std::string request =
        absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: a\r\n\r\n");
    const HttpRequestParse p = ParseHttpRequest(request, 8192);
    ASSERT_EQ(p.outcome, HttpRequestParse::Outcome::kComplete) << target;
    EXPECT_EQ(p.target, path) << target;
  }
  // Still HTTP/1.1: Host is needed all the same (RFC 9112 3.2).
  EXPECT_EQ(ParseHttpRequest("GET http://a/1 HTTP/1.1\r\n\r\n", 8192).status,
            400);
}

TEST(ZchttpdBodyTest, PatternIsTheLittleEndianWordIndex) {
  EXPECT_EQ(ZchttpdBodyByte(0), 0);
  EXPECT_EQ(ZchttpdBodyByte(4), 1);
  EXPECT_EQ(ZchttpdBodyByte(4 * 258 + 1), 1);  // 258 = 0x0102
  EXPECT_EQ(ZchttpdBodyByte(4 * 258), 2);
  EXPECT_EQ(ZchttpdBodyByte(4 * 0x01020304ull + 3), 1);
}

// --- curl: keep-alive, strategies, shapes ----------------------------------

struct Strategy {
  const char* name;
  std::vector<std::string> flags;
  uint64_t body;  // --body
  // Zero-copy ops: must occur (1; where the kernel has them), must not (0).
  int zero_copy;
};

void PrintTo(const Strategy& s, std::ostream* os) { *os << s.name; }

class ZchttpdCurlTest : public testing::TestWithParam<Strategy> {};

TEST_P(ZchttpdCurlTest, EveryBodyByteExactOverOneKeepAliveConnection) {
  const std::string curl = FindCurl();
  if (curl.empty()) GTEST_SKIP() << "curl is not installed (tools/setup.sh)";
  const Strategy& st = GetParam();
  Server server;
  START_OR_SKIP(server, st.flags);

  // 50 URLs, both shapes, many piece counts.
  const uint32_t plain[] = {1, 2, 3, 7, 16, 64, 255, 256, 1024, 2048, 4096};
  const uint32_t mixed[] = {1, 2, 3, 4, 5, 64, 100, 1024, 2048, 65536};
  struct Want {
    std::string path;
    uint64_t size;
  };
  std::vector<Want> wants;
  for (int round = 0; wants.size() < 50; ++round) {
    for (uint32_t n : plain) {
      if (n <= st.body) wants.push_back({absl::StrCat("/", n), st.body});
    }
    for (uint32_t n : mixed) {
      if (round == 0 || n != 65536) {
        wants.push_back({absl::StrCat("/mixed/", n), 256 * 1024});
      }
    }
  }
  wants.resize(50);
  const std::string dir = absl::StrCat(TestTempDir(), "/curl_", st.name);
  mkdir(dir.c_str(), 0700);
  std::vector<std::string> argv = {
      curl,
      "-sS",
      "--max-time",
      "15",
      "-w",
      "%{http_code} %{size_download} %{num_connects} "
      "%header{content-length}\\n"};
  for (size_t i = 0; i < wants.size(); ++i) {
    argv.push_back("-o");
    argv.push_back(absl::StrCat(dir, "/", i));
    argv.push_back(
        absl::StrCat("http://127.0.0.1:", server.port, wants[i].path));
  }
  std::string out;
  int code = -1;
  ASSERT_TRUE(RunProgram(argv, &out, &code));
  EXPECT_EQ(code, 0) << out;
  const std::vector<std::string> lines =
      absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), wants.size()) << out;
  uint64_t connects = 0;
  for (size_t i = 0; i < wants.size(); ++i) {
    const std::vector<std::string> w = absl::StrSplit(lines[i], ' ');
    ASSERT_EQ(w.size(), 4u) << lines[i];
    EXPECT_EQ(w[0], "200") << wants[i].path;
    EXPECT_EQ(w[1], absl::StrCat(wants[i].size)) << wants[i].path;
    EXPECT_EQ(w[3], absl::StrCat(wants[i].size)) << wants[i].path;
    connects += std::stoull(w[2]);
    const std::string body = ReadTestFile(absl::StrCat(dir, "/", i));
    EXPECT_EQ(body.size(), wants[i].size) << wants[i].path;
    EXPECT_EQ(FirstMismatch(body), -1) << wants[i].path;
  }
  EXPECT_EQ(connects, 1u) << "curl did not keep the connection alive";

  EXPECT_EQ(server.Stop(), kZchttpdOk) << server.err();
  const std::string text = server.out();
  EXPECT_EQ(StatValue(text, "final:", "requests"), 50) << text;
  EXPECT_EQ(StatValue(text, "final:", "status_200"), 50) << text;
  EXPECT_EQ(StatValue(text, "final:", "connections_accepted"), 1) << text;
  EXPECT_EQ(StatValue(text, "final:", "buffers_released_failed"), -1) << text;
  EXPECT_EQ(StatValue(text, "final:", "buffers_kernel_may_read"), -1) << text;
  const int64_t zc =
      std::max<int64_t>(0, StatValue(text, "final:", "send_zc")) +
      std::max<int64_t>(0, StatValue(text, "final:", "sendmsg_zc"));
  if (st.zero_copy == 0) {
    EXPECT_EQ(zc, 0) << text;
  } else if (StatValue(text, "final:", "fallbacks_unsupported") == -1) {
    EXPECT_GT(zc, 0) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, ZchttpdCurlTest,
    testing::Values(
        Strategy{"AllCopy", {"--threshold", "never"}, 65536, 0},
        Strategy{
            "AllZeroCopy", {"--threshold", "0", "--adaptive", "off"}, 65536, 1},
        Strategy{"SizeAware", {"--threshold", "16K"}, 65536, 1},
        Strategy{"SizeAwareBodiesAsBuffers",
                 {"--threshold", "16K", "--prepared", "off"},
                 65536,
                 1},
        Strategy{"AllZeroCopyBodiesAsBuffers",
                 {"--threshold", "0", "--adaptive", "off", "--prepared", "off"},
                 65536,
                 1},
        Strategy{"SizeAwareNoAdaptiveSendmsg",
                 {"--threshold", "16K", "--adaptive", "off", "--copy-op",
                  "sendmsg", "--body", "100003"},
                 100003,
                 1},
        Strategy{"AllZeroCopySendmsgTwoThreads",
                 {"--threshold", "0", "--adaptive", "off", "--copy-op",
                  "sendmsg", "--threads", "2"},
                 65536,
                 1},
        Strategy{"RegisteredGap",
                 {"--threshold", "4K", "--adaptive", "off", "--registered",
                  "--gap", "256", "--body", "1M"},
                 1 << 20,
                 1}),
    [](const testing::TestParamInfo<Strategy>& info) {
      return std::string(info.param.name);
    });

// --- Raw sockets -------------------------------------------------------------

TEST(ZchttpdRawTest, PipelinedBurstIsAnsweredInOrder) {
  Server server;
  START_OR_SKIP(server, {"--body", "100000", "--threshold", "16K"});
  Client c(server.port);
  ASSERT_TRUE(c.connected());
  // 50 requests in one write; the body sizes (100000 or 256 KiB) tell the
  // order, the last asks to close.
  std::string burst;
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 50; ++i) {
    const bool mixed = (i * 7) % 3 == 0;
    const int n = 1 + (i * 37) % 300;
    burst += Get(mixed ? absl::StrCat("/mixed/", n) : absl::StrCat("/", n),
                 i == 49 ? "Connection: close\r\n" : "");
    sizes.push_back(mixed ? 256 * 1024 : 100000);
  }
  ASSERT_TRUE(c.Send(burst));
  for (int i = 0; i < 50; ++i) {
    Response r;
    ASSERT_TRUE(c.Read(&r)) << "response " << i << ": " << c.error;
    EXPECT_EQ(r.status, 200) << i;
    ASSERT_EQ(r.body.size(), sizes[i]) << "response " << i << " out of order";
    EXPECT_EQ(FirstMismatch(r.body), -1) << i;
    EXPECT_EQ(r.headers.count("connection"), i == 49 ? 1u : 0u) << i;
  }
  EXPECT_TRUE(c.ReadsEof()) << c.error;
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "requests"), 50);
}

// More requests in the buffer than the server queues on one connection
// (128): it stops reading, and takes up the rest as responses go out.
TEST(ZchttpdRawTest, PipelineDeeperThanTheQueueIsAnsweredInOrder) {
  Server server;
  START_OR_SKIP(server, {"--body", "1000"});
  Client c(server.port);
  std::string burst;
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 300; ++i) {
    const bool mixed = i % 17 == 0;
    burst += Get(mixed ? "/mixed/5" : absl::StrCat("/", 1 + i % 9));
    sizes.push_back(mixed ? 256 * 1024 : 1000);
  }
  ASSERT_LT(burst.size(), 16u * 1024);  // one recv buffer
  ASSERT_TRUE(c.Send(burst));
  for (int i = 0; i < 300; ++i) {
    Response r;
    ASSERT_TRUE(c.Read(&r)) << "response " << i << ": " << c.error;
    ASSERT_EQ(r.body.size(), sizes[i]) << "response " << i << " out of order";
    EXPECT_EQ(FirstMismatch(r.body), -1) << i;
  }
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "status_200"), 300);
}

struct BadRequest {
  std::string request;
  int status;
};

TEST(ZchttpdRawTest, MalformedRequestGetsItsStatusThenTheConnectionCloses) {
  Server server;
  START_OR_SKIP(server, {});
  const BadRequest cases[] = {
      {"GARBAGE\r\n\r\n", 400},
      {"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405},
      {"GET /1 HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {Get("/nothing/here"), 404},
      {Get("/0"), 400},
      {Get("/65537"), 400},
      {Get("/mixed/0"), 400},
      {Get("/mixed/65537"), 400},
      {Get("/1x"), 400},
      {"GET /1 HTTP/1.1\r\n\r\n", 400},
      {Get("/1", "Content-Length: 4\r\n") + "abcd", 400},
      {Get("/1", "X-Pad: " + std::string(9000, 'p') + "\r\n"), 431},
      {Get("/1", "X-Nul: a" + std::string(1, '\0') + "b\r\n"), 400},
      {"GET /1 HTTP/1.1\r\nHost: a\r\nX-Cr: a\rb\r\n\r\n", 400},
      // Empty lines count toward the bound. Ones that never end in a
      // request once filled the receive buffer, the next recv read 0
      // bytes, and the server took that for EOF and closed without a word.
      {std::string(9000, '\n') + Get("/1"), 431},
      {std::string(20000, '\n'), 431},
  };
  for (const BadRequest& bad : cases) {
    SCOPED_TRACE(bad.request.substr(0, 60));
    Client c(server.port);
    ASSERT_TRUE(c.connected());
    // A good request first, in the same write: answered before the error.
    ASSERT_TRUE(c.Send(Get("/4") + bad.request + Get("/1")));
    Response r;
    ASSERT_TRUE(c.Read(&r)) << c.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(FirstMismatch(r.body), -1);
    ASSERT_TRUE(c.Read(&r)) << c.error;
    EXPECT_EQ(r.status, bad.status);
    EXPECT_EQ(r.headers["connection"], "close");
    // Nothing for the request after it, and a clean close.
    EXPECT_TRUE(c.ReadsEof()) << c.error;
  }
  // Still serving.
  Client after(server.port);
  ASSERT_TRUE(after.Send(Get("/2")));
  Response r;
  ASSERT_TRUE(after.Read(&r)) << after.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "status_400"), 10);
  EXPECT_EQ(StatValue(server.out(), "final:", "status_431"), 3);
}

TEST(ZchttpdRawTest, MethodNotAllowedNamesGet) {
  Server server;
  START_OR_SKIP(server, {});
  for (const char* method : {"OPTIONS", "POST", "get", "head", "PUT"}) {
    Client c(server.port);
    ASSERT_TRUE(
        c.Send(absl::StrCat(method, " /1 HTTP/1.1\r\nHost: a\r\n\r\n")));
    Response r;
    ASSERT_TRUE(c.Read(&r)) << method << ": " << c.error;
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.headers["allow"], "GET, HEAD") << method;
    EXPECT_EQ(r.headers["connection"], "close") << method;
    EXPECT_TRUE(c.ReadsEof()) << method << ": " << c.error;
  }
}

TEST(ZchttpdRawTest, HeadGetsTheHeaderOfAGetAndNoBody) {
  Server server;
  START_OR_SKIP(server, {"--body", "1000"});
  Client c(server.port);
  ASSERT_TRUE(c.connected());
  // Pipelined: a body byte after a HEAD answer would be read as the start
  // of the next response and break its status line.
  const auto head = [](absl::string_view target) {
    return absl::StrCat("HEAD ", target, " HTTP/1.1\r\nHost: test\r\n\r\n");
  };
  ASSERT_TRUE(c.Send(head("/7") + Get("/3") + head("/mixed/5") + Get("/1") +
                     head("/nothing")));
  Response r;
  ASSERT_TRUE(c.ReadHeader(&r)) << c.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-length"], "1000");
  EXPECT_EQ(r.headers.count("connection"), 0u);
  ASSERT_TRUE(c.Read(&r)) << c.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 1000u);
  EXPECT_EQ(FirstMismatch(r.body), -1);
  ASSERT_TRUE(c.ReadHeader(&r)) << c.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-length"], "262144");
  ASSERT_TRUE(c.Read(&r)) << c.error;
  EXPECT_EQ(r.body.size(), 1000u);
  EXPECT_EQ(FirstMismatch(r.body), -1);
  ASSERT_TRUE(c.ReadHeader(&r)) << c.error;
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers["connection"], "close");
  EXPECT_TRUE(c.ReadsEof()) << c.error;  // no body, then the close
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "status_200"), 4);
  EXPECT_EQ(StatValue(server.out(), "final:", "status_404"), 1);
}

TEST(ZchttpdRawTest, AbsoluteFormAndLeadingEmptyLinesAreServed) {
  Server server;
  START_OR_SKIP(server, {});
  Client c(server.port);
  ASSERT_TRUE(c.connected());
  const std::string absolute =
      absl::StrCat("GET http://127.0.0.1:", server.port,
                   "/mixed/7 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(c.Send(absolute + std::string(1000, '\n') + "\r\n" + Get("/3") +
                     absolute));
  for (uint64_t size : {256u * 1024, 65536u, 256u * 1024}) {
    Response r;
    ASSERT_TRUE(c.Read(&r)) << c.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.size(), size);
    EXPECT_EQ(FirstMismatch(r.body), -1);
  }
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "status_200"), 3);
}

TEST(ZchttpdRawTest, ConnectionCloseAndHttp10AreHonoured) {
  Server server;
  START_OR_SKIP(server, {});
  for (const std::string& request : {Get("/8", "Connection: close\r\n"),
                                     std::string("GET /8 HTTP/1.0\r\n\r\n")}) {
    Client c(server.port);
    ASSERT_TRUE(c.Send(request));
    Response r;
    ASSERT_TRUE(c.Read(&r)) << c.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.size(), 65536u);
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_TRUE(c.ReadsEof()) << c.error;
  }
  // HTTP/1.0 with keep-alive stays open for a second request.
  Client c(server.port);
  ASSERT_TRUE(c.Send("GET /8 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  Response r;
  ASSERT_TRUE(c.Read(&r)) << c.error;
  EXPECT_EQ(r.headers["connection"], "keep-alive");
  ASSERT_TRUE(c.Send(Get("/8")));
  ASSERT_TRUE(c.Read(&r)) << c.error;
  EXPECT_EQ(FirstMismatch(r.body), -1);
}

TEST(ZchttpdRawTest, ClientResetMidResponseLeavesOthersServed) {
  Server server;
  START_OR_SKIP(server, {"--threshold", "16K", "--adaptive", "off",
                         "--stats-every", "20ms"});
  Client steady(server.port);
  ASSERT_TRUE(steady.connected());
  auto serve_steady = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const std::string path = i % 2
                                   ? absl::StrCat("/mixed/", 1 + i * 101 % 4000)
                                   : absl::StrCat("/", 1 + i * 13 % 1024);
      ASSERT_TRUE(steady.Send(Get(path)));
      Response r;
      ASSERT_TRUE(steady.Read(&r)) << steady.error;
      ASSERT_EQ(r.status, 200);
      ASSERT_EQ(FirstMismatch(r.body), -1) << path;
    }
  };
  serve_steady(10);
  {
    // A small receive window keeps the server's sends waiting; the client
    // takes a little and resets.
    Client quitter(server.port, /*rcvbuf=*/4096);
    ASSERT_TRUE(quitter.connected());
    std::string burst;
    for (int i = 0; i < 20; ++i) burst += Get("/mixed/1024");
    ASSERT_TRUE(quitter.Send(burst));
    quitter.Drop(3000);
    serve_steady(4);  // while the quitter's responses are stuck
    quitter.Reset();
  }
  serve_steady(10);
  // The reset connection is gone from the server, and its buffers are back:
  // one connection open, and the responses it held released (with errors).
  const absl::Time deadline = absl::Now() + kDeadline;
  while (absl::Now() < deadline) {
    const std::string text = server.out();
    if (StatValue(text, "stats:", "connections_closed") == 1 &&
        StatValue(text, "stats:", "connections_open") == 1) {
      break;
    }
    server.out_text().WaitFor("never appears", absl::Milliseconds(20));
  }
  const std::string text = server.out();
  EXPECT_EQ(StatValue(text, "stats:", "connections_closed"), 1) << text;
  EXPECT_EQ(StatValue(text, "stats:", "connections_open"), 1) << text;
  EXPECT_GT(StatValue(text, "stats:", "buffers_released_failed"), 0) << text;
  serve_steady(6);
  // A new client is served too.
  Client fresh(server.port);
  ASSERT_TRUE(fresh.Send(Get("/mixed/3")));
  Response r;
  ASSERT_TRUE(fresh.Read(&r)) << fresh.error;
  EXPECT_EQ(FirstMismatch(r.body), -1);
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "buffers_kernel_may_read"), -1);
}

TEST(ZchttpdRawTest, ConnectionsOverTheLimitWaitForAFreeSlot) {
  Server server;
  START_OR_SKIP(server, {"--max-connections", "1", "--stats-every", "50ms"});
  auto first = std::make_unique<Client>(server.port);
  ASSERT_TRUE(first->Send(Get("/1")));
  Response r;
  ASSERT_TRUE(first->Read(&r)) << first->error;
  // The second waits in the backlog, not accepted (and so not closed).
  Client second(server.port);
  ASSERT_TRUE(second.connected());
  ASSERT_TRUE(second.Send(Get("/3")));
  ASSERT_TRUE(first->Send(Get("/2")));
  ASSERT_TRUE(first->Read(&r)) << first->error;
  EXPECT_EQ(FirstMismatch(r.body), -1);
  // Two stats lines later (bounded) the server still has one connection.
  const auto stats_lines = [&server] {
    return std::vector<absl::string_view>(
               absl::StrSplit(server.out(), "stats:"))
        .size();
  };
  const size_t lines = stats_lines();
  const absl::Time deadline = absl::Now() + kDeadline;
  while (stats_lines() < lines + 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(stats_lines(), lines + 2) << server.out();
  EXPECT_EQ(StatValue(server.out(), "stats:", "connections_accepted"), 1);
  first.reset();  // its slot frees, and the second is taken and served
  ASSERT_TRUE(second.Read(&r)) << second.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(FirstMismatch(r.body), -1);
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "connections_accepted"), 2);
  EXPECT_EQ(StatValue(server.out(), "final:", "connections_refused"), -1);
}

// Waits (bounded) until the server's latest stats line has `key` >= `want`;
// returns the value seen last.
int64_t WaitForStat(Server& server, absl::string_view key, int64_t want) {
  const absl::Time deadline = absl::Now() + kDeadline;
  int64_t got = -1;
  while (absl::Now() < deadline) {
    got = StatValue(server.out(), "stats:", key);
    if (got >= want) break;
    server.out_text().WaitFor("never appears", absl::Milliseconds(20));
  }
  return got;
}

TEST(ZchttpdRawTest, ManyRoutesAreServedWhileTheBodyCacheStartsOver) {
  Server server;
  START_OR_SKIP(server, {"--threshold", "16K", "--adaptive", "off"});
  // More routes than the server keeps bodies for (64), and routes of 65536
  // one-byte pieces whose pieces pass its 2^20 limit: every response still
  // byte-exact, each route asked again after the set started over.
  Client c(server.port);
  std::vector<std::string> paths;
  for (int i = 1; i <= 40; ++i) {
    paths.push_back(absl::StrCat("/", i * 7));
    paths.push_back(absl::StrCat("/mixed/", i * 11));
  }
  for (int i = 0; i < 18; ++i) {
    paths.push_back(absl::StrCat("/", 65536 - i));
    paths.push_back("/16");
  }
  for (int round = 0; round < 2; ++round) {
    for (const std::string& path : paths) {
      ASSERT_TRUE(c.Send(Get(path)));
      Response r;
      ASSERT_TRUE(c.Read(&r)) << path << ": " << c.error;
      ASSERT_EQ(r.status, 200) << path;
      ASSERT_EQ(FirstMismatch(r.body), -1) << path;
      ASSERT_EQ(r.body.size(),
                absl::StartsWith(path, "/mixed/") ? 256u * 1024 : 65536u)
          << path;
    }
  }
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "buffers_kernel_may_read"), -1);
}

TEST(ZchttpdRawTest, IdleConnectionsAreClosedAndBusyOnesKept) {
  Server server;
  START_OR_SKIP(server, {"--idle-timeout", "500ms", "--stats-every", "20ms"});
  // Idle between requests: served once, then silent.
  Client idle(server.port);
  ASSERT_TRUE(idle.Send(Get("/16")));
  Response r;
  ASSERT_TRUE(idle.Read(&r)) << idle.error;
  // Stuck inside a request: half a header, never finished.
  Client partial(server.port);
  ASSERT_TRUE(partial.Send("GET /16 HTTP/1.1\r\nHost: te"));
  // Busy: a request every 50 ms for over two timeouts, each answered (the
  // gaps leave 450 ms of slack to a loaded machine).
  Client busy(server.port);
  for (int i = 0; i < 24; ++i) {
    ASSERT_TRUE(busy.Send(Get(absl::StrCat("/", 1 + i))));
    ASSERT_TRUE(busy.Read(&r)) << busy.error;
    ASSERT_EQ(FirstMismatch(r.body), -1);
    absl::SleepFor(absl::Milliseconds(50));
  }
  // The two silent ones get a plain close (EOF, no reset), each within the
  // client's 10 s read timeout.
  EXPECT_TRUE(idle.ReadsEof()) << idle.error;
  EXPECT_TRUE(partial.ReadsEof()) << partial.error;
  EXPECT_EQ(WaitForStat(server, "connections_timed_out", 2), 2) << server.out();
  ASSERT_TRUE(busy.Send(Get("/mixed/64")));
  ASSERT_TRUE(busy.Read(&r)) << busy.error;
  EXPECT_EQ(FirstMismatch(r.body), -1);
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "connections_timed_out"), 2);
}

TEST(ZchttpdRawTest, ResponseThePeerDoesNotTakeIsResetAfterTheTimeout) {
  Server server;
  START_OR_SKIP(server, {"--idle-timeout", "300ms", "--stats-every", "20ms",
                         "--threshold", "16K", "--adaptive", "off"});
  // A small receive window and nothing read: 2.5 MiB of responses cannot
  // leave, so no buffer is released and the connection makes no progress.
  Client stuck(server.port, /*rcvbuf=*/4096);
  ASSERT_TRUE(stuck.connected());
  std::string burst;
  for (int i = 0; i < 10; ++i) burst += Get("/mixed/1024");
  ASSERT_TRUE(stuck.Send(burst));
  EXPECT_EQ(WaitForStat(server, "connections_timed_out", 1), 1) << server.out();
  // The reset reaches the client: its reads end in an error, not in ten
  // whole responses.
  Response r;
  int whole = 0;
  while (whole < 10 && stuck.Read(&r)) ++whole;
  EXPECT_LT(whole, 10);
  // Its buffers came back with errors, and others are served.
  EXPECT_GT(WaitForStat(server, "buffers_released_failed", 1), 0)
      << server.out();
  Client fresh(server.port);
  ASSERT_TRUE(fresh.Send(Get("/mixed/1024")));
  ASSERT_TRUE(fresh.Read(&r)) << fresh.error;
  EXPECT_EQ(FirstMismatch(r.body), -1);
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "buffers_kernel_may_read"), -1);
}

TEST(ZchttpdRawTest, HeaderSentAByteAtATimeIsTimedOut) {
  Server server;
  START_OR_SKIP(server, {"--idle-timeout", "300ms", "--stats-every", "20ms"});
  // A header that never ends, one byte every 50 ms: bytes come in, but no
  // request is ever complete, so the connection is idle all the same.
  Client trickle(server.port);
  ASSERT_TRUE(trickle.Send("GET /16 HTTP/1.1\r\nX-Slow: "));
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline &&
         StatValue(server.out(), "stats:", "connections_timed_out") < 1) {
    if (!trickle.Send("a")) break;  // closed, then reset by our bytes
    absl::SleepFor(absl::Milliseconds(50));
  }
  // Closed while the bytes still came (over 16 timeouts in 5 s), not once
  // they stopped.
  const bool trickling = absl::Now() < deadline;
  EXPECT_TRUE(trickling) << server.out();
  EXPECT_EQ(WaitForStat(server, "connections_timed_out", 1), 1) << server.out();
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "connections_timed_out"), 1);
}

TEST(ZchttpdRawTest, SlowButSteadyReaderIsNotTimedOut) {
  Server server;
  START_OR_SKIP(server, {"--idle-timeout", "300ms", "--body", "1M",
                         "--threshold", "16K", "--adaptive", "off"});
  // One 1 MiB buffer (zero-copy: released only once all of it is acked),
  // read a few KiB at a time through a small window: it takes far longer
  // than the timeout to go, but bytes move all the time.
  Client slow(server.port, /*rcvbuf=*/4096);
  ASSERT_TRUE(slow.connected());
  ASSERT_TRUE(slow.Send(Get("/1")));
  std::string got;
  const size_t want = (size_t{1} << 20);
  const absl::Time deadline = absl::Now() + kDeadline;
  size_t body_at = std::string::npos;
  while (absl::Now() < deadline) {
    char chunk[4096];
    const ssize_t n = recv(slow.fd(), chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    got.append(chunk, static_cast<size_t>(n));
    if (body_at == std::string::npos) {
      if (const size_t end = got.find("\r\n\r\n"); end != std::string::npos) {
        body_at = end + 4;
      }
    }
    if (body_at != std::string::npos && got.size() - body_at >= want) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_NE(body_at, std::string::npos) << got.size();
  EXPECT_EQ(got.size() - body_at, want);
  EXPECT_EQ(FirstMismatch(absl::string_view(got).substr(body_at)), -1);
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  EXPECT_EQ(StatValue(server.out(), "final:", "connections_timed_out"), -1)
      << server.out();
}

TEST(ZchttpdRawTest, SigintStopsWithTheCounters) {
  Server server;
  START_OR_SKIP(server, {});
  {
    Client c(server.port);
    ASSERT_TRUE(c.Send(Get("/5")));
    Response r;
    ASSERT_TRUE(c.Read(&r)) << c.error;
  }
  ASSERT_EQ(kill(getpid(), SIGINT), 0);
  ASSERT_TRUE(server.out_text().WaitFor("final:", kDeadline));
  EXPECT_EQ(server.Stop(), kZchttpdOk);
  const std::string text = server.out();
  EXPECT_TRUE(absl::StrContains(text, "stopping (SIGINT)")) << text;
  EXPECT_EQ(StatValue(text, "final:", "requests"), 1) << text;
  EXPECT_EQ(StatValue(text, "final:", "status_200"), 1) << text;
  EXPECT_GT(StatValue(text, "final:", "bytes_copied"), 0) << text;
  EXPECT_EQ(server.err(), "");
}

// --- Bad input ---------------------------------------------------------------

TEST(ZchttpdFlagsTest, BadInputIsOneLineAndExitTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {"--threads", "0"},
      {"--threads", "65"},
      {"--listen", "nocolon"},
      {"--listen", "127.0.0.1:70000"},
      {"--listen", ":80"},
      {"--listen"},
      {"--threshold", "abc"},
      {"--adaptive", "maybe"},
      {"--prepared", "maybe"},
      {"--copy-op", "sendfile"},
      {"--body", "0"},
      {"--body", "2G"},
      {"--stats-every", "-1s"},
      {"--stats-every", "1ms"},
      {"--max-connections", "0"},
      {"--idle-timeout", "5ms"},
      {"--idle-timeout", "25h"},
      {"--idle-timeout", "-1s"},
      {"--idle-timeout", "inf"},
      {"--zc-cap", "2T"},
      {"--zc-cap", "-1"},
      {"--bogus"},
      {"positional"},
      {"--registered=yes"},
      {"--threshold", "\x01\x1b[31mred"},
      {"--listen", "\x1b[2J\x7f"},
      {"--listen", std::string(100000, 'x')},
  };
  for (const auto& args : cases) {
    std::ostringstream out, err;
    EXPECT_EQ(RunZchttpd(args, out, err), kZchttpdBadInput)
        << absl::StrJoin(args, " ");
    EXPECT_EQ(out.str(), "") << absl::StrJoin(args, " ");
    const std::string e = err.str();
    EXPECT_TRUE(absl::StartsWith(e, "zchttpd: ")) << e;
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 1) << e;
    EXPECT_TRUE(absl::EndsWith(e, "\n")) << e;
    EXPECT_LE(e.size(), 1000u) << e.substr(0, 200);
    for (char ch : e.substr(0, e.size() - 1)) {
      EXPECT_TRUE(ch >= ' ' && ch <= '~') << "control byte in: " << e;
    }
  }
}

TEST(ZchttpdFlagsTest, AddressInUseIsOneLineAndExitOne) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::ostringstream out, err;
  EXPECT_EQ(
      RunZchttpd({"--listen", absl::StrCat("127.0.0.1:", ntohs(addr.sin_port))},
                 out, err),
      kZchttpdFailed);
  close(fd);
  EXPECT_EQ(out.str(), "");
  const std::string e = err.str();
  EXPECT_TRUE(absl::StartsWith(e, "zchttpd: cannot listen on ")) << e;
  EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 1) << e;
}

TEST(ZchttpdFlagsTest, HelpGoesToStdout) {
  std::ostringstream out, err;
  EXPECT_EQ(RunZchttpd({"--help"}, out, err), kZchttpdOk);
  EXPECT_TRUE(absl::StrContains(out.str(), "--stats-every"));
  EXPECT_EQ(err.str(), "");
}

}  // namespace
}  // namespace zcplan
