//! Basic authentication (`auth-type: basic`) end to end, with hashes written by Apache's
//! real `htpasswd` (bcrypt and APR1) in `auth-file` and `auth-map` Secrets: without valid
//! credentials nothing reaches the backend, over HTTP/1.1, HTTP/2 and WebSocket upgrades; a
//! missing Secret keeps the route closed (503); `auth-type: digest` rejects the Ingress; a
//! changed Secret applies on reload; `satisfy: any` lets listed addresses in without a
//! password. Real `sluice run`, echo backends, curl.

mod common;

use std::process::Command;

use common::*;

/// `htpasswd -nb…` output: `user:hash`.
fn htpasswd(flags: &str, user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .args([flags, user, password])
        .output()
        .expect("run htpasswd (apache2-utils; run scripts/deps)");
    assert!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn secret_yaml(name: &str, data: &[(&str, &str)]) -> String {
    let mut yaml =
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\nstringData:\n");
    for (key, value) in data {
        yaml.push_str(&format!("  {key}: {value:?}\n"));
    }
    yaml
}

/// curl to the plain listener with `Host: host`: the status and what curl printed (`-i`).
fn get(sluice: &Sluice, host: &str, extra: &[&str]) -> (u16, String) {
    let url = format!("http://{}/", sluice.http);
    let host_header = format!("Host: {host}");
    let mut args = vec!["-H", host_header.as_str()];
    args.extend_from_slice(extra);
    args.push(&url);
    curl_answer(&args)
}

fn reached_backend(answer: &str) -> bool {
    answer.contains("\"service\"")
}

#[test]
fn only_valid_credentials_reach_the_backend_on_every_path() {
    let mut fx = Fixture::new("basic-auth");
    fx.backend("echo");
    let file = format!("{}\n{}\n", htpasswd("-nbB", "alice", "wonderland"), htpasswd("-nbm", "bob", "builder"));
    fx.write("secret.yaml", &secret_yaml("staff", &[("auth", &file)]));
    fx.ingress(
        &Ingress::new("admin")
            .annotation("nginx.ingress.kubernetes.io/auth-type", "basic")
            .annotation("nginx.ingress.kubernetes.io/auth-secret", "staff")
            .annotation("nginx.ingress.kubernetes.io/auth-realm", "Staff only")
            .path(Some("admin.test"), "Prefix", "/", "echo"),
    );
    fx.tls_secret("secure", &test_cert(&["secure.test"]));
    fx.ingress(
        &Ingress::new("secure")
            .annotation("nginx.ingress.kubernetes.io/auth-type", "basic")
            .annotation("nginx.ingress.kubernetes.io/auth-secret", "staff")
            .tls(&["secure.test"], "secure")
            .path(Some("secure.test"), "Prefix", "/", "echo"),
    );
    let sluice = fx.start(&[]);
    // A redirect to https answers before authentication, and reaches nothing either.
    let (status, answer) = get(&sluice, "secure.test", &[]);
    assert_eq!(status, 308, "{answer}");
    assert!(!reached_backend(&answer), "{answer}");

    for (what, extra) in [
        ("no credentials", &[][..]),
        ("a wrong password", &["-u", "alice:wrong"][..]),
        ("an unknown user", &["-u", "eve:wonderland"][..]),
        ("HTTP/2 without credentials", &["--http2-prior-knowledge"][..]),
        ("HTTP/2 with a wrong password", &["--http2-prior-knowledge", "-u", "bob:wrong"][..]),
        (
            "a WebSocket upgrade",
            &["-H", "Upgrade: websocket", "-H", "Connection: Upgrade", "-H", "Sec-WebSocket-Version: 13"][..],
        ),
        ("a POST with a body", &["--data", "secret=1"][..]),
    ] {
        let (status, answer) = get(&sluice, "admin.test", extra);
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(answer.contains("www-authenticate: Basic realm=\"Staff only\""), "{what}: {answer}");
        assert!(!reached_backend(&answer), "{what} reached the backend: {answer}");
    }
    for (what, extra) in [
        ("bcrypt", &["-u", "alice:wonderland"][..]),
        ("bcrypt again (remembered)", &["-u", "alice:wonderland"][..]),
        ("apr1", &["-u", "bob:builder"][..]),
        ("HTTP/2", &["--http2-prior-knowledge", "-u", "alice:wonderland"][..]),
    ] {
        let (status, answer) = get(&sluice, "admin.test", extra);
        assert_eq!(status, 200, "{what}: {answer}");
        assert!(reached_backend(&answer), "{what}: {answer}");
    }
    let denied =
        metric_value(&sluice.metrics(), "sluice_http_requests_denied_total{ingress=\"default/admin\",reason=\"auth\"}");
    assert_eq!(denied, Some(7.0));
}

#[test]
fn auth_maps_missing_secrets_digest_and_live_changes() {
    let mut fx = Fixture::new("basic-auth-map");
    fx.backend("echo");
    let carol = htpasswd("-nbB", "carol", "first");
    let hash = carol.split_once(':').unwrap().1.to_owned();
    fx.write("secret.yaml", &secret_yaml("users", &[("carol", &hash)]));
    let ingress = |name: &str, host: &str, kind: &str, secret: &str| {
        Ingress::new(name)
            .annotation("nginx.ingress.kubernetes.io/auth-type", kind)
            .annotation("nginx.ingress.kubernetes.io/auth-secret", secret)
            .annotation("nginx.ingress.kubernetes.io/auth-secret-type", "auth-map")
            .path(Some(host), "Prefix", "/", "echo")
    };
    fx.ingress(&ingress("mapped", "map.test", "basic", "users"));
    fx.ingress(&ingress("orphan", "orphan.test", "basic", "no-such-secret"));
    fx.ingress(&ingress("digest", "digest.test", "digest", "users"));
    fx.ingress(
        &ingress("office", "office.test", "basic", "users")
            .annotation("nginx.ingress.kubernetes.io/whitelist-source-range", "127.0.0.2")
            .annotation("nginx.ingress.kubernetes.io/satisfy", "any"),
    );
    let mut sluice = fx.start(&[]);

    assert_eq!(get(&sluice, "map.test", &["-u", "carol:first"]).0, 200);
    assert_eq!(get(&sluice, "map.test", &[]).0, 401);
    let (status, answer) = get(&sluice, "orphan.test", &["-u", "carol:first"]);
    assert_eq!(status, 503, "a missing Secret keeps the route closed: {answer}");
    assert_eq!(get(&sluice, "digest.test", &["-u", "carol:first"]).0, 404, "digest is refused");
    assert_eq!(get(&sluice, "office.test", &["--interface", "127.0.0.2"]).0, 200, "listed: no password");
    assert_eq!(get(&sluice, "office.test", &["--interface", "127.0.0.3"]).0, 401, "others must authenticate");
    assert_eq!(get(&sluice, "office.test", &["--interface", "127.0.0.3", "-u", "carol:first"]).0, 200);

    let changed = htpasswd("-nbm", "carol", "second");
    fx.write("secret.yaml", &secret_yaml("users", &[("carol", changed.split_once(':').unwrap().1)]));
    sluice.reload();
    assert_eq!(get(&sluice, "map.test", &["-u", "carol:first"]).0, 401, "the old password is gone");
    assert_eq!(get(&sluice, "map.test", &["-u", "carol:second"]).0, 200, "the new one works");
}
