//! The kinds the source watches: where each kind's objects live in the [`Store`], how they
//! are keyed, which are kept, and what is dropped from them before they are stored.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;
use sluice_store::gateway_api::backendtlspolicies::BackendTlsPolicy;
use sluice_store::gateway_api::experimental::gatewayclasses::GatewayClass;
use sluice_store::gateway_api::experimental::gateways::Gateway;
use sluice_store::gateway_api::experimental::grpcroutes::GrpcRoute;
use sluice_store::gateway_api::experimental::httproutes::HttpRoute;
use sluice_store::gateway_api::experimental::referencegrants::ReferenceGrant;
use sluice_store::gateway_api::experimental::tcproutes::TcpRoute;
use sluice_store::gateway_api::experimental::tlsroutes::TlsRoute;
use sluice_store::gateway_api::experimental::udproutes::UdpRoute;
use sluice_store::{keeps_secret, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};
use sluice_store::{ObjectKey, Store};

/// Number of kinds watched; `ready` waits for all of them (optional kinds count as listed
/// when the API server does not serve them).
pub(crate) const KINDS: u32 = 22;

/// A kind Sluice watches: where its objects live in the [`Store`].
pub(crate) trait Kind: Resource<DynamicType = ()> + Clone + Debug + PartialEq + Send + Sync + 'static {
    /// What the API server's JSON is read as: the kind itself, or [`SpecOptional`] of it.
    type Wire: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static;
    /// Bit of this kind in the source's set of listed kinds.
    const BIT: u32;
    /// The kind's name, as sent to subscribers.
    const KIND: &'static str;
    /// Whether the API server may not serve this kind (a CRD), or may refuse it to an older
    /// ClusterRole: a `404`/`403` list then means no objects instead of blocking readiness.
    const OPTIONAL: bool;
    /// This kind's objects in the store.
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>>;
    /// The object read from the API server.
    fn from_wire(wire: Self::Wire) -> Self;
    /// The store key.
    fn key(&self) -> ObjectKey;
    /// Whether Sluice keeps this object.
    fn wanted(&self) -> bool {
        true
    }
    /// Drops what is never read and large, before the object is compared and stored.
    fn slim(&mut self) {}
}

/// Implements [`Kind`]: the store's type, its bit, its name, its store field, `namespaced` or
/// `cluster`, `required` or `optional`, read `plain` or `spec_optional`, then any hooks.
macro_rules! kind {
    ($ty:ty: $bit:literal, $kind:literal, $field:ident, $scope:ident, $presence:ident, $wire:ident $(; $($hook:tt)+)?) => {
        impl Kind for $ty {
            type Wire = kind!(@wire $wire, $ty);
            const BIT: u32 = $bit;
            const KIND: &'static str = $kind;
            const OPTIONAL: bool = kind!(@optional $presence);
            fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>> {
                &mut store.$field
            }
            fn from_wire(wire: Self::Wire) -> Self {
                kind!(@from $wire, wire)
            }
            fn key(&self) -> ObjectKey {
                kind!(@key $scope, self)
            }
            $($($hook)+)?
        }
    };
    (@wire plain, $ty:ty) => { $ty };
    (@wire spec_optional, $ty:ty) => { SpecOptional<$ty> };
    (@from plain, $wire:expr) => { $wire };
    (@from spec_optional, $wire:expr) => { $wire.0 };
    (@optional required) => { false };
    (@optional optional) => { true };
    (@key namespaced, $object:expr) => { ObjectKey::of($object.meta()) };
    (@key cluster, $object:expr) => { ObjectKey::new("", $object.meta().name.as_deref().unwrap_or_default()) };
}

kind!(IngressClass: 0, "IngressClass", ingress_classes, cluster, required, plain);
kind!(Ingress: 1, "Ingress", ingresses, namespaced, required, plain);
kind!(Service: 2, "Service", services, namespaced, required, plain);
kind!(EndpointSlice: 3, "EndpointSlice", endpoint_slices, namespaced, required, plain);
kind!(Secret: 4, "Secret", secrets, namespaced, required, plain;
    fn wanted(&self) -> bool {
        keeps_secret(self)
    }
);
kind!(ConfigMap: 5, "ConfigMap", config_maps, namespaced, required, plain);
kind!(Namespace: 6, "Namespace", namespaces, cluster, optional, plain);
kind!(GatewayClass: 7, "GatewayClass", gateway_classes, cluster, optional, plain);
kind!(Gateway: 8, "Gateway", gateways, namespaced, optional, plain);
kind!(HttpRoute: 9, "HTTPRoute", http_routes, namespaced, optional, plain);
kind!(GrpcRoute: 10, "GRPCRoute", grpc_routes, namespaced, optional, plain);
kind!(TlsRoute: 11, "TLSRoute", tls_routes, namespaced, optional, plain);
kind!(TcpRoute: 12, "TCPRoute", tcp_routes, namespaced, optional, plain);
kind!(UdpRoute: 13, "UDPRoute", udp_routes, namespaced, optional, plain);
kind!(ReferenceGrant: 14, "ReferenceGrant", reference_grants, namespaced, optional, plain);
kind!(BackendTlsPolicy: 15, "BackendTLSPolicy", backend_tls_policies, namespaced, optional, plain);
kind!(Node: 16, "Node", nodes, cluster, optional, plain;
    /// The images a node holds (often hundreds of entries with every tag and digest) and its
    /// volumes are the bulk of a Node's status and never read: labels, conditions and
    /// addresses are.
    fn slim(&mut self) {
        if let Some(status) = self.status.as_mut() {
            status.images = None;
            status.volumes_in_use = None;
            status.volumes_attached = None;
        }
    }
);
kind!(IPAddressPool: 17, "IPAddressPool", ip_address_pools, namespaced, optional, spec_optional);
kind!(L2Advertisement: 18, "L2Advertisement", l2_advertisements, namespaced, optional, spec_optional);
kind!(BGPAdvertisement: 19, "BGPAdvertisement", bgp_advertisements, namespaced, optional, spec_optional);
kind!(BGPPeer: 20, "BGPPeer", bgp_peers, namespaced, optional, spec_optional);
kind!(Community: 21, "Community", communities, namespaced, optional, spec_optional);

/// An object of a CustomResourceDefinition whose `spec` may be absent: MetalLB's documented
/// L2Advertisement that announces every pool has none, the API server stores it so, and the
/// derived types require one. Read as an empty `spec`; otherwise one such object would fail
/// its whole list.
#[derive(Debug, Clone)]
pub(crate) struct SpecOptional<K>(K);

impl<'de, K: DeserializeOwned> Deserialize<'de> for SpecOptional<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        if let Some(fields) = value.as_object_mut() {
            let spec = fields.entry("spec").or_insert(Value::Null);
            if spec.is_null() {
                *spec = Value::Object(serde_json::Map::new());
            }
        }
        K::deserialize(value).map(SpecOptional).map_err(D::Error::custom)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for SpecOptional<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}
