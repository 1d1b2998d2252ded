//! Layer-2 reachability of LoadBalancer addresses, as MetalLB's L2 mode provides it.
//!
//! - [`L2Announcer`] answers ARP (IPv4) and NDP (IPv6) for the addresses this node holds, on
//!   the interfaces they are advertised on, and announces a takeover with gratuitous ARP and
//!   unsolicited neighbour advertisements (`arp.rs`: a packet socket per interface;
//!   `ndp.rs`: an ICMPv6 raw socket per interface; `responder.rs`: one of them with its
//!   addresses and tasks).
//! - [`LocalAddresses`] puts the addresses on `lo` so the node accepts their traffic, and keeps
//!   the kernel itself from answering ARP for them.
//!
//! Both need `CAP_NET_ADMIN`, the announcer `CAP_NET_RAW` too; they work in the network
//! namespace of the thread that calls them (netlink, sockets and `/proc/sys/net` alike).

mod announcer;
mod arp;
mod local;
mod metrics;
mod ndp;
mod netlink;
mod responder;
mod sockopt;

pub use announcer::{Interfaces, L2Announcer};
pub use local::LocalAddresses;
