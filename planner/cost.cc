// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/cost.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace zcplan {

namespace {

struct WeightField {
  const char* name;
  double CostWeights::*field;
};

constexpr WeightField kWeightFields[] = {
    {"per_op", &CostWeights::per_op},
    {"per_zc_op", &CostWeights::per_zc_op},
    {"per_copy_byte", &CostWeights::per_copy_byte},
    {"per_zc_byte", &CostWeights::per_zc_byte},
    {"per_copy_iov", &CostWeights::per_copy_iov},
    {"per_zc_iov", &CostWeights::per_zc_iov},
    {"per_pinned_page", &CostWeights::per_pinned_page},
};

// The fewest digits (at least 6) that parse back to exactly `value`, so
// that a fitted weight survives the weights file unchanged.
std::string FormatWeight(double value) {
  for (int digits = 6;; ++digits) {
    std::string text = absl::StrFormat("%.*g", digits, value);
    double back = 0;
    if (digits >= 17 || (absl::SimpleAtod(text, &back) && back == value)) {
      return text;
    }
  }
}

}  // namespace

absl::Status ValidateCostWeights(const CostWeights& w) {
  for (const WeightField& f : kWeightFields) {
    const double value = w.*f.field;
    const char* name = f.name;
    if (!(value >= 0 && value <= kMaxCostWeight)) {  // Also refuses NaN.
      return absl::InvalidArgumentError(absl::StrCat(
          "CostWeights.", name, " is ", value, "; it must be a number in 0..",
          static_cast<uint64_t>(kMaxCostWeight)));
    }
  }
  const uint64_t ps = w.page_size;
  if (ps < 512 || ps > (uint64_t{1} << 30) || (ps & (ps - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CostWeights.page_size is ", ps,
                     "; it must be a power of two in 512..1073741824"));
  }
  return absl::OkStatus();
}

bool ParseDecimal(absl::string_view text, double* value) {
  size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  size_t digits = 0;
  while (i < text.size() && absl::ascii_isdigit(text[i])) ++i, ++digits;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && absl::ascii_isdigit(text[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    size_t exponent = 0;
    while (i < text.size() && absl::ascii_isdigit(text[i])) ++i, ++exponent;
    if (exponent == 0) return false;
  }
  return i == text.size() && absl::SimpleAtod(text, value);
}

std::string FormatCostWeights(const CostWeights& w) {
  std::string out;
  for (const WeightField& f : kWeightFields) {
    absl::StrAppend(&out, f.name, " ", FormatWeight(w.*f.field), "\n");
  }
  absl::StrAppend(&out, "page_size ", w.page_size, "\n");
  return out;
}

absl::StatusOr<CostWeights> ParseCostWeights(absl::string_view text) {
  CostWeights w;
  std::vector<std::string> seen;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) continue;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights line ", line_number, ": ", why));
    };
    if (words.size() != 2) {
      return bad(absl::StrCat("expected 'name value', got '",
                              absl::StripAsciiWhitespace(line), "'"));
    }
    const std::string name(words[0]);
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      return bad(absl::StrCat("'", name, "' given twice"));
    }
    seen.push_back(name);
    if (name == "page_size") {
      CostWeights check;
      if (!absl::SimpleAtoi(words[1], &check.page_size)) {
        return bad(absl::StrCat("bad page_size '", words[1], "'"));
      }
      if (absl::Status s = ValidateCostWeights(check); !s.ok()) {
        return bad(s.message());
      }
      w.page_size = check.page_size;
      continue;
    }
    const WeightField* field = nullptr;
    for (const WeightField& f : kWeightFields) {
      if (name == f.name) field = &f;
    }
    if (field == nullptr) {
      return bad(absl::StrCat("unknown weight '", name, "'"));
    }
    double value = 0;
    if (!ParseDecimal(words[1], &value) ||
        !(value >= 0 && value <= kMaxCostWeight)) {
      return bad(absl::StrCat("bad value '", words[1], "' for ", name,
                              ": expected a number in 0..",
                              static_cast<uint64_t>(kMaxCostWeight)));
    }
    w.*field->field = value;
  }
  if (absl::Status s = ValidateCostWeights(w); !s.ok()) return s;
  return w;
}

uint64_t PlanCost::ops() const {
  uint64_t sum = 0;
  for (uint64_t n : ops_by_kind) sum += n;
  return sum;
}

uint64_t PlanCost::zero_copy_ops() const {
  return ops_by_kind[static_cast<int>(OpKind::kSendmsgZc)] +
         ops_by_kind[static_cast<int>(OpKind::kSendZc)];
}

PlanCost& PlanCost::operator+=(const PlanCost& o) {
  for (int k = 0; k < kNumOpKinds; ++k) ops_by_kind[k] += o.ops_by_kind[k];
  bytes_copied += o.bytes_copied;
  bytes_zero_copy += o.bytes_zero_copy;
  iovs_copied += o.iovs_copied;
  iovs_zero_copy += o.iovs_zero_copy;
  pages_pinned += o.pages_pinned;
  cost += o.cost;
  return *this;
}

PlanCost EstimateCost(absl::Span<const struct iovec> queue, const Plan& plan,
                      const CostWeights& w) {
  PlanCost c;
  for (const Op& op : plan.ops()) {
    ++c.ops_by_kind[static_cast<int>(op.kind)];
    const bool zc = IsZeroCopy(op.kind);
    uint64_t iovs = 0;
    ForEachPiece(queue, op, [&](uint32_t j, uint64_t off, uint64_t length) {
      if (length == 0) return;
      ++iovs;
      if (zc) {
        // Pages from the one holding the first byte to the one holding the
        // last; only the start's offset into its page matters, so no sum can
        // overflow whatever the base address.
        const uint64_t in_page =
            (reinterpret_cast<uintptr_t>(queue[j].iov_base) + off) %
            w.page_size;
        c.pages_pinned += (in_page + length - 1) / w.page_size + 1;
      }
    });
    (zc ? c.bytes_zero_copy : c.bytes_copied) += op.bytes;
    (zc ? c.iovs_zero_copy : c.iovs_copied) += iovs;
  }
  c.cost = w.per_op * c.ops() + w.per_zc_op * c.zero_copy_ops() +
           w.per_copy_byte * c.bytes_copied +
           w.per_zc_byte * c.bytes_zero_copy + w.per_copy_iov * c.iovs_copied +
           w.per_zc_iov * c.iovs_zero_copy + w.per_pinned_page * c.pages_pinned;
  return c;
}

}  // namespace zcplan
