#!/usr/bin/env bash
# access-log.sh — what the access log costs (issue 17: "a few percent of throughput"),
# Sluice against nginx, loopback only, HTTP/1.1 keep-alive (run-peers' h1 suite: wrk -c50).
#
# 1. For MODE in off, json, nginx: l7-peers.sh part 1 (SUITES=h1, PEERS=nginx) with
#    `sluice run --access-log MODE`; stdout goes to a file, as run-peers sets it up. Then json
#    and nginx again with stdout into a pipe read by `cat` (SLUICE_STDOUT=pipe in
#    lib/sluice-peer.sh), as a container runtime reads it; cat's CPU counts as Sluice's.
# 2. The reference: run-peers.sh with PEERS=nginx (access_log off) and, as PROXY_CMD,
#    lib/nginx-log-peer.sh: the same nginx with ingress-nginx's log-format-upstream written
#    to a file, one write per request as ingress-nginx does (NGINX_LOG_PARAMS adds e.g.
#    `buffer=64k flush=1s`).
# Prints one table: median req/s and proxy CPU µs/request of each, and each logging mode's
# ratio to the same proxy without a log (through each run's own nginx: drift between runs
# cancels out). The proxy's CPU includes its log writer (Sluice's
# writer thread; nginx writes from its worker).
#
# Usage: SCHED=fifo:10 bench/access-log.sh            # ~8 min (+ builds)
#        SKIP_BUILD=1 SLUICE_BIN=/path/to/sluice SCHED=fifo:10 bench/access-log.sh
# Knobs [defaults]: ROUNDS [3] SCHED [other] SLUICE_BIN SKIP_BUILD [0] BENCH_TARGET
#   [/tmp/sluice-bench-target] NGINX_LOG_PARAMS [] OUT_DIR [/tmp/bench-access-log.<pid>]
#   SUMMARY_ONLY [0] (1: print the table of the runs already in OUT_DIR)
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=$(cd "${SHARED_BENCH:-$REPO/../shared/bench}" && pwd)
OUT_DIR=${OUT_DIR:-/tmp/bench-access-log.$$}
BENCH_TARGET=${BENCH_TARGET:-/tmp/sluice-bench-target}
export ROUNDS=${ROUNDS:-3} SCHED=${SCHED:-other} SUITES=h1 PEERS=nginx
mkdir -p "$OUT_DIR"

RUNS=(off:file json:file nginx:file json:pipe nginx:pipe)
if [[ ${SUMMARY_ONLY:-0} != 1 ]]; then
  for run in "${RUNS[@]}"; do
    mode=${run%:*} stdout=${run#*:}
    echo "== sluice --access-log $mode, stdout to a $stdout"
    PEERS_RUN=1 ROUTE=0 PATHS=0 TLS_FULL=0 PROTECT=0 SLUICE_EXTRA_ARGS="--access-log $mode" SLUICE_STDOUT=$stdout \
      OUT_DIR="$OUT_DIR/sluice-$mode-$stdout" "$HERE/l7-peers.sh" > "$OUT_DIR/sluice-$mode-$stdout.txt" 2>&1 \
      || { tail -20 "$OUT_DIR/sluice-$mode-$stdout.txt"; exit 1; }
    rm -f "$OUT_DIR/sluice-$mode-$stdout/sluice"   # the binary's copy; its version is in sluice-version.txt
    export SKIP_BUILD=1 SLUICE_BIN=${SLUICE_BIN:-$REPO/target/release/sluice}
  done
  echo "== nginx with ingress-nginx's access log"
  PROXY_NAME=nginx-log PROXY_CMD="$HERE/lib/nginx-log-peer.sh" \
    BACKEND_BIN=${BACKEND_BIN:-$BENCH_TARGET/backend/release/bench-backend} OUT_DIR="$OUT_DIR/nginx-log" \
    "$SHARED_BENCH/run-peers.sh" > "$OUT_DIR/nginx-log.txt" 2>&1 || { tail -20 "$OUT_DIR/nginx-log.txt"; exit 1; }
fi

# run-peers' summary rows: | suite | peer | req/s median | ... | proxy CPU us/req | ...
row() { # file peer -> "req/s cpu"
  awk -F'|' -v peer="$2" '$2 ~ /^ h1 $/ && $3 == " " peer " " { gsub(/[ ,]/, "", $4); gsub(/ /, "", $11); print $4, $11; exit }' "$1"
}
# Each run has run-peers' nginx beside it: a ratio to "no log" is taken between the two runs'
# ratios to their own nginx, which takes out the drift from one run to the next.
relative() { # file peer base_file base_peer -> ratio
  local r n br bn
  read -r r _ < <(row "$1" "$2"); read -r n _ < <(row "$1" nginx)
  read -r br _ < <(row "$3" "$4"); read -r bn _ < <(row "$3" nginx)
  awk -v r="$r" -v n="$n" -v br="$br" -v bn="$bn" 'BEGIN { printf "%.3f", (r / n) / (br / bn) }'
}
OFF=$OUT_DIR/sluice-off-file/peers/summary.md
{
  echo "| proxy | access log | stdout | req/s (median) | proxy CPU µs/req | req/s vs no log |"
  echo "|---|---|---|---:|---:|---:|"
  for run in "${RUNS[@]}"; do
    f=$OUT_DIR/sluice-${run%:*}-${run#*:}/peers/summary.md
    read -r rps cpu < <(row "$f" sluice)
    echo "| sluice | ${run%:*} | ${run#*:} | $rps | $cpu | $(relative "$f" sluice "$OFF" sluice) |"
  done
  f=$OUT_DIR/nginx-log/summary.md
  read -r rps cpu < <(row "$f" nginx); echo "| nginx | off | - | $rps | $cpu | 1.000 |"
  read -r rps cpu < <(row "$f" nginx-log)
  echo "| nginx | log-format-upstream | file | $rps | $cpu | $(relative "$f" nginx-log "$f" nginx) |"
} | tee "$OUT_DIR/summary.md"
echo "raw: $OUT_DIR/{sluice-*,nginx-log}/  summary: $OUT_DIR/summary.md"
