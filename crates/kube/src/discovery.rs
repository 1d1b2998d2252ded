//! Which optional API resources (Gateway API CRDs) the API server serves, from its
//! discovery documents.
//!
//! Listing a resource the server does not serve answers `404 page not found` in plain text,
//! which kube's client logs as a warning on every attempt; asking `GET /apis` (always served)
//! and then only the versions it names keeps a cluster without the Gateway API quiet.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;

/// How long one answer is reused: the watch tasks of every optional kind start (and retry)
/// together, and should cost one round of discovery requests, not one each.
const FRESH: Duration = Duration::from_secs(5);

/// The discovery documents of some API groups, asked at most every [`FRESH`].
pub(crate) struct Discovery {
    client: Client,
    /// The groups asked about.
    groups: &'static [&'static str],
    /// `group/version/plural` of every resource served, and when that was asked.
    cache: tokio::sync::Mutex<Option<(Instant, Arc<BTreeSet<String>>)>>,
}

impl Discovery {
    /// Discovery of `groups` through `client`.
    pub(crate) fn new(client: Client, groups: &'static [&'static str]) -> Self {
        Self { client, groups, cache: tokio::sync::Mutex::new(None) }
    }

    /// Whether the API server serves `plural` in `group`/`version`; `None` when discovery
    /// failed (the caller then lets the list request decide).
    pub(crate) async fn serves(&self, group: &str, version: &str, plural: &str) -> Option<bool> {
        // Held while asking, so that tasks asking together share one answer.
        let mut cache = self.cache.lock().await;
        let served = match &*cache {
            Some((at, served)) if at.elapsed() < FRESH => served.clone(),
            _ => match self.fetch().await {
                Ok(served) => {
                    let served = Arc::new(served);
                    *cache = Some((Instant::now(), served.clone()));
                    served
                }
                Err(error) => {
                    tracing::debug!(%error, "API discovery failed");
                    return None;
                }
            },
        };
        Some(served.contains(&format!("{group}/{version}/{plural}")))
    }

    async fn fetch(&self) -> Result<BTreeSet<String>, kube::Error> {
        let groups = self.client.list_api_groups().await?;
        let mut served = BTreeSet::new();
        for group in groups.groups.iter().filter(|g| self.groups.contains(&g.name.as_str())) {
            for version in &group.versions {
                let resources = self.client.list_api_group_resources(&version.group_version).await?;
                let names = resources.resources.iter().filter(|r| !r.name.contains('/'));
                served.extend(names.map(|r| format!("{}/{}", version.group_version, r.name)));
            }
        }
        Ok(served)
    }
}
