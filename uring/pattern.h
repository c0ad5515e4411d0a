// SPDX-License-Identifier: Apache-2.0
// The generated test data of zcplan's tools, tests and benchmarks: a byte
// stream that anyone can recompute from its definition, so that a receiver
// can check what a sender sent without being told.
//
// Byte N of stream 0 (zcsend's `--bytes` data, the stream
// `--check-pattern` verifies) is byte M % 8, least significant first, of the
// 64-bit word Z(M / 8), where M = N mod kPatternPeriod and Z(w) is
// splitmix64's output function of the state (w + 1) * 0x9E3779B97F4A7C15:
//   z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
//   z ^= z >> 27; z *= 0x94D049BB133111EB;
//   z ^= z >> 31.
// The stream repeats every kPatternPeriod bytes (a prime: a run of lost or
// repeated bytes goes unnoticed only when its length is a multiple of it,
// never for a power-of-two length). Stream s is
// stream 0 started s * kPatternStreamShift bytes (mod the period) in, so
// distinct streams do not line up with each other.
//
// Filling and checking copy from and compare with one precomputed period
// (about 1.3 MiB, built on first use), at memcpy / memcmp speed.
//
// Thread safety: everything here may be called from any thread.

#ifndef ZCPLAN_URING_PATTERN_H_
#define ZCPLAN_URING_PATTERN_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace zcplan {

// The length of the pattern's period in bytes (prime; just under 2^20).
inline constexpr uint64_t kPatternPeriod = 1048573;
// How far into the period stream s + 1 starts after stream s.
inline constexpr uint64_t kPatternStreamShift = 389171;

// One stream of the pattern. A small value type; copy freely.
class Pattern {
 public:
  // Stream 0: zcsend's.
  Pattern() = default;
  explicit Pattern(uint64_t stream)
      : start_((stream % kPatternPeriod) * kPatternStreamShift %
               kPatternPeriod) {}

  // Byte `offset` of the stream.
  unsigned char ByteAt(uint64_t offset) const;

  // Writes stream bytes [offset, offset + data.size()) into `data`.
  void Fill(uint64_t offset, absl::Span<unsigned char> data) const;

  // The index in `data` of the first byte that differs from stream bytes
  // [offset, offset + data.size()), or data.size() when all match.
  [[nodiscard]] size_t FindMismatch(uint64_t offset,
                                    absl::Span<const unsigned char> data) const;

 private:
  uint64_t start_ = 0;  // where the stream's byte 0 is in the period
};

}  // namespace zcplan

#endif  // ZCPLAN_URING_PATTERN_H_
