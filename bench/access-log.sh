#!/usr/bin/env bash
# access-log.sh — what the access log costs (issue 17: "a few percent of throughput"),
# Sluice against nginx, loopback only, HTTP/1.1 keep-alive (run-peers' h1 suite: wrk -c50).
#
# 1. For MODE in off, json, nginx: l7-peers.sh part 1 (SUITES=h1, PEERS=nginx) with
#    `sluice run --access-log MODE`; stdout goes to a file, as run-peers sets it up.
# 2. The reference: run-peers.sh with PEERS=nginx (access_log off) and, as PROXY_CMD,
#    lib/nginx-log-peer.sh: the same nginx with ingress-nginx's log-format-upstream written
#    to a file, one write per request as ingress-nginx does (NGINX_LOG_PARAMS adds e.g.
#    `buffer=64k flush=1s`).
# Prints one table: median req/s and proxy CPU µs/request of each, and each logging mode's
# ratio to the same proxy without a log. The proxy's CPU includes its log writer (Sluice's
# writer thread; nginx writes from its worker).
#
# Usage: SCHED=fifo:10 bench/access-log.sh            # ~6 min (+ builds)
#        SKIP_BUILD=1 SLUICE_BIN=/path/to/sluice SCHED=fifo:10 bench/access-log.sh
# Knobs [defaults]: ROUNDS [3] SCHED [other] SLUICE_BIN SKIP_BUILD [0] BENCH_TARGET
#   [/tmp/sluice-bench-target] NGINX_LOG_PARAMS [] OUT_DIR [/tmp/bench-access-log.<pid>]
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=$(cd "${SHARED_BENCH:-$REPO/../shared/bench}" && pwd)
OUT_DIR=${OUT_DIR:-/tmp/bench-access-log.$$}
BENCH_TARGET=${BENCH_TARGET:-/tmp/sluice-bench-target}
export ROUNDS=${ROUNDS:-3} SCHED=${SCHED:-other} SUITES=h1 PEERS=nginx
mkdir -p "$OUT_DIR"

for mode in off json nginx; do
  echo "== sluice --access-log $mode"
  PEERS_RUN=1 ROUTE=0 PATHS=0 TLS_FULL=0 PROTECT=0 SLUICE_EXTRA_ARGS="--access-log $mode" \
    OUT_DIR="$OUT_DIR/sluice-$mode" "$HERE/l7-peers.sh" > "$OUT_DIR/sluice-$mode.txt" 2>&1 \
    || { tail -20 "$OUT_DIR/sluice-$mode.txt"; exit 1; }
  rm -f "$OUT_DIR/sluice-$mode/sluice"   # the binary's copy; the version is in sluice-version.txt
  export SKIP_BUILD=1 SLUICE_BIN=${SLUICE_BIN:-$REPO/target/release/sluice}
done
echo "== nginx with ingress-nginx's access log"
PROXY_NAME=nginx-log PROXY_CMD="$HERE/lib/nginx-log-peer.sh" \
  BACKEND_BIN=${BACKEND_BIN:-$BENCH_TARGET/backend/release/bench-backend} OUT_DIR="$OUT_DIR/nginx-log" \
  "$SHARED_BENCH/run-peers.sh" > "$OUT_DIR/nginx-log.txt" 2>&1 || { tail -20 "$OUT_DIR/nginx-log.txt"; exit 1; }

# run-peers' summary rows: | suite | peer | req/s median | ... | proxy CPU us/req | ...
row() { # file peer -> "req/s cpu"
  awk -F'|' -v peer="$2" '$2 ~ /^ h1 $/ && $3 == " " peer " " { gsub(/[ ,]/, "", $4); gsub(/ /, "", $11); print $4, $11; exit }' "$1"
}
read -r off_rps off_cpu < <(row "$OUT_DIR/sluice-off/peers/summary.md" sluice)
read -r ngx_rps ngx_cpu < <(row "$OUT_DIR/nginx-log/summary.md" nginx)
{
  echo "| proxy | access log | req/s (median) | proxy CPU µs/req | req/s vs no log |"
  echo "|---|---|---:|---:|---:|"
  for mode in off json nginx; do
    read -r rps cpu < <(row "$OUT_DIR/sluice-$mode/peers/summary.md" sluice)
    awk -v m="$mode" -v r="$rps" -v c="$cpu" -v b="$off_rps" 'BEGIN { printf "| sluice | %s | %d | %s | %.3f |\n", m, r, c, r / b }'
  done
  read -r rps cpu < <(row "$OUT_DIR/nginx-log/summary.md" nginx-log)
  awk -v r="$ngx_rps" -v c="$ngx_cpu" 'BEGIN { printf "| nginx | off | %d | %s | 1.000 |\n", r, c }'
  awk -v r="$rps" -v c="$cpu" -v b="$ngx_rps" 'BEGIN { printf "| nginx | log-format-upstream | %d | %s | %.3f |\n", r, c, r / b }'
} | tee "$OUT_DIR/summary.md"
echo "raw: $OUT_DIR/{sluice-*,nginx-log}/  summary: $OUT_DIR/summary.md"
