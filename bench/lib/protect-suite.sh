# protect-suite.sh — part 2c of l7-peers.sh (PROTECT=1), sourced by it: the cost of a route's
# protection (issue 11: >= 0.9 x the same route unprotected). One Sluice instance on
# PROXY_CORE serves three hosts that forward to the same bench-backend:
#   open.bench.test   no protection
#   auth.bench.test   auth-type basic, an auth-file Secret with a bcrypt (cost 5) hash written by
#                     Apache's htpasswd; wrk sends valid credentials (verified once, then cached)
#   limit.bench.test  limit-rps 1000000 (never reached: the cost of counting, per client)
# PROTECT_ROUNDS interleaved rounds (order rotating) of
#   wrk -t1 -c$PROTECT_CONNS -d${PROTECT_DURATION}s -H 'Host: <host>' [-H 'Authorization: …']
# on LOAD_CORE; same columns as parts 2 and 2b; ratios against open.bench.test.

protect_suite() {
echo "== part 2c: basic auth and a rate limit vs the same route unprotected (SCHED=$SCHED)"
command -v htpasswd > /dev/null || ensure_pkgs apache2-utils:htpasswd
local R=$OUT_DIR/protect PB=$((B + 800)) v c r order log cpu
mkdir -p "$R/logs"; LOGD=$R/logs
local BPORT=$PB PPORT=$((PB + 1))
for port in $PB $PPORT $((PB + 2)) $((PB + 3)); do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy (set ROUTE_BASE)" >&2; exit 1; fi
done
local hash
hash=$(htpasswd -nbB -C 5 bench secret)
{
  printf 'apiVersion: v1\nkind: Service\nmetadata: {name: backend, namespace: default}\nspec:\n  ports: [{name: http, port: 80, targetPort: %s}]\n' "$BPORT"
  printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: backend-1\n  namespace: default\n  labels: {kubernetes.io/service-name: backend}\naddressType: IPv4\nports: [{name: http, port: %s}]\nendpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]\n' "$BPORT"
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata: {name: users, namespace: default}\nstringData:\n  auth: "%s"\n' "$hash"
  for v in open auth limit; do
    printf -- '---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n  namespace: default\n  annotations:\n' "$v"
    case $v in
      open) printf '    bench: "open"\n' ;;
      auth) printf '    nginx.ingress.kubernetes.io/auth-type: basic\n    nginx.ingress.kubernetes.io/auth-secret: users\n' ;;
      limit) printf '    nginx.ingress.kubernetes.io/limit-rps: "1000000"\n' ;;
    esac
    printf 'spec:\n  ingressClassName: sluice\n  rules:\n  - host: %s.bench.test\n    http:\n      paths: [{path: /, pathType: Prefix, backend: {service: {name: backend, port: {number: 80}}}}]\n' "$v"
  done
} > "$R/manifests.yaml"
local AUTH="Authorization: Basic $(printf 'bench:secret' | base64)"

start_bg backend "$LOAD_CORE" "$BACKEND_BIN" "$H:$BPORT"
T0=$(date +%s.%N); wait_200 backend "http://$H:$BPORT/"
T0=$(date +%s.%N)
# shellcheck disable=SC2086
start_bg sluice "$PROXY_CORE" "$SLUICE_BIN" run --manifests "$R/manifests.yaml" \
  --http "$H:$PPORT" --https "$H:$((PB + 2))" --admin "$H:$((PB + 3))" --workers "$SLUICE_WORKERS" ${SLUICE_EXTRA_ARGS:-}
wait_200 sluice "http://$H:$PPORT/" -H "Host: open.bench.test"
local READY=$READY_S
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: auth.bench.test" "http://$H:$PPORT/")
[[ $c == 401 ]] || { echo "auth.bench.test answered $c without credentials (expected 401)" >&2; exit 1; }
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: auth.bench.test" -H "$AUTH" "http://$H:$PPORT/")
[[ $c == 200 ]] || { echo "auth.bench.test answered $c with credentials (expected 200)" >&2; exit 1; }

local RES=$R/results.csv
echo "round,variant,paths,rps,p50_us,p99_us,errors,requests,proxy_us_per_req,busy_proxy_core,foreign_pct,ready_s,rss_mib" > "$RES"
local extra
for v in open auth limit; do   # warm-up, not recorded
  extra=(); [[ $v == auth ]] && extra=(-H "$AUTH")
  timeout 15 taskset -c "$LOAD_CORE" env WRK_REPORT_LUA="$LUA" wrk -t1 -c"$PROTECT_CONNS" -d2s -s "$LUA" \
    -H "Host: $v.bench.test" "${extra[@]}" "http://$H:$PPORT/" > /dev/null 2>&1 || true
done
for ((r = 1; r <= PROTECT_ROUNDS; r++)); do
  order="open auth limit"; (( r % 3 == 2 )) && order="auth limit open"; (( r % 3 == 0 )) && order="limit open auth"
  for v in $order; do
    log=$R/logs/r$r-$v.txt
    extra=(); [[ $v == auth ]] && extra=(-H "$AUTH")
    cpu=$(measure_wrk "$log" "${PIDOF[sluice]}" "$PROTECT_DURATION" WRK_REPORT_LUA="$LUA" -- -t1 -c"$PROTECT_CONNS" \
            -d"${PROTECT_DURATION}s" --timeout 5s -s "$LUA" -H "Host: $v.bench.test" "${extra[@]}" "http://$H:$PPORT/")
    wrk_row "$log" "$r" "$v" 1 "$cpu" "$READY" "$(rss_mib "${PIDOF[sluice]}")" >> "$RES"
    tail -1 "$RES" | awk -F, '{printf "  r%-2s %-6s %9.0f req/s  p50 %5s  p99 %6s us  cpu %6s us/req  err %s  foreign %s%%\n", $1, $2, $4, $5, $6, $9, $7, $11}'
  done
done
kill -0 "${PIDOF[sluice]}" 2>/dev/null || echo "WARNING: sluice exited during the run; log: $R/logs/sluice.out" >&2

python3 - "$RES" "$PROTECT_CONNS" "$PROTECT_DURATION" <<'PY' | tee "$R/summary.md"
import csv, statistics as st, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
conns, dur = sys.argv[2:4]
by = defaultdict(list)
for r in rows:
    by[r["variant"]].append(r)
f = lambda x: float(x) if x not in ("", None) else None
base = {r["round"]: f(r["rps"]) for r in by["open"]}
base_cpu = st.median(f(r["proxy_us_per_req"]) for r in by["open"])
print("| route | req/s median | min-max | x open (per-round median) | p50 us | p99 us | Sluice CPU us/req | CPU x open | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
verdicts = []
for v, label in (("open", "unprotected"), ("auth", "basic auth (bcrypt cost 5, cached)"), ("limit", "limit-rps (counted, never reached)")):
    rs = by.get(v)
    if not rs:
        continue
    vals = [f(r["rps"]) or 0.0 for r in rs]
    pr = [f(r["rps"]) / base[r["round"]] for r in rs if base.get(r["round"])]
    cpu = st.median(f(r["proxy_us_per_req"]) for r in rs)
    print(f"| {label} | {st.median(vals):,.0f} | {min(vals):,.0f}-{max(vals):,.0f} | {st.median(pr):.2f} | "
          f"{st.median(f(r['p50_us']) for r in rs):.0f} | {st.median(f(r['p99_us']) for r in rs):.0f} | "
          f"{cpu:.1f} | {cpu / base_cpu:.2f} | {sum(int(r['errors']) for r in rs)} |")
    if v != "open":
        verdicts.append(f"{v}: {st.median(pr):.2f} x open ({'met' if st.median(pr) >= 0.9 else 'MISSED'})")
print()
print(f"wrk -t1 -c{conns} -d{dur}s per host, one Sluice (--workers 1) on the proxy core, wrk + bench-backend on the "
      "other; rounds interleaved, order rotating. Target >= 0.90 x open: " + "; ".join(verdicts))
PY
sluice_log_check "$R/logs/sluice.out" "sluice (protect)"
echo "raw: $RES  logs: $R/logs"
cleanup; PIDS=(); PIDOF=()
}
