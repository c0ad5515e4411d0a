#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks what can be checked of MODULE.bazel without a Bazel that reads it:
#  1. every external repository that a BUILD or .bzl file of zcplan names
#     (`@name//...`, comments included) is declared both in MODULE.bazel (a
#     bazel_dep's repo_name, or its name when it has none, or the module's
#     own name) and in tools/workspace/default.bzl's _REPOSITORIES table,
#     unless Bazel itself provides it (BUILTIN below);
#  2. the module's version, on the module() line, has the form 0.x.y;
#  3. every source file has an SPDX licence line, and includes zcplan's
#     headers as "zcplan/...".
# It also checks itself: a file naming an undeclared repository must fail.
#
# The BUILD and .bzl files are found in zcplan's source tree, which the
# runfiles (symlinks, when tests run locally) lead to; the consumer example is
# a workspace of its own and not scanned. Since they are not the test's
# inputs, the test is tagged "external" (never cached).
#
# Usage: repositories_test.sh MODULE.bazel default.bzl (as $(rootpath) gives
# them).
set -u

# Repositories Bazel provides without a declaration, and zcplan itself.
readonly BUILTIN=(
  bazel_tools
  local_config_cc
  local_config_platform
  local_config_sh
  zcplan
)

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# A $(rootpath) as a file in the runfiles tree, whichever workspace runs the
# test: "../repo/x" or "external/repo/x" is in repo, "x" in the test's own.
runfile() {
  case "$1" in
    ../*) echo "${TEST_SRCDIR}/${1#../}" ;;
    external/*) echo "${TEST_SRCDIR}/${1#external/}" ;;
    *) echo "${TEST_SRCDIR}/${TEST_WORKSPACE}/$1" ;;
  esac
}

module="$(runfile "$1")"
default_bzl="$(runfile "$2")"

# zcplan's BUILD and .bzl files, from its source tree.
source_root="$(dirname "$(readlink -f "${module}")")"
if [[ ! -f "${source_root}/WORKSPACE" || ! -d "${source_root}/planner" ]]; then
  echo "FAIL: zcplan's source tree not found from ${module} (it resolves" \
    "to ${source_root}); this test needs local execution" >&2
  exit 1
fi
files=()
while IFS= read -r f; do
  files+=("${source_root}/${f}")
done < <(cd "${source_root}" &&
  find . \( -name 'bazel-*' -o -name .git \
    -o -path ./tools/workspace/consumer_example \) -prune -o \
    \( -name BUILD -o -name BUILD.bazel -o -name '*.bzl' \) -print |
  sed 's,^\./,,' | sort)
echo "zcplan's source tree: ${source_root}"
if [[ "${#files[@]}" -eq 0 ]]; then
  echo "FAIL: no BUILD or .bzl file found in ${source_root}" >&2
  exit 1
fi

# MODULE.bazel without comments, one line.
module_text="$(sed 's/#.*//' "${module}" | tr '\n' ' ')"

# The repositories MODULE.bazel declares: each bazel_dep's repo_name, or its
# name, and the module's name.
module_repos() {
  grep -oE 'bazel_dep\([^)]*\)' <<<"${module_text}" | while read -r dep; do
    if [[ "${dep}" =~ repo_name\ *=\ *\"([^\"]+)\" ]]; then
      echo "${BASH_REMATCH[1]}"
    elif [[ "${dep}" =~ (^|[^_])name\ *=\ *\"([^\"]+)\" ]]; then
      echo "${BASH_REMATCH[2]}"
    fi
  done
  grep -oE 'module\([^)]*\)' <<<"${module_text}" |
    sed -nE 's/.*[( ,]name *= *"([^"]+)".*/\1/p'
}

# The keys of default.bzl's _REPOSITORIES table.
workspace_repos() {
  sed -n '/^_REPOSITORIES = {/,/^}/p' "${default_bzl}" |
    sed -nE 's/^ *"([^"]+)": .*/\1/p'
}

# The repositories named as @name// in the files given.
named_repos() {
  cat "$@" | grep -oE '@[A-Za-z0-9_.-]+//' | sed -E 's,^@,,; s,//$,,' |
    sort -u
}

declared_in_module="$(module_repos | sort -u)"
declared_in_workspace="$(workspace_repos | sort -u)"
echo "MODULE.bazel declares:" ${declared_in_module}
echo "default.bzl declares:" ${declared_in_workspace}
[[ -n "${declared_in_module}" ]] || fail "no bazel_dep found in MODULE.bazel"
[[ -n "${declared_in_workspace}" ]] ||
  fail "no _REPOSITORIES table found in default.bzl"

# Prints, and counts as failures, the repositories named in "$@" that are
# not declared in both places.
check_named() {
  local name found=0
  for name in $(named_repos "$@"); do
    if printf '%s\n' "${BUILTIN[@]}" | grep -qxF "${name}"; then
      continue
    fi
    if ! grep -qxF "${name}" <<<"${declared_in_module}"; then
      echo "  @${name}// is named but not declared in MODULE.bazel" >&2
      found=$((found + 1))
    fi
    if ! grep -qxF "${name}" <<<"${declared_in_workspace}"; then
      echo "  @${name}// is named but not declared in default.bzl" >&2
      found=$((found + 1))
    fi
  done
  [[ "${found}" -eq 0 ]]
}

# 1.
echo "named in ${#files[@]} files:" $(named_repos "${files[@]}")
check_named "${files[@]}" || fail "undeclared repositories (above)"

# The check can fail: a file naming an undeclared repository.
scratch="${TEST_TMPDIR:-$(mktemp -d)}/BUILD.bazel"
printf 'cc_library(name = "x", deps = ["@zcplan_undeclared_repo//:x"])\n' \
  >"${scratch}"
if check_named "${scratch}" 2>/dev/null; then
  fail "a file naming @zcplan_undeclared_repo// passed the check"
fi

# 2.
module_line="$(grep -E '^module\(' "${module}")"
if [[ ! "${module_line}" =~ version\ *=\ *\"0\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\" ]]; then
  fail "no version = \"0.x.y\" on MODULE.bazel's module() line: ${module_line}"
fi
[[ "${module_line}" =~ name\ *=\ *\"zcplan\" ]] ||
  fail "MODULE.bazel's module() line does not name zcplan: ${module_line}"

# 3. Every source file carries the licence's SPDX line near its top, and
# every C++ file includes zcplan's headers by their "zcplan/" path (a bare
# "planner/planner.h" would pick up a consumer's header of that path).
sources=()
while IFS= read -r f; do
  sources+=("${source_root}/${f}")
done < <(cd "${source_root}" &&
  find . \( -name 'bazel-*' -o -name .git \
    -o -path ./tools/workspace/consumer_example \) -prune -o \
    \( -name '*.cc' -o -name '*.h' -o -name '*.sh' -o -name '*.py' \
    -o -name BUILD.bazel -o -name '*.bzl' \) -print | sed 's,^\./,,' | sort)
echo "checking ${#sources[@]} source files for SPDX lines and include paths"
for f in "${sources[@]}"; do
  head -n 3 "${f}" | grep -q 'SPDX-License-Identifier: Apache-2.0' ||
    fail "${f#"${source_root}/"} has no SPDX-License-Identifier line"
done
bare="$(grep -nE '^#include "(planner|uring|tools|tests|bench)/' \
  "${sources[@]}" 2>/dev/null | grep -v '"tools/cpp/' || true)"
[[ -z "${bare}" ]] ||
  fail "zcplan headers included without the zcplan/ prefix:
${bare}"

if [[ "${failures}" -ne 0 ]]; then
  echo "${failures} failure(s)" >&2
  exit 1
fi
echo "PASS"
