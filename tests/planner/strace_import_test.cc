// SPDX-License-Identifier: Apache-2.0
// The strace importer on lines recorded here: nginx (tools/traces/
// capture_nginx.sh), and python3 making each send call (strace 6.1, Linux
// x86_64). Lines marked "edited" are recorded lines with one value changed,
// for a case the recordings lack; the rest are verbatim.
#include "zcplan/planner/strace_import.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/tests/util/runfiles.h"
#include "zcplan/tools/cli_io.h"

namespace zcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

StraceImport Import(absl::string_view text,
                    StraceImportOptions options = StraceImportOptions()) {
  StraceImporter importer(options);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    importer.AddLine(line);
  }
  return std::move(importer).Finish();
}

std::vector<uint64_t> Sizes(const StraceImport& imp, size_t connection,
                            size_t batch) {
  const absl::Span<const uint64_t> s = imp.connections[connection].sizes(batch);
  return std::vector<uint64_t>(s.begin(), s.end());
}

// Every line is accounted for: it made a batch or is counted under a reason.
void ExpectEveryLineCounted(const StraceImport& imp) {
  uint64_t skipped = 0;
  for (const SkippedLines& s : imp.skipped) {
    skipped += s.lines;
    EXPECT_GT(s.lines, 0u) << s.reason;
    EXPECT_GE(s.first_line, 1u) << s.reason;
    EXPECT_LE(s.first_line, imp.lines) << s.reason;
    for (const char c : s.reason) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << s.reason;
    }
  }
  EXPECT_EQ(imp.lines, imp.lines_used + skipped);
  uint64_t batches = 0, bytes = 0, iovecs = 0;
  for (const ImportedConnection& c : imp.connections) {
    batches += c.batches();
    bytes += c.bytes();
    iovecs += c.iovecs();
  }
  EXPECT_EQ(imp.batches, batches);
  EXPECT_EQ(imp.bytes, bytes);
  EXPECT_EQ(imp.iovecs, iovecs);
}

// The count for (kind, reason), 0 if absent.
uint64_t SkippedFor(const StraceImport& imp, SkipKind kind,
                    absl::string_view reason_part) {
  uint64_t lines = 0;
  for (const SkippedLines& s : imp.skipped) {
    if (s.kind == kind && absl::StrContains(s.reason, reason_part)) {
      lines += s.lines;
    }
  }
  return lines;
}

// nginx, -f -yy: a response header and a 1K body in one writev, then the
// access log line.
constexpr absl::string_view kNginxWritev =
    R"strace(14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="HTTP/1.1 200 OK\r\nServer: nginx/1"..., iov_len=254}, {iov_base="7\212\205\217\331\271q\f#r\346X\332\350\333\22\372\252\340\352\273\326\300\334\324\225\17\266S2\303="..., iov_len=1024}], 2) = 1278
14187 write(4</tmp/h13nginx/logs/access.log>, "127.0.0.1 - - [01/Dec/2026:14:40"..., 94) = 94)strace";

TEST(StraceImportTest, WritevOnATcpSocketIsOneBatchOfItsIovecs) {
  const StraceImport imp = Import(kNginxWritev);
  ExpectEveryLineCounted(imp);
  ASSERT_EQ(imp.connections.size(), 1u);
  const ImportedConnection& c = imp.connections[0];
  EXPECT_EQ(c.name(), "TCP:[127.0.0.1:18473->127.0.0.1:34828]");
  EXPECT_EQ(c.pid(), 14187u);
  EXPECT_EQ(c.fd(), 7);
  ASSERT_EQ(c.batches(), 1u);
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(254, 1024));
  EXPECT_EQ(c.line(0), 1u);
  EXPECT_EQ(imp.bytes, 1278u);
  EXPECT_EQ(imp.lines_used, 1u);
  // The access log is a file: counted apart, not a connection.
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "file"), 1u);
}

// python3: socket.sendmsg, socket.send (sendto on x86_64), os.write,
// os.writev; -f -yy. The `send(` line is edited from the sendto line: strace
// prints send so on architectures that have a send system call.
constexpr absl::string_view kEveryForm =
    R"strace(8725  sendmsg(6<TCP:[127.0.0.1:39206->127.0.0.1:59515]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="xxxxxxxxxx", iov_len=10}, {iov_base="yyyyyyyyyyyyyyyyyyyy", iov_len=20}, {iov_base="zzz", iov_len=3}], msg_iovlen=3, msg_controllen=0, msg_flags=0}, 0) = 33
8725  sendto(6<TCP:[127.0.0.1:39206->127.0.0.1:59515]>, "abc", 3, 0, NULL, 0) = 3
8725  writev(6<TCP:[127.0.0.1:39206->127.0.0.1:59515]>, [{iov_base="11111", iov_len=5}, {iov_base="", iov_len=0}, {iov_base="22", iov_len=2}], 3) = 7
22821 write(4<TCP:[127.0.0.1:53634->127.0.0.1:59923]>, "thre"..., 6) = 6
8725  send(6<TCP:[127.0.0.1:39206->127.0.0.1:59515]>, "abc", 3, 0) = 3)strace";

TEST(StraceImportTest, EverySendCallFormMakesItsBatch) {
  const StraceImport imp = Import(kEveryForm);
  ExpectEveryLineCounted(imp);
  EXPECT_THAT(imp.skipped, IsEmpty());
  ASSERT_EQ(imp.connections.size(), 2u);
  ASSERT_EQ(imp.connections[0].batches(), 4u);
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(10, 20, 3));  // sendmsg
  EXPECT_THAT(Sizes(imp, 0, 1), ElementsAre(3));          // sendto
  // writev: a zero-length iovec in a full write is kept.
  EXPECT_THAT(Sizes(imp, 0, 2), ElementsAre(5, 0, 2));
  EXPECT_THAT(Sizes(imp, 0, 3), ElementsAre(3));  // send
  EXPECT_THAT(Sizes(imp, 1, 0), ElementsAre(6));  // write
  EXPECT_EQ(imp.connections[1].pid(), 22821u);
  EXPECT_EQ(imp.short_writes, 0u);
}

// python3, non-blocking: a sendmsg that the kernel took 819467 bytes of,
// then EAGAIN; nginx: a short writev and its retry.
constexpr absl::string_view kShortWrites =
    R"strace(8888  sendmsg(9<TCP:[127.0.0.1:33788->127.0.0.1:46651]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"..., iov_len=100000}, {iov_base="ssssssssssssssssssssssssssssssss"..., iov_len=3000000}], msg_iovlen=2, msg_controllen=0, msg_flags=0}, 0) = 819467
8888  sendmsg(9<TCP:[127.0.0.1:33788->127.0.0.1:46651]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"..., iov_len=100000}, {iov_base="ssssssssssssssssssssssssssssssss"..., iov_len=3000000}], msg_iovlen=2, msg_controllen=0, msg_flags=0}, 0) = -1 EAGAIN (Resource temporarily unavailable)
13937 writev(12<TCP:[127.0.0.1:18474->127.0.0.1:34464]>, [{iov_base="\322\224\337t\350\27~G\317\17\31\305\340U\237x?\364\f\242|\373\314\335\10z\260\24<\270\237r"..., iov_len=32768}, {iov_base="\363t\344B\34n\37o\324\362\370\231\323\204\371\0351\36\233\301\361\274\325`$FGVH\23\364\361"..., iov_len=32768}], 2) = 30720
13937 writev(12<TCP:[127.0.0.1:18474->127.0.0.1:34464]>, [{iov_base="*\36-\351/\315\21UtG\22X'h\f\243n\24\210d\317\356\0241= \312\264\331pxg"..., iov_len=2048}, {iov_base="\363t\344B\34n\37o\324\362\370\231\323\204\371\0351\36\233\301\361\274\325`$FGVH\23\364\361"..., iov_len=32768}], 2) = -1 EAGAIN (Resource temporarily unavailable)
13937 writev(12<TCP:[127.0.0.1:18474->127.0.0.1:34464]>, [{iov_base="*\36-\351/\315\21UtG\22X'h\f\243n\24\210d\317\356\0241= \312\264\331pxg"..., iov_len=2048}, {iov_base="\363t\344B\34n\37o\324\362\370\231\323\204\371\0351\36\233\301\361\274\325`$FGVH\23\364\361"..., iov_len=32768}], 2) = 34816)strace";

TEST(StraceImportTest, ShortWriteIsCutAtTheReturnValueAndEagainSentNothing) {
  const StraceImport imp = Import(kShortWrites);
  ExpectEveryLineCounted(imp);
  ASSERT_EQ(imp.connections.size(), 2u);
  ASSERT_EQ(imp.connections[0].batches(), 1u);
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(100000, 719467));
  ASSERT_EQ(imp.connections[1].batches(), 2u);
  EXPECT_THAT(Sizes(imp, 1, 0), ElementsAre(30720));        // Ends in iovec 0.
  EXPECT_THAT(Sizes(imp, 1, 1), ElementsAre(2048, 32768));  // The retry.
  EXPECT_EQ(imp.short_writes, 2u);
  EXPECT_EQ(imp.connections[1].short_writes(), 1u);
  // Each byte once: what the kernel took.
  EXPECT_EQ(imp.bytes, 819467u + 30720 + 34816);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kFailed, "-1 EAGAIN"), 2u);
}

TEST(StraceImportTest, RequestedSizesKeepTheIovecsOfAShortWrite) {
  StraceImportOptions options;
  options.sizes = ImportSizes::kRequested;
  const StraceImport imp = Import(kShortWrites, options);
  ExpectEveryLineCounted(imp);
  ASSERT_EQ(imp.connections.size(), 2u);
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(100000, 3000000));
  EXPECT_THAT(Sizes(imp, 1, 0), ElementsAre(32768, 32768));
  EXPECT_THAT(Sizes(imp, 1, 1), ElementsAre(2048, 32768));
  EXPECT_EQ(imp.short_writes, 2u);
  // A failed call makes no batch either way.
  EXPECT_EQ(SkippedFor(imp, SkipKind::kFailed, "-1 EAGAIN"), 2u);
}

// nginx, two workers: each call's start and end interleaved with the
// other's.
constexpr absl::string_view kUnfinished =
    R"strace(14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34860]>, [{iov_base="HTTP/1.1 200 OK\r\nServer: nginx/1"..., iov_len=260}, {iov_base="\262\355x\214s\261k\252\6\322\234!\266 j`\336\270\370\310\216\364\3409\305M%O\273\204=\33"..., iov_len=32768}], 2 <unfinished ...>
14186 writev(11<TCP:[127.0.0.1:18473->127.0.0.1:34852]>, [{iov_base="\366B\v-\242\r\356O\301Y7=\364>\224@23\4\226\341\334\237\3003.dA\264\350n\271"..., iov_len=32768}], 1 <unfinished ...>
14187 <... writev resumed>)             = 33028
14186 <... writev resumed>)             = 32768
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34860]>, [{iov_base="\312\233\267\377\2\212\322\366\305\320C^\312\t\331\26R\247\263\34\232\344\302\252~\320k\220\232\222\325\225"..., iov_len=32768}], 1) = 32768)strace";

TEST(StraceImportTest, UnfinishedAndResumedLinesJoinByPid) {
  const StraceImport imp = Import(kUnfinished);
  ExpectEveryLineCounted(imp);
  EXPECT_THAT(imp.skipped, IsEmpty());
  EXPECT_EQ(imp.lines_used, 5u);
  ASSERT_EQ(imp.connections.size(), 2u);
  EXPECT_EQ(imp.connections[0].name(),
            "TCP:[127.0.0.1:18473->127.0.0.1:34860]");
  ASSERT_EQ(imp.connections[0].batches(), 2u);
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(260, 32768));
  EXPECT_EQ(imp.connections[0].line(0), 1u);  // Where the call started.
  EXPECT_THAT(Sizes(imp, 0, 1), ElementsAre(32768));
  EXPECT_EQ(imp.connections[0].line(1), 5u);
  ASSERT_EQ(imp.connections[1].batches(), 1u);
  EXPECT_THAT(Sizes(imp, 1, 0), ElementsAre(32768));
  EXPECT_EQ(imp.connections[1].pid(), 14186u);
  // In capture order: by the line each call started on.
  EXPECT_THAT(imp.InCaptureOrder(),
              ElementsAre(std::make_pair(size_t{0}, size_t{0}),
                          std::make_pair(size_t{1}, size_t{0}),
                          std::make_pair(size_t{0}, size_t{1})));
}

TEST(StraceImportTest, UnpairedUnfinishedOrResumedLinesAreCounted) {
  // A resumed line whose start came before the capture, a call never
  // resumed (the capture ended), and one a second unfinished call of the
  // same pid shows will never be.
  const StraceImport imp = Import(
      R"strace(14186 <... writev resumed>)             = 32768
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34860]>, [{iov_base="a", iov_len=1}], 1 <unfinished ...>
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34860]>, [{iov_base="b", iov_len=1}], 1 <unfinished ...>
14186 write(4</tmp/h13nginx/logs/access.log>, "127.0.0.1 - - [01/Dec/2026:14:40"..., 96 <unfinished ...>
14186 <... writev resumed>)             = 96)strace");
  ExpectEveryLineCounted(imp);
  EXPECT_EQ(imp.batches, 0u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable,
                       "resumed call whose start is not in the capture"),
            2u);  // The first, and the last (write started, writev resumed).
  EXPECT_EQ(
      SkippedFor(imp, SkipKind::kUnusable, "unfinished call never resumed"),
      3u);
}

// python3 under strace -s 4: strace printed 4 of the 6 iovecs.
constexpr absl::string_view kAbbreviated =
    R"strace(22820 sendmsg(4<TCP:[127.0.0.1:53634->127.0.0.1:59923]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="q", iov_len=1}, {iov_base="qq", iov_len=2}, {iov_base="qqq", iov_len=3}, {iov_base="qqqq", iov_len=4}, ...], msg_iovlen=6, msg_controllen=0, msg_flags=0}, 0) = 21
22820 writev(4<TCP:[127.0.0.1:53634->127.0.0.1:59923]>, [{iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, ...], 6) = 18
22820 writev(4<TCP:[127.0.0.1:53634->127.0.0.1:59923]>, [{iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, ...], 6) = 7)strace";
// (The last line is edited: a short write of 7 bytes, all in printed ones.)

TEST(StraceImportTest, AbbreviatedArrayIsUsableOnlyUpToThePrintedIovecs) {
  const StraceImport imp = Import(kAbbreviated);
  ExpectEveryLineCounted(imp);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "abbreviated"), 2u);
  ASSERT_EQ(imp.connections.size(), 1u);
  ASSERT_EQ(imp.connections[0].batches(), 1u);
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(3, 3, 1));
  EXPECT_EQ(imp.short_writes, 1u);
  // As requested, the sizes of the unprinted iovecs would be needed.
  StraceImportOptions options;
  options.sizes = ImportSizes::kRequested;
  const StraceImport requested = Import(kAbbreviated, options);
  ExpectEveryLineCounted(requested);
  EXPECT_EQ(requested.batches, 0u);
  EXPECT_EQ(SkippedFor(requested, SkipKind::kUnusable, "-s N"), 3u);
}

TEST(StraceImportTest, PrefixesOfPidsTimestampsAndDurationsAreRead) {
  // strace -f -tt -T -y, to stderr ("[pid N]" for a thread); -f -ttt -o;
  // no -f; -r. The last two are edited from the first.
  const StraceImport imp = Import(
      R"strace(14:57:21.494607 sendto(4<socket:[1401676]>, "abc", 3, 0, NULL, 0) = 3 <0.000007>
[pid 22829] 14:57:21.494999 write(4<socket:[1401676]>, "thread", 6) = 6 <0.000014>
22833 1796137041.564432 sendto(4<socket:[1401676]>, "abc", 3, 0, NULL, 0) = 3
sendto(4<socket:[1401676]>, "ab", 2, 0, NULL, 0) = 2
     0.000123 sendto(4<socket:[1401676]>, "a", 1, 0, NULL, 0) = 1)strace");
  ExpectEveryLineCounted(imp);
  EXPECT_THAT(imp.skipped, IsEmpty());
  // One socket, whichever thread wrote to it.
  ASSERT_EQ(imp.connections.size(), 1u);
  EXPECT_EQ(imp.connections[0].name(), "socket:[1401676]");
  EXPECT_EQ(imp.connections[0].pid(), 0u);
  ASSERT_EQ(imp.connections[0].batches(), 5u);
  EXPECT_THAT(Sizes(imp, 0, 1), ElementsAre(6));
  EXPECT_THAT(Sizes(imp, 0, 4), ElementsAre(1));
}

// strace -f -t -r and -ttt -r print the relative timestamp after the
// absolute one, in parentheses and padded with spaces (strace 6.1; the
// resumed line is edited from the unfinished one).
TEST(StraceImportTest, RelativeTimestampAfterAnAbsoluteOneIsAPrefix) {
  const StraceImport imp = Import(
      R"strace(26801 15:19:31 (+     0.000000) writev(5<TCP:[127.0.0.1:43550->127.0.0.1:52577]>, [{iov_base="pppppppppppppppppppppppppppppppp"..., iov_len=3000000}, {iov_base="qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"..., iov_len=100}], 2) = 3000100
26801 15:19:31 (+     0.007579) sendto(5<TCP:[127.0.0.1:43550->127.0.0.1:52577]>, "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"..., 5000000, 0, NULL, 0) = 1157447
26225 1796138351.606885 (+     0.000884) sendto(5<TCP:[127.0.0.1:59798->127.0.0.1:50639]>, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"..., 777, 0, NULL, 0 <unfinished ...>
26225 1796138351.607680 (+     0.000789) <... sendto resumed>) = 777)strace");
  ExpectEveryLineCounted(imp);
  EXPECT_THAT(imp.skipped, IsEmpty());
  ASSERT_EQ(imp.connections.size(), 2u);
  ASSERT_EQ(imp.connections[0].batches(), 2u);
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(3000000, 100));
  EXPECT_THAT(Sizes(imp, 0, 1), ElementsAre(1157447));
  EXPECT_EQ(imp.connections[0].pid(), 26801u);
  ASSERT_EQ(imp.connections[1].batches(), 1u);
  EXPECT_THAT(Sizes(imp, 1, 0), ElementsAre(777));
  EXPECT_EQ(imp.lines_used, 4u);
}

TEST(StraceImportTest, WritesToFilesPipesAndOtherSocketsAreCountedApart) {
  // Recorded: -yy of a UDP socket, a UNIX socketpair, /dev/null, a pipe,
  // nginx's access log; an eventfd (edited).
  const StraceImport imp = Import(
      R"strace(8725  sendto(8<UDP:[1379017]>, "dgram", 5, 0, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = 5
8725  sendto(3<UNIX-STREAM:[1379006->1379007]>, "unix", 4, 0, NULL, 0) = 4
8394  write(2</dev/null<char 1:3>>, "/root/.pyenv/libexec/pyenv: line"..., 237) = 237
8395  write(1<pipe:[1379376]>, "/usr/bin/readlink\n", 18) = 18
14187 write(4</tmp/h13nginx/logs/access.log>, "127.0.0.1 - - [01/Dec/2026:14:40"..., 94) = 94
8395  write(5<anon_inode:[eventfd]>, "\1\0\0\0\0\0\0\0", 8) = 8)strace");
  ExpectEveryLineCounted(imp);
  EXPECT_EQ(imp.batches, 0u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "UDP socket"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "UNIX-STREAM socket"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "file"), 2u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "pipe"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "anon_inode"), 1u);
}

// strace -f -ttt without -y: bare descriptor numbers.
constexpr absl::string_view kUnannotated =
    R"strace(22833 1796137041.564104 sendmsg(4, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="xxxxxxxxxx", iov_len=10}, {iov_base="yyyyyyyyyyyyyyyyyyyy", iov_len=20}, {iov_base="zzz", iov_len=3}], msg_iovlen=3, msg_controllen=0, msg_flags=0}, 0) = 33
22833 1796137041.564389 writev(4, [{iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}, {iov_base="www", iov_len=3}], 6) = 18
22835 1796137041.565039 write(4, "thread", 6) = 6)strace";

TEST(StraceImportTest, WithoutAnnotationsOnlySendCallsAreSurelySockets) {
  const StraceImport imp = Import(kUnannotated);
  ExpectEveryLineCounted(imp);
  ASSERT_EQ(imp.connections.size(), 1u);
  EXPECT_EQ(imp.connections[0].name(), "pid 22833 fd 4");
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(10, 20, 3));
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "did not annotate"), 2u);

  StraceImportOptions options;
  options.assume_sockets = true;
  const StraceImport assumed = Import(kUnannotated, options);
  ExpectEveryLineCounted(assumed);
  EXPECT_THAT(assumed.skipped, IsEmpty());
  // Without addresses a connection is a (pid, fd) pair: the thread's write
  // is a connection of its own.
  ASSERT_EQ(assumed.connections.size(), 2u);
  EXPECT_EQ(assumed.connections[0].batches(), 2u);
  EXPECT_EQ(assumed.connections[1].name(), "pid 22835 fd 4");
}

TEST(StraceImportTest, AReusedDescriptorIsANewConnectionAndASharedOneIsOne) {
  // nginx reused fd 7 for a second connection; edited: the same connection
  // written by two pids.
  const StraceImport imp = Import(
      R"strace(14187 write(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, "x", 1) = 1
14187 write(7<TCP:[127.0.0.1:18473->127.0.0.1:34860]>, "xy", 2) = 2
14186 write(9<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, "xyz", 3) = 3)strace");
  ExpectEveryLineCounted(imp);
  ASSERT_EQ(imp.connections.size(), 2u);
  EXPECT_EQ(imp.connections[0].batches(), 2u);
  EXPECT_THAT(Sizes(imp, 0, 1), ElementsAre(3));
  EXPECT_EQ(imp.connections[1].batches(), 1u);
}

TEST(StraceImportTest, IovBaseStringsMayHoldAnything) {
  // Quotes, braces, commas, "iov_len=" and parentheses inside the data;
  // IPv6 addresses nest brackets; a path nests "<char ...>".
  const StraceImport imp = Import(
      R"strace(1 writev(7<TCPv6:[[::1]:80->[::1]:5000]>, [{iov_base="a\"}, {iov_base=\"b\", iov_len=99}], 1) = 9", iov_len=7}, {iov_base="(]", iov_len=2}], 2) = 9
14186 writev(11<TCP:[127.0.0.1:18473->127.0.0.1:34852]>, [{iov_base="\23\7\371\262@TB\224^_\343\252~*3\350;\313\226]e\36\211\"q\323\37\223,\326\366\346"..., iov_len=32768}], 1) = 32768)strace");
  ExpectEveryLineCounted(imp);
  EXPECT_THAT(imp.skipped, IsEmpty());
  ASSERT_EQ(imp.connections.size(), 2u);
  EXPECT_EQ(imp.connections[0].name(), "TCPv6:[[::1]:80->[::1]:5000]");
  EXPECT_THAT(Sizes(imp, 0, 0), ElementsAre(7, 2));
  EXPECT_THAT(Sizes(imp, 1, 0), ElementsAre(32768));
}

TEST(StraceImportTest, EveryOtherLineIsCountedUnderItsReason) {
  const StraceImport imp = Import(
      R"strace(8725  +++ exited with 0 +++
8725  --- SIGPIPE {si_signo=SIGPIPE, si_code=SI_USER, si_pid=8725, si_uid=0} ---
strace: Process 14186 attached

hello, world
14187 read(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, "GET / HTTP/1.1\r\n", 1024) = 16
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="HTTP/1.1 200 OK\r\nServer: nginx/1"..., iov_len=254}, {iov_base="7\212\205\217\331\271q\f#r
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="a", iov_len=1}], 1) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="a", iov_len=1}], 1) = 5
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="a", iov_len=1}], 2) = 1
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, 0x7ffc3c1d2e30, 2) = 3
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="a", iov_len=1}], 1) = 0
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="a", iov_len=1}], 1) = -1 EPIPE (Broken pipe)
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="a", iov_len=x}], 1) = 1
)strace");
  ExpectEveryLineCounted(imp);
  EXPECT_EQ(imp.batches, 0u);
  EXPECT_EQ(imp.lines, 15u);  // The text ends in '\n': a last, blank line.
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNote, "process exit"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNote, "signal"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNote, "strace message"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNote, "blank line"), 2u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "not strace output"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "system call not imported"),
            1u);
  // Cut mid-line, and an iovec length that is no number.
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "malformed"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "not decoded"), 2u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "without a result"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "above the bytes asked"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kUnusable, "count does not match"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kFailed, "sent 0 bytes"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kFailed, "-1 EPIPE"), 1u);
  // Reported by kind, then by first line.
  for (size_t k = 1; k < imp.skipped.size(); ++k) {
    const SkippedLines& a = imp.skipped[k - 1];
    const SkippedLines& b = imp.skipped[k];
    EXPECT_TRUE(a.kind < b.kind ||
                (a.kind == b.kind && a.first_line < b.first_line))
        << a.reason << " / " << b.reason;
  }
}

TEST(StraceImportTest, ReasonsFromTheCaptureStayPrintableAndFew) {
  // A made-up protocol and errno with bytes a report line cannot hold.
  const StraceImport imp = Import(
      "1 write(3<BAD\x1bPROTO:[1]>, \"x\", 1) = 1\n"
      "1 write(3<TCP:[1]>, \"x\", 1) = -1 E\x01\x02\n"
      "1 write(3<\x7f\x80:[1]>, \"x\", 1) = 1\n");
  ExpectEveryLineCounted(imp);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "non-TCP socket"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kFailed, "(unknown error)"), 1u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "other descriptor"), 1u);
}

TEST(StraceImportTest, RandomLinesNeverBreakTheAccounting) {
  // Recorded lines cut, spliced and with bytes replaced, fixed seed.
  const std::vector<std::string> seeds = {
      std::string(kNginxWritev), std::string(kEveryForm),
      std::string(kShortWrites), std::string(kUnfinished),
      std::string(kAbbreviated), std::string(kUnannotated)};
  std::mt19937_64 rng(20261201);
  StraceImporter importer;
  for (int i = 0; i < 20000; ++i) {
    std::string line = seeds[rng() % seeds.size()];
    std::vector<std::string> lines = absl::StrSplit(line, '\n');
    line = lines[rng() % lines.size()];
    switch (rng() % 4) {
      case 0:
        line = line.substr(0, rng() % (line.size() + 1));
        break;
      case 1:
        if (!line.empty()) line[rng() % line.size()] = static_cast<char>(rng());
        break;
      case 2: {
        const std::string other = seeds[rng() % seeds.size()];
        line = line.substr(0, rng() % (line.size() + 1)) +
               other.substr(rng() % (other.size() + 1));
        break;
      }
      default:
        break;
    }
    importer.AddLine(line);
  }
  const StraceImport imp = std::move(importer).Finish();
  ExpectEveryLineCounted(imp);
  EXPECT_EQ(imp.lines, 20000u);
  EXPECT_GT(imp.batches, 0u);
}

// The shipped capture (tools/traces/nginx_strace.txt): nginx serving 1K to
// 1M files over keep-alive to curl, two of the connections at once, and a
// slow reader on a small send buffer (see tools/traces/capture_nginx.sh).
TEST(StraceImportTest, ShippedNginxCaptureImportsEveryResponse) {
  absl::StatusOr<std::string> text = ReadRegularFile(
      DataPath("tools/traces/nginx_strace.txt"), "capture", uint64_t{1} << 20);
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_TRUE(absl::EndsWith(*text, "\n"));
  const StraceImport imp =
      Import(absl::string_view(*text).substr(0, text->size() - 1));
  ExpectEveryLineCounted(imp);
  EXPECT_EQ(imp.lines, 173u);
  EXPECT_EQ(imp.batches, 126u);
  EXPECT_EQ(imp.connections.size(), 5u);
  EXPECT_EQ(imp.short_writes, 2u);
  // The bodies: 1K+4K+16K+64K+256K+1M, then 1M+256K+4K+1K and
  // 16K+64K+1K+256K+16K at once, 1M+64K to the slow reader, the "hello\n"
  // reply and the 404 page: the headers come on top.
  const uint64_t bodies =
      (1 + 4 + 16 + 64 + 256 + 1024) * 1024 + (1024 + 256 + 4 + 1) * 1024 +
      (16 + 64 + 1 + 256 + 16) * 1024 + (1024 + 64) * 1024 + 6;
  EXPECT_GT(imp.bytes, bodies);
  EXPECT_LT(imp.bytes, bodies + 20 * 1024);
  // Every call on the sockets made a batch, or sent nothing (EAGAIN);
  // the access log lines are the only writes elsewhere.
  EXPECT_EQ(SkippedFor(imp, SkipKind::kFailed, "-1 EAGAIN"), 7u);
  EXPECT_EQ(SkippedFor(imp, SkipKind::kNotTcp, "file"), 25u);
  EXPECT_EQ(imp.lines_used + 7 + 25, imp.lines);
  // nginx writes a response's header and its first 32K of body in one
  // writev, then 32K at a time: the sizes a trace of it must hold.
  size_t header_and_1k = 0, body_32k = 0, header_only = 0;
  for (const ImportedConnection& c : imp.connections) {
    for (size_t b = 0; b < c.batches(); ++b) {
      const absl::Span<const uint64_t> s = c.sizes(b);
      header_and_1k +=
          s.size() == 2 && s[0] > 200 && s[0] < 400 && s[1] == 1024;
      body_32k += s.size() == 1 && s[0] == 32768;
      header_only += s.size() == 1 && s[0] > 200 && s[0] < 400;
    }
  }
  EXPECT_EQ(header_and_1k, 3u);  // GET f1K.bin: three curl commands.
  EXPECT_GE(body_32k, 80u);
  EXPECT_GE(header_only, 2u);  // The HEAD requests.
}

}  // namespace
}  // namespace zcplan
