// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/trace.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace zcplan {

namespace {

// `text` in single quotes for an error message, its first 200 bytes at most,
// so that a message about a megabyte token stays short and keeps its reason.
// Callers that print messages escape control bytes themselves.
std::string Quote(absl::string_view text) {
  constexpr size_t kMaxQuotedBytes = 200;
  if (text.size() <= kMaxQuotedBytes) return absl::StrCat("'", text, "'");
  return absl::StrCat("'", text.substr(0, kMaxQuotedBytes), "...(", text.size(),
                      " bytes)'");
}

}  // namespace

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size ", Quote(text), ": ", why));
  };
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(text[digits])) ++digits;
  if (digits == 0) {
    // "-4" is a negative size; "--gap" or "-x" is no number at all.
    return bad(text.size() > 1 && text[0] == '-' && absl::ascii_isdigit(text[1])
                   ? "sizes cannot be negative"
                   : "expected a number of bytes, e.g. 4096, 4K, 1M");
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
    return bad(
        absl::StrCat("larger than the limit of ", kMaxTraceSize, " bytes"));
  }
  return value << shift;
}

namespace {

// Appends the sizes of a size list to `*sizes`; returns how many.
absl::StatusOr<size_t> AppendSizeList(absl::string_view text,
                                      std::vector<uint64_t>* sizes) {
  size_t count = 0;
  for (absl::string_view field :
       absl::StrSplit(text, absl::ByAnyChar(", \t\r"), absl::SkipEmpty())) {
    absl::StatusOr<uint64_t> size = ParseSize(field);
    if (!size.ok()) return size.status();
    sizes->push_back(*size);
    ++count;
  }
  return count;
}

}  // namespace

absl::StatusOr<std::vector<uint64_t>> ParseSizeList(absl::string_view text) {
  std::vector<uint64_t> sizes;
  absl::StatusOr<size_t> count = AppendSizeList(text, &sizes);
  if (!count.ok()) return count.status();
  if (sizes.empty()) return absl::InvalidArgumentError("no sizes given");
  return sizes;
}

namespace {

// The suffixes ParseSize takes, largest first, as shifts.
constexpr std::pair<int, char> kUnits[] = {{30, 'G'}, {20, 'M'}, {10, 'K'}};

}  // namespace

std::string FormatSize(uint64_t bytes) {
  for (const auto& [shift, unit] : kUnits) {
    const uint64_t scale = uint64_t{1} << shift;
    if (bytes >= scale && bytes % scale == 0) {
      return absl::StrCat(bytes >> shift, std::string(1, unit));
    }
  }
  return absl::StrCat(bytes);
}

std::string HumanSize(uint64_t bytes) {
  for (const auto& [shift, unit] : kUnits) {
    const uint64_t scale = uint64_t{1} << shift;
    if (bytes < scale) continue;
    if (bytes % scale == 0) return FormatSize(bytes);
    return absl::StrFormat("%.1f%c", static_cast<double>(bytes) / scale, unit);
  }
  return absl::StrCat(bytes);
}

absl::StatusOr<uint64_t> ParseThreshold(absl::string_view text) {
  if (absl::EqualsIgnoreCase(text, "never")) return PlanOptions::kNever;
  absl::StatusOr<uint64_t> size = ParseSize(text);
  if (!size.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        size.status().message(), "; a threshold may also be 'never'"));
  }
  return size;
}

std::string FormatThreshold(uint64_t threshold) {
  return threshold == PlanOptions::kNever ? "never" : FormatSize(threshold);
}

absl::StatusOr<std::vector<uint64_t>> ParseThresholdList(
    absl::string_view text) {
  std::vector<uint64_t> thresholds;
  for (absl::string_view item :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const size_t dots = item.find("..");
    if (dots == absl::string_view::npos) {
      absl::StatusOr<uint64_t> t = ParseThreshold(item);
      if (!t.ok()) return t.status();
      thresholds.push_back(*t);
      continue;
    }
    absl::StatusOr<uint64_t> lo = ParseSize(item.substr(0, dots));
    if (!lo.ok()) return lo.status();
    absl::StatusOr<uint64_t> hi = ParseSize(item.substr(dots + 2));
    if (!hi.ok()) return hi.status();
    if (*lo == 0 || *lo > *hi) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad range ", Quote(item), ": expected A..B with 0 < A <= B"));
    }
    // hi <= kMaxTraceSize, so t * 2 cannot overflow before the break.
    for (uint64_t t = *lo;; t *= 2) {
      thresholds.push_back(t);
      if (t > *hi / 2) break;
    }
  }
  if (thresholds.empty()) {
    return absl::InvalidArgumentError("no thresholds given");
  }
  return thresholds;
}

absl::StatusOr<std::vector<TraceBatch>> ParseTrace(absl::string_view text) {
  std::vector<TraceBatch> batches;
  TraceParser parser;
  TraceBatch batch;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::StatusOr<bool> got = parser.ParseLine(line, &batch);
    if (!got.ok()) return got.status();
    if (*got) batches.push_back(std::move(batch));
  }
  if (absl::Status s = parser.Finish(); !s.ok()) return s;
  return batches;
}

absl::StatusOr<bool> TraceParser::ParseLine(absl::string_view line,
                                            TraceBatch* batch) {
  if (lines_ == std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", lines_, ": a trace may have at most ", lines_, " lines"));
  }
  ++lines_;
  line = line.substr(0, line.find('#'));
  if (absl::StripAsciiWhitespace(line).empty()) return false;
  std::vector<uint64_t>& sizes = batch->sizes;
  sizes.clear();
  absl::StatusOr<size_t> count = AppendSizeList(line, &sizes);
  if (!count.ok() || *count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", lines_, ": ",
                     count.ok() ? "no sizes given" : count.status().message()));
  }
  batch->line = lines_;
  ++batches_;
  return true;
}

absl::Status TraceParser::Finish() const {
  if (batches_ == 0) {
    return absl::InvalidArgumentError("the trace holds no batch");
  }
  return absl::OkStatus();
}

absl::StatusOr<CopyOp> ParseCopyOp(absl::string_view text) {
  if (text == "writev") return CopyOp::kWritev;
  if (text == "sendmsg") return CopyOp::kSendmsg;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown copy op ", Quote(text), " (writev or sendmsg)"));
}

absl::StatusOr<uint32_t> ParseCount(absl::string_view text, uint32_t min,
                                    uint32_t max) {
  uint32_t value = 0;
  if (text.empty() ||
      text.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad number ", Quote(text), ": expected ", min, "..", max));
  }
  return value;
}

}  // namespace zcplan
