//! Making LoadBalancer addresses reachable: the snapshot's announcements, with the live
//! replicas, become this node's plan ([`plan`]), which drives the local addresses (so the
//! node accepts their traffic), the ARP/NDP answers of the addresses it holds, and the BGP
//! sessions. Re-planned on every new snapshot and every change of the live replicas.

mod plan;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use sluice_announce::{L2Announcer, LocalAddresses};
use sluice_bgp::Speaker;
use sluice_config::{BgpPeer, SharedSnapshot, Snapshot};
use tokio::sync::{watch, OnceCell};

use plan::Plan;

/// This replica's announcer.
pub(crate) struct Announcer {
    node: String,
    live: watch::Receiver<BTreeSet<String>>,
    l2: L2Announcer,
    bgp: Speaker,
    /// Opened on first need: a Sluice that announces nothing never touches the network
    /// configuration.
    local: OnceCell<Option<LocalAddresses>>,
    applied: Mutex<Plan>,
}

impl Announcer {
    /// An announcer for `node`; `live` says which replicas run (just this one without a
    /// cluster).
    pub(crate) fn new(registry: &mut Registry, node: String, live: watch::Receiver<BTreeSet<String>>) -> Self {
        Self {
            node,
            live,
            l2: L2Announcer::new(registry),
            bgp: Speaker::new(registry),
            local: OnceCell::new(),
            applied: Mutex::new(Plan::default()),
        }
    }

    /// Adds the snapshot's announced addresses to this node (and removes those no longer
    /// announced), before the listeners on them are bound.
    pub(crate) async fn prepare(&self, snapshot: &Snapshot) {
        let wanted: BTreeSet<IpAddr> = snapshot
            .l4
            .announcements
            .addresses
            .iter()
            .filter(|(_, a)| a.l2.is_some() || !a.bgp.is_empty())
            .map(|(ip, _)| *ip)
            .collect();
        if wanted.is_empty() && !self.local.initialized() {
            return;
        }
        let local = self
            .local
            .get_or_init(|| async {
                LocalAddresses::new()
                    .await
                    .map_err(|e| tracing::error!(error = %e, "cannot open netlink: announced addresses are not added"))
                    .ok()
            })
            .await;
        if let Some(local) = local {
            for problem in local.apply(&wanted).await {
                tracing::warn!(problem, "announced address");
            }
        }
    }

    /// Re-plans on every new snapshot (`changed`) and every change of the live replicas,
    /// until the task is aborted.
    pub(crate) fn spawn(self: &Arc<Self>, snapshot: Arc<SharedSnapshot>, mut changed: watch::Receiver<u64>) {
        let this = self.clone();
        let mut live = self.live.clone();
        tokio::spawn(async move {
            // Without a cluster the live set never changes (its sender is gone).
            let mut live_follows = true;
            loop {
                this.announce(&snapshot.load()).await;
                tokio::select! {
                    result = changed.changed() => if result.is_err() { break },
                    result = live.changed(), if live_follows => live_follows = result.is_ok(),
                }
            }
        });
    }

    /// Applies this node's plan for `snapshot` now.
    pub(crate) async fn announce(&self, snapshot: &Snapshot) {
        let live = self.live.borrow().clone();
        let next = plan::plan(&snapshot.l4.announcements, &self.node, &live, |peer| router_id(peer, &self.node));
        let unchanged = *self.applied.lock().unwrap_or_else(|p| p.into_inner()) == next;
        if unchanged {
            return;
        }
        for problem in self.l2.apply(&next.l2).await {
            tracing::warn!(problem, "L2 announcement");
        }
        self.bgp.apply(next.bgp.clone());
        let held: Vec<String> = next.l2.keys().map(IpAddr::to_string).collect();
        tracing::info!(node = %self.node, live = ?live, held = ?held, bgp_peers = next.bgp.len(), "announcements applied");
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// Stops announcing: BGP peers are told to drop our routes (Cease), ARP/NDP answers
    /// stop. The addresses stay until [`Announcer::release`], so connections can drain.
    pub(crate) async fn withdraw(&self) {
        self.bgp.shutdown().await;
        self.l2.shutdown().await;
    }

    /// Removes the addresses this node added.
    pub(crate) async fn release(&self) {
        if let Some(Some(local)) = self.local.get() {
            local.shutdown().await;
        }
    }

    /// For `/status`: per address, its holder and how it is announced from here; per BGP
    /// peer, the session.
    pub(crate) fn status(&self) -> Value {
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let answered = self.l2.status();
        let l2: Vec<Value> = applied
            .holders
            .iter()
            .map(|(ip, holder)| {
                json!({
                    "address": ip.to_string(),
                    "holder": holder,
                    "interfaces": answered.get(ip).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let peers: Vec<Value> = self
            .bgp
            .status()
            .into_iter()
            .map(|peer| {
                let routes = applied.bgp.iter().find(|p| p.name == peer.name).map(|p| {
                    p.routes.iter().map(|r| r.prefix.to_string()).collect::<Vec<_>>()
                });
                json!({
                    "name": peer.name,
                    "address": peer.peer_address.to_string(),
                    "state": peer.state.to_string(),
                    "established_since": peer.established_since.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
                    "announced": routes.unwrap_or_default(),
                    "last_error": peer.last_error,
                })
            })
            .collect();
        let live: Vec<String> = self.live.borrow().iter().cloned().collect();
        json!({ "node": self.node, "live_nodes": live, "l2": l2, "bgp_peers": peers })
    }
}

/// The router ID for a peer that names none: its IPv4 source address, else the local IPv4
/// address routing picks towards the peer (a connected UDP socket sends nothing), else one
/// derived from the node name.
fn router_id(peer: &BgpPeer, node: &str) -> Ipv4Addr {
    if let Some(IpAddr::V4(v4)) = peer.source_address {
        return v4;
    }
    let towards = || -> Option<Ipv4Addr> {
        let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect((peer.peer_address, peer.peer_port)).ok()?;
        match socket.local_addr().ok()?.ip() {
            IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        }
    };
    towards().unwrap_or_else(|| {
        let hash = sluice_config::stable_hash(0, &[node.as_bytes()]);
        Ipv4Addr::from((hash as u32) | 0x0100_0000)
    })
}
