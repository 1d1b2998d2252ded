//! Serving one request: route it with the current snapshot, forward it, stream the answer.

use std::net::SocketAddr;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sluice_config::{Backend, UpstreamProtocol};

use crate::headers::{is_upgrade, set_forwarding, strip_hop_by_hop, Downstream};
use crate::path::routing_path;
use crate::responses::{error, ProxyBody, SERVER};
use crate::upstream::{SendError, UpstreamBody};
use crate::DataPlane;

/// Most endpoints tried for one request when connections are refused.
const CONNECT_ATTEMPTS: usize = 3;

impl DataPlane {
    /// Answers one request. Never fails: every problem becomes a status code.
    pub(crate) async fn handle(&self, downstream: &Downstream, request: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        if let Err(status) = check_request(&request) {
            self.metrics.request(None, status, started.elapsed());
            return error(status);
        }
        // One load per request: a swap during the request does not affect it.
        let snapshot = self.snapshot.load_full();
        let host = request
            .uri()
            .authority()
            .map(Authority::as_str)
            .or_else(|| request.headers().get(header::HOST).and_then(|h| h.to_str().ok()));
        let path = routing_path(request.uri().path());
        let found = snapshot.routes.route(host, &path);
        let Some((route, backend)) = found.and_then(|r| Some((r, snapshot.backend(r.backend)?))) else {
            self.metrics.request(None, StatusCode::NOT_FOUND, started.elapsed());
            return error(StatusCode::NOT_FOUND);
        };
        let response = self.forward(downstream, backend, request).await.unwrap_or_else(error);
        self.metrics.request(Some((&**route, &**backend)), response.status(), started.elapsed());
        response
    }

    async fn forward(
        &self,
        downstream: &Downstream,
        backend: &Backend,
        mut request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, StatusCode> {
        let mut endpoint = backend.pick().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
        let upgrade = request.version() == Version::HTTP_11 && is_upgrade(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        prepare(&mut parts, downstream, backend.protocol, upgrade);
        // A request without a body can be sent again when an endpoint refuses the
        // connection; one with a body is streamed, so it gets one attempt.
        let replayable = body.is_end_stream();
        let attempts = if replayable { CONNECT_ATTEMPTS.min(backend.endpoints.len()) } else { 1 };
        // The head is copied only when another attempt may need it.
        let mut spare = (attempts > 1).then(|| copy_head(&parts));
        let mut next = Some((parts, Either::Left(body)));
        let mut response = None;
        for attempt in 1..=attempts {
            let (mut head, sent_body) = match next.take() {
                Some(first) => first,
                None => {
                    let head = spare.take().ok_or(StatusCode::BAD_GATEWAY)?;
                    spare = (attempt < attempts).then(|| copy_head(&head));
                    (head, Either::Right(Empty::new()))
                }
            };
            head.uri = upstream_uri(&head, backend.protocol, endpoint)?;
            match self.send(backend, endpoint, Request::from_parts(head, sent_body)).await {
                Err(Failure::Connect) if attempt < attempts => {
                    endpoint = backend.pick().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
                }
                Err(failure) => return Err(failure.status()),
                Ok(answer) => {
                    response = Some(answer);
                    break;
                }
            }
        }
        let mut response = response.ok_or(StatusCode::BAD_GATEWAY)?;
        let tunnel = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client) if tunnel => {
                let upstream = hyper::upgrade::on(&mut response);
                self.drain.spawn(run_tunnel(client, upstream));
            }
            _ if tunnel => return Err(StatusCode::BAD_GATEWAY),
            _ => {}
        }
        let headers = response.headers_mut();
        strip_hop_by_hop(headers, tunnel);
        if response.status().is_informational() || response.status() == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6: never on 1xx/204; HTTP/2 clients reset the stream over it.
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        response.headers_mut().insert(header::SERVER, SERVER);
        Ok(response.map(Either::Left))
    }

    /// Sends one attempt, classifying what went wrong.
    async fn send(
        &self,
        backend: &Backend,
        endpoint: SocketAddr,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Failure> {
        let sent = self.upstream.send(backend.protocol, endpoint, request);
        match tokio::time::timeout(self.options.upstream_timeout, sent).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.label, %endpoint, error = %e, "upstream request failed");
                if matches!(e, SendError::Connect(_)) {
                    self.metrics.upstream_connect_error(backend);
                    Err(Failure::Connect)
                } else {
                    Err(Failure::Other)
                }
            }
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// Why an upstream attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection could be made (refused, unreachable, connect timeout).
    Connect,
    /// No response headers within the upstream timeout.
    Timeout,
    /// The connection broke while sending or before the response.
    Other,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Connect | Failure::Other => StatusCode::BAD_GATEWAY,
        }
    }
}

/// Rejects what must not be forwarded: CONNECT/TRACE (an ingress is not a forward proxy,
/// and TRACE reflects credentials), and HTTP/1.1 requests without exactly one `Host`
/// (RFC 9112 §3.2: 400).
fn check_request(request: &Request<Incoming>) -> Result<(), StatusCode> {
    if request.method() == Method::CONNECT || request.method() == Method::TRACE {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    let hosts = request.headers().get_all(header::HOST).iter().count();
    let needs_host = request.version() == Version::HTTP_11 && request.uri().authority().is_none();
    if hosts > 1 || (needs_host && hosts == 0) {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(())
}

/// Rewrites the request head for the backend: hop-by-hop headers out, forwarding headers
/// in, `Host` kept (taken from `:authority` for HTTP/2 clients), the backend's version.
fn prepare(parts: &mut Parts, downstream: &Downstream, protocol: UpstreamProtocol, upgrade: bool) {
    let host = match parts.uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    };
    strip_hop_by_hop(&mut parts.headers, upgrade);
    set_forwarding(&mut parts.headers, downstream, host.as_ref());
    if let Some(host) = host {
        parts.headers.insert(header::HOST, host);
    }
    parts.version = match protocol {
        UpstreamProtocol::Http1 => Version::HTTP_11,
        UpstreamProtocol::H2c => Version::HTTP_2,
    };
}

/// The upstream request target, path and query as the client sent them: origin-form for
/// HTTP/1.1; for HTTP/2 with the client's host as `:authority` (else the endpoint's).
fn upstream_uri(head: &Parts, protocol: UpstreamProtocol, endpoint: SocketAddr) -> Result<Uri, StatusCode> {
    let path = head.uri.path_and_query().cloned().unwrap_or(PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path);
    if protocol == UpstreamProtocol::H2c {
        let host = head.headers.get(header::HOST).and_then(|h| Authority::try_from(h.as_bytes()).ok());
        parts.scheme = Some(UriScheme::HTTP);
        let authority = match host {
            Some(host) => host,
            None => Authority::try_from(endpoint.to_string()).map_err(|_| StatusCode::BAD_GATEWAY)?,
        };
        parts.authority = Some(authority);
    }
    Uri::from_parts(parts).map_err(|_| StatusCode::BAD_REQUEST)
}

/// A copy of a request head (method, version, headers) for another attempt.
fn copy_head(parts: &Parts) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.version = parts.version;
    head.headers = parts.headers.clone();
    head.uri = parts.uri.clone();
    head
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
