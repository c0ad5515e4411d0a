#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main command's throughput beside the same sender reading a file and
# the resend mode: `zcsend --loopback --bytes 256M`, `--file F` (256 MiB of
# random bytes, in the page cache after the first round) and `--resend`,
# interleaved (A B C A B C ...) for ROUNDS rounds, then the median and range
# of each. With OLD_ZCSEND set to another zcsend binary, its --bytes and
# --file runs are interleaved too (a before/after in one run).
#
#   bench/zcsend_throughput.sh            # ROUNDS=7 by default
#   OLD_ZCSEND=/tmp/zcsend_old bench/zcsend_throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-7}"
bazel build -c opt //tools:zcsend >&2
new="$(bazel info -c opt bazel-bin 2>/dev/null)/tools/zcsend"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
head -c 268435456 /dev/urandom >"$dir/f256"

declare -A cmds=(
  [bytes]="$new --loopback --bytes 256M"
  [file]="$new --loopback --file $dir/f256"
  [resend]="$new --loopback --bytes 256M --resend"
)
order=(bytes file resend)
if [[ -n "${OLD_ZCSEND:-}" ]]; then
  cmds[old_bytes]="$OLD_ZCSEND --loopback --bytes 256M"
  cmds[old_file]="$OLD_ZCSEND --loopback --file $dir/f256"
  order=(old_bytes old_file "${order[@]}")
fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((r = 1; r <= rounds; r++)); do
  for k in "${order[@]}"; do
    # The sender's "sent ... : N MB/s" line; a failed run stops the script.
    out="$(${cmds[$k]} 2>&1)" ||
      { echo "zcsend_throughput.sh: $k failed: $(tail -1 <<<"$out")" >&2; exit 1; }
    line="$(grep -m1 '^sent ' <<<"$out")"
    echo "$k $(sed -E 's/.*: ([0-9.]+) MB\/s.*/\1/' <<<"$line")" >>"$dir/runs"
  done
done
for k in "${order[@]}"; do
  awk -v k="$k" '$1 == k { print $2 }' "$dir/runs" | sort -n | awk -v k="$k" '
    { x[NR] = $1 }
    END {
      m = (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
      printf "%-10s median %7.0f MB/s (%.0f..%.0f, %d runs)\n", k, m, x[1], x[NR], NR
    }'
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
