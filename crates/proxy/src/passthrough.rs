//! TLS passthrough (`ssl-passthrough`): on the HTTPS listener, a connection whose
//! ClientHello names a passthrough host is relayed as raw TCP, untouched, to that host's
//! backend, which terminates TLS itself; every other connection is terminated as usual.
//! Gateway TLS listeners in Passthrough mode relay every connection, to the backend of the
//! TLSRoute its SNI selects ([`serve_frontend`]).
//!
//! The ClientHello is read into a buffer before any TLS library sees it; the buffered bytes
//! are then either written to the backend first, or replayed to rustls ([`Replay`]). When
//! no host is passed through (the usual case), nothing is read ahead.

pub(crate) mod client_hello;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use sluice_config::Backend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::DataPlane;
use client_hello::{Hello, MAX_HELLO_BYTES};

/// How long connecting to a passthrough backend may take (ingress-nginx's default
/// `proxy-connect-timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Decides where a connection accepted on the HTTPS listener goes: relayed to a
/// passthrough backend (then this returns `None` once the relay ends, as it does when the
/// client goes away before sending a ClientHello), or returned to be terminated, with the
/// bytes read so far replayed first. `deadline` bounds the wait for the ClientHello.
pub(crate) async fn relay_or_terminate(
    mut stream: TcpStream,
    client: SocketAddr,
    plane: &DataPlane,
    deadline: Instant,
) -> Option<Replay<TcpStream>> {
    if plane.snapshot.load().passthrough.is_empty() {
        return Some(Replay::new(Vec::new(), stream));
    }
    let (hello, sni) = match tokio::time::timeout_at(deadline, read_client_hello(&mut stream)).await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            tracing::debug!(%client, error = %e, "reading the ClientHello failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%client, "TLS handshake timed out (no ClientHello)");
            return None;
        }
    };
    // The snapshot current now, after the wait.
    let backend = sni.as_deref().and_then(|sni| {
        let snapshot = plane.snapshot.load();
        let id = snapshot.passthrough.lookup(sni)?;
        snapshot.backend(id).cloned()
    });
    match backend {
        Some(backend) => {
            relay(stream, hello, backend, client).await;
            None
        }
        None => Some(Replay::new(hello, stream)),
    }
}

/// Accepts connections on a Gateway's TLS passthrough frontend at `address` until shutdown:
/// each is relayed to a backend of the TLSRoute its ClientHello's SNI selects, or closed
/// when none does.
///
/// With `terminate`, TLS is terminated first (TLS listeners in Terminate mode): the SNI of
/// the handshake selects the TLSRoute, and the decrypted bytes are relayed to its backend,
/// over TLS again when the backend is reached so (BackendTLSPolicy).
pub(crate) async fn serve_frontend(
    listener: tokio::net::TcpListener,
    plane: Arc<DataPlane>,
    address: SocketAddr,
    terminate: Option<tokio_rustls::TlsAcceptor>,
) {
    let stopping = plane.drain.stopping();
    tokio::pin!(stopping);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stopping => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, client)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(ticket) = plane.admission.admit(client.ip()) else {
            continue;
        };
        let conn_plane = plane.clone();
        if let Some(acceptor) = terminate.clone() {
            plane.drain.spawn(async move {
                let _ticket = ticket;
                terminated(stream, client, acceptor, &conn_plane, address).await;
            });
            continue;
        }
        plane.drain.spawn(async move {
            let _ticket = ticket;
            let deadline = Instant::now() + conn_plane.options.handshake_timeout;
            let Ok(Ok((hello, Some(sni)))) = tokio::time::timeout_at(deadline, read_client_hello(&mut stream)).await
            else {
                return tracing::debug!(%client, "no ClientHello with a server name on a TLS passthrough listener");
            };
            let backend = {
                let snapshot = conn_plane.snapshot.load();
                let frontend = snapshot.gateways.get(&address);
                let id = frontend.and_then(|f| f.route_sni(&sni)).and_then(|r| r.forward()?.pick_backend());
                id.and_then(|id| snapshot.backend(id).cloned())
            };
            match backend {
                Some(backend) => relay(stream, hello, backend, client).await,
                None => tracing::debug!(%client, %sni, "no TLSRoute for this server name; closing"),
            }
        });
    }
}

/// One connection to a terminating TLS frontend: handshake, then the bytes inside relayed
/// to an endpoint of the TLSRoute's backend the SNI selects.
async fn terminated(
    stream: TcpStream,
    client: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    plane: &DataPlane,
    address: SocketAddr,
) {
    let deadline = Instant::now() + plane.options.handshake_timeout;
    let mut tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        _ => return tracing::debug!(%client, "TLS handshake failed or timed out on a TLS listener"),
    };
    let sni = tls.get_ref().1.server_name().unwrap_or_default().to_owned();
    let backend = {
        let snapshot = plane.snapshot.load();
        let frontend = snapshot.gateways.get(&address);
        let id = frontend.and_then(|f| f.route_sni(&sni)).and_then(|r| r.forward()?.pick_backend());
        id.and_then(|id| snapshot.backend(id).cloned())
    };
    let Some(backend) = backend else {
        return tracing::debug!(%client, %sni, "no TLSRoute for this server name; closing");
    };
    let Some(endpoint) = backend.pick() else {
        return tracing::debug!(%client, backend = %backend.label, "no ready endpoint; closing");
    };
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint)).await;
    let Ok(Ok(upstream)) = connected else {
        return tracing::debug!(%client, %endpoint, "connecting to the TLSRoute backend failed");
    };
    let _ = upstream.set_nodelay(true);
    let copied = match &backend.transport {
        sluice_config::Transport::Tls(settings) => {
            let connector = tokio_rustls::TlsConnector::from(settings.config().clone());
            match connector.connect(settings.server_name(endpoint), upstream).await {
                Ok(mut upstream) => tokio::io::copy_bidirectional(&mut tls, &mut upstream).await,
                Err(e) => return tracing::debug!(%client, %endpoint, error = %e, "TLS to the backend failed"),
            }
        }
        _ => {
            let mut upstream = upstream;
            tokio::io::copy_bidirectional(&mut tls, &mut upstream).await
        }
    };
    if let Err(e) = copied {
        tracing::debug!(%client, %endpoint, error = %e, "terminated TLS connection ended with an error");
    }
}

/// Reads until a whole ClientHello is buffered (or the bytes are clearly not one, or too
/// many). Returns every byte read, and the SNI when a ClientHello with one was read.
async fn read_client_hello(stream: &mut TcpStream) -> io::Result<(Vec<u8>, Option<String>)> {
    let mut buffered = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        match client_hello::parse(&buffered) {
            Hello::Complete(sni) => return Ok((buffered, sni)),
            Hello::Other => return Ok((buffered, None)),
            Hello::Incomplete if buffered.len() >= MAX_HELLO_BYTES => return Ok((buffered, None)),
            Hello::Incomplete => {}
        }
        let read = stream.read(&mut chunk).await?;
        match chunk.get(..read) {
            Some(bytes) if read > 0 => buffered.extend_from_slice(bytes),
            // The client closed early: rustls gets what there is, and fails on it.
            _ => return Ok((buffered, None)),
        }
    }
}

/// Relays `client` (whose first bytes are `hello`) to a ready endpoint of `backend`, both
/// ways, until either side closes. Each endpoint is tried once; with none reachable the
/// client connection is closed.
async fn relay(mut client: TcpStream, hello: Vec<u8>, backend: Arc<Backend>, peer: SocketAddr) {
    let mut upstream = None;
    for _ in 0..backend.endpoints.len() {
        let Some(endpoint) = backend.pick() else {
            break;
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint)).await {
            Ok(Ok(stream)) => {
                upstream = Some((endpoint, stream));
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.label, %endpoint, error = %e, "passthrough connect failed")
            }
            Err(_) => tracing::debug!(backend = %backend.label, %endpoint, "passthrough connect timed out"),
        }
    }
    let Some((endpoint, mut upstream)) = upstream else {
        tracing::debug!(%peer, backend = %backend.label, "no reachable endpoint for TLS passthrough; closing");
        return;
    };
    let _ = upstream.set_nodelay(true);
    if let Err(e) = upstream.write_all(&hello).await {
        tracing::debug!(%peer, %endpoint, error = %e, "passthrough write failed");
        return;
    }
    drop(hello);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((sent, received)) => tracing::debug!(%peer, %endpoint, sent, received, "passthrough connection closed"),
        Err(e) => tracing::debug!(%peer, %endpoint, error = %e, "passthrough connection ended with an error"),
    }
}

/// A stream that first yields bytes already read from it, then reads on: how a connection
/// whose ClientHello was looked at still reaches rustls whole.
#[derive(Debug)]
pub(crate) struct Replay<S> {
    head: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S> Replay<S> {
    /// `inner`, with `head` (bytes already read from it) to be read again first.
    pub(crate) fn new(head: Vec<u8>, inner: S) -> Self {
        Self { head, read: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(pending) = this.head.get(this.read..).filter(|pending| !pending.is_empty()) {
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending[..n]);
            this.read += n;
            if this.read == this.head.len() {
                this.head = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replay_yields_the_head_then_the_stream() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut replay = Replay::new(b"hello ".to_vec(), reader);
        writer.write_all(b"world").await.unwrap();
        drop(writer);
        let mut small = [0u8; 4];
        replay.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hell");
        let mut rest = Vec::new();
        replay.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"o world");
    }
}
