//! Running `sluice` and its peers inside network namespaces: a node namespace per replica,
//! clients and routers in others; every process and namespace goes when the guards drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_testnet::{wait_until, Netns, Process, TempDir};

/// The binary under test.
pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
/// The admin port every Sluice here listens on (inside its own namespace).
pub const ADMIN: u16 = 10254;
/// Longest wait for anything (readiness, a route, a takeover).
pub const WAIT: Duration = Duration::from_secs(30);

/// A running `sluice run` in a namespace, with its log.
pub struct Sluice {
    pub process: Process,
    log: PathBuf,
}

impl Sluice {
    /// Starts `sluice run ARGS` in `ns` (admin on 127.0.0.1:ADMIN there) and waits until
    /// `/readyz` answers.
    pub fn start(ns: &Netns, dir: &Path, name: &str, args: &[&str]) -> Sluice {
        let log = dir.join(format!("sluice-{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let admin = format!("127.0.0.1:{ADMIN}");
        let state = dir.join(format!("state-{name}"));
        let mut command = ns.command(SLUICE);
        command
            .args(["run", "--admin", &admin, "--state-dir", &state.to_string_lossy(), "--drain-timeout", "1s"])
            .args(args)
            .env("RUST_LOG", "info,sluice_bgp=debug,sluice_announce=debug")
            .stdout(out)
            .stderr(err);
        let process = ns.spawn(&mut command).expect("spawn sluice");
        let mut sluice = Sluice { process, log };
        let ready = wait_until(WAIT, || {
            !sluice.process.running() || ns.run(&["curl", "-sf", "-m", "1", &format!("http://{admin}/readyz")]).is_ok()
        });
        assert!(ready && sluice.process.running(), "sluice {name} not ready:\n{}", sluice.log());
        sluice
    }

    /// Starts `sluice run` on `dir`'s manifests as node `node`, with its HTTP and HTTPS
    /// listeners on `listen`:8080 and :8443, and `extra` arguments.
    pub fn from_manifests(ns: &Netns, dir: &TempDir, node: &str, listen: &str, extra: &[&str]) -> Sluice {
        let manifests = dir.path().join("manifests");
        let (http, https) = (format!("{listen}:8080"), format!("{listen}:8443"));
        let mut args = vec!["--manifests", manifests.to_str().expect("a UTF-8 path"), "--node-name", node];
        args.extend(["--http", &http, "--https", &https]);
        args.extend_from_slice(extra);
        Sluice::start(ns, dir.path(), node, &args)
    }

    /// Everything it printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `/status` of the Sluice in `ns`, as JSON.
pub fn status(ns: &Netns) -> serde_json::Value {
    let text = ns.run(&["curl", "-sf", "-m", "2", &format!("http://127.0.0.1:{ADMIN}/status")]).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// `/metrics` of the Sluice in `ns`.
pub fn metrics(ns: &Netns) -> String {
    ns.run(&["curl", "-sf", "-m", "2", &format!("http://127.0.0.1:{ADMIN}/metrics")]).unwrap_or_default()
}

/// Starts `sluice echo` on `listen` inside `ns`, answering with `name`.
pub fn echo(ns: &Netns, listen: &str, name: &str) -> Process {
    let mut command = ns.command(SLUICE);
    command.args(["echo", "--listen", listen, "--name", name]);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let process = ns.spawn(&mut command).expect("spawn echo");
    assert!(
        wait_until(WAIT, || ns.run(&["curl", "-s", "-m", "1", &format!("http://{listen}/")]).is_ok()),
        "echo {name}"
    );
    process
}

/// A UDP echo (`socat`) on `listen` (IPv4 `IP:PORT`) inside `ns`, answering every datagram
/// with its bytes.
pub fn udp_echo(ns: &Netns, listen: &str) -> Process {
    let (ip, port) = listen.rsplit_once(':').expect("IP:PORT");
    let mut command = ns.command("socat");
    command.args([&format!("UDP-RECVFROM:{port},bind={ip},fork,reuseaddr"), "EXEC:cat"]);
    ns.spawn(&mut command).expect("spawn socat")
}

/// Sends `payload` over UDP from `ns` (from `source` when given) and returns the answer.
pub fn udp_ask(ns: &Netns, target: &str, source: Option<&str>, payload: &str) -> Option<String> {
    let mut address = format!("UDP:{target}");
    if let Some(source) = source {
        address.push_str(&format!(",bind={source}"));
    }
    let mut command = ns.command("socat");
    command.args(["-T", "2", "-", &address]);
    command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = command.spawn().ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(payload.as_bytes()).ok()?;
    let output = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (!text.is_empty()).then_some(text)
}

/// GETs `url` with curl from `ns` (extra curl arguments first); the body, or `None` when
/// the request failed.
pub fn get(ns: &Netns, extra: &[&str], url: &str) -> Option<String> {
    let mut args = vec!["curl", "-s", "-f", "-m", "3"];
    args.extend_from_slice(extra);
    args.push(url);
    ns.run(&args).ok()
}

/// The MAC address of `device` in `ns`.
pub fn mac(ns: &Netns, device: &str) -> String {
    ns.run(&["cat", &format!("/sys/class/net/{device}/address")]).expect("read MAC").trim().to_owned()
}

/// A scratch directory with a `manifests/` folder.
pub fn scratch(prefix: &str) -> TempDir {
    let dir = TempDir::new(prefix).expect("temp dir");
    std::fs::create_dir_all(dir.path().join("manifests")).expect("manifests dir");
    dir
}

/// Writes `manifests/NAME` in `dir`.
pub fn write(dir: &TempDir, name: &str, yaml: &str) {
    std::fs::write(dir.path().join("manifests").join(name), yaml).expect("write manifest");
}

/// A LoadBalancer Service `name` with one TCP port (and UDP when `udp`) and its endpoints
/// at 127.0.0.1:`target` on `node`.
pub fn service(name: &str, port: u16, target: u16, udp: bool, spec_extra: &str, node: &str) -> String {
    let udp_port = if udp { format!("\n  - {{name: dns, port: {port}, protocol: UDP}}") } else { String::new() };
    let udp_slice = if udp { format!("\n  - {{name: dns, port: {target}, protocol: UDP}}") } else { String::new() };
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  type: LoadBalancer
{spec_extra}  ports:
  - {{name: web, port: {port}, protocol: TCP}}{udp_port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports:
  - {{name: web, port: {target}, protocol: TCP}}{udp_slice}
endpoints:
  - addresses: [127.0.0.1]
    conditions: {{ready: true}}
    nodeName: {node}
"
    )
}
