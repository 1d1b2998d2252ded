//! Paths, hosts and templates: every line of the input through `PathMatch::parse` (each
//! `pathType`), `HostMatch::parse`, `Template::parse`, the proxy's request path
//! normalisation and a route lookup in a fixed table (exact, prefix, regex and wildcard
//! rules). Then, as one request through a `rewrite-target`: line 1 a path regex
//! (`PathRegex::new`), line 2 a template rendered with its captures, line 3 the request
//! path, line 4 the query, further lines `name: value` request headers.

#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sluice_config::{HostMatch, Hostname, PathMatch, PathRegex, RequestFacts, Snapshot, Template};
use sluice_proxy::fuzzing::routing_path;

/// Ingresses whose routes every fuzzed request is looked up in.
const ROUTES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain, namespace: default}
spec:
  defaultBackend: {service: {name: svc, port: {number: 80}}}
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
      - {path: /api/v1, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: svc, port: {number: 80}}}}
  - host: "*.wild.test"
    http:
      paths:
      - {path: /app, pathType: ImplementationSpecific, backend: {service: {name: svc, port: {number: 80}}}}
  - http:
      paths:
      - {path: /any, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: regex
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
spec:
  rules:
  - host: re.test
    http:
      paths:
      - {path: "/api(/|$)(.*)", pathType: ImplementationSpecific, backend: {service: {name: svc, port: {number: 80}}}}
      - {path: "/img/[a-z]+\\.(png|jpg)", pathType: ImplementationSpecific, backend: {service: {name: svc, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
"#;

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Arc<Snapshot>> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let (objects, diagnostics) = sluice_manifests::decode_documents(ROUTES, false).expect("routes");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let mut store = sluice_fuzz::base_store().clone();
        for object in objects {
            store.insert(object);
        }
        let snapshot = sluice_fuzz::translate_and_serve(&store);
        assert_eq!(snapshot.summary.rejected_ingresses, 0, "{:?}", snapshot.diagnostics);
        snapshot
    })
}

/// Each parser on one string.
fn one(text: &str) {
    for path_type in [None, Some("Exact"), Some("Prefix"), Some("ImplementationSpecific"), Some(text)] {
        if let Ok(path) = PathMatch::parse(Some(text), path_type) {
            let _ = (path.to_string(), path.len());
        }
    }
    if let Ok(host) = HostMatch::parse(Some(text)) {
        let _ = (host.to_string(), host.covers(&HostMatch::Any));
    }
    let _ = Hostname::parse(text);
    for captures in [false, true] {
        if let Ok(template) = Template::parse(text, captures) {
            assert_eq!(template.to_string(), text);
            let _ = template.literal();
        }
    }
    let normal = routing_path(text);
    if text.starts_with('/') {
        // What routing sees is a normal absolute path, and normalising it again changes nothing.
        assert!(normal.starts_with('/'), "{text:?} -> {normal:?}");
        assert!(!normal.contains("//"), "{text:?} -> {normal:?}");
        assert!(!normal.split('/').any(|s| s == "." || s == ".."), "{text:?} -> {normal:?}");
        assert_eq!(routing_path(&normal), normal, "{text:?}");
    }
    let routes = &snapshot().routes;
    for host in [Some(text), Some("a.test"), Some("x.wild.test"), Some("re.test"), None] {
        let _ = routes.route(host, &normal);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    for line in lines.iter().take(8) {
        one(line);
    }

    // One request through a rewrite: regex, template, path, query, headers.
    let line = |i: usize| lines.get(i).copied().unwrap_or("");
    let mut headers = HeaderMap::new();
    for header in lines.iter().skip(4).take(16) {
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value.trim())) {
            headers.append(name, value);
        }
    }
    let path = routing_path(line(2));
    let query = lines.get(3).copied().filter(|q| !q.is_empty());
    let request_uri = match query {
        Some(query) => format!("{}?{query}", line(2)),
        None => line(2).to_owned(),
    };
    let http_host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("a.test").to_owned();
    let facts = RequestFacts {
        method: "GET",
        scheme: "https",
        host: &http_host,
        http_host: &http_host,
        path: &path,
        query,
        request_uri: &request_uri,
        remote_addr: IpAddr::from([192, 0, 2, 1]),
        server_port: 443,
        headers: &headers,
    };
    let regex = PathRegex::new(line(0)).ok();
    let captures = regex.as_ref().and_then(|r| r.regex().captures(&path));
    for with_captures in [true, false] {
        if let Ok(template) = Template::parse(line(1), with_captures) {
            let mut out = String::new();
            template.render(&facts, captures.as_ref().filter(|_| with_captures), &mut out);
        }
    }
    let _ = sluice_config::cookie(&headers, line(0));
});
