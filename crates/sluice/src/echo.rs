//! `sluice echo`: a tiny HTTP backend for tests and demos.
//!
//! Every request is answered with a JSON description of what the backend saw, in the shape
//! of the Gateway API conformance suite's `echo-basic` backend (so that the suite's
//! expectations can be checked against it) plus the body size:
//! `path` (the request target, query included), `host`, `method`, `proto` (`HTTP/1.1`,
//! `HTTP/2.0`, as Go spells them), `headers` (name → list of values, names in Go's
//! canonical form such as `X-Forwarded-For`, without `Host` and `Transfer-Encoding` as Go's
//! server reports them), `httpPort`, `namespace`, `ingress` (always empty), `service`,
//! `pod`, and `body_bytes`. HTTP/1.1, HTTP/1.0 and cleartext HTTP/2 (prior knowledge) are
//! served on the same port; an HTTP/1.1 `Upgrade: websocket` request becomes a WebSocket
//! echo.
//!
//! Paths that answer differently, as echo-basic's:
//! - `/health`: `200 OK` with body `OK`;
//! - `/status/NNN` (exactly three digits, no query): an empty answer with status `NNN`
//!   (anything else under `/status/` is `400`);
//! - `/retry/?uuid=U&succeedAfter=N[&responseCode=C][&delayRetry=D]`: the first `N`
//!   requests with that `uuid` fail — answered with status `C`, or without `responseCode`
//!   the connection is closed without an answer — after waiting `D`; later ones are echoed.
//!
//! Request parts that change the answer (unknown or invalid ones are ignored):
//! - query `delay=D` (a Go duration such as `500ms` or `1s`, at most two minutes): wait `D`
//!   before answering (an unparsable duration is a `500` with a JSON `message`);
//! - header `X-Echo-Set-Header: Name:value,Other:value`: the answer carries those headers
//!   (a name given twice gets its values joined with `,`);
//! - query `status=N`: answer with status `N` (200–599; 204 and 304 come without a body);
//! - query `sleep_ms=N`: wait `N` milliseconds before answering (at most 120 000);
//! - query `bytes=N`: instead of JSON, answer with `N` bytes of `x`
//!   (`application/octet-stream`, at most 1 GiB, streamed in chunks).
//!
//! With `--h2c-listen` a second port accepts only HTTP/2 (or HTTP/1.1 asking
//! `Upgrade: h2c`) as echo-basic's h2c port does: other requests get `400`. With
//! `--log-requests` every echoed request is logged on stdout as echo-basic logs it
//! (`Echoing back request made to <target> to client (<peer>)`), which is how the
//! conformance suite checks that a mirror received a copy.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest accepted `sleep_ms` value and `delay` / `delayRetry` duration (two minutes).
const MAX_SLEEP_MS: u64 = 120_000;
/// Largest accepted `bytes` value (1 GiB).
const MAX_BYTES: u64 = 1 << 30;
/// Size of one chunk of a `bytes=N` body.
const CHUNK_LEN: usize = 64 * 1024;
/// The content of every `bytes=N` chunk.
static CHUNK: [u8; CHUNK_LEN] = [b'x'; CHUNK_LEN];
/// How many `/retry/` request ids are remembered before the table starts over.
const MAX_RETRY_IDS: usize = 10_000;

/// Options of `sluice echo`.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Service name reported in every answer (`"service"`).
    pub name: String,
    /// Pod name reported in every answer (`"pod"`); defaults to the listen address.
    pub pod: Option<String>,
    /// Namespace reported in every answer (`"namespace"`).
    pub namespace: String,
    /// A second address that accepts only HTTP/2 (or `Upgrade: h2c`), as echo-basic's h2c port.
    pub h2c_listen: Option<SocketAddr>,
    /// Print one line per echoed request on stdout, as echo-basic does.
    pub log_requests: bool,
}

impl EchoOptions {
    /// Options for an echo on `listen` reporting service `name`, everything else default.
    pub fn new(listen: SocketAddr, name: impl Into<String>) -> Self {
        Self { listen, name: name.into(), pod: None, namespace: String::new(), h2c_listen: None, log_requests: false }
    }
}

/// What every answer of one echo server reports, and the state its `/retry/` path keeps.
#[derive(Debug)]
struct Shared {
    service: String,
    pod: String,
    namespace: String,
    /// The main listener's port, as echo-basic's `httpPort`.
    http_port: String,
    log_requests: bool,
    /// `/retry/` attempts per request id.
    retries: Mutex<HashMap<String, u64>>,
}

/// Serves until the process is killed.
///
/// Returns an error only when a listening socket cannot be bound.
pub async fn serve(opts: EchoOptions) -> std::io::Result<()> {
    let listener = TcpListener::bind(opts.listen).await?;
    let h2c = match opts.h2c_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let local = listener.local_addr().unwrap_or(opts.listen);
    let shared = Arc::new(Shared {
        service: opts.name,
        pod: opts.pod.unwrap_or_else(|| local.to_string()),
        namespace: opts.namespace,
        http_port: local.port().to_string(),
        log_requests: opts.log_requests,
        retries: Mutex::new(HashMap::new()),
    });
    tracing::info!(listen = %local, service = %shared.service, pod = %shared.pod, namespace = %shared.namespace,
        "echo backend serving");
    if let Some(h2c) = h2c {
        let shared = shared.clone();
        tokio::spawn(accept_loop(h2c, shared, true));
    }
    accept_loop(listener, shared, false).await;
    Ok(())
}

/// Accepts connections forever; `h2c_only` answers anything but HTTP/2 with `400`.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, h2c_only: bool) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Typically EMFILE/ECONNABORTED: back off briefly and keep serving.
                tracing::debug!(error = %err, "echo accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(req, &shared, peer, h2c_only).await }
            });
            let builder = Builder::new(TokioExecutor::new());
            if let Err(err) = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %err, "echo connection ended with an error");
            }
        });
    }
}

/// Why a request got no answer: the connection is closed instead (`/retry/` failures).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed without an answer on purpose")
    }
}

impl std::error::Error for Dropped {}

/// Parameters taken from the query string.
#[derive(Debug, Default)]
struct Params {
    status: Option<StatusCode>,
    sleep_ms: Option<u64>,
    bytes: Option<u64>,
}

impl Params {
    /// Parses `status`, `sleep_ms` and `bytes`, ignoring anything else.
    fn parse(query: Option<&str>) -> Self {
        let mut params = Params::default();
        for pair in query.unwrap_or("").split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let Ok(number) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "status" if (200..=599).contains(&number) => {
                    params.status = u16::try_from(number).ok().and_then(|n| StatusCode::from_u16(n).ok());
                }
                "sleep_ms" => params.sleep_ms = Some(number.min(MAX_SLEEP_MS)),
                "bytes" => params.bytes = Some(number.min(MAX_BYTES)),
                _ => {}
            }
        }
        params
    }
}

/// Answers one request (or drops the connection, for a failing `/retry/` attempt).
async fn handle(
    mut req: Request<Incoming>,
    shared: &Shared,
    peer: SocketAddr,
    h2c_only: bool,
) -> Result<Response<EchoBody>, Dropped> {
    if h2c_only && req.version() != Version::HTTP_2 && !asks_h2c_upgrade(req.headers()) {
        return Ok(plain(StatusCode::BAD_REQUEST, "Expected h2c request"));
    }
    if is_websocket_upgrade(&req) {
        return Ok(websocket_upgrade(&mut req));
    }
    // echo-basic routes on the path with `//` collapsed, as its `preserveSlashes` wrapper does.
    let routed = req.uri().path().replace("//", "/");
    if routed == "/health" {
        return Ok(plain(StatusCode::OK, "OK"));
    }
    if routed.starts_with("/status/") {
        return Ok(status_answer(&target(&req)));
    }
    if routed.starts_with("/retry/") {
        if let Some(failure) = retry_attempt(&req, shared).await? {
            return Ok(failure);
        }
    }
    Ok(echo(req, shared, peer).await)
}

/// The request target as sent (path and query), echo-basic's `path`.
fn target<B>(req: &Request<B>) -> String {
    req.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| req.uri().path().to_owned())
}

/// `/status/NNN`: an empty answer with that status (`400` unless the whole target is
/// `/status/` and three digits). A 1xx code ends as `200`, as Go's server ends it.
fn status_answer(target: &str) -> Response<EchoBody> {
    let digits = target.strip_prefix("/status/").filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()));
    let code = digits.and_then(|d| d.parse::<u16>().ok()).unwrap_or(400);
    let status = StatusCode::from_u16(code.max(200)).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = Response::new(EchoBody::Full(None));
    *resp.status_mut() = status;
    resp
}

/// One `/retry/` attempt: `Ok(None)` once the request id has failed `succeedAfter` times
/// (the request is then echoed), else the failing answer or [`Dropped`].
async fn retry_attempt<B>(req: &Request<B>, shared: &Shared) -> Result<Option<Response<EchoBody>>, Dropped> {
    let query = req.uri().query();
    let Some(uuid) = query_value(query, "uuid").filter(|u| !u.is_empty()) else {
        return Ok(Some(plain(StatusCode::BAD_REQUEST, "uuid is required")));
    };
    let Some(succeed_after) = query_value(query, "succeedAfter").and_then(|v| v.parse::<u64>().ok()) else {
        return Ok(Some(plain(StatusCode::BAD_REQUEST, "succeedAfter is required")));
    };
    let fail = {
        let mut attempts = shared.retries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if attempts.len() >= MAX_RETRY_IDS && !attempts.contains_key(&uuid) {
            attempts.clear();
        }
        let count = attempts.entry(uuid).or_insert(0);
        if *count < succeed_after {
            *count += 1;
            true
        } else {
            false
        }
    };
    if !fail {
        return Ok(None);
    }
    if let Err(message) = delay(query, "delayRetry").await {
        return Ok(Some(json_error(StatusCode::INTERNAL_SERVER_ERROR, &message)));
    }
    let code = query_value(query, "responseCode").and_then(|v| v.parse::<u16>().ok());
    match code.and_then(|c| StatusCode::from_u16(c.max(200)).ok()) {
        Some(status) => {
            let mut resp = Response::new(EchoBody::Full(None));
            *resp.status_mut() = status;
            Ok(Some(resp))
        }
        None => Err(Dropped),
    }
}

/// Waits the Go duration in query parameter `key`, if any; the error names a bad value.
async fn delay(query: Option<&str>, key: &str) -> Result<(), String> {
    let Some(text) = query_value(query, key).filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let wait = parse_go_duration(&text).ok_or_else(|| format!("time: invalid duration {text:?}"))?;
    tokio::time::sleep(wait.min(Duration::from_millis(MAX_SLEEP_MS))).await;
    Ok(())
}

/// The echo answer proper.
async fn echo(req: Request<Incoming>, shared: &Shared, peer: SocketAddr) -> Response<EchoBody> {
    let target = target(&req);
    if shared.log_requests {
        // One write per line so that lines of concurrent requests never interleave.
        let line = format!("Echoing back request made to {target} to client ({peer})\n");
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
    let (parts, mut body) = req.into_parts();
    let params = Params::parse(parts.uri.query());

    // Read the whole request body, counting its bytes without keeping them.
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_bytes += data.len() as u64;
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "echo failed to read the request body");
                return plain(StatusCode::BAD_REQUEST, "cannot read the request body\n");
            }
        }
    }

    if let Err(message) = delay(parts.uri.query(), "delay").await {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, &message);
    }
    if let Some(ms) = params.sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = params.status.unwrap_or(StatusCode::OK);
    let mut resp = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        // These statuses carry neither a body nor a Content-Length.
        Response::new(EchoBody::Full(None))
    } else if let Some(len) = params.bytes {
        let mut resp = Response::new(EchoBody::Repeat { remaining: len });
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        resp
    } else {
        let host = parts
            .headers
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        let answer = Answer {
            path: &target,
            host: &host,
            method: parts.method.as_str(),
            proto: proto_name(parts.version),
            headers: headers_json(&parts.headers),
            http_port: &shared.http_port,
            namespace: &shared.namespace,
            ingress: "",
            service: &shared.service,
            pod: &shared.pod,
            body_bytes,
        };
        let mut text = serde_json::to_string(&answer).unwrap_or_else(|_| String::from("{}"));
        text.push('\n');
        let mut resp = json_response(text);
        if parts.method == Method::HEAD {
            // Keep the Content-Length of the GET answer, send no body.
            *resp.body_mut() = EchoBody::Full(None);
        }
        resp
    };
    *resp.status_mut() = status;
    for (name, value) in echo_set_headers(&parts.headers) {
        resp.headers_mut().insert(name, value);
    }
    resp
}

/// The JSON answer, in echo-basic's field order, plus `body_bytes`.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    path: &'a str,
    host: &'a str,
    method: &'a str,
    proto: &'a str,
    headers: BTreeMap<String, Vec<String>>,
    #[serde(rename = "httpPort")]
    http_port: &'a str,
    namespace: &'a str,
    ingress: &'a str,
    service: &'a str,
    pod: &'a str,
    body_bytes: u64,
}

/// Name of an HTTP version as Go's `Request.Proto` spells it.
fn proto_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// A header name as Go's `textproto.CanonicalMIMEHeaderKey` writes it: the first letter
/// and every letter after a `-` upper case, the others lower case (`x-forwarded-for` →
/// `X-Forwarded-For`). Names with bytes outside HTTP's token characters stay as they are.
pub fn canonical_header_name(name: &str) -> String {
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Request headers as echo-basic reports Go's `Request.Header`: canonical name → values in
/// order; `Host` and `Transfer-Encoding` are not there (Go keeps them elsewhere).
fn headers_json(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if name == header::HOST || name == header::TRANSFER_ENCODING {
            continue;
        }
        map.entry(canonical_header_name(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    map
}

/// The response headers `X-Echo-Set-Header` asks for: each value is a comma-separated list
/// of `Name:value`; a name given again gets `,value` appended to its first value.
/// Unusable names or values are skipped.
fn echo_set_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for list in headers.get_all("x-echo-set-header") {
        let list = String::from_utf8_lossy(list.as_bytes());
        for pair in list.split(',') {
            let (name, value) = pair.trim().split_once(':').unwrap_or((pair.trim(), ""));
            if name.is_empty() {
                continue;
            }
            match wanted.iter_mut().find(|(n, _)| n == name) {
                Some((_, existing)) => {
                    existing.push(',');
                    existing.push_str(value.trim());
                }
                None => wanted.push((name.to_owned(), value.trim().to_owned())),
            }
        }
    }
    wanted
        .into_iter()
        .filter_map(|(name, value)| {
            Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(&value).ok()?))
        })
        .collect()
}

/// Whether an HTTP/1.1 request asks to upgrade to h2c.
fn asks_h2c_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::UPGRADE).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"h2c"))
}

/// The first value of query parameter `key`, percent-decoded (`+` is a space), as Go's
/// `URL.Query().Get`.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// `%XX` escapes decoded and `+` turned into a space; invalid escapes are kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a Go `time.ParseDuration` string (`300ms`, `1.5s`, `1h2m`, `-1s`; units `ns`,
/// `us`, `µs`, `ms`, `s`, `m`, `h`). A negative duration is zero (Go's sleep returns at once).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if negative {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(total.min(u64::MAX as f64) as u64))
}

/// A JSON answer with its Content-Length (status 200 unless changed).
fn json_response(text: String) -> Response<EchoBody> {
    let len = text.len() as u64;
    let mut resp = Response::new(EchoBody::Full(Some(Bytes::from(text))));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// echo-basic's error answer: `{"message": ...}` with `status`.
fn json_error(status: StatusCode, message: &str) -> Response<EchoBody> {
    let text = serde_json::json!({ "message": message }).to_string();
    let mut resp = json_response(text);
    *resp.status_mut() = status;
    resp
}

/// A short plain-text answer.
fn plain(status: StatusCode, text: &'static str) -> Response<EchoBody> {
    let mut resp = Response::new(EchoBody::Full(Some(Bytes::from_static(text.as_bytes()))));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    resp
}

/// Whether `req` asks for a WebSocket upgrade (HTTP/1.1 `Upgrade: websocket` with a key).
fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    if req.version() != Version::HTTP_11 {
        return false;
    }
    let headers = req.headers();
    let upgrade_is_websocket = headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket"))));
    upgrade_is_websocket && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// Answers a WebSocket upgrade with `101` and starts echoing on the upgraded connection.
fn websocket_upgrade(req: &mut Request<Incoming>) -> Response<EchoBody> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "bad accept key\n");
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                websocket_echo(ws).await;
            }
            Err(err) => tracing::debug!(error = %err, "echo websocket upgrade failed"),
        }
    });
    let mut resp = Response::new(EchoBody::Full(None));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

/// Echoes text and binary messages until the peer closes or the connection fails.
async fn websocket_echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let result = match msg {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => ws.send(msg).await,
            // tungstenite queues the pong (and the close reply); flush sends it now.
            Ok(Message::Ping(_)) | Ok(Message::Close(_)) => ws.flush().await,
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::debug!(error = %err, "echo websocket read failed");
                break;
            }
        };
        if let Err(err) = result {
            tracing::debug!(error = %err, "echo websocket write failed");
            break;
        }
    }
}

/// Response body of the echo backend: a single buffer or `N` bytes of `x`.
#[derive(Debug)]
enum EchoBody {
    /// One buffer (or none), sent as a single frame.
    Full(Option<Bytes>),
    /// `remaining` bytes of `x`, sent in chunks of at most [`CHUNK_LEN`].
    Repeat { remaining: u64 },
}

impl hyper::body::Body for EchoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this {
            EchoBody::Full(buf) => Poll::Ready(buf.take().map(|b| Ok(Frame::data(b)))),
            EchoBody::Repeat { remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = usize::try_from(*remaining).map_or(CHUNK_LEN, |r| r.min(CHUNK_LEN));
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EchoBody::Full(buf) => buf.is_none(),
            EchoBody::Repeat { remaining } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EchoBody::Full(buf) => SizeHint::with_exact(buf.as_ref().map_or(0, |b| b.len() as u64)),
            EchoBody::Repeat { remaining } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_params_and_ignores_the_rest() {
        let p = Params::parse(Some("status=503&sleep_ms=999999&bytes=12&x=1&status"));
        assert_eq!(p.status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(p.sleep_ms, Some(MAX_SLEEP_MS));
        assert_eq!(p.bytes, Some(12));
        let p = Params::parse(Some("status=99&status=abc&bytes=-1&&=&sleep_ms="));
        assert!(p.status.is_none() && p.bytes.is_none() && p.sleep_ms.is_none());
        let p = Params::parse(None);
        assert!(p.status.is_none());
    }

    #[test]
    fn bytes_are_capped() {
        let p = Params::parse(Some("bytes=99999999999999"));
        assert_eq!(p.bytes, Some(MAX_BYTES));
    }

    #[test]
    fn proto_names() {
        assert_eq!(proto_name(Version::HTTP_2), "HTTP/2.0");
        assert_eq!(proto_name(Version::HTTP_11), "HTTP/1.1");
        assert_eq!(proto_name(Version::HTTP_10), "HTTP/1.0");
    }

    #[test]
    fn header_names_are_canonical_as_go_writes_them() {
        for (raw, want) in [
            ("x-forwarded-for", "X-Forwarded-For"),
            ("USER-AGENT", "User-Agent"),
            ("access-control-request-method", "Access-Control-Request-Method"),
            ("x_under_score", "X_under_score"),
            ("a--b", "A--B"),
            ("dnt", "Dnt"),
            ("-lead", "-Lead"),
            ("has space", "has space"),
            ("", ""),
        ] {
            assert_eq!(canonical_header_name(raw), want, "{raw}");
        }
    }

    #[test]
    fn headers_are_lists_under_canonical_names_without_host() {
        let mut headers = HeaderMap::new();
        headers.append("x-multi", HeaderValue::from_static("1"));
        headers.append("x-multi", HeaderValue::from_static("2"));
        headers.append("host", HeaderValue::from_static("h"));
        headers.append("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.append("user-agent", HeaderValue::from_static("Go-http-client/1.1"));
        let json = headers_json(&headers);
        assert_eq!(json.get("X-Multi"), Some(&vec!["1".to_owned(), "2".to_owned()]));
        assert_eq!(json.get("User-Agent"), Some(&vec!["Go-http-client/1.1".to_owned()]));
        assert!(!json.contains_key("Host") && !json.contains_key("Transfer-Encoding"));
    }

    #[test]
    fn echo_set_header_lists_become_response_headers() {
        let mut headers = HeaderMap::new();
        headers.append("x-echo-set-header", HeaderValue::from_static("X-Header-Set: a ,Other:b, X-Header-Set:c"));
        headers.append("x-echo-set-header", HeaderValue::from_static(""));
        headers.append("x-echo-set-header", HeaderValue::from_static("bad name:x,ok:"));
        let got: Vec<(String, String)> = echo_set_headers(&headers)
            .into_iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        assert_eq!(
            got,
            [("x-header-set", "a,c"), ("other", "b"), ("ok", "")].map(|(n, v)| (n.to_owned(), v.to_owned())).to_vec()
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_go_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("-1s"), Some(Duration::ZERO));
        for bad in ["", "1", "s", "1x", "1..2s", ".s", "1s2", "-"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_paths() {
        assert_eq!(status_answer("/status/503").status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_answer("/status/200").status(), StatusCode::OK);
        assert_eq!(status_answer("/status/101").status(), StatusCode::OK);
        for bad in ["/status/", "/status/20", "/status/2000", "/status/abc", "/status/503?x=1"] {
            assert_eq!(status_answer(bad).status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn query_values_are_decoded() {
        let q = Some("uuid=a%20b&succeedAfter=2&x&uuid=second&plus=a+b");
        assert_eq!(query_value(q, "uuid").as_deref(), Some("a b"));
        assert_eq!(query_value(q, "succeedAfter").as_deref(), Some("2"));
        assert_eq!(query_value(q, "x").as_deref(), Some(""));
        assert_eq!(query_value(q, "plus").as_deref(), Some("a b"));
        assert_eq!(query_value(q, "missing"), None);
        assert_eq!(query_value(None, "uuid"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
