//! The HTTP client: one round trip as the suite's Go `DefaultRoundTripper` makes it.
//!
//! HTTP/1.1 over a fresh connection (`Connection: close`, as with `DisableKeepAlives`), or
//! over TLS trusting only the listener's certificate and naming the server (`HTTPS`), or
//! HTTP/2 with prior knowledge in clear (`H2C_PRIOR_KNOWLEDGE`) or over TLS with ALPN `h2`
//! (`H2`). Header names are sent in Go's canonical form (`Header.Set`), with
//! `User-Agent: Go-http-client/1.1` and `X-Echo-Set-Header` listing what the echo must set.
//! Redirects are followed (at most 10, the method becoming GET after 301–303) unless the
//! case says not to; the harness resolves no names, so only redirects to the Gateway's own
//! address and port are followed.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::cases::{is_redirect, resolve_location, Captured, CapturedRequest, HttpCase, Sent};
use crate::common::{connect, read_response};

/// How a listener is reached.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The Gateway's address and the listener's port.
    pub addr: SocketAddr,
    /// For HTTPS listeners: the server name to send and verify, and the only certificate
    /// (DER) to trust.
    pub tls: Option<(String, Vec<u8>)>,
}

impl Endpoint {
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The URL's host as `CalculateHost` writes it: no port when it is the scheme's default.
    pub fn url_host(&self) -> String {
        let default = if self.tls.is_some() { 443 } else { 80 };
        if self.addr.port() == default {
            self.addr.ip().to_string()
        } else {
            self.addr.to_string()
        }
    }
}

/// One answer as read off the wire.
struct RawResponse {
    status: u16,
    protocol: String,
    headers: BTreeMap<String, Vec<String>>,
    body: Vec<u8>,
}

/// One request to send.
struct Outgoing<'a> {
    method: String,
    host: String,
    target: String,
    headers: &'a [(String, String)],
}

/// Makes the case's request to `endpoint` (following redirects as the Go client does) and
/// returns what was sent and what came back.
pub fn round_trip(endpoint: &Endpoint, case: &HttpCase) -> Result<(Sent, Captured), String> {
    let protocol = if case.request.protocol.is_empty() {
        if endpoint.tls.is_some() {
            "HTTPS"
        } else {
            "HTTP"
        }
    } else {
        case.request.protocol.as_str()
    };
    let url_host = endpoint.url_host();
    let host = if case.request.host.is_empty() { url_host.clone() } else { case.request.host.clone() };
    let url_path = case.request.path.split('?').next().unwrap_or_default().to_owned();
    let mut headers: Vec<(String, String)> = case
        .request
        .headers
        .iter()
        .flatten()
        .map(|(name, value)| (canonical_header_name(name), value.clone()))
        .collect();
    let set: Vec<String> = case.backend_set_response_headers.iter().map(|(n, v)| format!("{n}:{v}")).collect();
    headers.push(("X-Echo-Set-Header".to_owned(), set.join(",")));
    let sent = Sent { scheme: endpoint.scheme().to_owned(), url_path, method: case.request.method.clone() };

    let mut outgoing =
        Outgoing { method: case.request.method.clone(), host, target: case.request.path.clone(), headers: &headers };
    let mut response = None;
    for _ in 0..=10 {
        let raw = match protocol {
            "HTTP" | "HTTPS" => http1(endpoint, &outgoing)?,
            "H2C_PRIOR_KNOWLEDGE" if endpoint.tls.is_none() => h2(endpoint, &outgoing)?,
            "H2" if endpoint.tls.is_some() => h2(endpoint, &outgoing)?,
            other => return Err(format!("protocol {other} on a {} listener is not supported", endpoint.scheme())),
        };
        let follow = !case.request.unfollow_redirect && matches!(raw.status, 301 | 302 | 303 | 307 | 308);
        if !follow {
            response = Some(raw);
            break;
        }
        let location = first(&raw.headers, "location").ok_or("redirect without Location")?;
        let next = resolve_location(&location, endpoint.scheme(), &url_host)?;
        let port = next.port.parse::<u16>().ok().unwrap_or(if next.scheme == "https" { 443 } else { 80 });
        if next.host != endpoint.addr.ip().to_string()
            || port != endpoint.addr.port()
            || next.scheme != endpoint.scheme()
        {
            return Err(format!(
                "redirect to {location:?} leaves the Gateway's listener {}; the harness resolves no names and follows \
                 redirects only to it",
                endpoint.addr
            ));
        }
        let query = location.split_once('?').map(|(_, q)| format!("?{}", q.split('#').next().unwrap_or_default()));
        outgoing.target = format!("{}{}", next.path, query.unwrap_or_default());
        if !location.starts_with('/') {
            outgoing.host = endpoint.url_host();
        }
        if matches!(raw.status, 301..=303) && outgoing.method != "HEAD" {
            outgoing.method = "GET".to_owned();
        }
    }
    let raw = response.ok_or("stopped after 10 redirects")?;
    let redirect = if is_redirect(raw.status) {
        let location = first(&raw.headers, "location").ok_or("http: no Location header in response")?;
        Some(resolve_location(&location, endpoint.scheme(), &url_host)?)
    } else {
        None
    };
    let content_type = first(&raw.headers, "content-type");
    let request = CapturedRequest::from_answer(content_type.as_deref(), &raw.body, &case.request.method)?;
    Ok((sent, Captured { status: raw.status, protocol: raw.protocol, headers: raw.headers, redirect, request }))
}

/// A header name as Go's `Header.Set` writes it (`textproto.CanonicalMIMEHeaderKey`): the
/// first letter and every letter after `-` upper case, the rest lower case; names with
/// bytes outside HTTP's token characters stay as they are.
pub fn canonical_header_name(name: &str) -> String {
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

fn first(headers: &BTreeMap<String, Vec<String>>, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.first()).cloned()
}

/// The request head as Go's HTTP/1.1 transport writes it.
fn http1_head(out: &Outgoing<'_>) -> Vec<u8> {
    let mut head =
        format!("{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Go-http-client/1.1\r\n", out.method, out.target, out.host);
    if matches!(out.method.as_str(), "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Length: 0\r\n");
    }
    for (name, value) in out.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

fn group(headers: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.to_ascii_lowercase()).or_default().push(value.clone());
    }
    map
}

/// HTTP/1.1 in clear or over TLS.
fn http1(endpoint: &Endpoint, out: &Outgoing<'_>) -> Result<RawResponse, String> {
    let raw = http1_head(out);
    let head_only = out.method == "HEAD";
    let resp = match &endpoint.tls {
        None => {
            let mut stream = connect(endpoint.addr).map_err(|e| format!("connect {}: {e}", endpoint.addr))?;
            stream.write_all(&raw).and_then(|_| stream.flush()).map_err(|e| format!("write: {e}"))?;
            let mut reader = BufReader::new(stream);
            read_response(&mut reader, head_only).map_err(|e| format!("read: {e}"))?
        }
        Some((server_name, der)) => {
            let config = pinned_config(der, &[])?;
            let name =
                ServerName::try_from(server_name.clone()).map_err(|e| format!("server name {server_name}: {e}"))?;
            let conn = ClientConnection::new(config, name).map_err(|e| format!("TLS client: {e}"))?;
            let sock = connect(endpoint.addr).map_err(|e| format!("connect {}: {e}", endpoint.addr))?;
            let mut stream = rustls::StreamOwned::new(conn, sock);
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock).map_err(|e| format!("TLS handshake: {e}"))?;
            }
            stream.write_all(&raw).and_then(|_| stream.flush()).map_err(|e| format!("TLS write: {e}"))?;
            let mut reader = BufReader::new(stream);
            read_response(&mut reader, head_only).map_err(|e| format!("TLS read: {e}"))?
        }
    };
    Ok(RawResponse {
        status: resp.status,
        protocol: resp.version.clone(),
        headers: group(&resp.headers),
        body: resp.body,
    })
}

/// A client that trusts exactly the listener's certificate (`der`), whatever name it is for.
///
/// Go's client trusts the Secret's certificate as a root and checks the name; rustls'
/// name checks refuse wildcards such as the suite's `*.org`, which Go accepts, so the
/// harness pins the certificate instead (handshake signatures are still verified).
fn pinned_config(der: &[u8], alpn: &[&str]) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(Pinned { der: der.to_vec(), provider: provider.clone() });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS config: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// Accepts the one pinned certificate.
#[derive(Debug)]
struct Pinned {
    der: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the listener presented another certificate than its Secret's".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Anything hyper can speak HTTP/2 over.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// HTTP/2 with prior knowledge (clear) or ALPN `h2` (TLS), through hyper's client.
fn h2(endpoint: &Endpoint, out: &Outgoing<'_>) -> Result<RawResponse, String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
    let uri = format!("{}://{}{}", endpoint.scheme(), out.host, out.target);
    runtime.block_on(async {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(endpoint.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", endpoint.addr))?;
            let io: Box<dyn Io> = match &endpoint.tls {
                None => Box::new(tcp),
                Some((server_name, der)) => {
                    let config = pinned_config(der, &["h2"])?;
                    let name = ServerName::try_from(server_name.clone())
                        .map_err(|e| format!("server name {server_name}: {e}"))?;
                    let tls = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake: {e}"))?;
                    Box::new(tls)
                }
            };
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(conn);
            let mut builder = http::Request::builder().method(out.method.as_str()).uri(&uri);
            builder = builder.header("user-agent", "Go-http-client/2.0");
            for (name, value) in out.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let request = builder.body(Empty::<bytes::Bytes>::new()).map_err(|e| format!("request {uri}: {e}"))?;
            let resp = sender.send_request(request).await.map_err(|e| format!("HTTP/2 request: {e}"))?;
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let body = resp.into_body().collect().await.map_err(|e| format!("HTTP/2 body: {e}"))?.to_bytes().to_vec();
            Ok(RawResponse { status, protocol: "HTTP/2.0".to_owned(), headers: group(&headers), body })
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "HTTP/2 request timed out".to_owned())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_host_leaves_out_default_ports() {
        let plain = Endpoint { addr: "127.0.90.1:80".parse().unwrap(), tls: None };
        assert_eq!(plain.url_host(), "127.0.90.1");
        let other = Endpoint { addr: "127.0.90.1:8080".parse().unwrap(), tls: None };
        assert_eq!(other.url_host(), "127.0.90.1:8080");
        let tls = Endpoint { addr: "127.0.90.1:443".parse().unwrap(), tls: Some(("example.org".into(), Vec::new())) };
        assert_eq!((tls.url_host().as_str(), tls.scheme()), ("127.0.90.1", "https"));
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_header_name("access-control-request-method"), "Access-Control-Request-Method");
        assert_eq!(canonical_header_name("x-header-set"), "X-Header-Set");
        assert_eq!(canonical_header_name("Origin"), "Origin");
        assert_eq!(canonical_header_name("bad name"), "bad name");
    }

    #[test]
    fn the_head_is_what_go_sends() {
        let headers = vec![("Version".to_owned(), "one".to_owned()), ("X-Echo-Set-Header".to_owned(), String::new())];
        let out =
            Outgoing { method: "POST".into(), host: "example.com".into(), target: "/x?y=1".into(), headers: &headers };
        let head = String::from_utf8(http1_head(&out)).unwrap();
        assert_eq!(
            head,
            "POST /x?y=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n\
             Version: one\r\nX-Echo-Set-Header: \r\nConnection: close\r\n\r\n"
        );
    }
}
