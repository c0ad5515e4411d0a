// SPDX-License-Identifier: Apache-2.0
// Counts heap allocations: linking this library replaces the global
// operator new/delete with malloc/free wrappers that count every
// operator new. For tests and benchmarks that check "no allocation".
//
// Thread safety: the count is atomic; reading it is safe from any thread.

#ifndef ZCPLAN_TESTS_UTIL_ALLOC_COUNTER_H_
#define ZCPLAN_TESTS_UTIL_ALLOC_COUNTER_H_

#include <cstdint>

namespace zcplan::testing {

// Calls of the global operator new (any form) since the program started.
uint64_t AllocationCount();

}  // namespace zcplan::testing

#endif  // ZCPLAN_TESTS_UTIL_ALLOC_COUNTER_H_
