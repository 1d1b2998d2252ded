//! Applying a route's filters: early answers (redirects), request header and path changes
//! before forwarding, response header changes after. Every value was compiled at
//! translation; here templates are only filled from the request.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Response, StatusCode};
use sluice_config::{
    Action, Balance, Cors, Filter, Forward, HeaderEdits, Location, Redirect, RedirectParts, RequestFacts, Route,
};

use crate::headers::Downstream;
use crate::listener::Scheme;
use crate::responses::{redirect, ProxyBody};

/// What the request looked like when it arrived, for templates.
pub(crate) struct Arrival<'a> {
    pub downstream: &'a Downstream,
    /// The normalised path the route matched.
    pub path: &'a str,
    /// The `Host` (or `:authority`) as sent.
    pub http_host: &'a str,
    /// The host name, lower case, without port.
    pub host: String,
    /// The request target as sent.
    pub request_uri: String,
    /// The port of the HTTPS listener, for redirects to https.
    pub https_port: u16,
}

impl<'a> Arrival<'a> {
    pub(crate) fn new(
        downstream: &'a Downstream,
        parts: &Parts,
        path: &'a str,
        http_host: &'a str,
        https_port: u16,
    ) -> Self {
        let host = strip_port(http_host).trim_end_matches('.').to_ascii_lowercase();
        let request_uri = parts.uri.path_and_query().map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        Self { downstream, path, http_host, host, request_uri, https_port }
    }

    /// What templates may read of the request.
    pub(crate) fn facts<'f>(&'f self, parts: &'f Parts) -> RequestFacts<'f> {
        RequestFacts {
            method: parts.method.as_str(),
            scheme: self.downstream.scheme.as_str(),
            host: &self.host,
            http_host: self.http_host,
            path: self.path,
            query: parts.uri.query(),
            request_uri: &self.request_uri,
            remote_addr: self.downstream.client.ip(),
            server_port: self.downstream.port,
            headers: &parts.headers,
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(ip, _)| &host[..=ip.len()]);
    }
    host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h)
}

/// Runs the request filters of `route`: an early answer, or the rewritten path and the
/// request header edits to apply once the head is prepared for the backend.
pub(crate) fn on_request<'r>(
    route: &'r Route,
    arrival: &Arrival<'_>,
    parts: &mut Parts,
) -> Result<Option<&'r HeaderEdits>, Box<Response<ProxyBody>>> {
    let mut edits = None;
    for filter in &*route.filters {
        match filter {
            Filter::AppRoot { path } if arrival.path == "/" => {
                let mut location = format!("{}://{}", arrival.downstream.scheme.as_str(), arrival.http_host);
                location.push_str(path.to_str().unwrap_or("/"));
                return Err(Box::new(redirect(StatusCode::FOUND, &location)));
            }
            Filter::HttpsRedirect { code, preserve_trailing_slash } if arrival.downstream.scheme == Scheme::Http => {
                let mut target = arrival.request_uri.as_str();
                if !preserve_trailing_slash {
                    target = target.strip_suffix('/').unwrap_or(target);
                }
                let location = match arrival.https_port {
                    443 => format!("https://{}{target}", arrival.host),
                    port => format!("https://{}:{port}{target}", arrival.host),
                };
                return Err(Box::new(redirect(*code, &location)));
            }
            Filter::RewritePath(rewrite) => {
                let Some(captures) = rewrite.regex.captures(arrival.path) else {
                    continue;
                };
                let mut target = String::new();
                rewrite.target.render(&arrival.facts(parts), Some(&captures), &mut target);
                set_target(parts, &with_query(target, parts.uri.query()))?;
            }
            Filter::SetPath(modifier) => {
                set_target(parts, &with_query(modifier.apply(arrival.path), parts.uri.query()))?;
            }
            Filter::RequestHeaders(request) => edits = Some(request),
            Filter::Cors(cors) if parts.method == Method::OPTIONS => {
                if let Some(origin) = cors.allow_origin(parts.headers.get(header::ORIGIN)) {
                    return Err(Box::new(preflight(cors, origin, &parts.headers)));
                }
                if cors.answer_all_preflights && is_preflight(&parts.headers) {
                    return Err(Box::new(crate::responses::empty(StatusCode::NO_CONTENT)));
                }
            }
            _ => {}
        }
    }
    Ok(edits)
}

/// Replaces the request target's path and query.
fn set_target(parts: &mut Parts, target: &str) -> Result<(), Box<Response<ProxyBody>>> {
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(encode(target));
    parts.uri = http::Uri::from_parts(uri).map_err(|_| Box::new(crate::responses::error(StatusCode::BAD_REQUEST)))?;
    Ok(())
}

/// A CORS preflight: `Origin` and `Access-Control-Request-Method` (on an `OPTIONS`).
fn is_preflight(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// ingress-nginx's answer to a preflight from an allowed origin: 204 with the CORS headers.
fn preflight(cors: &Cors, origin: HeaderValue, asked: &HeaderMap) -> Response<ProxyBody> {
    let mut response = crate::responses::empty(StatusCode::NO_CONTENT);
    let headers = response.headers_mut();
    headers.extend(cors.headers(origin, Some(asked)));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain charset=UTF-8"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// nginx `rewrite`: a target with `?` sets the query (the original one appended after `&`);
/// without, the original query is kept.
fn with_query(mut target: String, original: Option<&str>) -> String {
    if target.is_empty() {
        target.push('/');
    }
    match (target.contains('?'), original) {
        (_, None) => {}
        (true, Some(query)) => {
            target.push('&');
            target.push_str(query);
        }
        (false, Some(query)) => {
            target.push('?');
            target.push_str(query);
        }
    }
    target
}

/// A path and query with every byte a URI cannot carry percent-encoded.
fn encode(text: &str) -> PathAndQuery {
    if let Ok(valid) = PathAndQuery::try_from(text) {
        return valid;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'#' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    PathAndQuery::try_from(out.as_str()).unwrap_or(PathAndQuery::from_static("/"))
}

/// Applies header edits to a request head already prepared for the backend.
pub(crate) fn edit_request(edits: &HeaderEdits, arrival: &Arrival<'_>, parts: &mut Parts) {
    let rendered = render(edits, arrival, parts);
    apply(edits, rendered, &mut parts.headers);
}

fn render(edits: &HeaderEdits, arrival: &Arrival<'_>, parts: &Parts) -> Rendered {
    let facts = arrival.facts(parts);
    let value = |template: &sluice_config::Template| match template.literal() {
        Some(text) => HeaderValue::from_str(text).ok(),
        None => {
            let mut out = String::new();
            template.render(&facts, None, &mut out);
            HeaderValue::from_str(&out).ok()
        }
    };
    (edits.set.iter().map(|(_, t)| value(t)).collect(), edits.add.iter().map(|(_, t)| value(t)).collect())
}

fn apply(edits: &HeaderEdits, (set, add): Rendered, headers: &mut HeaderMap) {
    for name in &edits.remove {
        headers.remove(name);
    }
    for ((name, _), value) in edits.set.iter().zip(set) {
        match value {
            Some(value) => headers.insert(name, value),
            None => headers.remove(name),
        };
    }
    for ((name, _), value) in edits.add.iter().zip(add) {
        if let Some(value) = value {
            headers.append(name, value);
        }
    }
}

/// Applies header edits whose values are fixed text (Gateway API's), needing nothing of the
/// request.
pub(crate) fn edit_fixed(edits: &HeaderEdits, headers: &mut HeaderMap) {
    let value = |template: &sluice_config::Template| template.literal().and_then(|t| HeaderValue::from_str(t).ok());
    let rendered =
        (edits.set.iter().map(|(_, t)| value(t)).collect(), edits.add.iter().map(|(_, t)| value(t)).collect());
    apply(edits, rendered, headers);
}

/// Whether the route needs the request as it arrived (an [`Arrival`]) over `scheme`: a
/// redirect or a filter that reads it does; HSTS needs only the scheme, and an https
/// redirect does nothing over https. Most routes need none, and are served without one.
pub(crate) fn reads_request(route: &Route, scheme: Scheme) -> bool {
    matches!(route.action, Action::Redirect(_) | Action::Forward(Forward { balance: Balance::Hash(_), .. }))
        || route.filters.iter().any(|filter| match filter {
            Filter::Access(access) => crate::access::reads_request(access),
            Filter::Hsts(_) | Filter::RateLimit(_) | Filter::ClientCertificate(_) | Filter::Block(_) => false,
            Filter::HttpsRedirect { .. } => scheme == Scheme::Http,
            _ => true,
        })
}

/// Adds the route's `Strict-Transport-Security` to a response over https.
pub(crate) fn add_hsts(route: &Route, scheme: Scheme, response: &mut Response<ProxyBody>) {
    if scheme != Scheme::Https {
        return;
    }
    let hsts = route.filters.iter().find_map(|f| match f {
        Filter::Hsts(value) => Some(value),
        _ => None,
    });
    if let Some(value) = hsts {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
    }
}

/// A route's response header edits with their values already taken from the request (which
/// is consumed by forwarding).
pub(crate) struct ResponseFilters<'r> {
    edits: Vec<(&'r HeaderEdits, Rendered)>,
    /// CORS headers for an allowed origin: the route's settings and the origin to allow.
    cors: Option<(&'r Cors, HeaderValue)>,
}

type Rendered = (Vec<Option<HeaderValue>>, Vec<Option<HeaderValue>>);

impl<'r> ResponseFilters<'r> {
    /// The response filters of `route` for the request `parts`; `None` when there are none.
    pub(crate) fn prepare(route: &'r Route, arrival: &Arrival<'_>, parts: &Parts) -> Option<Self> {
        let edits: Vec<_> = route
            .filters
            .iter()
            .filter_map(|filter| match filter {
                Filter::ResponseHeaders(edits) => Some((edits, render(edits, arrival, parts))),
                _ => None,
            })
            .collect();
        // A preflight was answered with its own CORS headers (or forwarded without any).
        let preflight = parts.method == Method::OPTIONS && is_preflight(&parts.headers);
        let cors = route.filters.iter().filter(|_| !preflight).find_map(|filter| match filter {
            Filter::Cors(cors) => Some((&**cors, cors.allow_origin(parts.headers.get(header::ORIGIN))?)),
            _ => None,
        });
        (!edits.is_empty() || cors.is_some()).then_some(Self { edits, cors })
    }

    /// Changes the response's headers.
    pub(crate) fn apply(self, response: &mut Response<ProxyBody>) {
        for (edits, rendered) in self.edits {
            apply(edits, rendered, response.headers_mut());
        }
        if let Some((cors, origin)) = self.cors {
            // They replace the backend's, as nginx's `more_set_headers`.
            for (name, value) in cors.headers(origin, None) {
                response.headers_mut().insert(name, value);
            }
        }
    }
}

/// The answer of a redirect route.
pub(crate) fn redirect_answer(target: &Redirect, arrival: &Arrival<'_>, parts: &Parts) -> Response<ProxyBody> {
    let mut location = String::new();
    match &target.location {
        Location::Template(template) => template.render(&arrival.facts(parts), None, &mut location),
        Location::Parts(replaced) => redirect_url(replaced, arrival, parts, &mut location),
    }
    redirect(target.code, &location)
}

/// The request's URL with the parts a Gateway API RequestRedirect replaces: the port, when
/// not given, is the new scheme's well-known one (or the listener's when the scheme stays),
/// and is left out when it is the scheme's well-known port.
fn redirect_url(replaced: &RedirectParts, arrival: &Arrival<'_>, parts: &Parts, out: &mut String) {
    use std::fmt::Write;
    let well_known = |scheme: &str| match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let scheme = replaced.scheme.as_deref().unwrap_or(arrival.downstream.scheme.as_str());
    let host = replaced.host.as_deref().unwrap_or(&arrival.host);
    let port = replaced.port.or_else(|| match &replaced.scheme {
        Some(scheme) => well_known(scheme).or(Some(arrival.downstream.port)),
        None => Some(arrival.downstream.port),
    });
    let _ = write!(out, "{scheme}://{host}");
    if let Some(port) = port.filter(|port| Some(*port) != well_known(scheme)) {
        let _ = write!(out, ":{port}");
    }
    match &replaced.path {
        Some(modifier) => out.push_str(&modifier.apply(arrival.path)),
        None => out.push_str(parts.uri.path()),
    }
    if let Some(query) = parts.uri.query() {
        out.push('?');
        out.push_str(query);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_targets_keep_or_merge_the_query() {
        assert_eq!(with_query("/b".into(), Some("x=1")), "/b?x=1");
        assert_eq!(with_query("/b?y=2".into(), Some("x=1")), "/b?y=2&x=1");
        assert_eq!(with_query("".into(), None), "/");
        assert_eq!(encode("/a b/ü").as_str(), "/a%20b/%C3%BC");
        assert_eq!(strip_port("A.test:8080"), "A.test");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
