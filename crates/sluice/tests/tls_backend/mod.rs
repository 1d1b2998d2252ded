//! Backends that terminate TLS themselves, for the tests of TLS towards backends and of TLS
//! passthrough: a tokio-rustls server on loopback (HTTP/1.1 and HTTP/2 by ALPN, optionally
//! requiring a client certificate) that answers every request with JSON saying what it saw
//! of the connection (SNI, ALPN, client certificate) and the request. Certificates come
//! from a test CA made with rcgen.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// A certificate authority that issues test certificates.
pub struct Ca {
    /// PEM of the CA certificate (what a `ca.crt` holds).
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued by a [`Ca`], with its key.
#[derive(Clone)]
pub struct Issued {
    /// PEM of the certificate.
    pub cert_pem: String,
    /// PEM of the private key.
    pub key_pem: String,
    /// DER of the certificate.
    pub der: Vec<u8>,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A certificate for the given subject alternative names, signed by this CA.
    pub fn issue(&self, sans: &[&str]) -> Issued {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans.clone()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, sans.first().cloned().unwrap_or_default());
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
    }
}

/// An Opaque Secret (the type `proxy-ssl-secret` Secrets usually have) with the given keys.
pub fn opaque_secret_yaml(name: &str, entries: &[(&str, &str)]) -> String {
    let mut yaml =
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: Opaque\ndata:\n");
    for (key, value) in entries {
        yaml.push_str(&format!("  {key}: {}\n", crate::common::base64(value.as_bytes())));
    }
    yaml
}

/// A running TLS backend.
pub struct TlsBackend {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl TlsBackend {
    /// Starts a backend reporting service `name`, presenting `cert`; with `client_ca`, the
    /// handshake fails unless the client presents a certificate signed by it. It lives until
    /// the test process exits.
    pub fn start(name: &str, cert: &Issued, client_ca: Option<&Ca>) -> TlsBackend {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap()).unwrap();
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let mut config = builder.with_single_cert(chain, key).expect("backend certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind TLS backend");
        let addr = listener.local_addr().expect("TLS backend address");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let requests = Arc::new(AtomicUsize::new(0));
        let (counter, name) = (requests.clone(), name.to_owned());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                while let Ok((stream, _)) = listener.accept().await {
                    let (acceptor, counter, name) = (acceptor.clone(), counter.clone(), name.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(stream).await else { return };
                        let (_, conn) = tls.get_ref();
                        let seen = serde_json::json!({
                            "sni": conn.server_name(),
                            "alpn": conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
                            "client_cert": conn.peer_certificates().is_some_and(|c| !c.is_empty()),
                        });
                        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let mut answer = seen.clone();
                            answer["service"] = name.clone().into();
                            answer["path"] = request.uri().path().into();
                            answer["proto"] = format!("{:?}", request.version()).into();
                            let host = request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
                            let host = host.or_else(|| request.uri().authority().map(|a| a.as_str()));
                            answer["host"] = host.unwrap_or_default().into();
                            let headers = request.headers().iter().map(|(name, value)| {
                                (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into())
                            });
                            answer["headers"] = serde_json::Map::from_iter(headers).into();
                            let body = Full::new(Bytes::from(answer.to_string()));
                            async move { Ok::<_, Infallible>(http::Response::new(body)) }
                        });
                        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    });
                }
            });
        });
        TlsBackend { addr, requests }
    }

    /// HTTP requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
