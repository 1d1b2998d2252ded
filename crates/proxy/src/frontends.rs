//! Gateway frontends bound as the snapshot says: one accept loop per address and port a
//! Gateway serves HTTP, HTTPS or TLS (passthrough or terminated) on. A frontend kept from one snapshot to the next is never
//! re-bound; one that goes stops accepting, and its open connections finish as they are.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use sluice_config::{FrontendMode, GatewayFrontends};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::DataPlane;

/// The accept loops of the Gateway frontends.
#[derive(Debug)]
pub struct GatewayListeners {
    plane: Arc<DataPlane>,
    /// Each bound frontend: what it speaks, and its accept loop.
    bound: Mutex<BTreeMap<SocketAddr, (Mode, JoinHandle<()>)>>,
}

/// What a frontend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Http,
    Https,
    Passthrough,
    Terminate,
}

impl Mode {
    fn of(frontend: &sluice_config::Frontend) -> Self {
        match frontend.mode {
            FrontendMode::Http => Mode::Http,
            FrontendMode::Https(_) => Mode::Https,
            FrontendMode::TlsPassthrough => Mode::Passthrough,
            FrontendMode::TlsTerminate(_) => Mode::Terminate,
        }
    }
}

impl GatewayListeners {
    /// No frontend bound yet.
    pub fn new(plane: Arc<DataPlane>) -> Self {
        Self { plane, bound: Mutex::new(BTreeMap::new()) }
    }

    /// Binds the frontends of `frontends` not bound yet (and those whose TLS changed), stops
    /// those no longer there. Returns the addresses that could not be bound.
    pub async fn apply(&self, frontends: &GatewayFrontends) -> Vec<(SocketAddr, io::Error)> {
        let wanted: BTreeMap<SocketAddr, Mode> = frontends.iter().map(|(a, f)| (*a, Mode::of(f))).collect();
        let to_bind: Vec<(SocketAddr, Mode)> = {
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
        for (address, mode) in to_bind {
            match self.bind(address, mode).await {
                Ok(task) => {
                    self.bound.lock().unwrap_or_else(PoisonError::into_inner).insert(address, (mode, task));
                }
                Err(e) => failures.push((address, e)),
            }
        }
        failures
    }

    async fn bind(&self, address: SocketAddr, mode: Mode) -> io::Result<JoinHandle<()>> {
        let listener = TcpListener::bind(address).await?;
        tracing::info!(%address, ?mode, "serving a Gateway frontend");
        let plane = self.plane.clone();
        let resumption = plane.options.tls_session_resumption;
        let config = match mode {
            Mode::Passthrough => {
                return Ok(tokio::spawn(crate::passthrough::serve_frontend(listener, plane, address, None)));
            }
            Mode::Terminate => {
                let config = crate::tls::frontend_config(plane.snapshot.clone(), address, resumption, false);
                let acceptor = tokio_rustls::TlsAcceptor::from(config.map_err(io::Error::other)?);
                let serve = crate::passthrough::serve_frontend(listener, plane, address, Some(acceptor));
                return Ok(tokio::spawn(serve));
            }
            Mode::Http => None,
            Mode::Https => {
                let config = crate::tls::frontend_config(plane.snapshot.clone(), address, resumption, true);
                Some(config.map_err(io::Error::other)?)
            }
        };
        Ok(tokio::spawn(crate::listener::serve_on(listener, plane, config, Some(address))))
    }
}

impl Drop for GatewayListeners {
    fn drop(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut *self.bound.lock().unwrap_or_else(PoisonError::into_inner)) {
            task.abort();
        }
    }
}
