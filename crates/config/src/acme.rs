//! Automatic HTTPS in the snapshot: the certificates Sluice obtains itself (what the issuer
//! works from) and the ACME challenges in flight (what the listeners answer). Both come from
//! the store like everything else, so every replica answers a challenge whichever one the CA
//! reaches, and the data plane never talks to the issuer.

use std::sync::Arc;
use std::time::SystemTime;

use foldhash::HashMap;
use rustls::sign::CertifiedKey;

use crate::host::{normalize, HOST_BUF_LEN};
use crate::ObjectRef;

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN_PROTOCOL: &[u8] = b"acme-tls/1";

/// The path prefix of HTTP-01 validation requests (RFC 8555 §8.3).
pub const HTTP01_PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// The answers to the CA's validation requests for orders in flight.
#[derive(Debug, Default)]
pub struct AcmeChallenges {
    http01: HashMap<Box<str>, Arc<str>>,
    tls_alpn01: HashMap<Box<str>, Arc<CertifiedKey>>,
}

impl AcmeChallenges {
    /// Answers `token` (the last segment of an HTTP-01 request's path) with this key
    /// authorization.
    pub fn insert_http01(&mut self, token: &str, key_authorization: &str) {
        self.http01.insert(token.into(), key_authorization.into());
    }

    /// Presents `key` to `acme-tls/1` handshakes for `host` (stored lower-case).
    pub fn insert_tls_alpn01(&mut self, host: &str, key: Arc<CertifiedKey>) {
        self.tls_alpn01.insert(host.to_ascii_lowercase().into(), key);
    }

    /// The body to answer `GET <path>` with, when `path` is an HTTP-01 request for a token in
    /// flight.
    pub fn http01(&self, path: &str) -> Option<&Arc<str>> {
        if self.http01.is_empty() {
            return None;
        }
        self.http01.get(path.strip_prefix(HTTP01_PATH_PREFIX)?)
    }

    /// The RFC 8737 certificate for a TLS-ALPN-01 handshake with this SNI.
    pub fn tls_alpn01(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        if self.tls_alpn01.is_empty() {
            return None;
        }
        let mut buf = [0u8; HOST_BUF_LEN];
        self.tls_alpn01.get(normalize(sni?, &mut buf)?)
    }

    /// True when no challenge is in flight (the listeners' fast path).
    pub fn is_empty(&self) -> bool {
        self.http01.is_empty() && self.tls_alpn01.is_empty()
    }

    /// How many HTTP-01 tokens and TLS-ALPN-01 hosts are published.
    pub fn len(&self) -> (usize, usize) {
        (self.http01.len(), self.tls_alpn01.len())
    }
}

/// A certificate Sluice obtains and renews itself, and the one stored now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedCertificate {
    /// The `kubernetes.io/tls` Secret it is stored in.
    pub secret: ObjectRef,
    /// The DNS names it must cover (`*.example.com` for a wildcard), sorted, without
    /// duplicates.
    pub names: Vec<String>,
    /// The resources that asked for it (Ingresses with `kubernetes.io/tls-acme`, Gateways),
    /// for Events and diagnostics.
    pub requested_by: Vec<ObjectRef>,
    /// What the Secret holds now, if it holds a usable certificate.
    pub current: Option<CertificateFacts>,
}

impl ManagedCertificate {
    /// True when some name is a wildcard (only DNS-01 can validate those).
    pub fn has_wildcard(&self) -> bool {
        self.names.iter().any(|name| name.starts_with("*."))
    }

    /// True when the stored certificate covers every name this one must.
    pub fn covers_names(&self) -> bool {
        self.current.as_ref().is_some_and(|current| self.names.iter().all(|name| current.names.contains(name)))
    }
}

/// What the issuer needs to know about a stored certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The leaf's DNS subject alternative names, lower-case.
    pub names: Vec<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The leaf, DER (the ACME Renewal Information request is keyed on it).
    pub leaf_der: Arc<[u8]>,
}

impl CertificateFacts {
    /// When renewal is due without other advice: two-thirds of the way through the
    /// lifetime, as Let's Encrypt and cert-manager do.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self.not_after.duration_since(self.not_before).unwrap_or_default();
        self.not_before + lifetime * 2 / 3
    }
}

/// Everything about automatic HTTPS in one snapshot.
#[derive(Debug, Default)]
pub struct Acme {
    /// Challenges answered by the listeners.
    pub challenges: AcmeChallenges,
    /// Certificates to obtain and renew, by Secret, in store order.
    pub certificates: Vec<ManagedCertificate>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http01_answers_only_published_tokens_under_the_prefix() {
        let mut challenges = AcmeChallenges::default();
        assert!(challenges.is_empty());
        assert!(challenges.http01("/.well-known/acme-challenge/abc").is_none());
        challenges.insert_http01("abc", "abc.thumb");
        assert_eq!(challenges.http01("/.well-known/acme-challenge/abc").map(|s| &**s), Some("abc.thumb"));
        assert!(challenges.http01("/.well-known/acme-challenge/abcd").is_none());
        assert!(challenges.http01("/abc").is_none());
        assert!(challenges.http01("/.well-known/acme-challenge/").is_none());
    }

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let facts = CertificateFacts {
            names: vec!["a.test".into()],
            not_before,
            not_after: not_before + Duration::from_secs(90),
            leaf_der: Arc::from(&[][..]),
        };
        assert_eq!(facts.renew_at(), not_before + Duration::from_secs(60));
    }

    #[test]
    fn names_are_covered_only_by_a_certificate_holding_all_of_them() {
        let facts = |names: &[&str]| CertificateFacts {
            names: names.iter().map(|n| n.to_string()).collect(),
            not_before: SystemTime::UNIX_EPOCH,
            not_after: SystemTime::UNIX_EPOCH,
            leaf_der: Arc::from(&[][..]),
        };
        let mut managed = ManagedCertificate {
            secret: ObjectRef::new("Secret", "ns", "s"),
            names: vec!["*.a.test".into(), "b.test".into()],
            requested_by: Vec::new(),
            current: None,
        };
        assert!(managed.has_wildcard());
        assert!(!managed.covers_names());
        managed.current = Some(facts(&["b.test"]));
        assert!(!managed.covers_names());
        managed.current = Some(facts(&["b.test", "*.a.test", "c.test"]));
        assert!(managed.covers_names());
    }
}
