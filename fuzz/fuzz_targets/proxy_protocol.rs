//! The PROXY protocol header reader (v1 text, v2 binary) on a connection's first bytes, as
//! the listeners run it when the controller ConfigMap sets `use-proxy-protocol`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::read_proxy_header;
use tokio::runtime::Runtime;

/// The longest header read: the 16-byte v2 head and at most 1,024 bytes of addresses and TLVs.
const MAX_HEADER: usize = 16 + 1024;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    let result = runtime().block_on(read_proxy_header(&mut stream));
    // Bounded, and never a byte past the header: the rest belongs to TLS or HTTP.
    let consumed = data.len() - stream.len();
    assert!(consumed <= MAX_HEADER, "read {consumed} bytes");
    if let Ok(addresses) = result {
        let header = &data[..consumed];
        assert!(header.starts_with(b"PROXY ") || header.starts_with(b"\r\n\r\n\0\r\nQUIT\n"));
        if header.starts_with(b"PROXY ") {
            assert!(header.ends_with(b"\r\n") && consumed <= 107, "{header:?}");
        }
        if let Some((source, destination)) = addresses {
            assert_eq!(source.is_ipv4(), destination.is_ipv4());
        }
    }
});
