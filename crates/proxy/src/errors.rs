//! Error pages from a backend (ingress-nginx's `custom-http-errors` and `default-backend`):
//! an answer with one of the route's codes, from the backend or from Sluice itself, is
//! replaced by the error backend's answer to `/`, sent with the original method and headers
//! plus `X-Code`, `X-Format`, `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`,
//! `X-Service-Name`, `X-Service-Port` and `X-Request-ID`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use sluice_config::{ErrorPages, Forward, HeaderEdits, Snapshot, UpstreamPolicy};

use crate::balance::Choice;
use crate::filters::Arrival;
use crate::forward::{prepare, upstream_uri, Target};
use crate::headers::{ensure_request_id, strip_hop_by_hop, Downstream};
use crate::responses::{ProxyBody, SERVER};
use crate::timeouts::{ReadTimeout, SendProgress};
use crate::DataPlane;

static X_CODE: HeaderName = HeaderName::from_static("x-code");
static X_FORMAT: HeaderName = HeaderName::from_static("x-format");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

/// What an error request needs of the original request, kept before it is forwarded.
pub(crate) struct Original {
    method: Method,
    headers: HeaderMap,
    uri: HeaderValue,
}

impl Original {
    /// Copies the head of `parts`, giving it an `X-Request-ID` first so that the backend and
    /// the error backend see the same one.
    pub(crate) fn capture(parts: &mut Parts) -> Self {
        ensure_request_id(&mut parts.headers);
        let uri = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = HeaderValue::from_str(uri).unwrap_or(HeaderValue::from_static("/"));
        Self { method: parts.method.clone(), headers: parts.headers.clone(), uri }
    }
}

/// Adds the headers that tell an error backend what happened.
pub(crate) fn describe(headers: &mut HeaderMap, code: StatusCode, pages: &ErrorPages, original_uri: &HeaderValue) {
    headers.insert(&X_CODE, HeaderValue::from(code.as_u16()));
    let format = headers.get(header::ACCEPT).cloned().unwrap_or(HeaderValue::from_static("text/html"));
    headers.insert(&X_FORMAT, format);
    headers.insert(&X_ORIGINAL_URI, original_uri.clone());
    for (name, value) in &pages.context {
        headers.insert(name, value.clone());
    }
}

impl DataPlane {
    /// The route's backend has no ready endpoint: the whole request goes to the error
    /// backend, with `X-Code: 503` and the other headers (`default-backend`).
    pub(crate) async fn unavailable(
        &self,
        downstream: &Downstream,
        snapshot: &Snapshot,
        pages: &ErrorPages,
        forward: &Forward,
        edits: Option<(&HeaderEdits, &Arrival<'_>)>,
        (mut parts, body): (Parts, Incoming),
    ) -> Result<Response<ProxyBody>, StatusCode> {
        let fallback = snapshot.backend(pages.backend).ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
        let endpoint = fallback.pick().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
        let target = Target {
            backend: fallback,
            forward,
            choice: Choice { endpoint, set_cookie: None },
            copy: Vec::new(),
            edits: None,
        };
        let uri = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = HeaderValue::from_str(uri).unwrap_or(HeaderValue::from_static("/"));
        describe(&mut parts.headers, StatusCode::SERVICE_UNAVAILABLE, pages, &uri);
        self.forward(downstream, target, edits, (parts, body), &mut crate::logged::Tried::default()).await
    }

    /// The error backend's answer for `code`, or `None` when it has no endpoint or fails
    /// (the original answer stands).
    pub(crate) async fn error_page(
        &self,
        downstream: &Downstream,
        snapshot: &Snapshot,
        pages: &ErrorPages,
        policy: &UpstreamPolicy,
        original: Original,
        code: StatusCode,
    ) -> Option<Response<ProxyBody>> {
        let backend = snapshot.backend(pages.backend)?;
        let endpoint = backend.pick()?;
        let mut request = Request::new(());
        *request.method_mut() = original.method;
        *request.uri_mut() = Uri::from_static("/");
        *request.headers_mut() = original.headers;
        let (mut parts, ()) = request.into_parts();
        prepare(&mut parts, downstream, backend.protocol(), false);
        // The original body is not sent again.
        parts.headers.remove(header::CONTENT_LENGTH);
        describe(&mut parts.headers, code, pages, &original.uri);
        parts.uri = upstream_uri(&parts, backend.protocol(), endpoint).ok()?;
        let request = Request::from_parts(parts, Either::Right(Either::Left(Empty::new())));
        let mut response = self.send(backend, endpoint, policy, &SendProgress::sent(), request).await.ok()?;
        strip_hop_by_hop(response.headers_mut(), false);
        response.headers_mut().insert(header::SERVER, SERVER);
        Some(response.map(|body| Either::Left(ReadTimeout::new(body, policy.read_timeout))))
    }
}
