// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/json.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace zcplan {
namespace {

TEST(JsonTest, StringsEscapeQuotesBackslashesAndEveryControlCharacter) {
  EXPECT_EQ(JsonString(""), "\"\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("\n\t\r"), "\"\\u000a\\u0009\\u000d\"");
  EXPECT_EQ(JsonString(std::string("\0\x1f\x7f", 3)),
            "\"\\u0000\\u001f\\u007f\"");
  EXPECT_EQ(JsonString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  for (int c = 0; c < 0x20; ++c) {
    const std::string json = JsonString(std::string(1, static_cast<char>(c)));
    EXPECT_EQ(json.size(), 8u) << c;  // "\u00XX" in quotes.
  }
}

TEST(JsonTest, NumbersAreNullWhenNotFinite) {
  EXPECT_EQ(JsonNumber(1.5, "%.3f"), "1.500");
  EXPECT_EQ(JsonNumber(std::nan(""), "%.3f"), "null");
  EXPECT_EQ(JsonNumber(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(JsonNumber(-std::numeric_limits<double>::infinity(), "%g"), "null");
}

TEST(JsonTest, ExactNumbersReadBackAsTheSameDouble) {
  EXPECT_EQ(JsonNumber(0.1), "0.1");
  EXPECT_EQ(JsonNumber(3), "3");
  for (double v : {1.0 / 3, 2.5e-300, 1.7976931348623157e308, -123456.789}) {
    const std::string text = JsonNumber(v);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), v) << text;
  }
}

}  // namespace
}  // namespace zcplan
