// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/send_flags.h"

#include "absl/flags/flag.h"
#include "zcplan/planner/flag_types.h"

ABSL_FLAG(zcplan::Threshold, threshold,
          zcplan::Threshold{zcplan::PlanOptions().zc_threshold},
          "zero-copy threshold");
ABSL_FLAG(zcplan::CopyOp, copy_op, zcplan::PlanOptions().copy_op,
          "the op for groups of small buffers");
ABSL_FLAG(zcplan::ByteSize, gap,
          zcplan::ByteSize{zcplan::PlanOptions().zc_gap_bytes},
          "the planner's gap knob");
ABSL_FLAG(zcplan::OnOff, adaptive, zcplan::OnOff{true}, "adaptive zero-copy");

namespace zcplan {

void ReadSendFlags(PlanOptions* plan, bool* adaptive) {
  plan->zc_threshold = absl::GetFlag(FLAGS_threshold).bytes;
  plan->copy_op = absl::GetFlag(FLAGS_copy_op);
  plan->zc_gap_bytes = absl::GetFlag(FLAGS_gap).bytes;
  *adaptive = absl::GetFlag(FLAGS_adaptive).on;
}

}  // namespace zcplan
