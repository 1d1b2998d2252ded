//! What the access log needs from the general path: the request's facts taken before it is
//! handled, what routing and the backend said ([`RouteFacts`], carried in the response's
//! extensions), and a response body that counts what it sends and writes the line when it
//! ends. Nothing here runs unless the access log is on. (The proxy-native path's entries are
//! in `http1/log_entry.rs`.)

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, Request, Version};
use hyper::body::{Body, Frame, SizeHint};
use sluice_access_log::{AccessLog, Entry};

/// What the general path learnt while handling a request, for its log line and its span.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteFacts {
    /// The client after believed forwarding headers.
    pub client: Option<SocketAddr>,
    pub route: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    pub upstream: Option<SocketAddr>,
    pub upstream_status: Option<u16>,
    pub upstream_time: Option<Duration>,
    pub request_id: String,
    /// The route's `enable-access-log`.
    pub logged: bool,
}

/// The attempt a request was last sent on, recorded by `forward`.
#[derive(Debug, Default)]
pub(crate) struct Tried {
    pub upstream: Option<SocketAddr>,
    pub status: Option<u16>,
    pub time: Option<Duration>,
    pub request_id: String,
}

/// The protocol as nginx's `$server_protocol` writes it.
pub(crate) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A request's facts before it is handled, owned: the answer's body may outlive the request.
pub(crate) struct Pending {
    time: SystemTime,
    started: Instant,
    client: SocketAddr,
    method: http::Method,
    host: Bytes,
    target: String,
    protocol: &'static str,
    bytes_in: u64,
    user_agent: Option<http::HeaderValue>,
    referer: Option<http::HeaderValue>,
    status: u16,
    bytes_out: u64,
    served: RouteFacts,
}

impl Pending {
    /// Takes what the log shows of `request` from `client`.
    pub(crate) fn of<B: Body>(request: &Request<B>, client: SocketAddr) -> Self {
        let headers = request.headers();
        let host = match request.uri().authority() {
            Some(authority) => Bytes::copy_from_slice(authority.as_str().as_bytes()),
            None => headers.get(header::HOST).map(|v| Bytes::copy_from_slice(v.as_bytes())).unwrap_or_default(),
        };
        let target = request.uri().path_and_query().map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let head_bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        let body = request.body().size_hint().exact().unwrap_or(0);
        let bytes_in = (request.method().as_str().len() + target.len() + 12 + head_bytes) as u64 + body;
        Self {
            time: SystemTime::now(),
            started: Instant::now(),
            client,
            method: request.method().clone(),
            host,
            target,
            protocol: protocol(request.version()),
            bytes_in,
            user_agent: headers.get(header::USER_AGENT).cloned(),
            referer: headers.get(header::REFERER).cloned(),
            status: 0,
            bytes_out: 0,
            served: RouteFacts::default(),
        }
    }

    /// Completes the facts with the answer's; `None` when the route asked for no log.
    pub(crate) fn answered(mut self, status: u16, served: Option<RouteFacts>) -> Option<Box<Pending>> {
        self.status = status;
        if let Some(served) = served {
            if !served.logged {
                return None;
            }
            self.served = served;
        }
        Some(Box::new(self))
    }

    fn entry(&self) -> Entry<'_> {
        let served = &self.served;
        Entry {
            time: Some(self.time),
            client: served.client.or(Some(self.client)),
            method: self.method.as_str().as_bytes(),
            host: &self.host,
            target: self.target.as_bytes(),
            protocol: self.protocol,
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration: self.started.elapsed(),
            upstream: served.upstream,
            upstream_status: served.upstream_status,
            upstream_time: served.upstream_time,
            request_id: served.request_id.as_bytes(),
            route: served.route.as_deref(),
            service: served.service.as_deref(),
            user_agent: self.user_agent.as_ref().map_or(b"", |v| v.as_bytes()),
            referer: self.referer.as_ref().map_or(b"", |v| v.as_bytes()),
        }
    }
}

/// A response body that counts the bytes it yields and writes the log line when it is done
/// (or dropped: a client that went away is logged too).
pub(crate) struct Logged<B> {
    inner: B,
    pending: Option<(Box<Pending>, AccessLog)>,
}

impl<B> Logged<B> {
    /// `inner`, logged as `pending` says to `log` (nothing when `pending` is `None`).
    pub(crate) fn new(inner: B, pending: Option<(Box<Pending>, AccessLog)>) -> Self {
        Self { inner, pending }
    }

    fn finish(&mut self) {
        if let Some((pending, log)) = self.pending.take() {
            log.write(&pending.entry());
        }
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Logged<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some((pending, _))) = (frame.data_ref(), self.pending.as_mut()) {
                    pending.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
