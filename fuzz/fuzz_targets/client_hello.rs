//! The TLS ClientHello SNI parser that TLS passthrough runs on a connection's first bytes
//! (records possibly split, bytes possibly cut anywhere).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::{client_hello, ClientHello};

fuzz_target!(|data: &[u8]| {
    let whole = client_hello(data);
    // The passthrough reader parses what it has buffered after every read: a shorter read
    // must never give an answer that more bytes would change.
    let cuts = [data.len() / 2, data.len().saturating_sub(1), usize::from(data.first().copied().unwrap_or(0)) * 8];
    for cut in cuts.into_iter().filter(|cut| *cut < data.len()) {
        let part = client_hello(&data[..cut]);
        assert!(part == ClientHello::Incomplete || part == whole, "{cut} bytes: {part:?}, all: {whole:?}");
    }
});
