#!/usr/bin/env bash
# l4-tcp.sh — TCP throughput of Sluice's layer-4 load balancer vs HAProxy (mode tcp),
# loopback only, with iperf3.
#
# Starts an iperf3 server on 127.0.0.1:$IPERF_PORT, Sluice with one `type: LoadBalancer`
# Service on $SLUICE_IP:$LB_PORT (address from --lb-pool, forwarded with splice(2)) and one
# HAProxy process (nbthread 1, mode tcp) with two listeners: a default one on
# $HAPROXY_IP:$LB_PORT and one with `option splice-request/-response` (splice(2) always, like
# Sluice) on $HAPROXY_SPLICE_IP:$LB_PORT.
# The proxies and the iperf3 server are pinned to PROXY_CORE, the iperf3 client to
# LOAD_CORE. Runs ROUNDS interleaved rounds (peer order rotated every round) of
#   single : iperf3 -c ... -t $DURATION -J          (1 TCP stream)
#   p4     : iperf3 -c ... -t $DURATION -J -P 4     (4 parallel streams)
# against every peer (direct = client -> iperf3 server, no proxy), and prints a markdown
# table: median Gbit/s, min-max, ratio to direct and to HAProxy, proxy CPU seconds per GB
# moved (on-CPU time of all the proxy's threads from /proc/PID/task/*/schedstat), the
# iperf3 server's CPU per GB (a control) and CPU used by other processes during the run.
# Every process started here is stopped by PID at exit.
#
# Usage (from anywhere; needs root for apt-get if iperf3/haproxy are missing):
#   bench/l4-tcp.sh                       # ~2.5 min of measuring + the Sluice build
#   SCHED=fifo:10 bench/l4-tcp.sh         # on a machine shared with other work
#   ROUNDS=5 DURATION=10 PEERS="direct sluice haproxy" SUITES=single bench/l4-tcp.sh
#
# Knobs [defaults]: ROUNDS [3] DURATION [5] SUITES [single p4] P_STREAMS [4]
#   PEERS [direct sluice haproxy haproxy-splice] PROXY_CORE [0] LOAD_CORE [1]
#   SCHED [other] (other | slice:US | fifo:PRIO, see ../shared/bench/lib/schedexec.py)
#   IPERF_PORT [15201] LB_PORT [5201] SLUICE_IP [127.0.40.1] HAPROXY_IP [127.0.41.1]
#   HAPROXY_SPLICE_IP [127.0.41.2] ADMIN_BASE [25000] (sluice --http/--https/--admin ports
#   ADMIN_BASE+80/+443/+254) SKIP_BUILD [0] SLUICE_BIN [target/release/sluice]
#   OUT_DIR [/tmp/bench-l4.<pid>] (results.csv, summary.md, logs/, conf/)
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
SUITES=${SUITES:-"single p4"}
P_STREAMS=${P_STREAMS:-4}
PEERS=${PEERS:-"direct sluice haproxy haproxy-splice"}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SCHED=${SCHED:-other}
IPERF_PORT=${IPERF_PORT:-15201}
LB_PORT=${LB_PORT:-5201}
SLUICE_IP=${SLUICE_IP:-127.0.40.1}
HAPROXY_IP=${HAPROXY_IP:-127.0.41.1}
HAPROXY_SPLICE_IP=${HAPROXY_SPLICE_IP:-127.0.41.2}
ADMIN_BASE=${ADMIN_BASE:-25000}
SKIP_BUILD=${SKIP_BUILD:-0}
SLUICE_BIN=${SLUICE_BIN:-$REPO/target/release/sluice}
OUT_DIR=${OUT_DIR:-/tmp/bench-l4.$$}
H=127.0.0.1

# ---------------------------------------------------------------- tools
source "$REPO/bench/lib/common.sh"
ensure_pkgs iperf3:iperf3 haproxy:haproxy python3:python3 util-linux:taskset iproute2:ss curl:curl
if [[ $SKIP_BUILD != 1 ]]; then
  echo "building sluice (release) ..." >&2
  (cd "$REPO" && cargo build --release -p sluice --quiet)
fi
[[ -x $SLUICE_BIN ]] || { echo "no sluice binary at $SLUICE_BIN" >&2; exit 1; }
# run a private copy: others may rebuild target/release/sluice while this runs
mkdir -p "$OUT_DIR"
cp "$SLUICE_BIN" "$OUT_DIR/sluice"; SLUICE_BIN=$OUT_DIR/sluice
{ echo "sluice: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) + $(git -C "$REPO" status --short -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l) changed files in the work tree"
  echo "sluice binary: $(sha256sum "$SLUICE_BIN" | cut -c1-16)"; } > "$OUT_DIR/sluice-version.txt"
cat "$OUT_DIR/sluice-version.txt"
SNAP=$SHARED_BENCH/lib/cpusnap.py
SCHEDEXEC=$SHARED_BENCH/lib/schedexec.py
[[ -r $SNAP && -r $SCHEDEXEC ]] || { echo "needs $SHARED_BENCH/lib/{cpusnap,schedexec}.py (set SHARED_BENCH)" >&2; exit 1; }
N=(python3 "$SCHEDEXEC" "$SCHED")
LOGD=$OUT_DIR/logs

declare -A ADDR=( [direct]="$H:$IPERF_PORT" [sluice]="$SLUICE_IP:$LB_PORT"
                  [haproxy]="$HAPROXY_IP:$LB_PORT" [haproxy-splice]="$HAPROXY_SPLICE_IP:$LB_PORT" )
for p in $PEERS; do [[ -n ${ADDR[$p]:-} ]] || { echo "unknown peer $p" >&2; exit 1; }; done
S_HTTP=$((ADMIN_BASE + 80)) S_HTTPS=$((ADMIN_BASE + 443)) S_ADMIN=$((ADMIN_BASE + 254))
for a in "$H:$IPERF_PORT" "$SLUICE_IP:$LB_PORT" "$HAPROXY_IP:$LB_PORT" "$HAPROXY_SPLICE_IP:$LB_PORT" \
         "$H:$S_HTTP" "$H:$S_HTTPS" "$H:$S_ADMIN"; do
  if ss -ltnH "src ${a%:*} and sport = :${a##*:}" | grep -q .; then
    echo "address $a busy (set IPERF_PORT / LB_PORT / *_IP / ADMIN_BASE)" >&2; exit 1
  fi
done

mkdir -p "$OUT_DIR/logs" "$OUT_DIR/conf" "$OUT_DIR/state"
C=$OUT_DIR/conf
RES=$OUT_DIR/results.csv
echo "round,suite,peer,gbps,bytes,retransmits,proxy_ns,server_ns,busy_proxy_core,busy_load_core,foreign_pct" > "$RES"

# ---------------------------------------------------------------- processes
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_listen() { # ip port name
  for _ in $(seq 1 100); do
    ss -ltnH "src $1 and sport = :$2" | grep -q . && return 0
    if [[ -n ${PIDOF[$3]:-} ]] && ! kill -0 "${PIDOF[$3]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$3 is not listening on $1:$2; log:" >&2; tail -20 "$OUT_DIR/logs/$3.out" >&2; exit 1
}

# ---------------------------------------------------------------- configs
cat > "$C/l4.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: iperf, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: $SLUICE_IP, ports: [{name: iperf, port: $LB_PORT, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: iperf-1, namespace: default, labels: {kubernetes.io/service-name: iperf}}
addressType: IPv4
ports: [{name: iperf, port: $IPERF_PORT, protocol: TCP}]
endpoints: [{addresses: ["$H"], conditions: {ready: true}}]
EOF

cat > "$C/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen plain
  bind $HAPROXY_IP:$LB_PORT
  server s1 $H:$IPERF_PORT
listen splice
  option splice-request
  option splice-response
  bind $HAPROXY_SPLICE_IP:$LB_PORT
  server s1 $H:$IPERF_PORT
EOF

{
  echo "date: $(date -Is)"; uname -a; grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"
  { "$SLUICE_BIN" --version; haproxy -v | sed -n 1p; iperf3 --version | sed -n 1p; } || true
  echo "PEERS=$PEERS SUITES=$SUITES ROUNDS=$ROUNDS DURATION=$DURATION P_STREAMS=$P_STREAMS SCHED=$SCHED"
} > "$OUT_DIR/env.txt" 2>&1

# ---------------------------------------------------------------- start
start_bg iperf-server "$PROXY_CORE" iperf3 -s -B "$H" -p "$IPERF_PORT"
wait_listen "$H" "$IPERF_PORT" iperf-server
for p in $PEERS; do
  case $p in
    sluice)
      start_bg sluice "$PROXY_CORE" "$SLUICE_BIN" run --manifests "$C/l4.yaml" \
        --http "$H:$S_HTTP" --https "$H:$S_HTTPS" --admin "$H:$S_ADMIN" --workers 1 \
        --lb-pool "$SLUICE_IP-$SLUICE_IP" --state-dir "$OUT_DIR/state"
      wait_listen "$SLUICE_IP" "$LB_PORT" sluice ;;
    haproxy|haproxy-splice)
      if [[ -z ${PIDOF[haproxy]:-} ]]; then
        start_bg haproxy "$PROXY_CORE" haproxy -db -f "$C/haproxy.cfg"
      fi
      PIDOF[haproxy-splice]=${PIDOF[haproxy]}
      wait_listen "${ADDR[$p]%:*}" "$LB_PORT" haproxy ;;
  esac
done

# ---------------------------------------------------------------- measuring
# one iperf3 client run on LOAD_CORE with CPU accounting around it
run_one() { # round suite peer
  local r=$1 s=$2 p=$3 extra=() subj="" log before after t ticks cpu
  [[ $s == p4 ]] && extra=(-P "$P_STREAMS")
  [[ $p != direct ]] && subj=${PIDOF[$p]}
  log="$OUT_DIR/logs/r$r-$s-$p.json"
  before=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "$subj" "${PIDOF[iperf-server]}")
  t=$( { ( taskset -c "$LOAD_CORE" "${N[@]}" timeout $((DURATION + 20)) \
             iperf3 -c "${ADDR[$p]%:*}" -p "${ADDR[$p]##*:}" -t "$DURATION" -J "${extra[@]}" \
             > "$log" 2>&1 || true; times ) | tail -1; } )
  after=$(python3 "$SNAP" snap $$ "$PROXY_CORE" "$LOAD_CORE" "$subj" "${PIDOF[iperf-server]}")
  ticks=$(awk '{n=0; for(i=1;i<=2;i++){split($i,x,/[ms]/); n+=x[1]*60+x[2]} printf "%d", n*100}' <<<"$t")
  cpu=$(python3 "$SNAP" diff "$before" "$after" "$ticks")   # busyP busyL steal foreign ns1 ns2
  python3 - "$log" "$r" "$s" "$p" "$cpu" >> "$RES" <<'PY'
import json, sys
log, r, s, p, cpu = sys.argv[1:6]
busy_p, busy_l, steal, foreign, ns_proxy, ns_server = cpu.split()
try:
    j = json.load(open(log))
    end = j["end"]
    rcv = end["sum_received"]
    gbps = rcv["bits_per_second"] / 1e9
    nbytes = rcv["bytes"]
    retr = end.get("sum_sent", {}).get("retransmits", "")
    if j.get("error"):
        raise ValueError(j["error"])
except Exception as e:  # failed run: recorded as 0 so that it shows in the table
    print(f"  run failed ({p} {s} r{r}): {e}; see {log}", file=sys.stderr)
    gbps, nbytes, retr = 0.0, 0, ""
if p == "direct":
    ns_proxy = ""
print(f"{r},{s},{p},{gbps:.3f},{nbytes},{retr},{ns_proxy},{ns_server},{busy_p},{busy_l},{foreign}")
PY
  tail -1 "$RES" | awk -F, '{printf "  r%-2s %-6s %-15s %7.2f Gbit/s  retr %-5s proxy core %3s%% busy  foreign %s%%\n", $1, $2, $3, $4, $6, $9, $11}'
}


echo "results -> $OUT_DIR   (proxies + iperf3 server on core $PROXY_CORE, iperf3 client on core $LOAD_CORE, SCHED=$SCHED)"
# warm-up: one short run through every peer (not recorded)
for p in $PEERS; do
  taskset -c "$LOAD_CORE" timeout 15 iperf3 -c "${ADDR[$p]%:*}" -p "${ADDR[$p]##*:}" -t 1 > /dev/null 2>&1 || true
done
START=$(date +%s)
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS"
  for s in $SUITES; do
    # shellcheck disable=SC2046
    for p in $(rotate $((r - 1)) $PEERS); do run_one "$r" "$s" "$p"; done
  done
done
echo "measured in $(( $(date +%s) - START ))s"
for name in sluice haproxy; do
  if [[ -n ${PIDOF[$name]:-} ]] && ! kill -0 "${PIDOF[$name]}" 2>/dev/null; then
    echo "WARNING: $name exited during the run; log: $OUT_DIR/logs/$name.out" >&2
  fi
done

# ---------------------------------------------------------------- report
python3 "$HERE/lib/l4-summary.py" "$RES" "$P_STREAMS" "$DURATION" | tee "$OUT_DIR/summary.md"
echo "raw: $RES  logs: $OUT_DIR/logs"
