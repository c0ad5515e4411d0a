#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Instructions per buffer of the sending thread, counted by callgrind: the
# reference message at n = 1024 and 2048 (size_aware, each copy op) through
# the raw liburing loop, the executor on its own ring and the executor on the
# caller's ring, each with the message's buffers enqueued and with the
# message prepared (bench/send_callgrind.cc). Counts user-space instructions
# (Ir) of the sending thread in the sends only (not setup, not the receiver
# thread, not the kernel), over MESSAGES messages after a warm-up.
#
#   bench/callgrind.sh            # from the workspace; MESSAGES=200 by default
#
# One line per case:
#   instructions per buffer: <sender> <copy op> n=<n> <Ir / buffers> (...)
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${MESSAGES:-200}"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not found" >&2; exit 2; }
bazel build -c opt //bench:send_callgrind >&2
bin="$(bazel info -c opt bazel-bin 2>/dev/null)/bench/send_callgrind"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

status=0
for n in 1024 2048; do
  for op in writev sendmsg; do
    for sender in raw executor shared prepared shared_prepared; do
      file="$out/cg.$sender.$op.$n"
      rc=0
      valgrind --tool=callgrind --collect-atstart=no --separate-threads=yes \
        --callgrind-out-file="$file" "$bin" --sender="$sender" \
        --copy_op="$op" --n="$n" --messages="$messages" --warmup=20 \
        >"$file.stdout" 2>"$file.log" || rc=$?
      if [[ $rc -eq 77 ]]; then
        echo "instructions per buffer: $sender $op n=$n skipped: $(tail -1 "$file.log")"
        continue
      elif [[ $rc -ne 0 ]]; then
        echo "instructions per buffer: $sender $op n=$n FAILED (exit $rc):" \
          "$(grep -v '^==' "$file.log" | tail -1)"
        status=1
        continue
      fi
      buffers="$(awk '/^buffers/ {print $2}' "$file.stdout")"
      # Thread 1 is the sending thread; the others must have collected nothing.
      ir="$(awk '/^totals:/ {print $2}' "$file-01")"
      others="$(cat "$file"-0[2-9] /dev/null 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}' || true)"
      awk -v s="$sender" -v o="$op" -v n="$n" -v ir="$ir" -v b="$buffers" \
        -v x="$others" 'BEGIN {
          printf "instructions per buffer: %-8s %-7s n=%-4d %7.1f  (Ir %d / %d buffers%s)\n",
            s, o, n, ir / b, ir, b, (x > 0 ? sprintf("; other threads %d", x) : "")
        }'
    done
  done
done
exit $status
