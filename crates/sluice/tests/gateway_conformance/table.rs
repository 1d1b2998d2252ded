//! The upstream tests as data: for each `ConformanceTest` of `conformance/tests/*.go`
//! (kubernetes-sigs/gateway-api at the commit `expected-responses.json` names), its
//! manifests, its `Features`, which Gateway and listener its requests go to, the status
//! conditions it asserts, and what it checks besides `ExpectedResponse` literals.
//!
//! Object names without a namespace are in `gateway-conformance-infra`. Where a Go test
//! sends a literal to another Gateway than its first one, `overrides` says so by the
//! literal's line. What the harness cannot do yet is said in `blocked` (whole test) or
//! `not_runnable` (some cases), with the reason.

use crate::cases::CaseKind;
use crate::status::{no, yes, Check, Cond, ListenerExpect, ParentExpect, RouteKind};

/// How a listener is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP.
    Plain,
    /// HTTPS with this server name (the listener's certificate is `tls-validity-checks-certificate`).
    ServerName(&'static str),
    /// HTTPS with the request's `Host` as server name.
    HostIsServerName,
    /// HTTPS with this server name (empty: the request's `Host`), trusting only the
    /// certificate of Secret `secret` (in `gateway-conformance-infra`), as the Go test
    /// trusts that certificate.
    Pinned {
        /// SNI.
        server_name: &'static str,
        /// The Secret.
        secret: &'static str,
    },
    /// Raw TLS with this server name, verified against CA ConfigMap `ca` (in
    /// `gateway-conformance-infra`).
    Ca {
        /// SNI and verified name.
        server_name: &'static str,
        /// The ConfigMap.
        ca: &'static str,
    },
}

/// The protocol of a distribution check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// `GET /`.
    Http,
    /// `Echo` with `x-jitter` metadata.
    Grpc,
    /// `tcp.EchoSendOnce`.
    Tcp,
    /// `udpEchoSendOnce`.
    Udp,
}

impl Proto {
    /// Its name in labels.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Http => "HTTP",
            Proto::Grpc => "gRPC",
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

/// Where a case is sent: a Gateway's address (from `/status`) and one listener's port
/// (the named listener, else the first, as `WaitForGatewayAddress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The Gateway.
    pub gateway: &'static str,
    /// The listener whose port is used; `None`: the first listener.
    pub listener: Option<&'static str>,
    /// Plain or TLS.
    pub tls: Tls,
}

/// The Gateway's first listener, plain HTTP.
pub const fn gw(gateway: &'static str) -> Target {
    Target { gateway, listener: None, tls: Tls::Plain }
}

/// A named listener, plain HTTP.
pub const fn listener(gateway: &'static str, listener: &'static str) -> Target {
    Target { gateway, listener: Some(listener), tls: Tls::Plain }
}

/// The Gateway's first listener over TLS.
pub const fn https(gateway: &'static str, tls: Tls) -> Target {
    Target { gateway, listener: None, tls }
}

/// Which `ExpectedResponse` literals of the test's Go file an entry is about.
#[derive(Clone, Copy, Debug)]
pub enum Select {
    /// The literal at this line.
    Line(u32),
    /// Literals in these lines (inclusive).
    Lines(u32, u32),
    /// Every literal.
    All,
}

impl Select {
    /// Whether the literal at `line` is selected.
    pub fn matches(&self, line: u32) -> bool {
        match *self {
            Select::Line(l) => l == line,
            Select::Lines(from, to) => (from..=to).contains(&line),
            Select::All => true,
        }
    }
}

/// A check of a Go test that is not an `ExpectedResponse` literal.
#[derive(Clone, Copy, Debug)]
pub enum Extra {
    /// A case the Go test builds in a loop from a table, transcribed here in the shape of
    /// `expected-responses.json` (`line` is the literal's line in the loop; the literal
    /// itself, whose values are computed, is replaced by its transcriptions).
    Case {
        /// Line of the `ExpectedResponse` literal in the loop.
        line: u32,
        /// The case, as JSON.
        case: &'static str,
    },
    /// `HTTPRouteBackendProtocolWebSocket`: a WebSocket to `ws://<gateway>/<path>` echoes a
    /// text and a binary message.
    WebSocket {
        /// Where to connect.
        target: Target,
        /// The path.
        path: &'static str,
    },
    /// A case of a kind other than the literal's line says (or one built in a loop), sent
    /// to one target only.
    CaseTo {
        /// Line of the `ExpectedResponse` literal.
        line: u32,
        /// The case, as JSON.
        case: &'static str,
        /// Its kind.
        kind: CaseKind,
        /// Where it goes.
        target: Target,
    },
    /// `weight.TestWeightedDistribution`: 500 requests (10 at a time) spread over the
    /// backends within ±5 points of their weights.
    Weights {
        /// Where to send.
        target: Target,
        /// How.
        proto: Proto,
        /// Backend (pod name prefix) and expected share.
        weights: &'static [(&'static str, f64)],
    },
    /// `HTTPRouteRequestHeaderModifierBackendWeights`: 100 requests, each reaching a pod
    /// whose name starts with the single `Backend` request header the chosen backendRef set.
    BackendHeaderNamesPod {
        /// Where to send.
        target: Target,
        /// How many requests.
        requests: u32,
    },
    /// `HTTPRouteRequestPercentageMirror`: for every literal with a `Percent` mirror, 500
    /// requests (10 at a time) sharing one request id; each mirror's pods must have logged a
    /// share within 3 standard deviations of the percentage (up to 5 tries).
    MirrorDistribution {
        /// Where to send.
        target: Target,
    },
    /// Every one of `requests` connections or datagrams reaches a pod of `backend` (the
    /// oldest route of a listener).
    OnlyBackend {
        /// Where to send.
        target: Target,
        /// How.
        proto: Proto,
        /// The Deployment whose pods must answer.
        backend: &'static str,
        /// How many.
        requests: u32,
    },
    /// `UDPRoute`: a DNS query for `name` is answered (`dns.Exchange` without error).
    Dns {
        /// Where to send.
        target: Target,
        /// The name asked.
        name: &'static str,
    },
    /// `MakeTLSConnectionAndExpectEventuallyConnectionRejection`, at `line` of the Go test.
    Rejected {
        /// Where in the Go test.
        line: u32,
        /// Where to connect.
        target: Target,
        /// The SNI.
        server_name: &'static str,
    },
    /// A status expectation the Go test checks after a change (the mutations before `line`).
    CheckAt {
        /// The line it follows.
        line: u32,
        /// The expectation.
        check: Check,
    },
    /// A check the harness does not make yet (counted as not runnable, with the reason).
    Missing {
        /// What the Go test checks.
        what: &'static str,
        /// Why the harness does not.
        why: &'static str,
    },
}

/// What the Go test does to the objects before its requests.
#[derive(Clone, Copy, Debug)]
pub enum Setup {
    /// `setupEndpointSlices`: the IPv4 EndpointSlices `<prefix>-ip4` get the pods of
    /// `deployment` as ready endpoints.
    FillSlices {
        /// Their namespace.
        namespace: &'static str,
        /// Slice name prefixes.
        prefixes: &'static [&'static str],
        /// The Deployment whose pods become endpoints.
        deployment: &'static str,
    },
    /// An object the Go test creates at run time after checking the others
    /// (`MustApplyObjectsWithCleanup`), as the API server stores it: as JSON, with a
    /// `creationTimestamp` later than the manifests' objects (which have none, so they sort
    /// first as older).
    Create {
        /// The object.
        doc: &'static str,
    },
}

/// A change the Go test makes between requests.
#[derive(Clone, Copy, Debug)]
pub enum Mutation {
    /// Deletes an object (written manifests lose the document; Sluice reloads).
    Delete {
        /// Kind.
        kind: &'static str,
        /// Namespace.
        namespace: &'static str,
        /// Name.
        name: &'static str,
    },
}

/// One upstream conformance test.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamTest {
    /// `ShortName`.
    pub short_name: &'static str,
    /// The Go file whose `ExpectedResponse` literals are its cases.
    pub go_file: &'static str,
    /// Its `Manifests` (under `tests/`).
    pub manifests: &'static [&'static str],
    /// Its `Features` (upstream names without `Support`).
    pub features: &'static [&'static str],
    /// What the harness cannot do yet that the whole test needs.
    pub blocked: Option<&'static str>,
    /// Where its HTTP literals go (each to every target, in order).
    pub targets: &'static [Target],
    /// Literals that go elsewhere.
    pub overrides: &'static [(Select, &'static [Target])],
    /// Literals the harness cannot run yet, and why.
    pub not_runnable: &'static [(Select, &'static str)],
    /// Literals the Go test expects to fail (`MakeRequestAndExpectFailure`,
    /// `MakeRequestAndExpectEventuallyConsistentFailure`).
    pub failures: &'static [Select],
    /// Status expectations (besides our GatewayClass being accepted).
    pub checks: &'static [Check],
    /// Checks that are not literals.
    pub extras: &'static [Extra],
    /// Changes to the objects before any request.
    pub setup: &'static [Setup],
    /// Changes before the literal at a line (and every later one).
    pub mutations: &'static [(u32, Mutation)],
    /// The Go test returns early when this feature is supported (it checks the behaviour of
    /// implementations without it).
    pub skipped_when: Option<&'static str>,
}

const NONE: UpstreamTest = UpstreamTest {
    short_name: "",
    go_file: "",
    manifests: &[],
    features: &[],
    blocked: None,
    targets: &[],
    overrides: &[],
    not_runnable: &[],
    failures: &[],
    checks: &[],
    extras: &[],
    setup: &[],
    mutations: &[],
    skipped_when: None,
};

/// `GatewayAndHTTPRoutesMustBeAccepted`.
const fn accepted(gateway: &'static str, routes: &'static [&'static str]) -> Check {
    accepted_kind(gateway, RouteKind::Http, routes)
}

/// `GatewayAndRoutesMustBeAccepted` for routes of `kind` (the GRPC/TCP/UDP variants).
const fn accepted_kind(gateway: &'static str, kind: RouteKind, routes: &'static [&'static str]) -> Check {
    Check::GatewayAndRoutesAccepted { gateway, kind, routes, listeners_ready: true }
}

/// `GatewayAndTLSRoutesMustBeAccepted`: the address and each route's parent entry (the
/// listeners are not checked).
const fn tls_accepted(gateway: &'static str, routes: &'static [&'static str]) -> Check {
    Check::GatewayAndRoutesAccepted { gateway, kind: RouteKind::Tls, routes, listeners_ready: false }
}

/// `TLSRouteMustHaveCondition`, `TCPRouteMustHaveCondition`, … for a route of `kind`.
const fn route_kind(kind: RouteKind, route: &'static str, gateway: &'static str, cond: Cond) -> Check {
    Check::RouteCondition { kind, route, gateway, cond }
}

/// `TLSRouteMustHaveNoAcceptedParents` and the other kinds'.
const fn no_accepted_parents_kind(kind: RouteKind, route: &'static str) -> Check {
    Check::RouteNoAcceptedParents { kind, route }
}

/// `TCPRouteMustHaveParents` / `UDPRouteMustHaveParents` with one accepted parent entry for
/// the Gateway (namespace not required).
macro_rules! accepted_parent {
    ($kind:expr, $route:expr, $gateway:expr $(,)?) => {
        Check::RouteParents {
            kind: $kind,
            route: $route,
            parents: &[ParentExpect { gateway: $gateway, conditions: &[yes("Accepted", "Accepted")] }],
            namespace_required: false,
        }
    };
}

/// `HTTPRouteMustHaveCondition`.
const fn route(route: &'static str, gateway: &'static str, cond: Cond) -> Check {
    Check::RouteCondition { kind: RouteKind::Http, route, gateway, cond }
}

/// `HTTPRouteMustHaveResolvedRefsConditionsTrue`.
const fn resolved(r: &'static str, gateway: &'static str) -> Check {
    route(r, gateway, yes("ResolvedRefs", "ResolvedRefs"))
}

/// `HTTPRouteMustHaveNoAcceptedParents`.
const fn no_accepted_parents(route: &'static str) -> Check {
    Check::RouteNoAcceptedParents { kind: RouteKind::Http, route }
}

/// `GatewayMustHaveZeroRoutes`.
const fn zero_routes(gateway: &'static str) -> Check {
    Check::GatewayZeroRoutes { gateway }
}

/// `GatewayMustHaveCondition`.
const fn gateway(gateway: &'static str, cond: Cond) -> Check {
    Check::GatewayCondition { gateway, cond }
}

/// `GatewayStatusMustHaveListeners`.
const fn listeners(gateway: &'static str, listeners: &'static [ListenerExpect]) -> Check {
    Check::GatewayListeners { gateway, listeners }
}

/// A listener status of `GatewayStatusMustHaveListeners`.
const fn l(
    name: &'static str,
    supported_kinds: &'static [&'static str],
    attached_routes: i64,
    conditions: &'static [Cond],
) -> ListenerExpect {
    ListenerExpect { name, supported_kinds, attached_routes, conditions }
}

const HTTP_KINDS: &[&str] = &["HTTPRoute"];
/// `Accepted` and `ResolvedRefs` true, any reason, and nothing about `Programmed`.
const LISTENER_ACCEPTED_RESOLVED: &[Cond] = &[yes("Accepted", ""), yes("ResolvedRefs", "")];
/// Why the URI subjectAltNames cases of `BackendTLSPolicySANValidation` are not run.
const URI_SANS: &str = "URI subjectAltNames not supported";
/// `BackendTLSPolicyMustHaveCondition(policy, gateway, cond)`.
const fn policy(policy: &'static str, gateway: &'static str, cond: Cond) -> Check {
    Check::PolicyCondition { policy, gateway, cond }
}
/// A policy accepted, its references resolved, towards `same-namespace`.
const fn policy_ok(name: &'static str) -> [Check; 2] {
    [
        policy(name, "same-namespace", yes("Accepted", "Accepted")),
        policy(name, "same-namespace", yes("ResolvedRefs", "ResolvedRefs")),
    ]
}

/// HTTPS through a TLS passthrough listener to the `tls-backend` pods: the request's Host as
/// server name, trusting the backends' certificate (`tls-checks-certificate`).
const fn passthrough_https(gateway: &'static str) -> Target {
    https(gateway, Tls::Pinned { server_name: "", secret: "tls-checks-certificate" })
}

/// `TLSRouteMustHaveResolvedRefsConditionsTrue`.
const fn tls_resolved(route: &'static str, gateway: &'static str) -> Check {
    route_kind(RouteKind::Tls, route, gateway, yes("ResolvedRefs", "ResolvedRefs"))
}
/// `Accepted` and `ResolvedRefs` true, any reason.
const LISTENER_OK: &[Cond] = &[yes("Accepted", ""), yes("ResolvedRefs", "")];
const SAME: Target = gw("same-namespace");
const GATEWAY_HTTPROUTE: &[&str] = &["Gateway", "HTTPRoute"];

/// A test of `<file>.go` with `<file>.yaml`, its literals sent to `same-namespace`.
macro_rules! simple {
    ($name:literal, $file:literal, $features:expr, $checks:expr $(,)?) => {
        UpstreamTest {
            short_name: $name,
            go_file: concat!($file, ".go"),
            manifests: &[concat!($file, ".yaml")],
            features: $features,
            targets: &[SAME],
            checks: $checks,
            ..NONE
        }
    };
}

/// A test of `<file>.go` with `<file>.yaml` that needs what the harness lacks (`$why`).
macro_rules! blocked {
    ($name:literal, $file:literal, $features:expr, $why:expr $(,)?) => {
        UpstreamTest {
            short_name: $name,
            go_file: concat!($file, ".go"),
            manifests: &[concat!($file, ".yaml")],
            features: $features,
            blocked: Some($why),
            ..NONE
        }
    };
}

/// A ListenerSet test.
macro_rules! listener_set {
    ($name:literal, $file:literal, $features:expr $(,)?) => {
        blocked!($name, $file, $features, "ListenerSet (not read by Sluice's store) and its status")
    };
}

/// Every upstream test.
pub const TESTS: &[UpstreamTest] = &[
    // ---------------------------------------------------------------- BackendTLSPolicy
    UpstreamTest {
        short_name: "BackendTLSPolicyConflictResolution",
        go_file: "backendtlspolicy-conflict-resolution.go",
        manifests: &["backendtlspolicy-conflict-resolution.yaml"],
        features: &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        targets: &[SAME],
        checks: &[
            accepted("same-namespace", &["backendtlspolicy-conflict-resolution"]),
            resolved("backendtlspolicy-conflict-resolution", "same-namespace"),
            policy("conflicted-without-section-name-1", "same-namespace", yes("Accepted", "Accepted")),
            policy("conflicted-without-section-name-2", "same-namespace", no("Accepted", "Conflicted")),
            policy("conflicted-with-section-name-1", "same-namespace", yes("Accepted", "Accepted")),
            policy("conflicted-with-section-name-2", "same-namespace", no("Accepted", "Conflicted")),
            policy("not-conflicted-with-section-name", "same-namespace", yes("Accepted", "Accepted")),
            policy("not-conflicted-without-section-name", "same-namespace", yes("Accepted", "Accepted")),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "BackendTLSPolicyGRPCRoute",
        go_file: "backendtlspolicy-grpcroute.go",
        manifests: &["backendtlspolicy-grpcroute.yaml"],
        features: &["Gateway", "GRPCRoute", "BackendTLSPolicy"],
        targets: &[SAME],
        failures: &[Select::Line(88), Select::Line(105)],
        checks: &[
            accepted_kind(
                "same-namespace",
                RouteKind::Grpc,
                &["backendtlspolicy-grpcroute", "backendtlspolicy-grpcroute-cert-mismatch"],
            ),
            policy_ok("grpc-normative-test")[0],
            policy_ok("grpc-normative-test")[1],
            policy_ok("grpc-host-mismatch")[0],
            policy_ok("grpc-host-mismatch")[1],
            policy_ok("grpc-cert-mismatch")[0],
            policy_ok("grpc-cert-mismatch")[1],
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "BackendTLSPolicyInvalidCACertificateRef",
        go_file: "backendtlspolicy-invalid-ca-certificate-ref.go",
        manifests: &["backendtlspolicy-invalid-ca-certificate-ref.yaml"],
        features: &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        targets: &[SAME],
        checks: &[
            accepted("same-namespace", &["backendtlspolicy-invalid-ca-certificate-ref"]),
            policy("nonexistent-ca-certificate-ref", "same-namespace", no("Accepted", "NoValidCACertificate")),
            policy("nonexistent-ca-certificate-ref", "same-namespace", no("ResolvedRefs", "InvalidCACertificateRef")),
            policy("malformed-ca-certificate-ref", "same-namespace", no("Accepted", "NoValidCACertificate")),
            policy("malformed-ca-certificate-ref", "same-namespace", no("ResolvedRefs", "InvalidCACertificateRef")),
        ],
        extras: &[
            // The loop over the two policies.
            Extra::Case {
                line: 83,
                case: r#"{"Namespace": "gateway-conformance-infra", "Request": {"Host": "abc.example.com",
                    "Path": "/backendtlspolicy-nonexistent-ca-certificate-ref"}, "Response": {"StatusCodes": [500, 502, 503]}}"#,
            },
            Extra::Case {
                line: 83,
                case: r#"{"Namespace": "gateway-conformance-infra", "Request": {"Host": "abc.example.com",
                    "Path": "/backendtlspolicy-malformed-ca-certificate-ref"}, "Response": {"StatusCodes": [500, 502, 503]}}"#,
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "BackendTLSPolicyInvalidKind",
        go_file: "backendtlspolicy-invalid-kind.go",
        manifests: &["backendtlspolicy-invalid-kind.yaml"],
        features: &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        targets: &[SAME],
        checks: &[
            accepted("same-namespace", &["backendtlspolicy-invalid-kind-test"]),
            policy("invalid-kind", "same-namespace", no("Accepted", "NoValidCACertificate")),
            policy("invalid-kind", "same-namespace", no("ResolvedRefs", "InvalidKind")),
        ],
        extras: &[
            Extra::Case {
                line: 80,
                case: r#"{"Namespace": "gateway-conformance-infra", "Request": {"Host": "abc.example.com",
                    "Path": "/backendtlspolicy-invalid-kind"}, "Response": {"StatusCodes": [500, 502, 503]}}"#,
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "BackendTLSPolicyObservedGenerationBump",
        go_file: "backendtlspolicy-observed-generation-bump.go",
        manifests: &["backendtlspolicy-observed-generation-bump.yaml"],
        features: &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        blocked: Some("a patch step: the Go test patches the policy and reads the API server's generation bump"),
        ..NONE
    },
    UpstreamTest {
        short_name: "BackendTLSPolicySANValidation",
        go_file: "backendtlspolicy-san.go",
        manifests: &["backendtlspolicy-san.yaml"],
        features: &["Gateway", "HTTPRoute", "BackendTLSPolicy", "BackendTLSPolicySANValidation"],
        targets: &[SAME],
        failures: &[Select::Line(87)],
        not_runnable: &[
            (Select::Line(103), URI_SANS),
            (Select::Line(120), URI_SANS),
            (Select::Line(136), URI_SANS),
            (Select::Line(153), URI_SANS),
        ],
        checks: &[
            accepted("same-namespace", &["backendtlspolicy-san-test"]),
            resolved("backendtlspolicy-san-test", "same-namespace"),
            // The URI SAN policies' conditions are left out with their cases (URI_SANS).
            policy("san-dns", "same-namespace", yes("Accepted", "Accepted")),
            policy("san-dns-mismatch", "same-namespace", yes("Accepted", "Accepted")),
        ],
        extras: &[
            // serverStr is "abc.example.com".
            Extra::Case {
                line: 70,
                case: r#"{"Namespace": "gateway-conformance-infra", "Request": {"Host": "abc.example.com",
                    "Path": "/backendtlspolicy-san-dns", "SNI": "abc.example.com"}, "Response": {"StatusCodes": [200]}}"#,
            },
            Extra::Case {
                line: 87,
                case: r#"{"Namespace": "gateway-conformance-infra", "Request": {"Host": "abc.example.com",
                    "Path": "/backendtlspolicy-san-dns-mismatch", "SNI": "abc.example.com"}}"#,
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "BackendTLSPolicyTLSRouteTerminate",
        go_file: "backendtlspolicy-tlsroute-terminate.go",
        manifests: &["backendtlspolicy-tlsroute-terminate.yaml"],
        features: &["Gateway", "TLSRoute", "TLSRouteModeTerminate", "BackendTLSPolicy"],
        ..NONE
    },
    UpstreamTest {
        short_name: "BackendTLSPolicy",
        go_file: "backendtlspolicy.go",
        manifests: &["backendtlspolicy.yaml"],
        features: &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        targets: &[SAME],
        // "Re-encrypt HTTPS request": through the HTTPS listener, trusting its certificate.
        overrides: &[(Select::Line(88), &[https("same-namespace-with-https-listener", Tls::ServerName("https-listener.org"))])],
        failures: &[Select::Line(137), Select::Line(154)],
        checks: &[
            accepted("same-namespace-with-https-listener", &["backendtlspolicy-reencrypt"]),
            resolved("backendtlspolicy-reencrypt", "same-namespace-with-https-listener"),
            accepted("same-namespace", &["backendtlspolicy"]),
            resolved("backendtlspolicy", "same-namespace"),
            policy("normative-test", "same-namespace-with-https-listener", yes("Accepted", "Accepted")),
            policy("normative-test", "same-namespace-with-https-listener", yes("ResolvedRefs", "ResolvedRefs")),
            policy_ok("normative-test")[0],
            policy_ok("normative-test")[1],
            policy_ok("host-mismatch")[0],
            policy_ok("host-mismatch")[1],
            policy_ok("cert-mismatch")[0],
            policy_ok("cert-mismatch")[1],
            policy_ok("reconcile-test")[0],
            policy_ok("reconcile-test")[1],
        ],
        extras: &[
            Extra::Missing {
                what: "Changing the content of a ConfigMap used by BackendTLSPolicy as CA certificate should be reconciled by the controller",
                why: "the Go test rewrites the CA ConfigMap at run time (a patch step the harness lacks)",
            },
        ],
        ..NONE
    },
    // ---------------------------------------------------------------- Gateway
    UpstreamTest {
        short_name: "GatewayHTTPListenerIsolation",
        go_file: "gateway-http-listener-isolation.go",
        manifests: &["gateway-http-listener-isolation.yaml", "gateway-http-listener-isolation-with-hostname-intersection.yaml"],
        features: &["Gateway", "GatewayHTTPListenerIsolation", "HTTPRoute"],
        // The same literals are sent to both Gateways.
        targets: &[gw("http-listener-isolation"), gw("http-listener-isolation-with-hostname-intersection")],
        checks: &[
            accepted(
                "http-listener-isolation",
                &[
                    "attaches-to-empty-hostname",
                    "attaches-to-wildcard-example-com",
                    "attaches-to-wildcard-foo-example-com",
                    "attaches-to-abc-foo-example-com",
                ],
            ),
            resolved("attaches-to-empty-hostname", "http-listener-isolation"),
            resolved("attaches-to-wildcard-example-com", "http-listener-isolation"),
            resolved("attaches-to-wildcard-foo-example-com", "http-listener-isolation"),
            resolved("attaches-to-abc-foo-example-com", "http-listener-isolation"),
            accepted(
                "http-listener-isolation-with-hostname-intersection",
                &[
                    "attaches-to-empty-hostname-with-hostname-intersection",
                    "attaches-to-wildcard-example-com-with-hostname-intersection",
                    "attaches-to-wildcard-foo-example-com-with-hostname-intersection",
                    "attaches-to-abc-foo-example-com-with-hostname-intersection",
                ],
            ),
            resolved(
                "attaches-to-empty-hostname-with-hostname-intersection",
                "http-listener-isolation-with-hostname-intersection",
            ),
            resolved(
                "attaches-to-wildcard-example-com-with-hostname-intersection",
                "http-listener-isolation-with-hostname-intersection",
            ),
            resolved(
                "attaches-to-wildcard-foo-example-com-with-hostname-intersection",
                "http-listener-isolation-with-hostname-intersection",
            ),
            resolved(
                "attaches-to-abc-foo-example-com-with-hostname-intersection",
                "http-listener-isolation-with-hostname-intersection",
            ),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayInfrastructure",
        go_file: "gateway-infrastructure.go",
        manifests: &["gateway-infrastructure.yaml"],
        features: &["Gateway", "GatewayInfrastructurePropagation"],
        blocked: Some("a cluster: the Go test reads labels and annotations propagated to generated infrastructure"),
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayFrontendInvalidDefaultClientCertificateValidation",
        go_file: "gateway-invalid-default-frontend-client-certificate-validation.go",
        manifests: &["gateway-invalid-default-frontend-client-certificate-validation.yaml"],
        features: &["Gateway", "HTTPRoute", "GatewayFrontendClientCertificateValidation"],
        targets: &[listener("invalid-default-client-validation-config", "http")],
        not_runnable: &[(Select::Line(124), "expects the TLS handshake to fail (MakeTLSRequestAndExpectEventuallyConsistentFailureResponse)")],
        checks: &[
            Check::ListenerConditions {
                gateway: "invalid-default-client-validation-config",
                listener: "http",
                conditions: &[yes("ResolvedRefs", ""), yes("Accepted", ""), yes("Programmed", "")],
            },
            Check::ListenerConditions {
                gateway: "invalid-default-client-validation-config",
                listener: "https",
                conditions: &[
                    no("ResolvedRefs", "InvalidCACertificateRef"),
                    no("Accepted", "NoValidCACertificate"),
                    no("Programmed", ""),
                ],
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayListenerUnsupportedProtocol",
        go_file: "gateway-invalid-listeners-unsupported-protocol.go",
        manifests: &["gateway-invalid-listeners-unsupported-protocol.yaml"],
        features: &["Gateway"],
        checks: &[
            Check::GatewayLatestConditions { gateway: "gateway-only-unsupported-protocols" },
            gateway("gateway-only-unsupported-protocols", no("Accepted", "ListenersNotValid")),
            listeners(
                "gateway-only-unsupported-protocols",
                &[l("invalid", &[], 0, &[no("Accepted", "UnsupportedProtocol")])],
            ),
            Check::GatewayLatestConditions { gateway: "gateway-supported-and-unsupported-protocols" },
            gateway("gateway-supported-and-unsupported-protocols", yes("Accepted", "ListenersNotValid")),
            listeners(
                "gateway-supported-and-unsupported-protocols",
                &[
                    l("http", HTTP_KINDS, 0, &[yes("Accepted", "Accepted")]),
                    l("invalid", &[], 0, &[no("Accepted", "UnsupportedProtocol")]),
                ],
            ),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayInvalidParametersRef",
        go_file: "gateway-invalid-parameters-ref.go",
        manifests: &["gateway-invalid-parameters-ref.yaml"],
        features: &["Gateway"],
        checks: &[
            Check::GatewayLatestConditions { gateway: "gateway-invalid-parameters-ref" },
            gateway("gateway-invalid-parameters-ref", no("Accepted", "InvalidParameters")),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayInvalidRouteKind",
        go_file: "gateway-invalid-route-kind.go",
        manifests: &["gateway-invalid-route-kind.yaml"],
        features: &["Gateway"],
        checks: &[
            listeners("gateway-only-invalid-route-kind", &[l("http", &[], 0, &[no("ResolvedRefs", "InvalidRouteKinds")])]),
            listeners(
                "gateway-supported-and-invalid-route-kind",
                &[l("http", HTTP_KINDS, 0, &[no("ResolvedRefs", "InvalidRouteKinds")])],
            ),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayInvalidTLSBackendConfiguration",
        go_file: "gateway-invalid-tls-backend-configuration.go",
        manifests: &["gateway-invalid-tls-backend-configuration.yaml"],
        features: &["Gateway", "GatewayBackendClientCertificate", "HTTPRoute", "BackendTLSPolicy"],
        checks: &[
            gateway("gateway-client-certificate-nonexistent-secret", no("ResolvedRefs", "InvalidClientCertificateRef")),
            gateway("gateway-client-certificate-nonexistent-secret", yes("Accepted", "Accepted")),
            gateway("gateway-client-certificate-unsupported-group", no("ResolvedRefs", "InvalidClientCertificateRef")),
            gateway("gateway-client-certificate-unsupported-group", yes("Accepted", "Accepted")),
            gateway("gateway-client-certificate-unsupported-kind", no("ResolvedRefs", "InvalidClientCertificateRef")),
            gateway("gateway-client-certificate-unsupported-kind", yes("Accepted", "Accepted")),
            gateway("gateway-client-certificate-malformed-secret", no("ResolvedRefs", "InvalidClientCertificateRef")),
            gateway("gateway-client-certificate-malformed-secret", yes("Accepted", "Accepted")),
            gateway("gateway-client-certificate-missing-reference-grant", no("ResolvedRefs", "RefNotPermitted")),
            gateway("gateway-client-certificate-missing-reference-grant", yes("Accepted", "Accepted")),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayInvalidTLSConfiguration",
        go_file: "gateway-invalid-tls-configuration.go",
        manifests: &["gateway-invalid-tls-configuration.yaml"],
        features: &["Gateway"],
        checks: &[
            listeners("gateway-certificate-nonexistent-secret", INVALID_CERT_LISTENER),
            listeners("gateway-certificate-unsupported-group", INVALID_CERT_LISTENER),
            listeners("gateway-certificate-unsupported-kind", INVALID_CERT_LISTENER),
            listeners("gateway-certificate-malformed-secret", INVALID_CERT_LISTENER),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayModifyListeners",
        go_file: "gateway-modify-listeners.go",
        manifests: &["gateway-modify-listeners.yaml"],
        features: &["Gateway"],
        blocked: Some("a patch step: the Go test adds and removes listeners at run time and reads the API server's generation bump"),
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayNameMaximumLength",
        go_file: "gateway-name-maximum-length.go",
        manifests: &["gateway-name-maximum-length.yaml"],
        features: &["Gateway"],
        checks: &[Check::GatewayLatestConditions { gateway: GATEWAY_NAME_MAXIMUM_LENGTH }],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayObservedGenerationBump",
        go_file: "gateway-observed-generation-bump.go",
        manifests: &["gateway-observed-generation-bump.yaml"],
        features: &["Gateway"],
        blocked: Some("a patch step: the Go test patches the Gateway and reads the API server's generation bump"),
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayOptionalAddressValue",
        go_file: "gateway-optional-address-value.go",
        manifests: &["gateway-optional-address-value.yaml"],
        features: &["Gateway", "GatewayAddressEmpty"],
        checks: &[Check::GatewayLatestConditions { gateway: "gateway-without-address-value" }],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewaySecretInvalidReferenceGrant",
        go_file: "gateway-secret-invalid-reference-grant.go",
        manifests: &["gateway-secret-invalid-reference-grant.yaml"],
        features: &["Gateway", "ReferenceGrant"],
        checks: &[listeners("gateway-secret-invalid-reference-grant", REF_NOT_PERMITTED_LISTENER)],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewaySecretMissingReferenceGrant",
        go_file: "gateway-secret-missing-reference-grant.go",
        manifests: &["gateway-secret-missing-reference-grant.yaml"],
        features: &["Gateway", "ReferenceGrant"],
        checks: &[listeners("gateway-secret-missing-reference-grant", REF_NOT_PERMITTED_LISTENER)],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewaySecretReferenceGrantAllInNamespace",
        go_file: "gateway-secret-reference-grant-all-in-namespace.go",
        manifests: &["gateway-secret-reference-grant-all-in-namespace.yaml"],
        features: &["Gateway", "ReferenceGrant"],
        checks: &[listeners("gateway-secret-reference-grant-all-in-namespace", GRANTED_SECRET_LISTENER)],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewaySecretReferenceGrantSpecific",
        go_file: "gateway-secret-reference-grant-specific.go",
        manifests: &["gateway-secret-reference-grant-specific.yaml"],
        features: &["Gateway", "ReferenceGrant"],
        checks: &[listeners("gateway-secret-reference-grant-specific", GRANTED_SECRET_LISTENER)],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayStaticAddresses",
        go_file: "gateway-static-addresses.go",
        manifests: &["gateway-static-addresses.yaml"],
        features: &["Gateway", "GatewayStaticAddresses"],
        blocked: Some("a patch step and cluster addresses: the Go test patches the Gateway's addresses with usable and unusable ones of the cluster"),
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayTLSBackendClientCertificate",
        go_file: "gateway-tls-backend-client-certificate.go",
        manifests: &["gateway-tls-backend-client-certificate.yaml"],
        features: &["Gateway", "GatewayBackendClientCertificate", "HTTPRoute", "BackendTLSPolicy"],
        blocked: Some("TLS echo backends checking client certificates; the expected certificate is computed at run time"),
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayWithAttachedRoutes",
        go_file: "gateway-with-attached-routes.go",
        manifests: &["gateway-with-attached-routes.yaml"],
        features: GATEWAY_HTTPROUTE,
        checks: &[
            listeners("gateway-with-one-attached-route", &[l("http", HTTP_KINDS, 1, LISTENER_OK)]),
            listeners("gateway-with-two-attached-routes", &[l("http", HTTP_KINDS, 2, LISTENER_OK)]),
            route("http-route-not-accepted", "gateway-with-two-attached-routes", no("Accepted", "NoMatchingListenerHostname")),
            listeners(
                "unresolved-gateway-with-one-attached-unresolved-route",
                &[l("tls", HTTP_KINDS, 1, &[no("Programmed", ""), no("ResolvedRefs", "")])],
            ),
            route("http-route-4", "unresolved-gateway-with-one-attached-unresolved-route", no("ResolvedRefs", "")),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayWithAttachedRoutesWithPort8080",
        go_file: "gateway-with-attached-routes.go",
        manifests: &["gateway-with-attached-routes-with-port-8080.yaml"],
        features: &["Gateway", "GatewayPort8080", "HTTPRoute"],
        checks: &[listeners(
            "gateway-with-two-listeners-and-one-attached-route",
            &[l("http-unattached", HTTP_KINDS, 0, LISTENER_OK), l("http", HTTP_KINDS, 1, LISTENER_OK)],
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayFrontendClientCertificateValidationInsecureFallback",
        go_file: "gateway-with-clientcertificate-validation-insecure-fallback.go",
        manifests: &["gateway-with-clientcertificate-validation-insecure-fallback.yaml"],
        features: &[
            "Gateway",
            "HTTPRoute",
            "GatewayFrontendClientCertificateValidation",
            "GatewayFrontendClientCertificateValidationInsecureFallback",
        ],
        blocked: Some("HTTPS requests presenting client certificates"),
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayFrontendClientCertificateValidation",
        go_file: "gateway-with-clientcertificate-validation.go",
        manifests: &["gateway-with-clientcertificate-validation.yaml"],
        features: &["Gateway", "HTTPRoute", "GatewayFrontendClientCertificateValidation"],
        blocked: Some("HTTPS requests presenting client certificates, and handshakes expected to fail"),
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayInvalidFrontendClientCertificateValidation",
        go_file: "gateway-with-invalid-clientcertificate-validation.go",
        manifests: &["gateway-with-invalid-clientcertificate-validation.yaml"],
        features: &["Gateway", "HTTPRoute", "ReferenceGrant", "GatewayFrontendClientCertificateValidation"],
        checks: &[
            Check::ListenerConditions {
                gateway: "gateway-with-invalid-client-cert-validation",
                listener: "https",
                conditions: &[yes("ResolvedRefs", ""), yes("Accepted", ""), yes("Programmed", "")],
            },
            Check::ListenerConditions {
                gateway: "gateway-with-invalid-client-cert-validation",
                listener: "https-unresolved",
                conditions: &[
                    no("ResolvedRefs", "InvalidCACertificateRef"),
                    no("Accepted", "NoValidCACertificate"),
                    no("Programmed", ""),
                ],
            },
            Check::ListenerConditions {
                gateway: "gateway-with-invalid-client-cert-validation",
                listener: "https-invalid-kind",
                conditions: &[
                    no("ResolvedRefs", "InvalidCACertificateKind"),
                    no("Accepted", "NoValidCACertificate"),
                    no("Programmed", ""),
                ],
            },
            Check::ListenerConditions {
                gateway: "gateway-with-invalid-client-cert-validation",
                listener: "https-grant-missing",
                conditions: &[
                    no("ResolvedRefs", "RefNotPermitted"),
                    no("Accepted", "NoValidCACertificate"),
                    no("Programmed", ""),
                ],
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "GatewayClassObservedGenerationBump",
        go_file: "gatewayclass-observed-generation-bump.go",
        manifests: &["gatewayclass-observed-generation-bump.yaml"],
        features: &["Gateway"],
        blocked: Some("a patch step: the Go test patches the GatewayClass and reads the API server's generation bump"),
        ..NONE
    },
    // ---------------------------------------------------------------- GRPCRoute
    UpstreamTest {
        short_name: "GRPCExactMethodMatching",
        go_file: "grpcroute-exact-method-matching.go",
        manifests: &["grpcroute-exact-method-matching.yaml"],
        features: &["Gateway", "GRPCRoute"],
        targets: &[SAME],
        checks: &[accepted_kind("same-namespace", RouteKind::Grpc, &["exact-matching"])],
        ..NONE
    },
    UpstreamTest {
        short_name: "GRPCRouteHeaderMatching",
        go_file: "grpcroute-header-matching.go",
        manifests: &["grpcroute-header-matching.yaml"],
        features: &["Gateway", "GRPCRoute"],
        targets: &[SAME],
        checks: &[accepted_kind("same-namespace", RouteKind::Grpc, &["grpc-header-matching"])],
        ..NONE
    },
    UpstreamTest {
        short_name: "GRPCRouteListenerHostnameMatching",
        go_file: "grpcroute-listener-hostname-matching.go",
        manifests: &["grpcroute-listener-hostname-matching.yaml"],
        features: &["Gateway", "GRPCRoute"],
        // gwAddr comes from NewGatewayRef(gwNN, "listener-3", "listener-4").
        targets: &[listener("grpcroute-listener-hostname-matching", "listener-3")],
        checks: &[accepted_kind(
            "grpcroute-listener-hostname-matching",
            RouteKind::Grpc,
            &["backend-v1", "backend-v2", "backend-v3"],
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "GRPCRouteNamedRule",
        go_file: "grpcroute-named-rule.go",
        manifests: &["grpcroute-named-rule.yaml"],
        features: &["Gateway", "GRPCRoute", "GRPCRouteNamedRouteRule"],
        targets: &[SAME],
        checks: &[accepted_kind("same-namespace", RouteKind::Grpc, &["grpc-named-rules"])],
        ..NONE
    },
    UpstreamTest {
        short_name: "GRPCRouteRequestHeaderModifier",
        go_file: "grpcroute-request-header-modifier.go",
        manifests: &["grpcroute-request-header-modifier.yaml"],
        features: &["Gateway", "GRPCRoute", "GRPCRouteRequestHeaderModifier"],
        targets: &[SAME],
        checks: &[accepted_kind("same-namespace", RouteKind::Grpc, &["grpc-request-header-modifier"])],
        ..NONE
    },
    UpstreamTest {
        short_name: "GRPCRouteWeight",
        go_file: "grpcroute-weight.go",
        manifests: &["grpcroute-weight.yaml"],
        features: &["Gateway", "GRPCRoute"],
        targets: &[SAME],
        checks: &[accepted_kind("same-namespace", RouteKind::Grpc, &["weighted-backends"])],
        extras: &[Extra::Weights {
            target: SAME,
            proto: Proto::Grpc,
            weights: &[("grpc-infra-backend-v1", 0.7), ("grpc-infra-backend-v2", 0.3), ("grpc-infra-backend-v3", 0.0)],
        }],
        ..NONE
    },
    // ---------------------------------------------------------------- HTTPRoute
    simple!("HTTPRoute303Redirect", "httproute-303-redirect", &["Gateway", "HTTPRoute", "HTTPRoute303RedirectStatusCode"], &[
        accepted("same-namespace", &["303-redirect"]),
        resolved("303-redirect", "same-namespace"),
    ]),
    simple!("HTTPRoute307Redirect", "httproute-307-redirect", &["Gateway", "HTTPRoute", "HTTPRoute307RedirectStatusCode"], &[
        accepted("same-namespace", &["307-redirect"]),
        resolved("307-redirect", "same-namespace"),
    ]),
    simple!("HTTPRoute308Redirect", "httproute-308-redirect", &["Gateway", "HTTPRoute", "HTTPRoute308RedirectStatusCode"], &[
        accepted("same-namespace", &["308-redirect"]),
        resolved("308-redirect", "same-namespace"),
    ]),
    simple!(
        "HTTPRouteBackendProtocolH2C",
        "httproute-backend-protocol-h2c",
        &["Gateway", "HTTPRoute", "HTTPRouteBackendProtocolH2C"],
        &[accepted("same-namespace", &["backend-protocol-h2c"])],
    ),
    UpstreamTest {
        short_name: "HTTPRouteBackendProtocolWebSocket",
        go_file: "httproute-backend-protocol-websocket.go",
        manifests: &["httproute-backend-protocol-websocket.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteBackendProtocolWebSocket"],
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["backend-protocol-ws"])],
        extras: &[Extra::WebSocket { target: SAME, path: "/ws" }],
        ..NONE
    },
    simple!(
        "HTTPRouteBackendRequestRedirect",
        "httproute-backend-request-redirect",
        &["Gateway", "HTTPRoute", "HTTPRouteBackendRequestRedirect"],
        &[accepted("same-namespace", &["backend-request-redirect"]), resolved("backend-request-redirect", "same-namespace")],
    ),
    simple!(
        "HTTPRouteBackendURLRewrite",
        "httproute-backend-url-rewrite",
        &["Gateway", "HTTPRoute", "HTTPRouteBackendURLRewrite"],
        &[accepted("same-namespace", &["backend-url-rewrite"]), resolved("backend-url-rewrite", "same-namespace")],
    ),
    simple!("HTTPRouteCORS", "httproute-cors", &["Gateway", "HTTPRoute", "HTTPRouteCORS"], &[
        accepted("same-namespace", &["cors-multiple-origins-methods-headers", "cors-wildcard-methods"]),
        resolved("cors-multiple-origins-methods-headers", "same-namespace"),
        resolved("cors-wildcard-methods", "same-namespace"),
        resolved("cors-wildcard-origin", "same-namespace"),
        resolved("cors-wildcard-methods-headers", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteCrossNamespace",
        go_file: "httproute-cross-namespace.go",
        manifests: &["httproute-cross-namespace.yaml"],
        features: GATEWAY_HTTPROUTE,
        targets: &[gw("backend-namespaces")],
        checks: &[
            accepted("backend-namespaces", &["gateway-conformance-web-backend/cross-namespace"]),
            resolved("gateway-conformance-web-backend/cross-namespace", "backend-namespaces"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteDisallowedKind",
        go_file: "httproute-disallowed-kind.go",
        manifests: &["httproute-disallowed-kind.yaml"],
        features: &["Gateway", "HTTPRoute", "TLSRoute"],
        checks: &[
            resolved("disallowed-kind", "tlsroutes-only"),
            route("disallowed-kind", "tlsroutes-only", no("Accepted", "NotAllowedByListeners")),
            no_accepted_parents("disallowed-kind"),
            zero_routes("tlsroutes-only"),
        ],
        ..NONE
    },
    simple!("HTTPRouteExactPathMatching", "httproute-exact-path-matching", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["exact-matching"]),
        resolved("exact-matching", "same-namespace"),
    ]),
    simple!("HTTPRouteHeaderMatching", "httproute-header-matching", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["header-matching"]),
        resolved("header-matching", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteHostnameIntersection",
        go_file: "httproute-hostname-intersection.go",
        manifests: &["httproute-hostname-intersection.yaml"],
        features: GATEWAY_HTTPROUTE,
        targets: &[gw("httproute-hostname-intersection")],
        // "HTTPRoutes intersects with an unspecified hostname listener".
        overrides: &[(Select::Lines(314, 400), &[gw("httproute-hostname-intersection-all")])],
        checks: &[
            accepted(
                "httproute-hostname-intersection",
                &[
                    "specific-host-matches-listener-specific-host",
                    "specific-host-matches-listener-wildcard-host",
                    "wildcard-host-matches-listener-specific-host",
                    "wildcard-host-matches-listener-wildcard-host",
                ],
            ),
            resolved("specific-host-matches-listener-specific-host", "httproute-hostname-intersection"),
            resolved("specific-host-matches-listener-wildcard-host", "httproute-hostname-intersection"),
            resolved("wildcard-host-matches-listener-specific-host", "httproute-hostname-intersection"),
            resolved("wildcard-host-matches-listener-wildcard-host", "httproute-hostname-intersection"),
            Check::RouteParents {
                kind: RouteKind::Http,
                route: "no-intersecting-hosts",
                parents: &[ParentExpect {
                    gateway: "httproute-hostname-intersection",
                    conditions: &[no("Accepted", "NoMatchingListenerHostname")],
                }],
                namespace_required: true,
            },
            listeners(
                "httproute-hostname-intersection",
                &[
                    l("listener-1", HTTP_KINDS, 2, LISTENER_OK),
                    l("listener-2", HTTP_KINDS, 1, LISTENER_OK),
                    l("listener-3", HTTP_KINDS, 1, LISTENER_OK),
                ],
            ),
            accepted("httproute-hostname-intersection-all", &["httproute-hostname-intersection-all"]),
            resolved("httproute-hostname-intersection-all", "httproute-hostname-intersection-all"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteHTTPSListenerDetectMisdirectedRequests",
        go_file: "httproute-https-listener-detect-misdirected-requests.go",
        manifests: &["httproute-https-listener-detect-misdirected-requests.yaml"],
        features: &["Gateway", "GatewayHTTPSListenerDetectMisdirectedRequests", "HTTPRoute"],
        targets: &[https("same-namespace-with-https-listener", Tls::HostIsServerName)],
        not_runnable: &[(Select::All, "cases computed at run time (SNI and Host differ per case), not transcribed yet")],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteHTTPSListener",
        go_file: "httproute-https-listener.go",
        manifests: &["httproute-https-listener.yaml"],
        features: GATEWAY_HTTPROUTE,
        targets: &[https("same-namespace-with-https-listener", Tls::HostIsServerName)],
        checks: &[
            accepted("same-namespace-with-https-listener", &["httproute-https-test", "httproute-https-test-no-hostname"]),
            resolved("httproute-https-test", "same-namespace-with-https-listener"),
            resolved("httproute-https-test-no-hostname", "same-namespace-with-https-listener"),
        ],
        extras: &[
            Extra::Case {
                line: 73,
                case: r#"{"Request": {"Host": "example.org", "Path": "/"}, "Response": {"StatusCode": 200},
                    "Backend": "infra-backend-v1", "Namespace": "gateway-conformance-infra"}"#,
            },
            Extra::Case {
                line: 73,
                case: r#"{"Request": {"Host": "unknown-example.org", "Path": "/"}, "Response": {"StatusCode": 404},
                    "Namespace": "gateway-conformance-infra"}"#,
            },
            Extra::Case {
                line: 73,
                case: r#"{"Request": {"Host": "second-example.org", "Path": "/"}, "Response": {"StatusCode": 200},
                    "Backend": "infra-backend-v2", "Namespace": "gateway-conformance-infra"}"#,
            },
        ],
        ..NONE
    },
    simple!("HTTPRouteInvalidBackendRefUnknownKind", "httproute-invalid-backendref-unknown-kind", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["invalid-backend-ref-unknown-kind"]),
        route("invalid-backend-ref-unknown-kind", "same-namespace", no("ResolvedRefs", "InvalidKind")),
    ]),
    simple!(
        "HTTPRouteInvalidCrossNamespaceBackendRef",
        "httproute-invalid-cross-namespace-backend-ref",
        &["Gateway", "HTTPRoute", "ReferenceGrant"],
        &[
            accepted("same-namespace", &["invalid-cross-namespace-backend-ref"]),
            route("invalid-cross-namespace-backend-ref", "same-namespace", no("ResolvedRefs", "RefNotPermitted")),
        ],
    ),
    UpstreamTest {
        short_name: "HTTPRouteInvalidCrossNamespaceParentRef",
        go_file: "httproute-invalid-cross-namespace-parent-ref.go",
        manifests: &["httproute-invalid-cross-namespace-parent-ref.yaml"],
        features: GATEWAY_HTTPROUTE,
        checks: &[
            resolved("gateway-conformance-web-backend/invalid-cross-namespace-parent-ref", "same-namespace"),
            route(
                "gateway-conformance-web-backend/invalid-cross-namespace-parent-ref",
                "same-namespace",
                no("Accepted", "NotAllowedByListeners"),
            ),
            no_accepted_parents("gateway-conformance-web-backend/invalid-cross-namespace-parent-ref"),
            zero_routes("same-namespace"),
        ],
        ..NONE
    },
    simple!("HTTPRouteInvalidNonExistentBackendRef", "httproute-invalid-nonexistent-backendref", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["invalid-nonexistent-backend-ref"]),
        route("invalid-nonexistent-backend-ref", "same-namespace", no("ResolvedRefs", "BackendNotFound")),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteInvalidParentRefNotMatchingListenerPort",
        go_file: "httproute-invalid-parentref-not-matching-listener-port.go",
        manifests: &["httproute-invalid-parentref-not-matching-listener-port.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteDestinationPortMatching"],
        checks: &[
            resolved("httproute-listener-not-matching-route-port", "same-namespace"),
            route("httproute-listener-not-matching-route-port", "same-namespace", no("Accepted", "NoMatchingParent")),
            no_accepted_parents("httproute-listener-not-matching-route-port"),
            zero_routes("same-namespace"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteInvalidParentRefNotMatchingSectionName",
        go_file: "httproute-invalid-parentref-not-matching-section-name.go",
        manifests: &["httproute-invalid-parentref-not-matching-section-name.yaml"],
        features: GATEWAY_HTTPROUTE,
        checks: &[
            route("httproute-listener-not-matching-section-name", "same-namespace", no("Accepted", "NoMatchingParent")),
            no_accepted_parents("httproute-listener-not-matching-section-name"),
            zero_routes("same-namespace"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteInvalidParentRefSectionNameNotMatchingPort",
        go_file: "httproute-invalid-parentref-section-name-not-matching-port.go",
        manifests: &["httproute-invalid-parentref-section-name-not-matching-port.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteParentRefPort"],
        checks: &[
            route(
                "httproute-listener-section-name-not-matching-port",
                "gateway-with-one-not-matching-port-and-section-name-route",
                no("Accepted", "NoMatchingParent"),
            ),
            no_accepted_parents("httproute-listener-section-name-not-matching-port"),
            zero_routes("gateway-with-one-not-matching-port-and-section-name-route"),
        ],
        ..NONE
    },
    simple!(
        "HTTPRouteInvalidReferenceGrant",
        "httproute-invalid-reference-grant",
        &["Gateway", "HTTPRoute", "ReferenceGrant"],
        &[
            accepted("same-namespace", &["reference-grant"]),
            route("reference-grant", "same-namespace", no("ResolvedRefs", "RefNotPermitted")),
        ],
    ),
    UpstreamTest {
        short_name: "HTTPRouteListenerHostnameMatching",
        go_file: "httproute-listener-hostname-matching.go",
        manifests: &["httproute-listener-hostname-matching.yaml"],
        features: GATEWAY_HTTPROUTE,
        // gwAddr comes from NewGatewayRef(gwNN, "listener-3", "listener-4").
        targets: &[listener("httproute-listener-hostname-matching", "listener-3")],
        checks: &[
            accepted("httproute-listener-hostname-matching", &["backend-v1", "backend-v2", "backend-v3"]),
            resolved("backend-v1", "httproute-listener-hostname-matching"),
            resolved("backend-v2", "httproute-listener-hostname-matching"),
            resolved("backend-v3", "httproute-listener-hostname-matching"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteListenerPortMatching",
        go_file: "httproute-listener-port-matching.go",
        manifests: &["httproute-listener-port-matching.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteParentRefPort"],
        targets: &[listener("httproute-listener-port-matching", "listener-1")],
        // The Go test picks the listener by the port in the Host header.
        overrides: &[
            (Select::Lines(69, 76), &[listener("httproute-listener-port-matching", "listener-2")]),
            (Select::Lines(77, 84), &[listener("httproute-listener-port-matching", "listener-4")]),
        ],
        checks: &[
            accepted("httproute-listener-port-matching", &["backend-v1", "backend-v2", "backend-v3"]),
            resolved("backend-v1", "httproute-listener-port-matching"),
            resolved("backend-v2", "httproute-listener-port-matching"),
            resolved("backend-v3", "httproute-listener-port-matching"),
        ],
        ..NONE
    },
    simple!("HTTPRouteMatchingAcrossRoutes", "httproute-matching-across-routes", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["matching-part1", "matching-part2"]),
        resolved("matching-part1", "same-namespace"),
        resolved("matching-part2", "same-namespace"),
    ]),
    simple!("HTTPRouteMatching", "httproute-matching", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["matching"]),
        resolved("matching", "same-namespace"),
    ]),
    simple!("HTTPRouteMethodMatching", "httproute-method-matching", &["Gateway", "HTTPRoute", "HTTPRouteMethodMatching"], &[
        accepted("same-namespace", &["method-matching"]),
        resolved("method-matching", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteMultipleGateways",
        go_file: "httproute-multiple-gateways.go",
        manifests: &["httproute-multiple-gateways.yaml"],
        features: GATEWAY_HTTPROUTE,
        targets: &[SAME],
        // t.Run("Gateway all-namespaces").
        overrides: &[(Select::Lines(71, 100), &[gw("all-namespaces")])],
        checks: &[
            accepted("same-namespace", &["multiple-gateways-shared-route", "same-namespace-dedicated-route"]),
            accepted("all-namespaces", &["multiple-gateways-shared-route", "all-namespaces-dedicated-route"]),
        ],
        ..NONE
    },
    simple!("HTTPRouteNamedRule", "httproute-named-rule", &["Gateway", "HTTPRoute", "HTTPRouteNamedRouteRule"], &[
        accepted("same-namespace", &["http-named-rules"]),
        resolved("http-named-rules", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteObservedGenerationBump",
        go_file: "httproute-observed-generation-bump.go",
        manifests: &["httproute-observed-generation-bump.yaml"],
        features: GATEWAY_HTTPROUTE,
        blocked: Some("a patch step: the Go test patches the HTTPRoute and reads the API server's generation bump"),
        ..NONE
    },
    simple!("HTTPRouteNoBackendRefs", "httproute-omitted-backendrefs", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["omitted-backendrefs"]),
        resolved("omitted-backendrefs", "same-namespace"),
    ]),
    simple!(
        "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
        "httproute-partially-invalid-via-invalid-reference-grant",
        &["Gateway", "HTTPRoute", "ReferenceGrant"],
        &[
            accepted("same-namespace", &["invalid-reference-grant"]),
            route("invalid-reference-grant", "same-namespace", no("ResolvedRefs", "RefNotPermitted")),
        ],
    ),
    simple!("HTTPRoutePathMatchOrder", "httproute-path-match-order", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["path-matching-order"]),
        resolved("path-matching-order", "same-namespace"),
    ]),
    simple!(
        "HTTPRouteQueryParamMatching",
        "httproute-query-param-matching",
        &["Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching"],
        &[accepted("same-namespace", &["query-param-matching"]), resolved("query-param-matching", "same-namespace")],
    ),
    simple!("HTTPRouteRedirectHostAndStatus", "httproute-redirect-host-and-status", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["redirect-host-and-status"]),
        resolved("redirect-host-and-status", "same-namespace"),
    ]),
    simple!("HTTPRouteRedirectPath", "httproute-redirect-path", &["Gateway", "HTTPRoute", "HTTPRoutePathRedirect"], &[
        accepted("same-namespace", &["redirect-path"]),
        resolved("redirect-path", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteRedirectPortAndScheme",
        go_file: "httproute-redirect-port-and-scheme.go",
        manifests: &["httproute-redirect-port-and-scheme.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRoutePortRedirect", "GatewayPort8080"],
        targets: &[SAME],
        overrides: &[
            (Select::Lines(165, 216), &[gw("same-namespace-with-http-listener-on-8080")]),
            (Select::Lines(217, 312), &[https("same-namespace-with-https-listener", Tls::ServerName("example.org"))]),
        ],
        checks: &[
            accepted("same-namespace", &["http-route-for-listener-on-port-80"]),
            resolved("http-route-for-listener-on-port-80", "same-namespace"),
            accepted("same-namespace-with-http-listener-on-8080", &["http-route-for-listener-on-port-8080"]),
            resolved("http-route-for-listener-on-port-8080", "same-namespace-with-http-listener-on-8080"),
            accepted("same-namespace-with-https-listener", &["http-route-for-listener-on-port-443"]),
            resolved("http-route-for-listener-on-port-443", "same-namespace-with-https-listener"),
        ],
        ..NONE
    },
    simple!("HTTPRouteRedirectPort", "httproute-redirect-port", &["Gateway", "HTTPRoute", "HTTPRoutePortRedirect"], &[
        accepted("same-namespace", &["redirect-port"]),
        resolved("redirect-port", "same-namespace"),
    ]),
    simple!("HTTPRouteRedirectScheme", "httproute-redirect-scheme", &["Gateway", "HTTPRoute", "HTTPRouteSchemeRedirect"], &[
        accepted("same-namespace", &["redirect-scheme"]),
        resolved("redirect-scheme", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteReferenceGrant",
        go_file: "httproute-reference-grant.go",
        manifests: &["httproute-reference-grant.yaml"],
        features: &["Gateway", "HTTPRoute", "ReferenceGrant"],
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["reference-grant"]), resolved("reference-grant", "same-namespace")],
        mutations: &[(
            76,
            Mutation::Delete {
                kind: "ReferenceGrant",
                namespace: "gateway-conformance-web-backend",
                name: "reference-grant",
            },
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteRequestHeaderModifierBackendWeights",
        go_file: "httproute-request-header-modifier-backend-weights.go",
        manifests: &["httproute-request-header-modifier-backend-weights.yaml"],
        features: &["Gateway", "HTTPRouteBackendRequestHeaderModification", "HTTPRoute"],
        targets: &[SAME],
        checks: &[
            accepted("same-namespace", &["request-header-modifier-backend-weights"]),
            resolved("request-header-modifier-backend-weights", "same-namespace"),
        ],
        extras: &[Extra::BackendHeaderNamesPod { target: SAME, requests: 100 }],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteBackendRequestHeaderModifier",
        go_file: "httproute-request-header-modifier.go",
        manifests: &["httproute-request-header-modifier-backend.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteBackendRequestHeaderModification"],
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["request-header-modifier"]), resolved("request-header-modifier", "same-namespace")],
        ..NONE
    },
    simple!("HTTPRouteRequestHeaderModifier", "httproute-request-header-modifier", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["request-header-modifier"]),
        resolved("request-header-modifier", "same-namespace"),
    ]),
    simple!("HTTPRouteRequestMirror", "httproute-request-mirror", &["Gateway", "HTTPRoute", "HTTPRouteRequestMirror"], &[
        accepted("same-namespace", &["request-mirror"]),
    ]),
    simple!(
        "HTTPRouteRequestMultipleMirrors",
        "httproute-request-multiple-mirrors",
        &["Gateway", "HTTPRoute", "HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors"],
        &[accepted("same-namespace", &["request-multiple-mirrors"])],
    ),
    UpstreamTest {
        short_name: "HTTPRouteRequestPercentageMirror",
        go_file: "httproute-request-percentage-mirror.go",
        manifests: &["httproute-request-percentage-mirror.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteRequestPercentageMirror"],
        targets: &[SAME],
        checks: &[
            accepted("same-namespace", &["request-percentage-mirror"]),
            resolved("request-percentage-mirror", "same-namespace"),
        ],
        extras: &[Extra::MirrorDistribution { target: SAME }],
        ..NONE
    },
    simple!(
        "HTTPRouteResponseHeaderModifier",
        "httproute-response-header-modifier",
        &["Gateway", "HTTPRoute", "HTTPRouteResponseHeaderModification"],
        &[accepted("same-namespace", &["response-header-modifier"]), resolved("response-header-modifier", "same-namespace")],
    ),
    UpstreamTest {
        short_name: "HTTPRouteRetryConnectionError",
        go_file: "httproute-retry-connection-error.go",
        manifests: &["httproute-retry-connection-error.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteRetry", "HTTPRouteRetryConnectionError"],
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["retries-connection-error"]), resolved("retries-connection-error", "same-namespace")],
        extras: &[Extra::Missing { what: "retry cases built in a loop", why: "not transcribed yet" }],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteRetryWithTimeouts",
        go_file: "httproute-retry-with-timeouts.go",
        manifests: &["httproute-retry-with-timeouts.yaml"],
        features: &[
            "Gateway",
            "HTTPRoute",
            "HTTPRouteRetry",
            "HTTPRouteRetryBackendTimeout",
            "HTTPRouteRequestTimeout",
            "HTTPRouteBackendTimeout",
        ],
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["retries-with-timeouts"]), resolved("retries-with-timeouts", "same-namespace")],
        extras: &[Extra::Missing { what: "retry cases built in a loop", why: "not transcribed yet" }],
        ..NONE
    },
    UpstreamTest {
        short_name: "HTTPRouteRetry",
        go_file: "httproute-retry.go",
        manifests: &["httproute-retry.yaml"],
        features: &["Gateway", "HTTPRoute", "HTTPRouteRetry"],
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["retries"]), resolved("retries", "same-namespace")],
        extras: &[Extra::Missing { what: "retry cases built in a loop", why: "not transcribed yet" }],
        ..NONE
    },
    simple!("HTTPRouteRewriteHost", "httproute-rewrite-host", &["Gateway", "HTTPRoute", "HTTPRouteHostRewrite"], &[
        accepted("same-namespace", &["rewrite-host"]),
        resolved("rewrite-host", "same-namespace"),
    ]),
    simple!("HTTPRouteRewritePath", "httproute-rewrite-path", &["Gateway", "HTTPRoute", "HTTPRoutePathRewrite"], &[
        accepted("same-namespace", &["rewrite-path"]),
        resolved("rewrite-path", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteServiceTypes",
        go_file: "httproute-service-types.go",
        manifests: &["httproute-service-types.yaml"],
        features: GATEWAY_HTTPROUTE,
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["service-types"]), resolved("service-types", "same-namespace")],
        setup: &[Setup::FillSlices {
            namespace: "gateway-conformance-infra",
            prefixes: &["manual-endpointslices", "headless-manual-endpointslices"],
            deployment: "infra-backend-v1",
        }],
        extras: &[
            Extra::Case {
                line: 92,
                case: r#"{"Request": {"Path": "/manual-endpointslices"}, "Response": {"StatusCode": 200},
                    "Backend": "infra-backend-v1", "Namespace": "gateway-conformance-infra"}"#,
            },
            Extra::Case {
                line: 92,
                case: r#"{"Request": {"Path": "/headless-manual-endpointslices"}, "Response": {"StatusCode": 200},
                    "Backend": "infra-backend-v1", "Namespace": "gateway-conformance-infra"}"#,
            },
            Extra::Case {
                line: 92,
                case: r#"{"Request": {"Path": "/headless"}, "Response": {"StatusCode": 200},
                    "Backend": "infra-backend-v1", "Namespace": "gateway-conformance-infra"}"#,
            },
        ],
        ..NONE
    },
    simple!("HTTPRouteSimpleSameNamespace", "httproute-simple-same-namespace", GATEWAY_HTTPROUTE, &[
        accepted("same-namespace", &["gateway-conformance-infra-test"]),
        resolved("gateway-conformance-infra-test", "same-namespace"),
    ]),
    simple!(
        "HTTPRouteTimeoutBackendRequest",
        "httproute-timeout-backend-request",
        &["Gateway", "HTTPRoute", "HTTPRouteBackendTimeout"],
        &[accepted("same-namespace", &["backend-request-timeout"]), resolved("backend-request-timeout", "same-namespace")],
    ),
    simple!("HTTPRouteTimeoutRequest", "httproute-timeout-request", &["Gateway", "HTTPRoute", "HTTPRouteRequestTimeout"], &[
        accepted("same-namespace", &["request-timeout"]),
        resolved("request-timeout", "same-namespace"),
    ]),
    UpstreamTest {
        short_name: "HTTPRouteWeight",
        go_file: "httproute-weight.go",
        manifests: &["httproute-weight.yaml"],
        features: GATEWAY_HTTPROUTE,
        targets: &[SAME],
        checks: &[accepted("same-namespace", &["weighted-backends"]), resolved("weighted-backends", "same-namespace")],
        extras: &[Extra::Weights {
            target: SAME,
            proto: Proto::Http,
            weights: &[("infra-backend-v1", 0.7), ("infra-backend-v2", 0.3), ("infra-backend-v3", 0.0)],
        }],
        ..NONE
    },
    // ---------------------------------------------------------------- ListenerSet
    listener_set!("ListenerSetAllowedNamespaceNone", "listenerset-allowed-namespace-none", &["Gateway", "ListenerSet"]),
    listener_set!("ListenerSetAllowedNamespaceSame", "listenerset-allowed-namespace-same", &["Gateway", "ListenerSet"]),
    listener_set!(
        "ListenerSetAllowedNamespaceSelector",
        "listenerset-allowed-namespace-selector",
        &["Gateway", "ListenerSet"],
    ),
    listener_set!(
        "ListenerSetAllowedRoutesNamespaces",
        "listenerset-allowed-routes-namespaces",
        &["Gateway", "ListenerSet", "HTTPRoute", "ReferenceGrant"],
    ),
    listener_set!(
        "ListenerSetAllowedRoutesSupportedKinds",
        "listenerset-allowed-routes-supported-kinds",
        &["Gateway", "ListenerSet", "TLSRoute"],
    ),
    listener_set!("ListenerSetDefaultNotAllowed", "listenerset-default-not-allowed", &["Gateway", "ListenerSet"]),
    listener_set!(
        "ListenerSetDualParentRefIndependence",
        "listenerset-dual-parentref-independence",
        &["Gateway", "ListenerSet", "HTTPRoute"],
    ),
    listener_set!(
        "ListenerSetGatewayParentSectionNameNotFound",
        "listenerset-gateway-parent-section-name-not-found",
        &["Gateway", "ListenerSet", "HTTPRoute"],
    ),
    listener_set!("ListenerSetHostnameConflict", "listenerset-hostname-conflict", &["Gateway", "ListenerSet"]),
    listener_set!("ListenerSetHTTPRouting", "listenerset-http-routing", &["Gateway", "ListenerSet", "HTTPRoute"]),
    listener_set!("ListenerSetProtocolConflict", "listenerset-protocol-conflict", &["Gateway", "ListenerSet"]),
    listener_set!("ListenerSetReferenceGrant", "listenerset-reference-grant", &["Gateway", "ListenerSet", "ReferenceGrant"]),
    listener_set!(
        "ListenerSetRouteStatusScopedToParentRef",
        "listenerset-route-status-scoped-to-parentref",
        &["Gateway", "ListenerSet", "HTTPRoute"],
    ),
    // ---------------------------------------------------------------- TCPRoute
    UpstreamTest {
        short_name: "TCPRouteInvalidBackendRefNonexistent",
        go_file: "tcproute-invalid-backendref-nonexistent.go",
        manifests: &["tcproute-invalid-backendref-nonexistent.yaml"],
        features: &["Gateway", "TCPRoute"],
        checks: &[route_kind(
            RouteKind::Tcp,
            "tcp-route-invalid-backend-ref-nonexistent",
            "tcp-gateway-invalid-backend",
            no("ResolvedRefs", "BackendNotFound"),
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "TCPRouteInvalidCrossNamespaceBackendRef",
        go_file: "tcproute-invalid-cross-namespace-backend-ref.go",
        manifests: &["tcproute-invalid-cross-namespace-backend-ref.yaml"],
        features: &["Gateway", "TCPRoute", "ReferenceGrant"],
        checks: &[
            accepted_kind("tcp-invalid-cross-namespace-backend-ref-gateway", RouteKind::Tcp, &["tcp-invalid-cross-namespace-backend-ref"]),
            route_kind(
                RouteKind::Tcp,
                "tcp-invalid-cross-namespace-backend-ref",
                "tcp-invalid-cross-namespace-backend-ref-gateway",
                no("ResolvedRefs", "RefNotPermitted"),
            ),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "TCPRouteInvalidNonTCPListener",
        go_file: "tcproute-invalid-non-tcp-listener.go",
        manifests: &["tcproute-invalid-non-tcp-listener.yaml"],
        features: &["Gateway", "TCPRoute"],
        checks: &[
            route_kind(RouteKind::Tcp, "tcp-route", "tcp-mixed-protocol-gateway", no("Accepted", "NotAllowedByListeners")),
            zero_routes("tcp-mixed-protocol-gateway"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "TCPRouteMultipleRoutesAttachment",
        go_file: "tcproute-multiple-routes-attachment.go",
        manifests: &["tcproute-multiple-routes-attachment.yaml"],
        features: &["Gateway", "TCPRoute"],
        targets: &[listener("tcp-multi-route-attach-gateway", "tcp")],
        setup: &[Setup::Create {
            doc: r#"{"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
                "metadata": {"name": "tcproute-attach-newer", "namespace": "gateway-conformance-infra", "creationTimestamp": "2026-01-01T00:00:01Z"},
                "spec": {"parentRefs": [{"name": "tcp-multi-route-attach-gateway", "sectionName": "tcp"}],
                    "rules": [{"backendRefs": [{"name": "tcp-attach-backend-2", "port": 3000}]}]}}"#,
        }],
        checks: &[
            accepted_kind("tcp-multi-route-attach-gateway", RouteKind::Tcp, &["tcproute-attach-older"]),
            route_kind(RouteKind::Tcp, "tcproute-attach-older", "tcp-multi-route-attach-gateway", yes("Accepted", "Accepted")),
            route_kind(RouteKind::Tcp, "tcproute-attach-newer", "tcp-multi-route-attach-gateway", yes("Accepted", "Accepted")),
            listeners("tcp-multi-route-attach-gateway", &[l("tcp", &["TCPRoute"], 2, &[yes("Accepted", "Accepted")])]),
        ],
        extras: &[Extra::OnlyBackend {
            target: listener("tcp-multi-route-attach-gateway", "tcp"),
            proto: Proto::Tcp,
            backend: "tcp-attach-backend-1",
            requests: 100,
        }],
        ..NONE
    },
    UpstreamTest {
        short_name: "TCPRouteParentRefAttachAll",
        go_file: "tcproute-parentref-attach-all.go",
        manifests: &["tcproute-parentref-attach-all.yaml"],
        features: &["Gateway", "TCPRoute"],
        targets: &[
            listener("tcp-attach-all-gateway", "one"),
            listener("tcp-attach-all-gateway", "two"),
            listener("tcp-attach-all-gateway", "three"),
            listener("tcp-attach-all-gateway", "four"),
        ],
        checks: &[accepted_parent!(RouteKind::Tcp, "tcp-route-attach-all", "tcp-attach-all-gateway")],
        extras: &[Extra::Case { line: 88, case: r#"{"Backend": "tcp-echo-attach-all", "Namespace": "gateway-conformance-infra"}"# }],
        ..NONE
    },
    UpstreamTest {
        short_name: "TCPRouteParentRefPortAndSectionName",
        go_file: "tcproute-parentref-port-and-section-name.go",
        manifests: &["tcproute-parentref-port-and-section-name.yaml"],
        features: &["Gateway", "TCPRoute"],
        checks: &[
            accepted_parent!(RouteKind::Tcp, "tcp-route-by-port", "tcp-multi-listener-gateway"),
            accepted_parent!(RouteKind::Tcp, "tcp-route-by-section", "tcp-multi-listener-gateway"),
            accepted_parent!(RouteKind::Tcp, "tcp-route-by-section-and-port", "tcp-multi-listener-gateway"),
        ],
        extras: &[
            Extra::CaseTo {
                line: 82,
                case: r#"{"Backend": "tcp-echo-one", "Namespace": "gateway-conformance-infra"}"#,
                kind: CaseKind::Tcp,
                target: listener("tcp-multi-listener-gateway", "one"),
            },
            Extra::CaseTo {
                line: 82,
                case: r#"{"Backend": "tcp-echo-two", "Namespace": "gateway-conformance-infra"}"#,
                kind: CaseKind::Tcp,
                target: listener("tcp-multi-listener-gateway", "two"),
            },
            Extra::CaseTo {
                line: 82,
                case: r#"{"Backend": "tcp-echo-three", "Namespace": "gateway-conformance-infra"}"#,
                kind: CaseKind::Tcp,
                target: listener("tcp-multi-listener-gateway", "three"),
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "TCPRouteReferenceGrant",
        go_file: "tcproute-reference-grant.go",
        manifests: &["tcproute-reference-grant.yaml"],
        features: &["Gateway", "TCPRoute", "ReferenceGrant"],
        targets: &[listener("tcp-reference-grant-gateway", "tcp")],
        checks: &[accepted_kind("tcp-reference-grant-gateway", RouteKind::Tcp, &["tcp-reference-grant"])],
        mutations: &[(
            81,
            Mutation::Delete { kind: "ReferenceGrant", namespace: "gateway-conformance-web-backend", name: "tcp-reference-grant" },
        )],
        extras: &[Extra::CheckAt {
            line: 89,
            check: route_kind(
                RouteKind::Tcp,
                "tcp-reference-grant",
                "tcp-reference-grant-gateway",
                no("ResolvedRefs", "RefNotPermitted"),
            ),
        }],
        ..NONE
    },
    UpstreamTest {
        short_name: "TCPRouteWeightedRouting",
        go_file: "tcproute-weighted-routing.go",
        manifests: &["tcproute-weighted-routing.yaml"],
        features: &["Gateway", "TCPRoute"],
        checks: &[accepted_kind("tcp-weighted-gateway", RouteKind::Tcp, &["tcp-weighted-route"])],
        extras: &[Extra::Weights {
            target: listener("tcp-weighted-gateway", "tcp"),
            proto: Proto::Tcp,
            weights: &[("tcp-backend-v1", 0.7), ("tcp-backend-v2", 0.3), ("tcp-backend-v3", 0.0)],
        }],
        ..NONE
    },
    // ---------------------------------------------------------------- TLSRoute
    UpstreamTest {
        short_name: "TLSRouteHostnameIntersection",
        go_file: "tlsroute-hostname-intersection.go",
        manifests: &["tlsroute-hostname-intersection.yaml"],
        features: &["Gateway", "TLSRoute"],
        // HTTPS through the passthrough listener to the tls-backend pods, trusting their
        // certificate, with the Host as server name.
        overrides: &[
            (Select::Lines(60, 79), &[passthrough_https("gw-tlsroute-exact-hostname-x-1")]),
            (Select::Lines(80, 117), &[passthrough_https("gw-tlsroute-more-specific-wc-hostname-x-2")]),
            (Select::Lines(118, 155), &[passthrough_https("gw-tlsroute-less-specific-wc-hostname-x-3")]),
            (Select::Lines(156, 193), &[passthrough_https("gw-tlsroute-empty-hostname-x-4")]),
        ],
        checks: &[
            tls_accepted("gw-tlsroute-exact-hostname-x-1", &["tlsroute-more-specific-wc-hostname-x-1"]),
            tls_resolved("tlsroute-more-specific-wc-hostname-x-1", "gw-tlsroute-exact-hostname-x-1"),
            tls_accepted(
                "gw-tlsroute-more-specific-wc-hostname-x-2",
                &["tlsroute-exact-hostname-x-2", "tlsroute-less-specific-wc-hostname-x-2"],
            ),
            tls_resolved("tlsroute-exact-hostname-x-2", "gw-tlsroute-more-specific-wc-hostname-x-2"),
            tls_resolved("tlsroute-less-specific-wc-hostname-x-2", "gw-tlsroute-more-specific-wc-hostname-x-2"),
            tls_accepted(
                "gw-tlsroute-less-specific-wc-hostname-x-3",
                &["tlsroute-exact-hostname-x-3", "tlsroute-more-specific-wc-hostname-x-3"],
            ),
            tls_resolved("tlsroute-exact-hostname-x-3", "gw-tlsroute-less-specific-wc-hostname-x-3"),
            tls_resolved("tlsroute-more-specific-wc-hostname-x-3", "gw-tlsroute-less-specific-wc-hostname-x-3"),
            tls_accepted("gw-tlsroute-empty-hostname-x-4", &["tlsroute-exact-hostname-x-4", "tlsroute-less-specific-wc-hostname-x-4"]),
            tls_resolved("tlsroute-exact-hostname-x-4", "gw-tlsroute-empty-hostname-x-4"),
            tls_resolved("tlsroute-less-specific-wc-hostname-x-4", "gw-tlsroute-empty-hostname-x-4"),
        ],
        extras: &[
            Extra::Rejected { line: 78, target: gw("gw-tlsroute-exact-hostname-x-1"), server_name: "non.matching.com" },
            Extra::Rejected {
                line: 116,
                target: gw("gw-tlsroute-more-specific-wc-hostname-x-2"),
                server_name: "non.matching.com",
            },
            Extra::Rejected {
                line: 154,
                target: gw("gw-tlsroute-less-specific-wc-hostname-x-3"),
                server_name: "non.matching.com",
            },
            Extra::Rejected { line: 192, target: gw("gw-tlsroute-empty-hostname-x-4"), server_name: "non.matching.org" },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteInvalidBackendRefNonexistent",
        go_file: "tlsroute-invalid-backendref-nonexistent.go",
        manifests: &["tlsroute-invalid-backendref-nonexistent.yaml"],
        features: &["Gateway", "TLSRoute"],
        checks: &[
            tls_accepted("gateway-tlsroute-invalid-backend-ref-nonexistent", &["invalid-backend-ref-nonexistent"]),
            route_kind(
                RouteKind::Tls,
                "invalid-backend-ref-nonexistent",
                "gateway-tlsroute-invalid-backend-ref-nonexistent",
                no("ResolvedRefs", "BackendNotFound"),
            ),
        ],
        // serverStr is the route's hostname.
        extras: &[Extra::Rejected {
            line: 69,
            target: gw("gateway-tlsroute-invalid-backend-ref-nonexistent"),
            server_name: "example.com",
        }],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteInvalidBackendRefUnknownKind",
        go_file: "tlsroute-invalid-backendref-unknown-kind.go",
        manifests: &["tlsroute-invalid-backendref-unknown-kind.yaml"],
        features: &["Gateway", "TLSRoute"],
        checks: &[
            tls_accepted("gateway-tlsroute-invalid-backend-ref-unknown-kind", &["invalid-backend-ref-unknown-kind"]),
            route_kind(
                RouteKind::Tls,
                "invalid-backend-ref-unknown-kind",
                "gateway-tlsroute-invalid-backend-ref-unknown-kind",
                no("ResolvedRefs", "InvalidKind"),
            ),
        ],
        extras: &[Extra::Rejected {
            line: 69,
            target: gw("gateway-tlsroute-invalid-backend-ref-unknown-kind"),
            server_name: "example.com",
        }],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteInvalidNoMatchingListenerHostname",
        go_file: "tlsroute-invalid-no-matching-listener-hostname.go",
        manifests: &["tlsroute-invalid-no-matching-listener-hostname.yaml"],
        features: &["Gateway", "TLSRoute"],
        checks: &[
            route_kind(
                RouteKind::Tls,
                "tlsroute-hostname-mismatch-1",
                "gateway-tls-exact-hostname",
                no("Accepted", "NoMatchingListenerHostname"),
            ),
            route_kind(
                RouteKind::Tls,
                "tlsroute-hostname-mismatch-2",
                "gateway-tls-wildcard-hostname",
                no("Accepted", "NoMatchingListenerHostname"),
            ),
            no_accepted_parents_kind(RouteKind::Tls, "tlsroute-hostname-mismatch-1"),
            no_accepted_parents_kind(RouteKind::Tls, "tlsroute-hostname-mismatch-2"),
            zero_routes("gateway-tls-exact-hostname"),
            zero_routes("gateway-tls-wildcard-hostname"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteInvalidNoMatchingListener",
        go_file: "tlsroute-invalid-no-matching-listener.go",
        manifests: &["tlsroute-invalid-no-matching-listener.yaml"],
        features: &["Gateway", "TLSRoute"],
        checks: &[
            route_kind(
                RouteKind::Tls,
                "tlsroute-not-allowed-protocol-http",
                "gateway-tlsroute-http-only",
                no("Accepted", "NotAllowedByListeners"),
            ),
            route_kind(
                RouteKind::Tls,
                "tlsroute-not-allowed-protocol-https",
                "gateway-tlsroute-https-only",
                no("Accepted", "NotAllowedByListeners"),
            ),
            route_kind(
                RouteKind::Tls,
                "tlsroute-no-matching-section-name",
                "gateway-tlsroute-tls-passthrough-only",
                no("Accepted", "NoMatchingParent"),
            ),
            no_accepted_parents_kind(RouteKind::Tls, "tlsroute-not-allowed-protocol-http"),
            no_accepted_parents_kind(RouteKind::Tls, "tlsroute-not-allowed-protocol-https"),
            no_accepted_parents_kind(RouteKind::Tls, "tlsroute-no-matching-section-name"),
            zero_routes("gateway-tlsroute-http-only"),
            zero_routes("gateway-tlsroute-https-only"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteInvalidReferenceGrant",
        go_file: "tlsroute-invalid-reference-grant.go",
        manifests: &["tlsroute-invalid-reference-grant.yaml"],
        features: &["Gateway", "TLSRoute", "ReferenceGrant"],
        checks: &[
            tls_accepted("gateway-tlsroute-referencegrant", &["gateway-conformance-infra-test"]),
            route_kind(
                RouteKind::Tls,
                "gateway-conformance-infra-test",
                "gateway-tlsroute-referencegrant",
                no("ResolvedRefs", "RefNotPermitted"),
            ),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteListenerMixedTerminationNotSupported",
        go_file: "tlsroute-listener-mixed-termination-not-supported.go",
        manifests: &["tlsroute-listener-mixed-termination-not-supported.yaml"],
        features: &["Gateway", "TLSRoute", "TLSRouteModeTerminate"],
        skipped_when: Some("TLSRouteModeMixed"),
        checks: &[listeners(
            "gateway-tlsroute-mixed-termination-not-supported",
            &[
                l("tls-terminate", &[], 0, &[no("Accepted", "ProtocolConflict")]),
                l("tls-passthrough", &[], 0, &[no("Accepted", "ProtocolConflict")]),
            ],
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteListenerPassthroughSupportedKinds",
        go_file: "tlsroute-listener-passthrough-supported-kinds.go",
        manifests: &["tlsroute-listener-passthrough-supported-kinds.yaml"],
        features: &["Gateway", "TLSRoute"],
        checks: &[listeners(
            "gateway-tlsroute-passthrough-supported-kind",
            &[l("tls-passthrough", &["TLSRoute"], 0, &[no("ResolvedRefs", "InvalidRouteKinds")])],
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteListenerTerminateNotSupported",
        go_file: "tlsroute-listener-terminate-not-supported.go",
        manifests: &["tlsroute-listener-terminate-not-supported.yaml"],
        features: &["Gateway", "TLSRoute"],
        skipped_when: Some("TLSRouteModeTerminate"),
        checks: &[listeners(
            "gateway-tlsroute-terminate-unsupported",
            &[l("tls-terminate", &[], 0, &[no("Accepted", "UnsupportedValue")])],
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteListenerTerminateSupportedKinds",
        go_file: "tlsroute-listener-terminate-supported-kinds.go",
        manifests: &["tlsroute-listener-terminate-supported-kinds.yaml"],
        features: &["Gateway", "TLSRoute", "TLSRouteModeTerminate"],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteMixedTerminationSameNamespace",
        go_file: "tlsroute-mixed-termination-same-namespace.go",
        manifests: &["tlsroute-mixed-termination-same-namespace.yaml"],
        features: &["Gateway", "TLSRoute", "TLSRouteModeTerminate", "TLSRouteModeMixed"],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteSimpleSameNamespace",
        go_file: "tlsroute-simple-same-namespace.go",
        manifests: &["tlsroute-simple-same-namespace.yaml"],
        features: &["Gateway", "TLSRoute"],
        // serverStr is the route's only hostname; the CA is tls-checks-ca-certificate's.
        targets: &[Target {
            gateway: "gateway-tlsroute",
            listener: None,
            tls: Tls::Ca { server_name: "abc.example.com", ca: "tls-checks-ca-certificate" },
        }],
        checks: &[tls_accepted("gateway-tlsroute", &["gateway-conformance-infra-test"])],
        extras: &[Extra::Case {
            line: 67,
            case: r#"{"Backend": "tcp-backend", "BackendIsTLS": true, "Hostname": "abc.example.com",
                "Namespace": "gateway-conformance-infra"}"#,
        }],
        ..NONE
    },
    UpstreamTest {
        short_name: "TLSRouteTerminateSimpleSameNamespace",
        go_file: "tlsroute-terminate-simple-same-namespace.go",
        manifests: &["tlsroute-terminate-simple-same-namespace.yaml"],
        features: &["Gateway", "TLSRoute", "TLSRouteModeTerminate"],
        ..NONE
    },
    // ---------------------------------------------------------------- UDPRoute
    UpstreamTest {
        short_name: "UDPRouteInvalidBackendRefNonexistent",
        go_file: "udproute-invalid-backendref-nonexistent.go",
        manifests: &["udproute-invalid-backendref-nonexistent.yaml"],
        features: &["Gateway", "UDPRoute"],
        checks: &[route_kind(
            RouteKind::Udp,
            "udp-route-invalid-backend-ref-nonexistent",
            "udp-gateway-invalid-backend",
            no("ResolvedRefs", "BackendNotFound"),
        )],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRouteInvalidCrossNamespaceBackendRef",
        go_file: "udproute-invalid-cross-namespace-backend-ref.go",
        manifests: &["udproute-invalid-cross-namespace-backend-ref.yaml"],
        features: &["Gateway", "UDPRoute", "ReferenceGrant"],
        checks: &[
            accepted_kind(
                "udp-gateway-invalid-cross-namespace-backend-ref",
                RouteKind::Udp,
                &["udp-route-invalid-cross-namespace-backend-ref"],
            ),
            route_kind(
                RouteKind::Udp,
                "udp-route-invalid-cross-namespace-backend-ref",
                "udp-gateway-invalid-cross-namespace-backend-ref",
                no("ResolvedRefs", "RefNotPermitted"),
            ),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRouteMultipleRoutesAttachment",
        go_file: "udproute-multiple-routes-attachment.go",
        manifests: &["udproute-multiple-routes-attachment.yaml"],
        features: &["Gateway", "UDPRoute"],
        setup: &[Setup::Create {
            doc: r#"{"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "UDPRoute",
                "metadata": {"name": "udproute-attach-newer", "namespace": "gateway-conformance-infra", "creationTimestamp": "2026-01-01T00:00:01Z"},
                "spec": {"parentRefs": [{"name": "udp-multi-route-attach-gateway", "sectionName": "udp"}],
                    "rules": [{"backendRefs": [{"name": "udp-attach-backend-2", "port": 8080}]}]}}"#,
        }],
        checks: &[
            accepted_kind("udp-multi-route-attach-gateway", RouteKind::Udp, &["udproute-attach-older"]),
            route_kind(RouteKind::Udp, "udproute-attach-older", "udp-multi-route-attach-gateway", yes("Accepted", "Accepted")),
            route_kind(RouteKind::Udp, "udproute-attach-newer", "udp-multi-route-attach-gateway", yes("Accepted", "Accepted")),
            listeners("udp-multi-route-attach-gateway", &[l("udp", &["UDPRoute"], 2, &[yes("Accepted", "Accepted")])]),
        ],
        extras: &[Extra::OnlyBackend {
            target: listener("udp-multi-route-attach-gateway", "udp"),
            proto: Proto::Udp,
            backend: "udp-attach-backend-1",
            requests: 20,
        }],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRouteNotAllowedByListeners",
        go_file: "udproute-not-allowed-by-listeners.go",
        manifests: &["udproute-not-allowed-by-listeners.yaml"],
        features: &["Gateway", "UDPRoute"],
        // The Go test returns early unless TLSRoute is claimed too.
        checks: &[
            route_kind(
                RouteKind::Udp,
                "udproute-not-allowed-by-listeners",
                "udproute-tls-only-gateway",
                no("Accepted", "NotAllowedByListeners"),
            ),
            zero_routes("udproute-tls-only-gateway"),
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRouteParentRefAttachAllListeners",
        go_file: "udproute-parentref-attach-all-listeners.go",
        manifests: &["udproute-parentref-attach-all-listeners.yaml"],
        features: &["Gateway", "UDPRoute"],
        targets: &[
            listener("udp-attach-all-listeners-gateway", "udp-1"),
            listener("udp-attach-all-listeners-gateway", "udp-2"),
            listener("udp-attach-all-listeners-gateway", "udp-3"),
        ],
        checks: &[
            accepted_parent!(RouteKind::Udp, "udp-route-attach-all", "udp-attach-all-listeners-gateway"),
            listeners(
                "udp-attach-all-listeners-gateway",
                &[
                    l("udp-1", &["UDPRoute"], 1, LISTENER_ACCEPTED_RESOLVED),
                    l("udp-2", &["UDPRoute"], 1, LISTENER_ACCEPTED_RESOLVED),
                    l("udp-3", &["UDPRoute"], 1, LISTENER_ACCEPTED_RESOLVED),
                ],
            ),
        ],
        extras: &[Extra::Case {
            line: 129,
            case: r#"{"Service": "udp-echo-attach-all", "Namespace": "gateway-conformance-infra"}"#,
        }],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRouteParentRefPortAndSectionName",
        go_file: "udproute-parentref-port-and-section-name.go",
        manifests: &["udproute-parentref-port-and-section-name.yaml"],
        features: &["Gateway", "UDPRoute"],
        checks: &[
            accepted_parent!(RouteKind::Udp, "udp-route-by-port", "udp-multi-listener-gateway"),
            accepted_parent!(RouteKind::Udp, "udp-route-by-section", "udp-multi-listener-gateway"),
            accepted_parent!(RouteKind::Udp, "udp-route-by-section-and-port", "udp-multi-listener-gateway"),
        ],
        extras: &[
            Extra::CaseTo {
                line: 115,
                case: r#"{"Service": "udp-echo-by-port", "Namespace": "gateway-conformance-infra"}"#,
                kind: CaseKind::Udp,
                target: listener("udp-multi-listener-gateway", "by-port"),
            },
            Extra::CaseTo {
                line: 115,
                case: r#"{"Service": "udp-echo-by-section", "Namespace": "gateway-conformance-infra"}"#,
                kind: CaseKind::Udp,
                target: listener("udp-multi-listener-gateway", "by-section"),
            },
            Extra::CaseTo {
                line: 115,
                case: r#"{"Service": "udp-echo-by-section-and-port", "Namespace": "gateway-conformance-infra"}"#,
                kind: CaseKind::Udp,
                target: listener("udp-multi-listener-gateway", "by-section-and-port"),
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRouteReferenceGrant",
        go_file: "udproute-reference-grant.go",
        manifests: &["udproute-reference-grant.yaml"],
        features: &["Gateway", "UDPRoute", "ReferenceGrant"],
        checks: &[
            accepted_kind("udp-gateway-reference-grant", RouteKind::Udp, &["udp-route-reference-grant"]),
            route_kind(
                RouteKind::Udp,
                "udp-route-reference-grant",
                "udp-gateway-reference-grant",
                yes("ResolvedRefs", "ResolvedRefs"),
            ),
        ],
        mutations: &[(
            80,
            Mutation::Delete { kind: "ReferenceGrant", namespace: "gateway-conformance-app-backend", name: "udp-reference-grant" },
        )],
        extras: &[
            // udp.ExpectEchoResponse: any answer.
            Extra::CaseTo {
                line: 69,
                case: r#"{"Service": "", "Namespace": ""}"#,
                kind: CaseKind::Udp,
                target: gw("udp-gateway-reference-grant"),
            },
            Extra::CheckAt {
                line: 88,
                check: route_kind(
                    RouteKind::Udp,
                    "udp-route-reference-grant",
                    "udp-gateway-reference-grant",
                    no("ResolvedRefs", "RefNotPermitted"),
                ),
            },
        ],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRoute",
        go_file: "udproute-simple.go",
        manifests: &["udproute-simple.yaml"],
        features: &["UDPRoute", "Gateway"],
        checks: &[accepted_kind("udp-gateway", RouteKind::Udp, &["udp-coredns"])],
        extras: &[Extra::Dns { target: gw("udp-gateway"), name: "foo.bar.com." }],
        ..NONE
    },
    UpstreamTest {
        short_name: "UDPRouteWeightedRouting",
        go_file: "udproute-weighted-routing.go",
        manifests: &["udproute-weighted-routing.yaml"],
        features: &["Gateway", "UDPRoute"],
        checks: &[accepted_kind("udp-weighted-gateway", RouteKind::Udp, &["udp-weighted-route"])],
        extras: &[Extra::Weights {
            target: listener("udp-weighted-gateway", "udp"),
            proto: Proto::Udp,
            weights: &[("udp-backend-v1", 0.7), ("udp-backend-v2", 0.3), ("udp-backend-v3", 0.0)],
        }],
        ..NONE
    },
];

/// `gateway-name-maximum-length-` and `a` up to 253 characters.
const GATEWAY_NAME_MAXIMUM_LENGTH: &str = concat!(
    "gateway-name-maximum-length-",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
);

/// The listener of `GatewayInvalidTLSConfiguration`'s Gateways.
const INVALID_CERT_LISTENER: &[ListenerExpect] =
    &[l("https", HTTP_KINDS, 0, &[no("ResolvedRefs", "InvalidCertificateRef")])];
/// The listener of `GatewaySecret*ReferenceGrant` Gateways refused the Secret.
const REF_NOT_PERMITTED_LISTENER: &[ListenerExpect] =
    &[l("https", HTTP_KINDS, 0, &[no("ResolvedRefs", "RefNotPermitted")])];
/// The listener of `GatewaySecretReferenceGrant*` Gateways granted the Secret.
const GRANTED_SECRET_LISTENER: &[ListenerExpect] =
    &[l("https", HTTP_KINDS, 0, &[yes("Programmed", "Programmed"), yes("ResolvedRefs", "")])];
