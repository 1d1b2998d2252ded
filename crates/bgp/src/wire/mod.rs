//! BGP messages on the wire. The codec is `rustbgpd-wire` (a young crate, pinned exactly);
//! this module is the only one that uses it, so that replacing it touches nothing else.

mod message;
mod update;

pub(crate) use message::{keepalive, open, read_message, Families, Incoming, Notification, PeerOpen, ProtocolError};
pub(crate) use update::{announcements, withdrawals, UpdateContext};
