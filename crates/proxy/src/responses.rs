//! The short answers Sluice gives itself when it cannot forward a request.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::timeouts::ReadTimeout;

/// A response body: the backend's streamed body (failing when the backend pauses longer
/// than the read timeout), or a small one of Sluice's own.
pub(crate) type ProxyBody = Either<ReadTimeout<Incoming>, Full<Bytes>>;

/// The `Server` header of every response.
pub(crate) const SERVER: HeaderValue = HeaderValue::from_static("sluice");

/// A plain-text error response with `status`.
pub(crate) fn error(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(error_text(status)))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ERROR_CONTENT_TYPE));
    headers.insert(header::SERVER, SERVER);
    response
}

/// The answer to an ACME HTTP-01 validation request: the key authorization, as is.
pub(crate) fn acme_http01(key_authorization: &str) -> Response<ProxyBody> {
    let body = Bytes::copy_from_slice(key_authorization.as_bytes());
    let mut response = Response::new(Either::Right(Full::new(body)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::SERVER, SERVER);
    response
}

/// The `Content-Type` of Sluice's own error answers.
pub(crate) const ERROR_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The body of Sluice's own error answer `status`: what went wrong, in one line.
pub(crate) fn error_text(status: StatusCode) -> String {
    let reason = match status {
        StatusCode::NOT_FOUND => "no route for this host and path",
        StatusCode::SERVICE_UNAVAILABLE => "no ready endpoint for this backend",
        StatusCode::BAD_GATEWAY => "the backend could not be reached",
        StatusCode::GATEWAY_TIMEOUT => "the backend did not answer in time",
        StatusCode::METHOD_NOT_ALLOWED => "this method is not proxied",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than this route accepts",
        _ => "",
    };
    format!("{} {}: {reason}\n", status.as_u16(), status.canonical_reason().unwrap_or_default())
}

/// Whether a request speaks gRPC (`content-type: application/grpc…`): its client expects
/// errors as gRPC statuses, not HTTP ones.
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Sluice's own error answer `status` as a gRPC client reads it: a trailers-only response
/// (HTTP 200, `grpc-status` and `grpc-message` in the headers), with the status code gRPC
/// maps the HTTP one to (404 → UNIMPLEMENTED, 502/503/504/429 → UNAVAILABLE, 401 →
/// UNAUTHENTICATED, 403 → PERMISSION_DENIED, 400 → INTERNAL, else UNKNOWN).
pub(crate) fn grpc_error(status: StatusCode) -> Response<ProxyBody> {
    let code: u16 = match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    };
    let mut response = empty(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code));
    let message = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default()).replace(' ', "%20");
    if let Ok(message) = HeaderValue::from_str(&message) {
        headers.insert("grpc-message", message);
    }
    headers.insert(header::SERVER, SERVER);
    response
}

/// An answer of `status` with no body.
pub(crate) fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::SERVER, SERVER);
    response
}

/// A redirect to `location` (which comes from the request and the route, already a valid
/// URL unless a client sent bytes a header cannot carry: then 400).
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let Ok(value) = HeaderValue::from_str(location) else {
        return error(StatusCode::BAD_REQUEST);
    };
    let mut response = empty(status);
    response.headers_mut().insert(header::LOCATION, value);
    response
}
