//! Accepting connections and serving HTTP/1.1 and HTTP/2 on them, in clear or over TLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::headers::Downstream;
use crate::proxy_protocol;
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
/// connection runs in its own task.
pub async fn serve(listener: TcpListener, plane: Arc<DataPlane>, tls: Option<Arc<ServerConfig>>) {
    let scheme = if tls.is_some() { Scheme::Https } else { Scheme::Http };
    let acceptor = tls.map(TlsAcceptor::from);
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(Some(plane.options.header_timeout));
    http.http2().timer(TokioTimer::new());
    let http = Arc::new(http);
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
            connection(stream, client, scheme, conn_plane, acceptor, &http).await;
        });
    }
}

async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    scheme: Scheme,
    plane: Arc<DataPlane>,
    acceptor: Option<TlsAcceptor>,
    http: &auto::Builder<TokioExecutor>,
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
    let downstream = Arc::new(downstream);
    match acceptor {
        None => serve_http(stream, downstream, plane, http).await,
        Some(acceptor) => {
            let deadline = tokio::time::Instant::now() + plane.options.handshake_timeout;
            // TLS passthrough hosts are relayed here; everything else is terminated.
            let Some(stream) = crate::passthrough::relay_or_terminate(stream, client, &plane, deadline).await else {
                return;
            };
            match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_http(tls, downstream, plane, http).await,
                Ok(Err(e)) => tracing::debug!(%client, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<IO>(io: IO, downstream: Arc<Downstream>, plane: Arc<DataPlane>, http: &auto::Builder<TokioExecutor>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stopping = plane.drain.stopping();
    let client = downstream.client;
    let service = service_fn(move |request| {
        let plane = plane.clone();
        let downstream = downstream.clone();
        async move { Ok::<_, Infallible>(plane.handle(&downstream, request).await) }
    });
    let connection = http.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection, stopping);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = &mut stopping => {
            // Finish the request in flight, then close (HTTP/2: GOAWAY).
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}
