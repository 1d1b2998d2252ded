//! What a cluster would hold for one test, written as manifests for `sluice run`, and the
//! echo processes standing in for its pods.
//!
//! - The base manifests and the test's files with `{GATEWAY_CLASS_NAME}` and
//!   `{GATEWAY_CONTROLLER_NAME}` substituted, as the API server stores them on create
//!   (Gateway API objects at `metadata.generation: 1`, Namespaces labelled
//!   `kubernetes.io/metadata.name`);
//! - our GatewayClass;
//! - the objects the suite creates in code (`suite.go`: serving certificates, CA
//!   ConfigMaps, client certificates), generated once per run;
//! - one pod per Deployment replica, named as Kubernetes names them (`<deployment>-<hash>-<id>`),
//!   each on its own loopback address, with its literal environment (`SERVICE_NAME`, ports)
//!   and the Secret it mounts as echo-basic's certificate; a pod running echo-basic's HTTP
//!   server becomes a `sluice echo` on ports 3000 (HTTP/1.1 and h2c) and 3001 (h2c only),
//!   the other servers are started by `backends.rs`;
//! - per Service with a selector, an EndpointSlice (label `kubernetes.io/service-name`)
//!   listing the pods whose labels match, with the Service's port names and target ports,
//!   as the EndpointSlice controller writes it.
//!
//! Every document is written as one line of JSON (JSON is YAML) so that what Sluice reads
//! is exactly the objects built here.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{base64, wait_until, Proc, SLUICE};

/// The name substituted for `{GATEWAY_CLASS_NAME}`.
pub const CLASS: &str = "sluice-conformance";
/// Sluice's Gateway controller name, substituted for `{GATEWAY_CONTROLLER_NAME}`.
pub const CONTROLLER: &str = "sluice.dev/gateway-controller";
/// echo-basic's HTTP port (`HTTP_PORT`).
pub const HTTP_PORT: u16 = 3000;
/// echo-basic's h2c port (`H2C_PORT`).
pub const H2C_PORT: u16 = 3001;

/// Substitutes the suite's placeholders.
pub fn substitute(text: &str) -> String {
    text.replace("{GATEWAY_CLASS_NAME}", CLASS).replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER)
}

/// Every non-empty document of a YAML stream.
pub fn parse_yaml(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| format!("YAML: {e}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The manifests as written for Sluice: one JSON document per `---`.
pub fn yaml_stream(docs: &[Value]) -> String {
    docs.iter().map(|d| format!("---\n{d}\n")).collect()
}

/// `kind`, `metadata.namespace` (empty for none) and `metadata.name` of a document.
pub fn identity(doc: &Value) -> (&str, &str, &str) {
    fn text(v: Option<&Value>) -> &str {
        v.and_then(Value::as_str).unwrap_or_default()
    }
    let meta = doc.get("metadata");
    (text(doc.get("kind")), text(meta.and_then(|m| m.get("namespace"))), text(meta.and_then(|m| m.get("name"))))
}

/// What the API server adds on create that the tests rely on: `metadata.generation: 1` on
/// Gateway API objects (so that `observedGeneration` can be checked), a `creationTimestamp`
/// ([`CREATED`], unless the object has one: routes created later by a Go test are younger),
/// and on every Namespace the `kubernetes.io/metadata.name` label (set since Kubernetes
/// 1.22; listeners select namespaces by it).
pub fn as_created(docs: &mut [Value]) {
    for doc in docs {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        let gateway_api =
            doc.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("gateway.networking.k8s.io/"));
        let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        if gateway_api {
            meta.entry("generation").or_insert(json!(1));
        }
        // All created together; objects the Go tests create later say when.
        meta.entry("creationTimestamp").or_insert(json!(CREATED));
        if kind == "Namespace" {
            let name = meta.get("name").cloned().unwrap_or(Value::Null);
            let labels = meta.entry("labels").or_insert(json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".to_owned(), name);
            }
        }
    }
}

/// The `creationTimestamp` of the objects written before Sluice starts.
pub const CREATED: &str = "2026-01-01T00:00:00Z";

/// Our GatewayClass.
pub fn gateway_class() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": CLASS, "generation": 1},
        "spec": {"controllerName": CONTROLLER}
    })
}

// ---------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------

/// What a pod runs, from its container's image and environment (echo-basic picks its
/// server from `GRPC_ECHO_SERVER`, `TCP_ECHO_SERVER`, `UDP_ECHO_SERVER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// echo-basic's HTTP server (a `sluice echo`), and its HTTPS port when the pod mounts a
    /// certificate (`backends.rs`).
    Http,
    /// echo-basic's gRPC server (`backends.rs`).
    Grpc,
    /// echo-basic's TCP server (`backends.rs`).
    Tcp,
    /// echo-basic's UDP server (`backends.rs`).
    Udp,
    /// CoreDNS (UDPRoute tests): a DNS server answering as its `whoami` plugin (`backends.rs`).
    Dns,
    /// Another image (not started).
    Other,
}

/// One pod of a Deployment.
#[derive(Clone, Debug)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// The Deployment.
    pub deployment: String,
    /// `<deployment>-<hash>-<id>`.
    pub name: String,
    /// Its loopback address.
    pub ip: Ipv4Addr,
    /// The template's labels.
    pub labels: BTreeMap<String, String>,
    /// What it runs.
    pub kind: BackendKind,
    /// The container's environment variables with literal values (`SERVICE_NAME`,
    /// `TCP_PORT`, `HTTPS_PORT`, …).
    pub env: BTreeMap<String, String>,
    /// The Secret (in the pod's namespace) mounted as the server's certificate, for pods
    /// whose echo-basic serves TLS (`TLS_SERVER_CERT`).
    pub tls_secret: Option<String>,
}

impl Pod {
    /// An environment variable's value, or `default`.
    pub fn env_or(&self, name: &str, default: &str) -> String {
        self.env.get(name).cloned().unwrap_or_else(|| default.to_owned())
    }

    /// A port from the environment (`HTTP_PORT`, `TCP_PORT`, …), or `default`.
    pub fn port(&self, name: &str, default: u16) -> u16 {
        self.env.get(name).and_then(|p| p.parse().ok()).unwrap_or(default)
    }
}

/// A deterministic name suffix from Kubernetes' alphabet (no vowels, no look-alikes).
fn suffix(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for i in 0..len {
        for b in seed.bytes().chain([i as u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
    }
    out
}

fn backend_kind(container: &Value) -> BackendKind {
    let image = container.get("image").and_then(Value::as_str).unwrap_or_default();
    let env: Vec<&str> = container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("name").and_then(Value::as_str))
        .collect();
    if image.contains("coredns") {
        BackendKind::Dns
    } else if !image.contains("echo-basic") {
        BackendKind::Other
    } else if env.contains(&"GRPC_ECHO_SERVER") {
        BackendKind::Grpc
    } else if env.contains(&"TCP_ECHO_SERVER") {
        BackendKind::Tcp
    } else if env.contains(&"UDP_ECHO_SERVER") {
        BackendKind::Udp
    } else {
        BackendKind::Http
    }
}

/// The pods of every Deployment among `docs`, addresses from `next_ip`.
pub fn pods(docs: &[Value], mut next_ip: impl FnMut() -> Ipv4Addr) -> Vec<Pod> {
    let mut pods = Vec::new();
    for doc in docs {
        let (kind, namespace, name) = identity(doc);
        if kind != "Deployment" {
            continue;
        }
        let spec = doc.get("spec").unwrap_or(&Value::Null);
        let replicas = spec.get("replicas").and_then(Value::as_u64).unwrap_or(1);
        let template = spec.get("template").unwrap_or(&Value::Null);
        let labels: BTreeMap<String, String> = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let container = template.pointer("/spec/containers/0").unwrap_or(&Value::Null);
        let env: BTreeMap<String, String> = container
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.get("name")?.as_str()?.to_owned(), e.get("value")?.as_str()?.to_owned())))
            .collect();
        let tls_secret = if env.contains_key("TLS_SERVER_CERT") {
            template
                .pointer("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|v| v.pointer("/secret/secretName").and_then(Value::as_str).map(str::to_owned))
        } else {
            None
        };
        let hash = suffix(&format!("{namespace}/{name}"), 10);
        for replica in 0..replicas {
            pods.push(Pod {
                namespace: namespace.to_owned(),
                deployment: name.to_owned(),
                name: format!("{name}-{hash}-{}", suffix(&format!("{namespace}/{name}/{replica}"), 5)),
                ip: next_ip(),
                labels: labels.clone(),
                kind: backend_kind(container),
                env: env.clone(),
                tls_secret: tls_secret.clone(),
            });
        }
    }
    pods
}

/// Whether `labels` has every entry of `selector`.
fn selects(selector: &serde_json::Map<String, Value>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

fn endpoint(pod: &Pod) -> Value {
    json!({
        "addresses": [pod.ip.to_string()],
        "conditions": {"ready": true, "serving": true, "terminating": false},
        "targetRef": {"kind": "Pod", "namespace": pod.namespace, "name": pod.name}
    })
}

/// The EndpointSlices the EndpointSlice controller would write: one per Service with a
/// non-empty selector, listing the matching pods of its namespace.
pub fn endpoint_slices(docs: &[Value], pods: &[Pod]) -> Vec<Value> {
    let mut slices = Vec::new();
    for doc in docs {
        let (kind, namespace, name) = identity(doc);
        if kind != "Service" {
            continue;
        }
        let spec = doc.get("spec").unwrap_or(&Value::Null);
        let Some(selector) = spec.get("selector").and_then(Value::as_object).filter(|s| !s.is_empty()) else {
            continue;
        };
        let ports: Vec<Value> = spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let port = p.get("port").and_then(Value::as_u64)?;
                // A named targetPort would need the container's port names; the suite's
                // Services use numbers.
                let target = match p.get("targetPort") {
                    None => port,
                    Some(t) => t.as_u64()?,
                };
                let mut entry = json!({"port": target, "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
                if let Some(n) = p.get("name") {
                    entry["name"] = n.clone();
                }
                if let Some(a) = p.get("appProtocol") {
                    entry["appProtocol"] = a.clone();
                }
                Some(entry)
            })
            .collect();
        let endpoints: Vec<Value> =
            pods.iter().filter(|p| p.namespace == namespace && selects(selector, &p.labels)).map(endpoint).collect();
        slices.push(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-{}", suffix(&format!("{namespace}/{name}/slice"), 5)),
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
            },
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints
        }));
    }
    slices
}

/// What a test's Go code does to manifest EndpointSlices before sending requests
/// (`httproute-service-types.go`'s `setupEndpointSlices`): the IPv4 slice named
/// `<prefix>-ip4` gets one ready endpoint per pod of `deployment`.
pub fn fill_slices(docs: &mut [Value], namespace: &str, prefixes: &[&str], deployment: &str, pods: &[Pod]) {
    let endpoints: Vec<Value> =
        pods.iter().filter(|p| p.namespace == namespace && p.deployment == deployment).map(endpoint).collect();
    for doc in docs {
        let (kind, ns, name) = identity(doc);
        if kind == "EndpointSlice" && ns == namespace && prefixes.iter().any(|p| name == format!("{p}-ip4")) {
            doc["endpoints"] = json!(endpoints);
        }
    }
}

// ---------------------------------------------------------------------------
// Certificates the suite creates in code
// ---------------------------------------------------------------------------

/// The Secrets and ConfigMaps `suite.go` creates, and what the harness needs of them.
#[derive(Clone, Debug)]
pub struct Programmatic {
    /// The objects.
    pub objects: Vec<Value>,
    /// DER of `tls-validity-checks-certificate`, which HTTPS listeners of the suite serve.
    pub validity_cert_der: Vec<u8>,
    /// Every Secret's certificate and key (PEM) and certificate (DER), by namespace and name.
    pub secrets: BTreeMap<(String, String), KeyPair>,
    /// Every CA ConfigMap's `ca.crt` (DER), by namespace and name.
    pub cas: BTreeMap<(String, String), Vec<u8>>,
}

/// A certificate and its key, as a Secret holds them.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// `tls.crt`.
    pub cert_pem: String,
    /// `tls.key`.
    pub key_pem: String,
    /// The certificate's DER.
    pub cert_der: Vec<u8>,
}

impl Programmatic {
    /// The Secret `ns/name`.
    pub fn secret(&self, ns: &str, name: &str) -> Result<&KeyPair, String> {
        self.secrets.get(&(ns.to_owned(), name.to_owned())).ok_or_else(|| format!("no Secret {ns}/{name}"))
    }

    /// The `ca.crt` of ConfigMap `ns/name`.
    pub fn ca(&self, ns: &str, name: &str) -> Result<&[u8], String> {
        self.cas
            .get(&(ns.to_owned(), name.to_owned()))
            .map(Vec::as_slice)
            .ok_or_else(|| format!("no CA ConfigMap {ns}/{name}"))
    }
}

/// One certificate and its key.
struct Pem {
    cert: String,
    key: String,
    der: Vec<u8>,
}

fn is_dns_name(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Certificate parameters as `generateRSACert` fills them: DNS names for valid host names,
/// URIs for the rest (so `*` becomes a URI, as in the suite).
fn leaf_params(hosts: &[&str], client: bool) -> Result<rcgen::CertificateParams, String> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "default");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme Co");
    for host in hosts {
        let ia5 = rcgen::string::Ia5String::try_from(*host).map_err(|e| format!("{host}: {e}"))?;
        params.subject_alt_names.push(if is_dns_name(host) {
            rcgen::SanType::DnsName(ia5)
        } else {
            rcgen::SanType::URI(ia5)
        });
    }
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    Ok(params)
}

fn self_signed(hosts: &[&str]) -> Result<Pem, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = leaf_params(hosts, false)?.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() })
}

/// A CA: its certificate and key.
struct Ca {
    certified: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

fn ca() -> Result<Ca, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "conformance CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let certified = rcgen::CertifiedIssuer::self_signed(params, key).map_err(|e| e.to_string())?;
    Ok(Ca { certified })
}

fn signed(hosts: &[&str], client: bool, ca: &Ca) -> Result<Pem, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = leaf_params(hosts, client)?.signed_by(&key, &*ca.certified).map_err(|e| e.to_string())?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() })
}

fn tls_secret(namespace: &str, name: &str, pem: &Pem) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64(pem.cert.as_bytes()), "tls.key": base64(pem.key.as_bytes())}
    })
}

fn ca_config_map(namespace: &str, name: &str, ca: &Ca) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"ca.crt": ca.certified.pem()}
    })
}

/// The objects `suite.go` creates after applying the base manifests.
pub fn programmatic() -> Result<Programmatic, String> {
    const INFRA: &str = "gateway-conformance-infra";
    const WEB: &str = "gateway-conformance-web-backend";
    const APP: &str = "gateway-conformance-app-backend";
    let mut objects = Vec::new();
    let mut secrets = BTreeMap::new();
    let mut cas = BTreeMap::new();
    let mut tls_secret = |ns: &str, name: &str, pem: &Pem| {
        secrets.insert(
            (ns.to_owned(), name.to_owned()),
            KeyPair { cert_pem: pem.cert.clone(), key_pem: pem.key.clone(), cert_der: pem.der.clone() },
        );
        tls_secret(ns, name, pem)
    };
    let mut ca_config_map = |ns: &str, name: &str, ca: &Ca| {
        cas.insert((ns.to_owned(), name.to_owned()), ca.certified.der().to_vec());
        ca_config_map(ns, name, ca)
    };
    objects.push(tls_secret(WEB, "certificate", &self_signed(&["*"])?));
    let validity = self_signed(&["*", "*.org", "*.wildcard.org"])?;
    objects.push(tls_secret(INFRA, "tls-validity-checks-certificate", &validity));
    objects.push(ca_config_map(WEB, "web-backend-cm", &ca()?));

    let validity_ca = ca()?;
    objects.push(ca_config_map(INFRA, "tls-validity-checks-ca-certificate", &validity_ca));
    objects.push(tls_secret(INFRA, "tls-validity-checks-client-certificate", &signed(&[], true, &validity_ca)?));
    let per_port_ca = ca()?;
    objects.push(ca_config_map(INFRA, "tls-validity-checks-per-port-ca-certificate", &per_port_ca));
    objects.push(tls_secret(
        INFRA,
        "tls-validity-checks-per-port-client-certificate",
        &signed(&[], true, &per_port_ca)?,
    ));

    let checks_ca = ca()?;
    objects.push(ca_config_map(INFRA, "tls-checks-ca-certificate", &checks_ca));
    let checks_hosts = ["abc.example.com", "spiffe://abc.example.com/test-identity", "other.example.com"];
    objects.push(tls_secret(INFRA, "tls-checks-certificate", &signed(&checks_hosts, false, &checks_ca)?));
    objects.push(tls_secret(INFRA, "tls-checks-client-certificate", &signed(&[], true, &checks_ca)?));
    let passthrough = signed(&["abc.example.com"], false, &checks_ca)?;
    objects.push(tls_secret(INFRA, "tls-passthrough-checks-certificate", &passthrough));
    objects.push(tls_secret(
        APP,
        "tls-passthrough-checks-certificate",
        &signed(&["abc.example.com"], false, &checks_ca)?,
    ));
    objects.push(tls_secret(
        INFRA,
        "tls-terminate-checks-certificate",
        &signed(&["tls.example.com"], false, &checks_ca)?,
    ));
    objects.push(ca_config_map(INFRA, "mismatch-ca-certificate", &ca()?));
    Ok(Programmatic { objects, validity_cert_der: validity.der, secrets, cas })
}

// ---------------------------------------------------------------------------
// Echo processes
// ---------------------------------------------------------------------------

/// A running echo standing in for a pod.
pub struct EchoPod {
    /// The pod.
    pub pod: Pod,
    /// Its stdout (requests, with `--log-requests`) and stderr.
    pub log: PathBuf,
    /// The process.
    _proc: Proc,
}

/// Starts a `sluice echo` for every pod running echo-basic's HTTP server and waits until
/// each accepts connections. Pods of other kinds have no process (connections to them are
/// refused).
pub fn start_echoes(pods: &[Pod], log_dir: &Path) -> Result<Vec<EchoPod>, String> {
    let mut started = Vec::new();
    for pod in pods.iter().filter(|p| p.kind == BackendKind::Http) {
        let listen = SocketAddr::from((pod.ip, HTTP_PORT));
        let h2c = SocketAddr::from((pod.ip, H2C_PORT));
        let log = log_dir.join(format!("echo-{}-{}.log", pod.namespace, pod.name));
        let mut cmd = Command::new(SLUICE);
        cmd.args(["echo", "--listen", &listen.to_string(), "--h2c-listen", &h2c.to_string()]).args([
            "--name",
            &pod.deployment,
            "--pod",
            &pod.name,
            "--namespace",
            &pod.namespace,
            "--log-requests",
        ]);
        let mut proc = Proc::spawn(&format!("echo {}/{}", pod.namespace, pod.name), cmd, log.clone(), false);
        let up = wait_until(Duration::from_secs(10), || {
            proc.exited().is_some() || TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok()
        });
        if proc.exited().is_some() || !up {
            return Err(format!("echo for pod {} on {listen} did not start:\n{}", pod.name, proc.log()));
        }
        started.push(EchoPod { pod: pod.clone(), log, _proc: proc });
    }
    Ok(started)
}

/// Writes `docs` to `dir/<file>`.
pub fn write_docs(dir: &Path, file: &str, docs: &[Value]) -> Result<PathBuf, String> {
    let path = dir.join(file);
    fs::write(&path, yaml_stream(docs)).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/gateway-api/base/manifests.yaml");

    fn base_docs() -> Vec<Value> {
        let text = fs::read_to_string(BASE).expect("read base manifests");
        parse_yaml(&substitute(&text)).expect("base manifests parse")
    }

    fn ips() -> impl FnMut() -> Ipv4Addr {
        let mut n = 0u8;
        move || {
            n += 1;
            Ipv4Addr::new(127, 77, 0, n)
        }
    }

    #[test]
    fn placeholders_are_substituted_and_objects_stored_as_created() {
        let docs = base_docs();
        let gateways: Vec<&Value> = docs.iter().filter(|d| identity(d).0 == "Gateway").collect();
        assert!(gateways.len() >= 4);
        assert!(gateways.iter().all(|g| g.pointer("/spec/gatewayClassName") == Some(&json!(CLASS))));
        let mut docs = docs;
        as_created(&mut docs);
        for doc in &docs {
            let has = doc.pointer("/metadata/generation").is_some();
            assert_eq!(has, identity(doc).0 == "Gateway", "{:?}", identity(doc));
        }
        let infra = docs.iter().find(|d| identity(d) == ("Namespace", "", "gateway-conformance-infra")).unwrap();
        assert_eq!(infra.pointer("/metadata/labels/gateway-conformance"), Some(&json!("infra")), "kept");
        assert_eq!(
            infra.pointer("/metadata/labels/kubernetes.io~1metadata.name"),
            Some(&json!("gateway-conformance-infra")),
            "added"
        );
        assert_eq!(
            substitute("{GATEWAY_CONTROLLER_NAME} {GATEWAY_CLASS_NAME}"),
            "sluice.dev/gateway-controller sluice-conformance"
        );
    }

    #[test]
    fn pods_follow_their_deployments() {
        let docs = base_docs();
        let pods = pods(&docs, ips());
        let v1: Vec<&Pod> = pods.iter().filter(|p| p.deployment == "infra-backend-v1").collect();
        assert_eq!(v1.len(), 2, "replicas: 2");
        assert_ne!(v1[0].name, v1[1].name);
        assert!(v1
            .iter()
            .all(|p| p.name.starts_with("infra-backend-v1-") && p.name.len() == "infra-backend-v1-".len() + 16));
        assert!(v1.iter().all(|p| p.kind == BackendKind::Http && p.namespace == "gateway-conformance-infra"));
        let kind = |d: &str| pods.iter().find(|p| p.deployment == d).map(|p| p.kind);
        assert_eq!(kind("grpc-infra-backend-v1"), Some(BackendKind::Grpc));
        assert_eq!(kind("tcp-backend"), Some(BackendKind::Tcp));
        assert_eq!(kind("coredns"), Some(BackendKind::Dns));
        assert_eq!(kind("tls-backend"), Some(BackendKind::Http));
        let tcp = pods.iter().find(|p| p.deployment == "tcp-backend").unwrap();
        assert_eq!(tcp.tls_secret.as_deref(), Some("tls-passthrough-checks-certificate"));
        assert_eq!(tcp.env.get("TCP_ECHO_SERVER").map(String::as_str), Some("1"));
        let plain = pods.iter().find(|p| p.deployment == "infra-backend-v1").unwrap();
        assert_eq!(plain.tls_secret, None);
        let mut ips: Vec<Ipv4Addr> = pods.iter().map(|p| p.ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), pods.len(), "one address per pod");
        // The same manifests name the same pods.
        let again = super::pods(&docs, self::ips());
        assert_eq!(pods.iter().map(|p| &p.name).collect::<Vec<_>>(), again.iter().map(|p| &p.name).collect::<Vec<_>>());
    }

    #[test]
    fn endpoint_slices_list_selected_pods_with_port_names_and_target_ports() {
        let docs = base_docs();
        let pods = pods(&docs, ips());
        let slices = endpoint_slices(&docs, &pods);
        let slice = |svc: &str, ns: &str| {
            slices
                .iter()
                .find(|s| {
                    s.pointer("/metadata/labels/kubernetes.io~1service-name") == Some(&json!(svc))
                        && s.pointer("/metadata/namespace") == Some(&json!(ns))
                })
                .unwrap_or_else(|| panic!("no slice for {ns}/{svc}"))
        };
        let v1 = slice("infra-backend-v1", "gateway-conformance-infra");
        let addresses: Vec<&str> =
            v1["endpoints"].as_array().unwrap().iter().map(|e| e["addresses"][0].as_str().unwrap()).collect();
        let want: Vec<String> =
            pods.iter().filter(|p| p.deployment == "infra-backend-v1").map(|p| p.ip.to_string()).collect();
        assert_eq!(addresses, want);
        assert_eq!(
            v1["ports"],
            json!([
                {"name": "first-port", "port": 3000, "protocol": "TCP"},
                {"name": "second-port", "port": 3001, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
                {"name": "third-port", "port": 3000, "protocol": "TCP", "appProtocol": "kubernetes.io/ws"}
            ])
        );
        assert_eq!(v1["addressType"], "IPv4");
        assert_eq!(v1["endpoints"][0]["conditions"]["ready"], true);
        // An unnamed port stays unnamed; pods of another namespace are not selected.
        let web = slice("web-backend", "gateway-conformance-web-backend");
        assert_eq!(web["ports"], json!([{"port": 3000, "protocol": "TCP"}]));
        assert_eq!(web["endpoints"].as_array().unwrap().len(), 2);
        let app_tls = slice("tls-backend", "gateway-conformance-app-backend");
        assert_eq!(app_tls["endpoints"].as_array().unwrap().len(), 1);
        let infra_tls = slice("tls-backend", "gateway-conformance-infra");
        assert_ne!(app_tls["endpoints"][0]["addresses"], infra_tls["endpoints"][0]["addresses"]);
        // Every Service of the base manifests has a selector, so each has one slice.
        let services = docs.iter().filter(|d| identity(d).0 == "Service").count();
        assert_eq!(slices.len(), services);
    }

    #[test]
    fn services_without_selector_get_no_slice_and_manual_slices_are_filled() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: gateway-conformance-infra}
spec:
  ports: [{name: first-port, port: 8080, targetPort: 3000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: manual-ip4, namespace: gateway-conformance-infra, labels: {kubernetes.io/service-name: manual}}
addressType: IPv4
ports: [{name: first-port, port: 3000, protocol: TCP}]
"#;
        let mut docs = parse_yaml(yaml).unwrap();
        let pods = pods(&base_docs(), ips());
        assert!(endpoint_slices(&docs, &pods).is_empty());
        fill_slices(&mut docs, "gateway-conformance-infra", &["manual"], "infra-backend-v1", &pods);
        assert_eq!(docs[1]["endpoints"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn written_manifests_read_back_as_the_same_objects() {
        let docs = base_docs();
        let text = yaml_stream(&docs);
        assert_eq!(parse_yaml(&text).unwrap(), docs);
    }

    #[test]
    fn programmatic_objects_are_the_suites() {
        let p = programmatic().expect("certificates");
        let names: Vec<(&str, &str, &str)> = p.objects.iter().map(identity).collect();
        for want in [
            ("Secret", "gateway-conformance-infra", "tls-validity-checks-certificate"),
            ("Secret", "gateway-conformance-web-backend", "certificate"),
            ("ConfigMap", "gateway-conformance-infra", "tls-checks-ca-certificate"),
            ("Secret", "gateway-conformance-app-backend", "tls-passthrough-checks-certificate"),
            ("ConfigMap", "gateway-conformance-infra", "mismatch-ca-certificate"),
        ] {
            assert!(names.contains(&want), "{want:?} missing");
        }
        assert!(!p.validity_cert_der.is_empty());
        assert!(is_dns_name("*.wildcard.org") && !is_dns_name("*") && !is_dns_name("spiffe://x/y"));
    }
}
