//! The proxy-native HTTP/1.1 path: for the common case, one task owns the client connection
//! and its backend connection, reads request heads with httparse into a reused buffer
//! (checked by the same code as the general path's guard, [`crate::validate::check_head`]),
//! writes the backend's head with the client's header lines as sent (names, case and order)
//! plus the forwarding headers, and relays bodies by their framing — no request or response
//! objects, no channel or task between client and backend.
//!
//! [`request::decide`] keeps a request here or not. A request this path does not forward
//! itself (HTTP/2 with prior knowledge, upgrades, chunked request bodies, routes with
//! filters, conditions, access rules or error pages, TLS or HTTP/2 backends, anything the
//! general path refuses) hands the connection, with every byte read and not yet consumed,
//! to the general path (hyper), which serves it and the rest of the connection.

mod buffer;
mod exchange;
mod log_entry;
mod pool;
mod request;
mod response;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::h1_guard::answer as refusal_answer;
use crate::h1_guard::framing::{head_slots, is_preface, leading_empty_lines, parse_head, Head};
use crate::headers::Downstream;
use crate::passthrough::Replay;
use crate::validate::{BodyFraming, Refusal};
use crate::DataPlane;
use buffer::Buffer;
use exchange::{exchange, write_all, Client, Next, Upstream};
pub(crate) use pool::Pool;
use request::{Decision, Plan};
use sluice_config::Snapshot;

/// A client stream that can wait for its next bytes without a buffer to read them into,
/// so that an idle connection holds none.
pub(crate) trait WaitReadable {
    /// Resolves once a read would find something, or at once when the stream cannot tell.
    fn wait_readable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl WaitReadable for TcpStream {
    fn wait_readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }
}

/// A TLS session holds its own buffers and may have decrypted bytes already: no waiting.
impl<S> WaitReadable for tokio_rustls::server::TlsStream<S> {
    fn wait_readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// How a connection left this path.
pub(crate) enum Served<IO> {
    /// It is over (closed, timed out, refused, or shutdown).
    Done,
    /// The general path serves the rest: the stream, with the bytes read from it and not
    /// consumed replayed first.
    Rest(Replay<IO>),
}

/// Serves requests on a client connection that speaks HTTP/1.x, while they are for this
/// path.
pub(crate) async fn serve<IO>(io: IO, downstream: &Downstream, plane: &DataPlane) -> Served<IO>
where
    IO: AsyncRead + AsyncWrite + WaitReadable + Unpin,
{
    let mut connection = Connection { io, buf: Buffer::default(), out: Vec::new(), head: Vec::new(), held: None };
    let mut stop = plane.drain.watch();
    let served = connection.run(downstream, plane, &mut stop).await;
    if let Some(upstream) = connection.held.take() {
        plane.http1_pool.put(upstream.endpoint, upstream.stream);
    }
    match served {
        Some(()) => Served::Rest(Replay::new(connection.buf.into_rest(), connection.io)),
        None => Served::Done,
    }
}

/// One client connection on this path.
struct Connection<IO> {
    io: IO,
    /// What the client sent and was not consumed yet.
    buf: Buffer,
    /// The head of the answer being written.
    out: Vec<u8>,
    /// The head for the backend.
    head: Vec<u8>,
    /// The backend connection of the last request, while the client keeps sending.
    held: Option<Upstream>,
}

/// What the bytes at the front of a connection call for.
enum Examined<'s> {
    /// Not a complete head yet.
    NeedMore,
    /// For the general path (from this head on).
    Elsewhere,
    /// Refused before parsing was done: answer and close.
    Refused(Refusal),
    /// No route: 404 (closing when the request has a body, which is not read).
    NotFound { length: usize, body: bool },
    /// Forwarded here; the backend's head is written.
    Forward { plan: Plan<'s>, length: usize },
}

/// Whether a wait for the next head may go on.
enum Waited {
    /// More bytes arrived.
    More,
    /// The connection is over.
    Over,
}

impl<IO: AsyncRead + AsyncWrite + WaitReadable + Unpin> Connection<IO> {
    /// Serves requests until the connection is over (`None`) or one is for the general path
    /// (`Some`).
    async fn run(
        &mut self,
        downstream: &Downstream,
        plane: &DataPlane,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<()> {
        let mut first = true;
        loop {
            let deadline = tokio::time::Instant::now() + plane.options.header_timeout;
            let mut searched = 0;
            // Waits for a complete head, deciding as soon as there is one.
            let next = loop {
                // Per attempt: the snapshot a complete head is decided with.
                let mut snapshot = None;
                let started = Instant::now();
                match self.examine(first, &mut searched, plane, downstream, &mut snapshot) {
                    Examined::NeedMore => {}
                    Examined::Elsewhere => return Some(()),
                    Examined::Refused(refusal) => {
                        let _ = write_all(&mut self.io, refusal_answer(refusal), &[]).await;
                        let _ = self.io.shutdown().await;
                        return None;
                    }
                    Examined::NotFound { length, body } => {
                        plane.metrics.request(None, http::StatusCode::NOT_FOUND, started.elapsed());
                        if plane.options.access_log.enabled() {
                            let head = self.buf.data().get(..length).unwrap_or_default();
                            let mut entry = log_entry::own_answer_entry(head, downstream.client);
                            entry.status = 404;
                            entry.bytes_out = self::response::error_body_len(http::StatusCode::NOT_FOUND);
                            entry.duration = started.elapsed();
                            plane.options.access_log.write(&entry);
                        }
                        self.buf.consume(length);
                        break self.not_found(body || *stop.borrow()).await;
                    }
                    Examined::Forward { plan, length } => {
                        self.buf.consume(length);
                        let stopping = *stop.borrow();
                        let mut client = Client { io: &mut self.io, buf: &mut self.buf, out: &mut self.out, stopping };
                        let at = (started, downstream.client);
                        break exchange(plane, &plan, &self.head, &mut client, &mut self.held, at).await;
                    }
                }
                match self.read_more(first, deadline, stop, plane).await {
                    Waited::More => {}
                    Waited::Over => return None,
                }
            };
            first = false;
            if next == Next::Close || *stop.borrow() {
                let _ = self.io.shutdown().await;
                return None;
            }
        }
    }

    /// Looks at what the client sent: a complete head is parsed, checked and decided (with
    /// the current snapshot, kept in `snapshot`). Not async: the parser's room for header
    /// lines stays on the stack instead of in every connection's future.
    fn examine<'s>(
        &mut self,
        first: bool,
        searched: &mut usize,
        plane: &DataPlane,
        downstream: &Downstream,
        snapshot: &'s mut Option<Arc<Snapshot>>,
    ) -> Examined<'s> {
        let empty = leading_empty_lines(self.buf.data());
        if empty > 0 {
            self.buf.consume(empty);
            *searched = 0;
        }
        let data = self.buf.data();
        if data.is_empty() || data == b"\r" {
            return Examined::NeedMore;
        }
        match (first, is_preface(data)) {
            (true, Some(true)) => return Examined::Elsewhere,
            (true, None) => return Examined::NeedMore,
            _ => {}
        }
        let mut slots = head_slots();
        let (request, length, verdict) = match parse_head(data, searched, &mut slots) {
            Head::Complete { request, length, verdict } => (request, length, verdict),
            Head::Partial => return Examined::NeedMore,
            Head::Refused(refusal) => return Examined::Refused(refusal),
        };
        let snapshot = snapshot.insert(plane.snapshot.load_full());
        match request::decide(&request, verdict, snapshot, downstream, &mut self.head) {
            Decision::Elsewhere => Examined::Elsewhere,
            Decision::NotFound => Examined::NotFound { length, body: verdict.body != BodyFraming::Empty },
            Decision::Forward(plan) => Examined::Forward { plan, length },
        }
    }

    /// Reads more of the next head within the header timeout, unless shutdown begins. A
    /// connection with nothing pending first parks its backend connection and gives its
    /// buffers back: an idle connection holds no more than its socket and task.
    async fn read_more(
        &mut self,
        first: bool,
        deadline: tokio::time::Instant,
        stop: &mut watch::Receiver<bool>,
        plane: &DataPlane,
    ) -> Waited {
        if !first && self.buf.is_empty() {
            if let Poll::Ready(read) = poll_once(self.buf.fill(&mut self.io)) {
                return if matches!(read, Ok(n) if n > 0) { Waited::More } else { Waited::Over };
            }
            if let Some(upstream) = self.held.take() {
                plane.http1_pool.put(upstream.endpoint, upstream.stream);
            }
            self.buf.release();
            self.out = Vec::new();
            self.head = Vec::new();
            // Idle: wait for the next bytes without a buffer to read them into.
            let woke = tokio::select! {
                biased;
                _ = stop.wait_for(|stopping| *stopping) => false,
                ready = tokio::time::timeout_at(deadline, self.io.wait_readable()) => matches!(ready, Ok(Ok(()))),
            };
            if !woke {
                return Waited::Over;
            }
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopping| *stopping) => Waited::Over,
            read = tokio::time::timeout_at(deadline, self.buf.fill(&mut self.io)) => match read {
                Ok(Ok(n)) if n > 0 => Waited::More,
                _ => Waited::Over,
            },
        }
    }

    /// Sluice's own 404 for a request no route serves.
    async fn not_found(&mut self, close: bool) -> Next {
        response::write_error(&mut self.out, http::StatusCode::NOT_FOUND, None, close);
        let written = write_all(&mut self.io, &self.out, &[]).await.is_ok() && self.io.flush().await.is_ok();
        if written && !close {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// Polls `future` once, without waiting.
fn poll_once<F: std::future::Future>(future: F) -> Poll<F::Output> {
    let mut future = std::pin::pin!(future);
    future.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}
