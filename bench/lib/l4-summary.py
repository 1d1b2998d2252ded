#!/usr/bin/env python3
"""l4-summary.py RESULTS.csv STREAMS DURATION -> markdown table (used by l4-tcp.sh; can be
re-run on an old results.csv)."""
import csv, statistics as st, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
streams, dur = sys.argv[2], sys.argv[3]
by = defaultdict(list)
suites, peers = [], []
for r in rows:
    by[(r["suite"], r["peer"])].append(r)
    suites += [r["suite"]] if r["suite"] not in suites else []
    peers += [r["peer"]] if r["peer"] not in peers else []
order = {p: i for i, p in enumerate(["direct", "sluice", "haproxy", "haproxy-splice"])}
peers.sort(key=lambda p: order.get(p, 99))
label = {"single": f"1 TCP stream, iperf3 -t {dur}", "p4": f"{streams} TCP streams, iperf3 -P {streams} -t {dur}"}
f = lambda x: float(x) if x not in ("", None) else None
def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None
def per_gb(rs, key):  # CPU seconds per GB received, median over rounds
    return med((f(r[key]) / 1e9) / (int(r["bytes"]) / 1e9) if f(r[key]) and int(r["bytes"]) else None for r in rs)
def both_gb(rs):  # proxy + iperf3 server, per GB
    return med(((f(r["proxy_ns"]) or 0) + (f(r["server_ns"]) or 0)) / int(r["bytes"]) if int(r["bytes"]) else None
               for r in rs)
print("| suite | peer | Gbit/s median | min-max | x direct | x haproxy | x haproxy per-round (min-max) "
      "| proxy CPU s/GB | proxy CPU x haproxy | iperf3 server CPU s/GB | proxy + server CPU s/GB | (proxy + server) x haproxy "
      "| proxy core busy % | retransmits | foreign % (max) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in suites:
    base = {k: med(f(r["gbps"]) for r in by.get((s, k), [])) for k in ("direct", "haproxy")}
    hround = {r["round"]: f(r["gbps"]) for r in by.get((s, "haproxy"), [])}
    hcpu = per_gb(by.get((s, "haproxy"), []), "proxy_ns")
    hboth = both_gb(by.get((s, "haproxy"), []))
    for p in peers:
        rs = by.get((s, p))
        if not rs:
            continue
        v = [f(r["gbps"]) or 0.0 for r in rs]
        m = st.median(v)
        xd = "%.2f" % (m / base["direct"]) if base["direct"] else "-"
        xh = "%.2f" % (m / base["haproxy"]) if base["haproxy"] else "-"
        pr = [f(r["gbps"]) / hround[r["round"]] for r in rs if hround.get(r["round"])]
        prr = "%.2f (%.2f-%.2f)" % (st.median(pr), min(pr), max(pr)) if pr and p != "haproxy" else "-"
        cpu = per_gb(rs, "proxy_ns")
        cpux = "%.2f" % (cpu / hcpu) if cpu and hcpu else "-"
        busy = med(f(r["busy_proxy_core"]) for r in rs)
        scpu = per_gb(rs, "server_ns")
        both = both_gb(rs)
        bothx = "%.2f" % (both / hboth) if both and hboth else "-"
        retr = med(f(r["retransmits"]) for r in rs)
        fo = [f(r["foreign_pct"]) or 0.0 for r in rs]
        fails = sum(1 for x in v if x == 0)
        print(f"| {s} | {p} | {m:.2f} | {min(v):.2f}-{max(v):.2f} | {xd} | {xh} | {prr} | "
              f"{'-' if cpu is None else '%.3f' % cpu} | {cpux} | {'-' if scpu is None else '%.3f' % scpu} | "
              f"{'-' if both is None else '%.3f' % both} | {bothx} | "
              f"{'-' if busy is None else '%.0f' % busy} | {'-' if retr is None else '%.0f' % retr} | "
              f"{st.median(fo):.0f} ({max(fo):.0f}){' !' if max(fo) > 10 else ''}"
              f"{'  FAILED RUNS: %d' % fails if fails else ''} |")
print()
print("Suites: " + "; ".join(f"{s} = {label.get(s, s)}" for s in suites) + ". "
      "Gbit/s = iperf3 receiver side. x haproxy per-round = peer/haproxy inside each round. "
      "proxy CPU s/GB = on-CPU time of all the proxy's threads / GB moved (lower is better); "
      "haproxy = default mode tcp (no splice), haproxy-splice = the same with `option splice-request` + `option splice-response` (zero-copy, like Sluice). "
      "The proxy shares its core with the iperf3 server (core busy % is that core, all processes). "
      "On loopback the receiving socket's TCP work often runs in the sender's context, so how the kernel "
      "cost splits between proxy and iperf3 server varies run to run: proxy + server CPU per GB is the steadier figure. "
      "foreign = CPU used by processes not started here, % of both cores; '!' = a run above 10%.")
