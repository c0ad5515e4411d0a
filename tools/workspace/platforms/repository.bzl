# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides @platforms (the standard constraint settings, e.g.
`@platforms//os:linux`) from Debian's bazel-platforms package, so that
Bazel does not try to download it.
"""

# Installed by Debian's bazel-platforms (see tools/setup.sh).
_PATH = "/usr/share/bazel/tools/platforms"

def platforms_repository(name = "platforms"):
    native.local_repository(name = name, path = _PATH)
