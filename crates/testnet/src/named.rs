//! A real authoritative DNS server for the DNS-01 tests: BIND 9 (`named -g`, Debian's
//! `bind9`, installed by `scripts/deps`) on a free 127.0.0.1 port, serving one zone that
//! accepts RFC 2136 dynamic updates signed with one TSIG key (hmac-sha256). Give its
//! [`Named::addr`] to pebble (`PebbleOptions::dns_server`) and to the updater under test;
//! [`Named::txt`] reads back what the zone holds.
//!
//! Everything lives in a temp dir; the process is killed and the dir removed on drop, also
//! when the test panics (then `named.log` is printed first).
//!
//! This is test code: the product never runs `named`.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::pebble::{free_port, wait_for_port};

/// Longest wait for `named` to load its zone.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one answer to a query (UDP; [`Named::txt`] asks up to three times).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A running `named` serving one zone from a temp dir.
pub struct Named {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
    zone: String,
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- named.log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free for both TCP and UDP on 127.0.0.1 (nothing listens on it once this returns).
pub fn free_dns_port() -> u16 {
    loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Named {
    /// Starts `named` serving `zone` (e.g. `"sluice.test"`: an SOA, an NS and its A record,
    /// nothing else) with dynamic updates allowed for the TSIG key `key_name` with the
    /// hmac-sha256 secret `secret_base64`, and waits until the zone is loaded. Panics
    /// (failing the test) when it cannot; unsigned updates and other keys are refused.
    pub fn start(zone: &str, key_name: &str, secret_base64: &str) -> Named {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let zone = zone.trim_end_matches('.').to_owned();
        let port = free_dns_port();
        let dir = std::env::temp_dir().join(format!(
            "sluice-named-{}-{}-{port}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("named directory");
        let d = dir.display();
        let conf = format!(
            r#"key "{key_name}" {{ algorithm hmac-sha256; secret "{secret_base64}"; }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
}};
controls {{ }};
zone "{zone}" {{
    type primary;
    file "{d}/zone.db";
    allow-update {{ key "{key_name}"; }};
}};
"#
        );
        let records = format!(
            "$TTL 300
@       IN SOA ns1.{zone}. hostmaster.{zone}. ( 1 3600 600 86400 60 )
@       IN NS  ns1.{zone}.
ns1     IN A   127.0.0.1
"
        );
        let spawned = std::fs::write(dir.join("named.conf"), conf)
            .and_then(|()| std::fs::write(dir.join("zone.db"), records))
            .and_then(|()| std::fs::File::create(dir.join("named.log")))
            .and_then(|log| {
                Command::new("named")
                    .arg("-g")
                    .arg("-c")
                    .arg(dir.join("named.conf"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(log.try_clone()?))
                    .stderr(Stdio::from(log))
                    .spawn()
            });
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                panic!("cannot start named (run scripts/deps: Debian's bind9): {e}");
            }
        };
        // From here on, a panic drops `named`: killed and cleaned up.
        let named = Named { child, dir, addr: SocketAddr::from(([127, 0, 0, 1], port)), zone };
        wait_for_port(port);
        // Listening is not yet serving: wait until the zone is loaded and answered for (the
        // log says "running as: …" long before, and a zone still loading answers SERVFAIL).
        let deadline = Instant::now() + START_TIMEOUT;
        let apex = Name::from_ascii(format!("{}.", named.zone)).expect("zone name");
        loop {
            let loaded = named.log().contains("all zones loaded")
                && named.query(&apex, RecordType::SOA).is_some_and(|answer| {
                    answer.metadata.response_code == ResponseCode::NoError && !answer.answers.is_empty()
                });
            if loaded {
                break;
            }
            assert!(Instant::now() < deadline, "named did not load its zone within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        named
    }

    /// Where `named` answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone it serves, without the trailing dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Everything `named` logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }

    /// The TXT strings at `name` (absolute or not, e.g. `_acme-challenge.sluice.test.`) as
    /// `named` answers them now, each record's strings joined; empty when there are none.
    /// Blocking (a UDP query); panics when `named` does not answer or answers an error
    /// other than NXDOMAIN.
    pub fn txt(&self, name: &str) -> Vec<String> {
        let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("DNS name {name:?}: {e}"));
        let answer = (0..3)
            .find_map(|_| self.query(&name, RecordType::TXT))
            .unwrap_or_else(|| panic!("named at {} did not answer TXT {name}", self.addr));
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => panic!("named answered {code} for TXT {name}"),
        }
        answer
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(String::from_utf8_lossy(&txt.txt_data.concat()).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// One UDP query for `name` and `kind`; `None` when no answer came within
    /// [`QUERY_TIMEOUT`].
    fn query(&self, name: &Name, kind: RecordType) -> Option<Message> {
        let mut name = name.clone();
        name.set_fqdn(true);
        let mut query = Message::query();
        query.add_query(Query::query(name, kind));
        let id = query.metadata.id;
        let bytes = query.to_vec().expect("encode a DNS query");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        socket.set_read_timeout(Some(QUERY_TIMEOUT)).expect("read timeout");
        socket.send_to(&bytes, self.addr).ok()?;
        let mut buffer = vec![0u8; 65535];
        loop {
            let (n, from) = socket.recv_from(&mut buffer).ok()?;
            if from != self.addr {
                continue;
            }
            match Message::from_vec(&buffer[..n]) {
                Ok(answer) if answer.metadata.id == id => return Some(answer),
                _ => continue,
            }
        }
    }
}
