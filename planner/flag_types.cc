// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/flag_types.h"

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "zcplan/planner/trace.h"

namespace zcplan {
namespace {

// Stores a parsed value, or the parser's message as Abseil's error text.
template <typename T, typename U>
bool Take(absl::StatusOr<U> parsed, T* field, std::string* error) {
  if (!parsed.ok()) {
    *error = std::string(parsed.status().message());
    return false;
  }
  *field = *std::move(parsed);
  return true;
}

}  // namespace

bool AbslParseFlag(absl::string_view text, ByteSize* value,
                   std::string* error) {
  return Take(ParseSize(text), &value->bytes, error);
}
std::string AbslUnparseFlag(ByteSize value) { return FormatSize(value.bytes); }

bool AbslParseFlag(absl::string_view text, Threshold* value,
                   std::string* error) {
  return Take(ParseThreshold(text), &value->bytes, error);
}
std::string AbslUnparseFlag(Threshold value) {
  return FormatThreshold(value.bytes);
}

bool AbslParseFlag(absl::string_view text, ByteSizeList* value,
                   std::string* error) {
  if (text.empty()) {  // What AbslUnparseFlag writes for no sizes.
    value->bytes.clear();
    return true;
  }
  return Take(ParseSizeList(text), &value->bytes, error);
}
std::string AbslUnparseFlag(const ByteSizeList& value) {
  return absl::StrJoin(value.bytes, ",", [](std::string* out, uint64_t n) {
    out->append(FormatSize(n));
  });
}

bool AbslParseFlag(absl::string_view text, ThresholdList* value,
                   std::string* error) {
  if (text.empty()) {  // What AbslUnparseFlag writes for no thresholds.
    value->bytes.clear();
    return true;
  }
  return Take(ParseThresholdList(text), &value->bytes, error);
}
std::string AbslUnparseFlag(const ThresholdList& value) {
  return absl::StrJoin(value.bytes, ",", [](std::string* out, uint64_t n) {
    out->append(FormatThreshold(n));
  });
}

bool AbslParseFlag(absl::string_view text, WholeNumber* value,
                   std::string* error) {
  absl::StatusOr<uint32_t> n = ParseCount(text, 0, UINT32_MAX);
  if (!n.ok()) {
    // "bad number 'TEXT'" as ParseCount quotes it, and what a count is.
    const absl::string_view message = n.status().message();
    *error = absl::StrCat(message.substr(0, message.rfind(": expected")),
                          ": expected a whole number, e.g. 64");
    return false;
  }
  value->value = *n;
  return true;
}
std::string AbslUnparseFlag(WholeNumber value) {
  return absl::StrCat(value.value);
}

bool AbslParseFlag(absl::string_view text, OnOff* value, std::string* error) {
  if (text == "on" || text == "off") {
    value->on = text == "on";
    return true;
  }
  *error = absl::StrCat("bad value '", text, "' (on or off)");
  return false;
}
std::string AbslUnparseFlag(OnOff value) { return value.on ? "on" : "off"; }

bool AbslParseFlag(absl::string_view text, CopyOp* value, std::string* error) {
  return Take(ParseCopyOp(text), value, error);
}
std::string AbslUnparseFlag(CopyOp value) {
  return std::string(CopyOpName(value));
}

}  // namespace zcplan
