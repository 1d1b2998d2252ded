//! The store of typed Kubernetes objects.
//!
//! Sources (the manifest directory, later the Kubernetes API) put objects here; translation
//! reads them. The store holds only the kinds Sluice acts on, keyed by namespace and name,
//! in sorted maps so that every walk over it is deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;

pub mod metallb;

use gateway_api::backendtlspolicies::BackendTlsPolicy;
use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;
use gateway_api::experimental::grpcroutes::GrpcRoute;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use gateway_api::experimental::tcproutes::TcpRoute;
use gateway_api::experimental::tlsroutes::TlsRoute;
use gateway_api::experimental::udproutes::UdpRoute;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use gateway_api;
pub use k8s_openapi;
pub use metallb::{BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};

/// Namespace and name of a namespaced object (namespace empty for cluster-scoped kinds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace; `default` when the manifest leaves it out.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `meta`, with the Kubernetes default namespace when none is given.
    pub fn of(meta: &ObjectMeta) -> Self {
        Self {
            namespace: meta.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// A key from its parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

/// The namespace of objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The Secret type whose certificates the HTTPS listener serves.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The type of the Secret Sluice's ACME issuer publishes challenge answers in, which every
/// replica reads.
pub const ACME_CHALLENGES_SECRET_TYPE: &str = "sluice.dev/acme-challenges";

/// Whether Sluice keeps a Secret: `kubernetes.io/tls` ones (served certificates); Secrets
/// of any type holding `ca.crt` or `tls.crt` (`proxy-ssl-secret`: trust anchors and client
/// certificates towards backends); and basic-auth Secrets: an htpasswd file under `auth`
/// (`auth-file`), or only password hashes, one key per user (`auth-map`). Every other
/// Secret (plain passwords, tokens) is never stored, by both sources.
pub fn keeps_secret(secret: &Secret) -> bool {
    let has = |key: &str| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret.string_data.as_ref().is_some_and(|d| d.contains_key(key))
    };
    secret.type_.as_deref() == Some(TLS_SECRET_TYPE)
        || secret.type_.as_deref() == Some(ACME_CHALLENGES_SECRET_TYPE)
        || has("ca.crt")
        || has("tls.crt")
        || has("auth")
        || holds_only_hashes(secret)
}

/// True when every value of a non-empty Secret starts like a password hash htpasswd writes.
fn holds_only_hashes(secret: &Secret) -> bool {
    const HASHES: [&[u8]; 7] = [b"$2y$", b"$2a$", b"$2b$", b"$apr1$", b"$1$", b"$5$", b"$6$"];
    let is_hash = |value: &[u8]| {
        let value = value.trim_ascii_start();
        HASHES.iter().any(|prefix| value.starts_with(prefix)) || value.starts_with(b"{SHA}")
    };
    let data = secret.data.iter().flatten().map(|(_, v)| v.0.as_slice());
    let strings = secret.string_data.iter().flatten().map(|(_, v)| v.as_bytes());
    let mut values = data.chain(strings).peekable();
    values.peek().is_some() && values.all(is_hash)
}

/// Declares the kinds the store holds once: the [`Object`] enum and every per-kind
/// operation of [`Store`] follow from this list, so adding a kind is one line.
macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) => $field:ident, $kind:literal, $scope:ident; )*) => {
        /// One object of a kind Sluice acts on.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Object {
            $( $(#[$doc])* $variant(Box<$ty>), )*
        }

        impl Object {
            /// The object's kind as written in manifests.
            pub fn kind(&self) -> &'static str {
                match self { $( Object::$variant(_) => $kind, )* }
            }

            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self { $( Object::$variant(o) => &o.metadata, )* }
            }

            /// The store key: cluster-scoped kinds have an empty namespace.
            pub fn key(&self) -> ObjectKey {
                match self { $( Object::$variant(o) => kinds!(@key $scope, &o.metadata), )* }
            }
        }

        /// All objects Sluice knows, by kind, then namespace/name.
        ///
        /// Objects are shared (`Arc`): a clone of the store is cheap, and an object that was not
        /// replaced is the same allocation as before, which is how translation tells in one
        /// pointer comparison that there is nothing to redo for it.
        #[derive(Debug, Clone, Default)]
        pub struct Store {
            $( $(#[$doc])* pub $field: BTreeMap<ObjectKey, Arc<$ty>>, )*
        }

        impl Store {
            /// Adds or replaces an object. Returns false when an object of the same kind and key
            /// was already present (the caller decides whether that is a duplicate to report).
            pub fn insert(&mut self, object: Object) -> bool {
                let key = object.key();
                let previous = match object { $( Object::$variant(o) => self.$field.insert(key, Arc::new(*o)).is_some(), )* };
                !previous
            }

            /// True when the store holds exactly this object (same kind, key and content).
            pub fn holds(&self, object: &Object) -> bool {
                let key = object.key();
                match object { $( Object::$variant(o) => self.$field.get(&key).map(|held| &**held) == Some(&**o), )* }
            }

            /// Removes the object of this kind and key; true if there was one.
            pub fn remove(&mut self, kind: &str, key: &ObjectKey) -> bool {
                match kind { $( $kind => self.$field.remove(key).is_some(), )* _ => false }
            }

            /// Whether an object of this kind and key is present.
            pub fn contains(&self, kind: &str, key: &ObjectKey) -> bool {
                match kind { $( $kind => self.$field.contains_key(key), )* _ => false }
            }

            /// Counts of objects by kind, for metrics.
            pub fn counts(&self) -> Vec<(&'static str, usize)> {
                vec![ $( ($kind, self.$field.len()), )* ]
            }

            /// Number of objects of every kind.
            pub fn len(&self) -> usize {
                0 $( + self.$field.len() )*
            }

            /// True when the store holds nothing.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }

        /// Every kind the store holds, as written in manifests.
        pub const KINDS: &[&str] = &[ $( $kind, )* ];
    };
    (@key namespaced, $meta:expr) => { ObjectKey::of($meta) };
    (@key cluster, $meta:expr) => { ObjectKey::new("", $meta.name.as_deref().unwrap_or_default()) };
}

kinds! {
    /// networking.k8s.io/v1 Ingresses of every class (translation picks ours).
    Ingress(Ingress) => ingresses, "Ingress", namespaced;
    /// networking.k8s.io/v1 IngressClasses (cluster-scoped).
    IngressClass(IngressClass) => ingress_classes, "IngressClass", cluster;
    /// v1 Services.
    Service(Service) => services, "Service", namespaced;
    /// discovery.k8s.io/v1 EndpointSlices (a Service's carry the `kubernetes.io/service-name` label).
    EndpointSlice(EndpointSlice) => endpoint_slices, "EndpointSlice", namespaced;
    /// v1 Endpoints, used only for Services without EndpointSlices.
    Endpoints(Endpoints) => endpoints, "Endpoints", namespaced;
    /// v1 Secrets; only those [`keeps_secret`] accepts are kept.
    Secret(Secret) => secrets, "Secret", namespaced;
    /// v1 ConfigMaps: the controller's global settings (`--configmap`) and the response
    /// headers `custom-headers` names.
    ConfigMap(ConfigMap) => config_maps, "ConfigMap", namespaced;
    /// v1 Namespaces (cluster-scoped): their labels decide which routes a Gateway listener's
    /// `allowedRoutes.namespaces.selector` admits.
    Namespace(Namespace) => namespaces, "Namespace", cluster;
    /// gateway.networking.k8s.io GatewayClasses (cluster-scoped).
    GatewayClass(GatewayClass) => gateway_classes, "GatewayClass", cluster;
    /// gateway.networking.k8s.io Gateways.
    Gateway(Gateway) => gateways, "Gateway", namespaced;
    /// gateway.networking.k8s.io HTTPRoutes.
    HttpRoute(HttpRoute) => http_routes, "HTTPRoute", namespaced;
    /// gateway.networking.k8s.io GRPCRoutes.
    GrpcRoute(GrpcRoute) => grpc_routes, "GRPCRoute", namespaced;
    /// gateway.networking.k8s.io TLSRoutes.
    TlsRoute(TlsRoute) => tls_routes, "TLSRoute", namespaced;
    /// gateway.networking.k8s.io TCPRoutes (experimental channel).
    TcpRoute(TcpRoute) => tcp_routes, "TCPRoute", namespaced;
    /// gateway.networking.k8s.io UDPRoutes (experimental channel).
    UdpRoute(UdpRoute) => udp_routes, "UDPRoute", namespaced;
    /// gateway.networking.k8s.io ReferenceGrants: which cross-namespace references a
    /// namespace allows.
    ReferenceGrant(ReferenceGrant) => reference_grants, "ReferenceGrant", namespaced;
    /// gateway.networking.k8s.io BackendTLSPolicies: how Gateways speak TLS to a Service.
    BackendTlsPolicy(BackendTlsPolicy) => backend_tls_policies, "BackendTLSPolicy", namespaced;
    /// v1 Nodes (cluster-scoped): their labels for advertisements' and peers'
    /// `nodeSelectors`, their readiness, and their addresses for `--upstream-mode nodeport`.
    Node(Node) => nodes, "Node", cluster;
    /// metallb.io IPAddressPools: addresses for LoadBalancer Services.
    IpAddressPool(IPAddressPool) => ip_address_pools, "IPAddressPool", namespaced;
    /// metallb.io L2Advertisements: pools announced by ARP/NDP.
    L2Advertisement(L2Advertisement) => l2_advertisements, "L2Advertisement", namespaced;
    /// metallb.io BGPAdvertisements: pools announced over BGP.
    BgpAdvertisement(BGPAdvertisement) => bgp_advertisements, "BGPAdvertisement", namespaced;
    /// metallb.io BGPPeers: the routers to peer with.
    BgpPeer(BGPPeer) => bgp_peers, "BGPPeer", namespaced;
    /// metallb.io Communities: names for BGP community values.
    Community(Community) => communities, "Community", namespaced;
}
