//! The Gateway API conformance suite replayed against a real `sluice run`.
//!
//! The upstream suite (kubernetes-sigs/gateway-api `conformance/`) needs a cluster; its data
//! is in `shared/conformance/gateway-api/` (CI has `shared/` beside the repository):
//! `base/manifests.yaml`, `tests/*.yaml` and `expected-responses.json`, every
//! `ExpectedResponse` literal of the Go tests. This harness gives each upstream test
//! (`table.rs`: its manifests, `Features`, which Gateway and listener it sends to, the status
//! conditions it asserts) its own Sluice, on the base manifests plus the test's files plus
//! what a cluster would add (our GatewayClass, the Secrets and ConfigMaps the suite creates
//! in code, one `sluice echo` per pod standing in for echo-basic, EndpointSlices), then:
//!
//! 1. waits until `/status` lists the Gateways and routes the test reads;
//! 2. checks the status conditions the Go test asserts (`status.rs`), retried for a few
//!    seconds as the suite polls;
//! 3. sends every HTTP literal of the test's Go file to the Gateway's address (from
//!    `/status`) and the listener's port with a real client (`client.rs`), compared as
//!    `CompareRoundTrip` does (`cases.rs`); a literal passes after 3 answers in a row match,
//!    within a few seconds, as `AwaitConvergence`;
//! 4. runs the checks that are not literals (WebSocket, weighted distribution, mirrors).
//!
//! A test whose `Features` are not all in [`SUPPORTED_FEATURES`] is not run ("feature X not
//! claimed"); nor is what the harness cannot do yet (gRPC, raw TLS/TCP/UDP, ListenerSet,
//! mesh, patches at run time), each with its reason. The test fails if any runnable case or
//! status expectation of a test whose features are all claimed fails, listing each with what
//! was sent and seen.
//!
//! - `SLUICE_CONFORMANCE_ONLY=<substring>`: only the tests whose name or manifest file
//!   contains it (case-insensitive);
//! - `SLUICE_WRITE_CONFORMANCE=1`: also write the table to `docs/gateway-api-conformance.md`
//!   (full runs only).
//!
//! Run: `cargo test -p sluice --test gateway_conformance -- --nocapture`.
//!
//! Extending it: a feature Sluice starts claiming goes into [`SUPPORTED_FEATURES`]. The
//! gRPC, TCP and UDP literals are already read (`cases::CaseKind`), the pods of echo-basic's
//! gRPC/TCP/UDP servers already have addresses and EndpointSlices (`fixture::BackendKind`,
//! not started), and route status checks take any route kind (`status::RouteKind`): adding
//! one means a client for the kind in `client.rs`, starting those pods, and turning the
//! table's `blocked` reason into targets and checks. TLS passthrough and terminate cases
//! reach a listener with `table::Tls` and the suite's certificates (`fixture::programmatic`).

mod common;

#[path = "gateway_conformance/cases.rs"]
mod cases;
#[path = "gateway_conformance/client.rs"]
mod client;
#[path = "gateway_conformance/fixture.rs"]
mod fixture;
#[path = "gateway_conformance/status.rs"]
mod status;
#[path = "gateway_conformance/table.rs"]
mod table;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use cases::{Case, CaseKind, HttpCase};
use common::{exchange, http_request, replace_by_rename, Sluice, TempDir};
use fixture::{EchoPod, Pod};
use status::Check;
use table::{Extra, Mutation, Setup, Target, Tls, UpstreamTest};

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
];

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

// ---------------------------------------------------------------------------
// Plan: what each test consists of
// ---------------------------------------------------------------------------

/// What one item of a test does.
#[derive(Clone, Debug)]
enum Work {
    /// An HTTP literal sent to one target.
    Case { case: Box<HttpCase>, line: u32, target: Target },
    /// A status expectation.
    Check(Check),
    /// A check that is not a literal.
    Extra(Extra),
    /// The mirrored share of a literal with `Percent` mirrors.
    MirrorDistribution { case: Box<HttpCase>, target: Target },
}

/// One item of a test: a label, and the work or why it cannot be done.
#[derive(Clone, Debug)]
struct Planned {
    label: String,
    work: Result<Work, String>,
}

/// How an item ended.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Passed,
    Failed(String),
    NotRunnable(String),
}

/// Why a whole test does not run: a feature not claimed, or what the harness lacks.
fn test_blocked(test: &UpstreamTest) -> Option<String> {
    let missing: Vec<&str> = test.features.iter().copied().filter(|f| !SUPPORTED_FEATURES.contains(f)).collect();
    if !missing.is_empty() {
        let s = if missing.len() > 1 { "s" } else { "" };
        return Some(format!("feature{s} {} not claimed", missing.join(", ")));
    }
    test.blocked.map(|b| format!("needs {b}"))
}

fn request_label(case: &HttpCase) -> String {
    let host = if case.request.host.is_empty() { String::new() } else { format!(" Host {}", case.request.host) };
    format!("{} {}{host}", case.request.method, case.request.path)
}

fn target_label(target: &Target) -> String {
    let listener = target.listener.map(|l| format!("#{l}")).unwrap_or_default();
    let scheme = if target.tls == Tls::Plain { "" } else { " (TLS)" };
    format!("{}{listener}{scheme}", target.gateway)
}

/// The items of `test`: its literals (one per target), status checks and extras.
fn plan(test: &UpstreamTest, cases: &[Case]) -> Vec<Planned> {
    let mut items = Vec::new();
    let targets_for = |line: u32| -> &'static [Target] {
        test.overrides.iter().find(|(sel, _)| sel.matches(line)).map(|(_, t)| *t).unwrap_or(test.targets)
    };
    let transcribed: Vec<u32> = test
        .extras
        .iter()
        .filter_map(|e| match e {
            Extra::Case { line, .. } => Some(*line),
            _ => None,
        })
        .collect();
    let mut literals: Vec<&Case> =
        cases.iter().filter(|c| c.file == test.go_file && !transcribed.contains(&c.line)).collect();
    literals.sort_by_key(|c| c.line);
    for case in literals {
        let label = case.label();
        let reason = match case.kind {
            Some(CaseKind::Http) => None,
            Some(CaseKind::Grpc) => Some("needs a gRPC client".to_owned()),
            Some(CaseKind::Tcp) => Some("needs a raw TCP/TLS client".to_owned()),
            Some(CaseKind::Udp) => Some("needs a UDP client".to_owned()),
            None => Some("unknown ExpectedResponse kind".to_owned()),
        };
        let reason = reason.or_else(|| {
            test.not_runnable.iter().find(|(sel, _)| sel.matches(case.line)).map(|(_, why)| (*why).to_owned())
        });
        let http = match (&reason, &case.http) {
            (Some(why), _) => Err(why.clone()),
            (None, Err(e)) => Err(e.clone()),
            (None, Ok(http)) => Ok(http),
        };
        let http = http.and_then(|h| {
            if !h.request.client_cert.is_empty() || !h.request.sni.is_empty() {
                Err("needs TLS echo backends (SNI / client certificate seen by the backend)".to_owned())
            } else {
                Ok(h)
            }
        });
        match http {
            Err(why) => items.push(Planned { label, work: Err(why) }),
            Ok(h) => {
                let targets = targets_for(case.line);
                if targets.is_empty() {
                    items.push(Planned {
                        label: label.clone(),
                        work: Err("no Gateway recorded for this literal".to_owned()),
                    });
                }
                for target in targets {
                    items.push(Planned {
                        label: format!("{label} → {}", target_label(target)),
                        work: Ok(Work::Case { case: Box::new(h.clone()), line: case.line, target: *target }),
                    });
                }
            }
        }
    }
    for (i, extra) in test.extras.iter().enumerate() {
        match extra {
            Extra::Case { line, case } => {
                let label = format!("{}:{line}[{i}]", test.go_file);
                let parsed = serde_json::from_str::<Value>(case)
                    .map_err(|e| format!("transcribed case: {e}"))
                    .and_then(|v| cases::parse_http(&v));
                match parsed {
                    Err(e) => items.push(Planned { label, work: Err(e) }),
                    Ok(h) => {
                        for target in targets_for(*line) {
                            items.push(Planned {
                                label: format!("{label} {} → {}", request_label(&h), target_label(target)),
                                work: Ok(Work::Case { case: Box::new(h.clone()), line: *line, target: *target }),
                            });
                        }
                    }
                }
            }
            Extra::MirrorDistribution { target } => {
                for case in cases.iter().filter(|c| c.file == test.go_file) {
                    if let Ok(h) = &case.http {
                        if h.mirrored_to.iter().any(|m| m.percent.is_some()) {
                            items.push(Planned {
                                label: format!(
                                    "{}:{} mirrored share of 500 requests to {} via {}",
                                    case.file,
                                    case.line,
                                    h.request.path,
                                    target_label(target)
                                ),
                                work: Ok(Work::MirrorDistribution { case: Box::new(h.clone()), target: *target }),
                            });
                        }
                    }
                }
            }
            Extra::Missing { what, why } => {
                items.push(Planned { label: (*what).to_owned(), work: Err((*why).to_owned()) })
            }
            Extra::WebSocket { target, path } => items.push(Planned {
                label: format!("WebSocket echo via ws://{}{path}", target_label(target)),
                work: Ok(Work::Extra(*extra)),
            }),
            Extra::Weights { target, .. } => items.push(Planned {
                label: format!("weighted distribution of 500 requests via {}", target_label(target)),
                work: Ok(Work::Extra(*extra)),
            }),
            Extra::BackendHeaderNamesPod { target, requests } => items.push(Planned {
                label: format!("{requests} requests via {}: the Backend header names the pod", target_label(target)),
                work: Ok(Work::Extra(*extra)),
            }),
        }
    }
    let mut checks = vec![Check::ClassAccepted];
    checks.extend_from_slice(test.checks);
    for check in checks {
        items.push(Planned { label: format!("status: {}", check.label()), work: Ok(Work::Check(check)) });
    }
    items
}

// ---------------------------------------------------------------------------
// Running one test
// ---------------------------------------------------------------------------

/// What every test shares: the base manifests, their pods (running once for the whole
/// run), the suite's certificates and the cases.
struct Shared {
    base_docs: Vec<Value>,
    /// Every pod of the base Deployments (those running echo-basic's HTTP server run).
    base_pod_list: Vec<Pod>,
    base_pods: Vec<EchoPod>,
    programmatic: fixture::Programmatic,
    log_dir: PathBuf,
}

/// The report of one test.
struct TestReport {
    test: &'static UpstreamTest,
    /// Whether every feature it needs is claimed (its failures fail the run).
    claimed: bool,
    items: Vec<(String, Outcome)>,
    /// Sluice's warnings and errors, for a test with failures.
    log_excerpt: String,
}

/// A running test: Sluice, its manifests, its pods.
struct Running<'a> {
    shared: &'a Shared,
    sluice: Sluice,
    dir: PathBuf,
    /// The test's own documents per manifest file (mutations rewrite them).
    test_files: Vec<(String, Vec<Value>)>,
    all_docs: Vec<Value>,
    test_pods: Vec<EchoPod>,
    _work: TempDir,
}

impl Running<'_> {
    fn status(&self) -> Result<Value, String> {
        let admin = self.sluice.admin;
        let resp = exchange(admin, &http_request("GET", &admin.to_string(), "/status", &[], b""))
            .map_err(|e| format!("GET /status: {e}"))?;
        if resp.status != 200 {
            return Err(format!("GET /status: status {}", resp.status));
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("GET /status: {e}"))
    }

    fn pods(&self) -> impl Iterator<Item = &EchoPod> {
        self.shared.base_pods.iter().chain(self.test_pods.iter())
    }

    /// The listener port of a target, from the Gateway's spec.
    fn port(&self, target: &Target) -> Result<u16, String> {
        let (ns, name) = status::split_name(target.gateway);
        let gateway = self
            .all_docs
            .iter()
            .find(|d| fixture::identity(d) == ("Gateway", ns, name))
            .ok_or_else(|| format!("no Gateway {ns}/{name} in the manifests"))?;
        let listeners = gateway.pointer("/spec/listeners").and_then(Value::as_array).cloned().unwrap_or_default();
        let chosen = target
            .listener
            .and_then(|n| listeners.iter().find(|l| l.get("name").and_then(Value::as_str) == Some(n)))
            .or_else(|| listeners.first())
            .ok_or_else(|| format!("Gateway {ns}/{name} has no listener"))?;
        chosen
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("Gateway {ns}/{name}: listener without port"))
    }

    /// How to reach a target for a request with `host`.
    fn endpoint(&self, target: &Target, host: &str, doc: &Value) -> Result<client::Endpoint, String> {
        let ip = status::gateway_address(doc, target.gateway)?;
        let ip: std::net::IpAddr = ip.parse().map_err(|e| format!("Gateway address {ip:?}: {e}"))?;
        let addr = SocketAddr::new(ip, self.port(target)?);
        let der = self.shared.programmatic.validity_cert_der.clone();
        let tls = match target.tls {
            Tls::Plain => None,
            Tls::ServerName(name) => Some((name.to_owned(), der)),
            Tls::HostIsServerName => Some((host.split(':').next().unwrap_or(host).to_owned(), der)),
        };
        Ok(client::Endpoint { addr, tls })
    }

    /// Deletes an object from the written manifests.
    fn apply(&mut self, mutation: &Mutation) -> Result<(), String> {
        let Mutation::Delete { kind, namespace, name } = *mutation;
        let mut found = false;
        for (file, docs) in &mut self.test_files {
            let before = docs.len();
            docs.retain(|d| fixture::identity(d) != (kind, namespace, name));
            if docs.len() != before {
                found = true;
                replace_by_rename(&self.dir.join(file.as_str()), &fixture::yaml_stream(docs));
            }
        }
        self.all_docs.retain(|d| fixture::identity(d) != (kind, namespace, name));
        if found {
            Ok(())
        } else {
            Err(format!("no {kind} {namespace}/{name} to delete"))
        }
    }
}

/// A short random id (the suite uses UUIDs).
fn request_id() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mixed = nanos ^ ((COUNTER.fetch_add(1, Ordering::SeqCst) as u128) << 64) ^ u128::from(std::process::id());
    format!("{:032x}", mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// Starts Sluice on `dir` with its own address pool; retried if a port was taken.
fn start_sluice(dir: &Path, log_dir: &Path, index: usize) -> Result<Sluice, String> {
    let pool = format!("127.{}.0.0/24", 100 + index);
    let state = dir.join("state");
    let manifests = dir.join("manifests");
    let args = [
        "--manifests",
        &manifests.display().to_string(),
        "--lb-pool",
        &pool,
        "--state-dir",
        &state.display().to_string(),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut last = String::new();
    for _ in 0..3 {
        let mut sluice = Sluice::spawn_with(log_dir, &args, &[]);
        match sluice.wait_ready() {
            Ok(()) => return Ok(sluice),
            Err(e) if e.contains("in use") => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Sets up, starts and runs one test.
fn run_test(shared: &Shared, test: &'static UpstreamTest, index: usize, planned: &[Planned]) -> TestReport {
    let mut report = TestReport { test, claimed: true, items: Vec::new(), log_excerpt: String::new() };
    let fail_all = |report: &mut TestReport, why: &str| {
        for p in planned {
            let outcome = match &p.work {
                Ok(_) => Outcome::Failed(why.to_owned()),
                Err(reason) => Outcome::NotRunnable(reason.clone()),
            };
            report.items.push((p.label.clone(), outcome));
        }
    };
    let mut running = match prepare(shared, test, index) {
        Ok(r) => r,
        Err(e) => {
            fail_all(&mut report, &format!("setup: {e}"));
            return report;
        }
    };
    match wait_listed(&running, test, planned) {
        Ok(()) => {}
        Err(e) => {
            fail_all(&mut report, &e);
            report.log_excerpt = log_excerpt(&running.sluice);
            return report;
        }
    }
    // Status expectations first, polled together until they hold or time runs out.
    let checks: Vec<(usize, Check)> = planned
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.work {
            Ok(Work::Check(c)) => Some((i, *c)),
            _ => None,
        })
        .collect();
    let cx = status::Context { controller: fixture::CONTROLLER, class: fixture::CLASS, generation: 1 };
    let mut check_results: BTreeMap<usize, Result<(), String>> = BTreeMap::new();
    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        let doc = running.status();
        for (i, check) in &checks {
            let result = doc.as_ref().map_err(Clone::clone).and_then(|d| status::evaluate(check, d, &cx));
            check_results.insert(*i, result);
        }
        if check_results.values().all(Result::is_ok) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Then the literals in line order, mutations applied before the line they precede.
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    let mut order: Vec<(u32, usize)> = planned
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.work {
            Ok(Work::Case { line, .. }) => Some((*line, i)),
            _ => None,
        })
        .collect();
    order.sort();
    let mut applied = vec![false; test.mutations.len()];
    for (line, i) in order {
        for (m, (before, mutation)) in test.mutations.iter().enumerate() {
            if !applied[m] && line >= *before {
                applied[m] = true;
                if let Err(e) = running.apply(mutation) {
                    outcomes.insert(i, Outcome::Failed(format!("mutation: {e}")));
                }
            }
        }
        if outcomes.contains_key(&i) {
            continue;
        }
        if let Ok(Work::Case { case, target, .. }) = &planned[i].work {
            let outcome = match run_case(&running, case, target) {
                Ok(()) => Outcome::Passed,
                Err(e) => Outcome::Failed(e),
            };
            outcomes.insert(i, outcome);
        }
    }
    for (i, p) in planned.iter().enumerate() {
        let outcome = match &p.work {
            Err(reason) => Outcome::NotRunnable(reason.clone()),
            Ok(Work::Check(_)) => match check_results.remove(&i) {
                Some(Ok(())) => Outcome::Passed,
                Some(Err(e)) => Outcome::Failed(e),
                None => Outcome::Failed("not evaluated".to_owned()),
            },
            Ok(Work::Case { .. }) => outcomes.remove(&i).unwrap_or(Outcome::Failed("not run".to_owned())),
            Ok(Work::Extra(extra)) => match run_extra(&running, extra) {
                Ok(()) => Outcome::Passed,
                Err(e) => Outcome::Failed(e),
            },
            Ok(Work::MirrorDistribution { case, target }) => match mirror_distribution(&running, case, target) {
                Ok(()) => Outcome::Passed,
                Err(e) => Outcome::Failed(e),
            },
        };
        report.items.push((p.label.clone(), outcome));
    }
    if report.items.iter().any(|(_, o)| matches!(o, Outcome::Failed(_))) {
        report.log_excerpt = log_excerpt(&running.sluice);
    }
    report
}

/// Sluice's warning and error lines (at most 20).
fn log_excerpt(sluice: &Sluice) -> String {
    let log = sluice.proc.log();
    let lines: Vec<&str> =
        log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked")).take(20).collect();
    lines.join("\n")
}

/// Writes the test's manifests, starts its own pods and Sluice.
fn prepare<'a>(shared: &'a Shared, test: &'static UpstreamTest, index: usize) -> Result<Running<'a>, String> {
    let work = TempDir::new(&format!("gwconf-{}", test.short_name.to_ascii_lowercase()));
    let dir = work.path().to_path_buf();
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).map_err(|e| format!("create {}: {e}", manifests.display()))?;
    let mut test_files = Vec::new();
    for file in test.manifests {
        let path = Path::new(DATA).join("tests").join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let mut docs = fixture::parse_yaml(&fixture::substitute(&text)).map_err(|e| format!("{file}: {e}"))?;
        fixture::as_created(&mut docs);
        test_files.push((format!("manifests/10-{file}"), docs));
    }
    let test_docs: Vec<Value> = test_files.iter().flat_map(|(_, d)| d.iter().cloned()).collect();
    let mut n = 0u8;
    let test_pod_list = fixture::pods(&test_docs, || {
        n = n.wrapping_add(1);
        Ipv4Addr::new(127, (100 + index) as u8, 1, n)
    });
    let test_pods = fixture::start_echoes(&test_pod_list, &shared.log_dir)?;
    let every_pod: Vec<Pod> = shared.base_pod_list.iter().cloned().chain(test_pod_list).collect();
    for setup in test.setup {
        let Setup::FillSlices { namespace, prefixes, deployment } = *setup;
        for (_, docs) in &mut test_files {
            fixture::fill_slices(docs, namespace, prefixes, deployment, &every_pod);
        }
    }
    let mut all_docs = shared.base_docs.clone();
    all_docs.extend(test_files.iter().flat_map(|(_, d)| d.iter().cloned()));
    let mut generated = vec![fixture::gateway_class()];
    generated.extend(shared.programmatic.objects.iter().cloned());
    generated.extend(fixture::endpoint_slices(&all_docs, &every_pod));
    fixture::write_docs(&manifests, "00-base.yaml", &shared.base_docs)?;
    for (file, docs) in &test_files {
        fixture::write_docs(&dir, file, docs)?;
    }
    fixture::write_docs(&manifests, "20-generated.yaml", &generated)?;
    all_docs.extend(generated);
    let sluice = start_sluice(&dir, &dir, index)?;
    Ok(Running { shared, sluice, dir, test_files, all_docs, test_pods, _work: work })
}

/// Waits until `/status` lists every Gateway and route the test reads; fails fast when it
/// has no Gateway API lists at all.
fn wait_listed(running: &Running<'_>, test: &UpstreamTest, planned: &[Planned]) -> Result<(), String> {
    let mut gateways: Vec<&str> =
        test.targets.iter().chain(test.overrides.iter().flat_map(|(_, t)| t.iter())).map(|t| t.gateway).collect();
    let mut routes = Vec::new();
    for p in planned {
        if let Ok(Work::Check(c)) = &p.work {
            gateways.extend(c.gateways());
            routes.extend(c.routes());
        }
    }
    let start = Instant::now();
    let mut last = String::from("no answer");
    while start.elapsed() < READY_TIMEOUT {
        match running.status() {
            Ok(doc) if doc.get("gateways").is_none() && start.elapsed() > Duration::from_secs(1) => {
                return Err("Sluice's /status has no `gateways` list: Gateway API status is not served".to_owned());
            }
            Ok(doc) => {
                let missing_gateway = gateways.iter().find_map(|g| {
                    let (ns, name) = status::split_name(g);
                    status::find(&doc, "gateways", ns, name).err()
                });
                let missing_route = routes.iter().find_map(|(kind, r)| {
                    let (ns, name) = status::split_name(r);
                    status::find(&doc, kind.list(), ns, name).err()
                });
                match missing_gateway.or(missing_route) {
                    None => return Ok(()),
                    Some(e) => last = e,
                }
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("not listed in /status within {READY_TIMEOUT:?}: {last}"))
}

/// One literal, retried until `REQUIRED_SUCCESSES` answers in a row match.
fn run_case(running: &Running<'_>, case: &HttpCase, target: &Target) -> Result<(), String> {
    let mut case = case.clone();
    let mirrors: Vec<_> = case.mirrored_to.iter().filter(|m| m.percent.is_none()).cloned().collect();
    if !case.mirrored_to.is_empty() {
        cases::add_request_id(&mut case, &request_id());
    }
    let deadline = Instant::now() + CASE_TIMEOUT;
    let hard_deadline = deadline + Duration::from_secs(20);
    let mut successes = 0;
    loop {
        let attempt =
            running.status().and_then(|doc| running.endpoint(target, &case.request.host, &doc)).and_then(|ep| {
                let (sent, got) = client::round_trip(&ep, &case)
                    .map_err(|e| format!("request failed: {e} (sent {})", describe_sent(&ep, &case)))?;
                cases::compare(&case, &sent, &got)
                    .map_err(|e| format!("{e} [sent {}] [seen {}]", describe_sent(&ep, &case), describe_seen(&got)))
            });
        match attempt {
            Ok(()) => {
                successes += 1;
                if successes >= REQUIRED_SUCCESSES {
                    break;
                }
                if Instant::now() > hard_deadline {
                    return Err(format!("only {successes} matching answers in a row before the time ran out"));
                }
                continue;
            }
            Err(e) => {
                successes = 0;
                if Instant::now() > deadline {
                    return Err(e);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for mirror in mirrors {
        let ns = if mirror.namespace.is_empty() { status::INFRA } else { mirror.namespace.as_str() };
        expect_mirrored(running, ns, &mirror.name, &case.request.path)?;
    }
    Ok(())
}

/// Waits until a pod of Service `ns/name` logged the mirrored request (`ExpectMirroredRequest`).
fn expect_mirrored(running: &Running<'_>, ns: &str, name: &str, path: &str) -> Result<(), String> {
    let logs = service_logs(running, ns, name)?;
    let deadline = Instant::now() + MIRROR_TIMEOUT;
    while Instant::now() < deadline {
        if logged(&logs, path) > 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("no pod of mirror {ns}/{name} logged {path:?} within {MIRROR_TIMEOUT:?}"))
}

fn describe_sent(ep: &client::Endpoint, case: &HttpCase) -> String {
    let host = if case.request.host.is_empty() { ep.url_host() } else { case.request.host.clone() };
    let mut s = format!("{} {}://{}{} Host {host}", case.request.method, ep.scheme(), ep.addr, case.request.path);
    if let Some((name, _)) = &ep.tls {
        s.push_str(&format!(" SNI {name}"));
    }
    if let Some(headers) = &case.request.headers {
        s.push_str(&format!(" headers {headers:?}"));
    }
    if !case.request.protocol.is_empty() {
        s.push_str(&format!(" as {}", case.request.protocol));
    }
    s
}

fn describe_seen(got: &cases::Captured) -> String {
    let mut s = format!("status {} {}", got.status, got.protocol);
    if let Some(r) = &got.redirect {
        s.push_str(&format!(" Location {}://{}:{}{}", r.scheme, r.host, r.port, r.path));
    }
    let req = &got.request;
    if !req.pod.is_empty() {
        s.push_str(&format!(
            "; backend {} ({}) saw {} {} Host {} headers {:?}",
            req.pod,
            req.namespace,
            req.method,
            req.path,
            req.host,
            req.headers.clone().unwrap_or_default()
        ));
    }
    s
}

/// A plain `GET /` expecting 200 from namespace `gateway-conformance-infra`, as the weight
/// and backend-header checks send.
fn plain_get(jitter: Option<String>) -> Result<HttpCase, String> {
    let mut v =
        serde_json::json!({"Request": {"Path": "/"}, "Response": {"StatusCode": 200}, "Namespace": status::INFRA});
    if let Some(j) = jitter {
        v["Request"]["Headers"] = serde_json::json!({"X-Jitter": j});
    }
    cases::parse_http(&v)
}

/// The checks that are not literals.
fn run_extra(running: &Running<'_>, extra: &Extra) -> Result<(), String> {
    match extra {
        Extra::Case { .. } | Extra::Missing { .. } | Extra::MirrorDistribution { .. } => {
            Err("not an extra check".to_owned())
        }
        Extra::WebSocket { target, path } => {
            let deadline = Instant::now() + CASE_TIMEOUT;
            loop {
                let result = running
                    .status()
                    .and_then(|doc| running.endpoint(target, "", &doc))
                    .and_then(|ep| websocket_echo(ep.addr, &ep.url_host(), path));
                match result {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        Extra::Weights { target, weights } => {
            let ep = running.status().and_then(|doc| running.endpoint(target, "", &doc))?;
            let mut last = String::new();
            for _ in 0..3 {
                match weighted_distribution(&ep, weights) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Extra::BackendHeaderNamesPod { target, requests } => {
            let ep = running.status().and_then(|doc| running.endpoint(target, "", &doc))?;
            let case = plain_get(None)?;
            for i in 0..*requests {
                let (sent, got) = client::round_trip(&ep, &case)?;
                cases::compare(&case, &sent, &got).map_err(|e| format!("request {i}: {e}"))?;
                let backends: Vec<String> = got
                    .request
                    .headers
                    .as_ref()
                    .and_then(|h| h.iter().find(|(n, _)| n.eq_ignore_ascii_case("Backend")).map(|(_, v)| v.clone()))
                    .unwrap_or_default();
                let [backend] = backends.as_slice() else {
                    return Err(format!("request {i}: expected a single Backend header, got {backends:?}"));
                };
                if !got.request.pod.starts_with(backend.as_str()) {
                    return Err(format!("request {i}: Backend {backend} but pod {}", got.request.pod));
                }
            }
            Ok(())
        }
    }
}

/// The echo logs of the pods of Service `ns/name`.
fn service_logs(running: &Running<'_>, ns: &str, name: &str) -> Result<Vec<PathBuf>, String> {
    let service = running
        .all_docs
        .iter()
        .find(|d| fixture::identity(d) == ("Service", ns, name))
        .ok_or_else(|| format!("Service {ns}/{name} not in the manifests"))?;
    let selector = service.pointer("/spec/selector").and_then(Value::as_object).cloned().unwrap_or_default();
    let logs: Vec<PathBuf> = running
        .pods()
        .filter(|e| {
            e.pod.namespace == ns && selector.iter().all(|(k, v)| e.pod.labels.get(k).map(String::as_str) == v.as_str())
        })
        .map(|e| e.log.clone())
        .collect();
    if logs.is_empty() {
        Err(format!("Service {ns}/{name} has no running echo pod"))
    } else {
        Ok(logs)
    }
}

/// How many requests with this target the logs hold.
fn logged(logs: &[PathBuf], path: &str) -> usize {
    let needle = format!("Echoing back request made to {path} to client");
    logs.iter().map(|l| std::fs::read_to_string(l).unwrap_or_default().matches(&needle).count()).sum()
}

/// `HTTPRouteRequestPercentageMirror`'s distribution check (`testMirroredRequestsDistribution`).
fn mirror_distribution(running: &Running<'_>, case: &HttpCase, target: &Target) -> Result<(), String> {
    const TOTAL: usize = 500;
    const CONCURRENT: usize = 10;
    const STD_DEVS: f64 = 3.0;
    let ep = running.status().and_then(|doc| running.endpoint(target, &case.request.host, &doc))?;
    let mut last = String::new();
    for _ in 0..5 {
        let mut case = case.clone();
        cases::add_request_id(&mut case, &request_id());
        let next = AtomicUsize::new(0);
        let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..CONCURRENT {
                scope.spawn(|| {
                    while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                        let result =
                            client::round_trip(&ep, &case).and_then(|(sent, got)| cases::compare(&case, &sent, &got));
                        if let Err(e) = result {
                            errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                        }
                    }
                });
            }
        });
        let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(first) = errors.first() {
            return Err(format!("{} of {TOTAL} requests failed, first: {first}", errors.len()));
        }
        let mut problems = Vec::new();
        for mirror in case.mirrored_to.iter().filter(|m| m.percent.is_some()) {
            let ns = if mirror.namespace.is_empty() { status::INFRA } else { mirror.namespace.as_str() };
            let logs = service_logs(running, ns, &mirror.name)?;
            // Copies travel on their own: count until the number stops growing.
            let mut count = logged(&logs, &case.request.path);
            let settle = Instant::now() + Duration::from_secs(5);
            loop {
                std::thread::sleep(Duration::from_millis(300));
                let now = logged(&logs, &case.request.path);
                if now == count || Instant::now() > settle {
                    count = now;
                    break;
                }
                count = now;
            }
            let p = f64::from(mirror.percent.unwrap_or(0)) / 100.0;
            let expected = TOTAL as f64 * p;
            let margin = STD_DEVS * (TOTAL as f64 * p * (1.0 - p)).sqrt();
            if (count as f64) < expected - margin || (count as f64) > expected + margin {
                problems.push(format!(
                    "mirror {ns}/{} got {count} of {TOTAL}, want {:.0}..{:.0} ({}%)",
                    mirror.name,
                    expected - margin,
                    expected + margin,
                    mirror.percent.unwrap_or(0)
                ));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        last = problems.join("; ");
    }
    Err(last)
}

/// `weight.TestWeightedDistribution`: 500 requests, 10 at a time.
fn weighted_distribution(ep: &client::Endpoint, weights: &[(&str, f64)]) -> Result<(), String> {
    const TOTAL: usize = 500;
    const CONCURRENT: usize = 10;
    const TOLERANCE: f64 = 0.05;
    let seen: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENT {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                    let result = plain_get(Some(request_id())).and_then(|case| {
                        let (sent, got) = client::round_trip(ep, &case)?;
                        cases::compare(&case, &sent, &got)?;
                        Ok(got.request.pod)
                    });
                    match result {
                        Ok(pod) => {
                            let parts: Vec<&str> = pod.split('-').collect();
                            let backend =
                                if parts.len() < 3 { pod.clone() } else { parts[..parts.len() - 2].join("-") };
                            *seen.lock().unwrap_or_else(|p| p.into_inner()).entry(backend).or_default() += 1;
                        }
                        Err(e) => errors.lock().unwrap_or_else(|p| p.into_inner()).push(e),
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(first) = errors.first() {
        return Err(format!("{} of {TOTAL} requests failed, first: {first}", errors.len()));
    }
    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut problems = Vec::new();
    for backend in seen.keys() {
        if !weights.iter().any(|(b, _)| b == backend) {
            problems.push(format!("unexpected backend {backend}"));
        }
    }
    for (backend, want) in weights {
        let got = *seen.get(*backend).unwrap_or(&0) as f64 / TOTAL as f64;
        if *want == 0.0 && got > 0.0 {
            problems.push(format!("{backend} got {got:.3} of the traffic, want none"));
        } else if (got - want).abs() > TOLERANCE {
            problems.push(format!("{backend} got {got:.3} of the traffic, want {want} ± {TOLERANCE}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} (seen {seen:?})", problems.join("; ")))
    }
}

/// `HTTPRouteBackendProtocolWebSocket`: a text and a binary message echoed.
fn websocket_echo(addr: SocketAddr, host: &str, path: &str) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = common::ws_connect(addr, host, path)?;
    common::ws_echo(&mut ws, "Websocket Support!")?;
    let binary = vec![1u8, 2, 3, 4, 5, 6, 7];
    ws.send(Message::binary(binary.clone())).map_err(|e| format!("send binary: {e}"))?;
    loop {
        match ws.read() {
            Ok(Message::Binary(got)) if got.as_ref() == binary.as_slice() => return Ok(()),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(other) => return Err(format!("binary echo: got {other:?}")),
            Err(e) => return Err(format!("binary echo: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------
// The run and its report
// ---------------------------------------------------------------------------

/// The `SLUICE_CONFORMANCE_ONLY` filter.
fn selected(test: &UpstreamTest, filter: Option<&str>) -> bool {
    let Some(filter) = filter.map(str::to_ascii_lowercase) else {
        return true;
    };
    test.short_name.to_ascii_lowercase().contains(&filter)
        || test.manifests.iter().any(|m| m.to_ascii_lowercase().contains(&filter))
}

/// Counts of one test's items.
fn counts(items: &[(String, Outcome)]) -> (usize, usize, usize) {
    let passed = items.iter().filter(|(_, o)| *o == Outcome::Passed).count();
    let failed = items.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).count();
    (passed, failed, items.len() - passed - failed)
}

/// The distinct not-runnable reasons of a test, with counts.
fn reasons(items: &[(String, Outcome)]) -> String {
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, o) in items {
        if let Outcome::NotRunnable(r) = o {
            *by_reason.entry(r.as_str()).or_default() += 1;
        }
    }
    let parts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} ({n})")).collect();
    parts.join("; ")
}

/// The Markdown report.
fn markdown(reports: &[TestReport], extra_rows: &[(String, String)], commit: &str) -> String {
    let mut out = String::new();
    out.push_str("# Gateway API conformance, replayed against Sluice\n\n");
    out.push_str(
        "Written by `SLUICE_WRITE_CONFORMANCE=1 cargo test -p sluice --test gateway_conformance -- --nocapture` \
         (`crates/sluice/tests/gateway_conformance.rs`). Each upstream test runs against its own `sluice run` \
         with the base manifests and the test's files; `sluice echo` stands in for echo-basic. \
         Cases are the `ExpectedResponse` literals of `shared/conformance/gateway-api/expected-responses.json`, \
         one per Gateway they are sent to; status expectations are the conditions the Go test asserts.\n\n",
    );
    out.push_str(&format!("Upstream: kubernetes-sigs/gateway-api `conformance/` at {commit}.\n\n"));
    out.push_str(&format!("Claimed features: {}.\n\n", SUPPORTED_FEATURES.join(", ")));
    let (mut p, mut f, mut n) = (0, 0, 0);
    for r in reports {
        let (a, b, c) = counts(&r.items);
        p += a;
        f += b;
        n += c;
    }
    out.push_str(&format!("Totals: {p} passed, {f} failed, {n} not runnable.\n\n"));
    out.push_str("| test file | upstream test | passed | failed | not runnable | why not runnable |\n");
    out.push_str("|---|---|---:|---:|---:|---|\n");
    let mut rows: Vec<(String, String)> = Vec::new();
    for r in reports {
        let (a, b, c) = counts(&r.items);
        let files = r.test.manifests.join(", ");
        rows.push((
            files.clone(),
            format!("| {files} | {} | {a} | {b} | {c} | {} |\n", r.test.short_name, reasons(&r.items)),
        ));
    }
    for (file, why) in extra_rows {
        rows.push((file.clone(), format!("| {file} | – | 0 | 0 | – | {why} |\n")));
    }
    rows.sort();
    for (_, row) in rows {
        out.push_str(&row);
    }
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.items.iter().filter_map(move |(label, o)| match o {
                Outcome::Failed(e) => {
                    let short: String = e.chars().take(300).collect();
                    Some(format!("- {}: {label} — {}\n", r.test.short_name, short.replace('|', "\\|")))
                }
                _ => None,
            })
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\n## Failures\n\n");
        for f in failures {
            out.push_str(&f);
        }
    }
    out
}

/// The test files no table entry names (mesh tests, or files only upstream code reads).
fn unlisted_files() -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let named: Vec<&str> = table::TESTS.iter().flat_map(|t| t.manifests.iter().copied()).collect();
    let dir = Path::new(DATA).join("tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in files {
        if !named.contains(&file.as_str()) {
            rows.push((file, "no upstream Gateway test applies it".to_owned()));
        }
    }
    let mut mesh: Vec<String> = std::fs::read_dir(dir.join("mesh"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| format!("mesh/{}", e.file_name().to_string_lossy()))
        .collect();
    mesh.sort();
    for file in mesh {
        rows.push((file, "needs a service mesh (GAMMA tests; feature Mesh not claimed)".to_owned()));
    }
    rows
}

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
    let base_echoes = if to_run.is_empty() {
        Vec::new()
    } else {
        fixture::start_echoes(&base_pods, logs.path()).expect("start the base pods' echo backends")
    };
    let shared = Shared {
        base_docs,
        base_pod_list: base_pods,
        base_pods: base_echoes,
        programmatic: fixture::programmatic().expect("generate the suite's certificates"),
        log_dir: logs.path().to_path_buf(),
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
                                claimed: true,
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
                    claimed: tests[i].features.iter().all(|f| SUPPORTED_FEATURES.contains(f)),
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

// ---------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------

/// Every test file is named by the table (or is a mesh file), every named file exists,
/// every Go file with literals has an entry, features use upstream names, and every
/// override selects literals that exist.
#[test]
fn the_table_covers_the_data() {
    let text = std::fs::read_to_string(EXPECTED_RESPONSES).expect("read expected-responses.json");
    let all_cases = cases::load(&text).expect("parses");
    let known_features: Vec<&str> = vec![
        "Gateway",
        "HTTPRoute",
        "ReferenceGrant",
        "GRPCRoute",
        "TLSRoute",
        "TCPRoute",
        "UDPRoute",
        "ListenerSet",
        "BackendTLSPolicy",
        "BackendTLSPolicySANValidation",
        "GatewayPort8080",
        "GatewayStaticAddresses",
        "GatewayHTTPListenerIsolation",
        "GatewayInfrastructurePropagation",
        "GatewayAddressEmpty",
        "GatewayFrontendClientCertificateValidation",
        "GatewayFrontendClientCertificateValidationInsecureFallback",
        "GatewayBackendClientCertificate",
        "GatewayHTTPSListenerDetectMisdirectedRequests",
        "GRPCRouteNamedRouteRule",
        "GRPCRouteRequestHeaderModifier",
        "TLSRouteModeTerminate",
        "TLSRouteModeMixed",
        "HTTPRouteRetry",
        "HTTPRouteRetryBackendTimeout",
        "HTTPRouteRetryConnectionError",
        "HTTPRouteBackendURLRewrite",
        "HTTPRouteBackendRequestRedirect",
    ]
    .into_iter()
    .chain(SUPPORTED_FEATURES.iter().copied())
    .collect();
    let mut problems = Vec::new();
    for test in table::TESTS {
        for file in test.manifests {
            if !Path::new(DATA).join("tests").join(file).exists() {
                problems.push(format!("{}: no tests/{file}", test.short_name));
            }
        }
        for feature in test.features {
            if !known_features.contains(feature) {
                problems.push(format!("{}: unknown feature {feature}", test.short_name));
            }
        }
        for (sel, _) in test.overrides.iter() {
            if !all_cases.iter().any(|c| c.file == test.go_file && sel.matches(c.line)) {
                problems.push(format!("{}: override {sel:?} selects no literal", test.short_name));
            }
        }
        if test.targets.is_empty() && test_blocked(test).is_none() {
            let literals =
                all_cases.iter().filter(|c| c.file == test.go_file && c.kind == Some(CaseKind::Http)).count();
            if literals > 0 && test.extras.is_empty() {
                problems.push(format!("{}: {literals} literals but no target", test.short_name));
            }
        }
    }
    let mut names: Vec<&str> = table::TESTS.iter().map(|t| t.short_name).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    if names.len() != before {
        problems.push("duplicate short names".to_owned());
    }
    for case in &all_cases {
        if !table::TESTS.iter().any(|t| t.go_file == case.file) {
            problems.push(format!("no table entry for {}", case.file));
        }
    }
    for (file, why) in unlisted_files() {
        if !file.starts_with("mesh/") {
            problems.push(format!("tests/{file}: {why}"));
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "table problems:\n{}", problems.join("\n"));
    // The Go tests' count at the pinned commit (conformance/tests/*.go, mesh excluded).
    assert_eq!(table::TESTS.len(), 139);
}

/// The Go tests runnable with the claimed features are planned with a target for each
/// HTTP literal, and what is not runnable says why.
#[test]
fn plans_have_targets_and_reasons() {
    let text = std::fs::read_to_string(EXPECTED_RESPONSES).expect("read expected-responses.json");
    let all_cases = cases::load(&text).expect("parses");
    let matching = table::TESTS.iter().find(|t| t.short_name == "HTTPRouteMatching").expect("entry");
    let items = plan(matching, &all_cases);
    let literals: Vec<&Planned> = items.iter().filter(|p| matches!(p.work, Ok(Work::Case { .. }))).collect();
    assert_eq!(literals.len(), 9);
    assert!(literals.iter().all(|p| p.label.ends_with("→ same-namespace")));
    let isolation = table::TESTS.iter().find(|t| t.short_name == "GatewayHTTPListenerIsolation").expect("entry");
    let items = plan(isolation, &all_cases);
    assert_eq!(
        items.iter().filter(|p| matches!(p.work, Ok(Work::Case { .. }))).count(),
        32,
        "16 literals × 2 Gateways"
    );
    let ports = table::TESTS.iter().find(|t| t.short_name == "HTTPRouteListenerPortMatching").expect("entry");
    let items = plan(ports, &all_cases);
    let to = |line: u32| {
        items.iter().find_map(|p| match &p.work {
            Ok(Work::Case { line: l, target, .. }) if *l == line => target.listener,
            _ => None,
        })
    };
    assert_eq!(
        (to(65), to(69), to(73), to(77), to(81)),
        (Some("listener-1"), Some("listener-2"), Some("listener-2"), Some("listener-4"), Some("listener-4"))
    );
    let grpc = table::TESTS.iter().find(|t| t.short_name == "GRPCRouteHeaderMatching").expect("entry");
    assert_eq!(test_blocked(grpc).as_deref(), Some("feature GRPCRoute not claimed"));
    let bump = table::TESTS.iter().find(|t| t.short_name == "GatewayObservedGenerationBump").expect("entry");
    assert!(test_blocked(bump).is_some_and(|b| b.starts_with("needs a patch step")));
    let https = table::TESTS.iter().find(|t| t.short_name == "HTTPRouteHTTPSListener").expect("entry");
    let items = plan(https, &all_cases);
    assert_eq!(items.iter().filter(|p| matches!(p.work, Ok(Work::Case { .. }))).count(), 3, "the transcribed loop");
}

/// `sluice check` reads every test's manifests (base, test files, GatewayClass, the
/// suite's certificates, EndpointSlices) without a problem about the objects the harness
/// writes or the suite's Services and Namespaces; problems with Gateway API objects are the
/// point of the negative tests and are left to the status expectations.
#[test]
fn every_test_file_loads_cleanly() {
    const GATEWAY_API_KINDS: &[&str] = &[
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
        "TLSRoute",
        "TCPRoute",
        "UDPRoute",
        "ReferenceGrant",
        "BackendTLSPolicy",
        "ListenerSet",
    ];
    let base_path = Path::new(DATA).join("base/manifests.yaml");
    let base_text = std::fs::read_to_string(&base_path).expect("read base manifests");
    let mut base_docs = fixture::parse_yaml(&fixture::substitute(&base_text)).expect("base manifests parse");
    fixture::as_created(&mut base_docs);
    let programmatic = fixture::programmatic().expect("certificates");
    let mut problems = Vec::new();
    let mut files: Vec<&str> = table::TESTS.iter().flat_map(|t| t.manifests.iter().copied()).collect();
    files.sort();
    files.dedup();
    for file in files {
        let dir = TempDir::new("gwconf-check");
        let text = std::fs::read_to_string(Path::new(DATA).join("tests").join(file)).expect("read test file");
        let mut docs = match fixture::parse_yaml(&fixture::substitute(&text)) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{file}: {e}"));
                continue;
            }
        };
        fixture::as_created(&mut docs);
        let mut all = base_docs.clone();
        all.extend(docs.iter().cloned());
        let mut n = 0u8;
        let pods = fixture::pods(&all, || {
            n += 1;
            Ipv4Addr::new(127, 77, 0, n)
        });
        let mut generated = vec![fixture::gateway_class()];
        generated.extend(programmatic.objects.iter().cloned());
        generated.extend(fixture::endpoint_slices(&all, &pods));
        let written = fixture::write_docs(dir.path(), "base.yaml", &base_docs)
            .and_then(|_| fixture::write_docs(dir.path(), "test.yaml", &docs))
            .and_then(|_| fixture::write_docs(dir.path(), "generated.yaml", &generated));
        if let Err(e) = written {
            problems.push(format!("{file}: {e}"));
            continue;
        }
        let out = common::run_sluice_command(&["check", "--manifests", &dir.path().display().to_string()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary = stdout.lines().any(|l| l.starts_with("ok: ") || l.starts_with("problems found: "));
        let others: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.starts_with("ok: ") && !l.starts_with("problems found: ") && !l.trim().is_empty())
            .filter(|l| !GATEWAY_API_KINDS.contains(&l.split(' ').next().unwrap_or_default()))
            .collect();
        if !summary || !others.is_empty() {
            problems.push(format!("{file}: sluice check: {}{stderr}", others.join("\n")));
        }
    }
    assert!(problems.is_empty(), "manifest problems:\n{}", problems.join("\n"));
}

/// The client, the echo and the comparison together: literals sent straight to a
/// `sluice echo` (as a Gateway that forwards unchanged would) pass or fail as upstream's.
#[test]
fn client_and_comparison_against_a_real_echo() {
    let logs = TempDir::new("gwconf-echo");
    let pod = Pod {
        namespace: status::INFRA.to_owned(),
        deployment: "infra-backend-v1".to_owned(),
        name: "infra-backend-v1-7b9c4d8f6b-x2k4p".to_owned(),
        ip: Ipv4Addr::new(127, 78, 0, 1),
        labels: BTreeMap::new(),
        kind: fixture::BackendKind::Http,
    };
    let echoes = fixture::start_echoes(std::slice::from_ref(&pod), logs.path()).expect("echo starts");
    let plain = client::Endpoint { addr: SocketAddr::from((pod.ip, fixture::HTTP_PORT)), tls: None };
    let h2c = client::Endpoint { addr: SocketAddr::from((pod.ip, fixture::H2C_PORT)), tls: None };
    let check = |ep: &client::Endpoint, json: &str| -> Result<(), String> {
        let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let case = cases::parse_http(&v)?;
        let (sent, got) = client::round_trip(ep, &case)?;
        cases::compare(&case, &sent, &got)
    };
    let ns = r#""Namespace": "gateway-conformance-infra""#;
    let passing = [
        format!(
            r#"{{"Request": {{"Path": "/"}}, "Response": {{"StatusCode": 200}}, "Backend": "infra-backend-v1", {ns}}}"#
        ),
        format!(
            r#"{{"Request": {{"Path": "/q?x=1", "Headers": {{"Version": "one", "x-lower": "v"}}}}, "Backend": "infra-backend", {ns}}}"#
        ),
        format!(r#"{{"Request": {{"Host": "foo.com:8080", "Path": "/"}}, {ns}}}"#),
        format!(
            r#"{{"Request": {{"Path": "/set"}}, "BackendSetResponseHeaders": {{"Some-Other-Header": "val", "X-Two": "a"}},
                "Response": {{"Headers": {{"some-other-header": "val", "X-Two": "a"}}, "AbsentHeaders": ["X-Header-Remove"]}}, {ns}}}"#
        ),
        r#"{"Request": {"Path": "/status/503"}, "Response": {"StatusCode": 503}}"#.to_owned(),
        format!(r#"{{"Request": {{"Path": "/slow?delay=50ms"}}, {ns}}}"#),
        format!(r#"{{"Request": {{"Path": "/", "Method": "POST"}}, {ns}}}"#),
    ];
    for json in &passing {
        assert_eq!(check(&plain, json), Ok(()), "{json}");
    }
    let failing = [
        (format!(r#"{{"Request": {{"Path": "/"}}, "Backend": "infra-backend-v2", {ns}}}"#), "pod name to start with"),
        (r#"{"Request": {"Path": "/"}, "Namespace": "other"}"#.to_owned(), "namespace"),
        (
            format!(r#"{{"Request": {{"Path": "/a"}}, "ExpectedRequest": {{"Request": {{"Path": "/b"}}}}, {ns}}}"#),
            "path",
        ),
        (
            format!(r#"{{"Request": {{"Path": "/"}}, "Response": {{"AbsentHeaders": ["Content-Type"]}}, {ns}}}"#),
            "not be set",
        ),
        (
            format!(
                r#"{{"Request": {{"Path": "/"}}, "ExpectedRequest": {{"Request": {{"Path": "/"}}, "AbsentHeaders": ["User-Agent"]}}, {ns}}}"#
            ),
            "User-Agent header to not be set",
        ),
        (r#"{"Request": {"Path": "/status/404"}}"#.to_owned(), "one of [200], got 404"),
        // As Go's client: a redirect status without Location is a failed request.
        (
            r#"{"Request": {"Path": "/status/302", "UnfollowRedirect": true}, "Response": {"StatusCode": 302}}"#
                .to_owned(),
            "no Location header",
        ),
    ];
    for (json, want) in &failing {
        let err = check(&plain, json).expect_err(json);
        assert!(err.contains(want), "{json}: {err}");
    }
    // echo-basic's h2c port: HTTP/2 with prior knowledge passes, HTTP/1.1 is refused.
    let h2 = format!(
        r#"{{"Request": {{"Path": "/", "Protocol": "H2C_PRIOR_KNOWLEDGE"}}, "Backend": "infra-backend-v1", {ns}, "Response": {{"Protocol": "HTTP/2.0"}}}}"#
    );
    assert_eq!(check(&h2c, &h2), Ok(()));
    let h1 = format!(r#"{{"Request": {{"Path": "/"}}, {ns}}}"#);
    assert!(check(&h2c, &h1).expect_err("h1 on the h2c port").contains("got 400"));
    // A mirror is recognised by its log line.
    let mut mirrored =
        cases::parse_http(&serde_json::json!({"Request": {"Path": "/mirror"}, "Namespace": status::INFRA})).unwrap();
    cases::add_request_id(&mut mirrored, &request_id());
    let (sent, got) = client::round_trip(&plain, &mirrored).expect("round trip");
    assert_eq!(cases::compare(&mirrored, &sent, &got), Ok(()));
    let needle = format!("Echoing back request made to {} to client", mirrored.request.path);
    assert!(
        common::wait_until(Duration::from_secs(5), || std::fs::read_to_string(&echoes[0].log)
            .unwrap_or_default()
            .contains(&needle)),
        "the echo logged the request"
    );
}

/// The HTTPS client trusts exactly the suite's `*.org` certificate (served here by an
/// Ingress of Sluice's, standing in for an HTTPS listener) and sends the server name.
#[test]
fn https_client_pins_the_listener_certificate() {
    let programmatic = fixture::programmatic().expect("certificates");
    let secret = programmatic
        .objects
        .iter()
        .find(|o| fixture::identity(o) == ("Secret", status::INFRA, "tls-validity-checks-certificate"))
        .cloned()
        .expect("secret");
    let mut fx = common::Fixture::new("gwconf-https");
    fx.backend("web");
    let mut secret = secret;
    secret["metadata"]["namespace"] = serde_json::json!(common::NS);
    fx.write("secret.yaml", &fixture::yaml_stream(&[secret]));
    fx.ingress(&common::Ingress::new("tls").tls(&["example.org"], "tls-validity-checks-certificate").path(
        Some("example.org"),
        "Prefix",
        "/",
        "web",
    ));
    let sluice = fx.start(&[]);
    let good = client::Endpoint {
        addr: sluice.https,
        tls: Some(("example.org".into(), programmatic.validity_cert_der.clone())),
    };
    let case = cases::parse_http(&serde_json::json!({"Request": {"Host": "example.org", "Path": "/"}})).unwrap();
    let (sent, got) = client::round_trip(&good, &case).expect("HTTPS round trip");
    assert_eq!(sent.scheme, "https");
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.request.host, "example.org");
    // Another certificate (Sluice's default one, for an unknown name) is refused.
    let other =
        client::Endpoint { addr: sluice.https, tls: Some(("unknown.test".into(), programmatic.validity_cert_der)) };
    let unknown = cases::parse_http(&serde_json::json!({"Request": {"Host": "unknown.test", "Path": "/"}})).unwrap();
    let err = client::round_trip(&other, &unknown).expect_err("the default certificate is not pinned");
    assert!(err.contains("another certificate"), "{err}");
}
