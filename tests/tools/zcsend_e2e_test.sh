#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end check of the real zcsend binary over loopback TCP:
#   1. zcsend --peer sends a file to socat, which writes it out: cmp.
#   2. zcsend --listen --check-pattern in the background, zcsend --peer sends
#      the pattern to it: both exit 0, the receiver says OK.
#   3. Inputs that never end or never deliver (/dev/zero, a FIFO) are refused
#      at once (exit 2, one line, nothing on stdout), and --loopback with too
#      few file descriptors for its receiver exits 1 with the error instead of
#      hanging; stdout on /dev/full exits 1, --out on a FIFO exits 2, and
#      SIGTERM stops a run of one-byte buffers (143).
# Skips (exit 0, "SKIP: reason") only when socat is missing or io_uring is
# unavailable, as zcsend itself reports.
# Usage: zcsend_e2e_test.sh PATH_TO_ZCSEND
set -u
zcsend=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
}
trap cleanup EXIT

# Waits up to $2 tenths of a second for process $1 to exit; returns its exit
# status, or 124 (and kills it) on timeout.
wait_for() {
  local pid=$1 tenths=$2
  while kill -0 "$pid" 2>/dev/null && [ "$tenths" -gt 0 ]; do
    sleep 0.1
    tenths=$((tenths - 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid"
}

if ! command -v socat >/dev/null 2>&1; then
  echo "SKIP: socat is not installed"
  exit 0
fi

# io_uring: zcsend makes its ring before it connects, so a sender aimed at a
# port nobody listens on says either "io_uring unavailable" or "cannot
# connect". Port 1 (tcpmux) is closed on any sane machine; if something does
# listen there, it gets one byte and io_uring evidently works.
"$zcsend" --peer 127.0.0.1:1 --bytes 1 >"$tmp/probe.out" 2>"$tmp/probe.err"
if grep -q '^zcsend: io_uring unavailable' "$tmp/probe.err"; then
  echo "SKIP: $(head -n 1 "$tmp/probe.err")"
  exit 0
fi
grep -q '^zcsend: cannot connect to 127.0.0.1:1: ' "$tmp/probe.err" ||
  [ ! -s "$tmp/probe.err" ] ||
  fail "io_uring probe: unexpected error: $(cat "$tmp/probe.err")"

# --- 1. zcsend -> socat, a file ------------------------------------------------

# An odd-sized file of random bytes (about 5 MiB).
head -c $((5 * 1024 * 1024 + 12345)) /dev/urandom >"$tmp/in.bin"

# The inode of the TCP socket process $1 listens on port $2 with, or nothing.
listening_inode() {
  local pid=$1 port=$2 hex inodes
  hex=$(printf ':%04X' "$port")
  inodes=$(ls -l "/proc/$pid/fd" 2>/dev/null |
    sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p')
  [ -n "$inodes" ] || return 1
  # /proc/net/tcp{,6}: local address is field 2, state 0A is LISTEN, inode is
  # field 10.
  awk -v hex="$hex" -v inodes=" $(echo $inodes) " '
    $4 == "0A" && substr($2, length($2) - 4) == hex &&
    index(inodes, " " $10 " ") { print $10; found = 1 }
    END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# socat cannot pick a free port and report it: try random high ports until
# one socat is seen listening on (by its own socket's inode, so another
# process on that port is not mistaken for it).
port=
socat_pid=
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  candidate=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
  rm -f "$tmp/socat.out"
  socat -u "TCP-LISTEN:$candidate,reuseaddr,bind=127.0.0.1" \
    "OPEN:$tmp/socat.out,creat,trunc" 2>"$tmp/socat.err" &
  socat_pid=$!
  for _ in $(seq 50); do
    if listening_inode "$socat_pid" "$candidate" >/dev/null; then
      port=$candidate
      break
    fi
    kill -0 "$socat_pid" 2>/dev/null || break # e.g. the port is taken
    sleep 0.1
  done
  [ -n "$port" ] && break
  kill "$socat_pid" 2>/dev/null
  wait "$socat_pid" 2>/dev/null
done

if [ -z "$port" ]; then
  fail "socat did not listen on any of 10 random ports: $(cat "$tmp/socat.err")"
else
  pids+=("$socat_pid")
  "$zcsend" --peer "127.0.0.1:$port" --file "$tmp/in.bin" \
    --split 4K,4K,16K,32K,2K >"$tmp/send1.out" 2>"$tmp/send1.err"
  rc=$?
  [ "$rc" -eq 0 ] || fail "file send exited $rc: $(cat "$tmp/send1.err")"
  [ ! -s "$tmp/send1.err" ] || fail "file send wrote to stderr: $(cat "$tmp/send1.err")"
  grep -q '^sent .* (5255225 bytes) on 1 connection in ' "$tmp/send1.out" ||
    fail "file send: no 'sent' line: $(cat "$tmp/send1.out")"
  grep -qxF '  writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]' "$tmp/send1.out" ||
    fail "file send: plan of the first message missing: $(cat "$tmp/send1.out")"
  # socat exits when zcsend shuts its side down.
  wait_for "$socat_pid" 100
  rc=$?
  [ "$rc" -eq 0 ] || fail "socat exited $rc: $(cat "$tmp/socat.err")"
  if ! cmp "$tmp/in.bin" "$tmp/socat.out"; then
    fail "socat received $(wc -c <"$tmp/socat.out") bytes, not the file's $(wc -c <"$tmp/in.bin")"
  fi
fi

# --- 2. zcsend -> zcsend --listen, the pattern -----------------------------------

"$zcsend" --listen 0 --bind 127.0.0.1 --check-pattern \
  >"$tmp/listen.out" 2>"$tmp/listen.err" &
listen_pid=$!
pids+=("$listen_pid")
lport=
for _ in $(seq 100); do
  lport=$(sed -n '1s/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
    "$tmp/listen.out")
  [ -n "$lport" ] && break
  kill -0 "$listen_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$lport" ]; then
  fail "receiver did not say where it listens: $(cat "$tmp/listen.out" "$tmp/listen.err")"
else
  "$zcsend" --peer "127.0.0.1:$lport" --bytes 8M >"$tmp/send2.out" \
    2>"$tmp/send2.err"
  rc=$?
  [ "$rc" -eq 0 ] || fail "pattern send exited $rc: $(cat "$tmp/send2.err")"
  grep -q '^sent 8M (8388608 bytes) on 1 connection in ' "$tmp/send2.out" ||
    fail "pattern send: no 'sent' line: $(cat "$tmp/send2.out")"
  grep -q '^stats: ' "$tmp/send2.out" ||
    fail "pattern send: no stats line: $(cat "$tmp/send2.out")"
  wait_for "$listen_pid" 100
  rc=$?
  [ "$rc" -eq 0 ] || fail "receiver exited $rc: $(cat "$tmp/listen.err")"
  [ ! -s "$tmp/listen.err" ] || fail "receiver wrote to stderr: $(cat "$tmp/listen.err")"
  grep -qxF 'pattern: OK (8388608 bytes checked)' "$tmp/listen.out" ||
    fail "receiver: pattern not OK: $(cat "$tmp/listen.out")"
fi

# --- 3. hostile inputs and limits ----------------------------------------------

mkfifo "$tmp/fifo"
for args in "--trace /dev/zero" "--file /dev/zero" "--trace $tmp/fifo" \
  "--file $tmp/fifo" "--file $tmp"; do
  # shellcheck disable=SC2086 # split on purpose
  timeout 20 "$zcsend" --loopback $args >"$tmp/bad.out" 2>"$tmp/bad.err"
  rc=$?
  [ "$rc" -eq 2 ] || fail "--loopback $args exited $rc, not 2: $(head -c 300 "$tmp/bad.err")"
  [ ! -s "$tmp/bad.out" ] || fail "--loopback $args wrote to stdout: $(head -c 300 "$tmp/bad.out")"
  [ "$(wc -l <"$tmp/bad.err")" -eq 1 ] ||
    fail "--loopback $args: not one line on stderr: $(head -c 300 "$tmp/bad.err")"
done

# 200 connections need 400 descriptors besides the ring: the receiver's accept
# (or the sender's socket) gets EMFILE.
(
  ulimit -n 256
  exec timeout 60 "$zcsend" --loopback --connections 200 --bytes 64K \
    >"$tmp/emfile.out" 2>"$tmp/emfile.err"
)
rc=$?
[ "$rc" -eq 1 ] || fail "--loopback with ulimit -n 256 exited $rc, not 1: $(cat "$tmp/emfile.err")"
grep -q '^zcsend: .*Too many open files' "$tmp/emfile.err" ||
  fail "--loopback with ulimit -n 256: no EMFILE error: $(cat "$tmp/emfile.err")"

# A report that cannot be written (stdout on /dev/full) fails the run.
if [ -w /dev/full ]; then
  timeout 60 "$zcsend" --loopback --bytes 1M >/dev/full 2>"$tmp/full.err"
  rc=$?
  [ "$rc" -eq 1 ] || fail "--loopback >/dev/full exited $rc, not 1: $(cat "$tmp/full.err")"
  grep -qxF 'zcsend: cannot write the report to the output (stdout)' \
    "$tmp/full.err" || fail "--loopback >/dev/full: $(cat "$tmp/full.err")"
fi

# A receiver whose --out is a FIFO without a reader is refused before it
# listens (its open used to block).
timeout 20 "$zcsend" --listen 0 --bind 127.0.0.1 --out "$tmp/fifo" \
  >"$tmp/outfifo.out" 2>"$tmp/outfifo.err"
rc=$?
[ "$rc" -eq 2 ] || fail "--listen --out FIFO exited $rc, not 2: $(cat "$tmp/outfifo.err")"
[ ! -s "$tmp/outfifo.out" ] || fail "--listen --out FIFO wrote: $(cat "$tmp/outfifo.out")"

# SIGTERM while one-byte buffers are enqueued ends the run with 143.
timeout -s KILL 60 "$zcsend" --loopback --bytes 64M --split 1 \
  --max-in-flight 64M >"$tmp/term.out" 2>"$tmp/term.err" &
term_pid=$!
for _ in $(seq 100); do
  grep -q '^plan of the first message' "$tmp/term.out" && break
  sleep 0.1
done
kill -TERM "$term_pid" 2>/dev/null
wait "$term_pid"
rc=$?
[ "$rc" -eq 143 ] || fail "--split 1 after SIGTERM exited $rc, not 143: $(cat "$tmp/term.err")"

[ "$failures" -eq 0 ] && echo PASS
exit "$failures"
