//! MetalLB's configuration and Nodes as manifests: the examples of MetalLB's configuration
//! documentation (metallb.universe.tf/configuration, and its `configsamples`) decode into the
//! store's types, and a field of the wrong type is a diagnostic naming the object and field.

use sluice_manifests::decode_documents;
use sluice_store::{Object, ObjectKey};

/// Decodes `yaml`, expecting no diagnostic.
fn decode(yaml: &str) -> Vec<Object> {
    let (objects, diagnostics) = decode_documents(yaml, false).expect("YAML");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    objects
}

fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(namespace, name)
}

#[test]
fn ip_address_pools_with_cidrs_ranges_ipv6_and_service_allocation() {
    let objects = decode(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first-pool
  namespace: metallb-system
spec:
  addresses:
  - 192.168.10.0/24
  - 192.168.9.1-192.168.9.5
  - fc00:f853:0ccd:e799::/124
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: ipv6-pool
  namespace: metallb-system
spec:
  addresses:
  - 2002:2:2::1-2002:2:2::100
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: ippool-ns-service-alloc-sample
  namespace: metallb-system
spec:
  addresses:
    - 192.168.20.0/24
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces:
      - namespace-a
      - namespace-b
    namespaceSelectors:
      - matchLabels:
          foo: bar
    serviceSelectors:
      - matchExpressions:
          - {key: app, operator: In, values: [bar]}
"#,
    );
    let pools: Vec<_> = objects
        .iter()
        .map(|object| match object {
            Object::IpAddressPool(pool) => pool,
            other => panic!("not a pool: {other:?}"),
        })
        .collect();
    assert_eq!(objects[0].key(), key("metallb-system", "first-pool"));
    assert_eq!(pools[0].spec.addresses, ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:0ccd:e799::/124"]);
    assert_eq!(pools[0].spec.auto_assign, None);
    assert_eq!(pools[1].spec.addresses, ["2002:2:2::1-2002:2:2::100"]);
    assert_eq!(pools[1].spec.auto_assign, Some(false));
    assert!(pools[2].spec.avoid_buggy_ips);
    let allocation = pools[2].spec.service_allocation.as_ref().unwrap();
    assert_eq!(allocation.priority, 50);
    assert_eq!(allocation.namespaces, ["namespace-a", "namespace-b"]);
    assert_eq!(allocation.namespace_selectors[0].match_labels.as_ref().unwrap()["foo"], "bar");
    let expression = &allocation.service_selectors[0].match_expressions.as_ref().unwrap()[0];
    assert_eq!((expression.key.as_str(), expression.operator.as_str()), ("app", "In"));
}

#[test]
fn l2_advertisements_without_spec_with_interfaces_and_node_selectors() {
    let objects = decode(
        r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: example
  namespace: metallb-system
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: fourth
  namespace: metallb-system
spec:
  ipAddressPools:
  - fourth-pool
  nodeSelectors:
  - matchLabels:
      kubernetes.io/hostname: NodeA
  - matchLabels:
      kubernetes.io/hostname: NodeB
  interfaces:
  - eth3
"#,
    );
    let [Object::L2Advertisement(all), Object::L2Advertisement(fourth)] = objects.as_slice() else {
        panic!("two L2Advertisements: {objects:?}");
    };
    assert_eq!(all.spec, Default::default(), "no spec: every pool, every node, every interface");
    assert_eq!(fourth.spec.ip_address_pools, ["fourth-pool"]);
    assert_eq!(fourth.spec.interfaces, ["eth3"]);
    let hosts: Vec<&str> = fourth
        .spec
        .node_selectors
        .iter()
        .map(|s| s.match_labels.as_ref().unwrap()["kubernetes.io/hostname"].as_str())
        .collect();
    assert_eq!(hosts, ["NodeA", "NodeB"]);
}

#[test]
fn bgp_advertisements_and_community_aliases() {
    let objects = decode(
        r#"
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: local
spec:
  ipAddressPools:
  - first-pool
  aggregationLength: 32
  localPref: 100
  communities:
  - 65535:65282
  - vpn-only
  peers:
  - PeerA
  - PeerB
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: external
spec:
  ipAddressPools:
  - first-pool
  aggregationLength: 24
  aggregationLengthV6: 64
  nodeSelectors:
  - matchLabels:
      kubernetes.io/hostname: NodeA
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: example
  namespace: metallb-system
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata:
  name: communities
  namespace: metallb-system
spec:
  communities:
  - name: vpn-only
    value: 1234:1
  - name: NO_ADVERTISE
    value: 65535:65282
"#,
    );
    let [Object::BgpAdvertisement(local), Object::BgpAdvertisement(external), Object::BgpAdvertisement(all), Object::Community(aliases)] =
        objects.as_slice()
    else {
        panic!("three BGPAdvertisements and a Community: {objects:?}");
    };
    assert_eq!(objects[0].key(), key("default", "local"), "no namespace: default");
    assert_eq!(local.spec.aggregation_length, Some(32));
    assert_eq!(local.spec.local_pref, 100);
    assert_eq!(local.spec.communities, ["65535:65282", "vpn-only"]);
    assert_eq!(local.spec.peers, ["PeerA", "PeerB"]);
    assert_eq!((external.spec.aggregation_length, external.spec.aggregation_length_v6), (Some(24), Some(64)));
    assert_eq!(external.spec.node_selectors.len(), 1);
    assert_eq!(all.spec, Default::default());
    let named: Vec<(&str, &str)> =
        aliases.spec.communities.iter().map(|c| (c.name.as_str(), c.value.as_str())).collect();
    assert_eq!(named, [("vpn-only", "1234:1"), ("NO_ADVERTISE", "65535:65282")]);
}

#[test]
fn bgp_peers_at_v1beta2_and_v1beta1() {
    let objects = decode(
        r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: example
  namespace: metallb-system
spec:
  myASN: 64512
  peerASN: 4200000001
  peerAddress: 172.30.0.3
  peerPort: 180
  sourceAddress: 172.30.0.2
  password: "yourPassword"
  holdTime: 90s
  keepaliveTime: 30s
  connectTime: 120s
  ebgpMultiHop: true
  routerID: 10.10.10.10
  nodeSelectors:
  - matchLabels:
      rack: frontend
    matchExpressions:
    - key: network-speed
      operator: NotIn
      values: [slow]
  - matchExpressions:
    - key: kubernetes.io/hostname
      operator: In
      values: [hostA, hostB]
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata:
  name: sample
  namespace: metallb-system
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 10.0.0.1
"#,
    );
    let [Object::BgpPeer(example), Object::BgpPeer(old)] = objects.as_slice() else {
        panic!("two BGPPeers: {objects:?}");
    };
    let spec = &example.spec;
    assert_eq!((spec.my_asn, spec.peer_asn), (64512, 4_200_000_001));
    assert_eq!((spec.peer_address.as_str(), spec.peer_port), ("172.30.0.3", Some(180)));
    assert_eq!(spec.source_address, "172.30.0.2");
    assert_eq!(spec.password, "yourPassword");
    assert_eq!(spec.hold_time.as_deref(), Some("90s"));
    assert_eq!(spec.keepalive_time.as_deref(), Some("30s"));
    assert_eq!(spec.connect_time.as_deref(), Some("120s"));
    assert!(spec.ebgp_multi_hop);
    assert_eq!(spec.router_id, "10.10.10.10");
    assert_eq!(spec.node_selectors.len(), 2);
    assert_eq!(spec.node_selectors[0].match_expressions.as_ref().unwrap()[0].values, Some(vec!["slow".to_owned()]));
    assert_eq!((old.spec.my_asn, old.spec.peer_asn, old.spec.peer_address.as_str()), (64500, 64501, "10.0.0.1"));
    assert_eq!(objects[1].key(), key("metallb-system", "sample"));
}

#[test]
fn nodes_are_cluster_scoped_and_keep_labels_conditions_and_addresses() {
    let objects = decode(
        r#"
apiVersion: v1
kind: Node
metadata:
  name: worker-1
  namespace: ignored
  labels:
    kubernetes.io/hostname: worker-1
    rack: frontend
status:
  conditions:
  - type: Ready
    status: "True"
  addresses:
  - type: InternalIP
    address: 198.18.0.11
"#,
    );
    let [Object::Node(node)] = objects.as_slice() else { panic!("one Node: {objects:?}") };
    assert_eq!(objects[0].key(), key("", "worker-1"));
    assert_eq!(node.metadata.labels.as_ref().unwrap()["rack"], "frontend");
    let status = node.status.as_ref().unwrap();
    assert_eq!(status.conditions.as_ref().unwrap()[0].status, "True");
    assert_eq!(status.addresses.as_ref().unwrap()[0].address, "198.18.0.11");
}

#[test]
fn a_field_of_the_wrong_type_is_a_diagnostic_naming_object_and_field() {
    let yaml = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: bad, namespace: metallb-system}
spec: {myASN: 64512, peerASN: "x", peerAddress: 10.0.0.1}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bad-pool, namespace: metallb-system}
spec: {addresses: 192.168.10.0/24}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bad-pref, namespace: metallb-system}
spec: {localPref: -1}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: bad-alias, namespace: metallb-system}
spec: {communities: [{name: a, value: [1, 2]}]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {namespace: metallb-system}
---
apiVersion: v1
kind: Node
metadata: {name: bad-node}
status: {addresses: [{type: InternalIP, address: 5}]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: good, namespace: metallb-system}
spec: {addresses: [198.18.0.0/24]}
"#;
    let (objects, diagnostics) = decode_documents(yaml, false).unwrap();
    assert_eq!(objects.len(), 1, "the good document still loads");
    let texts: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    let expected = [
        "BGPPeer metallb-system/bad: spec.peerASN: invalid type",
        "IPAddressPool metallb-system/bad-pool: spec.addresses: invalid type",
        "BGPAdvertisement metallb-system/bad-pref: spec.localPref: invalid value",
        "Community metallb-system/bad-alias: spec.communities[0].value: invalid type",
        "L2Advertisement metallb-system/: metadata.name: Required value",
        "Node bad-node: status.addresses[0].address: invalid type",
    ];
    assert_eq!(texts.len(), expected.len(), "{texts:#?}");
    for (text, prefix) in texts.iter().zip(expected) {
        assert!(text.starts_with(prefix), "{text:?} should start with {prefix:?}");
    }
}
