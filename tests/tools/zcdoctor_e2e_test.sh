#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end check of the real zcdoctor binary: stdout, stderr and exit
# codes, on this machine's loopback.
# Usage: zcdoctor_e2e_test.sh PATH_TO_ZCDOCTOR
set -u
zcdoctor=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Loopback: the report on stdout, exit 1, nothing on stderr.
"$zcdoctor" --peer 127.0.0.1 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] || fail "--peer 127.0.0.1 exited $rc"
[ ! -s "$tmp/err" ] || fail "--peer 127.0.0.1 wrote to stderr: $(cat "$tmp/err")"
tail -n 1 "$tmp/out" | grep -q '^verdict: zero-copy cannot pay' ||
  fail "--peer 127.0.0.1: no verdict: $(cat "$tmp/out")"
grep -q 'the receiving side copies' "$tmp/out" ||
  fail "--peer 127.0.0.1: loopback not named as copying"

# JSON: one line, one object.
"$zcdoctor" --format=json --peer 127.0.0.1 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] || fail "--format=json exited $rc"
[ "$(wc -l <"$tmp/out")" -eq 1 ] || fail "--format=json: not one line"
grep -q '^{"verdict":{"pays":false,' "$tmp/out" ||
  fail "--format=json: $(head -c 200 "$tmp/out")"

# Bad input: exit 2, one line on stderr, nothing on stdout.
"$zcdoctor" --format=xml >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "--format=xml exited $rc"
[ ! -s "$tmp/out" ] || fail "--format=xml wrote to stdout: $(cat "$tmp/out")"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "--format=xml: not one line"
grep -q "^zcdoctor: --format: bad format 'xml'" "$tmp/err" ||
  fail "--format=xml: $(cat "$tmp/err")"

# --version first.
"$zcdoctor" --bogus --version >"$tmp/out" 2>"$tmp/err" ||
  fail "--version exited $?"
grep -q '^zcdoctor [0-9]' "$tmp/out" || fail "--version: $(cat "$tmp/out")"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "PASS"
