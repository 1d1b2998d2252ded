#!/usr/bin/env bash
# check.sh — how long `sluice check` takes, and how much memory, on 10,000 Ingresses carrying
# ingress-nginx annotations (issue 10's benchmark), against the same count without annotations.
#
# Variants (CHECK_VARIANTS, each a manifest directory written by lib/gen-manifests.py, 500
# documents per file; Sluice refuses a file of more than 1,024 documents):
#   annotated  --annotated N: N Ingresses of class `nginx` (IngressClass -> k8s.io/ingress-nginx)
#              in 20 namespaces, each with its own host, Service and EndpointSlice (2 endpoints),
#              a mix of honoured annotations (2 in 10 use-regex + rewrite-target, ssl-redirect,
#              force-ssl-redirect, proxy-body-size, timeouts, proxy-next-upstream*,
#              configuration-snippet of header lines, permanent/temporal-redirect, upstream-vhost,
#              app-root, server-alias, backend-protocol GRPC, service-upstream, canary-by-header on
#              every 100th), 2 % with an annotation Sluice ignores (warning), none refused; TLS
#              (a wildcard Secret per namespace) on 4 in 10. Checked with
#              `--ingress-class nginx --controller-class k8s.io/ingress-nginx`.
#   noregex    the same without regex mode (those Ingresses get Prefix /api and /static): what
#              the regexes cost.
#   plain      --ingresses N: the routing suite's N Ingresses (3 paths each, one Service, no
#              annotations).
# CHECK_ROUNDS interleaved rounds (order rotating) of
#   taskset -c CORE /usr/bin/time -v sluice check --manifests DIR [...] > check.out
# under SCHED; reports wall time, user + system CPU, max RSS (medians), exit code, the summary line
# and foreign % (CPU others took on the two cores meanwhile).
#
# Usage:
#   SCHED=fifo:10 bench/check.sh                      # builds sluice (release) first; ~1 min
#   SKIP_BUILD=1 CHECK_VARIANTS=annotated bench/check.sh
#
# Knobs [defaults]: SCHED [other] CORE [0] OTHER_CORE [1] SKIP_BUILD [0] SLUICE_BIN
#   [target/release/sluice] CHECK_INGRESSES [10000] CHECK_ROUNDS [$ROUNDS or 3]
#   CHECK_VARIANTS [annotated noregex plain] OUT_DIR [/tmp/bench-check.<pid>] SLUICE_BUILT_FROM []
#   (what SLUICE_BIN was built from, for sluice-version.txt; default: HEAD + changed files)
set -euo pipefail
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
SHARED_BENCH=$(cd "$SHARED_BENCH" && pwd)
SCHED=${SCHED:-other}
CORE=${CORE:-0}
OTHER_CORE=${OTHER_CORE:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
SLUICE_BIN=${SLUICE_BIN:-$REPO/target/release/sluice}
CHECK_INGRESSES=${CHECK_INGRESSES:-10000}
CHECK_ROUNDS=${CHECK_ROUNDS:-${ROUNDS:-3}}
CHECK_VARIANTS=${CHECK_VARIANTS:-annotated noregex plain}
OUT_DIR=${OUT_DIR:-/tmp/bench-check.$$}

source "$REPO/bench/lib/common.sh"
ensure_pkgs time:/usr/bin/time openssl:openssl python3:python3 util-linux:taskset
if [[ $SKIP_BUILD != 1 ]]; then
  echo "building sluice (release) ..." >&2
  (cd "$REPO" && cargo build --release -p sluice --quiet)
fi
[[ -x $SLUICE_BIN ]] || { echo "no sluice binary at $SLUICE_BIN" >&2; exit 1; }
mkdir -p "$OUT_DIR/logs"
# run a private copy: others may rebuild target/release/sluice while this runs
cp "$SLUICE_BIN" "$OUT_DIR/sluice"; SLUICE_BIN=$OUT_DIR/sluice
{ if [[ -n ${SLUICE_BUILT_FROM:-} ]]; then echo "sluice: $SLUICE_BUILT_FROM"   # e.g. a build of an exported commit
  else echo "sluice: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) + $(git -C "$REPO" status --short -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l) changed files in the work tree"; fi
  echo "sluice binary: $(sha256sum "$SLUICE_BIN" | cut -c1-16)"; } > "$OUT_DIR/sluice-version.txt"
cat "$OUT_DIR/sluice-version.txt"

SNAP=$SHARED_BENCH/lib/cpusnap.py
N=(python3 "$SHARED_BENCH/lib/schedexec.py" "$SCHED")
LOGD=$OUT_DIR/logs
# start_bg's processes are stopped by cleanup (common.sh); /usr/bin/time does not pass a TERM on
# to the `sluice check` it runs, so that child (found by parent PID) is stopped first.
cleanup_tree() {
  local pid kid
  for pid in "${PIDS[@]:-}"; do
    mine "$pid" || continue
    for kid in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill -TERM "$kid" 2>/dev/null || true; done
  done
  cleanup
}
trap cleanup_tree EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- manifests
echo "writing manifests: $CHECK_VARIANTS ($CHECK_INGRESSES Ingresses each) -> $OUT_DIR" >&2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -keyout "$OUT_DIR/key.pem" -out "$OUT_DIR/cert.pem" -subj /CN=bench.test \
  -addext "subjectAltName=DNS:*.bench.test,DNS:bench.test" 2>/dev/null
declare -A ARGS
for v in $CHECK_VARIANTS; do
  d=$OUT_DIR/manifests-$v
  case $v in
    annotated|noregex)
      python3 "$HERE/lib/gen-manifests.py" --out "$d" --split 500 --annotated "$CHECK_INGRESSES" \
        --tls-cert "$OUT_DIR/cert.pem" --tls-key "$OUT_DIR/key.pem" $([[ $v == noregex ]] && echo --no-regex)
      ARGS[$v]="--ingress-class nginx --controller-class k8s.io/ingress-nginx" ;;
    plain)
      python3 "$HERE/lib/gen-manifests.py" --out "$d" --split 500 --ingresses "$CHECK_INGRESSES" --backend-port 8080
      ARGS[$v]="" ;;
    *) echo "unknown variant $v (annotated, noregex, plain)" >&2; exit 1 ;;
  esac
  echo "  $v: $(cat "$d"/*.yaml | grep -c '^kind: ') objects in $(ls "$d" | wc -l) files, $(du -sh "$d" | cut -f1)" \
    "($(cat "$d"/*.yaml | grep -c '^kind: Ingress$') Ingresses)"
done

{
  echo "date: $(date -Is)"; uname -a; grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"
  "$SLUICE_BIN" --version || true
  echo "CHECK_INGRESSES=$CHECK_INGRESSES CHECK_ROUNDS=$CHECK_ROUNDS CHECK_VARIANTS=$CHECK_VARIANTS SCHED=$SCHED CORE=$CORE"
} > "$OUT_DIR/env.txt" 2>&1

# ---------------------------------------------------------------- runs
RES=$OUT_DIR/results.csv
echo "round,variant,ingresses,rc,wall_s,user_s,sys_s,max_rss_mib,foreign_pct,summary" > "$RES"
# one untimed run each first (page cache, binary); in the background + wait, so that a signal
# is handled at once (bash runs traps only after a foreground child ends)
for v in $CHECK_VARIANTS; do
  # shellcheck disable=SC2086
  start_bg "warmup-$v" "$CORE" "$SLUICE_BIN" check --manifests "$OUT_DIR/manifests-$v" ${ARGS[$v]}
  wait "${PIDOF[warmup-$v]}" || true
done
for ((r = 1; r <= CHECK_ROUNDS; r++)); do
  # shellcheck disable=SC2046
  for v in $(rotate $((r - 1)) $CHECK_VARIANTS); do
    out=$OUT_DIR/logs/r$r-$v.out; tv=$OUT_DIR/logs/r$r-$v.time   # start_bg writes $LOGD/<name>.out
    before=$(python3 "$SNAP" snap $$ "$CORE" "$OTHER_CORE")
    # shellcheck disable=SC2086
    start_bg "r$r-$v" "$CORE" /usr/bin/time -v -o "$tv" "$SLUICE_BIN" check \
      --manifests "$OUT_DIR/manifests-$v" ${ARGS[$v]}
    rc=0; wait "${PIDOF[r$r-$v]}" || rc=$?
    after=$(python3 "$SNAP" snap $$ "$CORE" "$OTHER_CORE")
    python3 - "$tv" "$out" "$r" "$v" "$CHECK_INGRESSES" "$rc" "$before" "$after" "$SNAP" >> "$RES" <<'PY'
import re, subprocess, sys
tv, out, r, v, n, rc, before, after, snap = sys.argv[1:10]
t = open(tv).read()
def field(name):
    m = re.search(r"^\s*" + re.escape(name) + r".*?: (.*)$", t, re.M)
    return m.group(1).strip() if m else ""
wall = 0.0
for part in field("Elapsed (wall clock) time").split(":"):
    wall = wall * 60 + float(part)
user, sys_ = float(field("User time (seconds)")), float(field("System time (seconds)"))
rss = int(field("Maximum resident set size (kbytes)")) / 1024
ticks = int(round((user + sys_) * 100))   # the run has exited: its CPU is not in the AFTER snapshot
cpu = subprocess.run(["python3", snap, "diff", before, after, str(ticks)], capture_output=True, text=True).stdout.split()
foreign = cpu[3] if len(cpu) > 3 else ""
lines = [l for l in open(out).read().splitlines() if re.match(r"^(ok|problems found): ", l)]
summary = (lines[-1] if lines else "no summary line").replace(",", ";")
print(f"{r},{v},{n},{rc},{wall:.2f},{user:.2f},{sys_:.2f},{rss:.1f},{foreign},{summary}")
PY
    tail -1 "$RES" | awk -F, '{printf "  r%-2s %-9s exit %s  wall %6.2f s  user %5.2f s  sys %5.2f s  max RSS %6.1f MiB  foreign %s%%\n", $1, $2, $4, $5, $6, $7, $8, $9}'
  done
done

python3 - "$RES" <<'PY' | tee "$OUT_DIR/summary.md"
import csv, statistics as st, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
by = defaultdict(list)
for r in rows:
    by[r["variant"]].append(r)
f = lambda x: float(x) if x not in ("", None) else 0.0
print("| manifests | Ingresses | wall s median | min-max | user + sys CPU s | max RSS MiB median | min-max "
      "| exit codes | foreign % (max) | sluice check says |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for v, rs in by.items():
    wall = [f(r["wall_s"]) for r in rs]
    rss = [f(r["max_rss_mib"]) for r in rs]
    cpu = [f(r["user_s"]) + f(r["sys_s"]) for r in rs]
    fo = [f(r["foreign_pct"]) for r in rs]
    print(f"| {v} | {int(rs[0]['ingresses']):,} | {st.median(wall):.2f} | {min(wall):.2f}-{max(wall):.2f} | "
          f"{st.median(cpu):.2f} | {st.median(rss):.0f} | {min(rss):.0f}-{max(rss):.0f} | "
          f"{' '.join(sorted(set(r['rc'] for r in rs)))} | {st.median(fo):.0f} ({max(fo):.0f}){' !' if max(fo) > 10 else ''} | "
          f"{rs[-1]['summary'].replace(';', ',')} |")
print()
print("/usr/bin/time -v sluice check --manifests DIR, pinned to one core; wall = elapsed, max RSS = "
      "maximum resident set size; medians over rounds. Exit 0 = no errors (warnings allowed).")
PY
echo "raw: $RES  logs: $OUT_DIR/logs"
