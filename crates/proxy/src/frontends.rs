//! Gateway frontends bound as the snapshot says: one accept loop per address and port a
//! Gateway serves HTTP or HTTPS on. A frontend kept from one snapshot to the next is never
//! re-bound; one that goes stops accepting, and its open connections finish as they are.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use sluice_config::GatewayFrontends;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::DataPlane;

/// The accept loops of the Gateway frontends.
#[derive(Debug)]
pub struct GatewayListeners {
    plane: Arc<DataPlane>,
    /// Each bound frontend: whether it terminates TLS, and its accept loop.
    bound: Mutex<BTreeMap<SocketAddr, (bool, JoinHandle<()>)>>,
}

impl GatewayListeners {
    /// No frontend bound yet.
    pub fn new(plane: Arc<DataPlane>) -> Self {
        Self { plane, bound: Mutex::new(BTreeMap::new()) }
    }

    /// Binds the frontends of `frontends` not bound yet (and those whose TLS changed), stops
    /// those no longer there. Returns the addresses that could not be bound.
    pub async fn apply(&self, frontends: &GatewayFrontends) -> Vec<(SocketAddr, io::Error)> {
        let wanted: BTreeMap<SocketAddr, bool> = frontends.iter().map(|(a, f)| (*a, f.tls.is_some())).collect();
        let to_bind: Vec<(SocketAddr, bool)> = {
            let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
            bound.retain(|address, (tls, task)| {
                let keep = wanted.get(address) == Some(tls) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            wanted.iter().filter(|(a, _)| !bound.contains_key(a)).map(|(a, tls)| (*a, *tls)).collect()
        };
        let mut failures = Vec::new();
        for (address, tls) in to_bind {
            match self.bind(address, tls).await {
                Ok(task) => {
                    self.bound.lock().unwrap_or_else(PoisonError::into_inner).insert(address, (tls, task));
                }
                Err(e) => failures.push((address, e)),
            }
        }
        failures
    }

    async fn bind(&self, address: SocketAddr, tls: bool) -> io::Result<JoinHandle<()>> {
        let listener = TcpListener::bind(address).await?;
        let config = match tls {
            false => None,
            true => Some(
                crate::tls::frontend_config(
                    self.plane.snapshot.clone(),
                    address,
                    self.plane.options.tls_session_resumption,
                )
                .map_err(io::Error::other)?,
            ),
        };
        tracing::info!(%address, tls, "serving a Gateway frontend");
        Ok(tokio::spawn(crate::listener::serve_on(listener, self.plane.clone(), config, Some(address))))
    }
}

impl Drop for GatewayListeners {
    fn drop(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut *self.bound.lock().unwrap_or_else(PoisonError::into_inner)) {
            task.abort();
        }
    }
}
