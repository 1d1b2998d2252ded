//! Pooled connections to backends: HTTP/1.1 keep-alive or HTTP/2, in cleartext or over TLS.
//!
//! Built on hyper's connection-level API rather than a general-purpose client: a request
//! takes the most recently used ready connection to its endpoint (one short lock, no task
//! spawned per request), and a connection goes back to the pool as soon as its response
//! headers arrive; it becomes ready again by itself once the response body is done.
//! TLS connections are pooled like the others, keyed by endpoint *and* TLS setting (the
//! [`UpstreamTls`] translation built), so a connection made with one client certificate or
//! trust store is never reused for a backend that asks for another.

use foldhash::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Empty, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_config::{Transport, UpstreamTls};

use crate::mirror::{MirrorBody, Teed};
use crate::per_worker::PerWorker;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A request body towards a backend: the client's, streamed within the route's size limit
/// (and copied to a mirror), or empty for a retry of a request that had none, or a mirror's
/// copy.
pub(crate) type UpstreamBody = Either<Limited<Teed>, Either<Empty<Bytes>, MirrorBody>>;

/// Most idle HTTP/1.1 connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 512;

/// Why a request could not be sent.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made to the endpoint (including a failed TLS handshake:
    /// nothing of the request was sent).
    Connect(io::Error),
    /// The connection failed while sending or before the response headers.
    Request(hyper::Error),
}

impl SendError {
    /// True when the request failed because its body grew past the route's limit.
    pub(crate) fn body_too_large(&self) -> bool {
        let SendError::Request(e) = self else {
            return false;
        };
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            if cause.is::<LengthLimitError>() {
                return true;
            }
            source = cause.source();
        }
        false
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Request(e) => write!(f, "request: {e}"),
        }
    }
}

/// Which connections can serve a request: those to one endpoint made with one TLS setting
/// ([`UpstreamTls::id`]; 0 for cleartext).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PoolKey {
    endpoint: SocketAddr,
    tls: u64,
}

/// Idle HTTP/1.1 connections of one worker, by endpoint and TLS setting.
type Http1Pool = Mutex<HashMap<PoolKey, Vec<http1::SendRequest<UpstreamBody>>>>;

/// Connections to every endpoint, by protocol. HTTP/1.1 connections are pooled per worker
/// thread; an HTTP/2 connection (many requests at once) is shared by all.
#[derive(Debug, Default)]
pub(crate) struct Upstream {
    http1: PerWorker<Http1Pool>,
    http2: Mutex<HashMap<PoolKey, http2::SendRequest<UpstreamBody>>>,
}

impl Upstream {
    /// Sends `request` to `endpoint` over a pooled or new connection made with `transport`
    /// (TCP connect and TLS handshake within `connect_timeout`).
    pub(crate) async fn send(
        &self,
        transport: &Transport,
        endpoint: SocketAddr,
        connect_timeout: Duration,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let tls = match transport {
            Transport::Tls(tls) => Some(&**tls),
            Transport::Http1 | Transport::H2c => None,
        };
        let key = PoolKey { endpoint, tls: tls.map_or(0, UpstreamTls::id) };
        if transport.protocol().is_http2() {
            self.send_http2(key, tls, connect_timeout, request).await
        } else {
            self.send_http1(key, tls, connect_timeout, request).await
        }
    }

    async fn send_http1(
        &self,
        key: PoolKey,
        tls: Option<&UpstreamTls>,
        connect_timeout: Duration,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        // A pooled connection the backend closed meanwhile hands the request back unsent.
        while let Some(mut sender) = self.idle_http1(key) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.return_http1(key, sender);
                    return Ok(response);
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Request(failed.into_error())),
                },
            }
        }
        // Boxed: connecting (a TLS handshake) is rare and its state large; every request's
        // future would carry it inline.
        let mut sender = Box::pin(async {
            match connect(key.endpoint, tls, connect_timeout).await? {
                Stream::Plain(io) => handshake_http1(io, key.endpoint).await,
                Stream::Tls(io) => handshake_http1(io, key.endpoint).await,
            }
        })
        .await?;
        let response = sender.send_request(request).await.map_err(SendError::Request)?;
        self.return_http1(key, sender);
        Ok(response)
    }

    /// The most recently used ready connection of `key`; closed ones are dropped, busy
    /// ones (a response body still streaming) stay for later.
    fn idle_http1(&self, key: PoolKey) -> Option<http1::SendRequest<UpstreamBody>> {
        self.http1.local_first().find_map(|share| {
            let mut pool = share.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let idle = pool.get_mut(&key)?;
            idle.retain(|sender| !sender.is_closed());
            if idle.is_empty() {
                // Also forgets pools of TLS settings no backend uses any more.
                pool.remove(&key);
                return None;
            }
            let ready = idle.iter().rposition(http1::SendRequest::is_ready)?;
            Some(idle.swap_remove(ready))
        })
    }

    fn return_http1(&self, key: PoolKey, sender: http1::SendRequest<UpstreamBody>) {
        let mut pool = self.http1.local().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let idle = pool.entry(key).or_default();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push(sender);
        }
    }

    async fn send_http2(
        &self,
        key: PoolKey,
        tls: Option<&UpstreamTls>,
        connect_timeout: Duration,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let pooled = {
            let pool = self.http2.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            pool.get(&key).filter(|sender| !sender.is_closed()).cloned()
        };
        let mut sender = match pooled {
            Some(sender) => sender,
            None => {
                // Boxed, as for HTTP/1.1.
                let sender = Box::pin(async {
                    match connect(key.endpoint, tls, connect_timeout).await? {
                        Stream::Plain(io) => handshake_http2(io, key.endpoint).await,
                        Stream::Tls(io) => handshake_http2(io, key.endpoint).await,
                    }
                })
                .await?;
                let mut pool = self.http2.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                pool.retain(|_, sender| !sender.is_closed());
                pool.insert(key, sender.clone());
                sender
            }
        };
        sender.ready().await.map_err(SendError::Request)?;
        sender.send_request(request).await.map_err(SendError::Request)
    }
}

/// A new connection to a backend, before HTTP.
enum Stream {
    /// Cleartext TCP.
    Plain(TokioIo<TcpStream>),
    /// TLS, handshake done (boxed: a rustls connection is large).
    Tls(TokioIo<Box<tokio_rustls::client::TlsStream<TcpStream>>>),
}

/// Connects to `endpoint` and, with `tls`, completes the TLS handshake, all within `timeout`.
async fn connect(endpoint: SocketAddr, tls: Option<&UpstreamTls>, timeout: Duration) -> Result<Stream, SendError> {
    let connecting = async {
        let stream = connect_tcp(endpoint).await.map_err(SendError::Connect)?;
        let Some(tls) = tls else {
            return Ok(Stream::Plain(TokioIo::new(stream)));
        };
        let connector = TlsConnector::from(tls.config().clone());
        match connector.connect(tls.server_name(endpoint), stream).await {
            Ok(stream) => Ok(Stream::Tls(TokioIo::new(Box::new(stream)))),
            Err(e) => Err(SendError::Connect(io::Error::new(e.kind(), format!("TLS handshake: {e}")))),
        }
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| SendError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
}

/// A TCP connection to `endpoint` (no timeout: callers set theirs).
pub(crate) async fn connect_tcp(endpoint: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(endpoint).await?;
    // Small requests and responses go out at once rather than waiting on Nagle.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// HTTP/1.1 on a new connection, driven by its own task.
async fn handshake_http1<IO>(io: IO, endpoint: SocketAddr) -> Result<http1::SendRequest<UpstreamBody>, SendError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(io).await.map_err(SendError::Request)?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(%endpoint, error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// HTTP/2 on a new connection, driven by its own task.
async fn handshake_http2<IO>(io: IO, endpoint: SocketAddr) -> Result<http2::SendRequest<UpstreamBody>, SendError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .map_err(SendError::Request)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%endpoint, error = %e, "upstream HTTP/2 connection ended with an error");
        }
    });
    Ok(sender)
}

/// The address of a URL's authority (a mirror target, an auth service): an IP literal, or
/// a name looked up.
pub(crate) async fn resolve(authority: &http::uri::Authority, default_port: u16) -> Option<SocketAddr> {
    let port = authority.port_u16().unwrap_or(default_port);
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Some(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port)).await.ok()?.next()
}
