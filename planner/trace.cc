#include "planner/trace.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace zcplan {

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size '", text, "': ", why));
  };
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(text[digits])) ++digits;
  if (digits == 0) {
    return bad(text.empty() || text[0] != '-'
                   ? "expected a number of bytes, e.g. 4096, 4K, 1M"
                   : "sizes cannot be negative");
  }
  int shift = 0;
  const absl::string_view suffix = text.substr(digits);
  if (suffix.size() > 1) return bad("unknown suffix (use K, M or G)");
  if (suffix.size() == 1) {
    switch (absl::ascii_toupper(suffix[0])) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      default:
        return bad("unknown suffix (use K, M or G)");
    }
  }
  uint64_t value = 0;
  for (size_t k = 0; k < digits; ++k) {
    if (__builtin_mul_overflow(value, 10, &value) ||
        __builtin_add_overflow(value, text[k] - '0', &value)) {
      value = UINT64_MAX;
      break;
    }
  }
  if (value > (kMaxTraceSize >> shift)) {
    return bad(absl::StrCat("larger than the limit of ", kMaxTraceSize,
                            " bytes"));
  }
  return value << shift;
}

absl::StatusOr<std::vector<uint64_t>> ParseSizeList(absl::string_view text) {
  std::vector<uint64_t> sizes;
  for (absl::string_view field :
       absl::StrSplit(text, absl::ByAnyChar(", \t\r"), absl::SkipEmpty())) {
    absl::StatusOr<uint64_t> size = ParseSize(field);
    if (!size.ok()) return size.status();
    sizes.push_back(*size);
  }
  if (sizes.empty()) return absl::InvalidArgumentError("no sizes given");
  return sizes;
}

absl::StatusOr<std::vector<TraceBatch>> ParseTrace(absl::string_view text) {
  std::vector<TraceBatch> batches;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = line.substr(0, line.find('#'));
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::StatusOr<std::vector<uint64_t>> sizes = ParseSizeList(line);
    if (!sizes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", sizes.status().message()));
    }
    batches.push_back(TraceBatch{line_number, *std::move(sizes)});
  }
  if (batches.empty()) {
    return absl::InvalidArgumentError("the trace holds no batch");
  }
  return batches;
}

}  // namespace zcplan
