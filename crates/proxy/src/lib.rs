//! The data plane.
//!
//! Listeners accept HTTP/1.1 and HTTP/2 (cleartext prior knowledge, or ALPN over TLS),
//! route each request with the *current* configuration snapshot, and forward it to a ready
//! endpoint over a pooled upstream connection, streaming bodies both ways. The data plane
//! never parses configuration: it reads the typed snapshot that translation built, loaded
//! once per request so that a swap never tears a request in two.

mod access;
pub mod admin;
mod admission;
mod balance;
mod client_cert;
mod config_view;

mod drain;
mod errors;
mod external_auth;
mod filters;
mod forward;
mod frontends;
mod h1_guard;
mod h2_guard;
mod headers;
mod http1;
mod listener;
mod logged;
mod mirror;
mod otel;
mod path;
mod per_worker;
mod proxy_protocol;
mod rate_limit;

pub mod metrics;
mod passthrough;
mod responses;
mod status;
mod timeouts;
mod tls;
mod trace_context;
mod upstream;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use sluice_config::SharedSnapshot;

pub use admission::ConnectionLimits;
pub use frontends::GatewayListeners;
pub use listener::{serve, Scheme};
pub use metrics::Metrics;
pub use otel::{Tracing, TracingConfig};
pub use rate_limit::SharedRates;
pub use status::GATEWAY_KINDS;
pub use tls::server_config;

/// The crate-private parsers of untrusted input, for the fuzz targets in `fuzz/` (feature
/// `fuzzing`). Not an API: thin wrappers that call the data plane's own code.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::borrow::Cow;
    use std::io;
    use std::net::SocketAddr;

    use tokio::io::AsyncRead;

    /// The request path used to choose a route (dot segments resolved, `//` merged).
    pub fn routing_path(path: &str) -> Cow<'_, str> {
        crate::path::routing_path(path)
    }

    /// Reads one PROXY protocol v1/v2 header from `stream`: the original source and
    /// destination, `None` for `UNKNOWN`/`LOCAL`.
    pub async fn read_proxy_header<S: AsyncRead + Unpin>(
        stream: &mut S,
    ) -> io::Result<Option<(SocketAddr, SocketAddr)>> {
        crate::proxy_protocol::read_header(stream).await
    }

    /// What the bytes at the start of a TLS connection are, as the passthrough reader sees them.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ClientHello {
        /// The start of a ClientHello: more bytes are needed.
        Incomplete,
        /// A complete ClientHello, with its SNI host name when it has one.
        Complete(Option<String>),
        /// Not a (well-formed) ClientHello.
        Other,
    }

    /// Parses the ClientHello at the start of `bytes` (the passthrough SNI parser).
    pub fn client_hello(bytes: &[u8]) -> ClientHello {
        use crate::passthrough::client_hello::{parse, Hello};
        match parse(bytes) {
            Hello::Incomplete => ClientHello::Incomplete,
            Hello::Complete(sni) => ClientHello::Complete(sni),
            Hello::Other => ClientHello::Other,
        }
    }

    /// Most bytes the passthrough reader buffers while looking for a complete ClientHello.
    pub const MAX_HELLO_BYTES: usize = crate::passthrough::client_hello::MAX_HELLO_BYTES;

    /// Checks a request head before anything of it is forwarded: `Err` with the status of
    /// the refusal and whether the connection is closed after it.
    pub fn check_request<B>(request: &http::Request<B>) -> Result<(), (http::StatusCode, bool)> {
        crate::validate::check(request).map_err(|refusal| (refusal.status, refusal.close))
    }

    /// Checks an HTTP/1.x head as the client sent it (framing, fragments) the way the
    /// HTTP/1.1 guard does: `None` when httparse does not parse a complete head, else the
    /// verdict, `Err` with the refusal's status and whether the connection closes.
    pub fn check_head(bytes: &[u8]) -> Option<Result<(), (http::StatusCode, bool)>> {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut head = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(_)) = head.parse(bytes) else {
            return None;
        };
        Some(crate::validate::check_head(&head).map(|_| ()).map_err(|refusal| (refusal.status, refusal.close)))
    }

    /// Follows `bytes` as one client connection's HTTP/1.x stream, handed over in pieces of
    /// `piece` bytes as the HTTP/1.1 guard receives them: how many bytes pass, and how the
    /// stream stops, described (`None` when every byte passed).
    pub fn h1_framing(bytes: &[u8], piece: usize) -> (usize, Option<String>) {
        let (passed, stop) = crate::h1_guard::follow(bytes, piece);
        (passed, stop.map(|step| format!("{step:?}")))
    }

    /// Prepares request headers for the backend as forwarding does: hop-by-hop headers
    /// (and those `Connection` names) removed, kept for a WebSocket upgrade. True when the
    /// request is a WebSocket upgrade.
    pub fn strip_hop_by_hop(headers: &mut http::HeaderMap) -> bool {
        let upgrade = crate::validate::is_websocket_upgrade(headers);
        crate::headers::strip_hop_by_hop(headers, upgrade);
        upgrade
    }

    /// A client connection watched for HTTP/2 control-frame floods, as the listeners wrap
    /// every connection.
    pub fn h2_guard<IO: AsyncRead + Unpin>(inner: IO) -> impl AsyncRead + Unpin {
        crate::h2_guard::H2Guard::new(inner)
    }
}

/// Tunables of the data plane, from the command line.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// How long a client may take to complete a TLS handshake.
    pub handshake_timeout: Duration,
    /// The HTTPS listener's port, where plain-HTTP requests are redirected to (omitted from
    /// the `Location` when 443). Timeouts towards backends are per route, in the snapshot.
    pub https_port: u16,
    /// How long a client may take to send a request head, and stay idle between requests
    /// on a kept-alive connection (nginx's `client_header_timeout`, 60 s).
    pub header_timeout: Duration,
    /// How long a client may pause while sending a request body (nginx's
    /// `client_body_timeout`, 60 s): then 408.
    pub client_body_timeout: Duration,
    /// Caps on open client connections.
    pub connection_limits: ConnectionLimits,
    /// `--rate-limit-redis`: where rates are counted for all replicas.
    pub shared_rates: Option<SharedRates>,
    /// TLS session resumption (tickets and a cache), also for hosts that ask for client
    /// certificates.
    pub tls_session_resumption: bool,
    /// `--access-log`: where each request's line goes.
    pub access_log: sluice_access_log::AccessLog,
    /// `--otlp-endpoint`: a SERVER span per request, exported over OTLP (`otel.rs`).
    /// Tracing on means every request takes the general path: the proxy-native HTTP/1.1
    /// path ([`http1`]) is not used, as its requests would go untraced.
    pub tracing: Option<Tracing>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            https_port: 443,
            header_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            connection_limits: ConnectionLimits::default(),
            shared_rates: None,
            tls_session_resumption: true,
            access_log: sluice_access_log::AccessLog::off(),
            tracing: None,
        }
    }
}

/// Everything a connection needs to serve requests: the current snapshot, upstream pools,
/// metrics. One per process, shared by every listener.
#[derive(Debug)]
pub struct DataPlane {
    snapshot: Arc<SharedSnapshot>,
    upstream: upstream::Upstream,
    metrics: Arc<Metrics>,
    options: ProxyOptions,
    drain: drain::Drain,
    admission: Arc<admission::Admission>,
    /// The counters of every rate and concurrency limit, kept across snapshots.
    limiters: rate_limit::Limiters,
    /// Remembered `auth-url` answers (`auth-cache-key`).
    auth_cache: external_auth::AuthCache,
    /// TLS configurations of hosts that ask for client certificates.
    policy_configs: tls::PolicyConfigs,
    /// Idle backend connections of the proxy-native HTTP/1.1 path.
    http1_pool: http1::Pool,
}

impl DataPlane {
    /// A data plane serving whatever `snapshot` currently holds.
    pub fn new(snapshot: Arc<SharedSnapshot>, metrics: Arc<Metrics>, options: ProxyOptions) -> Arc<Self> {
        let upstream = upstream::Upstream::default();
        let admission = admission::Admission::new(options.connection_limits);
        let limiters = rate_limit::Limiters::new(options.shared_rates.clone());
        let auth_cache = external_auth::AuthCache::default();
        let drain = drain::Drain::new();
        let policy_configs = tls::PolicyConfigs::new(snapshot.clone(), options.tls_session_resumption);
        let http1_pool = http1::Pool::default();
        Arc::new(Self {
            snapshot,
            upstream,
            metrics,
            options,
            drain,
            admission,
            limiters,
            auth_cache,
            policy_configs,
            http1_pool,
        })
    }

    /// Stops accepting on every listener, asks open connections to finish (HTTP/1.1 closes
    /// after the response in flight, HTTP/2 sends GOAWAY) and waits up to `timeout` for
    /// requests and WebSocket tunnels still running. True when everything finished in time.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.drain.shutdown(timeout).await
    }
}
