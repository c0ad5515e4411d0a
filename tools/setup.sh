#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages that zcplan's build and CI need.
#
# Idempotent: when everything is installed already it does nothing (and
# prints nothing). Otherwise it installs what is missing, running
# `apt-get update` only if the package lists are too old to find it.
# Run as root (or with sudo available).

set -euo pipefail

readonly PACKAGES=(
  bazel-bootstrap     # Bazel 4.2.3
  bazel-platforms     # @platforms, see tools/workspace/platforms
  bazel-rules-java    # @rules_java, see tools/workspace/rules_java
  g++                 # the default compiler
  pkg-config          # finds the libraries below
  libabsl-dev         # @com_google_absl
  libgtest-dev        # @com_google_googletest
  libgmock-dev        # @com_google_googletest (//:gtest includes gmock)
  libbenchmark-dev    # @com_github_google_benchmark
  liburing-dev        # @liburing
  clang               # --config=fuzz
  libclang-rt-14-dev  # libFuzzer and clang's sanitizer runtimes
  lld                 # --config=fuzz links with lld
  socat               # zcsend's end-to-end test: a receiver not our own
  curl                # zchttpd's test: an HTTP client not our own
  wrk                 # bench/http_qps: the load generator against zchttpd
  nghttp2-client      # h2load --h1: zchttpd's e2e test, pipelined load
)

# Debian's `bazel` is a wrapper that runs /usr/bin/bazel-<version> for the
# version in .bazelversion; Debian names its Bazel 4.2.3 binary bazel-4.
# Links the exact name to it (once; needs root, like the packages).
link_bazel_version() {
  local want
  want="$(cat "$(dirname "$0")/../.bazelversion" 2>/dev/null || true)"
  [[ -n "${want}" && -x /usr/bin/bazel-4 && ! -e "/usr/bin/bazel-${want}" ]] ||
    return 0
  [[ "$(/usr/bin/bazel-4 --version)" == "bazel no_version" ||
    "$(/usr/bin/bazel-4 --version)" == "bazel ${want}" ]] || return 0
  local sudo_link=()
  [[ "$(id -u)" -eq 0 ]] || sudo_link=(sudo)
  "${sudo_link[@]}" ln -s bazel-4 "/usr/bin/bazel-${want}"
}
trap link_bazel_version EXIT

missing=()
for package in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "${package}" 2>/dev/null ||
    true)"
  if [[ "${status}" != "installed" ]]; then
    missing+=("${package}")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "$0: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi

echo "$0: installing ${missing[*]}" >&2
log="$(mktemp)"
trap 'rm -f "${log}"; link_bazel_version' EXIT
install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}")
if ! "${install[@]}" >"${log}" 2>&1; then
  # Most likely empty or stale package lists (a fresh container).
  if ! { "${sudo[@]}" apt-get update -q && "${install[@]}"; } >"${log}" 2>&1
  then
    cat "${log}" >&2
    echo "$0: apt-get failed" >&2
    exit 1
  fi
fi
