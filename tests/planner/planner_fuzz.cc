// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the planner's invariants on arbitrary input.
// Built as a real fuzzer with --config=fuzz; replayed on random input in
// plain `bazel test` (planner_fuzz_test).

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "zcplan/planner/planner.h"
#include "zcplan/tests/planner/plan_invariants.h"
#include "zcplan/tests/planner/random_queue.h"

namespace {

class InputSource : public zcplan::testing::ByteSource {
 public:
  InputSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t Next(uint64_t bound) override {
    uint64_t v = 0;
    for (int k = 0; k < 4 && pos_ < size_; ++k) v = (v << 8) | data_[pos_++];
    return bound == 0 ? 0 : v % bound;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  InputSource src(data, size);
  zcplan::testing::Case c = zcplan::testing::DrawCase(src);
  // Raw lengths too, so validation paths (huge lengths, null bases) are hit.
  if (!c.queue.empty() && src.Next(8) == 0) {
    c.queue[src.Next(c.queue.size())].iov_len = src.Next(UINT64_MAX);
  }
  if (!c.queue.empty() && src.Next(16) == 0) {
    c.queue[src.Next(c.queue.size())].iov_base = nullptr;
  }
  zcplan::Plan plan;
  absl::Span<const struct iovec> rest = c.queue;
  uint64_t offset = c.offset;
  for (int chain = 0; chain < 50; ++chain) {
    if (!zcplan::PlanChain(rest, offset, c.options, &plan).ok()) return 0;
    const absl::Status s =
        zcplan::testing::CheckPlan(rest, offset, c.options, plan);
    if (!s.ok()) {
      std::fprintf(stderr, "invariant broken: %s\n", s.ToString().c_str());
      std::abort();
    }
    if (plan.complete()) return 0;
    rest = rest.subspan(plan.end_iov());
    offset = plan.end_offset();
  }
  return 0;
}
