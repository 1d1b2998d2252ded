use super::*;
use sluice_config::AffinityMode;

fn parsed(pairs: &[(&str, &str)]) -> (IngressAnnotations, Vec<AnnotationReport>) {
    let map = pairs.iter().map(|(k, v)| (format!("{DEFAULT_ANNOTATIONS_PREFIX}/{k}"), v.to_string())).collect();
    parse(READING, &map)
}

const READING: Reading<'static> = Reading { prefix: DEFAULT_ANNOTATIONS_PREFIX, allow_unenforced_waf: false };

fn verdict<'a>(reports: &'a [AnnotationReport], name: &str) -> &'a AnnotationVerdict {
    let key = format!("{DEFAULT_ANNOTATIONS_PREFIX}/{name}");
    &reports.iter().find(|r| r.key == key).unwrap().verdict
}

#[test]
fn honoured_values_are_typed() {
    let (a, reports) = parsed(&[
        ("use-regex", "true"),
        ("rewrite-target", "/$2"),
        ("proxy-body-size", "8m"),
        ("proxy-read-timeout", "120"),
        ("proxy-next-upstream", "error timeout http_502"),
        ("permanent-redirect", "https://new.test$request_uri"),
        ("permanent-redirect-code", "308"),
        ("server-alias", "a.test, *.b.test"),
        ("backend-protocol", "grpc"),
    ]);
    assert!(reports.iter().all(|r| r.verdict == AnnotationVerdict::Honoured), "{reports:?}");
    assert!(a.regex_paths());
    assert_eq!(a.policy.max_body, Some(Some(8 << 20)));
    assert_eq!(a.policy.read_timeout, Some(Duration::from_secs(120)));
    assert_eq!(a.policy.retry_on.as_ref().unwrap().statuses, [StatusCode::BAD_GATEWAY]);
    assert_eq!(a.redirect.as_ref().unwrap().0, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(a.server_aliases.len(), 2);
    assert_eq!(a.backend.protocol, Some(UpstreamProtocol::H2c));
}

#[test]
fn invalid_values_are_ignored_and_named() {
    let (a, reports) = parsed(&[("proxy-body-size", "lots"), ("use-regex", "yes"), ("made-up", "1")]);
    assert!(matches!(verdict(&reports, "proxy-body-size"), AnnotationVerdict::Ignored(r) if r.contains("lots")));
    assert!(matches!(verdict(&reports, "use-regex"), AnnotationVerdict::Ignored(_)));
    assert!(matches!(verdict(&reports, "made-up"), AnnotationVerdict::Ignored(r) if r.contains("not supported")));
    assert_eq!(a.policy.max_body, None);
    assert!(!a.use_regex);
}

#[test]
fn security_annotations_and_unreadable_snippets_are_refused() {
    for (name, value) in [
        ("auth-url", "x"),
        ("auth-type", "x"),
        ("auth-tls-secret", "a/b/c"),
        ("whitelist-source-range", "10.0.0.0/33"),
        ("allowlist-source-range", "example.com"),
        ("denylist-source-range", "x"),
        ("limit-rps", "x"),
        ("enable-modsecurity", "true"),
        ("enable-owasp-core-rules", "x"),
        ("modsecurity-snippet", "SecRuleEngine On"),
    ] {
        let (_, reports) = parsed(&[(name, value)]);
        assert!(matches!(verdict(&reports, name), AnnotationVerdict::Refused(_)), "{name}");
    }
    let (_, reports) = parsed(&[("configuration-snippet", "proxy_pass http://evil;")]);
    assert!(
        matches!(verdict(&reports, "configuration-snippet"), AnnotationVerdict::Refused(r) if r.contains("proxy_pass"))
    );
    let (_, reports) = parsed(&[("backend-protocol", "FCGI")]);
    assert!(matches!(verdict(&reports, "backend-protocol"), AnnotationVerdict::Refused(_)));
}

#[test]
fn canary_settings_and_other_annotations_of_a_canary() {
    let (a, reports) = parsed(&[
        ("canary", "true"),
        ("canary-by-header", "X-Canary"),
        ("canary-weight", "30"),
        ("canary-weight-total", "200"),
        ("rewrite-target", "/"),
    ]);
    let canary = a.canary.unwrap();
    assert_eq!((canary.weight, canary.weight_total), (30, 200));
    assert_eq!(canary.header.unwrap(), "x-canary");
    assert!(matches!(verdict(&reports, "rewrite-target"), AnnotationVerdict::Ignored(_)));
    let (a, reports) = parsed(&[("canary-weight", "30")]);
    assert!(a.canary.is_none());
    assert!(matches!(verdict(&reports, "canary-weight"), AnnotationVerdict::Ignored(_)));
}

#[test]
fn other_prefixes_are_not_ours() {
    let map = [("custom.example/use-regex".to_owned(), "true".to_owned())].into_iter().collect();
    let (a, reports) = parse(READING, &map);
    assert!(reports.is_empty() && !a.use_regex);
    let (a, _) = parse(Reading { prefix: "custom.example", ..READING }, &map);
    assert!(a.use_regex);
}

#[test]
fn balancing_settings() {
    let (a, reports) = parsed(&[
        ("affinity", "Cookie"),
        ("affinity-mode", "persistent"),
        ("session-cookie-name", "route"),
        ("session-cookie-expires", "60"),
        ("session-cookie-samesite", "Strict"),
        ("session-cookie-change-on-failure", "true"),
        ("upstream-hash-by", "${request_uri}-$http_x_user"),
        ("load-balance", "ewma"),
    ]);
    assert!(reports.iter().all(|r| r.verdict == AnnotationVerdict::Honoured), "{reports:?}");
    let affinity = a.balance.affinity.unwrap();
    assert_eq!((affinity.name.as_str(), affinity.mode), ("route", AffinityMode::Persistent));
    assert_eq!(affinity.expires, Some(Duration::from_secs(60)));
    assert!(affinity.change_on_failure && affinity.path.is_empty());
    assert!(a.balance.hash_by.is_some());
    assert_eq!(a.balance.algorithm, Some(LoadBalance::Ewma));

    let (a, reports) = parsed(&[
        ("session-cookie-name", "x"),
        ("upstream-hash-by", "$host.x"),
        ("load-balance", "chash"),
        ("affinity", "ip"),
    ]);
    for name in ["session-cookie-name", "upstream-hash-by", "load-balance", "affinity"] {
        assert!(matches!(verdict(&reports, name), AnnotationVerdict::Ignored(_)), "{name}: {reports:?}");
    }
    assert!(a.balance.affinity.is_none() && a.balance.hash_by.is_none() && a.balance.algorithm.is_none());
}

#[test]
fn hash_subsets() {
    let (a, reports) = parsed(&[
        ("upstream-hash-by", "$request_uri"),
        ("upstream-hash-by-subset", "true"),
        ("upstream-hash-by-subset-size", "0"),
    ]);
    assert!(reports.iter().all(|r| r.verdict == AnnotationVerdict::Honoured), "{reports:?}");
    assert_eq!(a.balance.hash_by.unwrap().subset.map(|s| s.get()), Some(3), "0 means the default, 3");
    let (a, _) = parsed(&[("upstream-hash-by", "$host"), ("upstream-hash-by-subset", "1")]);
    assert_eq!(a.balance.hash_by.unwrap().subset.map(|s| s.get()), Some(3));
    let (a, _) = parsed(&[
        ("upstream-hash-by", "$host"),
        ("upstream-hash-by-subset", "true"),
        ("upstream-hash-by-subset-size", "5"),
    ]);
    assert_eq!(a.balance.hash_by.unwrap().subset.map(|s| s.get()), Some(5));

    let (a, reports) = parsed(&[
        ("upstream-hash-by", "$host"),
        ("upstream-hash-by-subset", "true"),
        ("upstream-hash-by-subset-size", "-1"),
    ]);
    assert!(matches!(verdict(&reports, "upstream-hash-by-subset-size"), AnnotationVerdict::Ignored(_)));
    assert_eq!(a.balance.hash_by.unwrap().subset.map(|s| s.get()), Some(3), "an invalid size keeps 3");
    let (a, reports) = parsed(&[("upstream-hash-by", "$host"), ("upstream-hash-by-subset-size", "4")]);
    assert!(
        matches!(verdict(&reports, "upstream-hash-by-subset-size"), AnnotationVerdict::Ignored(r) if r.contains("without"))
    );
    assert!(a.balance.hash_by.unwrap().subset.is_none());
    let (a, reports) = parsed(&[("upstream-hash-by-subset", "true")]);
    assert!(
        matches!(verdict(&reports, "upstream-hash-by-subset"), AnnotationVerdict::Ignored(r) if r.contains("without"))
    );
    assert!(a.balance.hash_by.is_none());
    let (_, reports) = parsed(&[("upstream-hash-by", "$host"), ("upstream-hash-by-subset", "yes")]);
    assert!(matches!(verdict(&reports, "upstream-hash-by-subset"), AnnotationVerdict::Ignored(_)));
}

#[test]
fn conditional_same_site_and_canary_affinity_behaviour() {
    let (a, reports) = parsed(&[
        ("affinity", "cookie"),
        ("session-cookie-samesite", "None"),
        ("session-cookie-conditional-samesite-none", "true"),
        ("affinity-canary-behavior", "sticky"),
    ]);
    assert!(reports.iter().all(|r| r.verdict == AnnotationVerdict::Honoured), "{reports:?}");
    assert!(a.balance.affinity.unwrap().conditional_same_site_none);
    let (_, reports) = parsed(&[("session-cookie-conditional-samesite-none", "true")]);
    assert!(matches!(verdict(&reports, "session-cookie-conditional-samesite-none"), AnnotationVerdict::Ignored(_)));

    // Read on the canary Ingress, as ingress-nginx does.
    let (a, reports) = parsed(&[("canary", "true"), ("canary-weight", "50"), ("affinity-canary-behavior", "legacy")]);
    assert!(reports.iter().all(|r| r.verdict == AnnotationVerdict::Honoured), "{reports:?}");
    assert!(a.canary.unwrap().legacy_affinity);
    let (a, reports) = parsed(&[("canary", "true"), ("affinity-canary-behavior", "Legacy")]);
    assert!(matches!(verdict(&reports, "affinity-canary-behavior"), AnnotationVerdict::Ignored(_)));
    assert!(!a.canary.unwrap().legacy_affinity, "case-sensitive, as ingress-nginx");
    let (_, reports) = parsed(&[("affinity", "cookie"), ("affinity-canary-behavior", "legacy")]);
    assert!(
        matches!(verdict(&reports, "affinity-canary-behavior"), AnnotationVerdict::Ignored(r) if r.contains("canary Ingress"))
    );
}

#[test]
fn error_settings() {
    let (a, reports) = parsed(&[("custom-http-errors", "503, 404,404"), ("default-backend", "errors")]);
    assert!(reports.iter().all(|r| r.verdict == AnnotationVerdict::Honoured), "{reports:?}");
    assert_eq!(a.custom_http_errors.unwrap(), [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE]);
    assert_eq!(a.default_backend.as_deref(), Some("errors"));
    let (a, reports) = parsed(&[("custom-http-errors", "302"), ("default-backend", "Not_A_Name")]);
    assert!(matches!(verdict(&reports, "custom-http-errors"), AnnotationVerdict::Ignored(_)));
    assert!(matches!(verdict(&reports, "default-backend"), AnnotationVerdict::Ignored(_)));
    assert!(a.custom_http_errors.is_none() && a.default_backend.is_none());
}

#[test]
fn mirror_settings() {
    let (a, reports) =
        parsed(&[("mirror-target", "http://mirror.test:8080$request_uri"), ("mirror-request-body", "off")]);
    assert!(reports.iter().all(|r| r.verdict == AnnotationVerdict::Honoured), "{reports:?}");
    let mirror = a.mirror.unwrap();
    let sluice_config::MirrorTo::Url { host, .. } = &mirror.to else { panic!("{mirror:?}") };
    assert_eq!((host.to_str().unwrap(), mirror.body, mirror.share), ("mirror.test", false, None));
    let (a, reports) = parsed(&[("mirror-target", "ftp://x/"), ("mirror-host", "m.test")]);
    assert!(matches!(verdict(&reports, "mirror-target"), AnnotationVerdict::Ignored(_)));
    assert!(a.mirror.is_none());
}

#[test]
fn address_lists_satisfy_and_cors_are_honoured() {
    let (a, reports) = parsed(&[
        ("allowlist-source-range", "10.0.0.0/8, 192.0.2.1"),
        ("whitelist-source-range", "0.0.0.0/0"),
        ("denylist-source-range", "10.9.0.0/16"),
        ("satisfy", "any"),
        ("enable-cors", "true"),
        ("cors-allow-origin", "https://*.a.test"),
        ("enable-modsecurity", "false"),
    ]);
    let ignored = |name| matches!(verdict(&reports, name), AnnotationVerdict::Ignored(_));
    assert!(ignored("whitelist-source-range"), "allowlist- takes precedence");
    for name in ["allowlist-source-range", "denylist-source-range", "satisfy", "enable-cors", "cors-allow-origin"] {
        assert_eq!(verdict(&reports, name), &AnnotationVerdict::Honoured, "{name}");
    }
    let access = a.access.compile(Vec::new(), &crate::compile::Defaults::default()).unwrap();
    assert_eq!(access.satisfy, sluice_config::Satisfy::Any);
    assert_eq!(access.addresses("10.1.1.1".parse().unwrap()), sluice_config::AddressVerdict::Allowed);
    assert_eq!(access.addresses("10.9.1.1".parse().unwrap()), sluice_config::AddressVerdict::Refused);
    assert!(a.cors.is_some());
}

#[test]
fn an_unenforced_waf_is_served_only_when_allowed() {
    let map = [(format!("{DEFAULT_ANNOTATIONS_PREFIX}/enable-modsecurity"), "true".to_owned())].into();
    let allowed = Reading { allow_unenforced_waf: true, ..READING };
    let (_, reports) = parse(allowed, &map);
    assert!(matches!(&reports[0].verdict, AnnotationVerdict::Ignored(r) if r.contains("--allow-unenforced-waf")));
}

#[test]
fn passthrough_cannot_carry_protection() {
    let (_, reports) = parsed(&[("ssl-passthrough", "true"), ("whitelist-source-range", "10.0.0.0/8")]);
    assert!(matches!(verdict(&reports, "ssl-passthrough"), AnnotationVerdict::Refused(_)));
    let (_, reports) = parsed(&[("ssl-passthrough", "true")]);
    assert_eq!(verdict(&reports, "ssl-passthrough"), &AnnotationVerdict::Honoured);
}
