//! Test support: a Tokio runtime whose threads live in a network namespace, the announcer's
//! metrics read back, and small wrappers around the client-side tools.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::future::Future;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_testnet::{wait_until, Netns};
use tokio::runtime::Runtime;

/// How long a condition may take to become true before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A multi-thread Tokio runtime built inside a namespace: its worker threads (and the
/// blocking threads they start) belong to it, so whatever runs on it opens sockets and
/// netlink connections and reads `/proc/sys/net` there.
pub struct NodeRuntime {
    runtime: Runtime,
}

impl NodeRuntime {
    pub fn new(ns: &Netns) -> Self {
        let runtime = ns
            .enter(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build())
            .expect("enter the namespace")
            .expect("build the runtime");
        Self { runtime }
    }

    /// Runs `future` on the runtime's threads (inside the namespace) and waits for it.
    pub fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.block_on(self.runtime.spawn(future)).expect("the task in the namespace panicked")
    }

    /// Starts a TCP server on `address` in the namespace that sends `greeting` to every
    /// client and closes.
    pub fn serve_greeting(&self, address: std::net::SocketAddr, greeting: &'static str) {
        let listener =
            self.run(async move { tokio::net::TcpListener::bind(address).await }).expect("bind the listener");
        self.runtime.spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = stream.write_all(greeting.as_bytes()).await;
            }
        });
    }
}

/// The value of `name` with `labels` (e.g. `interface="n0"`) in the registry's text form; 0
/// when absent.
pub fn metric(registry: &Registry, name: &str, labels: &str) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode the metrics");
    let series = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
    text.lines()
        .filter_map(|line| line.strip_prefix(&series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The MAC of `interface` in `ns`, lower case.
pub fn mac(ns: &Netns, interface: &str) -> String {
    ns.run(&["cat", &format!("/sys/class/net/{interface}/address")]).expect("read the MAC").trim().to_lowercase()
}

/// The index of `interface` in `ns`.
pub fn index(ns: &Netns, interface: &str) -> u32 {
    ns.run(&["cat", &format!("/sys/class/net/{interface}/ifindex")])
        .expect("read the index")
        .trim()
        .parse()
        .expect("an index")
}

/// The MACs that answered `arping -c 2` for `address` on `interface` (lower case, empty when
/// nothing answered within 3 s).
pub fn arping(ns: &Netns, interface: &str, address: &str) -> Vec<String> {
    let output =
        ns.command("arping").args(["-c", "2", "-w", "3", "-I", interface, address]).output().expect("run arping");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("reply from"))
        .filter_map(|line| Some(line.split_once('[')?.1.split_once(']')?.0.to_lowercase()))
        .collect()
}

/// The link-layer address `ip neigh` has for `address` on `interface` in `ns`.
pub fn neighbour(ns: &Netns, interface: &str, address: &str) -> Option<String> {
    let output = ns.run(&["ip", "neigh", "show", address, "dev", interface]).ok()?;
    let mut words = output.split_whitespace();
    words.find(|word| *word == "lladdr")?;
    words.next().map(str::to_lowercase)
}

/// Waits until `ns`'s neighbour entry for `address` is `mac`.
pub fn wait_for_neighbour(ns: &Netns, interface: &str, address: &str, mac: &str) -> bool {
    wait_until(PATIENCE, || neighbour(ns, interface, address).as_deref() == Some(mac))
}

/// Connects from inside `ns` to `address` and returns what the server sent.
pub fn fetch(ns: &Netns, address: std::net::SocketAddr) -> String {
    ns.enter(move || {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        std::io::Result::Ok(text)
    })
    .expect("enter the namespace")
    .unwrap_or_else(|error| panic!("connecting to {address}: {error}"))
}

/// Turns off duplicate address detection in `ns`, for interfaces created after this, so IPv6
/// addresses are usable at once.
pub fn without_dad(ns: &Netns) {
    for setting in ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"] {
        ns.run(&["sysctl", "-qw", setting]).expect("sysctl");
    }
}

/// Waits until `interface` in `ns` has its IPv6 link-local address (it comes once the link
/// has carrier; until then nothing multicast can be sent on it).
pub fn wait_for_link_local(ns: &Netns, interface: &str) {
    let ready = wait_until(PATIENCE, || {
        ns.run(&["ip", "-6", "addr", "show", "dev", interface, "scope", "link"]).is_ok_and(|out| out.contains("fe80::"))
    });
    assert!(ready, "{interface} got no link-local address");
}
