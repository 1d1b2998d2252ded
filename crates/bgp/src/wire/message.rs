//! Framing and decoding of what the peer sends; OPEN, KEEPALIVE and NOTIFICATION encoding.

use std::fmt;
use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use rustbgpd_wire::notification::{self as codes, cease_subcode, open_subcode};
use rustbgpd_wire::{
    decode_message, encode_message, peek_message_length, Afi, Capability, DecodeError, Message, NotificationCode,
    NotificationMessage, OpenMessage, Safi, MAX_MESSAGE_LEN,
};

use crate::config::SessionConfig;

/// The 2-octet AS placed in OPEN by a speaker whose AS does not fit (RFC 6793).
const AS_TRANS: u16 = 23456;

/// A NOTIFICATION, sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Notification {
    pub(crate) code: u8,
    pub(crate) subcode: u8,
    pub(crate) data: Bytes,
}

impl Notification {
    const fn new(code: u8, subcode: u8) -> Self {
        Self { code, subcode, data: Bytes::new() }
    }

    /// Cease/Administrative Shutdown: we are stopping; the peer drops our routes now.
    pub(crate) const ADMINISTRATIVE_SHUTDOWN: Self = Self::new(6, cease_subcode::ADMINISTRATIVE_SHUTDOWN);
    /// Cease/Peer De-configured: the BGPPeer is gone.
    pub(crate) const PEER_DECONFIGURED: Self = Self::new(6, cease_subcode::PEER_DECONFIGURED);
    /// Cease/Other Configuration Change: the session restarts with new parameters.
    pub(crate) const CONFIGURATION_CHANGE: Self = Self::new(6, cease_subcode::OTHER_CONFIGURATION_CHANGE);
    /// Hold Timer Expired.
    pub(crate) const HOLD_TIMER_EXPIRED: Self = Self::new(4, 0);
    /// OPEN Message Error/Bad Peer AS.
    pub(crate) const BAD_PEER_AS: Self = Self::new(2, open_subcode::BAD_PEER_AS);
    /// OPEN Message Error/Bad BGP Identifier.
    pub(crate) const BAD_BGP_IDENTIFIER: Self = Self::new(2, open_subcode::BAD_BGP_IDENTIFIER);
    /// OPEN Message Error/Unacceptable Hold Time.
    pub(crate) const UNACCEPTABLE_HOLD_TIME: Self = Self::new(2, open_subcode::UNACCEPTABLE_HOLD_TIME);
    /// Finite State Machine Error/Receive Unexpected Message in OpenSent State.
    pub(crate) const UNEXPECTED_IN_OPEN_SENT: Self = Self::new(5, 1);
    /// Finite State Machine Error/Receive Unexpected Message in OpenConfirm State.
    pub(crate) const UNEXPECTED_IN_OPEN_CONFIRM: Self = Self::new(5, 2);
    /// Finite State Machine Error/Receive Unexpected Message in Established State.
    pub(crate) const UNEXPECTED_IN_ESTABLISHED: Self = Self::new(5, 3);

    /// The message on the wire.
    pub(crate) fn encode(&self) -> Result<Bytes, String> {
        let message = NotificationMessage::new(NotificationCode::from_u8(self.code), self.subcode, self.data.clone());
        encode(&Message::Notification(message))
    }
}

impl fmt::Display for Notification {
    /// `Cease/Administrative Shutdown (6/2)`, with the peer's shutdown text when it sent one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = NotificationCode::from_u8(self.code);
        let meaning = codes::description(code, self.subcode);
        let name = code.to_string();
        if meaning.starts_with(&name) {
            write!(f, "{meaning}")?;
        } else if meaning.starts_with("Unknown") {
            write!(f, "{name}/unknown subcode")?;
        } else {
            write!(f, "{name}/{meaning}")?;
        }
        write!(f, " ({}/{})", self.code, self.subcode)?;
        let shutdown = self.code == 6
            && matches!(self.subcode, cease_subcode::ADMINISTRATIVE_SHUTDOWN | cease_subcode::ADMINISTRATIVE_RESET);
        if let Some(text) = shutdown.then(|| codes::decode_shutdown_communication(&self.data)).flatten() {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

/// Something the peer sent that ends the session: the NOTIFICATION we answer with and what
/// was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    pub(crate) notification: Notification,
    pub(crate) detail: String,
}

impl ProtocolError {
    pub(crate) fn new(notification: Notification, detail: impl Into<String>) -> Self {
        Self { notification, detail: detail.into() }
    }

    fn decode(error: &DecodeError) -> Self {
        let (code, subcode, data) = error.to_notification();
        Self {
            notification: Notification { code: code.as_u8(), subcode, data },
            detail: format!("bad message from the peer: {error}"),
        }
    }
}

/// The address families a peer can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Families {
    pub(crate) ipv4_unicast: bool,
    pub(crate) ipv6_unicast: bool,
}

/// What we need from the peer's OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerOpen {
    /// The peer's AS: from the 4-octet AS capability when present.
    pub(crate) asn: u32,
    /// The hold time the peer proposes, in seconds.
    pub(crate) hold_time: u16,
    pub(crate) router_id: Ipv4Addr,
    /// The peer understands 4-octet AS numbers (RFC 6793).
    pub(crate) four_octet_as: bool,
    pub(crate) families: Families,
}

/// One message from the peer. UPDATE contents are checked and dropped: the speaker learns
/// no routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    Open(PeerOpen),
    Update,
    Keepalive,
    Notification(Notification),
    RouteRefresh,
}

/// Takes the next whole message out of `buf`: `Ok(None)` until one has fully arrived.
/// `four_octet_as` and `ibgp` tell how to read UPDATEs (after the OPENs).
pub(crate) fn read_message(
    buf: &mut BytesMut,
    four_octet_as: bool,
    ibgp: bool,
) -> Result<Option<Incoming>, ProtocolError> {
    let Some(length) = peek_message_length(buf, MAX_MESSAGE_LEN).map_err(|e| ProtocolError::decode(&e))? else {
        return Ok(None);
    };
    if buf.len() < usize::from(length) {
        return Ok(None);
    }
    let mut message = buf.split_to(usize::from(length)).freeze();
    let message = decode_message(&mut message, MAX_MESSAGE_LEN).map_err(|e| ProtocolError::decode(&e))?;
    Ok(Some(match message {
        Message::Open(open) => Incoming::Open(peer_open(&open)),
        Message::Update(update) => {
            // RFC 7606: only errors that make the message unreadable reset the session; the
            // others would withdraw the peer's routes, which we do not keep anyway.
            update.parse_revised(four_octet_as, ibgp, false, &[]).map_err(|e| ProtocolError::decode(&e))?;
            Incoming::Update
        }
        Message::Keepalive => Incoming::Keepalive,
        Message::Notification(n) => {
            Incoming::Notification(Notification { code: n.code.as_u8(), subcode: n.subcode, data: n.data })
        }
        Message::RouteRefresh(_) => Incoming::RouteRefresh,
        other => {
            return Err(ProtocolError::new(
                Notification::new(1, codes::header_subcode::BAD_MESSAGE_TYPE),
                format!("unexpected message type {}", other.message_type()),
            ))
        }
    }))
}

fn peer_open(open: &OpenMessage) -> PeerOpen {
    let mut four_octet = None;
    let mut any_family = false;
    let mut families = Families { ipv4_unicast: false, ipv6_unicast: false };
    for capability in &open.capabilities {
        match capability {
            Capability::FourOctetAs { asn } => four_octet = Some(*asn),
            Capability::MultiProtocol { afi, safi } => {
                any_family = true;
                match (afi, safi) {
                    (Afi::Ipv4, Safi::Unicast) => families.ipv4_unicast = true,
                    (Afi::Ipv6, Safi::Unicast) => families.ipv6_unicast = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // Without multiprotocol capabilities a speaker does IPv4 unicast only (RFC 4760 §8).
    if !any_family {
        families.ipv4_unicast = true;
    }
    PeerOpen {
        asn: four_octet.unwrap_or(u32::from(open.my_as)),
        hold_time: open.hold_time,
        router_id: open.bgp_identifier,
        four_octet_as: four_octet.is_some(),
        families,
    }
}

/// Our OPEN: version 4, our AS (AS_TRANS when it needs 4 octets), the proposed hold time,
/// and the capabilities 4-octet AS, IPv4 and IPv6 unicast, and route refresh.
pub(crate) fn open(config: &SessionConfig) -> Result<Bytes, String> {
    let hold_time = u16::try_from(config.hold_time.as_secs()).map_err(|_| "hold time too long".to_owned())?;
    let message = OpenMessage {
        version: 4,
        my_as: u16::try_from(config.local_asn).unwrap_or(AS_TRANS),
        hold_time,
        bgp_identifier: config.router_id,
        capabilities: vec![
            Capability::MultiProtocol { afi: Afi::Ipv4, safi: Safi::Unicast },
            Capability::MultiProtocol { afi: Afi::Ipv6, safi: Safi::Unicast },
            Capability::RouteRefresh,
            Capability::FourOctetAs { asn: config.local_asn },
        ],
    };
    encode(&Message::Open(message))
}

/// A KEEPALIVE.
pub(crate) fn keepalive() -> Result<Bytes, String> {
    encode(&Message::Keepalive)
}

fn encode(message: &Message) -> Result<Bytes, String> {
    encode_message(message).map(BytesMut::freeze).map_err(|e| format!("encoding {message}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(local_asn: u32) -> SessionConfig {
        SessionConfig {
            peer_address: "198.18.0.1".parse().unwrap(),
            peer_port: 179,
            peer_asn: 4_200_000_002,
            local_asn,
            router_id: "198.18.0.2".parse().unwrap(),
            source_address: None,
            hold_time: Duration::from_secs(90),
            keepalive_time: None,
            connect_time: Duration::from_secs(5),
            password: None,
            ebgp_multihop: false,
        }
    }

    #[test]
    fn our_open_reads_back_with_as_trans_and_the_capabilities() {
        let mut buf = BytesMut::from(&open(&config(4_200_000_001)).unwrap()[..]);
        let Some(Incoming::Open(peer)) = read_message(&mut buf, false, false).unwrap() else { panic!("not an OPEN") };
        assert_eq!(peer.asn, 4_200_000_001);
        assert!(peer.four_octet_as);
        assert_eq!(peer.hold_time, 90);
        assert_eq!(peer.families, Families { ipv4_unicast: true, ipv6_unicast: true });
        assert!(buf.is_empty());
        let encoded = open(&config(4_200_000_001)).unwrap();
        assert_eq!(&encoded[20..22], &AS_TRANS.to_be_bytes(), "the 2-octet AS field is AS_TRANS");
        let encoded = open(&config(64512)).unwrap();
        assert_eq!(&encoded[20..22], &64512u16.to_be_bytes());
    }

    #[test]
    fn partial_messages_wait_and_garbage_is_a_header_error() {
        let whole = keepalive().unwrap();
        let mut buf = BytesMut::from(&whole[..10]);
        assert_eq!(read_message(&mut buf, true, false), Ok(None));
        buf.extend_from_slice(&whole[10..]);
        buf.extend_from_slice(&whole[..5]);
        assert_eq!(read_message(&mut buf, true, false), Ok(Some(Incoming::Keepalive)));
        assert_eq!(buf.len(), 5);

        let mut garbage = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        let error = read_message(&mut garbage, true, false).unwrap_err();
        assert_eq!((error.notification.code, error.notification.subcode), (1, 1));
        assert!(error.detail.contains("marker"), "{}", error.detail);

        // A header whose length is shorter than an OPEN body needs.
        let mut short_open = BytesMut::from(&[0xff; 16][..]);
        short_open.extend_from_slice(&[0, 21, 1, 4, 0]);
        let error = read_message(&mut short_open, true, false).unwrap_err();
        assert_eq!(error.notification.code, 2, "{error:?}");
    }

    #[test]
    fn notifications_read_with_their_meaning() {
        let sent = Notification::ADMINISTRATIVE_SHUTDOWN;
        let mut buf = BytesMut::from(&sent.encode().unwrap()[..]);
        let Some(Incoming::Notification(received)) = read_message(&mut buf, true, false).unwrap() else {
            panic!("not a NOTIFICATION")
        };
        assert_eq!(received, sent);
        assert_eq!(received.to_string(), "Cease/Administrative Shutdown (6/2)");
        assert_eq!(Notification::BAD_PEER_AS.to_string(), "OPEN Message Error/Bad Peer AS (2/2)");
        assert_eq!(Notification::HOLD_TIMER_EXPIRED.to_string(), "Hold Timer Expired (4/0)");
        let with_text =
            Notification { data: Bytes::from_static(b"\x05maint"), ..Notification::ADMINISTRATIVE_SHUTDOWN };
        assert_eq!(with_text.to_string(), "Cease/Administrative Shutdown (6/2): \"maint\"");
    }

    #[test]
    fn a_malformed_update_gets_an_update_error() {
        // Path attributes length 10, but only 3 bytes of attributes follow.
        let mut update = BytesMut::from(&[0xff; 16][..]);
        update.extend_from_slice(&[0, 26, 2, 0, 0, 0, 10, 0x40, 1, 1]);
        let error = read_message(&mut update, true, false).unwrap_err();
        assert_eq!(error.notification.code, 3, "{error:?}");
        // An ORIGIN with a wrong length only withdraws (RFC 7606): the session stays.
        let mut update = BytesMut::from(&[0xff; 16][..]);
        update.extend_from_slice(&[0, 31, 2, 0, 0, 0, 8, 0x40, 1, 2, 0, 0, 0x40, 2, 0]);
        assert_eq!(read_message(&mut update, true, false), Ok(Some(Incoming::Update)));
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(4271);
        for _ in 0..20_000 {
            let kind = rng.u8(0..7);
            let body: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            let mut input = BytesMut::from(&[0xff; 16][..]);
            let length = if rng.bool() { 19 + body.len() as u16 } else { rng.u16(..) };
            input.extend_from_slice(&length.to_be_bytes());
            input.extend_from_slice(&[kind]);
            input.extend_from_slice(&body);
            while let Ok(Some(_)) = read_message(&mut input, rng.bool(), rng.bool()) {}
        }
    }
}
