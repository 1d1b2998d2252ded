//! `sluice demo`: a working example on loopback with nothing to set up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{DemoArgs, ServeArgs, SourceArgs};
use crate::echo::{self, EchoOptions};

/// The demo manifests, bundled so the demo runs from any directory.
const DEMO_MANIFESTS: &str = include_str!("../../../examples/demo/demo.yaml");
/// The echo backends the demo's EndpointSlices point at: (service, address).
const BACKENDS: [(&str, &str); 2] = [("web", "127.0.0.1:18081"), ("api", "127.0.0.1:18082")];
/// The UDP echo the demo's UDP LoadBalancer Service points at.
const UDP_ECHO: &str = "127.0.0.1:18083";
/// The demo's LoadBalancer pool (loopback addresses: reachable on this machine only).
const LB_POOL: &str = "127.0.77.10-127.0.77.11";
/// Hosts of the demo Ingress, covered by the generated certificate.
const HOSTS: [&str; 2] = ["shop.demo.test", "api.demo.test"];

/// Entry point of `sluice demo`.
pub fn main(args: DemoArgs) -> ExitCode {
    let dir = match write_manifests() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("sluice demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let source = SourceArgs {
        manifests: vec![dir],
        ingress_class: "sluice".into(),
        controller_class: sluice_translate::CONTROLLER_NAME.into(),
        annotations_prefix: sluice_translate::DEFAULT_ANNOTATIONS_PREFIX.into(),
        configmap: None,
        default_backend_service: None,
        enable_ssl_passthrough: false,
        allow_unenforced_waf: false,
        upstream_timeout: std::time::Duration::from_secs(60),
        watch_ingress_without_class: false,
        default_tls_secret: None,
        lb_pools: match LB_POOL.parse() {
            Ok(pool) => vec![pool],
            Err(e) => {
                eprintln!("sluice demo: {LB_POOL}: {e}");
                return ExitCode::FAILURE;
            }
        },
        gateway_controller: sluice_translate::GATEWAY_CONTROLLER.into(),
        node_name: None,
        upstream_mode: crate::cli::UpstreamModeArg::Endpoints,
        kubernetes: false,
        kubeconfig: None,
        watch_namespace: None,
    };
    let serve = ServeArgs {
        http: args.http,
        https: args.https,
        admin: args.admin,
        drain_timeout: std::time::Duration::from_secs(5),
        tls_session_resumption: true,
        client_header_timeout: std::time::Duration::from_secs(60),
        client_body_timeout: std::time::Duration::from_secs(60),
        max_connections: 65_536,
        max_connections_per_client: 0,
        rate_limit_redis: args.rate_limit_redis.clone(),
        rate_limit_redis_timeout: std::time::Duration::from_millis(25),
        workers: None,
        publish_address: Vec::new(),
        access_log: crate::cli::AccessLogArg::Json,
        tracing: crate::cli::TracingArgs::default(),
    };
    let runtime = match crate::run::runtime(None) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sluice demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        for (name, addr) in BACKENDS {
            let listen: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
            let options = EchoOptions::new(listen, name);
            tokio::spawn(async move {
                if let Err(e) = echo::serve(options).await {
                    tracing::error!(backend = %listen, error = %e, "demo backend failed");
                }
            });
        }
        let udp = tokio::net::UdpSocket::bind(UDP_ECHO).await.map_err(|e| format!("{UDP_ECHO}: {e}"))?;
        tokio::spawn(udp_echo(udp));
        crate::run::serve(&source, &serve, None, None, None, || print_try_it(&args)).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the demo manifests and a freshly generated TLS Secret into a private directory.
fn write_manifests() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("sluice-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let names: Vec<String> = HOSTS.iter().map(|h| (*h).to_owned()).collect();
    let (cert, key) = crate::default_cert::self_signed(&names)?;
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "demo-tls", "namespace": "demo"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert, "tls.key": key},
    });
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("demo.yaml", DEMO_MANIFESTS.to_owned())?;
    write("demo-tls.json", secret.to_string())?;
    Ok(dir)
}

/// Answers every datagram with itself: the UDP Service's backend.
async fn udp_echo(socket: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let _ = socket.send_to(buf.get(..n).unwrap_or_default(), from).await;
    }
}

fn print_try_it(args: &DemoArgs) {
    let (http, https) = (args.http, args.https);
    let port = https.port();
    println!(
        "\nSluice demo is serving. Try:\n\n  \
         curl -H 'Host: shop.demo.test' http://{http}/cart\n  \
         curl -H 'Host: shop.demo.test' http://{http}/api/items?page=2\n  \
         curl -H 'Host: api.demo.test' http://{http}/health\n  \
         curl --http2-prior-knowledge -H 'Host: api.demo.test' http://{http}/v1\n  \
         curl -k --resolve shop.demo.test:{port}:{ip} https://shop.demo.test:{port}/\n  \
         curl -H 'Host: unknown.test' http://{http}/      # 404: no route\n  \
         for i in 1 2 3 4 5 6 7; do curl -s -o /dev/null -w '%{{http_code}} ' -H 'Host: login.demo.test' http://{http}/; done   # limit-rpm 5: 200 x6, then 503\n  \
         curl http://{admin}/metrics\n\n\
         The layer-4 half (Services of type LoadBalancer, any TCP or UDP protocol):\n\n  \
         curl http://127.0.77.10:9000/hello                  # TCP Service demo/tcp-echo\n  \
         echo ping | nc -u -w1 127.0.77.11 9053              # UDP Service demo/udp-echo (or: socat - UDP:127.0.77.11:9053)\n\n\
         Dashboard: http://{admin}/    Status: sluice status --admin {admin}\n\nPress Ctrl-C to stop.\n",
        ip = https.ip(),
        admin = args.admin,
    );
    // What `sluice status` says, from its own thread: the admin listener answers on the
    // runtime this is called from.
    let admin = args.admin;
    std::thread::spawn(move || match crate::status::table(admin) {
        Ok(table) => println!("sluice status:\n{table}"),
        Err(e) => eprintln!("sluice status: {e}"),
    });
}
