//! Pooled connections to backends: HTTP/1.1 keep-alive, or HTTP/2 cleartext.
//!
//! Built on hyper's connection-level API rather than a general-purpose client: a request
//! takes the most recently used ready connection to its endpoint (one short lock, no task
//! spawned per request), and a connection goes back to the pool as soon as its response
//! headers arrive; it becomes ready again by itself once the response body is done.

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
use sluice_config::UpstreamProtocol;

use crate::mirror::{MirrorBody, Teed};
use tokio::net::TcpStream;

/// A request body towards a backend: the client's, streamed within the route's size limit
/// (and copied to a mirror), or empty for a retry of a request that had none, or a mirror's
/// copy.
pub(crate) type UpstreamBody = Either<Limited<Teed>, Either<Empty<Bytes>, MirrorBody>>;

/// Most idle HTTP/1.1 connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 512;

/// Why a request could not be sent.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made to the endpoint.
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

/// Connections to every endpoint, by protocol.
#[derive(Debug, Default)]
pub(crate) struct Upstream {
    http1: Mutex<HashMap<SocketAddr, Vec<http1::SendRequest<UpstreamBody>>>>,
    h2c: Mutex<HashMap<SocketAddr, http2::SendRequest<UpstreamBody>>>,
}

impl Upstream {
    /// Sends `request` to `endpoint` over a pooled or new connection (made within
    /// `connect_timeout`).
    pub(crate) async fn send(
        &self,
        protocol: UpstreamProtocol,
        endpoint: SocketAddr,
        connect_timeout: Duration,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        match protocol {
            UpstreamProtocol::Http1 => self.send_http1(endpoint, connect_timeout, request).await,
            UpstreamProtocol::H2c => self.send_h2c(endpoint, connect_timeout, request).await,
        }
    }

    async fn send_http1(
        &self,
        endpoint: SocketAddr,
        connect_timeout: Duration,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        // A pooled connection the backend closed meanwhile hands the request back unsent.
        while let Some(mut sender) = self.idle_http1(endpoint) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.return_http1(endpoint, sender);
                    return Ok(response);
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Request(failed.into_error())),
                },
            }
        }
        let io = self.connect(endpoint, connect_timeout).await?;
        let (mut sender, connection) = http1::handshake(io).await.map_err(SendError::Request)?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%endpoint, error = %e, "upstream connection ended with an error");
            }
        });
        let response = sender.send_request(request).await.map_err(SendError::Request)?;
        self.return_http1(endpoint, sender);
        Ok(response)
    }

    /// The most recently used ready connection to `endpoint`; closed ones are dropped, busy
    /// ones (a response body still streaming) stay for later.
    fn idle_http1(&self, endpoint: SocketAddr) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut pool = self.http1.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let idle = pool.get_mut(&endpoint)?;
        idle.retain(|sender| !sender.is_closed());
        let ready = idle.iter().rposition(http1::SendRequest::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    fn return_http1(&self, endpoint: SocketAddr, sender: http1::SendRequest<UpstreamBody>) {
        let mut pool = self.http1.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let idle = pool.entry(endpoint).or_default();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push(sender);
        }
    }

    async fn send_h2c(
        &self,
        endpoint: SocketAddr,
        connect_timeout: Duration,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let pooled = {
            let pool = self.h2c.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            pool.get(&endpoint).filter(|sender| !sender.is_closed()).cloned()
        };
        let mut sender = match pooled {
            Some(sender) => sender,
            None => {
                let io = self.connect(endpoint, connect_timeout).await?;
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(SendError::Request)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%endpoint, error = %e, "upstream h2c connection ended with an error");
                    }
                });
                let mut pool = self.h2c.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                pool.insert(endpoint, sender.clone());
                sender
            }
        };
        sender.ready().await.map_err(SendError::Request)?;
        sender.send_request(request).await.map_err(SendError::Request)
    }

    async fn connect(&self, endpoint: SocketAddr, timeout: Duration) -> Result<TokioIo<TcpStream>, SendError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint))
            .await
            .map_err(|_| SendError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(SendError::Connect)?;
        // Small requests and responses go out at once rather than waiting on Nagle.
        let _ = stream.set_nodelay(true);
        Ok(TokioIo::new(stream))
    }
}
