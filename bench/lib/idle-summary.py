#!/usr/bin/env python3
"""results.csv of bench/idle-conns.sh -> its markdown table (re-runnable on old results).

  idle-summary.py RESULTS.csv

One row per proxy (medians over rounds when there are several): connections held open, RSS
of all its processes before and after (MiB), bytes per idle connection = (after - before) /
held, its ratio to nginx's, then the worker process alone (nginx's worker; the process itself
for Sluice and HAProxy), RSS after the client closed everything, what `ss` counted at the
moment of measuring (client connections established on the proxy's port; the proxy's
connections to the backend) and the failed connections.
"""
import csv
import statistics as st
import sys
from collections import defaultdict


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    by = defaultdict(list)
    for r in rows:
        by[r["proxy"]].append(r)

    def med(rs, k):
        xs = [float(r[k]) for r in rs if r[k] not in ("", None)]
        return st.median(xs) if xs else None

    mib = lambda kib: "-" if kib is None else "%.1f" % (kib / 1024)
    base = med(by["nginx"], "bytes_per_conn") if by.get("nginx") else None
    rounds = max((int(r["round"]) for r in rows), default=0)
    print("| proxy | conns | RSS before MiB | RSS after MiB | bytes/conn | x nginx | worker MiB before -> after "
          "| worker bytes/conn | RSS after close MiB | processes | open at measure | upstream conns | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = [p for p in ("sluice", "nginx", "haproxy") if p in by] + [p for p in by if p not in ("sluice", "nginx", "haproxy")]
    for p in order:
        rs = by[p]
        bpc = med(rs, "bytes_per_conn")
        print(f"| {p} | {int(med(rs, 'held')):,} | {mib(med(rs, 'rss_before_kib'))} | {mib(med(rs, 'rss_after_kib'))} "
              f"| {'-' if bpc is None else f'{bpc:,.0f}'} | {'%.2f' % (bpc / base) if bpc and base else '-'} "
              f"| {mib(med(rs, 'worker_before_kib'))} -> {mib(med(rs, 'worker_after_kib'))} "
              f"| {med(rs, 'worker_bytes_per_conn'):,.0f} | {mib(med(rs, 'rss_closed_kib'))} | {rs[0]['nprocs']} "
              f"| {int(med(rs, 'open_at_measure')):,} | {int(med(rs, 'upstream_conns'))} "
              f"| {sum(int(r['failed']) for r in rs)} |")
    print()
    print(f"{rows[0]['conns'] if rows else '?'} keep-alive connections, one `GET / HTTP/1.1` answered on each, then idle; "
          f"{'median of %d rounds' % rounds if rounds > 1 else 'one round'}. bytes/conn = (RSS after - RSS before) / "
          "conns held, RSS = VmRSS summed over the proxy's processes (nginx: master + worker); worker = nginx's worker "
          "process alone (Sluice and HAProxy: their one process). RSS before is taken after a warm-up of as many "
          "connections as the client keeps in flight, so the upstream pool is in it. User-space memory only: the "
          "kernel's socket buffers and structures are not in RSS.")


if __name__ == "__main__":
    main()
