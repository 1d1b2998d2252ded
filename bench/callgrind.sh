#!/usr/bin/env bash
# callgrind.sh — instructions per request inside Sluice, by component (hyper h1/h2, tokio, rustls,
# sluice_proxy modules, allocator, ...), under valgrind's callgrind, loopback only.
#
# For each suite (SUITES):
#   h1  HTTP/1.1 keep-alive:   h2load --h1 -n REQUESTS -c H1_CONNS            http://127.0.0.1:PORT/
#   h2  HTTP/2 over TLS (ALPN): h2load -n REQUESTS -c H2_CONNS -m H2_STREAMS   https://127.0.0.1:PORT/
# a bench-backend (../shared/bench/backend) runs on LOAD_CORE and Sluice, configured as in
# l7-peers.sh part 1 (lib/sluice-peer.sh: `sluice run --workers 1`, one Ingress without host to
# the backend, a TLS Secret that is also the default certificate), runs on PROXY_CORE under
#   valgrind --tool=callgrind --dump-instr=no --instr-atstart=no --callgrind-out-file=...
# with --client-header-timeout 600s (everything is ~50x slower under callgrind). Instrumentation
# starts off (valgrind then runs the program ~4x slower, collecting nothing), WARMUP_REQUESTS
# requests of the same kind go through (upstream pool, caches, lazily built state), then
# `callgrind_control -i on` switches instrumentation on, h2load sends exactly REQUESTS requests
# (on fresh connections: H1_CONNS/H2_CONNS accepts and, for h2, that many TLS handshakes are in
# the count), `callgrind_control -d` dumps the counts and `-i off` stops collecting. Then:
#   callgrind_annotate --inclusive=yes  -> SUITE/annotate-inclusive.txt (and self: annotate-self.txt)
#   lib/callgrind-summary.py            -> summary.md, components.csv: Ir (instructions executed in
#                                          user space) per request by component, total = all Ir / REQUESTS
# callgrind counts user-space instructions only: the kernel's share (syscalls, TCP) is not there.
#
# Usage:
#   bench/callgrind.sh                          # builds the `profiling` profile first (~15 min on 2 busy
#                                               # cores), then ~3 min
#   SKIP_BUILD=1 SLUICE_BIN=/tmp/before/sluice LABEL=before bench/callgrind.sh
#   SKIP_BUILD=1 SLUICE_BIN=/tmp/after/sluice  LABEL=after  bench/callgrind.sh
#   python3 bench/lib/callgrind-summary.py --compare OUT_BEFORE/components.csv OUT_AFTER/components.csv
#   REQUESTS=2000 SUITES=h1 bench/callgrind.sh  # a quick look
#
# Knobs [defaults]: REQUESTS [20000] SUITES [h1 h2] WARMUP_REQUESTS [2000] H1_CONNS [10]
#   H2_CONNS [10] H2_STREAMS [10] LABEL [the sluice version line] SLUICE_BIN
#   [$CARGO_TARGET_DIR/profiling/sluice; given: not built] CARGO_TARGET_DIR [/tmp/sluice-prof/target]
#   SKIP_BUILD [0] SLUICE_BUILT_FROM [] SLUICE_EXTRA_ARGS [] SCHED [other] PROXY_CORE [0]
#   LOAD_CORE [1] START_TIMEOUT [300] (s until Sluice under valgrind answers) LOAD_TIMEOUT
#   [600 + REQUESTS / 10] (s for one h2load run) BENCH_TARGET [/tmp/sluice-bench-target] BACKEND_BIN
#   CG_BASE [27050]: ports on 127.0.0.1: CG_BASE backend, +1 http, +2 https, +3 admin (Sluice)
#   OUT_DIR [/tmp/bench-callgrind.<pid>]: summary.md, components.csv, env.txt,
#   sluice-version.txt, SUITE/{callgrind.out*, annotate-*.txt, summary.md, logs/}
# Sluice should carry symbols (the `profiling` profile: release + line tables, not stripped; a
# stripped release binary gives only addresses).
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
SHARED_BENCH=$(cd "$SHARED_BENCH" && pwd)
REQUESTS=${REQUESTS:-20000}
SUITES=${SUITES:-h1 h2}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-2000}
H1_CONNS=${H1_CONNS:-10}
H2_CONNS=${H2_CONNS:-10}
H2_STREAMS=${H2_STREAMS:-10}
SCHED=${SCHED:-other}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/sluice-prof/target}
BUILD_SLUICE=0
[[ -z ${SLUICE_BIN:-} && $SKIP_BUILD != 1 ]] && BUILD_SLUICE=1
SLUICE_BIN=${SLUICE_BIN:-$CARGO_TARGET_DIR/profiling/sluice}
BENCH_TARGET=${BENCH_TARGET:-/tmp/sluice-bench-target}
BACKEND_BIN=${BACKEND_BIN:-$BENCH_TARGET/backend/release/bench-backend}
START_TIMEOUT=${START_TIMEOUT:-300}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-$((600 + REQUESTS / 10))}
CG_BASE=${CG_BASE:-27050}
OUT_DIR=${OUT_DIR:-/tmp/bench-callgrind.$$}
H=127.0.0.1
BPORT=$CG_BASE
HTTP_PORT=$((CG_BASE + 1))
TLS_PORT=$((CG_BASE + 2))
ADMIN_PORT=$((CG_BASE + 3))

source "$REPO/bench/lib/common.sh"
ensure_pkgs valgrind:valgrind valgrind:callgrind_control nghttp2-client:h2load curl:curl \
  openssl:openssl python3:python3 util-linux:taskset iproute2:ss
for s in $SUITES; do [[ $s == h1 || $s == h2 ]] || { echo "unknown suite $s (h1 h2)" >&2; exit 1; }; done
if [[ $BUILD_SLUICE == 1 ]]; then
  grep -q '^\[profile\.profiling\]' "$REPO/Cargo.toml" || { echo "no [profile.profiling] in $REPO/Cargo.toml" >&2; exit 1; }
  echo "building sluice (profile profiling) -> $CARGO_TARGET_DIR ..." >&2
  (cd "$REPO" && cargo build --profile profiling -p sluice --quiet)
fi
if [[ $SKIP_BUILD != 1 && $BACKEND_BIN == "$BENCH_TARGET/backend/release/bench-backend" ]]; then
  echo "building the shared bench backend -> $BENCH_TARGET/backend ..." >&2
  (cd "$SHARED_BENCH/backend" && CARGO_TARGET_DIR=$BENCH_TARGET/backend cargo build --release --quiet)
fi
for b in "$SLUICE_BIN" "$BACKEND_BIN"; do [[ -x $b ]] || { echo "missing binary $b" >&2; exit 1; }; done
mkdir -p "$OUT_DIR"
sluice_private_copy
LABEL=${LABEL:-$(head -1 "$OUT_DIR/sluice-version.txt" | sed 's/^sluice: //')}
if [[ $(readelf -S "$SLUICE_BIN" 2>/dev/null | grep -c '\.symtab') == 0 ]]; then
  echo "WARNING: $SLUICE_BIN has no symbol table (stripped?): callgrind will report addresses" >&2
fi
SLUICE_ARGS="--drain-timeout 1s"
if "$SLUICE_BIN" run --help | grep -q -- '--client-header-timeout'; then
  SLUICE_ARGS="$SLUICE_ARGS --client-header-timeout 600s"
fi

N=(python3 "$SHARED_BENCH/lib/schedexec.py" "$SCHED")
LOGD=$OUT_DIR
trap cleanup EXIT
trap 'exit 130' INT TERM
for port in $BPORT $HTTP_PORT $TLS_PORT $ADMIN_PORT; do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy (set CG_BASE)" >&2; exit 1; fi
done
C=$OUT_DIR/conf; mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$C/key.pem" \
  -out "$C/cert.pem" -days 7 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
{
  echo "date: $(date -Is)"; uname -a; grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"
  { valgrind --version; h2load --version | head -1; "$SLUICE_BIN" --version; } || true
  echo "LABEL=$LABEL REQUESTS=$REQUESTS SUITES=$SUITES WARMUP_REQUESTS=$WARMUP_REQUESTS H1_CONNS=$H1_CONNS H2_CONNS=$H2_CONNS H2_STREAMS=$H2_STREAMS SCHED=$SCHED"
  echo "sluice extra args: $SLUICE_ARGS ${SLUICE_EXTRA_ARGS:-}"
} > "$OUT_DIR/env.txt" 2>&1

# h2load_run LOG N: N requests of the current suite (h2load on LOAD_CORE); fails unless all succeed
h2load_run() {
  local log=$1 n=$2 args ok
  if [[ $suite == h1 ]]; then args=(--h1 -c "$H1_CONNS" "http://$H:$HTTP_PORT/")
  else args=(-c "$H2_CONNS" -m "$H2_STREAMS" "https://$H:$TLS_PORT/"); fi
  taskset -c "$LOAD_CORE" "${N[@]}" timeout "$LOAD_TIMEOUT" h2load -t1 -n "$n" "${args[@]}" > "$log" 2>&1 || true
  ok=$(grep -E '^requests:' "$log" | grep -oE '[0-9]+ succeeded' | cut -d' ' -f1 || true)
  if [[ $suite == h2 ]] && ! grep -qE 'Application protocol: h2$' "$log"; then
    echo "h2load did not negotiate h2 ($log)" >&2; exit 1
  fi
  [[ ${ok:-0} == "$n" ]] || { echo "h2load: ${ok:-0} of $n requests succeeded ($log):" >&2; tail -12 "$log" >&2; exit 1; }
}
cgctl() { # callgrind_control ARGS... on Sluice's valgrind; its output goes to the suite log
  echo "+ callgrind_control $*" >> "$D/logs/callgrind_control.log"
  timeout 120 callgrind_control "$@" "${PIDOF[sluice]}" >> "$D/logs/callgrind_control.log" 2>&1 || {
    echo "callgrind_control $* failed; see $D/logs/callgrind_control.log" >&2; exit 1; }
}

ARGS=()
for suite in $SUITES; do
  D=$OUT_DIR/$suite; LOGD=$D/logs; mkdir -p "$LOGD"
  echo "== $suite: $WARMUP_REQUESTS warm-up + $REQUESTS counted requests through sluice under callgrind"
  start_bg backend "$LOAD_CORE" "$BACKEND_BIN" "$H:$BPORT"
  wait_ok backend 30 "http://$H:$BPORT/"
  t0=$(date +%s)
  start_bg sluice "$PROXY_CORE" env SLUICE_BIN="$SLUICE_BIN" LISTEN_ADDR="$H:$HTTP_PORT" LISTEN_PORT="$HTTP_PORT" \
    BACKEND_ADDR="$H:$BPORT" BACKEND_PORT="$BPORT" TLS_LISTEN_ADDR="$H:$TLS_PORT" TLS_CERT="$C/cert.pem" \
    TLS_KEY="$C/key.pem" RUN_DIR="$D" SLUICE_ADMIN_ADDR="$H:$ADMIN_PORT" SLUICE_WORKERS=1 \
    SLUICE_EXTRA_ARGS="$SLUICE_ARGS ${SLUICE_EXTRA_ARGS:-}" \
    SLUICE_WRAPPER="valgrind --tool=callgrind --dump-instr=no --instr-atstart=no --callgrind-out-file=$D/callgrind.out" \
    "$HERE/lib/sluice-peer.sh"
  wait_ok sluice "$START_TIMEOUT" "http://$H:$HTTP_PORT/"
  echo "  sluice (valgrind pid ${PIDOF[sluice]}) answers after $(( $(date +%s) - t0 )) s"
  h2load_run "$LOGD/warmup.txt" "$WARMUP_REQUESTS"
  cgctl -i on
  t0=$(date +%s)
  h2load_run "$LOGD/measured.txt" "$REQUESTS"
  t1=$(date +%s)
  cgctl -d
  cgctl -i off
  echo "  $REQUESTS requests in $((t1 - t0)) s under callgrind: $(grep -E '^finished in' "$LOGD/measured.txt")"
  cleanup; PIDS=(); PIDOF=()
  # the dump made by `callgrind_control -d` (the file written at exit holds only the rest)
  dump=$D/callgrind.out.1
  [[ -s $dump ]] || { echo "no callgrind dump $dump" >&2; exit 1; }
  callgrind_annotate --inclusive=yes "$dump" > "$D/annotate-inclusive.txt" 2>&1 || true
  callgrind_annotate "$dump" > "$D/annotate-self.txt" 2>&1 || true
  python3 "$HERE/lib/callgrind-summary.py" --label "$LABEL" --requests "$REQUESTS" "$suite=$dump" > "$D/summary.md"
  ARGS+=("$suite=$dump")
  if grep -qiE ' (WARN|ERROR)|panic' "$LOGD/sluice.out"; then
    echo "  NOTE: sluice logged warnings/errors ($LOGD/sluice.out):"; grep -m5 -iE ' (WARN|ERROR)|panic' "$LOGD/sluice.out"
  fi
done
python3 "$HERE/lib/callgrind-summary.py" --label "$LABEL" --requests "$REQUESTS" \
  --csv "$OUT_DIR/components.csv" "${ARGS[@]}" | tee "$OUT_DIR/summary.md"
echo "raw: $OUT_DIR/*/callgrind.out.*  annotations: $OUT_DIR/*/annotate-*.txt"
