//! Live reconfiguration, end to end: a real `sluice run` following real files on disk,
//! checked with real clients on loopback.
//!
//! - no request fails while files are rewritten in place, replaced by rename, created and
//!   deleted, and while an EndpointSlice moves a Service to another process and back;
//!   every change is served within a bound (measured and printed);
//! - a file that stops parsing keeps its last good routes (metrics, `/config` diagnostics);
//! - deleting an Ingress file gives 404, an EndpointSlice with no ready endpoint gives 503;
//! - SIGTERM drains: the slow request in flight finishes, the listener stops accepting,
//!   the process exits 0; `--drain-timeout` caps the wait;
//! - an open WebSocket survives a route change and is waited for on SIGTERM;
//! - `sluice routes` prints the routing table.

mod common;

use std::io::{BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// How long a change may take to be served (the goal is milliseconds; this box is busy).
const APPLY_BOUND: Duration = Duration::from_secs(2);
/// How long a poll keeps going, so that a slow change is measured rather than cut off.
const POLL_LIMIT: Duration = Duration::from_secs(10);
/// Pause between the steps of a test.
const STEP_PAUSE: Duration = Duration::from_millis(100);

/// Polls `check` every 5 ms until it returns `Ok` (at most [`POLL_LIMIT`]) and returns how
/// long that took; panics with the last error otherwise.
fn poll(what: &str, mut check: impl FnMut() -> Result<(), String>) -> Duration {
    let start = Instant::now();
    let mut last;
    loop {
        match check() {
            Ok(()) => return start.elapsed(),
            Err(e) => last = e,
        }
        if start.elapsed() > POLL_LIMIT {
            panic!("{what}: not seen within {POLL_LIMIT:?}; last: {last}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Like [`poll`], and asserts that it took less than [`APPLY_BOUND`]; prints the latency.
fn applied_within_bound(what: &str, check: impl FnMut() -> Result<(), String>) -> Duration {
    let took = poll(what, check);
    println!("{what}: served after {:.1} ms", took.as_secs_f64() * 1000.0);
    assert!(took < APPLY_BOUND, "{what}: took {took:?} to be served (bound {APPLY_BOUND:?})");
    took
}

/// What a request should get.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// 200 from the echo of this service (and, with a pod, that very process).
    Echo(&'static str, Option<SocketAddr>),
    /// This status, from Sluice itself.
    Status(u16),
}

/// Whether the answer to `GET <host><path>` is what `want` says.
fn judge(host: &str, path: &str, resp: std::io::Result<HttpResponse>, want: Want) -> Result<(), String> {
    let resp = resp.map_err(|e| format!("GET {host}{path}: {e}"))?;
    let body = || resp.text().chars().take(200).collect::<String>();
    match want {
        Want::Status(status) if resp.status == status => Ok(()),
        Want::Status(status) => Err(format!("GET {host}{path}: status {} (want {status}): {}", resp.status, body())),
        Want::Echo(..) if resp.status != 200 => {
            Err(format!("GET {host}{path}: status {} (want 200): {}", resp.status, body()))
        }
        Want::Echo(service, pod) => {
            let echo = resp.try_echo()?;
            if echo.service() != service {
                return Err(format!(
                    "GET {host}{path}: served by {} ({}), not {service}",
                    echo.service(),
                    echo.str("pod")
                ));
            }
            match pod {
                Some(pod) if echo.str("pod") != pod.to_string() => {
                    Err(format!("GET {host}{path}: served by pod {}, not {pod}", echo.str("pod")))
                }
                _ => Ok(()),
            }
        }
    }
}

/// `GET <path>` with `Host: <host>` on a fresh connection, judged by `want`.
fn get_is(sluice: &Sluice, host: &str, path: &str, want: Want) -> Result<(), String> {
    judge(host, path, exchange(sluice.http, &http_request("GET", host, path, &[], b"")), want)
}

/// `Ok` when `GET <path>` (fresh connection) is answered by the echo of `service` (and, with
/// `pod`, that very process).
fn served_by(
    sluice: &Sluice,
    host: &str,
    path: &str,
    service: &'static str,
    pod: Option<SocketAddr>,
) -> Result<(), String> {
    get_is(sluice, host, path, Want::Echo(service, pod))
}

/// `Ok` when `GET <path>` (fresh connection) is answered with `status`.
fn status_is(sluice: &Sluice, host: &str, path: &str, status: u16) -> Result<(), String> {
    get_is(sluice, host, path, Want::Status(status))
}

/// One kept-alive connection, opened before the changes, used for one request after each.
struct Probe {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Probe {
    fn open(addr: SocketAddr) -> Probe {
        let stream = connect(addr).expect("connect the probe");
        Probe { writer: stream.try_clone().expect("clone the probe socket"), reader: BufReader::new(stream) }
    }

    /// `GET <path>` on this same connection, judged by `want`; the connection must stay open.
    fn get_is(&mut self, host: &str, path: &str, want: Want) -> Result<(), String> {
        if closed_while_idle(&self.writer) {
            return Err("the server closed the kept-alive probe connection".to_owned());
        }
        let raw = http_request("GET", host, path, &[], b"");
        let resp = self.writer.write_all(&raw).and_then(|()| read_response(&mut self.reader, false));
        if let Ok(resp) = &resp {
            if resp.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
                return Err("the server closed the kept-alive probe connection".to_owned());
            }
        }
        judge(host, path, resp, want)
    }
}

/// The value of the sample of `name` whose labels contain `labels` (e.g. `kind="full"`).
fn metric_with(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') && rest.contains(labels)))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// Waits (at most [`APPLY_BOUND`]) for `sluice_config_generation` to exceed `before`.
fn generation_after(sluice: &Sluice, before: f64, what: &str) -> f64 {
    let mut now = before;
    let moved = wait_until(APPLY_BOUND, || {
        now = sluice.generation().unwrap_or(before);
        now > before
    });
    assert!(moved, "{what}: sluice_config_generation stayed {before} although the change is served");
    now
}

// ---------------------------------------------------------------------------
// Clients sending requests continuously
// ---------------------------------------------------------------------------

/// What one load client saw.
#[derive(Debug, Default)]
struct Tally {
    name: &'static str,
    /// Requests answered 200 by the expected service.
    ok: u64,
    /// Requests that failed: no or partial response, a status other than 200, a wrong backend.
    failed: u64,
    /// The first failures, with the time since the test started.
    failures: Vec<String>,
    /// Connections opened.
    connections: u64,
    /// Kept-alive connections the server closed between requests (not failures).
    server_closes: u64,
    /// When the first and the last good answer came (since the test started).
    first_ok: Option<Duration>,
    last_ok: Option<Duration>,
    /// Good answers so far, readable while the client runs.
    progress: Arc<AtomicU64>,
}

impl Tally {
    fn fail(&mut self, started: Instant, what: String) {
        self.failed += 1;
        if self.failures.len() < 20 {
            self.failures.push(format!("[{:.3} s] {what}", started.elapsed().as_secs_f64()));
        }
    }

    /// Checks one answer: 200 from `service`, for `target`.
    fn check(&mut self, started: Instant, target: &str, service: &str, resp: &HttpResponse) {
        let verdict = if resp.status != 200 {
            Err(format!("status {}", resp.status))
        } else {
            resp.try_echo().and_then(|echo| {
                if echo.service() != service {
                    Err(format!("served by {}", echo.service()))
                } else if echo.str("path") != target {
                    Err(format!("backend saw path {:?}", echo.str("path")))
                } else {
                    Ok(())
                }
            })
        };
        match verdict {
            Ok(()) => {
                self.ok += 1;
                self.progress.fetch_add(1, Ordering::Relaxed);
                self.first_ok.get_or_insert(started.elapsed());
                self.last_ok = Some(started.elapsed());
            }
            Err(e) => {
                self.fail(started, format!("GET {target}: {e}: {}", resp.text().chars().take(200).collect::<String>()))
            }
        }
    }
}

/// True when the peer has closed `stream` (or sent something unasked) while it was idle.
fn closed_while_idle(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Ok(_) | Err(_) => true,
    };
    closed || stream.set_nonblocking(false).is_err()
}

/// What a load client sends: `GET <prefix>/<n><query>` with `Host: host`, every answer
/// expected from `service`; `keep_alive`: one connection reused (reconnecting when the
/// server closed it between requests, counted apart), else a new connection per request.
struct Load {
    name: &'static str,
    host: &'static str,
    prefix: &'static str,
    query: &'static str,
    service: &'static str,
    keep_alive: bool,
}

/// A client thread sending `load` to `addr` until `stop`.
/// `progress` counts its good answers as they come.
fn load_client(
    load: Load,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    started: Instant,
    progress: Arc<AtomicU64>,
) -> JoinHandle<Tally> {
    let Load { name, host, prefix, query, service, keep_alive } = load;
    std::thread::spawn(move || {
        let mut tally = Tally { name, progress, ..Tally::default() };
        let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let target = format!("{prefix}/{n}{query}");
            let raw = http_request("GET", host, &target, &[], b"");
            if !keep_alive {
                match exchange(addr, &raw) {
                    Ok(resp) => tally.check(started, &target, service, &resp),
                    Err(e) => tally.fail(started, format!("GET {target} (new connection): {e}")),
                }
                tally.connections += 1;
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            if let Some((writer, reader)) = &conn {
                if !reader.buffer().is_empty() || closed_while_idle(writer) {
                    tally.server_closes += 1;
                    conn = None;
                }
            }
            if conn.is_none() {
                match connect(addr).and_then(|s| Ok((s.try_clone()?, BufReader::new(s)))) {
                    Ok(c) => {
                        tally.connections += 1;
                        conn = Some(c);
                    }
                    Err(e) => {
                        tally.fail(started, format!("connect for GET {target}: {e}"));
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                }
            }
            let (writer, reader) = conn.as_mut().expect("connection");
            let result =
                writer.write_all(&raw).and_then(|()| writer.flush()).and_then(|()| read_response(reader, false));
            match result {
                Ok(resp) => {
                    tally.check(started, &target, service, &resp);
                    if resp.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
                        tally.server_closes += 1;
                        conn = None;
                    }
                }
                Err(e) => {
                    tally.fail(started, format!("GET {target} (kept-alive connection {}): {e}", tally.connections));
                    conn = None;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        tally
    })
}

// ---------------------------------------------------------------------------
// 1. Zero failed requests under changes
// ---------------------------------------------------------------------------

const LIVE: &str = "live.test";
const EXTRA: &str = "extra.test";

#[test]
fn no_request_fails_while_files_and_endpoints_change() {
    let mut fx = Fixture::new("live");
    let a1 = fx.spawn_echo_free("a");
    let a2 = fx.spawn_echo_free("a");
    let b = fx.spawn_echo_free("b");
    let svc_a = |pod: SocketAddr| {
        yaml_docs(&[
            service_yaml("a", None, None),
            endpoint_slice_yaml("a", None, pod.port(), &[pod.ip().to_string()], true),
        ])
    };
    let svc_a_file = fx.write("svc-a.yaml", &svc_a(a1));
    fx.write_service("b", None, None, b.port(), &[b.ip().to_string()], true);
    let main = Ingress::new("main").path(Some(LIVE), "Prefix", "/", "a");
    let main_file = fx.ingress(&main);
    let sluice = fx.start(&[]);
    served_by(&sluice, LIVE, "/", "a", Some(a1)).expect("initial route");
    status_is(&sluice, LIVE, "/new", 200).expect("/new goes to a at first");
    status_is(&sluice, EXTRA, "/", 404).expect("no extra.test at first");

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let loads = [
        Load { name: "keep-alive", host: LIVE, prefix: "/ka", query: "", service: "a", keep_alive: true },
        Load {
            name: "new connection per request",
            host: LIVE,
            prefix: "/fresh",
            query: "",
            service: "a",
            keep_alive: false,
        },
        // Slow requests, so that some are always in flight when a snapshot is swapped.
        Load {
            name: "keep-alive, slow (40 ms)",
            host: LIVE,
            prefix: "/slow",
            query: "?sleep_ms=40",
            service: "a",
            keep_alive: true,
        },
    ];
    let progress: Vec<Arc<AtomicU64>> = loads.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let clients: Vec<_> = loads
        .into_iter()
        .zip(&progress)
        .map(|(load, progress)| load_client(load, sluice.http, stop.clone(), started, progress.clone()))
        .collect();
    // Every client has had a few good answers (and so will keep going across the changes).
    let all_progressed = |from: &[u64]| {
        wait_until(POLL_LIMIT, || progress.iter().zip(from).all(|(p, from)| p.load(Ordering::Relaxed) >= from + 3))
    };
    assert!(all_progressed(&[0, 0, 0]), "the clients did not get going within {POLL_LIMIT:?}");
    let changes_began = started.elapsed();

    let mut steps: Vec<(String, Duration)> = Vec::new();
    let mut generation = sluice.generation().expect("sluice_config_generation");
    // Opened before any change: each change must show on its next request.
    let mut probe = Probe::open(sluice.http);
    probe.get_is(LIVE, "/", Want::Echo("a", Some(a1))).expect("probe before the changes");
    let mut step = |name: &str, change: &dyn Fn(), host: &str, path: &str, want: Want| {
        println!("[{:.3} s] step: {name}", started.elapsed().as_secs_f64());
        change();
        let took = applied_within_bound(name, || get_is(&sluice, host, path, want));
        probe.get_is(host, path, want).unwrap_or_else(|e| {
            panic!("{name}: served on new connections, but a kept-alive one still sees the old configuration: {e}")
        });
        generation = generation_after(&sluice, generation, name);
        steps.push((name.to_owned(), took));
        std::thread::sleep(STEP_PAUSE);
    };

    // 1. Rewritten in place: /new → b.
    let with_new = main.clone().path(Some(LIVE), "Prefix", "/new", "b");
    step(
        "Ingress rewritten in place (/new -> b)",
        &|| std::fs::write(&main_file, with_new.yaml()).expect("rewrite"),
        LIVE,
        "/new",
        Want::Echo("b", None),
    );
    // 2. Replaced by rename: /renamed → b as well.
    let with_renamed = with_new.clone().path(Some(LIVE), "Exact", "/renamed", "b");
    step(
        "Ingress replaced by rename (/renamed -> b)",
        &|| replace_by_rename(&main_file, &with_renamed.yaml()),
        LIVE,
        "/renamed",
        Want::Echo("b", None),
    );
    served_by(&sluice, LIVE, "/new", "b", None).expect("/new still goes to b");
    // 3. A new file with another Ingress.
    let extra = Ingress::new("extra").path(Some(EXTRA), "Prefix", "/", "b");
    let extra_file = fx.file("ingress-extra.yaml");
    step(
        "new file with another Ingress (extra.test -> b)",
        &|| {
            fx.ingress(&extra);
        },
        EXTRA,
        "/",
        Want::Echo("b", None),
    );
    // 4. That file deleted.
    step(
        "that file deleted (extra.test -> 404)",
        &|| std::fs::remove_file(&extra_file).expect("delete"),
        EXTRA,
        "/",
        Want::Status(404),
    );
    // 5. The EndpointSlice of `a` moved to the second process, and back.
    let endpoint_builds =
        || metric_with(&sluice.metrics(), "sluice_reload_duration_seconds_count", "kind=\"endpoints\"").unwrap_or(0.0);
    let endpoint_builds_before = endpoint_builds();
    step(
        "EndpointSlice of a moved to the second process",
        &|| replace_by_rename(&svc_a_file, &svc_a(a2)),
        LIVE,
        "/",
        Want::Echo("a", Some(a2)),
    );
    step(
        "EndpointSlice of a moved back",
        &|| replace_by_rename(&svc_a_file, &svc_a(a1)),
        LIVE,
        "/",
        Want::Echo("a", Some(a1)),
    );
    let endpoint_builds_after = endpoint_builds();
    let changes_ended = started.elapsed();

    // ... and a few more after the last change.
    std::thread::sleep(Duration::from_millis(200));
    let counts: Vec<u64> = progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
    let kept_going = all_progressed(&counts);
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = clients.into_iter().map(|c| c.join().expect("client thread")).collect();

    println!("changes applied:");
    for (name, took) in &steps {
        println!("  {:>8.1} ms  {name}", took.as_secs_f64() * 1000.0);
    }
    let mut total = 0;
    for t in &tallies {
        total += t.ok + t.failed;
        println!(
            "client {:<28} {} requests: {} ok, {} failed; {} connections, {} closed by the server between requests",
            t.name,
            t.ok + t.failed,
            t.ok,
            t.failed,
            t.connections,
            t.server_closes
        );
    }
    println!("total requests: {total}; elapsed {:.2} s", started.elapsed().as_secs_f64());
    let failures: Vec<String> =
        tallies.iter().flat_map(|t| t.failures.iter().map(move |f| format!("{}: {f}", t.name))).collect();
    assert!(tallies.iter().all(|t| t.failed == 0), "requests failed during the changes:\n{}", failures.join("\n"));
    assert!(kept_going, "the clients stalled after the changes");
    // Each client kept going from before the first change to after the last one.
    for t in &tallies {
        let covered = t.first_ok.is_some_and(|first| first < changes_began)
            && t.last_ok.is_some_and(|last| last > changes_ended)
            && t.ok >= 5;
        assert!(
            covered,
            "client {}: {} good answers, first at {:?}, last at {:?}; the changes ran from {changes_began:?} to {changes_ended:?}",
            t.name, t.ok, t.first_ok, t.last_ok
        );
    }
    assert!(
        endpoint_builds_after >= endpoint_builds_before + 2.0,
        "EndpointSlice-only changes should re-resolve endpoints only: \
         sluice_reload_duration_seconds_count{{kind=\"endpoints\"}} went {endpoint_builds_before} -> {endpoint_builds_after}"
    );
    fx.assert_backends_running();
}

// ---------------------------------------------------------------------------
// 2. A file that stops parsing keeps its last good routes
// ---------------------------------------------------------------------------

#[test]
fn broken_yaml_keeps_the_last_good_routes() {
    let mut fx = Fixture::new("broken");
    fx.backend("a");
    let file = fx.ingress(&Ingress::new("brk").path(Some("broken.test"), "Prefix", "/old", "a"));
    let sluice = fx.start(&[]);
    served_by(&sluice, "broken.test", "/old", "a", None).expect("initial route");
    let failing = || metric_value(&sluice.metrics(), "sluice_manifest_files_failing");
    assert_eq!(failing(), Some(0.0), "sluice_manifest_files_failing at start");
    let errors_before = metric_value(&sluice.metrics(), "sluice_reload_errors_total").unwrap_or(0.0);

    // Broken (replaced by rename, so that no half-written version is ever read).
    replace_by_rename(&file, "garbage: [\n");
    let took = poll("sluice_manifest_files_failing 1", || match failing() {
        Some(1.0) => Ok(()),
        other => Err(format!("sluice_manifest_files_failing = {other:?}")),
    });
    println!("broken file noticed after {:.1} ms", took.as_secs_f64() * 1000.0);
    assert!(took < APPLY_BOUND, "broken file noticed after {took:?}");
    for _ in 0..5 {
        served_by(&sluice, "broken.test", "/old", "a", None).expect("the last good route keeps serving");
    }
    let metrics = sluice.metrics();
    let errors = metric_value(&metrics, "sluice_reload_errors_total").unwrap_or(0.0);
    assert!(errors > errors_before, "sluice_reload_errors_total stayed {errors_before}");
    let config = sluice.config();
    let diagnostics = config["diagnostics"].to_string();
    assert!(diagnostics.contains("ingress-brk.yaml"), "/config diagnostics do not name the broken file: {diagnostics}");
    let routes = config["routes"].to_string();
    assert!(routes.contains("/old"), "/config lost the last good route: {routes}");

    // Fixed, with another route.
    replace_by_rename(&file, &Ingress::new("brk").path(Some("broken.test"), "Prefix", "/fixed", "a").yaml());
    applied_within_bound("fixed file (/fixed)", || served_by(&sluice, "broken.test", "/fixed", "a", None));
    status_is(&sluice, "broken.test", "/old", 404).expect("the old route is gone");
    poll("sluice_manifest_files_failing back to 0", || match failing() {
        Some(0.0) => Ok(()),
        other => Err(format!("sluice_manifest_files_failing = {other:?}")),
    });
    let diagnostics = sluice.config()["diagnostics"].to_string();
    assert!(!diagnostics.contains("ingress-brk.yaml"), "/config diagnostics still name the fixed file: {diagnostics}");
}

// ---------------------------------------------------------------------------
// 3. Deleted Ingress → 404; no ready endpoint → 503
// ---------------------------------------------------------------------------

#[test]
fn deleted_ingress_gives_404_and_unready_endpoints_give_503() {
    let mut fx = Fixture::new("delete");
    fx.backend("gone");
    let kept = fx.backend("kept");
    let gone_file = fx.ingress(&Ingress::new("gone").path(Some("gone.test"), "Prefix", "/", "gone"));
    fx.ingress(&Ingress::new("kept").path(Some("kept.test"), "Prefix", "/", "kept"));
    let sluice = fx.start(&[]);
    served_by(&sluice, "gone.test", "/", "gone", None).expect("initial route");
    served_by(&sluice, "kept.test", "/", "kept", None).expect("initial route");
    let ingresses = |s: &Sluice| metric_with(&s.metrics(), "sluice_objects", "kind=\"Ingress\"");
    assert_eq!(ingresses(&sluice), Some(2.0), "sluice_objects by kind at start");

    std::fs::remove_file(&gone_file).expect("delete the Ingress file");
    applied_within_bound("deleted Ingress file (gone.test -> 404)", || status_is(&sluice, "gone.test", "/", 404));
    applied_within_bound("sluice_objects follows the delete", || match ingresses(&sluice) {
        Some(1.0) => Ok(()),
        other => Err(format!("sluice_objects{{kind=\"Ingress\"}} is {other:?}, want 1")),
    });
    served_by(&sluice, "kept.test", "/", "kept", None).expect("the other Ingress stays");

    // Every endpoint of `kept` not ready (the listening one and another address).
    let addresses = [kept.ip().to_string(), "127.0.0.2".to_owned()];
    replace_by_rename(
        &fx.file("svc-kept.yaml"),
        &yaml_docs(&[
            service_yaml("kept", None, None),
            endpoint_slice_yaml("kept", None, kept.port(), &addresses, false),
        ]),
    );
    applied_within_bound("EndpointSlice with no ready endpoint (-> 503)", || status_is(&sluice, "kept.test", "/", 503));
    let config = sluice.config();
    let route = config["routes"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["host"] == "kept.test"))
        .unwrap_or_else(|| panic!("no kept.test route in /config: {config}"))
        .clone();
    assert_eq!(route["endpoints"], serde_json::json!([]), "/config should list no endpoint: {route}");

    // Ready again.
    fx.write_service("kept", None, None, kept.port(), &[kept.ip().to_string()], true);
    applied_within_bound("EndpointSlice ready again (-> 200)", || served_by(&sluice, "kept.test", "/", "kept", None));
}

// ---------------------------------------------------------------------------
// 4. SIGTERM drains
// ---------------------------------------------------------------------------

/// One echo backend (its address returned) behind a host-less `Prefix /` rule, Sluice
/// started with `extra`.
fn simple(tag: &str, extra: &[&str]) -> (Fixture, Sluice, SocketAddr) {
    let mut fx = Fixture::new(tag);
    let backend = fx.backend("echo");
    fx.ingress(&Ingress::new("main").path(None, "Prefix", "/", "echo"));
    let sluice = fx.start(extra);
    (fx, sluice, backend)
}

/// A request in flight on its own thread; returns the response (or error) and when it ended.
fn in_flight(addr: SocketAddr, target: &str) -> JoinHandle<(std::io::Result<HttpResponse>, Instant)> {
    let raw = http_request("GET", "drain.test", target, &[], b"");
    std::thread::spawn(move || (exchange(addr, &raw), Instant::now()))
}

/// A new connection to `addr` gets no service from the Sluice that listened there: the
/// connection is refused, or closed without an answer. `Ok` says which. `backend` is that
/// Sluice's echo backend: an answer from any other process means the freed port was taken
/// by another test's process meanwhile, which is no service from Sluice either.
fn no_service(addr: SocketAddr, backend: SocketAddr) -> Result<String, String> {
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Err(e) => return Ok(format!("connect: {e}")),
        Ok(stream) => stream,
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if let Err(e) = stream.write_all(&http_request("GET", "drain.test", "/after-sigterm", &[], b"")) {
        return Ok(format!("write: {e}"));
    }
    match read_response(&mut BufReader::new(stream), false) {
        Err(e) => Ok(format!("read: {e}")),
        Ok(resp) => match resp.try_echo() {
            Ok(echo) if echo.str("pod") != backend.to_string() || echo.header("x-forwarded-for").is_none() => {
                Ok(format!("port {} now belongs to another process ({})", addr.port(), echo.0))
            }
            _ => Err(format!("a connection opened after SIGTERM was served: {resp:?}")),
        },
    }
}

#[test]
fn sigterm_finishes_the_slow_request_and_refuses_new_connections() {
    let (_fx, mut sluice, backend) = simple("sigterm", &["--drain-timeout", "10s"]);
    let target = "/slow?sleep_ms=2000";
    let slow = in_flight(sluice.http, target);
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    sluice.proc.signal("TERM");

    // Not ready any more while draining.
    poll("/readyz 503 after SIGTERM", || match sluice.readyz() {
        Ok(503) => Ok(()),
        other => Err(format!("/readyz: {other:?}")),
    });
    // New connections get no service, while the slow request is still running.
    let mut first = String::new();
    poll("new connections refused after SIGTERM", || {
        first = no_service(sluice.http, backend)?;
        Ok(())
    });
    let refused_after = signalled.elapsed();
    for i in 0..5 {
        if let Err(e) = no_service(sluice.http, backend) {
            panic!("new connections stay refused while draining: attempt {i} after {first:?}: {e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!slow.is_finished(), "the slow request ended before the listener was seen closed; the test proves nothing");

    let (resp, ended) = slow.join().expect("client thread");
    let resp = resp.unwrap_or_else(|e| panic!("the request in flight was cut by SIGTERM: {e}"));
    assert_eq!(resp.status, 200, "{resp:?}");
    let echo = resp.echo();
    assert_eq!(echo.str("path"), target, "full echo body expected: {resp:?}");
    let status = sluice
        .proc
        .wait_exit(Duration::from_secs(12))
        .unwrap_or_else(|| panic!("sluice still running 12 s after SIGTERM (drain timeout 10 s)"));
    let exited = signalled.elapsed();
    println!(
        "SIGTERM: new connections refused after {:.0} ms ({first}); slow request answered {:.0} ms after the signal; exited ({status}) after {:.0} ms",
        refused_after.as_secs_f64() * 1000.0,
        ended.duration_since(signalled).as_secs_f64() * 1000.0,
        exited.as_secs_f64() * 1000.0
    );
    assert!(status.success(), "exit status {status}");
    assert!(exited < Duration::from_secs(8), "took {exited:?} to exit although the only request ended after ~1.7 s");
}

#[test]
fn drain_timeout_caps_the_wait_for_a_slow_request() {
    let (_fx, mut sluice, _) = simple("drain-timeout", &["--drain-timeout", "1s"]);
    let slow = in_flight(sluice.http, "/slow?sleep_ms=5000");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    sluice.proc.signal("TERM");
    let status = sluice
        .proc
        .wait_exit(Duration::from_secs(4))
        .unwrap_or_else(|| panic!("sluice still running 4 s after SIGTERM with --drain-timeout 1s"));
    let exited = signalled.elapsed();
    println!("--drain-timeout 1s: exited ({status}) {:.0} ms after SIGTERM", exited.as_secs_f64() * 1000.0);
    assert!(status.success(), "exit status {status}");
    assert!(exited >= Duration::from_millis(900), "exited after {exited:?}: the request in flight was not waited for");
    let (resp, ended) = slow.join().expect("client thread");
    assert!(
        ended.duration_since(signalled) < Duration::from_secs(4),
        "the cut request still ended {:?} after SIGTERM",
        ended.duration_since(signalled)
    );
    if let Ok(resp) = resp {
        panic!("a 5 s request was answered although the drain lasted 1 s: {resp:?}");
    }
}

// ---------------------------------------------------------------------------
// 5. WebSocket across a route change and SIGTERM
// ---------------------------------------------------------------------------

#[test]
fn websocket_survives_a_route_change_and_is_drained() {
    let mut fx = Fixture::new("ws");
    fx.backend("ws");
    let file = fx.ingress(&Ingress::new("ws").path(Some("ws.test"), "Prefix", "/socket", "ws"));
    let mut sluice = fx.start(&["--drain-timeout", "2s"]);
    let mut ws = ws_connect(sluice.http, "ws.test", "/socket").expect("WebSocket through Sluice");
    ws_echo(&mut ws, "before the change").expect("echo before the change");

    // The route of the open socket goes away; another path appears.
    replace_by_rename(&file, &Ingress::new("ws").path(Some("ws.test"), "Prefix", "/other", "ws").yaml());
    applied_within_bound("Ingress changed (/socket -> /other)", || served_by(&sluice, "ws.test", "/other", "ws", None));
    status_is(&sluice, "ws.test", "/socket", 404).expect("/socket no longer routed");
    for i in 0..5 {
        ws_echo(&mut ws, &format!("after the change {i}"))
            .expect("the open WebSocket keeps working after the route change");
    }
    let mut fresh = ws_connect(sluice.http, "ws.test", "/other").expect("new WebSocket on /other");
    ws_echo(&mut fresh, "on the new route").expect("echo on the new route");
    drop(fresh);

    // SIGTERM with the tunnel open: it keeps working while draining, then the drain ends.
    let signalled = Instant::now();
    sluice.proc.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    ws_echo(&mut ws, "while draining").expect("the tunnel keeps working while draining");
    let status = sluice
        .proc
        .wait_exit(Duration::from_secs(6))
        .unwrap_or_else(|| panic!("sluice still running 6 s after SIGTERM with --drain-timeout 2s"));
    let exited = signalled.elapsed();
    println!(
        "SIGTERM with an open WebSocket, --drain-timeout 2s: exited ({status}) after {:.0} ms",
        exited.as_secs_f64() * 1000.0
    );
    assert!(status.success(), "exit status {status}");
    assert!(exited >= Duration::from_millis(1500), "exited after {exited:?}: the open tunnel was not waited for");
    assert!(exited < Duration::from_millis(4500), "exited after {exited:?} (drain timeout 2 s)");
}

// ---------------------------------------------------------------------------
// 6. sluice routes
// ---------------------------------------------------------------------------

#[test]
fn sluice_routes_prints_host_path_match_and_endpoints() {
    let mut fx = Fixture::new("routes");
    let addr = fx.backend("rt");
    fx.ingress(&Ingress::new("rt-ing").path(Some("routes.test"), "Exact", "/exact", "rt").path(
        Some("routes.test"),
        "Prefix",
        "/api",
        "rt",
    ));
    let sluice = fx.start(&[]);
    let out = run_sluice_command(&["routes", "--admin", &sluice.admin.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sluice routes failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("sluice routes:\n{stdout}");
    for (path, match_type) in [("/exact", "Exact"), ("/api", "Prefix")] {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().any(|cell| cell == path))
            .unwrap_or_else(|| panic!("no row for {path}:\n{stdout}"));
        for want in ["routes.test", match_type, "rt-ing", &addr.to_string()] {
            assert!(
                row.split_whitespace().any(|cell| cell.contains(want)),
                "row for {path} lacks {want:?}: {row:?}\n{stdout}"
            );
        }
    }

    // Nothing listening: a failure, with a message.
    let closed = free_addr("127.0.0.1");
    let out = run_sluice_command(&["routes", "--admin", &closed.to_string()]);
    assert!(!out.status.success(), "sluice routes against {closed} succeeded");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&closed.to_string()),
        "the error should name the admin address: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
