//! A real ACME CA for the tests: Debian's `pebble` (installed by `scripts/deps`), on free
//! 127.0.0.1 ports, resolving every name to 127.0.0.1 through `pebble-challtestsrv` unless
//! the test brings its own DNS server (DNS-01). Both processes are killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start pebble.
#[derive(Clone, Debug, Default)]
pub struct PebbleOptions {
    /// The port pebble's VA sends HTTP-01 validation requests to.
    pub http_port: u16,
    /// The port pebble's VA sends TLS-ALPN-01 handshakes to.
    pub tls_port: u16,
    /// `None` keeps pebble's default (5 % of nonces rejected, `badNonce`), `Some(0)` none.
    pub nonce_reject: Option<u32>,
    /// External account binding required, with this key id and base64url MAC key.
    pub eab: Option<(String, String)>,
    /// Resolve through this DNS server instead of a `pebble-challtestsrv` answering
    /// 127.0.0.1 for every name.
    pub dns_server: Option<SocketAddr>,
    /// Listen for ACME on this port (to start a CA where a client already points).
    pub listen_port: Option<u16>,
    /// `certificateValidityPeriod`: the lifetime of issued certificates, in seconds.
    pub validity_seconds: Option<u64>,
    /// The address challtestsrv resolves every name to (default 127.0.0.1).
    pub default_ipv4: Option<String>,
    /// The certificate and key (PEM) of pebble's own HTTPS listeners, from [`tls_identity`]
    /// (so a client can be given its root before pebble starts); else a fresh one.
    pub tls_identity: Option<(String, String)>,
}

/// A certificate and key (PEM) for pebble's HTTPS listeners on 127.0.0.1.
pub fn tls_identity() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .and_then(|params| params.self_signed(&key))
        .expect("pebble's certificate");
    (cert.pem(), key.serialize_pem())
}

/// A running pebble (and its challtestsrv).
pub struct Pebble {
    processes: Vec<Child>,
    dir: PathBuf,
    /// Pebble's ACME port on 127.0.0.1.
    pub listen: u16,
    /// Pebble's management port on 127.0.0.1 (`/roots/0`).
    pub management: u16,
    /// The self-signed certificate pebble's HTTPS listeners present (a client's extra root).
    pub tls_root_pem: String,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for log in ["pebble.log", "pebble.err"] {
                if let Ok(text) = std::fs::read_to_string(self.dir.join(log)) {
                    eprintln!("--- {log} ---\n{text}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free TCP port on 127.0.0.1 (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Pebble {
    /// Starts pebble as `options` say; panics (failing the test) when it cannot.
    pub fn start(options: &PebbleOptions) -> Pebble {
        let dir = std::env::temp_dir().join(format!("sluice-pebble-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("pebble directory");
        let (cert_pem, key_pem) = options.tls_identity.clone().unwrap_or_else(tls_identity);
        std::fs::write(dir.join("cert.pem"), &cert_pem).expect("write");
        std::fs::write(dir.join("key.pem"), key_pem).expect("write");
        let listen = options.listen_port.unwrap_or_else(free_port);
        let management = free_port();
        let mut config = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": options.http_port,
            "tlsPort": options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": options.eab.is_some(),
            "externalAccountMACKeys": options.eab.as_ref()
                .map(|(kid, key)| serde_json::json!({ kid: key })).unwrap_or_default(),
        });
        if let Some(seconds) = options.validity_seconds {
            config["certificateValidityPeriod"] = seconds.into();
        }
        let config = serde_json::json!({ "pebble": config });
        std::fs::write(dir.join("pebble.json"), config.to_string()).expect("write");

        let mut processes = Vec::new();
        let dns = match options.dns_server {
            Some(server) => server,
            None => {
                let (dns, dns_management) = (free_port(), free_port());
                let child = Command::new("pebble-challtestsrv")
                    .args(["-dns01", &format!("127.0.0.1:{dns}")])
                    .args(["-management", &format!("127.0.0.1:{dns_management}")])
                    .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                    .args(["-defaultIPv4", options.default_ipv4.as_deref().unwrap_or("127.0.0.1"), "-defaultIPv6", ""])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("pebble-challtestsrv (run scripts/deps)");
                processes.push(child);
                wait_for_port(dns_management);
                SocketAddr::from(([127, 0, 0, 1], dns))
            }
        };
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).expect("log file"));
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env_remove("PEBBLE_WFE_NONCEREJECT")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"));
        if let Some(percent) = options.nonce_reject {
            command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        processes.push(command.spawn().expect("pebble (run scripts/deps)"));
        let pebble = Pebble { processes, dir, listen, management, tls_root_pem: cert_pem };
        wait_for_port(listen);
        wait_for_port(management);
        pebble
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen)
    }

    /// Writes pebble's TLS certificate to a file in its directory (for `--acme-ca-bundle`).
    pub fn tls_root_file(&self) -> PathBuf {
        let path = self.dir.join("tls-root.pem");
        std::fs::write(&path, &self.tls_root_pem).expect("write");
        path
    }

    /// Checks that `chain_pem` verifies for `name`, and not for `other`, up to pebble's
    /// issuing root; returns the chain (leaf first).
    pub fn verify_chain(
        &self,
        chain_pem: &str,
        name: &str,
        other: &str,
    ) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>().expect("a PEM chain");
        assert!(!chain.is_empty(), "an empty chain");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.issuing_root_pem().as_bytes()).expect("pem")).expect("root");
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
                .build()
                .expect("verifier");
        let verify = |name: &str| {
            let name = ServerName::try_from(name.to_owned()).expect("a name");
            verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        };
        verify(name).unwrap_or_else(|e| panic!("the chain does not verify for {name}: {e}"));
        assert!(verify(other).is_err(), "the chain verifies for {other} too");
        chain
    }

    /// The root pebble issues under (PEM), from its management interface.
    pub fn issuing_root_pem(&self) -> String {
        let mut roots = rustls::RootCertStore::empty();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(self.tls_root_pem.as_bytes()).expect("pem");
        roots.add(der).expect("root");
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
        let tcp = TcpStream::connect(("127.0.0.1", self.management)).expect("pebble management");
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        use std::io::{Read, Write};
        tls.write_all(b"GET /roots/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("write");
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        let begin = text.find("-----BEGIN CERTIFICATE-----").expect("a root");
        let end = text.find("-----END CERTIFICATE-----").expect("a root") + "-----END CERTIFICATE-----".len();
        format!("{}\n", &text[begin..end])
    }
}

/// Waits (up to 10 s) until something accepts on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
