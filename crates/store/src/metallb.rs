//! MetalLB's configuration kinds, as its users already have them: `metallb.io/v1beta1`
//! IPAddressPool, L2Advertisement, BGPAdvertisement and Community, and `metallb.io/v1beta2`
//! BGPPeer. Fields are those of MetalLB's API; translation validates them (a field that does
//! not parse is a diagnostic naming it) and says which it does not honour.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The API group of every MetalLB kind.
pub const METALLB_GROUP: &str = "metallb.io";

/// `IPAddressPool.spec`: addresses LoadBalancer Services may get.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct IpAddressPoolSpec {
    /// CIDRs (`198.18.0.0/24`) and ranges (`198.18.0.10-198.18.0.20`), IPv4 and IPv6.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// False: only Services that ask for this pool or one of its addresses get one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Never hands out addresses ending in `.0` or `.255`.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Which Services may use the pool, and its priority among pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// `IPAddressPool.spec.serviceAllocation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower first; a pool without a priority comes after every pool with one.
    #[serde(default)]
    pub priority: i32,
    /// Namespaces whose Services may use the pool.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces selected by labels.
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services selected by labels.
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// `L2Advertisement.spec`: which pools are announced by ARP/NDP, where, from which nodes.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools by name.
    #[serde(default, rename = "ipAddressPools")]
    pub ip_address_pools: Vec<String>,
    /// Pools by labels (neither set: every pool).
    #[serde(default, rename = "ipAddressPoolSelectors")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce (empty: all).
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to answer on (empty: every interface).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Services announced (empty: all of the pools').
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// `BGPAdvertisement.spec`: which pools are announced to which BGP peers, and how.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct BgpAdvertisementSpec {
    /// IPv4 prefix length announced (default 32): addresses rolled up into that prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_length: Option<i32>,
    /// IPv6 prefix length announced (default 128).
    #[serde(default, rename = "aggregationLengthV6", skip_serializing_if = "Option::is_none")]
    pub aggregation_length_v6: Option<i32>,
    /// LOCAL_PREF for iBGP peers.
    #[serde(default)]
    pub local_pref: u32,
    /// `65535:65282`, `large:1:2:3`, or the name of a Community alias.
    #[serde(default)]
    pub communities: Vec<String>,
    /// Pools by name.
    #[serde(default, rename = "ipAddressPools")]
    pub ip_address_pools: Vec<String>,
    /// Pools by labels (neither set: every pool).
    #[serde(default, rename = "ipAddressPoolSelectors")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce (empty: all).
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// BGPPeer names to announce to (empty: every peer).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Services announced (empty: all of the pools').
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// `Community.spec`: names for community values.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
pub struct CommunitySpec {
    /// The aliases.
    #[serde(default)]
    pub communities: Vec<CommunityAlias>,
}

/// One `Community.spec.communities[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommunityAlias {
    /// The alias, as BGPAdvertisements write it.
    #[serde(default)]
    pub name: String,
    /// `1234:1234` or `large:1:2:3`.
    #[serde(default)]
    pub value: String,
}

/// `BGPPeer.spec` (`metallb.io/v1beta2`): a BGP router to peer with.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// Our AS number.
    #[serde(default, rename = "myASN")]
    pub my_asn: u32,
    /// The peer's AS number.
    #[serde(default, rename = "peerASN")]
    pub peer_asn: u32,
    /// `internal`/`external`: the peer's ASN is whatever it says (instead of `peerASN`).
    #[serde(default, rename = "dynamicASN", skip_serializing_if = "Option::is_none")]
    pub dynamic_asn: Option<String>,
    /// The peer's address.
    #[serde(default)]
    pub peer_address: String,
    /// The peer's port (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    /// The local address the session starts from.
    #[serde(default)]
    pub source_address: String,
    /// Unnumbered BGP over an interface (not supported).
    #[serde(default)]
    pub interface: String,
    /// Hold time proposed (`90s`; Go duration syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Keepalive interval (default a third of the hold time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// How long a connection attempt may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<String>,
    /// The BGP router ID (default: the source or node address).
    #[serde(default, rename = "routerID")]
    pub router_id: String,
    /// Nodes that peer (empty: all).
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 password (RFC 2385).
    #[serde(default)]
    pub password: String,
    /// The password from a Secret (not supported: plain Secrets are never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<k8s_openapi::api::core::v1::SecretReference>,
    /// BFD (not supported).
    #[serde(default, rename = "bfdProfile")]
    pub bfd_profile: String,
    /// Graceful restart (not supported).
    #[serde(default)]
    pub enable_graceful_restart: bool,
    /// eBGP with a peer more than one hop away (TTL 255 instead of 1).
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    /// VRF (not supported).
    #[serde(default, rename = "vrf")]
    pub vrf_name: String,
    /// Announce each family over its own session only (the default here anyway).
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
}
