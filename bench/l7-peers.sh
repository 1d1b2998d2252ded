#!/usr/bin/env bash
# l7-peers.sh — HTTP benchmark of Sluice against nginx, HAProxy (and pingora when built),
# loopback only, plus routing-cost suites (10 vs 10,000 Ingresses; 1,000 regex vs prefix paths).
#
# Part 1 (PEERS_RUN=1): ../shared/bench/run-peers.sh with PROXY_NAME=sluice, PROXY_TLS=1 and
#   PROXY_CMD=bench/lib/sluice-peer.sh, which writes the manifests for run-peers' backend and
#   certificate (one Ingress without host -> Service backend -> EndpointSlice 127.0.0.1:
#   $BACKEND_PORT; a kubernetes.io/tls Secret from run-peers' cert/key, also the default
#   certificate since wrk/h2load send no SNI to 127.0.0.1) and execs `sluice run --workers 1`.
#   run-peers' own knobs pass straight through the environment: SUITES ROUNDS DURATION CONNS
#   PEERS SCHED WARMUP BASE_PORT QUIET_MAX QUIET_BUDGET CERT_TYPE ... (see its header).
# Part 2 (ROUTE=1): the routing cost of many Ingresses. Two Sluice instances run side by side
#   on PROXY_CORE: "small" serves 10 Ingresses, "large" 10,000 (hosts h00000.bench.test ...,
#   each with paths / Prefix, /api Prefix, /static/app.js Exact; the 10 of "small" are
#   h04237..h04246, so both serve the very same request). Both forward to one bench-backend
#   on LOAD_CORE. ROUTE_ROUNDS interleaved rounds (order alternating) of
#     wrk -t1 -c$ROUTE_CONNS -d${ROUTE_DURATION}s -H 'Host: $ROUTE_HOST' http://LISTEN$ROUTE_PATH
#   on LOAD_CORE; reports req/s, latency, Sluice CPU us per request, time from start to the
#   first routed 200 and resident memory of each instance.
# Part 2b (PATHS=1): regex vs prefix paths on one host (issue 10: regex >= 0.9 x prefix). Two
#   Sluice instances side by side on PROXY_CORE: "regex" serves PATHS_COUNT paths on
#   paths.bench.test as ingress-nginx regexes (every Ingress `use-regex: "true"`, paths like
#   /svc-0042/v[0-9]+/items(/|$)(.*), pathType ImplementationSpecific: one RegexSet, first match
#   in nginx's order), "prefix" the same number of Prefix paths (/svc-0042/v1/items) that serve
#   the same requests (lib/gen-manifests.py --many-paths). PATHS_ROUNDS interleaved rounds of
#     wrk -t1 -c$PATHS_CONNS -d${PATHS_DURATION}s -s lib/paths.lua -H 'Host: paths.bench.test'
#   cycling through PATHS_REQUESTS request paths (the last 4 rules in nginx's order, the first
#   4 and the rest spread over all numbers); same columns as part 2.
# Part 2c (PROTECT=1): basic auth and a rate limit vs the same route unprotected (issue 11:
#   >= 0.9 x); see lib/protect-suite.sh.
# Part 3 (TLS_FULL=1): TLS 1.3 handshake cost, full vs resumed. wrk (run-peers' `tls` suite)
#   resumes sessions wherever the server allows it; run-peers disables resumption in nginx and
#   HAProxy but Sluice has it on, so that suite compares resumed Sluice handshakes with full
#   ones. Here nginx, HAProxy and Sluice (same cert, each proxying to one bench-backend) get
#   TLSF_CLIENTS parallel `openssl s_time -new` (never resumes) and Sluice also `-reuse`
#   (always resumes); reports connections/s and proxy CPU us per connection.
#
# Usage:
#   bench/l7-peers.sh                                  # everything: ~10 min (+ builds)
#   SCHED=fifo:10 bench/l7-peers.sh                    # on a machine shared with other work
#   SUITES="h1 tls h2" ROUNDS=3 SCHED=fifo:10 bench/l7-peers.sh
#   PEERS_RUN=0 TLS_FULL=0 bench/l7-peers.sh           # routing-cost suites only (~2.5 min)
#   PEERS_RUN=0 ROUTE=0 TLS_FULL=0 bench/l7-peers.sh   # regex vs prefix paths only (~1.5 min)
#   ROUTE=0 bench/l7-peers.sh                          # peer comparison only
#   BUILD_PINGORA=1 bench/l7-peers.sh                  # also build the pingora peer (~3+ min, cmake)
#
# Knobs [defaults]: SCHED [other] PROXY_CORE [0] LOAD_CORE [1] SKIP_BUILD [0]
#   BENCH_TARGET [/tmp/sluice-bench-target] (cargo target dirs for the shared backend and
#   pingora-peer: ../shared is read-only) BACKEND_BIN PINGORA_BIN SLUICE_BIN
#   OUT_DIR [/tmp/bench-l7.<pid>] (peers/ = run-peers' output, route/ = part 2, paths/ = part 2b,
#   tlsfull/ = part 3)
#   ROUTE_ROUNDS [$ROUNDS or 3] ROUTE_DURATION [5] ROUTE_CONNS [50] ROUTE_INGRESSES [10000]
#   ROUTE_SMALL [10] ROUTE_HOST [h04242.bench.test] ROUTE_PATH [/] ROUTE_BASE [26000]
#   PATHS_ROUNDS [$ROUNDS or 3] PATHS_DURATION [10] PATHS_CONNS [50] PATHS_COUNT [1000]
#   PATHS_REQUESTS [16] (part 2b ports ROUTE_BASE+700..722)
#   TLSF_ROUNDS [$ROUNDS or 3] TLSF_DURATION [3] TLSF_CLIENTS [4] (part 3 ports ROUTE_BASE+600..605)
#   SLUICE_WORKERS [1] SLUICE_EXTRA_ARGS [] SLUICE_BUILT_FROM [] (what SLUICE_BIN was built from, for
#   sluice-version.txt; default: HEAD + the count of changed files in the work tree)
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
SHARED_BENCH=$(cd "$SHARED_BENCH" && pwd)
SCHED=${SCHED:-other}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
BUILD_PINGORA=${BUILD_PINGORA:-0}
PEERS_RUN=${PEERS_RUN:-1}
ROUTE=${ROUTE:-1}
PATHS=${PATHS:-1}
TLS_FULL=${TLS_FULL:-1}
PROTECT=${PROTECT:-1}
PROTECT_ROUNDS=${PROTECT_ROUNDS:-${ROUNDS:-3}}
PROTECT_DURATION=${PROTECT_DURATION:-10}
PROTECT_CONNS=${PROTECT_CONNS:-50}
BENCH_TARGET=${BENCH_TARGET:-/tmp/sluice-bench-target}
SLUICE_BIN=${SLUICE_BIN:-$REPO/target/release/sluice}
BACKEND_BIN=${BACKEND_BIN:-$BENCH_TARGET/backend/release/bench-backend}
PINGORA_BIN=${PINGORA_BIN:-$BENCH_TARGET/pingora/release/pingora-peer}
OUT_DIR=${OUT_DIR:-/tmp/bench-l7.$$}
ROUTE_ROUNDS=${ROUTE_ROUNDS:-${ROUNDS:-3}}
ROUTE_DURATION=${ROUTE_DURATION:-5}
ROUTE_CONNS=${ROUTE_CONNS:-50}
ROUTE_INGRESSES=${ROUTE_INGRESSES:-10000}
ROUTE_SMALL=${ROUTE_SMALL:-10}
ROUTE_HOST=${ROUTE_HOST:-h04242.bench.test}
ROUTE_PATH=${ROUTE_PATH:-/}
ROUTE_BASE=${ROUTE_BASE:-26000}
PATHS_ROUNDS=${PATHS_ROUNDS:-${ROUNDS:-3}}
PATHS_DURATION=${PATHS_DURATION:-10}
PATHS_CONNS=${PATHS_CONNS:-50}
PATHS_COUNT=${PATHS_COUNT:-1000}
PATHS_REQUESTS=${PATHS_REQUESTS:-16}
TLSF_ROUNDS=${TLSF_ROUNDS:-${ROUNDS:-3}}
TLSF_DURATION=${TLSF_DURATION:-3}
TLSF_CLIENTS=${TLSF_CLIENTS:-4}
export SLUICE_WORKERS=${SLUICE_WORKERS:-1}
H=127.0.0.1

# ---------------------------------------------------------------- tools and builds
source "$REPO/bench/lib/common.sh"
ensure_pkgs nginx:nginx haproxy:haproxy wrk:wrk nghttp2-client:h2load curl:curl openssl:openssl \
  python3:python3 util-linux:taskset iproute2:ss
if [[ $SKIP_BUILD != 1 ]]; then
  echo "building sluice (release) ..." >&2
  (cd "$REPO" && cargo build --release -p sluice --quiet)
  if [[ $BACKEND_BIN == "$BENCH_TARGET/backend/release/bench-backend" ]]; then
    echo "building the shared bench backend -> $BENCH_TARGET/backend ..." >&2
    (cd "$SHARED_BENCH/backend" && CARGO_TARGET_DIR=$BENCH_TARGET/backend cargo build --release --quiet)
  fi
  if [[ $BUILD_PINGORA == 1 && $PINGORA_BIN == "$BENCH_TARGET/pingora/release/pingora-peer" ]]; then
    ensure_pkgs cmake:cmake
    echo "building the shared pingora peer -> $BENCH_TARGET/pingora (a few minutes) ..." >&2
    (cd "$SHARED_BENCH/pingora-peer" && CARGO_TARGET_DIR=$BENCH_TARGET/pingora cargo build --release --quiet)
  fi
fi
for b in "$SLUICE_BIN" "$BACKEND_BIN"; do [[ -x $b ]] || { echo "missing binary $b" >&2; exit 1; }; done
[[ -x $PINGORA_BIN ]] || echo "note: no pingora peer at $PINGORA_BIN (BUILD_PINGORA=1 builds it); run-peers drops that column" >&2
[[ -x $SLUICE_BIN ]] || { echo "no sluice binary at $SLUICE_BIN" >&2; exit 1; }
# run a private copy: others may rebuild target/release/sluice while this runs
mkdir -p "$OUT_DIR"
cp "$SLUICE_BIN" "$OUT_DIR/sluice"; SLUICE_BIN=$OUT_DIR/sluice
{ if [[ -n ${SLUICE_BUILT_FROM:-} ]]; then echo "sluice: $SLUICE_BUILT_FROM"   # e.g. a build of an exported commit
  else echo "sluice: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) + $(git -C "$REPO" status --short -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l) changed files in the work tree"; fi
  echo "sluice binary: $(sha256sum "$SLUICE_BIN" | cut -c1-16)"; } > "$OUT_DIR/sluice-version.txt"
cat "$OUT_DIR/sluice-version.txt"

# ---------------------------------------------------------------- part 1: run-peers
sluice_log_check() { # log name: print Sluice's warnings/errors, if any
  local n
  n=$(grep -ciE ' (WARN|ERROR)|panic' "$1" || true)
  if [[ $n -gt 0 ]]; then
    echo "NOTE: $2 logged $n warning/error lines ($1); first ones:"; grep -m5 -iE ' (WARN|ERROR)|panic' "$1" || true
  else
    echo "$2 log: no warnings or errors ($1)"
  fi
}
if [[ $PEERS_RUN == 1 ]]; then
  echo "== part 1: run-peers.sh with sluice  (SCHED=$SCHED, SUITES=${SUITES:-run-peers default})"
  # watchdog: note when a process run-peers started disappears before the end (a crash, or
  # someone else's kill): every number measured after that is void
  mkdir -p "$OUT_DIR/peers"
  # It also ends a load generator that outlives its run by 30 s: under SCHED=fifo a wrk that
  # spins (it does when the server is gone) starves run-peers' `timeout` on the same core.
  LG_LIMIT=$(( $(printf '%s\n' "${DURATION:-10}" "${LAT_DURATION:-4}" "${TLS_DURATION:-3}" | sort -n | tail -1) + 30 ))
  ( while sleep 1; do
      [[ -e $OUT_DIR/peers/summary.md ]] && break   # measuring over: run-peers is stopping them
      for lg in $(pgrep -x wrk) $(pgrep -x h2load); do
        a=$lg; while [[ -n $a && $a != 1 && $a != "$$" ]]; do a=$(ps -o ppid= -p "$a" 2>/dev/null | tr -d ' '); done
        if [[ $a == "$$" ]] && (( $(ps -o etimes= -p "$lg" 2>/dev/null || echo 0) > LG_LIMIT )); then
          echo "load generator $lg ($(tr '\0' ' ' < /proc/$lg/cmdline 2>/dev/null)) killed after ${LG_LIMIT}s at $(date -Is)" >> "$OUT_DIR/peers/deaths.txt"
          kill -KILL "$lg" 2>/dev/null || true
        fi
      done
      [[ -r $OUT_DIR/peers/pids ]] || continue
      while read -r name pid; do
        if [[ ! -e /proc/$pid ]] && ! grep -q "^$name $pid " "$OUT_DIR/peers/deaths.txt" 2>/dev/null; then
          echo "$name $pid gone at $(date -Is)" >> "$OUT_DIR/peers/deaths.txt"
        fi
      done < "$OUT_DIR/peers/pids"
    done ) &
  WATCHDOG=$!
  rc=0
  PROXY_NAME=sluice PROXY_TLS=${PROXY_TLS:-1} PROXY_CMD="$HERE/lib/sluice-peer.sh" \
    SLUICE_BIN=$SLUICE_BIN BACKEND_BIN=$BACKEND_BIN PINGORA_BIN=$PINGORA_BIN \
    SCHED=$SCHED PROXY_CORE=$PROXY_CORE LOAD_CORE=$LOAD_CORE OUT_DIR=$OUT_DIR/peers \
    "$SHARED_BENCH/run-peers.sh" || rc=$?
  kill "$WATCHDOG" 2>/dev/null || true; wait "$WATCHDOG" 2>/dev/null || true
  if [[ -s $OUT_DIR/peers/deaths.txt ]]; then
    echo "WARNING: processes of run-peers died during the run (runs after that are void):"; cat "$OUT_DIR/peers/deaths.txt"
  fi
  sluice_log_check "$OUT_DIR/peers/logs/sluice.out" "sluice (peers)"
  [[ $rc == 0 ]] || { echo "run-peers.sh failed (exit $rc)" >&2; exit "$rc"; }
fi
# ---------------------------------------------------------------- parts 2 and 3: common
SNAP=$SHARED_BENCH/lib/cpusnap.py
LUA=$SHARED_BENCH/lua/report.lua
N=(python3 "$SHARED_BENCH/lib/schedexec.py" "$SCHED")
B=$ROUTE_BASE
LOGD=$OUT_DIR
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_200() { # name url [curl args] -> sets READY_S (seconds since $T0)
  for _ in $(seq 1 600); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${@:3}" "$2" 2>/dev/null) == 200 ]]; then
      READY_S=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b - a}'); return 0
    fi
    if [[ -n ${PIDOF[$1]:-} ]] && ! kill -0 "${PIDOF[$1]}" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "$1 never answered 200 on $2; log:" >&2; tail -20 "$LOGD/$1.out" >&2; exit 1
}
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# One load run with CPU accounting around it (parts 2 and 2b):
#   measure_wrk LOG PROXY_PID DURATION [VAR=value ...] -- WRK_ARGS...
# runs `wrk WRK_ARGS` on LOAD_CORE (under SCHED, in an env with the VAR=value given) into LOG and
# prints cpusnap's "busy_proxy busy_load steal foreign ns_proxy ns_backend".
measure_wrk() {
  local log=$1 pid=$2 dur=$3 envs=() before after t ticks; shift 3
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done; shift
  before=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "$pid" "${PIDOF[backend]}")
  t=$( { ( taskset -c "$LOAD_CORE" "${N[@]}" env WRK_PACE_MS=0 "${envs[@]}" timeout $((dur + 20)) \
             wrk "$@" > "$log" 2>&1 || true; times ) | tail -1; } )
  after=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "$pid" "${PIDOF[backend]}")
  ticks=$(awk '{n=0; for(i=1;i<=2;i++){split($i,x,/[ms]/); n+=x[1]*60+x[2]} printf "%d", n*100}' <<<"$t")
  python3 "$SNAP" diff "$before" "$after" "$ticks"
}
# The CSV row of one load run (parts 2 and 2b), from wrk's log (report.lua's RESULT line):
#   wrk_row LOG ROUND VARIANT COUNT CPU READY_S RSS_MIB
# -> round,variant,count,rps,p50_us,p99_us,errors,requests,proxy_us_per_req,busy_proxy_core,foreign_pct,ready_s,rss_mib
wrk_row() {
  python3 - "$@" <<'PY'
import re, sys
log, r, v, n, cpu, ready, rss = sys.argv[1:8]
busy_p, busy_l, steal, foreign, ns_proxy, ns_backend = cpu.split()
text = open(log).read()
m = re.search(r"^RESULT (.*)$", text, re.M)
kv = dict(x.split("=") for x in m.group(1).split()) if m else {}
req = int(kv.get("requests", 0))
err = sum(int(kv.get(k, 0)) for k in kv if k.startswith("err_")) if m else -1
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
err += int(non2xx.group(1)) if non2xx else 0
upr = "%.2f" % (int(ns_proxy) / 1000 / req) if req else ""
print(f"{r},{v},{n},{kv.get('rps', 0)},{kv.get('p50_us', 0)},{kv.get('p99_us', 0)},{err},{req},{upr},{busy_p},{foreign},{ready},{rss}")
PY
}

# ---------------------------------------------------------------- part 2: routing cost
route_suite() {
echo "== part 2: routing cost, $ROUTE_SMALL vs $ROUTE_INGRESSES Ingresses (SCHED=$SCHED)"
R=$OUT_DIR/route
mkdir -p "$R/logs"; LOGD=$R/logs
BPORT=$((B + 80))
declare -A HTTP_PORT=( [small]=$((B + 81)) [large]=$((B + 82)) )
declare -A COUNT=( [small]=$ROUTE_SMALL [large]=$ROUTE_INGRESSES )
for port in $BPORT $((B + 81)) $((B + 82)) $((B + 441)) $((B + 442)) $((B + 251)) $((B + 252)); do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy (set ROUTE_BASE)" >&2; exit 1; fi
done
HOSTNUM=$(sed -E 's/^h0*([0-9]+)\..*/\1/' <<<"$ROUTE_HOST")
[[ $HOSTNUM =~ ^[0-9]+$ ]] || HOSTNUM=0
if (( HOSTNUM >= ROUTE_INGRESSES )); then
  echo "ROUTE_HOST=$ROUTE_HOST is not among the $ROUTE_INGRESSES Ingresses (h00000 ...); set ROUTE_HOST" >&2; exit 1
fi
FIRST_SMALL=$(( HOSTNUM >= ROUTE_SMALL / 2 ? HOSTNUM - ROUTE_SMALL / 2 : 0 ))
python3 "$HERE/lib/gen-manifests.py" --out "$R/manifests-small" --backend-port "$BPORT" \
  --ingresses "$ROUTE_SMALL" --first "$FIRST_SMALL" --split 500
python3 "$HERE/lib/gen-manifests.py" --out "$R/manifests-large" --backend-port "$BPORT" \
  --ingresses "$ROUTE_INGRESSES" --split 500


start_bg backend "$LOAD_CORE" "$BACKEND_BIN" "$H:$BPORT"
T0=$(date +%s.%N); wait_200 backend "http://$H:$BPORT/"
declare -A READY RSS0
for v in small large; do
  i=$([[ $v == small ]] && echo 1 || echo 2)
  T0=$(date +%s.%N)
  # shellcheck disable=SC2086
  start_bg "$v" "$PROXY_CORE" "$SLUICE_BIN" run --manifests "$R/manifests-$v" \
    --http "$H:${HTTP_PORT[$v]}" --https "$H:$((B + 440 + i))" --admin "$H:$((B + 250 + i))" \
    --workers "$SLUICE_WORKERS" ${SLUICE_EXTRA_ARGS:-}
  wait_200 "$v" "http://$H:${HTTP_PORT[$v]}$ROUTE_PATH" -H "Host: $ROUTE_HOST"
  READY[$v]=$READY_S; RSS0[$v]=$(rss_mib "${PIDOF[$v]}")
  echo "  $v: ${COUNT[$v]} Ingresses, first routed 200 after ${READY[$v]}s, RSS ${RSS0[$v]} MiB"
done
# sanity: a host that is not served answers 404 from both
for v in small large; do
  c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: nope.bench.test' "http://$H:${HTTP_PORT[$v]}/")
  [[ $c == 404 ]] || echo "NOTE: $v answered $c (expected 404) for an unknown host" >&2
done

{
  echo "date: $(date -Is)"; uname -a; grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"
  "$SLUICE_BIN" --version || true
  echo "ROUTE_ROUNDS=$ROUTE_ROUNDS ROUTE_DURATION=$ROUTE_DURATION ROUTE_CONNS=$ROUTE_CONNS HOST=$ROUTE_HOST PATH=$ROUTE_PATH SCHED=$SCHED"
} > "$R/env.txt" 2>&1
RES=$R/results.csv
echo "round,variant,ingresses,rps,p50_us,p99_us,errors,requests,proxy_us_per_req,busy_proxy_core,foreign_pct,ready_s,rss_mib" > "$RES"

for v in small large; do   # warm-up, not recorded
  timeout 15 taskset -c "$LOAD_CORE" wrk -t1 -c"$ROUTE_CONNS" -d2s -H "Host: $ROUTE_HOST" \
    "http://$H:${HTTP_PORT[$v]}$ROUTE_PATH" > /dev/null 2>&1 || true
done
for ((r = 1; r <= ROUTE_ROUNDS; r++)); do
  order="small large"; (( r % 2 == 0 )) && order="large small"
  for v in $order; do
    log=$R/logs/r$r-$v.txt
    cpu=$(measure_wrk "$log" "${PIDOF[$v]}" "$ROUTE_DURATION" -- -t1 -c"$ROUTE_CONNS" -d"${ROUTE_DURATION}s" \
            --timeout 5s -s "$LUA" -H "Host: $ROUTE_HOST" "http://$H:${HTTP_PORT[$v]}$ROUTE_PATH")
    wrk_row "$log" "$r" "$v" "${COUNT[$v]}" "$cpu" "${READY[$v]}" "$(rss_mib "${PIDOF[$v]}")" >> "$RES"
    tail -1 "$RES" | awk -F, '{printf "  r%-2s %-5s %6s Ingresses %9.0f req/s  p50 %5s  p99 %6s us  cpu %6s us/req  err %s  foreign %s%%\n", $1, $2, $3, $4, $5, $6, $9, $7, $11}'
  done
done
for v in small large; do
  kill -0 "${PIDOF[$v]}" 2>/dev/null || echo "WARNING: sluice ($v) exited during the run; log: $R/logs/$v.out" >&2
done

python3 - "$RES" "$ROUTE_HOST" "$ROUTE_PATH" "$ROUTE_CONNS" "$ROUTE_DURATION" <<'PY' | tee "$R/summary.md"
import csv, statistics as st, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
host, path, conns, dur = sys.argv[2:6]
by = defaultdict(list)
for r in rows:
    by[r["variant"]].append(r)
f = lambda x: float(x) if x not in ("", None) else None
def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None
base = med(f(r["rps"]) for r in by["small"])
base_cpu = med(f(r["proxy_us_per_req"]) for r in by["small"])
base_round = {r["round"]: f(r["rps"]) for r in by["small"]}
print("| Ingresses | req/s median | min-max | x small | x small per-round (min-max) | p50 us | p99 us "
      "| Sluice CPU us/req | CPU x small | Sluice core busy % | first 200 after s | RSS MiB | foreign % (max) | errors |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for v in ("small", "large"):
    rs = by.get(v)
    if not rs:
        continue
    vals = [f(r["rps"]) or 0.0 for r in rs]
    m = st.median(vals)
    pr = [f(r["rps"]) / base_round[r["round"]] for r in rs if base_round.get(r["round"])]
    cpu = med(f(r["proxy_us_per_req"]) for r in rs)
    fo = [f(r["foreign_pct"]) or 0.0 for r in rs]
    print(f"| {int(rs[0]['ingresses']):,} | {m:,.0f} | {min(vals):,.0f}-{max(vals):,.0f} | "
          f"{m / base:.2f} | {'%.2f (%.2f-%.2f)' % (st.median(pr), min(pr), max(pr)) if pr else '-'} | "
          f"{med(f(r['p50_us']) for r in rs):.0f} | {med(f(r['p99_us']) for r in rs):.0f} | "
          f"{'-' if cpu is None else '%.1f' % cpu} | {'%.2f' % (cpu / base_cpu) if cpu and base_cpu else '-'} | "
          f"{med(f(r['busy_proxy_core']) for r in rs):.0f} | {rs[0]['ready_s']} | {rs[-1]['rss_mib']} | "
          f"{st.median(fo):.0f} ({max(fo):.0f}){' !' if max(fo) > 10 else ''} | "
          f"{sum(int(r['errors']) for r in rs)} |")
print()
print(f"wrk -t1 -c{conns} -d{dur}s -H 'Host: {host}' http://LISTEN{path}, both Sluice instances (--workers 1) on "
      "the proxy core, wrk + bench-backend on the other. x small per-round = large/small inside each round. "
      "Sluice CPU us/req = on-CPU time of all Sluice threads / requests. first 200 after = seconds from "
      "process start to the first routed 200 for that host (includes reading and translating the manifests). "
      "RSS = resident memory after the runs. errors = wrk socket errors + non-2xx/3xx.")
PY
sluice_log_check "$R/logs/small.out" "sluice (small)"
sluice_log_check "$R/logs/large.out" "sluice (large)"
echo "raw: $RES  logs: $R/logs"
cleanup; PIDS=(); PIDOF=()
}

# ---------------------------------------------------------------- part 2b: regex vs prefix paths
# Issue 10: requests/s with 1,000 regex paths on one host >= 0.9 x with 1,000 prefix paths.
paths_suite() {
echo "== part 2b: $PATHS_COUNT regex vs $PATHS_COUNT prefix paths on one host (SCHED=$SCHED)"
local R=$OUT_DIR/paths PB=$((B + 700)) PHOST=paths.bench.test
mkdir -p "$R/logs"; LOGD=$R/logs
local BPORT=$PB
declare -A PPORT=( [regex]=$((PB + 1)) [prefix]=$((PB + 2)) )
local port v i c
for port in $PB $((PB + 1)) $((PB + 2)) $((PB + 11)) $((PB + 12)) $((PB + 21)) $((PB + 22)); do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy (set ROUTE_BASE)" >&2; exit 1; fi
done
for v in regex prefix; do
  python3 "$HERE/lib/gen-manifests.py" --out "$R/manifests-$v.yaml" --backend-port "$BPORT" \
    --many-paths "$v" "$PATHS_COUNT" --paths-host "$PHOST" \
    --requests-out "$R/requests.txt" --requests "$PATHS_REQUESTS"
done
local first_path
first_path=$(head -1 "$R/requests.txt")

start_bg backend "$LOAD_CORE" "$BACKEND_BIN" "$H:$BPORT"
T0=$(date +%s.%N); wait_200 backend "http://$H:$BPORT/"
declare -A READY RSS0
for v in regex prefix; do
  i=$([[ $v == regex ]] && echo 1 || echo 2)
  T0=$(date +%s.%N)
  # shellcheck disable=SC2086
  start_bg "$v" "$PROXY_CORE" "$SLUICE_BIN" run --manifests "$R/manifests-$v.yaml" \
    --http "$H:${PPORT[$v]}" --https "$H:$((PB + 10 + i))" --admin "$H:$((PB + 20 + i))" \
    --workers "$SLUICE_WORKERS" ${SLUICE_EXTRA_ARGS:-}
  wait_200 "$v" "http://$H:${PPORT[$v]}$first_path" -H "Host: $PHOST"
  READY[$v]=$READY_S; RSS0[$v]=$(rss_mib "${PIDOF[$v]}")
  echo "  $v: $PATHS_COUNT paths, first routed 200 after ${READY[$v]}s, RSS ${RSS0[$v]} MiB"
done
# sanity: every request path answers 200 from both; the routing tables hold what we think
# (regex mode: case-insensitive, so an upper-cased path matches only there); no match is 404
for v in regex prefix; do
  while read -r path; do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $PHOST" "http://$H:${PPORT[$v]}$path")
    [[ $c == 200 ]] || { echo "$v answered $c for $path (expected 200)" >&2; exit 1; }
  done < "$R/requests.txt"
  "$SLUICE_BIN" routes --admin "$H:$((PB + 20 + $([[ $v == regex ]] && echo 1 || echo 2)))" > "$R/routes-$v.txt" 2>&1 || true
  echo "  $v: routes for $PHOST by match type: $(grep -F "$PHOST" "$R/routes-$v.txt" | grep -oE '\b(Regex|Prefix|Exact)\b' | sort | uniq -c | tr -s ' \n' ' ')"
  c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $PHOST" "http://$H:${PPORT[$v]}/nope")
  [[ $c == 404 ]] || echo "NOTE: $v answered $c for /nope (expected 404)" >&2
done
local upper
upper=$(tail -1 "$R/requests.txt" | tr 'a-z' 'A-Z')
for v in regex prefix; do
  c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $PHOST" "http://$H:${PPORT[$v]}$upper")
  echo "  $v: $upper -> $c (regex mode is case-insensitive: 200 expected from regex, 404 from prefix)"
done

{
  echo "date: $(date -Is)"; uname -a; grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"
  "$SLUICE_BIN" --version || true
  echo "PATHS_ROUNDS=$PATHS_ROUNDS PATHS_DURATION=$PATHS_DURATION PATHS_CONNS=$PATHS_CONNS PATHS_COUNT=$PATHS_COUNT HOST=$PHOST SCHED=$SCHED"
  echo "request paths:"; cat "$R/requests.txt"
} > "$R/env.txt" 2>&1
local RES=$R/results.csv log r order cpu
echo "round,variant,paths,rps,p50_us,p99_us,errors,requests,proxy_us_per_req,busy_proxy_core,foreign_pct,ready_s,rss_mib" > "$RES"
local WENV=(WRK_REPORT_LUA="$LUA" WRK_PATHS_FILE="$R/requests.txt")
for v in regex prefix; do   # warm-up, not recorded
  timeout 15 taskset -c "$LOAD_CORE" env "${WENV[@]}" wrk -t1 -c"$PATHS_CONNS" -d2s -s "$HERE/lib/paths.lua" \
    -H "Host: $PHOST" "http://$H:${PPORT[$v]}/" > /dev/null 2>&1 || true
done
for ((r = 1; r <= PATHS_ROUNDS; r++)); do
  order="regex prefix"; (( r % 2 == 0 )) && order="prefix regex"
  for v in $order; do
    log=$R/logs/r$r-$v.txt
    cpu=$(measure_wrk "$log" "${PIDOF[$v]}" "$PATHS_DURATION" "${WENV[@]}" -- -t1 -c"$PATHS_CONNS" \
            -d"${PATHS_DURATION}s" --timeout 5s -s "$HERE/lib/paths.lua" -H "Host: $PHOST" "http://$H:${PPORT[$v]}/")
    wrk_row "$log" "$r" "$v" "$PATHS_COUNT" "$cpu" "${READY[$v]}" "$(rss_mib "${PIDOF[$v]}")" >> "$RES"
    tail -1 "$RES" | awk -F, '{printf "  r%-2s %-6s %5s paths %9.0f req/s  p50 %5s  p99 %6s us  cpu %6s us/req  err %s  foreign %s%%\n", $1, $2, $3, $4, $5, $6, $9, $7, $11}'
  done
done
for v in regex prefix; do
  kill -0 "${PIDOF[$v]}" 2>/dev/null || echo "WARNING: sluice ($v) exited during the run; log: $R/logs/$v.out" >&2
done

python3 - "$RES" "$PHOST" "$PATHS_CONNS" "$PATHS_DURATION" "$(wc -l < "$R/requests.txt")" <<'PY' | tee "$R/summary.md"
import csv, statistics as st, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
host, conns, dur, nreq = sys.argv[2:6]
by = defaultdict(list)
for r in rows:
    by[r["variant"]].append(r)
f = lambda x: float(x) if x not in ("", None) else None
def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None
base = med(f(r["rps"]) for r in by["prefix"])
base_cpu = med(f(r["proxy_us_per_req"]) for r in by["prefix"])
base_round = {r["round"]: f(r["rps"]) for r in by["prefix"]}
print("| paths on one host | req/s median | min-max | x prefix | x prefix per-round (min-max) | p50 us | p99 us "
      "| Sluice CPU us/req | CPU x prefix | Sluice core busy % | first 200 after s | RSS MiB | foreign % (max) | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratio = None
for v in ("regex", "prefix"):
    rs = by.get(v)
    if not rs:
        continue
    vals = [f(r["rps"]) or 0.0 for r in rs]
    m = st.median(vals)
    pr = [f(r["rps"]) / base_round[r["round"]] for r in rs if base_round.get(r["round"])]
    if v == "regex":
        ratio = (m / base, st.median(pr) if pr else None)
    cpu = med(f(r["proxy_us_per_req"]) for r in rs)
    fo = [f(r["foreign_pct"]) or 0.0 for r in rs]
    print(f"| {int(rs[0]['paths']):,} {v} | {m:,.0f} | {min(vals):,.0f}-{max(vals):,.0f} | "
          f"{m / base:.2f} | {'%.2f (%.2f-%.2f)' % (st.median(pr), min(pr), max(pr)) if pr else '-'} | "
          f"{med(f(r['p50_us']) for r in rs):.0f} | {med(f(r['p99_us']) for r in rs):.0f} | "
          f"{'-' if cpu is None else '%.1f' % cpu} | {'%.2f' % (cpu / base_cpu) if cpu and base_cpu else '-'} | "
          f"{med(f(r['busy_proxy_core']) for r in rs):.0f} | {rs[0]['ready_s']} | {rs[-1]['rss_mib']} | "
          f"{st.median(fo):.0f} ({max(fo):.0f}){' !' if max(fo) > 10 else ''} | "
          f"{sum(int(r['errors']) for r in rs)} |")
print()
print(f"wrk -t1 -c{conns} -d{dur}s -s bench/lib/paths.lua -H 'Host: {host}' (cycling through {nreq} request "
      "paths), both Sluice instances (--workers 1) on the proxy core, wrk + bench-backend on the other. "
      "x prefix per-round = regex/prefix inside each round. Sluice CPU us/req = on-CPU time of all Sluice "
      "threads / requests. first 200 after = seconds from process start to the first routed 200.")
if ratio:
    ok = ratio[0] >= 0.9
    print()
    print(f"regex / prefix req/s = {ratio[0]:.2f} (per-round median {ratio[1]:.2f}); target >= 0.90: "
          f"{'met' if ok else 'MISSED'}")
PY
sluice_log_check "$R/logs/regex.out" "sluice (regex)"
sluice_log_check "$R/logs/prefix.out" "sluice (prefix)"
echo "raw: $RES  logs: $R/logs"
cleanup; PIDS=(); PIDOF=()
}

# ---------------------------------------------------------------- part 2c: protection cost
source "$HERE/lib/protect-suite.sh"

# ---------------------------------------------------------------- part 3: full TLS handshakes
# wrk resumes TLS sessions (it offers the previous session on every reconnect). run-peers
# turns resumption off in nginx and HAProxy, but Sluice resumes (rustls with a ticketer), so
# run-peers' `tls` suite compares Sluice's resumed handshakes with the others' full ones.
# This part measures both kinds explicitly with `openssl s_time`: -new never offers a session
# (full handshake every connection), -reuse always does; every connection also sends one
# `GET / HTTP/1.0` that the server proxies to the same bench-backend.
tls_full_suite() {
echo "== part 3: TLS 1.3 handshakes with openssl s_time (-new = full, -reuse = resumed), SCHED=$SCHED"
local T=$OUT_DIR/tlsfull
mkdir -p "$T/logs" "$T/nginx"; LOGD=$T/logs
local TB=$((B + 600))
local BPORT=$TB
declare -A TPORT=( [nginx]=$((TB + 1)) [haproxy]=$((TB + 2)) [sluice]=$((TB + 3)) [sluice-resumed]=$((TB + 3)) )
for port in $TB $((TB + 1)) $((TB + 2)) $((TB + 3)) $((TB + 4)) $((TB + 5)); do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy (set ROUTE_BASE)" >&2; exit 1; fi
done
local KEYOPT=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
[[ ${CERT_TYPE:-ecdsa} == rsa ]] && KEYOPT=(-newkey rsa:2048)
openssl req -x509 "${KEYOPT[@]}" -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 7 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
cat "$T/cert.pem" "$T/key.pem" > "$T/haproxy.pem"
python3 "$HERE/lib/gen-manifests.py" --out "$T/manifests.yaml" --backend-port "$BPORT" \
  --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
cat > "$T/nginx.conf" <<EOF2
worker_processes 1;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/logs/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $T/nginx/body;
  proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fcgi;
  uwsgi_temp_path $T/nginx/uwsgi;
  scgi_temp_path $T/nginx/scgi;
  upstream backend { server $H:$BPORT; keepalive 128; }
  ssl_protocols TLSv1.3;
  ssl_session_tickets off;
  ssl_session_cache off;
  server {
    listen $H:${TPORT[nginx]} ssl backlog=4096;
    ssl_certificate $T/cert.pem;
    ssl_certificate_key $T/key.pem;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF2
cat > "$T/haproxy.cfg" <<EOF2
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
  tune.ssl.cachesize 0
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind $H:${TPORT[haproxy]} ssl crt $T/haproxy.pem alpn http/1.1
  default_backend be
backend be
  server s1 $H:$BPORT
EOF2
start_bg backend "$LOAD_CORE" "$BACKEND_BIN" "$H:$BPORT"
T0=$(date +%s.%N); wait_200 backend "http://$H:$BPORT/"
start_bg nginx "$PROXY_CORE" nginx -e "$T/logs/nginx-error.log" -p "$T/nginx/" -c "$T/nginx.conf"
start_bg haproxy "$PROXY_CORE" haproxy -db -f "$T/haproxy.cfg"
start_bg sluice "$PROXY_CORE" "$SLUICE_BIN" run --manifests "$T/manifests.yaml" \
  --https "$H:${TPORT[sluice]}" --http "$H:$((TB + 4))" --admin "$H:$((TB + 5))" \
  --workers "$SLUICE_WORKERS" --default-tls-secret default/bench-tls ${SLUICE_EXTRA_ARGS:-}
PIDOF[sluice-resumed]=${PIDOF[sluice]}
local v first
for v in nginx haproxy sluice; do
  wait_200 "$v" "https://$H:${TPORT[$v]}/" -k
  # what s_time sends: HTTP/1.0 without Host
  first=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 openssl s_client -quiet -connect "$H:${TPORT[$v]}" 2>/dev/null | head -1 | tr -d '\r' || true)
  [[ $first == *" 200"* ]] || echo "NOTE: $v answered '$first' to s_time's 'GET / HTTP/1.0' (no Host)" >&2
done
local RES=$T/results.csv
echo "round,variant,connections,wall_s,rate,proxy_us_per_conn,busy_proxy_core,foreign_pct,reused" > "$RES"
local VARIANTS="nginx haproxy sluice sluice-resumed" r k before after t ticks cpu t0 t1 mode
for v in $VARIANTS; do   # warm-up
  mode=-new; [[ $v == *resumed ]] && mode=-reuse
  timeout 10 taskset -c "$LOAD_CORE" openssl s_time -connect "$H:${TPORT[$v]}" $mode -time 1 -www / > /dev/null 2>&1 || true
done
for ((r = 1; r <= TLSF_ROUNDS; r++)); do
  # shellcheck disable=SC2046
  for v in $(rotate $((r - 1)) $VARIANTS); do
    mode=-new; [[ $v == *resumed ]] && mode=-reuse
    before=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "${PIDOF[$v]}" "${PIDOF[backend]}")
    t0=$(date +%s.%N)
    t=$( { (
      for ((k = 1; k <= TLSF_CLIENTS; k++)); do
        taskset -c "$LOAD_CORE" "${N[@]}" timeout $((TLSF_DURATION + 20)) openssl s_time \
          -connect "$H:${TPORT[$v]}" $mode -time "$TLSF_DURATION" -www / > "$T/logs/r$r-$v-$k.txt" 2>&1 &
      done
      wait; times ) | tail -1; } )
    t1=$(date +%s.%N)
    after=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "${PIDOF[$v]}" "${PIDOF[backend]}")
    ticks=$(awk '{n=0; for(i=1;i<=2;i++){split($i,x,/[ms]/); n+=x[1]*60+x[2]} printf "%d", n*100}' <<<"$t")
    cpu=$(python3 "$SNAP" diff "$before" "$after" "$ticks")
    python3 - "$T/logs" "$r" "$v" "$t0" "$t1" "$cpu" >> "$RES" <<'PY'
import glob, re, sys
logs, r, v, t0, t1, cpu = sys.argv[1:7]
busy_p, busy_l, steal, foreign, ns_proxy, ns_backend = cpu.split()
n = reused = 0
for f in glob.glob(f"{logs}/r{r}-{v}-*.txt"):
    text = open(f).read()
    m = re.search(r"^(\d+) connections in [\d.]+ real seconds", text, re.M)
    n += int(m.group(1)) if m else 0
    # s_time prints one 'r' per resumed connection and '*' per new one
    reused += sum(line.count("r") for line in re.findall(r"^[r*]+$", text, re.M))
wall = float(t1) - float(t0)
upc = "%.1f" % (int(ns_proxy) / 1000 / n) if n else ""
print(f"{r},{v},{n},{wall:.2f},{n / wall:.0f},{upc},{busy_p},{foreign},{1 if reused > n // 2 else 0}")
PY
    tail -1 "$RES" | awk -F, '{printf "  r%-2s %-15s %7s conn/s  proxy cpu %6s us/conn  proxy core %3s%% busy  foreign %s%%\n", $1, $2, $5, $6, $7, $8}'
  done
done
python3 - "$RES" "$TLSF_CLIENTS" "$TLSF_DURATION" <<'PY' | tee "$T/summary.md"
import csv, statistics as st, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
clients, dur = sys.argv[2:4]
by = defaultdict(list)
for r in rows:
    by[r["variant"]].append(r)
f = lambda x: float(x) if x not in ("", None) else None
def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None
base = med(f(r["rate"]) for r in by["nginx"])
base_cpu = med(f(r["proxy_us_per_conn"]) for r in by["nginx"])
print("| server | handshake | conn/s median | min-max | x nginx | proxy CPU us/conn | CPU x nginx | proxy core busy % | foreign % (max) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for v in ("nginx", "haproxy", "sluice", "sluice-resumed"):
    rs = by.get(v)
    if not rs:
        continue
    vals = [f(r["rate"]) or 0.0 for r in rs]
    m = st.median(vals)
    cpu = med(f(r["proxy_us_per_conn"]) for r in rs)
    fo = [f(r["foreign_pct"]) or 0.0 for r in rs]
    kind = "resumed (s_time -reuse)" if all(r["reused"] == "1" for r in rs) else "full (s_time -new)"
    print(f"| {v.replace('-resumed', '')} | {kind} | {m:,.0f} | {min(vals):,.0f}-{max(vals):,.0f} | "
          f"{m / base:.2f} | {'-' if cpu is None else '%.1f' % cpu} | "
          f"{'%.2f' % (cpu / base_cpu) if cpu and base_cpu else '-'} | "
          f"{med(f(r['busy_proxy_core']) for r in rs):.0f} | {st.median(fo):.0f} ({max(fo):.0f}){' !' if max(fo) > 10 else ''} |")
print()
print(f"{clients} x `openssl s_time -new|-reuse -time {dur} -www /` in parallel on the load core; every connection "
      "is a TLS 1.3 handshake + one proxied GET. nginx and HAProxy have resumption off (as in run-peers), "
      "so only Sluice has a resumed row. conn/s is bounded by the client core (OpenSSL client handshakes); "
      "compare proxy CPU us/conn.")
PY
sluice_log_check "$T/logs/sluice.out" "sluice (tls)"
echo "raw: $RES  logs: $T/logs"
cleanup; PIDS=(); PIDOF=()
}

if [[ $ROUTE == 1 ]]; then route_suite; fi
if [[ $PATHS == 1 ]]; then paths_suite; fi
if [[ $PROTECT == 1 ]]; then protect_suite; fi
if [[ $TLS_FULL == 1 ]]; then tls_full_suite; fi
