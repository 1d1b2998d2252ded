//! Network namespaces for the tests of real kernel networking (ARP, NDP, BGP, source
//! ranges): each test makes its own namespaces, joins them with veth pairs or a bridge,
//! runs real peers inside them, and everything is removed when the guards drop — even when
//! the test fails or panics.
//!
//! Addresses used inside are from 198.18.0.0/15 (RFC 2544, benchmarking) and exist only in
//! the namespaces: a socket to one of them must be opened inside a namespace
//! ([`Netns::command`], [`Netns::enter`]), never from the root namespace.
//!
//! The ACME tests' real peers live here too, on 127.0.0.1 in the root namespace: a CA
//! ([`pebble`]) and an authoritative DNS server taking RFC 2136 updates ([`named`]).
//!
//! This is test code: it runs `ip` and the peers as processes, which the product never does.

pub mod named;
pub mod pebble;
pub mod routers;

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True when this machine can run namespace tests: root, and `ip netns` works.
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("ip").args(["netns", "list"]).output().is_ok_and(|o| o.status.success())
}

/// Skips the calling test (with a message) when namespaces are not available; CI runs as
/// root, so there they always run.
#[macro_export]
macro_rules! require_netns {
    () => {
        if !$crate::available() {
            eprintln!("skipped: needs root and `ip netns`");
            return;
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call, fit for namespaces and interfaces
/// (at most 15 bytes): `prefix` (keep it to 4 letters) + pid + counter.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("{prefix}{}x{n}", std::process::id() % 100_000);
    name.truncate(15);
    name
}

/// Runs `ip` with `args` in the root namespace; an error carries its stderr.
pub fn ip(args: &[&str]) -> io::Result<()> {
    checked(Command::new("ip").args(args).output()?, &format!("ip {}", args.join(" "))).map(drop)
}

fn checked(output: Output, what: &str) -> io::Result<String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(io::Error::other(format!("{what}: {}", String::from_utf8_lossy(&output.stderr).trim())))
    }
}

/// A network namespace, deleted on drop with every process still running in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named from `prefix` with its loopback up.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let name = unique_name(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec` and `ip link ... netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `args` inside the namespace and returns its stdout; an error carries its stderr.
    pub fn run(&self, args: &[&str]) -> io::Result<String> {
        let (program, rest) = args.split_first().ok_or_else(|| io::Error::other("empty command"))?;
        let output = self.command(program).args(rest).output()?;
        checked(output, &format!("[{}] {}", self.name, args.join(" ")))
    }

    /// Starts `command` (from [`Netns::command`]) as a [`Process`], killed on drop.
    pub fn spawn(&self, command: &mut Command) -> io::Result<Process> {
        let process = Process::spawn(command)?;
        // `ip netns exec` enters the namespace after it starts: until it has, the namespace
        // does not list it, and a drop right away would leave it running.
        let pid = process.id();
        if let Ok(ours) = std::fs::metadata(format!("/var/run/netns/{}", self.name)) {
            use std::os::unix::fs::MetadataExt;
            let inside = || std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ours.ino());
            let deadline = Instant::now() + Duration::from_secs(2);
            while !inside() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(process)
    }

    /// Runs `f` on a thread that has entered the namespace and returns its result: sockets
    /// opened there belong to the namespace (a Tokio runtime built inside works too).
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        let path = PathBuf::from("/var/run/netns").join(&self.name);
        let file = std::fs::File::open(path)?;
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is a namespace file kept open for the call; setns only
            // changes this thread's network namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("the thread in the namespace panicked"))?
    }

    /// Adds `address` (CIDR form) to `device` inside the namespace and sets it up.
    pub fn address(&self, device: &str, address: &str) -> io::Result<()> {
        let family = if address.contains(':') { "-6" } else { "-4" };
        self.run(&["ip", family, "addr", "add", address, "dev", device, "nodad"])
            .or_else(|_| self.run(&["ip", family, "addr", "add", address, "dev", device]))?;
        self.run(&["ip", "link", "set", device, "up"]).map(drop)
    }

    /// Process ids of everything running in the namespace.
    fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for _ in 0..3 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: sending a signal has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Joins two namespaces with a veth pair: `a_if` in `a` with `a_address`, `b_if` in `b`
/// with `b_address` (CIDR forms; empty for none). Both ends are up. Removed with the
/// namespaces.
pub fn veth(a: &Netns, a_if: &str, a_address: &str, b: &Netns, b_if: &str, b_address: &str) -> io::Result<()> {
    let temp = unique_name("vt");
    ip(&["link", "add", &temp, "netns", a.name(), "type", "veth", "peer", "name", b_if, "netns", b.name()])?;
    a.run(&["ip", "link", "set", &temp, "name", a_if])?;
    for (ns, device, address) in [(a, a_if, a_address), (b, b_if, b_address)] {
        if address.is_empty() {
            ns.run(&["ip", "link", "set", device, "up"])?;
        } else {
            ns.address(device, address)?;
        }
    }
    Ok(())
}

/// Creates bridge `name` inside `ns`, up, with `address` (CIDR; empty for none).
pub fn bridge(ns: &Netns, name: &str, address: &str) -> io::Result<()> {
    ns.run(&["ip", "link", "add", name, "type", "bridge"])?;
    if address.is_empty() {
        ns.run(&["ip", "link", "set", name, "up"]).map(drop)
    } else {
        ns.address(name, address)
    }
}

/// Joins `member` to `hub`'s bridge `bridge_name` with a veth pair: `member_if` in
/// `member` with `member_address`, its peer `port` enslaved to the bridge.
pub fn attach(
    hub: &Netns,
    bridge_name: &str,
    port: &str,
    member: &Netns,
    member_if: &str,
    member_address: &str,
) -> io::Result<()> {
    veth(hub, port, "", member, member_if, member_address)?;
    hub.run(&["ip", "link", "set", port, "master", bridge_name]).map(drop)
}

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
}

impl Process {
    /// Starts `command` with stdin closed.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        Ok(Self { child: Some(command.stdin(Stdio::null()).spawn()?) })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) and waits up to `timeout` for the exit.
    pub fn signal(&mut self, signal: i32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        // SAFETY: sending a signal has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process now (as a crash would) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 50 ms until it is true or `timeout` passes; true if it became true.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scratch directory removed on drop (configuration files of peers such as bird).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/sluice-<prefix>-<unique>`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!("sluice-{}", unique_name(prefix)));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_join_and_vanish() {
        require_netns!();
        let a = Netns::new("ta").unwrap();
        let b = Netns::new("tb").unwrap();
        veth(&a, "ea", "198.18.200.1/24", &b, "eb", "198.18.200.2/24").unwrap();
        b.run(&["ping", "-c", "1", "-W", "2", "198.18.200.1"]).unwrap();
        let inside = a.enter(|| std::net::UdpSocket::bind("198.18.200.1:0").map_err(|e| e.to_string())).unwrap();
        assert!(inside.is_ok(), "the address exists inside the namespace: {inside:?}");
        assert!(std::net::UdpSocket::bind("198.18.200.1:0").is_err(), "and not outside");
        let sleeper = b.spawn(b.command("sleep").arg("600")).unwrap();
        let name = b.name().to_owned();
        let pid = sleeper.id();
        std::mem::forget(sleeper);
        drop(b);
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
        assert!(wait_until(Duration::from_secs(2), || !PathBuf::from(format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))));
    }
}
