// SPDX-License-Identifier: Apache-2.0
// One-line text for planned ops and chains, in the notation of planner.h:
//
//   writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]
//
// Each op is its kind and the bytes each of its iovecs contributes (see
// ForEachPiece), as FormatSize writes them; three or more equal pieces in a
// row are shortened to a count, as in `writev[312,3x4K,1K]`.
//
// Thread safety: all functions are reentrant.

#ifndef ZCPLAN_PLANNER_DESCRIBE_H_
#define ZCPLAN_PLANNER_DESCRIBE_H_

#include <sys/uio.h>

#include <string>

#include "absl/types/span.h"
#include "zcplan/planner/planner.h"

namespace zcplan {

// "sendmsg_zc[16K,32K]". A zero-length iovec inside the op shows as "0".
// Requires: `op` was planned from `queue` (its indices point into it).
std::string DescribeOp(absl::Span<const struct iovec> queue, const Op& op);

// The ops of `plan` joined by " -> "; "" for an empty plan.
// Requires: `plan` was planned from `queue`. For a later chain of a queue
// (see ForEachChain), pass the queue from that chain's first iovec on.
std::string DescribeChain(absl::Span<const struct iovec> queue,
                          const Plan& plan);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_DESCRIBE_H_
