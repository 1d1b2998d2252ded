//! The issuer: works from each snapshot's managed certificates, ordering what is missing or
//! due for renewal, one order at a time, and storing the result where the sources read it
//! back. It never blocks serving: until a certificate is stored its hosts get the default
//! one, and a failed renewal leaves the old one served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sluice_acme::{AcmeClient, AcmeError, ChallengeKind, RenewalWindow};
use sluice_config::{ManagedCertificate, ObjectRef, SharedSnapshot};
use tokio::sync::watch;

use super::metrics::{AcmeMetrics, OrderResult};
use super::responder::Responder;
use super::storage::Storage;
use super::AcmeSettings;

/// Longest sleep between looks at the certificates (renewal information is asked again at
/// most this often).
const LOOK_AGAIN: Duration = Duration::from_secs(3600);
/// Longest wait after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// What the issuer remembers about one Secret between looks.
#[derive(Debug, Default)]
struct Progress {
    /// Failed orders in a row.
    failures: u32,
    /// No order before this.
    retry_at: Option<SystemTime>,
    /// Names and renewal time of a certificate issued here but maybe not in the snapshot yet.
    issued: Option<(Vec<String>, SystemTime)>,
    /// The CA's renewal window for the stored leaf, and when to ask again.
    window: Option<(Arc<[u8]>, Option<RenewalWindow>, SystemTime)>,
}

/// Where Events go (in a cluster).
pub struct EventSink {
    /// The API client.
    pub client: sluice_kube::kube::Client,
    /// `reportingInstance`.
    pub instance: String,
}

/// The running issuer.
pub struct Issuer {
    settings: AcmeSettings,
    storage: Storage,
    snapshot: Arc<SharedSnapshot>,
    metrics: AcmeMetrics,
    events: Option<EventSink>,
    /// Pause after publishing, for other replicas (cluster only).
    settle: Duration,
    client: Option<AcmeClient>,
    /// The account credentials are stored (once per run, after the first order).
    account_stored: bool,
    progress: BTreeMap<ObjectRef, Progress>,
}

impl Issuer {
    /// An issuer; nothing is ordered until [`Issuer::run`].
    pub fn new(
        settings: AcmeSettings,
        storage: Storage,
        snapshot: Arc<SharedSnapshot>,
        metrics: AcmeMetrics,
        events: Option<EventSink>,
    ) -> Self {
        let settle = match &storage {
            Storage::Kube { .. } => Duration::from_secs(2),
            Storage::Files { .. } => Duration::ZERO,
        };
        Self {
            settings,
            storage,
            snapshot,
            metrics,
            events,
            settle,
            client: None,
            account_stored: false,
            progress: BTreeMap::new(),
        }
    }

    /// Looks at the certificates whenever a snapshot is swapped in (`changed`) or something
    /// falls due, while `leader` says this replica is the one writing. Returns when `changed`
    /// closes.
    pub async fn run(mut self, mut changed: watch::Receiver<u64>, mut leader: watch::Receiver<bool>) {
        loop {
            changed.borrow_and_update();
            let wake = if *leader.borrow_and_update() { self.look().await } else { SystemTime::now() + LOOK_AGAIN };
            let sleep = wake.duration_since(SystemTime::now()).unwrap_or_default().min(LOOK_AGAIN);
            tokio::select! {
                result = changed.changed() => if result.is_err() { return },
                result = leader.changed() => if result.is_err() { return },
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Orders what is due; returns when to look again.
    async fn look(&mut self) -> SystemTime {
        let snapshot = self.snapshot.load_full();
        let managed = &snapshot.acme.certificates;
        self.metrics.expiries(managed);
        self.progress.retain(|secret, _| managed.iter().any(|m| m.secret == *secret));
        let mut wake = SystemTime::now() + LOOK_AGAIN;
        for certificate in managed.iter() {
            let due = self.due(certificate).await;
            if due <= SystemTime::now() {
                self.order(certificate).await;
                // Whatever happened, the snapshot changes or a retry is scheduled.
                let progress = self.progress.entry(certificate.secret.clone()).or_default();
                if let Some(retry) = progress.retry_at {
                    wake = wake.min(retry);
                }
            } else {
                wake = wake.min(due);
            }
        }
        wake
    }

    /// When `certificate` should be ordered: now when missing or not covering its names,
    /// else at its renewal time (the CA's window when it gives one, if earlier), never before
    /// a retry time after failures.
    async fn due(&mut self, certificate: &ManagedCertificate) -> SystemTime {
        let now = SystemTime::now();
        let mut renew = if certificate.covers_names() {
            let facts = certificate.current.as_ref().map(|c| (c.renew_at(), c.leaf_der.clone()));
            match facts {
                Some((renew_at, leaf)) => {
                    self.window(&certificate.secret, leaf).await.map_or(renew_at, |w| w.start.min(renew_at))
                }
                None => now,
            }
        } else {
            now
        };
        let progress = self.progress.entry(certificate.secret.clone()).or_default();
        if renew <= now {
            // Issued here but not yet read back: wait for the source, not the CA.
            if let Some((names, renew_at)) = &progress.issued {
                if certificate.names.iter().all(|n| names.contains(n)) && *renew_at > now {
                    renew = *renew_at;
                }
            }
        }
        match progress.retry_at {
            Some(retry) if retry > renew => retry,
            _ => renew,
        }
    }

    /// The CA's renewal window for the stored leaf, asked at most once per its
    /// `Retry-After` (and at most hourly).
    async fn window(&mut self, secret: &ObjectRef, leaf: Arc<[u8]>) -> Option<RenewalWindow> {
        let now = SystemTime::now();
        if let Some((seen, window, ask_again)) = &self.progress.get(secret).and_then(|p| p.window.as_ref()) {
            if *seen == leaf && *ask_again > now {
                return *window;
            }
        }
        self.ensure_client().await;
        let client = self.client.as_ref()?;
        let (window, ask_again) = match client.renewal_window(&leaf).await {
            Ok(Some(window)) => (Some(window), now + window.ask_again_after.clamp(Duration::from_secs(60), LOOK_AGAIN)),
            Ok(None) => (None, now + LOOK_AGAIN),
            Err(error) => {
                tracing::debug!(%error, %secret, "no ACME renewal information");
                (None, now + LOOK_AGAIN)
            }
        };
        self.progress.entry(secret.clone()).or_default().window = Some((leaf, window, ask_again));
        window
    }

    /// The ACME client, with the stored account when there is one.
    async fn ensure_client(&mut self) {
        if self.client.is_some() {
            return;
        }
        let directory = self.settings.config.directory_url.clone();
        let stored = match self.storage.load_account(&directory).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "cannot read the stored ACME account; a new one is created");
                None
            }
        };
        self.account_stored = stored.is_some();
        let config = self.settings.config.clone();
        self.client = Some(match stored {
            Some(json) => AcmeClient::restore(config, &json),
            None => AcmeClient::new(config),
        });
    }

    /// Orders `certificate` and stores it, or schedules the retry.
    async fn order(&mut self, certificate: &ManagedCertificate) {
        let kind = if certificate.has_wildcard() { ChallengeKind::Dns01 } else { self.settings.challenge };
        tracing::info!(secret = %certificate.secret, names = ?certificate.names, challenge = %kind, "ordering a certificate");
        self.ensure_client().await;
        let Some(client) = self.client.as_ref() else { return };
        let responder = Responder::new(&self.storage, &self.snapshot, self.settings.dns.as_ref(), self.settle);
        let result = client.order(&certificate.names, kind, &responder).await;
        self.remember_account().await;
        let outcome = match result {
            Ok(issued) => {
                match self
                    .storage
                    .save_certificate(&certificate.secret, &issued.chain_pem, &issued.private_key_pem)
                    .await
                {
                    Ok(()) => {
                        let lifetime = issued.not_after.duration_since(SystemTime::now()).unwrap_or_default();
                        let renew_at = SystemTime::now() + lifetime * 2 / 3;
                        Ok((renew_at, issued.not_after))
                    }
                    Err(error) => {
                        Err((OrderResult::StoreFailed, AcmeError::Certificate(format!("storing it: {error}"))))
                    }
                }
            }
            Err(error) => Err((OrderResult::Failed, error)),
        };
        let progress = self.progress.entry(certificate.secret.clone()).or_default();
        match outcome {
            Ok((renew_at, not_after)) => {
                progress.failures = 0;
                progress.retry_at = None;
                progress.issued = Some((certificate.names.clone(), renew_at));
                self.metrics.order(OrderResult::Issued);
                let expires = humantime::format_rfc3339_seconds(not_after);
                tracing::info!(secret = %certificate.secret, names = ?certificate.names, %expires, "certificate issued");
                let note = format!(
                    "certificate for {} issued, stored in {}, expires {expires}",
                    certificate.names.join(", "),
                    certificate.secret
                );
                self.event(certificate, false, "Issued", note).await;
            }
            Err((result, error)) => {
                progress.failures = progress.failures.saturating_add(1);
                let mut backoff = backoff(self.settings.retry_min, progress.failures);
                if is_rate_limited(&error) {
                    // The CA says how long its limits last in hours (Let's Encrypt: weekly and
                    // hourly windows); hammering it only extends them.
                    backoff = backoff.max(RATE_LIMITED_BACKOFF);
                }
                progress.retry_at = Some(SystemTime::now() + backoff);
                self.metrics.order(result);
                tracing::warn!(secret = %certificate.secret, names = ?certificate.names, %error, retry_in = ?backoff, "certificate order failed; hosts keep their current certificate");
                let note = format!(
                    "ordering a certificate for {} failed, retrying in {}: {error}",
                    certificate.names.join(", "),
                    humantime::format_duration(backoff)
                );
                self.event(certificate, true, "OrderFailed", note).await;
            }
        }
    }

    /// Stores the account credentials once per run (created by the first order).
    async fn remember_account(&mut self) {
        if self.account_stored {
            return;
        }
        let Some(client) = self.client.as_ref() else { return };
        if let Ok(json) = client.credentials_json().await {
            match self.storage.save_account(&self.settings.config.directory_url, &json).await {
                Ok(()) => self.account_stored = true,
                Err(error) => tracing::warn!(%error, "cannot store the ACME account"),
            }
        }
    }

    async fn event(&self, certificate: &ManagedCertificate, warning: bool, reason: &'static str, note: String) {
        let Some(sink) = &self.events else { return };
        for object in &certificate.requested_by {
            let facts = sluice_kube::EventFacts { warning, reason, action: "Order", note: note.clone() };
            if let Err(error) = sluice_kube::post_event(&sink.client, &sink.instance, object, facts).await {
                tracing::debug!(%error, %object, "cannot post an Event");
            }
        }
    }
}

/// `retry_min`, doubled for each failure after the first, at most a day.
fn backoff(retry_min: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    retry_min.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Least wait after the CA answered `rateLimited`.
const RATE_LIMITED_BACKOFF: Duration = Duration::from_secs(3600);

/// True when the CA refused for its rate limits (RFC 8555 `rateLimited` problem).
fn is_rate_limited(error: &AcmeError) -> bool {
    error.to_string().contains("urn:ietf:params:acme:error:rateLimited")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_a_day() {
        let minute = Duration::from_secs(60);
        assert_eq!(backoff(minute, 1), minute);
        assert_eq!(backoff(minute, 2), minute * 2);
        assert_eq!(backoff(minute, 4), minute * 8);
        assert_eq!(backoff(minute, 30), MAX_BACKOFF);
        assert_eq!(backoff(minute, u32::MAX), MAX_BACKOFF);
    }
}
