#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Smoke test of bench/http_qps.py against the real zchttpd: its wrk parser on
# a canned wrk report (socket errors, non-2xx, latency units), then one short
# run (one shape, one N, one strategy, 1 s) whose CSV, JSON and SVG must be
# well-formed and agree. Skips (exit 0, "SKIP: reason") when python3 or wrk is
# missing or io_uring is unavailable.
# Usage: http_qps_smoke_test.sh PATH_TO_HTTP_QPS_PY PATH_TO_ZCHTTPD
set -u
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ beside the script
script=$1
zchttpd=$2
tmp=${TEST_TMPDIR:-$(mktemp -d)}

for tool in python3 wrk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed"
    exit 0
  fi
done

python3 - "$script" <<'PY' || exit 1
import importlib.util, sys
spec = importlib.util.spec_from_file_location("http_qps", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
report = """Running 5s test @ http://127.0.0.1:8080/1024
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.21ms    1.02ms  30.11ms   90.00%
    Req/Sec    23.45k     1.20k   25.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    4.50ms
     90%    5.10ms
     99%    1.20s
  116725 requests in 5.00s, 7.13GB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  23345.17
Transfer/sec:      1.43GB
"""
r = m.parse_wrk(report)
want = {"qps": 23345.17, "requests": 116725, "p50_ms": 0.85, "p99_ms": 1200.0,
        "connect_errors": 1, "read_errors": 2, "write_errors": 3,
        "timeout_errors": 4, "non2xx": 5}
for k, v in want.items():
    if abs(r[k] - v) > 1e-9:
        sys.exit(f"FAIL: parse_wrk {k}={r[k]}, want {v}")
clean = m.parse_wrk(report.replace("  Socket errors: connect 1, read 2, "
                                   "write 3, timeout 4\n", "")
                    .replace("  Non-2xx or 3xx responses: 5\n", ""))
if clean["timeout_errors"] or clean["non2xx"]:
    sys.exit(f"FAIL: parse_wrk without error lines: {clean}")
try:
    m.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    sys.exit("FAIL: parse_wrk accepted a report without Requests/sec")
except m.Failure:
    pass

# Block order: every strategy once, each bar's two sides next to each other,
# and over many blocks every arrangement of the pairs and their sides.
import random
rng = random.Random(7)
seen = set()
for strategies in (list(m.STRATEGIES), ["all-copy", "size-aware", "adaptive"],
                   ["size-aware"]):
    for _ in range(200):
        order = m.block_order(strategies, rng)
        if sorted(order) != sorted(strategies):
            sys.exit(f"FAIL: block_order({strategies}) = {order}")
        for a, b in m.PAIRS:
            if a in strategies and b in strategies and \
                    abs(order.index(a) - order.index(b)) != 1:
                sys.exit(f"FAIL: {a} and {b} apart in {order}")
        if len(strategies) == 4:
            seen.add(tuple(order))
if len(seen) != 8:
    sys.exit(f"FAIL: {len(seen)} of the 8 paired orders of 4 strategies seen")
PY

python3 "$script" --server "$zchttpd" --duration 1s --repetitions 1 \
  --pieces 16 --shapes plain --strategies size-aware --connections 10 \
  --csv "$tmp/q.csv" --json "$tmp/q.json" --svg "$tmp/q.svg" \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q 'io_uring' "$tmp/err"; then
  echo "SKIP: $(grep -m 1 'io_uring' "$tmp/err")"
  exit 0
fi
# 0: no bar missed; 1: a bar missed (not this test's business).
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
  echo "FAIL: http_qps.py exit $rc: $(cat "$tmp/out" "$tmp/err")" >&2
  exit 1
fi

python3 - "$tmp" <<'PY' || { cat "$tmp/out" "$tmp/err" >&2; exit 1; }
import csv, json, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/q.csv")))
if len(rows) != 1 or rows[0]["shape"] != "plain" or rows[0]["pieces"] != "16":
    sys.exit(f"FAIL: csv rows {rows}")
if not float(rows[0]["qps"]) > 0 or not rows[0]["server_final"]:
    sys.exit(f"FAIL: csv row {rows[0]}")
j = json.load(open(f"{d}/q.json"))
if len(j["runs"]) != 1 or len(j["summary"]) != 1:
    sys.exit("FAIL: json runs/summary")
if j["runs"][0]["server_problems"]:
    sys.exit(f"FAIL: server check: {j['runs'][0]['server_problems']}")
if abs(j["summary"][0]["qps_median"] - float(rows[0]["qps"])) > 1e-6:
    sys.exit("FAIL: json and csv disagree")
bars = [b for b in j["bars"] if b["bar"].startswith("size-aware: zero")]
if len(bars) != 1 or bars[0]["verdict"] != "PASS":
    sys.exit(f"FAIL: error bar {j['bars']}")
root = ET.parse(f"{d}/q.svg").getroot()
ns = "{http://www.w3.org/2000/svg}"
if root.tag != ns + "svg" or not root.findall(f".//{ns}polyline"):
    sys.exit("FAIL: svg has no svg root or no line")
out = open(f"{d}/out").read()
if "PASS  size-aware: zero socket errors" not in out:
    sys.exit("FAIL: table has no error bar")
PY
echo "PASS"
