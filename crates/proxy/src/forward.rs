//! Serving one request: route it with the current snapshot, forward it, stream the answer.

use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme as UriScheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sluice_config::{Route, UpstreamProtocol};

use crate::headers::{is_upgrade, set_forwarding, strip_hop_by_hop, Downstream};
use crate::responses::{error, ProxyBody, SERVER};
use crate::DataPlane;

impl DataPlane {
    /// Answers one request. Never fails: every problem becomes a status code.
    pub(crate) async fn handle(
        &self,
        downstream: &Downstream,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        if request.method() == Method::CONNECT || request.method() == Method::TRACE {
            // An ingress is not a forward proxy, and TRACE reflects credentials back.
            self.metrics
                .request(None, StatusCode::METHOD_NOT_ALLOWED, started.elapsed());
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        // One load per request: a swap during the request does not affect it.
        let snapshot = self.snapshot.load_full();
        let host = request
            .uri()
            .authority()
            .map(Authority::as_str)
            .or_else(|| {
                request
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
            });
        let Some(route) = snapshot.routes.route(host, request.uri().path()) else {
            self.metrics
                .request(None, StatusCode::NOT_FOUND, started.elapsed());
            return error(StatusCode::NOT_FOUND);
        };
        let response = self
            .forward(downstream, route, request)
            .await
            .unwrap_or_else(error);
        self.metrics
            .request(Some(route), response.status(), started.elapsed());
        response
    }

    async fn forward(
        &self,
        downstream: &Downstream,
        route: &Route,
        mut request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, StatusCode> {
        let backend = &route.backend;
        let endpoint = backend.pick().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
        let upgrade = request.version() == Version::HTTP_11 && is_upgrade(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));

        let (mut parts, body) = request.into_parts();
        let host = match parts.uri.authority() {
            Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
            None => parts.headers.get(header::HOST).cloned(),
        };
        strip_hop_by_hop(&mut parts.headers, upgrade);
        set_forwarding(&mut parts.headers, downstream, host.as_ref());
        if let Some(host) = host {
            parts.headers.insert(header::HOST, host);
        }
        parts.version = match backend.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => Version::HTTP_2,
        };
        let authority =
            Authority::try_from(endpoint.to_string()).map_err(|_| StatusCode::BAD_GATEWAY)?;
        let mut uri = parts.uri.into_parts();
        uri.scheme = Some(UriScheme::HTTP);
        uri.authority = Some(authority);
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = Uri::from_parts(uri).map_err(|_| StatusCode::BAD_REQUEST)?;

        let sent = self
            .upstream
            .client(backend.protocol)
            .request(Request::from_parts(parts, body));
        let mut response = match tokio::time::timeout(self.options.upstream_timeout, sent).await {
            Err(_) => return Err(StatusCode::GATEWAY_TIMEOUT),
            Ok(Err(e)) => {
                if e.is_connect() {
                    self.metrics.upstream_connect_error(backend);
                }
                tracing::debug!(backend = %backend.label, %endpoint, error = %e, "upstream request failed");
                return Err(StatusCode::BAD_GATEWAY);
            }
            Ok(Ok(response)) => response,
        };
        let tunnel = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client) if tunnel => {
                let upstream = hyper::upgrade::on(&mut response);
                tokio::spawn(run_tunnel(client, upstream));
            }
            _ if tunnel => return Err(StatusCode::BAD_GATEWAY),
            _ => {}
        }
        strip_hop_by_hop(response.headers_mut(), tunnel);
        response.headers_mut().insert(header::SERVER, SERVER);
        Ok(response.map(Either::Left))
    }
}

/// Copies bytes both ways between an upgraded client connection and backend connection
/// until either side closes.
async fn run_tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = tokio::join!(client, upstream);
    match (client, upstream) {
        (Ok(client), Ok(upstream)) => {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "tunnel closed with an error");
            }
        }
        (client, upstream) => {
            tracing::debug!(client = ?client.err(), upstream = ?upstream.err(), "upgrade failed");
        }
    }
}
