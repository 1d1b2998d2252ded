//! The Gateway API conformance suite replayed against a real `sluice run`.
//!
//! The upstream suite (kubernetes-sigs/gateway-api `conformance/`) needs a cluster; its data
//! is in `shared/conformance/gateway-api/` (CI has `shared/` beside the repository):
//! `base/manifests.yaml`, `tests/*.yaml` and `expected-responses.json`, every
//! `ExpectedResponse` literal of the Go tests. This harness gives each upstream test
//! (`table.rs`: its manifests, `Features`, which Gateway and listener it sends to, the status
//! conditions it asserts) its own Sluice, on the base manifests plus the test's files plus
//! what a cluster would add (our GatewayClass, the Secrets and ConfigMaps the suite creates
//! in code, EndpointSlices) and a stand-in for every echo-basic pod (`fixture.rs`): a
//! `sluice echo` process for its HTTP server, in-process servers (`backends.rs`) for its
//! HTTPS port, gRPC, TCP and UDP servers and CoreDNS. Then:
//!
//! 1. waits until `/status` lists the Gateways and routes the test reads;
//! 2. checks the status conditions the Go test asserts (`status.rs`), retried for a few
//!    seconds as the suite polls;
//! 3. sends every literal of the test's Go file to the Gateway's address (from `/status`)
//!    and the listener's port with a real client — HTTP/1.1, HTTP/2, HTTPS (`client.rs`),
//!    gRPC with tonic (`grpc.rs`), raw TCP, TLS and UDP (`l4.rs`) — compared as upstream's
//!    utilities compare (`cases.rs`, `grpc::compare`, `l4`); a literal passes after 3
//!    answers in a row match, within a few seconds, as `AwaitConvergence`. Literals run in
//!    line order, with the Go test's changes (`Mutation`s) and later status checks between
//!    them (`runner.rs`);
//! 4. runs the checks that are not literals (`extras.rs`: WebSocket, weighted distributions
//!    over HTTP, gRPC, TCP and UDP, mirrors, the oldest route's backend, DNS, TLS connection
//!    rejection).
//!
//! A test whose `Features` are not all in [`SUPPORTED_FEATURES`] (or [`TRIED_FEATURES`]) is
//! not run ("feature X not claimed"); nor is what the harness cannot do yet (ListenerSet,
//! mesh, patches at run time, BackendTLSPolicy status), each with its reason. The test fails
//! if any runnable case or status expectation of a test whose features are all claimed
//! fails, listing each with what was sent and seen; failures of tests of tried features are
//! reported without failing it.
//!
//! - `SLUICE_CONFORMANCE_ONLY=<substring>`: only the tests whose name or manifest file
//!   contains it (case-insensitive);
//! - `SLUICE_WRITE_CONFORMANCE=1`: also write the table to `docs/gateway-api-conformance.md`
//!   (full runs only).
//!
//! Run: `cargo test -p sluice --test gateway_conformance -- --nocapture`.
//!
//! Extending it: a feature Sluice starts claiming goes into [`SUPPORTED_FEATURES`]; a Go test
//! becomes runnable by giving its table entry targets (`table::Target`, with `table::Tls`
//! saying how TLS is spoken and trusted), the status checks it asserts (`status::Check`, any
//! route kind), and for what the Go code computes or checks besides literals, `table::Extra`
//! items (transcribed cases, `CaseTo` for one listener, `CheckAt` after a change, …), a
//! `Setup` (objects the Go test creates at run time) or `Mutation`s (objects it deletes).

mod common;

#[path = "gateway_conformance/backends.rs"]
mod backends;
#[path = "gateway_conformance/cases.rs"]
mod cases;
#[path = "gateway_conformance/client.rs"]
mod client;
#[path = "gateway_conformance/extras.rs"]
mod extras;
#[path = "gateway_conformance/fixture.rs"]
mod fixture;
#[path = "gateway_conformance/grpc.rs"]
mod grpc;
#[path = "gateway_conformance/kube.rs"]
mod kube;
#[path = "gateway_conformance/l4.rs"]
mod l4;
#[path = "gateway_conformance/plan.rs"]
mod plan;
#[path = "gateway_conformance/report.rs"]
mod report;
#[path = "gateway_conformance/runner.rs"]
mod runner;
#[path = "gateway_conformance/self_tests.rs"]
mod self_tests;
#[path = "gateway_conformance/status.rs"]
mod status;
#[path = "gateway_conformance/table.rs"]
mod table;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use cases::CaseKind;
use common::TempDir;
use fixture::Pod;
use plan::{plan, test_blocked, Outcome, Planned, Work};
use report::{counts, markdown, selected, unlisted_files};
use runner::{request_id, run_test, Shared, TestReport};
use table::UpstreamTest;

/// The conformance data, read at run time.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/gateway-api");
/// `expected-responses.json`.
pub const EXPECTED_RESPONSES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/gateway-api/expected-responses.json");
/// Where the report goes.
const REPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/gateway-api-conformance.md");

/// The features Sluice claims (upstream names without `Support`).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteCORS",
    "GatewayPort8080",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "GatewayHTTPListenerIsolation",
    "GatewayAddressEmpty",
    "GRPCRoute",
    "GRPCRouteRequestHeaderModifier",
    "GRPCRouteNamedRouteRule",
    "TCPRoute",
    "UDPRoute",
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "TLSRoute",
    "TLSRouteModeTerminate",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
];

/// Features whose tests run and are reported but are not claimed, because a case fails
/// through a bug of Sluice's (not the harness's): their failures are listed in the report
/// and do not fail the run.
pub const TRIED_FEATURES: &[(&str, &str)] = &[];

/// Whether every feature of `test` is claimed (its failures fail the run).
pub fn claimed(test: &UpstreamTest) -> bool {
    test.features.iter().all(|f| SUPPORTED_FEATURES.contains(f))
}

/// Tests run at once (each with its own Sluice, addresses and ports).
const WORKERS: usize = 3;
/// Longest wait for `/status` to list what a test reads.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long status expectations are polled.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a literal is retried before it fails (`MaxTimeToConsistency`, shortened: the
/// harness starts sending once `/status` shows the configuration applied).
const CASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Matching answers in a row for a literal to pass (`RequiredConsecutiveSuccesses`).
const REQUIRED_SUCCESSES: u32 = 3;
/// How long a mirror's log is searched for the copy (`RequestTimeout`).
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);
/// Base pods are at 127.77.0.N.
const BASE_POD_NET: [u8; 2] = [127, 77];

#[test]
fn gateway_api_conformance() {
    let text = std::fs::read_to_string(EXPECTED_RESPONSES).unwrap_or_else(|e| panic!("read {EXPECTED_RESPONSES}: {e}"));
    let all_cases = cases::load(&text).expect("expected-responses.json parses");
    let commit = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("commit").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let filter = std::env::var("SLUICE_CONFORMANCE_ONLY").ok().filter(|f| !f.is_empty());
    let tests: Vec<&'static UpstreamTest> = table::TESTS.iter().filter(|t| selected(t, filter.as_deref())).collect();
    assert!(!tests.is_empty(), "SLUICE_CONFORMANCE_ONLY={filter:?} selects no test");

    let plans: Vec<Vec<Planned>> = tests.iter().map(|t| plan(t, &all_cases)).collect();
    let to_run: Vec<usize> = (0..tests.len()).filter(|&i| test_blocked(tests[i]).is_none()).collect();

    let logs = TempDir::new("gwconf-pods");
    let base_path = Path::new(DATA).join("base/manifests.yaml");
    let base_text = std::fs::read_to_string(&base_path).expect("read base manifests");
    let mut base_docs = fixture::parse_yaml(&fixture::substitute(&base_text)).expect("base manifests parse");
    fixture::as_created(&mut base_docs);
    let mut n = 0u8;
    let base_pods = fixture::pods(&base_docs, || {
        n += 1;
        Ipv4Addr::new(BASE_POD_NET[0], BASE_POD_NET[1], 0, n)
    });
    let started = Instant::now();
    let programmatic = fixture::programmatic().expect("generate the suite's certificates");
    let (base_echoes, base_backends) = if to_run.is_empty() {
        (Vec::new(), None)
    } else {
        (
            fixture::start_echoes(&base_pods, logs.path()).expect("start the base pods' echo backends"),
            Some(backends::start(&base_pods, &programmatic).expect("start the base pods' other servers")),
        )
    };
    let shared = Shared {
        base_docs,
        base_pod_list: base_pods,
        base_pods: base_echoes,
        programmatic,
        log_dir: logs.path().to_path_buf(),
        _base_backends: base_backends,
    };

    let results: Mutex<BTreeMap<usize, TestReport>> = Mutex::new(BTreeMap::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(to_run.len()) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = to_run.get(k) else { break };
                let test = tests[i];
                let report =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_test(&shared, test, k, &plans[i])))
                        .unwrap_or_else(|panic| {
                            let msg = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_default();
                            TestReport {
                                test,
                                claimed: claimed(test),
                                items: plans[i]
                                    .iter()
                                    .map(|p| (p.label.clone(), Outcome::Failed(format!("harness panicked: {msg}"))))
                                    .collect(),
                                log_excerpt: String::new(),
                            }
                        });
                let (p, f, nr) = counts(&report.items);
                println!("{:<55} {p:>3} passed {f:>3} failed {nr:>3} not runnable", test.short_name);
                results.lock().unwrap_or_else(|e| e.into_inner()).insert(i, report);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let reports: Vec<TestReport> = (0..tests.len())
        .map(|i| {
            results.remove(&i).unwrap_or_else(|| {
                let why = test_blocked(tests[i]).unwrap_or_default();
                TestReport {
                    test: tests[i],
                    claimed: claimed(tests[i]),
                    items: plans[i].iter().map(|p| (p.label.clone(), Outcome::NotRunnable(why.clone()))).collect(),
                    log_excerpt: String::new(),
                }
            })
        })
        .collect();

    let extra_rows = if filter.is_none() { unlisted_files() } else { Vec::new() };
    let table = markdown(&reports, &extra_rows, &commit);
    println!("\n{table}");
    println!("(ran in {:.1?})", started.elapsed());
    if std::env::var("SLUICE_WRITE_CONFORMANCE").is_ok_and(|v| v == "1") {
        if filter.is_some() {
            println!("SLUICE_WRITE_CONFORMANCE ignored: SLUICE_CONFORMANCE_ONLY ran only part of the suite");
        } else {
            std::fs::write(REPORT, &table).unwrap_or_else(|e| panic!("write {REPORT}: {e}"));
            println!("wrote {REPORT}");
        }
    }

    let mut failures = Vec::new();
    for r in reports.iter().filter(|r| r.claimed) {
        let failed: Vec<(&str, &str)> = r
            .items
            .iter()
            .filter_map(|(label, o)| match o {
                Outcome::Failed(e) => Some((label.as_str(), e.as_str())),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            // When every failure has the same cause (Sluice never got ready), say it once.
            let lines = match failed.as_slice() {
                [(_, first), rest @ ..] if failed.len() > 1 && rest.iter().all(|(_, e)| e == first) => {
                    format!("  - all {} runnable items: {first}", failed.len())
                }
                _ => failed.iter().map(|(label, e)| format!("  - {label}\n      {e}")).collect::<Vec<_>>().join("\n"),
            };
            let mut block = format!("{} ({}):\n{lines}", r.test.short_name, r.test.manifests.join(", "));
            if !r.log_excerpt.is_empty() {
                block.push_str(&format!("\n  sluice warnings:\n    {}", r.log_excerpt.replace('\n', "\n    ")));
            }
            failures.push(block);
        }
    }
    drop(shared);
    assert!(failures.is_empty(), "Gateway API conformance failures:\n{}", failures.join("\n\n"));
}

// The harness's own tests are in `gateway_conformance/self_tests.rs`.

/// Every claimed test's status expectations once more, through the Kubernetes source: the
/// objects in a fake API server, `sluice run --kubernetes`, the checks reading the status
/// written back (tests that change objects while running are left to the main run).
#[test]
fn gateway_api_status_through_the_kubernetes_source() {
    let filter = std::env::var("SLUICE_CONFORMANCE_ONLY").ok().filter(|f| !f.is_empty());
    let tests: Vec<&'static UpstreamTest> = table::TESTS
        .iter()
        .filter(|t| selected(t, filter.as_deref()) && claimed(t) && test_blocked(t).is_none())
        .filter(|t| !t.checks.is_empty() && t.mutations.is_empty())
        .filter(|t| !t.setup.iter().any(|s| matches!(s, table::Setup::Create { .. })))
        .collect();
    if tests.is_empty() {
        return;
    }
    let base_path = Path::new(DATA).join("base/manifests.yaml");
    let base_text = std::fs::read_to_string(&base_path).expect("read base manifests");
    let mut base = fixture::parse_yaml(&fixture::substitute(&base_text)).expect("base manifests parse");
    fixture::as_created(&mut base);
    let programmatic = fixture::programmatic().expect("generate the suite's certificates");
    let mut generated = vec![fixture::gateway_class()];
    generated.extend(programmatic.objects.iter().cloned());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let passed = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(tests.len()) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(test) = tests.get(k) else { break };
                let results = kube::run(test, test.checks, &base, &generated, k);
                for (check, result) in test.checks.iter().zip(results) {
                    match result {
                        Ok(()) => {
                            passed.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => failures.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                            "{}: {} — {e}",
                            test.short_name,
                            check.label()
                        )),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    println!(
        "status through the Kubernetes source: {} tests, {} checks passed, {} failed",
        tests.len(),
        passed.load(Ordering::SeqCst),
        failures.len()
    );
    assert!(failures.is_empty(), "status written through the Kubernetes API:\n{}", failures.join("\n"));
}
