#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""QPS of zchttpd under wrk on loopback, per send strategy (issue 10, sec. 2).

    bazel build -c opt //tools:zchttpd
    python3 bench/http_qps.py --repetitions 3 --duration 5s \\
        --csv bench/results/http_qps.csv --json bench/results/http_qps.json \\
        --svg bench/results/http_qps.svg

Builds nothing: --server is the zchttpd binary (default
bazel-bin/tools/zchttpd of this checkout, so build it with -c opt first).
For every repetition it runs each (shape, N, strategy) once: the (shape, N)
blocks in an order shuffled per repetition (--seed), and inside a block the
strategies back to back, the two sides of each bar's ratio next to each
other (size-aware beside all-zero-copy, adaptive beside all-copy; the pairs
and their sides in an order shuffled per block: A B C D, D C A B, B A D C,
...). Drift on a shared machine then spreads over all strategies instead of
landing on one, and the runs a ratio compares are seconds apart: next to
each bar's ratio of medians it prints the "paired" ratio, the median over
repetitions of the ratio inside one block (with its min..max). On this
project's 2-core VMs throughput flips between a fast and a slow state for
seconds at a time, so a median of three can land on either; the paired
ratio compares runs made in the same state far more often. The verdicts
are on the ratio of medians, as the bars are stated. Each run
starts a fresh zchttpd (--listen 127.0.0.1:0), waits for its "listening on"
line, runs `wrk -t1 -c100 -dD --latency` against http://ADDR/SHAPE, then
stops the server with SIGTERM (never ignored, unlike SIGINT in a
background job) and reads its "final:" line. A server per run
costs a few milliseconds (two small arenas) and makes each run's server
counters that run's alone: its responses can be checked against wrk's
requests, and no strategy inherits another's adaptive state or queues.

Strategies (zchttpd flags):
  size-aware     --threshold 16K --adaptive off
  all-zero-copy  --threshold 0 --adaptive off --zc-cap 1G (the cap raised,
                 so it stays zero-copy instead of copying past 4 MiB; as
                 root nothing is charged to RLIMIT_MEMLOCK, otherwise the
                 kernel's -ENOMEM makes the executor copy anyway)
  all-copy       --threshold never
  adaptive       --threshold 16K --adaptive on   (size-aware with adaptive)
Shapes: /N (a 64 KiB body in N pieces: N-1 slices of 65536/N bytes and the
rest, after the HTTP header buffer; netty issue 16086's shape) and /mixed/N
(the 256 KiB reference message: 4 KiB, two 64 KiB pieces, N-3 small ones;
zchttpd accepts every N >= 1: /mixed/1 is one 256 KiB buffer, /mixed/2 and
/mixed/3 the 4 KiB piece and the rest in equal parts).

CPU placement: the server is pinned to CPU 0 and wrk to CPU 1 (taskset), and
wrk runs one thread. zchttpd runs one ring on one thread (--threads 1), so
one core is all it can use; wrk must not steal that core, or the run
measures the scheduler; with two cores there is nothing else to give wrk,
and a second wrk thread would only share CPU 1 with the first. --no-pin
leaves placement to the kernel (and is implied when taskset is missing or
there are fewer than 2 CPUs, with a note).

Per run it records wrk's Requests/sec, its latency p50 and p99 (--latency),
socket errors (connect, read, write, timeout) and "Non-2xx or 3xx
responses", and checks the server's final line: every response a 200, the
responses at least wrk's completed requests and at most that plus the
connections (requests in flight when wrk stops are answered but not counted
by wrk), no accept errors and no buffers_kernel_may_read (buffers released
as failed are expected: wrk closes its connections with responses queued). A mismatch is printed and kept in
the JSON; it is not fatal.

Output: one progress line per run on stderr; then on stdout, per shape, a
table of QPS (median and min..max over the repetitions) per strategy with the
ratios size-aware/all-zero-copy, size-aware/all-copy and adaptive/all-copy
(ratios of medians) beside netty's published 3.12x (N=1024) and 6.67x
(N=2048); a table of latency (median p50 and p99 over repetitions) and
errors (summed); then the bars, PASS or MISS:
  size-aware >= 3x all-zero-copy at N=1024 and >= 6x at N=2048 on /N
  adaptive >= 0.95x all-copy at every N, both shapes
  zero socket errors and zero non-2xx for every strategy
A bar whose sides are not in this run (--strategies, --pieces) is left out.
--csv writes one row per run, --json everything (runs, summary, bars, server
checks, load average before and after), --svg a plot of QPS against pieces.

Exit status: 0 when no bar is missed, 1 when one is, 2 on bad input or when
the server or wrk cannot be run.
"""

import argparse
import csv
import json
import math
import os
import random
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import time

STRATEGIES = {
    "size-aware": ["--threshold", "16K", "--adaptive", "off"],
    # The cap on bytes awaiting notification raised, so that it stays zero-
    # copy: at the executor's default (half of RLIMIT_MEMLOCK) it sends by
    # copy whenever 4 MiB await notification (cap_copies), which is not the
    # build netty measured.
    "all-zero-copy": ["--threshold", "0", "--adaptive", "off",
                      "--zc-cap", "1G"],
    "all-copy": ["--threshold", "never"],
    "adaptive": ["--threshold", "16K", "--adaptive", "on"],
}
SHAPES = {"plain": "/{n}", "mixed": "/mixed/{n}"}
SHAPE_TITLES = {
    "plain": "/N (64 KiB body in N pieces)",
    "mixed": "/mixed/N (256 KiB reference message)",
}
PIECES = [1, 16, 64, 256, 1024, 2048]
# The two sides of each bar's ratio; block_order runs them back to back.
PAIRS = [("size-aware", "all-zero-copy"), ("adaptive", "all-copy")]
NETTY = {1024: 3.12, 2048: 6.67}  # size-aware / all-zero-copy, netty 16086
COLORS = {
    "size-aware": "#1b6ac9",
    "all-zero-copy": "#d62728",
    "all-copy": "#2ca02c",
    "adaptive": "#9467bd",
}
START_TIMEOUT = 10.0  # seconds for the "listening on" line
STOP_TIMEOUT = 15.0  # seconds for exit after SIGTERM


class Failure(Exception):
    """The server or wrk could not be run (exit status 2)."""


def parse_duration(text):
    m = re.fullmatch(r"(\d+)(s?)", text)
    if not m or int(m.group(1)) < 1:
        raise argparse.ArgumentTypeError(
            f"bad duration {text!r}: whole seconds, e.g. 5s")
    return int(m.group(1))


def parse_list(choices):
    def parse(text):
        items = [t for t in text.split(",") if t]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"bad value {text!r}: a comma list of {', '.join(choices)}")
        return items
    return parse


def parse_pieces(text):
    try:
        items = [int(t) for t in text.split(",") if t]
    except ValueError:
        items = []
    if not items or any(n < 1 or n > 65536 for n in items):
        raise argparse.ArgumentTypeError(
            f"bad pieces {text!r}: a comma list of 1..65536")
    return items


# --- wrk ---------------------------------------------------------------------

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        return None
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(text):
    """wrk's summary as a dict; raises Failure when it has no Requests/sec."""
    out = {"qps": None, "requests": None, "p50_ms": None, "p99_ms": None,
           "connect_errors": 0, "read_errors": 0, "write_errors": 0,
           "timeout_errors": 0, "non2xx": 0}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        out["qps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
    dist = text.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
            m = re.search(rf"^\s*{pct}(?:\.000)?%\s+(\S+)", dist[1], re.M)
            if m:
                out[key] = to_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", text)
    if m:
        for i, key in enumerate(("connect_errors", "read_errors",
                                 "write_errors", "timeout_errors")):
            out[key] = int(m.group(i + 1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    if out["qps"] is None or out["requests"] is None:
        raise Failure("wrk printed no Requests/sec line:\n" + text.strip())
    return out


# --- zchttpd -----------------------------------------------------------------

def parse_counters(line):
    """The key=value words of a stats or final line."""
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b(?!\.)", line)}


def start_server(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT
    line = ""
    while time.monotonic() < deadline:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            line = proc.stdout.readline()
            break
    sel.close()
    m = re.match(r"listening on (\S+) ", line)
    if not m:
        proc.kill()
        _, err = proc.communicate()
        raise Failure(f"{' '.join(cmd)}: no 'listening on' line "
                      f"(got {line.strip()!r}; stderr {err.strip()!r}; "
                      f"exit {proc.returncode})")
    return proc, m.group(1)


def stop_server(proc):
    """SIGTERM, then the final line's counters (None when there is none)."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, f"did not exit {STOP_TIMEOUT:.0f}s after SIGTERM", ""
    final = [l for l in out.splitlines() if l.startswith("final: ")]
    note = "" if proc.returncode == 0 else f"exit {proc.returncode}: {err}"
    if not final:
        return None, note or "no final line", ""
    return parse_counters(final[-1]), note, final[-1]


def check_server(final, note, wrk, connections):
    """Mismatches between the server's final counters and wrk, as text."""
    problems = []
    if note:
        problems.append(note.strip())
    if final is None:
        return problems
    responses = final.get("responses", 0)
    ok = final.get("status_200", 0)
    if ok != responses:
        problems.append(f"{responses - ok} responses were not 200")
    if responses < wrk["requests"]:
        problems.append(f"server responses={responses} < wrk requests="
                        f"{wrk['requests']}")
    elif responses > wrk["requests"] + connections:
        problems.append(f"server responses={responses} > wrk requests="
                        f"{wrk['requests']} + {connections} connections")
    if final.get("buffers_kernel_may_read", 0):
        problems.append(
            f"buffers_kernel_may_read={final['buffers_kernel_may_read']}")
    # buffers_released_failed is not checked: wrk closes its connections
    # with responses still queued, whose pieces are released as failed.
    if final.get("accept_errors", 0):
        problems.append(f"accept_errors={final['accept_errors']}")
    return problems


# --- the sweep ---------------------------------------------------------------

def pin(cpu, cmd, pinned):
    return ["taskset", "-c", str(cpu)] + cmd if pinned else cmd


def run_one(args, pinned, shape, n, strategy):
    server_cmd = pin(args.server_cpu,
                     [args.server, "--listen", "127.0.0.1:0", "--threads", "1"]
                     + STRATEGIES[strategy], pinned)
    proc, addr = start_server(server_cmd)
    path = SHAPES[shape].format(n=n)
    wrk_cmd = pin(args.wrk_cpu,
                  [args.wrk, "-t1", f"-c{args.connections}",
                   f"-d{args.duration}s", "--latency", f"http://{addr}{path}"],
                  pinned)
    try:
        res = subprocess.run(wrk_cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             timeout=args.duration + 60)
    except (OSError, subprocess.TimeoutExpired) as e:
        stop_server(proc)
        raise Failure(f"{' '.join(wrk_cmd)}: {e}")
    final, note, final_line = stop_server(proc)
    if res.returncode != 0:
        raise Failure(f"{' '.join(wrk_cmd)}: exit {res.returncode}: "
                      f"{res.stderr.strip()}")
    wrk = parse_wrk(res.stdout)
    problems = check_server(final, note, wrk, args.connections)
    return dict(wrk, shape=shape, pieces=n, strategy=strategy,
                server_final=final_line, server_problems=problems)


def block_order(strategies, rng):
    """The strategies of one (shape, N) block, in the order they run.

    The two sides of each bar's ratio (PAIRS) run back to back, the pairs
    and any other strategy in a shuffled order, each pair's two sides in a
    shuffled order: a ratio then compares runs seconds apart, whatever the
    machine did between the pairs."""
    units = [[a, b] for a, b in PAIRS if a in strategies and b in strategies]
    paired = {s for unit in units for s in unit}
    units += [[s] for s in strategies if s not in paired]
    order = []
    for unit in rng.sample(units, len(units)):
        order += rng.sample(unit, len(unit))
    return order


def summarize(runs, shapes, pieces, strategies):
    """{(shape, n, strategy): summary dict} over the repetitions."""
    summary = {}
    for shape in shapes:
        for n in pieces:
            for s in strategies:
                rs = [r for r in runs if (r["shape"], r["pieces"],
                                          r["strategy"]) == (shape, n, s)]
                if not rs:
                    continue
                q = [r["qps"] for r in rs]
                lat = lambda k: [r[k] for r in rs if r[k] is not None]
                p50, p99 = lat("p50_ms"), lat("p99_ms")
                summary[(shape, n, s)] = {
                    "shape": shape, "pieces": n, "strategy": s,
                    "repetitions": len(rs),
                    "qps_median": statistics.median(q),
                    "qps_min": min(q), "qps_max": max(q),
                    "p50_ms": statistics.median(p50) if p50 else None,
                    "p99_ms": statistics.median(p99) if p99 else None,
                    "socket_errors": sum(
                        r["connect_errors"] + r["read_errors"] +
                        r["write_errors"] + r["timeout_errors"] for r in rs),
                    "non2xx": sum(r["non2xx"] for r in rs),
                    "server_problems": sum(len(r["server_problems"])
                                           for r in rs),
                }
    return summary


def ratio(summary, shape, n, a, b):
    sa, sb = summary.get((shape, n, a)), summary.get((shape, n, b))
    if not sa or not sb or not sb["qps_median"]:
        return None
    return sa["qps_median"] / sb["qps_median"]


RATIOS = [("size-aware", "all-zero-copy", "sa/zc"),
          ("size-aware", "all-copy", "sa/copy"),
          ("adaptive", "all-copy", "ad/copy")]


def paired(runs, shape, n, a, b):
    """(median, min, max) over repetitions of A / B within one block."""
    qps = {(r["repetition"], r["strategy"]): r["qps"] for r in runs
           if (r["shape"], r["pieces"]) == (shape, n)}
    rs = sorted(qps[(k, a)] / qps[(k, b)]
                for k in {key[0] for key in qps}
                if (k, a) in qps and qps.get((k, b)))
    if not rs:
        return None
    return statistics.median(rs), rs[0], rs[-1]


def fmt_ratio(r, p):
    text = f"{r:.2f}x"
    if p is not None:
        text += f" (paired {p[0]:.2f}x, {p[1]:.2f}..{p[2]:.2f})"
    return text


def bars(summary, runs, shapes, pieces, strategies):
    """[(name, ratio or count, PASS|MISS)] for the bars with data."""
    out = []
    for n, need in ((1024, 3.0), (2048, 6.0)):
        r = ratio(summary, "plain", n, "size-aware", "all-zero-copy")
        if r is not None:
            p = paired(runs, "plain", n, "size-aware", "all-zero-copy")
            out.append((f"/N N={n}: size-aware >= {need:g}x all-zero-copy "
                        f"(netty {NETTY[n]}x)", fmt_ratio(r, p),
                        "PASS" if r >= need else "MISS"))
    for shape in shapes:
        for n in pieces:
            r = ratio(summary, shape, n, "adaptive", "all-copy")
            if r is not None:
                p = paired(runs, shape, n, "adaptive", "all-copy")
                out.append((f"{SHAPES[shape].format(n='N')} N={n}: adaptive "
                            f">= 0.95x all-copy", fmt_ratio(r, p),
                            "PASS" if r >= 0.95 else "MISS"))
    for s in strategies:
        errs = [v for k, v in summary.items() if k[2] == s]
        if errs:
            se = sum(v["socket_errors"] for v in errs)
            nx = sum(v["non2xx"] for v in errs)
            out.append((f"{s}: zero socket errors and zero non-2xx",
                        f"{se} socket errors, {nx} non-2xx",
                        "PASS" if se == 0 and nx == 0 else "MISS"))
    return out


def fmt_qps(v):
    return f"{v:.0f}" if v < 1e5 else f"{v / 1e3:.0f}k"


def table(summary, shapes, pieces, strategies):
    lines = []
    for shape in shapes:
        lines.append(f"{SHAPE_TITLES[shape]}: QPS median (min..max)")
        head = f"{'N':>5}"
        for s in strategies:
            head += f"  {s:>21}"
        head += "  " + "  ".join(f"{name:>7}" for _, _, name in RATIOS)
        if shape == "plain":
            head += "  netty sa/zc"
        lines.append(head)
        for n in pieces:
            row = f"{n:>5}"
            for s in strategies:
                v = summary.get((shape, n, s))
                cell = (f"{fmt_qps(v['qps_median'])} ({fmt_qps(v['qps_min'])}"
                        f"..{fmt_qps(v['qps_max'])})") if v else "-"
                row += f"  {cell:>21}"
            for a, b, name in RATIOS:
                r = ratio(summary, shape, n, a, b)
                row += f"  {(f'{r:.2f}x' if r is not None else '-'):>7}"
            if shape == "plain":
                row += f"  {(f'{NETTY[n]}x' if n in NETTY else ''):>11}"
            lines.append(row.rstrip())
        lines.append("")
        lines.append(f"{SHAPE_TITLES[shape]}: latency p50/p99 ms (median), "
                     "socket errors + non-2xx (sum)")
        head = f"{'N':>5}"
        for s in strategies:
            head += f"  {s:>21}"
        lines.append(head)
        for n in pieces:
            row = f"{n:>5}"
            for s in strategies:
                v = summary.get((shape, n, s))
                if v:
                    p = lambda x: "-" if x is None else f"{x:.2f}"
                    cell = (f"{p(v['p50_ms'])}/{p(v['p99_ms'])} "
                            f"e{v['socket_errors'] + v['non2xx']}")
                else:
                    cell = "-"
                row += f"  {cell:>21}"
            lines.append(row.rstrip())
        lines.append("")
    return "\n".join(lines)


# --- SVG ---------------------------------------------------------------------

def nice_ticks(top, count=5):
    if top <= 0:
        return [0, 1]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def esc(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def svg(summary, shapes, pieces, strategies, subtitle):
    pw, ph = 430, 300  # plot area of one panel
    ml, mr, mt, mb = 70, 20, 60, 55
    panel_w = ml + pw + mr
    width = panel_w * len(shapes)
    legend_h = 18 * ((len(strategies) + 1) // 2) + 6
    height = mt + ph + mb + legend_h
    xs = sorted(pieces)
    lo, hi = math.log2(xs[0]), math.log2(xs[-1])
    span = (hi - lo) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" '
           'font-size="15" font-weight="bold">zchttpd under wrk on loopback: '
           'QPS against pieces per response</text>',
           f'<text x="{width / 2}" y="38" text-anchor="middle" '
           f'fill="#555">{esc(subtitle)}</text>']
    for i, shape in enumerate(shapes):
        ox = i * panel_w + ml
        vals = [v["qps_max"] for k, v in summary.items() if k[0] == shape]
        ticks = nice_ticks(max(vals) * 1.05 if vals else 1)
        ytop = ticks[-1]
        X = lambda n: ox + (math.log2(n) - lo) / span * pw if len(xs) > 1 \
            else ox + pw / 2
        Y = lambda q: mt + ph - q / ytop * ph
        out.append(f'<text x="{ox + pw / 2}" y="{mt - 8}" '
                   f'text-anchor="middle" font-weight="bold">'
                   f'{esc(SHAPE_TITLES[shape])}</text>')
        def grid(x1, y1, x2, y2, tx, ty, anchor, label):
            out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
                       f'y2="{y2:.1f}" stroke="#ebebeb"/>')
            out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" '
                       f'text-anchor="{anchor}">{label}</text>')
        for t in ticks:
            grid(ox, Y(t), ox + pw, Y(t), ox - 6, Y(t) + 4, "end", fmt_qps(t))
        for n in xs:
            grid(X(n), mt, X(n), mt + ph, X(n), mt + ph + 16, "middle", n)
        out.append(f'<rect x="{ox}" y="{mt}" width="{pw}" height="{ph}" '
                   'fill="none" stroke="#333"/>')
        out.append(f'<text x="{ox + pw / 2}" y="{mt + ph + 36}" '
                   'text-anchor="middle">pieces per response (log scale)'
                   '</text>')
        cy = mt + ph / 2
        out.append(f'<text x="{ox - 52}" y="{cy}" text-anchor="middle" '
                   f'transform="rotate(-90 {ox - 52} {cy})">requests/s '
                   '(median, bars: min..max)</text>')
        for s in strategies:
            pts = [(n, summary[(shape, n, s)]) for n in xs
                   if (shape, n, s) in summary]
            if not pts:
                continue
            c = COLORS[s]
            dash = ' stroke-dasharray="6 3"' if s == "adaptive" else ""
            path = " ".join(f"{X(n):.1f},{Y(v['qps_median']):.1f}"
                            for n, v in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{c}" '
                       f'stroke-width="2"{dash}/>')
            for n, v in pts:
                x = X(n)
                out.append(f'<line x1="{x:.1f}" y1="{Y(v["qps_min"]):.1f}" '
                           f'x2="{x:.1f}" y2="{Y(v["qps_max"]):.1f}" '
                           f'stroke="{c}" stroke-width="1"/>')
                out.append(f'<circle cx="{x:.1f}" '
                           f'cy="{Y(v["qps_median"]):.1f}" r="3" fill="{c}">'
                           f'<title>{esc(s)} N={n}: {v["qps_median"]:.0f} '
                           f'req/s</title></circle>')
    # The legend: two entries a row, under the panels.
    columns = 2
    for k, s in enumerate(strategies):
        lx = ml + (k % columns) * (width - ml) / columns
        ly = mt + ph + mb + 4 + (k // columns) * 18
        c = COLORS[s]
        dash = ' stroke-dasharray="6 3"' if s == "adaptive" else ""
        out.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 24:.1f}" '
                   f'y2="{ly - 4}" stroke="{c}" stroke-width="2"{dash}/>')
        label = {"adaptive": "size-aware + adaptive"}.get(s, s)
        label += f" ({' '.join(STRATEGIES[s])})"
        out.append(f'<text x="{lx + 30:.1f}" y="{ly}">{esc(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- main --------------------------------------------------------------------

def default_server():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "bazel-bin", "tools", "zchttpd")


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def main(argv):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=default_server(),
                   help="zchttpd binary (default: bazel-bin/tools/zchttpd of "
                   "this checkout; run `bazel build -c opt //tools:zchttpd` "
                   "first)")
    p.add_argument("--wrk", default="wrk", help="wrk binary (default: wrk)")
    p.add_argument("--duration", type=parse_duration, default=5,
                   help="seconds per run (default 5s)")
    p.add_argument("--repetitions", type=int, default=3,
                   help="repetitions, interleaved (default 3)")
    p.add_argument("--connections", type=int, default=100,
                   help="wrk connections (default 100)")
    p.add_argument("--pieces", type=parse_pieces, default=PIECES,
                   help="comma list of N (default 1,16,64,256,1024,2048)")
    p.add_argument("--shapes", type=parse_list(list(SHAPES)),
                   default=list(SHAPES), help="comma list of plain,mixed")
    p.add_argument("--strategies", type=parse_list(list(STRATEGIES)),
                   default=list(STRATEGIES),
                   help="comma list of " + ",".join(STRATEGIES))
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the per-repetition order (default 1)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--wrk-cpu", type=int, default=1)
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the server and wrk with taskset")
    p.add_argument("--csv", help="write one row per run here")
    p.add_argument("--json", help="write runs, summary and bars here")
    p.add_argument("--svg", help="write the QPS plot here")
    p.add_argument("--replot", metavar="JSON",
                   help="run nothing: print the table and bars of the runs "
                   "in this --json file, and write --csv/--svg from them")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    if args.replot:
        return replot(args)
    if args.repetitions < 1 or args.connections < 1:
        print("http_qps: --repetitions and --connections must be >= 1",
              file=sys.stderr)
        return 2
    if not os.access(args.server, os.X_OK):
        print(f"http_qps: no zchttpd at {args.server}: run `bazel build -c "
              "opt //tools:zchttpd` or pass --server", file=sys.stderr)
        return 2
    if shutil.which(args.wrk) is None:
        print(f"http_qps: no wrk ({args.wrk}): tools/setup.sh installs it",
              file=sys.stderr)
        return 2
    pinned = not args.no_pin
    if pinned and (shutil.which("taskset") is None or
                   (os.cpu_count() or 1) < 2):
        print("http_qps: note: not pinning (no taskset, or fewer than 2 "
              "CPUs)", file=sys.stderr)
        pinned = False

    blocks = [(sh, n) for sh in args.shapes for n in args.pieces]
    rng = random.Random(args.seed)
    load_before = loadavg()
    if load_before != "unknown" and float(load_before.split()[0]) > 0.7:
        print(f"http_qps: note: load average {load_before} before the "
              "sweep: other work on this machine widens the spread of every "
              "strategy's runs", file=sys.stderr)
    started = time.time()
    runs = []
    total = len(blocks) * len(args.strategies) * args.repetitions
    try:
        for rep in range(args.repetitions):
            order = []
            for shape, n in rng.sample(blocks, len(blocks)):
                order += [(shape, n, s)
                          for s in block_order(args.strategies, rng)]
            for shape, n, s in order:
                r = run_one(args, pinned, shape, n, s)
                r["repetition"] = rep
                runs.append(r)
                errs = (r["connect_errors"] + r["read_errors"] +
                        r["write_errors"] + r["timeout_errors"])
                msg = (f"[{len(runs)}/{total}] rep {rep} "
                       f"{SHAPES[shape].format(n=n):<11} {s:<13} "
                       f"{r['qps']:>9.0f} req/s  p50 {r['p50_ms']}ms "
                       f"p99 {r['p99_ms']}ms  errors {errs} non2xx "
                       f"{r['non2xx']}")
                if r["server_problems"]:
                    msg += "  SERVER: " + "; ".join(r["server_problems"])
                print(msg, file=sys.stderr, flush=True)
    except Failure as e:
        print(f"http_qps: {e}", file=sys.stderr)
        return 2
    load_after = loadavg()
    placement = (f"server on CPU {args.server_cpu}, wrk -t1 on CPU "
                 f"{args.wrk_cpu}" if pinned else "not pinned")
    meta = {
        "command": " ".join([os.path.basename(sys.argv[0])] + argv),
        "server": args.server,
        "duration_s": args.duration,
        "repetitions": args.repetitions,
        "connections": args.connections,
        "placement": placement,
        "shapes": args.shapes,
        "pieces": args.pieces,
        "strategies": {s: STRATEGIES[s] for s in args.strategies},
        "load_average_before": load_before,
        "load_average_after": load_after,
        "started_unix": started,
    }
    return report(args, meta, runs)


def replot(args):
    try:
        with open(args.replot) as f:
            data = json.load(f)
        runs = data["runs"]
        meta = {k: v for k, v in data.items()
                if k not in ("runs", "summary", "ratios", "bars",
                             "netty_size_aware_over_all_zero_copy")}
        meta.setdefault("shapes", [sh for sh in SHAPES
                                   if any(r["shape"] == sh for r in runs)])
        meta.setdefault("pieces", sorted({r["pieces"] for r in runs}))
        # The checks again, as this version of the script makes them; what
        # the counters cannot show (exit status, no final line) is kept.
        for r in runs:
            kept = [t for t in r["server_problems"]
                    if t.startswith(("exit ", "did not exit", "no final"))]
            final = (parse_counters(r["server_final"])
                     if r["server_final"] else None)
            r["server_problems"] = kept + check_server(
                final, "", r, meta["connections"])
    except (OSError, ValueError, KeyError) as e:
        print(f"http_qps: cannot read {args.replot}: {e}", file=sys.stderr)
        return 2
    args.json = None  # the file read stays as it is
    return report(args, meta, runs)


def report(args, meta, runs):
    """Prints the table and bars; writes --csv, --json, --svg."""
    shapes, pieces = meta["shapes"], meta["pieces"]
    strategies = [s for s in STRATEGIES if s in meta["strategies"]]
    placement = meta["placement"]
    summary = summarize(runs, shapes, pieces, strategies)
    results = bars(summary, runs, shapes, pieces, strategies)
    run_text = (f"wrk -t1 -c{meta['connections']} -d{meta['duration_s']}s, "
                f"{meta['repetitions']} repetitions interleaved, {placement}")
    print(f"zchttpd under {run_text}; load average before "
          f"{meta['load_average_before']}, after "
          f"{meta['load_average_after']}")
    print()
    print(table(summary, shapes, pieces, strategies))
    print("Bars (ratios of medians):")
    for name, value, verdict in results:
        print(f"  {verdict}  {name}: {value}")
    problems = [r for r in runs if r["server_problems"]]
    print(f"Server checks: {len(runs) - len(problems)}/{len(runs)} runs "
          "consistent (responses vs wrk requests, all 200, no accept "
          "errors, no buffers_kernel_may_read)")
    for r in problems:
        print(f"  {SHAPES[r['shape']].format(n=r['pieces'])} {r['strategy']} "
              f"rep {r['repetition']}: {'; '.join(r['server_problems'])}")

    fields = ["repetition", "shape", "pieces", "strategy", "qps", "requests",
              "p50_ms", "p99_ms", "connect_errors", "read_errors",
              "write_errors", "timeout_errors", "non2xx", "server_problems",
              "server_final"]
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in runs:
                w.writerow(dict({k: r[k] for k in fields},
                                server_problems="; ".join(
                                    r["server_problems"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta, **{
                "runs": runs,
                "summary": list(summary.values()),
                "ratios": [{"shape": sh, "pieces": n, "ratio": name,
                            "value": ratio(summary, sh, n, a, b),
                            "paired": paired(runs, sh, n, a, b)}
                           for sh in shapes for n in pieces
                           for a, b, name in RATIOS],
                "netty_size_aware_over_all_zero_copy": NETTY,
                "bars": [{"bar": n, "value": v, "verdict": d}
                         for n, v, d in results],
            }), f, indent=1)
            f.write("\n")
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg(summary, shapes, pieces, strategies, run_text))
    return 1 if any(d == "MISS" for _, _, d in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
