#!/usr/bin/env python3
"""results.csv of large-responses.sh -> its markdown table (re-runnable on old results).

  large-summary.py RESULTS_CSV [CONNS DURATION]

One row per suite and peer, in the order direct, nginx, nginx-nobuf, haproxy, sluice (then any
other): medians over the rounds of req/s (and min-max), MiB/s of response bodies, x nginx (ratio
of the medians), p50/p99 latency in ms, proxy CPU ms per MiB of body moved (on-CPU time of all
the proxy's threads and processes) and its ratio to nginx's, the origin's and wrk's CPU ms per
MiB (the load core's work; on loopback the kernel charges the receiving socket's TCP processing
to the sender, so how a proxy reads and writes moves them a little), how busy the two cores were, foreign % (CPU other
processes took, % of both cores; `!` = a run above 10 %) and errors (wrk socket errors +
non-2xx/3xx, summed over rounds).
"""
import csv
import statistics as st
import sys
from collections import defaultdict

ORDER = ["direct", "nginx", "nginx-nobuf", "haproxy", "sluice"]
SUITE_TEXT = {
    "cl": "`GET /1m`, Content-Length",
    "chunked": "`GET /1m-chunked`, Transfer-Encoding: chunked",
}


def num(x):
    """A float from a CSV cell, None when empty."""
    return float(x) if x not in ("", None) else None


def med(xs):
    """Median of the values that are not None, or None."""
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None


def fmt(x, spec):
    """x formatted with spec, '-' for None."""
    return "-" if x is None else format(x, spec)


def main():
    """Print the table for every suite found in the CSV."""
    path = sys.argv[1]
    conns, dur = (sys.argv[2:4] + ["?", "?"])[:2]
    rows = list(csv.DictReader(open(path)))
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    for suite in suites:
        by = defaultdict(list)
        for r in rows:
            if r["suite"] == suite:
                by[r["peer"]].append(r)
        peers = [p for p in ORDER if p in by] + [p for p in by if p not in ORDER]
        base = med(num(r["rps"]) for r in by.get("nginx", []))
        base_cpu = med(num(r["proxy_ms_per_mib"]) for r in by.get("nginx", []))
        print(f"### {suite}: {SUITE_TEXT.get(suite, suite)}")
        print()
        print("| peer | req/s median | min-max | MiB/s | x nginx | p50 ms | p99 ms | proxy CPU ms/MiB "
              "| CPU x nginx | origin CPU ms/MiB | wrk CPU ms/MiB | proxy core busy % | load core busy % | foreign % (max) | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for p in peers:
            rs = by[p]
            rps = [num(r["rps"]) or 0.0 for r in rs]
            m = st.median(rps)
            cpu = med(num(r["proxy_ms_per_mib"]) for r in rs)
            fo = [num(r["foreign_pct"]) or 0.0 for r in rs]
            p50 = med(num(r["p50_us"]) for r in rs)
            p99 = med(num(r["p99_us"]) for r in rs)
            print(f"| {p} | {m:,.0f} | {min(rps):,.0f}-{max(rps):,.0f} | "
                  f"{fmt(med(num(r['mib_s']) for r in rs), ',.0f')} | "
                  f"{fmt(m / base if base else None, '.2f')} | "
                  f"{fmt(p50 / 1000 if p50 is not None else None, '.2f')} | "
                  f"{fmt(p99 / 1000 if p99 is not None else None, '.2f')} | "
                  f"{fmt(cpu, '.3f')} | {fmt(cpu / base_cpu if cpu and base_cpu else None, '.2f')} | "
                  f"{fmt(med(num(r['origin_ms_per_mib']) for r in rs), '.3f')} | "
                  f"{fmt(med(num(r.get('wrk_ms_per_mib')) for r in rs), '.3f')} | "
                  f"{fmt(med(num(r['busy_proxy_core']) for r in rs), '.0f')} | "
                  f"{fmt(med(num(r['busy_load_core']) for r in rs), '.0f')} | "
                  f"{st.median(fo):.0f} ({max(fo):.0f}){' !' if max(fo) > 10 else ''} | "
                  f"{sum(int(r['errors']) for r in rs)} |")
        print()
    print(f"wrk -t1 -c{conns} -d{dur}s on the load core, with the origin (nginx, static 1 MiB file) beside it; "
          "each proxy alone on the proxy core (one worker/thread). `direct` = wrk straight to the origin (no "
          "proxy; both on the load core). MiB/s = requests x 1 MiB (bodies only) / wrk's duration. "
          "proxy CPU ms/MiB = on-CPU time of all the proxy's threads and processes / MiB of bodies "
          "(lower is better). origin and wrk CPU ms/MiB: the load core's work per MiB. proxy core busy % "
          "well below 100 with the load core at ~100 means the load core set the pace: compare CPU "
          "ms/MiB then. Medians over the rounds.")


if __name__ == "__main__":
    main()
