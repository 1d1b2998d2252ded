//! Pooled connections to backends: HTTP/1.1 keep-alive, or HTTP/2 cleartext.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use sluice_config::UpstreamProtocol;

use crate::ProxyOptions;

/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A request body towards a backend: the client's, streamed, or empty for a retry of a
/// request that had none.
pub(crate) type UpstreamBody = Either<Incoming, Empty<Bytes>>;

/// One pool per upstream protocol; each pool keys connections by endpoint address.
#[derive(Debug)]
pub(crate) struct Upstream {
    http1: Client<HttpConnector, UpstreamBody>,
    h2c: Client<HttpConnector, UpstreamBody>,
}

impl Upstream {
    pub(crate) fn new(options: &ProxyOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.connect_timeout));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .set_host(false);
        let http1 = builder.build(connector.clone());
        builder.http2_only(true);
        let h2c = builder.build(connector);
        Self { http1, h2c }
    }

    /// The pool for `protocol`.
    pub(crate) fn client(&self, protocol: UpstreamProtocol) -> &Client<HttpConnector, UpstreamBody> {
        match protocol {
            UpstreamProtocol::Http1 => &self.http1,
            UpstreamProtocol::H2c => &self.h2c,
        }
    }
}
