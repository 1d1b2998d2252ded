#!/usr/bin/env bash
# Reload benchmark: what a configuration change costs Sluice while it serves, compared with nginx.
#
#   bench/reload.sh [PART...]      PART: loss latency startup nginx   (default: all four)
#
#   loss     100 changes of mixed kinds (Ingress rewritten in place, replaced by rename, Ingress
#            file added / removed, EndpointSlice switched between two backends) under a steady
#            ~1,500 req/s (keep-alive and fresh connections) to a route that exists throughout;
#            requests lost, by kind (refused / reset or incomplete in flight / keep-alive race /
#            timeout / non-200). Sizes: LOSS_SIZES (default "10 10000" background Ingresses).
#   latency  write of a new or changed Ingress file (adding a unique host) -> first 200 on that
#            host, polled with a fresh request about every millisecond; p50/p99 over LAT_SAMPLES
#            (50) at LAT_SIZES ("10 10000") Ingresses, one file per Ingress+Service+EndpointSlice.
#   startup  exec -> /readyz 200 and resident memory (after ready, after traffic) at
#            STARTUP_SIZE (10000) Ingresses with STARTUP_ENDPOINTS (10) endpoints each.
#   nginx    the same with nginx where it applies (own config, pid and logs under a temp dir,
#            never the system service): `nginx -t` time, write + `nginx -s reload` -> first 200
#            (NGINX_LAT_SAMPLES=20 at "10 10000" server blocks), requests lost during 100 reloads
#            under the same load, start-up and memory at 10,000 server + upstream blocks.
#
# Environment: PORT_BASE (27180; uses PORT_BASE..PORT_BASE+20 on 127.0.0.1), CHANGES (100),
# INTERVAL (0.15 s between changes), KA_RATE (1000) / FRESH_RATE (500) req/s, LOSS_SIZES,
# LAT_SIZES, LAT_SAMPLES, LAT_ENDPOINTS (1), NGINX_SIZES ("10 10000"), NGINX_LAT_SAMPLES,
# STARTUP_SIZE, STARTUP_ENDPOINTS, STARTUP_RUNS (3), WORKERS (Sluice --workers; default: cores),
# QUIET_BUSY (0.5: before each measurement wait until the CPUs are at most 50 % busy, because
# other builds/benchmarks may share the machine; 1 = don't wait), QUIET_WAIT (30 s per measurement),
# RESULTS_MD (bench/RELOAD-RESULTS.md; "-" = don't write), RESULTS_DIR (where each measurement's
# JSON goes; default: a temp dir removed on exit. Give a directory to keep them: a later run with
# the same RESULTS_DIR replaces the measurements it repeats and reports all of them together),
# SKIP_BUILD=1, KEEP_WORK=1.
# Only loopback addresses are used. Every process started is ended by PID on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(loss latency startup nginx)
for p in "${PARTS[@]}"; do
  case $p in loss|latency|startup|nginx) ;; *) echo "unknown part: $p (loss latency startup nginx)" >&2; exit 2 ;; esac
done
want() { local p; for p in "${PARTS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

PORT_BASE=${PORT_BASE:-27180}
CHANGES=${CHANGES:-100}
INTERVAL=${INTERVAL:-0.15}
KA_RATE=${KA_RATE:-1000}
FRESH_RATE=${FRESH_RATE:-500}
LOSS_SIZES=${LOSS_SIZES:-10 10000}
LAT_SIZES=${LAT_SIZES:-10 10000}
LAT_SAMPLES=${LAT_SAMPLES:-50}
LAT_ENDPOINTS=${LAT_ENDPOINTS:-1}
NGINX_SIZES=${NGINX_SIZES:-10 10000}
NGINX_LAT_SAMPLES=${NGINX_LAT_SAMPLES:-20}
STARTUP_SIZE=${STARTUP_SIZE:-10000}
STARTUP_ENDPOINTS=${STARTUP_ENDPOINTS:-10}
STARTUP_RUNS=${STARTUP_RUNS:-3}
WORKERS=${WORKERS:-0}
QUIET_BUSY=${QUIET_BUSY:-0.5}
QUIET_WAIT=${QUIET_WAIT:-30}
RESULTS_MD=${RESULTS_MD:-$ROOT/bench/RELOAD-RESULTS.md}

SLUICE=$ROOT/target/release/sluice
BACKEND_DIR=${BACKEND_DIR:-/work/shared/bench/backend}
BACKEND_TARGET=${BACKEND_TARGET:-/tmp/bench-target}
BACKEND=$BACKEND_TARGET/release/bench-backend

WORK=$(mktemp -d /tmp/sluice-reload-bench.XXXXXX)
RESULTS_DIR=${RESULTS_DIR:-$WORK/results}
mkdir -p "$RESULTS_DIR"
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
PIDFILE=$WORK/pids
touch "$PIDFILE"

cleanup() {
  local pids pid kids
  pids=$(cat "$PIDFILE" 2>/dev/null || true)
  for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null; then
      kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)   # nginx workers
      kill -TERM "$pid" 2>/dev/null || true
      for k in $kids; do kill -TERM "$k" 2>/dev/null || true; done
    fi
  done
  sleep 0.5
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true; done
  # nginx workers of ours orphaned by a master stopped mid-reload: their stderr is in $WORK.
  for d in /proc/[0-9]*; do
    if [ "$(cat "$d/comm" 2>/dev/null)" = nginx ] && readlink "$d/fd/2" 2>/dev/null | grep -q "^$WORK/"; then
      kill -KILL "${d#/proc/}" 2>/dev/null || true
    fi
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '\n== %s\n' "$*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building sluice (release)"
  cargo build --release -p sluice
fi
if [ ! -x "$BACKEND" ]; then
  log "building the shared bench backend"
  (cd "$BACKEND_DIR" && CARGO_TARGET_DIR=$BACKEND_TARGET cargo build --release)
fi
if want nginx && ! command -v nginx >/dev/null; then
  log "installing nginx (the system service is never used)"
  # Keep the package's postinst from starting the system service on :80.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2
  if [ $made_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# Measure a copy: others may rebuild target/release/sluice while this runs.
cp "$SLUICE" "$WORK/sluice"
SLUICE_SHA=$(sha256sum "$WORK/sluice" | cut -c1-12)
SLUICE_REV="$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"

B=(python3 "$ROOT/bench/reload/bench.py" --sluice "$WORK/sluice" --backend "$BACKEND" --nginx "$NGINX"
   --port-base "$PORT_BASE" --workers "$WORKERS" --work "$WORK" --results "$RESULTS_DIR"
   --pidfile "$PIDFILE" --quiet-busy "$QUIET_BUSY" --quiet-wait "$QUIET_WAIT")
run() {
  log "$*"
  # Each measurement is bounded; a failure is reported and the others still run.
  timeout 900 "${B[@]}" "$@" >"$WORK/last.out" 2>&1 || { echo "FAILED: $*" >&2; tail -30 "$WORK/last.out" >&2; FAILED+=("$*"); }
  grep -E '^machine:' "$WORK/last.out" >&2 || true
}
FAILED=()
LOSS=(--changes "$CHANGES" --interval "$INTERVAL" --ka-rate "$KA_RATE" --fresh-rate "$FRESH_RATE")
STARTED=$(date +%s)

if want loss; then
  for n in $LOSS_SIZES; do run loss --target sluice --size "$n" "${LOSS[@]}"; done
fi
if want latency; then
  for n in $LAT_SIZES; do run latency --target sluice --size "$n" --endpoints "$LAT_ENDPOINTS" --samples "$LAT_SAMPLES"; done
fi
if want startup; then
  run startup --target sluice --size "$STARTUP_SIZE" --endpoints "$STARTUP_ENDPOINTS" --runs "$STARTUP_RUNS"
fi
if want nginx; then
  for n in $NGINX_SIZES; do run latency --target nginx --size "$n" --endpoints "$LAT_ENDPOINTS" --samples "$NGINX_LAT_SAMPLES"; done
  run loss --target nginx --size 10 "${LOSS[@]}"
  run startup --target nginx --size "$STARTUP_SIZE" --endpoints "$STARTUP_ENDPOINTS" --runs "$STARTUP_RUNS"
fi

ELAPSED=$(( $(date +%s) - STARTED ))
TABLES=$("${B[@]}" report)
echo
echo "$TABLES"
if [ ${#FAILED[@]} -gt 0 ]; then printf '\nFAILED: %s\n' "${FAILED[@]}"; fi

if [ "$RESULTS_MD" != "-" ]; then
  {
    echo "# Reload benchmark results"
    echo
    echo "Measured by \`bench/reload.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs"\
         "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB;"\
         "Sluice $SLUICE_REV (release binary sha256 $SLUICE_SHA, copied after the build),"\
         "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), Python $(python3 -c 'import platform; print(platform.python_version())');"\
         "it took ${ELAPSED} s. With RESULTS_DIR, earlier measurements kept there are reported too (see \"measured at\")."
    echo
    echo "Last invocation: \`bench/reload.sh ${PARTS[*]}\` with CHANGES=$CHANGES INTERVAL=$INTERVAL KA_RATE=$KA_RATE"\
         "FRESH_RATE=$FRESH_RATE LOSS_SIZES='$LOSS_SIZES' LAT_SIZES='$LAT_SIZES' LAT_SAMPLES=$LAT_SAMPLES"\
         "LAT_ENDPOINTS=$LAT_ENDPOINTS NGINX_SIZES='$NGINX_SIZES' NGINX_LAT_SAMPLES=$NGINX_LAT_SAMPLES"\
         "STARTUP_SIZE=$STARTUP_SIZE STARTUP_ENDPOINTS=$STARTUP_ENDPOINTS STARTUP_RUNS=$STARTUP_RUNS"\
         "QUIET_BUSY=$QUIET_BUSY QUIET_WAIT=$QUIET_WAIT."
    echo
    echo "Common options of every measurement command (listed at the end):"\
         "\`--sluice COPY-OF-target/release/sluice --backend $BACKEND --nginx $NGINX --port-base $PORT_BASE"\
         "--workers $WORKERS --quiet-busy $QUIET_BUSY --quiet-wait $QUIET_WAIT\`."
    echo
    echo "$TABLES"
    if [ ${#FAILED[@]} -gt 0 ]; then printf '\nFailed measurements: %s\n' "${FAILED[*]}"; fi
  } > "$RESULTS_MD.tmp"
  mv "$RESULTS_MD.tmp" "$RESULTS_MD"
  echo "written: $RESULTS_MD" >&2
fi
