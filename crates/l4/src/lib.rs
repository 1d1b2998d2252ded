//! The layer-4 data plane: TCP and UDP load balancing for Services of `type: LoadBalancer`.
//!
//! [`L4Plane::apply`] reconciles the running listeners with the [`sluice_config::L4Table`] of
//! each snapshot. A listener whose `(protocol, address)` key stays is never re-bound; it reads
//! its current configuration (endpoints, options) for every new TCP connection or UDP flow, so
//! established ones keep the endpoint they started with and finish on their own.
//!
//! - TCP (`tcp.rs`): connect to an endpoint round-robin with retries, optional PROXY protocol
//!   header (`proxy_protocol.rs`), then copy both ways with half-close and an idle timeout
//!   (`relay.rs`), zero-copy through a pipe on Linux (`splice.rs`).
//! - UDP (`udp.rs`): a flow per client address with its own connected upstream socket; replies
//!   leave from the listener socket so they come from the Service address.

mod idle;
mod metrics;
mod plane;
mod proxy_protocol;
mod relay;
mod socket;
#[cfg(target_os = "linux")]
mod splice;
mod tcp;
mod udp;

pub use metrics::L4Metrics;
pub use plane::L4Plane;
