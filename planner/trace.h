// SPDX-License-Identifier: Apache-2.0
// Sizes and traces: the text formats the zcplan tools read.
//
// A size is a decimal byte count with an optional binary suffix, K (KiB),
// M (MiB) or G (GiB), in either case: "4096", "4K", "1m". A size list
// separates sizes with commas and/or white space. A trace is one batch (the
// queue of one connection at a moment) per line, as a size list; `#` starts a
// comment running to the end of the line, and blank lines are skipped.
//
// A threshold (a `PlanOptions::zc_threshold` value) is a size or "never"; a
// threshold list also takes "A..B" for A, 2A, 4A, ... up to B. `FormatSize`
// and `FormatThreshold` write what `ParseSize` and `ParseThreshold` read;
// `HumanSize` rounds for people.
//
// Thread safety: all functions are reentrant.

#ifndef ZCPLAN_PLANNER_TRACE_H_
#define ZCPLAN_PLANNER_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "zcplan/planner/planner.h"

namespace zcplan {

// The largest size accepted: SSIZE_MAX, the most one system call moves.
inline constexpr uint64_t kMaxTraceSize = INT64_MAX;

// Parses one size. Returns InvalidArgument quoting the text on a missing
// number, an unknown suffix, a sign, or a value above kMaxTraceSize.
[[nodiscard]] absl::StatusOr<uint64_t> ParseSize(absl::string_view text);

// Parses a size list ("4K,4K 16K"). An empty list is an error.
[[nodiscard]] absl::StatusOr<std::vector<uint64_t>> ParseSizeList(
    absl::string_view text);

// The exact inverse of ParseSize: the largest suffix that divides `bytes`
// exactly, else plain bytes. "4K" for 4096, "1M", "3G", "1500", "0".
// ParseSize(FormatSize(n)) == n for every n up to kMaxTraceSize.
std::string FormatSize(uint64_t bytes);

// Rounded for reading, not for parsing back: the largest suffix not above
// `bytes`, with one decimal unless exact. "4K", "1.5M", "300".
std::string HumanSize(uint64_t bytes);

// Parses a threshold: a size (see ParseSize) or "never", in any case, for
// PlanOptions::kNever. Returns InvalidArgument quoting the text.
[[nodiscard]] absl::StatusOr<uint64_t> ParseThreshold(absl::string_view text);

// The inverse of ParseThreshold: "never" for PlanOptions::kNever, else
// FormatSize(threshold).
std::string FormatThreshold(uint64_t threshold);

// Parses a comma-separated threshold list, in order, duplicates kept: each
// item is a threshold or "A..B" (two sizes with 0 < A <= B) for A, 2A, 4A, ...
// up to and including the last that is at most B. "1K..8K,never" is 1K, 2K,
// 4K, 8K, never. Returns InvalidArgument quoting the bad item, or for a list
// with no item.
[[nodiscard]] absl::StatusOr<std::vector<uint64_t>> ParseThresholdList(
    absl::string_view text);

struct TraceBatch {
  // 1-based line in the trace text; 0 for a batch that did not come from one
  // (e.g. sizes given on a command line).
  int line = 0;
  std::vector<uint64_t> sizes;
};

// "writev" or "sendmsg", as CopyOpName writes them. Errors: InvalidArgument
// quoting the text.
[[nodiscard]] absl::StatusOr<CopyOp> ParseCopyOp(absl::string_view text);

// A whole number of decimal digits in [min, max]. Errors: InvalidArgument
// "bad number 'TEXT': expected MIN..MAX".
[[nodiscard]] absl::StatusOr<uint32_t> ParseCount(absl::string_view text,
                                                  uint32_t min, uint32_t max);

// Parses a whole trace. Errors name the line ("line 7: ...").
// A trace with no batch at all is an error. Holds the whole trace: for one
// of unknown size, use TraceParser line by line.
[[nodiscard]] absl::StatusOr<std::vector<TraceBatch>> ParseTrace(
    absl::string_view text);

// Parses a trace one line at a time, so that a caller reading a trace of any
// size holds only one line and one batch: feed it every line in order. The
// reading stays with the caller. `ParseTrace(text)` is this over each line of
// `text`, with the same batches and errors.
class TraceParser {
 public:
  // Parses the next line of the trace (without its '\n'). For a line that
  // holds a batch, sets `*batch` (reusing its capacity) and returns true;
  // returns false for a blank or comment-only line, leaving `*batch` as it
  // was. Errors: InvalidArgument "line N: ..." for a bad size, a line of
  // separators only, or past INT_MAX lines; `*batch` is then unspecified.
  [[nodiscard]] absl::StatusOr<bool> ParseLine(absl::string_view line,
                                               TraceBatch* batch);

  // OK when some line held a batch; else InvalidArgument "the trace holds no
  // batch". Call after the last line.
  [[nodiscard]] absl::Status Finish() const;

  int lines() const { return lines_; }           // Lines fed so far.
  uint64_t batches() const { return batches_; }  // Batches among them.

 private:
  int lines_ = 0;
  uint64_t batches_ = 0;
};

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_TRACE_H_
