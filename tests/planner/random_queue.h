// SPDX-License-Identifier: Apache-2.0
// Test-only: random queues and options that stress the planner's edges.

#ifndef ZCPLAN_TESTS_PLANNER_RANDOM_QUEUE_H_
#define ZCPLAN_TESTS_PLANNER_RANDOM_QUEUE_H_

#include <sys/uio.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "zcplan/planner/planner.h"

namespace zcplan::testing {

// A source of bytes: a PRNG in the randomized test, the fuzzer's input in the
// fuzz target. Returns 0 once exhausted.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t Next(uint64_t bound) = 0;  // In [0, bound).
};

// A ByteSource from a seeded PRNG, for randomized tests.
class PrngSource : public ByteSource {
 public:
  explicit PrngSource(uint64_t seed) : rng_(seed) {}
  uint64_t Next(uint64_t bound) override {
    return bound == 0 ? 0 : rng_() % bound;
  }

 private:
  std::mt19937_64 rng_;
};

struct Case {
  std::vector<struct iovec> queue;
  uint64_t offset = 0;
  PlanOptions options;
};

// The case and a plan of it, for failure messages.
std::string Describe(const Case& c, absl::Span<const struct iovec> rest,
                     uint64_t offset, const Plan& plan);

// Draws a case: sizes around the threshold, zero lengths, tiny limits, the
// gap knob, resume offsets. Bases are made-up, non-null, never read.
Case DrawCase(ByteSource& src);

}  // namespace zcplan::testing

#endif  // ZCPLAN_TESTS_PLANNER_RANDOM_QUEUE_H_
