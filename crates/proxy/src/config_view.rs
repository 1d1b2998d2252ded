//! `GET /config`: the routing table of the snapshot being served, as JSON.

use serde_json::{json, Value};
use sluice_config::{
    Action, AddressSet, Authentication, Balance, Condition, CorsOrigins, Filter, HeaderEdits, MirrorTo, PathModifier,
    Route, Satisfy, Snapshot, ValueMatch,
};

/// One route of a group: its conditions, filters and weighted backends (or redirect).
pub(crate) fn rule(snapshot: &Snapshot, route: &Route) -> Value {
    let conditions: Vec<String> = route.conditions.iter().map(describe_condition).collect();
    let filters: Vec<String> = route.filters.iter().map(describe_filter).collect();
    let action = match &route.action {
        Action::Fail(code) => json!({ "fail": code.as_u16() }),
        Action::Redirect(redirect) => {
            json!({ "redirect": redirect.location.to_string(), "code": redirect.code.as_u16() })
        }
        Action::Forward(forward) => {
            let backends: Vec<Value> = forward
                .backends
                .iter()
                .map(|b| json!({ "backend": snapshot.backend(b.id).map(|b| b.label.as_ref()), "weight": b.weight }))
                .collect();
            let p = &forward.policy;
            let balance = match &forward.balance {
                Balance::RoundRobin => "round_robin".to_owned(),
                Balance::Ewma => "ewma".to_owned(),
                Balance::Hash(key) => format!("hash {key}"),
                Balance::Cookie(a) => format!("cookie {} ({:?}, path {})", a.name, a.mode, a.path),
            };
            json!({
                "backends": backends,
                "balance": balance,
                "policy": {
                    "connect_timeout_ms": p.connect_timeout.as_millis() as u64,
                    "read_timeout_ms": p.read_timeout.as_millis() as u64,
                    "max_body_bytes": p.max_body,
                    "retry_tries": p.retry.tries,
                },
            })
        }
    };
    json!({ "source": route.label.as_ref(), "conditions": conditions, "filters": filters, "action": action })
}

fn describe_condition(condition: &Condition) -> String {
    let value = |v: &ValueMatch| match v {
        ValueMatch::Exact(text) => format!("= {text:?}"),
        ValueMatch::Regex(regex) => format!("~ {:?}", regex.as_str()),
    };
    match condition {
        Condition::Header { name, value: v } => format!("header {name} {}", value(v)),
        Condition::Cookie { name, value: v } => format!("cookie {name} {}", value(v)),
        Condition::Method(method) => format!("method {method}"),
        Condition::Query { name, value: v } => format!("query {name} {}", value(v)),
        Condition::Random { weight, total } => format!("random {weight}/{total}"),
    }
}

fn describe_filter(filter: &Filter) -> String {
    let edits = |e: &HeaderEdits| {
        let set = e.set.iter().map(|(n, v)| format!("set {n}: {v}"));
        let add = e.add.iter().map(|(n, v)| format!("add {n}: {v}"));
        let remove = e.remove.iter().map(|n| format!("remove {n}"));
        set.chain(add).chain(remove).collect::<Vec<_>>().join(", ")
    };
    match filter {
        Filter::HttpsRedirect { code, .. } => format!("redirect http to https ({})", code.as_u16()),
        Filter::AppRoot { path } => format!("app-root {}", path.to_str().unwrap_or_default()),
        Filter::RewritePath(rewrite) => format!("rewrite {} -> {}", rewrite.regex.as_str(), rewrite.target),
        Filter::SetPath(PathModifier::Full(path)) => format!("set path {path}"),
        Filter::SetPath(PathModifier::Prefix { matched, replacement }) => {
            format!("replace path prefix {} with {replacement}", if matched.is_empty() { "/" } else { matched })
        }
        Filter::RequestHeaders(e) => format!("request headers: {}", edits(e)),
        Filter::ResponseHeaders(e) => format!("response headers: {}", edits(e)),
        Filter::Hsts(value) => format!("hsts {}", value.to_str().unwrap_or_default()),
        Filter::Mirror(mirror) => {
            let share = mirror.share.map(|(n, d)| format!(", {n}/{d} of requests")).unwrap_or_default();
            match &mirror.to {
                MirrorTo::Url { target, host, .. } => format!(
                    "mirror to {target} (Host {}, body {}{share})",
                    host.to_str().unwrap_or_default(),
                    if mirror.body { "on" } else { "off" }
                ),
                MirrorTo::Backend(id) => format!("mirror to backend {}{share}", id.0),
            }
        }
        Filter::Access(access) => {
            let list = |set: &Option<AddressSet>| set.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
            let satisfy = if access.satisfy == Satisfy::Any { "any" } else { "all" };
            let each = access.auth.iter().map(|auth| match auth {
                Authentication::Basic(basic) => {
                    let users = basic.users.as_ref().map_or(0, |users| users.len());
                    format!("basic ({users} users)")
                }
                Authentication::External(external) => format!("auth-url {}", external.url),
                Authentication::Unavailable => "unavailable (503)".to_owned(),
            });
            let auth = each.collect::<Vec<_>>().join(" + ");
            let auth = if auth.is_empty() { "none".to_owned() } else { auth };
            format!(
                "access: allow {}; deny {}; auth {auth}; satisfy {satisfy}",
                list(&access.allow),
                list(&access.deny)
            )
        }
        Filter::Cors(cors) => {
            let origins = match &cors.origins {
                CorsOrigins::Any => "*".to_owned(),
                CorsOrigins::AnyNamed => "* (named back)".to_owned(),
                CorsOrigins::List(list) => list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            };
            format!("cors: origins {origins}; credentials {}", if cors.allow_credentials { "on" } else { "off" })
        }
        Filter::Block(list) => {
            let show = |p: Option<&str>| p.unwrap_or("-").to_owned();
            let (agents, referers) = (list.user_agents.as_ref(), list.referers.as_ref());
            let (agents, referers) = (show(agents.map(|p| p.as_str())), show(referers.map(|p| p.as_str())));
            format!("block: user agents {agents}; referers {referers}")
        }
        Filter::ClientCertificate(check) => {
            let cn = check.match_cn.as_ref().map_or("", |r| r.as_str());
            format!("client certificate: {:?}, depth {}, match-cn {cn:?}", check.policy.mode, check.policy.depth)
        }
        Filter::RateLimit(limits) => {
            let rates = [&limits.per_second, &limits.per_minute].into_iter().flatten();
            let mut parts: Vec<String> = rates.map(|rate| rate.zone.to_string()).collect();
            parts.extend(limits.connections.iter().map(|c| c.zone.to_string()));
            format!("rate limit per client: {} (answer {})", parts.join(", "), limits.rate_status.as_u16())
        }
    }
}

/// Generation, routes (host, path, match type, Ingress, backend with endpoints), L4
/// listeners, certificates by SNI, TLS passthrough by SNI, and diagnostics.
/// One entry per match of every Gateway frontend: address, listener, host, path match and
/// the rule it leads to, in the order they are tried.
fn gateway_routes(snapshot: &Snapshot) -> Vec<Value> {
    let mut out = Vec::new();
    for (address, frontend) in snapshot.gateways.iter() {
        for listener in frontend.listeners() {
            for (host, matches) in listener.hosts.entries() {
                for m in matches.rules() {
                    let (kind, path) = m.path.describe();
                    out.push(json!({
                        "address": address.to_string(),
                        "tls": frontend.certificates().is_some(),
                        "gateway": format!("{}/{}", frontend.gateway.namespace, frontend.gateway.name),
                        "listener": listener.name.as_ref(),
                        "host": host.to_string(),
                        "path": path,
                        "match": kind,
                        "rule": rule(snapshot, &m.route),
                    }));
                }
            }
        }
    }
    out
}

pub fn document(snapshot: &Snapshot) -> Value {
    let routes: Vec<Value> = snapshot
        .routes
        .entries()
        .into_iter()
        .map(|entry| {
            let main = entry.routes.routes.last();
            let backend = main.and_then(|r| r.forward()).and_then(|f| snapshot.backend(f.backends.first()?.id));
            json!({
                "host": entry.host,
                "path": entry.path,
                "match": entry.match_type,
                "ingress": format!("{}/{}", entry.routes.owner.namespace, entry.routes.owner.name),
                "backend": backend.map(|b| b.label.as_ref()),
                "protocol": backend.map(|b| b.protocol()),
                "endpoints": backend.map(|b| b.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>()),
                "rules": entry.routes.routes.iter().map(|route| rule(snapshot, route)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let l4: Vec<Value> = snapshot
        .l4
        .listeners
        .values()
        .map(|l| {
            json!({
                "address": l.address.to_string(),
                "protocol": l.protocol,
                "service": format!("{}/{}", l.service.namespace, l.service.name),
                "endpoints": l.backends.endpoints().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    let certificates: Vec<Value> = snapshot
        .certificates
        .entries()
        .into_iter()
        .map(|(sni, owner)| json!({ "sni": sni, "ingress": format!("{}/{}", owner.namespace, owner.name) }))
        .collect();
    let passthrough: Vec<Value> = snapshot
        .passthrough
        .entries()
        .into_iter()
        .map(|(sni, backend, owner)| {
            let backend = snapshot.backend(backend);
            json!({
                "sni": sni,
                "ingress": format!("{}/{}", owner.namespace, owner.name),
                "backend": backend.map(|b| b.label.as_ref()),
                "endpoints": backend.map(|b| b.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>()),
            })
        })
        .collect();
    let diagnostics: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    json!({
        "generation": snapshot.generation,
        "summary": snapshot.summary,
        "routes": routes,
        "gateway_routes": gateway_routes(snapshot),
        "l4": l4,
        "certificates": certificates,
        "passthrough": passthrough,
        "diagnostics": diagnostics,
    })
}
