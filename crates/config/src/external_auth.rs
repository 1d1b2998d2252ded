//! External authentication as ingress-nginx's `auth-url` does it (nginx's `auth_request`):
//! before a request is forwarded, a sub-request with its headers (never its body) asks an
//! auth service (oauth2-proxy and kin) whether it may pass. Everything here was parsed at
//! translation; serving fills the templates and compares statuses.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::{Template, Transport};

/// The auth service of a route and what to do with its answers.
#[derive(Debug, Clone)]
pub struct ExternalAuth {
    /// `auth-url`: `http://` or `https://` URL, nginx variables filled from the request.
    pub url: Template,
    /// Cleartext, or TLS without verification (nginx's default towards `https://` URLs).
    pub transport: Transport,
    /// `auth-method` (GET by default).
    pub method: Method,
    /// `auth-signin`: where a 401 redirects the client, with the original URL appended as
    /// `signin_redirect_param` unless the URL already carries it.
    pub signin: Option<Template>,
    /// `auth-signin-redirect-param` (`rd` by default).
    pub signin_redirect_param: Box<str>,
    /// `auth-response-headers`: copied from a 2xx answer onto the forwarded request.
    pub response_headers: Box<[HeaderName]>,
    /// `auth-request-redirect`: the `X-Auth-Request-Redirect` sent (default `$request_uri`).
    pub request_redirect: Option<Template>,
    /// `auth-proxy-set-headers`: the ConfigMap's headers set on the sub-request.
    pub set_headers: Box<[(HeaderName, Template)]>,
    /// `auth-cache-key` with `auth-cache-duration`: answers remembered per key.
    pub cache: Option<AuthCaching>,
    /// `auth-always-set-cookie`: the auth service's `Set-Cookie` goes on every answer, not
    /// only successful ones.
    pub always_set_cookie: bool,
    /// The most the sub-request may take to connect and to answer.
    pub connect_timeout: Duration,
    /// See `connect_timeout`.
    pub read_timeout: Duration,
}

/// Which auth answers are remembered, for how long, under which key.
#[derive(Debug, Clone)]
pub struct AuthCaching {
    /// `auth-cache-key`, e.g. `$remote_user$http_authorization`.
    pub key: Template,
    /// Statuses remembered and for how long (`auth-cache-duration: 200 202 401 5m`).
    pub durations: Box<[(StatusCode, Duration)]>,
}

impl AuthCaching {
    /// How long an answer of `status` is remembered, if at all.
    pub fn duration(&self, status: StatusCode) -> Option<Duration> {
        self.durations.iter().find(|(code, _)| *code == status).map(|(_, d)| *d)
    }
}

/// The header names of a sub-request Sluice sets itself, after the client's.
pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
/// See [`X_ORIGINAL_URL`].
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// See [`X_ORIGINAL_URL`].
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// See [`X_ORIGINAL_URL`].
pub const X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");
/// See [`X_ORIGINAL_URL`].
pub const X_SENT_FROM: HeaderName = HeaderName::from_static("x-sent-from");
/// The value of `X-Sent-From`, as ingress-nginx sends it (auth services check for it).
pub const SENT_FROM: HeaderValue = HeaderValue::from_static("nginx-ingress-controller");
