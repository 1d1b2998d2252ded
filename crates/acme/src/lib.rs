//! The ACME client core of Sluice's automatic HTTPS (issue 14): an account at one CA, and
//! orders driven from "these names" to "this certificate chain and key".
//!
//! What the CA checks is published through a [`ChallengeResponder`] the caller implements, so
//! this crate does no serving, storage or Kubernetes work of its own: the proxy answers
//! HTTP-01 and TLS-ALPN-01, [`Rfc2136`] publishes DNS-01 records on the operator's DNS server
//! (RFC 2136 updates signed with TSIG), the caller stores the account credentials
//! ([`AcmeClient::credentials_json`]) and the issued certificate (the `sluice` binary's
//! issuer, `crates/sluice/src/acme/`).
//!
//! The protocol itself is instant-acme's (which already retries `badNonce` answers: three
//! attempts per request); this crate picks challenges, builds the RFC 8737 certificate, the key
//! pair and the CSR, bounds every order in time and names what failed in [`AcmeError`].

#![deny(missing_docs)]

mod challenge;
mod config;
mod dns01;
mod error;
mod renewal;

pub use challenge::{ChallengeKind, ChallengeResponder, ChallengeResponse, PublishedChallenge, ACME_TLS_ALPN_PROTOCOL};
pub use config::{AcmeConfig, ExternalAccountBinding, DEFAULT_ORDER_TIMEOUT};
pub use dns01::{Rfc2136, TsigKey, EXCHANGE_TIMEOUT as DNS_EXCHANGE_TIMEOUT};
pub use error::AcmeError;
pub use renewal::RenewalWindow;

use challenge::{dns_01_response, tls_alpn_01_response};
use config::{external_account_key, http_client};
use error::describe;

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tokio::sync::OnceCell;

/// An issued certificate, ready for a `kubernetes.io/tls` Secret.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The chain as the CA sent it: leaf first, PEM.
    pub chain_pem: String,
    /// The leaf's private key (ECDSA P-256, PKCS#8), PEM.
    pub private_key_pem: String,
    /// The leaf's notAfter, from which renewal is scheduled.
    pub not_after: SystemTime,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

/// An ACME account at one CA, created on first use or restored from stored credentials; cheap
/// to share (`&self` everywhere), one order at a time or several concurrently.
pub struct AcmeClient {
    config: AcmeConfig,
    stored_credentials: Option<Vec<u8>>,
    account: OnceCell<(Account, Vec<u8>)>,
}

impl fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeClient").field("directory_url", &self.config.directory_url).finish_non_exhaustive()
    }
}

impl AcmeClient {
    /// A client that creates a new account on first use, agreeing to the CA's terms of service
    /// (as every unattended client must). No I/O here: a CA that is down
    /// surfaces as [`AcmeError::Account`] from the first call that needs it.
    pub fn new(config: AcmeConfig) -> Self {
        Self { config, stored_credentials: None, account: OnceCell::new() }
    }

    /// A client that restores the account from credentials earlier returned by
    /// [`AcmeClient::credentials_json`], so a restart or another replica keeps the same account
    /// (and its rate-limit standing) instead of registering a new one.
    pub fn restore(config: AcmeConfig, credentials_json: &[u8]) -> Self {
        Self { config, stored_credentials: Some(credentials_json.to_vec()), account: OnceCell::new() }
    }

    /// The account's credentials (its key, id and CA) as JSON, creating the account if needed,
    /// for the caller to store in a Secret or a file. Secret material: store it as such.
    pub async fn credentials_json(&self) -> Result<Vec<u8>, AcmeError> {
        let timeout = self.config.order_timeout;
        match tokio::time::timeout(timeout, self.account()).await {
            Ok(result) => result.map(|(_, json)| json.clone()),
            Err(_) => Err(AcmeError::Timeout(timeout)),
        }
    }

    /// Obtains a certificate for `identifiers` (DNS names, the first one the CSR's subject),
    /// answering each authorization with a challenge of `kind` through `responder`. Everything
    /// published is withdrawn before this returns, whatever the outcome; the whole call is
    /// bounded by [`AcmeConfig::order_timeout`].
    pub async fn order<R: ChallengeResponder>(
        &self,
        identifiers: &[String],
        kind: ChallengeKind,
        responder: &R,
    ) -> Result<IssuedCertificate, AcmeError> {
        if identifiers.is_empty() {
            return Err(AcmeError::Order("no identifiers".into()));
        }
        let timeout = self.config.order_timeout;
        let deadline = Instant::now() + timeout;
        let mut attempt = 1;
        loop {
            let mut published = Vec::new();
            let result = tokio::time::timeout_at(
                deadline.into(),
                self.drive(identifiers, kind, responder, deadline, &mut published),
            )
            .await;
            for challenge in &published {
                responder.withdraw(challenge).await;
            }
            match result {
                // instant-acme retries a `badNonce` answer only twice per request; a third in a
                // row fails the order, which is then started again a bounded number of times.
                Ok(Err(error)) if attempt < BAD_NONCE_ORDER_ATTEMPTS && is_bad_nonce(&error) => {
                    tracing::debug!(%error, attempt, "ACME order hit badNonce, starting it again");
                    attempt += 1;
                }
                Ok(result) => return result,
                Err(_) => return Err(AcmeError::Timeout(timeout)),
            }
        }
    }

    async fn account(&self) -> Result<&(Account, Vec<u8>), AcmeError> {
        self.account
            .get_or_try_init(|| async {
                let builder = Account::builder_with_http(Box::new(http_client(&self.config)?));
                if let Some(json) = &self.stored_credentials {
                    let credentials: AccountCredentials = serde_json::from_slice(json)
                        .map_err(|e| AcmeError::Config(format!("stored account credentials: {e}")))?;
                    let account =
                        builder.from_credentials(credentials).await.map_err(|e| AcmeError::Account(describe(&e)))?;
                    return Ok((account, json.clone()));
                }
                let eab = match &self.config.external_account {
                    Some(eab) => Some(external_account_key(eab)?),
                    None => None,
                };
                let contact = self.config.contact_email.as_ref().map(|email| format!("mailto:{email}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder
                    .create(
                        &NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false },
                        self.config.directory_url.clone(),
                        eab.as_ref(),
                    )
                    .await
                    .map_err(|e| AcmeError::Account(describe(&e)))?;
                let json = serde_json::to_vec(&credentials)
                    .map_err(|e| AcmeError::Account(format!("serializing credentials: {e}")))?;
                Ok((account, json))
            })
            .await
    }

    async fn drive<R: ChallengeResponder>(
        &self,
        identifiers: &[String],
        kind: ChallengeKind,
        responder: &R,
        deadline: Instant,
        published: &mut Vec<PublishedChallenge>,
    ) -> Result<IssuedCertificate, AcmeError> {
        let (account, _) = self.account().await?;
        let ids: Vec<Identifier> = identifiers.iter().map(|name| Identifier::Dns(name.clone())).collect();
        let mut order = account.new_order(&NewOrder::new(&ids)).await.map_err(|e| AcmeError::Order(describe(&e)))?;

        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization
                .map_err(|e| AcmeError::Authorization { identifier: "(unknown)".into(), detail: describe(&e) })?;
            // `*.example.com` for a wildcard (the DNS-01 record is at the bare domain, below).
            let identifier = authorization.identifier().to_string();
            let domain = match authorization.identifier().identifier {
                Identifier::Dns(domain) => Some(domain.clone()),
                _ => None,
            };
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(AcmeError::Authorization { identifier, detail: format!("authorization is {other:?}") })
                }
            }
            let Some(mut challenge) = authorization.challenge(kind.acme_type()) else {
                return Err(AcmeError::Authorization {
                    identifier,
                    detail: format!("the CA offers no {kind} challenge"),
                });
            };
            let key_authorization = challenge.key_authorization();
            let response = match kind {
                ChallengeKind::Http01 => ChallengeResponse::Http01 {
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                },
                ChallengeKind::TlsAlpn01 => tls_alpn_01_response(&identifier, key_authorization.digest().as_ref())
                    .map_err(|detail| AcmeError::Authorization { identifier: identifier.clone(), detail })?,
                ChallengeKind::Dns01 => match &domain {
                    Some(domain) => dns_01_response(domain, key_authorization.dns_value()),
                    None => {
                        return Err(AcmeError::Authorization {
                            identifier,
                            detail: "DNS-01 answers only DNS-name identifiers".into(),
                        })
                    }
                },
            };
            let to_publish = PublishedChallenge { identifier: identifier.clone(), response };
            responder
                .publish(&to_publish)
                .await
                .map_err(|detail| AcmeError::Publish { identifier: identifier.clone(), detail })?;
            published.push(to_publish);
            challenge.set_ready().await.map_err(|e| AcmeError::Authorization { identifier, detail: describe(&e) })?;
        }

        let status = order.poll_ready(&retry_policy(deadline)).await;
        match status {
            Ok(OrderStatus::Ready) => {}
            Err(instant_acme::Error::Timeout(_)) => return Err(AcmeError::Timeout(self.config.order_timeout)),
            Ok(_) | Err(_) => {
                let fallback = match status {
                    Ok(status) => format!("order is {status:?}"),
                    Err(e) => describe(&e),
                };
                return Err(failed_authorization(&mut order).await.unwrap_or(AcmeError::Order(fallback)));
            }
        }

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AcmeError::Finalize(format!("generating the key pair: {e}")))?;
        let csr = csr_params(identifiers)
            .and_then(|params| params.serialize_request(&key))
            .map_err(|e| AcmeError::Finalize(format!("building the CSR: {e}")))?;
        order.finalize_csr(csr.der()).await.map_err(|e| AcmeError::Finalize(describe(&e)))?;
        let chain_pem = order.poll_certificate(&retry_policy(deadline)).await.map_err(|e| match e {
            instant_acme::Error::Timeout(_) => AcmeError::Timeout(self.config.order_timeout),
            e => AcmeError::Finalize(describe(&e)),
        })?;
        let not_after = leaf_not_after(&chain_pem)?;
        Ok(IssuedCertificate { chain_pem, private_key_pem: key.serialize_pem(), not_after })
    }
}

/// The CSR: every identifier as a SAN, the subject only `CN=<first identifier>` (rcgen's
/// default subject names rcgen; a CA such as Let's Encrypt refuses a CN that is not a SAN), no
/// CN when the name is longer than the 64 characters a CN may hold.
fn csr_params(identifiers: &[String]) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(identifiers.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    if let Some(first) = identifiers.first().filter(|name| name.len() <= 64) {
        params.distinguished_name.push(DnType::CommonName, first.as_str());
    }
    Ok(params)
}

/// After an order went invalid: the first authorization that failed, with the CA's problem
/// detail from its challenge.
async fn failed_authorization(order: &mut Order) -> Option<AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let Ok(mut authorization) = authorization else {
            continue;
        };
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        if state.status == AuthorizationStatus::Valid {
            continue;
        }
        let identifier = state.identifier().to_string();
        let detail = state
            .challenges
            .iter()
            .find_map(|c| c.error.as_ref().map(|p| p.to_string()))
            .unwrap_or_else(|| format!("authorization is {:?}", state.status));
        return Some(AcmeError::Authorization { identifier, detail });
    }
    None
}

/// How many times an order is started when it failed on `badNonce` answers.
const BAD_NONCE_ORDER_ATTEMPTS: u32 = 3;

fn is_bad_nonce(error: &AcmeError) -> bool {
    let detail = match error {
        AcmeError::Account(d) | AcmeError::Order(d) | AcmeError::Finalize(d) => d,
        AcmeError::Authorization { detail, .. } => detail,
        _ => return false,
    };
    detail.contains("urn:ietf:params:acme:error:badNonce")
}

/// Polling with backoff (250 ms, ×1.5) until the order's deadline.
fn retry_policy(deadline: Instant) -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(deadline.saturating_duration_since(Instant::now()))
}

/// The leaf's (first certificate's) notAfter.
fn leaf_not_after(chain_pem: &str) -> Result<SystemTime, AcmeError> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or_else(|| AcmeError::Certificate("the chain holds no certificate".into()))?
        .map_err(|e| AcmeError::Certificate(format!("PEM: {e}")))?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&leaf).map_err(|e| AcmeError::Certificate(format!("leaf: {e}")))?;
    let seconds = parsed.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| AcmeError::Certificate("notAfter before 1970".into()))?;
    Ok(UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_alpn_01_certificate_carries_the_critical_acme_identifier() {
        let digest = [7u8; 32];
        let ChallengeResponse::TlsAlpn01 { certificate_der, .. } = tls_alpn_01_response("a.example", &digest).unwrap()
        else {
            panic!("not TLS-ALPN-01");
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&certificate_der).unwrap();
        let ext = cert.extensions().iter().find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31").unwrap();
        assert!(ext.critical);
        let mut expected = vec![0x04, 32];
        expected.extend_from_slice(&digest);
        assert_eq!(ext.value, &expected[..]);
        assert!(tls_alpn_01_response("a.example", &[0; 31]).is_err());
    }

    #[test]
    fn dns_01_record_is_at_the_bare_domain_fully_qualified() {
        for domain in ["example.com", "*.example.com", "example.com."] {
            let ChallengeResponse::Dns01 { record_name, value } = dns_01_response(domain, "v".into()) else {
                panic!("not DNS-01");
            };
            assert_eq!(record_name, "_acme-challenge.example.com.");
            assert_eq!(value, "v");
        }
        assert_eq!(ChallengeKind::Dns01.to_string(), "dns-01");
    }

    #[test]
    fn csr_subject_is_the_first_identifier_or_nothing() {
        let params = csr_params(&["a.example".into(), "b.example".into()]).unwrap();
        let cn = params.distinguished_name.get(&DnType::CommonName);
        assert_eq!(cn, Some(&rcgen::DnValue::Utf8String("a.example".into())));
        assert_eq!(params.distinguished_name.iter().count(), 1);
        assert_eq!(params.subject_alt_names.len(), 2);
        let long = format!("{}.example", "x".repeat(60));
        assert_eq!(csr_params(&[long]).unwrap().distinguished_name.iter().count(), 0);
    }

    #[test]
    fn eab_key_accepts_padded_and_unpadded_base64url() {
        for key in ["c2VjcmV0LWtleQ", "c2VjcmV0LWtleQ=="] {
            let eab = ExternalAccountBinding { kid: "kid".into(), hmac_key_base64url: key.into() };
            assert!(external_account_key(&eab).is_ok());
        }
        let bad = ExternalAccountBinding { kid: "kid".into(), hmac_key_base64url: "not base64!".into() };
        assert!(matches!(external_account_key(&bad), Err(AcmeError::Config(_))));
    }
}
