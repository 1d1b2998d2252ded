//! Running one upstream test: its manifests and pods, its own `sluice run`, the status
//! checks, then the literals in line order with the test's mutations between them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backends;
use crate::cases::{self, HttpCase};
use crate::client;
use crate::common::{exchange, http_request, replace_by_rename, Sluice, TempDir};
use crate::extras::{logged, mirror_distribution, run_extra, service_logs};
use crate::fixture::{self, EchoPod, Pod};
use crate::grpc;
use crate::l4;
use crate::plan::{Literal, Outcome, Planned, Work};
use crate::status::{self, Check};
use crate::table::{Mutation, Setup, Target, Tls, UpstreamTest};
use crate::{CASE_TIMEOUT, DATA, MIRROR_TIMEOUT, READY_TIMEOUT, REQUIRED_SUCCESSES, STATUS_TIMEOUT};

// ---------------------------------------------------------------------------
// Running one test
// ---------------------------------------------------------------------------

/// What every test shares: the base manifests, their pods (running once for the whole
/// run), the suite's certificates and the cases.
pub struct Shared {
    pub base_docs: Vec<Value>,
    /// Every pod of the base Deployments (those running echo-basic's HTTP server run).
    pub base_pod_list: Vec<Pod>,
    pub base_pods: Vec<EchoPod>,
    pub programmatic: fixture::Programmatic,
    pub log_dir: PathBuf,
    /// The base pods' in-process servers (gRPC, TCP, UDP, HTTPS, DNS).
    pub _base_backends: Option<backends::Backends>,
}

/// The report of one test.
pub struct TestReport {
    pub test: &'static UpstreamTest,
    /// Whether every feature it needs is claimed (its failures fail the run).
    pub claimed: bool,
    pub items: Vec<(String, Outcome)>,
    /// Sluice's warnings and errors, for a test with failures.
    pub log_excerpt: String,
}

/// A running test: Sluice, its manifests, its pods.
pub struct Running<'a> {
    pub shared: &'a Shared,
    pub sluice: Sluice,
    pub dir: PathBuf,
    /// The test's own documents per manifest file (mutations rewrite them).
    pub test_files: Vec<(String, Vec<Value>)>,
    pub all_docs: Vec<Value>,
    pub test_pods: Vec<EchoPod>,
    /// The test's own pods' in-process servers.
    pub _backends: backends::Backends,
    pub _work: TempDir,
}

impl Running<'_> {
    pub fn status(&self) -> Result<Value, String> {
        let admin = self.sluice.admin;
        let resp = exchange(admin, &http_request("GET", &admin.to_string(), "/status", &[], b""))
            .map_err(|e| format!("GET /status: {e}"))?;
        if resp.status != 200 {
            return Err(format!("GET /status: status {}", resp.status));
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("GET /status: {e}"))
    }

    pub fn pods(&self) -> impl Iterator<Item = &EchoPod> {
        self.shared.base_pods.iter().chain(self.test_pods.iter())
    }

    /// The listener port of a target, from the Gateway's spec.
    pub fn port(&self, target: &Target) -> Result<u16, String> {
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

    /// The Gateway's address (from `/status`) and the target listener's port.
    pub fn addr(&self, target: &Target, doc: &Value) -> Result<SocketAddr, String> {
        let ip = status::gateway_address(doc, target.gateway)?;
        let ip: std::net::IpAddr = ip.parse().map_err(|e| format!("Gateway address {ip:?}: {e}"))?;
        Ok(SocketAddr::new(ip, self.port(target)?))
    }

    /// How to reach a target for a request with `host`.
    pub fn endpoint(&self, target: &Target, host: &str, doc: &Value) -> Result<client::Endpoint, String> {
        let addr = self.addr(target, doc)?;
        let programmatic = &self.shared.programmatic;
        let der = programmatic.validity_cert_der.clone();
        let tls = match target.tls {
            Tls::Plain => None,
            Tls::ServerName(name) => Some((name.to_owned(), der)),
            Tls::HostIsServerName => Some((host.split(':').next().unwrap_or(host).to_owned(), der)),
            Tls::Pinned { server_name, secret } => {
                let name = if server_name.is_empty() { host.split(':').next().unwrap_or(host) } else { server_name };
                Some((name.to_owned(), programmatic.secret(status::INFRA, secret)?.cert_der.clone()))
            }
            Tls::Ca { .. } => return Err("an HTTP request to a raw TLS target".to_owned()),
        };
        Ok(client::Endpoint { addr, tls })
    }

    /// The raw TLS client of a target, if it speaks TLS.
    pub fn tls_client(&self, target: &Target) -> Result<Option<l4::TlsClient>, String> {
        let programmatic = &self.shared.programmatic;
        Ok(match target.tls {
            Tls::Plain => None,
            Tls::Ca { server_name, ca } => Some(l4::TlsClient {
                server_name: server_name.to_owned(),
                ca_der: programmatic.ca(status::INFRA, ca)?.to_vec(),
            }),
            _ => return Err("a raw TLS target names the CA it trusts (Tls::Ca)".to_owned()),
        })
    }

    /// Deletes an object from the written manifests.
    pub fn apply(&mut self, mutation: &Mutation) -> Result<(), String> {
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
pub fn request_id() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mixed = nanos ^ ((COUNTER.fetch_add(1, Ordering::SeqCst) as u128) << 64) ^ u128::from(std::process::id());
    format!("{:032x}", mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// Starts Sluice on `dir` with its own address pool; retried if a port was taken.
pub fn start_sluice(dir: &Path, log_dir: &Path, index: usize) -> Result<Sluice, String> {
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
pub fn run_test(shared: &Shared, test: &'static UpstreamTest, index: usize, planned: &[Planned]) -> TestReport {
    let mut report = TestReport { test, claimed: crate::claimed(test), items: Vec::new(), log_excerpt: String::new() };
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
        .filter_map(|(i, p)| p.work.as_ref().ok().and_then(Work::line).map(|line| (line, i)))
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
        let result = match &planned[i].work {
            Ok(Work::Case { case, target, failure, .. }) => run_literal(&running, case, target, *failure),
            Ok(Work::LateCheck { check, .. }) => poll_check(&running, check, &cx),
            Ok(Work::Extra(extra)) => run_extra(&running, extra),
            _ => continue,
        };
        outcomes.insert(i, result.map_or_else(Outcome::Failed, |()| Outcome::Passed));
    }
    for (i, p) in planned.iter().enumerate() {
        let outcome = match &p.work {
            Err(reason) => Outcome::NotRunnable(reason.clone()),
            Ok(Work::Check(_)) => match check_results.remove(&i) {
                Some(Ok(())) => Outcome::Passed,
                Some(Err(e)) => Outcome::Failed(e),
                None => Outcome::Failed("not evaluated".to_owned()),
            },
            Ok(w) if w.line().is_some() => outcomes.remove(&i).unwrap_or(Outcome::Failed("not run".to_owned())),
            Ok(Work::LateCheck { .. } | Work::Case { .. }) => Outcome::Failed("not run".to_owned()),
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
pub fn log_excerpt(sluice: &Sluice) -> String {
    let log = sluice.proc.log();
    let lines: Vec<&str> =
        log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked")).take(20).collect();
    lines.join("\n")
}

/// Writes the test's manifests, starts its own pods and Sluice.
pub fn prepare<'a>(shared: &'a Shared, test: &'static UpstreamTest, index: usize) -> Result<Running<'a>, String> {
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
    let test_backends = backends::start(&test_pod_list, &shared.programmatic)?;
    let every_pod: Vec<Pod> = shared.base_pod_list.iter().cloned().chain(test_pod_list).collect();
    for setup in test.setup {
        match *setup {
            Setup::FillSlices { namespace, prefixes, deployment } => {
                for (_, docs) in &mut test_files {
                    fixture::fill_slices(docs, namespace, prefixes, deployment, &every_pod);
                }
            }
            Setup::Create { doc } => {
                let mut doc: Value = serde_json::from_str(doc).map_err(|e| format!("Setup::Create: {e}"))?;
                fixture::as_created(std::slice::from_mut(&mut doc));
                test_files.push(("manifests/30-created.yaml".to_owned(), vec![doc]));
            }
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
    Ok(Running { shared, sluice, dir, test_files, all_docs, test_pods, _backends: test_backends, _work: work })
}

/// Waits until `/status` lists every Gateway and route the test reads; fails fast when it
/// has no Gateway API lists at all.
pub fn wait_listed(running: &Running<'_>, test: &UpstreamTest, planned: &[Planned]) -> Result<(), String> {
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

/// Polls one status expectation for [`STATUS_TIMEOUT`].
fn poll_check(running: &Running<'_>, check: &Check, cx: &status::Context<'_>) -> Result<(), String> {
    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        let result = running.status().and_then(|doc| status::evaluate(check, &doc, cx));
        if result.is_ok() || Instant::now() > deadline {
            return result;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One literal, retried until `REQUIRED_SUCCESSES` answers in a row match.
fn run_literal(running: &Running<'_>, literal: &Literal, target: &Target, failure: bool) -> Result<(), String> {
    match literal {
        Literal::Http(case) if failure => converge(|| {
            let ep = running.status().and_then(|doc| running.endpoint(target, &case.request.host, &doc))?;
            let (_, got) = client::round_trip(&ep, case)
                .map_err(|e| format!("request failed: {e} (sent {})", describe_sent(&ep, case)))?;
            // `WaitForConsistentFailureResponse`: any answer but 200 (and timeouts) is a failure.
            if cases::is_timeout(got.status) || got.status == 200 {
                Err(format!(
                    "expected the request to fail, got status {} [sent {}] [seen {}]",
                    got.status,
                    describe_sent(&ep, case),
                    describe_seen(&got)
                ))
            } else {
                Ok(())
            }
        }),
        Literal::Http(case) => run_case(running, case, target),
        Literal::Grpc(case) => converge(|| {
            let addr = running.status().and_then(|doc| running.addr(target, &doc))?;
            let reply = grpc::call(addr, case, None)?;
            if failure {
                return if reply.code == tonic::Code::Ok {
                    Err(format!("the call should have failed, got OK [seen {}]", reply.describe()))
                } else {
                    Ok(())
                };
            }
            grpc::compare(case, &reply).map_err(|e| format!("{e} [sent to {addr}] [seen {}]", reply.describe()))
        }),
        Literal::Tcp(case) => converge(|| {
            let addr = running.status().and_then(|doc| running.addr(target, &doc))?;
            let tls = running.tls_client(target)?;
            l4::tcp_exchange(addr, tls.as_ref(), case).map(|_| ()).map_err(|e| format!("{e} [connected to {addr}]"))
        }),
        Literal::Udp { service, namespace } => converge(|| {
            let addr = running.status().and_then(|doc| running.addr(target, &doc))?;
            l4::udp_echo(addr, service, namespace).map(|_| ()).map_err(|e| format!("{e} [sent to {addr}]"))
        }),
    }
}

/// `AwaitConvergence`: `attempt` must succeed `REQUIRED_SUCCESSES` times in a row, starting
/// within [`CASE_TIMEOUT`].
fn converge(mut attempt: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + CASE_TIMEOUT;
    let hard_deadline = deadline + Duration::from_secs(20);
    let mut successes = 0;
    loop {
        match attempt() {
            Ok(()) => {
                successes += 1;
                if successes >= REQUIRED_SUCCESSES {
                    return Ok(());
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
}

/// One HTTP literal, retried until `REQUIRED_SUCCESSES` answers in a row match; then its
/// mirrors.
fn run_case(running: &Running<'_>, case: &HttpCase, target: &Target) -> Result<(), String> {
    let mut case = case.clone();
    let mirrors: Vec<_> = case.mirrored_to.iter().filter(|m| m.percent.is_none()).cloned().collect();
    if !case.mirrored_to.is_empty() {
        cases::add_request_id(&mut case, &request_id());
    }
    converge(|| {
        running.status().and_then(|doc| running.endpoint(target, &case.request.host, &doc)).and_then(|ep| {
            let (sent, got) = client::round_trip(&ep, &case)
                .map_err(|e| format!("request failed: {e} (sent {})", describe_sent(&ep, &case)))?;
            cases::compare(&case, &sent, &got)
                .map_err(|e| format!("{e} [sent {}] [seen {}]", describe_sent(&ep, &case), describe_seen(&got)))
        })
    })?;
    for mirror in mirrors {
        let ns = if mirror.namespace.is_empty() { status::INFRA } else { mirror.namespace.as_str() };
        expect_mirrored(running, ns, &mirror.name, &case.request.path)?;
    }
    Ok(())
}

/// Waits until a pod of Service `ns/name` logged the mirrored request (`ExpectMirroredRequest`).
pub fn expect_mirrored(running: &Running<'_>, ns: &str, name: &str, path: &str) -> Result<(), String> {
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

pub fn describe_sent(ep: &client::Endpoint, case: &HttpCase) -> String {
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

pub fn describe_seen(got: &cases::Captured) -> String {
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
