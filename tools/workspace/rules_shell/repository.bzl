# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides @rules_shell as a thin shim over Bazel's built-in shell rules.

The project's BUILD files load sh_test from
`@rules_shell//shell:sh_test.bzl`, as Bazel 9 requires (it has no built-in
sh_test). The real rules_shell needs Bazel 7 or newer and cannot be
downloaded here; Bazel 4 still has sh_binary and sh_test built in, so this
repository rule writes the same `.bzl` files, forwarding to `native` (see
native_rules.bzl).

Under Bzlmod, MODULE.bazel's bazel_dep on rules_shell provides the real one
instead. A WORKSPACE that has the real rules_shell declares it before calling
zcplan_dependencies() (or omits this one: `omit = ["rules_shell"]`).
"""

load("//tools/workspace:native_rules.bzl", "native_rules_repository")

def rules_shell_repository(name = "rules_shell"):
    native_rules_repository(
        name = name,
        files = {
            "shell/sh_binary.bzl": ["sh_binary"],
            "shell/sh_test.bzl": ["sh_test"],
        },
    )
