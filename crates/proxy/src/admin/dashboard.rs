//! The live dashboard of the admin listener: the page (`/`, `/dashboard.js`,
//! `/dashboard.css`, embedded in the binary) and the JSON it polls, `/api/dashboard` (one page
//! of each table, filtered by `q`) and `/api/rates` (cumulative request counts per route).
//!
//! Tables are built once per snapshot and kept ([`DashboardCache`]); a request filters and
//! pages them, and adds what changes without a new snapshot: endpoint passive health,
//! announcement holders and BGP sessions, request counts.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use foldhash::HashMap;
use serde_json::{json, Value};
use sluice_config::{Diagnostic, FrontendMode, IpMode, Severity, Snapshot};

use super::AdminState;
use crate::config_view::rule;

/// The page.
pub(crate) const HTML: &str = include_str!("dashboard.html");
/// The page's script (a file of its own: the Content-Security-Policy allows no inline script).
pub(crate) const SCRIPT: &str = include_str!("dashboard.js");
/// The page's style sheet.
pub(crate) const STYLE: &str = include_str!("dashboard.css");

/// Rows per table page unless the query asks for another number.
const DEFAULT_LIMIT: usize = 50;
/// Most rows per table page.
const MAX_LIMIT: usize = 500;
/// The tables a query pages through, each with its own offset parameter.
const SECTIONS: [&str; 5] = ["routes", "backends", "addresses", "certificates", "diagnostics"];

/// The dashboard's tables of the snapshot served last, rebuilt when another one is served.
#[derive(Debug, Default)]
pub struct DashboardCache(Mutex<Option<Arc<Tables>>>);

/// One table row: its JSON and the lower-cased text the search box matches.
#[derive(Debug)]
struct Row {
    text: String,
    value: Value,
    /// For a backend row, the index of its backend in the snapshot (to add health).
    backend: Option<usize>,
}

impl Row {
    fn new(value: Value) -> Self {
        Self { text: value.to_string().to_lowercase(), value, backend: None }
    }
}

/// The rows of one snapshot.
#[derive(Debug)]
struct Tables {
    generation: u64,
    snapshot: usize,
    routes: Vec<Row>,
    backends: Vec<Row>,
    certificates: Vec<Row>,
    diagnostics: Vec<Row>,
}

impl DashboardCache {
    fn tables(&self, snapshot: &Arc<Snapshot>) -> Arc<Tables> {
        let identity = Arc::as_ptr(snapshot) as usize;
        let current = |tables: &&Arc<Tables>| tables.generation == snapshot.generation && tables.snapshot == identity;
        if let Some(tables) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(current) {
            return tables.clone();
        }
        // Built outside the lock: a slow build never holds up another poll's answer.
        let tables = Arc::new(Tables {
            generation: snapshot.generation,
            snapshot: identity,
            routes: route_rows(snapshot),
            backends: backend_rows(snapshot),
            certificates: certificate_rows(snapshot),
            diagnostics: diagnostic_rows(snapshot),
        });
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tables.clone());
        tables
    }
}

/// What `/api/dashboard` was asked: a search text and per table the first row to show.
#[derive(Debug, Default)]
struct Query {
    search: String,
    limit: usize,
    offsets: HashMap<String, usize>,
}

fn parse_query(raw: Option<&str>) -> Query {
    let mut query = Query { limit: DEFAULT_LIMIT, ..Query::default() };
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "q" => query.search = value.trim().to_lowercase(),
            "limit" => query.limit = value.parse().unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
            section if SECTIONS.contains(&section) => {
                query.offsets.insert(section.to_owned(), value.parse().unwrap_or(0));
            }
            _ => {}
        }
    }
    query
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One page of `rows`: `{total, matched, offset, limit, items}`; `fill` makes each item.
fn page(rows: &[Row], query: &Query, section: &str, mut fill: impl FnMut(&Row) -> Value) -> Value {
    let offset = query.offsets.get(section).copied().unwrap_or(0);
    let mut matched = 0;
    let mut items = Vec::new();
    for row in rows.iter().filter(|row| query.search.is_empty() || row.text.contains(&query.search)) {
        if matched >= offset && items.len() < query.limit {
            items.push(fill(row));
        }
        matched += 1;
    }
    json!({ "total": rows.len(), "matched": matched, "offset": offset, "limit": query.limit, "items": items })
}

/// `GET /api/dashboard?q=TEXT&limit=N&routes=OFFSET&backends=OFFSET&…`: one page of each
/// table, the request counts of the routes on the page, the announcer's node and BGP peers.
pub(crate) fn document(state: &AdminState, raw_query: Option<&str>) -> Value {
    let query = parse_query(raw_query);
    let snapshot = state.snapshot.load_full();
    let tables = state.dashboard.tables(&snapshot);
    let live = state.announcements.as_ref().map_or(Value::Null, |live| (live.0)());
    let addresses = address_rows(&snapshot, &live);

    let mut labels = BTreeSet::new();
    let routes = page(&tables.routes, &query, "routes", |row| {
        let sources = row.value["rules"].as_array().into_iter().flatten();
        labels.extend(sources.filter_map(|rule| rule["source"].as_str().map(str::to_owned)));
        row.value.clone()
    });
    let mut counts = serde_json::Map::new();
    for (route, by_class) in counts_by_route(state) {
        if labels.contains(&*route) {
            counts.insert(route.to_string(), class_counts(&by_class));
        }
    }
    let backends = page(&tables.backends, &query, "backends", |row| with_health(&snapshot, row));
    json!({
        "generation": snapshot.generation,
        "summary": snapshot.summary,
        "now": UNIX_EPOCH.elapsed().map_or(0, |d| d.as_secs()),
        "query": query.search,
        "node": live["node"],
        "live_nodes": live["live_nodes"],
        "bgp_peers": live["bgp_peers"],
        "counts": counts,
        "routes": routes,
        "backends": backends,
        "addresses": page(&addresses, &query, "addresses", |row| row.value.clone()),
        "certificates": page(&tables.certificates, &query, "certificates", |row| row.value.clone()),
        "diagnostics": page(&tables.diagnostics, &query, "diagnostics", |row| row.value.clone()),
    })
}

/// `GET /api/rates`: the cumulative request count of every route by status class
/// (`{"time_ms": …, "routes": {"namespace/name": {"1xx": n, …, "total": n}}}`); a rate is
/// the difference between two polls.
pub(crate) fn rates(state: &AdminState) -> Value {
    let routes: serde_json::Map<String, Value> = counts_by_route(state)
        .into_iter()
        .map(|(route, by_class)| (route.to_string(), class_counts(&by_class)))
        .collect();
    json!({ "time_ms": UNIX_EPOCH.elapsed().map_or(0, |d| d.as_millis() as u64), "routes": routes })
}

/// Request counts summed over backends, per route label (the counts come sorted by route).
fn counts_by_route(state: &AdminState) -> Vec<(Arc<str>, [u64; 5])> {
    let mut out: Vec<(Arc<str>, [u64; 5])> = Vec::new();
    for count in state.metrics.request_counts() {
        match out.last_mut() {
            Some((route, sums)) if *route == count.route => {
                sums.iter_mut().zip(count.by_class).for_each(|(sum, n)| *sum += n);
            }
            _ => out.push((count.route, count.by_class)),
        }
    }
    out
}

fn class_counts(by_class: &[u64; 5]) -> Value {
    json!({
        "1xx": by_class[0], "2xx": by_class[1], "3xx": by_class[2], "4xx": by_class[3], "5xx": by_class[4],
        "total": by_class.iter().sum::<u64>(),
    })
}

/// Ingress routes (host, path, match, owner, rules), then every Gateway listener's matches.
fn route_rows(snapshot: &Snapshot) -> Vec<Row> {
    let mut rows: Vec<Row> = snapshot
        .routes
        .entries()
        .into_iter()
        .map(|entry| {
            let owner = &entry.routes.owner;
            Row::new(json!({
                "kind": "Ingress",
                "owner": format!("{}/{}", owner.namespace, owner.name),
                "host": entry.host,
                "path": entry.path,
                "match": entry.match_type,
                "rules": entry.routes.routes.iter().map(|route| rule(snapshot, route)).collect::<Vec<_>>(),
            }))
        })
        .collect();
    for (address, frontend) in snapshot.gateways.iter() {
        for listener in frontend.listeners() {
            for (host, matches) in listener.hosts.entries() {
                for m in matches.rules() {
                    let (kind, path) = m.path.describe();
                    rows.push(Row::new(json!({
                        "kind": "Gateway",
                        "owner": m.route.label.as_ref(),
                        "gateway": format!("{}/{}", frontend.gateway.namespace, frontend.gateway.name),
                        "listener": listener.name.as_ref(),
                        "address": address.to_string(),
                        "host": host.to_string(),
                        "path": path,
                        "match": kind,
                        "rules": [rule(snapshot, &m.route)],
                    })));
                }
            }
        }
    }
    rows
}

/// Every backend a route uses, with its ready endpoints, sorted by label.
fn backend_rows(snapshot: &Snapshot) -> Vec<Row> {
    let mut rows: Vec<Row> = snapshot
        .backends
        .iter()
        .enumerate()
        .filter_map(|(index, backend)| {
            let backend = backend.as_ref()?;
            let mut row = Row::new(json!({
                "backend": backend.label.as_ref(),
                "service": backend.service.to_string(),
                "protocol": backend.protocol(),
                "endpoints": backend.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }));
            row.backend = Some(index);
            Some(row)
        })
        .collect();
    rows.sort_by(|a, b| a.value["backend"].as_str().cmp(&b.value["backend"].as_str()));
    rows
}

/// A backend row with each endpoint's passive health now: `{address, down}`.
fn with_health(snapshot: &Snapshot, row: &Row) -> Value {
    let mut value = row.value.clone();
    let backend = row.backend.and_then(|index| snapshot.backends.get(index)).and_then(Option::as_ref);
    if let Some(backend) = backend {
        let endpoints: Vec<Value> = backend
            .endpoints
            .iter()
            .zip(backend.endpoints_down())
            .map(|(endpoint, down)| json!({ "address": endpoint.to_string(), "down": down }))
            .collect();
        value["endpoints"] = Value::Array(endpoints);
    }
    value
}

/// Certificates by SNI (with the expiry of the leaf served), then the automatic-HTTPS
/// certificates (Secret, names, expiry of what the Secret holds now).
fn certificate_rows(snapshot: &Snapshot) -> Vec<Row> {
    let mut expiries: HashMap<usize, Option<i64>> = HashMap::default();
    let mut rows: Vec<Row> = snapshot
        .certificates
        .entries_with_keys()
        .into_iter()
        .map(|(sni, owner, key)| {
            let not_after = *expiries.entry(Arc::as_ptr(key) as usize).or_insert_with(|| {
                let leaf = key.cert.first()?;
                let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
                Some(parsed.validity().not_after.timestamp())
            });
            Row::new(json!({ "kind": "SNI", "names": [sni], "owner": owner.to_string(), "not_after": not_after }))
        })
        .collect();
    for managed in &snapshot.acme.certificates {
        let current = managed.current.as_ref();
        let not_after = current.and_then(|c| c.not_after.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs());
        rows.push(Row::new(json!({
            "kind": "ACME",
            "names": managed.names,
            "owner": managed.secret.to_string(),
            "requested_by": managed.requested_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "not_after": not_after,
        })));
    }
    rows
}

fn diagnostic_rows(snapshot: &Snapshot) -> Vec<Row> {
    let severity = |d: &Diagnostic| match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let row = |d: &Diagnostic| {
        Row::new(
            json!({ "severity": severity(d), "subject": d.subject.to_string(), "field": d.field, "reason": d.reason }),
        )
    };
    snapshot.diagnostics.iter().map(row).collect()
}

/// Every LoadBalancer Service and Gateway address: its ports, pool and how it is announced
/// (the L2 holder and interfaces, the BGP peers that carry its prefix), from the snapshot
/// and the announcer's live status.
fn address_rows(snapshot: &Snapshot, live: &Value) -> Vec<Row> {
    let l2: HashMap<&str, &Value> = live["l2"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| Some((entry["address"].as_str()?, entry)))
        .collect();
    let peers = live["bgp_peers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut rows = Vec::new();
    for (object, ips) in &snapshot.l4.addresses {
        let mode = snapshot.l4.ip_modes.get(object).copied().unwrap_or(IpMode::Vip);
        for ip in ips {
            let mut ports: Vec<String> = snapshot
                .l4
                .listeners
                .values()
                .filter(|l| l.address.ip() == *ip)
                .map(|l| {
                    let protocol = serde_json::to_value(l.protocol).unwrap_or_default();
                    format!("{} {}", protocol.as_str().unwrap_or("?"), l.address.port())
                })
                .collect();
            // A Gateway's ports are its listeners' (served by the L7 frontends, not by L4).
            ports.extend(snapshot.gateways.iter().filter(|(address, _)| address.ip() == *ip).map(
                |(address, frontend)| {
                    let protocol = match frontend.mode {
                        FrontendMode::Http => "HTTP",
                        FrontendMode::Https(_) => "HTTPS",
                        FrontendMode::TlsPassthrough | FrontendMode::TlsTerminate(_) => "TLS",
                    };
                    format!("{protocol} {}", address.port())
                },
            ));
            let announcement = snapshot.l4.announcements.addresses.get(ip);
            let prefixes: Vec<String> =
                announcement.map(|a| a.bgp.iter().map(|b| b.prefix.to_string()).collect()).unwrap_or_default();
            let bgp: Vec<Value> = peers
                .iter()
                .filter(|peer| {
                    let mut announced = peer["announced"].as_array().into_iter().flatten().filter_map(Value::as_str);
                    announced.any(|p| prefixes.iter().any(|mine| mine == p))
                })
                .map(|peer| json!({ "peer": peer["name"], "address": peer["address"], "state": peer["state"] }))
                .collect();
            let held = l2.get(ip.to_string().as_str());
            rows.push(Row::new(json!({
                "address": ip.to_string(),
                "family": if matches!(ip, IpAddr::V4(_)) { "IPv4" } else { "IPv6" },
                "object": object.to_string(),
                "ip_mode": mode.as_str(),
                "ports": ports,
                "pool": announcement.map(|a| a.pool.clone()),
                "l2_holder": held.map_or(Value::Null, |h| h["holder"].clone()),
                "l2_interfaces": held.map_or(Value::Null, |h| h["interfaces"].clone()),
                "bgp_prefixes": prefixes,
                "bgp": bgp,
            })));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_and_bounded() {
        let query = parse_query(Some("q=Host-1%2E%41+b&limit=100000&routes=50&other=1&backends=x"));
        assert_eq!(query.search, "host-1.a b");
        assert_eq!(query.limit, MAX_LIMIT);
        assert_eq!(query.offsets.get("routes"), Some(&50));
        assert_eq!(query.offsets.get("backends"), Some(&0));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(parse_query(None).limit, DEFAULT_LIMIT);
    }

    #[test]
    fn pages_count_every_match_and_return_one_page() {
        let rows: Vec<Row> = (0..120).map(|i| Row::new(json!({ "host": format!("h{i}.example") }))).collect();
        let query = parse_query(Some("routes=100"));
        let one = page(&rows, &query, "routes", |row| row.value.clone());
        assert_eq!((one["total"].as_u64(), one["matched"].as_u64()), (Some(120), Some(120)));
        assert_eq!(one["items"].as_array().map(Vec::len), Some(20));
        let query = parse_query(Some("q=H7.EXAMPLE"));
        let found = page(&rows, &query, "routes", |row| row.value.clone());
        assert_eq!(found["matched"].as_u64(), Some(1));
        assert_eq!(found["items"][0]["host"], "h7.example");
    }

    #[test]
    fn the_page_and_its_assets_reference_nothing_outside() {
        for text in [HTML, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"), "external reference");
            assert!(!text.contains("innerHTML") && !text.contains("outerHTML"), "markup built from strings");
        }
        assert!(!HTML.contains("<script>") && !HTML.contains("style="), "no inline script or style");
    }
}
