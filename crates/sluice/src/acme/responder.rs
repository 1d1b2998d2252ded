//! Publishing challenge answers where every replica's listeners find them: the challenge
//! Secret (read into each snapshot), or the DNS server for DNS-01. A publish returns only once
//! this replica serves the answer, plus a pause for the others in a cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use sluice_acme::{ChallengeResponder, ChallengeResponse, PublishedChallenge, Rfc2136};
use sluice_config::{SharedSnapshot, Snapshot, HTTP01_PATH_PREFIX};
use sluice_translate::{HTTP01_KEY_PREFIX, TLS_ALPN01_KEY_PREFIX};

use super::storage::Storage;

/// How long a published answer may take to reach this replica's snapshot.
const VISIBLE_WITHIN: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

/// The issuer's [`ChallengeResponder`].
pub struct Responder<'a> {
    storage: &'a Storage,
    snapshot: &'a Arc<SharedSnapshot>,
    dns: Option<&'a Rfc2136>,
    /// After this replica serves an answer, wait this long for the other replicas' watches.
    settle: Duration,
    published: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl<'a> Responder<'a> {
    /// A responder writing to `storage` and checking `snapshot`.
    pub fn new(
        storage: &'a Storage,
        snapshot: &'a Arc<SharedSnapshot>,
        dns: Option<&'a Rfc2136>,
        settle: Duration,
    ) -> Self {
        Self { storage, snapshot, dns, settle, published: Mutex::default() }
    }

    /// Writes the answers in flight to the challenge Secret.
    async fn save(&self) -> Result<(), String> {
        let data = self.published.lock().unwrap_or_else(PoisonError::into_inner).clone();
        self.storage.save_challenges(data).await
    }

    fn set(&self, key: String, value: Option<Vec<u8>>) {
        let mut published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
        match value {
            Some(value) => published.insert(key, value),
            None => published.remove(&key),
        };
    }

    /// Waits until the snapshot served here shows the answer, then for the other replicas.
    async fn visible(&self, shown: impl Fn(&Snapshot) -> bool) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
        while !shown(&self.snapshot.load()) {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("the challenge answer was not served within {VISIBLE_WITHIN:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(self.settle).await;
        Ok(())
    }
}

/// The data key and value of a challenge in the challenge Secret (none for DNS-01).
fn entry(challenge: &PublishedChallenge) -> Option<(String, Vec<u8>)> {
    match &challenge.response {
        ChallengeResponse::Http01 { token, key_authorization } => {
            Some((format!("{HTTP01_KEY_PREFIX}{token}"), key_authorization.as_bytes().to_vec()))
        }
        ChallengeResponse::TlsAlpn01 { certificate_der, private_key_der } => {
            let mut pem = pem_block("CERTIFICATE", certificate_der);
            pem.push_str(&pem_block("PRIVATE KEY", private_key_der));
            Some((format!("{TLS_ALPN01_KEY_PREFIX}{}", challenge.identifier.to_ascii_lowercase()), pem.into_bytes()))
        }
        _ => None,
    }
}

/// DER as a PEM block (RFC 7468: base64 in 64-character lines).
fn pem_block(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

impl ChallengeResponder for Responder<'_> {
    async fn publish(&self, challenge: &PublishedChallenge) -> Result<(), String> {
        match &challenge.response {
            ChallengeResponse::Dns01 { record_name, value } => {
                let dns = self.dns.ok_or("DNS-01 needs --acme-dns-rfc2136")?;
                return dns.publish(record_name, value).await;
            }
            ChallengeResponse::Http01 { token, .. } => {
                let (key, value) = entry(challenge).ok_or("no answer")?;
                self.set(key, Some(value));
                self.save().await?;
                let path = format!("{HTTP01_PATH_PREFIX}{token}");
                self.visible(|snapshot| snapshot.acme.challenges.http01(&path).is_some()).await
            }
            ChallengeResponse::TlsAlpn01 { .. } => {
                let (key, value) = entry(challenge).ok_or("no answer")?;
                self.set(key, Some(value));
                self.save().await?;
                let host = challenge.identifier.as_str();
                self.visible(|snapshot| snapshot.acme.challenges.tls_alpn01(Some(host)).is_some()).await
            }
            other => Err(format!("cannot publish {other:?}")),
        }
    }

    async fn withdraw(&self, challenge: &PublishedChallenge) {
        if let ChallengeResponse::Dns01 { record_name, value } = &challenge.response {
            if let Some(dns) = self.dns {
                if let Err(error) = dns.withdraw(record_name, value).await {
                    tracing::warn!(%error, record_name, "cannot remove the DNS-01 record");
                }
            }
            return;
        }
        if let Some((key, _)) = entry(challenge) {
            self.set(key, None);
            if let Err(error) = self.save().await {
                tracing::warn!(%error, identifier = challenge.identifier, "cannot withdraw an ACME challenge answer");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject as _;

    #[test]
    fn pem_blocks_wrap_at_64_characters_and_read_back() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = pem_block("CERTIFICATE", &der);
        assert!(pem.lines().all(|line| line.len() <= 64));
        let read = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).next();
        assert_eq!(read.and_then(Result::ok).map(|c| c.to_vec()), Some(der));
    }
}
