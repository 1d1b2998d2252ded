//! The manifests in `deploy/` decode as Kubernetes objects and grant what this crate uses.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::Value;

/// The Gateway API's group.
const GATEWAY: &str = "gateway.networking.k8s.io";
/// MetalLB's group.
const METALLB: &str = "metallb.io";

fn documents() -> Vec<Value> {
    documents_of("deploy")
}

/// The documents the kustomization in `folder` (under the repository root) lists.
fn documents_of(folder: &str) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(folder);
    let kustomization: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    let mut documents = Vec::new();
    for file in kustomization["resources"].as_array().unwrap() {
        let text = std::fs::read_to_string(dir.join(file.as_str().unwrap())).unwrap();
        let values: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        documents.extend(values.into_iter().filter(|v| !v.is_null()));
    }
    documents
}

fn one<T: serde::de::DeserializeOwned>(documents: &[Value], kind: &str) -> T {
    let found: Vec<&Value> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
    rules.iter().any(|rule| {
        let has = |list: &Option<Vec<String>>, item: &str| list.as_ref().is_some_and(|l| l.iter().any(|x| x == item));
        has(&rule.api_groups, group)
            && has(&rule.resources, resource)
            && rule.verbs.iter().any(|v| v == verb)
            && rule.resource_names.as_ref().is_none_or(|names| name.is_some_and(|n| names.iter().any(|x| x == n)))
    })
}

#[test]
fn every_manifest_decodes_and_namespaced_ones_are_in_sluice() {
    let documents = documents();
    let kinds: Vec<&str> = documents.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(kinds.contains(&kind), "{kind} missing");
    }
    for document in &documents {
        let kind = document["kind"].as_str().unwrap();
        let cluster_scoped = ["Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass"].contains(&kind);
        assert_eq!(document["metadata"]["namespace"].is_null(), cluster_scoped, "{kind} namespace");
        if !cluster_scoped {
            assert_eq!(document["metadata"]["namespace"], "sluice");
        }
    }
}

#[test]
fn ingress_class_names_the_controller() {
    let class: IngressClass = one(&documents(), "IngressClass");
    assert_eq!(class.metadata.name.as_deref(), Some("sluice"));
    assert_eq!(class.spec.unwrap().controller.as_deref(), Some(sluice_kube::CONTROLLER_NAME));
}

#[test]
fn rbac_grants_what_the_controller_uses_and_no_more_writes() {
    let documents = documents();
    let cluster: ClusterRole = one(&documents, "ClusterRole");
    let rules = cluster.rules.unwrap();
    for (group, resource) in [
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "ingresses"),
        ("", "services"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "secrets"),
        ("", "configmaps"),
        ("", "namespaces"),
        (GATEWAY, "gatewayclasses"),
        (GATEWAY, "gateways"),
        (GATEWAY, "httproutes"),
        (GATEWAY, "grpcroutes"),
        (GATEWAY, "tlsroutes"),
        (GATEWAY, "tcproutes"),
        (GATEWAY, "udproutes"),
        (GATEWAY, "referencegrants"),
        (GATEWAY, "backendtlspolicies"),
        ("", "nodes"),
        (METALLB, "ipaddresspools"),
        (METALLB, "l2advertisements"),
        (METALLB, "bgpadvertisements"),
        (METALLB, "bgppeers"),
        (METALLB, "communities"),
    ] {
        for verb in ["get", "list", "watch"] {
            assert!(allows(&rules, group, resource, verb, None), "{verb} {resource}");
        }
        // Automatic HTTPS writes Secrets (certificates, its account, challenge answers).
        let writes = resource == "secrets";
        assert_eq!(allows(&rules, group, resource, "update", None), writes, "writes to {resource}");
        assert_eq!(allows(&rules, group, resource, "create", None), writes, "creates of {resource}");
        assert!(!allows(&rules, group, resource, "delete", None), "no deletes of {resource}");
    }
    for (group, resource) in [
        ("networking.k8s.io", "ingresses/status"),
        ("", "services/status"),
        (GATEWAY, "gatewayclasses/status"),
        (GATEWAY, "gateways/status"),
        (GATEWAY, "httproutes/status"),
        (GATEWAY, "grpcroutes/status"),
        (GATEWAY, "tlsroutes/status"),
        (GATEWAY, "tcproutes/status"),
        (GATEWAY, "udproutes/status"),
        (GATEWAY, "backendtlspolicies/status"),
    ] {
        for verb in ["patch", "update"] {
            assert!(allows(&rules, group, resource, verb, None), "{verb} {resource}");
        }
    }
    assert!(!allows(&rules, GATEWAY, "referencegrants/status", "patch", None), "ReferenceGrants have no status");
    assert!(allows(&rules, "events.k8s.io", "events", "create", None));
    let role: Role = one(&documents, "Role");
    let rules = role.rules.unwrap();
    let lease = sluice_kube::KubeOptions::default().lease_name;
    for verb in ["get", "create", "update"] {
        assert!(allows(&rules, "coordination.k8s.io", "leases", verb, Some(&lease)), "{verb} lease");
    }
    // Node membership: every replica's own Lease, and watching all of them.
    for verb in ["create", "get", "list", "watch", "update", "patch", "delete"] {
        assert!(allows(&rules, "coordination.k8s.io", "leases", verb, Some("sluice-node-worker-1")), "{verb} member");
    }
    assert!(!allows(&rules, "coordination.k8s.io", "leases", "deletecollection", None));
    assert_eq!(role.metadata.namespace.as_deref(), Some("sluice"), "Leases of Sluice's namespace only");
}

#[test]
fn deployment_is_hardened_and_probed_on_the_admin_port() {
    let documents = documents();
    let deployment: Deployment = one(&documents, "Deployment");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("sluice"));
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap();
    for flag in ["--kubernetes", "--publish-service", "--leader-elect", "--admin"] {
        assert!(args.iter().any(|a| a == flag), "{flag}");
    }
    assert_eq!(args[0], "run");
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let capabilities = security.capabilities.unwrap();
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(capabilities.add, Some(vec!["NET_BIND_SERVICE".to_owned()]));
    let admin = container.ports.as_ref().unwrap().iter().find(|p| p.name.as_deref() == Some("admin")).unwrap();
    assert_eq!(admin.container_port, 10254);
    let live = container.liveness_probe.clone().unwrap().http_get.unwrap();
    let ready = container.readiness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!((live.path.as_deref(), ready.path.as_deref()), (Some("/healthz"), Some("/readyz")));
    assert!(container.resources.as_ref().unwrap().requests.is_some());
    let service: Service = one(&documents, "Service");
    let service_spec = service.spec.unwrap();
    assert_eq!(service_spec.type_.as_deref(), Some("LoadBalancer"));
    let ports: Vec<i32> = service_spec.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [80, 443]);
    assert_eq!(service.metadata.namespace.as_deref(), Some("sluice"));
    assert_eq!(service.metadata.name.as_deref(), Some("sluice"));
}

/// `deploy/bare-metal/`: the same RBAC, and a DaemonSet on the nodes' network that knows its
/// node and may announce (raw sockets, addresses, sysctls).
#[test]
fn the_bare_metal_daemonset_runs_on_every_node_with_what_announcing_needs() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let documents = documents_of("deploy/bare-metal");
    let daemonset: DaemonSet = one(&documents, "DaemonSet");
    let _: ClusterRole = one(&documents, "ClusterRole");
    let pod = daemonset.spec.and_then(|s| s.template.spec).expect("a pod template");
    assert_eq!(pod.host_network, Some(true));
    let container = &pod.containers[0];
    let env = container.env.as_deref().unwrap_or_default();
    let node = env.iter().find(|e| e.name == "NODE_NAME").expect("NODE_NAME");
    let field = node.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
    assert_eq!(field, Some("spec.nodeName"));
    let security = container.security_context.as_ref().expect("a security context");
    let added = security.capabilities.as_ref().and_then(|c| c.add.clone()).unwrap_or_default();
    for capability in ["NET_ADMIN", "NET_RAW"] {
        assert!(added.iter().any(|a| a == capability), "{capability}");
    }
    let args = container.args.as_deref().unwrap_or_default();
    assert!(args.iter().any(|a| a == "--kubernetes") && args.iter().any(|a| a == "--member-lease-duration"));
}
