//! TLS and HTTP/2, end-to-end: the certificate served for each SNI (exact host,
//! wildcard, unknown name, no SNI) compared by leaf DER with a real rustls client;
//! the default certificate, generated or from `--default-tls-secret`; HTTP/2 over
//! TLS (ALPN) and with prior knowledge on the plain port (curl); TLS 1.2 and 1.3;
//! SNI case; WebSocket over TLS; an h2c upstream selected by the Service port's
//! `appProtocol`; and HTTP/2 clients getting well-formed answers from sloppy
//! HTTP/1.1 backends.

mod common;

use common::*;

/// Certificates of the TLS fixture.
struct Certs {
    one: TestCert,
    wild: TestCert,
    fallback: TestCert,
}

/// Two TLS Ingresses (`one.tls.test` and `*.wild.test`, each with its own certificate),
/// one plain Ingress (`plain.tls.test`) and a spare Secret `fallback-tls`.
fn tls_fixture(extra_args: &[&str]) -> (Fixture, Sluice, Certs) {
    let mut fx = Fixture::new("tls");
    for service in ["one", "wild", "plain"] {
        fx.backend(service);
    }
    let certs = Certs {
        one: test_cert(&["one.tls.test"]),
        wild: test_cert(&["*.wild.test"]),
        fallback: test_cert(&["fallback.tls.test"]),
    };
    fx.tls_secret("one-tls", &certs.one);
    fx.tls_secret("wild-tls", &certs.wild);
    fx.tls_secret("fallback-tls", &certs.fallback);
    fx.ingress(&Ingress::new("one").tls(&["one.tls.test"], "one-tls").path(Some("one.tls.test"), "Prefix", "/", "one"));
    fx.ingress(&Ingress::new("wild").tls(&["*.wild.test"], "wild-tls").path(
        Some("*.wild.test"),
        "Prefix",
        "/",
        "wild",
    ));
    fx.ingress(&Ingress::new("plain").path(Some("plain.tls.test"), "Prefix", "/", "plain"));
    let sluice = fx.start(extra_args);
    (fx, sluice, certs)
}

/// GET / over TLS with SNI `sni` and `Host: host`; returns (status, service, leaf DER).
fn https_get(sluice: &Sluice, sni: &str, host: &str, trust: Option<&[u8]>) -> (u16, String, Vec<u8>) {
    let opts = TlsOptions { trust, ..TlsOptions::default() };
    let raw = http_request("GET", host, "/", &[], b"");
    let (resp, leaf) =
        https_exchange(sluice.https, sni, opts, &raw).unwrap_or_else(|e| panic!("HTTPS to SNI {sni}: {e}"));
    let service = resp.try_echo().map(|e| e.service().to_owned()).unwrap_or_default();
    (resp.status, service, leaf)
}

#[test]
fn certificate_is_chosen_by_sni() {
    let (_fx, sluice, certs) = tls_fixture(&[]);

    // Exact host: its certificate, verifying for the host.
    let (status, service, leaf) = https_get(&sluice, "one.tls.test", "one.tls.test", Some(&certs.one.der));
    assert_eq!((status, service.as_str()), (200, "one"));
    assert_eq!(leaf, certs.one.der, "one.tls.test got another certificate");

    // Wildcard: any single label under wild.test.
    for host in ["a.wild.test", "other.wild.test"] {
        let (status, service, leaf) = https_get(&sluice, host, host, Some(&certs.wild.der));
        assert_eq!((status, service.as_str()), (200, "wild"), "{host}");
        assert_eq!(leaf, certs.wild.der, "{host} got another certificate");
    }

    // A name with no certificate gets the default one, and routes normally.
    let (status, service, default_leaf) = https_get(&sluice, "plain.tls.test", "plain.tls.test", None);
    assert_eq!((status, service.as_str()), (200, "plain"));
    assert!(!default_leaf.is_empty());
    assert_ne!(default_leaf, certs.one.der);
    assert_ne!(default_leaf, certs.wild.der);
    assert_ne!(default_leaf, certs.fallback.der, "fallback-tls is not the default without the flag");

    // The wildcard covers one label only: deeper names get the default certificate.
    let (_, _, leaf) = https_get(&sluice, "a.b.wild.test", "a.b.wild.test", None);
    assert_eq!(leaf, default_leaf, "a.b.wild.test");

    // No SNI at all (connecting by IP): the default certificate.
    let (_, _, leaf) = https_get(&sluice, "127.0.0.1", "one.tls.test", None);
    assert_eq!(leaf, default_leaf, "no SNI");
}

#[test]
fn default_tls_secret_flag_sets_the_default_certificate() {
    let (_fx, sluice, certs) = tls_fixture(&["--default-tls-secret", "default/fallback-tls"]);
    let (status, service, leaf) = https_get(&sluice, "plain.tls.test", "plain.tls.test", None);
    assert_eq!((status, service.as_str()), (200, "plain"));
    assert_eq!(leaf, certs.fallback.der, "unknown SNI must get default/fallback-tls");
    let (_, _, leaf) = https_get(&sluice, "one.tls.test", "one.tls.test", Some(&certs.one.der));
    assert_eq!(leaf, certs.one.der, "SNI one.tls.test still gets its own certificate");
}

/// `curl -sk --resolve host:PORT:127.0.0.1 <args> https://host:PORT<path>`; returns
/// (body, http_version).
fn curl_https(sluice: &Sluice, host: &str, path: &str, args: &[&str]) -> (String, String) {
    let port = sluice.https.port();
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path}");
    let mut all = vec!["-k", "--resolve", &resolve, "-o", "-", "-w", "\n%{http_version}"];
    all.extend_from_slice(args);
    all.push(&url);
    let (ok, out, err) = curl(&all);
    assert!(ok, "curl {all:?} failed: {err}");
    let (body, version) = out.rsplit_once('\n').unwrap_or(("", out.as_str()));
    (body.to_owned(), version.trim().to_owned())
}

#[test]
fn http2_over_tls_with_alpn() {
    let (_fx, sluice, _certs) = tls_fixture(&[]);
    let (body, version) = curl_https(&sluice, "one.tls.test", "/h2?x=1", &["--http2"]);
    assert_eq!(version, "2", "curl --http2 did not negotiate h2");
    let v: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(v["service"], "one");
    assert_eq!(v["proto"], "HTTP/1.1", "upstream is HTTP/1.1 by default");
    assert_eq!(v["path"], "/h2?x=1");
    assert_eq!(v["host"], format!("one.tls.test:{}", sluice.https.port()));

    let (_, version) = curl_https(&sluice, "one.tls.test", "/", &["--http1.1"]);
    assert_eq!(version, "1.1");
}

#[test]
fn http2_prior_knowledge_on_the_plain_port() {
    let (_fx, sluice, _certs) = tls_fixture(&[]);
    let url = format!("http://plain.tls.test:{}/pk", sluice.http.port());
    let resolve = format!("plain.tls.test:{}:127.0.0.1", sluice.http.port());
    let (ok, out, err) = curl(&[
        "--http2-prior-knowledge",
        "--resolve",
        &resolve,
        "-o",
        "-",
        "-w",
        "\n%{http_version} %{http_code}",
        &url,
    ]);
    assert!(ok, "curl failed: {err}");
    let (body, tail) = out.rsplit_once('\n').unwrap_or(("", out.as_str()));
    assert_eq!(tail.trim(), "2 200");
    let v: serde_json::Value = serde_json::from_str(body).expect("echo JSON");
    assert_eq!(v["service"], "plain");
    assert_eq!(v["path"], "/pk");
}

#[test]
fn tls_1_2_and_1_3_both_negotiate() {
    let (_fx, sluice, certs) = tls_fixture(&[]);
    for args in [&["--tlsv1.2", "--tls-max", "1.2"][..], &["--tlsv1.3"][..]] {
        let (body, _) = curl_https(&sluice, "one.tls.test", "/", args);
        let v: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
        assert_eq!(v["service"], "one", "curl {args:?}");
    }
    for (versions, want) in
        [(TlsVersions::Tls12, rustls::ProtocolVersion::TLSv1_2), (TlsVersions::Tls13, rustls::ProtocolVersion::TLSv1_3)]
    {
        let opts = TlsOptions { trust: Some(&certs.one.der), versions, ..TlsOptions::default() };
        let stream = tls_connect(sluice.https, "one.tls.test", opts).unwrap_or_else(|e| panic!("{versions:?}: {e}"));
        assert_eq!(stream.conn.protocol_version(), Some(want));
    }
}

#[test]
fn h2c_upstream_by_app_protocol() {
    let mut fx = Fixture::new("h2c");
    fx.backend_with("grpcish", None, Some("kubernetes.io/h2c"));
    fx.backend("classic");
    fx.ingress(&Ingress::new("h2c").path(Some("h2c.test"), "Prefix", "/", "grpcish").path(
        Some("classic.test"),
        "Prefix",
        "/",
        "classic",
    ));
    let sluice = fx.start(&[]);
    let e = sluice.get("h2c.test", "/over-h2c?q=1").echo();
    assert_eq!(e.service(), "grpcish");
    assert_eq!(e.str("proto"), "HTTP/2.0", "appProtocol kubernetes.io/h2c");
    assert_eq!(e.str("path"), "/over-h2c?q=1");
    assert_eq!(e.str("host"), "h2c.test", "the :authority carries the Host");
    let e = sluice.get("classic.test", "/").echo();
    assert_eq!(e.str("proto"), "HTTP/1.1");
}

#[test]
fn http2_client_gets_a_clean_204_from_a_sloppy_backend() {
    let fx = Fixture::new("sloppy-204");
    // Content-Length on a 204 is invalid (RFC 9110 section 8.6) but backends send it.
    let backend = scripted_backend(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
    fx.write_service("sloppy", None, None, backend.port(), &["127.0.0.1".to_owned()], true);
    fx.ingress(&Ingress::new("sloppy").path(Some("sloppy.test"), "Prefix", "/", "sloppy"));
    let sluice = fx.start(&[]);

    let resp = sluice.get("sloppy.test", "/");
    assert_eq!(resp.status, 204, "HTTP/1.1: {resp:?}");

    let url = format!("http://sloppy.test:{}/", sluice.http.port());
    let resolve = format!("sloppy.test:{}:127.0.0.1", sluice.http.port());
    let (ok, out, err) = curl(&[
        "--http2-prior-knowledge",
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert!(ok, "HTTP/2 request failed: {err}");
    assert_eq!(out.trim(), "2 204");
}

#[test]
fn sni_is_matched_case_insensitively() {
    let (_fx, sluice, certs) = tls_fixture(&[]);
    for sni in ["ONE.tls.test", "One.Tls.Test"] {
        let (status, service, leaf) = https_get(&sluice, sni, "one.tls.test", None);
        assert_eq!((status, service.as_str()), (200, "one"), "SNI {sni}");
        assert_eq!(leaf, certs.one.der, "SNI {sni} got another certificate");
    }
    let (_, _, leaf) = https_get(&sluice, "A.WILD.test", "a.wild.test", None);
    assert_eq!(leaf, certs.wild.der, "SNI A.WILD.test");
}

#[test]
fn websocket_over_tls() {
    let (_fx, sluice, _certs) = tls_fixture(&[]);
    websocket_echo_roundtrip_tls(sluice.https, "one.tls.test", "/wss").expect("wss via Sluice");
}

#[test]
fn after_alpn_h2_only_http2_is_spoken() {
    let (_fx, sluice, _certs) = tls_fixture(&[]);
    let raw = http_request("GET", "one.tls.test", "/", &[], b"");
    let h2 = TlsOptions { alpn: &["h2"], ..TlsOptions::default() };
    let answered = https_exchange(sluice.https, "one.tls.test", h2, &raw);
    assert!(
        answered.as_ref().map_or(true, |(resp, _)| resp.status != 200),
        "an HTTP/1.1 request after ALPN h2 is not served: {:?}",
        answered.map(|(resp, _)| resp.status)
    );
    let h1 = TlsOptions { alpn: &["http/1.1"], ..TlsOptions::default() };
    let (resp, _) = https_exchange(sluice.https, "one.tls.test", h1, &raw).unwrap();
    assert_eq!(resp.status, 200);
    let (ok, out, err) = curl(&[
        "-k",
        "--http2",
        "--resolve",
        &format!("one.tls.test:{}:127.0.0.1", sluice.https.port()),
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("https://one.tls.test:{}/", sluice.https.port()),
    ]);
    assert!(ok && out == "2 200", "HTTP/2 after ALPN h2: {out} {err}");
}

#[test]
fn an_http2_body_without_content_length_reaches_an_http1_backend_whatever_the_method() {
    use http_body_util::{BodyExt, StreamBody};
    let mut fx = Fixture::new("h2-body");
    fx.backend("echo");
    fx.ingress(&Ingress::new("app").path(Some("b.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sizes: Vec<(String, u64)> = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(sluice.http).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let mut sizes = Vec::new();
        for method in ["GET", "POST", "DELETE"] {
            let chunks = ["hello ", "world"]
                .map(|c| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(c))));
            let body = StreamBody::new(futures_util::stream::iter(chunks));
            let request = http::Request::builder()
                .method(method)
                .uri(format!("http://b.test:{}/", sluice.http.port()))
                .body(body)
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let echo: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            sizes.push((method.to_owned(), echo["body_bytes"].as_u64().unwrap_or(0)));
        }
        sizes
    });
    for (method, size) in sizes {
        assert_eq!(size, 11, "{method}: the 11-byte body arrives whole");
    }
}
