//! Access logs: one line per request (and per L4 connection or UDP flow) on stdout, as JSON
//! or in ingress-nginx's default `log-format-upstream`, so existing log parsers keep working.
//!
//! A line is formatted on the request's worker straight into that thread's buffer
//! (`writer`), which one writer thread writes out in batches: a request never waits for
//! stdout, allocates nothing for its line, and when stdout does not keep up lines are dropped
//! and counted, never buffered without bound.

mod clock;
mod format;
mod text;
mod writer;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;

use writer::Buffers;

/// `--access-log`: the line format, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// ingress-nginx's default `log-format-upstream`, field for field.
    Nginx,
    /// No access log.
    Off,
}

/// One finished request, as the log shows it, borrowed from wherever the proxy keeps it (the
/// proxy-native path logs straight from the head it sent, with no copy). What the client
/// sent stays bytes: the nginx format escapes them as nginx does, JSON replaces what is not
/// UTF-8.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    /// When the request started.
    pub time: Option<SystemTime>,
    /// The client, after PROXY protocol and believed forwarding headers.
    pub client: Option<SocketAddr>,
    /// Request method.
    pub method: &'a [u8],
    /// `Host` (or the HTTP/2 authority).
    pub host: &'a [u8],
    /// The request target as sent: path and query.
    pub target: &'a [u8],
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub protocol: &'static str,
    /// Status sent to the client.
    pub status: u16,
    /// Bytes of the request: its line, headers and body (nginx's `$request_length`).
    pub bytes_in: u64,
    /// Bytes of the response body sent (nginx's `$body_bytes_sent`).
    pub bytes_out: u64,
    /// From the request's start to the end of its answer.
    pub duration: Duration,
    /// The endpoint the request was last sent to.
    pub upstream: Option<SocketAddr>,
    /// The status the backend answered.
    pub upstream_status: Option<u16>,
    /// From sending to the backend to its response head.
    pub upstream_time: Option<Duration>,
    /// `X-Request-ID` as sent to the backend.
    pub request_id: &'a [u8],
    /// The Ingress or Gateway route (`namespace/name`).
    pub route: Option<&'a str>,
    /// The backend Service (`namespace/name:port`).
    pub service: Option<&'a str>,
    /// `User-Agent`.
    pub user_agent: &'a [u8],
    /// `Referer`.
    pub referer: &'a [u8],
}

/// One finished L4 connection (TCP) or flow (UDP).
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// When it started.
    pub time: SystemTime,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
    /// The client.
    pub client: SocketAddr,
    /// The LoadBalancer address and port it arrived on.
    pub listener: SocketAddr,
    /// The Service (`namespace/name`).
    pub service: Arc<str>,
    /// The endpoint it was relayed to; `None` when none could be reached.
    pub upstream: Option<SocketAddr>,
    /// Bytes from the client.
    pub bytes_in: u64,
    /// Bytes to the client.
    pub bytes_out: u64,
    /// How long it lasted.
    pub duration: Duration,
}

impl StreamEntry {
    /// nginx stream's `$status`: 200 relayed, 502 no endpoint reachable.
    fn status(&self) -> u16 {
        if self.upstream.is_some() {
            200
        } else {
            502
        }
    }
}

/// The access log: a format and the buffers its lines wait in. Clones share the buffers.
#[derive(Clone)]
pub struct AccessLog {
    format: AccessLogFormat,
    buffers: Option<Arc<Buffers>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AccessLog").field("format", &self.format).finish_non_exhaustive()
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        Self::off()
    }
}

impl AccessLog {
    /// A log in `format` writing to stdout; `dropped` counts lines lost because stdout did
    /// not keep up.
    pub fn stdout(format: AccessLogFormat, dropped: Counter) -> Self {
        Self::to_writer(format, std::io::stdout(), dropped)
    }

    /// A log in `format` writing to `out` from a thread of its own (a writer thread is
    /// started unless `Off`).
    pub fn to_writer(format: AccessLogFormat, out: impl Write + Send + 'static, dropped: Counter) -> Self {
        let buffers = (format != AccessLogFormat::Off).then(|| Buffers::start(Box::new(out), dropped));
        Self { format, buffers }
    }

    /// No access log (tests, tools).
    pub fn off() -> Self {
        Self { format: AccessLogFormat::Off, buffers: None }
    }

    /// Whether lines are written at all (callers skip gathering an [`Entry`] otherwise).
    pub fn enabled(&self) -> bool {
        self.buffers.is_some()
    }

    /// Logs one request.
    pub fn write(&self, entry: &Entry<'_>) {
        let Some(buffers) = &self.buffers else { return };
        match self.format {
            AccessLogFormat::Json => buffers.append(|out| format::json(out, entry)),
            AccessLogFormat::Nginx => buffers.append(|out| format::nginx(out, entry)),
            AccessLogFormat::Off => {}
        }
    }

    /// Logs one L4 connection or flow: JSON, or ingress-nginx's `log-format-stream`.
    pub fn write_stream(&self, entry: &StreamEntry) {
        let Some(buffers) = &self.buffers else { return };
        match self.format {
            AccessLogFormat::Json => buffers.append(|out| format::json_stream(out, entry)),
            AccessLogFormat::Nginx => buffers.append(|out| format::nginx_stream(out, entry)),
            AccessLogFormat::Off => {}
        }
    }

    /// Writes what is buffered now (at shutdown, once connections have drained: the last
    /// lines are not left to the writer thread's next turn).
    pub fn flush(&self) {
        if let Some(buffers) = &self.buffers {
            buffers.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use writer::Shared as Captured;

    #[test]
    fn each_format_reaches_the_output_and_off_writes_nothing() {
        let entry = Entry { method: b"GET", target: b"/", protocol: "HTTP/1.1", status: 204, ..Entry::default() };
        for (format, expected) in
            [(AccessLogFormat::Json, "\"status\":204"), (AccessLogFormat::Nginx, "\"GET / HTTP/1.1\" 204")]
        {
            let out = Captured::default();
            let log = AccessLog::to_writer(format, out.clone(), Counter::default());
            log.write(&entry);
            log.flush();
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            assert!(text.contains(expected) && text.ends_with('\n'), "{text}");
        }
        let out = Captured::default();
        let log = AccessLog::to_writer(AccessLogFormat::Off, out.clone(), Counter::default());
        assert!(!log.enabled());
        log.write(&entry);
        log.flush();
        assert!(out.0.lock().unwrap().is_empty());
    }
}
