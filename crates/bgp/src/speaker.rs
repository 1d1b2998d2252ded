//! The speaker: the set of sessions, reconciled to what the controller wants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::registry::Registry;

use crate::config::PeerSpec;
use crate::metrics::BgpMetrics;
use crate::session::SessionHandle;
use crate::status::PeerStatus;
use crate::wire::Notification;

/// The longest [`Speaker::shutdown`] waits for the sessions to say goodbye.
const SHUTDOWN_TIME: Duration = Duration::from_secs(2);

/// Announces routes to BGP peers over sessions it keeps up, as MetalLB's speaker does.
/// Cheap to clone (the clones share the sessions); every session runs as a Tokio task.
#[derive(Clone, Debug)]
pub struct Speaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: BgpMetrics,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<String, SessionHandle>,
    shut_down: bool,
}

impl Speaker {
    /// A speaker with no sessions, its metrics registered under `bgp` (`sluice_bgp_*`).
    pub fn new(registry: &mut Registry) -> Self {
        Self { inner: Arc::new(Inner { metrics: BgpMetrics::new(registry), state: Mutex::default() }) }
    }

    /// Reconciles the sessions to `peers` (keyed by [`PeerSpec::name`]): starts new ones,
    /// ends removed ones (NOTIFICATION Cease/Peer De-configured), restarts a session whose
    /// [`crate::SessionConfig`] changed (Cease/Other Configuration Change first), and hands
    /// unchanged sessions their routes, of which they send only the difference. Of two specs
    /// with the same name the last counts. Never waits for the network; must be called
    /// inside a Tokio runtime (it spawns the session tasks). Ignored after
    /// [`Speaker::shutdown`].
    pub fn apply(&self, peers: Vec<PeerSpec>) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.shut_down {
            tracing::warn!("BGP speaker is shut down: configuration ignored");
            return;
        }
        let mut wanted: HashMap<String, PeerSpec> = HashMap::new();
        for peer in peers {
            wanted.insert(peer.name.clone(), peer);
        }
        let removed: Vec<String> = state.sessions.keys().filter(|name| !wanted.contains_key(*name)).cloned().collect();
        for name in removed {
            if let Some(session) = state.sessions.remove(&name) {
                tracing::info!(peer = %name, "BGP peer removed");
                drop(session.stop(Notification::PEER_DECONFIGURED));
                self.inner.metrics.remove_peer(&name);
            }
        }
        for (name, peer) in wanted {
            let session = match state.sessions.remove(&name) {
                Some(session) if session.config == peer.session => {
                    session.set_routes(peer.routes);
                    session
                }
                Some(session) => {
                    tracing::info!(peer = %name, "BGP session configuration changed: restarting it");
                    let predecessor = session.stop(Notification::CONFIGURATION_CHANGE);
                    SessionHandle::start(peer, self.inner.metrics.for_peer(&name), Some(predecessor))
                }
                None => SessionHandle::start(peer, self.inner.metrics.for_peer(&name), None),
            };
            state.sessions.insert(name, session);
        }
    }

    /// Every session's state, sorted by peer name.
    pub fn status(&self) -> Vec<PeerStatus> {
        let state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<PeerStatus> = state.sessions.values().map(|session| session.status.get()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Ends every session with NOTIFICATION Cease/Administrative Shutdown, so that the peers
    /// drop our routes at once rather than after the hold time, and closes them; returns
    /// within about 2 s whatever the peers do. Later [`Speaker::apply`] calls are ignored.
    pub async fn shutdown(&self) {
        let sessions: Vec<SessionHandle> = {
            let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.shut_down = true;
            state.sessions.drain().map(|(_, session)| session).collect()
        };
        let tasks: Vec<_> =
            sessions.into_iter().map(|session| session.stop(Notification::ADMINISTRATIVE_SHUTDOWN)).collect();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_TIME;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}
