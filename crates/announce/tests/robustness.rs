//! Garbage from the network: malformed ARP frames, truncated and invalid neighbour
//! solicitations and solicitations that crossed a router reach the node; it answers none of
//! them and keeps answering the valid ones.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use sluice_announce::{Interfaces, L2Announcer, LocalAddresses};
use sluice_testnet::{require_netns, veth, Netns};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};
use support::{arping, index, mac, wait_for_link_local, without_dad, NodeRuntime, PATIENCE};

const VIP4: [u8; 4] = [198, 18, 7, 10];
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 7, 0, 0, 0, 0x10);
const SOLICITED_NODE: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x10);

fn mac_bytes(text: &str) -> [u8; 6] {
    let mut mac = [0; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("a MAC");
    }
    mac
}

/// A pseudo-random byte sequence (the same every run).
fn noise(seed: &mut u32, length: usize) -> Vec<u8> {
    (0..length)
        .map(|_| {
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (*seed >> 16) as u8
        })
        .collect()
}

/// Broken ARP frames from `source`: every truncation of a valid request for the address,
/// impossible lengths and types, unknown operations, and noise.
fn broken_arp_frames(source: [u8; 6]) -> Vec<Vec<u8>> {
    let mut valid = vec![0xff; 6];
    valid.extend_from_slice(&source);
    valid.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    valid.extend_from_slice(&source);
    valid.extend_from_slice(&[198, 18, 7, 2, 0, 0, 0, 0, 0, 0]);
    valid.extend_from_slice(&VIP4);
    let mut frames: Vec<Vec<u8>> = (14..valid.len()).map(|length| valid[..length].to_vec()).collect();
    for (offset, value) in [(14, 0xff), (16, 0x86), (18, 0xff), (19, 0xff), (18, 0), (21, 0), (21, 3), (20, 0xff)] {
        let mut broken = valid.clone();
        broken[offset] = value;
        frames.push(broken);
    }
    let mut seed = 1;
    for length in 0..300 {
        let mut frame = valid[..14].to_vec();
        frame.extend(noise(&mut seed, length % 80));
        frames.push(frame);
    }
    frames
}

/// Sends raw Ethernet `frames` (ARP ethertype) on `interface` from inside `ns`.
fn send_frames(ns: &Netns, interface: &str, frames: Vec<Vec<u8>>) {
    let ifindex = index(ns, interface);
    let sent = ns.enter(move || -> io::Result<()> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: sockaddr_ll is one of this platform's socket address types.
        let address = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = 0x0806u16.to_be();
        address.sll_ifindex = ifindex as i32;
        // SAFETY: the storage holds an initialised sockaddr_ll.
        socket.bind(&unsafe { SockAddr::new(storage, size_of::<libc::sockaddr_ll>() as u32) })?;
        for frame in frames {
            socket.send(&frame)?;
        }
        Ok(())
    });
    sent.expect("enter the namespace").expect("send the frames");
}

/// Sends `messages` as ICMPv6 to the address's solicited-node group on `interface` with
/// `hop_limit`, then waits up to `wait` for a solicited advertisement of the address; true
/// if one came.
fn solicit(ns: &Netns, interface: &str, messages: Vec<Vec<u8>>, hop_limit: u32, wait: Duration) -> bool {
    let ifindex = index(ns, interface);
    let interface = interface.to_owned();
    let answered = ns.enter(move || -> io::Result<bool> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_multicast_hops_v6(hop_limit)?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let group = SockAddr::from(SocketAddrV6::new(SOLICITED_NODE, 0, 0, ifindex));
        for message in messages {
            // The kernel refuses some of the shortest ones; those never reach the node.
            let _ = socket.send_to(&message, &group);
        }
        let deadline = Instant::now() + wait;
        let mut buffer = [0; 1500];
        while Instant::now() < deadline {
            let Ok(length) = (&socket).read(&mut buffer) else { continue };
            let message = &buffer[..length];
            if length >= 24 && message[0] == 136 && message[4] & 0x40 != 0 && message[8..24] == VIP6.octets() {
                return Ok(true);
            }
        }
        Ok(false)
    });
    answered.expect("enter the namespace").expect("solicit")
}

fn solicitation(source_mac: [u8; 6]) -> Vec<u8> {
    let mut message = vec![135, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&VIP6.octets());
    message.extend_from_slice(&[1, 1]);
    message.extend_from_slice(&source_mac);
    message
}

#[test]
fn malformed_arp_and_ndp_messages_get_no_answer_and_the_node_keeps_answering() {
    require_netns!();
    let node = Netns::new("robn").unwrap();
    let client = Netns::new("robc").unwrap();
    without_dad(&node);
    without_dad(&client);
    veth(&node, "n0", "198.18.7.1/24", &client, "c0", "198.18.7.2/24").unwrap();
    node.address("n0", "fd00:198:18:7::1/64").unwrap();
    client.address("c0", "fd00:198:18:7::2/64").unwrap();
    wait_for_link_local(&node, "n0");
    wait_for_link_local(&client, "c0");
    let runtime = NodeRuntime::new(&node);
    let mut registry = Registry::default();
    let announcer = L2Announcer::new(&mut registry);
    let (vip4, vip6) = (IpAddr::from(VIP4), IpAddr::V6(VIP6));

    let announcing = announcer.clone();
    let (local, problems) = runtime.run(async move {
        let local = LocalAddresses::new().await.expect("netlink");
        let mut problems = local.apply(&BTreeSet::from([vip4, vip6])).await;
        problems.extend(announcing.apply(&BTreeMap::from([(vip4, Interfaces::All), (vip6, Interfaces::All)])).await);
        (local, problems)
    });
    assert!(problems.is_empty(), "{problems:?}");
    let client_mac = mac_bytes(&mac(&client, "c0"));

    send_frames(&client, "c0", broken_arp_frames(client_mac));
    assert_eq!(arping(&client, "c0", "198.18.7.10"), [mac(&node, "n0"), mac(&node, "n0")], "ARP still answered");

    let valid = solicitation(client_mac);
    // Every truncation but the one at 24 bytes: a solicitation without options is valid.
    let mut broken: Vec<Vec<u8>> =
        (4..valid.len()).filter(|length| *length != 24).map(|length| valid[..length].to_vec()).collect();
    for options in [&[1u8, 0, 0, 0, 0, 0, 0, 0][..], &[1, 2, 0, 0, 0, 0, 0, 0], &[1]] {
        let mut message = valid[..24].to_vec();
        message.extend_from_slice(options);
        broken.push(message);
    }
    let mut seed = 2;
    for length in 0..200 {
        let mut message = vec![135, 0, 0, 0];
        message.extend(noise(&mut seed, length % 60));
        broken.push(message);
    }
    assert!(!solicit(&client, "c0", broken, 255, Duration::from_secs(1)), "a malformed solicitation was answered");
    assert!(
        !solicit(&client, "c0", vec![valid.clone()], 64, Duration::from_secs(1)),
        "a solicitation with hop limit 64 (it crossed a router) was answered"
    );
    assert!(solicit(&client, "c0", vec![valid], 255, PATIENCE), "NDP still answered");

    let stopping = announcer.clone();
    runtime.run(async move {
        stopping.shutdown().await;
        local.shutdown().await;
    });
}
