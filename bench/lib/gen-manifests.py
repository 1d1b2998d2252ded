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
    ap.add_argument("--backend-port", type=int, required=True)
    ap.add_argument("--backend-ip", default="127.0.0.1")
    ap.add_argument("--ingresses", type=int, default=0)
    ap.add_argument("--host-format", default="h{:05d}.bench.test")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--first", type=int, default=0, help="number of the first host (--ingresses N > 0)")
    a = ap.parse_args()
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
    docs.append(
        "apiVersion: v1\nkind: Service\n"
        "metadata: {name: backend, namespace: default}\n"
        "spec: {ports: [{name: http, port: 80, protocol: TCP}]}\n"
    )
    docs.append(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: backend-1, namespace: default, labels: {kubernetes.io/service-name: backend}}\n"
        "addressType: IPv4\n"
        f"ports: [{{name: http, port: {a.backend_port}, protocol: TCP}}]\n"
        f"endpoints: [{{addresses: [\"{a.backend_ip}\"], conditions: {{ready: true}}}}]\n"
    )
    if a.split > 0:
        os.makedirs(a.out, exist_ok=True)
        for k in range(0, len(docs), a.split):
            with open(os.path.join(a.out, "part-%04d.yaml" % (k // a.split)), "w") as f:
                f.write("---\n".join(docs[k:k + a.split]))
    else:
        with open(a.out, "w") as f:
            f.write("---\n".join(docs))


if __name__ == "__main__":
    main()
