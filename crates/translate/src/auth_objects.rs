//! Authentication read from other objects: the users of `auth-type: basic` Ingresses, read from their `auth-secret` Secrets: an
//! htpasswd file under key `auth` (`auth-secret-type: auth-file`), or one key per user
//! (`auth-map`). Each Secret version is parsed once and shared by every route that names it.
//! A missing, foreign or unreadable Secret leaves the route protected with no users: every
//! request is refused (503), never let through. Also the `auth-proxy-set-headers` ConfigMap
//! of `auth-url` Ingresses.

use std::cell::RefCell;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use sluice_config::{Authentication, BasicAuth, Diagnostic, Htpasswd, Template, UpstreamPolicy};
use sluice_store::k8s_openapi::api::core::v1::Secret;
use sluice_store::ObjectKey;

use crate::annotations::{AuthSettings, ExternalAuthSettings};
use crate::certificates::secret_field;
use crate::compile::Context;
use crate::ingress::ValidIngress;

/// Parsed Secrets by version (the `Arc` the store holds, kept alive here so that a version
/// is never mistaken for another), with what was wrong in them.
#[derive(Debug, Default)]
pub(crate) struct UsersCache {
    parsed: RefCell<Vec<Parsed>>,
}

#[derive(Debug)]
struct Parsed {
    secret: Arc<Secret>,
    map: bool,
    users: Result<Arc<Htpasswd>, String>,
    problems: Vec<String>,
}

impl UsersCache {
    /// Forgets Secret versions the store no longer holds.
    pub(crate) fn prune(&self) {
        self.parsed.borrow_mut().retain(|parsed| Arc::strong_count(&parsed.secret) > 1);
    }

    fn users(&self, secret: &Arc<Secret>, map: bool) -> (Result<Arc<Htpasswd>, String>, Vec<String>) {
        let mut parsed = self.parsed.borrow_mut();
        if let Some(hit) = parsed.iter().find(|p| Arc::ptr_eq(&p.secret, secret) && p.map == map) {
            return (hit.users.clone(), hit.problems.clone());
        }
        let (users, problems) = read(secret, map);
        parsed.push(Parsed { secret: secret.clone(), map, users: users.clone(), problems: problems.clone() });
        (users, problems)
    }
}

/// The basic authentication of `ingress`; what is wrong with its Secret goes to `problems`.
pub(crate) fn authentication(
    ingress: &ValidIngress,
    settings: &AuthSettings,
    cx: &Context<'_>,
    problems: &mut Vec<Diagnostic>,
) -> Authentication {
    let challenge = HeaderValue::from_str(&format!("Basic realm=\"{}\"", settings.realm))
        .unwrap_or(HeaderValue::from_static("Basic realm=\"\""));
    let field = "metadata.annotations[auth-secret]";
    let refuse = |problems: &mut Vec<Diagnostic>, reason: String| {
        let reason = format!("{reason}; its paths answer 503 until this is fixed");
        problems.push(Diagnostic::object((*ingress.owner).clone(), field, reason));
        Authentication::Basic(Arc::new(BasicAuth { challenge: challenge.clone(), users: None }))
    };
    let Some(key) = ingress.auth_secret() else {
        return refuse(problems, "no auth-secret".into());
    };
    let name = format!("{}/{}", key.namespace, key.name);
    if key.namespace != ingress.owner.namespace && !cx.defaults.allow_cross_namespace_resources {
        return refuse(
            problems,
            format!("Secret {name} is in another namespace (allow-cross-namespace-resources is off)"),
        );
    }
    let Some(secret) = cx.secrets.get(&key) else {
        return refuse(problems, format!("Secret {name} does not exist"));
    };
    let (users, warnings) = cx.users.users(secret, settings.map);
    for warning in warnings {
        let object = sluice_config::ObjectRef::new("Secret", &key.namespace, &key.name);
        problems.push(Diagnostic::warning(object, "data", warning));
    }
    match users {
        Ok(users) => Authentication::Basic(Arc::new(BasicAuth { challenge, users: Some(users) })),
        Err(reason) => refuse(problems, format!("Secret {name}: {reason}")),
    }
}

/// The external authentication of `ingress` with the route's timeouts; a missing or
/// unreadable `auth-proxy-set-headers` ConfigMap leaves it [`Authentication::Unavailable`].
pub(crate) fn external(
    ingress: &ValidIngress,
    settings: &ExternalAuthSettings,
    policy: &UpstreamPolicy,
    cx: &Context<'_>,
    problems: &mut Vec<Diagnostic>,
) -> Authentication {
    let mut set_headers = Vec::new();
    if let Some((namespace, name)) = &settings.set_headers {
        let key = ObjectKey::new(namespace.as_deref().unwrap_or(&ingress.owner.namespace), name);
        let field = "metadata.annotations[auth-proxy-set-headers]";
        let unavailable = |problems: &mut Vec<Diagnostic>, reason: String| {
            let reason = format!("{reason}; its paths answer 503 until this is fixed");
            problems.push(Diagnostic::object((*ingress.owner).clone(), field, reason));
            Authentication::Unavailable
        };
        if key.namespace != ingress.owner.namespace && !cx.defaults.allow_cross_namespace_resources {
            return unavailable(problems, format!("ConfigMap {}/{} is in another namespace", key.namespace, key.name));
        }
        let Some(configmap) = cx.config_maps.get(&key) else {
            return unavailable(problems, format!("ConfigMap {}/{} does not exist", key.namespace, key.name));
        };
        for (header, value) in configmap.data.iter().flatten() {
            let name = HeaderName::from_bytes(header.as_bytes());
            let template = Template::parse(value, false);
            match (name, template) {
                (Ok(name), Ok(template)) => set_headers.push((name, template)),
                _ => {
                    return unavailable(
                        problems,
                        format!("ConfigMap {}/{}: {header:?} is not a header", key.namespace, key.name),
                    )
                }
            }
        }
    }
    let mut auth = settings.auth.clone();
    auth.set_headers = set_headers.into();
    auth.connect_timeout = policy.connect_timeout;
    auth.read_timeout = policy.read_timeout;
    Authentication::External(Arc::new(auth))
}

/// Reads the users of `secret`, with a line per entry that was skipped.
fn read(secret: &Secret, map: bool) -> (Result<Arc<Htpasswd>, String>, Vec<String>) {
    let (users, skipped) = if map {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (key, value) in secret.data.iter().flatten() {
            entries.push((key.clone(), String::from_utf8_lossy(&value.0).into_owned()));
        }
        for (key, value) in secret.string_data.iter().flatten() {
            entries.retain(|(k, _)| k != key);
            entries.push((key.clone(), value.clone()));
        }
        Htpasswd::from_map(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    } else {
        let Some(file) = secret_field(secret, "auth") else {
            return (Err("has no key auth (auth-secret-type auth-file)".into()), Vec::new());
        };
        Htpasswd::from_file(&String::from_utf8_lossy(&file))
    };
    let problems: Vec<String> = skipped.iter().map(|problem| format!("entry skipped: {problem}")).collect();
    if users.is_empty() {
        return (Err("holds no usable user".into()), problems);
    }
    (Ok(Arc::new(users)), problems)
}
