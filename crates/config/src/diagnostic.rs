//! Diagnostics: why a resource (or a file) was rejected or only partly served.

use std::fmt;
use std::path::PathBuf;

/// A Kubernetes object by kind, namespace and name, as users write it in `kubectl`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    /// The object's kind, e.g. `Ingress`.
    pub kind: &'static str,
    /// The namespace; empty for cluster-scoped kinds such as IngressClass.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to a namespaced object.
    pub fn new(kind: &'static str, namespace: &str, name: &str) -> Self {
        Self { kind, namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// What a diagnostic is about: an object, or a file that could not be read as objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Subject {
    /// A Kubernetes object.
    Object(ObjectRef),
    /// A manifest file (unreadable, or not YAML/JSON at all).
    File(PathBuf),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Object(object) => object.fmt(f),
            Subject::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Severity {
    /// The resource (or part of it) is not served as written.
    Error,
    /// The resource is served, but something it asks for is not applied (an ignored
    /// annotation, an unused canary).
    Warning,
}

/// One problem, naming the resource, the field path and the reason, like the API server does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Diagnostic {
    /// The resource or file.
    pub subject: Subject,
    /// The field path inside the resource (`spec.rules[0].host`); empty when it is the whole.
    pub field: String,
    /// Why, in words a user can act on.
    pub reason: String,
    /// Error or warning.
    pub severity: Severity,
}

impl Diagnostic {
    /// A diagnostic about a field of an object.
    pub fn object(object: ObjectRef, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { subject: Subject::Object(object), field: field.into(), reason: reason.into(), severity: Severity::Error }
    }

    /// A warning about a field of an object that is served anyway.
    pub fn warning(object: ObjectRef, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::object(object, field, reason) }
    }

    /// True for errors, false for warnings.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A diagnostic about a whole file.
    pub fn file(path: PathBuf, reason: impl Into<String>) -> Self {
        Self { subject: Subject::File(path), field: String::new(), reason: reason.into(), severity: Severity::Error }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if self.field.is_empty() {
            write!(f, "{}: {}", self.subject, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.subject, self.field, self.reason)
        }
    }
}
