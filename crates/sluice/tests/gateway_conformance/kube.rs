//! The status expectations again, through the Kubernetes source: each test's objects are
//! created in a fake API server (`sluice-fake-apiserver`, the real list/watch protocol),
//! `sluice run --kubernetes` reads them, and the checks read the `status` the leader wrote
//! back to each object instead of the admin `/status`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_fake_apiserver::FakeApi;

use crate::common::{Sluice, TempDir};
use crate::fixture;
use crate::status::{self, Check};
use crate::table::UpstreamTest;
use crate::DATA;

/// How long the written status may take to meet every expectation.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

/// The API collection of each kind the tests create; other kinds (Deployments) are skipped.
const PLURALS: &[(&str, &str)] = &[
    ("Namespace", "namespaces"),
    ("Service", "services"),
    ("Secret", "secrets"),
    ("ConfigMap", "configmaps"),
    ("EndpointSlice", "endpointslices"),
    ("GatewayClass", "gatewayclasses"),
    ("Gateway", "gateways"),
    ("HTTPRoute", "httproutes"),
    ("GRPCRoute", "grpcroutes"),
    ("TLSRoute", "tlsroutes"),
    ("TCPRoute", "tcproutes"),
    ("UDPRoute", "udproutes"),
    ("ReferenceGrant", "referencegrants"),
    ("BackendTLSPolicy", "backendtlspolicies"),
];

/// The lists of the admin `/status` document, by collection.
const LISTS: &[(&str, &str)] = &[
    ("gatewayclasses", "gatewayclasses"),
    ("gateways", "gateways"),
    ("httproutes", "httproutes"),
    ("grpcroutes", "grpcroutes"),
    ("tlsroutes", "tlsroutes"),
    ("tcproutes", "tcproutes"),
    ("udproutes", "udproutes"),
    ("backendtlspolicies", "backendtlspolicies"),
];

/// Runs `test`'s status checks against the status written through the Kubernetes API: one
/// result per check.
pub fn run(
    test: &UpstreamTest,
    checks: &[Check],
    base: &[Value],
    generated: &[Value],
    index: usize,
) -> Vec<Result<(), String>> {
    let fail_all = |why: String| checks.iter().map(|_| Err(why.clone())).collect();
    let work = TempDir::new(&format!("gwconf-kube-{}", test.short_name.to_ascii_lowercase()));
    let fake = FakeApi::spawn();
    let mut docs: Vec<Value> = base.to_vec();
    for file in test.manifests {
        let path = Path::new(DATA).join("tests").join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => return fail_all(format!("read {}: {e}", path.display())),
        };
        match fixture::parse_yaml(&fixture::substitute(&text)) {
            Ok(mut parsed) => {
                fixture::as_created(&mut parsed);
                docs.extend(parsed);
            }
            Err(e) => return fail_all(format!("{file}: {e}")),
        }
    }
    docs.extend(generated.iter().cloned());
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if let Some((_, plural)) = PLURALS.iter().find(|(k, _)| *k == kind) {
            fake.apply(plural, doc.clone());
        }
    }
    let kubeconfig = fake.kubeconfig(work.path());
    let pool = format!("127.200.{}.0/24", index % 256);
    let kubeconfig = kubeconfig.display().to_string();
    let args = ["--kubernetes", "--kubeconfig", &kubeconfig, "--leader-elect", "false", "--lb-pool", &pool];
    let _sluice = Sluice::start_with(work.path(), &args, &[]);
    let cx = status::Context { controller: fixture::CONTROLLER, class: fixture::CLASS, generation: 1 };
    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        let doc = written(&fake);
        let results: Vec<Result<(), String>> = checks.iter().map(|c| status::evaluate(c, &doc, &cx)).collect();
        if results.iter().all(Result::is_ok) || Instant::now() > deadline {
            return results;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status the API server holds, shaped like the admin `/status` document.
fn written(fake: &FakeApi) -> Value {
    let mut doc = json!({});
    for (plural, list) in LISTS {
        let entries: Vec<Value> = fake
            .all(plural)
            .into_iter()
            .filter(|o| !o["status"].is_null())
            .map(|o| {
                let namespace = o["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
                json!({"namespace": namespace, "name": o["metadata"]["name"], "status": o["status"]})
            })
            .collect();
        doc[*list] = Value::Array(entries);
    }
    doc
}
