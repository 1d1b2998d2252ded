//! The ACME client core of Sluice's automatic HTTPS (issue 14): an account at one CA, and
//! orders driven from "these names" to "this certificate chain and key".
//!
//! What the CA checks is published through a [`ChallengeResponder`] the caller implements, so
//! this crate does no serving, storage or Kubernetes work of its own: the proxy answers
//! HTTP-01 and TLS-ALPN-01, the caller stores the account credentials
//! ([`AcmeClient::credentials_json`]) and the issued certificate. Not wired into the proxy yet.
//!
//! The protocol itself is instant-acme's (which already retries `badNonce` answers: three
//! attempts per request); this crate picks challenges, builds the RFC 8737 certificate, the key
//! pair and the CSR, bounds every order in time and names what failed in [`AcmeError`].

#![deny(missing_docs)]

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey, Identifier, NewAccount,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tokio::sync::OnceCell;

/// How long an order may take by default, account creation included: long enough for a real
/// CA's validation, short enough that a stuck CA does not hold a renewal loop forever.
pub const DEFAULT_ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// External account binding (RFC 8555 §7.3.4), which CAs such as ZeroSSL or a company's own
/// CA require to tie the ACME account to an account the user already has with them.
#[derive(Clone)]
pub struct ExternalAccountBinding {
    /// The key identifier the CA gave the user.
    pub kid: String,
    /// The HMAC key the CA gave the user, base64url as CAs hand it out (padding optional).
    pub hmac_key_base64url: String,
}

impl fmt::Debug for ExternalAccountBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The HMAC key is a secret: never in logs.
        f.debug_struct("ExternalAccountBinding").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Which CA to talk to and as whom: everything the flags (`--acme-directory`, `--acme-email`,
/// `--acme-ca-bundle`, `--acme-eab-*`) say, so the client needs nothing else.
#[derive(Clone, Debug)]
pub struct AcmeConfig {
    /// The CA's directory URL (Let's Encrypt's, a private CA's, pebble's in tests).
    pub directory_url: String,
    /// Where the CA sends expiry and policy mail; optional in ACME.
    pub contact_email: Option<String>,
    /// PEM certificates trusted for the CA's own HTTPS endpoint besides the system roots: a
    /// private or test CA (the caller reads `--acme-ca-bundle` into this).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Set when the CA requires external account binding.
    pub external_account: Option<ExternalAccountBinding>,
    /// The bound on one [`AcmeClient::order`] call, from the first request to the chain.
    pub order_timeout: Duration,
}

impl AcmeConfig {
    /// A configuration for `directory_url` with no contact, no extra roots, no EAB and the
    /// default timeout: the common case, adjusted field by field.
    pub fn new(directory_url: impl Into<String>) -> Self {
        Self {
            directory_url: directory_url.into(),
            contact_email: None,
            extra_roots_pem: None,
            external_account: None,
            order_timeout: DEFAULT_ORDER_TIMEOUT,
        }
    }
}

/// Which challenge type the CA is asked to validate; an enum so DNS-01 can be added later
/// without changing callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeKind {
    /// RFC 8555 §8.3: a file under `/.well-known/acme-challenge/` on port 80.
    Http01,
    /// RFC 8737: a special certificate served for ALPN `acme-tls/1` on port 443.
    TlsAlpn01,
}

impl ChallengeKind {
    fn acme_type(self) -> ChallengeType {
        match self {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
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

/// What failed, named so that diagnostics and metrics can say it: the CA's problem document
/// (type and detail) is carried in the `detail` strings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcmeError {
    /// The configuration cannot be used (unreadable CA bundle, bad EAB key, bad credentials).
    Config(String),
    /// The account could not be created or restored (includes a CA that cannot be reached).
    Account(String),
    /// The CA refused the new order, or the order failed without an authorization to blame.
    Order(String),
    /// An identifier could not be authorized: no challenge of the kind, or the CA's validation
    /// failed (its problem detail), or the authorization is in a final bad state.
    Authorization {
        /// The DNS name.
        identifier: String,
        /// Why, with the CA's problem detail when it gave one.
        detail: String,
    },
    /// The caller's [`ChallengeResponder::publish`] failed.
    Publish {
        /// The DNS name.
        identifier: String,
        /// The responder's error.
        detail: String,
    },
    /// Key generation, CSR, finalization or the certificate download failed.
    Finalize(String),
    /// The certificate the CA returned could not be read.
    Certificate(String),
    /// The order did not complete within [`AcmeConfig::order_timeout`].
    Timeout(Duration),
}

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcmeError::Config(d) => write!(f, "ACME configuration: {d}"),
            AcmeError::Account(d) => write!(f, "ACME account: {d}"),
            AcmeError::Order(d) => write!(f, "ACME order: {d}"),
            AcmeError::Authorization { identifier, detail } => {
                write!(f, "ACME authorization of {identifier}: {detail}")
            }
            AcmeError::Publish { identifier, detail } => {
                write!(f, "publishing the ACME challenge for {identifier}: {detail}")
            }
            AcmeError::Finalize(d) => write!(f, "ACME finalize: {d}"),
            AcmeError::Certificate(d) => write!(f, "ACME certificate: {d}"),
            AcmeError::Timeout(t) => write!(f, "ACME order timed out after {t:?}"),
        }
    }
}

impl std::error::Error for AcmeError {}

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
            let identifier = authorization.identifier().to_string();
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

/// An instant-acme error as text, the CA's problem document (type, detail, subproblems)
/// included.
fn describe(error: &instant_acme::Error) -> String {
    match error {
        instant_acme::Error::Api(problem) => problem.to_string(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// The HTTPS client for the CA: aws-lc-rs, the platform's roots plus the configured extra ones.
fn http_client(
    config: &AcmeConfig,
) -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        instant_acme::BodyWrapper<bytes::Bytes>,
    >,
    AcmeError,
> {
    let mut extra = Vec::new();
    if let Some(pem) = &config.extra_roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            extra.push(cert.map_err(|e| AcmeError::Config(format!("CA bundle: {e}")))?);
        }
        if extra.is_empty() {
            return Err(AcmeError::Config("CA bundle holds no certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
        .map_err(|e| AcmeError::Config(format!("certificate verifier: {e}")))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

fn external_account_key(eab: &ExternalAccountBinding) -> Result<ExternalAccountKey, AcmeError> {
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(eab.hmac_key_base64url.trim().trim_end_matches('='))
        .map_err(|e| AcmeError::Config(format!("EAB HMAC key is not base64url: {e}")))?;
    Ok(ExternalAccountKey::new(eab.kid.clone(), &key))
}

/// The RFC 8737 §3 certificate: self-signed, SAN = the identifier, critical `acmeIdentifier`
/// (1.3.6.1.5.5.7.1.31) holding the SHA-256 of the key authorization as an OCTET STRING.
fn tls_alpn_01_response(identifier: &str, digest: &[u8]) -> Result<ChallengeResponse, String> {
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
