//! Accepting connections and serving HTTP/1.1 and HTTP/2 on them, in clear or over TLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::h1_guard::{H1Guard, RefusalSignal};
use crate::h2_guard::H2Guard;
use crate::headers::Downstream;
use crate::http1::Served;
use crate::logged::{Logged, Pending, RouteFacts};
use crate::passthrough::Replay;
use crate::proxy_protocol;
use crate::validate;
use crate::DataPlane;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Which scheme a listener speaks; ends up in `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (HTTP/1.1, or HTTP/2 with prior knowledge).
    Http,
    /// TLS, HTTP/2 or HTTP/1.1 by ALPN.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Serves connections from `listener` until the task is dropped; with `tls`, terminates TLS
/// first (except for connections to TLS passthrough hosts, relayed untouched). Each
/// connection runs in its own task. These are the Ingress listeners.
pub async fn serve(listener: TcpListener, plane: Arc<DataPlane>, tls: Option<Arc<ServerConfig>>) {
    serve_on(listener, plane, tls, None).await
}

/// [`serve`] for the Ingress listeners (`frontend` `None`), or for the Gateway frontend at
/// address `frontend`: its requests are routed by that frontend's listeners only.
pub(crate) async fn serve_on(
    listener: TcpListener,
    plane: Arc<DataPlane>,
    tls: Option<Arc<ServerConfig>>,
    frontend: Option<SocketAddr>,
) {
    let scheme = if tls.is_some() { Scheme::Https } else { Scheme::Http };
    let acceptor = tls.map(TlsAcceptor::from);
    let http = Arc::new(HttpServers::new(&plane.options));
    let stopping = plane.drain.stopping();
    tokio::pin!(stopping);
    loop {
        let accepted = tokio::select! {
            // Shutdown first: once it has begun, no waiting connection is accepted.
            biased;
            () = &mut stopping => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let ticket = match plane.admission.admit(client.ip()) {
            Ok(ticket) => ticket,
            Err(over) => {
                plane.metrics.connection_refused(over.as_str());
                tracing::debug!(%client, cap = over.as_str(), "connection refused: cap reached");
                continue;
            }
        };
        let conn_plane = plane.clone();
        let acceptor = acceptor.clone();
        let http = http.clone();
        plane.drain.spawn(async move {
            let _open = conn_plane.metrics.connection_opened(scheme);
            let _ticket = ticket;
            connection(stream, client, (scheme, frontend), conn_plane, acceptor, &http).await;
        });
    }
}

async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    (scheme, frontend): (Scheme, Option<SocketAddr>),
    plane: Arc<DataPlane>,
    acceptor: Option<TlsAcceptor>,
    http: &HttpServers,
) {
    let _ = stream.set_nodelay(true);
    let port = stream.local_addr().map_or(0, |a| a.port());
    let mut stream = stream;
    let downstream = if plane.snapshot.load().client_trust.proxy_protocol {
        let timeout = plane.options.handshake_timeout;
        match tokio::time::timeout(timeout, proxy_protocol::read_header(&mut stream)).await {
            Ok(Ok(Some((source, destination)))) => {
                // As ingress-nginx: a connection the balancer took on port 443 is https.
                let scheme = if destination.port() == 443 { Scheme::Https } else { scheme };
                Downstream::new(source, scheme, destination.port())
            }
            Ok(Ok(None)) => Downstream::new(client, scheme, port),
            Ok(Err(e)) => return tracing::debug!(%client, error = %e, "PROXY protocol header refused"),
            Err(_) => return tracing::debug!(%client, "no PROXY protocol header in time"),
        }
    } else {
        Downstream::new(client, scheme, port)
    };
    let mut downstream = downstream;
    downstream.frontend = frontend;
    match acceptor {
        None => serve_http1(stream, Arc::new(downstream), plane, http).await,
        // Boxed: the handshake's state is large, and a plain connection need not carry it.
        Some(acceptor) => Box::pin(serve_tls(stream, client, frontend, downstream, plane, acceptor, http)).await,
    }
}

/// A connection to a TLS listener: relayed (TLS passthrough) or terminated, then served.
async fn serve_tls(
    stream: TcpStream,
    client: SocketAddr,
    frontend: Option<SocketAddr>,
    mut downstream: Downstream,
    plane: Arc<DataPlane>,
    acceptor: TlsAcceptor,
    http: &HttpServers,
) {
    let deadline = tokio::time::Instant::now() + plane.options.handshake_timeout;
    // TLS passthrough hosts of Ingresses are relayed here; everything else is terminated.
    let stream = match frontend {
        None => match crate::passthrough::relay_or_terminate(stream, client, &plane, deadline).await {
            Some(stream) => stream,
            None => return,
        },
        Some(_) => crate::passthrough::Replay::new(Vec::new(), stream),
    };
    let handshake = match frontend {
        None => tokio::time::timeout_at(deadline, handshake(&plane, &acceptor, stream, &mut downstream)).await,
        Some(_) => {
            let accepted = tokio::time::timeout_at(deadline, acceptor.accept(stream)).await;
            if let Ok(Ok(tls)) = &accepted {
                downstream.sni = tls.get_ref().1.server_name().map(Into::into);
            }
            accepted
        }
    };
    let downstream = Arc::new(downstream);
    match handshake {
        Ok(Ok(tls)) => {
            let alpn = tls.get_ref().1.alpn_protocol();
            if alpn == Some(sluice_config::ACME_TLS_ALPN_PROTOCOL) {
                // A TLS-ALPN-01 validation: the handshake was the answer (RFC 8737 §3).
                let mut tls = tls;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                return;
            }
            if only_http2(alpn) {
                serve_http(H2Guard::new(tls), downstream, plane, http, Protocols::Http2).await
            } else {
                serve_http1(tls, downstream, plane, http).await
            }
        }
        Ok(Err(e)) => tracing::debug!(%client, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
    }
}

/// Serves a connection that speaks HTTP/1.x (or, in clear, HTTP/2 with prior knowledge).
/// This is where a connection's path is chosen: on the Ingress listeners the proxy-native
/// path ([`crate::http1`]) serves it while its requests are ones it forwards itself; the
/// general path (hyper behind the request-head guard) serves what it hands over, and every
/// connection of a Gateway frontend.
async fn serve_http1<IO>(io: IO, downstream: Arc<Downstream>, plane: Arc<DataPlane>, http: &HttpServers)
where
    IO: AsyncRead + AsyncWrite + crate::http1::WaitReadable + Unpin + Send + 'static,
{
    let io = match downstream.frontend {
        // Tracing on: every request takes the general path, where its span is made.
        None if plane.options.tracing.is_some() => Replay::new(Vec::new(), io),
        None => match crate::http1::serve(io, &downstream, &plane).await {
            Served::Done => return,
            Served::Rest(io) => io,
        },
        Some(_) => Replay::new(Vec::new(), io),
    };
    let (guarded, refused) = H1Guard::new(H2Guard::new(io), plane.options.header_timeout);
    // Boxed: hyper's connection state is large, and the native path's idle connections
    // need not carry it.
    Box::pin(serve_http(guarded, downstream, plane, http, Protocols::Any(refused))).await
}

/// The TLS handshake: with the listener's configuration, or — when the ClientHello names a
/// host that asks for client certificates — with that host's, recording what the
/// handshake established in `downstream`.
async fn handshake<IO>(
    plane: &DataPlane,
    acceptor: &TlsAcceptor,
    stream: IO,
    downstream: &mut Downstream,
) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let table = plane.snapshot.load().client_auth.clone();
    if table.is_empty() {
        return acceptor.accept(stream).await;
    }
    let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let policy = start.client_hello().server_name().and_then(|sni| table.lookup(sni).cloned());
    let Some(policy) = policy else {
        return start.into_stream(acceptor.config().clone()).await;
    };
    let config = plane.policy_configs.get(&policy).map_err(std::io::Error::other)?;
    let tls = start.into_stream(config).await?;
    let facts = crate::client_cert::TlsFacts::new(&policy, tls.get_ref().1.peer_certificates());
    downstream.tls = Some(Arc::new(facts));
    Ok(tls)
}

/// HTTP/2 limits against abuse, set deliberately (docs/hardening.md): streams open at once
/// per connection (nginx's `http2_max_concurrent_streams` is 128)…
const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// …the decoded size of one header block, which also bounds CONTINUATION floods and HPACK
/// bombs (nginx allows 4 × 8 KiB; hyper's default is 16 MiB)…
const H2_MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// …streams a client may reset before Sluice has answered them (rapid reset,
/// CVE-2023-44487): past this the connection is closed with GOAWAY…
const H2_MAX_PENDING_RESETS: usize = 20;
/// …streams Sluice may have to reset for a client's protocol errors before closing the
/// connection (the 2024 "MadeYouReset" class)…
const H2_MAX_ERROR_RESETS: usize = 256;
/// …and a PING every 30 s on idle connections, closing those that do not answer in 10 s.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Flow control, measured against smaller and larger windows (bench/RESULTS.md, issue 16):
/// 1 MiB per stream and per connection. 256 KiB uploads over HTTP/2 ran 19 % slower with the
/// RFC's 64 KiB (HAProxy's default) and no faster with 16 MiB or hyper's adaptive window;
/// small answers did not move (±2 %).
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Response bytes buffered per stream before its writer waits (hyper's default; 64 KiB made
/// no difference to small answers).
const H2_SEND_BUFFER: usize = 400 * 1024;

/// The HTTP servers a connection may get: both protocols in cleartext (HTTP/1.1, or HTTP/2
/// with prior knowledge), or over TLS what ALPN chose: after `h2` only HTTP/2 is spoken
/// (RFC 9113 §3.3).
struct HttpServers {
    any: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

/// Which protocols a connection may speak.
enum Protocols {
    /// HTTP/1.1 (with upgrades) or HTTP/2, as the client's first bytes say; HTTP/1.1 heads
    /// pass the [`H1Guard`], which raises the signal when it refuses one.
    Any(RefusalSignal),
    /// HTTP/2 only (ALPN `h2`).
    Http2,
}

impl HttpServers {
    fn new(options: &crate::ProxyOptions) -> Self {
        let mut any = auto::Builder::new(TokioExecutor::new());
        any.http1().timer(TokioTimer::new()).header_read_timeout(Some(options.header_timeout));
        any.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_header_list_size(H2_MAX_HEADER_LIST_SIZE)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_ERROR_RESETS)
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_send_buf_size(H2_SEND_BUFFER);
        Self { http2: any.clone().http2_only(), any }
    }
}

/// True when TLS's ALPN chose `h2`: then only HTTP/2 may be spoken.
fn only_http2(alpn: Option<&[u8]>) -> bool {
    alpn == Some(b"h2")
}

async fn serve_http<IO>(
    io: IO,
    downstream: Arc<Downstream>,
    plane: Arc<DataPlane>,
    http: &HttpServers,
    protocols: Protocols,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stopping = plane.drain.stopping();
    let client = downstream.client;
    let service = service_fn(move |request: Request<Incoming>| {
        let plane = plane.clone();
        let downstream = downstream.clone();
        // The guard stops reading HTTP/1.1 after a WebSocket upgrade request (what follows
        // may be frames): unless it is accepted, the connection must end with the answer.
        let tunnel_asked = request.version() == Version::HTTP_11 && validate::is_websocket_upgrade(request.headers());
        let pending = plane.options.access_log.enabled().then(|| Pending::of(&request, downstream.client));
        async move {
            // Boxed: the request's state machine is large, and hyper moves the future it is
            // given (into a spawned task per HTTP/2 stream): one allocation instead of
            // copying kilobytes on every move.
            let mut response = Box::pin(plane.handle(&downstream, request)).await;
            if tunnel_asked && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            let logged = pending.and_then(|pending| {
                let served = response.extensions_mut().remove::<RouteFacts>();
                let entry = pending.answered(response.status().as_u16(), served)?;
                Some((entry, plane.options.access_log.clone()))
            });
            Ok::<_, Infallible>(response.map(|body| Logged::new(body, logged)))
        }
    });
    let io = TokioIo::new(io);
    // hyper-util's upgrade-capable server detects the protocol from the first bytes whatever
    // the builder says; the plain one keeps to HTTP/2 (which has no upgrades to lose).
    let result = match protocols {
        Protocols::Any(refused) => {
            let connection = http.any.serve_connection_with_upgrades(io, service);
            // A refused head also ends the connection once the requests before it are done.
            let stop = async move {
                tokio::select! {
                    () = stopping => {}
                    () = refused.raised() => {}
                }
            };
            until_drained(connection, stop, |c| c.graceful_shutdown()).await
        }
        Protocols::Http2 => {
            let connection = http.http2.serve_connection(io, service);
            until_drained(connection, stopping, |c| c.graceful_shutdown()).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}

/// Runs `connection` to its end; once shutdown begins, lets it finish the request in flight
/// and close (HTTP/2: GOAWAY).
async fn until_drained<C, T>(
    connection: C,
    stopping: impl std::future::Future<Output = ()>,
    shutdown: impl FnOnce(std::pin::Pin<&mut C>),
) -> T
where
    C: std::future::Future<Output = T>,
{
    tokio::pin!(connection, stopping);
    tokio::select! {
        result = connection.as_mut() => result,
        () = &mut stopping => {
            shutdown(connection.as_mut());
            connection.await
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `make` returns, without running it.
    fn future_size<A, F: std::future::Future, C: FnOnce(A) -> F>(_: &C) -> usize {
        std::mem::size_of::<F>()
    }

    type Args = (TcpStream, SocketAddr, Arc<DataPlane>, &'static HttpServers, Arc<Downstream>);

    /// Every open connection is a task holding its future: what an idle HTTP/1.1 connection
    /// costs in memory (bench/idle-conns.sh) is mostly this. The TLS handshake and hyper's
    /// connection state are boxed away from it, and the request parser's room for header
    /// lines is never part of it. (Unoptimised builds lay futures out larger than release
    /// builds do; the bound holds for both.)
    #[test]
    fn an_idle_plain_connection_carries_a_small_future() {
        let plain = |(stream, client, plane, http, _): Args| async move {
            connection(stream, client, (Scheme::Http, None), plane, None, http).await
        };
        let size = future_size(&plain);
        assert!(size <= 3 * 1024, "a plain connection's future takes {size} bytes");
    }

    /// Each request of the general path moves its future into a box (hyper moves it
    /// otherwise): its size is copied per request.
    #[test]
    fn a_general_request_future_stays_bounded() {
        type Handled = (Arc<DataPlane>, Arc<Downstream>, Request<Incoming>);
        let handle = |(plane, downstream, request): Handled| async move { plane.handle(&downstream, request).await };
        let size = future_size(&handle);
        assert!(size <= 8 * 1024, "a request's future takes {size} bytes");
    }
}
