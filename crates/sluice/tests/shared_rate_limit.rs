//! `--rate-limit-redis`: two Sluice replicas count one `limit-rpm` together in a real
//! `redis-server`, so the limit holds across both; when Redis is killed, traffic keeps
//! flowing on each replica's own counters and the fallback is counted.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn status_from(source: &str, sluice: &Sluice) -> u16 {
    let url = format!("http://{}/", sluice.http);
    let (_, out, err) =
        curl(&["--interface", source, "-H", "Host: login.test", "-o", "/dev/null", "-w", "%{http_code}", &url]);
    out.trim().parse().unwrap_or_else(|_| panic!("no answer from curl: {err}"))
}

#[test]
fn a_limit_holds_across_replicas_sharing_redis_and_traffic_survives_its_loss() {
    let dir = TempDir::new("redis");
    let port = free_port();
    let mut command = Command::new("redis-server");
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    command.current_dir(dir.path());
    let redis = Proc::spawn("redis-server", command, dir.path().join("redis.log"), true);
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "redis-server did not start (is it installed? run scripts/deps)"
    );

    let mut fx = Fixture::new("shared-limit");
    fx.backend("echo");
    fx.ingress(
        &Ingress::new("login")
            .annotation("nginx.ingress.kubernetes.io/limit-rpm", "4")
            .annotation("nginx.ingress.kubernetes.io/limit-burst-multiplier", "1")
            .path(Some("login.test"), "Prefix", "/", "echo"),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let flags = ["--rate-limit-redis", url.as_str(), "--rate-limit-redis-timeout", "200ms"];
    let (a, b) = (fx.start(&flags), fx.start(&flags));

    // 4 per minute with a burst of 4: five requests pass in all, whichever replica gets them.
    let statuses: Vec<u16> = (0..10).map(|i| status_from("127.0.0.2", if i % 2 == 0 { &a } else { &b })).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 503), "{statuses:?}");

    drop(redis);
    let started = Instant::now();
    let statuses: Vec<u16> = (0..5).map(|_| status_from("127.0.0.3", &a)).collect();
    assert_eq!(statuses, [200; 5], "a fresh client is served on the replica's own counters");
    assert_eq!(status_from("127.0.0.3", &a), 503, "and still limited by them");
    assert!(started.elapsed() < Duration::from_secs(3), "no request waited long for the dead Redis");
    let unavailable = metric_value(&a.metrics(), "sluice_rate_limit_redis_unavailable_total").unwrap_or(0.0);
    assert!(unavailable >= 6.0, "the fallback is counted: {unavailable}");
}
