# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides @rules_cc as a thin shim over Bazel's built-in C++ rules.

The project's BUILD files load the C++ rules from `@rules_cc//cc:defs.bzl`,
as newer Bazel versions require. The real rules_cc cannot be downloaded here,
and Debian's bazel-rules-cc (0.0.4) is too new for Bazel 4 (it loads
`use_cpp_toolchain`). Bazel 4 still has every C++ rule built in, so this
repository rule writes a `cc/defs.bzl` that forwards each rule to `native`
(see native_rules.bzl).

It is a repository rule rather than a `local_repository` of checked-in files
so that it also works when zcplan is itself an external repository (a
relative `path` would resolve against the consumer's workspace).

A workspace that has the real rules_cc (Bazel 5 or newer) should omit this
one: `zcplan_dependencies(omit = ["rules_cc"])`.
"""

load("//tools/workspace:native_rules.bzl", "native_rules_repository")

# The rules Bazel 4 has natively and rules_cc 0.0.1's defs.bzl exports.
_RULES = [
    "cc_binary",
    "cc_import",
    "cc_library",
    "cc_proto_library",
    "cc_shared_library",
    "cc_test",
    "cc_toolchain",
    "cc_toolchain_suite",
    "fdo_prefetch_hints",
    "fdo_profile",
    "objc_import",
    "objc_library",
]

def rules_cc_repository(name = "rules_cc"):
    native_rules_repository(name = name, files = {"cc/defs.bzl": _RULES})
