//! nginx's upstream timeouts, measured where nginx measures them: `proxy-send-timeout`
//! between two writes of the request body to the backend, `proxy-read-timeout` for the
//! response head once the request is sent and then between two reads of the response body.
//! A slow client uploading is not the backend's delay and never counts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::rate_limit::Slot;

/// Where a request body stands, as its upstream side last saw it.
#[derive(Debug)]
pub(crate) struct SendProgress {
    state: AtomicU8,
    /// When the state was entered, in µs since [`epoch`].
    since: AtomicU64,
}

/// Waiting for the client to send more (not the backend's delay).
const WAITING_CLIENT: u8 = 0;
/// A piece was handed over; the backend has not taken it yet.
const WAITING_BACKEND: u8 = 1;
/// The whole body was handed over: waiting for the response head.
const SENT: u8 = 2;

impl SendProgress {
    /// Progress of a request whose body is still to come from the client.
    pub(crate) fn waiting() -> Self {
        Self { state: AtomicU8::new(WAITING_CLIENT), since: AtomicU64::new(now()) }
    }

    /// Progress of a request whose body is already complete (or empty).
    pub(crate) fn sent() -> Self {
        Self { state: AtomicU8::new(SENT), since: AtomicU64::new(now()) }
    }

    fn enter(&self, state: u8) {
        self.since.store(now(), Ordering::Relaxed);
        self.state.store(state, Ordering::Release);
    }

    /// Records what a poll of the request body gave the upstream connection.
    pub(crate) fn polled<T>(&self, frame: &Poll<Option<T>>) {
        match frame {
            Poll::Pending => self.enter(WAITING_CLIENT),
            Poll::Ready(Some(_)) => self.enter(WAITING_BACKEND),
            Poll::Ready(None) => self.enter(SENT),
        }
    }

    /// The deadline of the current state, and who is late when it passes.
    fn deadline(&self, limits: &Limits) -> (Instant, Late) {
        let (limit, late) = match self.state.load(Ordering::Acquire) {
            WAITING_BACKEND => (limits.send, Late::Backend),
            SENT => (limits.read, Late::Backend),
            _ => (limits.client_body, Late::Client),
        };
        let since = Duration::from_micros(self.since.load(Ordering::Relaxed));
        (epoch() + since + limit, late)
    }
}

/// The timeouts of one attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// `proxy-send-timeout`: the backend takes the next piece of the body.
    pub send: Duration,
    /// `proxy-read-timeout`: the response head arrives once the request is sent.
    pub read: Duration,
    /// `--client-body-timeout` (nginx's `client_body_timeout`): the client sends the next
    /// piece of its body.
    pub client_body: Duration,
}

/// Who made a request run out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Late {
    /// The backend: 504.
    Backend,
    /// The client, uploading too slowly: 408.
    Client,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// How often the state of a request in flight is looked at again.
const RECHECK: Duration = Duration::from_secs(1);

/// Runs `sending` (a request in flight, up to its response head) until it finishes, or says
/// who took longer than the timeouts allow.
/// `sending` comes pinned by the caller: moved into this future it would be stored twice
/// (an async fn keeps its arguments beside its locals), and this future is part of every
/// request's.
pub(crate) async fn within<F: Future>(
    mut sending: Pin<&mut F>,
    progress: &SendProgress,
    limits: &Limits,
) -> Result<F::Output, Late> {
    loop {
        // The state moves without waking this task: look again at least every second.
        let (deadline, _) = progress.deadline(limits);
        let wake = deadline.min(Instant::now() + RECHECK);
        tokio::select! {
            output = sending.as_mut() => return Ok(output),
            () = tokio::time::sleep_until(wake) => {
                // The state may have moved meanwhile: only a deadline still in force counts.
                let (current, late) = progress.deadline(limits);
                if current <= Instant::now() {
                    return Err(late);
                }
            }
        }
    }
}

/// A response body from a backend that fails when the backend pauses longer than the read
/// timeout between two pieces (nginx's `proxy_read_timeout`), so a stalled stream does not
/// hold the client forever.
#[derive(Debug)]
pub(crate) struct ReadTimeout<B> {
    inner: B,
    limit: Duration,
    /// Armed the first time the body has nothing ready; boxed because most bodies never
    /// wait at all.
    timer: Option<Pin<Box<Sleep>>>,
    /// A piece arrived since the timer was armed.
    progressed: bool,
    /// The request's concurrency slot (`limit-connections`), released with the body.
    slot: Option<Slot>,
}

impl<B> ReadTimeout<B> {
    /// `inner`, failing after `limit` without a piece.
    pub(crate) fn new(inner: B, limit: Duration) -> Self {
        Self { inner, limit, timer: None, progressed: false, slot: None }
    }

    /// Keeps `slot` until the body is dropped: the request counts as in progress while
    /// its response streams.
    pub(crate) fn hold(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }
}

/// The backend paused longer than the read timeout in the middle of a response body.
#[derive(Debug)]
pub(crate) struct ReadTimedOut;

impl std::fmt::Display for ReadTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the backend paused longer than the read timeout")
    }
}

impl std::error::Error for ReadTimedOut {}

impl<B> Body for ReadTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.progressed = true;
                return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
            }
            Poll::Pending => {}
        }
        let limit = this.limit;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if std::mem::take(&mut this.progressed) {
            timer.as_mut().reset(Instant::now() + limit);
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(ReadTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// One piece, then nothing ever again.
    struct Stalling(bool);

    impl Body for Stalling {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"a")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_response_body_fails_after_the_read_timeout() {
        let mut body = ReadTimeout::new(Stalling(false), Duration::from_secs(5));
        assert!(body.frame().await.unwrap().is_ok());
        let started = Instant::now();
        assert!(body.frame().await.unwrap().is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    const LIMITS: Limits =
        Limits { send: Duration::from_secs(2), read: Duration::from_secs(5), client_body: Duration::from_secs(60) };

    #[tokio::test(start_paused = true)]
    async fn the_send_timeout_counts_only_while_the_backend_holds_a_piece() {
        let progress = SendProgress::waiting();
        // Waiting for the client: the backend's timeouts do not count…
        progress.polled::<()>(&Poll::Pending);
        let waited = within(std::pin::pin!(tokio::time::sleep(Duration::from_secs(30))), &progress, &LIMITS).await;
        assert!(waited.is_ok());
        // …up to the client body timeout: then it is the client that is late.
        progress.polled::<()>(&Poll::Pending);
        let uploading = within(std::pin::pin!(std::future::pending::<()>()), &progress, &LIMITS).await;
        assert_eq!(uploading, Err(Late::Client));
        // A piece handed over and not taken for longer than the send timeout.
        progress.polled(&Poll::Ready(Some(())));
        let stuck = within(std::pin::pin!(std::future::pending::<()>()), &progress, &LIMITS).await;
        assert_eq!(stuck, Err(Late::Backend));
        // Sent: the read timeout applies.
        progress.polled::<()>(&Poll::Ready(None));
        let started = tokio::time::Instant::now();
        let head = within(std::pin::pin!(std::future::pending::<()>()), &progress, &LIMITS).await;
        assert_eq!(head, Err(Late::Backend));
        assert!(started.elapsed() >= Duration::from_secs(5));
    }
}
