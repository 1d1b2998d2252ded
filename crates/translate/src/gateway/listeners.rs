//! A Gateway of ours, validated: its requested addresses and its listeners, each with the
//! conditions the spec gives it (accepted, conflicted, references resolved).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use sluice_config::{
    Diagnostic, GatewayAddress, GatewayApiStatus, HostPattern, Hostname, L4Protocol, ListenerStatus, ObjectRef,
    ObjectStatus, RouteKind, StatusCondition,
};
use sluice_store::gateway_api::experimental::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From, GatewayListenersTlsMode as TlsMode,
};
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_store::{ObjectKey, Store};

use super::refs;
use super::GROUP;
use crate::certificates::Secrets;
use crate::selector::Selector;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP, served by the L7 data plane.
    Http,
    /// HTTPS, TLS terminated with the listener's certificates.
    Https,
    /// TLS (passthrough or terminated), by SNI.
    Tls,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Which namespaces may attach routes to a listener.
#[derive(Debug, Clone)]
pub(crate) enum Namespaces {
    /// The Gateway's own.
    Same,
    /// Every namespace.
    All,
    /// Those whose labels match.
    Selector(Selector),
}

/// One listener of a Gateway.
#[derive(Debug)]
pub(crate) struct Listener {
    pub name: String,
    pub port: u16,
    /// `None` when the protocol is not one Sluice serves.
    pub protocol: Option<Protocol>,
    pub hostname: HostPattern,
    /// The route kinds it accepts (and Sluice supports).
    pub kinds: Vec<&'static str>,
    pub namespaces: Namespaces,
    /// Its certificates (HTTPS), in `certificateRefs` order.
    pub certificates: Vec<Arc<CertifiedKey>>,
    /// Why it is not accepted.
    pub refused: Option<(&'static str, String)>,
    /// Why its references do not resolve.
    pub unresolved: Option<(&'static str, String)>,
    /// Why it conflicts with another listener.
    pub conflict: Option<(&'static str, String)>,
    /// It terminates TLS (HTTPS, or TLS in Terminate mode).
    pub certificates_wanted: bool,
    /// The certificate Sluice obtains for it (its first `certificateRefs` Secret, for its
    /// hostname), when automatic HTTPS covers it.
    pub acme: Option<(ObjectKey, String)>,
}

impl Listener {
    /// Whether routes may attach to it.
    pub(crate) fn accepts_routes(&self) -> bool {
        self.refused.is_none() && self.conflict.is_none()
    }

    /// Whether it is served.
    pub(crate) fn programmed(&self) -> bool {
        self.accepts_routes() && self.unresolved.is_none()
    }

    /// The transport protocol of its port.
    pub(crate) fn l4_protocol(&self) -> L4Protocol {
        if self.protocol == Some(Protocol::Udp) {
            L4Protocol::Udp
        } else {
            L4Protocol::Tcp
        }
    }

    /// Whether a route in `namespace` may attach, the Gateway being in `own`.
    pub(crate) fn admits_namespace(&self, namespace: &str, own: &str, store: &Store) -> bool {
        match &self.namespaces {
            Namespaces::Same => namespace == own,
            Namespaces::All => true,
            Namespaces::Selector(selector) => {
                let labels =
                    store.namespaces.get(&ObjectKey::new("", namespace)).and_then(|n| n.metadata.labels.as_ref());
                selector.matches_namespace(namespace, labels)
            }
        }
    }
}

/// A Gateway of one of our classes, validated.
#[derive(Debug)]
pub(crate) struct ValidGateway {
    pub object: ObjectRef,
    pub generation: i64,
    pub created: Option<Time>,
    /// Addresses asked for in `spec.addresses`.
    pub requested: Vec<IpAddr>,
    /// Why the Gateway is not accepted (an address it cannot have).
    pub refused: Option<(&'static str, String)>,
    pub listeners: Vec<Listener>,
}

/// Validates one Gateway of ours.
pub(crate) fn validate(
    key: &ObjectKey,
    gateway: &Gateway,
    store: &Store,
    secrets: &Secrets,
    acme: Option<&GatewayAcme>,
    diagnostics: &mut Vec<Diagnostic>,
) -> ValidGateway {
    let object = ObjectRef::new("Gateway", &key.namespace, &key.name);
    let mut requested = Vec::new();
    let mut refused = None;
    for (i, address) in gateway.spec.addresses.iter().flatten().enumerate() {
        let kind = address.r#type.as_deref().unwrap_or("IPAddress");
        let field = format!("spec.addresses[{i}]");
        match (kind, address.value.as_deref().map(str::parse::<IpAddr>)) {
            ("IPAddress", Some(Ok(ip))) => requested.push(ip),
            ("IPAddress", None) => {}
            ("IPAddress", Some(Err(_))) => {
                let reason = format!("{:?} is not an IP address", address.value.as_deref().unwrap_or_default());
                diagnostics.push(Diagnostic::object(object.clone(), field, reason.clone()));
                refused = Some(("UnsupportedAddress", reason));
            }
            (other, _) => {
                let reason = format!("address type {other:?} is not supported; only IPAddress");
                diagnostics.push(Diagnostic::object(object.clone(), field, reason.clone()));
                refused = Some(("UnsupportedAddress", reason));
            }
        }
    }
    if let Some(parameters) = gateway.spec.infrastructure.as_ref().and_then(|i| i.parameters_ref.as_ref()) {
        let key = ObjectKey::new(&key.namespace, &parameters.name);
        let found =
            parameters.group.is_empty() && parameters.kind == "ConfigMap" && store.config_maps.contains_key(&key);
        let field = "spec.infrastructure.parametersRef";
        if found {
            let reason = "Sluice reads no parameters from it; the Gateway is served without them".to_owned();
            diagnostics.push(Diagnostic::warning(object.clone(), field, reason));
        } else {
            let reason = format!("{}/{} {} does not exist", parameters.group, parameters.kind, parameters.name);
            diagnostics.push(Diagnostic::object(object.clone(), field, reason.clone()));
            refused.get_or_insert(("InvalidParameters", reason));
        }
    }
    for (field, reason) in super::validate::gateway(gateway) {
        diagnostics.push(Diagnostic::object(object.clone(), field, reason.clone()));
        refused.get_or_insert(("Invalid", format!("refused as the API server would: {reason}")));
    }
    let mut listeners: Vec<Listener> = gateway
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, listener)| read_listener(&object, i, listener, store, (secrets, acme), diagnostics))
        .collect();
    mark_conflicts(&mut listeners);
    ValidGateway {
        generation: gateway.metadata.generation.unwrap_or(1),
        created: gateway.metadata.creation_timestamp.clone(),
        object,
        requested,
        refused,
        listeners,
    }
}

fn read_listener(
    gateway: &ObjectRef,
    index: usize,
    spec: &GatewayListeners,
    store: &Store,
    (secrets, acme): (&Secrets, Option<&GatewayAcme>),
    diagnostics: &mut Vec<Diagnostic>,
) -> Listener {
    let field = |name: &str| format!("spec.listeners[{index}].{name}");
    let mut refused = None;
    let mut unresolved = None;
    let protocol = match spec.protocol.as_str() {
        "HTTP" => Some(Protocol::Http),
        "HTTPS" => Some(Protocol::Https),
        "TLS" => Some(Protocol::Tls),
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    };
    if protocol.is_none() {
        let reason =
            format!("protocol {:?} is not supported on Gateways (HTTP, HTTPS, TLS, TCP and UDP are)", spec.protocol);
        diagnostics.push(Diagnostic::object(gateway.clone(), field("protocol"), reason.clone()));
        refused = Some(("UnsupportedProtocol", reason));
    }

    let port = u16::try_from(spec.port).ok().filter(|p| *p != 0).unwrap_or_else(|| {
        let reason = format!("{} is not a valid port", spec.port);
        diagnostics.push(Diagnostic::object(gateway.clone(), field("port"), reason.clone()));
        refused = Some(("PortUnavailable", reason));
        0
    });
    let hostname = match spec.hostname.as_deref().map(parse_host) {
        None => HostPattern::Any,
        Some(Ok(host)) => host,
        Some(Err(reason)) => {
            diagnostics.push(Diagnostic::object(gateway.clone(), field("hostname"), reason.clone()));
            refused = Some(("Invalid", reason));
            HostPattern::Any
        }
    };
    let allowed = spec.allowed_routes.as_ref();
    let namespaces = match allowed.and_then(|a| a.namespaces.as_ref()) {
        None => Namespaces::Same,
        Some(namespaces) => match namespaces.from.as_ref().unwrap_or(&From::Same) {
            From::Same => Namespaces::Same,
            From::All => Namespaces::All,
            From::Selector => match namespaces.selector.as_ref().map(Selector::of_listener) {
                Some(Ok(selector)) => Namespaces::Selector(selector),
                other => {
                    let reason = match other {
                        Some(Err(reason)) => reason,
                        _ => "from: Selector needs a selector".to_owned(),
                    };
                    let at = field("allowedRoutes.namespaces.selector");
                    diagnostics.push(Diagnostic::object(gateway.clone(), at, reason.clone()));
                    refused = Some(("Invalid", reason));
                    Namespaces::Same
                }
            },
        },
    };
    let supported: &[&'static str] = match protocol {
        Some(Protocol::Http | Protocol::Https) => &["HTTPRoute", "GRPCRoute"],
        Some(Protocol::Tls) => &["TLSRoute"],
        Some(Protocol::Tcp) => &["TCPRoute"],
        Some(Protocol::Udp) => &["UDPRoute"],
        None => &[],
    };
    let kinds = match allowed.and_then(|a| a.kinds.as_ref()) {
        None => supported.to_vec(),
        Some(asked) => {
            let mut kinds = Vec::new();
            for kind in asked {
                let group = kind.group.as_deref().unwrap_or(GROUP);
                match supported.iter().find(|s| **s == kind.kind) {
                    Some(known) if group == GROUP => kinds.push(*known),
                    _ => {
                        let reason = format!("route kind {group}/{} is not supported here", kind.kind);
                        unresolved = Some(("InvalidRouteKinds", reason));
                    }
                }
            }
            kinds
        }
    };
    let mut certificates = Vec::new();
    let mut acme_request = None;
    // TLS listeners terminate (with certificates) or pass through (without).
    let terminate = spec.tls.as_ref().and_then(|t| t.mode.as_ref()).is_none_or(|m| *m == TlsMode::Terminate);
    let terminates = protocol == Some(Protocol::Https) || (protocol == Some(Protocol::Tls) && terminate);
    if terminates {
        let tls = spec.tls.as_ref();
        if tls.and_then(|t| t.mode.as_ref()).is_some_and(|m| *m == TlsMode::Passthrough) {
            let reason = "HTTPS listeners terminate TLS; use a TLS listener for Passthrough".to_owned();
            diagnostics.push(Diagnostic::object(gateway.clone(), field("tls.mode"), reason.clone()));
            refused = Some(("UnsupportedValue", reason));
        }
        let refs = tls.and_then(|t| t.certificate_refs.as_deref()).unwrap_or_default();
        for (i, cert) in refs.iter().enumerate() {
            let at = field(&format!("tls.certificateRefs[{i}]"));
            let group = cert.group.as_deref().unwrap_or("");
            let kind = cert.kind.as_deref().unwrap_or("Secret");
            let namespace = cert.namespace.as_deref().unwrap_or(&gateway.namespace);
            let problem = if !group.is_empty() || kind != "Secret" {
                Some(("InvalidCertificateRef", format!("{group}/{kind} is not a Secret")))
            } else if namespace != gateway.namespace
                && !refs::granted(store, ("Gateway", &gateway.namespace), ("", "Secret", namespace, &cert.name))
            {
                Some(("RefNotPermitted", format!("no ReferenceGrant in {namespace} allows this Secret")))
            } else {
                let key = ObjectKey::new(namespace, &cert.name);
                let ordered = match acme {
                    Some(acme) if i == 0 && acme.covers(store, &key) => {
                        acme_name(&hostname, &key, &at, gateway, diagnostics)
                    }
                    _ => None,
                };
                match (secrets.get(&key), ordered) {
                    (Ok(certified), ordered) => {
                        certificates.push(certified.clone());
                        acme_request = ordered;
                        None
                    }
                    (Err(_), Some(ordered)) => {
                        // Served with the default certificate until the order completes.
                        let reason = format!("Secret {namespace}/{}: no certificate issued yet (automatic HTTPS); the default certificate is served until it is", cert.name);
                        diagnostics.push(Diagnostic::warning(gateway.clone(), at.clone(), reason));
                        certificates.extend(acme.map(|acme| acme.fallback.clone()));
                        acme_request = Some(ordered);
                        None
                    }
                    (Err(why), None) => {
                        Some(("InvalidCertificateRef", format!("Secret {namespace}/{}: {why}", cert.name)))
                    }
                }
            };
            if let Some((reason, message)) = problem {
                diagnostics.push(Diagnostic::object(gateway.clone(), at, message.clone()));
                unresolved.get_or_insert((reason, message));
            }
        }
        if refs.is_empty() && refused.is_none() {
            let reason = "listeners that terminate TLS need tls.certificateRefs".to_owned();
            diagnostics.push(Diagnostic::object(gateway.clone(), field("tls"), reason.clone()));
            unresolved.get_or_insert(("InvalidCertificateRef", reason));
        }
    }
    Listener {
        name: spec.name.clone(),
        port,
        protocol,
        hostname,
        kinds,
        namespaces,
        certificates,
        refused,
        unresolved,
        conflict: None,
        certificates_wanted: terminates,
        acme: acme_request,
    }
}

/// Automatic HTTPS for Gateway listeners.
#[derive(Debug)]
pub(crate) struct GatewayAcme {
    /// `--acme-gateways`: every terminating listener's first Secret, not only annotated ones.
    pub all: bool,
    /// Served until the certificate is issued.
    pub fallback: Arc<CertifiedKey>,
}

/// The annotation that opts a listener's certificate Secret in.
pub(crate) const ACME_SECRET_ANNOTATION: &str = "sluice.dev/acme";

impl GatewayAcme {
    /// Whether the Secret `key` is one Sluice obtains.
    fn covers(&self, store: &Store, key: &ObjectKey) -> bool {
        self.all
            || store.secrets.get(key).is_some_and(|secret| {
                secret.metadata.annotations.as_ref().and_then(|a| a.get(ACME_SECRET_ANNOTATION)).map(|v| v.trim())
                    == Some("true")
            })
    }
}

/// The order for a listener's hostname; a listener without one cannot have a certificate
/// ordered (no name to ask for), which is said.
fn acme_name(
    hostname: &HostPattern,
    key: &ObjectKey,
    at: &str,
    gateway: &ObjectRef,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(ObjectKey, String)> {
    let name = match hostname {
        HostPattern::Exact(host) => host.as_str().to_owned(),
        HostPattern::Suffix(suffix) => format!("*.{}", suffix.as_str()),
        HostPattern::Any => {
            let reason = "automatic HTTPS needs the listener's hostname to order a certificate for";
            diagnostics.push(Diagnostic::warning(gateway.clone(), at, reason));
            return None;
        }
    };
    Some((key.clone(), name))
}

/// A listener or route hostname: `*.suffix` or an exact name (lower case, no IP).
pub(crate) fn parse_host(text: &str) -> Result<HostPattern, String> {
    match text.strip_prefix("*.") {
        Some(suffix) => Hostname::parse(suffix).map(HostPattern::Suffix),
        None => Hostname::parse(text).map(HostPattern::Exact),
    }
    .map_err(|e| e.to_string())
}

/// Listeners on one port must agree on the protocol (HTTP and HTTPS cannot share a port),
/// and those of one protocol on a port must differ in hostname.
fn mark_conflicts(listeners: &mut [Listener]) {
    let mut first_protocol: BTreeMap<(bool, u16), Protocol> = BTreeMap::new();
    for listener in listeners.iter().filter(|l| l.refused.is_none()) {
        if let Some(protocol) = listener.protocol {
            first_protocol.entry((protocol == Protocol::Udp, listener.port)).or_insert(protocol);
        }
    }
    // TLS listeners of both modes on one port cannot be told apart before the handshake
    // (Sluice does not mix them): all of them conflict.
    let mut modes: BTreeMap<u16, std::collections::BTreeSet<bool>> = BTreeMap::new();
    for listener in listeners.iter().filter(|l| l.refused.is_none() && l.protocol == Some(Protocol::Tls)) {
        modes.entry(listener.port).or_default().insert(listener.certificates_wanted);
    }
    let mut seen = std::collections::BTreeSet::new();
    for listener in listeners.iter_mut() {
        let mixed = modes.get(&listener.port).is_some_and(|m| m.len() > 1);
        if mixed && listener.protocol == Some(Protocol::Tls) && listener.refused.is_none() {
            let message = format!("port {} mixes TLS Passthrough and Terminate listeners", listener.port);
            listener.conflict = Some(("ProtocolConflict", message.clone()));
            listener.refused = Some(("ProtocolConflict", message));
            continue;
        }
        let Some(protocol) = listener.protocol.filter(|_| listener.refused.is_none()) else {
            continue;
        };
        let first = first_protocol.get(&(protocol == Protocol::Udp, listener.port)).copied();
        if first != Some(protocol) {
            listener.conflict =
                Some(("ProtocolConflict", format!("port {} is used with another protocol", listener.port)));
            continue;
        }
        let host = listener.hostname.to_string();
        if !seen.insert((listener.port, host.clone())) {
            let message = format!("another listener on port {} has hostname {host}", listener.port);
            listener.conflict = Some(("HostnameConflict", message));
        }
    }
}

impl ValidGateway {
    /// The Gateway's status: addresses, conditions, listeners with `attached` routes each.
    pub(crate) fn status(&self, ips: &[IpAddr], attached: &BTreeMap<(ObjectRef, String), i32>) -> ObjectStatus {
        let generation = self.generation;
        let yes = |kind, reason, message: &str| StatusCondition::yes(kind, reason, message, generation);
        let no = |kind, reason, message: &str| StatusCondition::no(kind, reason, message, generation);
        let invalid = self.listeners.iter().filter(|l| l.refused.is_some()).count();
        let all_invalid = !self.listeners.is_empty() && invalid == self.listeners.len();
        let accepted = match (&self.refused, invalid) {
            (Some((reason, message)), _) => no("Accepted", reason, message),
            (None, 0) => yes("Accepted", "Accepted", "handled by Sluice"),
            (None, _) if all_invalid => no("Accepted", "ListenersNotValid", "no listener is valid"),
            (None, _) => yes("Accepted", "ListenersNotValid", "some listeners are not valid"),
        };
        let programmed = match (&self.refused, all_invalid, ips.is_empty()) {
            (Some(_), _, _) | (None, true, _) => no("Programmed", "Invalid", "the Gateway is not accepted"),
            (None, false, false) => yes("Programmed", "Programmed", "served on its addresses"),
            (None, false, true) => no(
                "Programmed",
                "AddressNotAssigned",
                "no address free in the address pools (--lb-pool, IPAddressPools), or none",
            ),
        };
        let listeners = self
            .listeners
            .iter()
            .map(|l| {
                let count = attached.get(&(self.object.clone(), l.name.clone())).copied().unwrap_or(0);
                let accepted = match &l.refused {
                    None => yes("Accepted", "Accepted", ""),
                    Some((reason, message)) => no("Accepted", reason, message),
                };
                let resolved = match &l.unresolved {
                    None => yes("ResolvedRefs", "ResolvedRefs", ""),
                    Some((reason, message)) => no("ResolvedRefs", reason, message),
                };
                let conflicted = match &l.conflict {
                    None => no("Conflicted", "NoConflicts", ""),
                    Some((reason, message)) => yes("Conflicted", reason, message),
                };
                let programmed = if l.programmed() && !ips.is_empty() {
                    yes("Programmed", "Programmed", "")
                } else {
                    no("Programmed", "Invalid", "the listener is not served")
                };
                ListenerStatus {
                    name: l.name.clone(),
                    // A listener that is not accepted supports nothing.
                    supported_kinds: match &l.refused {
                        None => l.kinds.iter().map(|kind| RouteKind { group: super::GROUP, kind }).collect(),
                        Some(_) => Vec::new(),
                    },
                    attached_routes: count,
                    conditions: vec![accepted, programmed, resolved, conflicted],
                }
            })
            .collect();
        let addresses = ips.iter().map(|ip| GatewayAddress::ip(*ip)).collect();
        ObjectStatus {
            object: self.object.clone(),
            generation,
            status: GatewayApiStatus::Gateway { addresses, conditions: vec![accepted, programmed], listeners },
        }
    }
}
