//! What each upstream test consists of: its literals (one per target), status checks and
//! extras, each with the work to do or why it cannot be done.

use serde_json::Value;

use crate::cases::{self, Case, CaseKind, HttpCase};
use crate::grpc::{self, GrpcCase};
use crate::l4::{self, TcpCase};
use crate::status::Check;
use crate::table::{Extra, Target, Tls, UpstreamTest};
use crate::{SUPPORTED_FEATURES, TRIED_FEATURES};

// ---------------------------------------------------------------------------
// Plan: what each test consists of
// ---------------------------------------------------------------------------

/// A literal of any kind, ready to send.
#[derive(Clone, Debug)]
pub enum Literal {
    /// `http.ExpectedResponse`.
    Http(Box<HttpCase>),
    /// `grpc.ExpectedResponse`.
    Grpc(GrpcCase),
    /// `tcp.ExpectedResponse`.
    Tcp(TcpCase),
    /// `udp.ExpectedResponse`: the Service and namespace that must answer.
    Udp {
        /// `SERVICE_NAME` of the answering pod.
        service: String,
        /// Its namespace.
        namespace: String,
    },
}

impl Literal {
    /// Reads a literal of `kind`.
    pub fn parse(kind: CaseKind, body: &Value) -> Result<Literal, String> {
        if let Some(expr) = cases::computed(body) {
            return Err(format!("computed at run time in the Go test ({expr})"));
        }
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(match kind {
            CaseKind::Http => Literal::Http(Box::new(cases::parse_http(body)?)),
            CaseKind::Grpc => Literal::Grpc(grpc::parse(body)?),
            CaseKind::Tcp => Literal::Tcp(l4::parse_tcp(body)?),
            CaseKind::Udp => Literal::Udp { service: text("Service"), namespace: text("Namespace") },
        })
    }

    /// A short description.
    pub fn label(&self) -> String {
        match self {
            Literal::Http(h) => request_label(h),
            Literal::Grpc(g) => g.label(),
            Literal::Tcp(t) => {
                let tls = if t.backend_is_tls { " over TLS" } else { "" };
                format!("TCP{tls} to {} ({})", t.backend, t.namespace)
            }
            Literal::Udp { service, namespace } => format!("UDP echo from {service} ({namespace})"),
        }
    }
}

/// What one item of a test does.
#[derive(Clone, Debug)]
pub enum Work {
    /// A literal sent to one target; with `failure`, the Go test expects the request to fail
    /// (`MakeRequestAndExpectFailure`: any status but 200 and timeouts; gRPC: any code but
    /// `OK`).
    Case { case: Box<Literal>, line: u32, target: Target, failure: bool },
    /// A status expectation (polled with the others before any literal).
    Check(Check),
    /// A status expectation checked at `line`, after the mutations before it.
    LateCheck { check: Check, line: u32 },
    /// A check that is not a literal.
    Extra(Extra),
    /// The mirrored share of a literal with `Percent` mirrors.
    MirrorDistribution { case: Box<HttpCase>, target: Target },
}

impl Work {
    /// Where the item runs among the literals (by their line in the Go file); `None` for
    /// the status checks polled first and the extras run last.
    pub fn line(&self) -> Option<u32> {
        match self {
            Work::Case { line, .. } | Work::LateCheck { line, .. } => Some(*line),
            Work::Extra(Extra::Rejected { line, .. }) => Some(*line),
            _ => None,
        }
    }
}

/// One item of a test: a label, and the work or why it cannot be done.
#[derive(Clone, Debug)]
pub struct Planned {
    /// What it is.
    pub label: String,
    /// What to do, or why it cannot be done.
    pub work: Result<Work, String>,
}

/// How an item ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Passed.
    Passed,
    /// Failed, with what was sent and seen.
    Failed(String),
    /// Not run, with the reason.
    NotRunnable(String),
}

/// Why a whole test does not run: a feature neither claimed nor tried, or what the harness
/// lacks.
pub fn test_blocked(test: &UpstreamTest) -> Option<String> {
    let missing: Vec<&str> = test
        .features
        .iter()
        .copied()
        .filter(|f| !SUPPORTED_FEATURES.contains(f) && !TRIED_FEATURES.iter().any(|(t, _)| t == f))
        .collect();
    if !missing.is_empty() {
        let s = if missing.len() > 1 { "s" } else { "" };
        return Some(format!("feature{s} {} not claimed", missing.join(", ")));
    }
    if let Some(feature) = test.skipped_when.filter(|f| SUPPORTED_FEATURES.contains(f)) {
        return Some(format!("the Go test skips itself when {feature} is supported"));
    }
    test.blocked.map(|b| format!("needs {b}"))
}

/// `METHOD path Host h`.
pub fn request_label(case: &HttpCase) -> String {
    let host = if case.request.host.is_empty() { String::new() } else { format!(" Host {}", case.request.host) };
    format!("{} {}{host}", case.request.method, case.request.path)
}

/// `gateway#listener (TLS)`.
pub fn target_label(target: &Target) -> String {
    let listener = target.listener.map(|l| format!("#{l}")).unwrap_or_default();
    let scheme = match target.tls {
        Tls::Plain => String::new(),
        Tls::ServerName(name) | Tls::Pinned { server_name: name, .. } | Tls::Ca { server_name: name, .. } => {
            format!(" (TLS, SNI {name})")
        }
        Tls::HostIsServerName => " (TLS)".to_owned(),
    };
    format!("{}{listener}{scheme}", target.gateway)
}

/// The items of `test`: its literals (one per target), status checks and extras.
pub fn plan(test: &UpstreamTest, cases: &[Case]) -> Vec<Planned> {
    let mut items = Vec::new();
    let targets_for = |line: u32| -> &'static [Target] {
        test.overrides.iter().find(|(sel, _)| sel.matches(line)).map(|(_, t)| *t).unwrap_or(test.targets)
    };
    let failure = |line: u32| test.failures.iter().any(|sel| sel.matches(line));
    let transcribed: Vec<u32> = test
        .extras
        .iter()
        .filter_map(|e| match e {
            Extra::Case { line, .. } | Extra::CaseTo { line, .. } => Some(*line),
            _ => None,
        })
        .collect();
    let mut literals: Vec<&Case> =
        cases.iter().filter(|c| c.file == test.go_file && !transcribed.contains(&c.line)).collect();
    literals.sort_by_key(|c| c.line);
    for case in literals {
        let not_runnable =
            test.not_runnable.iter().find(|(sel, _)| sel.matches(case.line)).map(|(_, why)| (*why).to_owned());
        let literal = match (not_runnable, case.kind) {
            (Some(why), _) => Err(why),
            (None, None) => Err("unknown ExpectedResponse kind".to_owned()),
            (None, Some(CaseKind::Http)) => case.http.clone().map(|h| Literal::Http(Box::new(h))),
            (None, Some(kind)) => Literal::parse(kind, &case.body),
        };
        let literal = literal.and_then(|l| match &l {
            Literal::Http(h) if !h.request.client_cert.is_empty() => {
                Err("needs TLS echo backends checking client certificates".to_owned())
            }
            _ => Ok(l),
        });
        let subtest = case.t_run.last().map(|t| format!(" ({t})")).unwrap_or_default();
        let label = match &literal {
            Ok(l) => format!("{}:{}{subtest} {}", case.file, case.line, l.label()),
            Err(_) => case.label(),
        };
        match literal {
            Err(why) => items.push(Planned { label, work: Err(why) }),
            Ok(l) => {
                let targets = targets_for(case.line);
                if targets.is_empty() {
                    items.push(Planned {
                        label: label.clone(),
                        work: Err("no Gateway recorded for this literal".to_owned()),
                    });
                }
                for target in targets {
                    items.push(Planned {
                        label: format!("{label} → {}", target_label(target)),
                        work: Ok(Work::Case {
                            case: Box::new(l.clone()),
                            line: case.line,
                            target: *target,
                            failure: failure(case.line),
                        }),
                    });
                }
            }
        }
    }
    for (i, extra) in test.extras.iter().enumerate() {
        match extra {
            Extra::Case { line, case } | Extra::CaseTo { line, case, .. } => {
                let label = format!("{}:{line}[{i}]", test.go_file);
                let kind = match extra {
                    Extra::CaseTo { kind, .. } => *kind,
                    _ => cases
                        .iter()
                        .find(|c| c.file == test.go_file && c.line == *line)
                        .and_then(|c| c.kind)
                        .unwrap_or(CaseKind::Http),
                };
                let parsed = serde_json::from_str::<Value>(case)
                    .map_err(|e| format!("transcribed case: {e}"))
                    .and_then(|v| Literal::parse(kind, &v));
                let targets = match extra {
                    Extra::CaseTo { target, .. } => std::slice::from_ref(target),
                    _ => targets_for(*line),
                };
                match parsed {
                    Err(e) => items.push(Planned { label, work: Err(e) }),
                    Ok(l) => {
                        for target in targets {
                            items.push(Planned {
                                label: format!("{label} {} → {}", l.label(), target_label(target)),
                                work: Ok(Work::Case {
                                    case: Box::new(l.clone()),
                                    line: *line,
                                    target: *target,
                                    failure: failure(*line),
                                }),
                            });
                        }
                    }
                }
            }
            Extra::MirrorDistribution { target } => {
                for case in cases.iter().filter(|c| c.file == test.go_file) {
                    if let Ok(h) = &case.http {
                        if h.mirrored_to.iter().any(|m| m.percent.is_some()) {
                            items.push(Planned {
                                label: format!(
                                    "{}:{} mirrored share of 500 requests to {} via {}",
                                    case.file,
                                    case.line,
                                    h.request.path,
                                    target_label(target)
                                ),
                                work: Ok(Work::MirrorDistribution { case: Box::new(h.clone()), target: *target }),
                            });
                        }
                    }
                }
            }
            Extra::Missing { what, why } => {
                items.push(Planned { label: (*what).to_owned(), work: Err((*why).to_owned()) })
            }
            Extra::CheckAt { line, check } => items.push(Planned {
                label: format!("status (after line {line}): {}", check.label()),
                work: Ok(Work::LateCheck { check: *check, line: *line }),
            }),
            _ => items.push(Planned { label: extra_label(extra), work: Ok(Work::Extra(*extra)) }),
        }
    }
    let mut checks = vec![Check::ClassAccepted];
    checks.extend_from_slice(test.checks);
    for check in checks {
        items.push(Planned { label: format!("status: {}", check.label()), work: Ok(Work::Check(check)) });
    }
    items
}

/// The label of an extra check.
fn extra_label(extra: &Extra) -> String {
    match extra {
        Extra::WebSocket { target, path } => format!("WebSocket echo via ws://{}{path}", target_label(target)),
        Extra::Weights { target, proto, .. } => {
            format!("weighted distribution of 500 {} requests via {}", proto.name(), target_label(target))
        }
        Extra::BackendHeaderNamesPod { target, requests } => {
            format!("{requests} requests via {}: the Backend header names the pod", target_label(target))
        }
        Extra::OnlyBackend { target, proto, backend, requests } => {
            format!("{requests} {} requests via {} all reach {backend}", proto.name(), target_label(target))
        }
        Extra::Dns { target, name } => format!("DNS query for {name} via {}", target_label(target)),
        Extra::Rejected { line, target, server_name } => {
            format!("{line}: TLS connection with SNI {server_name} via {} is rejected", target_label(target))
        }
        Extra::Case { .. }
        | Extra::CaseTo { .. }
        | Extra::MirrorDistribution { .. }
        | Extra::Missing { .. }
        | Extra::CheckAt { .. } => String::new(),
    }
}
