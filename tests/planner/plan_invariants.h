// SPDX-License-Identifier: Apache-2.0
// Test-only: checks a planned chain against the planner's contract.

#ifndef ZCPLAN_TESTS_PLANNER_PLAN_INVARIANTS_H_
#define ZCPLAN_TESTS_PLANNER_PLAN_INVARIANTS_H_

#include <sys/uio.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "zcplan/planner/planner.h"

namespace zcplan::testing {

// Returns OK when `plan`, produced by PlanChain(queue, offset, options), keeps
// every rule of the contract, else an error naming the first broken rule:
// - the ops cover the queue's bytes from (0, offset) contiguously and in
//   order, each byte once, stopping only at the chain limit;
// - each op is within the limits, starts and ends on a non-empty piece;
// - op kinds follow the threshold (and the gap knob) and the group size;
// - adjacent ops of one class were split only because of a limit;
// - every op but the last is linked; end position and totals are right.
absl::Status CheckPlan(absl::Span<const struct iovec> queue, uint64_t offset,
                       const PlanOptions& options, const Plan& plan);

}  // namespace zcplan::testing

#endif  // ZCPLAN_TESTS_PLANNER_PLAN_INVARIANTS_H_
