//! `sluice status`: the served addresses of a running Sluice, as a table.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::cli::StatusArgs;

/// Entry point of `sluice status`.
pub fn main(args: &StatusArgs) -> ExitCode {
    match fetch(args) {
        Ok(document) if args.json => {
            println!("{document}");
            ExitCode::SUCCESS
        }
        Ok(document) => {
            print!("{}", table(&document));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice status: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(args: &StatusArgs) -> Result<Value, String> {
    let fail =
        |e: std::io::Error| format!("cannot reach the admin listener at {}: {e}", args.admin);
    let mut stream =
        TcpStream::connect_timeout(&args.admin, Duration::from_secs(5)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    write!(
        stream,
        "GET /status HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.admin
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "admin listener answered: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("malformed /status document: {e}"))
}

/// One row per resource: kind, namespace/name, addresses.
fn table(document: &Value) -> String {
    let mut rows = vec![[
        "KIND".to_owned(),
        "NAMESPACE/NAME".to_owned(),
        "ADDRESSES".to_owned(),
    ]];
    for (kind, list) in [("Service", "services"), ("Ingress", "ingresses")] {
        for item in document[list]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = format!(
                "{}/{}",
                item["namespace"].as_str().unwrap_or(""),
                item["name"].as_str().unwrap_or("")
            );
            let addresses: Vec<&str> = item["loadBalancer"]["ingress"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|a| a["ip"].as_str().or_else(|| a["hostname"].as_str()))
                .collect();
            let addresses = if addresses.is_empty() {
                "<pending>".to_owned()
            } else {
                addresses.join(",")
            };
            rows.push([kind.to_owned(), name, addresses]);
        }
    }
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (w0, w1) = (width(0), width(1));
    rows.iter()
        .map(|[a, b, c]| format!("{a:w0$}  {b:w1$}  {c}\n"))
        .collect()
}
