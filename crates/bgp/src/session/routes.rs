//! Which routes a session announces, and what changed since the last time.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Route;

/// One route per prefix, sorted: host bits cleared, duplicates merged (the union of their
/// communities, the higher LOCAL_PREF).
pub(crate) fn normalize(routes: Vec<Route>) -> Vec<Route> {
    let mut by_prefix: BTreeMap<IpNet, Route> = BTreeMap::new();
    for mut route in routes {
        route.prefix = route.prefix.trunc();
        match by_prefix.get_mut(&route.prefix) {
            Some(existing) => {
                existing.communities.append(&mut route.communities);
                existing.local_pref = existing.local_pref.max(route.local_pref);
            }
            None => {
                by_prefix.insert(route.prefix, route);
            }
        }
    }
    by_prefix
        .into_values()
        .map(|mut route| {
            route.communities.sort_unstable();
            route.communities.dedup();
            route
        })
        .collect()
}

/// The routes a session can announce, and a sentence about the ones it cannot.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Announceable {
    pub(super) routes: BTreeMap<IpNet, Route>,
    pub(super) skipped: Option<String>,
}

/// Keeps the routes of the session's family (that of the peer's address) when the peer
/// takes that family; the others are named in `skipped`.
pub(super) fn announceable(routes: &[Route], peer: IpAddr, peer_takes_family: bool) -> Announceable {
    let same_family = |route: &Route| route.prefix.addr().is_ipv4() == peer.is_ipv4();
    let (kept, other): (Vec<&Route>, Vec<&Route>) = routes.iter().partition(|r| same_family(r));
    let mut problems = Vec::new();
    if !other.is_empty() {
        let names: Vec<String> = other.iter().map(|r| r.prefix.to_string()).collect();
        let session = if peer.is_ipv4() { "IPv4" } else { "IPv6" };
        problems
            .push(format!("not announced over this {session} session (other address family): {}", names.join(", ")));
    }
    if !kept.is_empty() && !peer_takes_family {
        let family = if peer.is_ipv4() { "IPv4" } else { "IPv6" };
        problems.push(format!("not announced: the peer did not offer {family} unicast in its OPEN"));
        return Announceable { routes: BTreeMap::new(), skipped: Some(problems.join("; ")) };
    }
    Announceable {
        routes: kept.into_iter().map(|r| (r.prefix, r.clone())).collect(),
        skipped: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// What to send to go from `announced` to `wanted`: new or changed routes, gone prefixes.
pub(super) fn difference<'a>(
    announced: &BTreeMap<IpNet, Route>,
    wanted: &'a BTreeMap<IpNet, Route>,
) -> (Vec<&'a Route>, Vec<IpNet>) {
    let announce = wanted.values().filter(|route| announced.get(&route.prefix) != Some(*route)).collect();
    let withdraw = announced.keys().filter(|prefix| !wanted.contains_key(prefix)).copied().collect();
    (announce, withdraw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Community;

    fn route(prefix: &str, communities: &[Community], local_pref: Option<u32>) -> Route {
        Route { prefix: prefix.parse().unwrap(), communities: communities.to_vec(), local_pref }
    }

    #[test]
    fn duplicates_merge_and_host_bits_clear() {
        let a = Community::Standard(1, 1);
        let b = Community::Large(1, 2, 3);
        let routes = normalize(vec![
            route("198.18.100.10/32", &[b], Some(50)),
            route("198.18.100.10/32", &[a, b], Some(200)),
            route("198.18.7.9/24", &[], None),
        ]);
        assert_eq!(routes, [route("198.18.7.0/24", &[], None), route("198.18.100.10/32", &[a, b], Some(200))]);
    }

    #[test]
    fn other_family_routes_are_skipped_and_named() {
        let routes = [route("198.18.100.10/32", &[], None), route("fd00:198:18:64::10/128", &[], None)];
        let v4 = announceable(&routes, "198.18.0.1".parse().unwrap(), true);
        assert_eq!(v4.routes.len(), 1);
        let skipped = v4.skipped.unwrap();
        assert!(skipped.contains("fd00:198:18:64::10/128") && skipped.contains("IPv4 session"), "{skipped}");
        let v6 = announceable(&routes, "fd00::1".parse().unwrap(), false);
        assert!(v6.routes.is_empty());
        assert!(v6.skipped.unwrap().contains("did not offer IPv6 unicast"));
        assert_eq!(announceable(&routes[..1], "198.18.0.1".parse().unwrap(), true).skipped, None);
    }

    #[test]
    fn difference_sends_only_what_changed() {
        let one = route("198.18.100.10/32", &[], None);
        let two = route("198.18.100.11/32", &[], None);
        let announced: BTreeMap<IpNet, Route> = [(one.prefix, one.clone()), (two.prefix, two.clone())].into();
        let changed = route("198.18.100.11/32", &[Community::Standard(1, 2)], None);
        let three = route("198.18.100.12/32", &[], None);
        let wanted: BTreeMap<IpNet, Route> = [(changed.prefix, changed.clone()), (three.prefix, three.clone())].into();
        let (announce, withdraw) = difference(&announced, &wanted);
        assert_eq!(announce, [&changed, &three]);
        assert_eq!(withdraw, [one.prefix]);
        let (announce, withdraw) = difference(&wanted, &wanted);
        assert!(announce.is_empty() && withdraw.is_empty());
    }
}
