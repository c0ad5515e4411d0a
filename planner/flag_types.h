// SPDX-License-Identifier: Apache-2.0
// The planner's text types as Abseil flag types, so a tool declares
// `ABSL_FLAG(zcplan::Threshold, threshold, ...)` and gets the same parsing
// and the same error text as a trace file (see planner/trace.h).
//
// Each type is a thin wrapper over the value the planner takes; the parse
// error Abseil shows is the project parser's message ("bad size 'x':
// expected ..."). `AbslUnparseFlag` writes what `AbslParseFlag` reads.
//
// Thread safety: all functions are reentrant.

#ifndef ZCPLAN_PLANNER_FLAG_TYPES_H_
#define ZCPLAN_PLANNER_FLAG_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "zcplan/planner/planner.h"

namespace zcplan {

// A byte count: "4096", "4K", "1m" (ParseSize).
struct ByteSize {
  uint64_t bytes = 0;
};

// A zero-copy threshold: a size or "never" (PlanOptions::kNever).
struct Threshold {
  uint64_t bytes = 0;
};

// A size list: "4K,4K 16K" (ParseSizeList). "" is the empty list (the
// default a flag is reset to); a tool that needs sizes refuses it.
struct ByteSizeList {
  std::vector<uint64_t> bytes;
};

// A threshold list: "1K..8K,never" (ParseThresholdList); "" is the empty
// list, as for ByteSizeList.
struct ThresholdList {
  std::vector<uint64_t> bytes;
};

// A count: decimal digits only, at most 32 bits ("64"; not "0x40", " 64" or
// "+64", which an integer flag of Abseil's would take). Ranges are the
// tool's to check (tools/flags.h CountInRange).
struct WholeNumber {
  uint32_t value = 0;
};

// A switch given as a word: "on" or "off".
struct OnOff {
  bool on = false;
};

bool AbslParseFlag(absl::string_view text, ByteSize* value, std::string* error);
std::string AbslUnparseFlag(ByteSize value);
bool AbslParseFlag(absl::string_view text, Threshold* value,
                   std::string* error);
std::string AbslUnparseFlag(Threshold value);
bool AbslParseFlag(absl::string_view text, ByteSizeList* value,
                   std::string* error);
std::string AbslUnparseFlag(const ByteSizeList& value);
bool AbslParseFlag(absl::string_view text, ThresholdList* value,
                   std::string* error);
std::string AbslUnparseFlag(const ThresholdList& value);
bool AbslParseFlag(absl::string_view text, WholeNumber* value,
                   std::string* error);
std::string AbslUnparseFlag(WholeNumber value);
bool AbslParseFlag(absl::string_view text, OnOff* value, std::string* error);
std::string AbslUnparseFlag(OnOff value);
// "writev" or "sendmsg" (ParseCopyOp).
bool AbslParseFlag(absl::string_view text, CopyOp* value, std::string* error);
std::string AbslUnparseFlag(CopyOp value);

}  // namespace zcplan

#endif  // ZCPLAN_PLANNER_FLAG_TYPES_H_
