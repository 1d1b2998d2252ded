#!/usr/bin/env bash
# large-responses.sh — throughput of 1 MiB responses through Sluice vs nginx and HAProxy,
# loopback only (127.0.0.1).
#
# Origin: a second nginx (worker_processes 1, keep-alive, access log off) on LOAD_CORE, from its
#   own config in OUT_DIR/run, serving one 1 MiB file of random bytes:
#     GET /1m          Content-Length: 1048576, sendfile on
#     GET /1m-chunked  the same bytes as Transfer-Encoding: chunked, in CHUNK_KB (32) KiB chunks
#                      (the addition filter appends an empty internal subrequest, which drops the
#                      Content-Length; sendfile off + output_buffers 1 CHUNK_KB k sizes the chunks)
# Proxies on PROXY_CORE, each one worker/thread, configured as ../shared/bench/run-peers.sh does:
#   nginx        worker_processes 1, proxy_pass to an upstream with keepalive 128,
#                proxy_http_version 1.1, Connection "", proxy_buffering at nginx's default (on:
#                a response the client reads slower than the origin sends goes to a temp file)
#   nginx-nobuf  (only when named in PEERS) the same with proxy_buffering off, ingress-nginx's
#                default
#   haproxy      nbthread 1, mode http, http-reuse always
#   sluice       always added: `sluice run --workers 1`, one Ingress without host -> Service ->
#                EndpointSlice of the origin (lib/gen-manifests.py, as lib/sluice-peer.sh writes it)
#   direct       always added: wrk straight to the origin (no proxy; the load core's ceiling)
# Load: ROUNDS interleaved rounds (peer order rotated every round, lib/common.sh's rotate) of
#   wrk -t1 -c$CONNS -d${DURATION}s --timeout 5s -s ../shared/bench/lua/report.lua http://PEER/1m
# on LOAD_CORE, for every suite in SUITES (cl = /1m, chunked = /1m-chunked), after a WARMUP s
# warm-up per peer and suite. Before that every peer is checked to return the exact 1 MiB on
# both paths (curl + cmp; the response framing each one sends is written to logs/framing.txt).
# Per run: req/s, MiB/s (requests x 1 MiB / duration), p50/p99, the proxy's on-CPU time (all its
# threads and processes, ../shared/bench/lib/cpusnap.py before/after) -> ms per MiB, the origin's
# likewise, both cores' busy %, foreign % (CPU other processes took).
#
# Usage:
#   bench/large-responses.sh                            # builds sluice (release) first; ~5 min
#   SCHED=fifo:10 bench/large-responses.sh              # on a machine shared with other work
#   SKIP_BUILD=1 SLUICE_BIN=/tmp/sluice ROUNDS=1 DURATION=3 bench/large-responses.sh   # quick look
#   PEERS="nginx nginx-nobuf haproxy" SUITES=cl bench/large-responses.sh
#
# Knobs [defaults]: PEERS [nginx haproxy] (+ sluice and direct, always) SUITES [cl chunked]
#   ROUNDS [3] DURATION [10] CONNS [10] WARMUP [2] CHUNK_KB [32] SCHED [other] (other | slice:US |
#   fifo:PRIO, ../shared/bench/lib/schedexec.py) PROXY_CORE [0] LOAD_CORE [1] SKIP_BUILD [0]
#   SLUICE_BIN [${CARGO_TARGET_DIR:-target}/release/sluice] SLUICE_BUILT_FROM [] (for
#   sluice-version.txt) SLUICE_EXTRA_ARGS [] OUT_DIR [/tmp/bench-large.<pid>] (results.csv,
#   summary.md, env.txt, sluice-version.txt, logs/, run/)
# Ports: BASE_PORT [27100] .. BASE_PORT+49 on 127.0.0.1: origin +0, nginx +1, haproxy +2,
#   sluice +3 (its unused HTTPS listener +43, admin +44), nginx-nobuf +4. No other bench script
#   uses 27100-27149 (reload.sh uses 27180-27200).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
SHARED_BENCH=$(cd "$SHARED_BENCH" && pwd)
PEERS=${PEERS:-"nginx haproxy"}
SUITES=${SUITES:-"cl chunked"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-10}
WARMUP=${WARMUP:-2}
CHUNK_KB=${CHUNK_KB:-32}
SCHED=${SCHED:-other}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
SLUICE_BIN=${SLUICE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/sluice}
OUT_DIR=${OUT_DIR:-/tmp/bench-large.$$}
BASE_PORT=${BASE_PORT:-27100}
H=127.0.0.1
BODY=1048576

declare -A PORT=( [direct]=$BASE_PORT [nginx]=$((BASE_PORT + 1)) [haproxy]=$((BASE_PORT + 2))
                  [sluice]=$((BASE_PORT + 3)) [nginx-nobuf]=$((BASE_PORT + 4)) )
declare -A URLPATH=( [cl]=/1m [chunked]=/1m-chunked )
ORIGIN_PORT=$BASE_PORT
ALL=(direct)
for p in $PEERS; do
  case $p in nginx|nginx-nobuf|haproxy) ALL+=("$p") ;; sluice|direct) ;; *) echo "unknown peer $p (nginx nginx-nobuf haproxy)" >&2; exit 1 ;; esac
done
ALL+=(sluice)
for s in $SUITES; do [[ -n ${URLPATH[$s]:-} ]] || { echo "unknown suite $s (cl chunked)" >&2; exit 1; }; done

# ---------------------------------------------------------------- tools and build
# shellcheck source=lib/common.sh
source "$REPO/bench/lib/common.sh"
ensure_pkgs nginx:nginx haproxy:haproxy wrk:wrk curl:curl python3:python3 util-linux:taskset iproute2:ss
if [[ $SKIP_BUILD != 1 ]]; then
  echo "building sluice (release) ..." >&2
  (cd "$REPO" && cargo build --release -p sluice --quiet)
fi
[[ -x $SLUICE_BIN ]] || { echo "no sluice binary at $SLUICE_BIN" >&2; exit 1; }
for port in "${PORT[@]}" $((BASE_PORT + 43)) $((BASE_PORT + 44)); do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy (set BASE_PORT)" >&2; exit 1; fi
done
RUN=$OUT_DIR/run
mkdir -p "$OUT_DIR/logs" "$RUN/origin"
# run a private copy: others may rebuild target/release/sluice while this runs
SLUICE_GIVEN=$SLUICE_BIN
cp "$SLUICE_BIN" "$OUT_DIR/sluice"; SLUICE_BIN=$OUT_DIR/sluice
{ if [[ -n ${SLUICE_BUILT_FROM:-} ]]; then echo "sluice: $SLUICE_BUILT_FROM"
  elif [[ $SKIP_BUILD == 1 ]]; then echo "sluice: $SLUICE_GIVEN as found (SKIP_BUILD=1, no SLUICE_BUILT_FROM: source unknown; the work tree is at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null))"
  else echo "sluice: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) + $(git -C "$REPO" status --short -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l) changed files in the work tree"; fi
  echo "sluice binary: $(sha256sum "$SLUICE_BIN" | cut -c1-16)"; } > "$OUT_DIR/sluice-version.txt"
cat "$OUT_DIR/sluice-version.txt"

SNAP=$SHARED_BENCH/lib/cpusnap.py
LUA=$SHARED_BENCH/lua/report.lua
N=(python3 "$SHARED_BENCH/lib/schedexec.py" "$SCHED")
LOGD=$OUT_DIR/logs
# at exit: stop what start_bg started, then drop the big files (the binary's hash is recorded)
trap 'cleanup; rm -f "$OUT_DIR/sluice" "$RUN/1m.bin" "$RUN/got"' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- configs
head -c "$BODY" /dev/urandom > "$RUN/1m.bin"
: > "$RUN/empty"
temp_paths() { # nginx temp directories under a prefix
  local d=$1
  printf '  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n  fastcgi_temp_path %s/fcgi;\n  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n' \
    "$d" "$d" "$d" "$d" "$d"
}
nginx_prolog() { # name: one worker, its pid, log and temp paths, keep-alive; opens `http {`
  cat <<EOF
worker_processes 1;
daemon off;
pid $RUN/$1/nginx.pid;
error_log $LOGD/$1-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
$(temp_paths "$RUN/$1")
EOF
}
cat > "$RUN/origin.conf" <<EOF
$(nginx_prolog origin)
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  server {
    listen $H:$ORIGIN_PORT backlog=4096;
    location = /1m { alias $RUN/1m.bin; }
    # chunked: the addition filter (an empty subrequest after the body) drops Content-Length;
    # without sendfile the body goes out through output_buffers, one chunk per buffer
    location = /1m-chunked {
      alias $RUN/1m.bin;
      addition_types *;
      add_after_body /empty;
      sendfile off;
      output_buffers 1 ${CHUNK_KB}k;
    }
    location = /empty { internal; alias $RUN/empty; }
  }
}
EOF
nginx_proxy_conf() { # name port buffering(on|off)
  cat <<EOF
$(nginx_prolog "$1")
  upstream origin {
    server $H:$ORIGIN_PORT;
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen $H:$2 backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";$([[ $3 == off ]] && printf '\n      proxy_buffering off;')
    }
  }
}
EOF
}
for p in "${ALL[@]}"; do
  case $p in
    nginx) mkdir -p "$RUN/nginx"; nginx_proxy_conf nginx "${PORT[nginx]}" on > "$RUN/nginx.conf" ;;
    nginx-nobuf) mkdir -p "$RUN/nginx-nobuf"; nginx_proxy_conf nginx-nobuf "${PORT[nginx-nobuf]}" off > "$RUN/nginx-nobuf.conf" ;;
  esac
done
cat > "$RUN/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 75s
  http-reuse always
frontend fe
  bind $H:${PORT[haproxy]}
  default_backend be
backend be
  http-reuse always
  server s1 $H:$ORIGIN_PORT
EOF
python3 "$HERE/lib/gen-manifests.py" --out "$RUN/manifests.yaml" --backend-port "$ORIGIN_PORT"

{
  echo "date: $(date -Is)"; uname -a; grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"
  { nginx -v 2>&1; haproxy -v | head -1; wrk --version 2>&1 | head -1; "$SLUICE_BIN" --version; } || true
  echo "PEERS=${ALL[*]} SUITES=$SUITES ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS WARMUP=$WARMUP CHUNK_KB=$CHUNK_KB SCHED=$SCHED PROXY_CORE=$PROXY_CORE LOAD_CORE=$LOAD_CORE BASE_PORT=$BASE_PORT"
  cat "$OUT_DIR/sluice-version.txt"
} > "$OUT_DIR/env.txt" 2>&1

# ---------------------------------------------------------------- start
wait_200() { # name url: until it answers 200 (or its process is gone)
  for _ in $(seq 1 200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" 2>/dev/null) == 200 ]] && return 0
    if [[ -n ${PIDOF[$1]:-} ]] && ! kill -0 "${PIDOF[$1]}" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "$1 never answered 200 on $2; log:" >&2; tail -20 "$LOGD/$1.out" >&2; exit 1
}
start_bg origin "$LOAD_CORE" nginx -e "$LOGD/origin-error.log" -p "$RUN/origin/" -c "$RUN/origin.conf"
wait_200 origin "http://$H:$ORIGIN_PORT/1m"
for p in "${ALL[@]}"; do
  case $p in
    direct) ;;
    nginx|nginx-nobuf) start_bg "$p" "$PROXY_CORE" nginx -e "$LOGD/$p-error.log" -p "$RUN/$p/" -c "$RUN/$p.conf" ;;
    haproxy) start_bg haproxy "$PROXY_CORE" haproxy -db -f "$RUN/haproxy.cfg" ;;
    sluice)
      # shellcheck disable=SC2086
      start_bg sluice "$PROXY_CORE" "$SLUICE_BIN" run --manifests "$RUN/manifests.yaml" \
        --http "$H:${PORT[sluice]}" --https "$H:$((BASE_PORT + 43))" --admin "$H:$((BASE_PORT + 44))" \
        --workers 1 ${SLUICE_EXTRA_ARGS:-} ;;
  esac
done
# every peer returns the very bytes of the file, on every path; note the framing it sends
for p in "${ALL[@]}"; do
  wait_200 "$p" "http://$H:${PORT[$p]}/1m"
  for s in $SUITES; do
    got=$RUN/got; hdr=$LOGD/headers-$p-$s.txt
    res=$(curl -s -D "$hdr" -o "$got" -w '%{http_code} %{size_download}' --max-time 10 "http://$H:${PORT[$p]}${URLPATH[$s]}" || true)
    if [[ $res != "200 $BODY" ]] || ! cmp -s "$got" "$RUN/1m.bin"; then
      echo "$p answered '$res' on ${URLPATH[$s]} (expected '200 $BODY' and the file's bytes); headers: $hdr" >&2; exit 1
    fi
    framing=$(grep -iE '^(content-length|transfer-encoding):' "$hdr" | tr -d '\r' | tr '\n' ' ' || true)
    echo "$s $p: ${framing:-no length (read to close)}" >> "$LOGD/framing.txt"
  done
done
rm -f "$RUN/got"
sed 's/^/  framing to the client: /' "$LOGD/framing.txt"

# ---------------------------------------------------------------- measuring
# One load run with CPU accounting around it: measure LOG PEER URL -> sets CPU to cpusnap's
# "busy_proxy busy_load steal foreign ns_proxy ns_origin". `timeout` runs outside SCHED, so
# that a wrk spinning under SCHED_FIFO cannot keep it from firing (RT throttling leaves it 5 %).
measure() {
  local log=$1 p=$2 url=$3 before after t ticks
  before=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "${PIDOF[$p]:-}" "${PIDOF[origin]}")
  t=$( { ( taskset -c "$LOAD_CORE" timeout $((DURATION + 20)) "${N[@]}" env WRK_PACE_MS=0 \
             wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$LUA" "$url" > "$log" 2>&1 || true; times ) | tail -1; } )
  after=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "${PIDOF[$p]:-}" "${PIDOF[origin]}")
  ticks=$(awk '{n=0; for(i=1;i<=2;i++){split($i,x,/[ms]/); n+=x[1]*60+x[2]} printf "%d", n*100}' <<<"$t")
  CPU=$(python3 "$SNAP" diff "$before" "$after" "$ticks")
  LG_TICKS=$ticks
}
# The CSV row of one run: row LOG ROUND SUITE PEER (reads CPU and LG_TICKS)
row() {
  python3 - "$@" "$CPU" "$BODY" "$LG_TICKS" <<'PY'
"""Turn one wrk log (report.lua's RESULT line) + cpusnap's diff into a results.csv row."""
import re, sys
log, rnd, suite, peer, cpu, body, lg_ticks = sys.argv[1:8]
busy_p, busy_l, steal, foreign, ns_proxy, ns_origin = cpu.split()
text = open(log).read()
m = re.search(r"^RESULT (.*)$", text, re.M)
kv = dict(x.split("=") for x in m.group(1).split()) if m else {}
req, secs = int(kv.get("requests", 0)), float(kv.get("secs", 0) or 0)
err = sum(int(v) for k, v in kv.items() if k.startswith("err_")) if m else -1
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
err += int(non2xx.group(1)) if non2xx else 0
mib = req * int(body) / 1048576
units = {"B": 1 / 1048576, "KB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1048576}
tr = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", text)
wrk_mib_s = "%.0f" % (float(tr.group(1)) * units[tr.group(2)]) if tr else ""
per_mib = lambda ns: "%.4f" % (int(ns) / 1e6 / mib) if mib and int(ns) else ""
proxy_ns = int(ns_proxy) if peer != "direct" else 0
print(f"{rnd},{suite},{peer},{req},{secs:.3f},{kv.get('rps', 0)},{mib / secs if secs else 0:.1f},{wrk_mib_s},"
      f"{kv.get('p50_us', 0)},{kv.get('p99_us', 0)},{err},{proxy_ns / 1e9:.3f},{per_mib(proxy_ns)},"
      f"{per_mib(ns_origin)},{per_mib(int(lg_ticks) * 10**7)},{busy_p},{busy_l},{foreign}")
PY
}
RES=$OUT_DIR/results.csv
echo "round,suite,peer,requests,secs,rps,mib_s,wrk_transfer_mib_s,p50_us,p99_us,errors,proxy_cpu_s,proxy_ms_per_mib,origin_ms_per_mib,wrk_ms_per_mib,busy_proxy_core,busy_load_core,foreign_pct" > "$RES"

echo "results -> $OUT_DIR   (proxies on core $PROXY_CORE; wrk + origin on core $LOAD_CORE; SCHED=$SCHED)"
echo "warm-up (${WARMUP}s per peer and suite, not recorded)"
for s in $SUITES; do
  for p in "${ALL[@]}"; do
    taskset -c "$LOAD_CORE" timeout $((WARMUP + 10)) "${N[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" \
      "http://$H:${PORT[$p]}${URLPATH[$s]}" > /dev/null 2>&1 || true
  done
done
START=$(date +%s)
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS"
  for s in $SUITES; do
    for p in $(rotate $((r - 1)) "${ALL[@]}"); do
      log=$LOGD/r$r-$s-$p.txt
      measure "$log" "$p" "http://$H:${PORT[$p]}${URLPATH[$s]}"
      row "$log" "$r" "$s" "$p" >> "$RES"
      tail -1 "$RES" | awk -F, '{printf "  r%-2s %-7s %-11s %7.0f req/s %6.0f MiB/s  p50 %6.2f  p99 %6.2f ms  proxy %6s ms/MiB  origin %6s  wrk %6s ms/MiB  cores %s/%s%%  err %s  foreign %s%%\n", $1, $2, $3, $6, $7, $9 / 1000, $10 / 1000, ($13 == "" ? "-" : $13), $14, $15, $16, $17, $11, $18}'
    done
  done
done
echo "measured in $(( $(date +%s) - START ))s"
for p in origin "${ALL[@]}"; do
  [[ $p == direct ]] && continue
  mine "${PIDOF[$p]}" || echo "WARNING: $p (pid ${PIDOF[$p]}) exited during the run; runs after that are void. Log: $LOGD/$p.out" >&2
done

# ---------------------------------------------------------------- report
python3 "$HERE/lib/large-summary.py" "$RES" "$CONNS" "$DURATION" > "$OUT_DIR/summary.md"
{
  if [[ -e $LOGD/nginx-error.log ]]; then
    n=$(grep -c 'buffered to a temporary file' "$LOGD/nginx-error.log" || true)
    echo "nginx buffered ${n:-0} responses to a temporary file on disk (its error log; with proxy_buffering on, nginx's default, it does when the client reads slower than the origin sends)."
  fi
  echo "Framing sent to the client: $(sed 's/ *$//' "$LOGD/framing.txt" | paste -sd ';' | sed 's/;/; /g')."
} >> "$OUT_DIR/summary.md"
cat "$OUT_DIR/summary.md"
n=$(grep -ciE ' (WARN|ERROR)|panic' "$LOGD/sluice.out" || true)
if [[ $n -gt 0 ]]; then
  echo "NOTE: sluice logged $n warning/error lines ($LOGD/sluice.out); first ones:"; grep -m5 -iE ' (WARN|ERROR)|panic' "$LOGD/sluice.out" || true
else
  echo "sluice log: no warnings or errors"
fi
echo "raw: $RES  logs: $LOGD"
