//! UPDATE building, checked by decoding the bytes back with the codec.

use rustbgpd_wire::{decode_message, Message, ParsedUpdate};

use super::*;

fn route(prefix: &str, communities: &[&str], local_pref: Option<u32>) -> Route {
    Route {
        prefix: prefix.parse().unwrap(),
        communities: communities.iter().map(|c| c.parse().unwrap()).collect(),
        local_pref,
    }
}

fn parse(message: &Bytes, four_octet_as: bool) -> ParsedUpdate {
    assert!(message.len() <= 4096);
    let mut bytes = message.clone();
    let Message::Update(update) = decode_message(&mut bytes, MAX_MESSAGE_LEN).unwrap() else { panic!("not an UPDATE") };
    update.parse(four_octet_as, false, &[]).unwrap()
}

fn context(ibgp: bool, four_octet_as: bool, next_hop: &str) -> UpdateContext {
    UpdateContext { local_asn: 4_200_000_001, ibgp, four_octet_as, next_hop: next_hop.parse().unwrap() }
}

fn has(update: &ParsedUpdate, wanted: &PathAttribute) -> bool {
    update.attributes.contains(wanted)
}

#[test]
fn routes_with_the_same_attributes_share_one_update() {
    let routes = [
        route("198.18.100.10/32", &["65535:65282", "large:1:2:3"], None),
        route("198.18.100.11/32", &["65535:65282", "large:1:2:3"], None),
        route("198.18.100.12/32", &[], None),
    ];
    let messages = announcements(&routes, &context(false, true, "198.18.0.2")).unwrap();
    assert_eq!(messages.len(), 2, "two attribute sets, two UPDATEs");
    let updates: Vec<ParsedUpdate> = messages.iter().map(|m| parse(m, true)).collect();
    let with = updates.iter().find(|u| u.announced.len() == 2).unwrap();
    let announced: Vec<String> = with.announced.iter().map(|e| e.prefix.to_string()).collect();
    assert_eq!(announced, ["198.18.100.10/32", "198.18.100.11/32"]);
    assert!(has(with, &PathAttribute::Origin(Origin::Igp)));
    assert!(has(
        with,
        &PathAttribute::AsPath(AsPath { segments: vec![AsPathSegment::AsSequence(vec![4_200_000_001])] })
    ));
    assert!(has(with, &PathAttribute::NextHop("198.18.0.2".parse().unwrap())));
    assert!(has(with, &PathAttribute::Communities(vec![0xFFFF_FF02])));
    assert!(has(with, &PathAttribute::LargeCommunities(vec![LargeCommunity::new(1, 2, 3)])));
    assert!(!with.attributes.iter().any(|a| matches!(a, PathAttribute::LocalPref(_))), "no LOCAL_PREF to eBGP");
    let without = updates.iter().find(|u| u.announced.len() == 1).unwrap();
    assert!(!without
        .attributes
        .iter()
        .any(|a| matches!(a, PathAttribute::Communities(_) | PathAttribute::LargeCommunities(_))));
    let codes: Vec<u8> = with.attributes.iter().map(PathAttribute::type_code).collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(codes, sorted, "attributes in type order");
}

#[test]
fn ibgp_gets_local_pref_and_an_empty_as_path() {
    let routes = [route("198.18.100.10/32", &[], Some(250)), route("198.18.100.11/32", &[], None)];
    let messages = announcements(&routes, &context(true, true, "198.18.0.2")).unwrap();
    let updates: Vec<ParsedUpdate> = messages.iter().map(|m| parse(m, true)).collect();
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().any(|u| has(u, &PathAttribute::LocalPref(250))));
    assert!(updates.iter().any(|u| has(u, &PathAttribute::LocalPref(100))), "default 100");
    for update in &updates {
        assert!(has(update, &PathAttribute::AsPath(AsPath { segments: Vec::new() })));
    }
}

#[test]
fn a_two_octet_peer_gets_as_trans_and_as4_path() {
    let messages =
        announcements(&[route("198.18.100.10/32", &[], None)], &context(false, false, "198.18.0.2")).unwrap();
    let message = &messages[0];
    // AS_PATH: flags 0x40, type 2, length 4, AS_SEQUENCE of one 2-octet AS: AS_TRANS.
    let as_trans = [0x40, 2, 4, 2, 1, 0x5B, 0xA0];
    assert!(message.windows(as_trans.len()).any(|w| w == as_trans), "{message:x?}");
    // The codec folds AS4_PATH back into the 4-octet path.
    let update = parse(message, false);
    assert!(has(
        &update,
        &PathAttribute::AsPath(AsPath { segments: vec![AsPathSegment::AsSequence(vec![4_200_000_001])] })
    ));
}

#[test]
fn ipv6_routes_go_in_mp_reach_with_our_next_hop() {
    let routes = [route("fd00:198:18:64::10/128", &["64512:100"], None)];
    let messages = announcements(&routes, &context(false, true, "fd00:198:18::2")).unwrap();
    let update = parse(&messages[0], true);
    assert!(update.announced.is_empty(), "nothing in the IPv4 NLRI field");
    let Some(PathAttribute::MpReachNlri(reach)) =
        update.attributes.iter().find(|a| matches!(a, PathAttribute::MpReachNlri(_)))
    else {
        panic!("no MP_REACH_NLRI")
    };
    assert_eq!(reach.next_hop, "fd00:198:18::2".parse::<IpAddr>().unwrap());
    assert_eq!(reach.announced[0].prefix.to_string(), "fd00:198:18:64::10/128");
    assert!(!update.attributes.iter().any(|a| matches!(a, PathAttribute::NextHop(_))));
    assert!(has(&update, &PathAttribute::Communities(vec![64512 << 16 | 100])));
}

#[test]
fn withdrawals_use_the_withdrawn_field_and_mp_unreach() {
    let prefixes: Vec<IpNet> =
        ["198.18.100.10/32", "fd00:198:18:64::10/128"].iter().map(|p| p.parse().unwrap()).collect();
    let messages = withdrawals(&prefixes, &context(false, true, "198.18.0.2")).unwrap();
    assert_eq!(messages.len(), 2);
    let v4 = parse(&messages[0], true);
    assert_eq!(v4.withdrawn[0].prefix.to_string(), "198.18.100.10/32");
    assert!(v4.attributes.is_empty());
    let v6 = parse(&messages[1], true);
    let Some(PathAttribute::MpUnreachNlri(unreach)) = v6.attributes.first() else { panic!("no MP_UNREACH_NLRI") };
    assert_eq!(unreach.withdrawn[0].prefix.to_string(), "fd00:198:18:64::10/128");
    assert!(withdrawals(&[], &context(false, true, "198.18.0.2")).unwrap().is_empty());
}

#[test]
fn many_routes_split_into_messages_under_4096_bytes() {
    let routes: Vec<Route> = (0..3000u32)
        .map(|i| route(&format!("{}/32", std::net::Ipv4Addr::from(0xC612_0000 + i)), &["1:1"], None))
        .collect();
    let messages = announcements(&routes, &context(false, true, "198.18.0.2")).unwrap();
    assert!(messages.len() > 1);
    let total: usize = messages.iter().map(|m| parse(m, true).announced.len()).sum();
    assert_eq!(total, 3000);
    let v6: Vec<Route> = (0..1000u32).map(|i| route(&format!("fd00:198:18::{i:x}/128"), &[], None)).collect();
    let messages = announcements(&v6, &context(false, true, "fd00::2")).unwrap();
    assert!(messages.len() > 1);
    let withdrawn: Vec<IpNet> = routes.iter().map(|r| r.prefix).collect();
    let messages = withdrawals(&withdrawn, &context(false, true, "198.18.0.2")).unwrap();
    let total: usize = messages.iter().map(|m| parse(m, true).withdrawn.len()).sum();
    assert_eq!(total, 3000);
}

#[test]
fn a_prefix_of_the_other_family_is_an_error_not_a_panic() {
    let error = announcements(&[route("fd00::1/128", &[], None)], &context(false, true, "198.18.0.2")).unwrap_err();
    assert!(error.contains("fd00::1/128"), "{error}");
    let huge: Vec<String> = (0..1100).map(|i| format!("{i}:1")).collect();
    let huge: Vec<&str> = huge.iter().map(String::as_str).collect();
    let error = announcements(&[route("198.18.0.1/32", &huge, None)], &context(false, true, "198.18.0.2")).unwrap_err();
    assert!(error.contains("no room") || error.contains("UPDATE"), "{error}");
}
