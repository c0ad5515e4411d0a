# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Declares every external repository zcplan needs.

Usage, in zcplan's WORKSPACE or in another workspace that uses zcplan:

    load("@zcplan//tools/workspace:default.bzl", "zcplan_dependencies")
    zcplan_dependencies()

Each repository is declared here once and only here. A workspace that
already declares some of them (for instance one that builds Abseil from
source, or that has the real rules_cc) declares them before calling this,
and passes their names in `omit`:

    zcplan_dependencies(omit = ["com_google_absl", "rules_cc"])

A repository declared before the call is kept even when `omit` forgets it:
each declaration here is skipped if the name exists already.

Nothing is downloaded: Bazel's own helper repositories are provided from
Debian packages or generated, and the C++ libraries are the host's, found
with pkg-config (tools/setup.sh installs them all).
"""

load(
    "//tools/workspace/com_github_google_benchmark:repository.bzl",
    "com_github_google_benchmark_repository",
)
load(
    "//tools/workspace/com_google_absl:repository.bzl",
    "com_google_absl_repository",
)
load(
    "//tools/workspace/com_google_googletest:repository.bzl",
    "com_google_googletest_repository",
)
load("//tools/workspace/liburing:repository.bzl", "liburing_repository")
load("//tools/workspace/platforms:repository.bzl", "platforms_repository")
load(
    "//tools/workspace/remote_coverage_tools:repository.bzl",
    "remote_coverage_tools_repository",
)
load("//tools/workspace/rules_cc:repository.bzl", "rules_cc_repository")
load("//tools/workspace/rules_java:repository.bzl", "rules_java_repository")
load("//tools/workspace/rules_shell:repository.bzl", "rules_shell_repository")

# Repository name -> macro that declares it under that name.
_REPOSITORIES = {
    # Build rules and Bazel's implicit dependencies.
    "platforms": platforms_repository,
    "remote_coverage_tools": remote_coverage_tools_repository,
    "rules_cc": rules_cc_repository,
    "rules_java": rules_java_repository,
    "rules_shell": rules_shell_repository,
    # C++ libraries.
    "com_github_google_benchmark": com_github_google_benchmark_repository,
    "com_google_absl": com_google_absl_repository,
    "com_google_googletest": com_google_googletest_repository,
    "liburing": liburing_repository,
}

def zcplan_dependencies(omit = []):
    """Declares zcplan's external repositories, except those in `omit`.

    A repository the calling workspace declared before this call is never
    redeclared (it would shadow the caller's), whether or not it is in `omit`.

    Args:
      omit: names of repositories the calling workspace declares itself.
    """
    for name in omit:
        if name not in _REPOSITORIES:
            fail(("zcplan_dependencies: unknown repository '{}' in omit; " +
                  "known: {}").format(name, sorted(_REPOSITORIES.keys())))
    for name, declare in _REPOSITORIES.items():
        if name not in omit and not native.existing_rule(name):
            declare(name = name)
