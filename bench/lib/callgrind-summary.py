#!/usr/bin/env python3
"""Ir (user-space instructions) per request by component, from callgrind output files.

  callgrind-summary.py --requests R [--label L] [--csv OUT.csv] [--top 25] SUITE=callgrind.out ...
  callgrind-summary.py --compare BEFORE/components.csv AFTER/components.csv

Used by bench/callgrind.sh (one file per suite, h1 / h2). Reads the callgrind format itself
(name compression, relative positions, call lines) and splits every instruction count twice:

* by symbol (the main columns): the *self* (exclusive) cost of each function, i.e. the
  cost lines of the function minus its `calls=` lines, grouped by the function's crate /
  module path: for `<T as Trait>::f`, `core::ptr::drop_in_place<T>`, `alloc::sync::Arc<T>::..`
  the first path outside core/alloc/std decides (T's crate); C symbols by name (malloc, mi_*,
  memcpy, read/write/epoll_*, aws_lc_*). Code inlined into a function counts as that
  function's own (callgrind charges instructions to the symbol they execute in).
* by source line ("by source" columns): each cost line's source file (callgrind's fi=/fe=
  entries follow inlined code to its file), mapped to a crate / module the same way
  (~/.cargo/registry/.../hyper-1.x/src/proto/h1/role.rs -> hyper::proto::h1,
  crates/proxy/src/forward.rs -> sluice_proxy::forward, /rustc/.../library/core -> core); code
  without line information (libc, the vDSO) falls back to its symbol. Generic std code inlined
  into a crate lands in "Rust core/alloc/std" here, in that crate in the symbol view.

Components: hyper::proto::h1 (+ httparse), h2 (hyper::proto::h2 + h2::), hyper (other),
hyper_util, tokio (+ mio, tokio_util), TLS (rustls, tokio_rustls, aws_lc_rs, aws-lc C code, webpki),
sluice_proxy::{forward, listener, h1_guard, headers, metrics}, sluice_proxy (other), sluice (other
crates), prometheus_client, http / bytes / http_body, allocator (mimalloc, malloc/free,
__rust_alloc...), libc mem* (memcpy/memmove/memset/memcmp), syscall wrappers + vDSO
(read/write/epoll/clock_gettime/...), Rust core/alloc/std, tracing (spans, events), other.
Total = every Ir collected / R.

Prints markdown (a component table with a column pair per suite, then the top functions of each
suite by self Ir/request); --csv writes label,suite,requests,component,ir_per_req,
ir_per_req_source,total_ir rows. --compare prints, per suite and component, BEFORE, AFTER and
AFTER/BEFORE from two such CSV files.
"""
import argparse
import csv
import re
import sys
from collections import defaultdict

COMPONENTS = [
    "hyper::proto::h1 (+ httparse)",
    "h2 (hyper::proto::h2 + h2::)",
    "hyper (other)",
    "hyper_util",
    "tokio (+ mio, tokio_util)",
    "TLS (rustls, aws-lc)",
    "sluice_proxy::forward",
    "sluice_proxy::listener",
    "sluice_proxy::h1_guard",
    "sluice_proxy::headers",
    "sluice_proxy::metrics",
    "sluice_proxy (other)",
    "sluice (other crates)",
    "prometheus_client",
    "http / bytes / http_body",
    "allocator (mimalloc, malloc, __rust_alloc)",
    "libc mem* (memcpy/memmove/memset/memcmp)",
    "syscall wrappers + vDSO (read/write/epoll/...)",
    "Rust core/alloc/std",
    "tracing",
    "other",
]
# module path (or crate) -> component, first match wins; "sluice*" crates not listed -> 12
PREFIXES = [
    ("hyper::proto::h1", 0), ("httparse", 0),
    ("hyper::proto::h2", 1), ("h2", 1),
    ("hyper", 2),
    ("hyper_util", 3),
    ("tokio_rustls", 5), ("rustls", 5), ("rustls_pki_types", 5), ("webpki", 5), ("aws_lc_rs", 5),
    ("aws_lc_sys", 5), ("aws_lc", 5), ("ring", 5),
    ("tokio", 4), ("mio", 4), ("tokio_util", 4),
    ("sluice_proxy::forward", 6), ("sluice_proxy::listener", 7), ("sluice_proxy::h1_guard", 8),
    ("sluice_proxy::headers", 9), ("sluice_proxy::metrics", 10), ("sluice_proxy", 11),
    ("prometheus_client", 13),
    ("http", 14), ("http_body", 14), ("http_body_util", 14), ("bytes", 14),
    ("mimalloc", 15), ("libmimalloc_sys", 15),
    ("core", 18), ("alloc", 18), ("std", 18),
    ("tracing", 19), ("tracing_core", 19), ("tracing_subscriber", 19),
]
STD_CRATES = {"core", "alloc", "std"}
MEM_RE = re.compile(r"^_*(mem(cpy|move|set|cmp|chr|rchr|pcpy)|bcmp|wmem\w+)")
PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+")
SYSCALLS = {
    "read", "write", "readv", "writev", "recv", "recvfrom", "recvmsg", "send", "sendto", "sendmsg",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "accept", "accept4", "close", "shutdown",
    "socket", "connect", "bind", "listen", "setsockopt", "getsockopt", "getsockname", "getpeername",
    "ioctl", "fcntl", "syscall", "clock_gettime", "vdso_clock_gettime", "gettimeofday", "time",
    "sched_yield", "nanosleep", "clock_nanosleep", "eventfd_write", "eventfd_read", "futex", "poll",
    "ppoll", "getrandom", "splice", "pipe2", "madvise", "mmap", "munmap", "mprotect", "sigaltstack",
    "statx", "openat", "getpid", "gettid", "sendmmsg", "recvmmsg",
    "pthread_enable_asynccancel", "pthread_disable_asynccancel",  # around blocking syscalls
}


def by_prefix(path):
    for prefix, comp in PREFIXES:
        if path == prefix or path.startswith(prefix + "::"):
            return comp
    if path.split("::", 1)[0].startswith("sluice"):
        return 12
    return None


def owner_path(sym):
    """The module path that decides a Rust symbol's component (see the module docstring)."""
    paths = PATH_RE.findall(sym)
    for p in paths:
        if p.split("::", 1)[0] not in STD_CRATES:
            return p
    return paths[0] if paths else None


def classify_symbol(sym, obj=""):
    """Component index of a function, from its (demangled) name and its object file."""
    name = sym.split("'", 1)[0]  # callgrind marks recursion / multiple contexts with 'N
    path = owner_path(name)
    if path:
        comp = by_prefix(path)
        if comp is not None:
            return comp
    base = re.sub(r"@.*$", "", name)
    if re.match(r"^_*(mi|_mi)_|^_*(malloc|free|calloc|realloc|cfree|posix_memalign|aligned_alloc|memalign)$"
                r"|^_int_(malloc|free|realloc)|^__libc_(malloc|free|calloc|realloc)|^malloc_|^je_|^__rust_(alloc|dealloc|realloc|alloc_zeroed)"
                r"|^__r[dg]l_", base):
        return 15
    if MEM_RE.match(base):
        return 16
    stripped = re.sub(r"^(__libc_|__GI___|__GI_|__|_)+", "", base)
    stripped = re.sub(r"(_nocancel|64)$", "", stripped)
    if stripped in SYSCALLS or "vdso" in obj or name.startswith("__vdso"):
        return 17
    if re.match(r"^_?(aws_lc_|OPENSSL_|CRYPTO_|EVP_|SHA\d|sha\d+_block|AES_|aes|vpaes|bsaes|gcm_|ghash|ChaCha|chacha|"
                r"poly1305|x25519|ec_|EC_|ecp_nistz|BN_|bn_|fiat_)", base) \
            or "aws-lc" in obj:
        return 5
    if path and path.split("::", 1)[0] in STD_CRATES:
        return 18
    return 20


CRATE_FILE_RE = re.compile(r"/(?:registry/src/[^/]+|git/checkouts/[^/]+/[^/]+)/([A-Za-z0-9_-]+?)-\d+\.\d+\.\d+[^/]*/(.*)$")
STD_FILE_RE = re.compile(r"/library/(core|alloc|std|proc_macro|panic_unwind)/src/(.*)$")
WORKSPACE_FILE_RE = re.compile(r"(?:^|/)crates/([A-Za-z0-9_-]+)/src/(.*)$")


def file_module(path):
    """A source file -> a pseudo module path (crate::dir::file), or None when unknown."""
    def modpath(crate, rel):
        rel = re.sub(r"\.rs$", "", rel)
        parts = [p for p in rel.split("/") if p not in ("", "src", "lib", "mod", "main")]
        return "::".join([crate.replace("-", "_")] + parts)
    m = STD_FILE_RE.search(path)
    if m:
        return modpath(m.group(1), m.group(2))
    m = CRATE_FILE_RE.search(path)
    if m:
        crate = m.group(1)
        if crate.startswith("aws-lc-sys") or crate.startswith("aws-lc-rs"):
            return "aws_lc"
        if crate.startswith("libmimalloc-sys"):
            return "libmimalloc_sys"
        return modpath(crate, m.group(2))
    m = WORKSPACE_FILE_RE.search(path)
    if m:
        crate = m.group(1)
        return modpath("sluice" if crate == "sluice" else "sluice_" + crate.replace("-", "_"), m.group(2))
    return None


def parse(path):
    """-> (self Ir by (obj, fn), Ir by component by source line, total Ir from the header,
    {(caller fn, call site file, callee fn): [calls, inclusive Ir]} for calls into libc mem*)."""
    names = {k: {} for k in ("ob", "fl", "fn")}
    kind_of = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl",
               "fn": "fn", "cfn": "fn"}
    self_ir = defaultdict(int)
    src_ir = defaultdict(int)
    file_comp = {}
    fn_comp = {}
    ob = fl = fn = cur_file = ""
    skip_next = False
    cfn = ""
    ncalls = 0
    mem_calls = defaultdict(lambda: [0, 0])
    total = None
    npos = 1

    def name(kind, value):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", value)
        if not m:
            return value
        table = names[kind_of[kind]]
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "?")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line[0] == "#":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:  # the inclusive cost of a call: not this function's own
                    skip_next = False
                    if MEM_RE.match(cfn):
                        fields = line.split()
                        e = mem_calls[(fn, cur_file, cfn)]
                        e[0] += ncalls
                        e[1] += int(fields[npos]) if len(fields) > npos else 0
                    continue
                fields = line.split()
                ev = fields[npos:]
                ir = int(ev[0]) if ev else 0
                if ir == 0:
                    continue
                self_ir[(ob, fn)] += ir
                comp = file_comp.get(cur_file, "unset")
                if comp == "unset":
                    mod = file_module(cur_file)
                    comp = by_prefix(mod) if mod else None
                    if mod and comp is None:
                        comp = 20
                    file_comp[cur_file] = comp
                if comp is None:  # no usable line information: by symbol
                    if (ob, fn) not in fn_comp:
                        fn_comp[(ob, fn)] = classify_symbol(fn, ob)
                    comp = fn_comp[(ob, fn)]
                src_ir[comp] += ir
                continue
            if "=" in line:
                k, v = line.split("=", 1)
                if k == "calls":
                    skip_next = True
                    ncalls = int(v.split()[0])
                elif k in ("ob",):
                    ob = name(k, v)
                elif k == "fl":
                    fl = cur_file = name(k, v)
                elif k in ("fi", "fe"):
                    cur_file = name(k, v)
                elif k == "fn":
                    fn = name(k, v)
                    cur_file = fl
                elif k == "cfn":
                    cfn = name(k, v)
                elif k in kind_of:  # cob, cfi, cfl: define names, change nothing here
                    name(k, v)
                continue
            if ":" in line:
                k, v = line.split(":", 1)
                if k in ("summary", "totals"):
                    total = int(v.split()[0])
                elif k == "positions":
                    npos = len(v.split())
                elif k == "events" and v.split()[0] != "Ir":
                    sys.exit(f"{path}: first event is {v.split()[0]}, not Ir")
    return self_ir, src_ir, total, mem_calls


def summarize(args):
    suites = []
    for spec in args.files:
        suite, path = spec.split("=", 1)
        self_ir, src_ir, total, mem_calls = parse(path)
        counted = sum(self_ir.values())
        if total is None:
            total = counted
        by_comp = defaultdict(int)
        comp_of = {}
        for (ob, fn), ir in self_ir.items():
            comp_of[(ob, fn)] = classify_symbol(fn, ob)
            by_comp[comp_of[(ob, fn)]] += ir
        suites.append(dict(suite=suite, path=path, self_ir=self_ir, src_ir=src_ir, total=total,
                           counted=counted, by_comp=by_comp, comp_of=comp_of, mem_calls=mem_calls))
    r = args.requests
    print(f"### Sluice under callgrind: Ir per request by component — {args.label}")
    print()
    head = "| component |" + "".join(f" {s['suite']} Ir/req | {s['suite']} % | {s['suite']} by source |" for s in suites)
    print(head)
    print("|---|" + "---:|---:|---:|" * len(suites))
    rows = []
    for i, comp in enumerate(COMPONENTS):
        if not any(s["by_comp"].get(i) or s["src_ir"].get(i) for s in suites):
            continue
        cells = ""
        for s in suites:
            v, vs = s["by_comp"].get(i, 0), s["src_ir"].get(i, 0)
            cells += f" {v / r:,.0f} | {100 * v / s['total']:.1f} | {vs / r:,.0f} |"
            rows.append((args.label, s["suite"], r, comp, "%.1f" % (v / r), "%.1f" % (vs / r), s["total"]))
        print(f"| {comp} |{cells}")
    print("| **total** |" + "".join(f" **{s['total'] / r:,.0f}** | 100 | {sum(s['src_ir'].values()) / r:,.0f} |" for s in suites))
    for s in suites:
        rows.append((args.label, s["suite"], r, "total", "%.1f" % (s["total"] / r),
                     "%.1f" % (sum(s["src_ir"].values()) / r), s["total"]))
    print()
    print(f"Ir = instructions executed in user space (callgrind counts no kernel work), per request: "
          f"all Ir collected while {r:,} requests went through / {r:,}. Ir/req and %: by symbol (each "
          "function's self cost, to its crate/module; inlined code counts to the function it is inlined "
          "into). by source: the same instructions by the source file of each line (inlined code to its "
          "own crate; generic std code inlined anywhere to Rust core/alloc/std).")
    for s in suites:
        if s["counted"] != s["total"]:
            print(f"\nNOTE {s['suite']}: the cost lines add up to {s['counted']:,} Ir, the file's total says {s['total']:,}.")
    for s in suites:
        print()
        print(f"#### {s['suite']}: top {args.top} functions by self Ir/request ({s['path']})")
        print()
        print("| self Ir/req | % | component | function | object |")
        print("|---:|---:|---|---|---|")
        top = sorted(s["self_ir"].items(), key=lambda kv: -kv[1])[:args.top]
        for (ob, fn), ir in top:
            fn_short = fn if len(fn) <= 140 else fn[:137] + "..."
            print(f"| {ir / r:,.1f} | {100 * ir / s['total']:.1f} | {COMPONENTS[s['comp_of'][(ob, fn)]]} "
                  f"| `{fn_short.replace('|', '/')}` | {ob.rsplit('/', 1)[-1]} |")
    for s in suites:
        print()
        print(f"#### {s['suite']}: where the libc mem* Ir come from (top {args.top // 2} call sites)")
        print()
        print("| Ir/req in the call | % of total | calls/req | Ir/call | caller (call site file) | callee |")
        print("|---:|---:|---:|---:|---|---|")
        top = sorted(s["mem_calls"].items(), key=lambda kv: -kv[1][1])[:args.top // 2]
        for (caller, site, callee), (n, ir) in top:
            c = caller if len(caller) <= 110 else caller[:107] + "..."
            site = re.sub(r"^.*/(registry/src/[^/]+|rustc/[0-9a-f]+)/", "", site)
            print(f"| {ir / r:,.1f} | {100 * ir / s['total']:.1f} | {n / r:.2f} | {ir / n if n else 0:,.0f} "
                  f"| `{c.replace('|', '/')}` ({site}) | {callee} |")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "suite", "requests", "component", "ir_per_req", "ir_per_req_source", "total_ir"])
            w.writerows(rows)


def compare(a_path, b_path):
    def load(p):
        rows = list(csv.DictReader(open(p)))
        return rows[0]["label"] if rows else p, {(r["suite"], r["component"]): float(r["ir_per_req"]) for r in rows}
    la, a = load(a_path)
    lb, b = load(b_path)
    suites = sorted({k[0] for k in a} | {k[0] for k in b})
    print("### Ir per request by component: A -> B")
    print()
    print(f"A = {la} ({a_path}), B = {lb} ({b_path})")
    print()
    print("| component |" + "".join(f" {s} A | {s} B | {s} B/A |" for s in suites))
    print("|---|" + "---:|---:|---:|" * len(suites))
    for comp in COMPONENTS + ["total"]:
        if not any((s, comp) in a or (s, comp) in b for s in suites):
            continue
        cells = ""
        for s in suites:
            x, y = a.get((s, comp)), b.get((s, comp))
            cells += (f" {'-' if x is None else f'{x:,.0f}'} | {'-' if y is None else f'{y:,.0f}'} | "
                      f"{'%.2f' % (y / x) if x and y is not None else '-'} |")
        print(f"| {'**total**' if comp == 'total' else comp} |{cells}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", metavar="SUITE=FILE")
    ap.add_argument("--requests", type=int)
    ap.add_argument("--label", default="")
    ap.add_argument("--csv")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE_CSV", "AFTER_CSV"))
    a = ap.parse_args()
    if a.compare:
        return compare(*a.compare)
    if not a.files or not a.requests:
        ap.error("SUITE=FILE ... and --requests are required")
    summarize(a)


if __name__ == "__main__":
    main()
