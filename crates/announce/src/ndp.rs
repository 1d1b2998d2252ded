//! NDP (IPv6) on one interface: an ICMPv6 raw socket bound to the interface that receives only
//! neighbour solicitations, answers those for the wanted addresses with solicited neighbour
//! advertisements carrying the interface's MAC, and sends unsolicited advertisements when an
//! address moves here.
//!
//! The kernel fills the ICMPv6 checksum on send and verifies it on receive. Receivers drop
//! NDP messages whose hop limit is not 255 (RFC 4861 §7.1), so the socket sends with 255 and
//! drops solicitations that arrive with less (they crossed a router).

use std::collections::BTreeSet;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use etherparse::icmpv6::{Icmpv6PayloadSlice, NdpOptionSlice, NeighborAdvertisementHeader};
use etherparse::{Icmpv6Header, Icmpv6Slice, Icmpv6Type};
use socket2::{Domain, MaybeUninitSlice, MsgHdr, MsgHdrMut, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

use crate::metrics::AnnounceMetrics;
use crate::responder::{self, Interface};
use crate::sockopt;

/// `ICMP6_FILTER` (`<netinet/icmp6.h>`), at level `IPPROTO_ICMPV6`; libc does not define it.
const ICMP6_FILTER: libc::c_int = 1;
const NEIGHBOR_SOLICITATION: u8 = 135;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
/// The only hop limit NDP messages may carry.
const NDP_HOP_LIMIT: u32 = 255;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ICMPv6 header (8) + target address (16) + target link-layer address option (8).
const ADVERTISEMENT_LEN: usize = 32;
const RECEIVE_BUFFER: usize = 1600;
/// Room for the hop limit and packet info control messages.
const CONTROL_BUFFER: usize = 128;
// SAFETY (both): CMSG_LEN and CMSG_SPACE only compute sizes.
const PACKET_INFO_LEN: usize = unsafe { libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) } as usize;
const PACKET_INFO_SPACE: usize = unsafe { libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) } as usize;

/// A neighbour advertisement, ready for a raw ICMPv6 socket (checksum left to the kernel).
pub(crate) type Advertisement = [u8; ADVERTISEMENT_LEN];

/// A non-blocking ICMPv6 raw socket on `interface` that receives only neighbour
/// solicitations, with their hop limit and arrival interface, and sends with hop limit 255
/// from any source address.
pub(crate) fn open(interface: &Interface) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    sockopt::set(&socket, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &solicitations_only())?;
    socket.bind_device(Some(interface.name.as_bytes()))?;
    socket.set_unicast_hops_v6(NDP_HOP_LIMIT)?;
    socket.set_multicast_hops_v6(NDP_HOP_LIMIT)?;
    socket.set_multicast_if_v6(interface.index)?;
    socket.set_multicast_loop_v6(false)?;
    socket.set_recv_hoplimit_v6(true)?;
    socket.set_freebind_v6(true)?;
    // The arrival interface: a solicitation queued before `bind_device` took effect may come
    // from another interface.
    sockopt::set(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &1 as &libc::c_int)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// An ICMPv6 type filter that passes neighbour solicitations only (a set bit blocks a type).
fn solicitations_only() -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    if let Some(word) = filter.get_mut(usize::from(NEIGHBOR_SOLICITATION / 32)) {
        *word &= !(1 << (NEIGHBOR_SOLICITATION % 32));
    }
    filter
}

/// The solicited-node multicast group of `address` (`ff02::1:ffXX:XXXX`, RFC 4291 §2.7.1),
/// where solicitations for it are sent.
pub(crate) fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = address.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(a), u16::from_be_bytes([b, c]))
}

/// What the kernel told about a received message besides its bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Arrival {
    pub source: Option<Ipv6Addr>,
    pub destination: Option<Ipv6Addr>,
    pub hop_limit: Option<i32>,
    pub interface: Option<u32>,
}

/// An answer to a solicitation: where it goes and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub target: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub message: Advertisement,
}

/// The answer to `message` when it is a valid neighbour solicitation (RFC 4861 §7.1.1) that
/// arrived on `interface` for one of `wanted`: a solicited advertisement unicast to the
/// solicitor, or, for duplicate address detection (unspecified source), an unsolicited one to
/// all nodes. Anything else gets no answer.
pub(crate) fn answer(
    message: &[u8],
    arrival: &Arrival,
    interface: &Interface,
    wanted: &BTreeSet<IpAddr>,
) -> Option<Answer> {
    if arrival.hop_limit != Some(i32::from(u8::MAX)) || arrival.interface != Some(interface.index) {
        return None;
    }
    let source = arrival.source?;
    let icmp = Icmpv6Slice::from_slice(message).ok()?;
    if !matches!(icmp.icmp_type(), Icmpv6Type::NeighborSolicitation) {
        return None;
    }
    let Icmpv6PayloadSlice::NeighborSolicitation(solicitation) = icmp.payload_slice().ok()? else {
        return None;
    };
    let target = solicitation.target_address();
    if target.is_multicast() || source.is_multicast() || !wanted.contains(&IpAddr::V6(target)) {
        return None;
    }
    let mut source_link_layer_option = false;
    for option in solicitation.options_iterator() {
        // Every option must be well formed (none of zero length, none cut short).
        if let NdpOptionSlice::SourceLinkLayerAddress(_) = option.ok()? {
            source_link_layer_option = true;
        }
    }
    if source.is_unspecified() {
        if source_link_layer_option || arrival.destination != Some(solicited_node(target)) {
            return None;
        }
        return Some(Answer { target, destination: ALL_NODES, message: advertisement(target, interface.mac, false) });
    }
    Some(Answer { target, destination: source, message: advertisement(target, interface.mac, true) })
}

/// A neighbour advertisement for `target` at `mac` with the Override flag, and the Solicited
/// flag when it answers a solicitation.
pub(crate) fn advertisement(target: Ipv6Addr, mac: [u8; 6], solicited: bool) -> Advertisement {
    let flags = NeighborAdvertisementHeader { router: false, solicited, r#override: true };
    let header = Icmpv6Header::new(Icmpv6Type::NeighborAdvertisement(flags)).to_bytes();
    let option = [OPTION_TARGET_LINK_LAYER_ADDRESS, 1];
    let mut message = [0; ADVERTISEMENT_LEN];
    let target = target.octets();
    let bytes = header.iter().chain(&target).chain(&option).chain(&mac);
    for (byte, value) in message.iter_mut().zip(bytes) {
        *byte = *value;
    }
    message
}

/// Sends an unsolicited advertisement of `address` to all nodes; returns how many were sent.
pub(crate) fn announce(socket: &Socket, interface: &Interface, address: Ipv6Addr) -> io::Result<u64> {
    send(socket, &advertisement(address, interface.mac, false), address, ALL_NODES, interface.index)?;
    Ok(1)
}

/// Sends `message` from `source` to `destination` on interface `index`. Advertisements leave
/// from their target address, as the kernel's own do (some tools, ndisc6 among them, take
/// an answer only from the address they asked about); the socket may use it even when it is
/// not configured here (`IPV6_FREEBIND`).
fn send(socket: &Socket, message: &[u8], source: Ipv6Addr, destination: Ipv6Addr, index: u32) -> io::Result<()> {
    let control = packet_info(source, index);
    let address = SockAddr::from(SocketAddrV6::new(destination, 0, 0, index));
    let buffers = [IoSlice::new(message)];
    socket.sendmsg(&MsgHdr::new().with_addr(&address).with_buffers(&buffers).with_control(&control), 0).map(drop)
}

/// The `IPV6_PKTINFO` control message that sends one packet from `source` on interface `index`.
fn packet_info(source: Ipv6Addr, index: u32) -> [u8; PACKET_INFO_SPACE] {
    let mut control = [0; PACKET_INFO_SPACE];
    // SAFETY: a `cmsghdr` is plain integers (and padding), for which zero is valid.
    let mut header: libc::cmsghdr = unsafe { std::mem::zeroed() };
    header.cmsg_len = PACKET_INFO_LEN as _;
    header.cmsg_level = libc::IPPROTO_IPV6;
    header.cmsg_type = libc::IPV6_PKTINFO;
    let info = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: source.octets() }, ipi6_ifindex: index };
    let data = cmsg_align(size_of::<libc::cmsghdr>());
    // SAFETY: `control` holds CMSG_SPACE(sizeof(in6_pktinfo)) bytes: the header at 0 and the
    // packet info at the aligned data offset both fit; the writes are unaligned.
    unsafe {
        std::ptr::write_unaligned(control.as_mut_ptr().cast::<libc::cmsghdr>(), header);
        std::ptr::write_unaligned(control.as_mut_ptr().add(data).cast::<libc::in6_pktinfo>(), info);
    }
    control
}

/// Answers the solicitations arriving on `socket` for the addresses in `wanted` until the
/// task is aborted.
pub(crate) async fn serve(
    socket: Arc<AsyncFd<Socket>>,
    interface: Interface,
    wanted: watch::Receiver<BTreeSet<IpAddr>>,
    metrics: AnnounceMetrics,
) {
    let mut buffer = [0; RECEIVE_BUFFER];
    let mut control = [0; CONTROL_BUFFER];
    loop {
        let received = socket.async_io(Interest::READABLE, |socket| receive(socket, &mut buffer, &mut control)).await;
        let (message, arrival) = match received {
            Ok((length, arrival)) => (buffer.get(..length).unwrap_or_default(), arrival),
            Err(error) => {
                tracing::warn!(interface = %interface.name, %error, "receiving neighbour solicitations failed");
                // An interface going away fails every read: do not spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(answer) = answer(message, &arrival, &interface, &wanted.borrow()) else {
            continue;
        };
        match send(socket.get_ref(), &answer.message, answer.target, answer.destination, interface.index) {
            Ok(()) => metrics.replied(responder::Protocol::Ndp, &interface.name),
            Err(error) => tracing::warn!(
                interface = %interface.name, target = %answer.target, destination = %answer.destination, %error,
                "sending a neighbour advertisement failed"
            ),
        }
    }
}

/// Receives one message into `buffer`; returns its length and how it arrived.
fn receive(socket: &Socket, buffer: &mut [u8], control: &mut [u8]) -> io::Result<(usize, Arrival)> {
    let mut source = SockAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
    let mut buffers = [MaybeUninitSlice::new(as_uninit(buffer))];
    let mut header =
        MsgHdrMut::new().with_addr(&mut source).with_buffers(&mut buffers).with_control(as_uninit(control));
    let length = socket.recvmsg(&mut header, 0)?;
    let control_length = header.control_len();
    let mut arrival = parse_control(control.get(..control_length).unwrap_or_default());
    arrival.source = source.as_socket_ipv6().map(|address| *address.ip());
    Ok((length, arrival))
}

/// Views initialised bytes as a receive buffer.
fn as_uninit(bytes: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the kernel writes only initialised
    // bytes into a receive buffer, so the bytes stay initialised for later reads as `u8`.
    unsafe { &mut *(std::ptr::from_mut(bytes) as *mut [MaybeUninit<u8>]) }
}

/// Reads the hop limit and packet info control messages (`IPV6_HOPLIMIT`, `IPV6_PKTINFO`)
/// out of a `recvmsg` control buffer; anything malformed is skipped.
pub(crate) fn parse_control(control: &[u8]) -> Arrival {
    let header_length = cmsg_align(size_of::<libc::cmsghdr>());
    let mut arrival = Arrival::default();
    let mut rest = control;
    while rest.len() >= size_of::<libc::cmsghdr>() {
        // SAFETY: `rest` holds at least one `cmsghdr` worth of bytes, read unaligned; a
        // `cmsghdr` is plain integers, valid for any bits.
        let header: libc::cmsghdr = unsafe { std::ptr::read_unaligned(rest.as_ptr().cast()) };
        // `cmsg_len` is a `size_t` with glibc and a `socklen_t` with musl.
        #[allow(clippy::unnecessary_cast)]
        let length = header.cmsg_len as usize;
        let Some(data) = rest.get(header_length..length) else {
            break;
        };
        match (header.cmsg_level, header.cmsg_type) {
            (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                arrival.hop_limit = data.first_chunk().map(|bytes| i32::from_ne_bytes(*bytes));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                // `struct in6_pktinfo`: the destination address, then the interface index.
                if let Some(info) = data.first_chunk::<20>() {
                    arrival.destination = info.first_chunk::<16>().map(|bytes| Ipv6Addr::from(*bytes));
                    arrival.interface = info.last_chunk().map(|bytes| u32::from_ne_bytes(*bytes));
                }
            }
            _ => {}
        }
        rest = rest.get(cmsg_align(length)..).unwrap_or_default();
    }
    arrival
}

/// `CMSG_ALIGN`: control messages start at multiples of `size_t`.
fn cmsg_align(length: usize) -> usize {
    length.next_multiple_of(size_of::<libc::size_t>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const TARGET: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x10);
    const SOLICITOR: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    fn interface() -> Interface {
        Interface { name: "n0".into(), index: 7, mac: OURS }
    }

    fn wanted() -> BTreeSet<IpAddr> {
        [IpAddr::V6(TARGET)].into()
    }

    fn arrival(source: Ipv6Addr) -> Arrival {
        Arrival {
            source: Some(source),
            destination: Some(solicited_node(TARGET)),
            hop_limit: Some(255),
            interface: Some(7),
        }
    }

    /// A solicitation for `target` with a source link-layer address option.
    fn solicitation(target: Ipv6Addr) -> Vec<u8> {
        let mut message = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&target.octets());
        message.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 2]);
        message
    }

    #[test]
    fn answers_a_solicitation_unicast_with_solicited_and_override_flags_and_our_mac() {
        let answer = answer(&solicitation(TARGET), &arrival(SOLICITOR), &interface(), &wanted()).unwrap();
        assert_eq!(answer.destination, SOLICITOR);
        let icmp = Icmpv6Slice::from_slice(&answer.message).unwrap();
        let Icmpv6Type::NeighborAdvertisement(flags) = icmp.icmp_type() else { panic!("{:?}", icmp.icmp_type()) };
        assert!(flags.solicited && flags.r#override && !flags.router);
        let Icmpv6PayloadSlice::NeighborAdvertisement(payload) = icmp.payload_slice().unwrap() else { panic!() };
        assert_eq!(payload.target_address(), TARGET);
        let options: Vec<_> = payload.options_iterator().collect::<Result<_, _>>().unwrap();
        let [NdpOptionSlice::TargetLinkLayerAddress(option)] = options.as_slice() else { panic!("{options:?}") };
        assert_eq!(option.link_layer_address(), OURS);
    }

    #[test]
    fn duplicate_address_detection_is_answered_to_all_nodes_without_the_solicited_flag() {
        let mut dad = solicitation(TARGET);
        dad.truncate(24);
        let answer = answer(&dad, &arrival(Ipv6Addr::UNSPECIFIED), &interface(), &wanted()).unwrap();
        assert_eq!(answer.destination, ALL_NODES);
        assert_eq!(answer.message, advertisement(TARGET, OURS, false));
        // With a source link-layer option it is invalid.
        assert!(
            super::answer(&solicitation(TARGET), &arrival(Ipv6Addr::UNSPECIFIED), &interface(), &wanted()).is_none()
        );
    }

    #[test]
    fn ignores_other_targets_low_hop_limits_other_interfaces_and_other_types() {
        let other = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x11);
        assert!(answer(&solicitation(other), &arrival(SOLICITOR), &interface(), &wanted()).is_none());
        let routed = Arrival { hop_limit: Some(64), ..arrival(SOLICITOR) };
        assert!(answer(&solicitation(TARGET), &routed, &interface(), &wanted()).is_none());
        let unknown_hops = Arrival { hop_limit: None, ..arrival(SOLICITOR) };
        assert!(answer(&solicitation(TARGET), &unknown_hops, &interface(), &wanted()).is_none());
        let elsewhere = Arrival { interface: Some(8), ..arrival(SOLICITOR) };
        assert!(answer(&solicitation(TARGET), &elsewhere, &interface(), &wanted()).is_none());
        let mut advert = solicitation(TARGET);
        advert[0] = 136;
        assert!(answer(&advert, &arrival(SOLICITOR), &interface(), &wanted()).is_none());
        let mut coded = solicitation(TARGET);
        coded[1] = 1;
        assert!(answer(&coded, &arrival(SOLICITOR), &interface(), &wanted()).is_none());
    }

    #[test]
    fn malformed_solicitations_get_no_answer_and_no_panic() {
        let valid = solicitation(TARGET);
        for length in 0..24 {
            assert!(answer(&valid[..length], &arrival(SOLICITOR), &interface(), &wanted()).is_none());
        }
        // A cut-short option and a zero-length option.
        for options in [&[1u8, 1, 2][..], &[1, 0, 0, 0, 0, 0, 0, 0]] {
            let mut broken = valid[..24].to_vec();
            broken.extend_from_slice(options);
            assert!(answer(&broken, &arrival(SOLICITOR), &interface(), &wanted()).is_none(), "{options:?}");
        }
        let mut seed = 11u32;
        for length in 0..200 {
            let mut random = valid.clone();
            random.resize(length % 64, 0);
            for byte in random.iter_mut().skip(2) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *byte = (seed >> 16) as u8;
            }
            let _ = answer(&random, &arrival(SOLICITOR), &interface(), &wanted());
        }
    }

    #[test]
    fn solicited_node_group_takes_the_last_three_bytes() {
        let address = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0x1234, 0x5678);
        assert_eq!(solicited_node(address), "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn control_messages_give_hop_limit_and_packet_info_and_survive_garbage() {
        let header = cmsg_align(size_of::<libc::cmsghdr>());
        let mut control = Vec::new();
        let mut push = |level: i32, kind: i32, data: &[u8]| {
            let mut cmsg: libc::cmsghdr = unsafe { std::mem::zeroed() };
            cmsg.cmsg_len = (header + data.len()) as _;
            cmsg.cmsg_level = level;
            cmsg.cmsg_type = kind;
            // SAFETY: a cmsghdr is plain integers.
            let bytes = unsafe {
                std::slice::from_raw_parts(std::ptr::from_ref(&cmsg).cast::<u8>(), size_of::<libc::cmsghdr>())
            };
            let start = control.len();
            control.extend_from_slice(bytes);
            control.resize(start + header, 0);
            control.extend_from_slice(data);
            control.resize(cmsg_align(control.len()), 0);
        };
        push(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, &255i32.to_ne_bytes());
        let mut info = TARGET.octets().to_vec();
        info.extend_from_slice(&7u32.to_ne_bytes());
        push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info);
        let arrival = parse_control(&control);
        assert_eq!(
            arrival,
            Arrival { source: None, destination: Some(TARGET), hop_limit: Some(255), interface: Some(7) }
        );
        for length in 0..control.len() {
            let _ = parse_control(&control[..length]);
        }
        assert_eq!(parse_control(&[0xff; 64]), Arrival::default());
        let sent = parse_control(&packet_info(TARGET, 9));
        assert_eq!((sent.destination, sent.interface), (Some(TARGET), Some(9)));
    }
}
