//! A watch on the frames an HTTP/2 client sends, for the floods the h2 library answers one
//! by one without ever closing the connection: SETTINGS, PING, WINDOW_UPDATE and empty DATA
//! frames cost Sluice work (an ACK to write, a lookup) and the client almost nothing. Past a
//! budget per second the connection is failed, which closes it.
//!
//! Sits between the client connection (after TLS) and the HTTP server: it reads only the
//! 9-byte frame headers as they pass and skips payloads by length, so a connection that
//! turns out to speak HTTP/1.1 costs one comparison of its first bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frames allowed per second, by kind; a legitimate client sends a handful of each (and
/// WINDOW_UPDATEs in proportion to what it receives, allowed on top).
const SETTINGS_PER_SECOND: u32 = 100;
const PINGS_PER_SECOND: u32 = 100;
const EMPTY_DATA_PER_SECOND: u32 = 1_000;
const WINDOW_UPDATES_PER_SECOND: u32 = 1_000;
/// One more WINDOW_UPDATE allowed per this many bytes Sluice wrote in the same second.
const BYTES_PER_WINDOW_UPDATE: u64 = 1_024;

/// What is known of the stream so far.
#[derive(Debug)]
enum Phase {
    /// Comparing the first bytes with the HTTP/2 preface.
    Preface(usize),
    /// HTTP/1.1 (or anything else): not watched.
    Other,
    /// Collecting a frame header (bytes seen so far).
    Header([u8; 9], usize),
    /// Skipping a frame's payload.
    Payload(u32),
}

/// Frame counts of the current one-second window.
#[derive(Debug, Default)]
struct Counts {
    settings: u32,
    pings: u32,
    empty_data: u32,
    window_updates: u32,
    written: u64,
}

/// A client connection watched for HTTP/2 control-frame floods.
#[derive(Debug)]
pub(crate) struct H2Guard<IO> {
    inner: IO,
    phase: Phase,
    counts: Counts,
    window_start: Instant,
}

impl<IO> H2Guard<IO> {
    /// Watches `inner`; it is left alone unless it starts with the HTTP/2 preface.
    pub(crate) fn new(inner: IO) -> Self {
        Self { inner, phase: Phase::Preface(0), counts: Counts::default(), window_start: Instant::now() }
    }

    /// Follows the frame structure through `bytes`; `Err` when a budget is exceeded.
    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.phase {
                Phase::Other => return Ok(()),
                Phase::Preface(seen) => {
                    let take = (PREFACE.len() - *seen).min(bytes.len());
                    if bytes[..take] != PREFACE[*seen..*seen + take] {
                        self.phase = Phase::Other;
                        return Ok(());
                    }
                    *seen += take;
                    bytes = &bytes[take..];
                    if *seen == PREFACE.len() {
                        self.phase = Phase::Header([0; 9], 0);
                    }
                }
                Phase::Header(header, seen) => {
                    let take = (9 - *seen).min(bytes.len());
                    header[*seen..*seen + take].copy_from_slice(&bytes[..take]);
                    *seen += take;
                    bytes = &bytes[take..];
                    if *seen == 9 {
                        let header = *header;
                        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]);
                        self.count(header[3], header[4], length)?;
                        self.phase = if length == 0 { Phase::Header([0; 9], 0) } else { Phase::Payload(length) };
                    }
                }
                Phase::Payload(left) => {
                    let take = (*left as usize).min(bytes.len());
                    *left -= take as u32;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.phase = Phase::Header([0; 9], 0);
                    }
                }
            }
        }
        Ok(())
    }

    fn count(&mut self, kind: u8, flags: u8, length: u32) -> io::Result<()> {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.counts = Counts::default();
        }
        let c = &mut self.counts;
        let over = match kind {
            // SETTINGS (not ACKs).
            0x4 if flags & 0x1 == 0 => {
                c.settings += 1;
                c.settings > SETTINGS_PER_SECOND
            }
            // PING (not ACKs: those the h2 library drops on its own).
            0x6 if flags & 0x1 == 0 => {
                c.pings += 1;
                c.pings > PINGS_PER_SECOND
            }
            // DATA with nothing in it that does not end its stream.
            0x0 if length == 0 && flags & 0x1 == 0 => {
                c.empty_data += 1;
                c.empty_data > EMPTY_DATA_PER_SECOND
            }
            0x8 => {
                c.window_updates += 1;
                let earned = u32::try_from(c.written / BYTES_PER_WINDOW_UPDATE).unwrap_or(u32::MAX);
                c.window_updates > WINDOW_UPDATES_PER_SECOND.saturating_add(earned)
            }
            _ => false,
        };
        if over {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "HTTP/2 control frame flood"));
        }
        Ok(())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for H2Guard<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            if !matches!(self.phase, Phase::Other) {
                let this = &mut *self;
                this.observe(&buf.filled()[before..])?;
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for H2Guard<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(written)) = &polled {
            self.counts.written += *written as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = &polled {
            self.counts.written += *written as u64;
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let length = payload.len() as u32;
        let mut out = vec![(length >> 16) as u8, (length >> 8) as u8, length as u8, kind, flags, 0, 0, 0, 1];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn http1_is_left_alone() {
        let mut guard = H2Guard::new(());
        assert!(guard.observe(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(matches!(guard.phase, Phase::Other));
    }

    #[test]
    fn a_ping_flood_fails_split_anywhere_and_normal_traffic_does_not() {
        let mut normal = PREFACE.to_vec();
        normal.extend(frame(0x4, 0, &[]));
        for _ in 0..50 {
            normal.extend(frame(0x1, 0x5, &[0x82, 0x86, 0x84]));
            normal.extend(frame(0x0, 0x1, b"body"));
            normal.extend(frame(0x6, 0, &[0; 8]));
        }
        let mut guard = H2Guard::new(());
        for chunk in normal.chunks(7) {
            assert!(guard.observe(chunk).is_ok());
        }
        let mut flood = PREFACE.to_vec();
        for _ in 0..200 {
            flood.extend(frame(0x6, 0, &[0; 8]));
        }
        let mut guard = H2Guard::new(());
        assert!(flood.chunks(5).any(|chunk| guard.observe(chunk).is_err()));
        // ACKs are not counted.
        let mut acks = PREFACE.to_vec();
        for _ in 0..500 {
            acks.extend(frame(0x6, 0x1, &[0; 8]));
        }
        assert!(H2Guard::new(()).observe(&acks).is_ok());
    }
}
