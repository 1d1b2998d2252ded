//! The challenges a CA checks, and what the caller publishes for each: HTTP-01 tokens,
//! RFC 8737 TLS-ALPN-01 certificates and DNS-01 TXT records.

use std::fmt;
use std::future::Future;

use instant_acme::ChallengeType;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};

/// Which challenge type the CA is asked to validate; non-exhaustive so further types can be
/// added without breaking callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeKind {
    /// RFC 8555 §8.3: a file under `/.well-known/acme-challenge/` on port 80.
    Http01,
    /// RFC 8737: a special certificate served for ALPN `acme-tls/1` on port 443.
    TlsAlpn01,
    /// RFC 8555 §8.4: a TXT record at `_acme-challenge.<domain>`; the only kind that can
    /// validate wildcard names (see [`Rfc2136`](crate::Rfc2136)).
    Dns01,
}

impl ChallengeKind {
    pub(crate) fn acme_type(self) -> ChallengeType {
        match self {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
            ChallengeKind::Dns01 => ChallengeType::Dns01,
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Dns01 => "dns-01",
        })
    }
}

/// The ALPN protocol a TLS-ALPN-01 answer is served for (RFC 8737 §6.2), so the listener
/// does not spell it itself.
pub const ACME_TLS_ALPN_PROTOCOL: &[u8] = b"acme-tls/1";

/// What the CA will fetch for one identifier, in the form the server side needs it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ChallengeResponse {
    /// Serve `key_authorization` as the body of `GET /.well-known/acme-challenge/{token}`
    /// (plain HTTP, for the identifier's host).
    Http01 {
        /// The last path segment the CA requests.
        token: String,
        /// The exact body to answer with (`text/plain` or `application/octet-stream`).
        key_authorization: String,
    },
    /// Serve this self-signed certificate (SAN = the identifier, critical `acmeIdentifier`
    /// extension holding the SHA-256 of the key authorization) to TLS handshakes whose SNI is
    /// the identifier and whose only ALPN protocol is [`ACME_TLS_ALPN_PROTOCOL`].
    TlsAlpn01 {
        /// The certificate, DER.
        certificate_der: Vec<u8>,
        /// Its private key, PKCS#8 DER (ECDSA P-256).
        private_key_der: Vec<u8>,
    },
    /// Add `TXT "value"` at `record_name`, next to any TXT records already there: an order
    /// for `*.example.com` and `example.com` publishes two values at the same name at once.
    Dns01 {
        /// `_acme-challenge.<domain>.`, fully qualified with the trailing dot; for a wildcard
        /// identifier `*.example.com` the domain is `example.com`.
        record_name: String,
        /// The base64url SHA-256 of the key authorization, the TXT record's only string.
        value: String,
    },
}

/// One challenge answer to publish: for which identifier, and what to serve.
#[derive(Clone, Debug)]
pub struct PublishedChallenge {
    /// The DNS name the CA validates.
    pub identifier: String,
    /// What to serve for it.
    pub response: ChallengeResponse,
}

/// Implemented by whoever can make the CA's validation request succeed (the proxy's
/// listeners, a shared store of tokens, a test server): the order publishes before telling the
/// CA to validate and withdraws when the order is over, successful or not.
pub trait ChallengeResponder: Send + Sync {
    /// Make `challenge` answerable; return only once the CA can see it. An error aborts the
    /// order with [`AcmeError::Publish`].
    fn publish(&self, challenge: &PublishedChallenge) -> impl Future<Output = Result<(), String>> + Send;

    /// Stop answering `challenge` (called once for every successful publish).
    fn withdraw(&self, challenge: &PublishedChallenge) -> impl Future<Output = ()> + Send;
}

/// The RFC 8737 §3 certificate: self-signed, SAN = the identifier, critical `acmeIdentifier`
/// (1.3.6.1.5.5.7.1.31) holding the SHA-256 of the key authorization as an OCTET STRING.
pub(crate) fn tls_alpn_01_response(identifier: &str, digest: &[u8]) -> Result<ChallengeResponse, String> {
    if digest.len() != 32 {
        // rcgen asserts the length; never let it panic.
        return Err(format!("key authorization digest is {} bytes", digest.len()));
    }
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("generating the challenge key: {e}"))?;
    let mut params =
        CertificateParams::new(vec![identifier.to_owned()]).map_err(|e| format!("challenge certificate: {e}"))?;
    params.distinguished_name = DistinguishedName::new();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let certificate = params.self_signed(&key).map_err(|e| format!("challenge certificate: {e}"))?;
    Ok(ChallengeResponse::TlsAlpn01 {
        certificate_der: certificate.der().to_vec(),
        private_key_der: key.serialize_der(),
    })
}

/// The DNS-01 answer for an authorization of `domain` (the identifier without any `*.`: a
/// wildcard's record is at its base name).
pub(crate) fn dns_01_response(domain: &str, value: String) -> ChallengeResponse {
    let domain = domain.strip_prefix("*.").unwrap_or(domain).trim_end_matches('.');
    ChallengeResponse::Dns01 { record_name: format!("_acme-challenge.{domain}."), value }
}
