//! Real BGP routers for tests: bird2 and FRR's bgpd, each in the foreground inside a
//! namespace with its own configuration, log and control socket in a scratch directory, so
//! nothing touches the machine's /etc or /run.

use std::path::PathBuf;
use std::time::Duration;

use crate::{wait_until, Netns, Process, TempDir};

/// How long a router may take to start.
const WAIT: Duration = Duration::from_secs(20);

/// bird2 in the foreground with its own configuration, log and control socket.
pub struct Bird {
    _process: Process,
    dir: TempDir,
}

impl Bird {
    /// Starts bird in `ns` with `config` (a `log` line to the test's file is prepended).
    pub fn start(ns: &Netns, config: &str) -> Self {
        let dir = TempDir::new("bird").expect("router setup");
        let conf = dir.path().join("bird.conf");
        let log = dir.path().join("bird.log");
        std::fs::write(&conf, format!("log \"{}\" all;\n{config}", log.display())).expect("router setup");
        let socket = dir.path().join("bird.ctl");
        let mut command = ns.command("bird");
        command.arg("-f").arg("-c").arg(&conf).arg("-s").arg(&socket);
        let process = ns.spawn(&mut command).expect("router setup");
        let bird = Self { _process: process, dir };
        assert!(wait_until(WAIT, || bird.cli(&["show", "status"]).contains("Daemon is up")), "bird did not start");
        bird
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("bird.ctl")
    }

    /// `birdc` output (stdout and stderr).
    pub fn cli(&self, args: &[&str]) -> String {
        let output =
            std::process::Command::new("birdc").arg("-s").arg(self.socket()).args(args).output().expect("router setup");
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    }

    /// `show route all`.
    pub fn routes(&self) -> String {
        self.cli(&["show", "route", "all"])
    }

    /// `show protocols all NAME`.
    pub fn protocol(&self, name: &str) -> String {
        self.cli(&["show", "protocols", "all", name])
    }

    /// Whether protocol `name`'s BGP session is established.
    pub fn established(&self, name: &str) -> bool {
        self.protocol(name)
            .lines()
            .any(|line| line.trim_start().starts_with("BGP state:") && line.contains("Established"))
    }

    /// bird's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }
}

/// FRR's bgpd alone (`-Z`, no zebra) with its own configuration, pid file and vty socket
/// directory; `-S` skips the switch to the frr user (whose vty group root is not in).
pub struct Frr {
    _process: Process,
    dir: TempDir,
}

impl Frr {
    /// Starts bgpd in `ns` with `config`.
    pub fn start(ns: &Netns, config: &str) -> Self {
        let dir = TempDir::new("frr").expect("router setup");
        let conf = dir.path().join("frr.conf");
        std::fs::write(&conf, config).expect("router setup");
        let mut command = ns.command("/usr/lib/frr/bgpd");
        command
            .args(["-S", "-Z", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("bgpd.pid"))
            .arg("--vty_socket")
            .arg(dir.path())
            .arg("--log")
            .arg(format!("file:{}", dir.path().join("bgpd.log").display()));
        let process = ns.spawn(&mut command).expect("router setup");
        let frr = Self { _process: process, dir };
        assert!(wait_until(WAIT, || frr.vtysh("show bgp summary json").contains("\"peers\"")), "bgpd did not start");
        frr
    }

    /// `vtysh -c COMMAND` output.
    pub fn vtysh(&self, command: &str) -> String {
        let output = std::process::Command::new("vtysh")
            .arg("--vty_socket")
            .arg(self.dir.path())
            .args(["-c", command])
            .output()
            .expect("router setup");
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    }

    /// bgpd's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgpd.log")).unwrap_or_default()
    }
}
