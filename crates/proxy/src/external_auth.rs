//! External authentication (`auth-url`, nginx's `auth_request`): a sub-request with the
//! client's headers and none of its body asks the auth service; 2xx lets the request pass
//! (with the listed answer headers copied onto it), 401 becomes a redirect to `auth-signin`
//! or a 401, 403 stays 403, and anything else — an error, no answer in time — is 500: nothing
//! reaches the backend unless the service said yes. Answers may be remembered per
//! `auth-cache-key`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Empty};
use sluice_config::{
    ExternalAuth, SENT_FROM, X_AUTH_REQUEST_REDIRECT, X_ORIGINAL_METHOD, X_ORIGINAL_URI, X_ORIGINAL_URL, X_SENT_FROM,
};

use crate::filters::Arrival;
use crate::headers::strip_hop_by_hop;
use crate::DataPlane;

/// Remembered answers at most (then the oldest half is forgotten).
const CACHE_ENTRIES: usize = 16_384;
/// The most of an auth answer's body read (and dropped) to keep its connection reusable.
const MAX_DRAINED: usize = 64 * 1024;

/// What the auth service answered, as far as the request is concerned.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// Its status.
    pub status: StatusCode,
    /// For 2xx: each `auth-response-headers` name with the service's value, to set on the
    /// forwarded request (`None`: the service sent none, and the client's is removed too).
    pub request_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// Its `Set-Cookie`s, for the client.
    pub cookies: Vec<HeaderValue>,
    /// Its `WWW-Authenticate`, for a 401 without `auth-signin`.
    pub challenge: Option<HeaderValue>,
}

/// Answers remembered per auth URL and cache key.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    entries: Mutex<HashMap<(String, String), (Instant, Verdict)>>,
}

impl AuthCache {
    fn get(&self, key: &(String, String)) -> Option<Verdict> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|(until, _)| *until > Instant::now()).map(|(_, verdict)| verdict.clone())
    }

    fn put(&self, key: (String, String), until: Instant, verdict: Verdict) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= CACHE_ENTRIES / 2 {
                let mut ages: Vec<Instant> = entries.values().map(|(until, _)| *until).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                entries.retain(|_, (until, _)| *until > cut);
            }
        }
        entries.insert(key, (until, verdict));
    }
}

/// Asks `auth` about the request `parts` as it arrived.
pub(crate) async fn ask(plane: &DataPlane, auth: &ExternalAuth, arrival: &Arrival<'_>, parts: &Parts) -> Verdict {
    let facts = arrival.facts(parts);
    let mut url = String::new();
    auth.url.render(&facts, None, &mut url);
    let cache_key = auth.cache.as_ref().map(|cache| {
        let mut key = String::new();
        cache.key.render(&facts, None, &mut key);
        (url.clone(), key)
    });
    if let Some(hit) = cache_key.as_ref().and_then(|key| plane.auth_cache.get(key)) {
        return hit;
    }
    let verdict = match send(plane, auth, &url, arrival, parts).await {
        Some(verdict) => verdict,
        None => Verdict {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            request_headers: Vec::new(),
            cookies: Vec::new(),
            challenge: None,
        },
    };
    let remember = auth.cache.as_ref().and_then(|cache| cache.duration(verdict.status));
    if let (Some(key), Some(duration)) = (cache_key, remember) {
        plane.auth_cache.put(key, Instant::now() + duration, verdict.clone());
    }
    verdict
}

/// The sub-request; `None` when the service could not be asked or did not answer in time.
async fn send(
    plane: &DataPlane,
    auth: &ExternalAuth,
    url: &str,
    arrival: &Arrival<'_>,
    parts: &Parts,
) -> Option<Verdict> {
    let target = url.parse::<Uri>().ok()?;
    let default_port = if target.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 };
    let authority = target.authority()?.clone();
    let endpoint = crate::upstream::resolve(&authority, default_port).await?;
    let mut request = Request::new(Either::Right(Either::Left(Empty::<Bytes>::new())));
    *request.method_mut() = auth.method.clone();
    *request.uri_mut() = Uri::from(target.path_and_query().cloned().unwrap_or(PathAndQuery::from_static("/")));
    let headers = request.headers_mut();
    *headers = parts.headers.clone();
    strip_hop_by_hop(headers, false);
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::HOST, HeaderValue::from_str(authority.as_str()).ok()?);
    set_original(headers, auth, arrival, parts);
    let sent = plane.upstream.send(&auth.transport, endpoint, auth.connect_timeout, request);
    let response = match tokio::time::timeout(auth.read_timeout, sent).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::warn!(%endpoint, error = %e, "auth-url could not be asked: refusing the request");
            return None;
        }
        Err(_) => {
            tracing::warn!(%endpoint, "auth-url did not answer in time: refusing the request");
            return None;
        }
    };
    let status = response.status();
    let answer = response.headers();
    let request_headers = if status.is_success() {
        auth.response_headers.iter().map(|name| (name.clone(), answer.get(name).cloned())).collect()
    } else {
        Vec::new()
    };
    let cookies = answer.get_all(header::SET_COOKIE).iter().cloned().collect();
    let challenge = answer.get(header::WWW_AUTHENTICATE).cloned();
    // Read the body through (bounded) so that the connection can be used again.
    let mut body = response.into_body();
    let mut drained = 0;
    while let Some(Ok(frame)) = body.frame().await {
        drained += frame.data_ref().map_or(0, Bytes::len);
        if drained > MAX_DRAINED {
            break;
        }
    }
    Some(Verdict { status, request_headers, cookies, challenge })
}

/// The headers ingress-nginx's auth location sets on the sub-request.
fn set_original(headers: &mut HeaderMap, auth: &ExternalAuth, arrival: &Arrival<'_>, parts: &Parts) {
    let scheme = arrival.downstream.scheme.as_str();
    let original_url = format!("{scheme}://{}{}", arrival.http_host, arrival.request_uri);
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(X_ORIGINAL_URL, &original_url);
    set(X_ORIGINAL_METHOD, parts.method.as_str());
    set(X_ORIGINAL_URI, &arrival.request_uri);
    let facts = arrival.facts(parts);
    let redirect = match &auth.request_redirect {
        Some(template) => {
            let mut out = String::new();
            template.render(&facts, None, &mut out);
            out
        }
        None => arrival.request_uri.clone(),
    };
    set(X_AUTH_REQUEST_REDIRECT, &redirect);
    let client = arrival.downstream.client.ip().to_string();
    set(HeaderName::from_static("x-real-ip"), &client);
    set(header::HeaderName::from_static("x-forwarded-for"), &client);
    set(HeaderName::from_static("x-forwarded-proto"), scheme);
    set(HeaderName::from_static("x-forwarded-host"), arrival.http_host);
    set(HeaderName::from_static("x-scheme"), scheme);
    headers.insert(X_SENT_FROM, SENT_FROM);
    for (name, template) in &*auth.set_headers {
        let mut value = String::new();
        template.render(&facts, None, &mut value);
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name.clone(), value);
        }
    }
}

/// Where a 401 sends the client with `auth-signin`: the sign-in URL with the original URL
/// as `param`, unless the sign-in URL already carries it (ingress-nginx's
/// `buildAuthSignURL`).
pub(crate) fn signin_location(auth: &ExternalAuth, arrival: &Arrival<'_>, parts: &Parts) -> Option<String> {
    let template = auth.signin.as_ref()?;
    let mut url = String::new();
    template.render(&arrival.facts(parts), None, &mut url);
    let param = &*auth.signin_redirect_param;
    let query = url.split_once('?').map(|(_, q)| q);
    let has_param = query.is_some_and(|q| q.split('&').any(|pair| pair.split('=').next() == Some(param)));
    if has_param {
        return Some(url);
    }
    let separator = if query.is_some_and(|q| !q.is_empty()) { '&' } else { '?' };
    let mut escaped = String::new();
    for byte in arrival.request_uri.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    let url = url.trim_end_matches('?');
    let scheme = arrival.downstream.scheme.as_str();
    Some(format!("{url}{separator}{param}={scheme}://{}{escaped}", arrival.http_host))
}
