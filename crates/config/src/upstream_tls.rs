//! TLS towards backends (`backend-protocol: HTTPS` or `GRPCS`, and `proxy-ssl-*`).
//!
//! Translation builds one [`UpstreamTls`] per distinct setting (a Secret's trust anchors and
//! client certificate, verification on or off, SNI, ALPN) and shares it between backends and
//! snapshots; the data plane only connects with it. Nothing here is built per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How a backend's certificate is checked.
#[derive(Debug, Clone)]
pub enum ServerVerification {
    /// Not checked, as ingress-nginx does by default (`proxy_ssl_verify off`): any
    /// certificate is accepted. Handshake signatures are still verified with the provider's
    /// algorithms, so the peer does hold the key of the certificate it presented.
    Off,
    /// The certificate must chain to one of these trust anchors (a Secret's `ca.crt`) and be
    /// valid for the server name.
    Roots(Arc<RootCertStore>),
    /// The certificate must chain to one of these trust anchors and be valid for one of
    /// these names, whatever name is sent as SNI (Gateway API's `subjectAltNames`).
    RootsForNames(Arc<RootCertStore>, Box<[ServerName<'static>]>),
}

/// What an [`UpstreamTls`] is made of; every combination is meaningful.
#[derive(Debug, Clone)]
pub struct UpstreamTlsOptions {
    /// Whether and against what the backend's certificate is verified.
    pub verification: ServerVerification,
    /// The name the certificate is verified against and, with `sni`, sent as SNI
    /// (`proxy-ssl-name`); `None` uses each endpoint's address, which is never sent as SNI.
    pub server_name: Option<ServerName<'static>>,
    /// Send the server name as SNI (`proxy-ssl-server-name: on`); off by default, as nginx.
    pub sni: bool,
    /// Presented when the backend asks for a client certificate (a Secret's `tls.crt` and
    /// `tls.key`).
    pub client_certificate: Option<Arc<CertifiedKey>>,
    /// Speak HTTP/2 (ALPN `h2`, `GRPCS`) rather than HTTP/1.1 (ALPN `http/1.1`, `HTTPS`).
    pub http2: bool,
}

impl UpstreamTlsOptions {
    /// ingress-nginx's default for `HTTPS` and `GRPCS` backends: no verification, no SNI,
    /// no client certificate.
    pub fn unverified(http2: bool) -> Self {
        Self { verification: ServerVerification::Off, server_name: None, sni: false, client_certificate: None, http2 }
    }
}

/// A rustls client configuration for one backend setting, with what each connection needs
/// besides it (the server name). Shared as an `Arc` by backends and snapshots; connection
/// pools key on [`UpstreamTls::id`], so connections made with one setting (a client
/// certificate, a trust store) are never reused for another.
#[derive(Debug)]
pub struct UpstreamTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    http2: bool,
    id: u64,
}

impl UpstreamTls {
    /// Builds the client configuration (the aws-lc-rs provider, TLS 1.2 and 1.3).
    pub fn new(options: UpstreamTlsOptions) -> Result<Self, rustls::Error> {
        let provider = crate::crypto::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let builder = match options.verification {
            ServerVerification::Off => {
                builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
            }
            ServerVerification::Roots(roots) => builder.with_root_certificates(roots),
            ServerVerification::RootsForNames(roots, names) => {
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyOfNames { webpki, names }))
            }
        };
        let mut config = match options.client_certificate {
            Some(key) => builder.with_client_cert_resolver(Arc::new(ClientCertificate(key))),
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = options.sni;
        config.alpn_protocols = vec![if options.http2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Self { config: Arc::new(config), server_name: options.server_name, http2: options.http2, id })
    }

    /// The rustls configuration to connect with.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name to connect to `endpoint` with: the configured one, else the endpoint's
    /// address (rustls never sends an address as SNI).
    pub fn server_name(&self, endpoint: SocketAddr) -> ServerName<'static> {
        match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::IpAddress(endpoint.ip().into()),
        }
    }

    /// True when HTTP/2 is spoken over the connection, HTTP/1.1 otherwise.
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Unique per instance in this process: what connection pools key on.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Accepts any server certificate, but verifies the handshake signatures made with it.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The standard WebPKI verification, for any of a list of names instead of the one sent.
#[derive(Debug)]
struct AnyOfNames {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    names: Box<[ServerName<'static>]>,
}

impl ServerCertVerifier for AnyOfNames {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut last = rustls::Error::General("no subject alternative name to verify against".into());
        for name in &self.names {
            match self.webpki.verify_server_cert(end_entity, intermediates, name, ocsp_response, now) {
                Ok(verified) => return Ok(verified),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Presents one certificate to every backend that asks, when its key can sign with a scheme
/// the backend accepts.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_send_no_name_and_ids_are_unique() {
        let a = UpstreamTls::new(UpstreamTlsOptions::unverified(false)).unwrap();
        let b = UpstreamTls::new(UpstreamTlsOptions::unverified(true)).unwrap();
        assert_ne!(a.id(), b.id());
        assert!(!a.config().enable_sni);
        assert_eq!(a.config().alpn_protocols, [b"http/1.1".to_vec()]);
        assert_eq!(b.config().alpn_protocols, [b"h2".to_vec()]);
        let endpoint = SocketAddr::from(([10, 0, 0, 7], 8443));
        assert!(matches!(a.server_name(endpoint), ServerName::IpAddress(_)));

        let named = UpstreamTlsOptions {
            server_name: Some(ServerName::try_from("backend.internal").unwrap()),
            sni: true,
            ..UpstreamTlsOptions::unverified(false)
        };
        let named = UpstreamTls::new(named).unwrap();
        assert!(named.config().enable_sni);
        assert_eq!(named.server_name(endpoint).to_str(), "backend.internal");
    }
}
