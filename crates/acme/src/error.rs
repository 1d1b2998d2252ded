//! What can go wrong with an order, naming the step and passing on the CA's problem detail.

use std::fmt;
use std::time::Duration;

/// What failed, named so that diagnostics and metrics can say it: the CA's problem document
/// (type and detail) is carried in the `detail` strings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcmeError {
    /// The configuration cannot be used (unreadable CA bundle, bad EAB key, bad credentials).
    Config(String),
    /// The account could not be created or restored (includes a CA that cannot be reached).
    Account(String),
    /// The CA refused the new order, or the order failed without an authorization to blame.
    Order(String),
    /// An identifier could not be authorized: no challenge of the kind, or the CA's validation
    /// failed (its problem detail), or the authorization is in a final bad state.
    Authorization {
        /// The DNS name.
        identifier: String,
        /// Why, with the CA's problem detail when it gave one.
        detail: String,
    },
    /// The caller's [`ChallengeResponder::publish`] failed.
    Publish {
        /// The DNS name.
        identifier: String,
        /// The responder's error.
        detail: String,
    },
    /// Key generation, CSR, finalization or the certificate download failed.
    Finalize(String),
    /// The certificate the CA returned could not be read.
    Certificate(String),
    /// The order did not complete within [`AcmeConfig::order_timeout`].
    Timeout(Duration),
}

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcmeError::Config(d) => write!(f, "ACME configuration: {d}"),
            AcmeError::Account(d) => write!(f, "ACME account: {d}"),
            AcmeError::Order(d) => write!(f, "ACME order: {d}"),
            AcmeError::Authorization { identifier, detail } => {
                write!(f, "ACME authorization of {identifier}: {detail}")
            }
            AcmeError::Publish { identifier, detail } => {
                write!(f, "publishing the ACME challenge for {identifier}: {detail}")
            }
            AcmeError::Finalize(d) => write!(f, "ACME finalize: {d}"),
            AcmeError::Certificate(d) => write!(f, "ACME certificate: {d}"),
            AcmeError::Timeout(t) => write!(f, "ACME order timed out after {t:?}"),
        }
    }
}

impl std::error::Error for AcmeError {}

/// An instant-acme error as text, the CA's problem document (type, detail, subproblems)
/// included.
pub(crate) fn describe(error: &instant_acme::Error) -> String {
    match error {
        instant_acme::Error::Api(problem) => problem.to_string(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}
