//! Shared helpers for Sluice's integration tests.
//!
//! Everything here talks to real processes over real loopback sockets:
//! - [`Fixture`]: a temporary manifests directory plus the `sluice echo` backends it names;
//! - [`Sluice`]: a running `sluice run`, polled until `/readyz` answers;
//! - [`Proc`]: a child process killed on drop (also when the test panics);
//! - a raw HTTP/1.1 client ([`http_request`], [`exchange`], [`read_response`]) that
//!   sends exactly the given bytes and parses status, headers and bodies
//!   (Content-Length, chunked, or until EOF), and its server-side twin [`read_request`]
//!   for raw test backends;
//! - TLS clients built on rustls ([`tls_connect`]) and test certificates made with rcgen.
//!
//! Every wait is bounded so that a broken build fails instead of hanging.

#![allow(dead_code)]

pub mod acme;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// The binary under test.
pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
/// User-Agent sent by the raw client (the one the conformance suite's Go client sends).
pub const UA: &str = "Go-http-client/1.1";
/// Read/write timeout of every client socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for Sluice to become ready or to apply a reload.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Ports, temporary directories, processes
// ---------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    free_addr("127.0.0.1").port()
}

/// A free TCP address on the given loopback IP.
pub fn free_addr(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local address of ephemeral listener")
}

/// Polls `cond` every 25 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A fresh directory under the system temp dir, removed on drop unless the test panicked.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/sluice-it-<tag>-<pid>-<n>-<nanos>`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "sluice-it-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` (relative, parent directories created) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, contents).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(kept {} for inspection)", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process that is killed (SIGKILL) and reaped on drop.
pub struct Proc {
    child: Child,
    what: String,
    log: PathBuf,
    show_log_on_panic: bool,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(what: &str, mut cmd: Command, log: PathBuf, show_log_on_panic: bool) -> Proc {
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {what} ({cmd:?}): {e}"));
        Proc { child, what: what.to_owned(), log, show_log_on_panic }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let status =
            Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited early ({status}); log:\n{}", self.what, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && self.show_log_on_panic {
            let log = self.log();
            let tail: String = {
                let start = log.len().saturating_sub(6000);
                let start = (start..log.len()).find(|i| log.is_char_boundary(*i)).unwrap_or(log.len());
                log[start..].to_owned()
            };
            eprintln!("----- {} log (tail) -----\n{tail}\n-----", self.what);
        }
    }
}

/// Runs `sluice <args>` to completion (bounded by 60 s) and returns its output.
pub fn run_sluice_command(args: &[&str]) -> Output {
    let mut child = Command::new(SLUICE)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    // Drain the pipes on threads so a chatty child cannot block.
    let mut stdout = child.stdout.take().expect("stdout pipe");
    let mut stderr = child.stderr.take().expect("stderr pipe");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let mut status = None;
    let finished = wait_until(Duration::from_secs(60), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("sluice {args:?} did not finish within 60 s");
    }
    Output {
        status: status.expect("exit status"),
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

/// The namespace every test object lives in.
pub const NS: &str = "default";

/// A `Service` named `name` with one port 8080 → targetPort 3000.
///
/// `port_name` names the port (needed when an Ingress refers to it by name);
/// `app_protocol` sets `appProtocol` (e.g. `kubernetes.io/h2c`).
pub fn service_yaml(name: &str, port_name: Option<&str>, app_protocol: Option<&str>) -> String {
    let mut port = String::new();
    if let Some(port_name) = port_name {
        port.push_str(&format!("    - name: {port_name}\n      port: 8080\n"));
    } else {
        port.push_str("    - port: 8080\n");
    }
    port.push_str("      targetPort: 3000\n      protocol: TCP\n");
    if let Some(app_protocol) = app_protocol {
        port.push_str(&format!("      appProtocol: {app_protocol}\n"));
    }
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  selector:\n    app: {name}\n  ports:\n{port}"
    )
}

/// An `EndpointSlice` for Service `service`: one endpoint per address, all on `port`.
pub fn endpoint_slice_yaml(
    service: &str,
    port_name: Option<&str>,
    port: u16,
    addresses: &[String],
    ready: bool,
) -> String {
    let name_line = port_name.map(|n| format!("    name: {n}\n")).unwrap_or_default();
    let mut endpoints = String::new();
    for address in addresses {
        endpoints.push_str(&format!("  - addresses: [\"{address}\"]\n    conditions:\n      ready: {ready}\n"));
    }
    if addresses.is_empty() {
        endpoints.push_str("  []\n");
    }
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-abc12\n  namespace: {NS}\n  labels:\n    kubernetes.io/service-name: {service}\naddressType: IPv4\nports:\n  - port: {port}\n    protocol: TCP\n{name_line}endpoints:\n{endpoints}"
    )
}

/// A `kubernetes.io/tls` Secret holding `cert_pem` / `key_pem`.
pub fn tls_secret_yaml(name: &str, cert_pem: &[u8], key_pem: &[u8]) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NS}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        base64(cert_pem),
        base64(key_pem)
    )
}

/// Joins YAML documents into one multi-document stream.
pub fn yaml_docs(docs: &[String]) -> String {
    docs.iter().map(|d| format!("---\n{d}")).collect::<Vec<_>>().join("")
}

/// Standard base64 (with padding).
pub fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63] as char);
        out.push(TABLE[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { TABLE[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { TABLE[n as usize & 63] as char } else { '=' });
    }
    out
}

/// The port of an Ingress backend.
#[derive(Clone, Debug)]
pub enum Port {
    /// `port.number`.
    Number(u16),
    /// `port.name`.
    Name(String),
}

/// One `spec.rules[].http.paths[]` entry.
#[derive(Clone, Debug)]
struct IngressPath {
    path_type: String,
    path: String,
    service: String,
    port: Port,
}

/// Builder of a `networking.k8s.io/v1` Ingress in YAML.
#[derive(Clone, Debug)]
pub struct Ingress {
    name: String,
    class: Option<String>,
    annotations: Vec<(String, String)>,
    default_backend: Option<String>,
    tls: Vec<(Vec<String>, String)>,
    rules: Vec<(Option<String>, Vec<IngressPath>)>,
}

impl Ingress {
    /// An Ingress named `name` with `ingressClassName: sluice`.
    pub fn new(name: &str) -> Ingress {
        Ingress {
            name: name.to_owned(),
            class: Some("sluice".to_owned()),
            annotations: Vec::new(),
            default_backend: None,
            tls: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Sets (or with `None` removes) `spec.ingressClassName`.
    pub fn class(mut self, class: Option<&str>) -> Ingress {
        self.class = class.map(str::to_owned);
        self
    }

    /// Adds a `metadata.annotations` entry.
    pub fn annotation(mut self, key: &str, value: &str) -> Ingress {
        self.annotations.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets `spec.defaultBackend` to `service` port 8080.
    pub fn default_backend(mut self, service: &str) -> Ingress {
        self.default_backend = Some(service.to_owned());
        self
    }

    /// Adds a `spec.tls` entry.
    pub fn tls(mut self, hosts: &[&str], secret: &str) -> Ingress {
        self.tls.push((hosts.iter().map(|h| (*h).to_owned()).collect(), secret.to_owned()));
        self
    }

    /// Adds a path (port number 8080) to the rule for `host` (`None`: a rule without host).
    pub fn path(self, host: Option<&str>, path_type: &str, path: &str, service: &str) -> Ingress {
        self.path_port(host, path_type, path, service, Port::Number(8080))
    }

    /// Adds a path with an explicit backend port to the rule for `host`.
    pub fn path_port(mut self, host: Option<&str>, path_type: &str, path: &str, service: &str, port: Port) -> Ingress {
        let entry =
            IngressPath { path_type: path_type.to_owned(), path: path.to_owned(), service: service.to_owned(), port };
        let host = host.map(str::to_owned);
        match self.rules.iter_mut().find(|(h, _)| *h == host) {
            Some((_, paths)) => paths.push(entry),
            None => self.rules.push((host, vec![entry])),
        }
        self
    }

    /// The manifest.
    pub fn yaml(&self) -> String {
        let mut y = format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {}\n  namespace: {NS}\n",
            self.name
        );
        if !self.annotations.is_empty() {
            y.push_str("  annotations:\n");
            for (key, value) in &self.annotations {
                y.push_str(&format!("    {key}: \"{value}\"\n"));
            }
        }
        y.push_str("spec:\n");
        if let Some(class) = &self.class {
            y.push_str(&format!("  ingressClassName: {class}\n"));
        }
        if let Some(service) = &self.default_backend {
            y.push_str(&format!(
                "  defaultBackend:\n    service:\n      name: {service}\n      port:\n        number: 8080\n"
            ));
        }
        if !self.tls.is_empty() {
            y.push_str("  tls:\n");
            for (hosts, secret) in &self.tls {
                y.push_str("    - hosts:\n");
                for host in hosts {
                    y.push_str(&format!("        - \"{host}\"\n"));
                }
                y.push_str(&format!("      secretName: {secret}\n"));
            }
        }
        if !self.rules.is_empty() {
            y.push_str("  rules:\n");
            for (host, paths) in &self.rules {
                match host {
                    Some(host) => y.push_str(&format!("    - host: \"{host}\"\n      http:\n")),
                    None => y.push_str("    - http:\n"),
                }
                y.push_str("        paths:\n");
                for p in paths {
                    let port = match &p.port {
                        Port::Number(n) => format!("number: {n}"),
                        Port::Name(n) => format!("name: {n}"),
                    };
                    y.push_str(&format!(
                        "          - path: \"{}\"\n            pathType: {}\n            backend:\n              service:\n                name: {}\n                port:\n                  {port}\n",
                        p.path, p.path_type, p.service
                    ));
                }
            }
        }
        y
    }
}

// ---------------------------------------------------------------------------
// Fixture: manifests directory + echo backends
// ---------------------------------------------------------------------------

/// A manifests directory and the echo backends of the Services it defines.
pub struct Fixture {
    /// Holds `manifests/` and the process logs.
    pub dir: TempDir,
    echoes: Vec<Proc>,
}

impl Fixture {
    /// An empty fixture.
    pub fn new(tag: &str) -> Fixture {
        let dir = TempDir::new(tag);
        fs::create_dir_all(dir.path().join("manifests")).expect("create manifests dir");
        Fixture { dir, echoes: Vec::new() }
    }

    /// The directory passed to `sluice run --manifests`.
    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// Writes (or overwrites) `manifests/<file>`.
    pub fn write(&self, file: &str, yaml: &str) -> PathBuf {
        self.dir.write(&format!("manifests/{file}"), yaml)
    }

    /// Starts `sluice echo --listen <addr> --name <name>` and waits until it accepts connections.
    pub fn spawn_echo(&mut self, addr: SocketAddr, name: &str) {
        if let Err(e) = self.try_spawn_echo(addr, name) {
            panic!("{e}");
        }
    }

    /// Like [`Fixture::spawn_echo`], returning the failure (with the echo's log) instead.
    pub fn try_spawn_echo(&mut self, addr: SocketAddr, name: &str) -> Result<(), String> {
        let log = self.dir.path().join(format!("echo-{name}-{addr}.log"));
        let mut cmd = Command::new(SLUICE);
        cmd.args(["echo", "--listen", &addr.to_string(), "--name", name]);
        let mut proc = Proc::spawn(&format!("echo {name}@{addr}"), cmd, log, false);
        // Its own "serving" line, not just a connect: a port picked by `free_addr` may be
        // taken by another test's echo, which would answer the connect.
        let up = wait_until(Duration::from_secs(10), || {
            proc.exited().is_some()
                || (proc.log().contains("echo backend serving")
                    && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
        });
        if let Some(status) = proc.exited() {
            return Err(format!("echo {name} on {addr} exited ({status}):\n{}", proc.log()));
        }
        if !up {
            return Err(format!("echo {name} did not listen on {addr}:\n{}", proc.log()));
        }
        proc.show_log_on_panic = true;
        self.echoes.push(proc);
        Ok(())
    }

    /// Panics (with its log) if any echo backend has exited.
    pub fn assert_backends_running(&mut self) {
        for echo in &mut self.echoes {
            echo.assert_running();
        }
    }

    /// An echo backend for Service `service` (unnamed port 8080) with one ready endpoint.
    pub fn backend(&mut self, service: &str) -> SocketAddr {
        self.backend_with(service, None, None)
    }

    /// An echo backend for Service `service` with the given port name and appProtocol.
    pub fn backend_with(&mut self, service: &str, port_name: Option<&str>, app_protocol: Option<&str>) -> SocketAddr {
        // A port picked by `free_addr` can be taken before the echo binds it; retry then.
        let mut attempt = 0;
        let addr = loop {
            attempt += 1;
            let addr = free_addr("127.0.0.1");
            match self.try_spawn_echo(addr, service) {
                Ok(()) => break addr,
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!("{e}"),
            }
        };
        self.write_service(service, port_name, app_protocol, addr.port(), &[addr.ip().to_string()], true);
        addr
    }

    /// Writes `manifests/svc-<service>.yaml`: the Service and its EndpointSlice.
    pub fn write_service(
        &self,
        service: &str,
        port_name: Option<&str>,
        app_protocol: Option<&str>,
        port: u16,
        addresses: &[String],
        ready: bool,
    ) -> PathBuf {
        let yaml = yaml_docs(&[
            service_yaml(service, port_name, app_protocol),
            endpoint_slice_yaml(service, port_name, port, addresses, ready),
        ]);
        self.write(&format!("svc-{service}.yaml"), &yaml)
    }

    /// Writes `manifests/ingress-<name>.yaml`.
    pub fn ingress(&self, ingress: &Ingress) -> PathBuf {
        self.write(&format!("ingress-{}.yaml", ingress.name), &ingress.yaml())
    }

    /// Writes `manifests/secret-<name>.yaml` holding the certificate.
    pub fn tls_secret(&self, name: &str, cert: &TestCert) -> PathBuf {
        self.write(
            &format!("secret-{name}.yaml"),
            &tls_secret_yaml(name, cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()),
        )
    }

    /// Starts `sluice run` on this fixture's manifests with extra arguments.
    pub fn start(&self, extra: &[&str]) -> Sluice {
        Sluice::start(self.dir.path(), &[self.manifests()], extra)
    }
}

// ---------------------------------------------------------------------------
// Sluice process
// ---------------------------------------------------------------------------

/// A running `sluice run`.
pub struct Sluice {
    /// The process.
    pub proc: Proc,
    /// Plain HTTP listener.
    pub http: SocketAddr,
    /// HTTPS listener.
    pub https: SocketAddr,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin: SocketAddr,
}

impl Sluice {
    /// Starts Sluice on fresh ports (log in `log_dir/sluice-<port>.log`) and waits for
    /// `/readyz`; retries with other ports if one was taken in the meantime.
    pub fn start(log_dir: &Path, manifests: &[PathBuf], extra: &[&str]) -> Sluice {
        let manifests: Vec<String> = manifests.iter().map(|m| m.display().to_string()).collect();
        let mut args: Vec<&str> = manifests.iter().flat_map(|m| ["--manifests", m.as_str()]).collect();
        args.extend_from_slice(extra);
        Sluice::start_with(log_dir, &args, &[])
    }

    /// Polls `GET /readyz` until it answers 200 (at most [`READY_TIMEOUT`]); the error
    /// carries Sluice's log.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let admin = self.admin;
        let mut last = String::from("no answer");
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.proc.exited() {
                return Err(format!("sluice run exited early ({status}); log:\n{}", self.proc.log()));
            }
            match exchange(admin, &http_request("GET", &admin.to_string(), "/readyz", &[], b"")) {
                // Ready, and it is this process answering: another test's Sluice may hold a
                // port picked for this one (this one then fails to bind and exits).
                Ok(resp) if resp.status == 200 && self.serves_itself() => return Ok(()),
                Ok(resp) if resp.status == 200 => {
                    let log = self.proc.log();
                    if log.contains("cannot listen on") || self.proc.exited().is_some() {
                        return Err(format!("sluice run could not bind a port (in use); log:\n{log}"));
                    }
                    last = "another process answers on the admin port".into();
                }
                Ok(resp) => last = format!("status {}", resp.status),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("sluice not ready within {READY_TIMEOUT:?} (last /readyz: {last}); log:\n{}", self.proc.log()))
    }

    /// True once this process has said it serves (its own log, not the port, says so).
    /// (Under a `RUST_LOG` that may hide info lines, the log cannot tell: taken as true.)
    fn serves_itself(&mut self) -> bool {
        if self.proc.exited().is_some() {
            return false;
        }
        let hidden =
            std::env::var("RUST_LOG").is_ok_and(|filter| !filter.contains("info") && !filter.contains("debug"));
        let log = self.proc.log();
        hidden || log.contains(" serving ") || log.contains("\"message\":\"serving\"")
    }

    /// `GET <path>` on the plain listener with `Host: <host>`, a fresh connection.
    pub fn get(&self, host: &str, path: &str) -> HttpResponse {
        self.send(&http_request("GET", host, path, &[], b""))
    }

    /// Sends raw request bytes to the plain listener on a fresh connection.
    pub fn send(&self, raw: &[u8]) -> HttpResponse {
        exchange(self.http, raw).unwrap_or_else(|e| {
            panic!("request to sluice failed: {e}\nrequest: {}", String::from_utf8_lossy(&raw[..raw.len().min(500)]))
        })
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        self.try_metrics().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `/metrics` text, or why it could not be fetched.
    pub fn try_metrics(&self) -> Result<String, String> {
        let resp = exchange(self.admin, &http_request("GET", &self.admin.to_string(), "/metrics", &[], b""))
            .map_err(|e| format!("GET /metrics: {e}"))?;
        if resp.status != 200 {
            return Err(format!("GET /metrics: status {}", resp.status));
        }
        Ok(resp.text())
    }

    /// Value of the `sluice_config_generation` gauge, if exposed.
    pub fn generation(&self) -> Option<f64> {
        metric_value(&self.try_metrics().ok()?, "sluice_config_generation")
    }

    /// Sends SIGHUP and waits until `sluice_config_generation` increases.
    pub fn reload(&mut self) {
        if let Err(e) = self.try_reload() {
            panic!("{e}");
        }
    }

    /// Like [`Sluice::reload`], returning the failure instead.
    pub fn try_reload(&mut self) -> Result<(), String> {
        let before = self.generation().ok_or("no sluice_config_generation in /metrics")?;
        self.proc.signal("HUP");
        let mut now = before;
        let applied = wait_until(READY_TIMEOUT, || {
            now = self.generation().unwrap_or(before);
            now > before
        });
        if let Some(status) = self.proc.exited() {
            return Err(format!("sluice exited ({status}) after SIGHUP; log:\n{}", self.proc.log()));
        }
        if !applied {
            return Err(format!("sluice_config_generation stayed {before} after SIGHUP; log:\n{}", self.proc.log()));
        }
        Ok(())
    }
}

/// The value of the first sample of `name` (any labels) in Prometheus text.
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 client
// ---------------------------------------------------------------------------

/// Builds a request: request line, `Host`, `User-Agent` (unless given in `headers`),
/// the extra headers, a `Content-Length` when there is a body or the method usually
/// has one (POST/PUT/PATCH), then the body.
pub fn http_request(method: &str, host: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("user-agent")) {
        head.push_str(&format!("User-Agent: {UA}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let has_length = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"));
    if !has_length && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// A parsed HTTP/1.x response.
#[derive(Clone)]
pub struct HttpResponse {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Header fields in order, names as received.
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(600)]);
        f.debug_struct("HttpResponse")
            .field("version", &self.version)
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body", &body)
            .finish()
    }
}

impl HttpResponse {
    /// First value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the body was sent with `Transfer-Encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as an echo answer; panics with the response if it is not one.
    pub fn echo(&self) -> Echo {
        self.try_echo().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The body parsed as an echo answer.
    pub fn try_echo(&self) -> Result<Echo, String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .filter(|v| v.get("service").is_some())
            .map(Echo::new)
            .ok_or_else(|| {
                format!(
                    "not an echo answer: status {} headers {:?} body {:?}",
                    self.status,
                    self.headers,
                    self.text().chars().take(500).collect::<String>()
                )
            })
    }
}

/// What the echo backend reported about the request it received: the JSON answer, and its
/// request headers by lower-case name with repeated values joined by `", "`.
#[derive(Debug, Clone)]
pub struct Echo(pub serde_json::Value, std::collections::BTreeMap<String, String>);

impl Echo {
    /// Reads an answer of `sluice echo` (headers as name → list of values, Go's canonical
    /// names) or of a test backend reporting name → one value.
    pub fn new(json: serde_json::Value) -> Echo {
        let mut headers = std::collections::BTreeMap::new();
        for (name, value) in json.get("headers").and_then(|h| h.as_object()).into_iter().flatten() {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(values) => {
                    values.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                }
                other => other.to_string(),
            };
            headers.insert(name.to_ascii_lowercase(), value);
        }
        if let Some(host) = json.get("host").and_then(|h| h.as_str()) {
            headers.insert("host".to_owned(), host.to_owned());
        }
        Echo(json, headers)
    }

    /// A string field (`service`, `pod`, `method`, `path`, `host`, `proto`); "" when absent.
    pub fn str(&self, key: &str) -> &str {
        self.0.get(key).and_then(|v| v.as_str()).unwrap_or("")
    }

    /// `service`.
    pub fn service(&self) -> &str {
        self.str("service")
    }

    /// A request header as the backend saw it (name compared case-insensitively; repeated
    /// values joined with `", "`; `host` is the `host` field, which echo-basic keeps out of
    /// `headers`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.1.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// `body_bytes`.
    pub fn body_bytes(&self) -> u64 {
        self.0.get("body_bytes").and_then(|v| v.as_u64()).unwrap_or(u64::MAX)
    }
}

/// A request header the echo reported, read from a whole answer as printed by `curl -i`
/// (head, blank line, JSON body); `None` when the body is no echo answer or lacks it.
pub fn answer_header(answer: &str, name: &str) -> Option<String> {
    let body = answer.find('{').map(|i| &answer[i..])?;
    let json = serde_json::from_str::<serde_json::Value>(body.trim_end()).ok()?;
    Echo::new(json).header(name).map(str::to_owned)
}

/// Opens a plain connection with [`IO_TIMEOUT`] read/write timeouts.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Sends `raw` on a fresh connection and reads one response.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> io::Result<HttpResponse> {
    let mut stream = connect(addr)?;
    stream.write_all(raw)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, raw.starts_with(b"HEAD "))
}

/// Reads one line ending in `\n`, without the line ending.
fn read_line<R: BufRead>(r: &mut R) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a full response"));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one response (skipping `100 Continue`), decoding a chunked or sized body.
pub fn read_response<R: BufRead>(r: &mut R, head: bool) -> io::Result<HttpResponse> {
    loop {
        let status_line = read_line(r)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_owned();
        let status: u16 =
            parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        if !version.starts_with("HTTP/1.") {
            return Err(bad(format!("bad status line {status_line:?}")));
        }
        let mut headers = Vec::new();
        loop {
            let line = read_line(r)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| bad(format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        if status == 100 {
            continue;
        }
        let mut resp = HttpResponse { version, status, headers, body: Vec::new() };
        if head || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(resp);
        }
        if resp.is_chunked() {
            resp.body = read_chunked(r)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
            let mut body = vec![0; len];
            r.read_exact(&mut body)?;
            resp.body = body;
        } else {
            r.read_to_end(&mut resp.body)?;
        }
        return Ok(resp);
    }
}

/// Decodes a chunked body (trailers are read and dropped).
fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            while !read_line(r)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let end = read_line(r)?;
        if !end.is_empty() {
            return Err(bad(format!("chunk not followed by CRLF: {end:?}")));
        }
    }
}

/// A request as a test backend read it ([`read_request`]).
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// The request line, e.g. `GET /a HTTP/1.1`.
    pub line: String,
    /// Header fields in order, names exactly as received.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The request target (`/a?b`).
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// First value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one request, the server-side twin of [`read_response`]: the head up to its blank
/// line, then a body by `Transfer-Encoding: chunked` (decoded) or `Content-Length` (none
/// without either). `Ok(None)` when the connection ends before a request starts.
pub fn read_request<R: BufRead>(r: &mut R) -> io::Result<Option<HttpRequest>> {
    if r.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let line = read_line(r)?;
    let mut headers = Vec::new();
    loop {
        let field = read_line(r)?;
        if field.is_empty() {
            break;
        }
        let (name, value) = field.split_once(':').ok_or_else(|| bad(format!("bad header line {field:?}")))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut request = HttpRequest { line, headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        request.body = read_chunked(r)?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        request.body = vec![0; len];
        r.read_exact(&mut request.body)?;
    }
    Ok(Some(request))
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// A self-signed certificate and its key.
#[derive(Clone)]
pub struct TestCert {
    /// PEM of the certificate.
    pub cert_pem: String,
    /// PEM of the private key.
    pub key_pem: String,
    /// DER of the certificate.
    pub der: Vec<u8>,
}

/// A self-signed certificate for the given subject alternative names.
pub fn test_cert(sans: &[&str]) -> TestCert {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(sans).expect("generate certificate");
    TestCert {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
        der: certified.cert.der().to_vec(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts any server certificate (still checks handshake signatures): used to see
/// which certificate a server presents without trusting it.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS protocol versions a test client may be limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3.
    Any,
    /// Only TLS 1.2.
    Tls12,
    /// Only TLS 1.3.
    Tls13,
}

/// Options of [`tls_connect`].
#[derive(Clone, Copy)]
pub struct TlsOptions<'a> {
    /// Trust only this certificate (DER) and verify the host name; `None`: accept any certificate.
    pub trust: Option<&'a [u8]>,
    /// Protocol versions offered.
    pub versions: TlsVersions,
    /// ALPN protocols offered.
    pub alpn: &'a [&'a str],
}

impl Default for TlsOptions<'_> {
    fn default() -> Self {
        TlsOptions { trust: None, versions: TlsVersions::Any, alpn: &["http/1.1"] }
    }
}

/// A client TLS stream.
pub type TlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// A rustls client configuration for `opts` (aws-lc-rs provider).
pub fn tls_client_config(opts: TlsOptions<'_>) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.versions {
        TlsVersions::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersions::Tls12 => &[&rustls::version::TLS12],
        TlsVersions::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS config: {e}"))?;
    let mut config = match opts.trust {
        Some(der) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(der.to_vec())).map_err(|e| format!("add trust anchor: {e}"))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// Connects to `addr`, performs the TLS handshake with SNI = `sni` (an IP address
/// sends no SNI) and returns the stream; errors name the failing step.
pub fn tls_connect(addr: SocketAddr, sni: &str, opts: TlsOptions<'_>) -> Result<TlsStream, String> {
    let config = tls_client_config(opts)?;
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| format!("bad server name {sni}: {e}"))?;
    let conn = ClientConnection::new(config, name).map_err(|e| format!("TLS client for {sni}: {e}"))?;
    let sock = connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let mut stream = rustls::StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).map_err(|e| format!("TLS handshake with SNI {sni}: {e}"))?;
    }
    Ok(stream)
}

/// DER of the leaf certificate the server presented.
pub fn leaf_der(stream: &TlsStream) -> Vec<u8> {
    stream.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default()
}

/// One request over a fresh TLS connection; returns the response and the served leaf certificate.
pub fn https_exchange(
    addr: SocketAddr,
    sni: &str,
    opts: TlsOptions<'_>,
    raw: &[u8],
) -> Result<(HttpResponse, Vec<u8>), String> {
    let mut stream = tls_connect(addr, sni, opts)?;
    let leaf = leaf_der(&stream);
    stream.write_all(raw).and_then(|_| stream.flush()).map_err(|e| format!("TLS write: {e}"))?;
    let mut reader = BufReader::new(stream);
    let resp = read_response(&mut reader, raw.starts_with(b"HEAD ")).map_err(|e| format!("TLS read: {e}"))?;
    Ok((resp, leaf))
}

// ---------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------

/// Runs `curl -i ARGS` and returns the status of its (first) answer, 0 when there was none
/// (a refused handshake), and everything it printed.
pub fn curl_answer(args: &[&str]) -> (u16, String) {
    let mut all = vec!["-i"];
    all.extend_from_slice(args);
    let (_, out, _) = curl(&all);
    let status = out
        .lines()
        .find(|line| line.starts_with("HTTP/"))
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// Runs `curl` (bounded by `--max-time 20`) and returns (success, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["--max-time", "20", "-sS"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (is it installed?)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

/// Opens `ws://<host><path>` over a plain TCP connection to `addr` (tokio-tungstenite
/// `client_async`) and checks that text, binary and ping messages are echoed and that a
/// close is answered. Bounded by 15 s.
pub fn websocket_echo_roundtrip(addr: SocketAddr, host: &str, path: &str) -> Result<(), String> {
    block_on_15s(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        websocket_session(tcp, &format!("ws://{host}{path}")).await
    })
}

/// Like [`websocket_echo_roundtrip`] but `wss://` over TLS (SNI = `host`, any certificate
/// accepted, ALPN http/1.1).
pub fn websocket_echo_roundtrip_tls(addr: SocketAddr, host: &str, path: &str) -> Result<(), String> {
    let config = tls_client_config(TlsOptions::default())?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("server name: {e}"))?;
    block_on_15s(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        websocket_session(tls, &format!("wss://{host}{path}")).await
    })
}

/// Runs `session` on a fresh current-thread runtime, failing after 15 s.
fn block_on_15s(session: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async move {
        tokio::time::timeout(Duration::from_secs(15), session)
            .await
            .map_err(|_| "WebSocket session timed out".to_owned())?
    })
}

/// The WebSocket handshake and echo checks on an established stream.
async fn websocket_session<S>(stream: S, url: &str) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (mut ws, resp) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("WebSocket handshake for {url}: {e}"))?;
    if resp.status().as_u16() != 101 {
        return Err(format!("handshake status {}", resp.status()));
    }
    let messages = [Message::text("hello"), Message::binary(vec![0u8, 1, 2, 255]), Message::text("x".repeat(100_000))];
    for msg in messages {
        ws.send(msg.clone()).await.map_err(|e| format!("send: {e}"))?;
        match ws.next().await {
            Some(Ok(got)) if got == msg => {}
            other => return Err(format!("echo of {} bytes: got {other:?}", msg.len())),
        }
    }
    ws.send(Message::Ping(b"are you there"[..].into())).await.map_err(|e| format!("send ping: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Pong(data))) if &data[..] == b"are you there" => {}
        other => return Err(format!("pong: got {other:?}")),
    }
    ws.send(Message::Close(None)).await.map_err(|e| format!("send close: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Close(_))) | None => Ok(()),
        other => Err(format!("close reply: got {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// Scripted backend
// ---------------------------------------------------------------------------

/// A backend on 127.0.0.1 that answers every request (read up to the blank line;
/// request bodies are not expected) with exactly `response`, on a detached thread.
/// Returns its address; it lives until the test process exits.
pub fn scripted_backend(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind scripted backend");
    let addr = listener.local_addr().expect("scripted backend address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        if conn.write_all(response).is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------
// Live changes: files replaced by rename, extra echoes, /config, /readyz, sync WebSocket
// ---------------------------------------------------------------------------

/// Replaces `path` in one step, the way tools that must never expose a half-written file
/// do: writes `<name>.tmp` in the same directory, then renames it over `path`.
pub fn replace_by_rename(path: &Path, contents: &str) {
    let name = path.file_name().expect("file name").to_string_lossy().into_owned();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    fs::write(&tmp, contents).expect("write temporary file");
    fs::rename(&tmp, path).expect("rename temporary file over the target");
}

impl Fixture {
    /// The path of `manifests/<file>`.
    pub fn file(&self, file: &str) -> PathBuf {
        self.manifests().join(file)
    }

    /// Starts one more `sluice echo` reporting service `service`, on a free port (retried
    /// if the port is taken meanwhile), without writing any manifest. Returns its address,
    /// which is also the `pod` it reports.
    pub fn spawn_echo_free(&mut self, service: &str) -> SocketAddr {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let addr = free_addr("127.0.0.1");
            match self.try_spawn_echo(addr, service) {
                Ok(()) => return addr,
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

impl Sluice {
    /// `GET /config` on the admin listener, parsed.
    pub fn config(&self) -> serde_json::Value {
        self.try_config().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET /config`, or why it could not be fetched.
    pub fn try_config(&self) -> Result<serde_json::Value, String> {
        let resp = exchange(self.admin, &http_request("GET", &self.admin.to_string(), "/config", &[], b""))
            .map_err(|e| format!("GET /config: {e}"))?;
        if resp.status != 200 {
            return Err(format!("GET /config: status {}", resp.status));
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("GET /config: not JSON: {e}"))
    }

    /// Status of `GET /readyz`, or the error when the admin listener does not answer.
    pub fn readyz(&self) -> Result<u16, String> {
        exchange(self.admin, &http_request("GET", &self.admin.to_string(), "/readyz", &[], b""))
            .map(|r| r.status)
            .map_err(|e| e.to_string())
    }
}

/// A blocking WebSocket client over plain TCP.
pub type WsClient = tokio_tungstenite::tungstenite::WebSocket<TcpStream>;

/// Opens `ws://<host><path>` over a new connection to `addr` (blocking tungstenite,
/// [`IO_TIMEOUT`] socket timeouts) and checks the `101` answer.
pub fn ws_connect(addr: SocketAddr, host: &str, path: &str) -> Result<WsClient, String> {
    let stream = connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let url = format!("ws://{host}{path}");
    let (ws, resp) = tokio_tungstenite::tungstenite::client(url.as_str(), stream)
        .map_err(|e| format!("WebSocket handshake for {url}: {e}"))?;
    if resp.status().as_u16() != 101 {
        return Err(format!("WebSocket handshake for {url}: status {}", resp.status()));
    }
    Ok(ws)
}

/// Sends `text` as a text message and waits for the same text back (pings and pongs in
/// between are skipped).
pub fn ws_echo(ws: &mut WsClient, text: &str) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(text)).map_err(|e| format!("send {text:?}: {e}"))?;
    loop {
        match ws.read() {
            Ok(Message::Text(got)) if got.as_str() == text => return Ok(()),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(other) => return Err(format!("echo of {text:?}: got {other:?}")),
            Err(e) => return Err(format!("echo of {text:?}: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------
// Kubernetes mode: `sluice run` with environment variables, started without waiting
// ---------------------------------------------------------------------------

impl Sluice {
    /// Spawns `sluice run <args>` on fresh ports with extra environment variables, without
    /// waiting for `/readyz` (log in `log_dir/sluice-<port>.log`, shown if the test panics).
    pub fn spawn_with(log_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Sluice {
        let http = free_addr("127.0.0.1");
        let https = free_addr("127.0.0.1");
        let admin = free_addr("127.0.0.1");
        let mut cmd = Command::new(SLUICE);
        cmd.arg("run")
            .args(["--http", &http.to_string()])
            .args(["--https", &https.to_string()])
            .args(["--admin", &admin.to_string()])
            .args(args)
            .envs(envs.iter().copied());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let log = log_dir.join(format!("sluice-{}.log", http.port()));
        let mut proc = Proc::spawn("sluice run", cmd, log, false);
        proc.show_log_on_panic = true;
        Sluice { proc, http, https, admin }
    }

    /// Like [`Sluice::start`] without manifests: `sluice run <args>` with extra environment
    /// variables, waiting for `/readyz` (ports retried if taken meanwhile).
    pub fn start_with(log_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Sluice {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut sluice = Sluice::spawn_with(log_dir, args, envs);
            sluice.proc.show_log_on_panic = false;
            match sluice.wait_ready() {
                Ok(()) => {
                    sluice.proc.show_log_on_panic = true;
                    return sluice;
                }
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Status of `GET /healthz`, or the error when the admin listener does not answer.
    pub fn healthz(&self) -> Result<u16, String> {
        exchange(self.admin, &http_request("GET", &self.admin.to_string(), "/healthz", &[], b""))
            .map(|r| r.status)
            .map_err(|e| e.to_string())
    }

    /// `GET <path>` on the plain listener with `Host: <host>`, or why it failed.
    pub fn try_get(&self, host: &str, path: &str) -> io::Result<HttpResponse> {
        exchange(self.http, &http_request("GET", host, path, &[], b""))
    }
}
