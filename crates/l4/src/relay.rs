//! Copying a TCP connection both ways with half-close and an idle timeout.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;

use crate::idle::Activity;
use crate::socket::shutdown_write;

/// Buffer per direction when splice is unavailable.
const BUFFER: usize = 16 * 1024;

/// Bytes of one direction: the listener's metric, and this connection's total for its
/// access log line.
#[derive(Debug)]
pub(crate) struct Tally<'a> {
    metric: &'a Counter,
    total: AtomicU64,
}

impl<'a> Tally<'a> {
    /// Counting into `metric` too.
    pub(crate) fn new(metric: &'a Counter) -> Self {
        Self { metric, total: AtomicU64::new(0) }
    }

    /// `n` more bytes.
    pub(crate) fn add(&self, n: u64) {
        self.metric.inc_by(n);
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// The connection's total so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Both sides closed their write side.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
}

/// Copies `client` ⇄ `upstream` until both directions reached end of stream (each FIN is
/// passed on as a FIN, so a half-closed connection keeps flowing the other way), either side
/// failed, or nothing moved for `idle_timeout` (zero: no timeout). Bytes from the client count
/// as rx, bytes to it as tx.
pub(crate) async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    idle_timeout: Duration,
    (rx, tx): (&Tally<'_>, &Tally<'_>),
) -> io::Result<Ended> {
    let activity = Activity::new();
    let both =
        async { tokio::try_join!(one_way(client, upstream, rx, &activity), one_way(upstream, client, tx, &activity),) };
    tokio::select! {
        result = both => result.map(|_| Ended::Closed),
        () = activity.expired(idle_timeout) => Ok(Ended::Idle),
    }
}

/// Copies `src` to `dst` until end of stream, then half-closes `dst`.
async fn one_way(src: &TcpStream, dst: &TcpStream, counter: &Tally<'_>, activity: &Activity) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    let spliced = crate::splice::copy(src, dst, counter, activity).await?;
    #[cfg(not(target_os = "linux"))]
    let spliced = false;
    if !spliced {
        buffered(src, dst, counter, activity).await?;
    }
    shutdown_write(dst);
    Ok(())
}

/// Copies `src` to `dst` through a buffer until end of stream.
pub(crate) async fn buffered(
    src: &TcpStream,
    dst: &TcpStream,
    counter: &Tally<'_>,
    activity: &Activity,
) -> io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        src.readable().await?;
        let n = match src.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        activity.touch();
        let mut pending = buf.get(..n).unwrap_or_default();
        while !pending.is_empty() {
            dst.writable().await?;
            match dst.try_write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    pending = pending.get(m..).unwrap_or_default();
                    counter.add(m as u64);
                    activity.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    /// The fallback path on its own: everything arrives, then end of stream.
    #[tokio::test]
    async fn buffered_copy_moves_everything_and_stops_at_eof() {
        let (mut writer, src) = pair().await;
        let (dst, mut reader) = pair().await;
        let metric = Counter::default();
        let counter = Tally::new(&metric);
        let activity = Activity::new();
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = payload.clone();
        let write = tokio::spawn(async move {
            writer.write_all(&sent).await.expect("write");
            writer.shutdown().await.expect("shutdown");
        });
        let copy = async {
            buffered(&src, &dst, &counter, &activity).await.expect("copy");
            shutdown_write(&dst);
        };
        let mut received = Vec::new();
        let read = reader.read_to_end(&mut received);
        let (_, read) =
            tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(copy, read) }).await.expect("in time");
        read.expect("read");
        write.await.expect("writer");
        assert_eq!(received, payload);
        assert_eq!(metric.get(), payload.len() as u64);
        assert_eq!(counter.total(), payload.len() as u64);
    }
}
