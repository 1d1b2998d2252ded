//! The echo-basic servers that are not `sluice echo` processes, served in the test process
//! (one runtime per set of pods; dropping [`Backends`] stops them):
//!
//! - **HTTPS** (`tls-backend` pods, echo-basic's `HTTPS_PORT`, default 8443): TLS with the
//!   mounted Secret's certificate, then HTTP/1.1 or HTTP/2 (ALPN) answered with echo-basic's
//!   JSON, including `tls.serverName` and `tls.negotiatedProtocol` as the backend saw them;
//! - **gRPC** (`GRPC_ECHO_SERVER`): the `GrpcEcho` service (`grpc.rs`) in clear with HTTP/2
//!   prior knowledge on `HTTP_PORT` (3000) and, with a certificate, over TLS on
//!   `HTTPS_PORT` (8443);
//! - **TCP** (`TCP_ECHO_SERVER`): echo-basic's line protocol — the welcome line, then
//!   `PING` → `PONG`, `IS_TLS` → `true`/`false`, `TEST` → the pod's JSON — in clear on
//!   `TCP_PORT` (3000) and over TLS on `TLS_PORT` (8443) when a certificate is mounted;
//! - **UDP** (`UDP_ECHO_SERVER`): every datagram answered with
//!   `{"request", "namespace", "ingress", "service", "pod"}` on `UDP_PORT` (8080);
//! - **DNS** (the UDPRoute test's CoreDNS, port 53 — binding it needs root or
//!   `CAP_NET_BIND_SERVICE`, which the test machines have): every query answered as CoreDNS'
//!   `whoami` plugin answers (`NOERROR`, an `A` record with the client's address).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use crate::client::canonical_header_name;
use crate::fixture::{BackendKind, Pod, Programmatic};
use crate::grpc;

/// echo-basic's TCP welcome line.
pub const TCP_WELCOME: &str = "Gateway API Test TCP Server\n";

/// The servers of a set of pods; dropping it stops them.
pub struct Backends {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Backends {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// What the TLS side of a connection was.
#[derive(Clone, Debug, Default)]
pub struct TlsFacts {
    /// `TLSv1.2`, `TLSv1.3`.
    pub version: String,
    /// The SNI the client sent.
    pub server_name: String,
    /// ALPN.
    pub negotiated_protocol: String,
    /// Cipher suite.
    pub cipher_suite: String,
}

/// A rustls server configuration from a Secret of the suite.
fn server_config(
    programmatic: &Programmatic,
    ns: &str,
    secret: &str,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let pair = programmatic.secret(ns, secret)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{ns}/{secret} tls.crt: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(|e| format!("{ns}/{secret} tls.key: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{ns}/{secret}: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn tls_facts(conn: &rustls::ServerConnection) -> TlsFacts {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    TlsFacts {
        version: version.to_owned(),
        server_name: conn.server_name().unwrap_or_default().to_owned(),
        negotiated_protocol: conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
        cipher_suite: conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default(),
    }
}

/// Binds a TCP listener on the pod's address.
fn bind_tcp(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> Result<TcpListener, String> {
    rt.block_on(TcpListener::bind(addr)).map_err(|e| format!("bind {addr}: {e}"))
}

/// Starts the in-process servers of every pod that has one (see the module docs).
pub fn start(pods: &[Pod], programmatic: &Programmatic) -> Result<Backends, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gwconf-backends")
        .enable_all()
        .build()
        .map_err(|e| format!("backend runtime: {e}"))?;
    for pod in pods {
        let ip = IpAddr::V4(pod.ip);
        let pod = Arc::new(pod.clone());
        match pod.kind {
            BackendKind::Http => {
                if let Some(secret) = &pod.tls_secret {
                    let config = server_config(programmatic, &pod.namespace, secret, &[b"h2", b"http/1.1"])?;
                    let port = pod.port("HTTPS_PORT", 8443);
                    let listener = bind_tcp(&runtime, SocketAddr::new(ip, port))?;
                    runtime.spawn(serve_https(listener, config, pod.clone()));
                }
            }
            BackendKind::Grpc => {
                let listener = bind_tcp(&runtime, SocketAddr::new(ip, pod.port("HTTP_PORT", 3000)))?;
                runtime.spawn(serve_grpc(listener, None, pod.clone()));
                if let Some(secret) = &pod.tls_secret {
                    let config = server_config(programmatic, &pod.namespace, secret, &[b"h2"])?;
                    let listener = bind_tcp(&runtime, SocketAddr::new(ip, pod.port("HTTPS_PORT", 8443)))?;
                    runtime.spawn(serve_grpc(listener, Some(config), pod.clone()));
                }
            }
            BackendKind::Tcp => {
                let listener = bind_tcp(&runtime, SocketAddr::new(ip, pod.port("TCP_PORT", 3000)))?;
                runtime.spawn(serve_tcp(listener, None, pod.clone()));
                if let Some(secret) = &pod.tls_secret {
                    let config = server_config(programmatic, &pod.namespace, secret, &[])?;
                    let listener = bind_tcp(&runtime, SocketAddr::new(ip, pod.port("TLS_PORT", 8443)))?;
                    runtime.spawn(serve_tcp(listener, Some(config), pod.clone()));
                }
            }
            BackendKind::Udp => {
                let addr = SocketAddr::new(ip, pod.port("UDP_PORT", 8080));
                let socket = runtime.block_on(UdpSocket::bind(addr)).map_err(|e| format!("bind udp {addr}: {e}"))?;
                runtime.spawn(serve_udp(socket, pod.clone()));
            }
            BackendKind::Dns => {
                let addr = SocketAddr::new(ip, 53);
                let socket = runtime.block_on(UdpSocket::bind(addr)).map_err(|e| format!("bind udp {addr}: {e}"))?;
                runtime.spawn(serve_dns(socket));
            }
            BackendKind::Other => {}
        }
    }
    Ok(Backends { runtime: Some(runtime) })
}

// ---------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------

async fn serve_https(listener: TcpListener, config: Arc<rustls::ServerConfig>, pod: Arc<Pod>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let facts = tls_facts(tls.get_ref().1);
            let port = listener_port(&pod, "HTTPS_PORT", 8443);
            let service = service_fn(move |req: Request<Incoming>| {
                let body = http_echo(&req, &pod, &facts, &port);
                async move { Ok::<_, std::convert::Infallible>(body) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn listener_port(pod: &Pod, var: &str, default: u16) -> String {
    pod.port(var, default).to_string()
}

/// echo-basic's JSON answer to an HTTP request received over TLS.
fn http_echo(req: &Request<Incoming>, pod: &Pod, tls: &TlsFacts, port: &str) -> Response<Full<Bytes>> {
    let mut headers: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for (name, value) in req.headers() {
        if name == http::header::HOST {
            continue;
        }
        headers
            .entry(canonical_header_name(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let proto = match req.version() {
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let body = json!({
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "host": host,
        "method": req.method().as_str(),
        "proto": proto,
        "headers": headers,
        "namespace": pod.namespace,
        "ingress": "",
        "service": pod.env_or("SERVICE_NAME", ""),
        "pod": pod.name,
        "httpPort": port,
        "tls": {
            "version": tls.version,
            "serverName": tls.server_name,
            "negotiatedProtocol": tls.negotiated_protocol,
            "cipherSuite": tls.cipher_suite,
            "peerCertificates": [],
        },
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

// ---------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------

async fn serve_grpc(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, pod: Arc<Pod>) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            match acceptor {
                None => grpc_connection(tcp, None, pod).await,
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let facts = tls_facts(tls.get_ref().1);
                    grpc_connection(tls, Some(facts), pod).await;
                }
            }
        });
    }
}

async fn grpc_connection<S>(io: S, tls: Option<TlsFacts>, pod: Arc<Pod>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let pod = pod.clone();
        let tls = tls.clone();
        async move { Ok::<_, std::convert::Infallible>(grpc::serve(req, &pod, tls.as_ref()).await) }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

async fn serve_tcp(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, pod: Arc<Pod>) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            match acceptor {
                None => tcp_connection(tcp, None, &pod).await,
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let facts = tls_facts(tls.get_ref().1);
                    tcp_connection(tls, Some(facts), &pod).await;
                }
            }
        });
    }
}

/// echo-basic's TCP assertions for one connection.
fn tcp_assertions(pod: &Pod, tls: Option<&TlsFacts>) -> String {
    let mut v = json!({
        "namespace": pod.namespace,
        "ingress": "",
        "service": pod.env_or("SERVICE_NAME", ""),
        "pod": pod.name,
        "tcpport": pod.port("TCP_PORT", 3000).to_string(),
        "tlsport": pod.port("TLS_PORT", 8443).to_string(),
        "isTLS": tls.is_some(),
    });
    if let Some(t) = tls {
        v["tls"] = json!({
            "version": t.version,
            "serverName": t.server_name,
            "negotiatedProtocol": t.negotiated_protocol,
            "cipherSuite": t.cipher_suite,
        });
    }
    v.to_string()
}

async fn tcp_connection<S>(io: S, tls: Option<TlsFacts>, pod: &Pod)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let payload = tcp_assertions(pod, tls.as_ref());
    let (read, mut write) = tokio::io::split(io);
    if write.write_all(TCP_WELCOME.as_bytes()).await.is_err() {
        return;
    }
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match line.as_str() {
            "TEST" => format!("{payload}\n"),
            "IS_TLS" => format!("{}\n", tls.is_some()),
            "PING" => "PONG\n".to_owned(),
            _ => continue,
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// UDP and DNS
// ---------------------------------------------------------------------------

async fn serve_udp(socket: UdpSocket, pod: Arc<Pod>) {
    let mut buf = vec![0u8; 1024];
    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
        let answer = json!({
            "request": String::from_utf8_lossy(&buf[..n]),
            "namespace": pod.namespace,
            "ingress": "",
            "service": pod.env_or("SERVICE_NAME", ""),
            "pod": pod.name,
        });
        let _ = socket.send_to(answer.to_string().as_bytes(), peer).await;
    }
}

async fn serve_dns(socket: UdpSocket) {
    let mut buf = vec![0u8; 512];
    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
        if let Some(answer) = whoami_answer(&buf[..n], peer.ip()) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

/// The length of the question section starting at `at`, if well formed.
fn question_len(msg: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    loop {
        let len = usize::from(*msg.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        i += 1 + len;
    }
    (i + 4 <= msg.len()).then_some(i + 4 - at)
}

/// CoreDNS' `whoami` answer to a one-question query: the question and an `A` (or `AAAA`)
/// record holding the client's address.
pub fn whoami_answer(query: &[u8], client: IpAddr) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let qlen = question_len(query, 12)?;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[..2]);
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD copied
    out.push(0x00); // RA clear, NOERROR
    out.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]); // 1 question, 1 answer
    out.extend_from_slice(&query[12..12 + qlen]);
    out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
    let (rtype, rdata): (u16, Vec<u8>) = match client {
        IpAddr::V4(v4) => (1, v4.octets().to_vec()),
        IpAddr::V6(v6) => (28, v6.octets().to_vec()),
    };
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0]); // class IN, TTL 0
    out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&rdata);
    Some(out)
}
