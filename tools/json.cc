// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/json.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace zcplan {

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      absl::StrAppendFormat(&out, "\\u%04x", u);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string JsonNumber(double value, const absl::FormatSpec<double>& format) {
  return std::isfinite(value) ? absl::StrFormat(format, value) : "null";
}

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  for (int precision = 1; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

}  // namespace zcplan
