//! `sluice status` and `sluice routes`: what a running Sluice serves, read from its admin
//! listener and printed as tables.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::cli::StatusArgs;

/// Entry point of `sluice status`.
pub fn main(args: &StatusArgs) -> ExitCode {
    show(args, "/status", status_table)
}

/// Entry point of `sluice routes`.
pub fn routes(args: &StatusArgs) -> ExitCode {
    show(args, "/config", routes_table)
}

fn show(args: &StatusArgs, path: &str, table: fn(&Value) -> String) -> ExitCode {
    match fetch(args, path) {
        Ok(document) if args.json => {
            println!("{document}");
            ExitCode::SUCCESS
        }
        Ok(document) => {
            print!("{}", table(&document));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sluice status`'s table for the Sluice whose admin listener is `admin` (for the demo).
pub fn table(admin: std::net::SocketAddr) -> Result<String, String> {
    let args = StatusArgs { admin, json: false };
    fetch(&args, "/status").map(|document| status_table(&document))
}

fn fetch(args: &StatusArgs, path: &str) -> Result<Value, String> {
    let fail = |e: std::io::Error| format!("cannot reach the admin listener at {}: {e}", args.admin);
    let mut stream = TcpStream::connect_timeout(&args.admin, Duration::from_secs(5)).map_err(fail)?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(fail)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", args.admin).map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("admin listener answered: {}", head.lines().next().unwrap_or_default()));
    }
    serde_json::from_str(body).map_err(|e| format!("malformed /status document: {e}"))
}

/// One row per resource: kind, namespace/name, addresses.
fn status_table(document: &Value) -> String {
    let mut rows = vec![["KIND", "NAMESPACE/NAME", "ADDRESSES", "CONDITIONS"].map(str::to_owned).to_vec()];
    for (kind, list) in [("Service", "services"), ("Ingress", "ingresses")] {
        for item in items(&document[list]) {
            let name = format!("{}/{}", text(&item["namespace"]), text(&item["name"]));
            let addresses: Vec<&str> = items(&item["loadBalancer"]["ingress"])
                .iter()
                .filter_map(|a| a["ip"].as_str().or_else(|| a["hostname"].as_str()))
                .collect();
            let addresses = if addresses.is_empty() { "<pending>".to_owned() } else { addresses.join(",") };
            rows.push(vec![kind.to_owned(), name, addresses, String::new()]);
        }
    }
    for (kind, list) in sluice_proxy::GATEWAY_KINDS {
        for item in items(&document[list]) {
            let name = match text(&item["namespace"]) {
                namespace if namespace.is_empty() => text(&item["name"]),
                namespace => format!("{namespace}/{}", text(&item["name"])),
            };
            let status = &item["status"];
            let addresses: Vec<String> = items(&status["addresses"]).iter().map(|a| text(&a["value"])).collect();
            let addresses = match (kind, addresses.is_empty()) {
                ("Gateway", true) => "<pending>".to_owned(),
                _ => addresses.join(","),
            };
            let entries = match items(&status["parents"]) {
                [] => items(&status["ancestors"]),
                parents => parents,
            };
            let conditions = match entries {
                [] => conditions(&status["conditions"]),
                parents => parents
                    .iter()
                    .map(|p| {
                        let parent = if p["parentRef"].is_null() { &p["ancestorRef"] } else { &p["parentRef"] };
                        let section = parent["sectionName"].as_str().map(|s| format!("#{s}")).unwrap_or_default();
                        let gateway = format!("{}/{}{section}", text(&parent["namespace"]), text(&parent["name"]));
                        format!("{gateway}: {}", conditions(&p["conditions"]))
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            rows.push(vec![kind.to_owned(), name, addresses, conditions]);
        }
    }
    let mut out = columns(&rows);
    out.push_str(&announcements_table(&document["announcements"]));
    out
}

/// Who holds each L2-announced address and where this replica answers for it; the BGP
/// sessions of this replica with what they announce.
fn announcements_table(announcements: &Value) -> String {
    let mut out = String::new();
    let l2 = items(&announcements["l2"]);
    if !l2.is_empty() {
        let mut rows = vec![["ADDRESS", "L2 HOLDER", "ANSWERED HERE ON"].map(str::to_owned).to_vec()];
        for entry in l2 {
            let holder = entry["holder"].as_str().unwrap_or("<none>").to_owned();
            let here = strings(&entry["interfaces"]).join(",");
            rows.push(vec![text(&entry["address"]), holder, if here.is_empty() { "-".into() } else { here }]);
        }
        out.push_str(&format!(
            "\nnode {} (live: {})\n",
            text(&announcements["node"]),
            strings(&announcements["live_nodes"]).join(",")
        ));
        out.push_str(&columns(&rows));
    }
    let peers = items(&announcements["bgp_peers"]);
    if !peers.is_empty() {
        let mut rows = vec![["BGP PEER", "ADDRESS", "STATE", "ANNOUNCED", "LAST ERROR"].map(str::to_owned).to_vec()];
        for peer in peers {
            let cells = ["name", "address", "state"].map(|k| text(&peer[k]));
            let announced = strings(&peer["announced"]).join(",");
            rows.push(cells.into_iter().chain([announced, text(&peer["last_error"])]).collect());
        }
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    out
}

/// `Accepted,Programmed` for conditions that hold; `ResolvedRefs=False(BackendNotFound)`
/// for those that do not (`Conflicted` holds when it is true, so it shows only then).
fn conditions(list: &Value) -> String {
    items(list)
        .iter()
        .filter_map(|c| {
            let (kind, status, reason) = (text(&c["type"]), text(&c["status"]), text(&c["reason"]));
            match (kind.as_str(), status.as_str()) {
                ("Conflicted", "False") => None,
                (_, "True") if kind != "Conflicted" => Some(kind),
                _ => Some(format!("{kind}={status}({reason})")),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One row per route: host, path, match, Ingress, backend, endpoints; then L4 listeners,
/// certificates, TLS passthrough and diagnostics.
fn routes_table(document: &Value) -> String {
    let mut rows = vec![["HOST", "PATH", "MATCH", "INGRESS", "BACKEND", "ENDPOINTS"].map(str::to_owned).to_vec()];
    for route in items(&document["routes"]) {
        let endpoints = strings(&route["endpoints"]);
        let endpoints = if endpoints.is_empty() { "<none: 503>".to_owned() } else { endpoints.join(",") };
        let cells = ["host", "path", "match", "ingress", "backend"].map(|k| text(&route[k]));
        rows.push(cells.into_iter().chain([endpoints]).collect());
    }
    let mut out = format!("generation {}\n", document["generation"]);
    out.push_str(&columns(&rows));
    let l4 = items(&document["l4"]);
    if !l4.is_empty() {
        let mut rows = vec![["ADDRESS", "PROTOCOL", "SERVICE", "ENDPOINTS"].map(str::to_owned).to_vec()];
        for l in l4 {
            let cells = ["address", "protocol", "service"].map(|k| text(&l[k]));
            rows.push(cells.into_iter().chain([strings(&l["endpoints"]).join(",")]).collect());
        }
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    let certificates = items(&document["certificates"]);
    if !certificates.is_empty() {
        let mut rows = vec![["SNI", "INGRESS"].map(str::to_owned).to_vec()];
        rows.extend(certificates.iter().map(|c| vec![text(&c["sni"]), text(&c["ingress"])]));
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    let passthrough = items(&document["passthrough"]);
    if !passthrough.is_empty() {
        let mut rows = vec![["PASSTHROUGH SNI", "INGRESS", "BACKEND", "ENDPOINTS"].map(str::to_owned).to_vec()];
        for p in passthrough {
            let cells = ["sni", "ingress", "backend"].map(|k| text(&p[k]));
            rows.push(cells.into_iter().chain([strings(&p["endpoints"]).join(",")]).collect());
        }
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    let gateway = items(&document["gateway_routes"]);
    if !gateway.is_empty() {
        let header = ["ADDRESS", "LISTENER", "HOST", "PATH", "MATCH", "ROUTE", "BACKEND"];
        let mut rows = vec![header.map(str::to_owned).to_vec()];
        for g in gateway {
            let backend = items(&g["rule"]["action"]["backends"])
                .iter()
                .map(|b| format!("{}*{}", b["backend"].as_str().unwrap_or("<500>"), b["weight"]))
                .collect::<Vec<_>>()
                .join(",");
            let backend = match (&g["rule"]["action"]["redirect"], &g["rule"]["action"]["fail"]) {
                (Value::String(to), _) => format!("redirect {to}"),
                (_, Value::Number(code)) => format!("answer {code}"),
                _ => backend,
            };
            let cells = ["address", "listener", "host", "path", "match"].map(|k| text(&g[k]));
            rows.push(cells.into_iter().chain([text(&g["rule"]["source"]), backend]).collect());
        }
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    for diagnostic in strings(&document["diagnostics"]) {
        out.push_str(&format!("problem: {diagnostic}\n"));
    }
    out
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("").to_owned()
}

fn strings(value: &Value) -> Vec<String> {
    items(value).iter().map(text).collect()
}

/// Left-aligned columns, two spaces apart.
fn columns(rows: &[Vec<String>]) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..count).map(|i| rows.iter().map(|r| r.get(i).map_or(0, String::len)).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::announcements_table;
    use serde_json::json;

    #[test]
    fn announcements_show_holders_and_bgp_sessions() {
        let document = json!({
            "node": "node-a",
            "live_nodes": ["node-a", "node-b"],
            "l2": [{"address": "198.18.0.10", "holder": "node-b", "interfaces": []},
                   {"address": "198.18.0.11", "holder": "node-a", "interfaces": ["eth0"]}],
            "bgp_peers": [{"name": "metallb-system/r1", "address": "198.18.0.1", "state": "Established",
                           "announced": ["198.18.0.10/32"], "last_error": null}]
        });
        let table = announcements_table(&document);
        assert!(table.contains("node node-a (live: node-a,node-b)"), "{table}");
        assert!(
            table.lines().any(|l| l.contains("198.18.0.11") && l.contains("node-a") && l.contains("eth0")),
            "{table}"
        );
        assert!(table
            .lines()
            .any(|l| l.contains("metallb-system/r1") && l.contains("Established") && l.contains("198.18.0.10/32")));
        assert_eq!(announcements_table(&serde_json::Value::Null), "");
    }
}
