// Sizes and traces: the text formats the zcplan tools read.
//
// A size is a decimal byte count with an optional binary suffix, K (KiB),
// M (MiB) or G (GiB), in either case: "4096", "4K", "1m". A size list
// separates sizes with commas and/or white space. A trace is one batch (the
// queue of one connection at a moment) per line, as a size list; `#` starts a
// comment running to the end of the line, and blank lines are skipped.
//
// Thread safety: all functions are reentrant.

#ifndef ZCPLAN_PLANNER_TRACE_H_
#define ZCPLAN_PLANNER_TRACE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zcplan {

// The largest size accepted: SSIZE_MAX, the most one system call moves.
inline constexpr uint64_t kMaxTraceSize = INT64_MAX;

// Parses one size. Returns InvalidArgument quoting the text on a missing
// number, an unknown suffix, a sign, or a value above kMaxTraceSize.
[[nodiscard]] absl::StatusOr<uint64_t> ParseSize(absl::string_view text);

// Parses a size list ("4K,4K 16K"). An empty list is an error.
[[nodiscard]] absl::StatusOr<std::vector<uint64_t>> ParseSizeList(
    absl::string_view text);

struct TraceBatch {
  int line = 0;  // 1-based line in the trace text.
  std::vector<uint64_t> sizes;
};

// Parses a whole trace. Errors name the line ("line 7: ...").
// A trace with no batch at all is an error.
[[nodiscard]] absl::StatusOr<std::vector<TraceBatch>> ParseTrace(
    absl::string_view text);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_TRACE_H_
