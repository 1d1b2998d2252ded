#!/usr/bin/env python3
"""Driver of bench/reload.sh: each sub-command runs one measurement and writes a JSON result.

  bench.py loss     --target sluice|nginx --size N      100 changes under steady load
  bench.py latency  --target sluice|nginx --size N      write -> first 200 on a new host
  bench.py startup  --target sluice|nginx --size N      exec -> ready, resident memory
  bench.py report   --results DIR                       markdown tables of every result

Every process started is recorded (one PID a line) in --pidfile so that reload.sh's trap can
end it, and is stopped by PID when the sub-command ends. Only loopback addresses are used.
"""
import argparse
import asyncio
import glob
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manifests as mf  # noqa: E402
from loadgen import body_complete, parse_head  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------- processes


class Procs:
    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.procs = []

    def start(self, argv, log, **kw):
        out = open(log, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        out.close()
        self.procs.append(p)
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p)


def port_free(port, addr="127.0.0.1"):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is fine
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def require_free(*ports):
    busy = [p for p in ports if not port_free(p)]
    if busy:
        sys.exit(f"ports already in use on 127.0.0.1: {busy} (set PORT_BASE to another range)")


def http_get(port, host="localhost", path="/", timeout=2.0, addr="127.0.0.1"):
    """(status, body) of one GET on a fresh connection; raises OSError on failure."""
    s = socket.create_connection((addr, port), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        while True:
            c = s.recv(65536)
            buf += c
            head = parse_head(buf)
            if head:
                n = body_complete(head[1], buf[head[2]:], not c)
                if n is not None:
                    return head[0], buf[head[2]:head[2] + n]
            if not c:
                raise ConnectionError(f"incomplete response ({len(buf)} bytes)")
    finally:
        s.close()


def wait_status(port, host, path="/", want=200, timeout=60.0, proc=None, interval=0.002):
    """Polls until `want` is answered; returns seconds waited. Fails if `proc` exits."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            st, _ = http_get(port, host, path, timeout=1.0)
            if st == want:
                return time.monotonic() - t0
            last = st
        except OSError as e:
            last = repr(e)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} (last answer {last})")
        time.sleep(interval)
    raise RuntimeError(f"no {want} from 127.0.0.1:{port} Host {host} within {timeout}s (last: {last})")


def scrape(admin_port):
    """Prometheus text -> {'name{labels}': value}."""
    _, body = http_get(admin_port, path="/metrics", timeout=5)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def reload_stats(m):
    """{kind: (count, sum)} of sluice_reload_duration_seconds."""
    res = {}
    for k, v in m.items():
        if k.startswith("sluice_reload_duration_seconds_count"):
            kind = k.split('kind="')[1].split('"')[0]
            res.setdefault(kind, [0, 0.0])[0] = v
        elif k.startswith("sluice_reload_duration_seconds_sum"):
            kind = k.split('kind="')[1].split('"')[0]
            res.setdefault(kind, [0, 0.0])[1] = v
    return res


def proc_mem(pid):
    """VmRSS, VmHWM (MiB) from /proc/PID/status and Pss (MiB) from smaps_rollup."""
    res = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                res[line.split(":")[0]] = int(line.split()[1]) / 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    res["Pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return res


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    # nearest-rank percentile
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- targets


class Target:
    """A running proxy (Sluice or nginx) with its configuration directory."""

    def __init__(self, a, procs, kind, work, size, backend_port, endpoints):
        self.a = a
        self.procs = procs
        self.kind = kind
        self.work = work
        self.size = size
        self.backend_port = backend_port
        self.endpoints = endpoints
        self.addrs = mf.loopback_addresses(endpoints)
        self.proc = None
        self.log = os.path.join(work, f"{kind}.log")
        if kind == "sluice":
            self.http, self.https, self.admin = a.port_base, a.port_base + 1, a.port_base + 2
            self.dir = os.path.join(work, "manifests")
        else:
            self.http = a.port_base + 20
            self.dir = os.path.join(work, "servers")
            self.prefix = work
            self.conf = os.path.join(work, "nginx.conf")

    def nginx_cmd(self, *extra):
        return [self.a.nginx, "-c", self.conf, "-p", self.prefix, "-e", os.path.join(self.prefix, "error.log"),
                *extra]

    def generate(self):
        t0 = time.monotonic()
        if self.kind == "sluice":
            mf.gen_sluice(self.dir, self.size, self.backend_port, self.endpoints)
        else:
            mf.gen_nginx(self.prefix, self.size, self.http, self.backend_port, self.endpoints)
        return time.monotonic() - t0

    def start(self, probe_host=None):
        """Starts the proxy; returns seconds from exec to ready (Sluice: /readyz 200; nginx:
        `probe_host` answering 200)."""
        if self.kind == "sluice":
            require_free(self.http, self.https, self.admin)
            argv = [self.a.sluice, "run", "--manifests", self.dir, "--http", f"127.0.0.1:{self.http}",
                    "--https", f"127.0.0.1:{self.https}", "--admin", f"127.0.0.1:{self.admin}"]
            if self.a.workers:
                argv += ["--workers", str(self.a.workers)]
            t0 = time.monotonic()
            self.proc = self.procs.start(argv, self.log)
            try:
                wait_status(self.admin, "localhost", "/readyz", timeout=180, proc=self.proc, interval=0.002)
            except RuntimeError as e:
                raise RuntimeError(f"{e}\n--- {self.log}:\n{tail(self.log)}")
            ready = time.monotonic() - t0
        else:
            require_free(self.http)
            t0 = time.monotonic()
            self.proc = self.procs.start(self.nginx_cmd(), self.log)
            try:
                wait_status(self.http, probe_host, timeout=180, proc=self.proc, interval=0.002)
            except RuntimeError as e:
                raise RuntimeError(f"{e}\n--- {self.log}:\n{tail(self.log)}\n{tail(self.prefix + '/error.log')}")
            ready = time.monotonic() - t0
        return ready

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def generation(self):
        return scrape(self.admin).get("sluice_config_generation", 0)

    def reload_nginx(self):
        """`nginx -s reload`; returns its run time."""
        t0 = time.monotonic()
        r = subprocess.run(self.nginx_cmd("-s", "reload"), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"nginx -s reload failed: {r.stderr}")
        return time.monotonic() - t0

    def memory(self):
        if self.kind == "sluice":
            return proc_mem(self.proc.pid)
        pids = [self.proc.pid] + children(self.proc.pid)
        total = {"VmRSS": 0.0, "VmHWM": 0.0, "Pss": 0.0, "processes": len(pids)}
        for pid in pids:
            try:
                m = proc_mem(pid)
            except OSError:
                continue
            for k in ("VmRSS", "VmHWM", "Pss"):
                total[k] += m.get(k, 0.0)
        return total

    def stop(self):
        if self.proc is None:
            return
        if self.kind == "nginx":
            # A reload may still be starting workers: let it settle, then stop, then end any
            # worker of ours left behind (identified by its log file in our work directory).
            time.sleep(0.5)
            self.procs.stop(self.proc, signal.SIGTERM, timeout=30)
            end_leftovers(self.work)
        else:
            self.procs.stop(self.proc, signal.SIGTERM, timeout=15)
        self.proc = None


def end_leftovers(work):
    """nginx workers whose stderr is a file in `work` (ours), orphaned by their master."""
    mine = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/comm") as fh:
                if fh.read().strip() != "nginx":
                    continue
            if os.readlink(f"{d}/fd/2").startswith(work + "/"):
                mine.append(int(os.path.basename(d)))
        except OSError:
            continue
    for pid in mine:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    t0 = time.monotonic()
    while mine and time.monotonic() - t0 < 10:
        mine = [p for p in mine if os.path.exists(f"/proc/{p}")]
        time.sleep(0.1)
    for pid in mine:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def start_backends(a, procs, work, port, endpoints):
    """`endpoints` bench-backends on 127.0.0.1..k:port (1 core each, mostly idle)."""
    require_free(*[port])
    ps = []
    for addr in mf.loopback_addresses(endpoints):
        ps.append(procs.start([a.backend, f"{addr}:{port}"], os.path.join(work, "backend.log")))
    for addr in mf.loopback_addresses(endpoints):
        t0 = time.monotonic()
        while True:
            try:
                socket.create_connection((addr, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() - t0 > 10:
                    raise RuntimeError(f"backend {addr}:{port} not listening")
                time.sleep(0.01)
    return ps


def start_echo(a, procs, work, port, name):
    require_free(port)
    p = procs.start([a.sluice, "echo", "--listen", f"127.0.0.1:{port}", "--name", name],
                    os.path.join(work, f"echo-{name}.log"))
    wait_status(port, "x", timeout=10, proc=p, interval=0.01)
    return p


def cpu_times():
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v), idle


def cpu_busy(seconds=1.0):
    """Fraction of all CPUs busy (any process) over `seconds`."""
    t0, i0 = cpu_times()
    time.sleep(seconds)
    t1, i1 = cpu_times()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(a):
    """Waits (at most --quiet-wait s) until the machine is mostly idle: others' builds and
    benchmarks share these 2 cores and would otherwise be measured too."""
    t0 = time.monotonic()
    busy = cpu_busy()
    while busy > a.quiet_busy and time.monotonic() - t0 < a.quiet_wait:
        busy = cpu_busy(2.0)
    return {"waited_s": round(time.monotonic() - t0, 1), "cpu_busy_before": round(busy, 2),
            "loadavg_before": os.getloadavg()}


CONTEXT = {}


def save(a, name, result):
    os.makedirs(a.results, exist_ok=True)
    result["name"] = name
    t1, i1 = cpu_times()
    t0, i0 = CONTEXT.get("cpu", (t1, i1))
    result["command"] = CONTEXT.get("command")
    if a.target == "sluice" or a.part == "loss":
        import hashlib
        with open(a.sluice, "rb") as fh:
            result["sluice_sha256"] = hashlib.sha256(fh.read()).hexdigest()[:12]
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["machine"] = dict(CONTEXT.get("quiet", {}), loadavg_after=os.getloadavg(),
                             cpu_busy_during=round(1 - (i1 - i0) / max(1, t1 - t0), 2))
    with open(os.path.join(a.results, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=1)


def fresh_work(a, name):
    work = os.path.join(a.work, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return work


# --------------------------------------------------------------------------- part 1: loss

KINDS = ["rewrite-in-place", "add-file", "rename-replace", "endpoints", "remove-file"]


class Changer:
    """Applies the mixed changes to the steady route's configuration."""

    def __init__(self, t, port_a, port_b):
        self.t = t
        self.ports = [port_a, port_b]
        self.current = 0
        self.extras = []

    def write_initial(self):
        self.steady_rev(0, os.path.join(self.t.dir, self.main_file()))
        if self.t.kind == "sluice":
            mf.write(os.path.join(self.t.dir, "steady-service.yaml"), mf.service("steady"))
        self.write_endpoints()

    def main_file(self):
        return "steady-ingress.yaml" if self.t.kind == "sluice" else "steady.conf"

    def steady_text(self, rev):
        if self.t.kind == "sluice":
            return mf.ingress("steady", ["steady.bench.test"], "steady", paths=["/", f"/rev-{rev}"],
                              annotations={"bench/revision": rev})
        return (f"# revision {rev}\nserver {{\n    listen 127.0.0.1:{self.t.http};\n"
                f"    server_name steady.bench.test;\n    location / {{ proxy_pass http://steady; }}\n"
                f"    location /rev-{rev} {{ proxy_pass http://steady; }}\n}}\n")

    def steady_rev(self, rev, path):
        mf.write(path, self.steady_text(rev))

    def write_endpoints(self):
        port = self.ports[self.current]
        if self.t.kind == "sluice":
            mf.write(os.path.join(self.t.dir, "steady-slice.yaml"),
                     mf.endpoint_slice("steady", port, ["127.0.0.1"]))
        else:
            mf.write(os.path.join(self.t.dir, "steady-upstream.conf"),
                     f"upstream steady {{\n    server 127.0.0.1:{port};\n    keepalive 8;\n}}\n")

    def apply(self, kind, i):
        d = self.t.dir
        i += 1  # revision 0 is the initial content: every change must differ from it
        if kind == "rewrite-in-place":
            self.steady_rev(i, os.path.join(d, self.main_file()))
        elif kind == "rename-replace":
            tmp = os.path.join(d, f".{self.main_file()}.tmp-{i}")
            self.steady_rev(i, tmp)
            os.replace(tmp, os.path.join(d, self.main_file()))
        elif kind == "add-file":
            name = f"extra-{i:03d}"
            if self.t.kind == "sluice":
                path = os.path.join(d, f"{name}.yaml")
                mf.write(path, mf.ingress(name, [f"{name}.bench.test"], "steady"))
            else:
                path = os.path.join(d, f"{name}.conf")
                mf.write(path, f"server {{\n    listen 127.0.0.1:{self.t.http};\n    server_name {name}.bench.test;\n"
                               f"    location / {{ proxy_pass http://steady; }}\n}}\n")
            self.extras.append(path)
        elif kind == "remove-file":
            if self.extras:
                os.unlink(self.extras.pop())
        elif kind == "endpoints":
            self.current ^= 1
            self.write_endpoints()


def part_loss(a):
    name = f"loss-{a.target}-{a.size}"
    work = fresh_work(a, name)
    procs = Procs(a.pidfile)
    port_a, port_b = a.port_base + 10, a.port_base + 11
    try:
        start_echo(a, procs, work, port_a, "a")
        start_echo(a, procs, work, port_b, "b")
        t = Target(a, procs, a.target, work, a.size, port_a, 1)
        t.generate()
        ch = Changer(t, port_a, port_b)
        ch.write_initial()
        t.start(probe_host="steady.bench.test")
        wait_status(t.http, "steady.bench.test", timeout=30, proc=t.proc)
        gen0 = t.generation() if a.target == "sluice" else None
        stats0 = reload_stats(scrape(t.admin)) if a.target == "sluice" else None

        out = os.path.join(work, "load.json")
        lg = procs.start([sys.executable, os.path.join(HERE, "loadgen.py"), "--port", str(t.http),
                          "--host", "steady.bench.test", "--ka-rate", str(a.ka_rate), "--fresh-rate",
                          str(a.fresh_rate), "--out", out], os.path.join(work, "loadgen.log"))
        time.sleep(a.warmup)
        changes = []
        applied_waits = []
        not_applied = 0
        reload_cmd = []
        for i in range(a.changes):
            kind = KINDS[i % len(KINDS)]
            t0 = time.monotonic()
            gen_before = t.generation() if a.target == "sluice" else None
            t0 = time.monotonic()
            ch.apply(kind, i)
            if a.target == "nginx":
                reload_cmd.append(t.reload_nginx())
            changes.append((t0, kind))
            if a.target == "sluice":
                # Wait (bounded by the interval, then 2 s) for the change to be applied.
                while t.generation() <= gen_before:
                    if time.monotonic() - t0 > max(a.interval, 2.0):
                        not_applied += 1
                        break
                    time.sleep(0.002)
                else:
                    applied_waits.append(time.monotonic() - t0)
            rest = a.interval - (time.monotonic() - t0)
            if rest > 0:
                time.sleep(rest)
        time.sleep(a.cooldown)
        procs.stop(lg, signal.SIGINT, timeout=30)
        with open(out) as f:
            load = json.load(f)
        alive = t.alive()
        result = {"target": a.target, "size": a.size, "changes": a.changes, "interval": a.interval,
                  "alive_after": alive, "load": {k: v for k, v in load.items() if k != "events"}}
        # Attribute each failure to the change that preceded it.
        by_change = {}
        for ev_t, outcome, mode in load["events"]:
            kind = "before any change"
            for ct, ck in changes:
                if ct <= ev_t:
                    kind = ck
                else:
                    break
            if changes and ev_t > changes[-1][0] + a.interval + 1:
                kind = "after the last change"
            by_change.setdefault(kind, {}).setdefault(outcome, 0)
            by_change[kind][outcome] += 1
        result["failures_by_change_kind"] = by_change
        result["first_failures"] = [(round(e[0] - load["began"], 4), e[1], e[2]) for e in load["events"][:20]]
        if a.target == "sluice":
            if alive:
                m = scrape(t.admin)
                result["generations"] = m.get("sluice_config_generation", 0) - gen0
                stats1 = reload_stats(m)
                result["reloads"] = {k: {"count": v[0] - stats0.get(k, [0, 0])[0],
                                         "mean_ms": 1000 * (v[1] - stats0.get(k, [0, 0])[1]) /
                                         max(1, v[0] - stats0.get(k, [0, 0])[0])}
                                     for k, v in stats1.items()}
                result["reload_errors"] = m.get("sluice_reload_errors_total", 0)
            result["applied"] = len(applied_waits)
            result["not_applied_within_wait"] = not_applied
            result["apply_wait_ms"] = {"p50": 1000 * pct(applied_waits, 50), "p99": 1000 * pct(applied_waits, 99),
                                       "max": 1000 * max(applied_waits)} if applied_waits else None
        else:
            result["reload_cmd_ms"] = {"p50": 1000 * pct(reload_cmd, 50), "p99": 1000 * pct(reload_cmd, 99)}
        result["log_tail"] = tail(t.log, 5)
        save(a, name, result)
        print(json.dumps({k: result[k] for k in ("target", "size", "load", "failures_by_change_kind")},
                         indent=1))
    finally:
        if "t" in locals() and t is not None:
            t.stop()
        procs.stop_all()


# --------------------------------------------------------------------------- part 2: latency


def part_latency(a):
    name = f"latency-{a.target}-{a.size}"
    work = fresh_work(a, name)
    procs = Procs(a.pidfile)
    port_b = a.port_base + 12
    run = random.randrange(10**6)
    try:
        start_backends(a, procs, work, port_b, a.endpoints)
        t = Target(a, procs, a.target, work, a.size, port_b, a.endpoints)
        gen_s = t.generate()
        result = {"target": a.target, "size": a.size, "endpoints_per_slice": a.endpoints,
                  "generate_s": gen_s}
        if a.target == "nginx":
            tt = []
            for _ in range(3):
                t0 = time.monotonic()
                r = subprocess.run(t.nginx_cmd("-t", "-q"), capture_output=True, text=True)
                tt.append(time.monotonic() - t0)
                if r.returncode != 0:
                    raise RuntimeError(f"nginx -t failed: {r.stderr}")
            result["nginx_t_s"] = {"median": statistics.median(tt), "runs": tt}
        result["ready_s"] = t.start(probe_host=mf.host_of(a.size - 1))
        wait_status(t.http, mf.host_of(a.size - 1), timeout=30, proc=t.proc)
        stats0 = reload_stats(scrape(t.admin)) if a.target == "sluice" else None
        samples, per_mode, cmd_times, other = [], {"new-file": [], "changed-file": []}, [], {}
        timeouts = 0
        began = time.monotonic()
        stopped_early = False
        for k in range(a.samples):
            if time.monotonic() - began > a.budget:
                stopped_early = True
                break
            mode = "new-file" if k % 2 == 0 else "changed-file"
            host = f"{'n' if mode == 'new-file' else 'c'}{k:03d}-{run}.lat.test"
            t0 = time.monotonic()
            if a.target == "sluice":
                if mode == "new-file":
                    nm = f"lat-{k:03d}"
                    mf.write(os.path.join(t.dir, f"{nm}.yaml"), mf.app_file(nm, [host], port_b, t.addrs))
                else:
                    j = random.randrange(a.size)
                    nm = f"app-{j:05d}"
                    mf.write(os.path.join(t.dir, f"{nm}.yaml"),
                             mf.app_file(nm, [mf.host_of(j), host], port_b, t.addrs))
            else:
                if mode == "new-file":
                    nm = f"lat_{k:03d}"
                    mf.write(os.path.join(t.dir, f"{nm}.conf"),
                             mf.nginx_app(nm, [host], t.http, port_b, t.addrs))
                else:
                    j = random.randrange(a.size)
                    nm = f"app_{j:05d}"
                    mf.write(os.path.join(t.dir, f"app-{j:05d}.conf"),
                             mf.nginx_app(nm, [mf.host_of(j), host], t.http, port_b, t.addrs))
                cmd_times.append(t.reload_nginx())
            # Tight poll: a fresh request about every millisecond until the host answers 200.
            deadline = t0 + a.poll_timeout
            got = None
            while True:
                start = time.monotonic()
                try:
                    st, _ = http_get(t.http, host, timeout=1.0)
                except OSError as e:
                    st = type(e).__name__
                now = time.monotonic()
                if st == 200:
                    got = now - t0
                    break
                if st != 404:
                    other[str(st)] = other.get(str(st), 0) + 1
                if now > deadline:
                    break
                pause = 0.001 - (now - start)
                if pause > 0:
                    time.sleep(pause)
            if got is None:
                timeouts += 1
            else:
                samples.append(got)
                per_mode[mode].append(got)
            time.sleep(a.gap + random.random() * a.gap / 2)
        ms = [s * 1000 for s in samples]
        result.update({
            "samples": len(samples), "timeouts": timeouts, "stopped_early_budget_s": a.budget if stopped_early else None, "other_answers_while_polling": other,
            "ms": {"p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": max(ms) if ms else None,
                   "min": min(ms) if ms else None},
            "per_mode_p50_ms": {m: (1000 * pct(v, 50) if v else None) for m, v in per_mode.items()},
            "per_mode_max_ms": {m: (1000 * max(v) if v else None) for m, v in per_mode.items()},
            "alive_after": t.alive(),
        })
        if a.target == "sluice" and t.alive():
            stats1 = reload_stats(scrape(t.admin))
            result["reloads"] = {k: {"count": v[0] - stats0.get(k, [0, 0])[0],
                                     "mean_ms": 1000 * (v[1] - stats0.get(k, [0, 0])[1]) /
                                     max(1, v[0] - stats0.get(k, [0, 0])[0])} for k, v in stats1.items()}
            result["memory_mib"] = t.memory()
        if cmd_times:
            result["reload_cmd_ms"] = {"p50": 1000 * pct(cmd_times, 50), "p99": 1000 * pct(cmd_times, 99)}
        save(a, name, result)
        print(json.dumps({k: v for k, v in result.items() if k != "log_tail"}, indent=1))
    finally:
        if "t" in locals() and t is not None:
            t.stop()
        procs.stop_all()


# --------------------------------------------------------------------------- part 3: start-up


async def traffic(port, hosts, total, conns=8):
    """`total` keep-alive GETs spread over `hosts` (random), `conns` connections; -> counts."""
    counts = {}
    per = total // conns

    def count(k):
        counts[k] = counts.get(k, 0) + 1

    async def worker():
        conn = None
        for _ in range(per):
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = conn
                writer.write(f"GET / HTTP/1.1\r\nHost: {random.choice(hosts)}\r\n\r\n".encode())
                buf = b""
                while True:
                    c = await asyncio.wait_for(reader.read(65536), 10)
                    buf += c
                    head = parse_head(buf)
                    if head and body_complete(head[1], buf[head[2]:], not c) is not None:
                        count(head[0])
                        break
                    if not c:
                        raise ConnectionError("closed")
            except (OSError, asyncio.TimeoutError) as e:
                count(type(e).__name__)
                if conn is not None:
                    conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*[worker() for _ in range(conns)])
    return counts


def part_startup(a):
    name = f"startup-{a.target}-{a.size}"
    work = fresh_work(a, name)
    procs = Procs(a.pidfile)
    port_b = a.port_base + 12
    try:
        start_backends(a, procs, work, port_b, a.endpoints)
        t = Target(a, procs, a.target, work, a.size, port_b, a.endpoints)
        gen_s = t.generate()
        runs = []
        for r in range(a.runs):
            ready = t.start(probe_host=mf.host_of(a.size - 1))
            run = {"ready_s": ready}
            if a.target == "nginx":
                run["note"] = "ready = first 200 for the last host"
            else:
                # Time until the last host is served too (== ready: the first snapshot is complete).
                t1 = time.monotonic()
                wait_status(t.http, mf.host_of(a.size - 1), timeout=30, proc=t.proc)
                run["first_200_after_ready_s"] = time.monotonic() - t1
                m = scrape(t.admin)
                run["objects"] = {k.split('"')[1]: v for k, v in m.items() if k.startswith("sluice_objects{")}
            time.sleep(1.0)
            run["mem_after_ready_mib"] = t.memory()
            if r == a.runs - 1:
                hosts = [mf.host_of(i) for i in range(a.size)]
                t1 = time.monotonic()
                run["traffic"] = asyncio.run(traffic(t.http, hosts, a.requests))
                run["traffic_s"] = time.monotonic() - t1
                run["traffic_requests"] = a.requests
                time.sleep(0.5)
                run["mem_after_traffic_mib"] = t.memory()
            run["alive"] = t.alive()
            t.stop()
            runs.append(run)
        result = {"target": a.target, "size": a.size, "endpoints_per_slice": a.endpoints,
                  "endpoints_total": a.size * a.endpoints, "generate_s": gen_s, "runs": runs,
                  "ready_s_median": statistics.median(r["ready_s"] for r in runs),
                  "layout": ("one file per Ingress+Service+EndpointSlice" if a.target == "sluice"
                             else "one file per upstream+server")}
        save(a, name, result)
        print(json.dumps(result, indent=1))
    finally:
        if "t" in locals() and t is not None:
            t.stop()
        procs.stop_all()


# --------------------------------------------------------------------------- report


def f(v, digits=1, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def report(a):
    res = {}
    for path in sorted(glob.glob(os.path.join(a.results, "*.json"))):
        with open(path) as fh:
            r = json.load(fh)
        res[r["name"]] = r
    out = []
    loss = [r for n, r in res.items() if n.startswith("loss-")]
    if loss:
        out.append(f"### 1. Requests lost during {loss[0]['changes']} changes under steady load\n")
        out.append("| target | Ingresses (server blocks) | changes | requests | achieved req/s | ok | refused | "
                   "reset / incomplete in flight | keep-alive race | timeouts | non-200 answers | "
                   "client p99 / max ms |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(loss, key=lambda r: (r["target"] != "sluice", r["size"])):
            c = r["load"]["counts"]
            non200 = {k: v for k, v in c.items() if k.startswith("status_")}
            non200s = ", ".join(f"{k[7:]}: {v}" for k, v in non200.items()) if non200 else "0"
            lat = r["load"]["latency_ms"]
            out.append(
                f"| {r['target']} | {r['size']} | {r['changes']} | {r['load']['total']} | {r['load']['rate']:.0f} | "
                f"{c['ok']} | {c['refused']} | {c['reset_in_flight'] + c['incomplete']} | {c['ka_race']} | "
                f"{c['timeout']} | {non200s} | {f(lat['p99'])} / {f(lat['max'])} |")
        out.append("")
        out.append("Details per run (changes applied, failures attributed to the change that preceded them, "
                   "responses per backend, idle keep-alive closes seen before reuse):\n")
        for r in sorted(loss, key=lambda r: (r["target"] != "sluice", r["size"])):
            extra = ""
            if r["target"] == "sluice":
                rl = ", ".join(f"{k} {int(v['count'])} × {v['mean_ms']:.1f} ms" for k, v in r.get("reloads", {}).items())
                aw = r.get("apply_wait_ms") or {}
                extra = (f"generations +{int(r.get('generations', 0))}, reloads: {rl}; change seen applied "
                         f"(generation bumped) for {r.get('applied')}/{r['changes']}, write→generation p50 "
                         f"{f(aw.get('p50'))} ms / max {f(aw.get('max'))} ms")
            else:
                extra = (f"`nginx -s reload` command p50 {f(r['reload_cmd_ms']['p50'])} ms / "
                         f"p99 {f(r['reload_cmd_ms']['p99'])} ms")
            fb = r["failures_by_change_kind"] or "none"
            out.append(f"- **{r['target']} {r['size']}**: {extra}; failures by change kind: {fb}; "
                       f"by connection mode: keep-alive {nonzero(r['load']['by_mode']['keepalive'])}, "
                       f"fresh {nonzero(r['load']['by_mode']['fresh'])}; backends {r['load']['backends']}; "
                       f"idle keep-alive closes seen before reuse: {r['load']['ka_closed_seen']}; "
                       f"process alive after: {r['alive_after']}")
        out.append("")
    lat = [r for n, r in res.items() if n.startswith("latency-")]
    if lat:
        out.append("### 2. Time from file write to the first 200 on the new host\n")
        out.append("| target | Ingresses (server blocks) | endpoints/slice | samples | p50 ms | p90 ms | p99 ms | max ms | "
                   "new file p50 / max | changed file p50 / max | control-plane apply (mean, from metrics) | "
                   "ready after start |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(lat, key=lambda r: (r["target"] != "sluice", r["size"])):
            ms = r["ms"]
            pm, px = r["per_mode_p50_ms"], r["per_mode_max_ms"]
            if r["target"] == "sluice":
                rl = ", ".join(f"{k} {int(v['count'])} × {v['mean_ms']:.1f} ms" for k, v in r.get("reloads", {}).items())
            else:
                rl = (f"`nginx -s reload` cmd p50 {f(r['reload_cmd_ms']['p50'])} / p99 "
                      f"{f(r['reload_cmd_ms']['p99'])} ms (included)")
            to = f" ({r['timeouts']} timed out)" if r["timeouts"] else ""
            if r.get("stopped_early_budget_s"):
                to += f" (stopped after the {r['stopped_early_budget_s']:.0f} s budget)"
            out.append(
                f"| {r['target']} | {r['size']} | {r['endpoints_per_slice']} | {r['samples']}{to} | {f(ms['p50'])} | "
                f"{f(ms['p90'])} | {f(ms['p99'])} | {f(ms['max'])} | {f(pm['new-file'])} / {f(px['new-file'])} | "
                f"{f(pm['changed-file'])} / {f(px['changed-file'])} | {rl} | {f(r['ready_s'], 2)} s |")
        others = {f"{r['target']} {r['size']}": r["other_answers_while_polling"] for r in lat
                  if r["other_answers_while_polling"]}
        if others:
            out.append(f"\nAnswers other than 404/200 while polling: {others}")
        nt = [r for r in lat if "nginx_t_s" in r]
        if nt:
            out.append("\n`nginx -t` (parse + check the whole configuration), median of 3: " + ", ".join(
                f"{r['size']} server blocks {r['nginx_t_s']['median'] * 1000:.0f} ms"
                for r in sorted(nt, key=lambda r: r["size"])))
        out.append("")
    st = [r for n, r in res.items() if n.startswith("startup-")]
    if st:
        out.append("### 3. Start-up to ready and resident memory\n")
        out.append("| target | Ingresses / Services / EndpointSlices | endpoints | ready (median of runs) | each run s | "
                   "RSS after ready MiB | RSS after traffic MiB | peak RSS (VmHWM) MiB | traffic |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for r in sorted(st, key=lambda r: r["target"] != "sluice"):
            last = r["runs"][-1]
            m0, m1 = last["mem_after_ready_mib"], last.get("mem_after_traffic_mib", {})
            tr = last.get("traffic", {})
            trs = ", ".join(f"{k}: {v}" for k, v in tr.items())
            if r["target"] == "nginx":
                rss0 = f"{m0['VmRSS']:.0f} (Pss {m0['Pss']:.0f}, {m0['processes']} processes)"
                rss1 = f"{m1.get('VmRSS', 0):.0f} (Pss {m1.get('Pss', 0):.0f})"
                objs = f"{r['size']} server + {r['size']} upstream blocks"
            else:
                rss0 = f"{m0['VmRSS']:.0f}"
                rss1 = f"{m1.get('VmRSS', 0):.0f}"
                o = last.get("objects", {})
                objs = f"{int(o.get('Ingress', 0))} / {int(o.get('Service', 0))} / {int(o.get('EndpointSlice', 0))}"
            out.append(
                f"| {r['target']} | {objs} | {r['endpoints_total']} | {r['ready_s_median']:.2f} s | "
                f"{', '.join('%.2f' % x['ready_s'] for x in r['runs'])} | {rss0} | {rss1} | "
                f"{m1.get('VmHWM', m0['VmHWM']):.0f} | {last.get('traffic_requests', 0)} GETs in "
                f"{last.get('traffic_s', 0):.1f} s over 8 keep-alive connections to random hosts ({trs}) |")
        out.append("")
    if res:
        out.append("### Machine load during each measurement\n")
        out.append("CPU busy = all processes on the machine, this benchmark included (its load generator, "
                   "backends and proxy), averaged over the measurement; waited = time spent waiting for "
                   "other work to calm down first.\n")
        out.append("| measurement | measured at | sluice binary (sha256) | waited s | CPU busy before | CPU busy during | "
                   "load average after |")
        out.append("|---|---|---|---|---|---|---|")
        for n, r in res.items():
            m = r.get("machine", {})
            la = m.get("loadavg_after")
            out.append(f"| {n} | {r.get('measured_at', '–')} | {r.get('sluice_sha256', '–')} | {m.get('waited_s', '–')} | {m.get('cpu_busy_before', '–')} | "
                       f"{m.get('cpu_busy_during', '–')} | {' '.join('%.1f' % x for x in la) if la else '–'} |")
        out.append("")
        out.append("Commands (bench/reload.sh adds the common options; see the header):\n")
        for n, r in res.items():
            if r.get("command"):
                out.append(f"    {r['command']}")
        out.append("")
    out.append(METHOD)
    text = "\n".join(out)
    print(text)


METHOD = """### Method

- **Layout**: Sluice reads one file per application (`app-NNNNN.yaml`: Ingress + Service + EndpointSlice,
  three documents), so a change is one small file among N; nginx gets the equivalent one file per
  application (`servers/app-NNNNN.conf`: `upstream` + `server`), a default server answering 404 (as
  Sluice does for an unknown host), `worker_processes 2`, upstream keep-alive, no access log.
- **Loss**: a Python asyncio client (`bench/reload/loadgen.py`, raw sockets) sends ~1,000 req/s over 4
  keep-alive connections and ~500 req/s over fresh connections (4 workers, `Connection: close`) to the
  host `steady.bench.test`, served throughout, backed by two `sluice echo` processes. Every 150 ms one
  change, cycling: steady Ingress rewritten in place (new annotation and extra path), Ingress file added,
  steady Ingress replaced by rename (hidden temp file + rename), EndpointSlice port switched to the other
  backend, the added file removed (20 of each). nginx: the same edits to its files, each followed by
  `nginx -s reload`. Outcomes: *refused* (connect refused), *reset / incomplete in flight* (reset or EOF
  before the full response; on a fresh connection, or after part of the response), *keep-alive race*
  (a reused connection closed/reset by the server with no response byte), *timeouts* (5 s), *non-200*.
  Failures are attributed to the change that preceded them.
- **Latency**: write a new file (new Ingress+Service+EndpointSlice with a unique host) or rewrite an existing
  application's file in place adding a unique host (alternating), then request that host on a fresh
  connection about every millisecond until it answers 200 (404 before); latency = write start → 200
  received. nginx: write the file, run `nginx -s reload` (included in the time), poll the same way.
  The control-plane figure is Sluice's own `sluice_reload_duration_seconds` (first file event → new
  snapshot stored; includes the 10 ms debounce).
- **Start-up**: exec → `/readyz` 200 (polled every 2 ms; the first snapshot is complete when ready);
  nginx: exec → the last host answering 200. Memory: VmRSS/VmHWM of the Sluice process 1 s after ready
  and after the traffic; nginx: the sum over master and workers (Pss sum in parentheses, shared pages
  counted once). Endpoints are 127.0.0.1–127.0.0.10 on one port (10 `bench-backend` processes), the same
  10 for every Service.
"""


def nonzero(d):
    z = {k: v for k, v in d.items() if v and k != "ok"}
    return z or "no failures"


# --------------------------------------------------------------------------- main


def command_line(a):
    """The measurement's own options (the common ones are listed once in the report)."""
    common = {"--sluice", "--backend", "--nginx", "--port-base", "--workers", "--work", "--results",
              "--pidfile", "--quiet-busy", "--quiet-wait"}
    args, skip = [], False
    for x in sys.argv[1:]:
        if skip:
            skip = False
        elif x in common:
            skip = True
        else:
            args.append(x)
    return "bench/reload/bench.py " + " ".join(args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["loss", "latency", "startup", "report"])
    ap.add_argument("--target", choices=["sluice", "nginx"], default="sluice")
    ap.add_argument("--size", type=int, default=10)
    ap.add_argument("--endpoints", type=int, default=1, help="endpoints per EndpointSlice / upstream")
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--backend", default="/tmp/bench-target/release/bench-backend")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--port-base", type=int, default=27180)
    ap.add_argument("--quiet-busy", type=float, default=1.0,
                    help="before measuring, wait until the CPUs are at most this busy (0-1; 1: do not wait)")
    ap.add_argument("--quiet-wait", type=float, default=180, help="longest wait for --quiet-busy (s)")
    ap.add_argument("--work", default="/tmp/sluice-reload-bench")
    ap.add_argument("--results", default="/tmp/sluice-reload-bench/results")
    ap.add_argument("--pidfile", default="/tmp/sluice-reload-bench/pids")
    # loss
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.15)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--cooldown", type=float, default=2.0)
    ap.add_argument("--ka-rate", type=float, default=1000)
    ap.add_argument("--fresh-rate", type=float, default=500)
    # latency
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--gap", type=float, default=0.1)
    ap.add_argument("--poll-timeout", type=float, default=30.0, help="longest wait for one new host (s)")
    ap.add_argument("--budget", type=float, default=240.0, help="take no more samples after this many seconds")
    # startup
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20000)
    a = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))
    if a.part == "report":
        return report(a)
    os.makedirs(a.work, exist_ok=True)
    if a.quiet_busy < 1:
        CONTEXT["quiet"] = wait_quiet(a)
        print(f"machine: {CONTEXT['quiet']}", file=sys.stderr)
    CONTEXT["cpu"] = cpu_times()
    CONTEXT["command"] = command_line(a)
    {"loss": part_loss, "latency": part_latency, "startup": part_startup}[a.part](a)


if __name__ == "__main__":
    main()
