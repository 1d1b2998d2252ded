//! What the tests share: the fake API server (crate `sluice-fake-apiserver`), a `kube::Client`
//! pointed at it, and snapshots from the real translation.
#![allow(dead_code)]

pub mod snapshot;

// Each test file uses a different part.
#[allow(unused_imports)]
pub use sluice_fake_apiserver::{eventually, objects, FakeApi, Gone, Recorded};

/// A `kube::Client` for a fake API server (the fake itself does not depend on `kube`).
pub trait FakeClient {
    /// A client pointed at the fake, without credentials.
    fn client(&self) -> kube::Client;
}

impl FakeClient for FakeApi {
    fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("the fake's URL"));
        kube::Client::try_from(config).expect("a client for the fake")
    }
}
