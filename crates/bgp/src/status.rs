//! What each session is doing, for the controller's status and the operators.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// The state of one session, as RFC 4271 §8 names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SessionState {
    /// Not running: stopped, or a configuration that cannot start (see `last_error`).
    Idle,
    /// A TCP connection attempt is in progress.
    Connect,
    /// The last attempt failed or the session ended; waiting to retry (we never accept
    /// connections, so this is the wait between attempts).
    Active,
    /// Connected, our OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes are exchanged.
    Established,
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        })
    }
}

/// One session as [`crate::Speaker::status`] reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerStatus {
    /// The [`crate::PeerSpec::name`].
    pub name: String,
    /// The router's address.
    pub peer_address: IpAddr,
    /// Where the session is.
    pub state: SessionState,
    /// When the session last became Established; `None` unless it is now.
    pub established_since: Option<SystemTime>,
    /// Prefixes the peer has from us now.
    pub announced: usize,
    /// Why the session last failed, or why a route could not be announced; cleared when the
    /// session becomes Established without such a problem.
    pub last_error: Option<String>,
}

/// The status of one session, written by its task and read by `status()`.
#[derive(Clone, Debug)]
pub(crate) struct StatusCell(Arc<Mutex<PeerStatus>>);

impl StatusCell {
    pub(crate) fn new(name: &str, peer_address: IpAddr) -> Self {
        Self(Arc::new(Mutex::new(PeerStatus {
            name: name.to_owned(),
            peer_address,
            state: SessionState::Idle,
            established_since: None,
            announced: 0,
            last_error: None,
        })))
    }

    pub(crate) fn get(&self) -> PeerStatus {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut PeerStatus)) {
        change(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub(crate) fn set_state(&self, state: SessionState) {
        self.update(|status| {
            status.state = state;
            if state != SessionState::Established {
                status.established_since = None;
                status.announced = 0;
            }
        });
    }

    pub(crate) fn set_error(&self, error: impl Into<String>) {
        let error = error.into();
        self.update(|status| status.last_error = Some(error));
    }
}
