//! TLS audit with a real scanner: `sslyze --mozilla_config=intermediate` (PyPI, installed by
//! scripts/deps into .tools/) against Sluice's HTTPS listener with its default settings finds
//! nothing to report (TLS 1.0/1.1 refused, no weak suites or curves, the checks for
//! Heartbleed, ROBOT, CCS injection, renegotiation, compression); and the default
//! certificate, served for unknown or missing SNI, never names an Ingress's host.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

fn sslyze() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = repo.join(".tools/venv/bin/sslyze");
    assert!(path.exists(), "sslyze missing at {}: run scripts/deps", path.display());
    path
}

/// Today's date as (year, month, day), from the system clock.
fn today() -> (i32, u8, u8) {
    let days = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400) as i64;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// A CA, and a 90-day leaf for `host` signed by it, as a web CA would issue.
fn ca_and_leaf(host: &str) -> (String, TestCert) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Sluice audit CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let (year, month, _) = today();
    let mut leaf = CertificateParams::new(vec![host.to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // From the first of this month (never after now) to the first of the month three later.
    leaf.not_before = rcgen::date_time_ymd(year, month, 1);
    let (end_year, end_month) = if month + 3 > 12 { (year + 1, month + 3 - 12) } else { (year, month + 3) };
    leaf.not_after = rcgen::date_time_ymd(end_year, end_month, 1);
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_pem, TestCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() })
}

#[test]
fn sslyze_finds_the_default_tls_settings_compliant_with_mozilla_intermediate() {
    let mut fx = Fixture::new("tls-audit");
    fx.backend("echo");
    let (ca_pem, leaf) = ca_and_leaf("audit.test");
    fx.tls_secret("audit-tls", &leaf);
    fx.ingress(&Ingress::new("audit").tls(&["audit.test"], "audit-tls").path(
        Some("audit.test"),
        "Prefix",
        "/",
        "echo",
    ));
    // A real deployment's certificate for clients without SNI too (the generated fallback is
    // self-signed, which a compliance check rightly reports).
    let sluice = fx.start(&["--default-tls-secret", "default/audit-tls"]);
    let ca = fx.dir.write("ca.pem", &ca_pem);
    let target = format!("audit.test:{}{{127.0.0.1}}", sluice.https.port());
    let out = Command::new(sslyze())
        .args(["--mozilla_config=intermediate", "--certinfo_ca_file"])
        .arg(&ca)
        .arg(&target)
        .output()
        .expect("run sslyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK - Compliant"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}");
    for refused in ["SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1"] {
        let section = stdout.split(&format!("* {refused} Cipher Suites:")).nth(1).unwrap_or_default();
        let first_line = section.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
        assert!(first_line.contains("rejected all cipher suites"), "{refused}: {first_line}");
    }
}

#[test]
fn the_default_certificate_never_names_an_ingress_host() {
    let mut fx = Fixture::new("tls-default-cert");
    fx.backend("echo");
    let (_, leaf) = ca_and_leaf("secret-project.test");
    fx.tls_secret("project-tls", &leaf);
    fx.ingress(&Ingress::new("project").tls(&["secret-project.test"], "project-tls").path(
        Some("secret-project.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&[]);
    let raw = http_request("GET", "other.test", "/", &[], b"");
    for sni in ["other.test", "127.0.0.1"] {
        let (_, der) = https_exchange(sluice.https, sni, TlsOptions::default(), &raw).unwrap();
        assert!(
            !der.windows(b"secret-project".len()).any(|w| w == b"secret-project"),
            "SNI {sni}: the default certificate names the Ingress host"
        );
        assert_ne!(der, leaf.der);
    }
}
