// SPDX-License-Identifier: Apache-2.0
// The consumer's own planner: a header with the same path as zcplan's
// planner/planner.h, which zcplan's headers must never pick up (they include
// "zcplan/planner/planner.h").

#ifndef CONSUMER_PLANNER_PLANNER_H_
#define CONSUMER_PLANNER_PLANNER_H_

namespace consumer {

// Something of the consumer's, to show which header was included.
inline constexpr int kConsumerPlanner = 42;

}  // namespace consumer

#endif  // CONSUMER_PLANNER_PLANNER_H_
