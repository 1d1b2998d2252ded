#!/usr/bin/env python3
"""Repro: a manifest rewritten in place by a slow writer is applied half-written, so its routes
disappear (404) or lose their Service (503) until the write completes.

  python3 bench/reload/repro_truncate.py [--sluice target/release/sluice]
      [--backend /tmp/bench-target/release/bench-backend] [--port-base 27180] [--pause-ms 50]
      [--mode truncate|partial]

Starts Sluice on one file (Ingress steady.test + Service + EndpointSlice -> a bench-backend),
polls steady.test about every millisecond, rewrites the file in place 5 times and prints the
answers (anything but 200 means requests were lost while the file was being written):
  truncate  open "w" (O_TRUNC), wait --pause-ms, write everything (a label added);
  partial   open "w", write the first document (the Ingress), wait --pause-ms, write the rest
            (Service, EndpointSlice): a large file written in several chunks.
Every process is ended on exit.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manifests as mf  # noqa: E402
from bench import http_get, wait_status  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--backend", default="/tmp/bench-target/release/bench-backend")
    ap.add_argument("--port-base", type=int, default=27180)
    ap.add_argument("--pause-ms", type=float, default=50)
    ap.add_argument("--mode", choices=["truncate", "partial"], default="truncate")
    a = ap.parse_args()
    http, https, admin, backend = a.port_base, a.port_base + 1, a.port_base + 2, a.port_base + 12
    work = tempfile.mkdtemp(prefix="sluice-truncate-")
    path = os.path.join(work, "app.yaml")
    text = mf.app_file("app", ["steady.test"], backend, ["127.0.0.1"])
    mf.write(path, text)
    log = open(os.path.join(work, "sluice.log"), "w")
    procs = [subprocess.Popen([a.backend, f"127.0.0.1:{backend}"], stderr=subprocess.DEVNULL),
             subprocess.Popen([a.sluice, "run", "--manifests", work, "--http", f"127.0.0.1:{http}",
                               "--https", f"127.0.0.1:{https}", "--admin", f"127.0.0.1:{admin}"],
                              stdout=log, stderr=log)]
    try:
        wait_status(admin, "x", "/readyz", timeout=30, proc=procs[1])
        wait_status(http, "steady.test", timeout=10, proc=procs[1])
        counts, stop = {}, []

        def poll():
            while not stop:
                try:
                    st, _ = http_get(http, "steady.test")
                except OSError as e:
                    st = type(e).__name__
                counts[st] = counts.get(st, 0) + 1
                time.sleep(0.001)

        th = threading.Thread(target=poll)
        th.start()
        time.sleep(0.5)
        for k in range(5):
            new = text.replace("namespace: default", f'namespace: default\n  labels: {{rev: "{k}"}}', 1)
            cut = 0 if a.mode == "truncate" else new.index("---\n") + 4
            with open(path, "w") as f:  # truncates
                f.write(new[:cut])
                f.flush()
                time.sleep(a.pause_ms / 1000)
                f.write(new[cut:])
            time.sleep(0.5)
        stop.append(True)
        th.join()
        print(f"answers for steady.test during 5 in-place rewrites ({a.mode}, pausing {a.pause_ms:g} ms): {counts}")
        print(f"sluice log: {log.name}")
        return 1 if any(k != 200 for k in counts) else 0
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
