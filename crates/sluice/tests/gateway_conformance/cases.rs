//! The cases of `expected-responses.json` and the upstream comparison of one round trip.
//!
//! A case is one `ExpectedResponse` literal of the Go tests. [`Case::parse`] reads it with
//! the defaults `MakeRequest` and `CompareRoundTrip` apply (method `GET`, status `[200]`,
//! `ExpectedRequest` = `Request` when absent); [`compare`] is `CompareRoundTrip`
//! (`conformance/utils/http/http.go`) over what the harness sent ([`Sent`]) and saw
//! ([`Captured`]).

use std::collections::BTreeMap;

use serde_json::Value;

/// The kind of client a case needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseKind {
    /// `http.ExpectedResponse` (the `h.` alias included): an HTTP request.
    Http,
    /// `grpc.ExpectedResponse`: a gRPC call.
    Grpc,
    /// `tcp.ExpectedResponse`: a raw TCP (or TLS) connection.
    Tcp,
    /// `udp.ExpectedResponse`: a UDP exchange.
    Udp,
}

impl CaseKind {
    fn from_kind(kind: &str) -> Option<CaseKind> {
        match kind {
            "http.ExpectedResponse" | "h.ExpectedResponse" => Some(CaseKind::Http),
            "grpc.ExpectedResponse" => Some(CaseKind::Grpc),
            "tcp.ExpectedResponse" => Some(CaseKind::Tcp),
            "udp.ExpectedResponse" => Some(CaseKind::Udp),
            _ => None,
        }
    }
}

/// An HTTP request of a case (upstream `http.Request`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// `Host` header; empty: the Gateway's address.
    pub host: String,
    /// Method (defaulted to `GET` for the request sent).
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, sorted by name (the Go map has no order).
    pub headers: Option<Vec<(String, String)>>,
    /// Do not follow a redirect answer.
    pub unfollow_redirect: bool,
    /// `HTTP` (default), `HTTPS`, `H2C_PRIOR_KNOWLEDGE` or `H2`.
    pub protocol: String,
    /// TLS server name the backend must see (BackendTLSPolicy cases).
    pub sni: String,
    /// Client certificate the backend must see (BackendTLSPolicy cases).
    pub client_cert: String,
}

/// What must reach the backend (upstream `http.ExpectedRequest`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExpectedRequest {
    /// The request the backend must see (an empty host is not checked).
    pub request: Request,
    /// Headers that must not reach the backend.
    pub absent_headers: Vec<String>,
    /// The echo's `httpPort`, when set.
    pub http_port: String,
}

/// Where a redirect must point (upstream `roundtripper.RedirectRequest`); empty parts take
/// the defaults `setRedirectRequestDefaults` gives them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redirect {
    /// `http`/`https`.
    pub scheme: String,
    /// Host name without port.
    pub host: String,
    /// Port, empty when absent.
    pub port: String,
    /// Path.
    pub path: String,
}

/// The expected response (upstream `http.Response`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// Acceptable statuses (`StatusCode` folded in; `[200]` when none).
    pub status_codes: Vec<u16>,
    /// Headers that must have exactly this value (values of repeated fields joined by `,`).
    pub headers: Vec<(String, String)>,
    /// Headers that must have one of these values.
    pub valid_header_values: Vec<(String, Vec<String>)>,
    /// Headers that must be absent.
    pub absent_headers: Vec<String>,
    /// `HTTP/1.1`, `HTTP/2.0`, when set.
    pub protocol: String,
    /// Compare header values without spaces.
    pub ignore_whitespace: bool,
}

/// A mirror that must receive a copy (upstream `http.MirroredBackend`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mirror {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service.
    pub name: String,
    /// Share of requests mirrored, when not all.
    pub percent: Option<u32>,
}

/// One HTTP case, defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpCase {
    /// The request to send.
    pub request: Request,
    /// What must reach the backend; `None` means the request as sent.
    pub expected_request: Option<ExpectedRequest>,
    /// Where a redirect must point.
    pub redirect: Option<Redirect>,
    /// Headers the echo is asked (by `X-Echo-Set-Header`) to set on its answer.
    pub backend_set_response_headers: Vec<(String, String)>,
    /// The expected response.
    pub response: Response,
    /// Prefix of the pod that must answer.
    pub backend: String,
    /// Namespace the answering echo must report (for 200 and 204 answers).
    pub namespace: String,
    /// Mirrors that must receive a copy.
    pub mirrored_to: Vec<Mirror>,
    /// The test's own name for the case.
    pub test_case_name: String,
}

/// One entry of `expected-responses.json`.
#[derive(Clone, Debug)]
pub struct Case {
    /// The Go file, e.g. `httproute-matching.go`.
    pub file: String,
    /// Line of the literal in the Go file.
    pub line: u32,
    /// Titles of the enclosing `t.Run` calls.
    pub t_run: Vec<String>,
    /// The client it needs; `None` for kinds the harness does not know.
    pub kind: Option<CaseKind>,
    /// The HTTP case, or why it cannot be built (values computed at run time).
    pub http: Result<HttpCase, String>,
    /// The literal as extracted (for the other kinds).
    pub body: Value,
}

impl Case {
    /// A short label: `file:line`, the innermost `t.Run` title, the request.
    pub fn label(&self) -> String {
        let subtest = self.t_run.last().map(|t| format!(" ({t})")).unwrap_or_default();
        match &self.http {
            Ok(c) => {
                let host = if c.request.host.is_empty() { String::new() } else { format!(" Host {}", c.request.host) };
                format!("{}:{}{subtest} {} {}{host}", self.file, self.line, c.request.method, c.request.path)
            }
            Err(_) => format!("{}:{}{subtest}", self.file, self.line),
        }
    }
}

/// Reads every case of the file.
pub fn load(text: &str) -> Result<Vec<Case>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("expected-responses.json: {e}"))?;
    let cases = doc.get("cases").and_then(Value::as_array).ok_or("expected-responses.json has no cases")?;
    cases.iter().map(Case::parse).collect()
}

impl Case {
    /// Reads one entry.
    pub fn parse(v: &Value) -> Result<Case, String> {
        let file = v.get("file").and_then(Value::as_str).ok_or("case without file")?.to_owned();
        let line = v.get("line").and_then(Value::as_u64).ok_or("case without line")?;
        let t_run = v
            .get("t_run")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let kind = CaseKind::from_kind(v.get("kind").and_then(Value::as_str).unwrap_or_default());
        let body = v.get("case").ok_or("case without body")?;
        let http = match kind {
            Some(CaseKind::Http) => parse_http(body),
            _ => Err("not an HTTP case".to_owned()),
        };
        Ok(Case { file, line: u32::try_from(line).map_err(|e| e.to_string())?, t_run, kind, http, body: body.clone() })
    }
}

/// A value computed at run time in the Go code (`<expr …>`, `<binexpr>`), which the
/// extraction could not resolve.
pub fn computed(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.starts_with("<expr") || s.starts_with("<binexpr") => Some(s.clone()),
        Value::Array(items) => items.iter().find_map(computed),
        Value::Object(map) => map.values().find_map(computed),
        _ => None,
    }
}

fn string(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn string_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

/// `{name: value}` as sorted pairs; `None` for an absent or `null` map.
fn string_map(v: &Value, key: &str) -> Option<Vec<(String, String)>> {
    let map = v.get(key)?.as_object()?;
    let mut pairs: Vec<(String, String)> =
        map.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
    pairs.sort();
    Some(pairs)
}

fn parse_request(v: &Value) -> Request {
    Request {
        host: string(v, "Host"),
        method: string(v, "Method"),
        path: string(v, "Path"),
        headers: string_map(v, "Headers"),
        unfollow_redirect: v.get("UnfollowRedirect").and_then(Value::as_bool).unwrap_or(false),
        protocol: string(v, "Protocol"),
        sni: string(v, "SNI"),
        client_cert: string(v, "ClientCert"),
    }
}

/// Parses the body of an HTTP case with `MakeRequest`'s defaults.
pub fn parse_http(body: &Value) -> Result<HttpCase, String> {
    if let Some(expr) = computed(body) {
        return Err(format!("computed at run time in the Go test ({expr})"));
    }
    let mut request = parse_request(body.get("Request").unwrap_or(&Value::Null));
    if request.method.is_empty() {
        request.method = "GET".to_owned();
    }
    let expected_request = body.get("ExpectedRequest").filter(|v| !v.is_null()).map(|er| ExpectedRequest {
        request: parse_request(er.get("Request").unwrap_or(&Value::Null)),
        absent_headers: string_list(er, "AbsentHeaders"),
        http_port: string(er, "HTTPPort"),
    });
    let redirect = body.get("RedirectRequest").filter(|v| !v.is_null()).map(|r| Redirect {
        scheme: string(r, "Scheme"),
        host: string(r, "Host"),
        port: string(r, "Port"),
        path: string(r, "Path"),
    });
    let resp = body.get("Response").unwrap_or(&Value::Null);
    let code = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    let mut status_codes: Vec<u16> =
        resp.get("StatusCodes").and_then(Value::as_array).into_iter().flatten().filter_map(code).collect();
    if let Some(single) = resp.get("StatusCode").and_then(code).filter(|c| *c != 0) {
        if !status_codes.contains(&single) {
            status_codes.push(single);
        }
    }
    if status_codes.is_empty() {
        status_codes.push(200);
    }
    let valid_header_values = resp
        .get("ValidHeaderValues")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let values = v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned));
                    (k.clone(), values.collect())
                })
                .collect()
        })
        .unwrap_or_default();
    let response = Response {
        status_codes,
        headers: string_map(resp, "Headers").unwrap_or_default(),
        valid_header_values,
        absent_headers: string_list(resp, "AbsentHeaders"),
        protocol: string(resp, "Protocol"),
        ignore_whitespace: resp.get("IgnoreWhitespace").and_then(Value::as_bool).unwrap_or(false),
    };
    let mirrored_to = body
        .get("MirroredTo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let backend = m.get("BackendRef").unwrap_or(&Value::Null);
            Mirror {
                namespace: string(backend, "Namespace"),
                name: string(backend, "Name"),
                percent: m.get("Percent").and_then(Value::as_u64).and_then(|p| u32::try_from(p).ok()),
            }
        })
        .collect();
    Ok(HttpCase {
        request,
        expected_request,
        redirect,
        backend_set_response_headers: string_map(body, "BackendSetResponseHeaders").unwrap_or_default(),
        response,
        backend: string(body, "Backend"),
        namespace: string(body, "Namespace"),
        mirrored_to,
        test_case_name: string(body, "TestCaseName"),
    })
}

// ---------------------------------------------------------------------------
// What was sent and seen
// ---------------------------------------------------------------------------

/// The request as sent (after defaults and the request id).
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// `http` or `https`.
    pub scheme: String,
    /// The URL's path (without query), the default of a redirect's expected path.
    pub url_path: String,
    /// The method.
    pub method: String,
}

/// What the echo reported about the request it received (upstream `CapturedRequest`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CapturedRequest {
    /// Request target with query.
    pub path: String,
    /// Host.
    pub host: String,
    /// Method.
    pub method: String,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub proto: String,
    /// Headers as reported (name → values); `None` when the answer had none.
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    /// The echo's `httpPort`.
    pub http_port: String,
    /// The echo's namespace.
    pub namespace: String,
    /// The echo's pod.
    pub pod: String,
    /// TLS server name the backend saw.
    pub tls_server_name: String,
    /// Client certificates the backend saw (PEM).
    pub tls_peer_certificates: Vec<String>,
}

impl CapturedRequest {
    /// Reads an echo answer; as upstream, only an answer whose `Content-Type` is exactly
    /// `application/json` is read, any other answer stands for a request made as sent.
    pub fn from_answer(content_type: Option<&str>, body: &[u8], sent_method: &str) -> Result<Self, String> {
        if content_type != Some("application/json") {
            return Ok(CapturedRequest { method: sent_method.to_owned(), ..CapturedRequest::default() });
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("unexpected error reading response: {e}"))?;
        let headers = v.get("headers").and_then(Value::as_object).map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let values = match v {
                        Value::Array(a) => a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
                        Value::String(s) => vec![s.clone()],
                        _ => Vec::new(),
                    };
                    (k.clone(), values)
                })
                .collect()
        });
        let tls = v.get("tls").unwrap_or(&Value::Null);
        Ok(CapturedRequest {
            path: string(&v, "path"),
            host: string(&v, "host"),
            method: string(&v, "method"),
            proto: string(&v, "proto"),
            headers,
            http_port: string(&v, "httpPort"),
            namespace: string(&v, "namespace"),
            pod: string(&v, "pod"),
            tls_server_name: string(tls, "serverName"),
            tls_peer_certificates: string_list(tls, "peerCertificates"),
        })
    }
}

/// A redirect's target as Go's `resp.Location()` resolves it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedirectTarget {
    /// Scheme.
    pub scheme: String,
    /// Host name (no port, no brackets).
    pub host: String,
    /// Port, empty when absent.
    pub port: String,
    /// Path, percent-decoded.
    pub path: String,
}

/// What came back (upstream `CapturedResponse`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Captured {
    /// Status.
    pub status: u16,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub protocol: String,
    /// Response headers, names lower-case, values in order of arrival.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The redirect target, for redirect statuses.
    pub redirect: Option<RedirectTarget>,
    /// The echo's report.
    pub request: CapturedRequest,
}

/// Statuses Go's `roundtripper.IsRedirect` counts.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 300 | 301 | 302 | 303 | 304 | 305 | 307 | 308)
}

/// Statuses `roundtripper.IsTimeoutError` counts.
pub fn is_timeout(status: u16) -> bool {
    matches!(status, 408 | 504)
}

/// Resolves a `Location` value against the request URL (`scheme://authority` + path), as
/// Go's `url.Parse` + `ResolveReference` do for the forms gateways send.
pub fn resolve_location(location: &str, scheme: &str, authority: &str) -> Result<RedirectTarget, String> {
    let (scheme, authority, path) = if let Some((s, rest)) = location.split_once("://") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        (s.to_ascii_lowercase(), rest[..end].to_owned(), rest[end..].to_owned())
    } else if let Some(rest) = location.strip_prefix("//") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        (scheme.to_owned(), rest[..end].to_owned(), rest[end..].to_owned())
    } else if location.starts_with('/') {
        (scheme.to_owned(), authority.to_owned(), location.to_owned())
    } else {
        return Err(format!("relative Location {location:?} is not supported by the harness"));
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority.as_str(), |(_, host)| host);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("bad Location host {authority:?}"))?;
        (host.to_owned(), after.strip_prefix(':').unwrap_or_default().to_owned())
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.to_owned()),
            None => (authority.to_owned(), String::new()),
        }
    };
    Ok(RedirectTarget { scheme, host, port, path: percent_decode(path) })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a header, its fields joined by `,` (Go's `strings.Join(values, ",")`).
fn joined(headers: &BTreeMap<String, Vec<String>>, name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.join(","))
}

/// `CompareRoundTrip`: `Ok` when what came back is what the case expects.
pub fn compare(case: &HttpCase, sent: &Sent, got: &Captured) -> Result<(), String> {
    let expected = &case.response;
    if is_timeout(got.status) && expected.status_codes.iter().any(|c| is_timeout(*c)) {
        return Ok(());
    }
    if !expected.status_codes.contains(&got.status) {
        return Err(format!("expected status code to be one of {:?}, got {}", expected.status_codes, got.status));
    }
    if !expected.protocol.is_empty() && expected.protocol != got.protocol {
        return Err(format!("expected protocol to be {}, got {}", expected.protocol, got.protocol));
    }
    if got.status == 200 || got.status == 204 {
        let default_expected;
        let expected_request = match &case.expected_request {
            Some(er) => er,
            None => {
                default_expected = ExpectedRequest { request: case.request.clone(), ..ExpectedRequest::default() };
                &default_expected
            }
        };
        let er = &expected_request.request;
        let method = if er.method.is_empty() { "GET" } else { er.method.as_str() };
        let seen = &got.request;
        if !er.host.is_empty() && er.host != seen.host {
            return Err(format!("expected host to be {}, got {}", er.host, seen.host));
        }
        if er.path != seen.path {
            return Err(format!("expected path to be {}, got {}", er.path, seen.path));
        }
        if method != seen.method {
            return Err(format!("expected method to be {method}, got {}", seen.method));
        }
        if case.namespace != seen.namespace {
            return Err(format!("expected namespace to be {}, got {}", case.namespace, seen.namespace));
        }
        if let Some(want_headers) = &er.headers {
            let Some(seen_headers) = &seen.headers else {
                return Err(format!("no headers captured, expected {}", want_headers.len()));
            };
            for (name, want) in want_headers {
                match joined(seen_headers, name) {
                    None => {
                        return Err(format!("expected {name} header to be set, actual headers: {seen_headers:?}"));
                    }
                    Some(value) if value != *want => {
                        return Err(format!("expected {name} header to be set to {want}, got {value}"));
                    }
                    Some(_) => {}
                }
            }
        }
        if !expected_request.http_port.is_empty() && expected_request.http_port != seen.http_port {
            return Err(format!("expected httpPort {:?}, got {:?}", expected_request.http_port, seen.http_port));
        }
        let strip = |s: &str| if expected.ignore_whitespace { s.replace(' ', "") } else { s.to_owned() };
        for (name, valid) in &expected.valid_header_values {
            let Some(value) = joined(&got.headers, name) else {
                return Err(format!("expected {name} header to be set, actual headers: {:?}", got.headers));
            };
            let value = strip(&value);
            if !valid.iter().any(|v| strip(v) == value) {
                return Err(format!("expected {name} header to be set to one of {valid:?}, got {value}"));
            }
        }
        for (name, want) in &expected.headers {
            let Some(value) = joined(&got.headers, name) else {
                return Err(format!("expected {name} header to be set, actual headers: {:?}", got.headers));
            };
            if strip(&value) != strip(want) {
                return Err(format!("expected {name} header to be set to {}, got {}", strip(want), strip(&value)));
            }
        }
        for name in &expected.absent_headers {
            if let Some(value) = joined(&got.headers, name) {
                return Err(format!("expected {name} header to not be set, got {value}"));
            }
        }
        for name in &expected_request.absent_headers {
            if let Some(value) = seen.headers.as_ref().and_then(|h| joined(h, name)) {
                return Err(format!("expected {name} header to not be set, got {value}"));
            }
        }
        if !seen.pod.starts_with(&case.backend) {
            return Err(format!("expected pod name to start with {}, got {}", case.backend, seen.pod));
        }
        if !er.sni.is_empty() && er.sni != seen.tls_server_name {
            return Err(format!("expected SNI {:?} to be equal to {:?}", seen.tls_server_name, er.sni));
        }
        if !er.client_cert.is_empty() && !seen.tls_peer_certificates.contains(&er.client_cert) {
            return Err("expected client certificate was not captured".to_owned());
        }
    } else if is_redirect(got.status) {
        let Some(want) = &case.redirect else {
            return Ok(());
        };
        let got_redirect = got.redirect.clone().unwrap_or_default();
        let want_host = if want.host.is_empty() { got_redirect.host.clone() } else { want.host.clone() };
        let want_scheme = if want.scheme.is_empty() { sent.scheme.clone() } else { want.scheme.clone() };
        let want_path = if want.path.is_empty() { sent.url_path.clone() } else { want.path.clone() };
        if want_host != got_redirect.host {
            return Err(format!("expected redirected hostname to be {want_host:?}, got {:?}", got_redirect.host));
        }
        let got_port = got_redirect.port.as_str();
        let got_scheme = got_redirect.scheme.to_ascii_lowercase();
        if want.port.is_empty() {
            if got_scheme == "http" && got_port != "80" && !got_port.is_empty() {
                return Err(format!("for http scheme, expected redirected port to be 80 or not set, got {got_port:?}"));
            }
            if got_scheme == "https" && got_port != "443" && !got_port.is_empty() {
                return Err(format!(
                    "for https scheme, expected redirected port to be 443 or not set, got {got_port:?}"
                ));
            }
        } else if want.port != got_port {
            return Err(format!("expected redirected port to be {:?}, got {got_port:?}", want.port));
        }
        if want_scheme != got_redirect.scheme {
            return Err(format!("expected redirected scheme to be {want_scheme:?}, got {:?}", got_redirect.scheme));
        }
        if want_path != got_redirect.path {
            return Err(format!("expected redirected path to be {want_path:?}, got {:?}", got_redirect.path));
        }
    }
    Ok(())
}

/// `AddRequestIDQueryParam`: `gateway-api-conformance-request-id=<id>` added to the request
/// path and, when the case names one, the expected path (an empty expected path becomes the
/// new request path). Query parameters come out sorted by name, as Go's `Values.Encode`.
pub fn add_request_id(case: &mut HttpCase, id: &str) {
    const PARAM: &str = "gateway-api-conformance-request-id";
    let path = add_query_param(&case.request.path, PARAM, id);
    if let Some(er) = &mut case.expected_request {
        er.request.path =
            if er.request.path.is_empty() { path.clone() } else { add_query_param(&er.request.path, PARAM, id) };
    }
    case.request.path = path;
}

/// `path?query` with `name=value` set, the query re-encoded sorted by name.
fn add_query_param(path: &str, name: &str, value: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .filter(|(k, _)| k != name)
        .collect();
    pairs.push((name.to_owned(), value.to_owned()));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let query: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(body: Value) -> HttpCase {
        parse_http(&body).expect("parses")
    }

    fn sent(method: &str, path: &str) -> Sent {
        Sent {
            scheme: "http".into(),
            url_path: path.split('?').next().unwrap_or_default().into(),
            method: method.into(),
        }
    }

    /// An echo answer as `sluice echo` writes it.
    fn echo_answer(path: &str, host: &str, headers: Value, namespace: &str, pod: &str) -> Vec<u8> {
        json!({
            "path": path, "host": host, "method": "GET", "proto": "HTTP/1.1", "headers": headers,
            "httpPort": "3000", "namespace": namespace, "ingress": "", "service": "svc", "pod": pod,
            "body_bytes": 0
        })
        .to_string()
        .into_bytes()
    }

    fn captured(status: u16, headers: &[(&str, &str)], body: &[u8], json_type: bool) -> Captured {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (n, v) in headers {
            map.entry(n.to_ascii_lowercase()).or_default().push((*v).to_owned());
        }
        let content_type = if json_type { Some("application/json") } else { None };
        Captured {
            status,
            protocol: "HTTP/1.1".into(),
            headers: map,
            redirect: None,
            request: CapturedRequest::from_answer(content_type, body, "GET").expect("echo answer"),
        }
    }

    const NS: &str = "gateway-conformance-infra";

    #[test]
    fn defaults_of_make_request() {
        let c = case(json!({"Request": {"Path": "/"}, "Backend": "infra-backend-v1", "Namespace": NS}));
        assert_eq!(c.request.method, "GET");
        assert_eq!(c.response.status_codes, vec![200]);
        assert!(c.expected_request.is_none());
        let c = case(json!({"Request": {"Path": "/"}, "Response": {"StatusCode": 404, "StatusCodes": [500]}}));
        assert_eq!(c.response.status_codes, vec![500, 404]);
        let c = case(json!({"Request": {"Path": "/"}, "Response": {"StatusCodes": [200, 204]}}));
        assert_eq!(c.response.status_codes, vec![200, 204]);
    }

    #[test]
    fn computed_values_are_not_runnable() {
        let err = parse_http(&json!({"Request": {"Host": "<expr tc.host>", "Path": "/"}})).unwrap_err();
        assert!(err.contains("tc.host"), "{err}");
        assert!(parse_http(&json!({"Request": {"Path": "<binexpr>"}})).is_err());
        assert!(parse_http(&json!({"Request": {"Path": "/"}, "Response": "<expr response>"})).is_err());
    }

    #[test]
    fn a_backend_answer_matches_path_host_namespace_and_pod_prefix() {
        let c = case(
            json!({"Request": {"Host": "foo.com:8080", "Path": "/x?a=1"}, "Backend": "infra-backend-v2", "Namespace": NS}),
        );
        let body = echo_answer("/x?a=1", "foo.com:8080", json!({}), NS, "infra-backend-v2-7b9c4d8f6-abcde");
        assert_eq!(compare(&c, &sent("GET", "/x?a=1"), &captured(200, &[], &body, true)), Ok(()));

        let wrong_pod = echo_answer("/x?a=1", "foo.com:8080", json!({}), NS, "infra-backend-v1-7b9c4d8f6-abcde");
        let err = compare(&c, &sent("GET", "/x?a=1"), &captured(200, &[], &wrong_pod, true)).unwrap_err();
        assert!(err.contains("pod name to start with infra-backend-v2"), "{err}");

        let wrong_host = echo_answer("/x?a=1", "foo.com", json!({}), NS, "infra-backend-v2-1");
        let err = compare(&c, &sent("GET", "/x?a=1"), &captured(200, &[], &wrong_host, true)).unwrap_err();
        assert!(err.contains("expected host to be foo.com:8080"), "{err}");

        let wrong_path = echo_answer("/x", "foo.com:8080", json!({}), NS, "infra-backend-v2-1");
        assert!(compare(&c, &sent("GET", "/x?a=1"), &captured(200, &[], &wrong_path, true)).is_err());

        let wrong_ns = echo_answer("/x?a=1", "foo.com:8080", json!({}), "other", "infra-backend-v2-1");
        let err = compare(&c, &sent("GET", "/x?a=1"), &captured(200, &[], &wrong_ns, true)).unwrap_err();
        assert!(err.contains("namespace"), "{err}");

        let err = compare(&c, &sent("GET", "/x?a=1"), &captured(404, &[], b"", false)).unwrap_err();
        assert!(err.contains("one of [200], got 404"), "{err}");
    }

    #[test]
    fn status_only_cases_ignore_the_body() {
        let c = case(json!({"Request": {"Host": "bar.com:8090", "Path": "/"}, "Response": {"StatusCode": 404}}));
        assert_eq!(compare(&c, &sent("GET", "/"), &captured(404, &[], b"not found", false)), Ok(()));
        let c = case(json!({"Request": {"Path": "/"}, "Response": {"StatusCode": 500}}));
        assert!(compare(&c, &sent("GET", "/"), &captured(503, &[], b"", false)).is_err());
    }

    #[test]
    fn timeouts_match_any_timeout_status() {
        let c = case(json!({"Request": {"Path": "/request-timeout?delay=1s"}, "Response": {"StatusCode": 504}}));
        assert_eq!(compare(&c, &sent("GET", "/"), &captured(408, &[], b"", false)), Ok(()));
        assert_eq!(compare(&c, &sent("GET", "/"), &captured(504, &[], b"", false)), Ok(()));
    }

    #[test]
    fn request_headers_absent_headers_and_joined_values() {
        let c = case(json!({
            "Request": {"Path": "/add", "Headers": {"Some-Other-Header": "val", "X-Header-Add-Append": "append-val-1"}},
            "ExpectedRequest": {"Request": {"Path": "/add", "Headers": {
                "Some-Other-Header": "val", "X-Header-Add": "header-val-1",
                "X-Header-Add-Append": "append-val-1,header-val-2"}},
                "AbsentHeaders": ["X-Header-Remove"]},
            "Backend": "infra-backend-v1", "Namespace": NS
        }));
        let good = json!({
            "Some-Other-Header": ["val"], "X-Header-Add": ["header-val-1"],
            "X-Header-Add-Append": ["append-val-1", "header-val-2"]
        });
        let body = echo_answer("/add", "", good, NS, "infra-backend-v1-a-b");
        assert_eq!(compare(&c, &sent("GET", "/add"), &captured(200, &[], &body, true)), Ok(()));

        let spaced = json!({
            "Some-Other-Header": ["val"], "X-Header-Add": ["header-val-1"],
            "X-Header-Add-Append": ["append-val-1, header-val-2"]
        });
        let body = echo_answer("/add", "", spaced, NS, "infra-backend-v1-a-b");
        let err = compare(&c, &sent("GET", "/add"), &captured(200, &[], &body, true)).unwrap_err();
        assert!(err.contains("X-Header-Add-Append header to be set to append-val-1,header-val-2"), "{err}");

        let leaked = json!({
            "some-other-header": ["val"], "x-header-add": ["header-val-1"],
            "X-Header-Add-Append": ["append-val-1,header-val-2"], "X-Header-Remove": ["x"]
        });
        let body = echo_answer("/add", "", leaked, NS, "infra-backend-v1-a-b");
        let err = compare(&c, &sent("GET", "/add"), &captured(200, &[], &body, true)).unwrap_err();
        assert!(err.contains("X-Header-Remove header to not be set"), "{err}");
    }

    #[test]
    fn response_headers_valid_values_and_whitespace() {
        let c = case(json!({
            "Request": {"Path": "/cors-1", "Method": "OPTIONS", "Headers": {"Origin": "https://www.foo.com"}},
            "ExpectedRequest": {"Request": {"Headers": null, "Host": "", "Method": "OPTIONS", "Path": ""}},
            "Namespace": "",
            "Response": {"IgnoreWhitespace": true, "StatusCodes": [200, 204],
                "ValidHeaderValues": {"access-control-allow-methods": ["GET, OPTIONS", "OPTIONS, GET"]},
                "Headers": {"Access-Control-Max-Age": "3600"},
                "AbsentHeaders": ["access-control-allow-credentials"]}
        }));
        let preflight = |methods: &str, extra: &[(&'static str, &'static str)]| {
            let mut h = vec![("Access-Control-Allow-Methods", methods), ("access-control-max-age", "3600")];
            h.extend_from_slice(extra);
            let mut got = captured(204, &h, b"", false);
            got.request.method = "OPTIONS".into();
            got
        };
        let s = sent("OPTIONS", "/cors-1");
        assert_eq!(compare(&c, &s, &preflight("OPTIONS,GET", &[])), Ok(()));
        assert_eq!(compare(&c, &s, &preflight("GET, OPTIONS", &[])), Ok(()));
        assert!(compare(&c, &s, &preflight("GET", &[])).is_err());
        let err =
            compare(&c, &s, &preflight("GET,OPTIONS", &[("Access-Control-Allow-Credentials", "true")])).unwrap_err();
        assert!(err.contains("to not be set"), "{err}");
        // The gateway forwarded the preflight: the echo's path is not the expected "".
        let body = echo_answer("/cors-1", "", json!({}), "", "infra-backend-v1-x");
        let mut forwarded = captured(
            200,
            &[("access-control-allow-methods", "GET, OPTIONS"), ("access-control-max-age", "3600")],
            &body,
            true,
        );
        forwarded.request.method = "OPTIONS".into();
        assert!(compare(&c, &s, &forwarded).unwrap_err().contains("expected path to be , got /cors-1"));
        // Repeated fields are joined by "," before comparing.
        let c =
            case(json!({"Request": {"Path": "/"}, "Response": {"Headers": {"X-Header-Add": "a,b"}}, "Namespace": NS}));
        let body = echo_answer("/", "", json!({}), NS, "p");
        assert_eq!(
            compare(
                &c,
                &sent("GET", "/"),
                &captured(200, &[("x-header-add", "a"), ("X-Header-Add", "b")], &body, true)
            ),
            Ok(())
        );
    }

    #[test]
    fn redirects_compare_scheme_host_port_and_path_with_defaults() {
        let c = case(json!({
            "Request": {"Path": "/scheme-nil-and-port-nil", "UnfollowRedirect": true, "Host": "example.org"},
            "Response": {"StatusCode": 302},
            "RedirectRequest": {"Host": "example.org"}
        }));
        let with = |location: &str| {
            let mut got = captured(302, &[("Location", location)], b"", false);
            got.redirect = Some(resolve_location(location, "http", "127.0.90.1").expect("location"));
            got
        };
        let s = sent("GET", "/scheme-nil-and-port-nil");
        assert_eq!(compare(&c, &s, &with("http://example.org/scheme-nil-and-port-nil")), Ok(()));
        assert_eq!(compare(&c, &s, &with("http://example.org:80/scheme-nil-and-port-nil")), Ok(()));
        assert!(compare(&c, &s, &with("http://example.org:8080/scheme-nil-and-port-nil"))
            .unwrap_err()
            .contains("80 or not set"));
        assert!(compare(&c, &s, &with("https://example.org/scheme-nil-and-port-nil")).unwrap_err().contains("scheme"));
        assert!(compare(&c, &s, &with("http://other.org/scheme-nil-and-port-nil")).unwrap_err().contains("hostname"));
        assert!(compare(&c, &s, &with("http://example.org/other")).unwrap_err().contains("path"));

        let c = case(json!({
            "Request": {"Path": "/port", "UnfollowRedirect": true},
            "Response": {"StatusCode": 302},
            "RedirectRequest": {"Port": "8083"}
        }));
        let s = sent("GET", "/port");
        assert_eq!(compare(&c, &s, &with("http://127.0.90.1:8083/port")), Ok(()));
        assert!(compare(&c, &s, &with("http://127.0.90.1/port")).is_err());
        // A redirect the case does not describe passes on its status alone.
        let c = case(json!({"Request": {"Path": "/x", "UnfollowRedirect": true}, "Response": {"StatusCode": 302}}));
        assert_eq!(compare(&c, &sent("GET", "/x"), &with("http://anywhere/")), Ok(()));
    }

    #[test]
    fn locations_resolve_like_go() {
        let t = resolve_location("https://example.org:8443/a%20b?q=1#f", "http", "1.2.3.4").unwrap();
        assert_eq!(
            (t.scheme.as_str(), t.host.as_str(), t.port.as_str(), t.path.as_str()),
            ("https", "example.org", "8443", "/a b")
        );
        let t = resolve_location("/only/path?x", "http", "127.0.90.1:8080").unwrap();
        assert_eq!(
            (t.scheme.as_str(), t.host.as_str(), t.port.as_str(), t.path.as_str()),
            ("http", "127.0.90.1", "8080", "/only/path")
        );
        let t = resolve_location("http://[::1]:81/", "http", "x").unwrap();
        assert_eq!((t.host.as_str(), t.port.as_str()), ("::1", "81"));
        assert!(resolve_location("relative", "http", "x").is_err());
    }

    #[test]
    fn request_ids_are_added_like_values_encode() {
        let mut c = case(json!({
            "Request": {"Path": "/mirror"},
            "ExpectedRequest": {"Request": {"Path": "/mirror"}},
        }));
        add_request_id(&mut c, "abc");
        assert_eq!(c.request.path, "/mirror?gateway-api-conformance-request-id=abc");
        assert_eq!(
            c.expected_request.as_ref().map(|e| e.request.path.as_str()),
            Some("/mirror?gateway-api-conformance-request-id=abc")
        );
        let mut c = case(json!({"Request": {"Path": "/p?z=1&a=2"}, "ExpectedRequest": {"Request": {"Path": ""}}}));
        add_request_id(&mut c, "id");
        assert_eq!(c.request.path, "/p?a=2&gateway-api-conformance-request-id=id&z=1");
        assert_eq!(c.expected_request.map(|e| e.request.path), Some(c.request.path));
    }

    #[test]
    fn non_json_answers_stand_for_the_request_sent() {
        let r = CapturedRequest::from_answer(Some("text/plain"), b"x", "OPTIONS").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.namespace.as_str()), ("OPTIONS", "", ""));
        assert!(CapturedRequest::from_answer(Some("application/json"), b"not json", "GET").is_err());
        let r = CapturedRequest::from_answer(Some("application/json; charset=utf-8"), b"{}", "GET").unwrap();
        assert_eq!(r.path, "", "only exactly application/json is read");
    }

    #[test]
    fn every_case_of_the_data_file_parses() {
        let text = std::fs::read_to_string(crate::EXPECTED_RESPONSES).expect("read expected-responses.json");
        let cases = load(&text).expect("loads");
        assert!(cases.len() > 300, "{} cases", cases.len());
        let http: Vec<&Case> = cases.iter().filter(|c| c.kind == Some(CaseKind::Http)).collect();
        let computed = http.iter().filter(|c| c.http.is_err()).count();
        assert!(http.len() > 300 && computed < 20, "{} HTTP cases, {computed} computed", http.len());
        assert!(cases.iter().all(|c| c.kind.is_some()), "every kind is known");
    }
}
