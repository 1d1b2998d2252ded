#!/usr/bin/env bash
# idle-conns.sh — resident memory per idle HTTP/1.1 keep-alive connection: Sluice beside nginx
# and HAProxy, at CONNS (10,000) connections, loopback only.
#
# For each proxy in turn (only one runs at a time; each with a fresh bench-backend
# (../shared/bench/backend) on LOAD_CORE):
#   1. start it pinned to PROXY_CORE: nginx and HAProxy with run-peers.sh's configuration (one
#      worker / one thread, upstream keep-alive, TLS listener with an ECDSA certificate) with the
#      connection limits raised for CONNS and every idle timeout at IDLE_TIMEOUT; Sluice through
#      lib/sluice-peer.sh exactly as in l7-peers.sh part 1 (`sluice run --workers 1`, one Ingress
#      without host, TLS Secret), plus --client-header-timeout IDLE_TIMEOUT (its keep-alive idle
#      limit, 60 s by default) when the binary has that flag;
#   2. warm up: lib/idle-client.py opens CONCURRENCY connections, one request each, closes them;
#   3. RSS before: VmRSS (/proc/PID/status) of every process of the proxy (nginx: master +
#      worker; the sum and the worker are reported), SETTLE s after the warm-up;
#   4. lib/idle-client.py on LOAD_CORE opens CONNS connections (at most CONCURRENCY connecting
#      or waiting for their answer at once), sends one `GET / HTTP/1.1` on each, reads the
#      whole answer and keeps every connection open and idle;
#   5. SETTLE s later: RSS after, connections the proxy holds (ss, established, on its port) and
#      its upstream connections to the backend; bytes/conn = (after - before) / connections held;
#   6. the client closes everything; SETTLE s later: RSS after close; the proxy is stopped.
# The backend's own memory (it keeps the upstream connections) is not counted: proxy RSS only.
#
# Usage:
#   bench/idle-conns.sh                                # builds sluice (release) first; ~1 min
#   SCHED=fifo:10 bench/idle-conns.sh                  # on a machine shared with other work
#   SKIP_BUILD=1 SLUICE_BIN=/path/sluice CONNS=500 PEERS="sluice nginx" bench/idle-conns.sh
#
# Knobs [defaults]: CONNS [10000] PEERS [sluice nginx haproxy] ROUNDS [1] (each round starts
#   every proxy afresh, order rotating) CONCURRENCY [200] SETTLE [2] (seconds) IDLE_TIMEOUT [300s]
#   SCHED [other] PROXY_CORE [0] LOAD_CORE [1] SKIP_BUILD [0] SLUICE_BIN [target/release/sluice]
#   SLUICE_EXTRA_ARGS [] SLUICE_BUILT_FROM [] BENCH_TARGET [/tmp/sluice-bench-target] BACKEND_BIN
#   IDLE_BASE [27000]: ports on 127.0.0.1: IDLE_BASE backend, +1/+11 nginx (http/https),
#   +2/+12 HAProxy, +3/+13/+23 Sluice (http/https/admin)
#   OUT_DIR [/tmp/bench-idle.<pid>]: results.csv, summary.md, env.txt, sluice-version.txt, conf/,
#   logs/ (one log per process and client run)
# Raises `ulimit -n` (soft, and hard if needed) to CONNS + 4096 for everything it starts; nginx
# (worker_rlimit_nofile) and HAProxy (ulimit-n) get 2 x CONNS + 4096, or the hard limit if lower.
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
SHARED_BENCH=$(cd "$SHARED_BENCH" && pwd)
CONNS=${CONNS:-10000}
PEERS=${PEERS:-sluice nginx haproxy}
ROUNDS=${ROUNDS:-1}
CONCURRENCY=${CONCURRENCY:-200}
SETTLE=${SETTLE:-2}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-300s}
SCHED=${SCHED:-other}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
BENCH_TARGET=${BENCH_TARGET:-/tmp/sluice-bench-target}
SLUICE_BIN=${SLUICE_BIN:-$REPO/target/release/sluice}
BACKEND_BIN=${BACKEND_BIN:-$BENCH_TARGET/backend/release/bench-backend}
IDLE_BASE=${IDLE_BASE:-27000}
OUT_DIR=${OUT_DIR:-/tmp/bench-idle.$$}
H=127.0.0.1
B=$IDLE_BASE
BPORT=$B
declare -A PORT=( [nginx]=$((B + 1)) [haproxy]=$((B + 2)) [sluice]=$((B + 3)) )
declare -A TLS_PORT=( [nginx]=$((B + 11)) [haproxy]=$((B + 12)) [sluice]=$((B + 13)) )
SLUICE_ADMIN=$H:$((B + 23))
CLIENT=$HERE/lib/idle-client.py

source "$REPO/bench/lib/common.sh"
ensure_pkgs nginx:nginx haproxy:haproxy curl:curl openssl:openssl python3:python3 \
  util-linux:taskset iproute2:ss
for p in $PEERS; do [[ -n ${PORT[$p]:-} ]] || { echo "unknown peer $p (sluice nginx haproxy)" >&2; exit 1; }; done
if [[ $SKIP_BUILD != 1 ]]; then
  if [[ " $PEERS " == *" sluice "* ]]; then
    echo "building sluice (release) ..." >&2
    (cd "$REPO" && cargo build --release -p sluice --quiet)
  fi
  if [[ $BACKEND_BIN == "$BENCH_TARGET/backend/release/bench-backend" ]]; then
    echo "building the shared bench backend -> $BENCH_TARGET/backend ..." >&2
    (cd "$SHARED_BENCH/backend" && CARGO_TARGET_DIR=$BENCH_TARGET/backend cargo build --release --quiet)
  fi
fi
[[ -x $BACKEND_BIN ]] || { echo "missing binary $BACKEND_BIN" >&2; exit 1; }
mkdir -p "$OUT_DIR/logs" "$OUT_DIR/conf" "$OUT_DIR/nginx"
if [[ " $PEERS " == *" sluice "* ]]; then
  [[ -x $SLUICE_BIN ]] || { echo "no sluice binary at $SLUICE_BIN" >&2; exit 1; }
  sluice_private_copy
fi

# Every process started here inherits this: CONNS client sockets (the client) or CONNS accepted
# ones + upstream + listeners (the proxies; nginx and HAProxy also set their own from the config).
NOFILE=$((CONNS + 4096))
if [[ $(ulimit -Hn) != unlimited ]] && (( $(ulimit -Hn) < NOFILE )); then
  ulimit -Hn "$NOFILE" || { echo "cannot raise the hard open-files limit to $NOFILE (root needed)" >&2; exit 1; }
fi
(( $(ulimit -Sn) >= NOFILE )) || ulimit -Sn "$NOFILE"
# nginx and HAProxy size theirs for a server connection per client connection too (2 x CONNS);
# they cannot go above the hard limit (a container may forbid raising it), and idle keep-alive
# connections have no server side, so the hard limit is enough when lower.
# HAProxy then only warns ("no strict-limits") that maxsock (2 x maxconn + ...) is above it.
PROXY_NOFILE=$((2 * CONNS + 4096)) HAPROXY_STRICT=""
if [[ $(ulimit -Hn) != unlimited ]] && (( $(ulimit -Hn) < PROXY_NOFILE )); then
  PROXY_NOFILE=$(ulimit -Hn) HAPROXY_STRICT="no strict-limits"
fi
read -r PLO PHI < /proc/sys/net/ipv4/ip_local_port_range
(( PHI - PLO > CONNS + 1000 )) || { echo "ephemeral port range $PLO-$PHI too small for CONNS=$CONNS" >&2; exit 1; }

N=(python3 "$SHARED_BENCH/lib/schedexec.py" "$SCHED")
LOGD=$OUT_DIR/logs
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in $BPORT "${PORT[@]}" "${TLS_PORT[@]}" "${SLUICE_ADMIN##*:}"; do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy (set IDLE_BASE)" >&2; exit 1; fi
done

# ---------------------------------------------------------------- configuration
C=$OUT_DIR/conf
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$C/key.pem" \
  -out "$C/cert.pem" -days 7 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
cat "$C/cert.pem" "$C/key.pem" > "$C/haproxy.pem"
# run-peers.sh's nginx.conf (its h2c server left out) with room for CONNS connections:
# worker_connections counts upstream connections and listeners too.
cat > "$C/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $OUT_DIR/nginx/nginx.pid;
error_log $OUT_DIR/logs/nginx-error.log warn;
worker_rlimit_nofile $PROXY_NOFILE;
events { worker_connections $((CONNS + 1024)); }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout $IDLE_TIMEOUT;
  client_body_temp_path $OUT_DIR/nginx/body;
  proxy_temp_path $OUT_DIR/nginx/proxy;
  fastcgi_temp_path $OUT_DIR/nginx/fcgi;
  uwsgi_temp_path $OUT_DIR/nginx/uwsgi;
  scgi_temp_path $OUT_DIR/nginx/scgi;
  upstream backend {
    server $H:$BPORT;
    keepalive 128;
    keepalive_requests 10000000;
  }
  ssl_protocols TLSv1.3;
  ssl_session_tickets off;
  ssl_session_cache off;
  server {
    listen $H:${PORT[nginx]} backlog=4096;
    listen $H:${TLS_PORT[nginx]} ssl http2 backlog=4096;
    ssl_certificate $C/cert.pem;
    ssl_certificate_key $C/key.pem;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
# run-peers.sh's haproxy.cfg (its h2c bind left out) with maxconn for CONNS (global, and in
# defaults: each frontend's own cap) and ulimit-n set (else HAProxy derives 2 x maxconn + more
# from maxconn and refuses to start when the hard limit is lower).
cat > "$C/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $((CONNS + 1024))
  ulimit-n $PROXY_NOFILE
  $HAPROXY_STRICT
  ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
  tune.ssl.cachesize 0
defaults
  mode http
  maxconn $((CONNS + 1024))
  timeout connect 5s
  timeout client $IDLE_TIMEOUT
  timeout server 30s
  timeout http-keep-alive $IDLE_TIMEOUT
  http-reuse always
frontend fe
  bind $H:${PORT[haproxy]}
  bind $H:${TLS_PORT[haproxy]} ssl crt $C/haproxy.pem alpn h2,http/1.1
  default_backend be
backend be
  http-reuse always
  server s1 $H:$BPORT
EOF
SLUICE_ARGS=""
if [[ " $PEERS " == *" sluice "* ]]; then
  SLUICE_HELP=$("$SLUICE_BIN" run --help)
  if grep -q -- '--client-header-timeout' <<<"$SLUICE_HELP"; then
    SLUICE_ARGS="--client-header-timeout $IDLE_TIMEOUT"
  else
    echo "note: this sluice has no --client-header-timeout; its own keep-alive idle limit applies" >&2
  fi
  # the connection cap (--max-connections, 65,536 by default): raised only if below CONNS
  cap=$(grep -A3 -- '--max-connections' <<<"$SLUICE_HELP" | grep -oE 'default: [0-9]+' | grep -oE '[0-9]+' | head -1 || true)
  if [[ -n $cap ]] && (( cap != 0 && cap < CONNS + 1024 )); then
    SLUICE_ARGS="$SLUICE_ARGS --max-connections $((CONNS + 1024))"
  fi
fi
{
  echo "date: $(date -Is)"; uname -a; grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"
  { nginx -v 2>&1; haproxy -v | head -1; python3 --version; } || true
  [[ " $PEERS " == *" sluice "* ]] && { "$SLUICE_BIN" --version || true; }
  echo "CONNS=$CONNS PEERS=$PEERS ROUNDS=$ROUNDS CONCURRENCY=$CONCURRENCY SETTLE=$SETTLE IDLE_TIMEOUT=$IDLE_TIMEOUT SCHED=$SCHED"
  echo "sluice extra args: $SLUICE_ARGS ${SLUICE_EXTRA_ARGS:-}"
  echo "ulimit -n: $(ulimit -Sn) (hard $(ulimit -Hn)); nginx worker_rlimit_nofile / HAProxy ulimit-n: $PROXY_NOFILE"
} > "$OUT_DIR/env.txt" 2>&1

# ---------------------------------------------------------------- measuring
rss_kib() { awk '/^VmRSS/ {print $2; f=1} END {if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
# the proxy's processes: its PID and its children (nginx: master + worker)
proc_tree() { echo "$1"; ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }
# prints "sum_kib worker_kib nprocs": worker = the last child (nginx's worker), else the process
rss_of() {
  local pid sum=0 worker=0 n=0 k
  for pid in $(proc_tree "$1"); do k=$(rss_kib "$pid"); sum=$((sum + k)); worker=$k; n=$((n + 1)); done
  echo "$sum $worker $n"
}
established() { ss -tnH state established "$1" | wc -l; }   # established sockets matching a filter
# client NAME PORT CONNS: start lib/idle-client.py against 127.0.0.1:PORT (in this shell: its PID
# must stay ours) and wait for its READY line, which it leaves in READY_LINE
client() {
  local name=$1 port=$2 n=$3 end
  start_bg "$name" "$LOAD_CORE" python3 "$CLIENT" --connect "$H:$port" --conns "$n" --concurrency "$CONCURRENCY"
  end=$(( $(date +%s) + 120 + n / 50 ))
  until grep -qs '^READY' "$LOGD/$name.out"; do
    if ! kill -0 "${PIDOF[$name]}" 2>/dev/null || (( $(date +%s) > end )); then
      echo "client $name ended or timed out before READY; log:" >&2; tail -20 "$LOGD/$name.out" >&2; exit 1
    fi
    sleep 0.2
  done
  READY_LINE=$(grep '^READY' "$LOGD/$name.out")
}
client_close() { # NAME: SIGTERM, wait for it to close everything and exit
  local pid=${PIDOF[$1]}
  kill -TERM "$pid"; wait "$pid" || true
}
kv() { grep -oE "(^| )$1=[^ ]+" <<<"$2" | cut -d= -f2; }

RES=$OUT_DIR/results.csv
echo "round,proxy,conns,held,failed,open_at_measure,upstream_conns,nprocs,rss_before_kib,rss_after_kib,rss_closed_kib,worker_before_kib,worker_after_kib,bytes_per_conn,worker_bytes_per_conn,open_s" > "$RES"
echo "results -> $OUT_DIR   (proxy core $PROXY_CORE; client + backend core $LOAD_CORE; CONNS=$CONNS, SCHED=$SCHED)"
for ((r = 1; r <= ROUNDS; r++)); do
  # shellcheck disable=SC2046,SC2086
  for p in $(rotate $((r - 1)) $PEERS); do
    LOGD=$OUT_DIR/logs/r$r-$p; mkdir -p "$LOGD"
    start_bg backend "$LOAD_CORE" "$BACKEND_BIN" "$H:$BPORT"
    wait_ok backend 30 "http://$H:$BPORT/"
    case $p in
      nginx)   start_bg nginx "$PROXY_CORE" nginx -e "$LOGD/nginx-error.log" -p "$OUT_DIR/nginx/" -c "$C/nginx.conf" ;;
      haproxy) start_bg haproxy "$PROXY_CORE" haproxy -db -f "$C/haproxy.cfg" ;;
      sluice)  start_bg sluice "$PROXY_CORE" env SLUICE_BIN="$SLUICE_BIN" LISTEN_ADDR="$H:${PORT[sluice]}" \
                 LISTEN_PORT="${PORT[sluice]}" BACKEND_ADDR="$H:$BPORT" BACKEND_PORT="$BPORT" \
                 TLS_LISTEN_ADDR="$H:${TLS_PORT[sluice]}" TLS_CERT="$C/cert.pem" TLS_KEY="$C/key.pem" \
                 RUN_DIR="$LOGD" SLUICE_ADMIN_ADDR="$SLUICE_ADMIN" SLUICE_WORKERS=1 \
                 SLUICE_EXTRA_ARGS="$SLUICE_ARGS ${SLUICE_EXTRA_ARGS:-}" "$HERE/lib/sluice-peer.sh" ;;
    esac
    wait_ok "$p" 60 "http://$H:${PORT[$p]}/"
    client warm "${PORT[$p]}" "$CONCURRENCY"
    client_close warm
    sleep "$SETTLE"
    read -r before wbefore _ <<<"$(rss_of "${PIDOF[$p]}")"
    client idle "${PORT[$p]}" "$CONNS"; ready=$READY_LINE
    sleep "$SETTLE"
    read -r after wafter nprocs <<<"$(rss_of "${PIDOF[$p]}")"
    open=$(established "sport = :${PORT[$p]}")
    upstream=$(established "dport = :$BPORT")
    client_close idle
    sleep "$SETTLE"
    read -r closed _ <<<"$(rss_of "${PIDOF[$p]}")"
    kill -0 "${PIDOF[$p]}" 2>/dev/null || { echo "$p exited during the run; log: $LOGD/$p.out" >&2; exit 1; }
    held=$(kv ok "$ready")
    python3 - "$r" "$p" "$CONNS" "$held" "$(kv failed "$ready")" "$open" "$upstream" "$nprocs" \
      "$before" "$after" "$closed" "$wbefore" "$wafter" "$(kv elapsed_s "$ready")" >> "$RES" <<'PY'
import sys
r, p, conns, held, failed, open_, up, nprocs, before, after, closed, wb, wa, open_s = sys.argv[1:15]
per = lambda a, b: "%.0f" % ((int(a) - int(b)) * 1024 / int(held)) if int(held) else ""
print(f"{r},{p},{conns},{held},{failed},{open_},{up},{nprocs},{before},{after},{closed},{wb},{wa},"
      f"{per(after, before)},{per(wa, wb)},{open_s}")
PY
    tail -1 "$RES" | awk -F, '{printf "  r%-2s %-8s %6s conns held (%s failed, %s open at measure, %s upstream)  RSS %.1f -> %.1f MiB (%.1f after close)  %s bytes/conn  (opened in %ss)\n", $1, $2, $4, $5, $6, $7, $9 / 1024, $10 / 1024, $11 / 1024, $14, $16}'
    if [[ $p == sluice ]] && grep -qiE ' (WARN|ERROR)|panic' "$LOGD/sluice.out"; then
      echo "  NOTE: sluice logged warnings/errors ($LOGD/sluice.out):"; grep -m5 -iE ' (WARN|ERROR)|panic' "$LOGD/sluice.out"
    fi
    cleanup; PIDS=(); PIDOF=()
  done
done
python3 "$HERE/lib/idle-summary.py" "$RES" | tee "$OUT_DIR/summary.md"
echo "raw: $RES  logs: $OUT_DIR/logs"
