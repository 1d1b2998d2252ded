//! ACME Renewal Information (RFC 9773): when the CA would like a certificate renewed, which
//! can be earlier than the usual two-thirds of its lifetime (a revocation coming, a CA
//! incident) or spread out to avoid load spikes.

use std::time::{Duration, SystemTime};

use instant_acme::CertificateIdentifier;
use rustls_pki_types::CertificateDer;

use crate::error::describe;
use crate::{AcmeClient, AcmeError};

/// The CA's suggested renewal window for one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewalWindow {
    /// Renew no earlier than this…
    pub start: SystemTime,
    /// …and no later than this.
    pub end: SystemTime,
    /// Ask again after this long (the CA's `Retry-After`).
    pub ask_again_after: Duration,
}

impl AcmeClient {
    /// The CA's renewal window for the certificate whose leaf is `leaf_der`; `Ok(None)` when
    /// the CA offers no renewal information (then two-thirds of the lifetime applies).
    pub async fn renewal_window(&self, leaf_der: &[u8]) -> Result<Option<RenewalWindow>, AcmeError> {
        let der = CertificateDer::from(leaf_der);
        let id = CertificateIdentifier::try_from(&der)
            .map_err(|e| AcmeError::Certificate(format!("no renewal identifier: {e}")))?;
        let (account, _) = self.account().await?;
        match account.renewal_info(&id).await {
            Ok((info, ask_again_after)) => {
                let time = |t: time::OffsetDateTime| {
                    let seconds = u64::try_from(t.unix_timestamp()).unwrap_or(0);
                    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
                };
                let (start, end) = (time(info.suggested_window.start), time(info.suggested_window.end));
                Ok(Some(RenewalWindow { start, end: end.max(start), ask_again_after }))
            }
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(AcmeError::Order(format!("renewal information: {}", describe(&e)))),
        }
    }
}
