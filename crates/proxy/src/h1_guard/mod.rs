//! Every HTTP/1.x request head checked as the client sent it, before hyper reads it.
//!
//! hyper normalises what a proxy must refuse: a `Content-Length` beside
//! `Transfer-Encoding: chunked` is dropped, a `#fragment` is cut from the target, so the
//! request handler never learns they were there. The guard sits between the client
//! connection and hyper, follows the requests through the byte stream ([`framing`]), and
//! holds back each head until it is complete and checked ([`crate::validate::check_head`]).
//! A refused head never reaches hyper: the guard answers it itself, after hyper has
//! finished the requests before it, and the connection closes.

pub(crate) mod framing;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::validate::Refusal;
use framing::{Framing, Step};

/// How much more room a held-back head gets per read.
const HELD_READ: usize = 4096;

/// Tells the connection's driver that the guard refused a head after earlier requests: it
/// should let hyper finish those and close, which is when the guard writes its answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct RefusalSignal(Arc<Notify>);

impl RefusalSignal {
    /// Completes once a head has been refused.
    pub(crate) async fn raised(&self) {
        self.0.notified().await
    }
}

/// What the guard has decided about the connection.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Requests pass as long as they check.
    Open,
    /// A head was refused: this answer (written so far) closes the connection.
    Refused { answer: &'static [u8], written: usize },
    /// A body broke its framing: reading fails.
    Broken,
}

/// A client connection whose HTTP/1.x request heads are checked before hyper reads them.
#[derive(Debug)]
pub(crate) struct H1Guard<IO> {
    inner: IO,
    framing: Framing,
    /// Bytes read but not yet handed on: the first `approved` are checked, the rest are the
    /// start of a head still incomplete.
    held: Vec<u8>,
    approved: usize,
    verdict: Verdict,
    /// Whether any byte has been handed on: before, a refusal is answered at once.
    handed: bool,
    /// While a head is held back (or the first has not come), hyper's header timeout cannot
    /// run, so the guard keeps its own.
    header_timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
    signal: RefusalSignal,
}

impl<IO> H1Guard<IO> {
    /// Guards `inner`; a connection that turns out to speak HTTP/2 passes unchecked.
    pub(crate) fn new(inner: IO, header_timeout: Duration) -> (Self, RefusalSignal) {
        let signal = RefusalSignal::default();
        let guard = Self {
            inner,
            framing: Framing::new(),
            held: Vec::new(),
            approved: 0,
            verdict: Verdict::Open,
            handed: false,
            header_timeout,
            deadline: None,
            armed: false,
            signal: signal.clone(),
        };
        (guard, signal)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> H1Guard<IO> {
    /// Reads straight into hyper's buffer (the common case: no head held back), then keeps
    /// back whatever is not checked yet. True when `out` got bytes or the stream ended.
    fn read_direct(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<bool>> {
        let before = out.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, out))?;
        let fresh = &out.filled()[before..];
        if fresh.is_empty() {
            return Poll::Ready(Ok(true));
        }
        let (passed, end) = scan(&mut self.framing, fresh);
        if end == Some(Step::Partial) {
            self.held.extend_from_slice(&fresh[passed..]);
        }
        self.settle(end);
        out.set_filled(before + passed);
        self.handed |= passed > 0;
        Poll::Ready(Ok(passed > 0))
    }

    /// Reads more of a held-back head and checks it again. True when the stream ended.
    fn read_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let len = self.held.len();
        self.held.resize(len + HELD_READ, 0);
        let mut buf = ReadBuf::new(&mut self.held[len..]);
        let read = Pin::new(&mut self.inner).poll_read(cx, &mut buf);
        let fresh = buf.filled().len();
        self.held.truncate(len + fresh);
        ready!(read)?;
        if fresh == 0 {
            // The client left in the middle of a head: nothing of it is handed on.
            self.held.clear();
            return Poll::Ready(Ok(true));
        }
        let (passed, end) = scan(&mut self.framing, &self.held);
        if end != Some(Step::Partial) {
            self.held.truncate(passed);
        }
        self.approved = passed;
        self.settle(end);
        Poll::Ready(Ok(false))
    }

    fn settle(&mut self, end: Option<Step>) {
        match end {
            Some(Step::Refuse(refusal)) => {
                tracing::debug!(status = %refusal.status, "request head refused before parsing");
                self.verdict = Verdict::Refused { answer: answer(refusal), written: 0 };
            }
            Some(Step::Broken) => self.verdict = Verdict::Broken,
            _ => {}
        }
    }

    /// Writes the refusal's answer; ready once all of it is out.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Verdict::Refused { answer, written } = &mut self.verdict {
            if *written == answer.len() {
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// While nothing hyper could time is pending (a held head, or no byte yet), the guard's
    /// own header deadline runs.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let timed = self.framing.awaits_head() && (!self.held.is_empty() || !self.handed);
        if !timed {
            self.armed = false;
            return Poll::Pending;
        }
        let at = Instant::now() + self.header_timeout;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if !self.armed {
            deadline.as_mut().reset(at);
            self.armed = true;
        }
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")))
    }
}

/// Steps through `bytes`: how many pass, and the step that stopped (`None`: all passed).
fn scan(framing: &mut Framing, bytes: &[u8]) -> (usize, Option<Step>) {
    let mut at = 0;
    while at < bytes.len() {
        match framing.step(&bytes[at..]) {
            Step::Pass(n) => at += n,
            stop => return (at, Some(stop)),
        }
    }
    (at, None)
}

/// Follows `bytes` in pieces of `piece` bytes as a connection would receive them (a partial
/// front offered again with more behind it): the bytes passed, and the step that stopped
/// the stream (`None`: all passed; `Partial`: it ended within a head).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn follow(bytes: &[u8], piece: usize) -> (usize, Option<Step>) {
    let mut framing = Framing::new();
    let (mut front, mut end) = (0, 0);
    while front < bytes.len() {
        end = (end + piece.max(1)).min(bytes.len());
        let (passed, stop) = scan(&mut framing, &bytes[front..end]);
        front += passed;
        match stop {
            Some(Step::Partial) if end < bytes.len() => {}
            Some(_) => return (front, stop),
            None => {}
        }
    }
    (front, None)
}

/// The complete answer to a refused head; the connection closes after it.
pub(crate) fn answer(refusal: Refusal) -> &'static [u8] {
    match refusal.status.as_u16() {
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\nserver: sluice\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        501 => b"HTTP/1.1 501 Not Implemented\r\nserver: sluice\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        _ => b"HTTP/1.1 400 Bad Request\r\nserver: sluice\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for H1Guard<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.approved > 0 {
                let n = this.approved.min(out.remaining());
                out.put_slice(&this.held[..n]);
                this.held.drain(..n);
                this.approved -= n;
                this.handed = true;
                return Poll::Ready(Ok(()));
            }
            match this.verdict {
                Verdict::Open => {}
                Verdict::Broken => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "request body framing broken")))
                }
                // Nothing reached hyper yet: answer now, then the stream ends.
                Verdict::Refused { .. } if !this.handed => return this.poll_answer(cx),
                // hyper finishes the requests before it and closes; the answer goes out then.
                Verdict::Refused { .. } => {
                    this.signal.0.notify_one();
                    return Poll::Pending;
                }
            }
            let read = if this.held.is_empty() { this.read_direct(cx, out) } else { this.read_held(cx) };
            match read {
                Poll::Ready(Ok(true)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(false)) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return this.poll_deadline(cx),
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H1Guard<IO> {
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
        let this = self.get_mut();
        if matches!(this.verdict, Verdict::Refused { .. }) {
            ready!(this.poll_answer(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
