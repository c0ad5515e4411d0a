// SPDX-License-Identifier: Apache-2.0
// Runs a libFuzzer target without libFuzzer: on each file named on the
// command line, then on random inputs from a fixed seed. Lets `bazel test`
// exercise fuzz targets with any compiler.
//
// Usage: <target> [FILE...] [--runs=N]

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  long runs = 20000;
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--runs=", 7) == 0) {
      runs = std::strtol(argv[i] + 7, nullptr, 10);
      continue;
    }
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                           bytes.size());
    ++files;
  }
  std::mt19937_64 rng(1);
  std::vector<uint8_t> input;
  for (long r = 0; r < runs; ++r) {
    input.resize(rng() % 4096);
    for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  std::printf("replayed %d files and %ld random inputs\n", files, runs);
  return 0;
}
