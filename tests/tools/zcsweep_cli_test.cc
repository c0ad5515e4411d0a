// SPDX-License-Identifier: Apache-2.0
// zcsweep run in-process: bad input, and short real sweeps over loopback
// whose table, recommendation, warning, files and calibrated weights are
// checked (they skip with the reason where io_uring is unavailable).

#include "zcplan/tools/zcsweep_cli.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "zcplan/planner/cost.h"
#include "zcplan/tests/tools/shared_text.h"
#include "zcplan/tests/uring/silent_peer.h"
#include "zcplan/tests/util/files.h"
#include "zcplan/tools/cli_io.h"

namespace zcplan {
namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Zcsweep(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = RunZcsweep(args, out, err);
  return {code, out.str(), err.str()};
}

std::string TempDir(const std::string& name) {
  return absl::StrCat(testing::TempDir(), "/", name);
}

#define SKIP_IF_NO_IO_URING(r)                                \
  do {                                                        \
    if ((r).code == kZcsweepFailed &&                         \
        absl::StrContains((r).err, "io_uring unavailable")) { \
      GTEST_SKIP() << (r).err;                                \
    }                                                         \
  } while (0)

class ZcsweepBadInputTest
    : public testing::TestWithParam<
          std::pair<std::vector<std::string>, std::string>> {};

TEST_P(ZcsweepBadInputTest, ExitTwoOneLineOnErrNothingOnOut) {
  const Result r = Zcsweep(GetParam().first);
  EXPECT_EQ(r.code, kZcsweepBadInput) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StartsWith(r.err, "zcsweep: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, GetParam().second)) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ZcsweepBadInputTest,
    testing::Values(
        std::make_pair(std::vector<std::string>{"--bogus", "1"}, "'--bogus'"),
        std::make_pair(std::vector<std::string>{"stray"}, "'stray'"),
        std::make_pair(std::vector<std::string>{"--thresholds", "12Q"}, "12Q"),
        std::make_pair(std::vector<std::string>{"--copy-ops", "splice"},
                       "'splice'"),
        std::make_pair(std::vector<std::string>{"--adaptive", "maybe"},
                       "'maybe'"),
        std::make_pair(std::vector<std::string>{"--repetitions", "0"}, "'0'"),
        std::make_pair(std::vector<std::string>{"--time", "fast"}, "'fast'"),
        std::make_pair(std::vector<std::string>{"--time", "-1s"}, "'-1s'"),
        std::make_pair(std::vector<std::string>{"--in-flight", "5000"},
                       "'5000'"),
        std::make_pair(std::vector<std::string>{"--peer", "nohost"},
                       "'nohost'"),
        std::make_pair(std::vector<std::string>{"--profile", "message:0"},
                       "'0'"),
        std::make_pair(std::vector<std::string>{"--profile", "video"},
                       "'video'"),
        std::make_pair(std::vector<std::string>{"--trace", "/nonexistent/t"},
                       "'/nonexistent/t'"),
        std::make_pair(std::vector<std::string>{"--split", "4K", "--profile",
                                                "message:16"},
                       "one workload"),
        std::make_pair(std::vector<std::string>{"--split", "0,0"},
                       "every buffer is empty"),
        std::make_pair(std::vector<std::string>{"--repetitions"},
                       "needs a value"),
        std::make_pair(std::vector<std::string>{"--bogus"},
                       "unknown flag '--bogus'"),
        std::make_pair(std::vector<std::string>{"--split", ""},
                       "--split: empty list"),
        std::make_pair(std::vector<std::string>{"--trace", ""},
                       "--trace: empty path"),
        std::make_pair(std::vector<std::string>{"--trace="},
                       "--trace: empty path"),
        std::make_pair(std::vector<std::string>{"--split", "1G"},
                       "above the limit of 1073741824 bytes (1 GiB)"),
        std::make_pair(std::vector<std::string>{"--profile", "message:1024",
                                                "--in-flight", "1024"},
                       "for 1024 message(s) in flight"),
        std::make_pair(std::vector<std::string>{"--weights", "w.txt",
                                                "--calibrate", "w.txt"},
                       "--weights and --calibrate name the same file"),
        std::make_pair(std::vector<std::string>{"--thresholds", "1K..8K,4K"},
                       "--thresholds: '4K' is given twice; each is swept once"),
        std::make_pair(std::vector<std::string>{"--copy-ops", "writev,writev"},
                       "--copy-ops: 'writev' is given twice"),
        std::make_pair(std::vector<std::string>{"--gaps", "0,16K,0"},
                       "--gaps: '0' is given twice"),
        std::make_pair(std::vector<std::string>{"--calibrate", "w.txt",
                                                "--thresholds", "0"},
                       "--calibrate needs at least 2 settings without "
                       "adaptive zero-copy to fit; this sweep has 1"),
        std::make_pair(std::vector<std::string>{"--calibrate", "w.txt",
                                                "--adaptive", "on"},
                       "this sweep has 0"),
        std::make_pair(std::vector<std::string>{"--out", "/proc/no/such/dir",
                                                "--split", "4K"},
                       "'/proc/no/such/dir'")));

void ExpectBadInput(const std::vector<std::string>& args,
                    const std::string& expected) {
  const Result r = Zcsweep(args);
  EXPECT_EQ(r.code, kZcsweepBadInput) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StartsWith(r.err, "zcsweep: ")) << r.err.substr(0, 200);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1)
      << r.err.substr(0, 200);
  EXPECT_LT(r.err.size(), 600u) << r.err.substr(0, 200);
  EXPECT_TRUE(absl::StrContains(r.err, expected)) << r.err.substr(0, 400);
}

// Inputs that are neither regular files nor bounded, bad peers, and outputs
// that could not be written after the sweep: all refused before anything
// starts.
TEST(ZcsweepBadInputTest, FilesPeersAndOutputsAreCheckedFirst) {
  const std::string dir = TempDir("bad-inputs");
  mkdir(dir.c_str(), 0755);
  const std::string fifo = dir + "/fifo";
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string empty_weights =
      WriteTestFile("empty-weights.txt", "# nothing\n");
  const std::string bad_weights =
      WriteTestFile("bad-weights.txt", "per_op banana\n");
  // Sparse, over zcsweep's trace limit (16 MiB: buffers that fit the
  // memory limit need far less text; parsing more could take GBs).
  const std::string huge = dir + "/huge.trace";
  {
    const int fd = open(huge.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, (off_t{16} << 20) + 1), 0);
    close(fd);
  }
  const std::string file = dir + "/regular";
  std::ofstream(file) << "x";
  const std::string out_dir = dir + "/out";
  mkdir(out_dir.c_str(), 0755);
  mkdir((out_dir + "/sweep.json").c_str(), 0755);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--trace", dir}, "is a directory"},
      {{"--trace", fifo}, "is a FIFO"},
      {{"--trace", "/dev/zero"}, "is a character device"},
      {{"--trace", huge}, "above the limit of 16777216 bytes"},
      {{"--peer", "a:b"}, "bad address 'a:b'"},
      {{"--peer", "a:0"}, "bad address 'a:0'"},
      {{"--peer", "a:65536"}, "bad address 'a:65536'"},
      {{"--peer", ":80"}, "bad address ':80'"},
      {{"--peer", "a\nb:80"}, "bad address 'a\\nb:80'"},
      {{"--peer", "a b:80"}, "bad address 'a b:80'"},
      {{"--idle-timeout", "-1s"}, "--idle-timeout: bad duration '-1s'"},
      {{"--out", file, "--split", "4K"}, "is a regular file; give a directory"},
      {{"--out", out_dir, "--split", "4K"},
       "sweep.json': is a directory; give a regular file"},
      {{"--out", dir + "/no/such", "--split", "4K"}, "cannot create directory"},
      {{"--calibrate", dir, "--out", out_dir + "-ok"}, "is a directory"},
      {{"--calibrate", dir + "/no/such/weights", "--out", out_dir + "-ok"},
       "cannot create file"},
      {{"--calibrate", fifo, "--out", out_dir + "-ok"}, "is a FIFO"},
      {{"--weights", dir, "--out", out_dir + "-ok"}, "is a directory"},
      {{"--weights", dir + "/no/such/weights", "--out", out_dir + "-ok"},
       "--weights: "},
      {{"--weights", empty_weights, "--out", out_dir + "-ok"},
       "names no weight"},
      {{"--weights", bad_weights, "--out", out_dir + "-ok"}, "per_op"},
      {{"--weights=", "--out", out_dir + "-ok"}, "--weights: empty path"},
      {{"--weights", bad_weights, "--thresholds", "16K", "--out",
        out_dir + "-ok"},
       "--weights needs at least 2 settings without adaptive zero-copy to "
       "rank; this sweep has 1"},
  };
  for (const auto& [args, expected] : cases) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    ExpectBadInput(args, expected);
  }
  struct stat st {};
  EXPECT_NE(stat((out_dir + "-ok").c_str(), &st), 0)
      << "nothing is created for bad input";
}

// A weights file is user input too: what its parser quotes back (a value
// with control bytes, a 500 KB line) reaches stderr escaped and capped.
TEST(ZcsweepBadInputTest, ABadWeightsFileIsOneEscapedShortLine) {
  const std::string out_dir = TempDir("bad-weights-out");
  const std::string control =
      WriteTestFile("control.weights", "per_op 1\x1b[2J\x1b]0;x\x07\n");
  ExpectBadInput({"--weights", control, "--out", out_dir},
                 "bad value '1\\x1b[2J\\x1b]0;x\\x07' for per_op");
  const Result r = Zcsweep({"--weights", control, "--out", out_dir});
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\x07'), std::string::npos) << r.err;
  const std::string long_line =
      WriteTestFile("long-line.weights", std::string(500000, 'x') + "\n");
  ExpectBadInput({"--weights", long_line, "--out", out_dir},
                 "expected 'name value'");
}

// A 5 MB token echoed in an error gives a short line, whatever flag it is.
TEST(ZcsweepBadInputTest, HugeTokensGiveShortLines) {
  const std::string huge(5 << 20, 'z');
  const std::string dir = TempDir("huge-token");
  mkdir(dir.c_str(), 0755);
  const std::string trace = dir + "/bad.trace";
  std::ofstream(trace) << "4K " << huge << "\n";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{huge}, "unexpected argument 'zzz"},
      {{"--" + huge, "1"}, "unknown flag '--zzz"},
      {{"--" + huge}, "unknown flag '--zzz"},
      {{"--thresholds", huge}, "--thresholds: "},
      {{"--split", huge}, "--split: "},
      {{"--gaps", huge}, "--gaps: "},
      {{"--copy-ops", huge}, "--copy-ops: "},
      {{"--repetitions", huge}, "--repetitions: "},
      {{"--in-flight", huge}, "--in-flight: "},
      {{"--adaptive", huge}, "--adaptive: "},
      {{"--time", huge}, "--time: "},
      {{"--idle-timeout", huge}, "--idle-timeout: "},
      {{"--profile", huge}, "--profile: "},
      {{"--peer", huge + ":80"}, "--peer: bad address"},
      {{"--trace", "/nonexistent/" + huge}, "--trace '/nonexistent/zzz"},
      {{"--trace", trace}, "line 1: "},
      {{"--out", "/nonexistent/" + huge}, "--out '/nonexistent/zzz"},
      {{"--calibrate", "/nonexistent/" + huge}, "--calibrate '/nonexistent/"},
      {{"--thresholds", "4K,\x01"}, "'\\x01'"},
  };
  for (const auto& [args, expected] : cases) {
    SCOPED_TRACE(expected);
    ExpectBadInput(args, expected);
  }
}

// A trace of valid 1-byte buffers whose buffers (8 KB each as laid out)
// would take 2 GB: refused before anything is allocated (it once ran the
// machine out of memory).
TEST(ZcsweepBadInputTest, BufferMemoryAboveTheLimitIsRefused) {
  const std::string trace = TempDir("tiny-buffers.trace");
  {
    std::ofstream f(trace);
    for (int line = 0; line < 5; ++line) {
      for (int i = 0; i < 50000; ++i) f << "1 ";
      f << "\n";
    }
  }
  ExpectBadInput({"--trace", trace, "--out", TempDir("tiny-out")},
                 "the buffers need 2048020480 bytes (1.9 GiB) for 1 "
                 "message(s) in flight");
  struct stat st {};
  EXPECT_NE(stat(TempDir("tiny-out").c_str(), &st), 0);
}

// A stream that takes nothing, like stdout on /dev/full.
class FullBuf : public std::streambuf {
 protected:
  int_type overflow(int_type) override { return traits_type::eof(); }
  std::streamsize xsputn(const char*, std::streamsize) override { return 0; }
};

TEST(ZcsweepTest, UnwritableOutputIsExitOne) {
  FullBuf full;
  std::ostream out(&full);
  std::ostringstream err;
  EXPECT_EQ(RunZcsweep({"--help"}, out, err), kZcsweepFailed);
  EXPECT_EQ(err.str(), "zcsweep: cannot write the help to standard output\n");
}

TEST(ZcsweepTest, UnwritableOutputStopsTheSweepBeforeItRuns) {
  FullBuf full;
  std::ostream out(&full);
  std::ostringstream err;
  const std::string dir = TempDir("sweep-full");
  // Short, so that without the check it ends soon (with progress lines).
  const std::vector<std::string> args = {
      "--split", "4K",     "--thresholds", "0,never", "--repetitions",
      "2",       "--time", "30ms",         "--out",   dir};
  const int code = RunZcsweep(args, out, err);
  const Result r = {code, "", err.str()};
  SKIP_IF_NO_IO_URING(r);
  EXPECT_EQ(r.code, kZcsweepFailed);
  EXPECT_EQ(r.err, "zcsweep: cannot write the results to standard output\n");
  struct stat st {};
  EXPECT_NE(stat(dir.c_str(), &st), 0) << "no directory for no results";
}

// The process's address space in bytes (the first field of statm, in pages).
uint64_t AddressSpaceBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  statm >> pages;
  return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// When memory runs out anyway (here: an address-space limit below a 512 MB
// workload that the buffer bound allows), zcsweep says so in one line and
// exits 1 instead of aborting on an uncaught std::bad_alloc. Runs in a child
// process, which the limit confines.
TEST(ZcsweepTest, OutOfMemoryIsOneLineAndExitOne) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under AddressSanitizer the allocator aborts on running out "
                  "of memory instead of throwing std::bad_alloc";
#endif
  const uint64_t now = AddressSpaceBytes();
  ASSERT_GT(now, 0u);
  std::fflush(nullptr);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const rlim_t limit = now + (uint64_t{256} << 20);
    const struct rlimit rl = {limit, limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(99);
    std::ostringstream out, err;
    const int code = RunZcsweep(
        {"--split", "512M", "--thresholds", "0", "--repetitions", "1", "--time",
         "1ms", "--quiet", "--out", TempDir("oom-out")},
        out, err);
    const std::string e = err.str();
    std::fprintf(stderr, "child: code %d, err %s", code, e.c_str());
    if (absl::StrContains(e, "io_uring unavailable")) _exit(98);
    _exit(code == kZcsweepFailed && e == "zcsweep: out of memory\n" ? 0 : 97);
  }
  // Bounded wait: the child allocates at once and fails, or is killed.
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 600 && done == 0; ++i) {
    done = waitpid(child, &status, WNOHANG);
    if (done == 0) absl::SleepFor(absl::Milliseconds(50));
  }
  if (done == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    FAIL() << "the child did not end within 30 s";
  }
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  if (WEXITSTATUS(status) == 98) GTEST_SKIP() << "io_uring unavailable";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see the child's line above";
}

TEST(ZcsweepTest, HelpGoesToOut) {
  const Result r = Zcsweep({"--help"});
  EXPECT_EQ(r.code, kZcsweepOk);
  EXPECT_TRUE(absl::StartsWith(r.out, "usage: zcsweep")) << r.out;
  EXPECT_EQ(r.err, "");
}

// A short sweep; empty result when io_uring is unavailable (the test skips).
Result ShortSweep(std::vector<std::string> extra, const std::string& dir) {
  std::vector<std::string> args = {
      "--thresholds", "0,16K,never", "--repetitions", "2",
      "--time",       "30ms",        "--out",         dir};
  args.insert(args.end(), extra.begin(), extra.end());
  return Zcsweep(args);
}

TEST(ZcsweepTest, SweepPrintsTableRecommendationWarningAndWritesFiles) {
  const std::string dir = TempDir("sweep1");
  const Result r = ShortSweep({"--profile", "message:64"}, dir);
  SKIP_IF_NO_IO_URING(r);
  ASSERT_EQ(r.code, kZcsweepOk) << r.err << r.out;
  for (const char* row : {"threshold 0, writev ", "threshold 16K, writev ",
                          "threshold never, writev "}) {
    EXPECT_TRUE(absl::StrContains(r.out, row)) << row << "\n" << r.out;
  }
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '<'), 1)
      << "one row marked recommended\n"
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\nrecommended: threshold ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "because: lowest CPU per GB")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "the noise is not known")) << r.out;
  // Loopback: every notification said the kernel copied.
  EXPECT_TRUE(absl::StrContains(r.out, "warning: every zero-copy notification"))
      << r.out;
  // Progress: one line per run.
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 6) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "[6/6] ")) << r.err;

  const std::vector<std::string> csv =
      absl::StrSplit(ReadTestFile(dir + "/sweep.csv"), '\n', absl::SkipEmpty());
  ASSERT_EQ(csv.size(), 7u);  // header + 3 settings x 2 repetitions
  EXPECT_TRUE(absl::StartsWith(csv[0], "threshold,copy_op,gap,adaptive"));
  EXPECT_TRUE(absl::StartsWith(csv[1], "0,writev,0,0,1,"));
  const std::string json = ReadTestFile(dir + "/sweep.json");
  EXPECT_TRUE(absl::StrContains(json, "\"all_notifications_copied\": true"))
      << json;
  EXPECT_EQ(std::count(json.begin(), json.end(), '{'), 1 + 3 * 3) << json;
  const std::string svg = ReadTestFile(dir + "/sweep.svg");
  EXPECT_TRUE(absl::StartsWith(svg, "<svg ")) << svg.substr(0, 100);
  EXPECT_TRUE(absl::StrContains(svg, ">16K</text>"));
  EXPECT_TRUE(absl::StrContains(svg, "throughput, MB/s"));
  EXPECT_TRUE(absl::StrContains(svg, "s per GB (lower is better; log scale)"));
  EXPECT_TRUE(absl::EndsWith(svg, "</svg>\n"));
}

// A minimal JSON reader: true when `text` from `*at` on is one JSON value
// (RFC 8259: no raw control characters in strings, only the defined
// escapes); a string's value, decoded from ASCII escapes, goes to `*out`.
class JsonChecker {
 public:
  explicit JsonChecker(absl::string_view text) : text_(text) {}

  bool Document() { return Value() && (Space(), at_ == text_.size()); }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  void Space() {
    while (at_ < text_.size() && absl::ascii_isspace(text_[at_])) ++at_;
  }
  bool Eat(char ch) {
    Space();
    if (at_ < text_.size() && text_[at_] == ch) {
      ++at_;
      return true;
    }
    return false;
  }
  bool Value() {
    Space();
    if (at_ >= text_.size()) return false;
    const char ch = text_[at_];
    if (ch == '{') return Members('}', true);
    if (ch == '[') return Members(']', false);
    if (ch == '"') return String();
    for (absl::string_view word : {"true", "false", "null"}) {
      if (absl::StartsWith(text_.substr(at_), word)) {
        at_ += word.size();
        return true;
      }
    }
    const size_t start = at_;
    while (at_ < text_.size() &&
           absl::StrContains("+-.eE0123456789", text_[at_])) {
      ++at_;
    }
    double unused;
    return at_ > start &&
           absl::SimpleAtod(text_.substr(start, at_ - start), &unused);
  }
  bool Members(char close, bool object) {
    ++at_;
    if (Eat(close)) return true;
    do {
      if (object && !(Space(), String() && Eat(':'))) return false;
      if (!Value()) return false;
    } while (Eat(','));
    return Eat(close);
  }
  bool String() {
    if (!Eat('"')) return false;
    std::string value;
    while (at_ < text_.size() && text_[at_] != '"') {
      const char ch = text_[at_++];
      if (static_cast<unsigned char>(ch) < 0x20) return false;
      if (ch != '\\') {
        value += ch;
        continue;
      }
      if (at_ >= text_.size()) return false;
      const char e = text_[at_++];
      if (e == 'u') {
        int code = 0;
        if (at_ + 4 > text_.size() ||
            !absl::SimpleHexAtoi(text_.substr(at_, 4), &code) || code > 0x7f) {
          return false;
        }
        at_ += 4;
        value += static_cast<char>(code);
      } else if (absl::StrContains("\"\\/", e)) {
        value += e;
      } else {
        constexpr absl::string_view kNames = "bfnrt";
        const size_t k = kNames.find(e);
        if (k == absl::string_view::npos) return false;
        value += "\b\f\n\r\t"[k];
      }
    }
    strings_.push_back(value);
    return Eat('"');
  }

  absl::string_view text_;
  size_t at_ = 0;
  std::vector<std::string> strings_;
};

TEST(JsonCheckerTest, RefusesWhatJsonDoes) {
  EXPECT_TRUE(
      JsonChecker("{\"a\": [1, -2.5e3, true, null, \"x\\u0009\"]}").Document());
  EXPECT_FALSE(JsonChecker("{\"a\": \"tab\tin\"}").Document());
  EXPECT_FALSE(JsonChecker("{\"a\": \"\\q\"}").Document());
  EXPECT_FALSE(JsonChecker("{\"a\": 1,}").Document());
  EXPECT_FALSE(JsonChecker("[1] 2").Document());
}

// A trace path with a quote, a backslash, a tab and a newline in it: the
// workload line of sweep.json names it and the file is still valid JSON
// (the path is escaped for messages, and the JSON writer escapes the rest).
TEST(ZcsweepTest, JsonStaysValidForAnyTracePath) {
  const std::string dir = TempDir("json-quote");
  mkdir(dir.c_str(), 0755);
  const std::string trace = dir + "/a\"b\\c\td\ne.trace";
  std::ofstream(trace) << "4K 64K\n";
  const Result r =
      Zcsweep({"--trace", trace, "--thresholds", "0,never", "--repetitions",
               "1", "--time", "20ms", "--quiet", "--out", dir + "/out"});
  SKIP_IF_NO_IO_URING(r);
  ASSERT_EQ(r.code, kZcsweepOk) << r.err;
  const std::string json = ReadTestFile(dir + "/out/sweep.json");
  JsonChecker checker(json);
  ASSERT_TRUE(checker.Document()) << json;
  ASSERT_GE(checker.strings().size(), 2u);
  EXPECT_EQ(checker.strings()[0], "workload");
  EXPECT_EQ(checker.strings()[1],
            absl::StrCat("trace ", EscapeForMessage(trace), " (1 messages)"));
  EXPECT_TRUE(absl::StrContains(json, "a\\\"b\\\\\\\\c\\\\td\\\\ne.trace"))
      << json;
}

TEST(ZcsweepTest, CalibrateWritesWeightsThePlannerReads) {
  const std::string dir = TempDir("sweep2");
  const std::string weights = dir + "-weights.txt";
  const Result r =
      Zcsweep({"--thresholds", "0,4K,16K,64K,never", "--repetitions", "1",
               "--time", "30ms", "--out", dir, "--calibrate", weights,
               "--quiet", "--split", "4K,4K,16K,32K,2K,100,100,100,64K"});
  SKIP_IF_NO_IO_URING(r);
  ASSERT_EQ(r.code, kZcsweepOk) << r.err << r.out;
  EXPECT_EQ(r.err, "") << "--quiet";
  EXPECT_TRUE(absl::StrContains(r.out, "calibrated cost weights")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Kendall tau")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "the noise is not known")) << r.out;
  const std::string text = ReadTestFile(weights);
  EXPECT_TRUE(absl::StartsWith(text, "# zcplan cost weights")) << text;
  absl::StatusOr<CostWeights> parsed = ParseCostWeights(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_TRUE(ValidateCostWeights(*parsed).ok());
}

TEST(ZcsweepTest, WeightsRankTheMeasuredSettings) {
  const std::string dir = TempDir("sweep-rank");
  // Weights under which copying is free and zero-copy dear: they rank
  // "never" first whatever this machine measures.
  const std::string weights = WriteTestFile(
      "rank-weights.txt",
      "per_op 100\nper_zc_op 100000\nper_copy_byte 0\nper_zc_byte 10\n");
  const Result r = Zcsweep({"--thresholds", "0,16K,never", "--repetitions", "1",
                            "--time", "30ms", "--out", dir, "--weights",
                            weights, "--quiet", "--split", "4K,64K,100"});
  SKIP_IF_NO_IO_URING(r);
  ASSERT_EQ(r.code, kZcsweepOk) << r.err << r.out;
  EXPECT_TRUE(absl::StrContains(
      r.out, absl::StrCat("the weights in ", weights,
                          " against this measurement, over 3 settings: "
                          "ranking agreement (Kendall tau, 1 = same order) ")))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "; by those weights: threshold never"))
      << r.out;
}

TEST(ZcsweepTest, UnreachablePeerFailsWithExitOneBeforeTheHeader) {
  const Result r = Zcsweep(
      {"--peer", "127.0.0.1:1", "--split", "4K", "--out", TempDir("sweep3")});
  SKIP_IF_NO_IO_URING(r);
  EXPECT_EQ(r.code, kZcsweepFailed) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "zcsweep: cannot connect to 127.0.0.1:1: Connection refused\n");
}

TEST(ZcsweepTest, IdlePeerEndsTheRunWithExitOneAndOneLine) {
  SilentPeer peer(/*accept_in_background=*/true);
  ASSERT_FALSE(peer.address().empty());
  const Result r =
      Zcsweep({"--peer", peer.address(), "--split", "1M", "--thresholds",
               "0,never", "--repetitions", "1", "--time", "30s",
               "--idle-timeout", "300ms", "--out", TempDir("sweep-idle")});
  SKIP_IF_NO_IO_URING(r);
  EXPECT_EQ(r.code, kZcsweepFailed) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "to " + peer.address())) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.err,
                               "zcsweep: threshold 0, writev: no "
                               "progress for 300ms: " +
                                   peer.address()))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, " bytes outstanding")) << r.err;
}

// Runs zcsweep on a thread, sends `signal` to the process `delay` after its
// stderr (`watch_err`) or stdout shows `when`, and returns the result. The
// sweeps given run far longer than the wait, so the signal cannot come after
// zcsweep has restored the default action.
Result ZcsweepInterrupted(std::vector<std::string> args, int signal,
                          const std::string& when, bool watch_err,
                          absl::Duration delay = absl::ZeroDuration()) {
  SharedText out_buffer, err_buffer;
  std::ostream out(&out_buffer), err(&err_buffer);
  int code = -1;
  std::thread run([&] {
    code = RunZcsweep(args, out, err);
    out_buffer.MarkDone();
    err_buffer.MarkDone();
  });
  SharedText& watched = watch_err ? err_buffer : out_buffer;
  const bool seen = watched.WaitFor(when, absl::Seconds(30));
  if (seen) {
    absl::SleepFor(delay);
    kill(getpid(), signal);
  }
  run.join();
  Result r = {code, out_buffer.text(), err_buffer.text()};
  if (!absl::StrContains(r.err, "io_uring unavailable")) {
    EXPECT_TRUE(seen) << "never saw '" << when << "'\n" << r.out << r.err;
  }
  return r;
}

bool HasDefaultAction(int signal) {
  struct sigaction now = {};
  sigaction(signal, nullptr, &now);
  return now.sa_handler == SIG_DFL;
}

TEST(ZcsweepTest, SigintPrintsTheRunsDoneAndExits130) {
  ASSERT_TRUE(HasDefaultAction(SIGINT));
  const Result r = ZcsweepInterrupted(
      {"--thresholds", "0,16K,never", "--repetitions", "50", "--time", "100ms",
       "--split", "4K,64K", "--out", TempDir("sweep-int")},
      SIGINT, "[1/150] ", /*watch_err=*/true);
  SKIP_IF_NO_IO_URING(r);
  EXPECT_EQ(r.code, 130) << r.err;
  struct stat st {};
  EXPECT_NE(stat(TempDir("sweep-int").c_str(), &st), 0)
      << "no files written, and no empty --out directory either";
  EXPECT_TRUE(HasDefaultAction(SIGINT)) << "the handler is restored";
  // The table has the runs done (at least the first), no recommendation.
  EXPECT_TRUE(absl::StrContains(r.out, "\nthreshold 0, writev ")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "recommended")) << r.out;
  const std::vector<std::string> lines =
      absl::StrSplit(r.err, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(absl::StartsWith(lines.back(),
                               "zcsweep: interrupted by SIGINT "
                               "after "))
      << lines.back();
  EXPECT_TRUE(absl::StrContains(lines.back(), " of 150 runs")) << lines.back();
}

TEST(ZcsweepTest, SigtermEndsAStalledRunWithExit143) {
  ASSERT_TRUE(HasDefaultAction(SIGTERM));
  SilentPeer peer(/*accept_in_background=*/true);
  ASSERT_FALSE(peer.address().empty());
  const Result r = ZcsweepInterrupted(
      {"--peer", peer.address(), "--split", "1M", "--thresholds", "0",
       "--repetitions", "1", "--time", "30s", "--idle-timeout", "0", "--out",
       TempDir("sweep-term")},
      SIGTERM, "to " + peer.address(), /*watch_err=*/false,
      // Time to fill the socket buffers and stall (the test holds without).
      absl::Milliseconds(500));
  SKIP_IF_NO_IO_URING(r);
  EXPECT_EQ(r.code, 143) << r.err;
  EXPECT_TRUE(HasDefaultAction(SIGTERM)) << "the handler is restored";
  EXPECT_TRUE(absl::StrContains(r.err,
                                "zcsweep: interrupted by SIGTERM after "
                                "0 of 1 runs"))
      << r.err;
}

}  // namespace
}  // namespace zcplan
