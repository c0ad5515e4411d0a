// SPDX-License-Identifier: Apache-2.0
// Plans the batch [4K, 4K, 16K, 32K, 2K] with a 16 KiB zero-copy threshold
// and prints the chain, one op per line: "writev 8192", "sendmsg_zc 49152",
// "send 2048".

#include <sys/uio.h>

#include <iostream>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "zcplan/planner/planner.h"

int main() {
  // The planner looks only at the lengths; the bases just need to be
  // non-null.
  static char buffer[32 * 1024];
  std::vector<struct iovec> queue;
  for (size_t size : {4096, 4096, 16384, 32768, 2048}) {
    queue.push_back({buffer, size});
  }

  zcplan::PlanOptions options;
  options.zc_threshold = 16 * 1024;
  zcplan::Plan plan;
  absl::Status status = zcplan::PlanChain(absl::MakeConstSpan(queue),
                                          /*offset=*/0, options, &plan);
  if (!status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  for (const zcplan::Op& op : plan.ops()) {
    std::cout << zcplan::OpKindName(op.kind) << " " << op.bytes << "\n";
  }
  return 0;
}
