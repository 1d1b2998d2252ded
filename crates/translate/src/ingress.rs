//! Validating one Ingress into typed rules, collecting every problem with its field path.

use std::sync::Arc;

use sluice_config::{Diagnostic, HostMatch, ObjectRef, PathMatch, PathRegex, PathRewrite, Route};
use sluice_store::k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressTLS};
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_store::ObjectKey;

use crate::annotations::{self, AnnotationVerdict, BackendOptions, IngressAnnotations};
use crate::backends::BackendKey;
use crate::regexes::Regexes;

/// A Service port as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PortRef {
    /// `port.number`.
    Number(i32),
    /// `port.name`.
    Name(String),
    /// The Service's first port (ingress-nginx's `default-backend` annotation and
    /// `--default-backend-service`).
    First,
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => n.fmt(f),
            PortRef::Name(name) => f.write_str(name),
            PortRef::First => f.write_str("first port"),
        }
    }
}

/// A validated `backend.service`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BackendRef {
    /// The Service (in the Ingress's namespace) and port.
    pub key: BackendKey,
    /// Where it was written, for diagnostics about resolving it.
    pub field: String,
}

/// A validated path of a rule.
#[derive(Debug)]
pub(crate) struct ValidPath {
    pub matcher: PathMatch,
    /// The path as written, for hosts whose paths are regexes.
    pub written: Box<str>,
    /// The compiled regex, when this Ingress asks for regex paths.
    pub regex: Option<PathRegex>,
    /// `rewrite-target` for this path.
    pub rewrite: Option<PathRewrite>,
    pub backend: BackendRef,
    pub field: String,
}

/// A validated rule.
#[derive(Debug)]
pub(crate) struct ValidRule {
    pub host: HostMatch,
    pub paths: Vec<ValidPath>,
}

/// A validated `spec.tls` entry.
#[derive(Debug)]
pub(crate) struct TlsEntry {
    pub hosts: Vec<HostMatch>,
    pub secret: String,
    pub field: String,
}

/// An Ingress that passed validation, ready to be turned into routes. Owns everything, so
/// it is kept across builds for as long as the Ingress is unchanged.
#[derive(Debug)]
pub(crate) struct ValidIngress {
    /// The Ingress, shared by all of its routes.
    pub owner: Arc<ObjectRef>,
    /// `namespace/name`, the metrics label of its routes.
    pub label: Arc<str>,
    pub created: Option<Time>,
    pub default_backend: Option<BackendRef>,
    /// The `default-backend` annotation's Service (first port), for error answers.
    pub error_backend: Option<BackendRef>,
    pub rules: Vec<ValidRule>,
    pub tls: Vec<TlsEntry>,
    /// The certificates it asks Sluice to obtain (`kubernetes.io/tls-acme`).
    pub acme: Vec<crate::acme::AcmeRequest>,
    /// Its ingress-nginx annotations.
    pub annotations: IngressAnnotations,
    /// Annotations it is served without (warnings).
    pub warnings: Vec<Diagnostic>,
}

impl ValidIngress {
    /// True when the Ingress is a canary of another's routes.
    pub(crate) fn is_canary(&self) -> bool {
        self.annotations.canary.is_some()
    }

    /// The ConfigMap its `custom-headers` annotation names.
    pub(crate) fn custom_headers(&self) -> Option<ObjectKey> {
        let (namespace, name, _) = self.annotations.custom_headers.as_ref()?;
        Some(ObjectKey::new(namespace.as_deref().unwrap_or(&self.owner.namespace), name))
    }

    /// The objects its routes read besides the Ingress: when one changes, they are compiled
    /// again.
    pub(crate) fn references(&self) -> impl Iterator<Item = Reference> + '_ {
        let secret = self.auth_secret().map(Reference::Secret);
        let auth_headers = self.annotations.external_auth.as_ref().and_then(|auth| {
            let (namespace, name) = auth.set_headers.as_ref()?;
            Some(Reference::ConfigMap(ObjectKey::new(namespace.as_deref().unwrap_or(&self.owner.namespace), name)))
        });
        let ca = self.auth_tls_secret().map(Reference::Secret);
        self.custom_headers().map(Reference::ConfigMap).into_iter().chain(secret).chain(auth_headers).chain(ca)
    }

    /// The Secret its `auth-secret` annotation names.
    pub(crate) fn auth_secret(&self) -> Option<ObjectKey> {
        let (namespace, name) = &self.annotations.auth.as_ref()?.secret;
        Some(ObjectKey::new(namespace.as_deref().unwrap_or(&self.owner.namespace), name))
    }

    /// The Secret its `auth-tls-secret` annotation names.
    pub(crate) fn auth_tls_secret(&self) -> Option<ObjectKey> {
        let (namespace, name) = &self.annotations.auth_tls.as_ref()?.secret;
        Some(ObjectKey::new(namespace.as_deref().unwrap_or(&self.owner.namespace), name))
    }

    /// True when this Ingress's `spec.tls` covers `host`.
    pub(crate) fn has_tls_for(&self, host: &HostMatch) -> bool {
        self.tls.iter().any(|entry| entry.hosts.iter().any(|h| h == host || h.covers(host)))
    }
}

/// An object an Ingress's routes read besides the Ingress itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reference {
    /// A `custom-headers` ConfigMap.
    ConfigMap(ObjectKey),
    /// An `auth-secret` Secret.
    Secret(ObjectKey),
}

impl Reference {
    /// Which version of the object the store holds (its `Arc`'s address), `None` when
    /// absent: a different value means the routes reading it must be compiled again.
    pub(crate) fn version(&self, store: &sluice_store::Store) -> Option<usize> {
        match self {
            Reference::ConfigMap(key) => store.config_maps.get(key).map(|c| Arc::as_ptr(c) as usize),
            Reference::Secret(key) => store.secrets.get(key).map(|s| Arc::as_ptr(s) as usize),
        }
    }
}

/// Validates `ingress` the way the API server would, and reads its annotations under
/// `prefix`; `Err` lists every problem found (a refused annotation is one).
/// Regexes are compiled through `regexes`, once per distinct text.
pub(crate) fn validate(
    key: &ObjectKey,
    ingress: &Ingress,
    reading: annotations::Reading<'_>,
    regexes: &Regexes,
) -> Result<ValidIngress, Vec<Diagnostic>> {
    let object = ObjectRef::new("Ingress", &key.namespace, &key.name);
    let mut problems = Problems { object: &object, list: Vec::new() };
    let (annotations, reports) = match ingress.metadata.annotations.as_ref() {
        Some(written) => annotations::parse(reading, written),
        None => (IngressAnnotations::default(), Vec::new()),
    };
    let mut warnings = Vec::new();
    for report in reports {
        let field = format!("metadata.annotations[{}]", report.key);
        match report.verdict {
            AnnotationVerdict::Honoured => {}
            AnnotationVerdict::Ignored(reason) => warnings.push(Diagnostic::warning(object.clone(), field, reason)),
            AnnotationVerdict::Refused(reason) => problems.add(&field, reason),
        }
    }
    let Some(spec) = ingress.spec.as_ref() else {
        problems.add("spec", "Required value: either `defaultBackend` or `rules` must be specified");
        return Err(problems.list);
    };
    let default_backend = spec
        .default_backend
        .as_ref()
        .and_then(|b| backend_ref(key, b, "spec.defaultBackend", &annotations.backend, &mut problems));
    let rules_in = spec.rules.as_deref().unwrap_or_default();
    if default_backend.is_none() && rules_in.is_empty() && problems.list.is_empty() {
        problems.add("spec", "Required value: either `defaultBackend` or `rules` must be specified");
    }
    let mut rules = Vec::new();
    for (i, rule) in rules_in.iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        let host = HostMatch::parse(rule.host.as_deref()).map_err(|e| problems.add(&format!("{field}.host"), e.0));
        let paths_in = rule.http.as_ref().map(|h| h.paths.as_slice()).unwrap_or_default();
        if rule.http.is_some() && paths_in.is_empty() {
            problems.add(&format!("{field}.http.paths"), "Required value: at least one path is required");
        }
        let mut paths = Vec::new();
        for (j, path) in paths_in.iter().enumerate() {
            let field = format!("{field}.http.paths[{j}]");
            let matcher = PathMatch::parse(path.path.as_deref(), Some(path.path_type.as_str()))
                .map_err(|e| problems.add(&format!("{field}.{}", e.field), e.reason));
            let written = path.path.as_deref().unwrap_or_default();
            if path.path_type.is_empty() && !written.is_empty() && !written.starts_with('/') {
                problems.add(&format!("{field}.path"), format!("{written:?}: must be an absolute path"));
            }

            let backend =
                backend_ref(key, &path.backend, &format!("{field}.backend"), &annotations.backend, &mut problems);
            let regex = annotations
                .regex_paths()
                .then(|| regexes.path(written).map_err(|e| problems.add(&format!("{field}.path"), e.reason)))
                .transpose();
            let rewrite = annotations
                .rewrite_target
                .as_ref()
                .map(|target| {
                    let regex =
                        regexes.rewrite(written).map_err(|reason| problems.add(&format!("{field}.path"), reason));
                    regex.map(|regex| PathRewrite { regex, target: target.clone() })
                })
                .transpose();
            if let (Ok(matcher), Some(backend), Ok(regex), Ok(rewrite)) = (matcher, backend, regex, rewrite) {
                let written = written.into();
                paths.push(ValidPath { matcher, written, regex, rewrite, backend, field });
            }
        }
        if let Ok(host) = host {
            rules.push(ValidRule { host, paths });
        }
    }
    let tls = spec
        .tls
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| tls_entry(entry, i, &rules, &mut problems))
        .collect();
    if !problems.list.is_empty() {
        return Err(problems.list);
    }
    let acme = crate::acme::requests(ingress, &object, &mut warnings);
    let created = ingress.metadata.creation_timestamp.clone();
    let label = Route::label_of(&object);
    let error_backend = annotations.default_backend.as_ref().map(|service| BackendRef {
        key: BackendKey::first_port(ObjectKey::new(&key.namespace, service)),
        field: format!("metadata.annotations[{}/default-backend]", reading.prefix),
    });
    Ok(ValidIngress {
        owner: Arc::new(object),
        label,
        created,
        default_backend,
        error_backend,
        rules,
        tls,
        acme,
        annotations,
        warnings,
    })
}

struct Problems<'o> {
    object: &'o ObjectRef,
    list: Vec<Diagnostic>,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.list.push(Diagnostic::object(self.object.clone(), field, reason));
    }
}

fn backend_ref(
    ingress: &ObjectKey,
    backend: &IngressBackend,
    field: &str,
    options: &BackendOptions,
    problems: &mut Problems<'_>,
) -> Option<BackendRef> {
    if backend.resource.is_some() {
        problems.add(&format!("{field}.resource"), "resource backends are not supported; use `service`");
        return None;
    }
    let Some(service) = backend.service.as_ref() else {
        problems.add(&format!("{field}.service"), "Required value: a service backend is required");
        return None;
    };
    let mut ok = true;
    if !is_dns_label(&service.name) {
        problems.add(
            &format!("{field}.service.name"),
            format!("{:?}: must be a valid DNS-1035 label (lower case alphanumerics and '-')", service.name),
        );
        ok = false;
    }
    let port = service.port.as_ref();
    let number = port.and_then(|p| p.number);
    let name = port.and_then(|p| p.name.as_deref()).filter(|n| !n.is_empty());
    let port = match (number, name) {
        (Some(n), None) if (1..=65535).contains(&n) => Some(PortRef::Number(n)),
        (Some(n), None) => {
            problems.add(
                &format!("{field}.service.port.number"),
                format!("Invalid value: {n}: must be between 1 and 65535"),
            );
            None
        }
        (None, Some(name)) if is_port_name(name) => Some(PortRef::Name(name.to_owned())),
        (None, Some(name)) => {
            problems.add(&format!("{field}.service.port.name"), format!("{name:?}: must be a valid IANA service name"));
            None
        }
        (Some(_), Some(_)) => {
            problems.add(&format!("{field}.service.port"), "Invalid value: cannot set both port name & port number");
            None
        }
        (None, None) => {
            problems.add(&format!("{field}.service.port"), "Required value: port name or number is required");
            None
        }
    };
    let port = port.filter(|_| ok)?;
    let service = ObjectKey::new(&ingress.namespace, &service.name);
    Some(BackendRef { key: BackendKey { service, port, options: options.clone() }, field: format!("{field}.service") })
}

fn tls_entry(entry: &IngressTLS, index: usize, rules: &[ValidRule], problems: &mut Problems<'_>) -> Option<TlsEntry> {
    let field = format!("spec.tls[{index}]");
    let mut hosts = Vec::new();
    for (j, host) in entry.hosts.as_deref().unwrap_or_default().iter().enumerate() {
        match HostMatch::parse(Some(host)) {
            Ok(host) => hosts.push(host),
            Err(e) => problems.add(&format!("{field}.hosts[{j}]"), e.0),
        }
    }
    if entry.hosts.as_deref().unwrap_or_default().is_empty() {
        // Without hosts, the entry covers the hosts of this Ingress's rules.
        hosts = rules.iter().map(|r| r.host.clone()).collect();
    }
    let secret = entry.secret_name.as_deref().filter(|s| !s.is_empty())?;
    Some(TlsEntry { hosts, secret: secret.to_owned(), field: format!("{field}.secretName") })
}

/// RFC 1035 label, as Service names must be.
pub(crate) fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// IANA service name: 1-15 chars of lowercase alphanumerics and '-', at least one letter,
/// no leading, trailing or doubled '-'.
fn is_port_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--")
}
