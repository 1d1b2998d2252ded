//! The set of running listeners, reconciled with each snapshot's [`L4Table`].

use sluice_access_log::AccessLog;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use sluice_config::{L4Key, L4Listener, L4Protocol, L4Table};
use tokio::task::JoinHandle;

use crate::metrics::{L4Metrics, ListenerMetrics};
use crate::socket::{bind_tcp, bind_udp};
use crate::tcp::accept_loop;
use crate::udp::{receive_loop, UdpControl};

/// A listener's configuration with its metric handles, read once per new connection or flow
/// and kept by it to its end.
#[derive(Debug)]
pub(crate) struct Current {
    pub config: L4Listener,
    pub metrics: ListenerMetrics,
    /// Where each connection's or flow's line goes.
    pub log: AccessLog,
}

/// One bound listener.
#[derive(Debug)]
enum Running {
    /// Aborting the accept task closes the socket; connections run on their own tasks.
    Tcp { current: Arc<ArcSwap<Current>>, task: JoinHandle<()> },
    /// The receive loop also relays for existing flows, so stopping it means draining.
    Udp { control: Arc<UdpControl>, task: JoinHandle<()> },
}

#[derive(Debug, Default)]
struct Listeners {
    running: BTreeMap<L4Key, Running>,
    /// Tasks told to stop whose sockets may still be open; awaited before binding again.
    closing: Vec<JoinHandle<()>>,
}

impl Listeners {
    /// Stops accepting on `key`: a TCP listener closes now, a UDP one drains (it stays in
    /// `running` so that it can resume if the key comes back before its flows expire).
    fn stop(&mut self, key: &L4Key) {
        match self.running.get(key) {
            Some(Running::Tcp { .. }) => {
                if let Some(Running::Tcp { task, .. }) = self.running.remove(key) {
                    task.abort();
                    self.closing.push(task);
                }
            }
            Some(Running::Udp { control, .. }) => control.drain(),
            None => {}
        }
    }

    /// Forgets UDP listeners whose loop has closed.
    fn prune_closed(&mut self) {
        let closed: Vec<L4Key> = self
            .running
            .iter()
            .filter(|(_, running)| matches!(running, Running::Udp { control, .. } if control.is_closed()))
            .map(|(key, _)| *key)
            .collect();
        for key in closed {
            if let Some(Running::Udp { task, .. }) = self.running.remove(&key) {
                self.closing.push(task);
            }
        }
    }
}

/// The L4 data plane: one per process, owning every L4 listener socket so that each
/// snapshot only changes what differs and established traffic is never cut by a reload.
#[derive(Debug)]
pub struct L4Plane {
    /// `--access-log`: one line per connection and flow.
    log: AccessLog,
    metrics: Arc<L4Metrics>,
    listeners: Mutex<Listeners>,
    /// Serialises `apply` calls; `listeners` itself is never locked across an await.
    applying: tokio::sync::Mutex<()>,
}

impl L4Plane {
    /// An empty plane; nothing is bound until [`L4Plane::apply`]. The metrics are shared so
    /// that the caller keeps exporting them.
    pub fn new(metrics: Arc<L4Metrics>, log: AccessLog) -> Self {
        Self { metrics, log, listeners: Mutex::new(Listeners::default()), applying: tokio::sync::Mutex::new(()) }
    }

    fn listeners(&self) -> MutexGuard<'_, Listeners> {
        self.listeners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reconciles the running listeners with `table`: binds new (protocol, address) keys,
    /// stops accepting on keys no longer present (their established TCP connections and UDP
    /// flows finish on their own), and hands changed listeners (endpoints, options) to the
    /// running accept loops so NEW connections/flows use them. Never closes or re-binds a
    /// listener whose key stays. Returns the keys it could not bind, with the error, so the
    /// caller reports them.
    ///
    /// Must be called within a Tokio runtime: listeners run as tasks on it.
    pub async fn apply(&self, table: &L4Table) -> Vec<(L4Key, io::Error)> {
        let _applying = self.applying.lock().await;
        let mut to_bind = Vec::new();
        let closing = {
            let mut listeners = self.listeners();
            listeners.prune_closed();
            let gone: Vec<L4Key> =
                listeners.running.keys().filter(|key| !table.listeners.contains_key(key)).copied().collect();
            for key in &gone {
                listeners.stop(key);
            }
            for (key, config) in &table.listeners {
                let metrics = self.metrics.for_listener(config);
                let current = Arc::new(Current { config: config.clone(), metrics, log: self.log.clone() });
                let kept = match listeners.running.get(key) {
                    // An accept loop only ends by abort or panic; a finished one is re-bound.
                    Some(Running::Tcp { current: shared, task }) if !task.is_finished() => {
                        shared.store(current.clone());
                        true
                    }
                    Some(Running::Tcp { .. }) => false,
                    Some(Running::Udp { control, .. }) => control.resume(current.clone()),
                    None => false,
                };
                if !kept {
                    if let Some(Running::Udp { task, .. } | Running::Tcp { task, .. }) = listeners.running.remove(key) {
                        listeners.closing.push(task);
                    }
                    to_bind.push((*key, current));
                }
            }
            std::mem::take(&mut listeners.closing)
        };
        // The old sockets are closed once their tasks have ended.
        for task in closing {
            let _ = task.await;
        }
        let mut errors = Vec::new();
        for (key, current) in to_bind {
            match start(key, current) {
                Ok(running) => {
                    self.listeners().running.insert(key, running);
                }
                Err(error) => {
                    tracing::warn!(protocol = ?key.0, address = %key.1, %error, "l4: cannot bind listener");
                    errors.push((key, error));
                }
            }
        }
        errors
    }

    /// Stops accepting everywhere (for shutdown); established connections continue.
    pub fn stop_accepting(&self) {
        let mut listeners = self.listeners();
        let keys: Vec<L4Key> = listeners.running.keys().copied().collect();
        for key in &keys {
            listeners.stop(key);
        }
    }
}

impl Drop for L4Plane {
    /// A dropped plane stops accepting, so its listener tasks do not outlive it.
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

/// Binds `key` and starts its task.
fn start(key: L4Key, current: Arc<Current>) -> io::Result<Running> {
    let (protocol, address) = key;
    Ok(match protocol {
        L4Protocol::Tcp => {
            let listener = bind_tcp(address)?;
            let current = Arc::new(ArcSwap::new(current));
            let task = tokio::spawn(accept_loop(listener, current.clone()));
            Running::Tcp { current, task }
        }
        L4Protocol::Udp => {
            let socket = bind_udp(address)?;
            let control = Arc::new(UdpControl::new(current));
            let task = tokio::spawn(receive_loop(socket, control.clone()));
            Running::Udp { control, task }
        }
    })
}
