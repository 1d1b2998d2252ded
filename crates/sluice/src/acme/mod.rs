//! Automatic HTTPS (issue 14): the ACME issuer of the `sluice` binary.
//!
//! Translation says which certificates are wanted (`kubernetes.io/tls-acme` Ingresses) and
//! what their Secrets hold; the [`issuer`] orders what is missing or due through
//! `sluice-acme`, publishes challenge answers through [`storage`] (the challenge Secret every
//! replica reads into its snapshot, or DNS for DNS-01) and stores the certificate in the
//! Ingress's Secret — leader only in a cluster, files under `--state-dir` on manifests. The
//! listeners serve what the snapshot says; nothing here touches the data plane.

pub mod issuer;
mod metrics;
mod responder;
pub mod storage;

use std::time::Duration;

use sluice_acme::{AcmeConfig, ChallengeKind, ExternalAccountBinding, Rfc2136, TsigKey};

pub use metrics::AcmeMetrics;

use crate::cli::{AcmeArgs, AcmeChallengeArg};

/// The directory used unless `--acme-directory` says otherwise.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The issuer's settings, checked at start-up.
#[derive(Debug)]
pub struct AcmeSettings {
    /// The CA and account.
    pub config: AcmeConfig,
    /// `--acme-challenge`, for hosts that are not wildcards.
    pub challenge: ChallengeKind,
    /// `--acme-dns-rfc2136` with its TSIG key.
    pub dns: Option<Rfc2136>,
    /// `--acme-retry-min`.
    pub retry_min: Duration,
    /// `--acme-gateways`.
    pub gateways: bool,
}

impl AcmeSettings {
    /// Reads the flags (and the CA bundle file); an error names the flag.
    pub fn from_args(args: &AcmeArgs) -> Result<Self, String> {
        let directory = args.acme_directory.clone().unwrap_or_else(|| LETS_ENCRYPT.to_owned());
        let mut config = AcmeConfig::new(directory);
        config.contact_email = args.acme_email.clone();
        if let Some(path) = &args.acme_ca_bundle {
            let pem = std::fs::read(path).map_err(|e| format!("--acme-ca-bundle {}: {e}", path.display()))?;
            config.extra_roots_pem = Some(pem);
        }
        if let (Some(kid), Some(hmac)) = (&args.acme_eab_kid, &args.acme_eab_hmac) {
            config.external_account =
                Some(ExternalAccountBinding { kid: kid.clone(), hmac_key_base64url: hmac.clone() });
        }
        let key = args
            .acme_dns_tsig
            .as_deref()
            .map(TsigKey::parse)
            .transpose()
            .map_err(|e| format!("--acme-dns-tsig: {e}"))?;
        let dns = args.acme_dns_rfc2136.map(|server| Rfc2136::new(server, key));
        let challenge = match args.acme_challenge {
            AcmeChallengeArg::Http01 => ChallengeKind::Http01,
            AcmeChallengeArg::TlsAlpn01 => ChallengeKind::TlsAlpn01,
        };
        Ok(Self {
            config,
            challenge,
            dns,
            retry_min: args.acme_retry_min.max(Duration::from_secs(1)),
            gateways: args.acme_gateways,
        })
    }
}
