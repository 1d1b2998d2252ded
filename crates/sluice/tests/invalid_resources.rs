//! Invalid input is reported precisely and never takes valid configuration down:
//! `sluice check` names each bad Ingress (`Ingress default/<name>`) and the field,
//! and exits 1; `sluice run` on the same manifests serves the good Ingress while the
//! bad ones' hosts get 404; a clean directory checks with exit 0 and a one-line
//! summary; a file with broken YAML is reported by file name; a TLS Secret with a
//! garbage certificate drops only that TLS entry (plain HTTP still routes, HTTPS gets
//! the default certificate, other TLS hosts keep theirs), and so does a Secret whose
//! key does not belong to its certificate.

mod common;

use std::path::Path;

use common::*;

/// The bad Ingresses: (name, host it would serve, field the diagnostic must name, manifest).
fn bad_ingresses() -> Vec<(&'static str, Option<&'static str>, &'static str, String)> {
    let ingress = |name: &str, body: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  ingressClassName: sluice\n{body}"
        )
    };
    let backend = "            backend:\n              service:\n                name: echo\n                port:\n                  number: 8080\n";
    vec![
        (
            "bad-host",
            Some("Foo_Bar..com"),
            "spec.rules[0].host",
            ingress(
                "bad-host",
                &format!("  rules:\n    - host: \"Foo_Bar..com\"\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n{backend}"),
            ),
        ),
        (
            "bad-path",
            Some("bad-path.test"),
            "spec.rules[0].http.paths[0].path",
            ingress(
                "bad-path",
                &format!("  rules:\n    - host: bad-path.test\n      http:\n        paths:\n          - path: foo\n            pathType: Prefix\n{backend}"),
            ),
        ),
        (
            "no-path-type",
            Some("no-path-type.test"),
            "spec.rules[0].http.paths[0].pathType",
            ingress(
                "no-path-type",
                &format!("  rules:\n    - host: no-path-type.test\n      http:\n        paths:\n          - path: /\n{backend}"),
            ),
        ),
        (
            "no-port",
            Some("no-port.test"),
            "spec.rules[0].http.paths[0].backend.service.port",
            ingress(
                "no-port",
                "  rules:\n    - host: no-port.test\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: echo\n                port: {}\n",
            ),
        ),
        (
            "bad-schema",
            None,
            "spec.rules",
            ingress("bad-schema", "  rules: 5\n"),
        ),
    ]
}

/// The good Ingress `good` for host `good.test`.
fn good_ingress() -> Ingress {
    Ingress::new("good").path(Some("good.test"), "Prefix", "/", "echo")
}

/// `sluice check --manifests <dir>` → (exit code, stdout + stderr).
fn check(dir: &Path, extra: &[&str]) -> (i32, String) {
    let dir = dir.to_string_lossy();
    let mut args = vec!["check", "--manifests", dir.as_ref()];
    args.extend_from_slice(extra);
    let out = run_sluice_command(&args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// A fixture with the echo backend, the good Ingress and every bad one (one file each).
fn fixture_with_bad_ingresses() -> Fixture {
    let mut fx = Fixture::new("invalid");
    fx.backend("echo");
    fx.ingress(&good_ingress());
    for (name, _, _, yaml) in bad_ingresses() {
        fx.write(&format!("ingress-{name}.yaml"), &yaml);
    }
    fx
}

#[test]
fn check_names_each_bad_ingress_and_field() {
    let fx = fixture_with_bad_ingresses();
    let (code, output) = check(&fx.manifests(), &[]);
    assert_eq!(code, 1, "check must exit 1; output:\n{output}");
    let mut missing = Vec::new();
    for (name, _, field, _) in bad_ingresses() {
        let object = format!("Ingress default/{name}");
        if !output.lines().any(|l| l.contains(&object) && l.contains(field)) {
            missing.push(format!("{object} {field}"));
        }
    }
    assert!(missing.is_empty(), "no diagnostic line for: {missing:?}\noutput:\n{output}");
    assert!(!output.contains("Ingress default/good "), "the good Ingress was reported:\n{output}");
}

#[test]
fn run_serves_the_good_ingress_and_ignores_the_bad_ones() {
    let fx = fixture_with_bad_ingresses();
    let sluice = fx.start(&[]);
    let resp = sluice.get("good.test", "/");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.echo().service(), "echo");
    for (name, host, _, _) in bad_ingresses() {
        let Some(host) = host else { continue };
        let resp = sluice.get(host, "/");
        // `Foo_Bar..com` is not even a valid Host: 400 is as good as 404 for it.
        let acceptable: &[u16] = if name == "bad-host" { &[404, 400] } else { &[404] };
        assert!(
            acceptable.contains(&resp.status),
            "Ingress {name}: Host {host} got {} (want {acceptable:?}): {:?}",
            resp.status,
            resp.text()
        );
    }
}

#[test]
fn check_accepts_a_clean_directory_with_a_summary() {
    let mut fx = Fixture::new("clean");
    fx.backend("echo");
    fx.ingress(&good_ingress());
    let manifests = fx.manifests();
    let out = run_sluice_command(&["check", "--manifests", &manifests.to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want a one-line summary, got:\n{stdout}");
}

#[test]
fn broken_yaml_is_reported_by_file_name() {
    let mut fx = Fixture::new("broken-yaml");
    fx.backend("echo");
    fx.ingress(&good_ingress());
    fx.write(
        "broken-syntax.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: [unclosed\n  namespace: default\nspec: {\n",
    );
    let (code, output) = check(&fx.manifests(), &[]);
    assert_eq!(code, 1, "output:\n{output}");
    assert!(output.contains("broken-syntax.yaml"), "the broken file is not named:\n{output}");
    // One line per diagnostic: the broken file's diagnostic and the summary, nothing else.
    let out = run_sluice_command(&["check", "--manifests", &fx.manifests().to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "want exactly one diagnostic line and the summary, got:\n{stdout}");
    assert!(lines[0].contains("broken-syntax.yaml"), "{stdout}");
}

#[test]
fn garbage_tls_secret_drops_only_that_tls_entry() {
    let mut fx = Fixture::new("garbage-tls");
    fx.backend("echo");
    let good = test_cert(&["good-tls.test"]);
    let fallback = test_cert(&["fallback.test"]);
    let valid_key = test_cert(&["garbage.test"]).key_pem;
    fx.tls_secret("good-tls", &good);
    fx.tls_secret("fallback-tls", &fallback);
    fx.write(
        "secret-garbage-tls.yaml",
        &tls_secret_yaml(
            "garbage-tls",
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            valid_key.as_bytes(),
        ),
    );
    fx.ingress(&Ingress::new("garbage").tls(&["garbage.test"], "garbage-tls").path(
        Some("garbage.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("good-tls").tls(&["good-tls.test"], "good-tls").path(
        Some("good-tls.test"),
        "Prefix",
        "/",
        "echo",
    ));

    let (code, output) = check(&fx.manifests(), &[]);
    assert_eq!(code, 1, "output:\n{output}");
    assert!(output.lines().any(|l| l.contains("garbage-tls")), "no diagnostic names the Secret garbage-tls:\n{output}");
    assert!(!output.lines().any(|l| l.contains("good-tls")), "the good TLS entry was reported:\n{output}");

    let sluice = fx.start(&["--default-tls-secret", "default/fallback-tls"]);
    // Plain HTTP for the host is still redirected to https, as for any host with TLS.
    let resp = sluice.get("garbage.test", "/");
    assert_eq!(resp.status, 308, "{resp:?}");
    // HTTPS for it gets the default certificate and still routes.
    let raw = http_request("GET", "garbage.test", "/", &[], b"");
    let (resp, leaf) =
        https_exchange(sluice.https, "garbage.test", TlsOptions::default(), &raw).expect("HTTPS to garbage.test");
    assert_eq!(leaf, fallback.der, "garbage.test must get the default certificate");
    assert_eq!(resp.status, 200, "{resp:?}");
    // The other TLS host keeps its certificate.
    let opts = TlsOptions { trust: Some(&good.der), ..TlsOptions::default() };
    let raw = http_request("GET", "good-tls.test", "/", &[], b"");
    let (resp, leaf) = https_exchange(sluice.https, "good-tls.test", opts, &raw).expect("HTTPS to good-tls.test");
    assert_eq!(leaf, good.der);
    assert_eq!(resp.status, 200);
}

#[test]
fn tls_secret_with_a_foreign_key_is_rejected() {
    let mut fx = Fixture::new("foreign-key");
    fx.backend("echo");
    let cert = test_cert(&["mismatch.test"]);
    let other = test_cert(&["mismatch.test"]);
    let fallback = test_cert(&["fallback.test"]);
    fx.tls_secret("fallback-tls", &fallback);
    fx.write(
        "secret-mismatch-tls.yaml",
        &tls_secret_yaml("mismatch-tls", cert.cert_pem.as_bytes(), other.key_pem.as_bytes()),
    );
    fx.ingress(&Ingress::new("mismatch").tls(&["mismatch.test"], "mismatch-tls").path(
        Some("mismatch.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let (code, output) = check(&fx.manifests(), &[]);
    assert_eq!(code, 1, "output:\n{output}");
    assert!(
        output.lines().any(|l| l.contains("mismatch-tls")),
        "no diagnostic names the Secret mismatch-tls:\n{output}"
    );

    let sluice = fx.start(&["--default-tls-secret", "default/fallback-tls"]);
    let raw = http_request("GET", "mismatch.test", "/", &[], b"");
    let (resp, leaf) = https_exchange(sluice.https, "mismatch.test", TlsOptions::default(), &raw)
        .expect("HTTPS to mismatch.test must still complete a handshake");
    assert_eq!(leaf, fallback.der, "mismatch.test must get the default certificate");
    assert_eq!(resp.status, 200, "{resp:?}");
}
