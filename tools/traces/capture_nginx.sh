#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Captures the sends of a real server that zcplan did not write: Debian's
# nginx serving static files with `sendfile off` (so the bodies go through
# writev, not sendfile) over keep-alive connections to curl. This is how
# tools/traces/nginx_strace.txt was made; `zcplan import` turns the capture
# into tools/traces/nginx.trace.
#
# Usage: capture_nginx.sh [DIR [PORT]]   (defaults: a new temporary directory,
#                                         ports 18473 and 18474)
# Needs nginx (apt-get install nginx), strace and curl, and the right to
# ptrace the nginx workers (root, or kernel.yama.ptrace_scope=0). Writes
# DIR/nginx.conf, DIR/www/*.bin and the capture DIR/nginx_strace.txt.
#
# What it runs:
#   nginx -c DIR/nginx.conf -p DIR        (foreground, 2 worker processes)
#   strace -f -yy -e trace=writev,sendmsg,sendto,write -e signal=none \
#          -o DIR/nginx_strace.txt -p WORKER1 -p WORKER2
#   then the curl commands below, each one keep-alive connection carrying
#   several requests (curl reuses the connection for the URLs of one command
#   line), two of them at once so both workers serve.
set -euo pipefail

dir=${1:-$(mktemp -d)}
port=${2:-18473}
mkdir -p "$dir/www" "$dir/logs" "$dir/tmp"
capture="$dir/nginx_strace.txt"

# Bodies of several sizes (random bytes: the capture's iov_base strings then
# hold quotes, braces and commas, which the importer must step over).
for size in 1K 4K 16K 64K 256K 1M; do
  head -c "$size" /dev/urandom >"$dir/www/f$size.bin"
done

cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log $dir/logs/access.log;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  default_type application/octet-stream;
  sendfile off;
  tcp_nopush off;
  keepalive_timeout 30s;
  keepalive_requests 1000;
  server {
    listen 127.0.0.1:$port;
    root $dir/www;
    location = /hello { default_type text/plain; return 200 "hello\n"; }
  }
  # For the slow reader: a small socket send buffer, so that its connection
  # fills up and nginx sees short writes and EAGAIN.
  server {
    listen 127.0.0.1:$((port + 1)) sndbuf=64k;
    root $dir/www;
  }
}
EOF

nginx_pid=
strace_pid=
cleanup() {
  [[ -n "$strace_pid" ]] && kill -INT "$strace_pid" 2>/dev/null || true
  [[ -n "$nginx_pid" ]] && kill -QUIT "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

nginx -c "$dir/nginx.conf" -p "$dir" &
nginx_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -s -o /dev/null "$url/hello" && break
  sleep 0.1
done
workers=()
for _ in $(seq 100); do
  mapfile -t workers < <(ps --ppid "$nginx_pid" -o pid= | tr -d ' ')
  [[ ${#workers[@]} -eq 2 ]] && break
  sleep 0.1
done
[[ ${#workers[@]} -eq 2 ]] || { echo "nginx workers not found" >&2; exit 1; }

strace_args=()
for w in "${workers[@]}"; do strace_args+=(-p "$w"); done
strace -f -yy -e trace=writev,sendmsg,sendto,write -e signal=none \
  -o "$capture" "${strace_args[@]}" 2>"$dir/strace.err" &
strace_pid=$!
for _ in $(seq 100); do
  [[ "$(grep -c attached "$dir/strace.err" || true)" -eq 2 ]] && break
  sleep 0.1
done

# Every size once, a short text reply and a 404, on one connection.
curl -s "$url/f1K.bin" "$url/f4K.bin" "$url/f16K.bin" "$url/f64K.bin" \
  "$url/f256K.bin" "$url/f1M.bin" "$url/hello" "$url/missing" >/dev/null
# HEAD requests: a header and no body.
curl -s -I "$url/f64K.bin" -I "$url/f1K.bin" >/dev/null
# Two connections at once (so both workers serve), mixed sizes.
curl -s "$url/f1M.bin" "$url/f256K.bin" "$url/f4K.bin" "$url/f1K.bin" \
  >/dev/null &
c1=$!
curl -s "$url/f16K.bin" "$url/f64K.bin" "$url/f1K.bin" "$url/f256K.bin" \
  "$url/f16K.bin" >/dev/null &
c2=$!
wait "$c1" "$c2"
# A slow reader on the small-buffer listener: the socket buffer fills, so
# nginx sees short writes and EAGAIN and resumes when the socket is
# writable again.
curl -s --limit-rate 2M "http://127.0.0.1:$((port + 1))/f1M.bin" \
  "http://127.0.0.1:$((port + 1))/f64K.bin" >/dev/null

sleep 0.5  # strace writes what it has seen; nothing waits on this
kill -INT "$strace_pid"
wait "$strace_pid" || true
strace_pid=
echo "wrote $capture ($(wc -l <"$capture") lines)"
