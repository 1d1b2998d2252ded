//! `sluice echo`: a tiny HTTP backend for tests and demos.
//!
//! Every request is answered with a JSON description of what the backend saw
//! (service name, pod, method, path, host, protocol, headers, body size), so a
//! test can check what Sluice forwarded. HTTP/1.1, HTTP/1.0 and cleartext
//! HTTP/2 (prior knowledge) are served on the same port; an HTTP/1.1
//! `Upgrade: websocket` request becomes a WebSocket echo.
//!
//! Query parameters that change the answer (unknown or invalid ones are ignored):
//! - `status=N`: answer with status `N` (200–599; 204 and 304 come without a body);
//! - `sleep_ms=N`: wait `N` milliseconds before answering (at most 120 000);
//! - `bytes=N`: instead of JSON, answer with `N` bytes of `x`
//!   (`application/octet-stream`, at most 1 GiB, streamed in chunks).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest accepted `sleep_ms` value (two minutes).
const MAX_SLEEP_MS: u64 = 120_000;
/// Largest accepted `bytes` value (1 GiB).
const MAX_BYTES: u64 = 1 << 30;
/// Size of one chunk of a `bytes=N` body.
const CHUNK_LEN: usize = 64 * 1024;
/// The content of every `bytes=N` chunk.
static CHUNK: [u8; CHUNK_LEN] = [b'x'; CHUNK_LEN];

/// Options of `sluice echo`.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Service name reported in every answer (`"service"`).
    pub name: String,
    /// Pod name reported in every answer (`"pod"`); defaults to the listen address.
    pub pod: Option<String>,
}

/// Identity reported by every answer of one echo server.
#[derive(Debug)]
struct Identity {
    service: String,
    pod: String,
}

/// Serves until the process is killed.
///
/// Returns an error only when the listening socket cannot be bound.
pub async fn serve(opts: EchoOptions) -> std::io::Result<()> {
    let listener = TcpListener::bind(opts.listen).await?;
    let local = listener.local_addr().unwrap_or(opts.listen);
    let identity =
        std::sync::Arc::new(Identity { service: opts.name, pod: opts.pod.unwrap_or_else(|| local.to_string()) });
    tracing::info!(listen = %local, service = %identity.service, pod = %identity.pod, "echo backend serving");
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
        let identity = identity.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let identity = identity.clone();
                async move { Ok::<_, Infallible>(handle(req, &identity).await) }
            });
            let builder = Builder::new(TokioExecutor::new());
            if let Err(err) = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %err, "echo connection ended with an error");
            }
        });
    }
}

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

/// Answers one request.
async fn handle(mut req: Request<Incoming>, identity: &Identity) -> Response<EchoBody> {
    if is_websocket_upgrade(&req) {
        return websocket_upgrade(&mut req);
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

    if let Some(ms) = params.sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = params.status.unwrap_or(StatusCode::OK);
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        // These statuses carry neither a body nor a Content-Length.
        let mut resp = Response::new(EchoBody::Full(None));
        *resp.status_mut() = status;
        return resp;
    }

    if let Some(len) = params.bytes {
        let mut resp = Response::new(EchoBody::Repeat { remaining: len });
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return resp;
    }

    let host = parts
        .headers
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let path =
        parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| parts.uri.path().to_owned());
    let answer = serde_json::json!({
        "service": identity.service,
        "pod": identity.pod,
        "method": parts.method.as_str(),
        "path": path,
        "host": host,
        "proto": proto_name(parts.version),
        "headers": headers_json(&parts.headers),
        "body_bytes": body_bytes,
    });
    let mut text = answer.to_string();
    text.push('\n');
    let mut resp = json_response(text);
    *resp.status_mut() = status;
    if parts.method == Method::HEAD {
        // Keep the Content-Length of the GET answer, send no body.
        *resp.body_mut() = EchoBody::Full(None);
    }
    resp
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

/// Request headers as a JSON object: lower-case names, repeated values joined with `", "`.
fn headers_json(headers: &HeaderMap) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        map.insert(name.as_str().to_owned(), serde_json::Value::String(joined));
    }
    serde_json::Value::Object(map)
}

/// A `200` JSON answer with its Content-Length.
fn json_response(text: String) -> Response<EchoBody> {
    let len = text.len() as u64;
    let mut resp = Response::new(EchoBody::Full(Some(Bytes::from(text))));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
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
}
