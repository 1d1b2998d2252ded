#!/usr/bin/env bash
# sluice-peer.sh — the PROXY_CMD that l7-peers.sh hands to ../shared/bench/run-peers.sh.
#
# run-peers.sh runs it as `bash -c "exec $PROXY_CMD"` (pinned to its proxy core, under its
# SCHED) with LISTEN_ADDR LISTEN_PORT BACKEND_ADDR BACKEND_PORT TLS_LISTEN_ADDR TLS_CERT
# TLS_KEY RUN_DIR in the environment. It writes the manifests for that backend and that
# certificate to $RUN_DIR/sluice/manifests.yaml (one Ingress without host -> Service backend,
# a kubernetes.io/tls Secret from TLS_CERT/TLS_KEY) and execs Sluice in the foreground, so
# the PID run-peers accounts and stops is Sluice's own.
#
# Env: SLUICE_BIN (required), SLUICE_WORKERS [1], SLUICE_ADMIN_ADDR [127.0.0.1:LISTEN_PORT+200],
#      SLUICE_EXTRA_ARGS [] (appended to `sluice run`), SLUICE_WRAPPER [] (a command Sluice runs
#      under, e.g. `valgrind --tool=callgrind ...` in callgrind.sh; split at spaces),
#      SLUICE_STDOUT [file]: `pipe` sends Sluice's stdout (its access log) through a pipe that
#      `cat`, on LOAD_CORE, copies to $RUN_DIR/sluice/stdout.log, as a container runtime
#      collects a container's stdout; cat is Sluice's child, so its CPU counts as Sluice's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${SLUICE_BIN:?}" "${LISTEN_ADDR:?}" "${LISTEN_PORT:?}" "${BACKEND_PORT:?}" "${TLS_LISTEN_ADDR:?}"
: "${TLS_CERT:?}" "${TLS_KEY:?}" "${RUN_DIR:?}"
D=$RUN_DIR/sluice
mkdir -p "$D"
python3 "$HERE/gen-manifests.py" --out "$D/manifests.yaml" --backend-ip "${BACKEND_ADDR%:*}" \
  --backend-port "$BACKEND_PORT" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY"
if [[ ${SLUICE_STDOUT:-file} == pipe ]]; then
  rm -f "$D/stdout.fifo"; mkfifo "$D/stdout.fifo"
  taskset -c "${LOAD_CORE:-1}" cat "$D/stdout.fifo" > "$D/stdout.log" &
  exec > "$D/stdout.fifo"
fi
# shellcheck disable=SC2086
exec ${SLUICE_WRAPPER:-} "$SLUICE_BIN" run --manifests "$D/manifests.yaml" \
  --http "$LISTEN_ADDR" --https "$TLS_LISTEN_ADDR" \
  --admin "${SLUICE_ADMIN_ADDR:-127.0.0.1:$((LISTEN_PORT + 200))}" \
  --workers "${SLUICE_WORKERS:-1}" --default-tls-secret default/bench-tls \
  ${SLUICE_EXTRA_ARGS:-}
