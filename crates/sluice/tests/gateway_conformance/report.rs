//! The Markdown report of a run (`docs/gateway-api-conformance.md`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::plan::Outcome;
use crate::runner::TestReport;
use crate::table::{self, UpstreamTest};
use crate::{DATA, SUPPORTED_FEATURES, TRIED_FEATURES};

// ---------------------------------------------------------------------------
// The run and its report
// ---------------------------------------------------------------------------

/// The `SLUICE_CONFORMANCE_ONLY` filter.
pub fn selected(test: &UpstreamTest, filter: Option<&str>) -> bool {
    let Some(filter) = filter.map(str::to_ascii_lowercase) else {
        return true;
    };
    test.short_name.to_ascii_lowercase().contains(&filter)
        || test.manifests.iter().any(|m| m.to_ascii_lowercase().contains(&filter))
}

/// Counts of one test's items.
pub fn counts(items: &[(String, Outcome)]) -> (usize, usize, usize) {
    let passed = items.iter().filter(|(_, o)| *o == Outcome::Passed).count();
    let failed = items.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).count();
    (passed, failed, items.len() - passed - failed)
}

/// The distinct not-runnable reasons of a test, with counts.
pub fn reasons(items: &[(String, Outcome)]) -> String {
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, o) in items {
        if let Outcome::NotRunnable(r) = o {
            *by_reason.entry(r.as_str()).or_default() += 1;
        }
    }
    let parts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} ({n})")).collect();
    parts.join("; ")
}

/// The Markdown report.
pub fn markdown(reports: &[TestReport], extra_rows: &[(String, String)], commit: &str) -> String {
    let mut out = String::new();
    out.push_str("# Gateway API conformance, replayed against Sluice\n\n");
    out.push_str(
        "Written by `SLUICE_WRITE_CONFORMANCE=1 cargo test -p sluice --test gateway_conformance -- --nocapture` \
         (`crates/sluice/tests/gateway_conformance.rs`). Each upstream test runs against its own `sluice run` \
         with the base manifests and the test's files; `sluice echo` stands in for echo-basic's HTTP server and \
         in-process servers for its HTTPS, gRPC, TCP and UDP servers and for CoreDNS. \
         Cases are the `ExpectedResponse` literals of `shared/conformance/gateway-api/expected-responses.json`, \
         one per Gateway they are sent to (gRPC with tonic, compared as upstream's `compareResponse`: code, method, \
         namespace, pod — no headers; raw TCP/TLS/UDP clients for the L4 routes); status expectations are the \
         conditions the Go test asserts.\n\n",
    );
    out.push_str(&format!("Upstream: kubernetes-sigs/gateway-api `conformance/` at {commit}.\n\n"));
    out.push_str(&format!("Claimed features: {}.\n\n", SUPPORTED_FEATURES.join(", ")));
    if !TRIED_FEATURES.is_empty() {
        out.push_str("Run and reported but not claimed, because of a bug of Sluice's that a case finds:\n\n");
        for (feature, why) in TRIED_FEATURES {
            out.push_str(&format!("- {feature}: {why}.\n"));
        }
        out.push('\n');
    }
    let (mut p, mut f, mut n) = (0, 0, 0);
    for r in reports {
        let (a, b, c) = counts(&r.items);
        p += a;
        f += b;
        n += c;
    }
    out.push_str(&format!("Totals: {p} passed, {f} failed, {n} not runnable.\n\n"));
    out.push_str(&profiles(reports));
    out.push_str("| test file | upstream test | passed | failed | not runnable | why not runnable |\n");
    out.push_str("|---|---|---:|---:|---:|---|\n");
    let mut rows: Vec<(String, String)> = Vec::new();
    for r in reports {
        let (a, b, c) = counts(&r.items);
        let files = r.test.manifests.join(", ");
        rows.push((
            files.clone(),
            format!("| {files} | {} | {a} | {b} | {c} | {} |\n", r.test.short_name, reasons(&r.items)),
        ));
    }
    for (file, why) in extra_rows {
        rows.push((file.clone(), format!("| {file} | – | 0 | 0 | – | {why} |\n")));
    }
    rows.sort();
    for (_, row) in rows {
        out.push_str(&row);
    }
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.items.iter().filter_map(move |(label, o)| match o {
                Outcome::Failed(e) => {
                    let short: String = e.chars().take(300).collect();
                    let unclaimed = if r.claimed { "" } else { " (feature not claimed)" };
                    Some(format!("- {}{unclaimed}: {label} — {}\n", r.test.short_name, short.replace('|', "\\|")))
                }
                _ => None,
            })
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\n## Failures\n\n");
        for f in failures {
            out.push_str(&f);
        }
    }
    out
}

/// Conformance profiles as implementations report them upstream (`ConformanceReport`): the
/// route kind that makes a test belong to it, and its core features.
const PROFILES: &[(&str, &str, &[&str])] = &[
    ("GATEWAY-HTTP", "HTTPRoute", &["Gateway", "HTTPRoute", "ReferenceGrant"]),
    ("GATEWAY-GRPC", "GRPCRoute", &["Gateway", "GRPCRoute", "ReferenceGrant"]),
    ("GATEWAY-TLS", "TLSRoute", &["Gateway", "TLSRoute", "ReferenceGrant"]),
    ("GATEWAY-TCP (experimental)", "TCPRoute", &["Gateway", "TCPRoute", "ReferenceGrant"]),
    ("GATEWAY-UDP (experimental)", "UDPRoute", &["Gateway", "UDPRoute", "ReferenceGrant"]),
];

/// The profile summary: per profile, core and extended results and statistics (items
/// passed / failed / not run), and the extended features claimed or not. A test counts for a
/// profile when it uses the profile's route kind (Gateway-only tests count for HTTP).
fn profiles(reports: &[TestReport]) -> String {
    let mut out = String::from(
        "## Conformance profiles\n\n```yaml\nimplementation: sluice (sluice.dev/gateway-controller)\nprofiles:\n",
    );
    for (name, kind, core) in PROFILES {
        let belongs = |test: &UpstreamTest| {
            let route_kinds = ["HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"];
            test.features.contains(kind)
                || (*kind == "HTTPRoute" && !test.features.iter().any(|f| route_kinds.contains(f)))
        };
        let mut core_counts = (0, 0, 0);
        let mut extended_counts = (0, 0, 0);
        let mut extended: Vec<&str> = Vec::new();
        for r in reports.iter().filter(|r| belongs(r.test)) {
            let (p, f, n) = counts(&r.items);
            let is_core = r.test.features.iter().all(|f| core.contains(f));
            let slot = if is_core { &mut core_counts } else { &mut extended_counts };
            *slot = (slot.0 + p, slot.1 + f, slot.2 + n);
            extended.extend(r.test.features.iter().copied().filter(|f| !core.contains(f) && *f != "Gateway"));
        }
        extended.sort_unstable();
        extended.dedup();
        let (supported, unsupported): (Vec<&str>, Vec<&str>) =
            extended.iter().partition(|f| SUPPORTED_FEATURES.contains(f));
        let result = |(p, f, _): (usize, usize, usize)| match (p, f) {
            (_, 0) if p > 0 => "success",
            (0, 0) => "skipped",
            _ => "failure",
        };
        let core_claimed = core.iter().all(|f| SUPPORTED_FEATURES.contains(f));
        out.push_str(&format!("- name: {name}\n  core:\n"));
        let core_result = if core_claimed { result(core_counts) } else { "not claimed" };
        out.push_str(&format!(
            "    result: {core_result}\n    statistics: {{passed: {}, failed: {}, notRun: {}}}\n",
            core_counts.0, core_counts.1, core_counts.2
        ));
        out.push_str(&format!(
            "  extended:\n    result: {}\n    statistics: {{passed: {}, failed: {}, notRun: {}}}\n",
            if core_claimed { result(extended_counts) } else { "not claimed" },
            extended_counts.0,
            extended_counts.1,
            extended_counts.2
        ));
        out.push_str(&format!("    supportedFeatures: [{}]\n", supported.join(", ")));
        out.push_str(&format!("    unsupportedFeatures: [{}]\n", unsupported.join(", ")));
    }
    out.push_str("```\n\nStatistics count cases and status expectations (\"items\"), not whole tests.\n\n");
    out
}

/// The test files no table entry names (mesh tests, or files only upstream code reads).
pub fn unlisted_files() -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let named: Vec<&str> = table::TESTS.iter().flat_map(|t| t.manifests.iter().copied()).collect();
    let dir = Path::new(DATA).join("tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in files {
        if !named.contains(&file.as_str()) {
            rows.push((file, "no upstream Gateway test applies it".to_owned()));
        }
    }
    let mut mesh: Vec<String> = std::fs::read_dir(dir.join("mesh"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| format!("mesh/{}", e.file_name().to_string_lossy()))
        .collect();
    mesh.sort();
    for file in mesh {
        rows.push((file, "needs a service mesh (GAMMA tests; feature Mesh not claimed)".to_owned()));
    }
    rows
}
