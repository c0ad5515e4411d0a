// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/describe.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "zcplan/planner/trace.h"

namespace zcplan {
namespace {

// Two equal pieces read better spelled out than as "2x".
constexpr int kMinRun = 3;

void AppendRun(uint64_t piece, int count, bool* first, std::string* out) {
  const std::string size = FormatSize(piece);
  if (count >= kMinRun) {
    absl::StrAppend(out, *first ? "" : ",", count, "x", size);
    *first = false;
    return;
  }
  for (int k = 0; k < count; ++k) {
    absl::StrAppend(out, *first ? "" : ",", size);
    *first = false;
  }
}

}  // namespace

std::string DescribeOp(absl::Span<const struct iovec> queue, const Op& op) {
  std::string out = absl::StrCat(OpKindName(op.kind), "[");
  bool first = true;
  uint64_t run_piece = 0;
  int run_count = 0;
  ForEachPiece(queue, op, [&](uint32_t, uint64_t, uint64_t length) {
    if (run_count > 0 && length == run_piece) {
      ++run_count;
      return;
    }
    AppendRun(run_piece, run_count, &first, &out);
    run_piece = length;
    run_count = 1;
  });
  AppendRun(run_piece, run_count, &first, &out);
  out += "]";
  return out;
}

std::string DescribeChain(absl::Span<const struct iovec> queue,
                          const Plan& plan) {
  std::string out;
  for (const Op& op : plan.ops()) {
    if (!out.empty()) out += " -> ";
    out += DescribeOp(queue, op);
  }
  return out;
}

}  // namespace zcplan
