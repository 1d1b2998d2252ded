"""Kubernetes manifests and nginx configurations for the reload benchmark.

Sluice layout: one file per application, `app-NNNNN.yaml`, holding three documents
(Ingress `app-NNNNN` with host `hNNNNN.bench.test` -> Service `app-NNNNN` port 80 ->
EndpointSlice `app-NNNNN-1` with K endpoints). nginx layout: one file per application,
`servers/app-NNNNN.conf`, holding the equivalent `upstream` and `server` blocks.
"""
import os

NS = "default"


def host_of(i):
    return f"h{i:05d}.bench.test"


def ingress(name, hosts, service, paths=("/",), annotations=None):
    ann = ""
    if annotations:
        ann = "  annotations:\n" + "".join(f'    {k}: "{v}"\n' for k, v in annotations.items())
    rules = ""
    for host in hosts:
        rules += f"  - host: {host}\n    http:\n      paths:\n"
        for path in paths:
            rules += (
                f"      - path: {path}\n        pathType: Prefix\n"
                f"        backend: {{service: {{name: {service}, port: {{number: 80}}}}}}\n"
            )
    return (
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        f"metadata:\n  name: {name}\n  namespace: {NS}\n{ann}"
        "spec:\n  ingressClassName: sluice\n  rules:\n" + rules
    )


def service(name):
    return (
        "apiVersion: v1\nkind: Service\n"
        f"metadata: {{name: {name}, namespace: {NS}}}\n"
        "spec:\n  ports: [{port: 80}]\n"
    )


def endpoint_slice(service_name, port, addresses, suffix="1"):
    eps = "".join(f'  - addresses: ["{a}"]\n    conditions: {{ready: true}}\n' for a in addresses)
    return (
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        f"metadata:\n  name: {service_name}-{suffix}\n  namespace: {NS}\n"
        f"  labels: {{kubernetes.io/service-name: {service_name}}}\n"
        f"addressType: IPv4\nports: [{{port: {port}}}]\nendpoints:\n{eps}"
    )


def app_file(name, hosts, port, addresses):
    """Ingress + Service + EndpointSlice of one application, as one multi-document file."""
    return "---\n".join([ingress(name, hosts, name), service(name), endpoint_slice(name, port, addresses)])


def loopback_addresses(k):
    """k distinct loopback addresses 127.0.0.1 ... 127.0.0.k (all on `lo`)."""
    return [f"127.0.0.{j}" for j in range(1, k + 1)]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def gen_sluice(directory, count, port, endpoints):
    os.makedirs(directory, exist_ok=True)
    addrs = loopback_addresses(endpoints)
    for i in range(count):
        name = f"app-{i:05d}"
        write(os.path.join(directory, f"{name}.yaml"), app_file(name, [host_of(i)], port, addrs))


# --------------------------------------------------------------------------- nginx


def nginx_main_conf(prefix, listen_port, workers=2):
    p = prefix
    return f"""daemon off;
master_process on;
worker_processes {workers};
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    keepalive_timeout 75s;
    keepalive_requests 100000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    # What Sluice answers for an unknown host: 404.
    server {{
        listen 127.0.0.1:{listen_port} default_server reuseport;
        return 404;
    }}
    include {p}/servers/*.conf;
}}
"""


def nginx_app(name, hosts, listen_port, port, addresses, extra_locations=()):
    # keepalive 2: idle upstream connections are cached per upstream block and per worker, so
    # with 10,000 upstreams a larger cache runs out of worker_connections under random traffic.
    ups = "".join(f"    server {a}:{port};\n" for a in addresses)
    locs = "".join(f"    location {l} {{ proxy_pass http://{name}; }}\n" for l in extra_locations)
    return (
        f"upstream {name} {{\n{ups}    keepalive 2;\n}}\n"
        f"server {{\n    listen 127.0.0.1:{listen_port};\n    server_name {' '.join(hosts)};\n"
        f"    location / {{ proxy_pass http://{name}; }}\n{locs}}}\n"
    )


def gen_nginx(prefix, count, listen_port, port, endpoints, workers=2):
    os.makedirs(os.path.join(prefix, "servers"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    write(os.path.join(prefix, "nginx.conf"), nginx_main_conf(prefix, listen_port, workers))
    addrs = loopback_addresses(endpoints)
    for i in range(count):
        name = f"app-{i:05d}"
        write(os.path.join(prefix, "servers", f"{name}.conf"),
              nginx_app(name.replace("-", "_"), [host_of(i)], listen_port, port, addrs))
