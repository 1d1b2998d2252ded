//! The Kubernetes API source of Sluice.
//!
//! [`connect`] starts watches on the kinds Sluice acts on (Ingresses and their classes,
//! Services, EndpointSlices, Secrets, ConfigMaps, Namespaces, the Gateway API kinds, Nodes and
//! MetalLB's kinds) and keeps a [`sluice_store::Store`] current (the same store the manifest
//! source fills); [`KubeSource::subscribe`] says which kind changed. [`elect_leader`] runs
//! leader election on a `coordination.k8s.io/v1` Lease; while leader, [`write_status`]
//! publishes addresses in `status.loadBalancer`, [`write_gateway_status`] the status of
//! Gateway API objects, and [`emit_events`] reports rejected resources as Kubernetes Events.
//! [`Membership`] tells which replicas (by node) are alive, from one Lease per replica.
//!
//! Every long-running piece recovers by itself: watches back off and resume (relisting after
//! `410 Gone`) while the last objects keep being served, and writes are retried.

mod discovery;
mod events;
mod gateway_status;
mod kinds;
mod leader;
mod lease;
mod membership;
mod secrets;
mod source;
mod status;

use std::path::PathBuf;
use std::time::Duration;

pub use events::{emit_events, post_event, EventFacts};
pub use gateway_status::write_gateway_status;
pub use kube;
pub use leader::elect_leader;
pub use membership::Membership;
pub use secrets::SecretWriter;
pub use source::{connect, KubeSource, Notice};
pub use status::write_status;

/// The controller name Sluice reports as, and the `spec.controller` of its IngressClass.
pub const CONTROLLER_NAME: &str = "sluice.dev/ingress-controller";

/// How often a kind the API server does not serve is asked about again, by default.
const MISSING_KIND_RETRY: Duration = Duration::from_secs(30);

/// Where the service account's namespace is mounted inside a Pod.
const IN_CLUSTER_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How to reach the API server, what to watch and how to elect a leader.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// A kubeconfig file; without it `KUBECONFIG`, `~/.kube/config`, then the in-cluster
    /// service account are tried.
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (cluster-scoped kinds: IngressClasses, Namespaces,
    /// GatewayClasses and Nodes, are always watched cluster-wide).
    pub watch_namespace: Option<String>,
    /// Whether to run leader election (otherwise this replica always writes status).
    pub leader_elect: bool,
    /// Name of the Lease used for leader election (default `sluice-leader`).
    pub lease_name: String,
    /// Namespace of the Lease (default: the Pod's namespace, else `default`).
    pub lease_namespace: String,
    /// This replica's name in the Lease (default: the Pod name or host name).
    pub identity: String,
    /// Lease timings (default: controller-runtime's 15 s / 10 s / 2 s).
    pub lease_timings: LeaseTimings,
    /// How often a kind the API server does not serve (a Gateway API or MetalLB CRD not
    /// installed) is asked about again, so that installing it later is noticed (default 30 s).
    pub missing_kind_retry: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            watch_namespace: None,
            leader_elect: false,
            lease_name: "sluice-leader".to_owned(),
            lease_namespace: default_lease_namespace(),
            identity: default_identity(),
            lease_timings: LeaseTimings::default(),
            missing_kind_retry: MISSING_KIND_RETRY,
        }
    }
}

/// Timings of leader election, as in client-go's `leaderelection` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease that is not renewed stays valid for the other replicas.
    pub lease_duration: Duration,
    /// The leader gives up leadership when it could not renew for this long.
    pub renew_deadline: Duration,
    /// Time between two attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The namespace of the Pod this runs in, or `default` outside a cluster.
pub fn default_lease_namespace() -> String {
    std::fs::read_to_string(IN_CLUSTER_NAMESPACE_FILE)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// This replica's identity: `POD_NAME`, else `HOSTNAME`, else `/etc/hostname`, else `sluice`.
pub fn default_identity() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .chain(std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "sluice".to_owned())
}
