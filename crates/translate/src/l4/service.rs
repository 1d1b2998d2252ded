//! Reading a `type: LoadBalancer` Service: is it ours, its ports, and its annotations.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_config::{Diagnostic, IpMode, IpNet, L4Protocol, ObjectRef, ProxyProtocol};
use sluice_store::k8s_openapi::api::core::v1::Service;
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `spec.loadBalancerClass` value that selects Sluice (no class selects it too).
pub const LOAD_BALANCER_CLASS: &str = "sluice.dev/lb";
/// Addresses asked for: Sluice's annotation, then MetalLB's (current and older spelling).
const IPS_ANNOTATIONS: [&str; 3] =
    ["sluice.dev/load-balancer-ips", "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"];
/// The pool asked for, by IPAddressPool name.
const POOL_ANNOTATIONS: [&str; 3] =
    ["sluice.dev/address-pool", "metallb.io/address-pool", "metallb.universe.tf/address-pool"];
/// Services with the same key may share an address (on different ports).
const SHARED_IP_ANNOTATIONS: [&str; 3] =
    ["sluice.dev/allow-shared-ip", "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"];
/// `status.loadBalancer.ingress[].ipMode` asked for.
const IP_MODE_ANNOTATION: &str = "sluice.dev/ip-mode";
/// Kubernetes' older spelling of `spec.loadBalancerSourceRanges`, read when the field is empty.
const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
const PROXY_PROTOCOL_ANNOTATION: &str = "sluice.dev/proxy-protocol";
const IDLE_TIMEOUT_ANNOTATION: &str = "sluice.dev/idle-timeout";
const MAX_FLOWS_ANNOTATION: &str = "sluice.dev/udp-max-flows";

pub(super) const DEFAULT_TCP_IDLE: Duration = Duration::from_secs(3600);
pub(super) const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(30);
pub(super) const DEFAULT_MAX_FLOWS: usize = 65_536;

/// A port of a LoadBalancer Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LbPort {
    pub protocol: L4Protocol,
    pub port: u16,
    pub name: String,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of `ip`.
    pub(crate) fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// Which addresses a Service wants (`spec.ipFamilyPolicy`, `spec.ipFamilies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Families {
    /// One address of whichever family is free first (no family given).
    Any,
    /// One address of this family.
    Single(Family),
    /// One per family: `RequireDualStack` (`required`) or `PreferDualStack`.
    Dual { required: bool },
}

/// A validated LoadBalancer Service of ours.
#[derive(Debug)]
pub(crate) struct LbService<'s> {
    pub object: ObjectRef,
    pub created: Option<&'s Time>,
    pub labels: Option<&'s BTreeMap<String, String>>,
    /// Its namespace's labels (pools' `serviceAllocation.namespaceSelectors`).
    pub namespace_labels: Option<&'s BTreeMap<String, String>>,
    pub ports: Vec<LbPort>,
    pub requested: Vec<IpAddr>,
    /// Which field requested addresses, for diagnostics.
    pub requested_field: &'static str,
    /// The pool asked for by name, with the annotation that asked.
    pub pool: Option<(String, &'static str)>,
    pub families: Families,
    pub share_key: Option<String>,
    pub proxy_protocol: Option<ProxyProtocol>,
    pub idle_timeout: Option<Duration>,
    pub max_flows: usize,
    /// `spec.loadBalancerSourceRanges`.
    pub source_ranges: Option<Arc<[IpNet]>>,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic: bool,
    pub ip_mode: IpMode,
}

impl LbService<'_> {
    /// Idle timeout for a port's protocol: the annotation, else 1 h for TCP and 30 s for UDP.
    pub(crate) fn idle_timeout(&self, protocol: L4Protocol) -> Duration {
        self.idle_timeout.unwrap_or(match protocol {
            L4Protocol::Tcp => DEFAULT_TCP_IDLE,
            L4Protocol::Udp => DEFAULT_UDP_IDLE,
        })
    }

    /// True when the two services use a common protocol and port.
    pub(crate) fn clashes_with(&self, ports: &[LbPort]) -> bool {
        self.ports.iter().any(|a| ports.iter().any(|b| a.protocol == b.protocol && a.port == b.port))
    }
}

impl<'s> LbService<'s> {
    /// A Gateway as a candidate for an address: its listeners' ports, the addresses its
    /// `spec.addresses` asks for.
    pub(crate) fn for_gateway(
        object: ObjectRef,
        created: Option<&'s Time>,
        ports: Vec<LbPort>,
        requested: Vec<IpAddr>,
    ) -> Self {
        Self {
            object,
            created,
            labels: None,
            namespace_labels: None,
            ports,
            requested,
            requested_field: "spec.addresses",
            pool: None,
            families: Families::Any,
            share_key: None,
            proxy_protocol: None,
            idle_timeout: None,
            max_flows: DEFAULT_MAX_FLOWS,
            source_ranges: None,
            local_traffic: false,
            ip_mode: IpMode::Vip,
        }
    }
}

/// True for `type: LoadBalancer`: a quick filter before [`read`].
pub(crate) fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// The Service as an L4 candidate; `Ok(None)` when it is not a LoadBalancer of ours.
pub(crate) fn read<'s>(object: ObjectRef, service: &'s Service) -> Result<Option<LbService<'s>>, Vec<Diagnostic>> {
    let Some(spec) = service.spec.as_ref() else {
        return Ok(None);
    };
    if !is_load_balancer(service) {
        return Ok(None);
    }

    if spec.load_balancer_class.as_deref().is_some_and(|c| c != LOAD_BALANCER_CLASS) {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut problem = |field: &str, reason: String| problems.push(Diagnostic::object(object.clone(), field, reason));
    let annotations = service.metadata.annotations.as_ref();
    let annotation = |name: &str| annotations.and_then(|a| a.get(name)).map(String::as_str);
    let annotation_field = |name: &str| format!("metadata.annotations[{name}]");

    let mut ports = Vec::new();
    for (i, port) in spec.ports.as_deref().unwrap_or_default().iter().enumerate() {
        let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => L4Protocol::Tcp,
            "UDP" => L4Protocol::Udp,
            other => {
                problem(&format!("spec.ports[{i}].protocol"), format!("{other:?} is not supported; only TCP and UDP"));
                continue;
            }
        };
        match u16::try_from(port.port) {
            Ok(number) if number != 0 => {
                ports.push(LbPort { protocol, port: number, name: port.name.clone().unwrap_or_default() })
            }
            _ => problem(&format!("spec.ports[{i}].port"), format!("{} is not a valid port", port.port)),
        }
    }

    let first_of = |names: [&'static str; 3]| names.into_iter().find_map(|n| annotation(n).map(|v| (n, v)));
    let (requested_text, requested_field) = match (first_of(IPS_ANNOTATIONS), spec.load_balancer_ip.as_deref()) {
        (Some((name, ips)), _) => (ips, annotation_field_static(name)),
        (None, Some(ip)) => (ip, "spec.loadBalancerIP"),
        (None, None) => ("", "spec.loadBalancerIP"),
    };
    let mut requested = Vec::new();
    for text in requested_text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match text.parse::<IpAddr>() {
            Ok(ip) => requested.push(ip),
            Err(_) => problem(requested_field, format!("{text:?} is not an IP address")),
        }
    }

    let proxy_protocol = match annotation(PROXY_PROTOCOL_ANNOTATION) {
        None => None,
        Some("v1") => Some(ProxyProtocol::V1),
        Some("v2") => Some(ProxyProtocol::V2),
        Some(other) => {
            problem(&annotation_field(PROXY_PROTOCOL_ANNOTATION), format!("{other:?}: expected \"v1\" or \"v2\""));
            None
        }
    };
    let idle_timeout = annotation(IDLE_TIMEOUT_ANNOTATION).and_then(|text| match parse_duration(text) {
        Some(d) => Some(d),
        None => {
            problem(
                &annotation_field(IDLE_TIMEOUT_ANNOTATION),
                format!("{text:?}: expected a duration like 90s, 10m or 1h"),
            );
            None
        }
    });
    let max_flows = match annotation(MAX_FLOWS_ANNOTATION).map(|t| t.trim().parse::<usize>()) {
        None => DEFAULT_MAX_FLOWS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            problem(&annotation_field(MAX_FLOWS_ANNOTATION), "expected a positive whole number".into());
            DEFAULT_MAX_FLOWS
        }
    };
    let families = match families(spec.ip_family_policy.as_deref(), spec.ip_families.as_deref().unwrap_or_default()) {
        Ok(families) => families,
        Err((field, reason)) => {
            problem(field, reason);
            Families::Any
        }
    };
    let source_ranges =
        match source_ranges(spec.load_balancer_source_ranges.as_deref(), annotation(SOURCE_RANGES_ANNOTATION)) {
            Ok(ranges) => ranges,
            Err((field, reason)) => {
                // Never fail open: a list Sluice cannot read refuses the Service.
                problem(&field, reason);
                None
            }
        };
    let ip_mode = match annotation(IP_MODE_ANNOTATION) {
        None if proxy_protocol.is_some() => IpMode::Proxy,
        None | Some("VIP") => IpMode::Vip,
        Some("Proxy") => IpMode::Proxy,
        Some(other) => {
            problem(&annotation_field(IP_MODE_ANNOTATION), format!("{other:?}: expected \"VIP\" or \"Proxy\""));
            IpMode::Vip
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Some(LbService {
        object,
        created: service.metadata.creation_timestamp.as_ref(),
        labels: service.metadata.labels.as_ref(),
        namespace_labels: None,
        ports,
        requested,
        requested_field,
        pool: first_of(POOL_ANNOTATIONS).map(|(name, pool)| (pool.trim().to_owned(), annotation_field_static(name))),
        families,
        share_key: first_of(SHARED_IP_ANNOTATIONS).map(|(_, key)| key.to_owned()).filter(|k| !k.is_empty()),
        proxy_protocol,
        idle_timeout,
        max_flows,
        source_ranges,
        local_traffic: spec.external_traffic_policy.as_deref() == Some("Local"),
        ip_mode,
    }))
}

/// The diagnostic field of one of the annotations above.
fn annotation_field_static(name: &'static str) -> &'static str {
    match name {
        "sluice.dev/load-balancer-ips" => "metadata.annotations[sluice.dev/load-balancer-ips]",
        "metallb.io/loadBalancerIPs" => "metadata.annotations[metallb.io/loadBalancerIPs]",
        "metallb.universe.tf/loadBalancerIPs" => "metadata.annotations[metallb.universe.tf/loadBalancerIPs]",
        "sluice.dev/address-pool" => "metadata.annotations[sluice.dev/address-pool]",
        "metallb.io/address-pool" => "metadata.annotations[metallb.io/address-pool]",
        "metallb.universe.tf/address-pool" => "metadata.annotations[metallb.universe.tf/address-pool]",
        _ => "metadata.annotations",
    }
}

/// `spec.ipFamilyPolicy` and `spec.ipFamilies` as the addresses to allocate.
fn families(policy: Option<&str>, families: &[String]) -> Result<Families, (&'static str, String)> {
    let mut parsed = Vec::new();
    for family in families {
        parsed.push(match family.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            other => return Err(("spec.ipFamilies", format!("{other:?} is not IPv4 or IPv6"))),
        });
    }
    match policy.unwrap_or("SingleStack") {
        "SingleStack" => Ok(parsed.first().map_or(Families::Any, |f| Families::Single(*f))),
        "PreferDualStack" => Ok(Families::Dual { required: false }),
        "RequireDualStack" => Ok(Families::Dual { required: true }),
        other => Err((
            "spec.ipFamilyPolicy",
            format!("{other:?}: expected SingleStack, PreferDualStack or RequireDualStack"),
        )),
    }
}

/// `spec.loadBalancerSourceRanges`, else the older annotation; `None`: everyone may connect.
fn source_ranges(field: Option<&[String]>, annotation: Option<&str>) -> Result<Option<Arc<[IpNet]>>, (String, String)> {
    let (texts, name): (Vec<&str>, String) = match (field, annotation) {
        (Some(list), _) if !list.is_empty() => {
            (list.iter().map(String::as_str).collect(), "spec.loadBalancerSourceRanges".into())
        }
        (_, Some(text)) => (
            text.split(',').map(str::trim).filter(|t| !t.is_empty()).collect(),
            format!("metadata.annotations[{SOURCE_RANGES_ANNOTATION}]"),
        ),
        _ => return Ok(None),
    };
    let mut ranges = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let range = text
            .trim()
            .parse::<IpNet>()
            .map_err(|_| (format!("{name}[{i}]"), format!("{text:?} is not a CIDR; the Service is not served")))?;
        ranges.push(range.trunc());
    }
    Ok((!ranges.is_empty()).then(|| ranges.into()))
}

/// `500ms`, `30s`, `10m`, `1h`, `1m30s`; never zero.
fn parse_duration(text: &str) -> Option<Duration> {
    crate::duration::parse(text.trim()).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "s", "10", "1d", "0s", "-1s", "1.5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
