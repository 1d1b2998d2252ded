//! One BGP session as a Tokio task: connect (active open only), run the connection, and on
//! any failure wait with backoff and start over, until told to stop.

mod connection;
mod negotiate;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{PeerSpec, Route, SessionConfig};
use crate::metrics::PeerMetrics;
use crate::socket;
use crate::status::{SessionState, StatusCell};
use crate::wire::Notification;

pub(crate) use routes::normalize;

/// How long a restarted session waits for its predecessor to say goodbye.
const PREDECESSOR_GRACE: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// The speaker's side of a running session task.
#[derive(Debug)]
pub(crate) struct SessionHandle {
    pub(crate) config: SessionConfig,
    pub(crate) status: StatusCell,
    routes: watch::Sender<Arc<Vec<Route>>>,
    stop: watch::Sender<Option<Notification>>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// Starts the session task (inside the current Tokio runtime). A restarted session
    /// first waits (briefly) for `predecessor`, the task it replaces, to end.
    pub(crate) fn start(spec: PeerSpec, metrics: PeerMetrics, predecessor: Option<JoinHandle<()>>) -> Self {
        let status = StatusCell::new(&spec.name, spec.session.peer_address);
        let (routes, routes_rx) = watch::channel(Arc::new(normalize(spec.routes)));
        let (stop, stop_rx) = watch::channel(None);
        let session = Session {
            name: spec.name,
            config: spec.session.clone(),
            routes: routes_rx,
            stop: stop_rx,
            status: status.clone(),
            metrics,
        };
        let task = tokio::spawn(session.run(predecessor));
        Self { config: spec.session, status, routes, stop, task }
    }

    /// Hands new routes to the task, which sends only the difference.
    pub(crate) fn set_routes(&self, routes: Vec<Route>) {
        let routes = normalize(routes);
        self.routes.send_if_modified(|current| {
            let changed = **current != routes;
            if changed {
                *current = Arc::new(routes);
            }
            changed
        });
    }

    /// Tells the task to end the session with `reason` (a Cease NOTIFICATION) and returns
    /// the task, which ends soon after.
    pub(crate) fn stop(self, reason: Notification) -> JoinHandle<()> {
        self.stop.send_replace(Some(reason));
        self.task
    }
}

/// The task's state.
struct Session {
    name: String,
    config: SessionConfig,
    routes: watch::Receiver<Arc<Vec<Route>>>,
    stop: watch::Receiver<Option<Notification>>,
    status: StatusCell,
    metrics: PeerMetrics,
}

impl Session {
    async fn run(mut self, predecessor: Option<JoinHandle<()>>) {
        if let Some(predecessor) = predecessor {
            let _ = tokio::time::timeout(PREDECESSOR_GRACE, predecessor).await;
        }
        if let Err(error) = self.config.validate() {
            tracing::warn!(peer = %self.name, %error, "BGP session not started");
            self.status.set_error(format!("not started: {error}"));
            stop_requested(&mut self.stop).await;
            return;
        }
        let mut retry = FIRST_RETRY;
        loop {
            self.status.set_state(SessionState::Connect);
            let connected = tokio::select! {
                biased;
                _ = stop_requested(&mut self.stop) => break,
                connected = socket::connect(&self.config) => connected,
            };
            let error = match connected {
                Ok(stream) => match connection::run(&mut self, stream).await {
                    connection::Ended::Stopped => break,
                    connection::Ended::Failed { error, was_established } => {
                        if was_established {
                            retry = FIRST_RETRY;
                        }
                        error
                    }
                },
                Err(error) => error,
            };
            tracing::warn!(peer = %self.name, address = %self.config.peer_address, %error, "BGP session down");
            self.status.set_error(error);
            self.status.set_state(SessionState::Active);
            let delay = retry.mul_f64(0.75 + fastrand::f64() / 2.0);
            retry = (retry * 2).min(LAST_RETRY);
            tokio::select! {
                biased;
                _ = stop_requested(&mut self.stop) => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.status.set_state(SessionState::Idle);
    }
}

/// Waits until the speaker asks the session to end, and returns the NOTIFICATION to send.
/// A dropped speaker counts as an administrative shutdown.
async fn stop_requested(stop: &mut watch::Receiver<Option<Notification>>) -> Notification {
    match stop.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone().unwrap_or(Notification::ADMINISTRATIVE_SHUTDOWN),
        Err(_) => Notification::ADMINISTRATIVE_SHUTDOWN,
    }
}
