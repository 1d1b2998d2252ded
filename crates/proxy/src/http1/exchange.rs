//! One request on the proxy-native path: attempts (another endpoint after a failed connect
//! or an unanswered request, as the route's retry policy allows), the request body streamed
//! to the backend, the response head read and rewritten, sent with the start of the body in
//! one write, the rest of the body relayed by its framing.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use sluice_config::Balance;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::buffer::Buffer;
use super::request::Plan;
use super::response::{self, BodyLength, ForClient, Parsed, ResponseHead};
use crate::forward::Failure;
use crate::h1_guard::framing::{Framing, Step};
use crate::upstream::connect_tcp;
use crate::DataPlane;

/// A connection to a backend endpoint, with what has been read from it.
#[derive(Debug)]
pub(super) struct Upstream {
    pub endpoint: SocketAddr,
    pub stream: TcpStream,
    pub buf: Buffer,
    /// It carried a request before: the backend may have closed it meanwhile.
    pub reused: bool,
}

/// The client side of the exchange: its connection, what was read from it (the request
/// head consumed), and the buffer answers are written from.
pub(super) struct Client<'c, IO> {
    pub io: &'c mut IO,
    pub buf: &'c mut Buffer,
    pub out: &'c mut Vec<u8>,
    /// Shutdown has begun: this answer closes the connection.
    pub stopping: bool,
}

/// Whether the client connection carries another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    KeepAlive,
    Close,
}

/// How an attempt ended without a response head.
enum Attempt {
    Failed(Failure),
    /// The backend has no ready endpoint.
    NoEndpoint,
    /// The client went away while sending its body: nothing more to answer.
    ClientGone,
}

/// Forwards the request of `plan` (its head for the backend in `head`) and relays the
/// answer; the backend connection kept for the next request is left in `held`.
pub(super) async fn exchange<IO>(
    plane: &DataPlane,
    plan: &Plan<'_>,
    head: &[u8],
    client: &mut Client<'_, IO>,
    held: &mut Option<Upstream>,
    (started, from): (Instant, SocketAddr),
) -> Next
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (backend, forward) = (plan.backend, plan.forward);
    let policy = &*forward.policy;
    // Only when logging: the line's request fields, from the head sent to the backend.
    let mut log = (policy.access_log && plane.options.access_log.enabled()).then(|| {
        let mut entry = super::log_entry::native_entry(head, &plan.fields, from, plan.body);
        entry.route = Some(&*plan.route.label);
        entry.service = Some(&*backend.label);
        entry
    });
    let ewma = matches!(forward.balance, Balance::Ewma);
    let pick = || if ewma { backend.pick_least_loaded() } else { backend.pick() };
    let replayable = plan.body == 0;
    let tries = match policy.retry.tries {
        0 => backend.endpoints.len(),
        n => n as usize,
    };
    let attempts = if replayable && !policy.retry.on.is_off() { tries.min(backend.endpoints.len()).max(1) } else { 1 };
    let deadline = policy.retry.timeout.map(|limit| Instant::now() + limit);
    let mut endpoint = pick();
    let mut attempt = 0;
    let failure = loop {
        let Some(chosen) = endpoint else {
            break Attempt::NoEndpoint;
        };
        attempt += 1;
        let last = attempt >= attempts || deadline.is_some_and(|d| Instant::now() >= d);
        let measured = ewma.then(|| backend.start(chosen));
        let sent_at = Instant::now();
        match send(plane, plan, head, client, held, chosen).await {
            Ok((upstream, answer)) => {
                if let Some(in_flight) = measured {
                    in_flight.answered();
                }
                plane.metrics.request(Some((plan.route, backend)), answer.status, started.elapsed());
                let status = answer.status.as_u16();
                let upstream_time = sent_at.elapsed();
                let (next, bytes_out) = relay(upstream, answer, client, held, policy.read_timeout).await;
                if let Some(mut entry) = log {
                    entry.status = status;
                    entry.upstream = Some(chosen);
                    entry.upstream_status = Some(status);
                    entry.upstream_time = Some(upstream_time);
                    entry.bytes_out = bytes_out;
                    entry.duration = started.elapsed();
                    plane.options.access_log.write(&entry);
                }
                return next;
            }
            Err(other @ (Attempt::ClientGone | Attempt::NoEndpoint)) => break other,
            Err(Attempt::Failed(failure)) => {
                let retry = match failure {
                    Failure::Connect => policy.retry.on.error,
                    Failure::Timeout => policy.retry.on.timeout && plan.idempotent,
                    Failure::Other => policy.retry.on.error && plan.idempotent,
                    _ => false,
                };
                if let Some(entry) = log.as_mut() {
                    entry.upstream = Some(chosen);
                    entry.upstream_time = Some(sent_at.elapsed());
                }
                if !retry || last {
                    break Attempt::Failed(failure);
                }
                endpoint = pick();
            }
        }
    };
    let status = match failure {
        Attempt::Failed(failure) => failure.status(),
        Attempt::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
        Attempt::ClientGone => return Next::Close,
    };
    plane.metrics.request(Some((plan.route, backend)), status, started.elapsed());
    // What is left of a request body is not read on: the connection ends after the answer.
    let close = plan.close || client.stopping || plan.body > 0;
    response::write_error(client.out, status, plan.hsts(), close);
    if let Some(mut entry) = log {
        entry.status = status.as_u16();
        entry.bytes_out = response::error_body_len(status);
        entry.duration = started.elapsed();
        plane.options.access_log.write(&entry);
    }
    if write_all(client.io, client.out, &[]).await.is_err() || client.io.flush().await.is_err() || close {
        return Next::Close;
    }
    Next::KeepAlive
}

/// One attempt on `endpoint`: the request sent (on a held, parked or new connection; once
/// more on a new one when a reused one turns out closed before answering a request that
/// can be sent again) and the response head read.
async fn send<IO>(
    plane: &DataPlane,
    plan: &Plan<'_>,
    head: &[u8],
    client: &mut Client<'_, IO>,
    held: &mut Option<Upstream>,
    endpoint: SocketAddr,
) -> Result<(Upstream, ResponseHead), Attempt>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let policy = &*plan.forward.policy;
    let replayable = plan.body == 0;
    loop {
        let mut upstream = match connection(plane, plan, held, endpoint).await {
            Ok(upstream) => upstream,
            Err(e) => {
                tracing::debug!(backend = %plan.backend.label, %endpoint, error = %e, "upstream connect failed");
                plane.metrics.upstream_connect_error(plan.backend);
                plan.backend.connect_failed(endpoint);
                return Err(Attempt::Failed(Failure::Connect));
            }
        };
        let stale_retry = upstream.reused && replayable;
        let sent = send_request(&mut upstream, plan, head, client, plane.options.client_body_timeout).await;
        match sent {
            Ok(()) => {}
            Err(Attempt::Failed(Failure::Other)) if stale_retry => continue,
            Err(failed) => return Err(failed),
        }
        let for_client =
            ForClient { head_method: plan.head_method, close: plan.close || client.stopping, hsts: plan.hsts() };
        loop {
            match response::parse(upstream.buf.data(), for_client, client.out) {
                Parsed::Complete(answer) => {
                    upstream.buf.consume(answer.length);
                    return Ok((upstream, answer));
                }
                Parsed::Interim(length) => {
                    upstream.buf.consume(length);
                    continue;
                }
                Parsed::Invalid => {
                    tracing::debug!(backend = %plan.backend.label, %endpoint, "upstream answer refused");
                    return Err(Attempt::Failed(Failure::Other));
                }
                Parsed::Partial => {}
            }
            let nothing_yet = upstream.buf.is_empty();
            match tokio::time::timeout(policy.read_timeout, upstream.buf.fill(&mut upstream.stream)).await {
                Err(_) => return Err(Attempt::Failed(Failure::Timeout)),
                Ok(Ok(n)) if n > 0 => {}
                // Closed before a byte of answer: a kept-alive connection the backend had
                // let go of; the request goes again on a new one.
                Ok(_) if stale_retry && nothing_yet => break,
                Ok(_) => return Err(Attempt::Failed(Failure::Other)),
            }
        }
    }
}

/// The connection to `endpoint`: the one held from the last request, a parked one, or a
/// new one (within the connect timeout).
async fn connection(
    plane: &DataPlane,
    plan: &Plan<'_>,
    held: &mut Option<Upstream>,
    endpoint: SocketAddr,
) -> io::Result<Upstream> {
    if let Some(upstream) = held.take() {
        if upstream.endpoint == endpoint {
            return Ok(upstream);
        }
        plane.http1_pool.put(upstream.endpoint, upstream.stream);
    }
    if let Some(stream) = plane.http1_pool.take(endpoint, plan.body > 0) {
        return Ok(Upstream { endpoint, stream, buf: Buffer::default(), reused: true });
    }
    let timeout = plan.forward.policy.connect_timeout;
    // Boxed: connecting is rare and its state would sit in every request's future.
    let stream = Box::pin(tokio::time::timeout(timeout, connect_tcp(endpoint)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    Ok(Upstream { endpoint, stream, buf: Buffer::default(), reused: false })
}

/// Writes the head and the body (what the client already sent with the head in the same
/// write, then the rest as it comes).
async fn send_request<IO>(
    upstream: &mut Upstream,
    plan: &Plan<'_>,
    head: &[u8],
    client: &mut Client<'_, IO>,
    client_body_timeout: Duration,
) -> Result<(), Attempt>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let send_timeout = plan.forward.policy.send_timeout;
    let mut left = plan.body;
    let first = take(client.buf.data(), left);
    send_within(&mut upstream.stream, send_timeout, head, first).await?;
    let sent = first.len();
    client.buf.consume(sent);
    left -= sent as u64;
    while left > 0 {
        match tokio::time::timeout(client_body_timeout, client.buf.fill(client.io)).await {
            Err(_) => return Err(Attempt::Failed(Failure::ClientTimeout)),
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return Err(Attempt::ClientGone),
        }
        let piece = take(client.buf.data(), left);
        send_within(&mut upstream.stream, send_timeout, piece, &[]).await?;
        let n = piece.len();
        client.buf.consume(n);
        left -= n as u64;
    }
    Ok(())
}

/// Writes `first` then `second` to the backend within the send timeout.
async fn send_within(stream: &mut TcpStream, limit: Duration, first: &[u8], second: &[u8]) -> Result<(), Attempt> {
    match tokio::time::timeout(limit, write_all(stream, first, second)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Attempt::Failed(Failure::Other)),
        Err(_) => Err(Attempt::Failed(Failure::Timeout)),
    }
}

/// Sends the rewritten head with the body bytes already read, then the rest of the body;
/// keeps the backend connection in `held` when it can carry another request.
async fn relay<IO>(
    mut upstream: Upstream,
    answer: ResponseHead,
    client: &mut Client<'_, IO>,
    held: &mut Option<Upstream>,
    read_timeout: Duration,
) -> (Next, u64)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut sent = 0;
    let done = match answer.body {
        BodyLength::None => write_all(client.io, client.out, &[]).await.is_ok(),
        BodyLength::Length(length) => {
            let done = relay_length(&mut upstream, client, length, read_timeout).await;
            sent = if done { length } else { 0 };
            done
        }
        BodyLength::Chunked => relay_chunked(&mut upstream, client, read_timeout, &mut sent).await,
        BodyLength::UntilClose => {
            relay_until_close(&mut upstream, client, read_timeout, &mut sent).await;
            false
        }
    };
    let flushed = done && client.io.flush().await.is_ok();
    // Bytes past the end of the answer mean the backend framed it wrong: never reused.
    if flushed && answer.reusable && upstream.buf.is_empty() {
        upstream.reused = true;
        upstream.buf.release();
        *held = Some(upstream);
    }
    let next = if flushed && !answer.closes_client { Next::KeepAlive } else { Next::Close };
    (next, sent)
}

async fn relay_length<IO>(
    upstream: &mut Upstream,
    client: &mut Client<'_, IO>,
    length: u64,
    read_timeout: Duration,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let first = take(upstream.buf.data(), length);
    if write_all(client.io, client.out, first).await.is_err() {
        return false;
    }
    let mut left = length - first.len() as u64;
    let sent = first.len();
    upstream.buf.consume(sent);
    while left > 0 {
        if !fill(upstream, read_timeout).await {
            return false;
        }
        let piece = take(upstream.buf.data(), left);
        if write_all(client.io, piece, &[]).await.is_err() {
            return false;
        }
        let n = piece.len();
        upstream.buf.consume(n);
        left -= n as u64;
    }
    true
}

async fn relay_chunked<IO>(
    upstream: &mut Upstream,
    client: &mut Client<'_, IO>,
    read_timeout: Duration,
    sent: &mut u64,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut framing = Framing::chunked_body();
    let mut head: &[u8] = client.out;
    loop {
        let mut through = 0;
        let data = upstream.buf.data();
        while through < data.len() && !framing.awaits_head() {
            match framing.step(&data[through..]) {
                Step::Pass(n) => through += n,
                _ => return false,
            }
        }
        if write_all(client.io, head, &data[..through]).await.is_err() {
            return false;
        }
        *sent += through as u64;
        head = &[];
        upstream.buf.consume(through);
        if framing.awaits_head() {
            return true;
        }
        if !fill(upstream, read_timeout).await {
            return false;
        }
    }
}

async fn relay_until_close<IO>(
    upstream: &mut Upstream,
    client: &mut Client<'_, IO>,
    read_timeout: Duration,
    sent: &mut u64,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut head: &[u8] = client.out;
    loop {
        let data = upstream.buf.data();
        if write_all(client.io, head, data).await.is_err() {
            return;
        }
        head = &[];
        let n = data.len();
        *sent += n as u64;
        upstream.buf.consume(n);
        if !fill(upstream, read_timeout).await {
            let _ = client.io.flush().await;
            return;
        }
    }
}

/// Reads more of the answer within the read timeout; false at its end or on an error.
async fn fill(upstream: &mut Upstream, read_timeout: Duration) -> bool {
    matches!(tokio::time::timeout(read_timeout, upstream.buf.fill(&mut upstream.stream)).await, Ok(Ok(n)) if n > 0)
}

/// At most `limit` bytes from the front of `data`.
fn take(data: &[u8], limit: u64) -> &[u8] {
    &data[..usize::try_from(limit).map_or(data.len(), |limit| limit.min(data.len()))]
}

/// Writes all of `first` then all of `second`, both in one write when the stream takes
/// them.
pub(super) async fn write_all<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut first: &[u8],
    mut second: &[u8],
) -> io::Result<()> {
    while !first.is_empty() || !second.is_empty() {
        let n = if first.is_empty() {
            io.write(second).await?
        } else if second.is_empty() {
            io.write(first).await?
        } else {
            io.write_vectored(&[IoSlice::new(first), IoSlice::new(second)]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_first = n.min(first.len());
        first = &first[from_first..];
        second = &second[n - from_first..];
    }
    Ok(())
}
