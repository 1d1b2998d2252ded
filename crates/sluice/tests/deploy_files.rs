//! The operator files in `deploy/` against a real Sluice: every metric the Grafana dashboard
//! (`deploy/grafana/sluice.json`) and the Prometheus alert rules
//! (`deploy/prometheus/rules.yaml`) query must be one `sluice run` serves on `/metrics`.
//!
//! One Sluice is started on manifests that make every metric family appear with samples
//! where traffic can cause them (HTTP requests answered 200, 404, 502 and 503; a TCP
//! connection and a UDP datagram relayed by a LoadBalancer Service on a loopback pool; a
//! `tls-acme` Ingress with an unreachable ACME directory). The PromQL expressions are read
//! from both files and every `sluice_*` name in them is checked against the scrape: a
//! counter must be queried with `_total`, a histogram through `_bucket`/`_sum`/`_count`, a
//! gauge by its name. `promtool check rules` (Debian's `prometheus` package, installed by
//! `scripts/deps`) then checks the rules file, and the dashboard's expressions turned into
//! recording rules, for PromQL syntax and template errors.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{endpoint_slice_yaml, free_addr, free_port, wait_until, yaml_docs, Fixture, Ingress, IO_TIMEOUT};

/// The cap on client connections, reached at the end to have one refused.
const MAX_CONNECTIONS: usize = 8;

/// The loopback pool of the LoadBalancer Service (no other test uses 127.0.133.0/24).
const POOL_ADDRESS: &str = "127.0.133.10";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A TCP echo server on 127.0.0.1 (a thread per connection, for the test's lifetime).
fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp echo");
    let addr = listener.local_addr().expect("tcp echo address");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A UDP echo server on 127.0.0.1.
fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp echo");
    let addr = socket.local_addr().expect("udp echo address");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

/// A LoadBalancer Service with a TCP and a UDP port `port`, and its EndpointSlice.
fn load_balancer_yaml(name: &str, port: u16, tcp_target: u16, udp_target: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  type: LoadBalancer
  ports:
  - {{name: tcp, port: {port}, protocol: TCP}}
  - {{name: udp, port: {port}, protocol: UDP}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports:
  - {{name: tcp, port: {tcp_target}, protocol: TCP}}
  - {{name: udp, port: {udp_target}, protocol: UDP}}
endpoints:
  - addresses: [127.0.0.1]
    conditions: {{ready: true}}
"
    )
}

/// The metric names a scrape allows in queries: per `# TYPE` family, the series names its
/// type gives (counter `_total`, histogram `_bucket`/`_sum`/`_count`, others the name), plus
/// every sample name seen. Also returns the family names (for prose, not queries).
fn series_names(scrape: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut series = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
            families.insert(name.to_owned());
            match kind {
                "counter" => {
                    series.insert(format!("{name}_total"));
                    series.insert(format!("{name}_created"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count", "_created"] {
                        series.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    series.insert(name.to_owned());
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            series.insert(line[..end].to_owned());
        }
    }
    (series, families)
}

/// The `sluice_*` identifiers in a PromQL expression (or prose), outside double-quoted strings.
fn sluice_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if ident(b) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &text[start..i];
            if word.starts_with("sluice_") {
                names.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every string under the keys `keys` anywhere in `value`, and in `{"query": ...}` objects
/// under them.
fn strings_under(value: &serde_json::Value, keys: &[&str], out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                if keys.contains(&key.as_str()) {
                    match child {
                        serde_json::Value::String(s) => out.push(s.clone()),
                        serde_json::Value::Object(inner) => {
                            if let Some(serde_json::Value::String(s)) = inner.get("query") {
                                out.push(s.clone());
                            }
                        }
                        _ => {}
                    }
                }
                strings_under(child, keys, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| strings_under(item, keys, out)),
        _ => {}
    }
}

/// The dashboard's panel queries (`targets[].expr`).
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    strings_under(&dashboard["panels"], &["expr"], &mut exprs);
    exprs
}

/// The rules file as JSON values.
fn rules() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/rules.yaml")).expect("read rules.yaml");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("deploy/prometheus/rules.yaml: {e}"))
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("deploy/grafana/sluice.json")).expect("read sluice.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("deploy/grafana/sluice.json: {e}"))
}

/// Every alerting rule of the rules file.
fn alert_rules(rules: &serde_json::Value) -> Vec<&serde_json::Value> {
    let groups = rules["groups"].as_array().expect("rules.yaml: groups");
    groups.iter().flat_map(|g| g["rules"].as_array().expect("rules.yaml: group without rules")).collect()
}

/// Starts Sluice with Ingresses, a LoadBalancer Service and ACME, sends traffic through
/// every part, and returns `/metrics`.
fn scrape_with_traffic() -> String {
    let mut fx = Fixture::new("deploy-files");
    fx.backend("shop");
    // A Service whose endpoint refuses connections (502), one without endpoints (503).
    let dead = free_port();
    fx.write_service("dead", None, None, dead, &["127.0.0.1".to_owned()], true);
    fx.write(
        "svc-empty.yaml",
        &yaml_docs(&[common::service_yaml("empty", None, None), endpoint_slice_yaml("empty", None, 3000, &[], true)]),
    );
    fx.ingress(&Ingress::new("shop").path(Some("shop.test"), "Prefix", "/", "shop"));
    fx.ingress(&Ingress::new("dead").path(Some("dead.test"), "Prefix", "/", "dead"));
    fx.ingress(&Ingress::new("empty").path(Some("empty.test"), "Prefix", "/", "empty"));
    fx.ingress(
        &Ingress::new("private")
            .annotation("nginx.ingress.kubernetes.io/allowlist-source-range", "203.0.113.0/24")
            .path(Some("private.test"), "Prefix", "/", "shop"),
    );
    fx.ingress(
        &Ingress::new("secure").annotation("kubernetes.io/tls-acme", "true").tls(&["secure.test"], "secure-tls").path(
            Some("secure.test"),
            "Prefix",
            "/",
            "shop",
        ),
    );
    let (tcp_target, udp_target) = (tcp_echo(), udp_echo());
    let lb_port = free_addr(POOL_ADDRESS).port();
    fx.write("lb.yaml", &load_balancer_yaml("relay", lb_port, tcp_target.port(), udp_target.port()));
    // A second tls-acme Ingress whose Secret Sluice already stored (as files under
    // --state-dir/acme/objects/): served without ordering, its expiry exported.
    fx.ingress(
        &Ingress::new("stored").annotation("kubernetes.io/tls-acme", "true").tls(&["stored.test"], "stored-tls").path(
            Some("stored.test"),
            "Prefix",
            "/",
            "shop",
        ),
    );
    let state = fx.dir.path().join("state");
    let cert = common::test_cert(&["stored.test"]);
    let stored = common::tls_secret_yaml("stored-tls", cert.cert_pem.as_bytes(), cert.key_pem.as_bytes());
    std::fs::create_dir_all(state.join("acme/objects")).expect("acme objects dir");
    std::fs::write(state.join("acme/objects/default_stored-tls.yaml"), stored).expect("stored Secret");
    // A BGP peer that refuses connections: the session exists and is down.
    fx.write(
        "bgp.yaml",
        &format!(
            "apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: 127.0.0.1, peerPort: {}}}
",
            free_port()
        ),
    );
    let state = state.display().to_string();
    let sluice = fx.start(&[
        "--lb-pool",
        &format!("{POOL_ADDRESS}/32"),
        "--state-dir",
        &state,
        "--acme-email",
        "x@y.test",
        "--acme-directory",
        "https://127.0.0.1:1/dir",
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
    ]);

    assert_eq!(sluice.get("shop.test", "/").status, 200);
    assert_eq!(sluice.get("dead.test", "/").status, 502);
    assert_eq!(sluice.get("empty.test", "/").status, 503);
    assert_eq!(sluice.get("nothing.test", "/").status, 404);
    assert_eq!(sluice.get("private.test", "/").status, 403);

    let lb: SocketAddr = format!("{POOL_ADDRESS}:{lb_port}").parse().expect("lb address");
    let mut tcp = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            tcp = TcpStream::connect_timeout(&lb, Duration::from_millis(500)).ok();
            tcp.is_some()
        }),
        "the LoadBalancer address {lb} does not accept TCP connections; log:\n{}",
        sluice.proc.log()
    );
    let mut tcp = tcp.expect("connected");
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.write_all(b"ping over tcp").expect("tcp write");
    let mut echoed = [0u8; 13];
    tcp.read_exact(&mut echoed).expect("tcp echo through the LoadBalancer address");
    assert_eq!(&echoed, b"ping over tcp");
    drop(tcp);

    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp client");
    udp.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let mut got = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let _ = udp.send_to(b"ping over udp", lb);
            let mut buf = [0u8; 64];
            got = udp.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec());
            got.is_some()
        }),
        "no UDP reply through {lb}; log:\n{}",
        sluice.proc.log()
    );
    assert_eq!(got.as_deref(), Some(&b"ping over udp"[..]));

    // Reloads: a file that does not parse (counted, kept failing), then an Ingress the
    // translation rejects (a relative Prefix path), which is a new snapshot.
    let generation = sluice.generation().expect("sluice_config_generation");
    fx.write("broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: [not, a, map\n");
    assert!(
        wait_until(Duration::from_secs(10), || {
            common::metric_value(&sluice.metrics(), "sluice_manifest_files_failing") == Some(1.0)
        }),
        "the broken file is not counted; log:\n{}",
        sluice.proc.log()
    );
    fx.ingress(&Ingress::new("rejected").path(Some("rejected.test"), "Prefix", "relative", "shop"));
    assert!(
        wait_until(Duration::from_secs(10), || sluice.generation().is_some_and(|g| g > generation)),
        "no reload after a new Ingress; log:\n{}",
        sluice.proc.log()
    );

    // Connections held open past --max-connections: the next ones are refused on accept.
    let mut held = Vec::new();
    let refused = wait_until(Duration::from_secs(10), || {
        if let Ok(stream) = TcpStream::connect(sluice.http) {
            held.push(stream);
        }
        sluice.metrics().contains("sluice_connections_refused_total{reason=\"total\"}")
    });
    assert!(refused, "{} connections held, none refused", held.len());
    drop(held);

    let mut metrics = String::new();
    // The byte counters of the closed TCP connection are added when the relay ends; the ACME
    // issuer and the BGP speaker work in the background.
    wait_until(Duration::from_secs(10), || {
        metrics = sluice.metrics();
        [
            "sluice_l4_bytes_total{service=\"default/relay\",port=\"",
            "sluice_acme_orders_total{",
            "sluice_acme_certificate_expiry_timestamp_seconds{",
            "sluice_bgp_session_up{",
        ]
        .iter()
        .all(|sample| metrics.contains(sample))
    });

    // A backend no route uses any more loses its series.
    std::fs::remove_file(fx.manifests().join("ingress-empty.yaml")).expect("remove an Ingress");
    let gone = wait_until(Duration::from_secs(10), || {
        !sluice.metrics().contains("sluice_backend_ready_endpoints{service=\"default/empty:8080\"}")
    });
    assert!(gone, "the series of a backend no route uses stays; log:\n{}", sluice.proc.log());
    metrics
}

/// Runs `promtool check rules FILE`, or says why it cannot.
fn promtool_check(file: &Path) -> Result<(), String> {
    let output = match Command::new("promtool").args(["check", "rules"]).arg(file).output() {
        Ok(output) => output,
        Err(e) => return Err(format!("promtool is not available ({e}); scripts/deps installs it (Debian prometheus)")),
    };
    assert!(
        output.status.success(),
        "promtool check rules {} failed:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
fn every_metric_in_the_dashboard_and_alert_rules_is_served() {
    let scrape = scrape_with_traffic();
    let (series, families) = series_names(&scrape);

    // Traffic made the families the dashboard is mostly about carry samples.
    for sample in [
        "sluice_http_requests_total{ingress=\"default/shop\"",
        "sluice_http_request_duration_seconds_count{ingress=\"default/dead\"}",
        "sluice_upstream_connect_errors_total{service=\"default/dead:",
        "sluice_backend_ready_endpoints{service=\"default/empty:8080\"} 0",
        "sluice_backend_ready_endpoints{service=\"default/shop:8080\"} 1",
        "sluice_manifest_files_failing 1",
        "sluice_reload_errors_total 1",
        "sluice_l4_connections_total{service=\"default/relay\",port=\"",
        "sluice_reload_duration_seconds_count",
    ] {
        assert!(scrape.contains(sample), "no `{sample}` in /metrics:\n{scrape}");
    }
    // The rejected Ingress (and the file that does not parse) are errors.
    let errors = common::metric_value(&scrape, "sluice_config_diagnostics{severity=\"error\"}");
    assert!(errors.is_some_and(|n| n >= 1.0), "error diagnostics: {errors:?}");
    for family in ["sluice_acme_certificate_expiry_timestamp_seconds", "sluice_bgp_session_up"] {
        assert!(families.contains(family), "no family {family} in /metrics:\n{scrape}");
    }
    assert!(
        scrape.contains(
            "sluice_acme_certificate_expiry_timestamp_seconds{secret=\"default/stored-tls\",host=\"stored.test\"}"
        ),
        "{scrape}"
    );
    assert!(scrape.contains("sluice_bgp_session_up{peer=\"metallb-system/router\"} 0"), "{scrape}");

    let mut queried: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let dashboard = dashboard();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "the dashboard has only {} queries", exprs.len());
    let mut variables = Vec::new();
    strings_under(&dashboard["templating"], &["query", "definition"], &mut variables);
    for (what, text) in
        exprs.iter().map(|e| ("dashboard", e)).chain(variables.iter().map(|v| ("dashboard variable", v)))
    {
        for name in sluice_names(text) {
            queried.entry(name).or_default().push(format!("{what}: {text}"));
        }
    }
    let rules = rules();
    let alerts = alert_rules(&rules);
    assert!(alerts.len() >= 6, "only {} alert rules", alerts.len());
    for rule in &alerts {
        let name = rule["alert"].as_str().expect("every rule is an alert");
        assert!(rule["for"].is_string(), "{name}: no `for:`");
        assert!(rule["labels"]["severity"].is_string(), "{name}: no severity label");
        assert!(rule["annotations"]["summary"].is_string(), "{name}: no summary");
        assert!(rule["annotations"]["description"].is_string(), "{name}: no description");
        let expr = rule["expr"].as_str().expect("expr");
        for metric in sluice_names(expr) {
            queried.entry(metric).or_default().push(format!("alert {name}: {expr}"));
        }
    }

    let unknown: Vec<String> = queried
        .iter()
        .filter(|(name, _)| !series.contains(*name))
        .map(|(name, uses)| format!("{name} (in {})", uses[0]))
        .collect();
    assert!(unknown.is_empty(), "metrics Sluice does not serve:\n{}\n\n/metrics:\n{scrape}", unknown.join("\n"));
    // What the issue asks the files to cover.
    for required in [
        "sluice_http_requests_total",
        "sluice_http_request_duration_seconds_bucket",
        "sluice_upstream_connect_errors_total",
        "sluice_backend_ready_endpoints",
        "sluice_l4_bytes_total",
        "sluice_l4_connections_total",
        "sluice_reload_duration_seconds_count",
        "sluice_reload_errors_total",
        "sluice_manifest_files_failing",
        "sluice_config_diagnostics",
        "sluice_acme_certificate_expiry_timestamp_seconds",
        "sluice_bgp_session_up",
    ] {
        assert!(queried.contains_key(required), "neither the dashboard nor the rules use {required}");
    }

    // Metric names in the prose (panel descriptions, alert annotations) exist too.
    let mut prose = Vec::new();
    strings_under(&dashboard["panels"], &["description"], &mut prose);
    for rule in &alerts {
        strings_under(&rule["annotations"], &["summary", "description"], &mut prose);
    }
    for text in &prose {
        for name in sluice_names(text) {
            assert!(series.contains(&name) || families.contains(&name), "{name} (in `{text}`) is not served");
        }
    }
    println!("{} metric names checked: {}", queried.len(), queried.keys().cloned().collect::<Vec<_>>().join(", "));
}

#[test]
fn promtool_accepts_the_rules_and_the_dashboard_queries() {
    let rules_file = repo_root().join("deploy/prometheus/rules.yaml");
    if let Err(reason) = promtool_check(&rules_file) {
        println!("SKIPPED promtool checks: {reason}");
        return;
    }
    // The dashboard's queries as recording rules, Grafana's variables given values, so
    // promtool parses each one.
    let rules: Vec<serde_json::Value> = dashboard_exprs(&dashboard())
        .iter()
        .enumerate()
        .map(|(i, expr)| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
                .replace("$ingress", ".*")
                .replace("$service", ".*");
            assert!(!expr.contains('$'), "a dashboard query uses an unknown variable: {expr}");
            serde_json::json!({ "record": format!("dashboard:query_{i}:expr"), "expr": expr })
        })
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    let dir = common::TempDir::new("deploy-files-promtool");
    let path = dir.write("dashboard-rules.yaml", &serde_json::to_string_pretty(&file).expect("json"));
    promtool_check(&path).expect("promtool ran a moment ago");
}

#[test]
fn the_tokenizer_finds_metric_names_outside_strings() {
    let names = sluice_names(
        "histogram_quantile(0.9, sum by (le) (rate(sluice_a_bucket{x=\"sluice_not\"}[5m]))) / sluice_b_total + xsluice_c",
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["sluice_a_bucket", "sluice_b_total"]);
    let (series, families) = series_names(
        "# HELP sluice_c C.\n# TYPE sluice_c counter\n# TYPE sluice_h histogram\nsluice_h_bucket{le=\"1\"} 0\n# TYPE sluice_g gauge\n",
    );
    assert!(series.contains("sluice_c_total") && !series.contains("sluice_c"));
    assert!(series.contains("sluice_h_count") && series.contains("sluice_g"));
    assert!(families.contains("sluice_h"));
}
