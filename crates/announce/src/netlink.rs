//! Route netlink (rtnetlink) for what the kernel knows about this node: its interfaces with
//! their index and MAC, and the addresses configured on them; and for adding and removing
//! addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressProtocol};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use rtnetlink::{AddressMessageBuilder, Handle};
use tokio::task::JoinHandle;

/// An interface as netlink reports it.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub name: String,
    pub index: u32,
    /// The hardware address when the link is Ethernet-like (6 bytes).
    pub mac: Option<[u8; 6]>,
    pub up: bool,
    pub loopback: bool,
}

impl Link {
    fn from_message(message: LinkMessage) -> Option<Self> {
        let header = &message.header;
        let ethernet = header.link_layer_type == LinkLayerType::Ether;
        let mut name = None;
        let mut mac = None;
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::IfName(value) => name = Some(value),
                LinkAttribute::Address(bytes) if ethernet => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => {}
            }
        }
        Some(Self {
            name: name?,
            index: header.index,
            mac,
            up: header.flags.contains(LinkFlags::Up),
            loopback: header.flags.contains(LinkFlags::Loopback),
        })
    }
}

/// One rtnetlink connection of the current network namespace; its connection task ends when
/// this is dropped.
#[derive(Debug)]
pub(crate) struct Netlink {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Netlink {
    /// Opens the connection; must be called inside a Tokio runtime, which drives it.
    pub(crate) fn open() -> std::io::Result<Self> {
        let (connection, handle, _unsolicited) = rtnetlink::new_connection()?;
        // Without this task running, every request waits forever.
        let connection = tokio::spawn(connection);
        Ok(Self { handle, connection })
    }

    /// Every interface of the namespace.
    pub(crate) async fn links(&self) -> Result<Vec<Link>, rtnetlink::Error> {
        let messages: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await?;
        Ok(messages.into_iter().filter_map(Link::from_message).collect())
    }

    /// Every address configured on any interface of the namespace.
    pub(crate) async fn addresses(&self) -> Result<Vec<Address>, rtnetlink::Error> {
        let messages: Vec<AddressMessage> = self.handle.address().get().execute().try_collect().await?;
        Ok(messages.iter().filter_map(Address::from_message).collect())
    }

    /// Adds `address` as a host address (/32 or /128) to the interface `index`, marked with
    /// `protocol`; adding one that is already there succeeds.
    pub(crate) async fn add_host_address(
        &self,
        index: u32,
        address: IpAddr,
        protocol: u8,
    ) -> Result<(), rtnetlink::Error> {
        let mut request = self.handle.address().add(index, address, host_prefix(address)).replace();
        let attributes = &mut request.message_mut().attributes;
        attributes.push(AddressAttribute::Protocol(AddressProtocol::Other(protocol)));
        if address.is_ipv6() {
            attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await
    }

    /// Removes the host address `address` from the interface `index`.
    pub(crate) async fn remove_host_address(&self, index: u32, address: IpAddr) -> Result<(), rtnetlink::Error> {
        let message = match address {
            IpAddr::V4(v4) => AddressMessageBuilder::<Ipv4Addr>::new().index(index).address(v4, 32).build(),
            IpAddr::V6(v6) => AddressMessageBuilder::<Ipv6Addr>::new().index(index).address(v6, 128).build(),
        };
        self.handle.address().del(message).execute().await
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The prefix length of a single address: 32 or 128.
pub(crate) fn host_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// An address configured on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub address: IpAddr,
    /// The interface's index.
    pub index: u32,
    /// Who added it (`IFA_PROTO`, Linux 6.0+), when told.
    pub protocol: Option<u8>,
}

impl Address {
    /// The node's own address in an address message: `IFA_LOCAL` when present (it differs
    /// from `IFA_ADDRESS` on point-to-point links), else `IFA_ADDRESS`.
    fn from_message(message: &AddressMessage) -> Option<Self> {
        let (mut local, mut address, mut protocol) = (None, None, None);
        for attribute in &message.attributes {
            match attribute {
                AddressAttribute::Local(value) => local = Some(*value),
                AddressAttribute::Address(value) => address = Some(*value),
                AddressAttribute::Protocol(value) => protocol = Some(u8::from(*value)),
                _ => {}
            }
        }
        Some(Self { address: local.or(address)?, index: message.header.index, protocol })
    }
}
