//! The raw TCP, TLS and UDP clients, as the suite's `tcp`, `tls` and `udp` utilities use
//! them, and the comparisons of `tcp.ExpectedResponse` and `udp.ExpectedResponse`.
//!
//! - TCP (`WaitForValidTCPResponse`): a fresh connection (over TLS with the case's server
//!   name, verified against the CA the Go test trusts), echo-basic's welcome line, `PING` →
//!   `PONG`, `IS_TLS` → whether the backend saw TLS, `TEST` → its JSON: the namespace, the pod
//!   name starting with `<Backend>-`, and with `Hostname` the SNI the backend saw.
//! - TLS connection rejection (`MakeTLSConnectionAndExpectEventuallyConnectionRejection`):
//!   the handshake must end in EOF or a reset.
//! - UDP (`ExpectEchoResponseFromBackend`): one datagram, one JSON answer naming the Service
//!   and namespace; DNS (`UDPRoute`): one `A` query, a well-formed answer.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;

use crate::backends::TCP_WELCOME;

/// Per-exchange time limit (`RequestTimeout`).
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A `tcp.ExpectedResponse`.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpCase {
    /// Pod name prefix (before `-`).
    pub backend: String,
    /// Namespace.
    pub namespace: String,
    /// Whether the backend must have seen TLS.
    pub backend_is_tls: bool,
    /// The SNI the backend must have seen, when set.
    pub hostname: String,
}

/// Reads a `tcp.ExpectedResponse` literal.
pub fn parse_tcp(body: &Value) -> Result<TcpCase, String> {
    if let Some(expr) = crate::cases::computed(body) {
        return Err(format!("computed at run time in the Go test ({expr})"));
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(TcpCase {
        backend: text("Backend"),
        namespace: text("Namespace"),
        backend_is_tls: body.get("BackendIsTLS").and_then(Value::as_bool).unwrap_or(false),
        hostname: text("Hostname"),
    })
}

/// How the client speaks TLS: the server name to send and the CA (DER) to verify with.
#[derive(Clone, Debug)]
pub struct TlsClient {
    /// SNI and verified name.
    pub server_name: String,
    /// The trusted CA.
    pub ca_der: Vec<u8>,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|_| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    Ok(tcp)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn open(addr: SocketAddr, tls: Option<&TlsClient>) -> Result<Box<dyn Stream>, String> {
    let tcp = connect(addr)?;
    let Some(tls) = tls else { return Ok(Box::new(tcp)) };
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(tls.ca_der.clone())).map_err(|e| format!("CA: {e}"))?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(tls.server_name.clone()).map_err(|e| format!("server name: {e}"))?;
    let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(Box::new(stream))
}

fn read_line(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    let n = reader.read_line(&mut line).map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed".to_owned());
    }
    Ok(line)
}

/// One exchange of `WaitForValidTCPResponse`; the JSON of `TEST` on success.
pub fn tcp_exchange(addr: SocketAddr, tls: Option<&TlsClient>, case: &TcpCase) -> Result<Value, String> {
    let stream = open(addr, tls)?;
    let mut reader = BufReader::new(stream);
    let welcome = read_line(&mut reader)?;
    if welcome != TCP_WELCOME {
        return Err(format!("TCPServer welcome message does not match: {welcome:?}"));
    }
    let mut ask = |what: &str| -> Result<String, String> {
        reader.get_mut().write_all(format!("{what}\n").as_bytes()).map_err(|e| format!("write: {e}"))?;
        reader.get_mut().flush().map_err(|e| format!("write: {e}"))?;
        read_line(&mut reader)
    };
    let pong = ask("PING")?;
    if pong != "PONG\n" {
        return Err(format!("expected PONG, got {pong:?}"));
    }
    let is_tls = ask("IS_TLS")?;
    if is_tls.trim_end() != case.backend_is_tls.to_string() {
        return Err(format!("expected IS_TLS {}, got {:?}", case.backend_is_tls, is_tls.trim_end()));
    }
    let test = ask("TEST")?;
    let payload: Value = serde_json::from_str(&test).map_err(|e| format!("TEST answer {test:?}: {e}"))?;
    let field = |p: &str| payload.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    if field("/namespace") != case.namespace {
        return Err(format!("namespace does not match: expected {}, got {}", case.namespace, field("/namespace")));
    }
    if !field("/pod").starts_with(&format!("{}-", case.backend)) {
        return Err(format!(
            "backend name does not match with pod prefix. pod={} and backend={}",
            field("/pod"),
            case.backend
        ));
    }
    if !case.hostname.is_empty() && field("/tls/serverName") != case.hostname {
        return Err(format!("expected SNI {}, the backend saw {:?}", case.hostname, field("/tls/serverName")));
    }
    Ok(payload)
}

/// `tcp.EchoSendOnce`: the pod answering a plain connection's `TEST`.
pub fn tcp_pod(addr: SocketAddr) -> Result<String, String> {
    let mut reader = BufReader::new(connect(addr)?);
    let welcome = read_line(&mut reader)?;
    if welcome != TCP_WELCOME {
        return Err(format!("unexpected TCP welcome message: {welcome:?}"));
    }
    reader.get_mut().write_all(b"TEST\n").map_err(|e| format!("write: {e}"))?;
    let line = read_line(&mut reader)?;
    let payload: Value = serde_json::from_str(&line).map_err(|e| format!("decoding {line:?}: {e}"))?;
    match payload.get("pod").and_then(Value::as_str) {
        Some(pod) if !pod.is_empty() => Ok(pod.to_owned()),
        _ => Err(format!("TCP echo response missing pod name: {line:?}")),
    }
}

/// Accepts any certificate: a rejection test only asks whether the handshake completes.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One attempt of `waitForTLSConnectionRejection`: `Ok(())` when the handshake ended in EOF
/// or a reset (`isConnectionRejected`), an error saying what happened otherwise.
pub fn tls_rejected(addr: SocketAddr, server_name: &str) -> Result<(), String> {
    let mut tcp = connect(addr)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| format!("server name: {e}"))?;
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return Ok(()),
            Err(e) => return Err(format!("the handshake failed otherwise than by EOF or reset: {e}")),
        }
    }
    Err(format!("the TLS handshake with SNI {server_name} completed: the connection was not rejected"))
}

/// One UDP datagram and its answer.
pub fn udp_exchange(addr: SocketAddr, payload: &[u8]) -> Result<Vec<u8>, String> {
    let bind: SocketAddr =
        if addr.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.parse().map_err(|e| format!("{e}"))?;
    let socket = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    socket.connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    socket.send(payload).map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf).map_err(|e| format!("no UDP answer from {addr}: {e}"))?;
    buf.truncate(n);
    Ok(buf)
}

/// `udp.ExpectEchoResponseFromBackend` once: the answer's JSON, checked against the Service
/// and namespace when given.
pub fn udp_echo(addr: SocketAddr, service: &str, namespace: &str) -> Result<Value, String> {
    let answer = udp_exchange(addr, b"gateway-api-conformance-udp-echo")?;
    if service.is_empty() && namespace.is_empty() {
        return Ok(Value::Null);
    }
    let v: Value = serde_json::from_slice(&answer)
        .map_err(|e| format!("UDP answer {:?}: {e}", String::from_utf8_lossy(&answer)))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    if !service.is_empty() && field("service") != service {
        return Err(format!(
            "UDP echo response service={:?} did not match expected {service:?} (pod {})",
            field("service"),
            field("pod")
        ));
    }
    if !namespace.is_empty() && field("namespace") != namespace {
        return Err(format!(
            "UDP echo response namespace={:?} did not match expected {namespace:?}",
            field("namespace")
        ));
    }
    Ok(v)
}

/// `udpEchoSendOnce`: the pod answering one datagram.
pub fn udp_pod(addr: SocketAddr) -> Result<String, String> {
    let answer = udp_exchange(addr, b"gateway-api-conformance-udp-weight\n")?;
    let v: Value = serde_json::from_slice(&answer).map_err(|e| format!("decoding UDP echo response: {e}"))?;
    match v.get("pod").and_then(Value::as_str) {
        Some(pod) if !pod.is_empty() => Ok(pod.to_owned()),
        _ => Err("UDP echo response missing pod name".to_owned()),
    }
}

/// `dns.Exchange` of an `A` question for `name`: a reply with the query's id, `QR` set and
/// the question echoed.
pub fn dns_query(addr: SocketAddr, name: &str) -> Result<(), String> {
    let id: u16 = 0x5a17;
    let mut query = Vec::with_capacity(64);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        query.push(u8::try_from(label.len()).map_err(|e| e.to_string())?);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let answer = udp_exchange(addr, &query)?;
    if answer.len() < 12 || answer[..2] != id.to_be_bytes() || answer[2] & 0x80 == 0 {
        return Err(format!("not a DNS answer to the query: {answer:02x?}"));
    }
    if answer.get(12..query.len()) != query.get(12..) {
        return Err("the answer does not repeat the question".to_owned());
    }
    Ok(())
}
