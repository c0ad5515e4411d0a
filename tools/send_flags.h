// SPDX-License-Identifier: Apache-2.0
// The flags of the tools that send through the executor (zcsend, zchttpd):
// the planner's --threshold, --copy-op and --gap, and --adaptive, defined
// once so that both tools spell, default and check them alike.
//
// Read them inside `ParseFlags`'s `read` (tools/flags.h) with
// `ReadSendFlags`, and list "threshold", "copy-op", "gap" and "adaptive"
// among the tool's flags. A binary links this library at most once, as any
// tool's flags (see tools/flags.h).

#ifndef ZCPLAN_TOOLS_SEND_FLAGS_H_
#define ZCPLAN_TOOLS_SEND_FLAGS_H_

#include "zcplan/planner/planner.h"

namespace zcplan {

// Sets `plan`'s zc_threshold, copy_op and zc_gap_bytes, and `*adaptive`,
// from the flags (call inside `read`); `plan`'s other fields are left.
void ReadSendFlags(PlanOptions* plan, bool* adaptive);

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_SEND_FLAGS_H_
