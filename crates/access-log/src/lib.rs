//! Access logs: one line per request (and per L4 connection or UDP flow, written by
//! `sluice-l4` through [`AccessLog::write_line`]) on stdout, as JSON or in ingress-nginx's
//! default `log-format-upstream`, so existing log parsers keep working.
//!
//! Lines are formatted on the request's worker and handed to one writer thread through a
//! bounded queue, which writes them in batches: a request never waits for stdout, and when the
//! queue is full (stdout blocked) lines are dropped and counted, never buffered without bound.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;

/// Lines waiting for the writer thread at most; more are dropped.
const QUEUE: usize = 65_536;
/// The writer writes at most this much per `write` call.
const BATCH: usize = 256 * 1024;
/// How often the writer looks at the queue: lines appear at most this late.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

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

/// One finished request, as the log shows it.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// When the request started.
    pub time: Option<SystemTime>,
    /// The client, after PROXY protocol and believed forwarding headers.
    pub client: Option<SocketAddr>,
    /// Request method.
    pub method: String,
    /// `Host` (or the HTTP/2 authority).
    pub host: String,
    /// The request target as sent: path and query.
    pub target: String,
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
    pub request_id: String,
    /// The Ingress or Gateway route (`namespace/name`).
    pub route: Option<Arc<str>>,
    /// The backend Service (`namespace/name:port`).
    pub service: Option<Arc<str>>,
    /// `User-Agent`.
    pub user_agent: String,
    /// `Referer`.
    pub referer: String,
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

/// The access log: a format and the queue to the writer thread.
#[derive(Debug, Clone)]
pub struct AccessLog {
    format: AccessLogFormat,
    lines: Option<SyncSender<String>>,
    dropped: Counter,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self::off()
    }
}

impl AccessLog {
    /// A log in `format` writing to stdout (a writer thread is started unless `Off`);
    /// `dropped` counts lines lost to a full queue.
    pub fn stdout(format: AccessLogFormat, dropped: Counter) -> Self {
        let lines = (format != AccessLogFormat::Off).then(|| {
            let (sender, receiver) = sync_channel(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("sluice-access-log".into())
                .spawn(move || write_batches(&receiver, &mut std::io::stdout()));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start the access log writer; access logs are off");
            }
            sender
        });
        Self { format, lines, dropped }
    }

    /// No access log (tests, tools).
    pub fn off() -> Self {
        Self { format: AccessLogFormat::Off, lines: None, dropped: Counter::default() }
    }

    /// A log whose lines go to `sender` (tests read them from the receiver).
    pub fn to_channel(format: AccessLogFormat, sender: SyncSender<String>) -> Self {
        Self { format, lines: Some(sender), dropped: Counter::default() }
    }

    /// Whether lines are written at all (callers skip gathering an [`Entry`] otherwise).
    pub fn enabled(&self) -> bool {
        self.lines.is_some()
    }

    /// The format of HTTP lines.
    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    /// Logs one request.
    pub fn write(&self, entry: &Entry) {
        if !self.enabled() {
            return;
        }
        let line = match self.format {
            AccessLogFormat::Json => json_line(entry),
            AccessLogFormat::Nginx => nginx_line(entry),
            AccessLogFormat::Off => return,
        };
        self.write_line(line);
    }

    /// Logs one L4 connection or flow: JSON, or ingress-nginx's `log-format-stream`
    /// (`[$remote_addr] [$time_local] $protocol $status $bytes_sent $bytes_received
    /// $session_time`).
    pub fn write_stream(&self, entry: &StreamEntry) {
        let line = match self.format {
            AccessLogFormat::Off => return,
            AccessLogFormat::Json => {
                let value = serde_json::json!({
                    "time": rfc3339(Some(entry.time)),
                    "protocol": entry.protocol,
                    "client": entry.client.ip().to_string(),
                    "client_port": entry.client.port(),
                    "listener": entry.listener.to_string(),
                    "service": &*entry.service,
                    "upstream": entry.upstream.map(|u| u.to_string()),
                    "status": entry.status(),
                    "bytes_in": entry.bytes_in,
                    "bytes_out": entry.bytes_out,
                    "duration": (entry.duration.as_secs_f64() * 1e6).round() / 1e6,
                });
                format!("{value}\n")
            }
            AccessLogFormat::Nginx => format!(
                "[{}] [{}] {} {} {} {} {:.3}\n",
                entry.client.ip(),
                nginx_time(entry.time),
                entry.protocol,
                entry.status(),
                entry.bytes_out,
                entry.bytes_in,
                entry.duration.as_secs_f64()
            ),
        };
        self.write_line(line);
    }

    /// Queues one formatted line (ending in `\n`); dropped and counted when the queue is full.
    pub fn write_line(&self, line: String) {
        let Some(lines) = &self.lines else { return };
        match lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.inc();
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The writer thread: every [`FLUSH_EVERY`] it writes what was queued, in as few calls as
/// possible. It never waits on the queue itself, so queuing a line never wakes it (a wake-up
/// per request would cost the worker a context switch per line, as nginx's `buffer=` and
/// `flush=` avoid). Returns once the senders are gone and the queue is written.
fn write_batches(lines: &Receiver<String>, out: &mut impl std::io::Write) {
    let mut batch = String::with_capacity(BATCH);
    loop {
        let open = loop {
            match lines.try_recv() {
                Ok(line) => {
                    batch.push_str(&line);
                    if batch.len() >= BATCH {
                        break true;
                    }
                }
                Err(TryRecvError::Empty) => break true,
                Err(TryRecvError::Disconnected) => break false,
            }
        };
        if !batch.is_empty() {
            if out.write_all(batch.as_bytes()).and_then(|()| out.flush()).is_err() {
                // stdout is gone: nothing more can be logged.
                return;
            }
            batch.clear();
            if batch.capacity() > BATCH * 4 {
                batch.shrink_to(BATCH);
            }
            continue;
        }
        if !open {
            return;
        }
        std::thread::sleep(FLUSH_EVERY);
    }
}

fn rfc3339(time: Option<SystemTime>) -> String {
    let time = time.unwrap_or_else(SystemTime::now);
    humantime::format_rfc3339_millis(time).to_string()
}

/// One JSON line's fields, borrowed from the entry: serialized in one pass, no map built.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    client: Option<std::net::IpAddr>,
    client_port: Option<u16>,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    protocol: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration: f64,
    upstream: Option<SocketAddr>,
    upstream_status: Option<u16>,
    upstream_time: Option<f64>,
    request_id: &'a str,
    route: Option<&'a str>,
    service: Option<&'a str>,
    user_agent: &'a str,
    referer: &'a str,
}

/// The JSON line: every field, strings escaped by serde_json.
fn json_line(entry: &Entry) -> String {
    let seconds = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e6;
    let time = rfc3339(entry.time);
    let line = JsonLine {
        time: &time,
        client: entry.client.map(|c| c.ip()),
        client_port: entry.client.map(|c| c.port()),
        method: &entry.method,
        host: &entry.host,
        path: &entry.target,
        protocol: entry.protocol,
        status: entry.status,
        bytes_in: entry.bytes_in,
        bytes_out: entry.bytes_out,
        duration: seconds(entry.duration),
        upstream: entry.upstream,
        upstream_status: entry.upstream_status,
        upstream_time: entry.upstream_time.map(seconds),
        request_id: &entry.request_id,
        route: entry.route.as_deref(),
        service: entry.service.as_deref(),
        user_agent: &entry.user_agent,
        referer: &entry.referer,
    };
    let mut out = Vec::with_capacity(384);
    // Serializing borrowed strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &line);
    out.push(b'\n');
    String::from_utf8(out).unwrap_or_default()
}

/// ingress-nginx's `log-format-upstream`:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
/// [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
/// $upstream_response_time $upstream_status $req_id`.
fn nginx_line(entry: &Entry) -> String {
    let mut line = String::with_capacity(256);
    let client = entry.client.map_or_else(|| "-".to_owned(), |c| c.ip().to_string());
    let _ = write!(line, "{client} - - [{}] \"", nginx_time(entry.time.unwrap_or_else(SystemTime::now)));
    escape_into(&mut line, &entry.method);
    line.push(' ');
    escape_into(&mut line, &entry.target);
    line.push(' ');
    line.push_str(entry.protocol);
    let _ = write!(line, "\" {} {} \"", entry.status, entry.bytes_out);
    escape_into(&mut line, if entry.referer.is_empty() { "-" } else { &entry.referer });
    line.push_str("\" \"");
    escape_into(&mut line, if entry.user_agent.is_empty() { "-" } else { &entry.user_agent });
    let _ = write!(line, "\" {} {:.3} [", entry.bytes_in, entry.duration.as_secs_f64());
    if let Some(service) = &entry.service {
        // ingress-nginx names upstreams `namespace-service-port`.
        line.extend(service.chars().map(|c| if c == '/' || c == ':' { '-' } else { c }));
    }
    line.push_str("] [] ");
    match entry.upstream {
        Some(upstream) => {
            let status = entry.upstream_status.map_or_else(|| "-".to_owned(), |s| s.to_string());
            let time = entry.upstream_time.map_or_else(|| "-".to_owned(), |t| format!("{:.3}", t.as_secs_f64()));
            let _ = write!(line, "{upstream} {} {time} {status}", entry.bytes_out);
        }
        None => line.push_str("- - - -"),
    }
    line.push(' ');
    escape_into(&mut line, if entry.request_id.is_empty() { "-" } else { &entry.request_id });
    line.push('\n');
    line
}

/// nginx's `$time_local` in UTC: `04/Dec/2026:10:00:00 +0000`.
fn nginx_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    // RFC 3339 from humantime, re-ordered: no calendar arithmetic of our own.
    let text = humantime::format_rfc3339_seconds(time).to_string();
    let (year, month, day, clock) = (&text[0..4], &text[5..7], &text[8..10], &text[11..19]);
    let month = month.parse::<usize>().ok().and_then(|m| MONTHS.get(m.wrapping_sub(1))).copied().unwrap_or("Jan");
    format!("{day}/{month}/{year}:{clock} +0000")
}

/// Appends `text` as nginx escapes logged variables: `"`, `\` and bytes outside printable
/// ASCII as `\xHH`, so a client cannot forge fields or lines.
fn escape_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => {
                let _ = write!(out, "\\x{byte:02X}");
            }
            _ => out.push(byte as char),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_378_400)),
            client: Some("192.0.2.7:51000".parse().unwrap()),
            method: "GET".into(),
            host: "shop.test".into(),
            target: "/cart?id=1".into(),
            protocol: "HTTP/1.1",
            status: 200,
            bytes_in: 87,
            bytes_out: 1234,
            duration: Duration::from_millis(12),
            upstream: Some("10.0.0.5:8080".parse().unwrap()),
            upstream_status: Some(200),
            upstream_time: Some(Duration::from_millis(11)),
            request_id: "abc123".into(),
            route: Some("default/shop".into()),
            service: Some("default/web:8080".into()),
            user_agent: "curl/8.0".into(),
            referer: String::new(),
        }
    }

    #[test]
    fn nginx_lines_follow_log_format_upstream() {
        assert_eq!(
            nginx_line(&entry()),
            "192.0.2.7 - - [04/Dec/2026:10:00:00 +0000] \"GET /cart?id=1 HTTP/1.1\" 200 1234 \"-\" \"curl/8.0\" 87 0.012 [default-web-8080] [] 10.0.0.5:8080 1234 0.011 200 abc123\n"
        );
        let own = Entry { upstream: None, service: None, status: 404, ..entry() };
        assert!(nginx_line(&own).contains("[] [] - - - - abc123\n"));
    }

    #[test]
    fn nothing_a_client_sends_can_break_a_line() {
        let hostile = Entry { target: "/\"x\n\\".into(), user_agent: "a\"b\r\nc".into(), ..entry() };
        let line = nginx_line(&hostile);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.contains("/\\x22x\\x0A\\x5C") && line.contains("a\\x22b\\x0D\\x0Ac"), "{line}");
        let json = json_line(&hostile);
        assert_eq!(json.matches('\n').count(), 1);
        let parsed: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(parsed["user_agent"], "a\"b\r\nc");
    }

    #[test]
    fn json_lines_carry_every_field() {
        let parsed: serde_json::Value = serde_json::from_str(json_line(&entry()).trim_end()).unwrap();
        assert_eq!(parsed["time"], "2026-12-04T10:00:00.000Z");
        assert_eq!(parsed["client"], "192.0.2.7");
        assert_eq!(parsed["status"], 200);
        assert_eq!(parsed["upstream"], "10.0.0.5:8080");
        assert_eq!(parsed["upstream_time"], 0.011);
        assert_eq!(parsed["route"], "default/shop");
        assert_eq!(parsed["service"], "default/web:8080");
        assert_eq!(parsed["bytes_out"], 1234);
    }

    #[test]
    fn stream_lines_follow_log_format_stream() {
        let (sender, receiver) = sync_channel(4);
        let entry = StreamEntry {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_378_400),
            protocol: "TCP",
            client: "192.0.2.7:51000".parse().unwrap(),
            listener: "198.18.0.10:5432".parse().unwrap(),
            service: "default/db".into(),
            upstream: Some("10.0.0.5:5432".parse().unwrap()),
            bytes_in: 10,
            bytes_out: 20,
            duration: Duration::from_millis(1500),
        };
        AccessLog::to_channel(AccessLogFormat::Nginx, sender.clone()).write_stream(&entry);
        assert_eq!(receiver.try_recv().unwrap(), "[192.0.2.7] [04/Dec/2026:10:00:00 +0000] TCP 200 20 10 1.500\n");
        AccessLog::to_channel(AccessLogFormat::Json, sender).write_stream(&StreamEntry { upstream: None, ..entry });
        let line: serde_json::Value = serde_json::from_str(receiver.try_recv().unwrap().trim_end()).unwrap();
        assert_eq!((line["status"].as_u64(), line["service"].as_str()), (Some(502), Some("default/db")));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (sender, receiver) = sync_channel(1);
        let log = AccessLog::to_channel(AccessLogFormat::Json, sender);
        log.write(&entry());
        log.write(&entry());
        assert_eq!(log.dropped.get(), 1);
        assert!(receiver.try_recv().is_ok());
    }

    #[test]
    fn the_writer_batches_what_is_queued() {
        let (sender, receiver) = sync_channel(8);
        for i in 0..3 {
            sender.send(format!("line {i}\n")).unwrap();
        }
        drop(sender);
        let mut out = Vec::new();
        write_batches(&receiver, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "line 0\nline 1\nline 2\n");
    }
}
