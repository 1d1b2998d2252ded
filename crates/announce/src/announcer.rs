//! [`L2Announcer`]: makes LoadBalancer addresses reachable on a layer-2 network by answering
//! ARP and NDP for them, as MetalLB's L2 mode does.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::registry::Registry;

use crate::metrics::AnnounceMetrics;
use crate::netlink::{Link, Netlink};
use crate::responder::{Interface, Protocol, Responder};

/// The interfaces an address is answered on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interfaces {
    /// Every interface that is up, not loopback and has an Ethernet MAC, as found when the
    /// address is applied (interfaces that appear later are picked up by the next apply).
    All,
    /// These interfaces, by name (an L2Advertisement's `interfaces`); one that is down is
    /// answered on as soon as it comes up.
    Named(Vec<String>),
}

/// Answers ARP (IPv4) and NDP neighbour solicitations (IPv6) for the addresses this node
/// holds, on the advertised interfaces only, with that interface's MAC, so that the network
/// sends the addresses' traffic here; announces a takeover with gratuitous ARP / unsolicited
/// neighbour advertisements so neighbours switch at once. Cheap to clone (the clones share
/// one state); answers in Tokio tasks, and stops when the last clone is dropped or on
/// [`L2Announcer::shutdown`].
#[derive(Debug, Clone)]
pub struct L2Announcer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: AnnounceMetrics,
    /// By interface name and protocol; the lock also serialises `apply` and `shutdown`.
    responders: tokio::sync::Mutex<BTreeMap<(String, Protocol), Responder>>,
    status: Mutex<BTreeMap<IpAddr, Vec<String>>>,
}

impl L2Announcer {
    /// An announcer that answers for nothing yet; registers its metrics (`sluice_announce_*`
    /// with the process registry's prefix).
    pub fn new(registry: &mut Registry) -> Self {
        let inner = Inner {
            metrics: AnnounceMetrics::new(registry),
            responders: tokio::sync::Mutex::new(BTreeMap::new()),
            status: Mutex::new(BTreeMap::new()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Answers from now on exactly for `wanted`: each address on its interfaces, resolved by
    /// name now. Each (address, interface) pair that is new is announced (gratuitous ARP, or
    /// an unsolicited neighbour advertisement to all nodes) three times half a second apart;
    /// pairs no longer wanted stop being answered, and an interface left with no address has
    /// its socket closed. Returns the problems (unknown interface, socket errors) as messages
    /// naming the address and interface; everything else is served. Must run in a Tokio
    /// runtime.
    pub async fn apply(&self, wanted: &BTreeMap<IpAddr, Interfaces>) -> Vec<String> {
        let mut responders = self.inner.responders.lock().await;
        let mut problems = Vec::new();
        let links = match list_links().await {
            Ok(links) => links,
            Err(problem) => return vec![problem],
        };
        let plan = plan(wanted, &links, &mut problems);

        // Interfaces no longer used, or replaced by another of the same name (new index or MAC).
        let stale: Vec<(String, Protocol)> = responders
            .iter()
            .filter(|(key, responder)| plan.get(*key).is_none_or(|(interface, _)| interface != responder.interface()))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(responder) = responders.remove(&key) {
                for address in responder.answered() {
                    tracing::info!(%address, interface = %key.0, "stopped answering");
                }
                responder.close().await;
            }
        }

        for ((name, protocol), (interface, addresses)) in plan {
            let responder = match responders.entry((name.clone(), protocol)) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => match Responder::open(protocol, interface, &self.inner.metrics) {
                    Ok(responder) => entry.insert(responder),
                    Err(error) => {
                        for address in &addresses {
                            problems.push(format!("{address} on {name}: opening the {protocol} socket: {error}"));
                        }
                        continue;
                    }
                },
            };
            let before = responder.answered();
            for (address, why) in responder.update(addresses) {
                problems.push(format!("{address} on {name}: {why}"));
            }
            let after = responder.answered();
            for address in before.difference(&after) {
                tracing::info!(%address, interface = %name, "stopped answering");
            }
            for address in after.difference(&before) {
                tracing::info!(%address, interface = %name, "answering {protocol}");
                if let Err(error) = responder.announce(*address) {
                    problems.push(format!("{address} on {name}: sending {}: {error}", protocol.announcement()));
                }
            }
        }

        self.publish(&responders);
        for problem in &problems {
            tracing::warn!(%problem, "layer-2 announcement");
        }
        problems
    }

    /// What is answered now: each address with the names of the interfaces it is answered on.
    pub fn status(&self) -> BTreeMap<IpAddr, Vec<String>> {
        self.inner.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops answering for everything and closes the sockets; a later `apply` starts again.
    pub async fn shutdown(&self) {
        let mut responders = self.inner.responders.lock().await;
        for (_, responder) in std::mem::take(&mut *responders) {
            responder.close().await;
        }
        self.publish(&responders);
    }

    /// Makes `status` and the address gauge tell what `responders` answer for.
    fn publish(&self, responders: &BTreeMap<(String, Protocol), Responder>) {
        let mut status: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for ((name, _), responder) in responders {
            for address in responder.answered() {
                status.entry(address).or_default().push(name.clone());
            }
        }
        self.inner.metrics.set_addresses(status.len());
        *self.inner.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

async fn list_links() -> Result<Vec<Link>, String> {
    let netlink = Netlink::open().map_err(|error| format!("opening netlink: {error}"))?;
    netlink.links().await.map_err(|error| format!("listing interfaces: {error}"))
}

/// Which addresses each (interface, protocol) answers for; what cannot be placed is added
/// to `problems`.
fn plan(
    wanted: &BTreeMap<IpAddr, Interfaces>,
    links: &[Link],
    problems: &mut Vec<String>,
) -> BTreeMap<(String, Protocol), (Interface, BTreeSet<IpAddr>)> {
    let mut plan: BTreeMap<(String, Protocol), (Interface, BTreeSet<IpAddr>)> = BTreeMap::new();
    for (address, interfaces) in wanted {
        if !is_unicast(*address) {
            problems.push(format!("{address}: not a unicast address, never answered for"));
            continue;
        }
        let chosen: Vec<Interface> = match interfaces {
            Interfaces::All => {
                let all: Vec<Interface> = links.iter().filter(|link| link.up).filter_map(ethernet).collect();
                if all.is_empty() {
                    problems.push(format!("{address} on all interfaces: no interface is up with an Ethernet address"));
                }
                all
            }
            Interfaces::Named(names) => names
                .iter()
                .filter_map(|name| match links.iter().find(|link| link.name == *name) {
                    None => {
                        problems.push(format!("{address} on {name}: no such interface"));
                        None
                    }
                    Some(link) => {
                        let interface = ethernet(link);
                        if interface.is_none() {
                            problems.push(format!("{address} on {name}: not an Ethernet interface"));
                        }
                        interface
                    }
                })
                .collect(),
        };
        for interface in chosen {
            let key = (interface.name.clone(), Protocol::of(*address));
            plan.entry(key).or_insert_with(|| (interface, BTreeSet::new())).1.insert(*address);
        }
    }
    plan
}

/// `link` as an interface to answer on, when it is an Ethernet interface other than loopback.
fn ethernet(link: &Link) -> Option<Interface> {
    let mac = link.mac.filter(|_| !link.loopback)?;
    Some(Interface { name: link.name.clone(), index: link.index, mac })
}

/// Addresses that name one host: the only ones a neighbour resolves.
fn is_unicast(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.is_loopback()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast() || v6.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, index: u32, up: bool, mac: Option<[u8; 6]>) -> Link {
        Link { name: name.into(), index, mac, up, loopback: name == "lo" }
    }

    #[test]
    fn plan_places_addresses_on_named_or_all_usable_interfaces_and_reports_the_rest() {
        let links = [
            link("lo", 1, true, Some([0; 6])),
            link("eth0", 2, true, Some([2, 0, 0, 0, 0, 2])),
            link("eth1", 3, false, Some([2, 0, 0, 0, 0, 3])),
            link("tun0", 4, true, None),
        ];
        let v4: IpAddr = "198.18.0.10".parse().unwrap();
        let v6: IpAddr = "fd00:198:18::10".parse().unwrap();
        let multicast: IpAddr = "224.0.0.1".parse().unwrap();
        let wanted = BTreeMap::from([
            (v4, Interfaces::All),
            (v6, Interfaces::Named(vec!["eth1".into(), "tun0".into(), "nope".into(), "lo".into()])),
            (multicast, Interfaces::All),
        ]);
        let mut problems = Vec::new();
        let plan = plan(&wanted, &links, &mut problems);
        let placed: Vec<_> =
            plan.iter().map(|((name, protocol), (_, set))| (name.as_str(), *protocol, set.clone())).collect();
        assert_eq!(
            placed,
            [("eth0", Protocol::Arp, BTreeSet::from([v4])), ("eth1", Protocol::Ndp, BTreeSet::from([v6]))]
        );
        assert_eq!(
            problems,
            [
                "224.0.0.1: not a unicast address, never answered for",
                "fd00:198:18::10 on tun0: not an Ethernet interface",
                "fd00:198:18::10 on nope: no such interface",
                "fd00:198:18::10 on lo: not an Ethernet interface",
            ]
        );
    }
}
