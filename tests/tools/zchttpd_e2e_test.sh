#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end check of the real zchttpd binary, as a script drives it:
#   1. --listen 127.0.0.1:0 prints "listening on 127.0.0.1:PORT" first;
#      curl fetches /16 and /mixed/16 over one connection (bodies checked
#      against the pattern), a --stats-every line appears, and SIGTERM ends
#      it with exit 0, "stopping (SIGTERM)" and a "final:" line counting the
#      two requests; nothing on stderr.
#   2. A second server takes an absolute-form request and a HEAD request
#      (the GET's Content-Length, no body) from curl
#      (--request-target http://..., --head), then pipelined load from h2load --h1
#      (nghttp2-client; this part is skipped, saying so, without it): every
#      request succeeds, the body bytes add up exactly, and the final line
#      counts them all as 200.
#   3. With h2load: SIGTERM while 32 connections are loading the server
#      ends it within the 10 s bound with exit 0, "stopping (SIGTERM)" and
#      a "final:" line with no connection left open.
#   4. A bad flag exits 2 with one line on stderr and nothing on stdout.
# Skips (exit 0, "SKIP: reason") when curl is missing or io_uring is
# unavailable (the server says so on stderr and exits 1).
# Usage: zchttpd_e2e_test.sh PATH_TO_ZCHTTPD
set -u
zchttpd=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null' EXIT

if ! command -v curl >/dev/null 2>&1; then
  echo "SKIP: curl is not installed"
  exit 0
fi

"$zchttpd" --listen 127.0.0.1:0 --stats-every 100ms >"$tmp/out" 2>"$tmp/err" &
pid=$!
# Up to 10 s for the first line (or an early exit).
for _ in $(seq 100); do
  grep -q '^listening on ' "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '^listening on ' "$tmp/out"; then
  if grep -q 'io_uring' "$tmp/err"; then
    echo "SKIP: $(head -n 1 "$tmp/err")"
    exit 0
  fi
  fail "no listening line: $(cat "$tmp/out" "$tmp/err")"
  exit 1
fi
address=$(sed -n '1s/^listening on \([^ ]*\).*/\1/p' "$tmp/out")
codes=$(curl -sS --max-time 10 -w '%{http_code} %{num_connects}\n' \
  -o "$tmp/b16" "http://$address/16" -o "$tmp/bmixed" "http://$address/mixed/16")
[ "$codes" = "200 1
200 0" ] || fail "curl said: $codes"
# The pattern: the little-endian 32-bit words 0, 1, 2, ... (zchttpd_test
# checks every body in-process; here python3, where installed, and sizes).
[ "$(wc -c <"$tmp/b16") $(wc -c <"$tmp/bmixed")" = "65536 262144" ] ||
  fail "body sizes"
if command -v python3 >/dev/null 2>&1; then
  python3 - "$tmp/b16" 65536 "$tmp/bmixed" 262144 <<'PY' || fail "body mismatch"
import struct, sys
for path, size in zip(sys.argv[1::2], sys.argv[2::2]):
    size = int(size)
    want = struct.pack("<%dI" % (size // 4), *range(size // 4))
    if open(path, "rb").read() != want:
        sys.exit("%s differs from the pattern" % path)
PY
fi
for _ in $(seq 100); do
  grep -q '^stats: .*requests=2 ' "$tmp/out" && break
  sleep 0.1
done
grep -q '^stats: .*requests=2 ' "$tmp/out" || fail "no stats line with the requests"
kill -TERM "$pid"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc, want 0"
grep -q '^stopping (SIGTERM)$' "$tmp/out" || fail "no stopping line"
grep -q '^final: .*requests=2 responses=2 status_200=2 ' "$tmp/out" ||
  fail "final line: $(grep final "$tmp/out")"
[ -s "$tmp/err" ] && fail "stderr: $(cat "$tmp/err")"

# Waits up to 10 s for the "listening on" line in $1; prints the address.
wait_listening() {
  for _ in $(seq 100); do
    grep -q '^listening on ' "$1" && break
    sleep 0.1
  done
  sed -n '1s/^listening on \([^ ]*\).*/\1/p' "$1"
}

"$zchttpd" --listen 127.0.0.1:0 >"$tmp/load.out" 2>"$tmp/load.err" &
pid=$!
address=$(wait_listening "$tmp/load.out")
[ -n "$address" ] || fail "second server: $(cat "$tmp/load.out" "$tmp/load.err")"
got=$(curl -sS --max-time 10 -w '%{http_code} %{size_download}' -o /dev/null \
  --request-target "http://$address/7" "http://$address/")
[ "$got" = "200 65536" ] || fail "absolute-form target: curl said: $got"
# HEAD: the GET's Content-Length, no body (curl waits for none: --head).
got=$(curl -sS --max-time 10 --head -w '%{http_code} %{size_download}' \
  "http://$address/mixed/3" | tr -d '\r' | grep -E '^(Content-Length|[0-9]+ )')
[ "$got" = "Content-Length: 262144
200 0" ] || fail "HEAD: curl said: $got"
want=2
if command -v h2load >/dev/null 2>&1; then
  # 2000 requests of 256 KiB over 4 connections, 50 in flight on each.
  timeout 30 h2load --h1 -n 2000 -c 4 -m 50 "http://$address/mixed/64" \
    >"$tmp/h2load" 2>&1 || fail "h2load: $(tail -n 5 "$tmp/h2load")"
  grep -q '^requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored' \
    "$tmp/h2load" || fail "h2load: $(grep '^requests:' "$tmp/h2load")"
  grep -q '^traffic: .* (524288000) data$' "$tmp/h2load" ||
    fail "h2load body bytes: $(grep '^traffic:' "$tmp/h2load")"
  want=2002
else
  echo "SKIP (part): h2load is not installed (nghttp2-client, tools/setup.sh)"
fi
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "second server: SIGTERM: exit $rc, want 0"
grep -q "^final: .*requests=$want responses=$want status_200=$want connections_" \
  "$tmp/load.out" || fail "second server final line: $(grep final "$tmp/load.out")"
[ -s "$tmp/load.err" ] && fail "second server stderr: $(cat "$tmp/load.err")"

if command -v h2load >/dev/null 2>&1; then
  "$zchttpd" --listen 127.0.0.1:0 >"$tmp/stop.out" 2>"$tmp/stop.err" &
  pid=$!
  address=$(wait_listening "$tmp/stop.out")
  timeout 20 h2load --h1 -D 5 -c 32 -m 8 "http://$address/mixed/1024" \
    >"$tmp/h2load.stop" 2>&1 &
  loader=$!
  sleep 0.5
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    fail "SIGTERM under load: still running after 10 s"
    kill -KILL "$pid"
  fi
  wait "$pid"
  rc=$?
  pid=
  kill "$loader" 2>/dev/null
  wait "$loader" 2>/dev/null
  [ "$rc" -eq 0 ] || fail "SIGTERM under load: exit $rc, want 0"
  grep -q '^stopping (SIGTERM)$' "$tmp/stop.out" ||
    fail "SIGTERM under load: no stopping line"
  grep -q '^final: .* status_200=[1-9][0-9]* .*connections_open=0 ' \
    "$tmp/stop.out" ||
    fail "SIGTERM under load: final line: $(grep final "$tmp/stop.out")"
  [ -s "$tmp/stop.err" ] && fail "SIGTERM under load: stderr: $(cat "$tmp/stop.err")"
fi

"$zchttpd" --threads 0 >"$tmp/bad.out" 2>"$tmp/bad.err"
rc=$?
[ "$rc" -eq 2 ] || fail "--threads 0: exit $rc, want 2"
[ -s "$tmp/bad.out" ] && fail "--threads 0 wrote to stdout"
[ "$(wc -l <"$tmp/bad.err")" -eq 1 ] || fail "--threads 0: not one line"
grep -q '^zchttpd: --threads: ' "$tmp/bad.err" || fail "$(cat "$tmp/bad.err")"

[ "$failures" -eq 0 ] || exit 1
echo PASS
