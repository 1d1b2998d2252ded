//! What an ACME client is configured with: the CA, the contact, extra roots to trust, external
//! account binding; and the HTTP client that trusts those roots.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use instant_acme::ExternalAccountKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use crate::AcmeError;

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

/// The HTTPS client for the CA: aws-lc-rs, the platform's roots plus the configured extra ones.
pub(crate) fn http_client(
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

pub(crate) fn external_account_key(eab: &ExternalAccountBinding) -> Result<ExternalAccountKey, AcmeError> {
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(eab.hmac_key_base64url.trim().trim_end_matches('='))
        .map_err(|e| AcmeError::Config(format!("EAB HMAC key is not base64url: {e}")))?;
    Ok(ExternalAccountKey::new(eab.kid.clone(), &key))
}
