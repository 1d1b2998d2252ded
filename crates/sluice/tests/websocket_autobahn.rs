//! WebSocket correctness through Sluice: the Autobahn TestSuite's case files (517 cases, run
//! by `kosoku`, installed by scripts/deps into .tools/) against a WebSocket echo server
//! directly and through Sluice; Sluice may add no failure beyond the server's own.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn kosoku() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/kosoku");
    assert!(path.exists(), "kosoku missing at {}: run scripts/deps", path.display());
    path
}

/// Runs every case against `target`; returns the cases that did not pass, with their verdicts.
fn run_suite(target: SocketAddr, out: &Path) -> BTreeSet<String> {
    let output =
        Command::new(kosoku()).args(["-p", "4", "-o"]).arg(out).arg(target.to_string()).output().expect("run kosoku");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("wrote reports for 517 cases"), "kosoku did not run the suite:\n{text}");
    text.lines()
        .map(str::trim)
        .filter(|line| {
            line.split(':').next().is_some_and(|id| id.split('.').count() == 3 && id.starts_with(char::is_numeric))
        })
        .filter(|line| line.contains("behavior="))
        .map(|line| line.split(" — ").next().unwrap_or(line).to_owned())
        .collect()
}

#[test]
fn autobahn_cases_through_sluice_fail_no_more_than_against_the_server() {
    let mut fx = Fixture::new("autobahn");
    let echo = fx.backend("ws");
    fx.ingress(&Ingress::new("ws").default_backend("ws"));
    let sluice = fx.start(&[]);
    let direct = run_suite(echo, &fx.dir.path().join("direct"));
    let proxied = run_suite(sluice.http, &fx.dir.path().join("proxied"));
    let added: Vec<&String> = proxied.difference(&direct).collect();
    eprintln!("not passed: {} against the server, {} through Sluice", direct.len(), proxied.len());
    assert!(added.is_empty(), "failures Sluice adds:\n{added:#?}");
}
