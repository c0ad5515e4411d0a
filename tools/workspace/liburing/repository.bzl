# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides @liburing//:liburing from the host's liburing (Debian's
liburing-dev, 2.3 on Debian 12), found with pkg-config.
"""

load("//tools/workspace:pkg_config.bzl", "pkg_config_repository")

def liburing_repository(name = "liburing"):
    pkg_config_repository(
        name = name,
        targets = {":liburing": ["liburing"]},
    )
