//! [`LocalAddresses`]: the LoadBalancer addresses this node accepts traffic for, held on the
//! loopback device.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;

use crate::netlink::{host_prefix, Netlink};

/// The `IFA_PROTO` value that marks the addresses Sluice adds (Linux 6.0+; older kernels
/// ignore it), so that a restart after a crash knows them as its own. Values above the
/// kernel's own (0-3) are free for user space; 0x53 is "S".
const ADDRESS_PROTOCOL: u8 = 0x53;

/// The kernel settings that keep it from answering ARP for an address on `lo`, with the values
/// they get and those that already do the job.
#[derive(Debug)]
struct Setting {
    name: &'static str,
    path: &'static str,
    value: &'static str,
    sufficient: &'static [&'static str],
}

/// `arp_ignore=1`: answer only for addresses on the receiving interface (2 and 8 are
/// stricter). `arp_announce=2`: never use such an address as the source of our own requests.
/// The kernel applies the larger of `all` and the interface's value, so `all` covers every
/// interface.
const ARP_SETTINGS: [Setting; 2] = [
    Setting {
        name: "net.ipv4.conf.all.arp_ignore",
        path: "/proc/sys/net/ipv4/conf/all/arp_ignore",
        value: "1",
        sufficient: &["1", "2", "8"],
    },
    Setting {
        name: "net.ipv4.conf.all.arp_announce",
        path: "/proc/sys/net/ipv4/conf/all/arp_announce",
        value: "2",
        sufficient: &["2"],
    },
];

/// The addresses this node accepts traffic for: each is added to the loopback device (`lo`,
/// as a /32 or /128) through netlink, so Sluice's listeners can bind it and the kernel
/// delivers its packets, and removed when no longer wanted and on shutdown. Only addresses it
/// added are ever removed: one already present on any interface is left alone and not
/// recorded as its own. Its addresses carry an address protocol of their own (`IFA_PROTO`),
/// so those a crashed run left on `lo` are recognised, and removed when not wanted, by the
/// next one.
///
/// While it holds an IPv4 address it sets `net.ipv4.conf.all.arp_ignore=1` and
/// `arp_announce=2` (as kube-proxy's IPVS mode does), so the kernel never answers ARP for a
/// loopback address on any interface: only the [`crate::L2Announcer`] answers, and only where
/// it is told to. The previous values come back when it holds none. IPv6 needs nothing: the
/// kernel answers solicitations only for addresses on the receiving interface.
#[derive(Debug)]
pub struct LocalAddresses {
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug)]
struct State {
    netlink: Netlink,
    loopback: u32,
    /// Addresses this added to `lo`.
    ours: BTreeSet<IpAddr>,
    /// The ARP settings this changed, with the value each had before.
    changed: Vec<(&'static Setting, String)>,
}

impl LocalAddresses {
    /// Connects to the kernel (netlink) of the current network namespace and finds `lo`;
    /// holds no address yet. Must run in a Tokio runtime.
    pub async fn new() -> io::Result<Self> {
        let netlink = Netlink::open()?;
        let links = netlink.links().await.map_err(|error| io::Error::other(format!("listing interfaces: {error}")))?;
        let loopback = links
            .iter()
            .find(|link| link.name == "lo")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no loopback interface `lo`"))?
            .index;
        Ok(Self {
            state: tokio::sync::Mutex::new(State { netlink, loopback, ours: BTreeSet::new(), changed: Vec::new() }),
        })
    }

    /// Holds exactly `addresses` from now on (those already on an interface are left as they
    /// are). Returns the problems, each naming the address or setting; the rest is applied.
    /// IPv4 addresses are not added while the ARP settings cannot be made, since every
    /// interface would then answer ARP for them.
    pub async fn apply(&self, addresses: &BTreeSet<IpAddr>) -> Vec<String> {
        let problems = self.state.lock().await.reconcile(addresses).await;
        for problem in &problems {
            tracing::warn!(%problem, "local addresses");
        }
        problems
    }

    /// Removes every address this added and restores the ARP settings.
    pub async fn shutdown(&self) {
        for problem in self.state.lock().await.reconcile(&BTreeSet::new()).await {
            tracing::warn!(%problem, "local addresses at shutdown");
        }
    }
}

impl State {
    async fn reconcile(&mut self, wanted: &BTreeSet<IpAddr>) -> Vec<String> {
        let mut problems = Vec::new();
        let configured = match self.netlink.addresses().await {
            Ok(configured) => configured,
            Err(error) => return vec![format!("listing addresses: {error}")],
        };
        let present: BTreeSet<IpAddr> = configured.iter().map(|address| address.address).collect();
        // One of ours that someone removed is no longer ours (and is added again if wanted);
        // one that a previous run of Sluice added, and left behind when it stopped without
        // `shutdown`, is ours.
        self.ours.retain(|address| present.contains(address));
        self.ours.extend(
            configured
                .iter()
                .filter(|address| address.index == self.loopback && address.protocol == Some(ADDRESS_PROTOCOL))
                .map(|address| address.address),
        );
        let missing: Vec<IpAddr> = wanted.iter().filter(|address| !present.contains(address)).copied().collect();

        let mut arp_held = true;
        if missing.iter().chain(&self.ours).any(IpAddr::is_ipv4) {
            if let Err(problem) = self.hold_arp_settings().await {
                problems.push(problem);
                arp_held = false;
            }
        }
        for address in missing {
            let prefix = host_prefix(address);
            if address.is_ipv4() && !arp_held {
                problems.push(format!("{address}/{prefix} not added to lo: the kernel would answer ARP for it"));
                continue;
            }
            match self.netlink.add_host_address(self.loopback, address, ADDRESS_PROTOCOL).await {
                Ok(()) => {
                    tracing::info!(%address, "added to lo");
                    self.ours.insert(address);
                }
                Err(error) => problems.push(format!("adding {address}/{prefix} to lo: {error}")),
            }
        }
        let unwanted: Vec<IpAddr> = self.ours.iter().filter(|address| !wanted.contains(address)).copied().collect();
        for address in unwanted {
            match self.netlink.remove_host_address(self.loopback, address).await {
                Ok(()) => {
                    tracing::info!(%address, "removed from lo");
                    self.ours.remove(&address);
                }
                Err(error) => problems.push(format!("removing {address}/{} from lo: {error}", host_prefix(address))),
            }
        }
        if !self.ours.iter().any(IpAddr::is_ipv4) {
            problems.extend(self.release_arp_settings().await);
        }
        problems
    }

    /// Makes sure the kernel does not answer ARP for loopback addresses, remembering the
    /// values it changes.
    async fn hold_arp_settings(&mut self) -> Result<(), String> {
        for setting in &ARP_SETTINGS {
            let current = read(setting).await?;
            if setting.sufficient.contains(&current.as_str()) {
                continue;
            }
            write(setting, setting.value).await?;
            tracing::info!(setting = setting.name, value = setting.value, previous = %current, "set");
            if !self.changed.iter().any(|(changed, _)| changed.name == setting.name) {
                self.changed.push((setting, current));
            }
        }
        Ok(())
    }

    /// Puts back the values changed by `hold_arp_settings`, unless someone changed them since.
    async fn release_arp_settings(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut kept = Vec::new();
        for (setting, previous) in std::mem::take(&mut self.changed) {
            let restored = match read(setting).await {
                Ok(current) if current != setting.value => Ok(()),
                Ok(_) => write(setting, &previous).await,
                Err(problem) => Err(problem),
            };
            match restored {
                Ok(()) => tracing::info!(setting = setting.name, value = %previous, "restored"),
                Err(problem) => {
                    problems.push(problem);
                    kept.push((setting, previous));
                }
            }
        }
        self.changed = kept;
        problems
    }
}

async fn read(setting: &Setting) -> Result<String, String> {
    match tokio::fs::read_to_string(setting.path).await {
        Ok(value) => Ok(value.trim().to_owned()),
        Err(error) => Err(format!("reading {}: {error}", setting.name)),
    }
}

async fn write(setting: &Setting, value: &str) -> Result<(), String> {
    tokio::fs::write(setting.path, value).await.map_err(|error| format!("setting {}={value}: {error}", setting.name))
}
