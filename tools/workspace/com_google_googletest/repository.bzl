# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides GoogleTest under its usual repository name,
@com_google_googletest, from the host's copy (Debian's libgtest-dev, 1.12.1
on Debian 12), found with pkg-config.

Targets, as in upstream's BUILD.bazel:
  //:gtest       GoogleTest including GoogleMock.
  //:gtest_main  the same plus a main() (upstream builds gmock_main.cc, which
                 also initializes GoogleMock; so does this one).
Debian-only extras, for code that is never built against upstream:
  //:gmock, //:gmock_main
The project's BUILD files use //:gtest and //:gtest_main only.
"""

load("//tools/workspace:pkg_config.bzl", "pkg_config_repository")

def com_google_googletest_repository(name = "com_google_googletest"):
    pkg_config_repository(
        name = name,
        targets = {
            ":gtest": ["gmock"],  # gmock.pc requires gtest.
            ":gtest_main": ["gmock_main"],
            ":gmock": ["gmock"],
            ":gmock_main": ["gmock_main"],
        },
    )
