//! Allocation and listener tests on stores decoded from manifest YAML.

use std::net::IpAddr;

use sluice_config::{L4Protocol, ObjectRef, Snapshot};

use crate::tests::{options, store};
use crate::{translate, Allocations};

fn lb(name: &str, extra_meta: &str, extra_spec: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{extra_meta}spec:\n  type: LoadBalancer\n{extra_spec}  ports: {ports}\n---\n"
    )
}

fn run(yaml: &str, pool: &str, previous: &Allocations) -> Snapshot {
    let mut options = options();
    options.lb_pools = vec![pool.parse().unwrap()];
    translate(&store(yaml), &options, previous, 1)
}

fn ips(snapshot: &Snapshot, name: &str) -> Option<Vec<String>> {
    let object = ObjectRef::new("Service", "default", name);
    snapshot.l4.addresses.get(&object).map(|v| v.iter().map(IpAddr::to_string).collect())
}

const TCP80: &str = "[{port: 80}]";

#[test]
fn distinct_addresses_and_listeners_per_port_and_protocol() {
    let yaml = [
        lb("a", "", "", "[{name: dns-tcp, port: 53, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]"),
        lb("b", "", "", TCP80),
        "apiVersion: v1\nkind: Service\nmetadata: {name: internal}\nspec: {ports: [{port: 80}]}\n---\n".into(),
        lb("foreign", "", "  loadBalancerClass: other.io/lb\n", TCP80),
        lb("explicit", "", "  loadBalancerClass: sluice.dev/lb\n", TCP80),
    ]
    .concat();
    let snapshot = run(&yaml, "127.0.20.1-127.0.20.9", &Allocations::new());
    assert_eq!(ips(&snapshot, "a").unwrap(), ["127.0.20.1"]);
    assert_eq!(ips(&snapshot, "b").unwrap(), ["127.0.20.2"]);
    assert_eq!(ips(&snapshot, "explicit").unwrap(), ["127.0.20.3"]);
    assert_eq!(ips(&snapshot, "internal"), None);
    assert_eq!(ips(&snapshot, "foreign"), None);
    let keys: Vec<_> = snapshot.l4.listeners.keys().map(|(p, a)| (*p, a.to_string())).collect();
    assert!(keys.contains(&(L4Protocol::Tcp, "127.0.20.1:53".into())));
    assert!(keys.contains(&(L4Protocol::Udp, "127.0.20.1:53".into())));
    assert_eq!(keys.len(), 4);
    assert!(snapshot.diagnostics.is_empty(), "{:?}", snapshot.diagnostics);
}

#[test]
fn requested_addresses_are_honoured_or_wait_with_a_reason() {
    let yaml = [
        lb("first", "", "", TCP80),
        lb("wants", "", "  loadBalancerIP: 127.0.20.5\n", TCP80),
        lb("outside", "", "  loadBalancerIP: 10.9.9.9\n", TCP80),
        lb("wants-too", "  annotations: {sluice.dev/load-balancer-ips: \"127.0.20.5\"}\n", "", TCP80),
    ]
    .concat();
    let snapshot = run(&yaml, "127.0.20.1-127.0.20.9", &Allocations::new());
    assert_eq!(ips(&snapshot, "wants").unwrap(), ["127.0.20.5"]);
    assert_eq!(ips(&snapshot, "first").unwrap(), ["127.0.20.1"]);
    assert_eq!(ips(&snapshot, "outside"), None);
    assert_eq!(ips(&snapshot, "wants-too"), None, "same age: name order decides");
    let text: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|d| d.contains("Service default/outside: spec.loadBalancerIP: 10.9.9.9 is not in any address pool")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|d| d.contains("default/wants-too") && d.contains("in use by Service default/wants")),
        "{text:?}"
    );
}

#[test]
fn previous_allocations_are_kept_and_a_full_pool_leaves_services_pending() {
    let yaml = [lb("a", "", "", TCP80), lb("b", "", "", TCP80), lb("c", "", "", TCP80)].concat();
    let mut previous = Allocations::new();
    previous.insert(ObjectRef::new("Service", "default", "c"), vec!["127.0.20.1".parse().unwrap()]);
    let snapshot = run(&yaml, "127.0.20.1-127.0.20.2", &previous);
    assert_eq!(ips(&snapshot, "c").unwrap(), ["127.0.20.1"], "c keeps its address");
    assert_eq!(ips(&snapshot, "a").unwrap(), ["127.0.20.2"]);
    assert_eq!(ips(&snapshot, "b"), None, "pool exhausted");
    assert!(snapshot
        .diagnostics
        .iter()
        .any(|d| d.to_string().contains("Service default/b: spec.type: no free address")));

    // Deleting a Service frees its address for the waiting one.
    let yaml = [lb("b", "", "", TCP80), lb("c", "", "", TCP80)].concat();
    let next = run(&yaml, "127.0.20.1-127.0.20.2", &snapshot.l4.addresses);
    assert_eq!(ips(&next, "c").unwrap(), ["127.0.20.1"]);
    assert_eq!(ips(&next, "b").unwrap(), ["127.0.20.2"]);
}

#[test]
fn shared_addresses_need_the_same_key_and_distinct_ports() {
    let shared = "  annotations: {sluice.dev/allow-shared-ip: team}\n";
    let yaml = [
        lb("web", shared, "", TCP80),
        lb("dns", shared, "", "[{port: 53, protocol: UDP}]"),
        lb("clash", shared, "", TCP80),
        lb("other", "", "", "[{port: 443}]"),
    ]
    .concat();
    let snapshot = run(&yaml, "127.0.20.1-127.0.20.9", &Allocations::new());
    let ip = |n| ips(&snapshot, n).unwrap();
    assert_ne!(ip("clash"), ip("web"), "both use 80/TCP");
    assert!(ip("dns") == ip("web") || ip("dns") == ip("clash"), "53/UDP fits beside either");
    assert_ne!(ip("other"), ip("web"));
    assert_ne!(ip("other"), ip("clash"));
}

#[test]
fn bad_annotations_reject_only_that_service() {
    let yaml = [
        lb("bad", "  annotations: {sluice.dev/proxy-protocol: v3}\n", "", TCP80),
        lb("good", "  annotations: {sluice.dev/proxy-protocol: v2, sluice.dev/idle-timeout: 5m}\n", "", TCP80),
    ]
    .concat();
    let snapshot = run(&yaml, "127.0.20.1-127.0.20.9", &Allocations::new());
    assert_eq!(ips(&snapshot, "bad"), None);
    let listener = snapshot.l4.listeners.values().next().unwrap();
    assert_eq!(listener.service.name, "good");
    assert_eq!(listener.proxy_protocol, Some(sluice_config::ProxyProtocol::V2));
    assert_eq!(listener.idle_timeout, std::time::Duration::from_secs(300));
    assert!(snapshot.diagnostics[0].to_string().contains("metadata.annotations[sluice.dev/proxy-protocol]"));
}
