//! The command line: `sluice run | check | echo | demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sluice: a Kubernetes ingress controller and load balancer.
///
/// Sluice serves Kubernetes `Ingress` resources: it routes HTTP and HTTPS requests by host
/// and path to the ready endpoints of Services, terminating TLS with the certificate chosen
/// by SNI. Its configuration is ordinary Kubernetes YAML, read from files or directories.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, propagate_version = true)]
pub struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SLUICE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Ingresses from Kubernetes manifests.
    ///
    /// Example: sluice run --manifests ./k8s/ --http 0.0.0.0:80 --https 0.0.0.0:443
    ///
    /// Changes to the manifests apply within milliseconds (files are watched; SIGHUP also
    /// re-reads them). A file that stops parsing keeps serving its last good objects.
    /// SIGTERM or SIGINT stops accepting and drains requests in flight (--drain-timeout).
    Run(Box<RunArgs>),
    /// Validate manifests the way `run` would, without serving.
    ///
    /// Example: sluice check --manifests ./k8s/        (or: sluice check --kubernetes)
    ///
    /// Prints every problem (resource, field, reason) and exits 1 if there is any; else prints
    /// a one-line summary and exits 0. Use it in CI before applying manifests.
    Check(SourceArgs),
    /// Run a test backend that answers every request with JSON describing it.
    ///
    /// Example: sluice echo --listen 127.0.0.1:3000 --name web
    ///
    /// The answer is shaped as the Gateway API conformance suite's echo-basic one: path with
    /// query, host, method, protocol, headers (name → values), httpPort, namespace, service,
    /// pod, plus body_bytes; WebSocket messages are echoed back. As echo-basic: `/health`,
    /// `/status/NNN`, `/retry/`, query `delay=1s`, header `X-Echo-Set-Header: Name:value`.
    /// Query parameters: `status=N` answers with that status, `sleep_ms=N` waits first,
    /// `bytes=N` sends N bytes instead of JSON.
    Echo(EchoArgs),
    /// Show the addresses each Service and Ingress is served on, from a running Sluice.
    ///
    /// Example: sluice status --admin 127.0.0.1:10254
    ///
    /// Reads the admin listener's /status (the Kubernetes `status.loadBalancer` shape) and
    /// prints it as a table.
    Status(StatusArgs),
    /// Show the routing table a running Sluice serves (from the admin listener's /config):
    /// host, path, match type, Ingress, backend and its endpoints; L4 listeners;
    /// certificates by SNI; current problems.
    ///
    /// Example: sluice routes --admin 127.0.0.1:10254
    Routes(StatusArgs),

    /// Try Sluice: start echo backends and serve the bundled demo manifests.
    ///
    /// Example: sluice demo     (or scripts/demo from the repository)
    ///
    /// Listens on 127.0.0.1:8080 (HTTP) and 127.0.0.1:8443 (HTTPS) and prints curl
    /// commands to try.
    Demo(DemoArgs),

    /// Print a shell completion script.
    ///
    /// Example: sluice completions bash > /etc/bash_completion.d/sluice
    ///          sluice completions zsh > "${fpath[1]}/_sluice"
    ///          sluice completions fish > ~/.config/fish/completions/sluice.fish
    Completions(CompletionsArgs),

    /// Print the version and build information (commit, target, profile).
    ///
    /// Example: sluice version
    Version,
}

/// Options of `sluice completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Where configuration comes from and which Ingresses are ours.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// A manifest file or directory (read recursively: *.yaml, *.yml, *.json; multi-document
    /// YAML and `kind: List` are understood). Repeat for several.
    #[arg(long = "manifests", value_name = "PATH", required_unless_present = "kubernetes")]
    pub manifests: Vec<PathBuf>,

    /// Read configuration from the Kubernetes API instead of files: watch IngressClasses,
    /// Ingresses, Services, EndpointSlices, Secrets (keeping those with certificates or
    /// trust anchors), ConfigMaps, Namespaces and the Gateway API kinds whose CRDs are
    /// installed (ready once all are listed).
    #[arg(long, conflicts_with = "manifests")]
    pub kubernetes: bool,

    /// Kubeconfig for --kubernetes (default: $KUBECONFIG, ~/.kube/config, else the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    pub kubeconfig: Option<PathBuf>,

    /// With --kubernetes, watch only this namespace (IngressClasses, Namespaces and
    /// GatewayClasses stay cluster-wide).
    #[arg(long, value_name = "NAMESPACE", requires = "kubernetes")]
    pub watch_namespace: Option<String>,

    /// Serve Ingresses of this class: `spec.ingressClassName` equal to it (or naming an
    /// IngressClass whose controller is --controller-class), or the legacy
    /// `kubernetes.io/ingress.class` annotation equal to it.
    /// To take over from ingress-nginx: --ingress-class nginx --controller-class k8s.io/ingress-nginx
    #[arg(long, value_name = "NAME", default_value = "sluice", env = "SLUICE_INGRESS_CLASS")]
    pub ingress_class: String,

    /// IngressClasses whose `spec.controller` is this are ours (ingress-nginx's is
    /// `k8s.io/ingress-nginx`).
    #[arg(long, value_name = "NAME", default_value = sluice_translate::CONTROLLER_NAME)]
    pub controller_class: String,

    /// Where ingress-nginx annotations are read from: `<prefix>/rewrite-target` and so on.
    /// Each annotation under it is honoured with ingress-nginx's meaning, or reported as
    /// ignored (served without it) or refused (the Ingress is not served); `sluice check`
    /// lists which.
    #[arg(long, value_name = "PREFIX", default_value = sluice_translate::DEFAULT_ANNOTATIONS_PREFIX)]
    pub annotations_prefix: String,

    /// A ConfigMap (NAMESPACE/NAME, from the manifests or the cluster, followed live) with
    /// ingress-nginx's global settings under its key names: `ssl-redirect`, `hsts*`,
    /// `http-redirect-code`, `proxy-*` timeouts, body size and retries,
    /// `use-forwarded-headers`, `forwarded-for-header`, `compute-full-forwarded-for`,
    /// `proxy-real-ip-cidr`, `enable-real-ip`, `use-proxy-protocol`. Keys Sluice does not
    /// honour are named in warnings (`sluice check`).
    /// To take over from ingress-nginx: --configmap ingress-nginx/ingress-nginx-controller
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub configmap: Option<String>,

    /// A Service (NAMESPACE/NAME, its first port) that answers the statuses listed in
    /// `custom-http-errors` (ConfigMap key or annotation) for Ingresses without their own
    /// `default-backend` annotation: it is asked `/` with `X-Code`, `X-Original-URI` and the
    /// other headers ingress-nginx sends, and its answer is returned.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub default_backend_service: Option<String>,

    /// Honour the `ssl-passthrough` annotation, as ingress-nginx's flag of the same name:
    /// TLS connections whose SNI is such an Ingress's host are relayed untouched to the
    /// Service of its `/` path, which terminates TLS itself. Without it the annotation is
    /// ignored with a warning.
    #[arg(long)]
    pub enable_ssl_passthrough: bool,

    /// Serve Ingresses that ask for a web application firewall (`enable-modsecurity`,
    /// `enable-owasp-core-rules`, `modsecurity-snippet`) without one, with a warning.
    /// Sluice has no WAF built in: without this flag such Ingresses are rejected, never
    /// served with less protection than they ask for.
    #[arg(long)]
    pub allow_unenforced_waf: bool,

    /// How long to wait for a backend's response headers (and between reads of its body)
    /// before answering 504, unless an Ingress sets `proxy-read-timeout`.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Also serve Ingresses that name no class at all. Without this flag they are served
    /// only when one of our IngressClasses is annotated as the cluster default.
    #[arg(long)]
    pub watch_ingress_without_class: bool,

    /// A `kubernetes.io/tls` Secret (NAMESPACE/NAME) whose certificate is presented for
    /// unknown SNI. Without it, a self-signed certificate is generated at start-up.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub default_tls_secret: Option<String>,

    /// Addresses for Services of `type: LoadBalancer` (a CIDR like 192.0.2.0/28, or a range
    /// FIRST-LAST). Repeatable. Each such Service gets its own address (or the one it asks
    /// for in `spec.loadBalancerIP` / annotation `sluice.dev/load-balancer-ips` /
    /// `metallb.io/loadBalancerIPs`), and all TCP/UDP traffic to its ports there is
    /// forwarded to its ready endpoints. MetalLB's IPAddressPools (from the manifests or the
    /// cluster) are pools too, announced as their L2Advertisements and BGPAdvertisements say.
    /// Without any pool, layer-4 load balancing is off.
    #[arg(long = "lb-pool", value_name = "CIDR|FIRST-LAST")]
    pub lb_pools: Vec<sluice_translate::AddressPool>,

    /// Gateway API: GatewayClasses whose `spec.controllerName` is this are ours. Each Gateway
    /// of such a class gets its own address from the --lb-pool pools (or the one in its
    /// `spec.addresses`), and its HTTP and HTTPS listeners are served there with the
    /// HTTPRoutes attached to them; status is reported in /status (and written to the
    /// cluster with --kubernetes).
    #[arg(long, value_name = "NAME", default_value = sluice_translate::GATEWAY_CONTROLLER)]
    pub gateway_controller: String,

    /// The node this replica runs on (default: $NODE_NAME, else the host name). Advertisements'
    /// and BGPPeers' `nodeSelectors` match its Node object's labels; under
    /// `externalTrafficPolicy: Local` only endpoints on it serve, and only nodes with local
    /// endpoints hold or announce the address.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// Where traffic goes: `endpoints` (the Services' pods; Sluice runs in the cluster) or
    /// `nodeport` (the Service port's nodePort on every Ready node, from the Node objects: a
    /// Sluice outside the cluster, in front of its nodes, where pod addresses are not routable).
    #[arg(long, value_enum, value_name = "MODE", default_value = "endpoints")]
    pub upstream_mode: UpstreamModeArg,
}

/// `--upstream-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamModeArg {
    /// The Services' ready endpoints.
    Endpoints,
    /// The Services' NodePorts on the Ready nodes.
    Nodeport,
}

impl SourceArgs {
    /// `--node-name`, else the host name.
    pub fn node(&self) -> String {
        self.node_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
        })
    }
}

/// Options of `sluice run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Configuration source.
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub serve: ServeArgs,

    /// Where the addresses given to LoadBalancer Services are recorded, so that each Service
    /// keeps its address across restarts (used with --lb-pool; with --kubernetes the Services'
    /// status is the record).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/sluice")]
    pub state_dir: PathBuf,

    /// With --kubernetes: elect a leader with a coordination.k8s.io Lease; every replica
    /// serves traffic, only the leader writes status and Events.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// With --kubernetes: each replica renews a Lease (`sluice-node-<node>`, in the
    /// leader-election namespace) this often divided by three; a replica whose Lease is not
    /// renewed for this long is taken for dead, and another node takes over the addresses
    /// it held (gratuitous ARP / unsolicited NA). A shorter time moves addresses sooner after
    /// a crash; a graceful stop hands them over at once.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub member_lease_duration: Duration,

    /// Name of the leader-election Lease.
    #[arg(long, value_name = "NAME", default_value = "sluice-leader")]
    pub lease_name: String,

    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// With --kubernetes: report the addresses of this Service (NAMESPACE/NAME, usually the
    /// LoadBalancer in front of Sluice) as every served Ingress's status. --publish-address
    /// takes precedence.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub publish_service: Option<String>,

    /// Automatic HTTPS.
    #[command(flatten)]
    pub acme: AcmeArgs,
}

/// Automatic HTTPS: certificates Sluice obtains from an ACME CA for Ingresses annotated
/// `kubernetes.io/tls-acme: "true"` (every host of each `spec.tls` entry, stored in its
/// `secretName`), renewed at two-thirds of their lifetime.
///
/// Example (Let's Encrypt staging): sluice run --kubernetes --acme-email ops@example.com
///   --acme-directory https://acme-staging-v02.api.letsencrypt.org/directory
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Automatic HTTPS (ACME)")]
pub struct AcmeArgs {
    /// The ACME CA's directory URL [default: Let's Encrypt,
    /// https://acme-v02.api.letsencrypt.org/directory]. With --manifests, automatic HTTPS is
    /// on only when this or --acme-email is given (with --kubernetes, always).
    #[arg(long, value_name = "URL")]
    pub acme_directory: Option<String>,

    /// Contact e-mail for the ACME account (the CA's expiry and policy notices).
    #[arg(long, value_name = "EMAIL")]
    pub acme_email: Option<String>,

    /// PEM file of extra CA certificates to trust for the ACME directory (a private CA, or a
    /// test CA such as pebble), besides the system's.
    #[arg(long, value_name = "PATH")]
    pub acme_ca_bundle: Option<PathBuf>,

    /// External account binding key id, for CAs that require one (ZeroSSL, Google, …).
    #[arg(long, value_name = "KID", requires = "acme_eab_hmac")]
    pub acme_eab_kid: Option<String>,

    /// External account binding HMAC key (base64url, as the CA hands it out).
    #[arg(long, value_name = "KEY", requires = "acme_eab_kid")]
    pub acme_eab_hmac: Option<String>,

    /// How the CA validates a host: http-01 (a request to port 80, answered before any
    /// routing or redirect) or tls-alpn-01 (a TLS handshake on port 443). Wildcard hosts
    /// always use DNS-01 (--acme-dns-rfc2136).
    #[arg(long, value_enum, value_name = "CHALLENGE", default_value_t = AcmeChallengeArg::Http01)]
    pub acme_challenge: AcmeChallengeArg,

    /// DNS server (IP:PORT) accepting RFC 2136 dynamic updates for DNS-01 challenges, which
    /// wildcard hosts need; the zone is found by asking it for the SOA.
    #[arg(long, value_name = "IP:PORT")]
    pub acme_dns_rfc2136: Option<SocketAddr>,

    /// TSIG key signing the DNS updates: NAME:ALGORITHM:BASE64-SECRET, ALGORITHM one of
    /// hmac-sha256, hmac-sha384, hmac-sha512.
    #[arg(long, value_name = "NAME:ALGORITHM:SECRET", requires = "acme_dns_rfc2136")]
    pub acme_dns_tsig: Option<String>,

    /// Obtain the certificate of every Gateway listener that terminates TLS (its first
    /// `certificateRefs` Secret, for its hostname), not only of those whose Secret is
    /// annotated `sluice.dev/acme: "true"`.
    #[arg(long)]
    pub acme_gateways: bool,

    /// After a failed order, wait this long before the next attempt for that certificate,
    /// doubling with each failure up to 24 h (Let's Encrypt allows 5 failed validations per
    /// host an hour).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub acme_retry_min: Duration,
}

/// `--access-log` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLogArg {
    /// One JSON object per line.
    Json,
    /// ingress-nginx's log formats.
    Nginx,
    /// No access log.
    Off,
}

/// `--acme-challenge` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcmeChallengeArg {
    /// HTTP-01, on the HTTP listener.
    #[value(name = "http-01")]
    Http01,
    /// TLS-ALPN-01, on the HTTPS listener.
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
}

/// Listener and data-plane options shared by `run` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Plain HTTP listener (HTTP/1.1 and HTTP/2 with prior knowledge).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:80")]
    pub http: SocketAddr,

    /// HTTPS listener (TLS 1.2/1.3, HTTP/2 or HTTP/1.1 by ALPN, certificate by SNI).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:443")]
    pub https: SocketAddr,

    /// Access log on stdout, one line per request and per L4 connection or UDP flow: json
    /// (every field), nginx (ingress-nginx's default log-format-upstream and
    /// log-format-stream, so existing parsers keep working) or off. An Ingress can turn its
    /// own off with nginx.ingress.kubernetes.io/enable-access-log: "false".
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = AccessLogArg::Json)]
    pub access_log: AccessLogArg,

    /// Admin listener: /healthz, /readyz and /metrics (Prometheus).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:10254")]
    pub admin: SocketAddr,

    /// TLS session resumption (tickets and a session cache). Turn off only to measure full
    /// handshakes.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_session_resumption: bool,

    /// On SIGTERM/SIGINT: stop accepting, then wait this long for requests and WebSocket
    /// tunnels in flight before exiting.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// How long a client may take to send a request head, and stay idle between requests on
    /// a kept-alive HTTP/1.1 connection, before it is closed (nginx's client_header_timeout).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub client_header_timeout: Duration,

    /// How long a client may pause while sending a request body before the request is
    /// answered 408 and its backend request abandoned (nginx's client_body_timeout).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub client_body_timeout: Duration,

    /// Most client connections open at once on the HTTP and HTTPS listeners together; more
    /// are closed on accept and counted in sluice_connections_refused_total. 0: no cap.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub max_connections: usize,

    /// Most client connections open at once from one address (the TCP peer: a balancer in
    /// front counts as one client). 0: no cap.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections_per_client: usize,

    /// Count limit-rps / limit-rpm in this Redis (redis://[:PASSWORD@]HOST:PORT[/DB]) so that
    /// a limit holds across all replicas together. Each request waits at most
    /// --rate-limit-redis-timeout for it; when Redis does not answer, the replica's own
    /// counters stand in (sluice_rate_limit_redis_unavailable_total) and traffic keeps
    /// flowing. limit-connections stays per replica.
    #[arg(long, value_name = "URL")]
    pub rate_limit_redis: Option<String>,

    /// The most a request waits for the --rate-limit-redis Redis.
    #[arg(long, value_name = "DURATION", default_value = "25ms", value_parser = humantime::parse_duration)]
    pub rate_limit_redis_timeout: Duration,

    /// Worker threads serving traffic (default: one per CPU core). With 1, everything runs
    /// on a single thread (lowest overhead per request on one core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// The address (IP or DNS name) clients reach the HTTP/HTTPS listeners on, reported as
    /// every served Ingress's `status.loadBalancer.ingress`. Repeatable. Default: the --http
    /// listener's IP when it is a specific address.
    #[arg(long, value_name = "IP|HOST")]
    pub publish_address: Vec<String>,

    /// Distributed tracing (OpenTelemetry).
    #[command(flatten)]
    pub tracing: TracingArgs,
}

/// Distributed tracing: one OpenTelemetry SERVER span per request, exported over OTLP/HTTP
/// (protobuf) to a collector. A client's W3C `traceparent` is continued, else a new trace
/// starts; the backend always receives a `traceparent` naming Sluice's span as its parent.
/// With tracing on, every request takes the general path (not the faster proxy-native
/// HTTP/1.1 one).
///
/// Example: sluice run --otlp-endpoint http://otel-collector:4318 --otlp-sampling-ratio 0.1
#[derive(Debug, Clone, Default, Args)]
pub struct TracingArgs {
    /// Export a span per request to this OpenTelemetry collector's OTLP/HTTP receiver
    /// (http:// only; its base URL: spans are POSTed to <URL>/v1/traces, e.g.
    /// http://collector:4318). Exports are batched and never slow requests: when the
    /// collector falls behind, spans are dropped and counted in
    /// sluice_otlp_spans_dropped_total. Tracing is off without it.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// The share of new traces recorded, 0.0 to 1.0. Parent-based: a request whose
    /// `traceparent` says sampled is always recorded, one that says not sampled never is;
    /// this ratio decides for requests that start a trace.
    #[arg(long, value_name = "RATIO", default_value_t = 1.0, value_parser = sampling_ratio)]
    pub otlp_sampling_ratio: f64,

    /// `service.name` of the exported spans.
    #[arg(long, value_name = "NAME", default_value = "sluice")]
    pub otlp_service_name: String,
}

impl TracingArgs {
    /// What the data plane is given, when tracing is on.
    pub fn config(&self) -> Option<sluice_proxy::TracingConfig> {
        Some(sluice_proxy::TracingConfig {
            endpoint: self.otlp_endpoint.clone()?,
            sampling_ratio: self.otlp_sampling_ratio,
            service_name: self.otlp_service_name.clone(),
        })
    }
}

fn sampling_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a number from 0.0 to 1.0")),
    }
}

/// Options of `sluice echo`.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// The service name reported in every answer.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// The pod name reported in every answer (default: the listen address).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,

    /// The namespace reported in every answer.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub namespace: String,

    /// Also listen here for HTTP/2 only (prior knowledge, or HTTP/1.1 asking `Upgrade: h2c`),
    /// as echo-basic's h2c port: other requests are answered 400.
    #[arg(long, value_name = "ADDR")]
    pub h2c_listen: Option<SocketAddr>,

    /// Print `Echoing back request made to <target> to client (<peer>)` on stdout for every
    /// echoed request, as echo-basic does.
    #[arg(long)]
    pub log_requests: bool,
}

/// Options of `sluice status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The admin listener of the running Sluice.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:10254")]
    pub admin: SocketAddr,

    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `sluice demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Plain HTTP listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,

    /// HTTPS listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub https: SocketAddr,

    /// Admin listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:10254")]
    pub admin: SocketAddr,

    /// Count the demo's rate limits in this Redis, as `run --rate-limit-redis` does
    /// (`scripts/demo --with-redis` starts one and passes it).
    #[arg(long, value_name = "URL")]
    pub rate_limit_redis: Option<String>,
}
