//! HTTP/1.1 proxying pinned as bytes on the wire: a real `sluice run`, raw TCP clients, and a
//! scripted raw TCP backend (std threads) behind one catch-all Ingress, all on 127.0.0.1.
//!
//! These tests pin what any HTTP/1.1 data path of Sluice must do, whatever it is built on
//! (hyper's server and client, or a proxy-native path in which one task owns a client
//! connection and its upstream connection). They look at nothing but the bytes each side
//! sends and receives:
//! - header names keep their spelling and order both ways, as nginx passes them on;
//! - pipelined requests are answered in order, and a request dribbled in one-byte segments
//!   is read whole;
//! - request and response bodies of every framing (Content-Length, chunked, none, and
//!   close-delimited answers) arrive as the same bytes, and answers without a body (to HEAD,
//!   204, 304) leave the connection in step for the next request;
//! - upstream connections are reused, replaced when the backend closes one, and a client's
//!   `Connection: close` closes the client connection after its answer;
//! - a broken backend answer (garbage, bytes beyond its Content-Length, a close instead of
//!   an answer, both Content-Length and chunked) becomes a 502 or is cut where it said it
//!   ends, and nothing of it reaches the next answer on the same client connection;
//! - hop-by-hop headers are dropped and the forwarding headers set as ingress-nginx does.
//!
//! Every socket has a 5 s read timeout, so a missing answer fails a test instead of hanging it.

mod common;

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// Read timeout of every socket here, clients' and backend's.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The `Host` of every request (the Ingress has no host rule: any would do).
const HOST: &str = "h1.test";

// ---------------------------------------------------------------------------
// The scripted backend
// ---------------------------------------------------------------------------

/// What the backend does once it has read a request.
#[derive(Clone)]
struct Reply {
    /// Written as they are (maybe none).
    bytes: Vec<u8>,
    /// Whether the connection is closed once they are written.
    close: bool,
}

impl Reply {
    /// Writes `bytes`, then reads the next request on the connection.
    fn keep(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply { bytes: bytes.into(), close: false }
    }

    /// Writes `bytes`, then closes the connection.
    fn close(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply { bytes: bytes.into(), close: true }
    }
}

/// Chooses the reply to each request.
type Script = dyn Fn(&HttpRequest) -> Reply + Send + Sync;

/// Every byte one backend connection has read, in order.
type Received = Arc<Mutex<Vec<u8>>>;

/// A raw HTTP/1.1 backend: every accepted connection is served by its own thread, which
/// records the bytes it reads, reads each request whole ([`read_request`]: head, then the
/// body by its framing) and writes what the script replies.
struct Backend {
    addr: SocketAddr,
    /// Every request read, in the order they were read.
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    /// One entry per accepted connection, in accept order.
    connections: Arc<Mutex<Vec<Received>>>,
}

impl Backend {
    fn start(script: impl Fn(&HttpRequest) -> Reply + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the backend");
        let backend = Backend {
            addr: listener.local_addr().expect("backend address"),
            requests: Arc::default(),
            connections: Arc::default(),
        };
        let script: Arc<Script> = Arc::new(script);
        let (requests, connections) = (backend.requests.clone(), backend.connections.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let received = Received::default();
                connections.lock().unwrap().push(received.clone());
                let (script, requests) = (script.clone(), requests.clone());
                std::thread::spawn(move || serve(conn, received, &requests, &*script));
            }
        });
        backend
    }

    /// How many connections it has accepted.
    fn accepted(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// The last request read for `target`; panics naming those read.
    fn request(&self, target: &str) -> HttpRequest {
        let requests = self.requests.lock().unwrap();
        requests.iter().rev().find(|r| r.target() == target).cloned().unwrap_or_else(|| {
            let lines: Vec<&str> = requests.iter().map(|r| r.line.as_str()).collect();
            panic!("the backend read no request for {target}; it read {lines:?}")
        })
    }

    /// The bytes the `index`th accepted connection has read.
    fn received(&self, index: usize) -> Vec<u8> {
        self.connections.lock().unwrap()[index].lock().unwrap().clone()
    }
}

/// Serves one connection until the peer closes it, a read times out, or a reply closes it.
fn serve(conn: TcpStream, received: Received, requests: &Mutex<Vec<HttpRequest>>, script: &Script) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let Ok(mut writer) = conn.try_clone() else { return };
    let mut reader = BufReader::new(Recording { conn, received });
    while let Ok(Some(request)) = read_request(&mut reader) {
        let reply = script(&request);
        requests.lock().unwrap().push(request);
        if writer.write_all(&reply.bytes).is_err() || reply.close {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// A backend connection's reading side, keeping a copy of every byte it reads.
struct Recording {
    conn: TcpStream,
    received: Received,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.conn.read(buf)?;
        self.received.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// A `200 OK` whose body, sized by `Content-Length`, is `body`.
fn ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// `parts` in chunked encoding, one chunk each, then the last chunk.
fn chunked(parts: &[&str]) -> String {
    parts.iter().map(|part| format!("{:x}\r\n{part}\r\n", part.len())).collect::<String>() + "0\r\n\r\n"
}

/// The script of most tests: a `200` whose body is the request's target.
fn echo_target(request: &HttpRequest) -> Reply {
    Reply::keep(ok(request.target()))
}

// ---------------------------------------------------------------------------
// Sluice in front of it, and raw clients
// ---------------------------------------------------------------------------

/// `sluice run` with one catch-all Ingress (no host, `Prefix /`) to a Service whose one
/// endpoint is a scripted backend. Fields drop in order: Sluice is killed first.
struct Proxied {
    sluice: Sluice,
    backend: Backend,
    _fx: Fixture,
}

/// Which of Sluice's HTTP/1.1 paths serves the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataPath {
    /// A plain route: the proxy-native path.
    Native,
    /// A route with a filter (CORS): the general path (hyper's server and client).
    General,
}

fn proxied(tag: &str, path: DataPath, script: impl Fn(&HttpRequest) -> Reply + Send + Sync + 'static) -> Proxied {
    let backend = Backend::start(script);
    let fx = Fixture::new(&format!("{tag}-{path:?}"));
    fx.write_service("scripted", None, None, backend.addr.port(), &["127.0.0.1".to_owned()], true);
    let ingress = Ingress::new("all").path(None, "Prefix", "/", "scripted");
    fx.ingress(&match path {
        DataPath::Native => ingress,
        DataPath::General => ingress.annotation("nginx.ingress.kubernetes.io/enable-cors", "true"),
    });
    let sluice = fx.start(&[]);
    Proxied { sluice, backend, _fx: fx }
}

impl Proxied {
    /// A new client connection.
    fn client(&self) -> Client {
        Client::open(self.sluice.http)
    }

    /// Sends `requests` on one new client connection, all in one write when `pipelined`,
    /// else each after the answer to the one before, and returns their answers in order.
    fn answers(&self, requests: &[Vec<u8>], pipelined: bool) -> Vec<HttpResponse> {
        let mut client = self.client();
        if pipelined {
            client.send(&requests.concat());
            requests.iter().map(|raw| client.answer(raw)).collect()
        } else {
            requests.iter().map(|raw| client.request(raw)).collect()
        }
    }
}

/// A raw client connection to Sluice's plain listener.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let stream = connect(addr).expect("connect to sluice");
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("set the read timeout");
        Client { writer: stream.try_clone().expect("clone the client socket"), reader: BufReader::new(stream) }
    }

    /// Writes `raw` in one write.
    fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).expect("write to sluice");
    }

    /// Reads the answer to `raw` (sent before); panics when there is none or it is malformed.
    fn answer(&mut self, raw: &[u8]) -> HttpResponse {
        read_response(&mut self.reader, raw.starts_with(b"HEAD ")).unwrap_or_else(|e| {
            let line = String::from_utf8_lossy(raw).lines().next().unwrap_or_default().to_owned();
            panic!("answer to {line:?}: {e}")
        })
    }

    /// Sends `raw` and reads its answer.
    fn request(&mut self, raw: &[u8]) -> HttpResponse {
        self.send(raw);
        self.answer(raw)
    }

    /// What the next read gives within `limit`: `Ok(0)` once Sluice has closed the connection.
    fn next_read(&mut self, limit: Duration) -> io::Result<usize> {
        self.reader.get_ref().set_read_timeout(Some(limit))?;
        self.reader.read(&mut [0u8; 256])
    }
}

/// `GET <target>` for [`HOST`].
fn get(target: &str) -> Vec<u8> {
    http_request("GET", HOST, target, &[], b"")
}

/// Asserts a `200` whose body is `body`.
fn assert_ok(resp: &HttpResponse, body: &str, what: &str) {
    assert_eq!((resp.status, resp.text().as_str()), (200, body), "{what}: {resp:?}");
}

/// The names among `headers` that are (compared case-insensitively) one of `wanted`, as
/// spelled and in the order they came.
fn names_among<'a>(headers: &'a [(String, String)], wanted: &[&str]) -> Vec<&'a str> {
    headers.iter().map(|(n, _)| n.as_str()).filter(|n| wanted.iter().any(|w| w.eq_ignore_ascii_case(n))).collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Header names pass as sent, spelling and order, in both directions: clients and backends
/// that (wrongly, but commonly) depend on either keep working. Sluice's own request headers
/// come after the client's. (nginx keeps names too, but writes its own request headers
/// first, and the response headers it writes itself, such as Content-Type, in its spelling.)
/// Header names keep their spelling (native path) and order (both paths) both ways.
fn header_names_keep_their_case_and_order_both_ways(path: DataPath) {
    let p = proxied("h1-case", path, |_| {
        Reply::keep(
            "HTTP/1.1 200 OK\r\nX-Resp-CaSe: a\r\ncontent-type: text/plain\r\nX-Resp-Second: b\r\nContent-Length: 2\r\n\r\nok",
        )
    });
    let raw = format!(
        "GET /case HTTP/1.1\r\nHost: {HOST}\r\nX-CaSe-One: 1\r\naccept: */*\r\nX-Another-Header: 2\r\nx-lower: 3\r\n\r\n"
    );
    let resp = p.client().request(raw.as_bytes());
    assert_ok(&resp, "ok", "GET /case");
    let seen = p.backend.request("/case");

    let mut problems = Vec::new();
    // The native path passes names on as sent, as nginx does; the general path (hyper)
    // writes them in lower case: which one served shows here.
    let spelled = |names: &[&str]| -> Vec<String> {
        names.iter().map(|n| if path == DataPath::Native { n.to_string() } else { n.to_ascii_lowercase() }).collect()
    };
    let sent = ["X-CaSe-One", "accept", "X-Another-Header", "x-lower"];
    let forwarded = names_among(&seen.headers, &sent);
    if forwarded != spelled(&sent) {
        problems.push(format!("the backend received the client's header names as {forwarded:?}, sent as {sent:?}"));
    }
    let position = |name: &str| seen.headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(name));
    let last_sent = sent.iter().filter_map(|name| position(name)).max();
    for added in ["X-Forwarded-For", "X-Real-IP", "X-Request-ID"] {
        if !matches!((position(added), last_sent), (Some(at), Some(last)) if at > last) {
            problems.push(format!("{added} is missing or comes before the client's headers"));
        }
    }
    let answered = ["X-Resp-CaSe", "content-type", "X-Resp-Second"];
    let passed = names_among(&resp.headers, &answered);
    if passed != spelled(&answered) {
        problems.push(format!("the client received the backend's header names as {passed:?}, sent as {answered:?}"));
    }
    assert!(
        problems.is_empty(),
        "{}\nbackend saw: {:?}\nclient saw: {:?}",
        problems.join("\n"),
        seen.headers,
        resp.headers
    );
}

fn pipelined_requests_are_answered_in_order(path: DataPath) {
    let p = proxied("h1-pipelined", path, echo_target);
    let answers = p.answers(&[get("/a"), get("/b"), get("/c")], true);
    for (resp, target) in answers.iter().zip(["/a", "/b", "/c"]) {
        assert_ok(resp, target, target);
    }
}

fn a_request_in_one_byte_segments_is_read_whole(path: DataPath) {
    let p =
        proxied("h1-tiny", path, |r| Reply::keep(ok(&format!("{} {}", r.target(), String::from_utf8_lossy(&r.body)))));
    let body = "a body in one-byte segments";
    let raw = http_request("POST", HOST, "/tiny", &[], body.as_bytes());
    let mut client = p.client();
    client.writer.set_nodelay(true).expect("nodelay");
    for byte in &raw {
        client.send(std::slice::from_ref(byte));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_ok(&client.answer(&raw), &format!("/tiny {body}"), "POST /tiny in one-byte segments");
    assert_eq!(String::from_utf8_lossy(&p.backend.request("/tiny").body), body);
}

/// The backend decodes whatever framing Sluice forwards a body with; it must be one
/// framing (never both headers) and carry the same bytes.
fn request_bodies_of_every_framing_reach_the_backend(path: DataPath) {
    let p = proxied("h1-request-bodies", path, |r| Reply::keep(ok(&String::from_utf8_lossy(&r.body))));
    let te = [("Transfer-Encoding", "chunked")];
    let cases = [
        ("/sized", http_request("POST", HOST, "/sized", &[], b"a sized body"), "a sized body"),
        (
            "/chunked",
            http_request("POST", HOST, "/chunked", &te, chunked(&["hello", ", ", "chunked ", "world"]).as_bytes()),
            "hello, chunked world",
        ),
        ("/empty", http_request("POST", HOST, "/empty", &[], b""), ""),
        ("/none", get("/none"), ""),
    ];
    let requests: Vec<Vec<u8>> = cases.iter().map(|(_, raw, _)| raw.clone()).collect();
    let answers = p.answers(&requests, false);
    for ((target, _, body), resp) in cases.iter().zip(&answers) {
        assert_ok(resp, body, target);
        let seen = p.backend.request(target);
        assert_eq!(String::from_utf8_lossy(&seen.body), *body, "{target}: the body the backend read");
        let framings = names_among(&seen.headers, &["content-length", "transfer-encoding"]);
        assert!(framings.len() <= 1, "{target}: forwarded with {framings:?}: {:?}", seen.headers);
    }
}

/// A close-delimited answer may reach the client close-delimited (then the connection ends
/// after it) or framed again (then the connection goes on).
fn response_bodies_of_every_framing_reach_the_client(path: DataPath) {
    let p = proxied("h1-response-bodies", path, |r| match r.target() {
        "/chunked" => Reply::keep(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
                + &chunked(&["a chunked", " answer", " in three parts"]),
        ),
        "/close" => Reply::close("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nan answer delimited by the close"),
        _ => echo_target(r),
    });
    let mut client = p.client();
    assert_ok(&client.request(&get("/sized")), "/sized", "Content-Length answer");
    assert_ok(&client.request(&get("/chunked")), "a chunked answer in three parts", "chunked answer");
    let resp = client.request(&get("/close"));
    assert_ok(&resp, "an answer delimited by the close", "close-delimited answer");
    if resp.is_chunked() || resp.header("content-length").is_some() {
        assert_ok(&client.request(&get("/after")), "/after", "after a re-framed close-delimited answer");
    }
}

/// An answer without a body must not make Sluice wait for one from the backend, nor send
/// one to the client: the next answer on the connection starts right after its head.
fn answers_without_a_body_keep_the_connection_in_step(path: DataPath) {
    let p = proxied("h1-bodiless", path, |r| match r.target() {
        "/head" => Reply::keep("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n"),
        "/204" => Reply::keep("HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n"),
        "/304" => Reply::keep("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
        _ => echo_target(r),
    });
    let steps = [
        (http_request("HEAD", HOST, "/head", &[], b""), 200, ""),
        (get("/after-head"), 200, "/after-head"),
        (get("/204"), 204, ""),
        (get("/after-204"), 200, "/after-204"),
        (get("/304"), 304, ""),
        (get("/after-304"), 200, "/after-304"),
    ];
    let requests: Vec<Vec<u8>> = steps.iter().map(|(raw, _, _)| raw.clone()).collect();
    for pipelined in [false, true] {
        let answers = p.answers(&requests, pipelined);
        for ((raw, status, body), resp) in steps.iter().zip(&answers) {
            let what = format!("{} (pipelined: {pipelined})", String::from_utf8_lossy(raw).lines().next().unwrap());
            assert_eq!((resp.status, resp.text().as_str()), (*status, *body), "{what}: {resp:?}");
        }
        assert_eq!(
            answers[0].header("content-length"),
            Some("10"),
            "HEAD keeps the backend's length: {:?}",
            answers[0]
        );
    }
}

fn upstream_connections_are_reused_and_replaced_once_closed(path: DataPath) {
    let p = proxied("h1-reuse", path, |r| match r.target() {
        "/bye" => Reply::close("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"),
        _ => echo_target(r),
    });
    let mut client = p.client();
    for i in 0..5 {
        let target = format!("/r{i}");
        assert_ok(&client.request(&get(&target)), &target, &target);
    }
    let first = String::from_utf8_lossy(&p.backend.received(0)).into_owned();
    assert_eq!(p.backend.accepted(), 1, "5 sequential requests took more than one backend connection");
    assert_eq!(first.matches("GET /r").count(), 5, "the connection carried {first:?}");

    assert_ok(&client.request(&get("/bye")), "bye", "the answer that closes the backend connection");
    assert_ok(&client.request(&get("/after-bye")), "/after-bye", "the request after the backend closed");
    assert_eq!(p.backend.accepted(), 2, "a closed backend connection is replaced by one new one");
}

fn a_client_asking_to_close_gets_its_answer_then_the_close(path: DataPath) {
    let p = proxied("h1-client-close", path, echo_target);
    let mut client = p.client();
    assert_ok(&client.request(&get("/first")), "/first", "keep-alive request");
    let resp = client.request(&http_request("GET", HOST, "/last", &[("Connection", "close")], b""));
    assert_ok(&resp, "/last", "Connection: close request");
    assert!(resp.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")), "{resp:?}");
    let next = client.next_read(Duration::from_secs(2));
    assert!(matches!(next, Ok(0)), "Sluice did not close the connection within 2 s: {next:?}");
}

/// Sends `GET /broken`, which the backend answers with `broken`, then `GET /after`, which it
/// answers cleanly, on one client connection; checks the second answer is exactly the clean
/// one (nothing of the broken answer leaked into it) and returns the first.
fn broken_then_clean(tag: &str, path: DataPath, broken: Reply) -> HttpResponse {
    let p = proxied(tag, path, move |r| match r.target() {
        "/broken" => broken.clone(),
        _ => echo_target(r),
    });
    let answers = p.answers(&[get("/broken"), get("/after")], false);
    assert_ok(&answers[1], "/after", "the request after the broken answer");
    answers[0].clone()
}

fn a_garbage_answer_gives_502_and_leaks_nothing(path: DataPath) {
    let resp = broken_then_clean("h1-garbage", path, Reply::keep("HELLO\r\n\r\n"));
    assert_eq!(resp.status, 502, "{resp:?}");
    assert!(!format!("{resp:?}").contains("HELLO"), "{resp:?}");
}

fn bytes_beyond_the_content_length_never_reach_the_next_answer(path: DataPath) {
    let resp =
        broken_then_clean("h1-extra", path, Reply::keep("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA-BYTES"));
    assert_ok(&resp, "ok", "the answer followed by more than it declared");
}

fn a_backend_closing_without_an_answer_gives_502(path: DataPath) {
    let resp = broken_then_clean("h1-vanish", path, Reply::close(""));
    assert_eq!(resp.status, 502, "{resp:?}");
}

/// Which of the two lengths a hop believes is how responses are split: the answer is refused
/// (502, as nginx 1.23 and later do: "upstream sent "Content-Length" and "Transfer-Encoding"
/// headers at the same time"), or the chunked framing wins and the whole body is passed on
/// without the Content-Length (RFC 9112 section 6.3; nginx 1.22 does this). The lengths differ
/// here, so believing either one wrongly shows in the body or in the next answer.
fn an_answer_with_both_content_length_and_chunked_is_refused_or_read_as_chunked(path: DataPath) {
    let both =
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned() + &chunked(&["hello"]);
    let resp = broken_then_clean("h1-both-lengths", path, Reply::keep(both));
    assert!(
        resp.status == 502 || (resp.status, resp.text().as_str()) == (200, "hello"),
        "neither refused nor read as chunked: {resp:?}"
    );
}

/// The forwarding headers as ingress-nginx sets them, checked on the bytes the backend read
/// (names compared case-insensitively).
fn hop_by_hop_headers_are_dropped_and_forwarding_headers_set(path: DataPath) {
    let p = proxied("h1-forwarding", path, echo_target);
    let sent = [
        ("Connection", "keep-alive, X-Drop-Me"),
        ("X-Drop-Me", "1"),
        ("Keep-Alive", "timeout=5"),
        ("X-Forwarded-For", "6.6.6.6"),
    ];
    assert_ok(&p.client().request(&http_request("GET", HOST, "/fwd", &sent, b"")), "/fwd", "GET /fwd");
    let seen = p.backend.request("/fwd");
    let raw = String::from_utf8_lossy(&p.backend.received(0)).to_ascii_lowercase();
    assert!(!raw.contains("x-drop-me") && !raw.contains("keep-alive:"), "hop-by-hop headers forwarded: {raw:?}");
    let values = |name: &str| -> Vec<&str> {
        seen.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    };
    for (name, want) in [
        ("Host", HOST),
        ("X-Original-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),
        ("X-Forwarded-Proto", "http"),
    ] {
        assert_eq!(values(name), [want], "{name}: {:?}", seen.headers);
    }
    let id = values("X-Request-ID");
    assert!(id.len() == 1 && id[0].len() == 32 && id[0].bytes().all(|b| b.is_ascii_hexdigit()), "X-Request-ID: {id:?}");
}

/// Every test above, on both paths.
macro_rules! on_both_paths {
    ($($name:ident),* $(,)?) => {
        mod native {
            $(#[test] fn $name() { super::$name(super::DataPath::Native) })*
        }
        mod general {
            $(#[test] fn $name() { super::$name(super::DataPath::General) })*
        }
    };
}

on_both_paths!(
    header_names_keep_their_case_and_order_both_ways,
    pipelined_requests_are_answered_in_order,
    a_request_in_one_byte_segments_is_read_whole,
    request_bodies_of_every_framing_reach_the_backend,
    response_bodies_of_every_framing_reach_the_client,
    answers_without_a_body_keep_the_connection_in_step,
    upstream_connections_are_reused_and_replaced_once_closed,
    a_client_asking_to_close_gets_its_answer_then_the_close,
    a_garbage_answer_gives_502_and_leaks_nothing,
    bytes_beyond_the_content_length_never_reach_the_next_answer,
    a_backend_closing_without_an_answer_gives_502,
    an_answer_with_both_content_length_and_chunked_is_refused_or_read_as_chunked,
    hop_by_hop_headers_are_dropped_and_forwarding_headers_set,
);
