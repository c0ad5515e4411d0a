// SPDX-License-Identifier: Apache-2.0
// Traces from a running server's sends: reads strace output of `writev`,
// `sendmsg`, `sendto`, `send` and `write` and makes one batch per call, per
// connection, for `zcplan simulate` and `zcsweep --trace` (see trace.h).
//
// The capture this reads best (all of it is strace's default line format):
//   strace -f -yy -e trace=writev,sendmsg,sendto,write -e signal=none
//          -o FILE -p PID
// `-yy` is what tells a TCP socket (`7<TCP:[10.0.0.1:80->10.0.0.2:5123]>`)
// from a file or a pipe, and names each connection by its addresses, so one
// connection is one connection across the threads and processes that write
// to it, and a reused descriptor number is a new connection. Without it
// (`-y` shows `socket:[INODE]`, no flag shows a bare number) a connection is
// a (pid, fd) pair, and `write`/`writev` on a bare number are not imported
// unless `assume_sockets` says every descriptor is a socket. `-f` (a pid
// before each line) and `-o` are needed for a server with several threads or
// processes; `-t`, `-tt`, `-ttt`, `-r`, `-T`, `-i` and `-n` may be added.
// strace prints at most `-s` (default 32) elements of an iovec array; a call
// with more iovecs than that is usable only when it sent no byte past the
// printed ones, so for servers that write more than 32 iovecs at once,
// capture with `-s N`, N at least their largest iovec count.
//
// The sizes of a batch: with `ImportSizes::kSent` (the default), the iovec
// lengths cut at the call's return value, so a short write (a return below
// the bytes asked) holds what the kernel took, and every byte sent appears
// once: the rest is in the call that retried it. With `kRequested`, the
// lengths as the server asked (the iovecs as the server's queue held them;
// the unsent rest of a short write then appears again in its retry). A call
// that failed (`= -1 EAGAIN`) or sent 0 bytes makes no batch either way.
//
// Every line is accounted for: it made a batch (`lines_used`), or it is
// counted in `skipped` under a reason; nothing is dropped unseen.
//
// Pure: no system calls. Thread safety: a StraceImporter is not safe for
// concurrent use; distinct importers are independent.

#ifndef ZCPLAN_PLANNER_STRACE_IMPORT_H_
#define ZCPLAN_PLANNER_STRACE_IMPORT_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace zcplan {

enum class ImportSizes {
  kSent,       // The iovecs cut at the return value: what the kernel took.
  kRequested,  // The iovecs as given.
};

struct StraceImportOptions {
  ImportSizes sizes = ImportSizes::kSent;
  // Import `write` and `writev` on descriptors strace did not annotate (a
  // capture without -y), taking them for sockets; they may be files. Send
  // calls (`sendmsg`, `sendto`, `send`) are taken for sockets anyway: on
  // anything else they fail.
  bool assume_sockets = false;
};

// Why lines made no batch, in the order they are reported.
enum class SkipKind {
  kFailed,    // A send that sent nothing: "-1 EAGAIN", "sent 0 bytes".
  kNotTcp,    // A write to a file, pipe or non-TCP socket: "file", "pipe",
              // "UDP socket", "UNIX-STREAM socket".
  kUnusable,  // A line the importer cannot use: not strace output, another
              // system call, an abbreviated iovec array, a call that never
              // finished...
  kNote,      // strace's own lines: a process exit, a signal, a blank line.
};

// "sent nothing", "not a TCP socket", "unusable", "strace note".
absl::string_view SkipKindName(SkipKind kind);

struct SkippedLines {
  SkipKind kind = SkipKind::kUnusable;
  std::string reason;       // Printable ASCII, one line.
  uint64_t lines = 0;       // Lines counted (a call split by strace into an
                            // unfinished and a resumed line counts 2).
  uint64_t first_line = 0;  // 1-based line of the first of them.
};

// One connection's batches, one per call in capture order.
class ImportedConnection {
 public:
  // The descriptor as strace annotated it ("TCP:[127.0.0.1:80->...]",
  // "socket:[1234]"), or "pid P fd F" without an annotation (pid 0 without
  // a pid prefix). Printable ASCII (other bytes as \xNN).
  const std::string& name() const { return name_; }
  uint64_t pid() const { return pid_; }  // Of its first call; 0 if none.
  int fd() const { return fd_; }         // Of its first call.

  size_t batches() const { return lines_.size(); }
  // The sizes of batch `i` (< batches()); valid while this object lives.
  absl::Span<const uint64_t> sizes(size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return absl::MakeConstSpan(sizes_).subspan(begin, ends_[i] - begin);
  }
  // The capture line where batch `i`'s call started (1-based).
  uint64_t line(size_t i) const { return lines_[i]; }

  uint64_t bytes() const { return bytes_; }  // Summed over the batches.
  uint64_t iovecs() const { return sizes_.size(); }
  // Calls that sent less than they asked (their rest went in a later call).
  uint64_t short_writes() const { return short_writes_; }

 private:
  friend class StraceImporter;

  std::string name_;
  uint64_t pid_ = 0;
  int fd_ = 0;
  // Batches stored flat: batch i is sizes_[ends_[i-1], ends_[i]).
  std::vector<uint64_t> sizes_;
  std::vector<size_t> ends_;
  std::vector<uint64_t> lines_;
  uint64_t bytes_ = 0;
  uint64_t short_writes_ = 0;
};

struct StraceImport {
  uint64_t lines = 0;       // Lines read.
  uint64_t lines_used = 0;  // Lines that made a batch.
  uint64_t batches = 0;
  uint64_t iovecs = 0;
  uint64_t bytes = 0;
  uint64_t short_writes = 0;
  // In the order of their first call.
  std::vector<ImportedConnection> connections;
  // By kind (in SkipKind order), then by first line. Invariant:
  // lines == lines_used + the sum of skipped[k].lines.
  std::vector<SkippedLines> skipped;

  // Every batch as (connection index, batch index), in the order the calls
  // started in the capture.
  std::vector<std::pair<size_t, size_t>> InCaptureOrder() const;
};

// Reads a capture one line at a time, holding the batches so far, the lines
// of calls strace left unfinished, and nothing else of the text.
class StraceImporter {
 public:
  explicit StraceImporter(StraceImportOptions options = StraceImportOptions())
      : options_(options) {}

  // The next line of the capture, without its '\n'. Never fails: a line it
  // cannot use is counted under its reason.
  void AddLine(absl::string_view line);

  // The next line, which the caller could not read whole (longer than its
  // limit): counted as unusable under `reason`.
  void AddUnreadLine(absl::string_view reason);

  // After the last line: counts calls left unfinished, and returns the
  // result. The importer is spent.
  StraceImport Finish() &&;

 private:
  struct Pending {  // A call strace printed as "<unfinished ...>".
    std::string text;
    uint64_t line = 0;
  };

  void Skip(SkipKind kind, absl::string_view reason, uint64_t first_line,
            uint64_t lines);
  void AddCall(uint64_t pid, absl::string_view call, uint64_t first_line,
               uint64_t lines);

  StraceImportOptions options_;
  StraceImport result_;
  absl::flat_hash_map<std::string, size_t> connection_index_;
  std::map<std::pair<SkipKind, std::string>, size_t> skip_index_;
  absl::flat_hash_map<uint64_t, Pending> pending_;  // By pid.
};

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_STRACE_IMPORT_H_
