//! ARP (IPv4) on one interface: a packet socket that receives the interface's ARP frames,
//! answers requests for the wanted addresses with the interface's MAC, and sends gratuitous
//! ARP when an address moves here.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use etherparse::{ArpEthIpv4Packet, ArpOperation, ArpPacketSlice, EtherType, Ethernet2Header};
use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

use crate::metrics::AnnounceMetrics;
use crate::responder::{Interface, Protocol};
use crate::sockopt;

const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];
const ETHERNET_HEADER_LEN: usize = 14;
/// The shortest Ethernet frame (without FCS); ARP frames are padded to it.
const FRAME_LEN: usize = 60;
/// Enough for any frame on a standard MTU; longer ones are cut, which cannot hurt an ARP parse.
const RECEIVE_BUFFER: usize = 1600;

/// An Ethernet frame carrying an ARP packet, padded to the minimum frame length.
pub(crate) type Frame = [u8; FRAME_LEN];

/// A non-blocking packet socket that receives only the ARP frames of interface `index` and
/// sends raw Ethernet frames on it.
pub(crate) fn open(index: u32) -> io::Result<Socket> {
    // Protocol 0 receives nothing until `bind` names ARP and the interface, so no frame of
    // another interface is ever queued.
    let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
    // Our own transmitted frames would otherwise come back; the source MAC check in `answer`
    // covers kernels without the option.
    let _ = sockopt::set(&socket, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1 as &libc::c_int);
    socket.bind(&link_address(index)?)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `sockaddr_ll` for ARP on interface `index`.
fn link_address(index: u32) -> io::Result<SockAddr> {
    let ifindex =
        i32::try_from(index).map_err(|_| io::Error::other(format!("interface index {index} out of range")))?;
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_ll` is one of this platform's socket address types.
    let address = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    address.sll_family = libc::AF_PACKET as libc::sa_family_t;
    address.sll_protocol = ETH_P_ARP.to_be();
    address.sll_ifindex = ifindex;
    let length = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).map_err(io::Error::other)?;
    // SAFETY: the storage holds an initialised `sockaddr_ll` of `length` bytes.
    Ok(unsafe { SockAddr::new(storage, length) })
}

/// The reply to `frame` when it is an ARP request from someone else for one of `wanted`:
/// unicast to the asker, with `mac` as the answer. Anything else (malformed, truncated, not a
/// request, our own frame, a frame for another host, an announcement, another address) gets
/// no answer.
pub(crate) fn answer(frame: &[u8], mac: [u8; 6], wanted: &BTreeSet<IpAddr>) -> Option<(Ipv4Addr, Frame)> {
    let (ethernet, payload) = Ethernet2Header::from_slice(frame).ok()?;
    // Frames for other hosts reach the socket when the interface is promiscuous (a bridge
    // port, a capture); the kernel ignores those, and so does this.
    let for_us = ethernet.destination == BROADCAST || ethernet.destination == mac;
    if ethernet.ether_type != EtherType::ARP || ethernet.source == mac || !for_us {
        return None;
    }
    let request = ArpPacketSlice::from_slice(payload).ok()?.to_packet().try_eth_ipv4().ok()?;
    let target = request.target_ipv4_addr();
    // A request whose sender and target are the same address is an announcement, not a question.
    if request.operation != ArpOperation::REQUEST
        || request.sender_mac == mac
        || request.sender_ipv4 == request.target_ipv4
        || !wanted.contains(&IpAddr::V4(target))
    {
        return None;
    }
    let reply = ArpEthIpv4Packet {
        operation: ArpOperation::REPLY,
        sender_mac: mac,
        sender_ipv4: request.target_ipv4,
        target_mac: request.sender_mac,
        target_ipv4: request.sender_ipv4,
    };
    Some((target, frame_of(request.sender_mac, mac, &reply)))
}

/// The two forms of gratuitous ARP for `address` at `mac`, both broadcast: a request and a
/// reply whose sender and target are the address (receivers update their neighbour entry from
/// either; the reply form also names `mac` as the target hardware address, RFC 5944 §4.6).
pub(crate) fn gratuitous(mac: [u8; 6], address: Ipv4Addr) -> [Frame; 2] {
    let ip = address.octets();
    let request = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: mac,
        sender_ipv4: ip,
        target_mac: [0; 6],
        target_ipv4: ip,
    };
    let reply = ArpEthIpv4Packet { operation: ArpOperation::REPLY, target_mac: mac, ..request.clone() };
    [frame_of(BROADCAST, mac, &request), frame_of(BROADCAST, mac, &reply)]
}

/// Sends the gratuitous ARP frames for `address`; returns how many were sent.
pub(crate) fn announce(socket: &Socket, mac: [u8; 6], address: Ipv4Addr) -> io::Result<u64> {
    let mut sent = 0;
    for frame in gratuitous(mac, address) {
        socket.send(&frame)?;
        sent += 1;
    }
    Ok(sent)
}

fn frame_of(destination: [u8; 6], source: [u8; 6], arp: &ArpEthIpv4Packet) -> Frame {
    let header = Ethernet2Header { destination, source, ether_type: EtherType::ARP }.to_bytes();
    let mut frame = [0; FRAME_LEN];
    let (head, rest) = frame.split_at_mut(ETHERNET_HEADER_LEN);
    head.copy_from_slice(&header);
    for (byte, value) in rest.iter_mut().zip(arp.to_bytes()) {
        *byte = value;
    }
    frame
}

/// Answers the ARP requests arriving on `socket` for the addresses in `wanted` until the task
/// is aborted.
pub(crate) async fn serve(
    socket: Arc<AsyncFd<Socket>>,
    interface: Interface,
    wanted: watch::Receiver<BTreeSet<IpAddr>>,
    metrics: AnnounceMetrics,
) {
    let mut buffer = [0; RECEIVE_BUFFER];
    loop {
        let received = socket.async_io(Interest::READABLE, |socket| (&*socket).read(&mut buffer)).await;
        let frame = match received {
            Ok(length) => buffer.get(..length).unwrap_or_default(),
            Err(error) => {
                tracing::warn!(interface = %interface.name, %error, "receiving ARP frames failed");
                // An interface going away fails every read: do not spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((address, reply)) = answer(frame, interface.mac, &wanted.borrow()) else {
            continue;
        };
        match socket.get_ref().send(&reply) {
            Ok(_) => metrics.replied(Protocol::Arp, &interface.name),
            Err(error) => tracing::warn!(interface = %interface.name, %address, %error, "sending an ARP reply failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const ASKER: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    fn request(target: [u8; 4]) -> Frame {
        let packet = ArpEthIpv4Packet {
            operation: ArpOperation::REQUEST,
            sender_mac: ASKER,
            sender_ipv4: [198, 18, 0, 2],
            target_mac: [0; 6],
            target_ipv4: target,
        };
        frame_of(BROADCAST, ASKER, &packet)
    }

    fn wanted() -> BTreeSet<IpAddr> {
        [IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10))].into()
    }

    #[test]
    fn answers_a_request_for_a_wanted_address_unicast_with_our_mac() {
        let (address, reply) = answer(&request([198, 18, 0, 10]), OURS, &wanted()).unwrap();
        assert_eq!(address, Ipv4Addr::new(198, 18, 0, 10));
        let (ethernet, payload) = Ethernet2Header::from_slice(&reply).unwrap();
        assert_eq!((ethernet.destination, ethernet.source), (ASKER, OURS));
        let arp = ArpPacketSlice::from_slice(payload).unwrap().to_packet().try_eth_ipv4().unwrap();
        assert_eq!(arp.operation, ArpOperation::REPLY);
        assert_eq!((arp.sender_mac, arp.sender_ipv4), (OURS, [198, 18, 0, 10]));
        assert_eq!((arp.target_mac, arp.target_ipv4), (ASKER, [198, 18, 0, 2]));
    }

    #[test]
    fn ignores_other_addresses_replies_announcements_our_own_frames_and_other_hosts_frames() {
        assert!(answer(&request([198, 18, 0, 11]), OURS, &wanted()).is_none());
        let mut reply = request([198, 18, 0, 10]);
        reply[21] = 2;
        assert!(answer(&reply, OURS, &wanted()).is_none());
        let [announcement, _] = gratuitous(ASKER, Ipv4Addr::new(198, 18, 0, 10));
        assert!(answer(&announcement, OURS, &wanted()).is_none());
        assert!(answer(&request([198, 18, 0, 10]), ASKER, &wanted()).is_none());
        let mut elsewhere = request([198, 18, 0, 10]);
        elsewhere[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 3]);
        assert!(answer(&elsewhere, OURS, &wanted()).is_none(), "unicast to another host");
        elsewhere[..6].copy_from_slice(&OURS);
        assert!(answer(&elsewhere, OURS, &wanted()).is_some(), "unicast to us");
    }

    #[test]
    fn malformed_frames_get_no_answer_and_no_panic() {
        let valid = request([198, 18, 0, 10]);
        for length in 0..42 {
            assert!(answer(&valid[..length], OURS, &wanted()).is_none(), "truncated to {length}");
        }
        for (offset, value) in [(14, 9), (16, 0x86), (18, 16), (19, 16), (18, 0), (13, 0)] {
            let mut broken = valid;
            broken[offset] = value;
            assert!(answer(&broken, OURS, &wanted()).is_none(), "byte {offset} = {value}");
        }
        let mut seed = 7u32;
        for _ in 0..5000 {
            let mut random = valid;
            for byte in random.iter_mut().skip(14) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *byte = (seed >> 16) as u8;
            }
            let _ = answer(&random, OURS, &wanted());
        }
    }

    #[test]
    fn gratuitous_frames_are_a_broadcast_request_and_reply_for_the_address() {
        let frames = gratuitous(OURS, Ipv4Addr::new(198, 18, 0, 10));
        for (frame, operation, target_mac) in
            [(&frames[0], ArpOperation::REQUEST, [0; 6]), (&frames[1], ArpOperation::REPLY, OURS)]
        {
            let (ethernet, payload) = Ethernet2Header::from_slice(frame).unwrap();
            assert_eq!(ethernet.destination, BROADCAST);
            let arp = ArpPacketSlice::from_slice(payload).unwrap().to_packet().try_eth_ipv4().unwrap();
            assert_eq!(arp.operation, operation);
            assert_eq!((arp.sender_ipv4, arp.target_ipv4), ([198, 18, 0, 10], [198, 18, 0, 10]));
            assert_eq!((arp.sender_mac, arp.target_mac), (OURS, target_mac));
        }
    }
}
