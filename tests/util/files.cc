// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/util/files.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "zcplan/tools/cli_io.h"

namespace zcplan {

std::string TestTempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

std::string WriteTestFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(TestTempDir(), "/", name);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  EXPECT_TRUE(file) << "cannot write " << path;
  return path;
}

std::string ReadTestFile(const std::string& path) {
  absl::StatusOr<std::string> text =
      ReadRegularFile(path, "test file", uint64_t{1} << 30);
  if (!text.ok()) {
    ADD_FAILURE() << text.status().message();
    return "";
  }
  return *std::move(text);
}

}  // namespace zcplan
