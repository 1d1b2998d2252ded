//! UPDATE messages: announcements grouped by identical attributes, and withdrawals, each
//! split to fit the 4096-byte message limit.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use rustbgpd_wire::{
    Afi, AsPath, AsPathSegment, Ipv4NlriEntry, Ipv4Prefix, Ipv4UnicastMode, Ipv6Prefix, LargeCommunity, MpReachNlri,
    MpUnreachNlri, NlriEntry, Origin, PathAttribute, Prefix, Safi, UpdateMessage, MAX_MESSAGE_LEN,
};

use crate::config::{Community, Route};

/// LOCAL_PREF sent to iBGP peers for a route without one (the usual default).
const DEFAULT_LOCAL_PREF: u32 = 100;
/// Header (19) + withdrawn length (2) + attributes length (2).
const UPDATE_OVERHEAD: usize = 23;
/// Room kept for attribute headers growing to the extended length form.
const SLACK: usize = 16;
/// The largest encoded prefixes: length byte + address.
const MAX_V4_PREFIX: usize = 5;
const MAX_V6_PREFIX: usize = 17;

/// How the session encodes its UPDATEs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UpdateContext {
    pub(crate) local_asn: u32,
    pub(crate) ibgp: bool,
    /// The peer has the 4-octet AS capability (else AS_TRANS in AS_PATH plus AS4_PATH).
    pub(crate) four_octet_as: bool,
    /// The local address of the session: NEXT_HOP for IPv4 routes, the MP_REACH next hop
    /// for IPv6 routes.
    pub(crate) next_hop: IpAddr,
}

/// The attributes that decide which routes share an UPDATE.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AttributeKey<'a> {
    communities: &'a [Community],
    local_pref: Option<u32>,
}

/// UPDATEs announcing `routes`, one group per set of identical attributes. Each route's
/// prefix must be of the next hop's family.
pub(crate) fn announcements<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    context: &UpdateContext,
) -> Result<Vec<Bytes>, String> {
    let mut groups: BTreeMap<AttributeKey<'a>, Vec<IpNet>> = BTreeMap::new();
    for route in routes {
        let key = AttributeKey { communities: &route.communities, local_pref: route.local_pref };
        groups.entry(key).or_default().push(route.prefix);
    }
    let mut messages = Vec::new();
    for (key, prefixes) in groups {
        let attributes = attributes(&key, context);
        match context.next_hop {
            IpAddr::V4(next_hop) => {
                let mut all = attributes;
                all.push(PathAttribute::NextHop(next_hop));
                all.sort_by_key(PathAttribute::type_code);
                let v4 = ipv4_entries(&prefixes)?;
                let base = build(&[], &all, context)?.encoded_len();
                for chunk in v4.chunks(per_message(base, MAX_V4_PREFIX)?) {
                    messages.push(encode(build(chunk, &all, context)?)?);
                }
            }
            IpAddr::V6(next_hop) => {
                let v6 = ipv6_entries(&prefixes)?;
                let reach = |announced: Vec<NlriEntry>| {
                    let mut all = attributes.clone();
                    all.push(PathAttribute::MpReachNlri(Box::new(mp_reach(next_hop.into(), announced))));
                    all.sort_by_key(PathAttribute::type_code);
                    all
                };
                let base = build(&[], &reach(Vec::new()), context)?.encoded_len();
                for chunk in v6.chunks(per_message(base, MAX_V6_PREFIX)?) {
                    messages.push(encode(build(&[], &reach(chunk.to_vec()), context)?)?);
                }
            }
        }
    }
    Ok(messages)
}

/// UPDATEs withdrawing `prefixes`: IPv4 in the withdrawn routes field, IPv6 in
/// MP_UNREACH_NLRI.
pub(crate) fn withdrawals(prefixes: &[IpNet], context: &UpdateContext) -> Result<Vec<Bytes>, String> {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
    let mut messages = Vec::new();
    for chunk in ipv4_entries(&v4)?.chunks(per_message(UPDATE_OVERHEAD, MAX_V4_PREFIX)?) {
        let update = UpdateMessage::try_build(&[], chunk, &[], context.four_octet_as, false, Ipv4UnicastMode::Body)
            .map_err(|e| format!("building a withdrawal: {e}"))?;
        messages.push(encode(update)?);
    }
    let unreach = |withdrawn: Vec<NlriEntry>| {
        vec![PathAttribute::MpUnreachNlri(Box::new(MpUnreachNlri {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            withdrawn,
            flowspec_withdrawn: Vec::new(),
            evpn_withdrawn: Vec::new(),
            bgpls_withdrawn: Vec::new(),
            vpn_withdrawn: Vec::new(),
            labeled_withdrawn: Vec::new(),
            rtc_withdrawn: Vec::new(),
        }))]
    };
    let base = build(&[], &unreach(Vec::new()), context)?.encoded_len();
    for chunk in ipv6_entries(&v6)?.chunks(per_message(base, MAX_V6_PREFIX)?) {
        messages.push(encode(build(&[], &unreach(chunk.to_vec()), context)?)?);
    }
    Ok(messages)
}

/// ORIGIN IGP, AS_PATH (ours for eBGP, empty for iBGP), LOCAL_PREF for iBGP, communities.
fn attributes(key: &AttributeKey<'_>, context: &UpdateContext) -> Vec<PathAttribute> {
    let segments = if context.ibgp { Vec::new() } else { vec![AsPathSegment::AsSequence(vec![context.local_asn])] };
    let mut attributes = vec![PathAttribute::Origin(Origin::Igp), PathAttribute::AsPath(AsPath { segments })];
    if context.ibgp {
        attributes.push(PathAttribute::LocalPref(key.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)));
    }
    let standard: Vec<u32> = key
        .communities
        .iter()
        .filter_map(|c| match c {
            Community::Standard(high, low) => Some(u32::from(*high) << 16 | u32::from(*low)),
            Community::Large(..) => None,
        })
        .collect();
    if !standard.is_empty() {
        attributes.push(PathAttribute::Communities(standard));
    }
    let large: Vec<LargeCommunity> = key
        .communities
        .iter()
        .filter_map(|c| match c {
            Community::Large(global, local1, local2) => Some(LargeCommunity::new(*global, *local1, *local2)),
            Community::Standard(..) => None,
        })
        .collect();
    if !large.is_empty() {
        attributes.push(PathAttribute::LargeCommunities(large));
    }
    attributes
}

fn mp_reach(next_hop: IpAddr, announced: Vec<NlriEntry>) -> MpReachNlri {
    MpReachNlri {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hop,
        link_local_next_hop: None,
        announced,
        flowspec_announced: Vec::new(),
        evpn_announced: Vec::new(),
        bgpls_announced: Vec::new(),
        vpn_announced: Vec::new(),
        labeled_announced: Vec::new(),
        rtc_announced: Vec::new(),
    }
}

/// How many prefixes fit in one message whose other parts take `base` bytes.
fn per_message(base: usize, per_prefix: usize) -> Result<usize, String> {
    let room = usize::from(MAX_MESSAGE_LEN).saturating_sub(base + SLACK) / per_prefix;
    if room == 0 {
        return Err(format!("the route attributes take {base} bytes: no room for a prefix in a 4096-byte UPDATE"));
    }
    Ok(room)
}

fn build(
    announced: &[Ipv4NlriEntry],
    attributes: &[PathAttribute],
    context: &UpdateContext,
) -> Result<UpdateMessage, String> {
    UpdateMessage::try_build(announced, &[], attributes, context.four_octet_as, false, Ipv4UnicastMode::Body)
        .map_err(|e| format!("building an UPDATE: {e}"))
}

fn encode(update: UpdateMessage) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(update.encoded_len());
    update.encode(&mut buf).map_err(|e| format!("encoding an UPDATE: {e}"))?;
    Ok(buf.freeze())
}

fn ipv4_entries(prefixes: &[IpNet]) -> Result<Vec<Ipv4NlriEntry>, String> {
    prefixes
        .iter()
        .map(|prefix| match prefix {
            IpNet::V4(net) => {
                Ok(Ipv4NlriEntry { path_id: 0, prefix: Ipv4Prefix::new(net.network(), net.prefix_len()) })
            }
            IpNet::V6(_) => Err(format!("{prefix} cannot be announced with an IPv4 next hop")),
        })
        .collect()
}

fn ipv6_entries(prefixes: &[IpNet]) -> Result<Vec<NlriEntry>, String> {
    prefixes
        .iter()
        .map(|prefix| match prefix {
            IpNet::V6(net) => {
                Ok(NlriEntry { path_id: 0, prefix: Prefix::V6(Ipv6Prefix::new(net.network(), net.prefix_len())) })
            }
            IpNet::V4(_) => Err(format!("{prefix} cannot be announced with an IPv6 next hop")),
        })
        .collect()
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
