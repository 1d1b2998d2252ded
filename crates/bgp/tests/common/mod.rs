//! Test support: a node namespace running the speaker, and real routers (bird2, FRR) in
//! their own namespaces.

#![allow(dead_code)] // each test binary uses part of it

use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_bgp::{PeerSpec, PeerStatus, Route, SessionConfig, SessionState, Speaker};
use sluice_testnet::{wait_until, Netns};
use tokio::runtime::Runtime;

/// Generous bound for anything the tests wait for.
pub const WAIT: Duration = Duration::from_secs(20);

/// A namespace with the speaker running on a Tokio runtime whose threads are inside it.
pub struct Node {
    runtime: Option<Runtime>,
    pub speaker: Speaker,
    registry: Registry,
    pub ns: Netns,
}

impl Node {
    pub fn new(prefix: &str) -> Self {
        let ns = Netns::new(prefix).unwrap();
        // The worker threads are spawned by this thread, inside the namespace: every socket
        // the session tasks open belongs to it.
        let runtime = ns
            .enter(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build())
            .unwrap()
            .unwrap();
        let mut registry = Registry::with_prefix("sluice");
        let speaker = Speaker::new(&mut registry);
        Self { runtime: Some(runtime), speaker, registry, ns }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().unwrap()
    }

    pub fn apply(&self, peers: Vec<PeerSpec>) {
        let _inside = self.runtime().enter();
        self.speaker.apply(peers);
    }

    /// Runs `future` on a worker thread (inside the namespace).
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    pub fn shutdown(&self) {
        self.block_on(self.speaker.shutdown());
    }

    pub fn status(&self, name: &str) -> PeerStatus {
        self.speaker.status().into_iter().find(|s| s.name == name).expect("no such peer")
    }

    pub fn wait_established(&self, name: &str) -> bool {
        wait_until(WAIT, || self.status(name).state == SessionState::Established)
    }

    /// The value of one exported sample, e.g. `sluice_bgp_session_up{peer="a/b"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        self.metrics().lines().find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
    }

    pub fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A session config with short timers for tests.
pub fn session(peer: &str, peer_asn: u32, local_asn: u32) -> SessionConfig {
    SessionConfig {
        peer_address: peer.parse().unwrap(),
        peer_port: 179,
        peer_asn,
        local_asn,
        router_id: "198.18.255.1".parse().unwrap(),
        source_address: None,
        hold_time: Duration::from_secs(30),
        keepalive_time: None,
        connect_time: Duration::from_secs(2),
        password: None,
        ebgp_multihop: false,
    }
}

pub fn route(prefix: &str, communities: &[&str], local_pref: Option<u32>) -> Route {
    Route {
        prefix: prefix.parse().unwrap(),
        communities: communities.iter().map(|c| c.parse().unwrap()).collect(),
        local_pref,
    }
}

pub fn peer(name: &str, session: SessionConfig, routes: Vec<Route>) -> PeerSpec {
    PeerSpec { name: name.to_owned(), session, routes }
}
