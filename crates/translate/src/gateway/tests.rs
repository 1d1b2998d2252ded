//! Gateway API translation on stores decoded from manifest YAML: classes, addresses,
//! listener validation, route attachment with the spec's reasons, and match precedence.

use std::net::SocketAddr;

use http::{HeaderMap, Method};
use serde_json::Value;
use sluice_config::{Action, BackendId, RequestHead, Snapshot};

use crate::tests::{options, store};
use crate::{translate, Allocations};

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ours}
spec: {controllerName: sluice.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: theirs}
spec: {controllerName: example.com/other}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: a}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: apps}
spec: {ports: [{port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: ours
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: foo, port: 80, protocol: HTTP, hostname: foo.example.com}
  - name: team
    port: 8080
    protocol: HTTP
    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}
  - {name: clash, port: 8080, protocol: HTTPS, tls: {certificateRefs: [{name: missing}]}}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: other, namespace: default}
spec:
  gatewayClassName: theirs
  listeners: [{name: http, port: 80, protocol: HTTP}]
"#;

fn run(extra: &str) -> Snapshot {
    let mut options = options();
    options.lb_pools = vec!["127.0.30.1-127.0.30.9".parse().unwrap()];
    translate(&store(&format!("{BASE}---\n{extra}")), &options, &Allocations::new(), 1)
}

fn status(snapshot: &Snapshot, kind: &str, name: &str) -> Value {
    let found = snapshot.gateway_status.iter().find(|s| s.object.kind == kind && s.object.name == name);
    serde_json::to_value(found.unwrap_or_else(|| panic!("no status for {kind} {name}"))).unwrap()
}

fn condition(conditions: &Value, kind: &str) -> (String, String) {
    let found = conditions.as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap();
    (found["status"].as_str().unwrap().to_owned(), found["reason"].as_str().unwrap().to_owned())
}

fn parent(snapshot: &Snapshot, route: &str, index: usize, kind: &str) -> (String, String) {
    condition(&status(snapshot, "HTTPRoute", route)["parents"][index]["conditions"], kind)
}

/// Which backend (or status) serves `host` and `path` on the frontend at `address`.
fn served(snapshot: &Snapshot, address: &str, host: &str, path: &str, method: Method) -> Option<String> {
    let address: SocketAddr = address.parse().unwrap();
    let headers = HeaderMap::new();
    let head = RequestHead { method: &method, query: None, headers: &headers };
    let route = snapshot.gateways.get(&address)?.route(Some(host), path, &head)?;
    Some(match &route.action {
        Action::Forward(forward) => {
            let id = forward.backends[0].id;
            if id == BackendId::UNRESOLVED {
                "unresolved".into()
            } else {
                snapshot.backend(id).map(|b| b.service.name.clone()).unwrap_or_default()
            }
        }
        Action::Redirect(r) => format!("redirect {}", r.code.as_u16()),
        Action::Fail(code) => format!("fail {}", code.as_u16()),
    })
}

#[test]
fn our_classes_and_gateways_get_status_and_an_address() {
    let snapshot = run("");
    let class = status(&snapshot, "GatewayClass", "ours");
    assert_eq!(condition(&class["conditions"], "Accepted"), ("True".into(), "Accepted".into()));
    assert!(!snapshot.gateway_status.iter().any(|s| s.object.name == "theirs" || s.object.name == "other"));
    let gateway = status(&snapshot, "Gateway", "gw");
    assert_eq!(gateway["addresses"][0]["value"], "127.0.30.1");
    assert_eq!(condition(&gateway["conditions"], "Programmed"), ("True".into(), "Programmed".into()));
    let listener =
        |name: &str| gateway["listeners"].as_array().unwrap().iter().find(|l| l["name"] == name).unwrap().clone();
    assert_eq!(condition(&listener("http")["conditions"], "Programmed").0, "True");
    assert_eq!(condition(&listener("clash")["conditions"], "Conflicted"), ("True".into(), "ProtocolConflict".into()));
    assert_eq!(
        condition(&listener("clash")["conditions"], "ResolvedRefs"),
        ("False".into(), "InvalidCertificateRef".into())
    );
    assert_eq!(condition(&listener("dns")["conditions"], "Accepted"), ("True".into(), "Accepted".into()));
    // Frontends only for the HTTP listeners of our Gateway.
    let frontends: Vec<String> = snapshot.gateways.iter().map(|(a, _)| a.to_string()).collect();
    assert_eq!(frontends, ["127.0.30.1:80", "127.0.30.1:8080"]);
    // The Gateway's address is allocated like a Service's, recorded under its kind.
    assert!(snapshot.l4.addresses.keys().any(|o| o.kind == "Gateway" && o.name == "gw"));
}

#[test]
fn routes_attach_by_parent_ref_with_the_specs_reasons() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: plain, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}, {name: gw, sectionName: nope}, {name: other}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: foreign, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: default, sectionName: http}, {name: gw, namespace: default, port: 8080}]
  rules: [{backendRefs: [{name: api, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hosts, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: foo}]
  hostnames: [bar.example.com]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: refs, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: foo}]
  rules:
  - backendRefs: [{name: api, namespace: apps, port: 8080}]
"#;
    let snapshot = run(routes);
    assert_eq!(parent(&snapshot, "plain", 0, "Accepted"), ("True".into(), "Accepted".into()));
    assert_eq!(parent(&snapshot, "plain", 1, "Accepted"), ("False".into(), "NoMatchingParent".into()));
    assert_eq!(status(&snapshot, "HTTPRoute", "plain")["parents"].as_array().unwrap().len(), 2, "no entry for theirs");
    assert_eq!(parent(&snapshot, "foreign", 0, "Accepted"), ("False".into(), "NotAllowedByListeners".into()));
    assert_eq!(parent(&snapshot, "foreign", 1, "Accepted"), ("True".into(), "Accepted".into()));
    assert_eq!(parent(&snapshot, "hosts", 0, "Accepted"), ("False".into(), "NoMatchingListenerHostname".into()));
    assert_eq!(parent(&snapshot, "refs", 0, "ResolvedRefs"), ("False".into(), "RefNotPermitted".into()));
    assert_eq!(served(&snapshot, "127.0.30.1:80", "foo.example.com", "/", Method::GET).as_deref(), Some("unresolved"));
    assert_eq!(served(&snapshot, "127.0.30.1:80", "x.test", "/", Method::GET).as_deref(), Some("web"));
    assert_eq!(served(&snapshot, "127.0.30.1:8080", "x.test", "/", Method::GET).as_deref(), Some("api"));
    let gateway = status(&snapshot, "Gateway", "gw");
    let attached: Vec<i64> =
        gateway["listeners"].as_array().unwrap().iter().map(|l| l["attachedRoutes"].as_i64().unwrap()).collect();
    assert_eq!(attached, [1, 1, 1, 0, 0]);

    // A ReferenceGrant in the Service's namespace permits the reference.
    let grant = r#"---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: allow, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service, name: api}]
"#;
    let snapshot = run(&format!("{routes}{grant}"));
    assert_eq!(parent(&snapshot, "refs", 0, "ResolvedRefs"), ("True".into(), "ResolvedRefs".into()));
    assert_eq!(served(&snapshot, "127.0.30.1:80", "foo.example.com", "/", Method::GET).as_deref(), Some("api"));
}

#[test]
fn matches_follow_gateway_api_precedence_across_routes() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 301}}]
  - matches: [{path: {type: Exact, value: /api/v1}}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 308}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: missing, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 307}}]
"#;
    let snapshot = run(routes);
    let at = |path: &str, method: Method| served(&snapshot, "127.0.30.1:80", "x.test", path, method);
    assert_eq!(at("/api/v1", Method::GET).as_deref(), Some("redirect 308"), "exact first");
    assert_eq!(at("/api/v2", Method::POST).as_deref(), Some("redirect 301"), "then the method match");
    assert_eq!(at("/api/v2", Method::GET).as_deref(), Some("unresolved"), "then the longest prefix");
    assert_eq!(at("/apis", Method::GET).as_deref(), Some("web"), "prefixes match whole segments; older route wins");
    assert_eq!(parent(&snapshot, "b", 0, "ResolvedRefs"), ("False".into(), "BackendNotFound".into()));
}

#[test]
fn filters_timeouts_and_retries_compile_into_the_route_model() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: f, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a/}}]
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, percent: 25}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, fraction: {numerator: 1, denominator: 3}}}
    - {type: CORS, cors: {allowOrigins: ["https://*.example.com"], allowMethods: ["*"], allowCredentials: true}}
    - {type: URLRewrite, urlRewrite: {hostname: b.test, path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}
    timeouts: {request: 2s, backendRequest: 500ms}
    retry: {attempts: 2, codes: [503]}
    backendRefs: [{name: web, port: 80, weight: 3}, {name: web, port: 80, kind: Pod, weight: 1}]
  - matches: [{path: {type: PathPrefix, value: /unsupported}}]
    filters: [{type: ExtensionRef, extensionRef: {group: x.io, kind: Thing, name: z}}]
    backendRefs: [{name: web, port: 80}]
"#;
    let snapshot = run(routes);
    let address: SocketAddr = "127.0.30.1:80".parse().unwrap();
    let frontend = snapshot.gateways.get(&address);
    let (method, headers) = (Method::GET, HeaderMap::new());
    let head = RequestHead { method: &method, query: None, headers: &headers };
    assert!(frontend.is_none_or(|f| f.route(Some("x.test"), "/a/x", &head).is_none()), "ExtensionRef: not accepted");
    assert_eq!(parent(&snapshot, "f", 0, "Accepted"), ("False".into(), "UnsupportedValue".into()));

    // Without the unsupported rule, the route is served with every filter.
    let routes = routes.split("  - matches: [{path: {type: PathPrefix, value: /unsupported}}]").next().unwrap();
    let snapshot = run(routes);
    assert_eq!(parent(&snapshot, "f", 0, "ResolvedRefs"), ("False".into(), "InvalidKind".into()));
    let route = snapshot.gateways.get(&address).unwrap().route(Some("x.test"), "/a/x", &head).unwrap();
    let shares: Vec<_> = route
        .filters
        .iter()
        .filter_map(|f| match f {
            sluice_config::Filter::Mirror(m) => Some(m.share),
            _ => None,
        })
        .collect();
    assert_eq!(shares, [Some((25, 100)), Some((1, 3))]);
    assert!(route.filters.iter().any(|f| matches!(f, sluice_config::Filter::Cors(c) if c.echo_methods)));
    let prefix = route.filters.iter().find_map(|f| match f {
        sluice_config::Filter::SetPath(m) => Some(m.apply("/a/x")),
        _ => None,
    });
    assert_eq!(prefix.as_deref(), Some("/b/x"));
    let Action::Forward(forward) = &route.action else { panic!("{:?}", route.action) };
    assert_eq!(forward.policy.request_timeout, Some(std::time::Duration::from_secs(2)));
    assert_eq!(forward.policy.read_timeout, std::time::Duration::from_millis(500));
    assert_eq!((forward.policy.retry.tries, forward.policy.retry.on.statuses.len()), (3, 1));
    let weights: Vec<_> = forward.backends.iter().map(|b| (b.id == BackendId::UNRESOLVED, b.weight)).collect();
    assert_eq!(weights, [(false, 3), (true, 1)], "the unresolvable share stays, answered 500");
}

#[test]
fn grpc_routes_match_service_and_method_and_reach_backends_over_h2c() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{method: {service: echo.Echo}, headers: [{name: x-v, value: "2"}]}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-a, value: b}]}}]
    backendRefs: [{name: api, namespace: apps, port: 8080}]
"#;
    let snapshot = run(routes);
    let g = status(&snapshot, "GRPCRoute", "g");
    assert_eq!(condition(&g["parents"][0]["conditions"], "ResolvedRefs").1, "RefNotPermitted");
    assert_eq!(condition(&g["parents"][0]["conditions"], "Accepted"), ("True".into(), "Accepted".into()));
    let at = |path: &str| served(&snapshot, "127.0.30.1:80", "grpc.example.com", path, Method::POST);
    assert_eq!(at("/echo.Echo/Say").as_deref(), Some("web"));
    assert_eq!(at("/echo.Echo/Other"), None, "the header condition does not hold");
    assert_eq!(at("/other.Svc/Say"), None);
    let backend = snapshot.backends.iter().flatten().find(|b| b.service.name == "web").unwrap();
    assert_eq!(backend.protocol(), sluice_config::UpstreamProtocol::H2c);
}

#[test]
fn objects_the_api_server_would_refuse_are_not_served_and_say_why() {
    let bad = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: twice, namespace: default}
spec:
  gatewayClassName: ours
  listeners:
  - {name: a, port: 81, protocol: HTTP}
  - {name: a, port: 82, protocol: TCP, hostname: x.test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: default}
spec:
  parentRefs: [{name: gw}, {name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a//b}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {statusCode: 301}}
    - {type: URLRewrite, urlRewrite: {hostname: x.test}}
    - {type: RequestHeaderModifier}
    timeouts: {request: 1s, backendRequest: 2s}
"#;
    let snapshot = run(bad);
    let gateway = status(&snapshot, "Gateway", "twice");
    assert_eq!(condition(&gateway["conditions"], "Accepted"), ("False".into(), "Invalid".into()));
    assert!(gateway["addresses"].as_array().unwrap().is_empty(), "a refused Gateway takes no address");
    let fields: Vec<String> = snapshot
        .diagnostics
        .iter()
        .filter(|d| d.to_string().contains("twice") || d.to_string().contains("HTTPRoute default/bad"))
        .map(|d| d.field.clone())
        .collect();
    for field in [
        "spec.listeners[1].name",
        "spec.listeners[1].hostname",
        "spec.parentRefs[1]",
        "spec.rules[0].matches[0].path.value",
        "spec.rules[0].filters",
        "spec.rules[0].filters[2]",
        "spec.rules[0].timeouts",
    ] {
        assert!(fields.iter().any(|f| f == field), "no problem at {field}: {fields:?}");
    }
    assert_eq!(parent(&snapshot, "bad", 0, "Accepted"), ("False".into(), "UnsupportedValue".into()));
}

#[test]
fn tcp_and_udp_routes_become_l4_listeners_of_the_gateway() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {name: old, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: dns}]
  rules: [{backendRefs: [{name: web, port: 80, weight: 9}, {name: gone, port: 53, weight: 1}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {name: new, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: dns}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: tcp, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#;
    let snapshot = run(routes);
    let dns = snapshot.l4.listeners.get(&(sluice_config::L4Protocol::Udp, "127.0.30.1:53".parse().unwrap())).unwrap();
    let weights: Vec<_> = dns.backends.choices().iter().map(|(b, w)| (b.service.name.clone(), *w)).collect();
    assert_eq!(weights, [("web".into(), 9), ("gw".into(), 1)], "the oldest route; the missing Service's share stays");
    let tcp = status(&snapshot, "TCPRoute", "tcp");
    assert_eq!(
        condition(&tcp["parents"][0]["conditions"], "Accepted"),
        ("False".into(), "NotAllowedByListeners".into())
    );
    assert_eq!(
        condition(&status(&snapshot, "UDPRoute", "old")["parents"][0]["conditions"], "ResolvedRefs").1,
        "BackendNotFound"
    );
}

#[test]
fn tls_listeners_pass_through_by_sni_or_terminate_with_their_certificates() {
    let extra = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: default}
spec:
  gatewayClassName: ours
  listeners:
  - {name: pass, port: 443, protocol: TLS, hostname: "*.example.com", tls: {mode: Passthrough}}
  - {name: term, port: 444, protocol: TLS, tls: {mode: Terminate, certificateRefs: [{name: c}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: t, namespace: default}
spec:
  parentRefs: [{name: tls, sectionName: pass}]
  hostnames: [a.example.com, b.other.test]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#;
    let snapshot = run(extra);
    let gateway = status(&snapshot, "Gateway", "tls");
    let listeners = gateway["listeners"].as_array().unwrap();
    assert_eq!(condition(&listeners[1]["conditions"], "Accepted"), ("True".into(), "Accepted".into()));
    let resolved = condition(&listeners[1]["conditions"], "ResolvedRefs");
    assert_eq!(resolved, ("False".into(), "InvalidCertificateRef".into()), "terminating needs its certificate");
    let ip = &gateway["addresses"][0]["value"];
    let frontend = snapshot.gateways.get(&format!("{}:443", ip.as_str().unwrap()).parse().unwrap()).unwrap();
    assert!(matches!(frontend.mode, sluice_config::FrontendMode::TlsPassthrough));
    let backend = |sni: &str| {
        let route = frontend.route_sni(sni)?;
        snapshot.backend(route.forward()?.pick_backend()?).map(|b| b.service.name.clone())
    };
    assert_eq!(backend("a.example.com").as_deref(), Some("web"));
    assert_eq!(backend("b.other.test"), None, "outside the listener's hostname");
    assert_eq!(backend("c.example.com"), None);
}

#[test]
fn backend_tls_policies_make_gateway_backends_speak_tls_or_nothing() {
    let (ca, _) = crate::tests::self_signed(&["web.internal"]);
    let ca = ca.replace('\n', "\n    ");
    let objects = format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca, namespace: default}}
data:
  ca.crt: |
    {ca}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: web, namespace: default}}
spec:
  targetRefs: [{{group: "", kind: Service, name: web}}]
  validation: {{caCertificateRefs: [{{group: "", kind: ConfigMap, name: ca}}], hostname: web.internal}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: api, namespace: apps}}
spec:
  targetRefs: [{{group: "", kind: Service, name: api}}]
  validation: {{caCertificateRefs: [{{group: "", kind: ConfigMap, name: missing}}], hostname: api.internal}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  rules: [{{backendRefs: [{{name: web, port: 80}}]}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: api-1, namespace: apps, labels: {{kubernetes.io/service-name: api}}}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
ports: [{{port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: apps}}
spec:
  parentRefs: [{{name: gw, namespace: default, port: 8080}}]
  rules: [{{backendRefs: [{{name: api, port: 8080}}]}}]
"#
    );
    let snapshot = run(&objects);
    let backend = |name: &str| snapshot.backends.iter().flatten().find(|b| b.service.name == name).unwrap().clone();
    match &backend("web").transport {
        sluice_config::Transport::Tls(tls) => {
            let endpoint = "127.0.0.1:443".parse().unwrap();
            assert_eq!(tls.server_name(endpoint).to_str(), "web.internal");
            assert!(tls.config().enable_sni);
        }
        other => panic!("web is reached with {other:?}"),
    }
    assert!(backend("api").endpoints.is_empty(), "a policy that cannot be honoured leaves no way in");
    let without = run(&objects.replace("kind: Service, name: api}", "kind: Service, name: nothing}"));
    let api = without.backends.iter().flatten().find(|b| b.service.name == "api").unwrap();
    assert_eq!(api.endpoints.len(), 1, "the endpoint is there");
    assert!(snapshot.diagnostics.iter().any(|d| d.to_string().contains("BackendTLSPolicy apps/api")));
    let web = status(&snapshot, "BackendTLSPolicy", "web");
    assert_eq!(web["ancestors"][0]["ancestorRef"]["name"], "gw");
    assert_eq!(condition(&web["ancestors"][0]["conditions"], "Accepted"), ("True".into(), "Accepted".into()));
    let api = status(&snapshot, "BackendTLSPolicy", "api");
    let conditions = &api["ancestors"][0]["conditions"];
    assert_eq!(condition(conditions, "Accepted"), ("False".into(), "NoValidCACertificate".into()));
    assert_eq!(condition(conditions, "ResolvedRefs"), ("False".into(), "InvalidCACertificateRef".into()));
}
