//! `sluice run --kubernetes` and `sluice check --kubernetes`, end to end: real `sluice`
//! processes reading a fake Kubernetes API server (crate `sluice-fake-apiserver`, on its own
//! thread) through a generated kubeconfig, serving real `sluice echo` backends.
//!
//! - an Ingress created, changed and deleted through the API is served, re-routed and
//!   dropped within a second; so is an EndpointSlice moving its Service to another process;
//! - a TLS Secret from the API is served by SNI, and so is its renewal;
//! - `/readyz` answers 503 until every kind has been listed, 200 after;
//! - of two replicas with `--leader-elect true`, exactly one writes Ingress status (once);
//!   when it is killed (SIGKILL) the other takes over within the lease duration and writes
//!   the status of a new Ingress;
//! - during an API server outage traffic keeps flowing; a change made meanwhile is served
//!   once the server is back;
//! - an invalid Ingress gets one Warning Event naming the field; the valid ones serve;
//! - `sluice check --kubernetes` exits 1 with the invalid Ingress's diagnostic, 0 without;
//! - `--publish-service` addresses become the Ingress status, and follow the Service;
//! - a Gateway and its HTTPRoute from the API are served on the Gateway's own address (not
//!   on the Ingress listeners), their status is written, and a deleted route stops serving.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sluice_fake_apiserver::objects::{endpoint_slice_at, ingress_class, ingress_routes, service};
use sluice_fake_apiserver::{FakeApi, Recorded};

/// The namespace of every test object.
const NAMESPACE: &str = "apps";
/// How long an API change may take to be served.
const APPLY_BOUND: Duration = Duration::from_secs(1);
/// How long a poll keeps going, so that a slow change is measured rather than cut off.
const POLL_LIMIT: Duration = Duration::from_secs(10);
/// The leader-election defaults of `sluice run` (not settable from the command line).
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// A fake API server holding the IngressClass `sluice`, a kubeconfig naming it, and a
/// fixture holding the logs and the echo backends.
struct Cluster {
    fixture: Fixture,
    kubeconfig: PathBuf,
    // Dropped last (the `sluice` processes of a test, declared after it, are gone by then).
    fake: FakeApi,
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let fake = FakeApi::spawn();
        let fixture = Fixture::new(tag);
        let kubeconfig = fake.kubeconfig(fixture.dir.path());
        fake.apply("ingressclasses", ingress_class("sluice"));
        Cluster { fixture, kubeconfig, fake }
    }

    fn kubeconfig(&self) -> &str {
        self.kubeconfig.to_str().expect("a UTF-8 temp path")
    }

    /// A `sluice echo` answering as `name`, and Service `name` (port 80 `http`) with an
    /// EndpointSlice pointing at it.
    fn backend(&mut self, name: &str) -> SocketAddr {
        let addr = self.fixture.spawn_echo_free(name);
        self.service(name, addr.port());
        addr
    }

    /// Service `name` whose port 80 (`http`) has one ready endpoint, 127.0.0.1:`port`.
    fn service(&self, name: &str, port: u16) {
        self.fake.apply("services", service(NAMESPACE, name, false));
        self.fake.apply(
            "endpointslices",
            endpoint_slice_at(NAMESPACE, &format!("{name}-abc12"), name, &["127.0.0.1"], port),
        );
    }

    /// An Ingress `name` for `host` with Prefix paths to Service `web` port 80.
    fn ingress(&self, name: &str, host: &str, paths: &[&str]) {
        let routes: Vec<(&str, &str, u16)> = paths.iter().map(|path| (*path, "web", 80)).collect();
        self.fake.apply("ingresses", ingress_routes(NAMESPACE, name, host, &routes));
    }

    /// `sluice run --kubernetes --kubeconfig <fake> <extra>`, ready.
    fn sluice(&self, extra: &[&str]) -> Sluice {
        let mut args = vec!["--kubernetes", "--kubeconfig", self.kubeconfig(), "--workers", "1"];
        args.extend_from_slice(extra);
        Sluice::start_with(self.fixture.dir.path(), &args, &[])
    }
}

/// The status of `GET http://<host><path>` through `sluice`, or 0 when the request failed.
fn status_of(sluice: &Sluice, host: &str, path: &str) -> u16 {
    sluice.try_get(host, path).map(|r| r.status).unwrap_or(0)
}

/// Polls `GET http://<host><path>` every 5 ms until it answers `want` (at most
/// [`POLL_LIMIT`]); how long that took.
fn time_until_status(sluice: &Sluice, host: &str, path: &str, want: u16) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < POLL_LIMIT {
        last = status_of(sluice, host, path);
        if last == want {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("GET {host}{path} did not answer {want} within {POLL_LIMIT:?} (last: {last})"))
}

/// Asserts that `GET http://<host><path>` answers `want` within [`APPLY_BOUND`] from now.
fn served_within_bound(sluice: &Sluice, host: &str, path: &str, want: u16, what: &str) -> Duration {
    let took = time_until_status(sluice, host, path, want).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: {want} after {took:?}");
    assert!(took <= APPLY_BOUND, "{what}: took {took:?}, more than {APPLY_BOUND:?}");
    took
}

/// The `PATCH …/status` requests on the Ingress `name`.
fn ingress_status_patches(fake: &FakeApi, name: &str) -> Vec<Recorded> {
    fake.writes("PATCH", &format!("/namespaces/{NAMESPACE}/ingresses/{name}/status"))
}

/// The `status.loadBalancer.ingress` of Ingress `name` as stored.
fn ingress_addresses(fake: &FakeApi, name: &str) -> Value {
    fake.get("ingresses", NAMESPACE, name).map(|i| i["status"]["loadBalancer"]["ingress"].clone()).unwrap_or_default()
}

/// The writes (anything but GET, answered or refused) by the client using `token`.
fn writes_by(fake: &FakeApi, token: &str) -> Vec<Recorded> {
    fake.requests().into_iter().filter(|r| r.method != "GET" && r.token.as_deref() == Some(token)).collect()
}

fn lease_holder(fake: &FakeApi, namespace: &str) -> Option<String> {
    let lease = fake.get("leases", namespace, "sluice-leader")?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

#[test]
fn an_ingress_created_changed_and_deleted_through_the_api_is_served_within_a_second() {
    let mut cluster = Cluster::new("k8s-apply");
    cluster.backend("web");
    let sluice = cluster.sluice(&["--leader-elect", "false"]);
    assert_eq!(status_of(&sluice, "app.example.com", "/v1"), 404, "nothing served before the Ingress exists");

    cluster.ingress("app", "app.example.com", &["/v1"]);
    served_within_bound(&sluice, "app.example.com", "/v1/x", 200, "Ingress created");
    let echo = sluice.get("app.example.com", "/v1/x").echo();
    assert_eq!((echo.service(), echo.str("path")), ("web", "/v1/x"));

    // A new path replaces the old one.
    cluster.ingress("app", "app.example.com", &["/v2"]);
    served_within_bound(&sluice, "app.example.com", "/v2", 200, "Ingress changed");
    assert_eq!(status_of(&sluice, "app.example.com", "/v1/x"), 404, "the old path is gone");
    assert_eq!(sluice.get("app.example.com", "/v2").echo().service(), "web");

    // The Service moves to another process: an EndpointSlice change alone.
    let moved = cluster.fixture.spawn_echo_free("web");
    let slice = endpoint_slice_at(NAMESPACE, "web-abc12", "web", &["127.0.0.1"], moved.port());
    cluster.fake.apply("endpointslices", slice);
    let start = Instant::now();
    let pod = moved.to_string();
    let arrived = wait_until(POLL_LIMIT, || {
        sluice
            .try_get("app.example.com", "/v2")
            .ok()
            .and_then(|r| r.try_echo().ok())
            .is_some_and(|e| e.str("pod") == pod)
    });
    let took = start.elapsed();
    eprintln!("EndpointSlice changed: new endpoint after {took:?}");
    assert!(arrived && took <= APPLY_BOUND, "the new endpoint was not used within {APPLY_BOUND:?} ({took:?})");

    cluster.fake.delete("ingresses", NAMESPACE, "app");
    served_within_bound(&sluice, "app.example.com", "/v2", 404, "Ingress deleted");
    cluster.fixture.assert_backends_running();
}

#[test]
fn a_tls_secret_from_the_api_is_served_by_sni_and_its_rotation_too() {
    let mut cluster = Cluster::new("k8s-tls");
    cluster.backend("web");
    let host = "secure.example.com";
    let mut ingress = ingress_routes(NAMESPACE, "secure", host, &[("/", "web", 80)]);
    ingress["spec"]["tls"] = json!([{"hosts": [host], "secretName": "secure-tls"}]);
    cluster.fake.apply("ingresses", ingress);
    let tls_secret = |cert: &TestCert| {
        json!({"metadata": {"namespace": NAMESPACE, "name": "secure-tls"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": base64(cert.cert_pem.as_bytes()), "tls.key": base64(cert.key_pem.as_bytes())}})
    };
    let first = test_cert(&[host]);
    cluster.fake.apply("secrets", tls_secret(&first));
    let sluice = cluster.sluice(&["--leader-elect", "false"]);

    let request = http_request("GET", host, "/", &[], b"");
    fn trusting(cert: &TestCert) -> TlsOptions<'_> {
        TlsOptions { trust: Some(&cert.der), ..TlsOptions::default() }
    }
    let (response, leaf) = https_exchange(sluice.https, host, trusting(&first), &request).unwrap();
    assert_eq!((response.status, leaf == first.der), (200, true), "{response:?}");
    assert_eq!(response.echo().service(), "web");

    // The certificate is renewed in the Secret: new handshakes get the new one.
    let second = test_cert(&[host]);
    cluster.fake.apply("secrets", tls_secret(&second));
    let start = Instant::now();
    let rotated = wait_until(POLL_LIMIT, || {
        tls_connect(sluice.https, host, TlsOptions::default()).is_ok_and(|stream| leaf_der(&stream) == second.der)
    });
    let took = start.elapsed();
    eprintln!("TLS Secret rotated: served after {took:?}");
    assert!(rotated && took <= APPLY_BOUND, "the renewed certificate was not served within {APPLY_BOUND:?} ({took:?})");
    let (response, _) = https_exchange(sluice.https, host, trusting(&second), &request).unwrap();
    assert_eq!(response.status, 200);
}

#[test]
fn publish_service_addresses_become_the_ingress_status_and_follow_the_service() {
    let mut cluster = Cluster::new("k8s-publish");
    cluster.backend("web");
    cluster.ingress("app", "app.example.com", &["/"]);
    let front = |address: Value| {
        let mut front = service("sluice", "front", true);
        front["status"] = json!({"loadBalancer": {"ingress": [address]}});
        front
    };
    cluster.fake.apply("services", front(json!({"ip": "198.51.100.1"})));
    // `--http` is 127.0.0.1:PORT here; `--publish-service` is still what is published.
    let sluice = cluster.sluice(&["--leader-elect", "false", "--publish-service", "sluice/front"]);
    assert_eq!(status_of(&sluice, "app.example.com", "/"), 200);
    let first = json!([{"ip": "198.51.100.1"}]);
    let written = wait_until(Duration::from_secs(10), || ingress_addresses(&cluster.fake, "app") == first);
    assert!(written, "the Service's address is the Ingress's status: {}", ingress_addresses(&cluster.fake, "app"));

    // The load balancer in front gets another address (a cloud re-provisioning it).
    cluster.fake.apply("services", front(json!({"hostname": "lb.example.net"})));
    let second = json!([{"hostname": "lb.example.net"}]);
    let followed = wait_until(Duration::from_secs(10), || ingress_addresses(&cluster.fake, "app") == second);
    assert!(followed, "the Ingress status follows the Service: {}", ingress_addresses(&cluster.fake, "app"));
}

#[test]
fn readyz_is_503_until_every_kind_is_listed_then_200() {
    let mut cluster = Cluster::new("k8s-ready");
    cluster.backend("web");
    cluster.ingress("app", "app.example.com", &["/"]);
    cluster.fake.set_down(true);
    let kubeconfig = cluster.kubeconfig().to_owned();
    let args = ["--kubernetes", "--kubeconfig", &kubeconfig, "--leader-elect", "false", "--workers", "1"];
    let mut sluice = Sluice::spawn_with(cluster.fixture.dir.path(), &args, &[]);

    // Every problem is collected, so that one run shows them all.
    let mut problems = Vec::new();
    // The admin listener answers while the lists fail: /readyz 503 (not ready), /healthz 200
    // (alive: a liveness probe must not restart a replica waiting for the API server).
    let answered = wait_until(Duration::from_secs(10), || sluice.readyz().is_ok());
    sluice.proc.assert_running();
    assert!(
        wait_until(Duration::from_secs(5), || cluster.fake.requests().iter().any(|r| r.status == 503)),
        "sluice asked the API server (answered 503)"
    );
    if !answered {
        problems.push(format!(
            "while the API server answers 503, the admin listener does not answer at all (/readyz: {:?}, /healthz: {:?}); \
             expected /readyz 503 and /healthz 200",
            sluice.readyz(),
            sluice.healthz()
        ));
    } else {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            let (ready, health) = (sluice.readyz(), sluice.healthz());
            if ready != Ok(503) || health != Ok(200) {
                problems.push(format!("while the API server is down: /readyz {ready:?}, /healthz {health:?}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(cluster.fake.lists("ingresses") + cluster.fake.lists("ingressclasses") > 0, "lists were tried");

    let up = Instant::now();
    cluster.fake.set_down(false);
    // The list is retried with backoff (0.8 s doubling, jittered).
    let ready = wait_until(Duration::from_secs(20), || sluice.readyz() == Ok(200));
    sluice.proc.assert_running();
    assert!(ready, "not ready 20 s after the API server came back (/readyz: {:?})", sluice.readyz());
    eprintln!("ready {:?} after the API server came back", up.elapsed());
    assert_eq!(status_of(&sluice, "app.example.com", "/"), 200, "the listed Ingress is served once ready");
    assert_eq!(sluice.healthz(), Ok(200));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn one_of_two_replicas_writes_status_and_the_other_takes_over_when_it_is_killed() {
    let mut cluster = Cluster::new("k8s-leader");
    cluster.backend("web");
    cluster.ingress("first", "first.example.com", &["/"]);
    let dir = cluster.fixture.dir.path().to_owned();
    let mut replicas = Vec::new();
    for name in ["replica-a", "replica-b"] {
        let kubeconfig = cluster.fake.kubeconfig_with_token(&dir.join(format!("kubeconfig-{name}")), name);
        let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
        let args = [
            "--kubernetes",
            "--kubeconfig",
            &kubeconfig,
            "--leader-elect",
            "true",
            "--lease-namespace",
            "sluice",
            "--publish-address",
            "203.0.113.7",
            "--workers",
            "1",
        ];
        let node = format!("node-{name}");
        replicas.push(Sluice::spawn_with(&dir, &args, &[("POD_NAME", name), ("NODE_NAME", &node)]));
    }
    for replica in &mut replicas {
        replica.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    }
    for replica in &replicas {
        assert_eq!(status_of(replica, "first.example.com", "/"), 200, "every replica serves");
    }

    // Exactly one replica leads and writes the status, once.
    let published = json!([{"ip": "203.0.113.7"}]);
    assert!(
        wait_until(Duration::from_secs(10), || ingress_addresses(&cluster.fake, "first") == published),
        "status written within 10 s: {:?}",
        cluster.fake.get("ingresses", NAMESPACE, "first")
    );
    let leader = lease_holder(&cluster.fake, "sluice").expect("a Lease naming the leader");
    let (leader_index, follower) = match leader.as_str() {
        "replica-a" => (0, "replica-b"),
        "replica-b" => (1, "replica-a"),
        other => panic!("unexpected holder {other:?}"),
    };
    // Longer than a retry period plus jitter: the follower has looked at the Lease again.
    std::thread::sleep(2 * RETRY_PERIOD + Duration::from_millis(500));
    let patches = ingress_status_patches(&cluster.fake, "first");
    assert_eq!(patches.len(), 1, "status written once: {patches:#?}");
    assert_eq!(patches[0].token.as_deref(), Some(leader.as_str()), "by the leader");
    assert_eq!(patches[0].body["status"]["loadBalancer"]["ingress"], published);
    // Every replica renews its own membership Lease (which node is alive, for LoadBalancer
    // addresses); only the leader writes anything else.
    let mut follower_writes = writes_by(&cluster.fake, follower);
    let membership = |w: &Recorded| {
        let name = w.body["metadata"]["name"].as_str().unwrap_or_default();
        w.path.contains("/leases/sluice-node-") || name.starts_with("sluice-node-")
    };
    follower_writes.retain(|w| !membership(w));
    assert!(follower_writes.iter().all(|w| !w.succeeded()), "the follower wrote: {follower_writes:#?}");
    assert!(
        follower_writes.iter().all(|w| w.path.contains("/leases")),
        "the follower wrote something else than a (failed) Lease attempt: {follower_writes:#?}"
    );
    assert_eq!(lease_holder(&cluster.fake, "sluice").as_deref(), Some(leader.as_str()), "no change of leader");

    // The leader dies without releasing the Lease; a new Ingress appears meanwhile.
    let mut dead = replicas.remove(leader_index);
    let survivor = &mut replicas[0];
    dead.proc.signal("9");
    assert!(dead.proc.wait_exit(Duration::from_secs(5)).is_some(), "the leader exits on SIGKILL");
    let killed = Instant::now();
    cluster.ingress("second", "second.example.com", &["/"]);
    served_within_bound(survivor, "second.example.com", "/", 200, "new Ingress on the survivor");

    // The survivor takes the Lease once it has seen it unrenewed for a lease duration (it
    // looks every retry period plus up to 120 % jitter), then writes the new status.
    let bound = LEASE_DURATION + 2 * (RETRY_PERIOD + RETRY_PERIOD.mul_f64(1.2)) + Duration::from_secs(3);
    let took_over = wait_until(bound, || ingress_addresses(&cluster.fake, "second") == published);
    survivor.proc.assert_running();
    assert!(
        took_over,
        "status of the new Ingress not written within {bound:?} of the leader's death (Lease: {:?})",
        cluster.fake.get("leases", "sluice", "sluice-leader")
    );
    eprintln!("the survivor wrote the new status {:?} after the leader was killed", killed.elapsed());
    assert_eq!(lease_holder(&cluster.fake, "sluice").as_deref(), Some(follower));
    let lease = cluster.fake.get("leases", "sluice", "sluice-leader").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    std::thread::sleep(Duration::from_millis(500));
    let second = ingress_status_patches(&cluster.fake, "second");
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_eq!(second[0].token.as_deref(), Some(follower), "written by the new leader");
    assert_eq!(ingress_status_patches(&cluster.fake, "first").len(), 1, "the first status, unchanged, not rewritten");
}

#[test]
fn traffic_flows_through_an_api_server_outage_and_changes_made_meanwhile_are_served_after() {
    let mut cluster = Cluster::new("k8s-outage");
    cluster.backend("web");
    cluster.ingress("app", "app.example.com", &["/"]);
    let sluice = cluster.sluice(&["--leader-elect", "false"]);
    assert_eq!(status_of(&sluice, "app.example.com", "/"), 200);

    let requests_before = cluster.fake.requests().len();
    cluster.fake.set_down(true);
    // A change nobody can see yet.
    cluster.ingress("later", "later.example.com", &["/"]);
    let start = Instant::now();
    let mut answers = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let status = status_of(&sluice, "app.example.com", "/");
        assert_eq!(status, 200, "request {answers} failed {:?} into the outage", start.elapsed());
        answers += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sluice.readyz(), Ok(200), "still ready: it serves what it has");
    assert_eq!(status_of(&sluice, "later.example.com", "/"), 404, "the change is not seen during the outage");
    let refused = cluster.fake.requests()[requests_before..].iter().filter(|r| r.status == 503).count();
    assert!(refused > 0, "sluice kept asking during the outage");
    eprintln!("{answers} requests answered 200 during the outage; {refused} API requests refused");

    let back = Instant::now();
    cluster.fake.set_down(false);
    // Watches resume after their backoff (0.8 s doubling up to 30 s, jittered).
    let served = wait_until(Duration::from_secs(30), || status_of(&sluice, "later.example.com", "/") == 200);
    let took = back.elapsed();
    assert!(served, "the change made during the outage is not served {took:?} after it");
    eprintln!("the change made during the outage served {took:?} after the API server came back");
    assert_eq!(status_of(&sluice, "app.example.com", "/"), 200);
    // And watching goes on: a later change is served within the usual bound.
    cluster.ingress("after", "after.example.com", &["/"]);
    served_within_bound(&sluice, "after.example.com", "/", 200, "change after the outage");
}

#[test]
fn an_invalid_ingress_gets_one_event_naming_the_field_and_the_valid_ones_serve() {
    let mut cluster = Cluster::new("k8s-event");
    cluster.backend("web");
    cluster.ingress("good", "good.example.com", &["/"]);
    cluster.ingress("bad", "Bad_Host", &["/"]);
    // Default leader election: a single replica leads.
    let sluice = cluster.sluice(&[]);
    assert_eq!(status_of(&sluice, "good.example.com", "/"), 200);

    let events = || cluster.fake.writes("POST", "/events");
    assert!(wait_until(Duration::from_secs(10), || !events().is_empty()), "an Event within 10 s");
    cluster.ingress("good2", "good2.example.com", &["/"]);
    served_within_bound(&sluice, "good2.example.com", "/", 200, "a valid Ingress next to the invalid one");
    std::thread::sleep(Duration::from_millis(1500));
    let posted = events();
    assert_eq!(posted.len(), 1, "one Event, not repeated on later changes: {posted:#?}");
    let post = &posted[0];
    assert_eq!(post.path, format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events"));
    assert!(post.succeeded(), "{post:?}");
    let event = &post.body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "Rejected");
    assert_eq!(event["regarding"]["kind"], "Ingress");
    assert_eq!(event["regarding"]["name"], "bad");
    assert_eq!(event["regarding"]["namespace"], NAMESPACE);
    assert_eq!(event["regarding"]["uid"], format!("uid-ingresses-{NAMESPACE}-bad"));
    let note = event["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("spec.rules[0].host"), "the note names the field: {note:?}");
    assert_eq!(cluster.fake.all("events").len(), 1);
    assert_eq!(status_of(&sluice, "good.example.com", "/"), 200);
}

#[test]
fn check_kubernetes_exits_1_with_the_invalid_ingress_and_0_without() {
    let cluster = Cluster::new("k8s-check");
    // No backend process needed: `check` only translates.
    cluster.service("web", 9);
    cluster.ingress("good", "good.example.com", &["/"]);
    cluster.ingress("bad", "Bad_Host", &["/"]);
    let args = ["check", "--kubernetes", "--kubeconfig", cluster.kubeconfig()];

    let output = run_sluice_command(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("spec.rules[0].host")).collect();
    assert_eq!(lines.len(), 1, "one diagnostic naming the field:\n{stdout}");
    assert!(lines[0].contains(&format!("{NAMESPACE}/bad")), "naming the Ingress: {}", lines[0]);
    assert!(stdout.contains("problems found"), "{stdout}");
    assert!(!stdout.contains("good"), "nothing about the valid Ingress:\n{stdout}");

    cluster.fake.delete("ingresses", NAMESPACE, "bad");
    let output = run_sluice_command(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.starts_with("ok: 1 Ingresses"), "{stdout}");
}

#[test]
fn the_controller_configmap_from_the_api_is_followed_live() {
    let mut cluster = Cluster::new("k8s-configmap");
    cluster.backend("web");
    cluster.ingress("app", "app.example.com", &["/"]);
    let configmap = |data: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "controller", "namespace": NAMESPACE}, "data": data})
    };
    cluster.fake.apply("configmaps", configmap(json!({"force-ssl-redirect": "true"})));
    let flag = format!("{NAMESPACE}/controller");
    let sluice = cluster.sluice(&["--leader-elect", "false", "--configmap", &flag]);
    assert_eq!(status_of(&sluice, "app.example.com", "/"), 308, "force-ssl-redirect from the ConfigMap");
    cluster.fake.apply("configmaps", configmap(json!({"force-ssl-redirect": "false"})));
    served_within_bound(&sluice, "app.example.com", "/", 200, "ConfigMap changed");
    cluster.fake.delete("configmaps", NAMESPACE, "controller");
    served_within_bound(&sluice, "app.example.com", "/", 200, "ConfigMap deleted: ingress-nginx's defaults");
}

#[test]
fn a_gateway_and_its_route_from_the_api_are_served_on_the_gateways_address_with_status_written() {
    use sluice_fake_apiserver::objects::{gateway, gateway_class, http_route};
    let mut cluster = Cluster::new("k8s-gateway");
    cluster.backend("web");
    cluster.fake.apply("gatewayclasses", gateway_class("sluice", "sluice.dev/gateway-controller"));
    cluster.fake.apply("gateways", gateway(NAMESPACE, "gw", "sluice"));
    cluster.fake.apply("httproutes", http_route(NAMESPACE, "app", "gw.example.com", &[(NAMESPACE, "gw")]));
    let sluice = cluster.sluice(&["--leader-elect", "false", "--lb-pool", "127.0.91.10-127.0.91.12"]);

    let gateway_http: SocketAddr = "127.0.91.10:80".parse().unwrap();
    let served = wait_until(POLL_LIMIT, || {
        exchange(gateway_http, &http_request("GET", "gw.example.com", "/x", &[], b""))
            .is_ok_and(|r| r.status == 200 && r.echo().service() == "web")
    });
    assert!(served, "the HTTPRoute is served on the Gateway's own address");
    let other = exchange(gateway_http, &http_request("GET", "other.example.com", "/x", &[], b"")).unwrap();
    assert_eq!(other.status, 404, "hosts the route does not name are not served");
    assert_eq!(status_of(&sluice, "gw.example.com", "/x"), 404, "the Ingress listeners do not serve Gateway routes");

    let condition = |status: &Value, kind: &str| {
        status["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == kind && c["status"] == "True")
    };
    let written = wait_until(POLL_LIMIT, || {
        let gateway = cluster.fake.get("gateways", NAMESPACE, "gw").unwrap_or_default();
        let route = cluster.fake.get("httproutes", NAMESPACE, "app").unwrap_or_default();
        let parent = &route["status"]["parents"][0];
        gateway["status"]["addresses"][0]["value"] == "127.0.91.10"
            && condition(&gateway["status"], "Programmed")
            && gateway["status"]["listeners"][0]["attachedRoutes"] == 1
            && parent["controllerName"] == "sluice.dev/gateway-controller"
            && condition(parent, "Accepted")
            && condition(parent, "ResolvedRefs")
    });
    assert!(written, "Gateway and HTTPRoute status written: {:?}", cluster.fake.get("httproutes", NAMESPACE, "app"));

    // Deleting the route takes it off the Gateway.
    cluster.fake.delete("httproutes", NAMESPACE, "app");
    let gone = wait_until(POLL_LIMIT, || {
        exchange(gateway_http, &http_request("GET", "gw.example.com", "/x", &[], b"")).is_ok_and(|r| r.status == 404)
    });
    assert!(gone, "a deleted route is no longer served");
    cluster.fixture.assert_backends_running();
}
