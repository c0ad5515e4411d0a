# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides Google Benchmark under its usual repository name,
@com_github_google_benchmark, from the host's copy (Debian's
libbenchmark-dev, 1.7.1 on Debian 12), found with pkg-config.

Targets, as in the upstream BUILD.bazel:
  //:benchmark       the library.
  //:benchmark_main  the library plus a main() that runs the benchmarks.
"""

load("//tools/workspace:pkg_config.bzl", "pkg_config_repository")

def com_github_google_benchmark_repository(
        name = "com_github_google_benchmark"):
    pkg_config_repository(
        name = name,
        targets = {
            ":benchmark": ["benchmark"],
            ":benchmark_main": ["benchmark"],
        },
        # Debian ships libbenchmark_main.a but no benchmark_main.pc.
        extra_linkopts = {":benchmark_main": ["-lbenchmark_main"]},
    )
