//! Automatic HTTPS in a cluster, end to end: `sluice run --kubernetes` replicas reading the
//! fake Kubernetes API server (crate `sluice-fake-apiserver`), a real CA (Debian's pebble,
//! resolving every name to 127.0.0.1) and a real TLS client.
//!
//! - of two replicas, only the leader orders; pebble validates HTTP-01 against the *other*
//!   replica, which answers from the challenge Secret it reads through its watch; the
//!   certificate lands in the Ingress's Secret and both replicas serve it;
//! - a valid certificate already in the Secret (written by another replica, or a previous
//!   run) is served at once and nothing is ordered; its expiry is in `/metrics`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::*;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use sluice_fake_apiserver::objects::{endpoint_slice_at, ingress_class, ingress_routes, service};
use sluice_fake_apiserver::{FakeApi, Recorded};
use sluice_testnet::pebble::{self, Pebble, PebbleOptions};

/// The namespace of the Ingress, its Service and its certificate Secret.
const NAMESPACE: &str = "default";
/// The leader-election namespace: the Lease, the account and challenge Secrets.
const LEASE_NAMESPACE: &str = "sluice";
const HOST: &str = "shop.acme.test";
const SECRET: &str = "shop-tls";
const ACCOUNT_SECRET: &str = "sluice-acme-account";
const CHALLENGES_SECRET: &str = "sluice-acme-challenges";
const ORDERING: &str = "ordering a certificate";
/// Long enough for a few failed attempts while the CA is down (retry minimum 1 s, doubling)
/// and then an order.
const ISSUED_WITHIN: Duration = Duration::from_secs(90);

/// A fake API server holding the IngressClass `sluice`, and a fixture holding the logs and
/// the echo backend.
struct Cluster {
    fixture: Fixture,
    // Dropped last (the processes of a test, declared after it, are gone by then).
    fake: FakeApi,
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let fake = FakeApi::spawn();
        let fixture = Fixture::new(tag);
        fake.apply("ingressclasses", ingress_class("sluice"));
        Cluster { fixture, fake }
    }

    /// A `sluice echo` answering as `shop`, Service `shop` with an EndpointSlice pointing at
    /// it, and the Ingress `default/shop` for [`HOST`] asking for a certificate in [`SECRET`].
    fn shop(&mut self) {
        let addr = self.fixture.spawn_echo_free("shop");
        self.fake.apply("services", service(NAMESPACE, "shop", false));
        self.fake
            .apply("endpointslices", endpoint_slice_at(NAMESPACE, "shop-abc12", "shop", &["127.0.0.1"], addr.port()));
        let mut ingress = ingress_routes(NAMESPACE, "shop", HOST, &[("/", "shop", 80)]);
        ingress["metadata"]["annotations"] = json!({"kubernetes.io/tls-acme": "true"});
        ingress["spec"]["tls"] = json!([{"hosts": [HOST], "secretName": SECRET}]);
        self.fake.apply("ingresses", ingress);
    }

    /// `sluice run --kubernetes` as replica `name` (its own kubeconfig token, POD_NAME and
    /// NODE_NAME), leader election on in [`LEASE_NAMESPACE`], ACME against `directory`
    /// trusting `ca_bundle`; not waited for.
    fn replica(&self, name: &str, directory: &str, ca_bundle: &Path) -> Sluice {
        let dir = self.fixture.dir.path();
        let kubeconfig = self.fake.kubeconfig_with_token(&dir.join(format!("kubeconfig-{name}")), name);
        let (kubeconfig, ca_bundle) = (kubeconfig.display().to_string(), ca_bundle.display().to_string());
        let args = [
            "--kubernetes",
            "--kubeconfig",
            &kubeconfig,
            "--leader-elect",
            "true",
            "--lease-namespace",
            LEASE_NAMESPACE,
            "--workers",
            "1",
            "--acme-directory",
            directory,
            "--acme-ca-bundle",
            &ca_bundle,
            "--acme-email",
            "ops@acme.test",
            "--acme-retry-min",
            "1s",
        ];
        let node = format!("node-{name}");
        Sluice::spawn_with(dir, &args, &[("POD_NAME", name), ("NODE_NAME", &node)])
    }

    /// Waits until `replica` (started by [`Cluster::replica`] as `name`) is ready; when one of
    /// its ports was taken meanwhile (by a parallel test), starts it again on other ports.
    fn wait_ready(&self, name: &str, replica: &mut Sluice, directory: &str, ca_bundle: &Path) {
        let mut attempt = 1;
        loop {
            match replica.wait_ready() {
                Ok(()) => return,
                Err(e) if attempt < 3 && e.contains("in use") => {
                    attempt += 1;
                    *replica = self.replica(name, directory, ca_bundle);
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }

    /// The holder of the leader-election Lease.
    fn lease_holder(&self) -> Option<String> {
        let lease = self.fake.get("leases", LEASE_NAMESPACE, "sluice-leader")?;
        lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(str::to_owned)
    }

    /// Waits (up to 20 s) for a Lease holder.
    fn wait_for_leader(&self) -> String {
        let mut holder = None;
        let found = wait_until(Duration::from_secs(20), || {
            holder = self.lease_holder();
            holder.is_some()
        });
        assert!(found, "no leader within 20 s: {:?}", self.fake.get("leases", LEASE_NAMESPACE, "sluice-leader"));
        holder.unwrap()
    }

    /// The data of Secret `namespace/name` as stored, decoded.
    fn secret_data(&self, namespace: &str, name: &str) -> Option<Vec<(String, Vec<u8>)>> {
        let secret = self.fake.get("secrets", namespace, name)?;
        let data = secret["data"].as_object().cloned().unwrap_or_default();
        let decode = |v: &Value| base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default());
        Some(data.iter().map(|(k, v)| (k.clone(), decode(v).unwrap_or_else(|e| panic!("{name}.{k}: {e}")))).collect())
    }

    /// The writes (anything but GET) by the client using `token`, other than Leases.
    fn writes_by(&self, token: &str) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.token.as_deref() == Some(token) && !r.path.contains("/leases"))
            .collect()
    }
}

/// A TLS client trusting only `root_pem` (PEM), verifying the host name.
fn trusting<'a>(root: &'a CertificateDer<'_>) -> TlsOptions<'a> {
    TlsOptions { trust: Some(root.as_ref()), ..TlsOptions::default() }
}

/// The leaf `sluice` serves for [`HOST`] once it chains to `root`, within `within`.
fn wait_for_issued(sluice: &Sluice, root: &CertificateDer<'_>, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match tls_connect(sluice.https, HOST, trusting(root)) {
            Ok(stream) => return leaf_der(&stream),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{} serves no certificate for {HOST} chaining to the expected root within {within:?} (last: {last}); log:\n{}",
        sluice.https,
        sluice.proc.log()
    );
}

/// `GET https://HOST/` through `sluice`, trusting only `root`: the status, the backend, the leaf.
fn https_get(sluice: &Sluice, root: &CertificateDer<'_>) -> (u16, String, Vec<u8>) {
    let request = http_request("GET", HOST, "/", &[], b"");
    let (answer, leaf) = https_exchange(sluice.https, HOST, trusting(root), &request)
        .unwrap_or_else(|e| panic!("HTTPS request through {}: {e}", sluice.https));
    let service = if answer.status == 200 { answer.echo().service().to_owned() } else { String::new() };
    (answer.status, service, leaf)
}

/// The DNS names of a certificate's subject alternative name extension, and its notAfter.
fn names_and_not_after(der: &[u8]) -> (Vec<String>, i64) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("a certificate");
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(name) => Some((*name).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (names, cert.validity().not_after.timestamp())
}

fn expiry_metric() -> String {
    format!("sluice_acme_certificate_expiry_timestamp_seconds{{secret=\"{NAMESPACE}/{SECRET}\",host=\"{HOST}\"}}")
}

#[test]
fn two_replicas_one_issuer_challenge_answered_by_either() {
    let started = Instant::now();
    let mut cluster = Cluster::new("acme-k8s-replicas");
    cluster.shop();
    // The CA's address and TLS identity are known before it starts: the replicas point at it
    // now and keep retrying until it is up.
    let identity = pebble::tls_identity();
    let ca_bundle: PathBuf = cluster.fixture.dir.write("pebble-tls.pem", &identity.0);
    let ca_port = pebble::free_port();
    let directory = format!("https://127.0.0.1:{ca_port}/dir");
    let mut replicas: Vec<(String, Sluice)> = ["replica-a", "replica-b"]
        .into_iter()
        .map(|name| (name.to_owned(), cluster.replica(name, &directory, &ca_bundle)))
        .collect();
    for (name, replica) in &mut replicas {
        cluster.wait_ready(name, replica, &directory, &ca_bundle);
    }
    let leader_name = cluster.wait_for_leader();
    let leader_index = replicas.iter().position(|(name, _)| *name == leader_name).expect("the holder is a replica");
    let (leader, follower) = (&replicas[leader_index].1, &replicas[1 - leader_index].1);
    let follower_name = replicas[1 - leader_index].0.clone();
    eprintln!("leader {leader_name} after {:?}", started.elapsed());

    // The CA validates against the replica that does not lead: it can only answer from the
    // challenge Secret the leader wrote.
    let pebble = Pebble::start(&PebbleOptions {
        http_port: follower.http.port(),
        tls_port: follower.https.port(),
        nonce_reject: Some(0),
        listen_port: Some(ca_port),
        tls_identity: Some(identity),
        ..Default::default()
    });
    let ca_up = Instant::now();
    let root_pem = pebble.issuing_root_pem();
    let root = CertificateDer::from_pem_slice(root_pem.as_bytes()).expect("pebble's issuing root");

    // The certificate Secret appears in the API server, holding a chain for the host.
    let stored = wait_until(ISSUED_WITHIN, || cluster.fake.get("secrets", NAMESPACE, SECRET).is_some());
    assert!(
        stored,
        "Secret {NAMESPACE}/{SECRET} not written within {ISSUED_WITHIN:?} of the CA starting; leader log:\n{}\nfollower log:\n{}",
        leader.proc.log(),
        follower.proc.log()
    );
    eprintln!("certificate Secret stored {:?} after the CA came up", ca_up.elapsed());
    let secret = cluster.fake.get("secrets", NAMESPACE, SECRET).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls", "{secret}");
    let data = cluster.secret_data(NAMESPACE, SECRET).unwrap();
    let value = |key: &str| data.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let chain_pem = value("tls.crt").expect("tls.crt");
    assert!(value("tls.key").is_some_and(|key| !key.is_empty()), "tls.key");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&chain_pem).collect::<Result<_, _>>().expect("tls.crt is PEM");
    assert!(chain.len() >= 2, "a chain (leaf and intermediate), got {} certificate(s)", chain.len());
    let (names, not_after) = names_and_not_after(&chain[0]);
    assert_eq!(names, vec![HOST.to_owned()]);
    assert!(not_after > SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64);

    // The account is kept in the leader-election namespace.
    let account = cluster.secret_data(LEASE_NAMESPACE, ACCOUNT_SECRET);
    assert!(
        account.as_ref().is_some_and(|d| d.iter().any(|(_, v)| !v.is_empty())),
        "account Secret {LEASE_NAMESPACE}/{ACCOUNT_SECRET}: {account:?}"
    );

    // Both replicas serve the issued certificate, and route the host.
    for (what, replica) in [("leader", leader), ("follower", follower)] {
        let served = wait_for_issued(replica, &root, Duration::from_secs(10));
        assert_eq!(served, chain[0].as_ref(), "the {what} serves the stored leaf");
        let (status, service, leaf) = https_get(replica, &root);
        assert_eq!((status, service.as_str()), (200, "shop"), "HTTPS through the {what}");
        assert_eq!(leaf, chain[0].as_ref());
    }

    // Only the leader ordered; the follower wrote nothing but its Leases.
    let (leader_log, follower_log) = (leader.proc.log(), follower.proc.log());
    assert!(leader_log.contains(ORDERING), "the leader never ordered; log:\n{leader_log}");
    assert!(leader_log.contains("certificate issued"), "{leader_log}");
    assert!(!follower_log.contains(ORDERING), "the follower ordered; log:\n{follower_log}");
    let follower_writes = cluster.writes_by(&follower_name);
    assert!(follower_writes.is_empty(), "the follower wrote: {follower_writes:#?}");
    let secret_writes: Vec<Recorded> =
        cluster.fake.requests().into_iter().filter(|r| r.method != "GET" && r.path.contains("/secrets")).collect();
    assert!(
        secret_writes.iter().all(|w| w.token.as_deref() == Some(leader_name.as_str())),
        "Secrets written by someone else than the leader: {secret_writes:#?}"
    );

    // The challenge Secret was used, and every answer withdrawn.
    let published = secret_writes.iter().any(|w| {
        w.path.contains(&format!("/namespaces/{LEASE_NAMESPACE}/secrets"))
            && w.body["metadata"]["name"] == CHALLENGES_SECRET
            && w.body["data"].as_object().is_some_and(|d| d.keys().any(|k| k.starts_with("http-01.")))
    });
    assert!(published, "no HTTP-01 answer was published in {LEASE_NAMESPACE}/{CHALLENGES_SECRET}");
    let http01_keys = || -> Vec<String> {
        let data = cluster.secret_data(LEASE_NAMESPACE, CHALLENGES_SECRET).expect("the challenge Secret");
        data.into_iter().map(|(k, _)| k).filter(|k| k.starts_with("http-01.")).collect()
    };
    let withdrawn = wait_until(Duration::from_secs(5), || http01_keys().is_empty());
    assert!(withdrawn, "answers left in the challenge Secret: {:?}", http01_keys());
    assert_eq!(
        cluster.fake.get("secrets", LEASE_NAMESPACE, CHALLENGES_SECRET).unwrap()["type"],
        "sluice.dev/acme-challenges"
    );
    eprintln!("done after {:?}", started.elapsed());
}

/// A self-signed certificate for `names` valid from a minute ago for 90 days (rcgen's
/// defaults are decades), and its key.
fn ninety_day_cert(names: &[&str]) -> (TestCert, i64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let not_after = now + 90 * 24 * 3600;
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .expect("certificate parameters");
    params.not_before = epoch + Duration::from_secs(now - 60);
    params.not_after = epoch + Duration::from_secs(not_after);
    let cert = params.self_signed(&key).expect("certificate");
    let test_cert = TestCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() };
    (test_cert, not_after as i64)
}

#[test]
fn a_secret_written_by_another_replica_is_served_without_ordering() {
    let mut cluster = Cluster::new("acme-k8s-stored");
    cluster.shop();
    let (cert, not_after) = ninety_day_cert(&[HOST]);
    assert_eq!(names_and_not_after(&cert.der), (vec![HOST.to_owned()], not_after));
    cluster.fake.apply(
        "secrets",
        json!({"metadata": {"namespace": NAMESPACE, "name": SECRET}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": base64(cert.cert_pem.as_bytes()), "tls.key": base64(cert.key_pem.as_bytes())}}),
    );
    // A CA where nothing listens: any order would fail (and be logged).
    let ca_bundle = cluster.fixture.dir.write("ca.pem", &pebble::tls_identity().0);
    let directory = format!("https://127.0.0.1:{}/dir", pebble::free_port());
    let mut sluice = cluster.replica("replica-a", &directory, &ca_bundle);
    cluster.wait_ready("replica-a", &mut sluice, &directory, &ca_bundle);
    let start = Instant::now();
    assert_eq!(cluster.wait_for_leader(), "replica-a");

    // Served at once from the Secret.
    let root = CertificateDer::from(cert.der.clone());
    let served = wait_for_issued(&sluice, &root, Duration::from_secs(5));
    assert_eq!(served, cert.der);
    let (status, service, _) = https_get(&sluice, &root);
    assert_eq!((status, service.as_str()), (200, "shop"));

    // The issuer looked (its expiry gauge is set, to the certificate's notAfter)…
    let expiry = expiry_metric();
    let mut metrics = String::new();
    let looked = wait_until(Duration::from_secs(10), || {
        metrics = sluice.try_metrics().unwrap_or_default();
        metric_value(&metrics, &expiry).is_some()
    });
    assert!(looked, "no {expiry} in /metrics:\n{metrics}\nlog:\n{}", sluice.proc.log());
    assert_eq!(metric_value(&metrics, &expiry), Some(not_after as f64), "{metrics}");

    // …and found nothing due: no order in the next seconds, nothing written.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(start.elapsed()).max(Duration::from_secs(1)));
    sluice.proc.assert_running();
    let log = sluice.proc.log();
    assert!(!log.contains(ORDERING), "ordered although the stored certificate is valid; log:\n{log}");
    let metrics = sluice.metrics();
    assert!(metric_value(&metrics, "sluice_acme_orders_total").is_none(), "{metrics}");
    let secret_writes: Vec<Recorded> =
        cluster.fake.requests().into_iter().filter(|r| r.method != "GET" && r.path.contains("/secrets")).collect();
    assert!(secret_writes.is_empty(), "Secrets written: {secret_writes:#?}");
    assert_eq!(wait_for_issued(&sluice, &root, Duration::from_secs(1)), cert.der, "still served");
}
