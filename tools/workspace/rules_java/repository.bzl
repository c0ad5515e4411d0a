# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides @rules_java from Debian's bazel-rules-java package.

Bazel 4 asks for @rules_java while loading its own tools, even in a C++-only
workspace, and would otherwise try to download it.
"""

# Installed by Debian's bazel-rules-java (see tools/setup.sh).
_PATH = "/usr/share/bazel/rules/java"

def rules_java_repository(name = "rules_java"):
    native.local_repository(name = name, path = _PATH)
