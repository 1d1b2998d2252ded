//! HTTP/2 abuse on raw frames (rapid reset, CONTINUATION flood, SETTINGS / PING / empty DATA
//! / WINDOW_UPDATE floods, an HPACK bomb, stream-count abuse): each flooding connection is
//! closed quickly, Sluice's memory stays bounded, and another client keeps being served.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut out = vec![(length >> 16) as u8, (length >> 8) as u8, length as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK for `GET http://f.test/` (static :method GET, :scheme http, :path /, :authority).
fn request_block() -> Vec<u8> {
    [&[0x82u8, 0x86, 0x84, 0x41, 6][..], b"f.test"].concat()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Sends `flood` (after the preface and an empty SETTINGS) on one connection while a normal
/// client makes requests; returns (time until the flooding connection was closed, normal
/// requests served of 20, Sluice's RSS growth in KiB).
fn run_flood(name: &str, frames: Vec<u8>) -> (Option<Duration>, usize, i64) {
    let mut fx = Fixture::new(&format!("h2-flood-{name}"));
    fx.backend("echo");
    fx.ingress(&Ingress::new("app").path(Some("f.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    let pid = sluice.proc.pid();
    let before = rss_kib(pid) as i64;
    let mut all = PREFACE.to_vec();
    all.extend_from_slice(&frame(0x4, 0, 0, &[]));
    all.extend_from_slice(&frames);
    let started = Instant::now();
    let conn = connect(sluice.http).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        let _ = writer.write_all(&all);
    });
    let reading = std::thread::spawn(move || {
        let mut conn = conn;
        let _ = conn.set_read_timeout(Some(Duration::from_secs(15)));
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                    return None
                }
                Err(_) => return Some(started.elapsed()),
            }
        }
    });
    let served = (0..20).filter(|_| sluice.get("f.test", "/").status == 200).count();
    let closed = reading.join().unwrap_or(None);
    let _ = writing.join();
    let growth = rss_kib(pid) as i64 - before;
    eprintln!("{name}: closed after {closed:?}, {served}/20 served, RSS +{growth} KiB");
    (closed, served, growth)
}

fn assert_survived(name: &str, (closed, served, growth): (Option<Duration>, usize, i64)) {
    assert_eq!(served, 20, "{name}: other clients served");
    assert!(closed.is_some_and(|t| t < Duration::from_secs(10)), "{name}: flooding connection closed: {closed:?}");
    assert!(growth < 64 * 1024, "{name}: RSS grew {growth} KiB");
}

#[test]
fn continuation_flood() {
    let mut flood = frame(0x1, 0, 1, &request_block()); // HEADERS without END_HEADERS
    let junk = vec![0x40u8; 16_000];
    for _ in 0..2_000 {
        flood.extend_from_slice(&frame(0x9, 0, 1, &junk)); // CONTINUATION, never ending
    }
    assert_survived("continuation", run_flood("continuation", flood));
}

#[test]
fn hpack_bomb() {
    // One large literal added to the dynamic table, then referenced thousands of times.
    let mut block = vec![0x40, 0x01, b'x', 0x7f];
    block.extend_from_slice(&[0xe1, 0x1f]); // value length 4,064 (7-bit prefix 127 + 3,937)
    block.extend(std::iter::repeat_n(b'a', 4064));
    block.extend_from_slice(&request_block());
    block.extend(std::iter::repeat_n(0xbeu8, 10_000)); // indexed: dynamic entry 62, again and again
    let flood = frame(0x1, 0x5, 1, &block[..block.len().min(16_384)]);
    let mut all = flood;
    for i in 1..200u32 {
        all.extend_from_slice(&frame(0x1, 0x5, 2 * i + 1, &[0xbe; 16_000]));
    }
    assert_survived("hpack", run_flood("hpack", all));
}

#[test]
fn settings_ping_window_update_and_empty_data_floods() {
    for (name, kind, flags, payload) in [
        ("settings", 0x4u8, 0u8, vec![0, 3, 0, 0, 0, 100]),
        ("ping", 0x6, 0, vec![0; 8]),
        ("window_update", 0x8, 0, 1u32.to_be_bytes().to_vec()),
    ] {
        let mut flood = Vec::new();
        for _ in 0..200_000 {
            flood.extend_from_slice(&frame(kind, flags, 0, &payload));
        }
        assert_survived(name, run_flood(name, flood));
    }
    let mut flood = frame(0x1, 0x4, 1, &[0x83, 0x86, 0x84, 0x41, 6, b'f', b'.', b't', b'e', b's', b't']); // POST, open
    for _ in 0..200_000 {
        flood.extend_from_slice(&frame(0x0, 0, 1, &[])); // empty DATA
    }
    assert_survived("empty_data", run_flood("empty_data", flood));
}

#[test]
fn stream_count_abuse() {
    let mut flood = Vec::new();
    for i in 0..5_000u32 {
        flood.extend_from_slice(&frame(0x1, 0x4, 2 * i + 1, &request_block())); // streams left open
    }
    assert_survived("streams", run_flood("streams", flood));
}
