//! The automatic-HTTPS tests' shared steps: `sluice run` on listener addresses pebble knows
//! before it starts, the ACME flags for a pebble, and waiting for the issued certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use super::*;

/// `sluice run` on the given listener addresses (pebble must know them before it starts).
pub fn start_sluice(fixture: &Fixture, http: SocketAddr, https: SocketAddr, extra: &[&str]) -> Sluice {
    let admin = free_addr("127.0.0.1");
    let mut cmd = Command::new(SLUICE);
    cmd.arg("run")
        .args(["--http", &http.to_string(), "--https", &https.to_string(), "--admin", &admin.to_string()])
        .args(["--manifests", &fixture.manifests().display().to_string()])
        .args(extra)
        .env("RUST_LOG", "info,sluice::acme=debug");
    let log = fixture.dir.path().join(format!("sluice-{}.log", http.port()));
    let proc = Proc::spawn("sluice run", cmd, log, true);
    let mut sluice = Sluice { proc, http, https, admin };
    sluice.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    sluice
}

/// The ACME flags for `pebble`'s directory, trusting `root_file`, with state in `state`.
pub fn acme_flags(directory: &str, root_file: &Path, state: &Path) -> Vec<String> {
    [
        "--acme-directory",
        directory,
        "--acme-ca-bundle",
        &root_file.display().to_string(),
        "--acme-email",
        "ops@acme.test",
        "--state-dir",
        &state.display().to_string(),
        "--acme-retry-min",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The leaf served for `host` once it chains to `root` (PEM), within `within`.
pub fn wait_for_issued(sluice: &Sluice, host: &str, root_pem: &str, within: Duration) -> Vec<u8> {
    let root = CertificateDer::from_pem_slice(root_pem.as_bytes()).expect("pebble root");
    let opts = TlsOptions { trust: Some(root.as_ref()), ..TlsOptions::default() };
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match tls_connect(sluice.https, host, opts) {
            Ok(stream) => return leaf_der(&stream),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "no certificate for {host} chaining to pebble's root within {within:?} (last: {last}); log:\n{}",
        sluice.proc.log()
    );
}
