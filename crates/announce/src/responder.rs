//! One interface's answering for one protocol (ARP or NDP): the socket, the addresses it
//! answers for, the task that answers, and the gratuitous announcements it sends.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::metrics::AnnounceMetrics;
use crate::{arp, ndp};

/// How many times an address is announced when it moves here, and how far apart: one lost
/// frame must not leave the old node's MAC in the neighbours' caches.
const ANNOUNCEMENTS: u32 = 3;
const ANNOUNCEMENT_INTERVAL: Duration = Duration::from_millis(500);

/// ARP answers for IPv4 addresses, NDP for IPv6 ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Protocol {
    Arp,
    Ndp,
}

impl Protocol {
    /// The protocol that answers for `address`.
    pub(crate) fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Arp,
            IpAddr::V6(_) => Self::Ndp,
        }
    }

    /// What an announcement of this protocol is called, for messages.
    pub(crate) fn announcement(self) -> &'static str {
        match self {
            Self::Arp => "gratuitous ARP",
            Self::Ndp => "an unsolicited neighbour advertisement",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Arp => "ARP",
            Self::Ndp => "NDP",
        })
    }
}

/// An Ethernet interface to answer on, as found when the addresses were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
}

/// Answers one protocol's requests on one interface for a set of addresses; dropping it
/// stops answering and closes the socket.
#[derive(Debug)]
pub(crate) struct Responder {
    protocol: Protocol,
    interface: Interface,
    socket: Arc<AsyncFd<Socket>>,
    wanted: watch::Sender<BTreeSet<IpAddr>>,
    /// Solicited-node groups joined (NDP only).
    groups: BTreeSet<Ipv6Addr>,
    serving: JoinHandle<()>,
    announcing: JoinSet<()>,
    metrics: AnnounceMetrics,
}

impl Responder {
    /// Opens the socket and starts answering (for no address yet).
    pub(crate) fn open(protocol: Protocol, interface: Interface, metrics: &AnnounceMetrics) -> io::Result<Self> {
        let socket = match protocol {
            Protocol::Arp => arp::open(interface.index)?,
            Protocol::Ndp => ndp::open(&interface)?,
        };
        // SAFETY: the socket owns its descriptor and moves into the AsyncFd, which closes it
        // only when dropped; nothing replaces it.
        let socket = Arc::new(unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?);
        let (wanted, receiver) = watch::channel(BTreeSet::new());
        let serving = match protocol {
            Protocol::Arp => tokio::spawn(arp::serve(socket.clone(), interface.clone(), receiver, metrics.clone())),
            Protocol::Ndp => tokio::spawn(ndp::serve(socket.clone(), interface.clone(), receiver, metrics.clone())),
        };
        Ok(Self {
            protocol,
            interface,
            socket,
            wanted,
            groups: BTreeSet::new(),
            serving,
            announcing: JoinSet::new(),
            metrics: metrics.clone(),
        })
    }

    /// The interface answered on.
    pub(crate) fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The addresses answered for now.
    pub(crate) fn answered(&self) -> BTreeSet<IpAddr> {
        self.wanted.borrow().clone()
    }

    /// Answers for `addresses` from now on. Returns those that cannot be answered, with why;
    /// they are left out (and so count as new at the next try).
    pub(crate) fn update(&mut self, mut addresses: BTreeSet<IpAddr>) -> Vec<(IpAddr, String)> {
        let mut failed = Vec::new();
        if self.protocol == Protocol::Ndp {
            let mut needed: BTreeMap<Ipv6Addr, Vec<IpAddr>> = BTreeMap::new();
            for address in &addresses {
                if let IpAddr::V6(v6) = address {
                    needed.entry(ndp::solicited_node(*v6)).or_default().push(*address);
                }
            }
            for (group, members) in &needed {
                if self.groups.contains(group) {
                    continue;
                }
                match self.socket.get_ref().join_multicast_v6(group, self.interface.index) {
                    Ok(()) => {
                        self.groups.insert(*group);
                    }
                    Err(error) => {
                        for member in members {
                            addresses.remove(member);
                            failed.push((*member, format!("joining the solicited-node group {group}: {error}")));
                        }
                    }
                }
            }
            let unneeded: Vec<Ipv6Addr> = self.groups.iter().filter(|g| !needed.contains_key(g)).copied().collect();
            for group in unneeded {
                if let Err(error) = self.socket.get_ref().leave_multicast_v6(&group, self.interface.index) {
                    tracing::warn!(interface = %self.interface.name, %group, %error, "leaving a multicast group failed");
                }
                self.groups.remove(&group);
            }
        }
        self.wanted.send_replace(addresses);
        failed
    }

    /// Announces that `address` is here now, and again twice in the background; an error is
    /// the first announcement's.
    pub(crate) fn announce(&mut self, address: IpAddr) -> io::Result<()> {
        while self.announcing.try_join_next().is_some() {}
        let sent = announce_once(self.socket.get_ref(), &self.interface, address)?;
        self.metrics.announced(self.protocol, &self.interface.name, sent);
        let (socket, interface, metrics, protocol) =
            (self.socket.clone(), self.interface.clone(), self.metrics.clone(), self.protocol);
        self.announcing.spawn(async move {
            for _ in 1..ANNOUNCEMENTS {
                tokio::time::sleep(ANNOUNCEMENT_INTERVAL).await;
                match announce_once(socket.get_ref(), &interface, address) {
                    Ok(sent) => metrics.announced(protocol, &interface.name, sent),
                    Err(error) => tracing::warn!(
                        interface = %interface.name, %address, %error, "sending {} failed", protocol.announcement()
                    ),
                }
            }
        });
        Ok(())
    }

    /// Stops answering and announcing, and waits until the socket is closed.
    pub(crate) async fn close(mut self) {
        self.serving.abort();
        self.announcing.abort_all();
        let _ = (&mut self.serving).await;
        while self.announcing.join_next().await.is_some() {}
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        // The announcements end with the JoinSet.
        self.serving.abort();
    }
}

fn announce_once(socket: &Socket, interface: &Interface, address: IpAddr) -> io::Result<u64> {
    match address {
        IpAddr::V4(v4) => arp::announce(socket, interface.mac, v4),
        IpAddr::V6(v6) => ndp::announce(socket, interface, v6),
    }
}
