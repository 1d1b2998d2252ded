//! The immutable configuration snapshot.
//!
//! Translation turns Kubernetes objects into a [`Snapshot`]; the data plane only ever reads
//! one. Every string a stranger wrote has already been parsed into the newtypes of this crate
//! ([`Hostname`], [`HostMatch`], [`PathMatch`]), so the hot path never re-validates anything.
//! A snapshot is shared as an `Arc` and replaced whole through [`SharedSnapshot`], so a request
//! always sees one consistent configuration.

mod access;
mod acme;
mod announce;
mod backend;
mod balance;
mod client;
mod client_cert;
mod cors;
pub mod crypto;
mod diagnostic;
mod external_auth;
mod gateway;
mod gateway_status;
mod host;
mod l4;
mod passthrough;
mod path;
mod rate_limit;
mod route;
mod routes;
mod same_site;
mod template;
mod tls;
mod upstream_tls;

pub use access::{Access, AddressSet, AddressVerdict, Authentication, BasicAuth, Blocklist, Satisfy};
pub use acme::{
    Acme, AcmeChallenges, CertificateFacts, ManagedCertificate, ACME_TLS_ALPN_PROTOCOL, HTTP01_PATH_PREFIX,
};
pub use announce::{
    AddressAnnouncement, Announcements, BgpAnnouncement, BgpPeer, Community, L2Announcement, L2Interfaces, NodeSet,
};
pub use backend::{Backend, BackendId, InFlight, Transport, UpstreamProtocol};
pub use balance::{stable_hash, Affinity, AffinityMode, Balance, HashBy, Maglev};
pub use client::{canonical, ClientTrust, IpNet, RealIp};
pub use client_cert::{
    verifier as client_cert_verifier, ClientAuthTable, ClientCertCheck, ClientCertPolicy, VerifyClient,
};
pub use cors::{Cors, CorsOrigins, OriginPattern};
pub use diagnostic::{Diagnostic, ObjectRef, Severity, Subject};
pub use external_auth::{
    AuthCaching, ExternalAuth, SENT_FROM, X_AUTH_REQUEST_REDIRECT, X_ORIGINAL_METHOD, X_ORIGINAL_URI, X_ORIGINAL_URL,
    X_SENT_FROM,
};
pub use gateway::{
    Frontend, FrontendMode, GatewayFrontends, GatewayPath, HostPattern, HostRoutes, ListenerRoutes, Matches, RouteMatch,
};
pub use gateway_status::{
    Condition as StatusCondition, ConditionStatus, GatewayAddress, GatewayApiStatus, ListenerStatus, ObjectStatus,
    ParentRef, PolicyAncestorStatus, RouteKind, RouteParentStatus, GATEWAY_CONTROLLER,
};
pub use host::{HostMatch, Hostname, InvalidHostname};
pub use l4::{IpMode, L4Backends, L4Key, L4Listener, L4Protocol, L4Table, ProxyProtocol};
pub use passthrough::PassthroughTable;
pub use path::{InvalidPath, PathMatch, PathRegex, PathSet, REGEX_SIZE_LIMIT};
pub use rate_limit::{Concurrency, Rate, RateLimit};
pub use route::{
    Action, BackendEdits, Condition, ErrorPages, Filter, Forward, HeaderEdits, Location, Mirror, MirrorTo,
    PathModifier, PathRewrite, Redirect, RedirectParts, RequestHead, RetryOn, RetryPolicy, Route, RouteGroup,
    UpstreamPolicy, ValueMatch, WeightedBackend,
};
pub use routes::{Conflict, RouteEntry, RouteTable, RouteTableBuilder};
pub use same_site::same_site_none_is_safe;
pub use sluice_htpasswd::Htpasswd;
pub use template::{cookie, InvalidTemplate, RequestFacts, Template, Variable};
pub use tls::{CertificateTable, CertificateTableBuilder};
pub use upstream_tls::{ServerVerification, UpstreamTls, UpstreamTlsOptions};

use std::sync::Arc;

/// One complete, immutable configuration: what the data plane serves between two swaps.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every snapshot swapped in; exported as a metric.
    pub generation: u64,
    /// Host and path routing for the HTTP and HTTPS listeners; shared with the previous
    /// snapshot when only endpoints changed.
    pub routes: Arc<RouteTable>,
    /// The backends routes point at, by [`BackendId`]; `None` for an id no route uses
    /// (ids stay stable while used, so a table that shares routes keeps pointing right).
    pub backends: Vec<Option<Arc<Backend>>>,
    /// Certificates by SNI for the HTTPS listener.
    pub certificates: Arc<CertificateTable>,
    /// Whom the HTTP and HTTPS listeners believe about the client (PROXY protocol,
    /// forwarding headers); the controller ConfigMap's settings.
    pub client_trust: Arc<ClientTrust>,
    /// SNI names whose TLS connections the HTTPS listener relays untouched to a backend
    /// (`ssl-passthrough`); shared between snapshots while unchanged.
    pub passthrough: Arc<PassthroughTable>,
    /// Hosts whose handshake asks for a client certificate, by SNI.
    pub client_auth: Arc<ClientAuthTable>,
    /// Automatic HTTPS: the challenges the listeners answer, the certificates the issuer
    /// obtains.
    pub acme: Arc<Acme>,

    /// Layer-4 listeners for Services of `type: LoadBalancer`.
    pub l4: L4Table,
    /// The Ingresses this snapshot serves, for status reporting; shared between snapshots
    /// while the routes are.
    pub ingresses: Arc<[Arc<ObjectRef>]>,
    /// The status of every Gateway API object of ours (GatewayClasses, Gateways, routes
    /// attached to them), in store order; served by `/status` and written by the leader.
    pub gateway_status: Arc<[ObjectStatus]>,
    /// The addresses and ports Gateways serve HTTP and HTTPS on, with their listeners'
    /// routes.
    pub gateways: Arc<GatewayFrontends>,

    /// Everything translation rejected or could not resolve, for `check`, logs and status.
    pub diagnostics: Vec<Diagnostic>,
    /// Counts for the one-line summary of `sluice check` and the start-up log.
    pub summary: Summary,
}

impl Snapshot {
    /// The backend a route points at.
    pub fn backend(&self, id: BackendId) -> Option<&Arc<Backend>> {
        self.backends.get(id.0 as usize)?.as_ref()
    }
}

/// Counts describing a snapshot, for humans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Ingresses of our class that were accepted.
    pub ingresses: usize,
    /// Ingresses of our class that were rejected as invalid.
    pub rejected_ingresses: usize,
    /// Host/path routes in the table, including the default backend.
    pub routes: usize,
    /// Certificates selectable by SNI (the default certificate not counted).
    pub certificates: usize,
}

/// The swap point between the control plane and the data plane: readers `load()` the current
/// snapshot, the control plane `store()`s a new one in one atomic step.
pub type SharedSnapshot = arc_swap::ArcSwap<Snapshot>;

/// Wraps a first snapshot for sharing.
pub fn share(snapshot: Snapshot) -> Arc<SharedSnapshot> {
    Arc::new(arc_swap::ArcSwap::from_pointee(snapshot))
}
