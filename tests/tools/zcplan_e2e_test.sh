#!/usr/bin/env bash
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

[ "$failures" -eq 0 ] && echo PASS
exit "$failures"
