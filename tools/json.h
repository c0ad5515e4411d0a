// SPDX-License-Identifier: Apache-2.0
// JSON values for the tools' `--format=json` and result files: the one
// writer of strings and numbers, so every tool escapes the same way.
//
// Thread safety: the functions are reentrant.

#ifndef ZCPLAN_TOOLS_JSON_H_
#define ZCPLAN_TOOLS_JSON_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace zcplan {

// `text` as a JSON string, quoted: '"' and '\' escaped, and every control
// character (below 0x20, and 0x7f) as \uXXXX. Other bytes are copied as
// they are (the tools' text is UTF-8 or ASCII).
std::string JsonString(absl::string_view text);

// `value` in `format` (e.g. "%.3f"); JSON has no inf or nan, so those are
// null.
std::string JsonNumber(double value, const absl::FormatSpec<double>& format);

// `value` exactly: the shortest text that reads back as the same double.
std::string JsonNumber(double value);

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_JSON_H_
