//! Serving one request: route it with the current snapshot, forward it, stream the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Limited};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sluice_config::{
    Action, Backend, BackendEdits, BackendId, Balance, Filter, Forward, HeaderEdits, RequestHead, UpstreamPolicy,
    UpstreamProtocol,
};
use tokio::sync::mpsc;

use crate::access::{self, Admitted, Checked};
use crate::balance::{self, Choice};
use crate::errors::Original;
use crate::filters::{self, Arrival, ResponseFilters};
use crate::headers::{set_forwarding, strip_hop_by_hop, Downstream};
use crate::listener::Scheme;
use crate::logged::{RouteFacts, Tried};
use crate::mirror::{Chunk, Teed};
use crate::path::routing_path;
use crate::responses::{error, ProxyBody, SERVER};
use crate::timeouts::{self, Late, Limits, ReadTimeout, SendProgress};
use crate::upstream::{SendError, UpstreamBody};
use crate::validate;
use crate::DataPlane;

impl DataPlane {
    /// Answers one request. Never fails: every problem becomes a status code.
    pub(crate) async fn handle(
        self: &Arc<Self>,
        downstream: &Downstream,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        match &self.options.tracing {
            // Tracing: the request's span around all of it (otel.rs); boxed, so that
            // requests without it carry nothing more.
            Some(tracing) => {
                Box::pin(tracing.around(downstream, request, |request| self.answer(downstream, request))).await
            }
            None => self.answer(downstream, request).await,
        }
    }

    async fn answer(self: &Arc<Self>, downstream: &Downstream, request: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        if let Err(refusal) = validate::check(&request) {
            self.metrics.request(None, refusal.status, started.elapsed());
            let mut answer = error(refusal.status);
            if refusal.close {
                // What follows on this connection cannot be framed with confidence.
                answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return answer;
        }
        let grpc = crate::responses::is_grpc(request.headers());
        // One load per request: a swap during the request does not affect it.
        let snapshot = self.snapshot.load_full();
        let believed = downstream.believing(&snapshot.client_trust, request.headers());
        let downstream = believed.as_ref().unwrap_or(downstream);
        let host = request
            .uri()
            .authority()
            .map(Authority::as_str)
            .or_else(|| request.headers().get(header::HOST).and_then(|h| h.to_str().ok()));
        if let Some(answer) = snapshot.acme.challenges.http01(request.uri().path()) {
            // Before routing and any redirect: the CA validates over plain HTTP.
            self.metrics.request(None, StatusCode::OK, started.elapsed());
            return crate::responses::acme_http01(answer);
        }
        let path = routing_path(request.uri().path());
        let head = RequestHead::of(&request);
        let found = match downstream.frontend {
            None => snapshot.routes.route(host, &path).and_then(|group| group.select(&head)),
            Some(address) => match snapshot.gateways.get(&address) {
                Some(frontend) if frontend.misdirected(downstream.sni.as_deref(), host) => {
                    self.metrics.request(None, StatusCode::MISDIRECTED_REQUEST, started.elapsed());
                    return error(StatusCode::MISDIRECTED_REQUEST);
                }
                frontend => frontend.and_then(|frontend| frontend.route(host, &path, &head)),
            },
        };
        let Some(route) = found else {
            self.metrics.request(None, StatusCode::NOT_FOUND, started.elapsed());
            return if grpc {
                crate::responses::grpc_error(StatusCode::NOT_FOUND)
            } else {
                error(StatusCode::NOT_FOUND)
            };
        };
        // Filters and redirects read the request as it arrived; most routes need nothing.
        let arrived = filters::reads_request(route, downstream.scheme)
            .then(|| (path.into_owned(), host.unwrap_or_default().to_owned()));
        let (mut parts, body) = request.into_parts();
        let arrival =
            arrived.as_ref().map(|(path, host)| Arrival::new(downstream, &parts, path, host, self.options.https_port));
        let after = arrival.as_ref().and_then(|arrival| ResponseFilters::prepare(route, arrival, &parts));
        let mut backend = None;
        let mut tried = Tried::default();
        let edits = match &arrival {
            Some(arrival) => filters::on_request(route, arrival, &mut parts),
            None => Ok(None),
        };
        // Limits and access rules: after the early answers, before anything is forwarded.
        let admitted = match (&edits, &route.action) {
            (Ok(_), Action::Forward(_)) if access::guards(route) => {
                let checked = Checked { plane: self, downstream, parts: &parts, arrival: arrival.as_ref() };
                // Boxed, as the rarer answers below: only the common path's state is
                // carried inline by every request.
                Box::pin(access::admit(route, &checked)).await
            }
            _ => Ok(Admitted::default()),
        };
        let (denial, admitted) = match admitted {
            Ok(admitted) => (None, admitted),
            Err(denial) => {
                self.metrics.denied(route, denial.reason.as_str());
                (Some(denial), Admitted::default())
            }
        };
        for (name, value) in &admitted.request_headers {
            parts.headers.remove(name);
            if let Some(value) = value {
                parts.headers.insert(name.clone(), value.clone());
            }
        }
        let mut response = match (edits, &route.action) {
            (Err(answer), _) => *answer,
            (Ok(_), Action::Forward(_)) if denial.is_some() => access::answer(denial),
            (Ok(_), Action::Fail(code)) => error(*code),
            (Ok(_), Action::Redirect(target)) => match &arrival {
                Some(arrival) => filters::redirect_answer(target, arrival, &parts),
                None => error(StatusCode::INTERNAL_SERVER_ERROR),
            },
            (Ok(edits), Action::Forward(forward)) => {
                let pages = forward.errors.as_deref();
                let original = pages.filter(|p| !p.codes.is_empty()).map(|_| Original::capture(&mut parts));
                let index = forward.pick();
                let picked = index.map(|i| forward.backends[i].id);
                let backend_edits = index.and_then(|i| forward.edits_of(i));
                backend = picked.and_then(|id| snapshot.backend(id));
                let https = downstream.scheme == Scheme::Https;
                let edits = edits.zip(arrival.as_ref());
                let mirrors = route.filters.iter().filter_map(|filter| match filter {
                    Filter::Mirror(mirror) => Some(mirror),
                    _ => None,
                });
                let copy = match &arrival {
                    Some(arrival) => mirrors
                        .filter_map(|mirror| {
                            let has_body = !body.is_end_stream();
                            self.start_mirror(mirror, &snapshot, arrival, &parts, has_body, &forward.policy)
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let first = backend.and_then(|chosen| {
                    let choice = balance::first(&forward.balance, chosen, &parts, arrival.as_ref(), https)?;
                    Some(Target { backend: chosen, forward, choice, copy, edits: backend_edits })
                });
                let answer = match (first, pages) {
                    (Some(target), _) => {
                        let request = (parts, body);
                        // The future is made in each arm: one made before would be stored twice.
                        match forward.policy.request_timeout {
                            None => self.forward(downstream, target, edits, request, &mut tried).await,
                            Some(limit) => {
                                let forwarded = self.forward(downstream, target, edits, request, &mut tried);
                                tokio::time::timeout(limit, forwarded).await.unwrap_or(Err(StatusCode::GATEWAY_TIMEOUT))
                            }
                        }
                    }
                    (None, Some(pages)) if pages.when_unavailable => {
                        let request = (parts, body);
                        Box::pin(self.unavailable(downstream, &snapshot, pages, forward, edits, request)).await
                    }
                    // A share whose backend reference does not resolve (Gateway API) is 500.
                    (None, _) if picked == Some(BackendId::UNRESOLVED) => Err(StatusCode::INTERNAL_SERVER_ERROR),
                    (None, _) => Err(StatusCode::SERVICE_UNAVAILABLE),
                };
                let status = answer.as_ref().map_or_else(|code| *code, Response::status);
                let replace = pages.zip(original).filter(|(pages, _)| pages.codes.contains(&status));
                let page = match replace {
                    Some((pages, original)) => {
                        Box::pin(self.error_page(downstream, &snapshot, pages, &forward.policy, original, status)).await
                    }
                    None => None,
                };
                let mut response = page.unwrap_or_else(|| answer.unwrap_or_else(error));
                if let Some(edits) = backend_edits {
                    filters::edit_fixed(&edits.response, response.headers_mut());
                }
                response
            }
        };
        if let Some(after) = after {
            after.apply(&mut response);
        }
        filters::add_hsts(route, downstream.scheme, &mut response);
        if admitted.always_set_cookies || response.status().as_u16() < 400 {
            for cookie in admitted.cookies {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
        if let (Some(slot), Either::Left(body)) = (admitted.slot, response.body_mut()) {
            body.hold(slot);
        }
        self.metrics.request(backend.map(|b| (route, &**b)), response.status(), started.elapsed());
        let mut response = match grpc && is_own_error(&response) {
            true => crate::responses::grpc_error(response.status()),
            false => response,
        };
        // What the access log and the request's span show of the handling.
        if self.options.access_log.enabled() || self.options.tracing.is_some() {
            response.extensions_mut().insert(RouteFacts {
                client: Some(downstream.client),
                route: Some(route.label.clone()),
                service: backend.map(|b| b.label.clone()),
                upstream: tried.upstream,
                upstream_status: tried.status,
                upstream_time: tried.time,
                request_id: tried.request_id,
                logged: route.forward().is_none_or(|f| f.policy.access_log),
            });
        }
        response
    }

    /// Forwards the request to `target`, retrying as the route's policy allows.
    pub(crate) async fn forward(
        &self,
        downstream: &Downstream,
        target: Target<'_>,
        edits: Option<(&HeaderEdits, &Arrival<'_>)>,
        (parts, body): (Parts, Incoming),
        tried: &mut Tried,
    ) -> Result<Response<ProxyBody>, StatusCode> {
        let Target { backend, forward, choice, copy, edits: backend_edits } = target;
        let policy = &*forward.policy;
        if let (Some(limit), Some(length)) = (policy.max_body, body.size_hint().exact()) {
            if length > limit {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
        }
        let mut endpoint = choice.endpoint;
        let mut set_cookie = choice.set_cookie;
        // HTTP/1.0 towards the backend (`proxy-http-version`): no upgrades, no keep-alive, and
        // a body must have a known length (nothing is buffered to find it out).
        let http10 = policy.http10 && !backend.protocol().is_http2();
        if http10 && !body.is_end_stream() && body.size_hint().exact().is_none() {
            return Err(StatusCode::LENGTH_REQUIRED);
        }
        let upgrade = parts.version == Version::HTTP_11 && validate::is_websocket_upgrade(&parts.headers) && !http10;
        let mut request = Request::from_parts(parts, ());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, ()) = request.into_parts();
        prepare(&mut parts, downstream, backend.protocol(), upgrade);
        if self.options.access_log.enabled() {
            if let Some(id) = parts.headers.get(crate::headers::X_REQUEST_ID_NAME) {
                tried.request_id = String::from_utf8_lossy(id.as_bytes()).into_owned();
            }
        }
        if http10 {
            parts.version = Version::HTTP_10;
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else if !backend.protocol().is_http2() && !body.is_end_stream() && body.size_hint().exact().is_none() {
            // A body of unknown length (HTTP/2 without content-length) goes chunked, whatever
            // the method: hyper would send a GET's as empty unless told.
            parts.headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        }
        if let Some((edits, arrival)) = edits {
            filters::edit_request(edits, arrival, &mut parts);
        }
        if let Some(edits) = backend_edits {
            filters::edit_fixed(&edits.request, &mut parts.headers);
        }
        // A request without a body can be sent again to another endpoint; one with a body
        // is streamed, so it gets one attempt.
        let replayable = body.is_end_stream();
        let idempotent = !matches!(parts.method, Method::POST | Method::PATCH) || policy.retry.on.non_idempotent;
        let tries = match policy.retry.tries {
            0 => backend.endpoints.len(),
            n => n as usize,
        };
        let attempts =
            if replayable && !policy.retry.on.is_off() { tries.min(backend.endpoints.len()).max(1) } else { 1 };
        let deadline = policy.retry.timeout.map(|limit| Instant::now() + limit);
        // The head is copied only when another attempt may need it.
        let mut spare = (attempts > 1).then(|| copy_head(&parts));
        // What the backend has taken of a body still to come, for the send and read timeouts;
        // a request without one is sent as soon as it starts (no allocation for it).
        let body_progress = (!replayable).then(|| Arc::new(SendProgress::waiting()));
        let limited = Limited::new(
            Teed::new(body, copy, body_progress.clone()),
            policy.max_body.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)),
        );
        let mut next = Some((parts, Either::Left(limited)));
        let mut response = None;
        for attempt in 1..=attempts {
            let (mut head, sent_body) = match next.take() {
                Some(first) => first,
                None => {
                    let head = spare.take().ok_or(StatusCode::BAD_GATEWAY)?;
                    spare = (attempt < attempts).then(|| copy_head(&head));
                    (head, Either::Right(Either::Left(Empty::new())))
                }
            };
            head.uri = upstream_uri(&head, backend.protocol(), endpoint)?;
            let last = attempt == attempts || deadline.is_some_and(|d| Instant::now() >= d);
            let measured = matches!(forward.balance, Balance::Ewma).then(|| backend.start(endpoint));
            // A retry has no body: it is sent as soon as it starts.
            let sent_at_start = SendProgress::sent();
            let attempt_progress = match (&body_progress, attempt) {
                (Some(progress), 1) => &**progress,
                _ => &sent_at_start,
            };
            let request = Request::from_parts(head, sent_body);
            let sent = Instant::now();
            let outcome = self.send(backend, endpoint, policy, attempt_progress, request).await;
            tried.upstream = Some(endpoint);
            tried.time = Some(sent.elapsed());
            tried.status = outcome.as_ref().ok().map(|answer| answer.status().as_u16());
            if let (Some(in_flight), Ok(_)) = (measured, &outcome) {
                in_flight.answered();
            }
            let retry = match &outcome {
                Err(Failure::Connect) => policy.retry.on.error,
                Err(Failure::Timeout) => policy.retry.on.timeout && idempotent,
                Err(Failure::ClientTimeout) => false,
                Err(Failure::Other) => policy.retry.on.error && idempotent,
                Err(Failure::TooLarge) => false,
                Ok(answer) => idempotent && policy.retry.on.statuses.contains(&answer.status()),
            };
            if retry && !last {
                let https = downstream.scheme == Scheme::Https;
                let choice = balance::next(&forward.balance, backend, endpoint, https);
                let choice = choice.ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
                endpoint = choice.endpoint;
                set_cookie = choice.set_cookie.or(set_cookie);
                continue;
            }
            response = Some(outcome.map_err(Failure::status)?);
            break;
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
        if headers.contains_key(header::TRANSFER_ENCODING) {
            // RFC 9112 §6.3: a transfer coding overrides Content-Length, and hyper decoded
            // the body by it: the length the backend also sent is not the body's.
            headers.remove(header::CONTENT_LENGTH);
        }
        strip_hop_by_hop(headers, tunnel);
        if response.status().is_informational() || response.status() == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6: never on 1xx/204; HTTP/2 clients reset the stream over it.
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        response.headers_mut().insert(header::SERVER, SERVER);
        if let Some(cookie) = set_cookie {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(response.map(|body| Either::Left(ReadTimeout::new(body, policy.read_timeout))))
    }

    /// Sends one attempt, classifying what went wrong.
    pub(crate) async fn send(
        &self,
        backend: &Backend,
        endpoint: SocketAddr,
        policy: &UpstreamPolicy,
        progress: &SendProgress,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Failure> {
        let sent = std::pin::pin!(self.upstream.send(&backend.transport, endpoint, policy.connect_timeout, request));
        let limits = Limits {
            send: policy.send_timeout,
            read: policy.read_timeout,
            client_body: self.options.client_body_timeout,
        };
        match timeouts::within(sent, progress, &limits).await {
            Err(Late::Backend) => Err(Failure::Timeout),
            Err(Late::Client) => Err(Failure::ClientTimeout),
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.label, %endpoint, error = %e, "upstream request failed");
                if matches!(e, SendError::Connect(_)) {
                    self.metrics.upstream_connect_error(backend);
                    backend.connect_failed(endpoint);
                    Err(Failure::Connect)
                } else if e.body_too_large() {
                    Err(Failure::TooLarge)
                } else {
                    Err(Failure::Other)
                }
            }
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// Whether `response` is one of Sluice's own error answers (not a backend's).
fn is_own_error(response: &Response<ProxyBody>) -> bool {
    let headers = response.headers();
    response.status().as_u16() >= 400
        && headers.get(header::SERVER) == Some(&crate::responses::SERVER)
        && headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/plain"))
}

/// Where a request goes: the backend the route's weights chose, the route's forwarding
/// settings, and the endpoint its balancing picked first.
pub(crate) struct Target<'a> {
    pub backend: &'a Backend,
    pub forward: &'a Forward,
    pub choice: Choice,
    /// Where the body is copied for a mirror.
    pub copy: Vec<mpsc::Sender<Chunk>>,
    /// The chosen backend's own header edits (Gateway API filters on a backendRef).
    pub edits: Option<&'a BackendEdits>,
}

/// Why an upstream attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection could be made (refused, unreachable, connect timeout).
    Connect,
    /// The client stopped sending its body for longer than the client body timeout.
    ClientTimeout,
    /// No response headers within the upstream timeout.
    Timeout,
    /// The connection broke while sending or before the response.
    Other,
    /// The request body grew past the route's limit while streaming.
    TooLarge,
}

impl Failure {
    /// The status the client gets for it.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Failure::Connect | Failure::Other => StatusCode::BAD_GATEWAY,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// Rewrites the request head for the backend: hop-by-hop headers out, forwarding headers
/// in, `Host` kept (taken from `:authority` for HTTP/2 clients), the backend's version.
pub(crate) fn prepare(parts: &mut Parts, downstream: &Downstream, protocol: UpstreamProtocol, upgrade: bool) {
    let host = match (downstream.forwarded_host(), parts.uri.authority()) {
        (Some(believed), _) => Some(believed.clone()),
        (None, Some(authority)) => HeaderValue::from_str(authority.as_str()).ok(),
        (None, None) => parts.headers.get(header::HOST).cloned(),
    };
    strip_hop_by_hop(&mut parts.headers, upgrade);
    set_forwarding(&mut parts.headers, downstream, host.as_ref());
    if let Some(host) = host {
        parts.headers.insert(header::HOST, host);
    }
    parts.version = if protocol.is_http2() { Version::HTTP_2 } else { Version::HTTP_11 };
}

/// The upstream request target, path and query as the client sent them: origin-form for
/// HTTP/1.1; for HTTP/2 with the client's host as `:authority` (else the endpoint's) and
/// `:scheme` `https` over TLS.
pub(crate) fn upstream_uri(head: &Parts, protocol: UpstreamProtocol, endpoint: SocketAddr) -> Result<Uri, StatusCode> {
    let path = head.uri.path_and_query().cloned().unwrap_or(PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path);
    if protocol.is_http2() {
        let host = head.headers.get(header::HOST).and_then(|h| Authority::try_from(h.as_bytes()).ok());
        parts.scheme = Some(if protocol.is_tls() { UriScheme::HTTPS } else { UriScheme::HTTP });
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
