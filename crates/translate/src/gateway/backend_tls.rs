//! BackendTLSPolicy: how Gateways speak TLS to the Services a policy targets. The policy
//! for a Service port is the one naming the port (`sectionName`) if any, else one for the
//! whole Service; among equals the oldest, then by name, wins (the others conflict). A
//! policy Sluice cannot honour makes the backend unreachable (never reached in clear).

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use sluice_config::{
    Backend, Diagnostic, GatewayApiStatus, ObjectRef, ObjectStatus, ParentRef, PolicyAncestorStatus,
    ServerVerification, StatusCondition, Transport, UpstreamTls, UpstreamTlsOptions,
};
use sluice_store::gateway_api::backendtlspolicies::BackendTlsPolicy;
use sluice_store::{ObjectKey, Store};

use crate::certificates::secret_field;

/// A BackendTLSPolicy of the store, with its key.
type Policy<'s> = (&'s ObjectKey, &'s Arc<BackendTlsPolicy>);

/// Whether a policy applies, or why not: the spec's reason and a message.
type Outcome = Result<(), (&'static str, String)>;

/// The policy that applies to port `port_name` of Service `service`, if any, and the
/// policies it wins over (as specific, younger or later by name: they conflict).
pub(crate) fn select<'s>(
    store: &'s Store,
    service: &ObjectKey,
    port_name: &str,
) -> Option<(Policy<'s>, Vec<Policy<'s>>)> {
    let start = ObjectKey::new(&service.namespace, "");
    let candidates =
        store.backend_tls_policies.range(start..).take_while(|(key, _)| key.namespace == service.namespace);
    let mut ranked: Vec<_> = candidates
        .filter_map(|(key, policy)| {
            let targets = policy
                .spec
                .target_refs
                .iter()
                .filter(|t| t.group.is_empty() && t.kind == "Service" && t.name == service.name);
            // Naming the port beats naming the whole Service.
            let specific = targets
                .filter_map(|t| match t.section_name.as_deref() {
                    None => Some(false),
                    Some(section) => (section == port_name).then_some(true),
                })
                .max()?;
            let created = policy.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
            Some((std::cmp::Reverse(specific), created, key, policy))
        })
        .collect();
    ranked.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    let mut ranked = ranked.into_iter();
    let (scope, _, key, policy) = ranked.next()?;
    let conflicted = ranked.filter(|(s, ..)| *s == scope).map(|(_, _, key, policy)| (key, policy)).collect();
    Some(((key, policy), conflicted))
}

/// The TLS a policy asks for (ALPN `h2` when `http2`), or why it cannot be honoured: the
/// spec's reason and a message.
pub(crate) fn upstream_tls(
    store: &Store,
    namespace: &str,
    policy: &BackendTlsPolicy,
    http2: bool,
) -> Result<UpstreamTls, (&'static str, String)> {
    let validation = &policy.spec.validation;
    let mut pem = Vec::new();
    for reference in validation.ca_certificate_refs.iter().flatten() {
        let key = ObjectKey::new(namespace, &reference.name);
        let found = match (reference.group.as_str(), reference.kind.as_str()) {
            ("", "ConfigMap") => store.config_maps.get(&key).and_then(|c| c.data.as_ref()?.get("ca.crt").cloned()),
            ("", "Secret") => store
                .secrets
                .get(&key)
                .and_then(|s| secret_field(s, "ca.crt"))
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            (group, kind) => {
                return Err((
                    "InvalidKind",
                    format!("caCertificateRefs: {group}/{kind} is neither a ConfigMap nor a Secret"),
                ))
            }
        };
        match found {
            Some(text) => pem.extend_from_slice(text.as_bytes()),
            None => {
                let message = format!("{} {namespace}/{} has no ca.crt", reference.kind, reference.name);
                return Err(("InvalidCACertificateRef", message));
            }
        }
    }
    if validation.well_known_ca_certificates.is_some() {
        let message =
            "wellKnownCACertificates is not supported: Sluice has no system trust store; use caCertificateRefs";
        return Err(("Invalid", message.into()));
    }
    let roots = crate::upstream_tls::roots(&pem).map_err(|e| ("InvalidCACertificateRef", e))?;
    let hostname = ServerName::try_from(validation.hostname.clone())
        .map_err(|_| ("Invalid", format!("{:?} is not a host name", validation.hostname)))?;
    let mut names = Vec::new();
    for san in validation.subject_alt_names.iter().flatten() {
        match (&san.hostname, &san.uri) {
            (Some(host), _) => names.push(
                ServerName::try_from(host.clone()).map_err(|_| ("Invalid", format!("{host:?} is not a host name")))?,
            ),
            (None, Some(uri)) => {
                return Err(("Invalid", format!("URI subject alternative names ({uri}) are not supported")));
            }
            (None, None) => {}
        }
    }
    let roots = Arc::new(roots);
    let verification = match names.is_empty() {
        true => ServerVerification::Roots(roots),
        false => ServerVerification::RootsForNames(roots, names.into()),
    };
    let options =
        UpstreamTlsOptions { verification, server_name: Some(hostname), sni: true, client_certificate: None, http2 };
    UpstreamTls::new(options).map_err(|e| ("Invalid", format!("cannot build the TLS configuration: {e}")))
}

/// What a BackendTLSPolicy gave, kept while the policy and the objects it reads are the
/// same allocations (connection pools key on the [`UpstreamTls`], so rebuilding it on every
/// snapshot would drop pooled connections).
#[derive(Default)]
pub(crate) struct BackendTlsCache {
    built: foldhash::HashMap<(ObjectKey, bool), Built>,
}

struct Built {
    policy: Arc<BackendTlsPolicy>,
    /// The referenced ConfigMaps and Secrets as they were read (addresses of their `Arc`s).
    read: Vec<usize>,
    tls: Result<Arc<UpstreamTls>, (&'static str, String)>,
}

impl BackendTlsCache {
    /// `backend` as the BackendTLSPolicy of its Service port asks it to be reached: over TLS,
    /// or (a policy that cannot be honoured) not at all, reported. Unchanged without a policy.
    pub(crate) fn apply(
        &mut self,
        store: &Store,
        backend: Arc<Backend>,
        http2: bool,
        outcomes: &mut PolicyOutcomes,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Arc<Backend> {
        let service = ObjectKey::new(&backend.service.namespace, &backend.service.name);
        let Some(port_name) = backend.port_name.as_deref() else {
            return backend;
        };
        let Some(((key, policy), conflicted)) = select(store, &service, port_name) else {
            return backend;
        };
        for (loser, policy) in conflicted {
            let message = format!("BackendTLSPolicy {}/{} applies to the same target", key.namespace, key.name);
            outcomes.current.push((loser.clone(), generation(policy), Err(("Conflicted", message))));
        }
        let read = read_objects(store, &service.namespace, policy);
        let slot = (key.clone(), http2);
        let fresh = self.built.get(&slot).is_some_and(|b| Arc::ptr_eq(&b.policy, policy) && b.read == read);
        if !fresh {
            let tls = upstream_tls(store, &service.namespace, policy, http2).map(Arc::new);
            self.built.insert(slot.clone(), Built { policy: policy.clone(), read, tls });
        }
        match self.built.get(&slot).map(|b| &b.tls) {
            Some(Ok(tls)) => {
                outcomes.current.push((key.clone(), generation(policy), Ok(())));
                Arc::new(backend.with_transport(Transport::Tls(tls.clone())))
            }
            Some(Err(problem)) => {
                outcomes.current.push((key.clone(), generation(policy), Err(problem.clone())));
                let object = ObjectRef::new("BackendTLSPolicy", &key.namespace, &key.name);
                diagnostics.push(Diagnostic::object(object, "spec.validation", problem.1.clone()));
                Arc::new(Backend::new(backend.service.clone(), port_name, None, Transport::Http1, Vec::new()))
            }
            None => backend,
        }
    }

    /// Forgets policies that are gone.
    pub(crate) fn prune(&mut self, store: &Store) {
        self.built.retain(|(key, _), _| store.backend_tls_policies.contains_key(key));
    }
}

/// The `Arc` addresses of the ConfigMaps and Secrets a policy reads (0 for absent ones).
fn read_objects(store: &Store, namespace: &str, policy: &BackendTlsPolicy) -> Vec<usize> {
    let refs = policy.spec.validation.ca_certificate_refs.iter().flatten();
    refs.map(|r| {
        let key = ObjectKey::new(namespace, &r.name);
        match r.kind.as_str() {
            "ConfigMap" => store.config_maps.get(&key).map_or(0, |o| Arc::as_ptr(o) as usize),
            _ => store.secrets.get(&key).map_or(0, |o| Arc::as_ptr(o) as usize),
        }
    })
    .collect()
}

fn generation(policy: &BackendTlsPolicy) -> i64 {
    policy.metadata.generation.unwrap_or(1)
}

/// What became of each policy, towards the Gateways whose routes reach its targets: the
/// status of every BackendTLSPolicy that applies somewhere.
#[derive(Default)]
pub(crate) struct PolicyOutcomes {
    /// The policies met while one backend was resolved (drained by [`PolicyOutcomes::reached_by`]).
    current: Vec<(ObjectKey, i64, Outcome)>,
    /// Per policy: its generation and, per Gateway, the outcome.
    by_policy: BTreeMap<ObjectKey, (i64, BTreeMap<ObjectKey, Outcome>)>,
}

impl PolicyOutcomes {
    /// The backend just resolved is reached from these Gateways.
    pub(crate) fn reached_by<'g>(&mut self, gateways: impl Iterator<Item = &'g ObjectKey> + Clone) {
        for (policy, generation, outcome) in self.current.drain(..) {
            let entry = self.by_policy.entry(policy).or_insert_with(|| (generation, BTreeMap::new()));
            for gateway in gateways.clone() {
                // A problem anywhere stays: the first outcome is kept unless it was fine.
                let slot = entry.1.entry(gateway.clone()).or_insert_with(|| outcome.clone());
                if slot.is_ok() && outcome.is_err() {
                    *slot = outcome.clone();
                }
            }
        }
    }

    /// The status of every policy that applies to a backend some Gateway reaches.
    pub(crate) fn into_status(self, controller: &str) -> Vec<ObjectStatus> {
        self.by_policy
            .into_iter()
            .filter(|(_, (_, gateways))| !gateways.is_empty())
            .map(|(policy, (generation, gateways))| {
                let ancestors = gateways
                    .into_iter()
                    .map(|(gateway, outcome)| {
                        let conditions = match outcome {
                            Ok(()) => vec![
                                StatusCondition::yes("Accepted", "Accepted", "applied", generation),
                                StatusCondition::yes("ResolvedRefs", "ResolvedRefs", "", generation),
                            ],
                            Err(("Conflicted", message)) => {
                                vec![StatusCondition::no("Accepted", "Conflicted", message, generation)]
                            }
                            Err((reason @ ("InvalidKind" | "InvalidCACertificateRef"), message)) => vec![
                                StatusCondition::no("Accepted", "NoValidCACertificate", message.clone(), generation),
                                StatusCondition::no("ResolvedRefs", reason, message, generation),
                            ],
                            Err((reason, message)) => {
                                vec![StatusCondition::no("Accepted", reason, message, generation)]
                            }
                        };
                        PolicyAncestorStatus {
                            ancestor_ref: ParentRef {
                                group: super::GROUP.into(),
                                kind: "Gateway".into(),
                                namespace: gateway.namespace.clone(),
                                name: gateway.name.clone(),
                                section_name: None,
                                port: None,
                            },
                            controller_name: controller.to_owned(),
                            conditions,
                        }
                    })
                    .collect();
                ObjectStatus {
                    object: ObjectRef::new("BackendTLSPolicy", &policy.namespace, &policy.name),
                    generation,
                    status: GatewayApiStatus::Policy { ancestors },
                }
            })
            .collect()
    }
}
