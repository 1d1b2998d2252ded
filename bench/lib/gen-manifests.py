#!/usr/bin/env python3
"""Write the Kubernetes manifests Sluice serves in the benchmarks (one multi-document YAML).

  gen-manifests.py --out FILE --backend-port PORT [--backend-ip 127.0.0.1]
                   [--ingresses N] [--host-format 'h{:05d}.bench.test']
                   [--tls-cert CERT.pem --tls-key KEY.pem]

--ingresses 0 (default): one Ingress named `bench` with a rule without `host:` (any Host)
    routing `/` (Prefix) to Service `backend`; used by l7-peers.sh, whose load generators
    send Host: 127.0.0.1:PORT.
--ingresses N > 0: N Ingresses `h00000` ... (from --first) each with its own host (--host-format) and a
    couple of paths: `/` Prefix, `/api` Prefix, `/static/app.js` Exact, all to `backend`.
    Used by the routing-cost suite (10 vs 10,000 Ingresses).
--tls-cert/--tls-key: also a `kubernetes.io/tls` Secret `bench-tls` (stringData tls.crt/tls.key,
    read from the files) and a `tls:` entry naming it (hosts: localhost) in the Ingress;
    start Sluice with --default-tls-secret default/bench-tls so that clients that send no SNI
    (wrk/h2load to https://127.0.0.1) get this certificate too.
--many-paths regex|prefix N: N paths on ONE host (--paths-host), 10 per Ingress (`paths-0000`
    ...), all to `backend`. Path i follows one of four shapes (i % 4), as regexes of the kind
    ingress-nginx users write, or as the Prefix paths that serve the same requests:
        regex (ImplementationSpecific, every Ingress `use-regex: "true"`)  prefix (Prefix)
        /svc-0042/v[0-9]+/items(/|$)(.*)                                  /svc-0042/v1/items
        /svc-0043/api/(users|orders)/[0-9]+                               /svc-0043/api/users
        /svc-0044(/|$)(.*)                                                /svc-0044
        /svc-0045/static/.+\.(js|css|png)$                                /svc-0045/static
    In regex mode Sluice (like nginx) tries them longest first, then by path text descending, so
    low numbers of the shortest shapes come last. --requests-out writes K request paths (one per
    line) that each match exactly one rule, for both modes: the last 4 in that order, the first 4,
    and the rest spread evenly over the numbers. Used by the `PATHS=1` suite of l7-peers.sh.
--annotated N: N Ingresses (class `nginx`, IngressClass `nginx` -> controller
    k8s.io/ingress-nginx) in 20 namespaces, each with its own host, Service (ClusterIP) and
    EndpointSlice (2 endpoints), carrying a mix of the ingress-nginx annotations Sluice honours
    (use-regex + rewrite-target, ssl-redirect, force-ssl-redirect, proxy-body-size, timeouts,
    proxy-next-upstream*, configuration-snippet with header lines, permanent-redirect,
    upstream-vhost, app-root, server-alias, backend-protocol GRPC, service-upstream, canary-by-header
    + canary-weight on every 100th, which is a canary of the previous Ingress's host) plus a few it
    ignores with a warning (enable-cors, proxy-buffering) and Helm's own annotations; no refused one.
    With --tls-cert/--tls-key (a `*.bench.test` certificate) each namespace gets a Secret
    `wildcard-tls` used by 4 Ingresses in 10. --no-regex: the same without regex mode (the
    use-regex/rewrite-target Ingresses get Prefix /api and /static). Used by check.sh.
Always: Service `backend` (port 80) and its EndpointSlice -> BACKEND_IP:BACKEND_PORT.
--split K: --out is a directory; write the documents K per file (part-0000.yaml, ...).
    Needed for 10,000 Ingresses: Sluice's YAML reader (serde-saphyr's default budget) rejects
    a whole file with more than 1,024 documents or 250,000 YAML nodes ("budget breached"),
    so one 10,000-document file (or one `kind: List`) would be refused.
"""
import argparse
import os


def block(text, indent):
    pad = " " * indent
    return "\n".join(pad + line for line in text.rstrip("\n").split("\n"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend-port", type=int, help="required except with --annotated")
    ap.add_argument("--backend-ip", default="127.0.0.1")
    ap.add_argument("--ingresses", type=int, default=0)
    ap.add_argument("--host-format", default="h{:05d}.bench.test")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--first", type=int, default=0, help="number of the first host (--ingresses N > 0)")
    ap.add_argument("--many-paths", nargs=2, metavar=("MODE", "N"), help="regex|prefix N: N paths on one host")
    ap.add_argument("--paths-host", default="paths.bench.test")
    ap.add_argument("--paths-per-ingress", type=int, default=10)
    ap.add_argument("--requests-out", help="with --many-paths: write request paths here")
    ap.add_argument("--requests", type=int, default=16, help="how many request paths (--requests-out)")
    ap.add_argument("--annotated", type=int, default=0, help="N annotated Ingresses (sluice check benchmark)")
    ap.add_argument("--no-regex", action="store_true",
                    help="with --annotated: the regex Ingresses get Prefix /api and /static instead")
    a = ap.parse_args()
    if a.many_paths and a.backend_port is None:
        ap.error("--backend-port is required")
    if a.many_paths:
        return many_paths(a)
    if a.annotated > 0:
        return annotated(a)
    if a.backend_port is None:
        ap.error("--backend-port is required")
    tls = bool(a.tls_cert and a.tls_key)

    docs = []
    if tls:
        crt = open(a.tls_cert).read()
        key = open(a.tls_key).read()
        docs.append(
            "apiVersion: v1\nkind: Secret\n"
            "metadata: {name: bench-tls, namespace: default}\n"
            "type: kubernetes.io/tls\nstringData:\n"
            f"  tls.crt: |\n{block(crt, 4)}\n  tls.key: |\n{block(key, 4)}\n"
        )
    tls_entry = "  tls:\n  - {hosts: [localhost], secretName: bench-tls}\n" if tls else ""
    if a.ingresses <= 0:
        docs.append(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
            "metadata: {name: bench, namespace: default}\n"
            "spec:\n  ingressClassName: sluice\n" + tls_entry +
            "  rules:\n  - http:\n      paths:\n"
            "      - {path: /, pathType: Prefix, backend: {service: {name: backend, port: {number: 80}}}}\n"
        )
    else:
        be = "backend: {service: {name: backend, port: {number: 80}}}"
        for i in range(a.first, a.first + a.ingresses):
            host = a.host_format.format(i)
            docs.append(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
                f"metadata: {{name: h{i:05d}, namespace: default}}\n"
                "spec:\n  ingressClassName: sluice\n" + (tls_entry if i == a.first else "") +
                f"  rules:\n  - host: {host}\n    http:\n      paths:\n"
                f"      - {{path: /, pathType: Prefix, {be}}}\n"
                f"      - {{path: /api, pathType: Prefix, {be}}}\n"
                f"      - {{path: /static/app.js, pathType: Exact, {be}}}\n"
            )
    docs += backend_docs(a)
    write(a, docs)


def write(a, docs):
    if a.split > 0:
        os.makedirs(a.out, exist_ok=True)
        for k in range(0, len(docs), a.split):
            with open(os.path.join(a.out, "part-%04d.yaml" % (k // a.split)), "w") as f:
                f.write("---\n".join(docs[k:k + a.split]))
    else:
        with open(a.out, "w") as f:
            f.write("---\n".join(docs))


def backend_docs(a):
    return [
        "apiVersion: v1\nkind: Service\n"
        "metadata: {name: backend, namespace: default}\n"
        "spec: {ports: [{name: http, port: 80, protocol: TCP}]}\n",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: backend-1, namespace: default, labels: {kubernetes.io/service-name: backend}}\n"
        "addressType: IPv4\n"
        f"ports: [{{name: http, port: {a.backend_port}, protocol: TCP}}]\n"
        f"endpoints: [{{addresses: [\"{a.backend_ip}\"], conditions: {{ready: true}}}}]\n",
    ]


# The four path shapes of --many-paths: (regex, equivalent prefix, a request both match).
SHAPES = [
    ("/svc-{n}/v[0-9]+/items(/|$)(.*)", "/svc-{n}/v1/items", "/svc-{n}/v1/items/{r}"),
    ("/svc-{n}/api/(users|orders)/[0-9]+", "/svc-{n}/api/users", "/svc-{n}/api/users/{r}"),
    ("/svc-{n}(/|$)(.*)", "/svc-{n}", "/svc-{n}/profile"),
    ("/svc-{n}/static/.+\\.(js|css|png)$", "/svc-{n}/static", "/svc-{n}/static/app-{r}.js"),
]


def many_paths(a):
    mode, n = a.many_paths[0], int(a.many_paths[1])
    if mode not in ("regex", "prefix"):
        raise SystemExit("--many-paths: MODE is regex or prefix")
    be = "backend: {service: {name: backend, port: {number: 80}}}"
    rules = []
    for i in range(n):
        regex, prefix, _ = SHAPES[i % 4]
        if mode == "regex":
            rules.append((regex.format(n="%04d" % i), "ImplementationSpecific"))
        else:
            rules.append((prefix.format(n="%04d" % i), "Prefix"))
    docs = []
    per = max(1, a.paths_per_ingress)
    for k in range(0, n, per):
        ann = "  annotations: {nginx.ingress.kubernetes.io/use-regex: \"true\"}\n" if mode == "regex" else ""
        paths = "".join(f"      - {{path: '{p}', pathType: {t}, {be}}}\n" for p, t in rules[k:k + per])
        docs.append(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
            f"metadata:\n  name: paths-{k // per:04d}\n  namespace: default\n{ann}"
            "spec:\n  ingressClassName: sluice\n"
            f"  rules:\n  - host: {a.paths_host}\n    http:\n      paths:\n{paths}"
        )
    write(a, docs + backend_docs(a))
    if a.requests_out:
        # nginx's order for the regex rules: longest first, then path text descending
        order = sorted(range(n), key=lambda i: (len(rules_regex(i)), rules_regex(i)), reverse=True)
        k = max(8, a.requests)
        pick = order[-4:] + order[:4]
        rest = k - len(pick)
        for j in range(rest):
            i = (j * n) // rest + (n // rest) // 2
            if i not in pick:
                pick.append(i)
        with open(a.requests_out, "w") as f:
            for i in pick:
                f.write(SHAPES[i % 4][2].format(n="%04d" % i, r=1000 + i) + "\n")


def rules_regex(i):
    return SHAPES[i % 4][0].format(n="%04d" % i)


def annotated(a):
    """N Ingresses with a realistic mix of honoured ingress-nginx annotations (see the doc)."""
    P = "nginx.ingress.kubernetes.io/"
    tls = bool(a.tls_cert and a.tls_key)
    namespaces = ["team-%02d" % k for k in range(20)]
    docs = [
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\n"
        "metadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n"
    ]
    if tls:
        crt, key = open(a.tls_cert).read(), open(a.tls_key).read()
        for ns in namespaces:
            docs.append(
                "apiVersion: v1\nkind: Secret\n"
                f"metadata: {{name: wildcard-tls, namespace: {ns}}}\n"
                "type: kubernetes.io/tls\nstringData:\n"
                f"  tls.crt: |\n{block(crt, 4)}\n  tls.key: |\n{block(key, 4)}\n"
            )

    def q(v):  # a YAML double-quoted scalar
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    for i in range(a.annotated):
        name = "app-%05d" % i
        ns = namespaces[i % len(namespaces)]
        host = f"{name}.bench.test"
        kind = i % 10
        ann = {"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": ns}
        paths = [("/", "Prefix")]
        with_tls = tls and kind in (0, 1, 7, 9)
        if i % 100 == 99 and i > 0:
            # a canary of the previous Ingress: same namespace, host and path
            ns = namespaces[(i - 1) % len(namespaces)]
            host = "app-%05d.bench.test" % (i - 1)
            ann = {P + "canary": "true", P + "canary-by-header": "X-Canary",
                   P + "canary-by-header-value": "always" if i % 200 == 99 else "beta",
                   P + "canary-weight": "10"}
            with_tls = False
        elif kind in (0, 5) and a.no_regex:
            ann[P + "proxy-body-size"] = "8m"
            paths = [("/api", "Prefix"), ("/static", "Prefix")]
        elif kind in (0, 5):
            ann.update({P + "use-regex": "true", P + "rewrite-target": "/$2", P + "proxy-body-size": "8m"})
            paths = [("/api(/|$)(.*)", "ImplementationSpecific"), ("/static(/|$)(.*)", "ImplementationSpecific")]
            if kind == 0:
                ann[P + "x-forwarded-prefix"] = "/api"
        elif kind == 1:
            ann.update({P + "ssl-redirect": "false", P + "proxy-body-size": "16m", P + "proxy-read-timeout": "120"})
        elif kind == 2:
            ann.update({P + "proxy-body-size": "100m", P + "proxy-read-timeout": "300",
                        P + "proxy-connect-timeout": "10s"})
            paths = [("/upload", "Prefix"), ("/", "Prefix")]
        elif kind == 3:
            ann.update({P + "permanent-redirect": "https://new.bench.test$request_uri",
                        P + "permanent-redirect-code": "308"})
        elif kind == 4:
            ann[P + "configuration-snippet"] = (
                'more_set_headers "X-A: b";\nmore_set_headers "X-Frame-Options: DENY";\n'
                "add_header Cache-Control no-store always;\nproxy_set_header X-Real-Client $remote_addr;\n")
        elif kind == 6:
            ann.update({P + "upstream-vhost": f"{name}.{ns}.svc.cluster.local",
                        P + "proxy-next-upstream": "error timeout http_502 http_503",
                        P + "proxy-next-upstream-tries": "2", P + "proxy-next-upstream-timeout": "10"})
        elif kind == 7:
            ann.update({P + "force-ssl-redirect": "true", P + "preserve-trailing-slash": "true",
                        P + "proxy-body-size": "0"})
            paths = [("/", "Prefix"), ("/healthz", "Exact")]
        elif kind == 8:
            if i % 20 == 18:
                ann.update({P + "temporal-redirect": "https://status.bench.test/maintenance",
                            P + "temporal-redirect-code": "307"})
            else:
                ann.update({P + "app-root": "/app", P + "server-alias": f"www-{name}.bench.test"})
        elif kind == 9:
            ann.update({P + "backend-protocol": "GRPC", P + "proxy-read-timeout": "3600",
                        P + "service-upstream": "true", P + "proxy-http-version": "1.1"})
        if i % 100 == 12:
            ann[P + "enable-cors"] = "true"          # ignored by Sluice (warning)
        if i % 100 == 17:
            ann[P + "proxy-buffering"] = "off"       # ignored by Sluice (warning)
        annot = "".join(f"    {k}: {q(v)}\n" for k, v in ann.items())
        tls_entry = f"  tls:\n  - hosts: [{host}]\n    secretName: wildcard-tls\n" if with_tls else ""
        be = f"backend: {{service: {{name: {name}, port: {{number: 80}}}}}}"
        rule_paths = "".join(f"      - {{path: '{p}', pathType: {t}, {be}}}\n" for p, t in paths)
        docs.append(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
            f"metadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n{annot}"
            "spec:\n  ingressClassName: nginx\n" + tls_entry +
            f"  rules:\n  - host: {host}\n    http:\n      paths:\n{rule_paths}"
        )
        port_name = "grpc" if kind == 9 and i % 100 != 99 else "http"
        docs.append(
            "apiVersion: v1\nkind: Service\n"
            f"metadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec: {{clusterIP: 10.96.{i // 250}.{i % 250 + 1}, "
            f"ports: [{{name: {port_name}, port: 80, targetPort: 8080, protocol: TCP}}]}}\n"
        )
        docs.append(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata: {{name: {name}-x1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n"
            "addressType: IPv4\n"
            f"ports: [{{name: {port_name}, port: 8080, protocol: TCP}}]\n"
            f"endpoints:\n- {{addresses: [\"10.244.{i // 125}.{(i % 125) * 2 + 1}\"], conditions: {{ready: true}}}}\n"
            f"- {{addresses: [\"10.244.{i // 125}.{(i % 125) * 2 + 2}\"], conditions: {{ready: true}}}}\n"
        )
    write(a, docs)


if __name__ == "__main__":
    main()
