// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/pattern.h"

#include <algorithm>
#include <cstring>

namespace zcplan {
namespace {

// The period followed by its first kTail bytes again, so that any window of
// up to kTail bytes, and most longer ones, is one memcpy / memcmp.
constexpr uint64_t kTail = 256 * 1024;
constexpr uint64_t kTableBytes = kPatternPeriod + kTail;

uint64_t Word(uint64_t w) {
  uint64_t z = (w + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

const unsigned char* Table() {
  static const unsigned char* const table = [] {
    auto* t = new unsigned char[kTableBytes];
    for (uint64_t m = 0; m < kPatternPeriod; ++m) {
      t[m] = static_cast<unsigned char>(Word(m / 8) >> (8 * (m % 8)));
    }
    std::memcpy(t + kPatternPeriod, t, kTail);
    return t;
  }();
  return table;
}

}  // namespace

unsigned char Pattern::ByteAt(uint64_t offset) const {
  return Table()[(start_ + offset % kPatternPeriod) % kPatternPeriod];
}

void Pattern::Fill(uint64_t offset, absl::Span<unsigned char> data) const {
  const unsigned char* table = Table();
  uint64_t at = (start_ + offset % kPatternPeriod) % kPatternPeriod;
  for (size_t done = 0; done < data.size();) {
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>(data.size() - done, kTableBytes - at));
    std::memcpy(data.data() + done, table + at, n);
    done += n;
    at = (at + n) % kPatternPeriod;
  }
}

size_t Pattern::FindMismatch(uint64_t offset,
                             absl::Span<const unsigned char> data) const {
  const unsigned char* table = Table();
  uint64_t at = (start_ + offset % kPatternPeriod) % kPatternPeriod;
  for (size_t done = 0; done < data.size();) {
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>(data.size() - done, kTableBytes - at));
    if (std::memcmp(data.data() + done, table + at, n) != 0) {
      const auto first =
          std::mismatch(data.data() + done, data.data() + done + n, table + at);
      return done + static_cast<size_t>(first.first - (data.data() + done));
    }
    done += n;
    at = (at + n) % kPatternPeriod;
  }
  return data.size();
}

}  // namespace zcplan
