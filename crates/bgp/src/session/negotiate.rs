//! Checking the peer's OPEN against the configuration, and what the two OPENs agree on.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::SessionConfig;
use crate::wire::{Families, Notification, PeerOpen, ProtocolError};

/// What holds for the session once both OPENs are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Negotiated {
    /// `None` when either side proposed 0: no hold timer, no keepalives.
    pub(super) hold_time: Option<Duration>,
    pub(super) keepalive_time: Option<Duration>,
    pub(super) four_octet_as: bool,
    pub(super) families: Families,
}

impl Negotiated {
    /// True when the peer takes routes of the session's own family (the one of its address).
    pub(super) fn takes_family_of(&self, peer: IpAddr) -> bool {
        match peer {
            IpAddr::V4(_) => self.families.ipv4_unicast,
            IpAddr::V6(_) => self.families.ipv6_unicast,
        }
    }
}

/// RFC 4271 §6.2 and RFC 6793: the AS must be the configured one, the hold time 0 or at
/// least 3 s, the identifier usable; the error carries the NOTIFICATION to send.
pub(super) fn negotiate(config: &SessionConfig, peer: &PeerOpen) -> Result<Negotiated, ProtocolError> {
    if peer.asn != config.peer_asn {
        return Err(ProtocolError::new(
            Notification::BAD_PEER_AS,
            format!("the peer's OPEN says AS {}, configured peer AS is {}", peer.asn, config.peer_asn),
        ));
    }
    if matches!(peer.hold_time, 1 | 2) {
        return Err(ProtocolError::new(
            Notification::UNACCEPTABLE_HOLD_TIME,
            format!("the peer proposes a hold time of {} s (0 or at least 3)", peer.hold_time),
        ));
    }
    if peer.router_id.is_unspecified() || (config.ibgp() && peer.router_id == config.router_id) {
        return Err(ProtocolError::new(
            Notification::BAD_BGP_IDENTIFIER,
            format!("the peer's BGP identifier {} is not usable (ours is {})", peer.router_id, config.router_id),
        ));
    }
    let hold_secs = config.hold_time.as_secs().min(u64::from(peer.hold_time));
    let hold_time = (hold_secs > 0).then(|| Duration::from_secs(hold_secs));
    let keepalive_time = hold_time.map(|hold| {
        let third = hold / 3;
        config.keepalive_time.map_or(third, |k| k.min(third)).max(Duration::from_secs(1))
    });
    Ok(Negotiated { hold_time, keepalive_time, four_octet_as: peer.four_octet_as, families: peer.families })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            peer_address: "198.18.0.1".parse().unwrap(),
            peer_port: 179,
            peer_asn: 4_200_000_002,
            local_asn: 4_200_000_001,
            router_id: "198.18.0.2".parse().unwrap(),
            source_address: None,
            hold_time: Duration::from_secs(90),
            keepalive_time: None,
            connect_time: Duration::from_secs(5),
            password: None,
            ebgp_multihop: false,
        }
    }

    fn open(asn: u32, hold_time: u16) -> PeerOpen {
        PeerOpen {
            asn,
            hold_time,
            router_id: "198.18.0.1".parse().unwrap(),
            four_octet_as: true,
            families: Families { ipv4_unicast: true, ipv6_unicast: false },
        }
    }

    #[test]
    fn hold_time_is_the_smaller_and_keepalive_a_third() {
        let agreed = negotiate(&config(), &open(4_200_000_002, 30)).unwrap();
        assert_eq!(agreed.hold_time, Some(Duration::from_secs(30)));
        assert_eq!(agreed.keepalive_time, Some(Duration::from_secs(10)));
        let configured = SessionConfig { keepalive_time: Some(Duration::from_secs(5)), ..config() };
        assert_eq!(
            negotiate(&configured, &open(4_200_000_002, 240)).unwrap().keepalive_time,
            Some(Duration::from_secs(5))
        );
        let too_long = SessionConfig { keepalive_time: Some(Duration::from_secs(60)), ..config() };
        assert_eq!(negotiate(&too_long, &open(4_200_000_002, 9)).unwrap().keepalive_time, Some(Duration::from_secs(3)));
        let none = negotiate(&config(), &open(4_200_000_002, 0)).unwrap();
        assert_eq!((none.hold_time, none.keepalive_time), (None, None));
        assert!(none.takes_family_of("198.18.0.1".parse().unwrap()));
        assert!(!none.takes_family_of("fd00::1".parse().unwrap()));
    }

    #[test]
    fn wrong_as_hold_time_or_identifier_are_refused_with_the_right_notification() {
        let error = negotiate(&config(), &open(64512, 90)).unwrap_err();
        assert_eq!(error.notification, Notification::BAD_PEER_AS);
        assert!(error.detail.contains("AS 64512") && error.detail.contains("4200000002"), "{}", error.detail);
        assert_eq!(
            negotiate(&config(), &open(4_200_000_002, 2)).unwrap_err().notification,
            Notification::UNACCEPTABLE_HOLD_TIME
        );
        let ibgp = SessionConfig { local_asn: 4_200_000_002, router_id: "198.18.0.1".parse().unwrap(), ..config() };
        assert_eq!(
            negotiate(&ibgp, &open(4_200_000_002, 90)).unwrap_err().notification,
            Notification::BAD_BGP_IDENTIFIER
        );
    }
}
