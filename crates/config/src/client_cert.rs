//! Client certificates (ingress-nginx's `auth-tls-*`): which hosts ask for one in the TLS
//! handshake and with which trust anchors ([`ClientAuthTable`], read by SNI before any
//! request), and what a route then requires of the request ([`ClientCertCheck`]). The
//! check names the policy the handshake must have used, so a request whose `Host` is not
//! the SNI the certificate was verified for never reaches a host that requires one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::HeaderValue;
use rustls::server::danger::ClientCertVerifier;

/// `auth-tls-verify-client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// A certificate verified against the CA is required (`on`, the default).
    On,
    /// Asked for; a presented one must verify; none is allowed (`optional`).
    Optional,
    /// Asked for and passed on, never verified (`optional_no_ca`).
    OptionalNoCa,
}

/// How the handshake asks for a client certificate, for the hosts that name one CA.
pub struct ClientCertPolicy {
    /// Tells policies apart (a connection records the one its handshake used).
    pub id: u64,
    /// Verifies presented certificates against the CA bundle (or, for `optional_no_ca`,
    /// only checks that the client holds the key). Never mandatory in the handshake: a
    /// missing certificate is answered in HTTP (400), as nginx does.
    pub verifier: Arc<dyn ClientCertVerifier>,
    /// The mode it was built for.
    pub mode: VerifyClient,
    /// `auth-tls-verify-depth`: certificates allowed between the client's and the CA.
    pub depth: u8,
}

impl std::fmt::Debug for ClientCertPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertPolicy").field("id", &self.id).field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl ClientCertPolicy {
    /// A policy with a fresh id.
    pub fn new(verifier: Arc<dyn ClientCertVerifier>, mode: VerifyClient, depth: u8) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self { id: NEXT.fetch_add(1, Ordering::Relaxed), verifier, mode, depth }
    }
}

/// What a route requires of a request's client certificate.
#[derive(Debug, Clone)]
pub struct ClientCertCheck {
    /// The policy the connection's handshake must have used (its SNI was this route's host).
    pub policy: Arc<ClientCertPolicy>,
    /// `auth-tls-match-cn`: the subject DN must match.
    pub match_cn: Option<regex::Regex>,
    /// `auth-tls-error-page`: where a client without a valid certificate is redirected.
    pub error_page: Option<HeaderValue>,
    /// `auth-tls-pass-certificate-to-upstream`: send the certificate (`ssl-client-cert`).
    pub pass_certificate: bool,
}

/// The client-certificate policy of each host, by SNI; empty on most clusters, and then
/// handshakes do not even look.
#[derive(Debug, Default, Clone)]
pub struct ClientAuthTable {
    exact: HashMap<Box<str>, Arc<ClientCertPolicy>>,
    /// `*.example.com` hosts, by `example.com`.
    wildcard: HashMap<Box<str>, Arc<ClientCertPolicy>>,
}

impl ClientAuthTable {
    /// Adds `host` (lower case; `*.` for a wildcard) unless it has a policy already: true
    /// when added.
    pub fn insert(&mut self, host: &str, policy: Arc<ClientCertPolicy>) -> bool {
        let (map, key) = match host.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, host),
        };
        if map.contains_key(key) {
            return false;
        }
        map.insert(key.into(), policy);
        true
    }

    /// The policy for a ClientHello's SNI.
    pub fn lookup(&self, sni: &str) -> Option<&Arc<ClientCertPolicy>> {
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        self.exact.get(sni.as_str()).or_else(|| {
            let (_, parent) = sni.split_once('.')?;
            self.wildcard.get(parent)
        })
    }

    /// True when no host asks for a client certificate.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

/// The handshake's verifier for `mode` with the trust anchors `roots` (unused for
/// `optional_no_ca`): certificates are asked for, never required at the TLS level.
pub fn verifier(roots: rustls::RootCertStore, mode: VerifyClient) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let provider = crate::crypto::provider();
    match mode {
        VerifyClient::OptionalNoCa => Ok(Arc::new(AnyClientCert(provider))),
        VerifyClient::On | VerifyClient::Optional => {
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("ca.crt cannot verify client certificates: {e}"))
        }
    }
}

/// `optional_no_ca`: any certificate is taken (not verified), but the client must still
/// prove it holds its key (the handshake signature is checked).
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
