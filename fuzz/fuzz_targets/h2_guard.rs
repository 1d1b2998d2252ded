//! The HTTP/2 control-frame flood guard that every client connection is read through: the
//! input, read in chunks of sizes its first byte chooses, must come out unchanged (the guard
//! only watches frame headers) until the guard fails the connection, which it may only do
//! on a connection that started with the HTTP/2 preface.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::h2_guard;
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sizes, stream)) = data.split_first() else {
        return;
    };
    runtime().block_on(async {
        let mut guard = h2_guard(stream);
        let mut out = Vec::with_capacity(stream.len());
        let mut chunk = [0u8; 256];
        let mut turn = 0u32;
        loop {
            // Chunk sizes from 1 to 256, varying with the first byte of the input.
            let size = 1 + usize::from(sizes.rotate_left(turn % 8));
            turn += 1;
            match guard.read(&mut chunk[..size]).await {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    assert!(stream.starts_with(PREFACE), "failed a connection without the HTTP/2 preface");
                    break;
                }
            }
        }
        assert!(stream.starts_with(&out), "the guard changed the bytes it passed on");
    });
});
