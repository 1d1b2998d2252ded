//! The BGP speaker with which Sluice announces LoadBalancer addresses to routers, as
//! MetalLB's native speaker does.
//!
//! It only announces: sessions are opened actively (it never listens on port 179, so a
//! routing daemon may run on the same node), routes received from the peers are checked and
//! dropped. Per session: 4-octet AS numbers, IPv4 unicast over IPv4 sessions and IPv6
//! unicast (MP_REACH_NLRI) over IPv6 sessions, with the session's local address as next
//! hop; a route of the other family than its session is not announced and `last_error`
//! says so. COMMUNITIES and LARGE_COMMUNITY, LOCAL_PREF for iBGP, route refresh, TCP MD5,
//! TTL 1 for directly connected eBGP peers (255 with `ebgp_multihop` and for iBGP).

mod config;
mod metrics;
mod session;
mod socket;
mod speaker;
mod status;
mod wire;

pub use config::{Community, PeerSpec, Route, SessionConfig};
pub use speaker::Speaker;
pub use status::{PeerStatus, SessionState};
