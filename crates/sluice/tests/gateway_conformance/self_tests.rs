//! Tests of the harness itself: the table against the data, the plans, the manifests as
//! `sluice check` reads them, and the clients, comparisons and echo stand-ins against each
//! other without a Gateway in between.

use super::*;

/// Every test file is named by the table (or is a mesh file), every named file exists,
/// every Go file with literals has an entry, features use upstream names, and every
/// override selects literals that exist.
#[test]
fn the_table_covers_the_data() {
    let text = std::fs::read_to_string(EXPECTED_RESPONSES).expect("read expected-responses.json");
    let all_cases = cases::load(&text).expect("parses");
    let known_features: Vec<&str> = vec![
        "Gateway",
        "HTTPRoute",
        "ReferenceGrant",
        "GRPCRoute",
        "TLSRoute",
        "TCPRoute",
        "UDPRoute",
        "ListenerSet",
        "BackendTLSPolicy",
        "BackendTLSPolicySANValidation",
        "GatewayPort8080",
        "GatewayStaticAddresses",
        "GatewayHTTPListenerIsolation",
        "GatewayInfrastructurePropagation",
        "GatewayAddressEmpty",
        "GatewayFrontendClientCertificateValidation",
        "GatewayFrontendClientCertificateValidationInsecureFallback",
        "GatewayBackendClientCertificate",
        "GatewayHTTPSListenerDetectMisdirectedRequests",
        "GRPCRouteNamedRouteRule",
        "GRPCRouteRequestHeaderModifier",
        "TLSRouteModeTerminate",
        "TLSRouteModeMixed",
        "HTTPRouteRetry",
        "HTTPRouteRetryBackendTimeout",
        "HTTPRouteRetryConnectionError",
        "HTTPRouteBackendURLRewrite",
        "HTTPRouteBackendRequestRedirect",
    ]
    .into_iter()
    .chain(SUPPORTED_FEATURES.iter().copied())
    .collect();
    let mut problems = Vec::new();
    for test in table::TESTS {
        for file in test.manifests {
            if !Path::new(DATA).join("tests").join(file).exists() {
                problems.push(format!("{}: no tests/{file}", test.short_name));
            }
        }
        for feature in test.features {
            if !known_features.contains(feature) {
                problems.push(format!("{}: unknown feature {feature}", test.short_name));
            }
        }
        for (sel, _) in test.overrides.iter() {
            if !all_cases.iter().any(|c| c.file == test.go_file && sel.matches(c.line)) {
                problems.push(format!("{}: override {sel:?} selects no literal", test.short_name));
            }
        }
        if test.targets.is_empty() && test_blocked(test).is_none() {
            let literals =
                all_cases.iter().filter(|c| c.file == test.go_file && c.kind == Some(CaseKind::Http)).count();
            if literals > 0 && test.extras.is_empty() {
                problems.push(format!("{}: {literals} literals but no target", test.short_name));
            }
        }
    }
    let mut names: Vec<&str> = table::TESTS.iter().map(|t| t.short_name).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    if names.len() != before {
        problems.push("duplicate short names".to_owned());
    }
    for case in &all_cases {
        if !table::TESTS.iter().any(|t| t.go_file == case.file) {
            problems.push(format!("no table entry for {}", case.file));
        }
    }
    for (file, why) in unlisted_files() {
        if !file.starts_with("mesh/") {
            problems.push(format!("tests/{file}: {why}"));
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "table problems:\n{}", problems.join("\n"));
    // The Go tests' count at the pinned commit (conformance/tests/*.go, mesh excluded).
    assert_eq!(table::TESTS.len(), 139);
}

/// The Go tests runnable with the claimed features are planned with a target for each
/// HTTP literal, and what is not runnable says why.
#[test]
fn plans_have_targets_and_reasons() {
    let text = std::fs::read_to_string(EXPECTED_RESPONSES).expect("read expected-responses.json");
    let all_cases = cases::load(&text).expect("parses");
    let matching = table::TESTS.iter().find(|t| t.short_name == "HTTPRouteMatching").expect("entry");
    let items = plan(matching, &all_cases);
    let literals: Vec<&Planned> = items.iter().filter(|p| matches!(p.work, Ok(Work::Case { .. }))).collect();
    assert_eq!(literals.len(), 9);
    assert!(literals.iter().all(|p| p.label.ends_with("→ same-namespace")));
    let isolation = table::TESTS.iter().find(|t| t.short_name == "GatewayHTTPListenerIsolation").expect("entry");
    let items = plan(isolation, &all_cases);
    assert_eq!(
        items.iter().filter(|p| matches!(p.work, Ok(Work::Case { .. }))).count(),
        32,
        "16 literals × 2 Gateways"
    );
    let ports = table::TESTS.iter().find(|t| t.short_name == "HTTPRouteListenerPortMatching").expect("entry");
    let items = plan(ports, &all_cases);
    let to = |line: u32| {
        items.iter().find_map(|p| match &p.work {
            Ok(Work::Case { line: l, target, .. }) if *l == line => target.listener,
            _ => None,
        })
    };
    assert_eq!(
        (to(65), to(69), to(73), to(77), to(81)),
        (Some("listener-1"), Some("listener-2"), Some("listener-2"), Some("listener-4"), Some("listener-4"))
    );
    let grpc = table::TESTS.iter().find(|t| t.short_name == "GRPCRouteHeaderMatching").expect("entry");
    assert_eq!(test_blocked(grpc), None);
    let items = plan(grpc, &all_cases);
    let calls = items
        .iter()
        .filter(|p| matches!(&p.work, Ok(Work::Case { case, .. }) if matches!(**case, plan::Literal::Grpc(_))));
    assert_eq!(calls.count(), 11);
    let listener_set = table::TESTS.iter().find(|t| t.short_name == "ListenerSetHTTPRouting").expect("entry");
    assert_eq!(test_blocked(listener_set).as_deref(), Some("feature ListenerSet not claimed"));
    let tls = table::TESTS.iter().find(|t| t.short_name == "TLSRouteHostnameIntersection").expect("entry");
    let items = plan(tls, &all_cases);
    assert_eq!(
        items.iter().filter(|p| matches!(p.work, Ok(Work::Case { .. }))).count(),
        7,
        "HTTPS through passthrough"
    );
    assert_eq!(
        items.iter().filter(|p| p.work.as_ref().ok().and_then(Work::line).is_some()).count(),
        11,
        "and 4 rejections"
    );
    let san = table::TESTS.iter().find(|t| t.short_name == "BackendTLSPolicySANValidation").expect("entry");
    let items = plan(san, &all_cases);
    let uri: Vec<&Planned> = items
        .iter()
        .filter(|p| p.work.as_ref().err().is_some_and(|e| e == "URI subjectAltNames not supported"))
        .collect();
    assert_eq!(uri.len(), 4);
    assert!(
        items.iter().any(|p| matches!(p.work, Ok(Work::Case { failure: true, .. }))),
        "the DNS SAN mismatch must fail"
    );
    let bump = table::TESTS.iter().find(|t| t.short_name == "GatewayObservedGenerationBump").expect("entry");
    assert!(test_blocked(bump).is_some_and(|b| b.starts_with("needs a patch step")));
    let https = table::TESTS.iter().find(|t| t.short_name == "HTTPRouteHTTPSListener").expect("entry");
    let items = plan(https, &all_cases);
    assert_eq!(items.iter().filter(|p| matches!(p.work, Ok(Work::Case { .. }))).count(), 3, "the transcribed loop");
}

/// `sluice check` reads every test's manifests (base, test files, GatewayClass, the
/// suite's certificates, EndpointSlices) without a problem about the objects the harness
/// writes or the suite's Services and Namespaces; problems with Gateway API objects are the
/// point of the negative tests and are left to the status expectations.
#[test]
fn every_test_file_loads_cleanly() {
    const GATEWAY_API_KINDS: &[&str] = &[
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
        "TLSRoute",
        "TCPRoute",
        "UDPRoute",
        "ReferenceGrant",
        "BackendTLSPolicy",
        "ListenerSet",
    ];
    let base_path = Path::new(DATA).join("base/manifests.yaml");
    let base_text = std::fs::read_to_string(&base_path).expect("read base manifests");
    let mut base_docs = fixture::parse_yaml(&fixture::substitute(&base_text)).expect("base manifests parse");
    fixture::as_created(&mut base_docs);
    let programmatic = fixture::programmatic().expect("certificates");
    let mut problems = Vec::new();
    let mut files: Vec<&str> = table::TESTS.iter().flat_map(|t| t.manifests.iter().copied()).collect();
    files.sort();
    files.dedup();
    for file in files {
        let dir = TempDir::new("gwconf-check");
        let text = std::fs::read_to_string(Path::new(DATA).join("tests").join(file)).expect("read test file");
        let mut docs = match fixture::parse_yaml(&fixture::substitute(&text)) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{file}: {e}"));
                continue;
            }
        };
        fixture::as_created(&mut docs);
        let mut all = base_docs.clone();
        all.extend(docs.iter().cloned());
        let mut n = 0u8;
        let pods = fixture::pods(&all, || {
            n += 1;
            Ipv4Addr::new(127, 77, 0, n)
        });
        let mut generated = vec![fixture::gateway_class()];
        generated.extend(programmatic.objects.iter().cloned());
        generated.extend(fixture::endpoint_slices(&all, &pods));
        let written = fixture::write_docs(dir.path(), "base.yaml", &base_docs)
            .and_then(|_| fixture::write_docs(dir.path(), "test.yaml", &docs))
            .and_then(|_| fixture::write_docs(dir.path(), "generated.yaml", &generated));
        if let Err(e) = written {
            problems.push(format!("{file}: {e}"));
            continue;
        }
        let out = common::run_sluice_command(&["check", "--manifests", &dir.path().display().to_string()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary = stdout.lines().any(|l| l.starts_with("ok: ") || l.starts_with("problems found: "));
        let others: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.starts_with("ok: ") && !l.starts_with("problems found: ") && !l.trim().is_empty())
            .filter(|l| !GATEWAY_API_KINDS.contains(&l.split(' ').next().unwrap_or_default()))
            .collect();
        if !summary || !others.is_empty() {
            problems.push(format!("{file}: sluice check: {}{stderr}", others.join("\n")));
        }
    }
    assert!(problems.is_empty(), "manifest problems:\n{}", problems.join("\n"));
}

/// The client, the echo and the comparison together: literals sent straight to a
/// `sluice echo` (as a Gateway that forwards unchanged would) pass or fail as upstream's.
#[test]
fn client_and_comparison_against_a_real_echo() {
    let logs = TempDir::new("gwconf-echo");
    let pod = Pod {
        namespace: status::INFRA.to_owned(),
        deployment: "infra-backend-v1".to_owned(),
        name: "infra-backend-v1-7b9c4d8f6b-x2k4p".to_owned(),
        ip: Ipv4Addr::new(127, 78, 0, 1),
        labels: BTreeMap::new(),
        kind: fixture::BackendKind::Http,
        env: BTreeMap::new(),
        tls_secret: None,
    };
    let echoes = fixture::start_echoes(std::slice::from_ref(&pod), logs.path()).expect("echo starts");
    let plain = client::Endpoint { addr: SocketAddr::from((pod.ip, fixture::HTTP_PORT)), tls: None };
    let h2c = client::Endpoint { addr: SocketAddr::from((pod.ip, fixture::H2C_PORT)), tls: None };
    let check = |ep: &client::Endpoint, json: &str| -> Result<(), String> {
        let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let case = cases::parse_http(&v)?;
        let (sent, got) = client::round_trip(ep, &case)?;
        cases::compare(&case, &sent, &got)
    };
    let ns = r#""Namespace": "gateway-conformance-infra""#;
    let passing = [
        format!(
            r#"{{"Request": {{"Path": "/"}}, "Response": {{"StatusCode": 200}}, "Backend": "infra-backend-v1", {ns}}}"#
        ),
        format!(
            r#"{{"Request": {{"Path": "/q?x=1", "Headers": {{"Version": "one", "x-lower": "v"}}}}, "Backend": "infra-backend", {ns}}}"#
        ),
        format!(r#"{{"Request": {{"Host": "foo.com:8080", "Path": "/"}}, {ns}}}"#),
        format!(
            r#"{{"Request": {{"Path": "/set"}}, "BackendSetResponseHeaders": {{"Some-Other-Header": "val", "X-Two": "a"}},
                "Response": {{"Headers": {{"some-other-header": "val", "X-Two": "a"}}, "AbsentHeaders": ["X-Header-Remove"]}}, {ns}}}"#
        ),
        r#"{"Request": {"Path": "/status/503"}, "Response": {"StatusCode": 503}}"#.to_owned(),
        format!(r#"{{"Request": {{"Path": "/slow?delay=50ms"}}, {ns}}}"#),
        format!(r#"{{"Request": {{"Path": "/", "Method": "POST"}}, {ns}}}"#),
    ];
    for json in &passing {
        assert_eq!(check(&plain, json), Ok(()), "{json}");
    }
    let failing = [
        (format!(r#"{{"Request": {{"Path": "/"}}, "Backend": "infra-backend-v2", {ns}}}"#), "pod name to start with"),
        (r#"{"Request": {"Path": "/"}, "Namespace": "other"}"#.to_owned(), "namespace"),
        (
            format!(r#"{{"Request": {{"Path": "/a"}}, "ExpectedRequest": {{"Request": {{"Path": "/b"}}}}, {ns}}}"#),
            "path",
        ),
        (
            format!(r#"{{"Request": {{"Path": "/"}}, "Response": {{"AbsentHeaders": ["Content-Type"]}}, {ns}}}"#),
            "not be set",
        ),
        (
            format!(
                r#"{{"Request": {{"Path": "/"}}, "ExpectedRequest": {{"Request": {{"Path": "/"}}, "AbsentHeaders": ["User-Agent"]}}, {ns}}}"#
            ),
            "User-Agent header to not be set",
        ),
        (r#"{"Request": {"Path": "/status/404"}}"#.to_owned(), "one of [200], got 404"),
        // As Go's client: a redirect status without Location is a failed request.
        (
            r#"{"Request": {"Path": "/status/302", "UnfollowRedirect": true}, "Response": {"StatusCode": 302}}"#
                .to_owned(),
            "no Location header",
        ),
    ];
    for (json, want) in &failing {
        let err = check(&plain, json).expect_err(json);
        assert!(err.contains(want), "{json}: {err}");
    }
    // echo-basic's h2c port: HTTP/2 with prior knowledge passes, HTTP/1.1 is refused.
    let h2 = format!(
        r#"{{"Request": {{"Path": "/", "Protocol": "H2C_PRIOR_KNOWLEDGE"}}, "Backend": "infra-backend-v1", {ns}, "Response": {{"Protocol": "HTTP/2.0"}}}}"#
    );
    assert_eq!(check(&h2c, &h2), Ok(()));
    let h1 = format!(r#"{{"Request": {{"Path": "/"}}, {ns}}}"#);
    assert!(check(&h2c, &h1).expect_err("h1 on the h2c port").contains("got 400"));
    // A mirror is recognised by its log line.
    let mut mirrored =
        cases::parse_http(&serde_json::json!({"Request": {"Path": "/mirror"}, "Namespace": status::INFRA})).unwrap();
    cases::add_request_id(&mut mirrored, &request_id());
    let (sent, got) = client::round_trip(&plain, &mirrored).expect("round trip");
    assert_eq!(cases::compare(&mirrored, &sent, &got), Ok(()));
    let needle = format!("Echoing back request made to {} to client", mirrored.request.path);
    assert!(
        common::wait_until(Duration::from_secs(5), || std::fs::read_to_string(&echoes[0].log)
            .unwrap_or_default()
            .contains(&needle)),
        "the echo logged the request"
    );
}

/// The HTTPS client trusts exactly the suite's `*.org` certificate (served here by an
/// Ingress of Sluice's, standing in for an HTTPS listener) and sends the server name.
#[test]
fn https_client_pins_the_listener_certificate() {
    let programmatic = fixture::programmatic().expect("certificates");
    let secret = programmatic
        .objects
        .iter()
        .find(|o| fixture::identity(o) == ("Secret", status::INFRA, "tls-validity-checks-certificate"))
        .cloned()
        .expect("secret");
    let mut fx = common::Fixture::new("gwconf-https");
    fx.backend("web");
    let mut secret = secret;
    secret["metadata"]["namespace"] = serde_json::json!(common::NS);
    fx.write("secret.yaml", &fixture::yaml_stream(&[secret]));
    fx.ingress(&common::Ingress::new("tls").tls(&["example.org"], "tls-validity-checks-certificate").path(
        Some("example.org"),
        "Prefix",
        "/",
        "web",
    ));
    let sluice = fx.start(&[]);
    let good = client::Endpoint {
        addr: sluice.https,
        tls: Some(("example.org".into(), programmatic.validity_cert_der.clone())),
    };
    let case = cases::parse_http(&serde_json::json!({"Request": {"Host": "example.org", "Path": "/"}})).unwrap();
    let (sent, got) = client::round_trip(&good, &case).expect("HTTPS round trip");
    assert_eq!(sent.scheme, "https");
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.request.host, "example.org");
    // Another certificate (Sluice's default one, for an unknown name) is refused.
    let other =
        client::Endpoint { addr: sluice.https, tls: Some(("unknown.test".into(), programmatic.validity_cert_der)) };
    let unknown = cases::parse_http(&serde_json::json!({"Request": {"Host": "unknown.test", "Path": "/"}})).unwrap();
    let err = client::round_trip(&other, &unknown).expect_err("the default certificate is not pinned");
    assert!(err.contains("another certificate"), "{err}");
}

/// The in-process backends and the gRPC, TCP, TLS, UDP and DNS clients together, without a
/// Gateway in between: what a Gateway that forwards unchanged would give passes, anything
/// else fails as upstream's comparisons say.
#[test]
fn backends_and_clients_of_the_other_kinds() {
    let programmatic = fixture::programmatic().expect("certificates");
    let pod = |deployment: &str, n: u8, kind: fixture::BackendKind, env: &[(&str, &str)], tls: Option<&str>| Pod {
        namespace: status::INFRA.to_owned(),
        deployment: deployment.to_owned(),
        name: format!("{deployment}-7b9c4d8f6b-x2k4{n}"),
        ip: Ipv4Addr::new(127, 79, 0, n),
        labels: BTreeMap::new(),
        kind,
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        tls_secret: tls.map(str::to_owned),
    };
    let pods = [
        pod("grpc-infra-backend-v1", 1, fixture::BackendKind::Grpc, &[], None),
        pod("tcp-backend", 2, fixture::BackendKind::Tcp, &[], Some("tls-passthrough-checks-certificate")),
        pod("udp-echo", 3, fixture::BackendKind::Udp, &[("SERVICE_NAME", "udp-echo")], None),
        pod("coredns", 4, fixture::BackendKind::Dns, &[], None),
        pod("tls-backend", 5, fixture::BackendKind::Http, &[], Some("tls-checks-certificate")),
    ];
    let _backends = backends::start(&pods, &programmatic).expect("backends start");
    let at = |n: u8, port: u16| SocketAddr::from((Ipv4Addr::new(127, 79, 0, n), port));

    // gRPC: Echo answers with the method, the pod and what was sent; EchoThree is unimplemented.
    let echo = grpc::parse(&serde_json::json!({"EchoRequest": {}, "Backend": "grpc-infra-backend-v1",
        "Namespace": status::INFRA, "RequestMetadata": {"Authority": "foo.example", "Metadata": {"X-Some": "v"}}}))
    .expect("case");
    let reply = grpc::call(at(1, 3000), &echo, None).expect("call");
    assert_eq!(grpc::compare(&echo, &reply), Ok(()), "{}", reply.describe());
    let seen = reply.describe();
    assert!(seen.contains("authority foo.example") && seen.contains("\"x-some\": [\"v\"]"), "{seen}");
    let other = grpc::parse(&serde_json::json!({"EchoRequest": {}, "Backend": "grpc-infra-backend-v2"})).expect("case");
    assert!(grpc::compare(&other, &reply).unwrap_err().contains("pod name"));
    let three = grpc::parse(&serde_json::json!({"EchoThreeRequest": {}, "Response": {"Code": "grpc:Unimplemented"}}))
        .expect("case");
    assert_eq!(grpc::compare(&three, &grpc::call(at(1, 3000), &three, None).expect("call")), Ok(()));
    let refused = grpc::call(at(1, 3999), &echo, None).expect("a refused connection is a status");
    assert_eq!(refused.code, tonic::Code::Unavailable);

    // TCP in clear and over TLS (SNI seen by the backend, certificate verified with the CA).
    let plain =
        l4::parse_tcp(&serde_json::json!({"Backend": "tcp-backend", "Namespace": status::INFRA})).expect("case");
    l4::tcp_exchange(at(2, 3000), None, &plain).expect("plain TCP");
    assert!(l4::tcp_pod(at(2, 3000)).expect("pod").starts_with("tcp-backend-"));
    let over_tls = l4::parse_tcp(&serde_json::json!({"Backend": "tcp-backend", "Namespace": status::INFRA,
        "BackendIsTLS": true, "Hostname": "abc.example.com"}))
    .expect("case");
    let client = l4::TlsClient {
        server_name: "abc.example.com".to_owned(),
        ca_der: programmatic.ca(status::INFRA, "tls-checks-ca-certificate").expect("CA").to_vec(),
    };
    l4::tcp_exchange(at(2, 8443), Some(&client), &over_tls).expect("TCP over TLS");
    assert!(l4::tcp_exchange(at(2, 3000), None, &over_tls).unwrap_err().contains("IS_TLS"));
    let wrong_name = l4::TlsClient { server_name: "other.example.com".to_owned(), ..client.clone() };
    assert!(l4::tcp_exchange(at(2, 8443), Some(&wrong_name), &over_tls).unwrap_err().contains("handshake"));
    // A completed handshake is not a rejection; a closed port cannot even be reached.
    assert!(l4::tls_rejected(at(2, 8443), "abc.example.com").is_err());
    assert!(l4::tls_rejected(at(2, 3999), "abc.example.com").is_err());

    // UDP echo and DNS.
    let answer = l4::udp_echo(at(3, 8080), "udp-echo", status::INFRA).expect("UDP echo");
    assert_eq!(answer["request"], "gateway-api-conformance-udp-echo");
    assert!(l4::udp_echo(at(3, 8080), "other", "").unwrap_err().contains("did not match"));
    assert!(l4::udp_pod(at(3, 8080)).expect("pod").starts_with("udp-echo-"));
    l4::dns_query(at(4, 53), "foo.bar.com.").expect("DNS answer");

    // HTTPS echo: the SNI the backend saw is compared.
    let der = programmatic.secret(status::INFRA, "tls-checks-certificate").expect("secret").cert_der.clone();
    let ep = client::Endpoint { addr: at(5, 8443), tls: Some(("abc.example.com".to_owned(), der)) };
    let case = cases::parse_http(&serde_json::json!({"Request": {"Host": "abc.example.com", "Path": "/x",
        "SNI": "abc.example.com"}, "Backend": "tls-backend", "Namespace": status::INFRA}))
    .expect("case");
    let (sent, got) = client::round_trip(&ep, &case).expect("HTTPS round trip");
    assert_eq!(cases::compare(&case, &sent, &got), Ok(()));
    let mut other_sni = case.clone();
    other_sni.request.sni = "other.example.com".to_owned();
    assert!(cases::compare(&other_sni, &sent, &got).unwrap_err().contains("SNI"));
}
