//! The client address in forwarding headers (`X-Forwarded-For` or `forwarded-for-header`,
//! each line of the input one header value), as the listeners read it when the controller
//! ConfigMap sets `enable-real-ip` or `use-forwarded-headers`.

#![no_main]

use std::net::IpAddr;

use http::header::HeaderName;
use libfuzzer_sys::fuzz_target;
use sluice_config::RealIp;

fuzz_target!(|data: &[u8]| {
    let lists: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let trusts = [vec!["0.0.0.0/0", "::/0"], vec!["10.0.0.0/8", "::1/128"], vec![]];
    let peers: [IpAddr; 3] = [[10, 0, 0, 1].into(), "::ffff:10.0.0.1".parse().unwrap(), [192, 0, 2, 1].into()];
    for trusted in trusts {
        let real_ip = RealIp {
            header: HeaderName::from_static("x-forwarded-for"),
            trusted: trusted.iter().map(|net| net.parse().unwrap()).collect(),
        };
        for peer in peers {
            let client = real_ip.client(peer, lists.iter().copied());
            if !real_ip.trusted.iter().any(|net| net.contains(&sluice_config::canonical(peer))) {
                assert_eq!(client, peer, "an untrusted peer is the client");
            }
        }
    }
});
