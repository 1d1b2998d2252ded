//! Request mirroring (ingress-nginx `mirror-target`, Gateway API's RequestMirror): a copy
//! of the request goes to another URL or backend from its own task, and its answer is dropped. The copy never slows or fails the
//! request itself: its body is fed from the client's body as it streams past, through a
//! bounded queue; when the mirror falls behind, its copy is abandoned (the mirror request is
//! aborted, never sent truncated as if complete).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Uri};
use http_body_util::{Either, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use sluice_config::{Mirror, MirrorTo, Snapshot, Transport, UpstreamPolicy};
use tokio::sync::mpsc;

use crate::filters::Arrival;
use crate::headers::strip_hop_by_hop;
use crate::timeouts::SendProgress;
use crate::DataPlane;

/// Where a copy is sent.
enum Destination {
    /// A host name (or address) and the scheme's default port, resolved when sending.
    Named(http::uri::Authority, u16),
    /// An endpoint of a backend.
    Endpoint(std::net::SocketAddr),
}

impl Destination {
    /// An address for an HTTP/2 `:authority` when the request has no `Host`.
    fn endpoint_hint(&self) -> std::net::SocketAddr {
        match self {
            Destination::Endpoint(endpoint) => *endpoint,
            Destination::Named(..) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }
}

/// Body chunks queued for a mirror before it is abandoned.
const QUEUE: usize = 64;

/// A piece of the client's body for the mirror; `End` says the body was complete.
#[derive(Debug)]
pub(crate) enum Chunk {
    Data(Bytes),
    End,
}

/// The client's body on its way upstream, copied to a mirror while the mirror keeps up,
/// telling `progress` what the backend has taken (for the send and read timeouts).
#[derive(Debug)]
pub(crate) struct Teed {
    inner: Incoming,
    copies: Vec<mpsc::Sender<Chunk>>,
    /// `None` when the body was complete before sending began.
    progress: Option<Arc<SendProgress>>,
}

impl Teed {
    /// `inner`, copied to each of `copies`.
    pub(crate) fn new(inner: Incoming, copies: Vec<mpsc::Sender<Chunk>>, progress: Option<Arc<SendProgress>>) -> Self {
        Self { inner, copies, progress }
    }

    fn offer(&mut self, chunk: impl Fn() -> Chunk) {
        // Full (the mirror is slow) or gone: that mirror's copy is abandoned.
        self.copies.retain(|copy| copy.try_send(chunk()).is_ok());
    }
}

impl Body for Teed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(progress) = &self.progress {
            progress.polled(&polled);
        }
        let frame = ready!(polled);
        if !self.copies.is_empty() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.offer(|| Chunk::Data(data.clone()));
                    }
                }
                None => {
                    self.offer(|| Chunk::End);
                    self.copies.clear();
                }
                Some(Err(_)) => self.copies.clear(),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The mirror's copy of the body; an error when the copy was abandoned before the end.
#[derive(Debug)]
pub(crate) struct MirrorBody {
    queue: mpsc::Receiver<Chunk>,
    complete: bool,
}

/// The mirror fell behind, or the client's body failed: the copy is incomplete.
#[derive(Debug)]
pub(crate) struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mirror copy abandoned")
    }
}

impl std::error::Error for Abandoned {}

impl Body for MirrorBody {
    type Data = Bytes;
    type Error = Abandoned;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Abandoned>>> {
        if self.complete {
            return Poll::Ready(None);
        }
        match ready!(self.queue.poll_recv(cx)) {
            Some(Chunk::Data(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(Chunk::End) => {
                self.complete = true;
                Poll::Ready(None)
            }
            None => Poll::Ready(Some(Err(Abandoned))),
        }
    }
}

impl DataPlane {
    /// Starts mirroring the request of `parts` (as it arrived) to `mirror`; returns where to
    /// copy its body, when the mirror wants it and there is one.
    pub(crate) fn start_mirror(
        self: &Arc<Self>,
        mirror: &Mirror,
        snapshot: &Snapshot,
        arrival: &Arrival<'_>,
        parts: &Parts,
        has_body: bool,
        policy: &UpstreamPolicy,
    ) -> Option<mpsc::Sender<Chunk>> {
        if !mirror.draws() {
            return None;
        }
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.headers_mut() = parts.headers.clone();
        let (mut head, ()) = head.into_parts();
        strip_hop_by_hop(&mut head.headers, false);
        let (destination, transport) = match &mirror.to {
            MirrorTo::Url { target, host, transport } => {
                let mut url = String::new();
                target.render(&arrival.facts(parts), None, &mut url);
                let target = url.parse::<Uri>().ok()?;
                let default_port = match (target.scheme(), transport) {
                    (Some(scheme), Transport::Tls(_)) if *scheme == Scheme::HTTPS => 443,
                    (Some(scheme), Transport::Http1) if *scheme == Scheme::HTTP => 80,
                    _ => return None,
                };
                head.uri = Uri::from(target.path_and_query().cloned().unwrap_or(PathAndQuery::from_static("/")));
                head.headers.insert(header::HOST, host.clone());
                (Destination::Named(target.authority()?.clone(), default_port), transport.clone())
            }
            MirrorTo::Backend(id) => {
                let backend = snapshot.backend(*id)?;
                head.uri = Uri::from(parts.uri.path_and_query().cloned().unwrap_or(PathAndQuery::from_static("/")));
                if let Ok(host) = HeaderValue::from_str(arrival.http_host) {
                    head.headers.insert(header::HOST, host);
                }
                (Destination::Endpoint(backend.pick()?), backend.transport.clone())
            }
        };
        if transport.protocol().is_http2() {
            head.version = http::Version::HTTP_2;
            head.uri = crate::forward::upstream_uri(&head, transport.protocol(), destination.endpoint_hint()).ok()?;
        }
        let (copy, body) = if mirror.body && has_body {
            let (sender, queue) = mpsc::channel(QUEUE);
            (Some(sender), Either::Right(MirrorBody { queue, complete: false }))
        } else {
            head.headers.remove(header::CONTENT_LENGTH);
            (None, Either::Left(Empty::new()))
        };
        let plane = self.clone();
        let (connect_timeout, read_timeout) = (policy.connect_timeout, policy.read_timeout);
        tokio::spawn(async move {
            let endpoint = match destination {
                Destination::Endpoint(endpoint) => endpoint,
                Destination::Named(authority, default_port) => {
                    match crate::upstream::resolve(&authority, default_port).await {
                        Some(endpoint) => endpoint,
                        None => return tracing::debug!(%authority, "mirror target does not resolve"),
                    }
                }
            };
            let request = Request::from_parts(head, Either::Right(body));
            let sent = plane.upstream.send(&transport, endpoint, connect_timeout, request);
            match tokio::time::timeout(read_timeout, sent).await {
                Ok(Ok(response)) => {
                    // Read the answer through (and drop it), so the connection can be reused.
                    let mut body = response.into_body();
                    while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {}
                }
                Ok(Err(e)) => tracing::debug!(%endpoint, error = %e, "mirror request failed"),
                Err(_) => tracing::debug!(%endpoint, "mirror request timed out"),
            }
        });
        copy
    }
}
