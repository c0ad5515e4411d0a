#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end check of the real zcplan binary: stdout, stderr and exit codes.
# Usage: zcplan_e2e_test.sh PATH_TO_ZCPLAN
set -u
zcplan=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The seed example, on stdout, exit 0, nothing on stderr.
out=$("$zcplan" plan --threshold=16K 4K 4K 16K 32K 2K 2>"$tmp/err")
rc=$?
[ "$rc" -eq 0 ] || fail "seed example exited $rc"
[ ! -s "$tmp/err" ] || fail "seed example wrote to stderr: $(cat "$tmp/err")"
grep -qxF '  writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]' <<<"$out" ||
  fail "seed example summary missing: $out"

# Help goes to stdout with exit 0.
"$zcplan" --help >"$tmp/out" 2>"$tmp/err" || fail "--help exited $?"
head -n 1 "$tmp/out" | grep -q '^usage: zcplan' || fail "--help: no usage"
[ ! -s "$tmp/err" ] || fail "--help wrote to stderr"

# Bad input: exit 2, one line on stderr, nothing on stdout.
"$zcplan" plan 12Q >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "12Q exited $rc"
[ ! -s "$tmp/out" ] || fail "12Q wrote to stdout: $(cat "$tmp/out")"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "12Q: not one line: $(cat "$tmp/err")"
grep -q "^zcplan: .*'12Q'" "$tmp/err" || fail "12Q: $(cat "$tmp/err")"

# Inputs that are not regular files: exit 2 at once, one line, no stdout.
# A FIFO with no writer would block a plain open() forever; `timeout` turns
# such a hang into exit 124, a failure here, instead of a stuck test.
fifo="$tmp/no_writer.fifo"
rm -f "$fifo"
mkfifo "$fifo" || fail "mkfifo $fifo"
expect_refused() { # EXPECTED_TEXT ARGS...
  local expected=$1
  shift
  timeout 30 "$zcplan" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "$*: exited $rc (124 is a hang): $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || fail "$*: wrote to stdout"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$*: not one line: $(cat "$tmp/err")"
  grep -qF -- "$expected" "$tmp/err" || fail "$*: $(cat "$tmp/err")"
}
expect_refused "trace file '$fifo': is a FIFO" plan --trace "$fifo"
expect_refused "weights file '$fifo': is a FIFO" simulate --weights "$fifo" 4K
expect_refused "trace file '/dev/zero': is a character device" \
  plan --trace /dev/zero
expect_refused "weights file '/dev/zero': is a character device" \
  simulate --weights /dev/zero 4K
expect_refused "trace file '$tmp': is a directory" simulate --trace "$tmp"
: >"$tmp/empty.weights"
expect_refused "names no weight" simulate --weights "$tmp/empty.weights" 4K
expect_refused "bad size '--threshold': it comes after '--'" \
  plan -- --threshold 4K
rm -f "$fifo"

# Weights that would make a cost overflow to inf are refused.
expect_refused "--per-op: bad weight '1e308': expected a number in 0..1000000000" \
  simulate --per-op 1e308 --per-zc-op 1e308 4K 64K

# A path with a terminal escape sequence is shown escaped, never raw.
evil="$tmp/tr"$'\e]0;pwn\a'"Y"
printf '4K 64K\n' >"$evil"
"$zcplan" simulate --trace "$evil" >"$tmp/out" 2>"$tmp/err" ||
  fail "escaped path: exited $?: $(cat "$tmp/err")"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$tmp/out"; then
  fail "control characters on stdout: $(cat -v "$tmp/out")"
fi
grep -qF 'input: '"$tmp"'/tr\x1b]0;pwn\x07Y: 1 batch' "$tmp/out" ||
  fail "escaped path: $(cat -v "$tmp/out")"
rm -f "$evil"

# import: a capture in, a trace on stdout that simulate reads, nothing on
# stderr; a capture with no send on a TCP socket is bad input.
cat >"$tmp/cap.strace" <<'CAPTURE'
14187 writev(7<TCP:[127.0.0.1:18473->127.0.0.1:34828]>, [{iov_base="HTTP/1.1 200 OK\r\n"..., iov_len=254}, {iov_base="\3\"}"..., iov_len=1024}], 2) = 1278
14187 write(4</var/log/nginx/access.log>, "127.0.0.1 - - [01/Dec/2026:14:40"..., 94) = 94
CAPTURE
"$zcplan" import "$tmp/cap.strace" >"$tmp/imported.trace" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 0 ] || fail "import exited $rc: $(cat "$tmp/err")"
[ ! -s "$tmp/err" ] || fail "import wrote to stderr: $(cat "$tmp/err")"
grep -qxF '254 1K' "$tmp/imported.trace" ||
  fail "import: no batch '254 1K': $(cat "$tmp/imported.trace")"
grep -qF 'not a TCP socket: file' "$tmp/imported.trace" ||
  fail "import: the log write is not reported: $(cat "$tmp/imported.trace")"
"$zcplan" simulate --trace "$tmp/imported.trace" >"$tmp/out" 2>"$tmp/err" ||
  fail "simulate on the import exited $?: $(cat "$tmp/err")"
grep -q '^input: .*: 1 batch, 2 iovecs' "$tmp/out" ||
  fail "simulate on the import: $(cat "$tmp/out")"
printf 'hello\n' >"$tmp/not_strace.txt"
expect_refused "no send on a TCP socket in its 1 line" \
  import "$tmp/not_strace.txt"

[ "$failures" -eq 0 ] && echo PASS
exit "$failures"
